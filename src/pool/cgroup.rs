//! The limits a Linux control group puts on this process (a container's memory limit and
//! CPU quota), read from cgroup v2 (`memory.max`, `cpu.max`) or v1
//! (`memory.limit_in_bytes`, `cpu.cfs_quota_us` / `cpu.cfs_period_us`), so that
//! [`ResourceCapacity::from_machine`](super::ResourceCapacity::from_machine) sizes the pool
//! for the container rather than for the host.
//!
//! Where the files are: `/proc/self/cgroup` names the process's group in each hierarchy
//! (`0::/kubepods/.../container` for v2; `4:memory:/docker/<id>` and `2:cpu,cpuacct:/...`
//! for v1). That path is looked up under the hierarchy's mount (`/sys/fs/cgroup` for v2,
//! `/sys/fs/cgroup/<controllers>` or `/sys/fs/cgroup/<controller>` for v1). In a container
//! without a cgroup namespace the path names the group as the host sees it while the
//! container's own group is mounted at the root: a path that does not exist under the
//! mount falls back to the mount itself. The limit that applies is the smallest one on the
//! way from the group up to the mount (a parent's limit binds its children: Kubernetes puts
//! one on the pod and one on each container). No file, an unreadable one, `max` (v2) or
//! `-1` / a huge value (v1) mean no limit. Plain reads, no I/O beyond these small files.

use std::path::{Path, PathBuf};

/// What the cgroups allow this process, where they limit it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct CgroupLimits {
    /// Bytes of memory (`memory.max` / `memory.limit_in_bytes`).
    pub memory: Option<u64>,
    /// Cores of CPU time per wall second (quota / period; may be fractional).
    pub cpus: Option<f64>,
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
struct Membership<'a> {
    /// Empty for the v2 (unified) hierarchy.
    controllers: &'a str,
    path: &'a str,
}

fn memberships(text: &str) -> impl Iterator<Item = Membership<'_>> {
    text.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        Some(Membership { controllers, path })
    })
}

/// The directories whose limits apply to a group at `path` in a hierarchy mounted at
/// `mount`: the group's own and its ancestors', up to the mount (just the mount when the
/// path is not there: a container seeing the host's path).
fn group_dirs(mount: &Path, path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let leaf = mount.join(rel);
    if rel.is_empty() || !leaf.is_dir() {
        return vec![mount.to_path_buf()];
    }
    leaf.ancestors()
        .take_while(|d| d.starts_with(mount))
        .map(Path::to_path_buf)
        .collect()
}

/// The smallest limit any of `dirs` sets, by `read` on each.
fn smallest<T: PartialOrd + Copy>(
    dirs: &[PathBuf],
    read: impl Fn(&Path) -> Option<T>,
) -> Option<T> {
    dirs.iter()
        .filter_map(|d| read(d))
        .fold(None, |m, v| match m {
            Some(m) if m <= v => Some(m),
            _ => Some(v),
        })
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// v1 writes "no limit" as -1 or as the largest page-aligned `i64`; anything from 2^62 up
/// is taken as no limit (no machine has 4 EiB).
const V1_UNLIMITED: u64 = 1 << 62;

/// `memory.max`: bytes, or `max`.
fn v2_memory(dir: &Path) -> Option<u64> {
    read_trimmed(&dir.join("memory.max"))?.parse().ok()
}

/// `cpu.max`: `QUOTA PERIOD` in microseconds, or `max PERIOD`.
fn v2_cpus(dir: &Path) -> Option<f64> {
    let text = read_trimmed(&dir.join("cpu.max"))?;
    let mut it = text.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// `memory.limit_in_bytes`: bytes, a huge value (or -1) when unlimited.
fn v1_memory(dir: &Path) -> Option<u64> {
    let limit: i64 = read_trimmed(&dir.join("memory.limit_in_bytes"))?
        .parse()
        .ok()?;
    u64::try_from(limit).ok().filter(|&l| l < V1_UNLIMITED)
}

/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`; a quota of -1 is no limit.
fn v1_cpus(dir: &Path) -> Option<f64> {
    let quota: f64 = read_trimmed(&dir.join("cpu.cfs_quota_us"))?.parse().ok()?;
    let period: f64 = read_trimmed(&dir.join("cpu.cfs_period_us"))?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// The directories of the v1 hierarchy that carries `controller`, for this membership:
/// mounted as the joined controller list (`cpu,cpuacct`) or as the controller alone.
fn v1_dirs(cgroup_root: &Path, m: &Membership<'_>, controller: &str) -> Option<Vec<PathBuf>> {
    if !m.controllers.split(',').any(|c| c == controller) {
        return None;
    }
    let mount = [m.controllers, controller]
        .into_iter()
        .map(|name| cgroup_root.join(name))
        .find(|d| d.is_dir())?;
    Some(group_dirs(&mount, m.path))
}

/// The limits on this process: `/proc/self/cgroup` under `proc_root`, the hierarchies
/// under `cgroup_root` (`/proc` and `/sys/fs/cgroup` on a real system). Where both v1 and
/// v2 say something (a hybrid system), the smaller wins.
pub(super) fn limits(proc_root: &Path, cgroup_root: &Path) -> CgroupLimits {
    let Some(text) = std::fs::read_to_string(proc_root.join("self/cgroup")).ok() else {
        return CgroupLimits::default();
    };
    let mut memory = Vec::new();
    let mut cpus = Vec::new();
    for m in memberships(&text) {
        if m.controllers.is_empty() {
            // The unified hierarchy is mounted at the root (pure v2) or, on a hybrid
            // system, at `unified`, which holds no memory or cpu controller files.
            let dirs = group_dirs(cgroup_root, m.path);
            memory.extend(smallest(&dirs, v2_memory));
            cpus.extend(smallest(&dirs, v2_cpus));
            continue;
        }
        if let Some(dirs) = v1_dirs(cgroup_root, &m, "memory") {
            memory.extend(smallest(&dirs, v1_memory));
        }
        if let Some(dirs) = v1_dirs(cgroup_root, &m, "cpu") {
            cpus.extend(smallest(&dirs, v1_cpus));
        }
    }
    CgroupLimits {
        memory: memory.into_iter().min(),
        cpus: cpus.into_iter().reduce(f64::min),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `/proc` and cgroup root: `self_cgroup` is `/proc/self/cgroup`'s text; each
    /// file is (path under the cgroup root, contents).
    fn fake(self_cgroup: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let proc_self = dir.path().join("proc/self");
        std::fs::create_dir_all(&proc_self).unwrap();
        std::fs::write(proc_self.join("cgroup"), self_cgroup).unwrap();
        for (path, text) in files {
            let p = dir.path().join("cg").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("cg")).unwrap();
        dir
    }

    fn read(d: &tempfile::TempDir) -> CgroupLimits {
        limits(&d.path().join("proc"), &d.path().join("cg"))
    }

    #[test]
    fn v2_limits_of_the_group_and_its_parents_the_smallest_wins() {
        let d = fake(
            "0::/kubepods/pod1/ctr\n",
            &[
                ("kubepods/pod1/memory.max", "1073741824\n"),
                ("kubepods/pod1/cpu.max", "400000 100000\n"),
                ("kubepods/pod1/ctr/memory.max", "2147483648\n"),
                ("kubepods/pod1/ctr/cpu.max", "150000 100000\n"),
            ],
        );
        let l = read(&d);
        assert_eq!(
            l.memory,
            Some(1 << 30),
            "the pod's limit binds the container"
        );
        assert_eq!(l.cpus, Some(1.5), "the container's quota is the smaller");
    }

    #[test]
    fn v2_max_is_no_limit() {
        let d = fake(
            "0::/\n",
            &[("memory.max", "max\n"), ("cpu.max", "max 100000\n")],
        );
        assert_eq!(read(&d), CgroupLimits::default());
    }

    #[test]
    fn a_host_path_not_under_the_mount_falls_back_to_the_mount() {
        // No cgroup namespace: the path is the host's, the container's group is the root.
        let d = fake(
            "0::/system.slice/docker-abc.scope\n",
            &[("memory.max", "536870912\n"), ("cpu.max", "50000 100000\n")],
        );
        assert_eq!(
            read(&d),
            CgroupLimits {
                memory: Some(512 << 20),
                cpus: Some(0.5)
            }
        );
    }

    #[test]
    fn v1_limits_from_the_memory_and_cpu_hierarchies() {
        let d = fake(
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
            &[
                ("memory/docker/abc/memory.limit_in_bytes", "805306368\n"),
                ("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n"),
                ("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"),
            ],
        );
        assert_eq!(
            read(&d),
            CgroupLimits {
                memory: Some(768 << 20),
                cpus: Some(2.0)
            }
        );
    }

    #[test]
    fn v1_unlimited_is_a_huge_value_or_minus_one() {
        let d = fake(
            "4:memory:/\n2:cpu:/\n",
            &[
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                ("cpu/cpu.cfs_quota_us", "-1\n"),
                ("cpu/cpu.cfs_period_us", "100000\n"),
            ],
        );
        assert_eq!(read(&d), CgroupLimits::default());
    }

    #[test]
    fn capacity_from_the_machine_is_the_smaller_of_machine_and_limit() {
        use crate::pool::{ResourceCapacity, UNITS_PER_CORE};
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        let meminfo = "MemTotal:        8000000 kB\nMemFree:  100 kB\n";
        let machine = 8_000_000u64 * 1024;
        // A limit under the machine's: it counts (a quarter core: under any machine's).
        let d = fake(
            "0::/\n",
            &[
                ("memory.max", "1073741824\n"),
                ("cpu.max", "25000 100000\n"),
            ],
        );
        std::fs::write(d.path().join("proc/meminfo"), meminfo).unwrap();
        let c = ResourceCapacity::from_paths(&d.path().join("proc"), &d.path().join("cg"));
        assert_eq!(c.memory, 1 << 29, "half the limit");
        assert!(
            (c.compute - 0.25 * UNITS_PER_CORE).abs() < 1e-9,
            "{}",
            c.compute
        );
        // Limits over the machine's: the machine counts.
        let over = format!("{} 100000\n", (cores as u64 + 8) * 100_000);
        let d = fake(
            "0::/\n",
            &[("memory.max", "1099511627776\n"), ("cpu.max", &over)],
        );
        std::fs::write(d.path().join("proc/meminfo"), meminfo).unwrap();
        let c = ResourceCapacity::from_paths(&d.path().join("proc"), &d.path().join("cg"));
        assert_eq!(c.memory, machine / 2);
        assert_eq!(c.compute, cores * UNITS_PER_CORE);
        // No cgroup files at all: the machine.
        let d = fake("0::/\n", &[]);
        std::fs::write(d.path().join("proc/meminfo"), meminfo).unwrap();
        let c = ResourceCapacity::from_paths(&d.path().join("proc"), &d.path().join("cg"));
        assert_eq!((c.memory, c.compute), (machine / 2, cores * UNITS_PER_CORE));
    }

    #[test]
    fn missing_or_garbled_files_are_no_limit() {
        let none = tempfile::tempdir().unwrap();
        assert_eq!(read(&none), CgroupLimits::default(), "no /proc/self/cgroup");
        let d = fake("0::/\n", &[("memory.max", "lots\n")]);
        assert_eq!(read(&d), CgroupLimits::default());
        let d = fake("4:memory:/x\n", &[]);
        assert_eq!(read(&d), CgroupLimits::default(), "no hierarchy mounted");
    }
}

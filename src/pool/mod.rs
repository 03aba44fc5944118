//! Pricing streams and sharing a machine between them: what a stream costs
//! ([`price`], [`price_floor`], in [`ResourceCost`]s of compute units, memory and hardware
//! sessions), what a machine can carry ([`ResourceCapacity`]), and the [`ResourcePool`]
//! that admits costs against it all or nothing, each as an [`Allocation`] that returns its
//! resources when dropped, exactly once, however the stream ended. What ran short when a
//! cost does not fit is a [`Shortage`].
//!
//! A [`Manager`](crate::Manager) prices and allocates every stream it admits; the pool is
//! public for applications that place work themselves (a fleet worker deciding whether a
//! stream can ever run on this node: [`price_floor`] against
//! [`ResourcePool::fits_when_empty`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{StreamConfig, VariantProfile, VideoCodec};
use crate::stats::PlannedLadder;

mod cgroup;

pub use crate::error::refusal::Shortage;

/// Compute units one core carries: "veryfast-equivalent" megapixels per second of x264
/// (measured: the 1080p/720p/480p/360p ladder at 30 fps, ~110 units, runs at about real
/// time on 2 cores).
///
/// Calibrating it for your content and machine: run a representative source under a
/// manager and compare `StreamStats::cpu_time / media_time` (cores used per real-time
/// second) with `price / UNITS_PER_CORE` (cores the price claims); scale the capacity you
/// give the pool (`ResourceCapacity::with_compute`) by their ratio. Test patterns encode
/// cheaply: the 4-rung ladder above used 1.2 cores where the price claims 2.0 (`make
/// compare`), so the default is conservative for them.
pub const UNITS_PER_CORE: f64 = 60.0;

/// What a stream needs.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ResourceCost {
    /// Compute units (see [`UNITS_PER_CORE`]).
    pub compute: f64,
    /// Bytes of memory for frames in flight (queues, encoder lookahead, decoder).
    pub memory: u64,
    /// Hardware sessions per device (`"cuda:0"` → 1).
    pub hw_sessions: BTreeMap<String, u32>,
}

impl ResourceCost {
    /// A cost in compute units and bytes of memory, no hardware sessions.
    pub fn new(compute: f64, memory: u64) -> Self {
        Self {
            compute,
            memory,
            hw_sessions: BTreeMap::new(),
        }
    }

    /// Adds `sessions` sessions on a hardware device (e.g. `"cuda:0"`).
    pub fn with_hw_sessions(mut self, device: impl Into<String>, sessions: u32) -> Self {
        self.hw_sessions.insert(device.into(), sessions);
        self
    }
}

/// What the pool can carry.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResourceCapacity {
    /// Compute units.
    pub compute: f64,
    /// Bytes of memory.
    pub memory: u64,
    /// Session limits per hardware device; a device not listed has no limit.
    pub hw_sessions: BTreeMap<String, u32>,
}

impl ResourceCapacity {
    /// From this machine, or from its container: the CPU cores this process may use ×
    /// [`UNITS_PER_CORE`], half the memory it may use, no device limits. Inside a Linux
    /// control group (a container, a systemd unit, a Kubernetes pod) its CPU quota and
    /// memory limit count where they are smaller than the machine's (cgroup v2 `cpu.max`
    /// and `memory.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` and
    /// `memory.limit_in_bytes`, of the process's group and its parents). A quota may give
    /// a fractional number of cores (150000/100000 µs is 1.5 cores, 90 units).
    pub fn from_machine() -> Self {
        Self::from_paths(Path::new("/proc"), Path::new("/sys/fs/cgroup"))
    }

    /// [`from_machine`](Self::from_machine) with `/proc` and `/sys/fs/cgroup` elsewhere
    /// (tests give it a fake cgroup tree).
    pub(crate) fn from_paths(proc_root: &Path, cgroup_root: &Path) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let limits = cgroup::limits(proc_root, cgroup_root);
        let machine = machine_memory(proc_root);
        if limits != cgroup::CgroupLimits::default() {
            log::debug!("cgroup limits: {limits:?} (machine: {cores} cores, {machine} bytes)");
        }
        let cores = limits.cpus.map_or(cores, |q| q.min(cores));
        let memory = limits.memory.map_or(machine, |m| m.min(machine));
        Self {
            compute: cores * UNITS_PER_CORE,
            memory: memory / 2,
            hw_sessions: BTreeMap::new(),
        }
    }

    /// An explicit capacity (compute units and bytes of memory), no device limits.
    pub fn new(compute: f64, memory: u64) -> Self {
        Self {
            compute,
            memory,
            hw_sessions: BTreeMap::new(),
        }
    }

    /// Sets the compute units (e.g. to over-commit on purpose, or to keep a reserve).
    pub fn with_compute(mut self, units: f64) -> Self {
        self.compute = units;
        self
    }

    /// Sets the bytes of memory.
    pub fn with_memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// Limits a hardware device (e.g. `"cuda:0"`) to `sessions` concurrent sessions.
    pub fn with_hw_sessions(mut self, device: impl Into<String>, sessions: u32) -> Self {
        self.hw_sessions.insert(device.into(), sessions);
        self
    }
}

/// `MemTotal` from `meminfo` under `proc_root` (4 GiB when it cannot be read).
fn machine_memory(proc_root: &Path) -> u64 {
    std::fs::read_to_string(proc_root.join("meminfo"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024)
}

/// Relative cost of an x264 preset, veryfast = 1.
fn preset_weight(preset: &str) -> f64 {
    match preset {
        "ultrafast" => 0.45,
        "superfast" => 0.6,
        "veryfast" => 1.0,
        "faster" => 1.6,
        "fast" => 2.0,
        "medium" => 2.5,
        "slow" => 4.0,
        "slower" => 7.0,
        "veryslow" => 12.0,
        _ => 30.0,
    }
}

fn codec_weight(codec: VideoCodec) -> f64 {
    codec.traits().cpu_weight
}

/// Assumed frame rate for pricing (the source's is unknown until it is opened).
const PRICING_FPS: f64 = 30.0;

/// The price of a stream at admission, from its config alone (admission never does I/O):
/// from its [`SourceHint`](crate::config::SourceHint) when it has one (the rungs that will run, at
/// the declared size and rate), otherwise an upper bound: every rung at 16:9 and 30 fps (or
/// its cap), the decode at the tallest rung's size.
pub fn price(config: &StreamConfig) -> ResourceCost {
    if let Some(ladder) = crate::pipeline::planned_from_hint(config) {
        return price_planned(config, &ladder);
    }
    let rungs = config.profile().variants.iter().map(|v| {
        let w = (f64::from(v.height) * 16.0 / 9.0 / 2.0).round() * 2.0;
        let fps = v.max_frame_rate.map_or(PRICING_FPS, |c| c.min(PRICING_FPS));
        (v, w, f64::from(v.height), fps)
    });
    let tallest = config
        .profile()
        .variants
        .iter()
        .map(|v| v.height)
        .max()
        .unwrap_or(0);
    let decode = f64::from(tallest) * f64::from(tallest) * 16.0 / 9.0;
    priced(config, rungs, decode, PRICING_FPS)
}

/// The least a stream can cost: its shortest rung alone (every other rung may turn out
/// taller than the source), at 16:9 and 30 fps (or its cap). A stream that does not fit an
/// empty pool even at this price can never run there.
pub fn price_floor(config: &StreamConfig) -> ResourceCost {
    let shortest = config.profile().variants.iter().min_by_key(|v| v.height);
    let rungs = shortest.into_iter().map(|v| {
        let w = (f64::from(v.height) * 16.0 / 9.0 / 2.0).round() * 2.0;
        let fps = v.max_frame_rate.map_or(PRICING_FPS, |c| c.min(PRICING_FPS));
        (v, w, f64::from(v.height), fps)
    });
    let h = f64::from(shortest.map_or(0, |v| v.height));
    priced(config, rungs, h * h * 16.0 / 9.0, PRICING_FPS)
}

/// The price of the ladder as it runs on the source (known once the source is opened):
/// what a manager re-prices a stream's allocation to.
pub(crate) fn price_planned(config: &StreamConfig, ladder: &PlannedLadder) -> ResourceCost {
    let variants = &config.profile().variants;
    let rungs = ladder.rungs.iter().filter_map(|r| {
        let v = variants.iter().find(|v| v.name == r.name)?;
        Some((v, f64::from(r.width), f64::from(r.height), r.frame_rate))
    });
    let decode = f64::from(ladder.source_width) * f64::from(ladder.source_height);
    priced(config, rungs, decode, ladder.source_fps)
}

/// Sums the work: each rung's pixel rate weighted by preset and codec, plus its frames in
/// flight; the decode (about a sixth of a veryfast encode of the same picture); audio, a
/// small constant; one session on the hardware device, if any.
fn priced<'a>(
    config: &StreamConfig,
    rungs: impl Iterator<Item = (&'a VariantProfile, f64, f64, f64)>,
    decode_pixels: f64,
    decode_fps: f64,
) -> ResourceCost {
    let mut compute = 0.0;
    let mut encoded = Vec::new();
    for (v, w, h, fps) in rungs {
        compute += w * h * fps / 1e6 * preset_weight(&v.preset) * codec_weight(v.codec);
        encoded.push((w * h, v.preset.as_str(), v.codec));
    }
    compute += decode_pixels * decode_fps / 1e6 / 6.0 + 0.5;
    let memory = crate::pipeline::stream_memory(decode_pixels, encoded);
    let mut hw_sessions = BTreeMap::new();
    if let Some(hw) = config.hw_device() {
        hw_sessions.insert(hw.to_string(), 1);
    }
    ResourceCost {
        compute,
        memory,
        hw_sessions,
    }
}

/// Current use of the pool.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolUsage {
    /// What is allocated.
    pub used: ResourceCost,
    /// The capacity.
    pub capacity: ResourceCapacity,
    /// Live allocations.
    pub allocations: usize,
}

impl PoolUsage {
    /// Compute units free.
    pub fn free_compute(&self) -> f64 {
        (self.capacity.compute - self.used.compute).max(0.0)
    }

    /// Bytes of memory free.
    pub fn free_memory(&self) -> u64 {
        self.capacity.memory.saturating_sub(self.used.memory)
    }
}

#[derive(Debug)]
struct Used {
    cost: ResourceCost,
    allocations: usize,
}

/// Capacity and what is allocated from it. Shared (`Arc`) by the manager and allocations.
#[derive(Debug)]
pub struct ResourcePool {
    capacity: ResourceCapacity,
    used: Mutex<Used>,
}

impl ResourcePool {
    /// A pool with this capacity.
    pub fn new(capacity: ResourceCapacity) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            used: Mutex::new(Used {
                cost: ResourceCost::default(),
                allocations: 0,
            }),
        })
    }

    /// Would `cost` fit with nothing else allocated (could it ever run here)?
    ///
    /// # Errors
    /// The first [`Shortage`] (compute, memory, hardware sessions).
    pub fn fits_when_empty(&self, cost: &ResourceCost) -> Result<(), Shortage> {
        self.fits(&ResourceCost::default(), cost)
    }

    /// Would `cost` fit now? Answers without allocating.
    ///
    /// # Errors
    /// The first [`Shortage`] (compute, memory, hardware sessions).
    pub fn can_allocate(&self, cost: &ResourceCost) -> Result<(), Shortage> {
        self.fits(&self.used.lock().cost, cost)
    }

    fn fits(&self, used: &ResourceCost, cost: &ResourceCost) -> Result<(), Shortage> {
        let free = self.capacity.compute - used.compute;
        // A small epsilon so that exactly-full pools admit the last stream.
        if cost.compute > free + 1e-9 {
            return Err(Shortage::Compute {
                needed: cost.compute,
                free: free.max(0.0),
            });
        }
        let free_mem = self.capacity.memory.saturating_sub(used.memory);
        if cost.memory > free_mem {
            return Err(Shortage::Memory {
                needed: cost.memory,
                free: free_mem,
            });
        }
        for (device, n) in &cost.hw_sessions {
            if let Some(&limit) = self.capacity.hw_sessions.get(device) {
                let in_use = used.hw_sessions.get(device).copied().unwrap_or(0);
                if in_use + n > limit {
                    return Err(Shortage::HwSessions {
                        device: device.clone(),
                        limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Allocates `cost` if it fits, all or nothing.
    ///
    /// # Errors
    /// The first [`Shortage`]; nothing is allocated then.
    pub fn try_allocate(self: &Arc<Self>, cost: ResourceCost) -> Result<Allocation, Shortage> {
        let mut used = self.used.lock();
        self.fits(&used.cost, &cost)?;
        used.cost.compute += cost.compute;
        used.cost.memory += cost.memory;
        for (d, n) in &cost.hw_sessions {
            *used.cost.hw_sessions.entry(d.clone()).or_insert(0) += n;
        }
        used.allocations += 1;
        Ok(Allocation {
            pool: self.clone(),
            cost,
        })
    }

    /// What is in use now.
    pub fn usage(&self) -> PoolUsage {
        let used = self.used.lock();
        PoolUsage {
            used: used.cost.clone(),
            capacity: self.capacity.clone(),
            allocations: used.allocations,
        }
    }

    /// Swaps `old` for `new` in what is used, if `new` fits once `old` is returned.
    fn reprice(&self, old: &ResourceCost, new: &ResourceCost) -> Result<(), Shortage> {
        // Short: arithmetic under the pool's lock.
        let mut used = self.used.lock();
        let mut without = used.cost.clone();
        without.compute = (without.compute - old.compute).max(0.0);
        without.memory = without.memory.saturating_sub(old.memory);
        for (d, n) in &old.hw_sessions {
            if let Some(v) = without.hw_sessions.get_mut(d) {
                *v = v.saturating_sub(*n);
            }
        }
        self.fits(&without, new)?;
        without.compute += new.compute;
        without.memory += new.memory;
        for (d, n) in &new.hw_sessions {
            *without.hw_sessions.entry(d.clone()).or_insert(0) += n;
        }
        without.hw_sessions.retain(|_, n| *n > 0);
        used.cost = without;
        Ok(())
    }

    fn release(&self, cost: &ResourceCost) {
        let mut used = self.used.lock();
        used.cost.compute = (used.cost.compute - cost.compute).max(0.0);
        if used.allocations == 1 {
            used.cost.compute = 0.0; // no float residue once empty
        }
        used.cost.memory = used.cost.memory.saturating_sub(cost.memory);
        for (d, n) in &cost.hw_sessions {
            if let Some(v) = used.cost.hw_sessions.get_mut(d) {
                *v = v.saturating_sub(*n);
                if *v == 0 {
                    used.cost.hw_sessions.remove(d);
                }
            }
        }
        used.allocations = used.allocations.saturating_sub(1);
    }
}

/// Resources held by one stream; returned to the pool when dropped.
#[derive(Debug)]
pub struct Allocation {
    pool: Arc<ResourcePool>,
    cost: ResourceCost,
}

impl Allocation {
    /// What this allocation holds.
    pub fn cost(&self) -> &ResourceCost {
        &self.cost
    }

    /// Changes what this allocation holds to `cost`, all or nothing: a smaller cost always
    /// succeeds and frees the difference for others at once; a larger one succeeds only if
    /// the difference fits (otherwise nothing changes).
    ///
    /// # Errors
    /// The [`Shortage`] of a larger cost that does not fit; the allocation is unchanged.
    pub fn reprice(&mut self, cost: ResourceCost) -> Result<(), Shortage> {
        self.pool.reprice(&self.cost, &cost)?;
        self.cost = cost;
        Ok(())
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.pool.release(&self.cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AbrProfile;

    fn cfg(rungs: &[&str]) -> StreamConfig {
        StreamConfig::builder("p", "x.mp4", "o")
            .local_files_under("/")
            .profile(AbrProfile::from_rungs(rungs).unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn price_grows_with_the_ladder_and_the_preset() {
        let small = price(&cfg(&["360p"]));
        let big = price(&cfg(&["1080p", "720p", "480p", "360p"]));
        assert!(big.compute > 5.0 * small.compute);
        assert!((100.0..140.0).contains(&big.compute), "{}", big.compute);
        let slow = StreamConfig::builder("p", "x.mp4", "o")
            .local_files_under("/")
            .profile(
                AbrProfile::from_rungs(&["360p"])
                    .unwrap()
                    .with_preset("slow"),
            )
            .build()
            .unwrap();
        assert!(price(&slow).compute > 2.0 * small.compute);
    }

    #[test]
    fn allocation_is_all_or_nothing_and_released_once() {
        let pool =
            ResourcePool::new(ResourceCapacity::new(10.0, 1 << 30).with_hw_sessions("cuda:0", 1));
        let mut cost = ResourceCost {
            compute: 6.0,
            memory: 1 << 20,
            hw_sessions: BTreeMap::new(),
        };
        let a = pool.try_allocate(cost.clone()).unwrap();
        assert!(matches!(
            pool.can_allocate(&cost),
            Err(Shortage::Compute { .. })
        ));
        assert!(pool.try_allocate(cost.clone()).is_err());
        assert_eq!(pool.usage().allocations, 1, "a refusal allocates nothing");
        drop(a);
        assert_eq!(pool.usage().used, ResourceCost::default());
        cost.compute = 1.0;
        cost.hw_sessions.insert("cuda:0".into(), 1);
        let b = pool.try_allocate(cost.clone()).unwrap();
        assert!(matches!(
            pool.try_allocate(cost.clone()),
            Err(Shortage::HwSessions { limit: 1, .. })
        ));
        drop(b);
        assert!(pool.try_allocate(cost).is_ok());
    }
}

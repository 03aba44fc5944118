//! The default sink: files under a local directory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{SegmentSink, SinkFile};

/// Files under a local directory: segments written in place, playlists replaced through a
/// temporary file and a rename. With `sync` (the default through
/// [`StreamConfigBuilder::sync_output`](crate::StreamConfigBuilder::sync_output)) every file
/// is durable before the call that makes it visible returns: a segment is fsynced in
/// [`SinkFile::finish`] (so no playlist can list a segment a power loss would truncate), a
/// replaced file and its directory are fsynced before and after the rename. A segment whose
/// flush or fsync fails is removed: never left torn at its final name.
#[derive(Debug, Clone)]
pub struct FsSink {
    root: PathBuf,
    sync: bool,
}

impl FsSink {
    /// A sink writing under `root`; `sync` makes every finished segment and replaced file
    /// durable (fsync) before it is reported written.
    pub fn new(root: impl Into<PathBuf>, sync: bool) -> Self {
        Self {
            root: root.into(),
            sync,
        }
    }

    /// The directory files are written under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `relative` under the root: refused (`InvalidInput`) when it is absolute or has an
    /// empty, `.` or `..` element, so nothing is written outside the root.
    fn path(&self, relative: &str) -> io::Result<PathBuf> {
        let escapes =
            relative.starts_with('/') || relative.split('/').any(|e| matches!(e, "" | "." | ".."));
        if escapes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{relative:?} is not a relative path under the output directory"),
            ));
        }
        Ok(self.root.join(relative))
    }

    /// Runs `write` on the path of `relative`; when its directory is missing, creates it
    /// and runs it again (the directories exist after the first file, so a segment costs no
    /// extra system call).
    fn in_dir<T>(&self, relative: &str, write: impl Fn(&Path) -> io::Result<T>) -> io::Result<T> {
        let path = self.path(relative)?;
        match write(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
                write(&path)
            }
            done => done,
        }
    }
}

impl SegmentSink for FsSink {
    fn create(&self, path: &str) -> io::Result<Box<dyn SinkFile>> {
        let file = self.in_dir(path, |p| File::create(p))?;
        Ok(Box::new(FsFile {
            out: Some(BufWriter::with_capacity(256 * 1024, file)),
            path: self.path(path)?,
            written: 0,
            sync: self.sync,
        }))
    }

    fn replace(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        self.in_dir(path, |p| write_atomic(p, contents, self.sync))
    }

    /// Atomic (a temporary file renamed over the old one) without the fsyncs: a playlist
    /// rewritten after each part cannot pay a file and a directory fsync three times a
    /// second; the one written when a segment completes is synced (with `sync` on).
    fn replace_often(&self, path: &str, contents: &[u8]) -> io::Result<()> {
        self.in_dir(path, |p| write_atomic(p, contents, false))
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(path)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn location(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }

    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(path)?)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let at = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path(dir)?
        };
        let entries = match std::fs::read_dir(at) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            entries => entries?,
        };
        let names = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()));
        Ok(names
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        let at = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path(dir)?
        };
        std::fs::create_dir_all(at)
    }

    /// The root directory, made absolute (not resolved: two spellings through a symbolic
    /// link are two identities).
    fn identity(&self) -> Option<String> {
        let root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        Some(root.display().to_string())
    }
}

/// A segment being written in place; removed if dropped unfinished or if it cannot be
/// completed.
struct FsFile {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    written: u64,
    /// fsync at `finish`.
    sync: bool,
}

impl Write for FsFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self.out.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        let n = out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl SinkFile for FsFile {
    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        let out = self.out.take().ok_or(io::ErrorKind::BrokenPipe)?;
        let completed = out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
            .and_then(|file| if self.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = completed {
            // Nothing is visible when finish fails: a torn file never stays at its name.
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(self.written)
    }
}

impl Drop for FsFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replaces `path` with `contents` atomically and (with `sync`) durably: write a sibling
/// temporary file, fsync it, rename it into place, fsync the directory. A reader never sees
/// half a file, and after a crash it is the old or the new one. A failed write leaves no
/// temporary file behind.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], sync: bool) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        if sync {
            f.sync_data()?;
        }
        Ok(())
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| sync && !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_visible_when_finished_and_gone_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let sink = FsSink::new(d.path(), false);
        let mut f = sink.create("a.m4s").unwrap();
        f.write_all(b"abc").unwrap();
        assert_eq!(f.finish().unwrap(), 3);
        assert_eq!(std::fs::read(d.path().join("a.m4s")).unwrap(), b"abc");
        let mut torn = sink.create("b.m4s").unwrap();
        torn.write_all(b"x").unwrap();
        drop(torn);
        assert!(!d.path().join("b.m4s").exists());
        sink.delete("a.m4s").unwrap();
        sink.delete("a.m4s").unwrap();
        assert!(!d.path().join("a.m4s").exists());
    }

    #[test]
    fn a_file_that_cannot_be_completed_is_not_left_at_its_name() {
        // A segment whose bytes cannot all be written (here: the disk is full) fails its
        // finish and leaves nothing behind. The link stands in for the file; removing it
        // leaves /dev/full alone.
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", d.path().join("seg.m4s")).unwrap();
        for sync in [false, true] {
            let sink = FsSink::new(d.path(), sync);
            let mut f = sink.create("seg.m4s").unwrap();
            f.write_all(&[0; 1000]).unwrap();
            let e = f.finish().unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            assert!(d.path().join("seg.m4s").symlink_metadata().is_err(), "gone");
            std::os::unix::fs::symlink("/dev/full", d.path().join("seg.m4s")).unwrap();
        }
        // With sync, a finished segment is durable when finish returns.
        let sink = FsSink::new(d.path(), true);
        let mut f = sink.create("ok.m4s").unwrap();
        f.write_all(b"abc").unwrap();
        assert_eq!(f.finish().unwrap(), 3);
        assert_eq!(sink.read("ok.m4s").unwrap(), b"abc");
        assert!(sink.list("").unwrap().contains(&"ok.m4s".to_owned()));
    }

    #[test]
    fn directories_are_made_and_paths_cannot_leave_the_root() {
        let d = tempfile::tempdir().unwrap();
        let sink = FsSink::new(d.path().join("out"), false);
        sink.create("720p/seg_00000.m4s").unwrap().finish().unwrap();
        sink.replace("audio-128k/index.m3u8", b"x").unwrap();
        assert!(d.path().join("out/720p/seg_00000.m4s").exists());
        assert!(d.path().join("out/audio-128k/index.m3u8").exists());
        for bad in ["../x", "/etc/x", "a//b", "./a", "a/../../b", ""] {
            assert!(sink.create(bad).is_err(), "{bad}");
            assert!(sink.replace(bad, b"x").is_err(), "{bad}");
            assert!(sink.delete(bad).is_err(), "{bad}");
        }
        assert!(!d.path().join("x").exists());
    }

    #[test]
    fn replace_is_atomic_and_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        let sink = FsSink::new(d.path(), true);
        sink.replace("x.m3u8", b"a").unwrap();
        sink.replace("x.m3u8", b"bb").unwrap();
        assert_eq!(std::fs::read(d.path().join("x.m3u8")).unwrap(), b"bb");
        assert!(!d.path().join("x.m3u8.tmp").exists());
        // The often-replaced form (no fsync) is as atomic.
        sink.replace_often("x.m3u8", b"ccc").unwrap();
        assert_eq!(std::fs::read(d.path().join("x.m3u8")).unwrap(), b"ccc");
        assert!(!d.path().join("x.m3u8.tmp").exists());
        std::fs::create_dir(d.path().join("dir.m3u8")).unwrap();
        assert!(sink.replace("dir.m3u8", b"c").is_err());
        assert!(!d.path().join("dir.m3u8.tmp").exists());
    }
}

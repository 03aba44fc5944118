//! The master playlist: one `#EXT-X-STREAM-INF` per variant, written once every variant has
//! listed a segment (so it never points at an empty playlist), and rewritten at the end
//! with the bandwidth measured from the segments.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

use super::{write_atomic, MASTER_PLAYLIST};
use crate::stats::StatsCell;

/// One `#EXT-X-STREAM-INF` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MasterEntry {
    /// Relative URI of the media playlist.
    pub uri: String,
    /// Peak bits/s.
    pub bandwidth: u64,
    /// Average bits/s.
    pub average_bandwidth: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RFC 6381 codecs, e.g. `avc1.640028,mp4a.40.2`.
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: f64,
}

/// Bitrates a variant measured from its segments, bits/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct MeasuredBitrate {
    /// The highest segment bitrate.
    pub peak: u64,
    /// Bytes over media time, every segment together.
    pub average: u64,
}

/// Whether the master is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    No,
    /// One variant thread is writing it (outside the lock); the others go on.
    InProgress,
    Yes,
}

/// The master playlist of one output directory, shared by the variant threads.
pub(crate) struct MasterPlaylist {
    dir: PathBuf,
    /// fsync at each write.
    sync: bool,
    state: Mutex<MasterState>,
}

struct MasterState {
    entries: Vec<MasterEntry>,
    ready: Vec<bool>,
    written: Written,
}

impl MasterPlaylist {
    /// A master over these entries, in ladder order; nothing is written yet.
    pub fn new(dir: &Path, entries: Vec<MasterEntry>, sync: bool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            sync,
            state: Mutex::new(MasterState {
                ready: vec![false; entries.len()],
                entries,
                written: Written::No,
            }),
        }
    }

    /// Variant `index` listed a segment (its `codecs` known from its bitstream). Once every
    /// variant has, the master is written; a failed write is retried at the next segment.
    pub fn segment_done(&self, index: usize, codecs: &str, stats: &StatsCell) {
        // Short critical section: flags and a clone of a few entries, no I/O.
        let snapshot = {
            let mut g = self.state.lock();
            if !g.ready[index] {
                g.ready[index] = true;
                codecs.clone_into(&mut g.entries[index].codecs);
            }
            if g.written != Written::No || g.ready.iter().any(|r| !r) {
                return;
            }
            g.written = Written::InProgress;
            g.entries.clone()
        };
        let ok = self.write(&snapshot, stats);
        self.state.lock().written = if ok { Written::Yes } else { Written::No };
    }

    /// Rewrites the master with the measured bandwidth once the ladder is finished (only if
    /// it was written: a master never lists a variant without segments).
    pub fn write_measured(&self, measured: &[MeasuredBitrate], stats: &StatsCell) {
        let entries = {
            let mut g = self.state.lock();
            if g.ready.iter().any(|r| !r) {
                return;
            }
            for (e, m) in g.entries.iter_mut().zip(measured) {
                if m.peak > 0 && m.average > 0 {
                    e.bandwidth = m.peak.max(m.average);
                    e.average_bandwidth = m.average;
                }
            }
            g.entries.clone()
        };
        if self.write(&entries, stats) {
            self.state.lock().written = Written::Yes;
        }
    }

    fn write(&self, entries: &[MasterEntry], stats: &StatsCell) -> bool {
        match write_master(&self.dir, entries, self.sync) {
            Ok(n) => {
                stats.playlist_bytes.fetch_add(n, Relaxed);
                true
            }
            Err(e) => {
                stats.errors.fetch_add(1, Relaxed);
                log::error!("writing {}: {e}", self.dir.join(MASTER_PLAYLIST).display());
                false
            }
        }
    }
}

/// Renders and atomically writes the master playlist.
fn write_master(dir: &Path, entries: &[MasterEntry], sync: bool) -> io::Result<u64> {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for e in entries {
        let _ = writeln!(
            text,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}\n{}",
            e.bandwidth, e.average_bandwidth, e.width, e.height, e.codecs, e.frame_rate, e.uri
        );
    }
    write_atomic(&dir.join(MASTER_PLAYLIST), &text, sync)
}

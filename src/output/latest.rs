//! A file of the whole output (the master playlist, the DASH manifest) that several
//! rendition threads update: one thread writes at a time, outside every lock, and the
//! newest text is always the last written.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use parking_lot::Mutex;

use crate::sink::SegmentSink;
use crate::stats::StatsCell;

/// The writer of one such file.
pub(crate) struct LatestWriter {
    /// Its path in the sink.
    rel: &'static str,
    state: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// A thread is writing (outside the lock).
    writing: bool,
    /// A newer text rendered meanwhile: the writing thread writes it next.
    pending: Option<String>,
}

impl LatestWriter {
    pub fn new(rel: &'static str) -> Self {
        Self {
            rel,
            state: Mutex::default(),
        }
    }

    /// Writes `text`, then whatever newer text other threads left meanwhile, and returns
    /// the last write's result; or, while another thread is writing, leaves `text` to it
    /// (replacing an older pending one) and returns `None`. Each write's bytes are counted,
    /// each failure counted and logged.
    /// Writes the final text once every rendition thread has ended (no other writer can
    /// hold the file then), returning its result.
    pub fn write_final(
        &self,
        sink: &dyn SegmentSink,
        text: String,
        stats: &StatsCell,
    ) -> io::Result<()> {
        self.write(sink, text, stats).unwrap_or(Ok(()))
    }

    pub fn write(
        &self,
        sink: &dyn SegmentSink,
        text: String,
        stats: &StatsCell,
    ) -> Option<io::Result<()>> {
        self.write_as(sink, text, stats, false)
    }

    /// As [`Self::write`], through [`SegmentSink::replace_often`]: a file rewritten several
    /// times a second (a low-latency manifest) is replaced atomically but not made durable
    /// each time.
    pub fn write_often(
        &self,
        sink: &dyn SegmentSink,
        text: String,
        stats: &StatsCell,
    ) -> Option<io::Result<()>> {
        self.write_as(sink, text, stats, true)
    }

    fn write_as(
        &self,
        sink: &dyn SegmentSink,
        mut text: String,
        stats: &StatsCell,
        often: bool,
    ) -> Option<io::Result<()>> {
        {
            let mut g = self.state.lock();
            if g.writing {
                g.pending = Some(text);
                return None;
            }
            g.writing = true;
        }
        loop {
            let result = if often {
                sink.replace_often(self.rel, text.as_bytes())
            } else {
                sink.replace(self.rel, text.as_bytes())
            };
            match &result {
                Ok(()) => {
                    stats.playlist_bytes.fetch_add(text.len() as u64, Relaxed);
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Relaxed);
                    log::error!("writing {}: {e}", sink.location(self.rel));
                }
            }
            let mut g = self.state.lock();
            match g.pending.take() {
                Some(next) => text = next,
                None => {
                    g.writing = false;
                    return Some(result);
                }
            }
        }
    }
}

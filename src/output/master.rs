//! The master playlist: one `#EXT-X-STREAM-INF` per variant, written once every variant has
//! listed a segment (so it never points at an empty playlist), and rewritten at the end
//! with the bandwidth measured from the segments.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::latest::LatestWriter;
use super::naming::{in_rendition, MASTER_PLAYLIST, MEDIA_PLAYLIST};
use super::AAC_LC;
use crate::sink::SegmentSink;
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
    /// The video's RFC 6381 codec, e.g. `avc1.640028` (the audio's is added when written).
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: f64,
    /// Audio muxed into the variant's own segments (MPEG-TS).
    pub muxed_audio: bool,
    /// The audio rendition group it plays with (fMP4), an index into the audio groups.
    pub audio_group: Option<usize>,
}

/// An audio-only rendition (fMP4): an `#EXT-X-MEDIA` group of its own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AudioGroup {
    /// Its directory and `GROUP-ID`, e.g. `audio-128k`.
    pub name: String,
    /// Channels.
    pub channels: u32,
    /// Configured bits/s, until measured.
    pub bandwidth: u64,
    /// Average bits/s, until measured.
    pub average_bandwidth: u64,
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
    sink: Arc<dyn SegmentSink>,
    /// `#EXT-X-VERSION` (7 with fMP4).
    version: u8,
    state: Mutex<MasterState>,
    writer: LatestWriter,
}

#[derive(Clone)]
struct MasterState {
    entries: Vec<MasterEntry>,
    audio: Vec<AudioGroup>,
    /// Per video entry, then per audio group: it has listed a segment.
    ready: Vec<bool>,
    written: Written,
}

impl MasterPlaylist {
    /// A master over these entries, in ladder order, and audio groups; nothing is written
    /// yet.
    pub fn new(
        sink: Arc<dyn SegmentSink>,
        entries: Vec<MasterEntry>,
        audio: Vec<AudioGroup>,
        version: u8,
    ) -> Self {
        Self {
            sink,
            version,
            state: Mutex::new(MasterState {
                ready: vec![false; entries.len() + audio.len()],
                entries,
                audio,
                written: Written::No,
            }),
            writer: LatestWriter::new(MASTER_PLAYLIST),
        }
    }

    /// Rendition `index` (video rungs first, then the audio groups) listed a segment (a
    /// video's `codecs` known from its bitstream). Once every rendition has, the master is
    /// written; a failed write is retried at the next segment.
    /// Returns whether the master was written now.
    pub fn segment_done(&self, index: usize, codecs: &str, stats: &StatsCell) -> bool {
        // Short critical section: flags and a clone of a few entries, no I/O.
        let snapshot = {
            let mut g = self.state.lock();
            if !g.ready[index] {
                g.ready[index] = true;
                if let Some(e) = g.entries.get_mut(index) {
                    codecs.clone_into(&mut e.codecs);
                }
            }
            if g.written != Written::No || g.ready.iter().any(|r| !r) {
                return false;
            }
            g.written = Written::InProgress;
            g.clone()
        };
        let ok = matches!(self.write(&snapshot, stats), Some(Ok(())));
        self.state.lock().written = if ok { Written::Yes } else { Written::No };
        ok
    }

    /// Rewrites the master with the measured bandwidth once the ladder is finished (only if
    /// it was written: a master never lists a variant without segments).
    /// Returns the write's result, `None` when there was nothing to write.
    pub fn write_measured(
        &self,
        measured: &[MeasuredBitrate],
        stats: &StatsCell,
    ) -> Option<io::Result<()>> {
        let entries = {
            let mut g = self.state.lock();
            if g.ready.iter().any(|r| !r) {
                return None;
            }
            let (video, audio) = measured.split_at(g.entries.len().min(measured.len()));
            for (e, m) in g.entries.iter_mut().zip(video) {
                if m.peak > 0 && m.average > 0 {
                    e.bandwidth = m.peak.max(m.average);
                    e.average_bandwidth = m.average;
                }
            }
            for (a, m) in g.audio.iter_mut().zip(audio) {
                if m.peak > 0 && m.average > 0 {
                    a.bandwidth = m.peak.max(m.average);
                    a.average_bandwidth = m.average;
                }
            }
            g.clone()
        };
        let text = render(&entries, self.version);
        let result = self.writer.write_final(&*self.sink, text, stats);
        if result.is_ok() {
            self.state.lock().written = Written::Yes;
        }
        Some(result)
    }

    /// Writes the master (a failure is counted and logged, and retried at the next change).
    fn write(&self, state: &MasterState, stats: &StatsCell) -> Option<io::Result<()>> {
        self.writer
            .write(&*self.sink, render(state, self.version), stats)
    }
}

/// The master playlist's text: the audio groups (`#EXT-X-MEDIA`), then one
/// `#EXT-X-STREAM-INF` per video rung, whose BANDWIDTH and CODECS include its audio's.
fn render(state: &MasterState, version: u8) -> String {
    let mut text = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    // Each group holds one rendition, so each is its group's default.
    for a in &state.audio {
        let _ = writeln!(
            text,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{0}\",NAME=\"{0}\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{1}\",URI=\"{2}\"",
            a.name, a.channels, in_rendition(&a.name, MEDIA_PLAYLIST),
        );
    }
    for e in &state.entries {
        let group = e.audio_group.and_then(|g| state.audio.get(g));
        let (audio_peak, audio_avg) = group.map_or((0, 0), |a| (a.bandwidth, a.average_bandwidth));
        let _ = write!(
            text,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{}",
            e.bandwidth + audio_peak,
            e.average_bandwidth + audio_avg,
            e.width,
            e.height,
        );
        // CODECS only when the video's is known: a partial list would mislead a player
        // more than none.
        if !e.codecs.is_empty() {
            let audio = if e.muxed_audio || group.is_some() {
                format!(",{AAC_LC}")
            } else {
                String::new()
            };
            let _ = write!(text, ",CODECS=\"{}{audio}\"", e.codecs);
        }
        let _ = write!(text, ",FRAME-RATE={:.3}", e.frame_rate);
        if let Some(a) = group {
            let _ = write!(text, ",AUDIO=\"{}\"", a.name);
        }
        let _ = writeln!(text, "\n{}", e.uri);
    }
    text
}

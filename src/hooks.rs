//! User callbacks for state changes and statistics, and the events they receive. They run
//! on a stream's own hook thread (`sv-<id>-hooks`, see `stream::hook_thread`), never on a
//! media thread, in order, each inside `catch_unwind`: a hook that panics is logged and the
//! stream carries on; a hook that blocks delays only later hook calls, never decoding or
//! encoding.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::panic::guarded;
use crate::state::StreamState;
use crate::stats::StreamStats;

/// A state change of one stream.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateEvent {
    /// Stream id.
    pub stream: String,
    /// The state left.
    pub from: StreamState,
    /// The state entered.
    pub to: StreamState,
    /// The error behind a move to `Error` or `Failed` (the stream it belongs to is
    /// `stream`: an error does not repeat it).
    pub error: Option<Error>,
    /// When it happened.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::epoch_secs")
    )]
    pub at: SystemTime,
}

/// A periodic statistics snapshot of one stream.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatsEvent {
    /// Stream id.
    pub stream: String,
    /// The state at the snapshot.
    pub state: StreamState,
    /// The figures.
    pub stats: StreamStats,
}

/// A segment finished and listed: what an application uploads, indexes or announces.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SegmentEvent {
    /// Stream id.
    pub stream: String,
    /// The rendition: a variant's name, or an audio rendition's (`audio-128k`).
    pub variant: String,
    /// Where the segment is: its path with the filesystem sink, otherwise what the sink
    /// calls its location (for [`HttpSink`](crate::sink::HttpSink), the URL with its
    /// secrets redacted).
    pub path: PathBuf,
    /// Its init segment (fMP4), which a player loads first; located the same way.
    pub init: Option<PathBuf>,
    /// Its media sequence number in the HLS playlist.
    pub sequence: u64,
    /// Media duration, seconds.
    pub duration: f64,
    /// Size in bytes.
    pub bytes: u64,
    /// The playlist lists it after `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// Its `#EXT-X-PROGRAM-DATE-TIME`: the wall-clock time its first frame's packet was read
    /// from the source (sources carry no capture time); `None` before any frame's.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_support::epoch_secs_opt")
    )]
    pub program_date_time: Option<SystemTime>,
}

/// Something written to (or removed from) a stream's output.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OutputEvent {
    /// A segment was finished, and its playlist rewritten to list it.
    Segment(SegmentEvent),
    /// A playlist or manifest was replaced (a media playlist, the master, the MPD).
    PlaylistWritten {
        /// Stream id.
        stream: String,
        /// The file.
        path: PathBuf,
    },
    /// A segment that had left the live window was deleted.
    SegmentDeleted {
        /// Stream id.
        stream: String,
        /// The rendition.
        variant: String,
        /// The file.
        path: PathBuf,
    },
    /// A file that had left the live window could not be deleted: the store refused (it is
    /// tried again with backoff, a few times), or it was given up and stays in the store.
    /// Never the stream's failure; counted in [`StreamStats::deletes_refused`] and
    /// [`StreamStats::deletes_given_up`](crate::StreamStats::deletes_given_up).
    ///
    /// [`StreamStats::deletes_refused`]: crate::StreamStats::deletes_refused
    DeleteFailed {
        /// Stream id.
        stream: String,
        /// The rendition.
        variant: String,
        /// The file.
        path: PathBuf,
        /// Why: the store's answer, or why it was given up without one.
        error: String,
        /// Tries so far (0: given up untried).
        attempt: u32,
        /// No more tries: the file stays in the store.
        given_up: bool,
    },
    /// A stream with backup sources switched input: the active one was lost and another
    /// took over (failover), or the primary came back. The output goes on without a break:
    /// the new input's first frame follows at the next frame slot. Counted per input in
    /// [`StreamStats::inputs`](crate::StreamStats::inputs).
    InputSwitched {
        /// Stream id.
        stream: String,
        /// The input left (0: the primary, then each backup), and its URL, redacted.
        from_index: usize,
        /// See `from_index`.
        from: String,
        /// The input now shown, and its URL, redacted.
        to_index: usize,
        /// See `to_index`.
        to: String,
        /// Why: the loss (the error that ended the input), or the primary's return.
        reason: String,
        /// When the switch was made.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_support::epoch_secs")
        )]
        at: SystemTime,
    },
}

/// What a stream's hook thread is sent: state changes (from the lifecycle) and output
/// events (from the media threads, which never wait for it).
#[derive(Debug)]
pub(crate) enum HookMsg {
    State(StateEvent),
    Output(OutputEvent),
}

type StateHook = Arc<dyn Fn(&StateEvent) + Send + Sync>;
type StatsHook = Arc<dyn Fn(&StatsEvent) + Send + Sync>;
type OutputHook = Arc<dyn Fn(&OutputEvent) + Send + Sync>;

/// The callbacks attached to a stream. Cheap to clone (shared closures). They run on the
/// stream's own hook thread, in order, inside a panic net; a hook that blocks holds up only
/// that stream's later hooks, never the stream or its `stop`.
///
/// ```no_run
/// # use std::time::Duration;
/// # use streamvisor::{Hooks, Stream, StreamConfig};
/// # fn main() -> Result<(), streamvisor::Error> {
/// let hooks = Hooks::new()
///     .on_state_change(|ev| eprintln!("{}: {} -> {}", ev.stream, ev.from, ev.to))
///     .on_stats(Duration::from_secs(5), |ev| eprintln!("{:.2}x", ev.stats.speed));
/// let config = StreamConfig::builder("cam1", "rtmp://127.0.0.1/live/cam1", "/tmp/hls").build()?;
/// let running = Stream::new(config).with_hooks(hooks).start()?;
/// # let _ = running;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
#[must_use = "hooks do nothing until attached to a stream or a manager"]
pub struct Hooks {
    on_state: Vec<StateHook>,
    on_stats: Vec<StatsHook>,
    on_output: Vec<OutputHook>,
    stats_interval: Option<Duration>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_state", &self.on_state.len())
            .field("on_stats", &self.on_stats.len())
            .field("on_output", &self.on_output.len())
            .field("stats_interval", &self.stats_interval)
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `f` on every state change.
    pub fn on_state_change(mut self, f: impl Fn(&StateEvent) + Send + Sync + 'static) -> Self {
        self.on_state.push(Arc::new(f));
        self
    }

    /// Calls `f` with a statistics snapshot every `interval` (at least 10 ms) while the
    /// stream lives, and once more after it ends.
    pub fn on_stats(
        mut self,
        interval: Duration,
        f: impl Fn(&StatsEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_stats.push(Arc::new(f));
        let interval = interval.max(Duration::from_millis(10));
        self.stats_interval = Some(self.stats_interval.map_or(interval, |i| i.min(interval)));
        self
    }

    /// Calls `f` for every segment finished and listed (see [`SegmentEvent`]). Called on
    /// the hook thread: a slow upload here delays later hooks, never the stream; when the
    /// hook thread falls more than a queue behind, events are dropped (and logged).
    pub fn on_segment(self, f: impl Fn(&SegmentEvent) + Send + Sync + 'static) -> Self {
        self.on_output(move |ev| {
            if let OutputEvent::Segment(s) = ev {
                f(s);
            }
        })
    }

    /// Calls `f` for every output event: segments written, playlists written, segments
    /// deleted.
    pub fn on_output(mut self, f: impl Fn(&OutputEvent) + Send + Sync + 'static) -> Self {
        self.on_output.push(Arc::new(f));
        self
    }

    /// Adds every hook of `other`.
    pub fn merge(mut self, other: &Hooks) -> Self {
        self.on_output.extend(other.on_output.iter().cloned());
        self.on_state.extend(other.on_state.iter().cloned());
        self.on_stats.extend(other.on_stats.iter().cloned());
        if let Some(i) = other.stats_interval {
            self.stats_interval = Some(self.stats_interval.map_or(i, |j| j.min(i)));
        }
        self
    }

    /// True when no hook is set.
    pub fn is_empty(&self) -> bool {
        self.on_state.is_empty() && self.on_stats.is_empty() && self.on_output.is_empty()
    }

    /// True when an output hook is set (output events are only made then).
    pub(crate) fn wants_output(&self) -> bool {
        !self.on_output.is_empty()
    }

    /// Calls every output hook, each inside the panic net.
    pub(crate) fn call_output(&self, stream: &str, ev: &OutputEvent) {
        for h in &self.on_output {
            guarded(format_args!("stream {stream}"), "output hook", || h(ev));
        }
    }

    /// The stats interval, when a stats hook is set.
    pub(crate) fn stats_interval(&self) -> Option<Duration> {
        self.stats_interval.filter(|_| !self.on_stats.is_empty())
    }

    /// Calls every state hook, each inside the panic net.
    pub(crate) fn call_state(&self, ev: &StateEvent) {
        for h in &self.on_state {
            guarded(format_args!("stream {}", ev.stream), "state hook", || h(ev));
        }
    }

    /// Calls every stats hook, each inside the panic net.
    pub(crate) fn call_stats(&self, ev: &StatsEvent) {
        for h in &self.on_stats {
            guarded(format_args!("stream {}", ev.stream), "stats hook", || h(ev));
        }
    }
}

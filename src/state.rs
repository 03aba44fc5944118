//! The runtime state of a stream and sets of states to wait for.

use std::fmt;

/// Where a stream is in its life. `Stopped` and `Failed` are terminal.
///
/// ```text
/// New → Starting → Running → Stopping → Stopped
///          └─────────┴──→ Error (recovering) → Running | Failed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamState {
    /// Configured, not started.
    New,
    /// Opening the source and the encoders.
    Starting,
    /// Transcoding.
    Running,
    /// Draining: flushing decoders and encoders, finishing playlists.
    Stopping,
    /// Finished (source ended, stopped, or aborted). Terminal.
    Stopped,
    /// A recoverable error happened; recovery is in progress.
    Error,
    /// Ended by an error that could not be recovered. Terminal.
    Failed,
}

impl StreamState {
    /// Every state, in lifecycle order.
    pub const ALL: [StreamState; 7] = [
        StreamState::New,
        StreamState::Starting,
        StreamState::Running,
        StreamState::Stopping,
        StreamState::Stopped,
        StreamState::Error,
        StreamState::Failed,
    ];

    /// True for `Stopped` and `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, StreamState::Stopped | StreamState::Failed)
    }

    /// The name used in logs and JSON events (`"Running"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StreamState::New => "New",
            StreamState::Starting => "Starting",
            StreamState::Running => "Running",
            StreamState::Stopping => "Stopping",
            StreamState::Stopped => "Stopped",
            StreamState::Error => "Error",
            StreamState::Failed => "Failed",
        }
    }

    /// This state as a one-element [`StateSet`].
    pub fn as_set(self) -> StateSet {
        match self {
            StreamState::New => StateSet::NEW,
            StreamState::Starting => StateSet::STARTING,
            StreamState::Running => StateSet::RUNNING,
            StreamState::Stopping => StateSet::STOPPING,
            StreamState::Stopped => StateSet::STOPPED,
            StreamState::Error => StateSet::ERROR,
            StreamState::Failed => StateSet::FAILED,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

bitflags::bitflags! {
    /// A set of [`StreamState`]s, for waiting until a stream reaches any of them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct StateSet: u8 {
        /// [`StreamState::New`].
        const NEW = 1 << 0;
        /// [`StreamState::Starting`].
        const STARTING = 1 << 1;
        /// [`StreamState::Running`].
        const RUNNING = 1 << 2;
        /// [`StreamState::Stopping`].
        const STOPPING = 1 << 3;
        /// [`StreamState::Stopped`].
        const STOPPED = 1 << 4;
        /// [`StreamState::Error`].
        const ERROR = 1 << 5;
        /// [`StreamState::Failed`].
        const FAILED = 1 << 6;
        /// The terminal states.
        const TERMINAL = Self::STOPPED.bits() | Self::FAILED.bits();
    }
}

impl StateSet {
    /// True when `state` is in the set.
    pub fn has(self, state: StreamState) -> bool {
        self.contains(state.as_set())
    }
}

//! The runtime state of a stream and sets of states to wait for.

/// Where a stream is in its life. `Stopped` and `Failed` are terminal.
///
/// ```text
/// New → Starting → Running → Stopping → Stopped
///          └─────────┴──→ Error (recovering) → Running | Failed
/// ```
///
/// `StreamState` has no order (`Ord`): `Error` comes after `Running` and may lead back to
/// it, so no total order is both true and useful. Compare with `==`, [`StateSet`] or
/// [`StreamState::is_terminal`]; [`StreamState::ALL`] lists every state, in the order of
/// [`StreamStats::time_in_state`](crate::StreamStats::time_in_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

crate::error::enum_names!(StreamState, "stream state",
    /// The name used in logs and JSON events (`"Running"`, ...): what `Display` writes and
    /// `FromStr` reads (ASCII case ignored).
    {
        New => "New",
        Starting => "Starting",
        Running => "Running",
        Stopping => "Stopping",
        Stopped => "Stopped",
        Error => "Error",
        Failed => "Failed",
    }
);

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

//! Why a manager refused a stream ([`Refusal`]) and what ran short ([`Shortage`]).

use std::fmt;

/// Why a manager refused a stream: what ran short.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A stream with this id is already running.
    #[error("the id is already in use")]
    DuplicateId,
    /// Another managed stream writes to the same output directory.
    #[error("another stream writes to the same output directory")]
    OutputInUse,
    /// An earlier stream on the same output directory ended with its worker left behind
    /// (stuck in a call nothing could interrupt), which may still write there: the
    /// directory is refused until that thread ends.
    #[error("a thread left behind by an earlier stream may still write to the output directory")]
    OutputBusy,
    /// `max_concurrent` streams are running.
    #[error("max_concurrent ({limit}) reached")]
    MaxConcurrent {
        /// The limit.
        limit: usize,
    },
    /// The resource pool cannot cover the stream.
    #[error("resource pool short of {0}")]
    Capacity(Shortage),
    /// Streams queued before it wait for capacity: it waits behind them (first come, first
    /// served), though it would fit now.
    #[error("{ahead} stream(s) queued before it wait for capacity")]
    BehindQueue {
        /// Streams ahead of it in the queue.
        ahead: usize,
    },
    /// The stream did not fit and the admission queue is full.
    #[error("the admission queue is full ({limit} streams wait)")]
    QueueFull {
        /// The queue's length.
        limit: usize,
    },
    /// A live stream runs below real time: the machine is over-committed whatever the
    /// prices say, so new live work is refused until it catches up.
    #[error(
        "live stream {stream} runs at {speed:.2}x real time: no new live work until it catches up"
    )]
    Overloaded {
        /// The stream that is behind.
        stream: String,
        /// Its speed over the manager's real-time window (media time per wall time).
        speed: f64,
    },
    /// The manager is shutting down.
    #[error("the manager is shutting down")]
    ShuttingDown,
    /// The stream's local source is outside the directory the manager allows local files
    /// in ([`ManagerBuilder::local_files_under`](crate::ManagerBuilder::local_files_under)).
    #[error("its local source is outside {}, the directory the manager allows", .dir.display())]
    LocalFilesOutside {
        /// The directory the manager allows.
        dir: std::path::PathBuf,
    },
}

/// What ran short when a stream was refused. With the `serde` feature it is written as
/// `{"resource": "compute" | "memory" | "hw_sessions", ...its fields}`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "resource", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Shortage {
    /// Not enough compute units.
    Compute {
        /// Units the stream needs.
        needed: f64,
        /// Units free.
        free: f64,
    },
    /// Not enough memory.
    Memory {
        /// Bytes the stream needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A hardware device is at its session limit.
    HwSessions {
        /// The device key.
        device: String,
        /// Its session limit.
        limit: u32,
    },
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortage::Compute { needed, free } => {
                write!(f, "compute: needs {needed:.1} units, {free:.1} free")
            }
            Shortage::Memory { needed, free } => {
                write!(
                    f,
                    "memory: needs {} MiB, {} MiB free",
                    needed >> 20,
                    free >> 20
                )
            }
            Shortage::HwSessions { device, limit } => {
                write!(f, "hardware sessions: {device} is at its limit of {limit}")
            }
        }
    }
}

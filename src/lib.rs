//! # streamvisor
//!
//! Live and on-demand transcoding on FFmpeg's C libraries, embeddable and synchronous,
//! with a supervised lifecycle. A [`Stream`] reads one source (a file, an http(s), rtmp,
//! srt, udp/rtp or tcp URL, a `lavfi:` test graph, or the application's own bytes through
//! a [`Source::reader`]), decodes it once, and writes an adaptive-bitrate ladder (H.264,
//! HEVC or AV1 rungs, AAC audio) as HLS with a master playlist: MPEG-TS segments, or CMAF
//! fragmented MP4 that a DASH manifest can describe too. Files go to a directory, or through
//! any [`sink::SegmentSink`] (an HTTP origin with [`sink::HttpSink`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use streamvisor::{AbrProfile, Stream, StreamConfig, StreamState};
//!
//! let config = StreamConfig::builder(
//!     "demo",
//!     "lavfi:testsrc2=size=1280x720:rate=30:duration=4;sine=frequency=440:duration=4",
//!     "out/demo",
//! )
//! .allow_generated_sources(true) // our own test media: trusted input
//! .profile(AbrProfile::from_rungs(&["720p", "360p"])?)
//! .build()?;
//! let running = Stream::new(config).start()?;
//! let report = running.wait();
//! assert_eq!(report.state, StreamState::Stopped);
//! println!("{} frames decoded", report.stats.frames_in);
//! # Ok::<(), streamvisor::Error>(())
//! ```
//!
//! ## Lifecycle
//! [`Stream<New>`](Stream) is configured ([`Stream::with_hooks`]) and started;
//! [`Stream<Running>`](Stream) is observed ([`Stream::state`], [`Stream::stats`],
//! [`Stream::wait_for`]), stopped ([`Stream::stop`]: drain and finish every output by a
//! deadline), aborted ([`Stream::abort`]) or waited on ([`Stream::wait`]). At run time the
//! [`StreamState`] moves `New → Starting → Running → Stopping → Stopped`, through `Error`
//! while recovering, and to `Failed` when it cannot. The final [`StreamReport`] keeps the
//! figures, the error and the time spent in each state.
//!
//! ## Errors and recovery
//! One [`Error`] enum with [`Error::kind`] and [`Error::is_recoverable`]. A
//! [`RecoveryPolicy`] reconnects network sources (refused, reset, stalled, ended) with
//! jittered exponential backoff, continuing the same playlists on one continuous timeline
//! (the encoders never stop, so no `#EXT-X-DISCONTINUITY` is needed), and falls back from
//! a hardware device to the CPU. The state is `Running` whenever media flows and `Error`
//! while it does not; each outage is in the stats.
//!
//! ## Many streams
//! A [`Manager`] admits streams against `max_concurrent` and a
//! [`ResourcePool`](pool::ResourcePool) priced from each config, refuses with a
//! [`Refusal`](manager::Refusal) naming what ran short, releases each stream's
//! [`Allocation`](pool::Allocation) exactly once however it ends, watches for stalls, can
//! restart failed streams, and shuts everything down in parallel.
//!
//! ## Hooks
//! [`Hooks`] receive every state change ([`StateEvent`]) and periodic [`StatsEvent`]s on a
//! stream's own hook thread, in order, inside `catch_unwind`; a slow or panicking hook
//! never stalls or kills the media threads, and hooks may call back into a [`Manager`].
//!
//! ## Layout on disk
//! `<output_dir>/master.m3u8` and `<output_dir>/<variant>/index.m3u8` with its segments
//! (`seg_00000.ts`, ...). Every variant has a keyframe at every segment boundary, on the
//! same timestamps, so players can switch between them. With [`Container::Fmp4`] each
//! variant directory holds `init_00000.mp4` and `seg_00000.m4s`, ...; the audio is its own
//! rendition (`<output_dir>/audio-128k/`), and with [`AbrProfile::dash`]
//! `<output_dir>/manifest.mpd` lists the same segments. [`Hooks::on_segment`] tells each
//! segment as it is listed (to upload, index or purge).
//!
//! ## FFmpeg's log
//! FFmpeg's own log lines go to the [`log`](https://docs.rs/log) crate, target `ffmpeg`,
//! with URLs redacted: `streamvisor` installs FFmpeg's one, process-wide log callback when
//! the first stream opens its source. An application that routes FFmpeg's log itself calls
//! [`route_ffmpeg_logs(false)`](route_ffmpeg_logs) before its first stream, and
//! `streamvisor` leaves the callback alone.
//!
//! ## Where things are
//! The crate root holds what an application names every day: the stream and its
//! configuration, errors, states, statistics, hooks and events, and the manager. Everything
//! else is in a module per topic, which also holds the root's names of that topic:
//! [`config`] (every configuration type), [`error`], [`events`], [`manager`], [`pool`]
//! (prices and the resource pool, for applications that place work themselves), [`sink`]
//! (where files go), [`stats`] and [`stream`].
//!
//! ## Threads
//! Each stream runs on its own named threads (`sv-<id>` decodes, `sv-<id>-<rung>` scales
//! and encodes one rung, `sv-<id>-audio-<kbps>k` segments an audio rendition); every FFmpeg
//! handle is owned by exactly one of them. Dropping a running stream aborts it and joins its
//! threads within [`stream::GRACE`]; a thread still busy then (a hook that never returns,
//! a call nothing can interrupt) is left behind, named in the report, and ends on its own.

#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod error;
pub mod events;
mod ffi;
mod hooks;
pub mod manager;
#[cfg(feature = "origin")]
pub mod origin;
mod output;
mod panic;
mod pipeline;
pub mod pool;
pub mod redact;
#[cfg(feature = "serde")]
mod serde_support;
pub mod sink;
mod state;
pub mod stats;
pub mod stream;

// The everyday face: what an application names to run, watch and manage streams. Everything
// else is in the public module of its topic, which holds that topic's names below too; hooks,
// states and `route_ffmpeg_logs` have no module of their own; `redact_url` is also in `redact`.
#[doc(inline)]
pub use config::{
    AbrProfile, Container, RecoveryPolicy, Source, StreamConfig, StreamConfigBuilder,
    VariantProfile, VideoCodec,
};
#[doc(inline)]
pub use error::{Error, ErrorKind, Result};
#[doc(inline)]
pub use events::{event_channel, StreamEvent};
pub use ffi::route_ffmpeg_logs;
pub use hooks::{Hooks, OutputEvent, SegmentEvent, StateEvent, StatsEvent};
#[doc(inline)]
pub use manager::{Admitted, Manager, ManagerBuilder, ShutdownReport};
#[doc(inline)]
pub use pool::ResourceCapacity;
#[doc(inline)]
pub use redact::redact_url;
pub use state::{StateSet, StreamState};
#[doc(inline)]
pub use stats::StreamStats;
#[doc(inline)]
pub use stream::{New, Running, Stream, StreamReport};

/// The README's Rust example, compiled as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    /// Every small enum a config file names reads back what it writes, any case.
    #[test]
    fn names_round_trip() {
        use crate::config::{HwKind, PlaylistMode, Reconnect};
        use crate::{ErrorKind, StreamState, VideoCodec};
        use std::fmt::Display;
        use std::str::FromStr;
        fn round_trip<T: Display + FromStr + PartialEq + std::fmt::Debug>(all: &[T])
        where
            T::Err: std::fmt::Debug,
        {
            for v in all {
                let name = v.to_string();
                assert_eq!(&name.parse::<T>().unwrap(), v);
                assert_eq!(&name.to_uppercase().parse::<T>().unwrap(), v);
            }
            assert!("no-such-name".parse::<T>().is_err());
        }
        round_trip(&[HwKind::Cuda, HwKind::Vaapi, HwKind::Qsv]);
        round_trip(&[VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1]);
        round_trip(&[crate::Container::MpegTs, crate::Container::Fmp4]);
        round_trip(&[PlaylistMode::Auto, PlaylistMode::Vod, PlaylistMode::Live]);
        round_trip(&[Reconnect::Auto, Reconnect::Always, Reconnect::Never]);
        round_trip(&StreamState::ALL);
        round_trip(&[ErrorKind::SourceIo, ErrorKind::UnknownStream]);
        assert_eq!(PlaylistMode::Vod.to_string(), "vod");
        assert_eq!(StreamState::Running.to_string(), "Running");
        let e = "cuda2".parse::<HwKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"unknown hardware kind "cuda2": one of cuda, vaapi, qsv"#
        );
        let dev: crate::config::HwDevice = "cuda:0".parse().unwrap();
        assert_eq!(
            (dev.kind, dev.to_string()),
            (HwKind::Cuda, "cuda:0".to_owned())
        );
        assert!("gpu:0".parse::<crate::config::HwDevice>().is_err());
    }

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<crate::Manager>();
        send_sync::<crate::Stream<crate::Running>>();
        send_sync::<crate::Stream<crate::New>>();
        send_sync::<crate::Error>();
    }
}

//! What the decode loop feeds: the renditions directly, or a live output's clock on its
//! own thread (`sv-<id>-clock`), and that thread's start and end.

use std::thread::{Scope, ScopedJoinHandle};
use std::time::SystemTime;

use crossbeam_channel::Sender;

use super::audio::AudioChain;
use super::clock::{ClockTiming, LiveClock};
use super::control::{Ending, InputWatch, Signals};
use super::fanout::{send, FanOut};
use super::inputs::Inputs;
use super::session::Session;
use crate::config::{Filler, StreamConfig};
use crate::error::Error;
use crate::ffi::{Frame, Packet};
use crate::redact::redact_url;
use crate::stats::StatsCell;

/// What the decode loop sends the clock.
pub(crate) enum ClockMsg {
    /// A decoded, upright picture with its pts on the worker's timeline, and when its
    /// packet was read.
    Picture { frame: Frame, read_at: SystemTime },
    /// An AAC packet of encoder `encoder`, on the worker's timeline.
    Audio { encoder: usize, packet: Packet },
    /// The source is done.
    End { endlist: bool },
}

/// Where the decode loop's output goes: straight to the renditions, or through the clock.
pub(crate) enum Feed {
    Direct(FanOut),
    Clocked(Sender<ClockMsg>),
}

impl Feed {
    /// A picture on the worker's timeline; `read_at` is asked only when it is needed.
    pub fn picture(
        &self,
        frame: Frame,
        starts_segment: bool,
        read_at: impl FnOnce() -> SystemTime,
        signals: &Signals,
    ) -> Result<(), Error> {
        match self {
            Feed::Direct(fan) => {
                let read_at = starts_segment.then(read_at);
                fan.picture(&frame, starts_segment, read_at, false, signals)
            }
            Feed::Clocked(tx) => {
                let msg = ClockMsg::Picture {
                    frame,
                    read_at: read_at(),
                };
                send(tx, msg, signals)
            }
        }
    }

    /// An AAC packet of encoder `encoder`.
    pub fn audio(&self, encoder: usize, packet: Packet, signals: &Signals) -> Result<(), Error> {
        match self {
            Feed::Direct(fan) => fan.audio(encoder, packet, signals),
            Feed::Clocked(tx) => send(tx, ClockMsg::Audio { encoder, packet }, signals),
        }
    }

    /// The source is done.
    pub fn end(&self, endlist: bool, signals: &Signals) -> Result<(), Error> {
        match self {
            Feed::Direct(fan) => fan.end(endlist, signals),
            Feed::Clocked(tx) => send(tx, ClockMsg::End { endlist }, signals),
        }
    }
}

/// Messages queued for the live clock before the decoder waits (pictures and AAC packets).
const CLOCK_QUEUE: usize = 32;

pub(crate) type ClockHandle<'scope> = ScopedJoinHandle<'scope, Result<(), Error>>;

/// Starts the live clock's thread (`sv-<stream>-clock`) and returns its queue.
pub(crate) fn spawn_clock<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    config: &StreamConfig,
    clock: LiveClock<'env>,
) -> Result<(crossbeam_channel::Sender<ClockMsg>, ClockHandle<'scope>), Error> {
    let (tx, rx) = crossbeam_channel::bounded(CLOCK_QUEUE);
    let spawned = std::thread::Builder::new()
        .name(format!("sv-{}-clock", config.id()))
        .spawn_scoped(scope, move || clock.run(rx));
    match spawned {
        Ok(h) => Ok((tx, h)),
        Err(e) => Err(Error::Internal {
            message: format!("spawning the live clock's thread: {e}"),
        }),
    }
}

/// The decode loop's result with the live clock's: the clock's own failure is the root
/// cause of the `Aborted` the decode loop saw when the clock hung up.
pub(crate) fn with_clock(
    told: Result<Ending, Error>,
    clock: Option<Result<(), Error>>,
) -> Result<Ending, Error> {
    match clock {
        Some(Err(e)) if !matches!(e, Error::Aborted { .. }) => Err(e),
        _ => told,
    }
}

/// What a live run adds around the decode loop: its backups warmed up, and with a filler,
/// the live clock between the decode loop and the renditions.
pub(crate) struct Live<'a> {
    pub filler: Option<&'a Filler>,
    pub slate: Option<Frame>,
    pub timing: ClockTiming,
    pub audio: Option<&'a AudioChain>,
}

/// The decode loop's feed, the live clock's thread, and the inputs of a source with backups.
type Started<'scope, 'env> = (
    Feed,
    Option<ClockHandle<'scope>>,
    Option<Inputs<'scope, 'env>>,
);

impl Live<'_> {
    /// Starts what `session` (the first) needs in `scope`, feeding `fan`.
    pub fn start<'scope, 'env>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        config: &StreamConfig,
        session: &Session,
        fan: FanOut,
        (signals, stats, watch): (&'env Signals, &'env StatsCell, &'env dyn InputWatch),
    ) -> Result<Started<'scope, 'env>, Error> {
        let inputs = if session.live_source {
            let loss_after = self.filler.map_or(Filler::default().after, |f| f.after);
            Inputs::start(scope, config, signals, loss_after, session.input_index)?
        } else {
            None
        };
        if let Some(i) = &inputs {
            stats.set_inputs(i.counters.clone());
        }
        let Some(filler) = self.filler else {
            return Ok((Feed::Direct(fan), None, inputs));
        };
        let lanes = self.audio.map_or(Ok(Vec::new()), AudioChain::clock_lanes)?;
        let names = (
            config.id().to_owned(),
            redact_url(config.source()).into_owned(),
        );
        let clock = LiveClock::new(
            fan,
            filler.clone(),
            self.slate,
            self.timing,
            lanes,
            (signals, stats, watch),
            names,
        )
        // With backups the decode loop says when every input is gone.
        .reporting(inputs.is_none());
        let (tx, handle) = spawn_clock(scope, config, clock)?;
        Ok((Feed::Clocked(tx), Some(handle), inputs))
    }
}

//! A stream's events as a channel, beside the callback hooks: for applications that would
//! rather receive (`recv`, `select!`, an iterator) than be called.
//!
//! Overflow policy: the channel is bounded. When the receiver falls behind and the channel
//! is full, the oldest events are dropped to make room, and once the receiver has caught up
//! a [`StreamEvent::Lagged`] saying how many goes in before the next event: the newest
//! events, the terminal state change among them, always arrive, and a stream never waits for
//! its receiver. The channel disconnects
//! once the stream has ended and its last events are in it, so `for ev in rx` ends.
//!
//! [`StreamEvent`] and [`event_channel`] are also at the crate root; the defaults
//! [`Stream::events`](crate::Stream::events) uses are here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::hooks::{Hooks, OutputEvent, StateEvent, StatsEvent};

/// Events an event channel holds before the oldest are dropped
/// ([`Stream::events`](crate::Stream::events)).
pub const DEFAULT_EVENT_CAPACITY: usize = 256;

/// How often an event channel gets a statistics event by default.
pub const DEFAULT_STATS_EVERY: Duration = Duration::from_secs(1);

/// Something that happened to a stream.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "event", content = "data", rename_all = "snake_case")
)]
#[non_exhaustive]
// `Stats` is the largest and the most frequent event: boxing it would add an allocation to
// most events to shrink the rare ones, in a channel of a few hundred at most.
#[allow(clippy::large_enum_variant)]
pub enum StreamEvent {
    /// The stream changed state.
    State(StateEvent),
    /// A statistics snapshot (periodic, and one after the end).
    Stats(StatsEvent),
    /// A segment or playlist was written, or a segment deleted.
    Output(OutputEvent),
    /// The receiver fell behind: this many older events were dropped since the last note.
    Lagged(u64),
}

/// The sending side: one per channel, called from the stream's hook thread only.
struct EventSink {
    tx: Sender<StreamEvent>,
    /// A receiver of the same channel, to drop the oldest event when it is full.
    oldest: Receiver<StreamEvent>,
    /// Events dropped since the last `Lagged` went in.
    dropped: AtomicU64,
}

impl EventSink {
    fn push(&self, event: StreamEvent) {
        let pending = self.dropped.load(Ordering::Relaxed);
        let cap = self.tx.capacity().unwrap_or(usize::MAX);
        // The note goes in once the receiver has made room for it and the event (a note
        // that would itself push events out would only lose more).
        if pending > 0 && self.tx.len() + 2 <= cap {
            self.dropped.store(0, Ordering::Relaxed);
            self.put(StreamEvent::Lagged(pending));
        }
        self.put(event);
    }

    /// Sends, dropping the oldest event while the channel is full (a receiver that went
    /// away ends it all quietly).
    fn put(&self, mut event: StreamEvent) {
        loop {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    event = back;
                    if self.oldest.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Hooks that feed a new bounded channel of `capacity` events (statistics every
/// `stats_every`, at least 10 ms), and its receiver: for
/// [`Manager::create_stream_with`](crate::Manager::create_stream_with), or anywhere hooks
/// go. The channel follows the overflow policy above and disconnects once every stream the
/// hooks were attached to has ended (and, for a manager, left it).
pub fn event_channel(capacity: usize, stats_every: Duration) -> (Hooks, Receiver<StreamEvent>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(2));
    let sink = Arc::new(EventSink {
        tx,
        oldest: rx.clone(),
        dropped: AtomicU64::new(0),
    });
    let state_sink = sink.clone();
    let output_sink = sink.clone();
    let hooks = Hooks::new()
        .on_state_change(move |ev| state_sink.push(StreamEvent::State(ev.clone())))
        .on_output(move |ev| output_sink.push(StreamEvent::Output(ev.clone())))
        .on_stats(stats_every, move |ev| {
            sink.push(StreamEvent::Stats(ev.clone()))
        });
    (hooks, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag_of(ev: &StreamEvent) -> Option<u64> {
        match ev {
            StreamEvent::Lagged(n) => Some(*n),
            _ => None,
        }
    }

    #[test]
    fn a_full_channel_drops_the_oldest_and_says_how_many() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let sink = EventSink {
            tx,
            oldest: rx.clone(),
            dropped: AtomicU64::new(0),
        };
        for n in 0..10 {
            sink.push(StreamEvent::Lagged(1000 + n));
        }
        let got: Vec<u64> = rx.try_iter().filter_map(|e| lag_of(&e)).collect();
        assert_eq!(got, [1006, 1007, 1008, 1009], "the newest are kept");
        // The next event comes after a note of what was dropped.
        sink.push(StreamEvent::Lagged(2000));
        let got: Vec<u64> = rx.try_iter().filter_map(|e| lag_of(&e)).collect();
        assert_eq!(got, [6, 2000]);
    }
}

//! The fan-out from the decode thread to the rendition threads: typed queues (a video rung
//! takes pictures and, in MPEG-TS, the audio it muxes; an audio rendition takes AAC packets
//! only), and a routing table built once from what each rendition carries. Every queue is
//! bounded: a slow rendition holds the decoder back rather than grow memory.

use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender};

use super::control::Signals;
use crate::error::Error;
use crate::ffi::{Frame, Packet};

/// What a video rung's thread receives.
pub(crate) enum RungMsg {
    /// A decoded picture (a shared reference) with its pts in the encoder time base,
    /// whether it starts a segment (a keyframe every rung places at the same pts), and for
    /// a segment start, when its packet was read (the segment's program date-time).
    Picture {
        frame: Frame,
        force_key: bool,
        read_at: Option<std::time::SystemTime>,
        /// The same picture as the previous one (the live clock repeating it): a rung
        /// sends its scaled copy again instead of scaling it again.
        same_picture: bool,
    },
    /// An encoded AAC packet to mux beside the video (MPEG-TS), in its encoder's time base.
    Audio(Packet),
    /// The source is done: drain, finish the last segment, and (`endlist`) write ENDLIST.
    End { endlist: bool },
}

/// What an audio rendition's thread receives.
pub(crate) enum AudioMsg {
    /// An encoded AAC packet, in its encoder's time base.
    Packet(Packet),
    /// The source is done: finish the last segment, and (`endlist`) write ENDLIST.
    End { endlist: bool },
}

/// Where an audio encoder's packets go.
#[derive(Debug, Default, Clone, PartialEq)]
struct AudioRoute {
    /// The rungs that mux them (MPEG-TS).
    rungs: Vec<usize>,
    /// The audio rendition that carries them (fMP4).
    rendition: Option<usize>,
}

/// The decode thread's end of every queue, and the routing table.
pub(crate) struct FanOut {
    rungs: Vec<Sender<RungMsg>>,
    renditions: Vec<Sender<AudioMsg>>,
    /// By audio encoder.
    routes: Vec<AudioRoute>,
}

/// The rendition threads' ends, in the order their renditions were given.
pub(crate) struct Inboxes {
    pub rungs: Vec<Receiver<RungMsg>>,
    pub renditions: Vec<Receiver<AudioMsg>>,
}

impl FanOut {
    /// Queues of `depth` messages for rungs that each mux the audio encoder
    /// `rung_audio[i]` (if any), and for audio renditions that each carry the encoder
    /// `rendition_audio[j]`.
    pub fn new(
        rung_audio: &[Option<usize>],
        rendition_audio: &[usize],
        depth: usize,
    ) -> (Self, Inboxes) {
        let (rungs, rung_rx) = rung_audio.iter().map(|_| bounded(depth)).unzip();
        let (renditions, rendition_rx) = rendition_audio.iter().map(|_| bounded(depth)).unzip();
        let encoders = rung_audio
            .iter()
            .flatten()
            .chain(rendition_audio)
            .max()
            .map_or(0, |m| m + 1);
        let mut routes = vec![AudioRoute::default(); encoders];
        for (rung, enc) in rung_audio.iter().enumerate() {
            if let Some(enc) = enc {
                routes[*enc].rungs.push(rung);
            }
        }
        for (rendition, &enc) in rendition_audio.iter().enumerate() {
            routes[enc].rendition = Some(rendition);
        }
        let fan = Self {
            rungs,
            renditions,
            routes,
        };
        let inboxes = Inboxes {
            rungs: rung_rx,
            renditions: rendition_rx,
        };
        (fan, inboxes)
    }

    /// Hands every rung a reference to `frame` (`same_picture`: the previous picture again).
    pub fn picture(
        &self,
        frame: &Frame,
        force_key: bool,
        read_at: Option<std::time::SystemTime>,
        same_picture: bool,
        signals: &Signals,
    ) -> Result<(), Error> {
        for tx in &self.rungs {
            let shared = frame
                .share()
                .map_err(|e| Error::codec("frame reference", e))?;
            let msg = RungMsg::Picture {
                frame: shared,
                force_key,
                read_at,
                same_picture,
            };
            send(tx, msg, signals)?;
        }
        Ok(())
    }

    /// Hands a packet of audio encoder `encoder` to every rendition that takes it (shared
    /// references; the last one gets the packet itself).
    pub fn audio(&self, encoder: usize, packet: Packet, signals: &Signals) -> Result<(), Error> {
        let Some(route) = self.routes.get(encoder) else {
            return Ok(());
        };
        let count = route.rungs.len() + usize::from(route.rendition.is_some());
        // Shared references for all but the last taker, which gets the packet itself.
        let mut copies = Vec::with_capacity(count);
        for _ in 1..count {
            let copy = packet
                .share()
                .map_err(|e| Error::codec("packet reference", e))?;
            copies.push(copy);
        }
        copies.push(packet);
        let mut copies = copies.into_iter();
        for (&rung, p) in route.rungs.iter().zip(&mut copies) {
            send(&self.rungs[rung], RungMsg::Audio(p), signals)?;
        }
        if let (Some(r), Some(p)) = (route.rendition, copies.next()) {
            send(&self.renditions[r], AudioMsg::Packet(p), signals)?;
        }
        Ok(())
    }

    /// Tells every rendition the stream is over (they drain and write their last segment).
    pub fn end(&self, endlist: bool, signals: &Signals) -> Result<(), Error> {
        let mut all_told = Ok(());
        // A rendition that already failed has hung up: its own error is collected when it
        // is joined; an abort meanwhile makes the whole run aborted.
        for tx in &self.rungs {
            if let Err(e) = send(tx, RungMsg::End { endlist }, signals) {
                all_told = Err(e);
            }
        }
        for tx in &self.renditions {
            if let Err(e) = send(tx, AudioMsg::End { endlist }, signals) {
                all_told = Err(e);
            }
        }
        all_told
    }
}

/// Blocking send with back-pressure, abandoned on abort or when the rendition is gone.
pub(crate) fn send<T>(tx: &Sender<T>, mut msg: T, signals: &Signals) -> Result<(), Error> {
    loop {
        match tx.send_timeout(msg, Duration::from_millis(50)) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Timeout(m)) => {
                if signals.abort_requested() {
                    return Err(Error::aborted());
                }
                msg = m;
            }
            // The rendition failed; its own error explains why.
            Err(SendTimeoutError::Disconnected(_)) => return Err(Error::aborted()),
        }
    }
}

/// The next message for a rendition thread; `Aborted` once an abort is requested, or when
/// the decode thread dropped the queue without `End` (it is aborting or failing).
pub(crate) fn next<T>(rx: &Receiver<T>, signals: &Signals) -> Result<T, Error> {
    if signals.abort_requested() {
        return Err(Error::aborted());
    }
    rx.recv().map_err(|_| Error::aborted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_table_sends_each_encoder_where_it_is_carried() {
        // MPEG-TS: rungs 0 and 2 mux encoder 0, rung 1 muxes encoder 1, no renditions.
        let (fan, _) = FanOut::new(&[Some(0), Some(1), Some(0)], &[], 1);
        let rungs: Vec<_> = fan.routes.iter().map(|r| r.rungs.clone()).collect();
        assert_eq!(rungs, [vec![0, 2], vec![1]]);
        // fMP4: no rung muxes audio; each encoder has its rendition.
        let (fan, inboxes) = FanOut::new(&[None, None], &[0, 1], 1);
        let renditions: Vec<_> = fan.routes.iter().map(|r| r.rendition).collect();
        assert_eq!(renditions, [Some(0), Some(1)]);
        assert_eq!((inboxes.rungs.len(), inboxes.renditions.len()), (2, 2));
        // No audio at all.
        let (fan, _) = FanOut::new(&[None], &[], 1);
        assert!(fan.routes.is_empty());
    }
}

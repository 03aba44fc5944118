//! Audio, done once for the whole ladder: decode, resample to stereo, AAC-encode once per
//! distinct bitrate (once in total for the standard ladder), hand packets to the variants.

use std::time::Duration;

use super::errors::{decoder_error, encoder_error};
use crate::error::Error;
use crate::ffi::{
    rescale, AudioEncoderSettings, CodecContext, Dictionary, Frame, InputContext, Packet, Rational,
    Resampler, Step, StreamInfo, NO_PTS,
};

/// Audio may stray this far (seconds) from its timestamps before it is put back on them.
pub(crate) const MAX_AUDIO_DRIFT: f64 = 0.2;

/// Sample rates AAC-LC carries; anything else is resampled to 48 kHz.
const AAC_RATES: [i32; 9] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,
];

pub(crate) struct AudioEncoder {
    pub bit_rate: u64,
    pub ctx: CodecContext,
    /// One frame of silence as this encoder codes it (the input-loss filler repeats it).
    pub silence: Packet,
}

pub(crate) struct AudioChain {
    /// The current source's decoder; replaced on reconnect, `None` while the source has no
    /// audio. The encoders and their timeline persist across sources.
    decoder: Option<CodecContext>,
    in_tb: Rational,
    resampler: Option<Resampler>,
    pub encoders: Vec<AudioEncoder>,
    frame_size: i32,
    next_pts: Option<i64>,
    /// A drift beyond this, seconds, is a source jump the video timeline absorbs.
    jump: f64,
    frame: Frame,
    packet: Packet,
}

impl AudioChain {
    /// Opens one AAC encoder per distinct bitrate in `bit_rates`, at the source's sample
    /// rate when AAC carries it.
    /// `global_header`: the encoders' configuration goes in their extradata (fMP4).
    pub fn new(
        info: &StreamInfo,
        bit_rates: &[u64],
        jump: Duration,
        global_header: bool,
    ) -> Result<Self, Error> {
        let sample_rate = if AAC_RATES.contains(&info.sample_rate) {
            info.sample_rate
        } else {
            48000
        };
        let mut distinct: Vec<u64> = bit_rates.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let encoders = distinct
            .into_iter()
            .map(|bit_rate| {
                let settings = AudioEncoderSettings {
                    codec: "aac".into(),
                    sample_rate,
                    channels: 2,
                    bit_rate: bit_rate as i64,
                    global_header,
                };
                let open = || {
                    CodecContext::open_audio_encoder(&settings)
                        .map_err(|e| encoder_error("aac", "audio", e))
                };
                let ctx = open()?;
                let silence = silent_packet(open()?)?;
                Ok(AudioEncoder {
                    bit_rate,
                    ctx,
                    silence,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let frame_size = encoders[0].ctx.frame_size().max(1024);
        Ok(Self {
            decoder: None,
            in_tb: info.time_base,
            resampler: None,
            encoders,
            frame_size,
            next_pts: None,
            jump: jump.as_secs_f64(),
            frame: Frame::new(),
            packet: Packet::new(),
        })
    }

    /// Decodes the audio of a (new) source from now on; `None` when it has none.
    pub fn attach(&mut self, source: Option<(&InputContext, &StreamInfo)>) -> Result<(), Error> {
        // The resampler (and the partial frame in its buffer) carries over; it is rebuilt
        // only if the new source's audio has another format.
        self.decoder = None;
        if let Some((input, info)) = source {
            let dec = input
                .open_decoder(info.index, Dictionary::new(), None)
                .map_err(|e| decoder_error(info, e))?;
            self.decoder = Some(dec);
            self.in_tb = info.time_base;
        }
        Ok(())
    }

    /// Moves the audio timeline forward to at least `pts_seconds` (after a source restart,
    /// so audio resumes alongside the video).
    pub fn resync(&mut self, pts_seconds: f64) {
        if let Some(enc) = self.encoders.first() {
            let at = (pts_seconds * f64::from(enc.ctx.sample_rate())) as i64;
            self.next_pts = Some(self.next_pts.map_or(at, |n| n.max(at)));
        }
    }

    /// Each encoder as the live clock sees it (rate, frame size, its frame of silence).
    pub fn clock_lanes(&self) -> Result<Vec<super::clock::AudioLane>, Error> {
        let lane = |e: &AudioEncoder| {
            let silence = e
                .silence
                .share()
                .map_err(|err| Error::codec("packet reference", err))?;
            let rate = e.ctx.sample_rate();
            Ok(super::clock::AudioLane::new(
                rate,
                i64::from(self.frame_size),
                silence,
            ))
        };
        self.encoders.iter().map(lane).collect()
    }

    /// The index of the encoder for a bitrate.
    pub fn encoder_for(&self, bit_rate: u64) -> usize {
        self.encoders
            .iter()
            .position(|e| e.bit_rate == bit_rate)
            .expect("every variant bitrate has an encoder")
    }

    /// Feeds one packet (or `None` at the end, which drains everything) and hands every
    /// encoded packet to `out(encoder_index, packet)`. Returns the decoded frame count and
    /// whether the packet was corrupt (skipped, not fatal).
    ///
    /// `timeline`: seconds to add to this source's audio timestamps to place them on the
    /// output timeline (the video's offset), or `None` while that is not known yet (right
    /// after a source restart). Audio that drifts from it by more than [`MAX_AUDIO_DRIFT`]
    /// is put back: a gap (lost packets) moves the audio clock forward; audio that runs
    /// ahead of its timestamps is dropped until they catch up.
    pub fn push(
        &mut self,
        pkt: Option<&Packet>,
        timeline: Option<f64>,
        out: &mut dyn FnMut(usize, Packet) -> Result<(), Error>,
    ) -> Result<(u64, bool), Error> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok((0, false));
        };
        let mut corrupt = false;
        match decoder.send_packet(pkt) {
            Ok(_) => {}
            Err(e) if e.is_invalid_data() => corrupt = true,
            Err(e) => return Err(Error::codec("audio decoder", e)),
        }
        let mut decoded = 0;
        loop {
            let decoder = self.decoder.as_mut().expect("checked above");
            match decoder.receive_frame(&mut self.frame) {
                Ok(Step::Ready(())) => {}
                Ok(Step::Again | Step::Eof) => break,
                Err(e) if e.is_invalid_data() => {
                    corrupt = true;
                    continue;
                }
                Err(e) => return Err(Error::codec("audio decoder", e)),
            }
            decoded += 1;
            let frame = std::mem::take(&mut self.frame);
            if !self.keep_on_timeline(&frame, timeline) {
                continue;
            }
            self.resample(Some(&frame))?;
            self.encode_ready(false, out)?;
        }
        if pkt.is_none() {
            // The source is done: the resampler's delay joins the buffer; a partial frame
            // waits for the next source or for `finish`.
            self.resample(None)?;
            self.encode_ready(false, out)?;
        }
        Ok((decoded, corrupt))
    }

    /// Re-anchors the audio clock when a frame's timestamp and the samples counted so far
    /// disagree by more than [`MAX_AUDIO_DRIFT`]; false when the frame is to be dropped.
    fn keep_on_timeline(&mut self, f: &Frame, timeline: Option<f64>) -> bool {
        let (Some(offset), Some(next)) = (timeline, self.next_pts) else {
            return true;
        };
        let pts = f.best_effort_pts();
        if pts == NO_PTS {
            return true;
        }
        let rate = f64::from(self.encoders[0].ctx.sample_rate());
        let buffered = f64::from(self.resampler.as_ref().map_or(0, Resampler::buffered));
        let expected = pts as f64 * self.in_tb.as_f64() + offset;
        let drift = expected - (next as f64 + buffered) / rate;
        if drift.abs() > self.jump {
            // The source jumped (a splice or restart): the video's next frame moves the
            // offset; until then the audio stays contiguous rather than leaving a hole.
            return true;
        }
        if drift > MAX_AUDIO_DRIFT {
            log::debug!("audio gap of {drift:.3} s; moving the audio clock");
            self.next_pts = Some(next + (drift * rate).round() as i64);
        } else if drift < -MAX_AUDIO_DRIFT {
            return false;
        }
        true
    }

    /// The stream is done: encode the short tail and drain every encoder.
    pub fn flush(
        &mut self,
        out: &mut dyn FnMut(usize, Packet) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.encode_ready(true, out)?;
        for i in 0..self.encoders.len() {
            self.encoders[i]
                .ctx
                .send_frame(None)
                .map_err(|e| Error::codec("aac encoder", e))?;
            self.drain(i, out)?;
        }
        Ok(())
    }

    fn resample(&mut self, frame: Option<&Frame>) -> Result<(), Error> {
        let codec_err = |e| Error::codec("audio resampler", e);
        if let Some(f) = frame {
            if self.next_pts.is_none() {
                let pts = f.best_effort_pts();
                let rate = Rational::new(1, self.encoders[0].ctx.sample_rate());
                self.next_pts = Some(if pts == NO_PTS {
                    0
                } else {
                    rescale(pts, self.in_tb, rate)
                });
            }
            if !self.resampler.as_ref().is_some_and(|r| r.accepts(f)) {
                // First frame, or the source changed format mid-stream: rebuild (buffered
                // samples of the old format are dropped; the gap is a few ms).
                self.resampler = Some(Resampler::new(f, &self.encoders[0].ctx).map_err(codec_err)?);
            }
        }
        match self.resampler.as_mut() {
            Some(r) => r.push(frame).map_err(codec_err),
            None => Ok(()),
        }
    }

    /// Encodes every full frame buffered (and the short tail when `flush`).
    fn encode_ready(
        &mut self,
        flush: bool,
        out: &mut dyn FnMut(usize, Packet) -> Result<(), Error>,
    ) -> Result<(), Error> {
        loop {
            let Some(r) = self.resampler.as_mut() else {
                return Ok(());
            };
            let buffered = r.buffered();
            if buffered == 0 || (buffered < self.frame_size && !flush) {
                return Ok(());
            }
            let mut frame = r
                .pop(self.frame_size)
                .map_err(|e| Error::codec("audio fifo", e))?;
            let pts = self.next_pts.unwrap_or(0);
            frame.set_pts(pts);
            self.next_pts = Some(pts + i64::from(frame.nb_samples()));
            for i in 0..self.encoders.len() {
                self.encoders[i]
                    .ctx
                    .send_frame(Some(&frame))
                    .map_err(|e| Error::codec("aac encoder", e))?;
                self.drain(i, out)?;
            }
        }
    }

    fn drain(
        &mut self,
        i: usize,
        out: &mut dyn FnMut(usize, Packet) -> Result<(), Error>,
    ) -> Result<(), Error> {
        loop {
            match self.encoders[i].ctx.receive_packet(&mut self.packet) {
                Ok(Step::Ready(())) => out(i, std::mem::take(&mut self.packet))?,
                Ok(Step::Again | Step::Eof) => return Ok(()),
                Err(e) => return Err(Error::codec("aac encoder", e)),
            }
        }
    }
}

/// One frame of silence coded by `twin` (an encoder set up like the one it stands in for, so
/// the packet fits that encoder's stream): a packet from past the encoder's priming, its
/// duration one frame.
fn silent_packet(mut twin: CodecContext) -> Result<Packet, Error> {
    let size = twin.frame_size().max(1024);
    let codec_err = |e| Error::codec("aac encoder (silence)", e);
    let mut last = None;
    let mut packet = Packet::new();
    for _ in 0..4 {
        let frame = twin.silent_frame(size).map_err(codec_err)?;
        twin.send_frame(Some(&frame)).map_err(codec_err)?;
        while let Step::Ready(()) = twin.receive_packet(&mut packet).map_err(codec_err)? {
            last = Some(std::mem::take(&mut packet));
        }
    }
    let mut silence = last.ok_or_else(|| Error::Internal {
        message: "the AAC encoder coded no packet from four frames of silence".into(),
    })?;
    silence.set_duration(i64::from(size));
    Ok(silence)
}

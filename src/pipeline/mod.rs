//! The media pipeline: one source decoded once, every variant scaled and encoded on its own
//! thread, audio encoded once, HLS out. Safe Rust over `ffi`. It knows nothing about the
//! lifecycle beyond its contract in [`control`]: it obeys [`Signals`], reports
//! [`PipelineEvent`]s, and lets a [`Supervisor`] decide how to (re)connect the source.

mod audio;
mod clock;
mod control;
mod decode;
mod errors;
mod fanout;
mod feed;
mod guard;
mod inputs;
mod memory;
mod plan;
mod reader;
mod rendition;
mod rung;
mod session;
mod slate;
mod timeline;
mod upright;
mod wall;

pub(crate) use control::{Ending, InputWatch, PipelineEvent, Reopened, Signals, Supervisor};
pub(crate) use memory::stream_memory;
pub(crate) use plan::planned_from_hint;
pub(crate) use session::{Session, SourceOpener};

use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crate::config::{Container, SourceHint, StreamConfig};
use crate::error::{Error, ErrorKind};
use crate::ffi::{CodecContext, Interrupt, Rational, AVERROR_EXIT};
use crate::output::{
    self, audio_rendition, AudioGroup, DashWriter, DeleteInbox, MasterPlaylist, MeasuredBitrate,
    Media, MediaOutput, OutputStart, Publisher, Segmenter,
};
use crate::sink::SegmentSink;
use crate::stats::StatsCell;
use audio::AudioChain;
use decode::DecodeLoop;
use errors::encoder_error;
use fanout::FanOut;
use feed::{with_clock, Live};
use inputs::{failover, switch_back, Inputs};
use plan::RungPlan;
use rendition::AudioRendition;
use rung::{Rung, RungWorker};
use timeline::Timeline;

/// Opens the source on the calling thread (bounded by the config's I/O timeout), reads what
/// it is, and closes it: its upright picture size (its display matrix applied) and frame
/// rate, as a [`SourceHint`].
pub(crate) fn probe(config: &StreamConfig) -> Result<SourceHint, Error> {
    if !config.input().can_reopen() {
        return Err(Error::config(
            "source",
            "probing would consume the one-shot reader: declare the source with \
             StreamConfigBuilder::source_hint, or use Source::reader_factory",
        ));
    }
    let signals = Signals::new();
    let session = SourceOpener::new(config, &signals).open()?;
    let v = &session.video;
    let ((width, height), _) = plan::upright(v);
    Ok(SourceHint {
        width: width.max(0) as u32,
        height: height.max(0) as u32,
        frame_rate: plan::source_fps(v),
    })
}

/// Messages queued per rendition before the decoder waits (back-pressure, bounded memory).
const RENDITION_QUEUE: usize = 8;

/// Runs the whole pipeline on the calling thread (plus one scoped thread per variant):
/// connect, plan the ladder, open the encoders and outputs, then decode and fan out until
/// the source ends, a stop finishes, an abort lands, or something fails. Between sessions
/// the supervisor reconnects (or leaves the hardware device) per its policy.
pub(crate) fn run(
    config: &StreamConfig,
    signals: &Signals,
    stats: &StatsCell,
    supervisor: &mut dyn Supervisor,
    watch: &dyn InputWatch,
    output_events: Option<crossbeam_channel::Sender<crate::hooks::HookMsg>>,
) -> Result<Ending, Error> {
    let mut opener = SourceOpener::new(config, signals);
    let connected = supervisor.connect(&mut opener, None).inspect_err(|_| {
        // Nothing of this run reached the output: an earlier run's master must not go on
        // claiming a ladder nobody writes. (A live restart that connects carries it on.)
        output::remove_master(config.sink().as_ref());
    });
    let Some((session, _)) = connected? else {
        return Ok(Ending::Stopped);
    };
    if !session.live {
        let known = session.input.duration_us().unwrap_or(0).max(0) as u64;
        stats
            .source_duration_us
            .store(known, std::sync::atomic::Ordering::Relaxed);
    }
    // A live source's filler (never a file's, whatever its playlist): its slate decoded
    // before any output is touched.
    let filler = config.input_loss().filler().filter(|_| session.live_source);
    let slate = match filler.map(|f| &f.then) {
        Some(crate::config::FillPicture::Slate(s)) => Some(slate::decode_still(s.bytes())?),
        _ => None,
    };
    let plan = plan::plan(config, &session.video);
    let planned = plan::summary(&session.video, session.audio.is_some(), &plan);
    supervisor.report(PipelineEvent::Planned(planned));
    let fmp4 = config.profile().container == Container::Fmp4;
    let mut audio = open_audio(&session, &plan, config.profile().timestamp_jump, fmp4)?;
    let outputs = open_outputs(config, &session, &plan, audio.as_ref(), signals, stats);
    let (opened, publisher) = outputs.map(|(o, p)| (o, p.with_events(output_events)))?;
    let timeline = Timeline::new(
        session.video.time_base,
        config.profile().segment_duration,
        plan::source_fps(&session.video),
        config.profile().timestamp_jump,
    );
    let outcome = std::thread::scope(|scope| {
        let (fan, handles) = spawn_renditions(scope, config, opened, signals, stats, &publisher)?;
        let live = Live {
            filler,
            slate,
            timing: timeline.clock_timing(),
            audio: audio.as_ref(),
        };
        let (feed, clock, mut inputs) =
            live.start(scope, config, &session, fan, (signals, stats, watch))?;
        let live_end_is_outage = supervisor.reconnects_live_end();
        let mut decode =
            DecodeLoop::new(config, signals, stats, &feed, timeline, live_end_is_outage);
        let read = decode_with_recovery(
            &mut decode,
            session,
            &mut opener,
            supervisor,
            &mut audio,
            inputs.as_mut(),
            &publisher,
        );
        let mut finish = |endlist: bool| {
            if let Some(a) = audio.as_mut() {
                decode.flush_audio(a)?;
            }
            decode.end_variants(endlist)
        };
        let told = match read {
            Ok(end) => finish(true).map(|()| end),
            // The source is gone for good (the recovery gave up): what was decoded is still
            // encoded and listed, without ENDLIST, so that a restart may continue it.
            Err(e) if e.kind() == ErrorKind::SourceIo => finish(false).and(Err(e)),
            Err(e) => Err(e),
        };
        drop(decode);
        drop(feed);
        let told = with_clock(told, clock.map(join_scoped));
        let joined = handles.into_iter().map(join_scoped);
        let variants = joined
            .map(|r| r.map_err(|e| cut_by_abort(e, signals)))
            .collect();
        let (ending, measured) = overall_result(told, variants)?;
        // Before the scope joins the delete thread, which may be in a slow delete: the
        // final master and manifest never wait for it.
        publisher.finish(&measured, stats)?;
        Ok(ending)
    });
    drop(audio);
    outcome
}

/// Opens every rendition (video rungs, then in fMP4 the audio renditions) where its output
/// starts, and the publisher over them.
fn open_outputs(
    config: &StreamConfig,
    session: &Session,
    plan: &[RungPlan],
    audio: Option<&AudioChain>,
    signals: &Signals,
    stats: &StatsCell,
) -> Result<(Opened, Publisher), Error> {
    let fmp4 = config.profile().container == Container::Fmp4;
    // fMP4: one track per file, so the audio is a rendition of its own per encoder.
    let audio_names: Vec<String> = match audio.filter(|_| fmp4) {
        Some(a) => a
            .encoders
            .iter()
            .map(|e| audio_rendition(e.bit_rate))
            .collect(),
        None => Vec::new(),
    };
    let names = plan.iter().map(|r| r.profile.name.as_str());
    let names = names.chain(audio_names.iter().map(String::as_str));
    let sink = config.sink().clone();
    let starts = output::prepare(&*sink, names, session.live, config.profile().container)?;
    // A live run that carries on the earlier run's playlists carries on its manifest too.
    let carries_on = starts.iter().any(|s| s.carried.is_some());
    let outputs = Outputs {
        starts,
        interrupt: signals.output_interrupt(),
        sink: sink.clone(),
    };
    let opened = open_rungs(config, plan, outputs, session, audio, stats)?;
    let shape = Shape {
        plan,
        opened: &opened,
        audio,
        live: session.live,
        carries_on,
    };
    let publisher = publisher(config, sink, &shape);
    Ok((opened, publisher))
}

/// One AAC encoder per distinct audio bitrate of the ladder, when the source has audio.
fn open_audio(
    session: &Session,
    plan: &[RungPlan],
    jump: std::time::Duration,
    global_header: bool,
) -> Result<Option<AudioChain>, Error> {
    let Some(info) = &session.audio else {
        return Ok(None);
    };
    let rates: Vec<u64> = plan.iter().map(|p| p.profile.audio_bitrate).collect();
    let mut chain = AudioChain::new(info, &rates, jump, global_header)?;
    chain.attach(session.audio_source())?;
    Ok(Some(chain))
}

/// Where each rendition's output starts (video rungs, then audio renditions), and the
/// interrupt its muxer polls.
struct Outputs<'a> {
    starts: Vec<OutputStart>,
    interrupt: &'a Arc<Interrupt>,
    sink: Arc<dyn SegmentSink>,
}

/// The opened renditions: video rungs (each knowing the audio encoder it muxes, if any)
/// and audio renditions (each knowing the encoder it carries).
struct Opened {
    rungs: Vec<Rung>,
    renditions: Vec<AudioRendition>,
    /// The deleting thread's end of the renditions' delete queue.
    deletes: DeleteInbox,
}

/// Opens every rung's video encoder and segmenter (with the rung's audio muxed in
/// MPEG-TS), and in fMP4 one audio-only rendition per audio encoder.
fn open_rungs(
    config: &StreamConfig,
    plan: &[RungPlan],
    outputs: Outputs,
    session: &Session,
    audio: Option<&AudioChain>,
    stats: &StatsCell,
) -> Result<Opened, Error> {
    let profile = config.profile();
    let fmp4 = profile.container == Container::Fmp4;
    let seg = profile.segment_duration.as_secs_f64();
    let (deletes, delete_inbox) = output::delete_queue();
    let output = |start, video_codec| MediaOutput {
        target_duration: seg,
        live_window: session.live.then_some(profile.live_window),
        start,
        interrupt: outputs.interrupt.clone(),
        sink: outputs.sink.clone(),
        container: profile.container,
        video_codec,
        deletes: deletes.clone(),
        part_duration: profile.part_duration.map(|p| p.as_secs_f64()),
    };
    let mut starts = outputs.starts.into_iter();
    let mut rungs = Vec::with_capacity(plan.len());
    for ((index, p), start) in plan.iter().enumerate().zip(starts.by_ref()) {
        let vp = p.profile;
        let codec = vp.codec.encoder_name();
        // Low-Latency HLS parts: encoders that hold no frame back.
        let low_latency = session.live && profile.part_duration.is_some();
        let settings = p.encoder_settings(session.video.time_base, seg, fmp4, low_latency);
        let encoder = CodecContext::open_video_encoder(&settings)
            .map_err(|e| encoder_error(codec, &format!("variant {}", vp.name), e))?;
        let route = audio
            .filter(|_| !fmp4)
            .map(|a| a.encoder_for(vp.audio_bitrate));
        let audio_enc = audio.zip(route).map(|(a, r)| &a.encoders[r].ctx);
        let segmenter = Segmenter::create(
            &vp.name,
            Some(&encoder),
            audio_enc,
            output(start, Some(vp.codec)),
        )
        .map_err(Error::from)?;
        let codecs = fmp4
            .then(|| output::video_codec_string(vp.codec, encoder.extradata()))
            .flatten();
        rungs.push(Rung {
            index,
            name: vp.name.clone(),
            codec: vp.codec,
            width: p.width,
            height: p.height,
            max_frame_rate: vp.max_frame_rate,
            frame_rate: p.frame_rate,
            encoder,
            segmenter,
            audio_encoder: route,
            audio_tb: audio_enc.map_or(Rational::new(0, 1), CodecContext::time_base),
            codecs,
            counters: stats.add_variant(&vp.name),
            #[cfg(feature = "fault-injection")]
            panic_after_frames: config.faults().panic_after_frames.filter(|_| index == 0),
        });
    }
    let mut renditions = Vec::new();
    let encoders = audio.filter(|_| fmp4).into_iter().flat_map(|a| &a.encoders);
    for ((encoder, enc), start) in encoders.enumerate().zip(starts) {
        let name = audio_rendition(enc.bit_rate);
        let segmenter = Segmenter::create(&name, None, Some(&enc.ctx), output(start, None))
            .map_err(Error::from)?;
        renditions.push(AudioRendition {
            index: plan.len() + renditions.len(),
            counters: stats.add_audio_rendition(&name),
            name,
            encoder,
            segmenter,
            first: None,
        });
    }
    Ok(Opened {
        rungs,
        renditions,
        deletes: delete_inbox,
    })
}

/// The ladder's shape, for the master and the DASH manifest.
struct Shape<'a> {
    plan: &'a [RungPlan<'a>],
    opened: &'a Opened,
    audio: Option<&'a AudioChain>,
    live: bool,
    /// This run carries on an earlier run's live output.
    carries_on: bool,
}

/// The master playlist (video rungs, then audio groups), and in fMP4 with `dash` the DASH
/// manifest, behind one publisher that also sends the output events.
fn publisher(config: &StreamConfig, sink: Arc<dyn SegmentSink>, shape: &Shape) -> Publisher {
    let profile = config.profile();
    let fmp4 = profile.container == Container::Fmp4;
    let renditions = || {
        let encoders = shape.audio.map_or(&[][..], |a| &a.encoders[..]);
        let renditions = shape.opened.renditions.iter();
        renditions.filter_map(move |r| encoders.get(r.encoder).map(|e| (r, e)))
    };
    let groups: Vec<AudioGroup> = renditions()
        .map(|(r, e)| AudioGroup {
            name: r.name.clone(),
            channels: e.ctx.channels().max(1) as u32,
            bandwidth: e.bit_rate,
            average_bandwidth: e.bit_rate,
        })
        .collect();
    let entries = shape.plan.iter().zip(&shape.opened.rungs).map(|(r, rung)| {
        let group = shape
            .audio
            .filter(|_| fmp4)
            .map(|a| a.encoder_for(r.profile.audio_bitrate));
        r.master_entry(rung.audio_encoder.is_some(), group)
    });
    let version = if fmp4 { 7 } else { 3 };
    let master = MasterPlaylist::new(sink.clone(), entries.collect(), groups, version);
    let dash = (fmp4 && profile.dash).then(|| {
        let video = shape.plan.iter().map(|r| {
            let media = Media::Video {
                width: r.width as u32,
                height: r.height as u32,
                frame_rate: r.frame_rate,
            };
            DashWriter::representation(&r.profile.name, media, r.profile.max_rate)
        });
        let audio = renditions().map(|(r, e)| {
            let media = Media::Audio {
                sample_rate: e.ctx.sample_rate().max(0) as u32,
                channels: e.ctx.channels().max(1) as u32,
            };
            DashWriter::representation(&r.name, media, e.bit_rate)
        });
        let window = shape.live.then_some(profile.live_window);
        let seg = profile.segment_duration.as_secs_f64();
        let earlier = shape
            .carries_on
            .then(|| output::earlier_dash_runs(&*sink))
            .flatten();
        let part = profile.part_duration.map(|p| p.as_secs_f64());
        let target = profile.dash_target_latency.map(|t| t.as_secs_f64());
        DashWriter::new(
            sink.clone(),
            video.chain(audio).collect(),
            window,
            seg,
            part.map(|part| (part, target)),
            earlier,
        )
    });
    Publisher::new(config.id(), sink, master, dash)
}

type RenditionHandle<'scope> = ScopedJoinHandle<'scope, Result<MeasuredBitrate, Error>>;

/// Starts one thread per rung and audio rendition (`sv-<stream>-<name>`), each fed by its
/// bounded, typed queue; the fan-out that feeds them, and the handles (rungs first).
fn spawn_renditions<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    config: &StreamConfig,
    opened: Opened,
    signals: &'env Signals,
    stats: &'env StatsCell,
    publisher: &'env Publisher,
) -> Result<(FanOut, Vec<RenditionHandle<'scope>>), Error> {
    let rung_audio: Vec<_> = opened.rungs.iter().map(|r| r.audio_encoder).collect();
    let rendition_audio: Vec<_> = opened.renditions.iter().map(|r| r.encoder).collect();
    let (fan, inboxes) = FanOut::new(&rung_audio, &rendition_audio, RENDITION_QUEUE);
    type Job<'env> = Box<dyn FnOnce() -> Result<MeasuredBitrate, Error> + Send + 'env>;
    let rungs = opened
        .rungs
        .into_iter()
        .zip(inboxes.rungs)
        .map(|(rung, rx)| {
            let worker = RungWorker::new(rung);
            let name = worker.name().to_owned();
            let job: Job<'env> = Box::new(move || worker.run(rx, signals, stats, publisher));
            (name, job)
        });
    let renditions = opened.renditions.into_iter().zip(inboxes.renditions);
    let renditions = renditions.map(|(r, rx)| {
        let name = r.name.clone();
        let job: Job<'env> = Box::new(move || r.run(rx, signals, stats, publisher));
        (name, job)
    });
    let mut handles = Vec::new();
    let sink = config.sink().clone();
    let interrupt = signals.output_interrupt().clone();
    let deletes = opened.deletes;
    let spawned = std::thread::Builder::new()
        .name(format!("sv-{}-deletes", config.id()))
        .spawn_scoped(scope, move || {
            deletes.run(&*sink, &interrupt, publisher, stats);
        });
    if let Err(e) = spawned {
        return Err(Error::Internal {
            message: format!("spawning the delete thread: {e}"),
        });
    }
    for (name, job) in rungs.chain(renditions) {
        let spawned = std::thread::Builder::new()
            .name(format!("sv-{}-{name}", config.id()))
            .spawn_scoped(scope, job);
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started see the abort and end; the scope joins them.
                signals.request_abort();
                return Err(Error::Internal {
                    message: format!("spawning a rendition thread: {e}"),
                });
            }
        }
    }
    Ok((fan, handles))
}

/// Decodes session after session: when one fails, the supervisor's policy connects the
/// next (or gives up), and the timeline continues across. With backups, the next session
/// is another input's (failover), or the primary's when it is back.
fn decode_with_recovery(
    decode: &mut DecodeLoop,
    mut session: Session,
    opener: &mut SourceOpener,
    supervisor: &mut dyn Supervisor,
    audio: &mut Option<AudioChain>,
    mut inputs: Option<&mut Inputs>,
    publisher: &Publisher,
) -> Result<Ending, Error> {
    loop {
        let result = decode.run_session(
            &mut session,
            audio.as_mut(),
            supervisor,
            inputs.as_deref_mut(),
        );
        // Close the old connection before opening a new one.
        drop(session);
        if let Some(inputs) = inputs.as_deref_mut() {
            let next = match result {
                Ok(Ending::Switch) => Some(switch_back(inputs, publisher)?),
                Err(e) if e.kind() == ErrorKind::SourceIo => {
                    failover(decode, inputs, supervisor, e, publisher)?
                }
                other => return other,
            };
            let Some(next) = next else {
                supervisor.report(PipelineEvent::Draining);
                return Ok(Ending::Stopped);
            };
            if let Some(a) = audio.as_mut() {
                a.attach(next.audio_source())?;
            }
            decode.continue_after_outage(audio.as_mut());
            session = next;
            continue;
        }
        let failure = match result {
            Ok(end) => return Ok(end),
            Err(e) => e,
        };
        let Some((mut next, how)) = supervisor.connect(opener, Some(failure))? else {
            supervisor.report(PipelineEvent::Draining);
            return Ok(Ending::Stopped);
        };
        if let Some(a) = audio.as_mut() {
            a.attach(next.audio_source())?;
        }
        match how {
            Reopened::OnCpu if !next.live => decode.resume(&mut next)?,
            _ => decode.continue_after_outage(audio.as_mut()),
        }
        session = next;
    }
}

/// Joins one of the run's scoped threads (a rendition, the live clock); its panic becomes
/// the error.
fn join_scoped<T>(h: ScopedJoinHandle<'_, Result<T, Error>>) -> Result<T, Error> {
    h.join().unwrap_or_else(|p| {
        Err(Error::Panicked {
            message: crate::panic::panic_message(&*p),
        })
    })
}

/// An output write cut by the abort's interrupt is the abort, not a failure of its own (a
/// variant may be cutting a segment when the abort lands: the demuxer hands over what it
/// buffered when its read is interrupted).
fn cut_by_abort(e: Error, signals: &Signals) -> Error {
    let cut = e.kind() == ErrorKind::Output && e.code() == Some(AVERROR_EXIT);
    if cut && signals.abort_requested() {
        Error::aborted()
    } else {
        e
    }
}

/// The run's result from the decode loop's and every variant's: the root cause wins over
/// the `Aborted` that other threads report when they are torn down because of it, and a run
/// is only finished when every variant finished (an abort that overtook a graceful end
/// leaves variants without their final segment: the run is aborted then).
fn overall_result(
    main: Result<Ending, Error>,
    variants: Vec<Result<MeasuredBitrate, Error>>,
) -> Result<(Ending, Vec<MeasuredBitrate>), Error> {
    let mut measured = Vec::with_capacity(variants.len());
    let mut root = None;
    let mut aborted = None;
    for r in variants {
        match r {
            Ok(m) => measured.push(m),
            Err(e @ Error::Aborted { .. }) => aborted = Some(e),
            Err(e) => {
                root.get_or_insert(e);
            }
        }
    }
    match (main, root, aborted) {
        (_, Some(root), _) => Err(root),
        (Err(e), None, _) => Err(e),
        (Ok(_), None, Some(a)) => Err(a),
        (Ok(end), None, None) => Ok((end, measured)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_cause_wins_and_a_partial_finish_is_never_reported() {
        let m = |peak, average| MeasuredBitrate { peak, average };
        let disk = || Error::output("x", std::io::Error::other("full"));
        assert!(matches!(
            overall_result(Err(Error::aborted()), vec![Ok(m(1, 1)), Err(disk())]),
            Err(Error::Output { .. })
        ));
        assert!(matches!(
            overall_result(
                Ok(Ending::Stopped),
                vec![Ok(m(1, 1)), Err(Error::aborted())]
            ),
            Err(Error::Aborted { .. })
        ));
        let ok = overall_result(Ok(Ending::SourceEnded), vec![Ok(m(1, 2)), Ok(m(3, 4))]);
        assert_eq!(ok.unwrap(), (Ending::SourceEnded, vec![m(1, 2), m(3, 4)]));
    }

    #[test]
    fn an_output_write_cut_by_the_abort_is_the_abort() {
        let cut = || {
            let e = crate::ffi::AvError::new(AVERROR_EXIT, "avio_close");
            Error::output_av("seg_00000.ts", &e)
        };
        let signals = Signals::new();
        assert!(matches!(
            cut_by_abort(cut(), &signals),
            Error::Output { .. }
        ));
        signals.request_abort();
        assert!(matches!(
            cut_by_abort(cut(), &signals),
            Error::Aborted { .. }
        ));
        let full = Error::output("seg_00000.ts", std::io::Error::other("disk full"));
        assert!(matches!(cut_by_abort(full, &signals), Error::Output { .. }));
    }
}

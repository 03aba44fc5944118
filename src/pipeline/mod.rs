//! The media pipeline: one source decoded once, every variant scaled and encoded on its own
//! thread, audio encoded once, HLS out. Safe Rust over `ffi`. It knows nothing about the
//! lifecycle beyond its contract in [`control`]: it obeys [`Signals`], reports
//! [`PipelineEvent`]s, and lets a [`Supervisor`] decide how to (re)connect the source.

mod audio;
mod control;
mod dash;
mod decode;
mod errors;
mod hls;
mod memory;
mod mpd;
mod plan;
mod publish;
mod reader;
mod rendition;
mod session;
mod timeline;
mod variant;

pub(crate) use control::{Ending, PipelineEvent, Reopened, Signals, Supervisor};
pub(crate) use memory::stream_memory;
pub(crate) use plan::planned_from_hint;
pub(crate) use session::{Session, SourceOpener};

use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{bounded, Sender};

use crate::config::{Container, SourceHint, StreamConfig};
use crate::error::{Error, ErrorKind};
use crate::ffi::{CodecContext, Interrupt, Rational, AVERROR_EXIT};
use crate::stats::StatsCell;
use audio::AudioChain;
use dash::Media;
use decode::{DecodeLoop, Targets};
use errors::{encoder_error, output_error};
use hls::{AudioGroup, MasterPlaylist, MeasuredBitrate, MediaOutput, SegmentWriter};
use mpd::DashOutput;
use plan::RungPlan;
use publish::Publisher;

use crate::sink::{FsSink, SegmentSink};
use rendition::AudioRendition;
use timeline::Timeline;
use variant::{Rung, VariantMsg, VariantWorker};

/// Opens the source on the calling thread (bounded by the config's I/O timeout), reads what
/// it is, and closes it: its picture size and frame rate, as a [`SourceHint`].
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
    Ok(SourceHint {
        width: v.width.max(0) as u32,
        height: v.height.max(0) as u32,
        frame_rate: plan::source_fps(v),
    })
}

/// Frames queued per variant before the decoder waits (back-pressure, bounded memory).
const VARIANT_QUEUE: usize = 8;

/// Runs the whole pipeline on the calling thread (plus one scoped thread per variant):
/// connect, plan the ladder, open the encoders and outputs, then decode and fan out until
/// the source ends, a stop finishes, an abort lands, or something fails. Between sessions
/// the supervisor reconnects (or leaves the hardware device) per its policy.
pub(crate) fn run(
    config: &StreamConfig,
    signals: &Signals,
    stats: &StatsCell,
    supervisor: &mut dyn Supervisor,
    output_events: Option<crossbeam_channel::Sender<crate::hooks::HookMsg>>,
) -> Result<Ending, Error> {
    let mut opener = SourceOpener::new(config, signals);
    let connected = supervisor.connect(&mut opener, None).inspect_err(|_| {
        // Nothing of this run reached the output: an earlier run's master must not go on
        // claiming a ladder nobody writes. (A live restart that connects carries it on.)
        if config.sink().is_none() {
            let _ = hls::remove_master(config.output_dir());
        }
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
    let plan = plan::plan(config, &session.video);
    let planned = plan::summary(&session.video, session.audio.is_some(), &plan);
    supervisor.report(PipelineEvent::Planned(planned));
    let fmp4 = config.profile().container == Container::Fmp4;
    let mut audio = open_audio(&session, &plan, config.profile().timestamp_jump, fmp4)?;
    let outputs = open_outputs(config, &session, &plan, audio.as_ref(), signals, stats);
    let (opened, master) = outputs.map(|(o, p)| (o, p.with_events(output_events)))?;
    let Opened {
        rungs,
        renditions,
        routes: audio_route,
    } = opened;
    let video_count = rungs.len();
    let timeline = Timeline::new(
        session.video.time_base,
        config.profile().segment_duration,
        plan::source_fps(&session.video),
        config.profile().timestamp_jump,
    );
    let outcome = std::thread::scope(|scope| {
        let workers = Workers { rungs, renditions };
        let (senders, handles) = spawn_variants(scope, config, workers, signals, stats, &master)?;
        let live_end_is_outage = supervisor.reconnects_live_end();
        let mut decode = DecodeLoop::new(
            config,
            signals,
            stats,
            Targets {
                senders: &senders,
                video_count,
                audio_route: &audio_route,
            },
            timeline,
            live_end_is_outage,
        );
        let read = decode_with_recovery(&mut decode, session, &mut opener, supervisor, &mut audio);
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
        drop(senders);
        let joined = handles.into_iter().map(join_variant);
        let variants = joined
            .map(|r| r.map_err(|e| cut_by_abort(e, signals)))
            .collect();
        overall_result(told, variants)
    });
    drop(audio);
    let (ending, measured) = outcome?;
    master.finish(&measured, stats);
    Ok(ending)
}

/// Opens every rendition (video rungs, then in fMP4 the audio renditions) where its output
/// starts, and the publisher over them; the routes say which audio encoder feeds each
/// (video rungs first, then the audio renditions, as the decode loop's senders).
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
            .map(|e| AudioRendition::name_for(e.bit_rate))
            .collect(),
        None => Vec::new(),
    };
    let names = plan.iter().map(|r| r.profile.name.as_str());
    let names = names.chain(audio_names.iter().map(String::as_str));
    let (sink, starts) = prepare_output(config, names, session.live)?;
    let outputs = Outputs {
        starts,
        interrupt: signals.output_interrupt(),
        sink: sink.clone(),
    };
    let mut opened = open_rungs(config, plan, outputs, session, audio, stats)?;
    let shape = Shape {
        plan,
        renditions: &opened.renditions,
        audio,
        routes: &opened.routes,
        live: session.live,
    };
    let publisher = publisher(config, sink, &shape);
    let audio_routes = (0..opened.renditions.len()).map(Some);
    opened.routes.extend(audio_routes);
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
    starts: Vec<hls::OutputStart>,
    interrupt: &'a Arc<Interrupt>,
    sink: Arc<dyn SegmentSink>,
}

/// The opened renditions, and which audio encoder each video rung muxes (`None`: none).
struct Opened {
    rungs: Vec<Rung>,
    renditions: Vec<AudioRendition>,
    routes: Vec<Option<usize>>,
}

/// Opens every rung's video encoder and segment writer (with the rung's audio muxed in
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
    let output = |start| MediaOutput {
        target_duration: seg,
        live_window: session.live.then_some(profile.live_window),
        start,
        interrupt: outputs.interrupt.clone(),
        sink: outputs.sink.clone(),
        container: profile.container,
    };
    let mut starts = outputs.starts.into_iter();
    let mut rungs = Vec::with_capacity(plan.len());
    let mut routes = Vec::with_capacity(plan.len());
    for ((index, p), start) in plan.iter().enumerate().zip(starts.by_ref()) {
        let vp = p.profile;
        let codec = vp.codec.encoder_name();
        let settings = p.encoder_settings(session.video.time_base, seg, fmp4);
        let encoder = CodecContext::open_video_encoder(&settings)
            .map_err(|e| encoder_error(codec, &format!("variant {}", vp.name), e))?;
        let route = audio
            .filter(|_| !fmp4)
            .map(|a| a.encoder_for(vp.audio_bitrate));
        let audio_enc = audio.zip(route).map(|(a, r)| &a.encoders[r].ctx);
        let writer = SegmentWriter::create(&vp.name, Some(&encoder), audio_enc, output(start))
            .map_err(output_error)?;
        let codecs = fmp4
            .then(|| hls::video_codec_string(vp.codec, encoder.extradata()))
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
            writer,
            audio_tb: audio_enc.map_or(Rational::new(0, 1), CodecContext::time_base),
            codecs,
            counters: stats.add_variant(&vp.name),
            #[cfg(feature = "fault-injection")]
            panic_after_frames: config.faults().panic_after_frames.filter(|_| index == 0),
        });
        routes.push(route);
    }
    let mut renditions = Vec::new();
    for (enc, start) in audio
        .filter(|_| fmp4)
        .iter()
        .flat_map(|a| &a.encoders)
        .zip(starts)
    {
        let name = AudioRendition::name_for(enc.bit_rate);
        let writer = SegmentWriter::create(&name, None, Some(&enc.ctx), output(start))
            .map_err(output_error)?;
        renditions.push(AudioRendition {
            index: plan.len() + renditions.len(),
            counters: stats.add_audio_rendition(&name),
            name,
            writer,
            first: None,
        });
    }
    Ok(Opened {
        rungs,
        renditions,
        routes,
    })
}

/// The sink the output goes to, and where each rendition's numbering starts: on the
/// filesystem (the default), an earlier live run's playlists are carried on and stray files
/// removed; through an application's sink, every run starts afresh.
fn prepare_output<'a>(
    config: &StreamConfig,
    names: impl Iterator<Item = &'a str>,
    live: bool,
) -> Result<(Arc<dyn SegmentSink>, Vec<hls::OutputStart>), Error> {
    if let Some(sink) = config.sink() {
        return Ok((sink.clone(), names.map(|_| Default::default()).collect()));
    }
    let dir = config.output_dir();
    let starts = hls::prepare_output(dir, names, live, config.profile().container)?;
    let sink = FsSink::new(dir, config.profile().sync_playlists);
    Ok((Arc::new(sink), starts))
}

/// The ladder's shape, for the master and the DASH manifest.
struct Shape<'a> {
    plan: &'a [RungPlan<'a>],
    renditions: &'a [AudioRendition],
    audio: Option<&'a AudioChain>,
    /// Which audio encoder each video rung muxes (MPEG-TS).
    routes: &'a [Option<usize>],
    live: bool,
}

/// The master playlist (video rungs, then audio groups), and in fMP4 with `dash` the DASH
/// manifest, behind one publisher that also sends the output events.
fn publisher(config: &StreamConfig, sink: Arc<dyn SegmentSink>, shape: &Shape) -> Publisher {
    let profile = config.profile();
    let fmp4 = profile.container == Container::Fmp4;
    let encoders = || shape.audio.iter().flat_map(|a| &a.encoders);
    let groups: Vec<AudioGroup> = shape
        .renditions
        .iter()
        .zip(encoders())
        .map(|(r, e)| AudioGroup {
            name: r.name.clone(),
            channels: e.ctx.channels().max(1) as u32,
            bandwidth: e.bit_rate,
            average_bandwidth: e.bit_rate,
        })
        .collect();
    let entries = shape.plan.iter().zip(shape.routes).map(|(r, route)| {
        let group = shape
            .audio
            .filter(|_| fmp4)
            .map(|a| a.encoder_for(r.profile.audio_bitrate));
        r.master_entry(route.is_some(), group)
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
            DashOutput::representation(&r.profile.name, media, r.profile.max_rate)
        });
        let audio = shape.renditions.iter().zip(encoders()).map(|(r, e)| {
            let media = Media::Audio {
                sample_rate: e.ctx.sample_rate().max(0) as u32,
                channels: e.ctx.channels().max(1) as u32,
            };
            DashOutput::representation(&r.name, media, e.bit_rate)
        });
        let window = shape.live.then_some(profile.live_window);
        let seg = profile.segment_duration.as_secs_f64();
        DashOutput::new(sink.clone(), video.chain(audio).collect(), window, seg)
    });
    Publisher::new(config.id(), sink, master, dash)
}

/// What runs on the variant threads.
struct Workers {
    rungs: Vec<Rung>,
    renditions: Vec<AudioRendition>,
}

type VariantHandle<'scope> = ScopedJoinHandle<'scope, Result<MeasuredBitrate, Error>>;

/// Starts one thread per rung and audio rendition (`sv-<stream>-<name>`), each fed by a
/// bounded queue; senders and handles in that order (video rungs first).
fn spawn_variants<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    config: &StreamConfig,
    workers: Workers,
    signals: &'env Signals,
    stats: &'env StatsCell,
    master: &'env Publisher,
) -> Result<(Vec<Sender<VariantMsg>>, Vec<VariantHandle<'scope>>), Error> {
    type Job<'env> = Box<
        dyn FnOnce(crossbeam_channel::Receiver<VariantMsg>) -> Result<MeasuredBitrate, Error>
            + Send
            + 'env,
    >;
    let video = workers.rungs.into_iter().map(|rung| {
        let worker = VariantWorker::new(rung);
        let name = worker.name().to_owned();
        let job: Job<'env> = Box::new(move |rx| worker.run(rx, signals, stats, master));
        (name, job)
    });
    let audio = workers.renditions.into_iter().map(|r| {
        let name = r.name.clone();
        let job: Job<'env> = Box::new(move |rx| r.run(rx, signals, stats, master));
        (name, job)
    });
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for (name, job) in video.chain(audio) {
        let (tx, rx) = bounded(VARIANT_QUEUE);
        let spawned = std::thread::Builder::new()
            .name(format!("sv-{}-{name}", config.id()))
            .spawn_scoped(scope, move || job(rx));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started see the abort and end; the scope joins them.
                signals.request_abort();
                return Err(Error::Internal {
                    message: format!("spawning a variant thread: {e}"),
                });
            }
        }
        senders.push(tx);
    }
    Ok((senders, handles))
}

/// Decodes session after session: when one fails, the supervisor's policy connects the
/// next (or gives up), and the timeline continues across.
fn decode_with_recovery(
    decode: &mut DecodeLoop,
    mut session: Session,
    opener: &mut SourceOpener,
    supervisor: &mut dyn Supervisor,
    audio: &mut Option<AudioChain>,
) -> Result<Ending, Error> {
    loop {
        let result = decode.run_session(&mut session, audio.as_mut(), supervisor);
        // Close the old connection before opening a new one.
        drop(session);
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

fn join_variant(h: VariantHandle<'_>) -> Result<MeasuredBitrate, Error> {
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

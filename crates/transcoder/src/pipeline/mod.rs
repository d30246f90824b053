//! The encoding pipeline: one upload in, an aligned HLS ladder out.
//!
//! ```text
//!             ┌────────────── decode thread ──────────────┐      rung threads (one each, a chain)
//! source ──▶ demux ─▶ video decode ─▶ rotate ─▶ constant rate ──▶ 1080p: x264 ─▶ fMP4 ─────┐
//! (S3 or      │                                  │                  └▶ 720p: scale, x264 ─▶ …│
//!  a file)    │                                  │                       └▶ 480p: scale, …   │
//!             │                                  └─ poster, sprite tiles                     │
//!             └─▶ audio decode ─▶ resample ─▶ AAC (once) ─────▶ shared packets to every rung ┤
//!                                                                                            ▼
//!                                                             events (init, segments, images)
//! ```
//!
//! Frames are decoded once; each rung scales from the rung above it
//! (reference-counted frames, no copies when sizes match) and encodes on its
//! own thread, so rungs encode in parallel. Everything produced goes out as [`Produced`] events through a
//! bounded channel as soon as it is final: the publisher uploads while the
//! pipeline keeps encoding, and back-pressure bounds memory.

pub mod audio;
pub mod cfr;
pub mod fmp4;
pub mod frames;
pub mod probe;
pub mod rung;
pub mod thumbs;

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use ffmpeg_next as ff;
use media_core::job::ThumbnailMeta;
use media_core::ladder::{plan_ladder, LadderOptions, LadderPlan};
use tokio::sync::mpsc::Sender;

use crate::error::JobError;
use audio::AudioTrack;
use cfr::ConstantRate;
use frames::{Conformer, Rotator};
use media_core::timeline::Timeline;
use rung::{RungInput, RungReport, RungSettings};
use thumbs::Thumbnailer;

/// A decoded frame shared read-only by every rung.
pub struct SharedFrame(pub ff::frame::Video);
// SAFETY: rungs only read the frame (scaling reads its planes; the encoder
// takes its own reference); nothing mutates it after it is shared.
unsafe impl Sync for SharedFrame {}
unsafe impl Send for SharedFrame {}

/// What the pipeline hands to the publisher, as soon as it is final.
#[derive(Debug)]
pub enum Produced {
    /// Sent first: the ladder that will be produced.
    Plan { plan: LadderPlan, has_audio: bool, duration_s: Option<f64> },
    /// A rung's init segment and its RFC 6381 video codec (`avc1.640028`).
    Init { rung: usize, bytes: Vec<u8>, video_codec: String },
    Segment { rung: usize, seq: u32, duration_s: f64, bytes: Vec<u8> },
    Poster { bytes: Vec<u8> },
    Sprite { bytes: Vec<u8>, meta: ThumbnailMeta },
}

/// Shared between the pipeline and whoever runs it.
#[derive(Default)]
pub struct Control {
    /// Set to stop at the next frame (lease lost, shutdown).
    pub cancel: AtomicBool,
    /// Output frames each rung has encoded.
    pub frames_done: Mutex<Vec<Arc<AtomicU64>>>,
    /// Output frames expected in all (0 when the duration is unknown).
    pub frames_expected: AtomicU64,
    /// The source's declared duration in milliseconds, once probed (0: unknown).
    pub source_duration_ms: AtomicU64,
}

impl Control {
    /// The probed duration, once known.
    pub fn source_duration_s(&self) -> Option<f64> {
        let ms = self.source_duration_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| ms as f64 / 1000.0)
    }
}

impl Control {
    /// Progress 0.0-1.0 of the slowest rung.
    pub fn fraction(&self) -> f64 {
        let expected = self.frames_expected.load(Ordering::Relaxed);
        let done = self.frames_done.lock().expect("not poisoned").iter().map(|f| f.load(Ordering::Relaxed)).min().unwrap_or(0);
        if expected == 0 {
            0.0
        } else {
            (done as f64 / expected as f64).min(1.0)
        }
    }
}

/// Knobs that do not change the output's format, with defaults measured on
/// 2 cores (see bench/): with every rung encoding at once the cores are
/// already busy, and each extra x264 frame thread costs CPU and memory.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// x264 threads of the top rung, which has the most work (0: x264 decides).
    pub x264_threads_top: usize,
    /// x264 threads of the other rungs.
    pub x264_threads: usize,
    /// Decoder threads (0: libav decides).
    pub decoder_threads: usize,
    /// Frames queued before each rung.
    pub frame_queue: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { x264_threads_top: 2, x264_threads: 1, decoder_threads: 1, frame_queue: 4 }
    }
}

/// What the pipeline made.
#[derive(Debug, Clone)]
pub struct Summary {
    pub duration_s: f64,
    pub has_audio: bool,
    pub frame_rate: f64,
    pub rungs: Vec<RungReport>,
    pub thumbnails: Option<ThumbnailMeta>,
    pub probe: probe::Probe,
}

/// Why reading the upload failed outside libav (storage, the replaced
/// source, the spool's disk), so that a libav read error is not blamed on
/// the file.
pub type IoFailure = Arc<Mutex<Option<JobError>>>;

fn read_error(e: ff::Error, io: &IoFailure, what: &str) -> JobError {
    match io.lock().expect("not poisoned").clone() {
        Some(outside) => outside,
        None => JobError::permanent(format!("the upload is damaged: libav could not {what} ({e})")),
    }
}

/// Transcodes `reader` into the ladder `options` asks for, sending what it
/// makes to `events`. Runs on the calling (blocking) thread plus one thread
/// per rung.
pub fn transcode<R: Read + Seek + Send + 'static>(
    reader: R,
    io_failure: IoFailure,
    options: &LadderOptions,
    tuning: &Tuning,
    events: Sender<Produced>,
    control: Arc<Control>,
) -> Result<Summary, JobError> {
    ff::init().map_err(|e| JobError::retryable(format!("initialising libav: {e}")))?;
    // libav's own chatter (x264's banner, muxer notes) stays out of the logs.
    ff::util::log::set_level(ff::util::log::Level::Error);
    let cancel_probe = Arc::clone(&control);
    let mut input = probe::open(reader, move || cancel_probe.cancel.load(Ordering::Relaxed)).map_err(|e| match (&e, io_failure.lock().expect("not poisoned").clone()) {
        // A failure outside libav (storage, the spool's disk) is the cause of whatever opening then said.
        (JobError::Permanent(_) | JobError::Retryable(_), Some(outside)) => outside,
        _ => e,
    })?;
    let probe = probe::inspect(&input)?;
    tracing::info!(format = %probe.format, video = ?probe.video, audio = ?probe.audio, duration_s = ?probe.duration_s, "probed");
    let plan = plan_ladder(&probe.source_video(), options).map_err(|e| JobError::permanent(format!("the video cannot be transcoded: {e}")))?;
    let fps = plan.frame_rate.as_f64();
    let video_index = probe.video.index;
    let video_tb = input.stream(video_index).expect("probed").time_base();
    let mut decoder = {
        let mut ctx = ff::codec::context::Context::from_parameters(input.stream(video_index).expect("probed").parameters())
            .map_err(|e| JobError::permanent(format!("the video cannot be decoded: {e}")))?;
        ctx.set_threading(ff::codec::threading::Config { kind: ff::codec::threading::Type::Frame, count: tuning.decoder_threads, ..Default::default() });
        // libav itself refuses to allocate a frame beyond the largest accepted
        // size, whatever a later parameter set in the stream declares.
        // SAFETY: setting a plain field of a codec context that is not open yet.
        unsafe { (*ctx.as_mut_ptr()).max_pixels = media_core::ladder::MAX_SOURCE_PIXELS as i64 };
        ctx.decoder().video().map_err(|e| JobError::permanent(format!("the {} video cannot be decoded: {e}", probe.video.codec)))?
    };
    let settings = RungSettings {
        plan: &plan,
        preset: &options.preset,
        x264_threads_top: tuning.x264_threads_top,
        x264_threads: tuning.x264_threads,
        color: probe.video.color,
    };
    // Every rung must share one reordering delay (checked by each rung) so
    // that all timelines, and the audio, start at the same moment.
    let delay_frames = match plan.rungs.last() {
        Some(r) => rung::reorder_delay_frames(r, &settings)?,
        None => 0,
    };
    let video_delay_s = f64::from(delay_frames) / fps;
    let mut audio = match &probe.audio {
        Some(a) => Some(AudioTrack::new(&input.stream(a.index).expect("probed"), video_delay_s)?),
        None => None,
    };
    let audio_params = audio.as_ref().map(AudioTrack::parameters);
    let audio_priming = audio.as_ref().map_or(0, AudioTrack::priming);
    let has_audio = audio.is_some();
    let declared = probe.duration_s;
    if let Some(d) = declared {
        control.frames_expected.store((d * fps).round() as u64, Ordering::Relaxed);
        control.source_duration_ms.store((d * 1000.0).round().max(1.0) as u64, Ordering::Relaxed);
    }
    let counters: Vec<Arc<AtomicU64>> = plan.rungs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    *control.frames_done.lock().expect("not poisoned") = counters.clone();
    events
        .blocking_send(Produced::Plan { plan: plan.clone(), has_audio, duration_s: declared })
        .map_err(|_| JobError::Stopped)?;

    let (dw, dh) = probe.source_video().display_size();
    let mut thumbs = Thumbnailer::new(dw, dh, declared);

    std::thread::scope(|scope| -> Result<Summary, JobError> {
        // senders[i] feeds rung i: frames (rung 0 from here, the others from the
        // rung above) and audio (from here, to every rung).
        let (senders, mut receivers): (Vec<SyncSender<RungInput>>, Vec<_>) = plan.rungs.iter().map(|_| sync_channel::<RungInput>(tuning.frame_queue.max(1))).unzip();
        let mut handles = Vec::new();
        for (i, rung) in plan.rungs.iter().enumerate() {
            let rx = receivers.remove(0);
            let next = senders.get(i + 1).cloned();
            let (settings, events, done, control, audio) = (&settings, events.clone(), Arc::clone(&counters[i]), Arc::clone(&control), audio_params.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("rung-{}", rung.name.as_str()))
                    .spawn_scoped(scope, move || rung::run(i, rung, settings, audio, rx, next, &events, &done, &control.cancel, delay_frames, audio_priming))
                    .map_err(|e| JobError::retryable(format!("starting an encoder thread: {e}")))?,
            );
        }
        // If a rung stops early its receiver is gone: the send fails, and
        // joining below reports that rung's error.
        let broadcast = |senders: &[SyncSender<RungInput>], make: &dyn Fn() -> RungInput| -> bool { senders.iter().all(|tx| tx.send(make()).is_ok()) };
        if !has_audio && !broadcast(&senders, &|| RungInput::AudioEnd) {
            drop(senders);
            join(handles, &control)?;
            return Err(JobError::retryable("an encoder stopped before any input"));
        }

        let mut clock = ConstantRate::<Arc<SharedFrame>>::new(fps);
        let mut rotator: Option<Rotator> = None;
        let mut conformer = Conformer::new();
        let mut timeline = Timeline::new(declared).map_err(|e| JobError::permanent(e.to_string()))?;
        let mut t0: Option<f64> = None;
        let mut last_t = 0.0f64;
        let mut last_frame: Option<Arc<SharedFrame>> = None;
        let mut decode_errors = 0u32;
        let mut frames_decoded = 0u64;
        let mut demux_error: Option<JobError> = None;
        let gop = u64::from(plan.gop_frames);

        // Sends the constant-rate frames that became final.
        let emit = |slots: Vec<(u64, Arc<SharedFrame>)>, thumbs: &mut Thumbnailer, events: &Sender<Produced>| -> Result<bool, JobError> {
            for (n, frame) in slots {
                let mut f = frame.0.clone();
                f.set_pts(Some(n as i64));
                f.set_kind(if n % gop == 0 { ff::picture::Type::I } else { ff::picture::Type::None });
                if let Some(jpeg) = thumbs.on_frame(n as f64 / fps, &f)? {
                    events.blocking_send(Produced::Poster { bytes: jpeg }).map_err(|_| JobError::Stopped)?;
                }
                // The top rung; it passes its frames down the chain.
                if senders[0].send(RungInput::Frame(Arc::new(SharedFrame(f)))).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        };

        let mut handle_frame = |decoded: ff::frame::Video,
                                clock: &mut ConstantRate<Arc<SharedFrame>>,
                                rotator: &mut Option<Rotator>,
                                thumbs: &mut Thumbnailer,
                                audio: &mut Option<AudioTrack>|
         -> Result<bool, JobError> {
            let decoded = conformer.apply(decoded)?;
            let ts = decoded.timestamp().or(decoded.pts());
            let t = match ts {
                Some(ts) => ts as f64 * f64::from(video_tb),
                None => last_t + 1.0 / fps,
            };
            let start = *t0.get_or_insert(t);
            // A timestamp bomb ends here, before the clock repeats a frame for days.
            timeline.frame(t - start).map_err(|e| JobError::permanent(e.to_string()))?;
            if frames_decoded == 0 {
                if let Some(a) = audio.as_mut() {
                    let packets = a.set_video_start(start)?;
                    if !packets.is_empty() && !broadcast(&senders, &|| RungInput::Audio(Arc::new(packets.clone()))) {
                        return Ok(false);
                    }
                }
            }
            frames_decoded += 1;
            last_t = t.max(last_t);
            let upright = match (probe.video.rotation, rotator.as_mut()) {
                (0, _) => vec![decoded],
                (r, None) => {
                    let mut rot = Rotator::new(r, &decoded, video_tb)?;
                    let out = rot.apply(&decoded)?;
                    *rotator = Some(rot);
                    out
                }
                (_, Some(rot)) => rot.apply(&decoded)?,
            };
            for f in upright {
                let shared = Arc::new(SharedFrame(f));
                last_frame = Some(Arc::clone(&shared));
                if !emit(clock.push(t - start, shared), thumbs, &events)? {
                    return Ok(false);
                }
            }
            // Audio that comes late in the file (or never) is not waited for
            // beyond a bound: encoded video would pile up in every rung.
            if let Some(a) = audio.as_mut() {
                let packets = a.keep_up(clock.emitted() as f64 / fps)?;
                if !packets.is_empty() && !broadcast(&senders, &|| RungInput::Audio(Arc::new(packets.clone()))) {
                    return Ok(false);
                }
            }
            Ok(true)
        };

        let mut packet = ff::Packet::empty();
        let mut frame = ff::frame::Video::empty();
        let mut alive = true;
        'demux: loop {
            if control.cancel.load(Ordering::Relaxed) {
                return Err(JobError::LeaseLost);
            }
            match packet.read(&mut input) {
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(e) => {
                    if io_failure.lock().expect("not poisoned").is_some() {
                        demux_error = Some(read_error(e, &io_failure, "read it"));
                        break;
                    }
                    decode_errors += 1;
                    if decode_errors > 50 {
                        demux_error = Some(read_error(e, &io_failure, "read past a damaged part"));
                        break;
                    }
                    continue;
                }
            }
            let index = packet.stream();
            if index == video_index {
                if decoder.send_packet(&packet).is_err() {
                    decode_errors += 1;
                }
                while decoder.receive_frame(&mut frame).is_ok() {
                    let decoded = std::mem::replace(&mut frame, ff::frame::Video::empty());
                    if !handle_frame(decoded, &mut clock, &mut rotator, &mut thumbs, &mut audio)? {
                        alive = false;
                        break 'demux;
                    }
                }
            } else if let Some(a) = audio.as_mut().filter(|_| Some(index) == probe.audio.as_ref().map(|a| a.index)) {
                let packets = a.push(&packet)?;
                if !packets.is_empty() && !broadcast(&senders, &|| RungInput::Audio(Arc::new(packets.clone()))) {
                    alive = false;
                    break;
                }
            }
        }
        if alive && demux_error.is_none() {
            let _ = decoder.send_eof();
            while decoder.receive_frame(&mut frame).is_ok() {
                let decoded = std::mem::replace(&mut frame, ff::frame::Video::empty());
                if !handle_frame(decoded, &mut clock, &mut rotator, &mut thumbs, &mut audio)? {
                    alive = false;
                    break;
                }
            }
        }
        if alive && demux_error.is_none() && frames_decoded > 0 {
            let end = last_t - t0.unwrap_or(0.0) + 1.0 / probe.video.frame_rate.as_f64().max(1.0);
            alive = emit(clock.finish(end), &mut thumbs, &events)?;
            if alive {
                if let Some(a) = audio.as_mut() {
                    let packets = a.finish(end)?;
                    alive = packets.is_empty() || broadcast(&senders, &|| RungInput::Audio(Arc::new(packets.clone())));
                }
            }
            if alive && has_audio {
                // A rung that hung up reports its own error when joined.
                let _ = broadcast(&senders, &|| RungInput::AudioEnd);
            }
        }
        drop(senders);
        let rungs = join(handles, &control)?;
        if let Some(e) = demux_error {
            return Err(e);
        }
        if frames_decoded == 0 {
            return Err(JobError::permanent(format!(
                "no video frame could be decoded from the {} stream: the file is corrupt or truncated",
                probe.video.codec
            )));
        }
        let duration_s = clock.emitted() as f64 / fps;
        if let Some(d) = declared {
            if duration_s < d * 0.8 - 0.5 {
                return Err(JobError::permanent(format!(
                    "the upload is truncated or damaged: its video stops at {duration_s:.1} s of the {d:.1} s it declares"
                )));
            }
        }
        if !thumbs.poster_done() {
            if let Some(f) = &last_frame {
                let jpeg = thumbs.poster(&f.0)?;
                events.blocking_send(Produced::Poster { bytes: jpeg }).map_err(|_| JobError::Stopped)?;
            }
        }
        let thumbnails = match thumbs.finish()? {
            Some((bytes, meta)) => {
                events.blocking_send(Produced::Sprite { bytes, meta }).map_err(|_| JobError::Stopped)?;
                Some(meta)
            }
            None => None,
        };
        Ok(Summary { duration_s, has_audio, frame_rate: fps, rungs, thumbnails, probe: probe.clone() })
    })
}

/// Waits for every rung; the first real error wins over the hang-ups it caused.
fn join(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<RungReport, JobError>>>, control: &Control) -> Result<Vec<RungReport>, JobError> {
    let mut reports = Vec::new();
    let mut first_error: Option<JobError> = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => {
                // A rung that only stopped because another did yields to that one's error.
                if first_error.as_ref().is_none_or(|f| matches!(f, JobError::LeaseLost | JobError::Stopped)) {
                    first_error = Some(e);
                }
            }
            Err(panic) => {
                let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned())).unwrap_or_default();
                first_error = Some(JobError::retryable(format!("an encoder thread crashed: {msg}")));
            }
        }
    }
    if control.cancel.load(Ordering::Relaxed) {
        return Err(JobError::LeaseLost);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(reports),
    }
}

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
//! own thread, so rungs encode in parallel ([`fanout::Fanout`]). The read
//! loop (`demux`) hands video packets to [`video::VideoDecoder`] (decode,
//! one shape, upright, timeline checked) and audio packets to
//! [`audio::AudioTrack`]; `Output` times the frames on the constant-rate
//! clock and passes them on. Everything produced goes out as [`Produced`] events through a
//! bounded channel as soon as it is final: the publisher uploads while the
//! pipeline keeps encoding, and back-pressure bounds memory.

pub mod audio;
pub mod cfr;
pub mod fanout;
pub mod fmp4;
pub mod frames;
pub mod probe;
pub mod rung;
pub mod thumbs;
pub mod tuning;
pub mod video;

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ffmpeg_next as ff;
use media_core::video::job::ThumbnailMeta;
use media_core::video::ladder::{plan_ladder, LadderOptions, LadderPlan};
use tokio::sync::mpsc::Sender;

use crate::error::JobError;
use audio::AudioTrack;
use cfr::ConstantRate;
use fanout::{Fanout, RungStart};
use rung::{RungReport, RungSettings};
use thumbs::Thumbnailer;
pub use tuning::{parse_x264_rung, Machine, Tuning};
use video::VideoDecoder;

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
    Plan {
        plan: LadderPlan,
        has_audio: bool,
        duration_s: Option<f64>,
    },
    /// A rung's init segment and its RFC 6381 video codec (`avc1.640028`).
    Init {
        rung: usize,
        bytes: Vec<u8>,
        video_codec: String,
    },
    Segment {
        rung: usize,
        seq: u32,
        duration_s: f64,
        bytes: Vec<u8>,
    },
    Poster {
        bytes: Vec<u8>,
    },
    Sprite {
        bytes: Vec<u8>,
        meta: ThumbnailMeta,
    },
}

/// Shared between the pipeline and whoever runs it.
#[derive(Default)]
pub struct Control {
    /// Set to stop at the next frame (lease lost, shutdown); set it with
    /// [`Control::stop`] so that publishing stops too.
    pub cancel: AtomicBool,
    /// Wakes whoever waits in [`Control::stopped`].
    stopping: tokio::sync::Notify,
    /// Output frames each rung has encoded.
    pub frames_done: Mutex<Vec<Arc<AtomicU64>>>,
    /// Output frames expected in all (0 when the duration is unknown).
    pub frames_expected: AtomicU64,
    /// The source's declared duration in milliseconds, once probed (0: unknown).
    pub source_duration_ms: AtomicU64,
}

impl Control {
    /// Stops the job: the pipeline at its next frame or packet, and the
    /// publisher at once (see [`Control::stopped`]).
    pub fn stop(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.stopping.notify_waiters();
    }

    /// Resolves once the job is stopped (at once if it already was).
    pub async fn stopped(&self) {
        let wait = self.stopping.notified();
        tokio::pin!(wait);
        wait.as_mut().enable();
        if !self.cancel.load(Ordering::SeqCst) {
            wait.await;
        }
    }

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
        let done =
            self.frames_done.lock().expect("not poisoned").iter().map(|f| f.load(Ordering::Relaxed)).min().unwrap_or(0);
        if expected == 0 {
            0.0
        } else {
            (done as f64 / expected as f64).min(1.0)
        }
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
    /// The most decoded audio that waited at once to be encoded, in
    /// seconds (bounded by how far audio may run ahead of the video).
    pub peak_audio_buffered_s: f64,
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
    let mut input = probe::open(reader, move || cancel_probe.cancel.load(Ordering::Relaxed)).map_err(|e| {
        match (&e, io_failure.lock().expect("not poisoned").clone()) {
            // A failure outside libav (storage, the spool's disk) is the cause of whatever opening then said.
            (JobError::Permanent(_) | JobError::Retryable(_), Some(outside)) => outside,
            _ => e,
        }
    })?;
    let probe = probe::inspect(&input)?;
    tracing::info!(format = %probe.format, video = ?probe.video, audio = ?probe.audio, duration_s = ?probe.duration_s, "probed");
    let plan = plan_ladder(&probe.source_video(), options)
        .map_err(|e| JobError::permanent(format!("the video cannot be transcoded: {e}")))?;
    let fps = plan.frame_rate.as_f64();
    let declared = probe.duration_s;
    let mut video = VideoDecoder::open(
        &input.stream(probe.video.index).expect("probed"),
        &probe.video,
        tuning.decoder_threads,
        fps,
        declared,
    )?;
    let settings = RungSettings { plan: &plan, preset: &options.preset, tuning, color: probe.video.color };
    // Every rung must share one reordering delay (checked by each rung) so
    // that all timelines, and the audio, start at the same moment.
    let delay_frames = match plan.rungs.len() {
        0 => 0,
        n => rung::reorder_delay_frames(n - 1, &settings)?,
    };
    let mut audio = match &probe.audio {
        Some(a) => Some(AudioTrack::new(&input.stream(a.index).expect("probed"), f64::from(delay_frames) / fps)?),
        None => None,
    };
    let has_audio = audio.is_some();
    if let Some(d) = declared {
        control.frames_expected.store((d * fps).round() as u64, Ordering::Relaxed);
        control.source_duration_ms.store((d * 1000.0).round().max(1.0) as u64, Ordering::Relaxed);
    }
    let counters: Vec<Arc<AtomicU64>> = plan.rungs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    *control.frames_done.lock().expect("not poisoned") = counters.clone();
    send(&events, Produced::Plan { plan: plan.clone(), has_audio, duration_s: declared })?;
    let start = RungStart {
        settings: &settings,
        audio: audio.as_ref().map(AudioTrack::parameters),
        events: &events,
        counters: &counters,
        control: &control,
        delay_frames,
        audio_priming: audio.as_ref().map_or(0, AudioTrack::priming),
        frame_queue: tuning.frame_queue,
    };
    let (dw, dh) = probe.source_video().display_size();
    let streams = Streams { video: probe.video.index, audio: probe.audio.as_ref().map(|a| a.index) };
    // Other tracks, subtitles, data and attachments are dropped by the
    // demuxer: never decoded, never queued.
    for i in 0..input.nb_streams() as usize {
        if i != streams.video && Some(i) != streams.audio {
            if let Some(mut s) = input.stream_mut(i) {
                // SAFETY: setting a plain field of a stream the open input owns.
                unsafe { (*s.as_mut_ptr()).discard = ff::ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
    }

    std::thread::scope(|scope| -> Result<Summary, JobError> {
        let fanout = Fanout::start(scope, &start)?;
        if !has_audio && !fanout.audio_end() {
            fanout.join(&control)?;
            return Err(JobError::retryable("an encoder stopped before any input"));
        }
        let mut output = Output {
            clock: ConstantRate::new(fps),
            thumbs: Thumbnailer::new(dw, dh, declared),
            last_frame: None,
            fanout: &fanout,
            events: &events,
            plan: &plan,
            fps,
            audio_told: false,
        };
        let ended = demux(&mut input, streams, &mut video, &mut audio, &mut output, &control, &io_failure)?;
        let (clock, mut thumbs, last_frame) = (output.clock, output.thumbs, output.last_frame);
        let rungs = fanout.join(&control)?;
        if let Ended::Failed(e) = ended {
            return Err(e);
        }
        if video.frames == 0 {
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
                send(&events, Produced::Poster { bytes: thumbs.poster(&f.0)? })?;
            }
        }
        let thumbnails = match thumbs.finish()? {
            Some((bytes, meta)) => {
                send(&events, Produced::Sprite { bytes, meta })?;
                Some(meta)
            }
            None => None,
        };
        let peak_audio_buffered_s = audio.as_ref().map_or(0.0, AudioTrack::peak_buffered_s);
        Ok(Summary {
            duration_s,
            has_audio,
            frame_rate: fps,
            rungs,
            thumbnails,
            probe: probe.clone(),
            peak_audio_buffered_s,
        })
    })
}

fn send(events: &Sender<Produced>, p: Produced) -> Result<(), JobError> {
    events.blocking_send(p).map_err(|_| JobError::Stopped)
}

/// The source's streams the pipeline reads.
#[derive(Clone, Copy)]
struct Streams {
    video: usize,
    audio: Option<usize>,
}

/// How reading the source ended, when it did not fail outright.
enum Ended {
    /// The whole source was read and everything passed on.
    Complete,
    /// A rung hung up; joining the rungs tells why.
    HungUp,
    /// Reading failed (storage, or a damaged file past what can be skipped);
    /// reported once the rungs have stopped.
    Failed(JobError),
}

/// The read loop: packets from the demuxer to the video decoder or the audio
/// track, what they make on to the rungs, then the ends of both streams.
fn demux(
    input: &mut ff::format::context::Input,
    streams: Streams,
    video: &mut VideoDecoder,
    audio: &mut Option<AudioTrack>,
    out: &mut Output<'_, '_>,
    control: &Control,
    io_failure: &IoFailure,
) -> Result<Ended, JobError> {
    let mut packet = ff::Packet::empty();
    // Packets that could not be read or decoded; past 50 the file is damaged beyond skipping.
    let mut bad_packets = 0u32;
    loop {
        if control.cancel.load(Ordering::Relaxed) {
            return Err(JobError::LeaseLost);
        }
        // av_read_frame needs a blank packet: without this, every packet's
        // buffer (for Matroska, a reference to its whole block) stayed
        // referenced for the rest of the job, so memory grew with the file.
        // SAFETY: `packet` is a valid packet we own; unref leaves it blank.
        unsafe { ff::ffi::av_packet_unref(ff::packet::Mut::as_mut_ptr(&mut packet)) };
        match packet.read(input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(e) => {
                if io_failure.lock().expect("not poisoned").is_some() {
                    return Ok(Ended::Failed(read_error(e, io_failure, "read it")));
                }
                bad_packets += 1;
                if bad_packets > 50 {
                    return Ok(Ended::Failed(read_error(e, io_failure, "read past a damaged part")));
                }
                continue;
            }
        }
        let index = packet.stream();
        if index == streams.video {
            if !video.send_packet(&packet) {
                bad_packets += 1;
            }
            if !out.video(video, audio)? {
                return Ok(Ended::HungUp);
            }
        } else if let Some(track) = audio.as_mut().filter(|_| Some(index) == streams.audio) {
            if !out.fanout.audio(track.push(&packet)?) {
                return Ok(Ended::HungUp);
            }
        }
    }
    video.send_eof();
    if !out.video(video, audio)? {
        return Ok(Ended::HungUp);
    }
    if video.frames == 0 {
        return Ok(Ended::Complete);
    }
    let end = video.end_s();
    let last_slots = out.clock.finish(end);
    if !out.emit(last_slots)? {
        return Ok(Ended::HungUp);
    }
    if let Some(track) = audio.as_mut() {
        // A rung that hung up reports its own error when joined.
        if !out.fanout.audio(track.finish(end)?) || !out.fanout.audio_end() {
            return Ok(Ended::HungUp);
        }
    }
    Ok(Ended::Complete)
}

/// A frame of its own (pts, picture type) that shares `frame`'s pictures:
/// the planes are reference-counted, not copied. A deep copy cost 3.1 MB of
/// memory traffic per 1080p frame, and a frame the clock repeats is still
/// sent as its own numbered frame.
fn new_reference(frame: &ff::frame::Video) -> Result<ff::frame::Video, JobError> {
    let mut f = ff::frame::Video::empty();
    // SAFETY: both are valid frames and `f` is freshly allocated and empty, as
    // av_frame_ref requires; it adds references to the source's buffers (or
    // copies a source that is not reference-counted) and copies its properties.
    let r = unsafe { ff::ffi::av_frame_ref(f.as_mut_ptr(), frame.as_ptr()) };
    if r < 0 {
        return Err(JobError::retryable(format!("referencing a decoded frame: {}", ff::Error::from(r))));
    }
    Ok(f)
}

/// Where decoded video goes: the constant-rate clock, the thumbnails, and
/// the top rung; the audio track is told where the video is.
struct Output<'f, 'scope> {
    clock: ConstantRate<Arc<SharedFrame>>,
    thumbs: Thumbnailer,
    /// The latest frame, for a poster when the video is shorter than its time.
    last_frame: Option<Arc<SharedFrame>>,
    fanout: &'f Fanout<'scope>,
    events: &'f Sender<Produced>,
    plan: &'f LadderPlan,
    fps: f64,
    /// The audio track knows when the video starts.
    audio_told: bool,
}

impl Output<'_, '_> {
    /// Passes on the frames the decoder has ready. False when a rung hung up.
    fn video(&mut self, video: &mut VideoDecoder, audio: &mut Option<AudioTrack>) -> Result<bool, JobError> {
        let frames = video.receive_frames()?;
        if !self.audio_told {
            if let (Some(track), Some(start)) = (audio.as_mut(), video.start_s()) {
                self.audio_told = true;
                if !self.fanout.audio(track.set_video_start(start)?) {
                    return Ok(false);
                }
            }
        }
        for timed in frames {
            let shared = Arc::new(SharedFrame(timed.frame));
            self.last_frame = Some(Arc::clone(&shared));
            let slots = self.clock.push(timed.t, shared);
            if !self.emit(slots)? {
                return Ok(false);
            }
            // Audio that comes late in the file (or never) is not waited for
            // beyond a bound: encoded video would pile up in every rung.
            if let Some(track) = audio.as_mut() {
                if !self.fanout.audio(track.keep_up(self.clock.emitted() as f64 / self.fps)?) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends the constant-rate frames that became final: numbered, with a
    /// keyframe where the plan puts one, to the thumbnails and the top rung.
    fn emit(&mut self, slots: Vec<(u64, Arc<SharedFrame>)>) -> Result<bool, JobError> {
        for (n, frame) in slots {
            let mut f = new_reference(&frame.0)?;
            f.set_pts(Some(n as i64));
            f.set_kind(if self.plan.is_keyframe(n) { ff::picture::Type::I } else { ff::picture::Type::None });
            if let Some(jpeg) = self.thumbs.on_frame(n as f64 / self.fps, &f)? {
                send(self.events, Produced::Poster { bytes: jpeg })?;
            }
            if !self.fanout.frame(SharedFrame(f)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

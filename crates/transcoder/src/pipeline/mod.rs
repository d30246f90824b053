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
//!
//! A long source may instead be encoded as chunks on several transcoders
//! ([`transcode_with`] with [`Mode::Chunk`]): each decodes from the keyframe
//! before its first output frame, numbers frames and segments as the whole
//! video does, and rewrites its fragments' decode times to the single
//! pass's, so the chunks' segments form the single pass's ladder; chunk 0's
//! task also makes the audio as a rendition of its own ([`rendition`]).
//!
//! The cover and the animated preview a job may ask for are made apart,
//! after the ladder, by a short second read of the source ([`extras`]).

pub mod audio;
pub mod cfr;
pub mod encoders;
pub mod extras;
pub mod fanout;
pub mod fmp4;
pub mod frames;
pub mod probe;
pub mod rendition;
pub mod rung;
pub mod thumbs;
pub mod tuning;
pub mod video;

use std::io::{Read, Seek};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ffmpeg_next as ff;
use media_core::video::chunks::{ChunkGeometry, ChunkSource, ChunkSpec};
use media_core::video::job::ThumbnailMeta;
use media_core::video::ladder::{plan_ladder, LadderOptions, LadderPlan};
use tokio::sync::mpsc::Sender;

use crate::error::JobError;
use audio::AudioTrack;
use cfr::ConstantRate;
use fanout::{Fanout, RungStart};
use rendition::AudioRendition;
use rung::{ChunkPlace, RungReport, RungSettings};
use thumbs::Thumbnailer;
pub use tuning::{parse_x264_rung, Machine, Tuning};
use video::VideoDecoder;

/// A decoded frame shared read-only by every rung.
pub struct SharedFrame(pub ff::frame::Video);
// SAFETY: rungs only read the frame (scaling reads its planes; the encoder
// takes its own reference); nothing mutates it after it is shared.
unsafe impl Sync for SharedFrame {}
unsafe impl Send for SharedFrame {}

/// An output frame as the rungs pass it down their chain: the SDR picture
/// (every H.264 rung's source; an HDR source's tone-mapped), and an HDR
/// source's own picture when the ladder keeps HDR in some rungs. Each rung
/// scales the one its range needs and passes the other on untouched, so
/// SDR rungs scale from the SDR rung above and HDR rungs from the HDR one.
#[derive(Clone)]
pub struct RungFrame {
    pub sdr: Arc<SharedFrame>,
    pub hdr: Option<Arc<SharedFrame>>,
}

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
    /// Sent right after `Plan` when the run is a chunk of a chunked job:
    /// segments carry global seqs (from `first_seq`), rungs are video only,
    /// and no playlist or master is written by this task.
    Chunk {
        spec: ChunkSpec,
    },
    /// The audio rendition's init segment (chunk mode, the task with `audio`).
    AudioInit {
        bytes: Vec<u8>,
    },
    /// One segment of the audio rendition; `seq` spans the time of video segment `seq`.
    AudioSegment {
        seq: u32,
        duration_s: f64,
        bytes: Vec<u8>,
    },
}

/// How [`transcode_with`] runs.
pub enum Mode {
    /// The whole source in one pass.
    Whole,
    /// One chunk task of a chunked job.
    Chunk(ChunkSpec),
    /// A whole-job lease that may turn into chunk 0: once the source is
    /// probed (and only when it declares a duration), the function is called
    /// once, on the pipeline's thread, with what the planner needs.
    /// `Ok(Some(spec))` runs that chunk, `Ok(None)` a single pass.
    Decide(Decide),
}

/// The decision of [`Mode::Decide`].
pub type Decide = Box<dyn FnOnce(&ChunkSource) -> Result<Option<ChunkSpec>, JobError> + Send>;

/// What a chunk task made, besides its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkDone {
    /// Output frames encoded (start..end, or to the end of the file).
    pub frames: u64,
    /// Segments written per video rung.
    pub segments: u32,
    /// Audio rendition segments, when this task made the audio.
    pub audio_segments: Option<u32>,
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
    /// Set when the run was a chunk of a chunked job.
    pub chunk: Option<ChunkDone>,
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
    transcode_with(reader, io_failure, options, tuning, Mode::Whole, events, control)
}

/// The frame geometry of `plan` for a source of `duration_s` seconds, as
/// the chunk planner and every chunk task derive it.
pub fn chunk_geometry(plan: &LadderPlan, duration_s: f64) -> ChunkGeometry {
    let total = duration_s * plan.frame_rate.as_f64();
    ChunkGeometry {
        frame_rate: plan.frame_rate,
        gop_frames: plan.gop_frames,
        first_segment_frames: plan.first_frames(),
        segment_frames: plan.segment_frames(),
        total_frames: if total.is_finite() { total.round().max(0.0) as u64 } else { 0 },
    }
}

/// A chunk spec fits this transcoder's own plan: the same frame geometry,
/// and a start and end on segment boundaries with the seq that goes there.
fn check_chunk(spec: &ChunkSpec, plan: &LadderPlan) -> Result<(), JobError> {
    let ours = chunk_geometry(plan, 0.0);
    let g = &spec.geometry;
    let same = (g.frame_rate, g.gop_frames, g.first_segment_frames, g.segment_frames)
        == (ours.frame_rate, ours.gop_frames, ours.first_segment_frames, ours.segment_frames);
    if !same {
        return Err(JobError::retryable(format!(
            "internal error: chunk {} was planned for {}/{} fps, {}-frame GOPs and segments of {}+{} frames, but this transcoder plans {}/{} fps, {}, {}+{} from the same source",
            spec.index, g.frame_rate.num, g.frame_rate.den, g.gop_frames, g.first_segment_frames, g.segment_frames,
            ours.frame_rate.num, ours.frame_rate.den, ours.gop_frames, ours.first_segment_frames, ours.segment_frames
        )));
    }
    let first_seq_at = |frame: u64| -> Option<u32> {
        if frame == 0 {
            return Some(0);
        }
        let first = u64::from(plan.first_frames());
        let seg = u64::from(plan.segment_frames().max(1));
        (frame >= first && (frame - first).is_multiple_of(seg))
            .then(|| u32::try_from((frame - first) / seg + 1).ok())?
    };
    // The audio rendition is made by reading the source from its start.
    if spec.audio && spec.start_frame != 0 {
        return Err(JobError::retryable(format!(
            "internal error: chunk {} starts at frame {} but is asked for the audio, which only a chunk from the start makes",
            spec.index, spec.start_frame
        )));
    }
    let start_ok = first_seq_at(spec.start_frame) == Some(spec.first_seq);
    let end_ok = spec.end_frame.is_none_or(|e| e > spec.start_frame && e > 0 && first_seq_at(e).is_some());
    if !start_ok || !end_ok {
        return Err(JobError::retryable(format!(
            "internal error: chunk {} (frames {}..{:?}, first segment {}) does not start and end on segment boundaries",
            spec.index, spec.start_frame, spec.end_frame, spec.first_seq
        )));
    }
    Ok(())
}

/// How far before a chunk's start the pre-roll seek aims: an MP4 index
/// seeks by decode time, and a keyframe's presentation comes a few frames
/// after it.
const SEEK_MARGIN_S: f64 = 1.0;

/// Moves the input to the last keyframe of `stream` at or before `t_s`
/// (source seconds). False when the container would not seek: reading then
/// starts at the beginning, which costs time but gives the same frames.
fn seek_before(input: &mut ff::format::context::Input, stream: usize, t_s: f64) -> bool {
    let Some(tb) = input.stream(stream).map(|s| s.time_base()) else { return false };
    let ts = (t_s.max(0.0) / f64::from(tb)).floor();
    if !ts.is_finite() {
        return false;
    }
    let ts = ts as i64;
    // SAFETY: a valid, open input context and one of its streams' indices.
    let r = unsafe { ff::ffi::avformat_seek_file(input.as_mut_ptr(), stream as i32, i64::MIN, ts, ts, 0) };
    r >= 0
}

/// [`transcode`] as `mode` says: the whole source, or one chunk of a
/// chunked job (its frames only, video-only rungs whose segments carry the
/// whole video's seqs and decode times, and for the task with `audio` the
/// audio rendition of the whole source).
pub fn transcode_with<R: Read + Seek + Send + 'static>(
    reader: R,
    io_failure: IoFailure,
    options: &LadderOptions,
    tuning: &Tuning,
    mode: Mode,
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
    // An HDR source's HEVC and AV1 rungs keep its range; its H.264 rungs get it tone-mapped.
    let plan = plan_ladder(&probe.source_video(), options)
        .map_err(|e| JobError::permanent(format!("the video cannot be transcoded: {e}")))?
        .keeping_hdr(probe.video.color.range());
    let fps = plan.frame_rate.as_f64();
    let declared = probe.duration_s;
    let chunk = match mode {
        Mode::Whole => None,
        Mode::Chunk(spec) => Some(spec),
        Mode::Decide(decide) => match declared {
            Some(duration_s) => decide(&ChunkSource {
                geometry: chunk_geometry(&plan, duration_s),
                t0_s: probe.video.start_s,
                duration_s,
                has_audio: probe.audio.is_some(),
                rungs: plan.rungs.clone(),
            })?,
            None => None,
        },
    };
    if let Some(spec) = &chunk {
        check_chunk(spec, &plan)?;
        tracing::debug!(index = spec.index, first_seq = spec.first_seq, "chunk decoding from its spec");
    }
    let mut video = VideoDecoder::open(
        &input.stream(probe.video.index).expect("probed"),
        &probe.video,
        tuning.decoder_threads,
        fps,
        declared,
    )?;
    if plan.has_hdr_rungs() {
        video = video.keeping_hdr();
    }
    if let Some(spec) = &chunk {
        // Every chunk times its frames on the whole video's clock.
        video = video.with_origin(spec.t0_s);
    }
    // An HDR source reaches its SDR rungs tone-mapped (`VideoDecoder`), tagged BT.709, and its HDR rungs as it is.
    let settings = RungSettings { plan: &plan, preset: &options.preset, tuning, source_color: probe.video.color };
    if let Some(transfer) = probe.video.color.hdr_transfer() {
        let kept: Vec<&str> = plan.rungs.iter().filter(|r| !r.range.is_sdr()).map(|r| r.name.as_str()).collect();
        tracing::info!(transfer, hdr_rungs = ?kept, "an HDR source: tone-mapped to SDR BT.709 for the other rungs");
    }
    // Every rung's timeline is shifted by the ladder's reordering delay (no
    // rung may reorder more: checked by each) so that all timelines, and the
    // audio, start at the same moment.
    let delay_frames = encoders::ladder_delay(&settings)?;
    // A chunk makes audio only when its spec says so (task 0), as a rendition of its own.
    let audio_wanted = chunk.as_ref().is_none_or(|c| c.audio);
    let mut audio = match probe.audio.as_ref().filter(|_| audio_wanted) {
        Some(a) => Some(AudioTrack::new(&input.stream(a.index).expect("probed"), f64::from(delay_frames) / fps)?),
        None => None,
    };
    let has_audio = audio.is_some();
    let (first_frame, end_frame) = chunk.as_ref().map_or((0, None), |c| (c.start_frame, c.end_frame));
    if let Some(d) = declared {
        let total = (d * fps).round() as u64;
        control.frames_expected.store(end_frame.unwrap_or(total).saturating_sub(first_frame), Ordering::Relaxed);
        control.source_duration_ms.store((d * 1000.0).round().max(1.0) as u64, Ordering::Relaxed);
    } else if let Some(e) = end_frame {
        control.frames_expected.store(e.saturating_sub(first_frame), Ordering::Relaxed);
    }
    let counters: Vec<Arc<AtomicU64>> = plan.rungs.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
    *control.frames_done.lock().expect("not poisoned") = counters.clone();
    send(&events, Produced::Plan { plan: plan.clone(), has_audio, duration_s: declared })?;
    if let Some(spec) = &chunk {
        send(&events, Produced::Chunk { spec: spec.clone() })?;
    }
    let rendition = match (&chunk, &audio) {
        (Some(_), Some(track)) => {
            Some(AudioRendition::start(track.parameters(), &plan, delay_frames, track.priming(), &events)?)
        }
        _ => None,
    };
    let start = RungStart {
        settings: &settings,
        // In chunk mode the rungs are video only.
        audio: audio.as_ref().filter(|_| chunk.is_none()).map(AudioTrack::parameters),
        events: &events,
        counters: &counters,
        control: &control,
        delay_frames,
        audio_priming: audio.as_ref().map_or(0, AudioTrack::priming),
        frame_queue: tuning.frame_queue,
        chunk: chunk.as_ref().map(|c| ChunkPlace { start_frame: c.start_frame, first_seq: c.first_seq }),
    };
    let (dw, dh) = probe.source_video().display_size();
    let streams =
        Streams { video: probe.video.index, audio: probe.audio.as_ref().filter(|_| has_audio).map(|a| a.index) };
    // Other tracks, subtitles, data and attachments (and the audio of a
    // chunk that does not make it) are dropped by the demuxer: never
    // decoded, never queued.
    for i in 0..input.nb_streams() as usize {
        if i != streams.video && Some(i) != streams.audio {
            if let Some(mut s) = input.stream_mut(i) {
                // SAFETY: setting a plain field of a stream the open input owns.
                unsafe { (*s.as_mut_ptr()).discard = ff::ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
    }
    if let Some(spec) = chunk.as_ref().filter(|c| c.start_frame > 0) {
        // Pre-roll: decode from the keyframe before the chunk's first frame.
        let at = spec.t0_s + spec.start_frame as f64 / fps - SEEK_MARGIN_S;
        if !seek_before(&mut input, probe.video.index, at) {
            tracing::warn!(at_s = at, "the source would not seek; decoding the chunk from the start");
        }
    }

    std::thread::scope(|scope| -> Result<Summary, JobError> {
        let mut fanout = Fanout::start(scope, &start)?;
        if start.audio.is_none() && !fanout.audio_end() {
            fanout.join(&control)?;
            return Err(JobError::retryable("an encoder stopped before any input"));
        }
        let mut output = Output {
            clock: ConstantRate::starting_at(fps, first_frame),
            thumbs: Thumbnailer::new(dw, dh, declared),
            thumbs_on: chunk.as_ref().is_none_or(|c| c.index == 0),
            last_frame: None,
            fanout: &mut fanout,
            events: &events,
            plan: &plan,
            fps,
            audio_told: false,
            range: (first_frame, end_frame),
            video_done: false,
            checked_start: first_frame == 0,
            rendition,
            position_s: 0.0,
            video_time_base: f64::from(input.stream(probe.video.index).expect("probed").time_base()),
            source_frame_s: 1.0 / probe.video.frame_rate.as_f64().max(1.0),
            origin_s: chunk.as_ref().map_or(0.0, |c| c.t0_s),
            audio_segments: None,
        };
        let ended = demux(&mut input, streams, &mut video, &mut audio, &mut output, &control, &io_failure)?;
        let Output { clock, thumbs, last_frame, thumbs_on, audio_segments, .. } = output;
        let mut thumbs = thumbs;
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
        let video_end = end_frame.map_or(clock.emitted(), |e| clock.emitted().min(e));
        let frames = video_end.saturating_sub(first_frame);
        if chunk.is_some() && frames == 0 {
            return Err(JobError::permanent(format!(
                "the upload is truncated or damaged: its video stops at {:.1} s, before this part of it starts ({:.1} s)",
                clock.emitted() as f64 / fps,
                first_frame as f64 / fps
            )));
        }
        if let (Some(d), None) = (declared, end_frame) {
            let end_s = video_end as f64 / fps;
            if end_s < d * 0.8 - 0.5 {
                return Err(JobError::permanent(format!(
                    "the upload is truncated or damaged: its video stops at {end_s:.1} s of the {d:.1} s it declares"
                )));
            }
        }
        if thumbs_on && !thumbs.poster_done() {
            if let Some(f) = &last_frame {
                send(&events, Produced::Poster { bytes: thumbs.poster(&f.sdr.0)? })?;
            }
        }
        // A chunked job's thumbnails are its poster only (no sprite).
        let thumbnails = match chunk.is_none().then(|| thumbs.finish()).transpose()?.flatten() {
            Some((bytes, meta)) => {
                send(&events, Produced::Sprite { bytes, meta })?;
                Some(meta)
            }
            None => None,
        };
        let peak_audio_buffered_s = audio.as_ref().map_or(0.0, AudioTrack::peak_buffered_s);
        let chunk_done = chunk.as_ref().map(|_| ChunkDone {
            frames,
            segments: rungs.first().map_or(0, |r| r.segments),
            audio_segments,
        });
        Ok(Summary {
            duration_s: frames as f64 / fps,
            has_audio,
            frame_rate: fps,
            rungs,
            thumbnails,
            probe: probe.clone(),
            peak_audio_buffered_s,
            chunk: chunk_done,
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
/// track, what they make on to the rungs, then the ends of both streams. A
/// chunk stops decoding video at its end; the task that makes the audio
/// reads on to the end of the file for it, following the video's position
/// from its packets alone.
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
            if out.video_done {
                if !out.video_position(&packet, audio)? {
                    return Ok(Ended::HungUp);
                }
                continue;
            }
            if !video.send_packet(&packet) {
                bad_packets += 1;
            }
            if !out.video(video, audio)? {
                return Ok(Ended::HungUp);
            }
            if out.video_done {
                // The chunk's frames are all out: the rungs finish their last segment now.
                out.fanout.close_input();
                if audio.is_none() {
                    return Ok(Ended::Complete);
                }
            }
        } else if let Some(track) = audio.as_mut().filter(|_| Some(index) == streams.audio) {
            let packets = track.push(&packet)?;
            if !out.audio(packets)? {
                return Ok(Ended::HungUp);
            }
        }
    }
    let end = if out.video_done {
        // As the decoder would say: the last frame's time plus one frame of the source's rate.
        out.position_s + out.source_frame_s
    } else {
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
        end
    };
    if let Some(track) = audio.as_mut() {
        if let Some(mut rendition) = out.rendition.take() {
            rendition.audio(track.finish_filled(end)?)?;
            // The video's frame count, as the clock counts it at the end.
            let frames = ((end * out.fps).round().max(1.0) as u64).max(out.clock.emitted());
            out.audio_segments = Some(rendition.finish(frames)?);
        } else if !out.fanout.audio(track.finish(end)?) || !out.fanout.audio_end() {
            // A rung that hung up reports its own error when joined.
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
/// the top rung; the audio goes to the rungs, or to the audio rendition of
/// a chunked job.
struct Output<'f, 'scope> {
    clock: ConstantRate<RungFrame>,
    thumbs: Thumbnailer,
    /// Whether this run makes the poster (and sprite): not a chunk after the first.
    thumbs_on: bool,
    /// The latest frame, for a poster when the video is shorter than its time.
    last_frame: Option<RungFrame>,
    fanout: &'f mut Fanout<'scope>,
    events: &'f Sender<Produced>,
    plan: &'f LadderPlan,
    fps: f64,
    /// The audio track knows when the video starts.
    audio_told: bool,
    /// The output frames this run encodes: from, and up to (exclusive; `None`: the end).
    range: (u64, Option<u64>),
    /// Every frame of the range is out (a chunk that ends before the file does).
    video_done: bool,
    /// The first decoded frame of a chunk was checked to come at or before its start.
    checked_start: bool,
    rendition: Option<AudioRendition>,
    /// How far the video reaches, in seconds from slot 0, once it is followed by its packets.
    position_s: f64,
    video_time_base: f64,
    /// One frame of the source's own rate, in seconds: how long its last frame lasts.
    source_frame_s: f64,
    origin_s: f64,
    audio_segments: Option<u32>,
}

impl Output<'_, '_> {
    /// Encoded audio, to the rungs or the audio rendition. False when a rung hung up.
    fn audio(&mut self, packets: Vec<audio::AudioPacket>) -> Result<bool, JobError> {
        match self.rendition.as_mut() {
            Some(r) => r.audio(packets).map(|()| true),
            None => Ok(self.fanout.audio(packets)),
        }
    }

    /// Passes on the frames the decoder has ready. False when a rung hung up.
    fn video(&mut self, video: &mut VideoDecoder, audio: &mut Option<AudioTrack>) -> Result<bool, JobError> {
        let frames = video.receive_frames()?;
        if !self.audio_told {
            if let (Some(track), Some(start)) = (audio.as_mut(), video.start_s()) {
                self.audio_told = true;
                let packets = track.set_video_start(start)?;
                if !self.audio(packets)? {
                    return Ok(false);
                }
            }
        }
        for timed in frames {
            if self.video_done {
                break;
            }
            if !self.checked_start {
                self.checked_start = true;
                let slot = (timed.t * self.fps).round();
                if slot > self.range.0 as f64 {
                    return Err(JobError::retryable(format!(
                        "internal error: seeking to the chunk at frame {} landed after it (frame {slot})",
                        self.range.0
                    )));
                }
            }
            let shared =
                RungFrame { sdr: Arc::new(SharedFrame(timed.frame)), hdr: timed.hdr.map(|h| Arc::new(SharedFrame(h))) };
            self.last_frame = Some(shared.clone());
            let slots = self.clock.push(timed.t, shared);
            if !self.emit(slots)? {
                return Ok(false);
            }
            // Audio that comes late in the file (or never) is not waited for
            // beyond a bound: encoded video would pile up in every rung.
            if let Some(track) = audio.as_mut() {
                let packets = track.keep_up(self.clock.emitted() as f64 / self.fps)?;
                if !self.audio(packets)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// A video packet past the chunk's end: the video reaches at least its
    /// time, which is all the audio needs to know. False when a rung hung up.
    fn video_position(&mut self, packet: &ff::Packet, audio: &mut Option<AudioTrack>) -> Result<bool, JobError> {
        let Some(ts) = packet.pts().or(packet.dts()) else { return Ok(true) };
        let t = ts as f64 * self.video_time_base - self.origin_s;
        if !(t.is_finite() && t > self.position_s) {
            return Ok(true);
        }
        self.position_s = t;
        if let Some(r) = self.rendition.as_mut() {
            r.video_reaches((t * self.fps).round() as u64)?;
        }
        if let Some(track) = audio.as_mut() {
            let packets = track.keep_up(t)?;
            return self.audio(packets);
        }
        Ok(true)
    }

    /// Sends the constant-rate frames that became final: numbered from the
    /// run's first frame, with a keyframe where the plan puts one (by the
    /// whole video's frame number), to the thumbnails and the top rung.
    fn emit(&mut self, slots: Vec<(u64, RungFrame)>) -> Result<bool, JobError> {
        let (from, to) = self.range;
        for (n, frame) in slots {
            if n < from {
                continue;
            }
            if to.is_some_and(|to| n >= to) {
                self.video_done = true;
                break;
            }
            let kind = if self.plan.is_keyframe(n) { ff::picture::Type::I } else { ff::picture::Type::None };
            let numbered = |shared: &SharedFrame| -> Result<Arc<SharedFrame>, JobError> {
                let mut f = new_reference(&shared.0)?;
                f.set_pts(Some((n - from) as i64));
                f.set_kind(kind);
                Ok(Arc::new(SharedFrame(f)))
            };
            let out = RungFrame { sdr: numbered(&frame.sdr)?, hdr: frame.hdr.as_deref().map(numbered).transpose()? };
            if self.thumbs_on {
                if let Some(jpeg) = self.thumbs.on_frame(n as f64 / self.fps, &out.sdr.0)? {
                    send(self.events, Produced::Poster { bytes: jpeg })?;
                }
            }
            if !self.fanout.frame(out) {
                return Ok(false);
            }
        }
        if to.is_some_and(|to| self.clock.emitted() >= to) {
            self.video_done = true;
        }
        if self.video_done {
            // The rest of the video is followed by its packets from here.
            self.position_s = self.position_s.max(self.clock.emitted() as f64 / self.fps);
        }
        if let Some(r) = self.rendition.as_mut() {
            r.video_reaches(self.clock.emitted())?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_core::video::ladder::{Rational, SourceVideo};

    fn plan() -> LadderPlan {
        let source = SourceVideo {
            width: 640,
            height: 360,
            sample_aspect: Rational::new(1, 1),
            rotation: 0,
            frame_rate: Rational::new(30, 1),
        };
        plan_ladder(&source, &LadderOptions::default()).unwrap()
    }

    fn spec(start_frame: u64, end_frame: Option<u64>, first_seq: u32) -> ChunkSpec {
        ChunkSpec {
            index: 1,
            count: 3,
            start_frame,
            end_frame,
            first_seq,
            t0_s: 0.0,
            geometry: chunk_geometry(&plan(), 20.0),
            audio: false,
        }
    }

    /// A refused spec is our planner's or a mixed fleet's fault, not the
    /// upload's: retryable (the public message says "on our side"), and
    /// marked internal, so its detail never reaches a public route.
    fn refused(s: &ChunkSpec) -> String {
        match check_chunk(s, &plan()) {
            Err(JobError::Retryable(m)) if m.starts_with("internal error: ") => m,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn a_chunk_must_fit_this_transcoder_s_plan() {
        // Segments end at 15, 135, 255, ... (a half-second first segment, then 4 s).
        let g = chunk_geometry(&plan(), 20.0);
        assert_eq!((g.first_segment_frames, g.segment_frames, g.gop_frames, g.total_frames), (15, 120, 60, 600));
        assert!(check_chunk(&spec(0, Some(135), 0), &plan()).is_ok());
        assert!(check_chunk(&spec(135, Some(375), 2), &plan()).is_ok());
        assert!(check_chunk(&spec(375, None, 4), &plan()).is_ok());
        assert!(check_chunk(&ChunkSpec { audio: true, ..spec(0, Some(15), 0) }, &plan()).is_ok());
        // Not on a boundary, the wrong seq, empty, audio from the middle, another geometry.
        assert!(refused(&spec(120, Some(375), 2)).contains("segment boundaries"));
        assert!(refused(&spec(135, Some(375), 3)).contains("segment boundaries"));
        assert!(refused(&spec(135, Some(135), 2)).contains("segment boundaries"));
        assert!(refused(&spec(135, Some(300), 2)).contains("segment boundaries"));
        assert!(refused(&ChunkSpec { audio: true, ..spec(135, None, 2) }).contains("audio"));
        let mut other = spec(135, None, 2);
        other.geometry.first_segment_frames = 60;
        assert!(refused(&other).contains("this transcoder plans"));
    }
}

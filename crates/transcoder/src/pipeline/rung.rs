//! One rung of the ladder, on its own thread: scale the frames it receives
//! to the rung's size, encode them in the rung's codec (libx264, libx265 or
//! SVT-AV1, opened by [`super::encoders`]: fixed closed GOPs aligned with
//! every other rung, VBV-capped bitrate), mux them with the shared AAC
//! packets, and cut a segment at every segment boundary. The short first
//! segment has an encoder run of its own, ended after its last frame, so it
//! is cut without waiting for the encoder's lookahead
//! ([`first_segment_encoder`]).
//!
//! Rungs form a chain, largest first: the top rung gets the decoded frames,
//! and each rung passes its scaled frames on to the next smaller one, which
//! scales from them. With HDR rungs (an HDR source's HEVC and AV1 rungs) the
//! chain carries two pictures a frame ([`RungFrame`]): an SDR rung scales
//! the SDR one (8-bit) and an HDR rung the HDR one (10-bit), each passing
//! the other on untouched. Scaling from the rung above costs about half as much as
//! scaling every rung from the source (measured: 1.6 vs 2.9 CPU-s per 15 s
//! of 1080p for three rungs) and changes the pre-encode picture by about
//! 0.001 SSIM.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use ff::format::Pixel;
use ffmpeg_next as ff;
use media_core::video::codec_strings::video_codec_string;
use media_core::video::ladder::{check_segment_size, LadderPlan, Rung};
use tokio::sync::mpsc::Sender;

use super::audio::{AudioPacket, SharedAudio};
pub use super::encoders::RungSettings;
use super::encoders::{self, err, extradata, honours_forced_keyframes};
use super::fmp4::SegmentWriter;
use super::{Produced, RungFrame, SharedFrame};
use crate::error::JobError;

/// What a rung receives: frames from the rung above (or the decoder), audio from the decoder.
pub enum RungInput {
    /// Output frame `n` (its pts is `n`; boundary frames are marked I).
    Frame(RungFrame),
    Audio(SharedAudio),
    /// No more audio will come (also sent first when the source has none).
    AudioEnd,
}

/// How a rung turned out.
#[derive(Debug, Clone)]
pub struct RungReport {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 video codec, e.g. `avc1.640028`, `av01.0.08M.08`.
    pub video_codec: String,
    pub frames: u64,
    pub segments: u32,
    /// The most encoded frames that waited at once for the audio of their
    /// segment (bounded by the audio track's lag limit).
    pub peak_waiting_frames: usize,
    /// Whether the first segment came from an encoder of its own ([`first_segment_encoder`]).
    pub first_segment_encoder: bool,
}

/// The first segment's own encoder, for a run that starts at frame 0 (a
/// single pass, or a chunked job's first chunk), with the rung's settings.
/// It gets the first segment's frames alone and is ended after the last of
/// them, so it hands over the segment's packets at once, where the main
/// encoder would hold them until it had been given the frames to look ahead
/// past the next keyframe (rc-lookahead, B-frames and frame threads: about
/// 19 frames at `veryfast` with 2 threads, each decoded and analysed first);
/// every rung's first segment, and `playable`, come sooner. The main encoder
/// gets the first segment's frames once that segment is cut, encodes every
/// frame, and its own first segment is dropped, so its rate control and VBV
/// run as with one encoder (an encoder started afresh at the second segment
/// spent a second initial VBV buffer: +25% bitrate on a 6-s clip). The cost
/// is the first segment encoded twice (15 frames a rung), and up to 30
/// frames a rung held meanwhile. Segments are closed GOPs and the same
/// settings give the same parameter sets, so one init segment serves both,
/// as it serves a chunked job's chunks; `None` (the main encoder's own first
/// segment) when they would not.
///
/// Measured through `transcoder transcode` on the 30-s busy 1080p source
/// (`stage` lines, 4 runs each, interleaved; Intel Xeon, 2 cores, in a slow
/// hour of the machine): every rung's first segment was cut at a median of
/// 2.02 s with one encoder and 1.65 s with this. Looking ahead at nothing in
/// the first segment's encoder (`rc-lookahead=0`) gave 1.42 s, but its VBV
/// then spent so little that the first half second's 1080p SSIM fell from
/// 0.972 to 0.947 and a 6-s clip came out 21% under its bitrate; adding
/// `superfast`'s search gave 1.07 s at SSIM 0.893. Neither is used.
///
/// An AV1 rung always has it at frame 0, and its main encoder never sees
/// the first segment: SVT-AV1 keeps its own GOP from its first frame
/// ([`super::encoders`]), so the main encoder starting at the first full
/// GOP is what puts its keyframes on the ladder's.
fn first_segment_encoder(
    index: usize,
    settings: &RungSettings<'_>,
    main: &ff::encoder::Video,
    start_frame: u64,
) -> Result<Option<encoders::Encoder>, JobError> {
    let codec = settings.plan.rungs[index].codec;
    let required = !honours_forced_keyframes(codec);
    if start_frame != 0 || !(settings.tuning.first_segment_encoder || required) {
        return Ok(None);
    }
    let (first, _) = encoders::open(index, settings)?;
    if extradata(&first) != extradata(main) {
        let rung = settings.plan.rungs[index].name.as_str();
        if required {
            return Err(JobError::retryable(format!(
                "internal: the {rung} rung's first-segment encoder made other parameter sets than its main one"
            )));
        }
        tracing::warn!(
            rung,
            "the first segment's encoder made other parameter sets; one encoder encodes every segment"
        );
        return Ok(None);
    }
    Ok(Some(first))
}

/// Reuses this rung's scaled frames once nothing holds them any more (the
/// encoder has copied them, the rung below has scaled from them), instead
/// of allocating a few megabytes for every frame.
#[derive(Default)]
struct FramePool {
    frames: Vec<Arc<SharedFrame>>,
}

impl FramePool {
    /// Frames kept at most: the queue to the rung below plus a few in hand.
    const KEEP: usize = 8;

    fn take(&mut self, format: Pixel, width: u32, height: u32) -> ff::frame::Video {
        let free = self.frames.iter().position(|f| {
            // SAFETY: reading the buffer reference counts of a frame we own a handle to.
            Arc::strong_count(f) == 1 && unsafe { ff::ffi::av_frame_is_writable(f.0.as_ptr() as *mut _) } == 1
        });
        match free {
            Some(i) => match Arc::try_unwrap(self.frames.swap_remove(i)) {
                Ok(frame) => frame.0,
                Err(_) => ff::frame::Video::new(format, width, height),
            },
            None => ff::frame::Video::new(format, width, height),
        }
    }

    fn keep(&mut self, frame: &Arc<SharedFrame>) {
        if self.frames.len() < Self::KEEP {
            self.frames.push(Arc::clone(frame));
        }
    }
}

/// Cuts segments at boundaries and keeps audio on the right side of each cut.
struct Segmenter<'p> {
    writer: SegmentWriter,
    plan: &'p LadderPlan,
    rung: &'p Rung,
    has_audio: bool,
    fps: (i64, i64),
    /// Added to packet timestamps (which count from the run's first frame)
    /// to give output frame numbers: a chunk's first frame, 0 for a single pass.
    offset: u64,
    /// Output frame at which the current segment started.
    seg_start: u64,
    seq: u32,
    /// Audio not yet written, in order.
    audio: VecDeque<AudioPacket>,
    /// Audio is known up to this sample (i64::MAX once it has ended).
    audio_horizon: i64,
    /// Video packets waiting for audio before their cut.
    held: VecDeque<ff::Packet>,
    /// The most packets `held` has had.
    peak_held: usize,
    /// Frames added to video presentation times: the ladder's reordering
    /// delay, so that every rung presents its first frame at the same time.
    video_shift: i64,
    /// Frames added to video decode times: this rung's own reordering delay,
    /// so that its first DTS is 0, read from its first packet (frame 0's
    /// DTS is minus the delay). A rung that reorders less than the ladder
    /// (AV1 reorders nothing) has its frames presented a constant
    /// `video_shift - dts_shift` after they are decoded, as B-frames would
    /// give (a muxer rebases a first DTS above 0 to 0, which would move the
    /// rung's pictures ahead of its audio).
    dts_shift: Option<i64>,
    /// Samples added to audio timestamps so the first is 0 (the AAC priming).
    audio_shift: i64,
    /// Every frame of the current segment has left its encoder (the first
    /// segment's own encoder has ended): the segment is cut once `held` is
    /// written and its audio is known, without waiting for the next keyframe.
    sealed: bool,
}

impl Segmenter<'_> {
    fn frames_to_samples(&self, frames: u64) -> i64 {
        (frames as i64 * i64::from(media_core::video::ladder::AUDIO.sample_rate) * self.fps.1 + self.fps.0 / 2)
            / self.fps.0
    }

    fn duration_s(&self, frames: u64) -> f64 {
        frames as f64 * self.fps.1 as f64 / self.fps.0 as f64
    }

    /// Refuses a segment larger than its rung's cap allows, before it is sent.
    fn checked(&self, seq: u32, duration_s: f64, bytes: &[u8]) -> Result<(), JobError> {
        check_segment_size(self.rung, seq, duration_s, bytes.len() as u64, self.has_audio)
            .map_err(|e| JobError::permanent(e.to_string()))
    }

    fn next_cut(&self) -> u64 {
        self.plan.segment_end_frame(self.seq)
    }

    /// Where a cut before video frame `frames` falls on the (shifted) audio timeline.
    fn cut_in_samples(&self, frames: u64) -> i64 {
        self.frames_to_samples(frames + self.video_shift as u64)
    }

    /// Writes queued audio that plays before `limit` (output samples).
    fn write_audio_before(&mut self, limit: i64) -> Result<(), JobError> {
        while self.audio.front().is_some_and(|a| a.pts + self.audio_shift < limit) {
            let mut a = self.audio.pop_front().expect("checked");
            a.pts += self.audio_shift;
            a.dts += self.audio_shift;
            self.writer.write_audio(&a)?;
        }
        Ok(())
    }

    /// Takes the packets the encoder has ready, to be written by [`Self::drain`].
    /// Packets of frames before `keep_from` (run-local) are dropped: the
    /// main encoder's own first segment, when that came from its own encoder.
    fn receive(&mut self, encoder: &mut ff::encoder::Video, frames_done: &AtomicU64, keep_from: u64) {
        let mut packet = ff::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            if (packet.pts().unwrap_or(0).max(0) as u64) < keep_from {
                continue;
            }
            self.held.push_back(std::mem::replace(&mut packet, ff::Packet::empty()));
            self.peak_held = self.peak_held.max(self.held.len());
            frames_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Gives the main encoder the frames that waited for it while the first
    /// segment had an encoder of its own, and takes what it has ready.
    fn feed_waiting(
        &mut self,
        encoder: &mut encoders::Encoder,
        waiting: &mut Vec<Arc<SharedFrame>>,
        frames_done: &AtomicU64,
        keep_from: u64,
    ) -> Result<(), JobError> {
        for frame in waiting.drain(..) {
            encoder.send_frame(&frame.0).map_err(|e| err(e, "frame"))?;
            self.receive(encoder, frames_done, keep_from);
        }
        Ok(())
    }

    /// Writes whatever can be written now; sends finished segments.
    fn drain(&mut self, rung: usize, events: &Sender<Produced>) -> Result<(), JobError> {
        loop {
            if self.sealed && self.held.is_empty() {
                if !self.cut_before(self.next_cut(), rung, events)? {
                    return Ok(()); // wait for the audio of this segment
                }
                self.sealed = false;
            }
            let Some(pkt) = self.held.front() else { return Ok(()) };
            let pts = pkt.pts().unwrap_or(0).max(0) as u64 + self.offset;
            if pkt.is_key() && pts >= self.next_cut() && !self.cut_before(pts, rung, events)? {
                return Ok(()); // wait for the audio of this segment
            }
            let mut pkt = self.held.pop_front().expect("checked");
            let dts_shift = match self.dts_shift {
                Some(shift) => shift,
                None => {
                    let own = -pkt.dts().unwrap_or(0).min(0);
                    if own > self.video_shift {
                        return Err(JobError::retryable(format!(
                            "internal: rung {} reorders by {own} frames, more than the ladder's {}",
                            self.rung.name.as_str(),
                            self.video_shift
                        )));
                    }
                    *self.dts_shift.insert(own)
                }
            };
            // Every track starts at DTS 0, so the muxer treats every rung alike.
            pkt.set_pts(pkt.pts().map(|t| t + self.video_shift));
            pkt.set_dts(pkt.dts().map(|t| t + dts_shift));
            // libx264 leaves durations at 0; every frame lasts one tick of the constant rate.
            pkt.set_duration(1);
            self.writer.write_video(&mut pkt)?;
            let limit = self.cut_in_samples(self.next_cut().saturating_sub(self.offset));
            self.write_audio_before(limit)?;
        }
    }

    /// Ends the current segment before output frame `at` and sends it, once
    /// the audio up to there is known: false (nothing done) while it is not.
    fn cut_before(&mut self, at: u64, rung: usize, events: &Sender<Produced>) -> Result<bool, JobError> {
        let cut = self.cut_in_samples(at - self.offset);
        if self.audio_horizon < cut {
            return Ok(false);
        }
        self.write_audio_before(cut)?;
        let bytes = self.writer.cut()?;
        let duration_s = self.duration_s(at - self.seg_start);
        self.checked(self.seq, duration_s, &bytes)?;
        send(events, Produced::Segment { rung, seq: self.seq, duration_s, bytes })?;
        self.seq += 1;
        self.seg_start = at;
        Ok(true)
    }
}

fn send(events: &Sender<Produced>, p: Produced) -> Result<(), JobError> {
    events.blocking_send(p).map_err(|_| JobError::Stopped)
}

/// One rung's thread: which rung, what it shares with the others, and its channels.
pub struct RungJob<'a> {
    /// Its place in the plan (0 is the largest).
    pub index: usize,
    pub rung: &'a Rung,
    pub settings: &'a RungSettings<'a>,
    /// The source's audio parameters, when it has audio.
    pub audio: Option<ff::codec::Parameters>,
    pub input: Receiver<RungInput>,
    /// The next smaller rung, which scales from this one's frames.
    pub next: Option<SyncSender<RungInput>>,
    pub events: &'a Sender<Produced>,
    /// Frames encoded, for progress.
    pub frames_done: &'a AtomicU64,
    pub cancel: &'a AtomicBool,
    /// The ladder's reordering delay ([`encoders::ladder_delay`]): every
    /// rung's timeline is shifted by it, and none may reorder more.
    pub expected_delay: u32,
    /// Samples of AAC priming, added to audio timestamps.
    pub audio_priming: i64,
    /// Where a chunk of a chunked job starts (`None`: a single pass).
    pub chunk: Option<ChunkPlace>,
}

/// Where a chunk's frames and segments sit in the whole video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlace {
    /// The output frame of the chunk's first frame (its frames' pts count from it).
    pub start_frame: u64,
    /// The seq of its first segment.
    pub first_seq: u32,
}

/// Runs one rung until its input ends (the sender hangs up).
pub fn run(job: RungJob<'_>) -> Result<RungReport, JobError> {
    let RungJob {
        index,
        rung,
        settings,
        audio,
        input,
        next,
        events,
        frames_done,
        cancel,
        expected_delay,
        audio_priming,
        chunk,
    } = job;
    let (mut encoder, time_base) = encoders::open(index, settings)?;
    let has_audio = audio.is_some();
    let mut writer = SegmentWriter::new(&encoder, time_base, audio)?;
    let video_codec =
        video_codec_string(&writer.init).unwrap_or_else(|| rung.codec.planned_codec_string(rung.range).to_owned());
    send(events, Produced::Init { rung: index, bytes: writer.init.clone(), video_codec: video_codec.clone() })?;
    let place = chunk.unwrap_or(ChunkPlace { start_frame: 0, first_seq: 0 });
    if chunk.is_some() {
        writer.shift_fragments(place.first_seq, place.start_frame);
    }
    let fps = settings.plan.frame_rate;
    let mut seg = Segmenter {
        writer,
        plan: settings.plan,
        rung,
        has_audio,
        fps: (i64::from(fps.num), i64::from(fps.den)),
        offset: place.start_frame,
        seg_start: place.start_frame,
        seq: place.first_seq,
        audio: VecDeque::new(),
        audio_horizon: if has_audio { i64::MIN } else { i64::MAX },
        held: VecDeque::new(),
        peak_held: 0,
        video_shift: i64::from(expected_delay),
        dts_shift: None,
        audio_shift: audio_priming,
        sealed: false,
    };
    let first_end = u64::from(settings.plan.first_frames());
    let mut first_encoder = first_segment_encoder(index, settings, &encoder, place.start_frame)?;
    let split_first = first_encoder.is_some();
    let main_keeps_from = if split_first { first_end } else { 0 };
    // SVT-AV1's main encoder starts at the first full GOP (see `first_segment_encoder`).
    let main_from = if split_first && !honours_forced_keyframes(rung.codec) { first_end } else { 0 };
    // The frames the main encoder gets once the first segment is cut.
    let mut for_main: Vec<Arc<SharedFrame>> = Vec::new();
    let mut scaler: Option<(ff::software::scaling::Context, (Pixel, u32, u32))> = None;
    let mut pool = FramePool::default();
    let (hdr_rung, format) = (!rung.range.is_sdr(), encoders::rung_pixel_format(rung));
    let mut frames = 0u64;
    for msg in input.iter() {
        if cancel.load(Ordering::Relaxed) {
            return Err(JobError::LeaseLost);
        }
        match msg {
            RungInput::Frame(input) => {
                let source = if hdr_rung {
                    input.hdr.as_ref().ok_or_else(|| JobError::retryable("internal: an HDR rung got no HDR frame"))?
                } else {
                    &input.sdr
                };
                let src = &source.0;
                let same = src.width() == rung.width && src.height() == rung.height && src.format() == format;
                let scaled = if same {
                    Arc::clone(source)
                } else {
                    let key = (src.format(), src.width(), src.height());
                    if scaler.as_ref().is_none_or(|(_, k)| *k != key) {
                        let ctx = ff::software::scaling::Context::get(
                            key.0,
                            key.1,
                            key.2,
                            format,
                            rung.width,
                            rung.height,
                            ff::software::scaling::Flags::BICUBIC,
                        )
                        .map_err(|e| {
                            JobError::permanent(format!(
                                "the video's pixel format {:?} cannot be converted: {e}",
                                key.0
                            ))
                        })?;
                        scaler = Some((ctx, key));
                    }
                    let mut out = pool.take(format, rung.width, rung.height);
                    scaler.as_mut().expect("set above").0.run(src, &mut out).map_err(|e| err(e, "scale"))?;
                    out.set_pts(src.pts());
                    out.set_kind(src.kind());
                    let shared = Arc::new(SharedFrame(out));
                    pool.keep(&shared);
                    shared
                };
                match first_encoder.as_mut() {
                    // The first segment's frames go to its own encoder, and wait for the main one.
                    Some(first) => {
                        if frames < first_end {
                            first.send_frame(&scaled.0).map_err(|e| err(e, "frame"))?;
                        }
                        if frames >= main_from {
                            for_main.push(Arc::clone(&scaled));
                        }
                    }
                    None if !for_main.is_empty() => for_main.push(Arc::clone(&scaled)),
                    None => encoder.send_frame(&scaled.0).map_err(|e| err(e, "frame"))?,
                }
                // The next rung scales from this one (from the rung above this one, if in the other range).
                if let Some(tx) = &next {
                    let passed = if hdr_rung {
                        RungFrame { sdr: input.sdr, hdr: Some(scaled) }
                    } else {
                        RungFrame { sdr: scaled, hdr: input.hdr }
                    };
                    tx.send(RungInput::Frame(passed)).map_err(|_| JobError::Stopped)?;
                }
                frames += 1;
                if let Some(first) = first_encoder.as_mut() {
                    seg.receive(first, frames_done, 0);
                    if frames > first_end {
                        // The first frame past the first segment is in, and the rung below
                        // has it: the first segment's encoder hands over every packet now,
                        // and the segment is cut as soon as they are written and its audio
                        // is in (the frames that wait for the main encoder wait for that).
                        first.send_eof().map_err(|e| err(e, "flush"))?;
                        seg.receive(first, frames_done, 0);
                        seg.sealed = true;
                        first_encoder = None;
                    }
                }
                seg.receive(&mut encoder, frames_done, main_keeps_from);
                seg.drain(index, events)?;
            }
            RungInput::Audio(packets) => {
                if let Some(last) = packets.last() {
                    seg.audio_horizon = last.pts + last.duration + seg.audio_shift;
                }
                seg.audio.extend(packets.iter().cloned());
                seg.drain(index, events)?;
            }
            RungInput::AudioEnd => {
                seg.audio_horizon = i64::MAX;
                seg.drain(index, events)?;
            }
        }
        // Once the first segment is cut (or too many frames wait), the main
        // encoder gets the frames that waited for it, the first segment's too.
        if first_encoder.is_none() && !for_main.is_empty() && (!seg.sealed || for_main.len() >= 2 * first_end as usize)
        {
            seg.feed_waiting(&mut encoder, &mut for_main, frames_done, main_keeps_from)?;
            seg.drain(index, events)?;
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(JobError::LeaseLost);
    }
    // The rung below has all its frames.
    drop(next);
    seg.audio_horizon = i64::MAX;
    // A video no longer than its first segment is all in the first segment's encoder.
    if let Some(ending) = first_encoder.as_mut() {
        ending.send_eof().map_err(|e| err(e, "flush"))?;
        seg.receive(ending, frames_done, 0);
        for_main.clear();
    }
    seg.feed_waiting(&mut encoder, &mut for_main, frames_done, main_keeps_from)?;
    encoder.send_eof().map_err(|e| err(e, "flush"))?;
    seg.receive(&mut encoder, frames_done, main_keeps_from);
    seg.drain(index, events)?;
    seg.write_audio_before(i64::MAX)?;
    let total = frames;
    let duration_s = seg.duration_s((place.start_frame + total).saturating_sub(seg.seg_start));
    let (seq, peak_held, rung_ref, has_audio) = (seg.seq, seg.peak_held, seg.rung, seg.has_audio);
    let bytes = seg.writer.finish()?;
    if total > 0 {
        check_segment_size(rung_ref, seq, duration_s, bytes.len() as u64, has_audio)
            .map_err(|e| JobError::permanent(e.to_string()))?;
        send(events, Produced::Segment { rung: index, seq, duration_s, bytes })?;
    }
    Ok(RungReport {
        name: rung.name.as_str().to_owned(),
        width: rung.width,
        height: rung.height,
        video_codec,
        frames: total,
        segments: seq + 1 - place.first_seq,
        peak_waiting_frames: peak_held,
        first_segment_encoder: split_first,
    })
}

//! The source's video stream, decoded: packets in, upright frames of one
//! shape out (SDR: an HDR stream tone-mapped; with [`VideoDecoder::keeping_hdr`],
//! an HDR stream's own frames beside them, for the rungs that keep HDR),
//! each with its time from the first frame, checked against the timeline's bounds. In the shape of ffmpeg-next's examples: one struct per
//! stream with verb methods (send a packet, send the end, receive frames).

use std::collections::VecDeque;

use ffmpeg_next as ff;
use media_core::video::ladder::MAX_SOURCE_PIXELS;
use media_core::video::timeline::Timeline;

use super::frames::{Conformer, Rotator, ToneMapper};
use super::probe::{ColorTags, VideoStream};
use crate::error::JobError;

/// A decoded, upright frame and when it plays, in seconds from the first frame.
pub struct TimedFrame {
    pub t: f64,
    /// SDR: an HDR stream's frame tone-mapped.
    pub frame: ff::frame::Video,
    /// An HDR stream's own frame (its bit depth, transfer and primaries),
    /// when the decoder keeps them.
    pub hdr: Option<ff::frame::Video>,
}

/// Decoder of the source's video stream.
pub struct VideoDecoder {
    decoder: ff::decoder::Video,
    time_base: ff::Rational,
    rotation: i32,
    /// The source's own frame rate, for the length of the last frame.
    source_fps: f64,
    /// The output rate, for frames without a timestamp.
    fps: f64,
    conformer: Conformer,
    rotator: Option<Rotator>,
    /// An HDR stream's tags: its frames are tone-mapped (made at the first frame).
    hdr: Option<ColorTags>,
    tone_mapper: Option<ToneMapper>,
    /// Whether an HDR stream's own frames are kept beside the tone-mapped ones.
    keep_hdr: bool,
    /// Own frames waiting for the tone-mapped frame made from them.
    hdr_waiting: VecDeque<ff::frame::Video>,
    hdr_rotator: Option<Rotator>,
    timeline: Timeline,
    /// When the first frame plays, in source seconds.
    start_s: Option<f64>,
    last_s: f64,
    /// Frames decoded so far.
    pub frames: u64,
}

impl VideoDecoder {
    /// Opens the decoder of `stream` (probed as `video`) with `threads`
    /// decoder threads; `fps` is the output rate, `declared_s` the
    /// container's duration, which bounds the timeline.
    pub fn open(
        stream: &ff::format::stream::Stream<'_>,
        video: &VideoStream,
        threads: usize,
        fps: f64,
        declared_s: Option<f64>,
    ) -> Result<Self, JobError> {
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| JobError::permanent(format!("the video cannot be decoded: {e}")))?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        // libav itself refuses to allocate a frame beyond the largest accepted
        // size, whatever a later parameter set in the stream declares.
        // SAFETY: setting a plain field of a codec context that is not open yet.
        unsafe { (*ctx.as_mut_ptr()).max_pixels = MAX_SOURCE_PIXELS as i64 };
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| JobError::permanent(format!("the {} video cannot be decoded: {e}", video.codec)))?;
        Ok(Self {
            decoder,
            time_base: stream.time_base(),
            rotation: video.rotation,
            source_fps: video.frame_rate.as_f64().max(1.0),
            fps,
            conformer: Conformer::new(),
            rotator: None,
            hdr: video.color.hdr_transfer().map(|_| video.color),
            tone_mapper: None,
            keep_hdr: false,
            hdr_waiting: VecDeque::new(),
            hdr_rotator: None,
            timeline: Timeline::new(declared_s).map_err(|e| JobError::permanent(e.to_string()))?,
            start_s: None,
            last_s: 0.0,
            frames: 0,
        })
    }

    /// Feeds one packet of the stream; false when the decoder refused it
    /// (a damaged part loses a few frames, not the job).
    pub fn send_packet(&mut self, packet: &ff::Packet) -> bool {
        self.decoder.send_packet(packet).is_ok()
    }

    /// Times frames from `origin_s` (source seconds) instead of from the
    /// first decoded frame: a chunk of a chunked job decodes from a keyframe
    /// in the middle and must time its frames on the whole video's clock.
    pub fn with_origin(mut self, origin_s: f64) -> Self {
        self.start_s = Some(origin_s);
        self
    }

    /// Keeps an HDR stream's own frames (upright) beside the tone-mapped
    /// ones ([`TimedFrame::hdr`]); no effect on an SDR stream.
    pub fn keeping_hdr(mut self) -> Self {
        self.keep_hdr = true;
        self
    }

    /// Drops what the decoder holds (after a seek).
    pub fn flush(&mut self) {
        self.decoder.flush();
    }

    /// Tells the decoder the stream has ended, so it gives up what it holds.
    pub fn send_eof(&mut self) {
        let _ = self.decoder.send_eof();
    }

    /// The frames the decoder has ready, upright, in the first frame's shape.
    /// A frame beyond the timeline's bounds (a timestamp bomb) ends the job
    /// here, before the constant-rate clock would repeat a frame for days.
    pub fn receive_frames(&mut self) -> Result<Vec<TimedFrame>, JobError> {
        let mut out = Vec::new();
        let mut decoded = ff::frame::Video::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            let frame = self.conformer.apply(std::mem::replace(&mut decoded, ff::frame::Video::empty()))?;
            let t = match frame.timestamp().or(frame.pts()) {
                Some(ts) => ts as f64 * f64::from(self.time_base),
                None => self.last_s + 1.0 / self.fps,
            };
            let start = *self.start_s.get_or_insert(t);
            self.timeline.frame(t - start).map_err(|e| JobError::permanent(e.to_string()))?;
            self.frames += 1;
            self.last_s = t.max(self.last_s);
            if self.keep_hdr && self.hdr.is_some() {
                self.hdr_waiting.push_back(super::new_reference(&frame)?);
            }
            for sdr in self.sdr(frame)? {
                let sdr = upright(&mut self.rotator, self.rotation, self.time_base, sdr)?;
                // The tone map makes one frame of each, in order; so does the rotation, paired.
                let Some(own) = self.hdr_waiting.pop_front() else {
                    out.extend(sdr.into_iter().map(|frame| TimedFrame { t: t - start, frame, hdr: None }));
                    continue;
                };
                let hdr = only_one(upright(&mut self.hdr_rotator, self.rotation, self.time_base, own)?, "an HDR")?;
                let frame = only_one(sdr, "a tone-mapped")?;
                out.push(TimedFrame { t: t - start, frame, hdr: Some(hdr) });
            }
        }
        Ok(out)
    }

    /// The frame as SDR BT.709: tone-mapped when the stream is HDR.
    fn sdr(&mut self, frame: ff::frame::Video) -> Result<Vec<ff::frame::Video>, JobError> {
        let Some(color) = &self.hdr else { return Ok(vec![frame]) };
        let mapper = match self.tone_mapper.as_mut() {
            Some(m) => m,
            None => self.tone_mapper.insert(ToneMapper::new(&frame, self.time_base, color)?),
        };
        mapper.apply(&frame)
    }

    /// When the first frame plays, in source seconds (once one was decoded).
    pub fn start_s(&self) -> Option<f64> {
        self.start_s
    }

    /// When the video ends, in seconds from its first frame: the last frame's
    /// time plus one frame of the source's rate.
    pub fn end_s(&self) -> f64 {
        self.last_s - self.start_s.unwrap_or(0.0) + 1.0 / self.source_fps
    }
}

/// `frame` upright: turned by `rotation` degrees through `rotator` (made at the first frame).
fn upright(
    rotator: &mut Option<Rotator>,
    rotation: i32,
    time_base: ff::Rational,
    frame: ff::frame::Video,
) -> Result<Vec<ff::frame::Video>, JobError> {
    if rotation == 0 {
        return Ok(vec![frame]);
    }
    let rotator = match rotator.as_mut() {
        Some(r) => r,
        None => rotator.insert(Rotator::new(rotation, &frame, time_base)?),
    };
    rotator.apply(&frame)
}

/// The one frame rotating `what` frame gave (the kept HDR frame and its tone-mapped twin go out as a pair).
fn only_one(mut frames: Vec<ff::frame::Video>, what: &str) -> Result<ff::frame::Video, JobError> {
    match (frames.pop(), frames.is_empty()) {
        (Some(frame), true) => Ok(frame),
        _ => Err(JobError::retryable(format!("internal: rotating {what} frame gave other than one frame"))),
    }
}

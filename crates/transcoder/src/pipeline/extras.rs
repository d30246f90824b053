//! The cover and the animated preview a job asked for
//! (`media_core::video::extras`), made after the ladder by a second, short
//! read of the source: a seek to the time asked and a few frames decoded.
//! Neither touches the ladder's pipeline nor delays `playable`, and a
//! chunked job's task 0 makes them for the whole video wherever they fall.
//!
//! - The cover: the frame shown at `time_s` (the last frame when the video
//!   is shorter), upright at the video's display shape, at most
//!   [`COVER_MAX`] pixels on its long side; a JPEG (as the poster) and a
//!   WebP (libwebp).
//! - The preview: from `start_s`, the frame shown at each 1/`fps` tick,
//!   scaled to the asked width. WebP through libwebp_anim; GIF through one
//!   libavfilter graph (`palettegen`, then `paletteuse` with that one
//!   palette for every frame) and libav's gif encoder. Both are muxed in
//!   memory and loop forever.

use std::io::{Read, Seek};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ff::format::Pixel;
use ffmpeg_next as ff;
use media_core::keys::HlsFile;
use media_core::video::extras::{
    CoverFormat, CoverMeta, CoverOption, Extras, PreviewFormat, PreviewMeta, PreviewOption, MAX_TIME_S,
};

use super::fmp4::Memory;
use super::frames::FrameGraph;
use super::probe::{self, Probe};
use super::thumbs::{encode_jpeg, fit_within, Scalers};
use super::video::{TimedFrame, VideoDecoder};
use super::{seek_before, Control, SEEK_MARGIN_S};
use crate::error::JobError;

/// The cover fits in this box (a 1080p frame at full size).
pub const COVER_MAX: u32 = 1920;

/// Decoder threads at most: the extras run after the ladder, when the job's
/// cores are free (measured in bench section 10).
const EXTRAS_DECODER_THREADS: usize = 4;

/// What [`make_extras`] made.
#[derive(Default)]
pub struct Made {
    pub cover: Option<Cover>,
    pub preview: Option<Preview>,
}

impl Made {
    /// The files made, as the ladder's output names them, with their bytes.
    pub fn files(&self) -> Vec<(HlsFile, &[u8])> {
        let mut files = Vec::new();
        if let Some(c) = &self.cover {
            files.push((HlsFile::Cover(CoverFormat::Jpeg), &c.jpeg[..]));
            files.push((HlsFile::Cover(CoverFormat::Webp), &c.webp[..]));
        }
        if let Some(p) = &self.preview {
            files.push((HlsFile::Preview(p.meta.format), &p.bytes[..]));
        }
        files
    }
}

pub struct Cover {
    pub meta: CoverMeta,
    pub jpeg: Vec<u8>,
    pub webp: Vec<u8>,
}

pub struct Preview {
    pub meta: PreviewMeta,
    pub bytes: Vec<u8>,
}

fn err(what: &str) -> impl Fn(ff::Error) -> JobError + '_ {
    move |e| JobError::retryable(format!("{what}: {e}"))
}

/// Reads `reader` again for the cover and the preview `extras` ask for.
/// `control`'s cancel stops a stalled read and the decoding.
pub fn make_extras<R: Read + Seek + Send + 'static>(
    reader: R,
    extras: &Extras,
    control: Arc<Control>,
) -> Result<Made, JobError> {
    if extras.is_default() {
        return Ok(Made::default());
    }
    ff::init().map_err(err("initialising libav"))?;
    ff::util::log::set_level(ff::util::log::Level::Error);
    let stop = Arc::clone(&control);
    let mut input = probe::open(reader, move || stop.cancel.load(Ordering::Relaxed))?;
    let probe = probe::inspect(&input)?;
    for i in 0..input.nb_streams() as usize {
        if i != probe.video.index {
            if let Some(mut s) = input.stream_mut(i) {
                // SAFETY: setting a plain field of a stream the open input owns.
                unsafe { (*s.as_mut_ptr()).discard = ff::ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
    }
    let mut reading = Reading { input, probe, control };
    let cover = extras.cover.as_ref().map(|c| reading.cover(c)).transpose()?;
    let preview = extras.preview.as_ref().map(|p| reading.preview(p)).transpose()?;
    Ok(Made { cover, preview })
}

struct Reading {
    input: ff::format::context::Input,
    probe: Probe,
    control: Arc<Control>,
}

impl Reading {
    /// The video's length as declared (an upper bound when unknown).
    fn video_s(&self) -> f64 {
        self.probe.duration_s.filter(|d| d.is_finite() && *d > 0.0).unwrap_or(MAX_TIME_S)
    }

    fn frame_s(&self) -> f64 {
        1.0 / self.probe.video.frame_rate.as_f64().max(1.0)
    }

    /// Decodes from the keyframe before `at_s` (seconds from the first
    /// frame), handing each upright frame to `visit` until it returns true
    /// or the video ends. Returns the last frame's end, in seconds. Each
    /// read seeks, so reads may follow one another in any order.
    fn frames_from(
        &mut self,
        at_s: f64,
        mut visit: impl FnMut(TimedFrame) -> Result<bool, JobError>,
    ) -> Result<f64, JobError> {
        let video = self.probe.video.clone();
        let stream = self.input.stream(video.index).expect("probed");
        // The ladder is done by now: the decoder may use the cores (frame threads).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(EXTRAS_DECODER_THREADS);
        let mut decoder =
            VideoDecoder::open(&stream, &video, threads, video.frame_rate.as_f64().max(1.0), self.probe.duration_s)?
                .with_origin(video.start_s);
        // Always seek, to 0 too: an earlier read (the cover) left the input elsewhere.
        if !seek_before(&mut self.input, video.index, video.start_s + at_s - SEEK_MARGIN_S) {
            return Err(JobError::permanent("the video cannot be read again from a chosen time (it would not seek), so no cover or preview can be made"));
        }
        for (stream, packet) in self.input.packets() {
            if self.control.cancel.load(Ordering::Relaxed) {
                return Err(JobError::Stopped);
            }
            if stream.index() != video.index || !decoder.send_packet(&packet) {
                continue;
            }
            for frame in decoder.receive_frames()? {
                if visit(frame)? {
                    return Ok(decoder.end_s());
                }
            }
        }
        decoder.send_eof();
        for frame in decoder.receive_frames()? {
            if visit(frame)? {
                break;
            }
        }
        Ok(decoder.end_s())
    }

    /// The frame shown at the cover's time, as JPEG and WebP.
    fn cover(&mut self, option: &CoverOption) -> Result<Cover, JobError> {
        let t = option.time_in(self.video_s(), self.frame_s());
        let mut shown: Option<TimedFrame> = None;
        self.frames_from(t, |f| {
            if f.t <= t + 1e-6 || shown.is_none() {
                let past = f.t > t + 1e-6;
                shown = Some(f);
                return Ok(past);
            }
            Ok(true)
        })?;
        let shown = shown.ok_or_else(|| JobError::permanent("no video frame could be decoded for the cover"))?;
        let (dw, dh) = self.probe.source_video().display_size();
        let (w, h) = fit_within(dw, dh, COVER_MAX);
        let mut scalers = Scalers::new("cover");
        let jpeg = encode_jpeg(&scalers.scale(&shown.frame, Pixel::YUVJ420P, w, h)?)?;
        let webp = encode_webp_still(&scalers.scale(&shown.frame, Pixel::YUV420P, w, h)?)?;
        let meta = CoverMeta { time_s: (shown.t.max(0.0) * 1000.0).round() / 1000.0, width: w, height: h };
        Ok(Cover { meta, jpeg, webp })
    }

    /// The preview: the frame shown at each tick of the window.
    fn preview(&mut self, option: &PreviewOption) -> Result<Preview, JobError> {
        let (start, duration) = option.window_in(self.video_s());
        let ticks = option.frames_in(duration);
        let tick_s = 1.0 / f64::from(option.fps);
        let (dw, dh) = self.probe.source_video().display_size();
        let (w, h) = option.size_for(dw, dh);
        let format = match option.format {
            PreviewFormat::Webp => Pixel::YUV420P,
            PreviewFormat::Gif => Pixel::RGB24,
        };
        let mut frames: Vec<ff::frame::Video> = Vec::new();
        let mut scalers = Scalers::new("preview");
        // `shown` stands for every tick before `until` still without a frame.
        let mut fill = |frames: &mut Vec<ff::frame::Video>, shown: &ff::frame::Video, until: f64| {
            while frames.len() < ticks as usize && start + frames.len() as f64 * tick_s < until - 1e-6 {
                let mut s = scalers.scale(shown, format, w, h)?;
                s.set_pts(Some(frames.len() as i64));
                frames.push(s);
            }
            Ok::<(), JobError>(())
        };
        let mut prev: Option<TimedFrame> = None;
        let end = self.frames_from(start, |f| {
            fill(&mut frames, prev.as_ref().map_or(&f.frame, |p| &p.frame), f.t)?;
            prev = Some(f);
            Ok(frames.len() >= ticks as usize)
        })?;
        // The video ended inside the window: its last frame shows until its end.
        if let Some(p) = &prev {
            fill(&mut frames, &p.frame, end)?;
        }
        if frames.is_empty() {
            return Err(JobError::permanent("no video frame could be decoded for the preview"));
        }
        let count = frames.len() as u32;
        let bytes = match option.format {
            PreviewFormat::Webp => encode_animation("libwebp_anim", "webp", Pixel::YUV420P, frames, option.fps)?,
            PreviewFormat::Gif => {
                encode_animation("gif", "gif", Pixel::PAL8, with_palette(frames, option.fps)?, option.fps)?
            }
        };
        let meta = PreviewMeta {
            format: option.format,
            start_s: (start * 1000.0).round() / 1000.0,
            duration_s: f64::from(count) * tick_s,
            width: w,
            height: h,
            fps: option.fps,
            frames: count,
        };
        Ok(Preview { meta, bytes })
    }
}

/// One GIF palette for the whole preview (`palettegen`), applied to every
/// frame (`paletteuse`): RGB24 frames in, PAL8 frames out.
fn with_palette(frames: Vec<ff::frame::Video>, fps: u32) -> Result<Vec<ff::frame::Video>, JobError> {
    let first = frames.first().expect("at least one frame");
    let spec = "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a";
    let tb = ff::Rational::new(1, fps as i32);
    let mut graph = FrameGraph::new(first, tb, spec, 0, "preview: the GIF palette")?;
    let mut out = Vec::with_capacity(frames.len());
    for f in &frames {
        out.extend(graph.apply(f)?);
    }
    out.extend(graph.finish()?);
    if out.len() != frames.len() {
        return Err(JobError::retryable(format!(
            "preview: the GIF palette gave {} frames for {}",
            out.len(),
            frames.len()
        )));
    }
    Ok(out)
}

/// Encodes `frames` (pts 0, 1, 2… at `fps`) with `encoder` and muxes them
/// as `muxer` in memory.
fn encode_animation(
    encoder: &str,
    muxer: &str,
    format: Pixel,
    frames: Vec<ff::frame::Video>,
    fps: u32,
) -> Result<Vec<u8>, JobError> {
    let fail = err("preview: encoding");
    let first = frames.first().expect("at least one frame");
    let (w, h) = (first.width(), first.height());
    let codec = ff::encoder::find_by_name(encoder)
        .ok_or_else(|| JobError::retryable(format!("libavcodec has no {encoder} encoder")))?;
    let tb = ff::Rational::new(1, fps as i32);
    let mut ctx = ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(&fail)?;
    ctx.set_width(w);
    ctx.set_height(h);
    ctx.set_format(format);
    ctx.set_time_base(tb);
    ctx.set_frame_rate(Some(ff::Rational::new(fps as i32, 1)));
    let mut enc = ctx.open_with(ff::Dictionary::new()).map_err(&fail)?;
    let memory = Memory::default();
    let io = ff::format::context::StreamIo::from_write(memory.clone()).map_err(&fail)?;
    let mut octx = ff::format::output_to_stream(io, None, Some(muxer)).map_err(&fail)?;
    {
        let mut s = octx.add_stream(codec).map_err(&fail)?;
        s.set_parameters(&enc);
        s.set_time_base(tb);
    }
    let mut opts = ff::Dictionary::new();
    opts.set("loop", "0");
    octx.write_header_with(opts).map_err(&fail)?;
    let to = octx.stream(0).expect("added").time_base();
    let drain = |enc: &mut ff::encoder::Video, octx: &mut ff::format::context::Output| -> Result<(), JobError> {
        let mut packet = ff::Packet::empty();
        while enc.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(tb, to);
            packet.write_interleaved(octx).map_err(&fail)?;
        }
        Ok(())
    };
    for f in &frames {
        enc.send_frame(f).map_err(&fail)?;
        drain(&mut enc, &mut octx)?;
    }
    enc.send_eof().map_err(&fail)?;
    drain(&mut enc, &mut octx)?;
    octx.write_trailer().map_err(&fail)?;
    drop(octx);
    let bytes = std::mem::take(&mut *memory.0.lock().expect("not poisoned"));
    if bytes.is_empty() {
        return Err(JobError::retryable(format!("preview: the {muxer} muxer wrote nothing")));
    }
    Ok(bytes)
}

/// One frame as a WebP still (libwebp, its default quality 75).
fn encode_webp_still(frame: &ff::frame::Video) -> Result<Vec<u8>, JobError> {
    let mut f = frame.clone();
    f.set_pts(Some(0));
    encode_animation("libwebp", "webp", Pixel::YUV420P, vec![f], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cover_fits_its_box_and_keeps_its_shape() {
        assert_eq!(fit_within(1920, 1080, COVER_MAX), (1920, 1080));
        assert_eq!(fit_within(3840, 2160, COVER_MAX), (1920, 1080));
        assert_eq!(fit_within(1080, 1920, COVER_MAX), (1080, 1920));
        assert_eq!(fit_within(640, 360, COVER_MAX), (640, 360), "never scaled up");
        assert_eq!(fit_within(4000, 3000, COVER_MAX), (1920, 1440));
    }
}

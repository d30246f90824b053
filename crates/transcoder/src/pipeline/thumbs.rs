//! The poster and the thumbnail sprite, made from the frames the ladder is
//! encoded from (no second decode): the poster early, so it exists when the
//! video becomes playable; the sprite at the end, with its layout.

use ff::format::Pixel;
use ffmpeg_next as ff;
use media_core::video::job::ThumbnailMeta;
use media_core::video::playlist::{plan_thumbnails, THUMB_COLS, THUMB_MAX};

use crate::error::JobError;

/// The poster fits in this box.
const POSTER_MAX: u32 = 1280;

pub struct Thumbnailer {
    poster_at: f64,
    poster_size: (u32, u32),
    poster_done: bool,
    interval: f64,
    next_tile: f64,
    tile: (u32, u32),
    tiles: Vec<ff::frame::Video>,
    scalers: Scalers,
}

/// Swscale contexts kept by their input and output shapes, so frames of one
/// size reuse one context (the poster and sprite tiles here, the cover and
/// the preview in `extras`).
pub struct Scalers {
    made: Vec<(ScalerKey, ff::software::scaling::Context)>,
    /// Whose scaling this is, for its errors ("thumbnails").
    what: &'static str,
}

/// A scaler's input format and size, and its output format and size.
type ScalerKey = (Pixel, u32, u32, Pixel, u32, u32);

impl Scalers {
    pub fn new(what: &'static str) -> Self {
        Self { made: Vec::new(), what }
    }

    /// `src` scaled to `w`x`h` in `format` (bicubic).
    pub fn scale(
        &mut self,
        src: &ff::frame::Video,
        format: Pixel,
        w: u32,
        h: u32,
    ) -> Result<ff::frame::Video, JobError> {
        let what = self.what;
        let fail = |e: ff::Error, doing: &str| JobError::retryable(format!("{what}: {doing}: {e}"));
        let key = (src.format(), src.width(), src.height(), format, w, h);
        let i = match self.made.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let ctx = ff::software::scaling::Context::get(
                    key.0,
                    key.1,
                    key.2,
                    format,
                    w,
                    h,
                    ff::software::scaling::Flags::BICUBIC,
                )
                .map_err(|e| fail(e, "scaler"))?;
                self.made.push((key, ctx));
                self.made.len() - 1
            }
        };
        let mut out = ff::frame::Video::new(format, w, h);
        self.made[i].1.run(src, &mut out).map_err(|e| fail(e, "scale"))?;
        Ok(out)
    }
}

/// `w`x`h` scaled down (never up) to fit `max` on the long side, both even.
pub fn fit_within(w: u32, h: u32, max: u32) -> (u32, u32) {
    let scale = (f64::from(max) / f64::from(w.max(h).max(1))).min(1.0);
    let even = |x: f64| ((x.round() as u32) & !1).max(2);
    (even(f64::from(w) * scale), even(f64::from(h) * scale))
}

fn err(e: ff::Error, what: &str) -> JobError {
    JobError::retryable(format!("thumbnails: {what}: {e}"))
}

impl Thumbnailer {
    /// For a video shown at `width`x`height`, lasting `duration_s` if known.
    pub fn new(width: u32, height: u32, duration_s: Option<f64>) -> Self {
        let meta = plan_thumbnails(duration_s.unwrap_or(0.0), width, height);
        Self {
            poster_at: duration_s.map_or(1.0, |d| (d / 4.0).min(1.0)),
            poster_size: fit_within(width, height, POSTER_MAX),
            poster_done: false,
            interval: meta.interval_s,
            next_tile: 0.0,
            tile: (meta.tile_w, meta.tile_h),
            tiles: Vec::new(),
            scalers: Scalers::new("thumbnails"),
        }
    }

    fn scale(&mut self, src: &ff::frame::Video, w: u32, h: u32) -> Result<ff::frame::Video, JobError> {
        self.scalers.scale(src, Pixel::YUVJ420P, w, h)
    }

    /// The frame shown at `t` seconds. Returns the poster's JPEG when it is made.
    pub fn on_frame(&mut self, t: f64, frame: &ff::frame::Video) -> Result<Option<Vec<u8>>, JobError> {
        if t + 1e-9 >= self.next_tile {
            let (w, h) = self.tile;
            let tile = self.scale(frame, w, h)?;
            self.tiles.push(tile);
            self.next_tile += self.interval;
            if self.tiles.len() as u32 > THUMB_MAX {
                // Unknown or wrong duration: keep every other tile, double the interval.
                let kept: Vec<_> = std::mem::take(&mut self.tiles).into_iter().step_by(2).collect();
                self.tiles = kept;
                self.interval *= 2.0;
                self.next_tile = self.tiles.len() as f64 * self.interval;
            }
        }
        if !self.poster_done && t + 1e-9 >= self.poster_at {
            return self.poster(frame).map(Some);
        }
        Ok(None)
    }

    /// The poster from `frame` (also used at the end when the video was shorter than planned).
    pub fn poster(&mut self, frame: &ff::frame::Video) -> Result<Vec<u8>, JobError> {
        self.poster_done = true;
        let (w, h) = self.poster_size;
        let scaled = self.scale(frame, w, h)?;
        encode_jpeg(&scaled)
    }

    pub fn poster_done(&self) -> bool {
        self.poster_done
    }

    /// The sprite's JPEG and layout.
    pub fn finish(self) -> Result<Option<(Vec<u8>, ThumbnailMeta)>, JobError> {
        if self.tiles.is_empty() {
            return Ok(None);
        }
        let (tw, th) = self.tile;
        let count = self.tiles.len() as u32;
        let cols = count.min(THUMB_COLS);
        let rows = count.div_ceil(cols);
        let mut canvas = ff::frame::Video::new(Pixel::YUVJ420P, cols * tw, rows * th);
        for (plane, fill) in [(0usize, 0u8), (1, 128), (2, 128)] {
            canvas.data_mut(plane).fill(fill);
        }
        for (i, tile) in self.tiles.iter().enumerate() {
            let (col, row) = (i as u32 % cols, i as u32 / cols);
            for plane in 0..3 {
                let (px, py, pw, ph) = if plane == 0 {
                    (col * tw, row * th, tw, th)
                } else {
                    (col * tw / 2, row * th / 2, tw / 2, th / 2)
                };
                let (src_stride, dst_stride) = (tile.stride(plane), canvas.stride(plane));
                for y in 0..ph as usize {
                    let src = &tile.data(plane)[y * src_stride..y * src_stride + pw as usize];
                    let start = (py as usize + y) * dst_stride + px as usize;
                    canvas.data_mut(plane)[start..start + pw as usize].copy_from_slice(src);
                }
            }
        }
        let meta = ThumbnailMeta { interval_s: self.interval, tile_w: tw, tile_h: th, cols, rows, count };
        Ok(Some((encode_jpeg(&canvas)?, meta)))
    }
}

/// A baseline JPEG of a full-range 4:2:0 frame, at quality scale 3.
pub fn encode_jpeg(frame: &ff::frame::Video) -> Result<Vec<u8>, JobError> {
    let codec = ff::encoder::find(ff::codec::Id::MJPEG)
        .ok_or_else(|| JobError::retryable("libavcodec has no MJPEG encoder"))?;
    let mut enc =
        ff::codec::context::Context::new_with_codec(codec).encoder().video().map_err(|e| err(e, "jpeg context"))?;
    enc.set_width(frame.width());
    enc.set_height(frame.height());
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(ff::Rational::new(1, 25));
    enc.set_color_range(ff::color::Range::JPEG);
    enc.set_flags(ff::codec::Flags::QSCALE);
    enc.set_global_quality(3 * ff::ffi::FF_QP2LAMBDA);
    let mut enc = enc.open_with(ff::Dictionary::new()).map_err(|e| err(e, "jpeg open"))?;
    let mut f = frame.clone();
    f.set_pts(Some(0));
    // SAFETY: quality is a plain field of the frame we own.
    unsafe { (*f.as_mut_ptr()).quality = 3 * ff::ffi::FF_QP2LAMBDA };
    enc.send_frame(&f).map_err(|e| err(e, "jpeg encode"))?;
    enc.send_eof().map_err(|e| err(e, "jpeg flush"))?;
    let mut pkt = ff::Packet::empty();
    enc.receive_packet(&mut pkt).map_err(|e| err(e, "jpeg packet"))?;
    Ok(pkt.data().unwrap_or_default().to_vec())
}

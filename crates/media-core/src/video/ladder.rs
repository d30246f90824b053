//! Planning the adaptive-bitrate ladder: a pure function from what the probe
//! found in the source to the rungs to encode. Each rule and its reason:
//!
//! - Rungs are bounding boxes (1920x1080 for `1080p`), turned to match the
//!   source's orientation, so portrait and ultra-wide videos keep their full
//!   long side instead of being judged by their short one.
//! - Never upscale: the top rung is the smallest box the (rotated, square
//!   pixel) source fits in, at the source's own size; every lower box is a
//!   downscale. Nothing goes above 2160p.
//! - Even dimensions, rounded down: 4:2:0 chroma needs them and rounding down
//!   cannot upscale.
//! - Bitrates follow the pixel count within a box (a 1920x800 video needs less
//!   than 1920x1080) and rise by half above 30 fps; each rung is capped
//!   (VBV) at 1.5x its target so peaks stay bounded for players' estimators.
//! - One frame rate and one keyframe cadence for every rung, so GOPs and
//!   segments line up across the ladder and players can switch anywhere.
//! - Other codecs than H.264 (`codecs`: HEVC, AV1) add a rung of their own
//!   at every size, at a share of H.264's bitrate ([`VideoCodec::bitrate_share`]),
//!   listed next to the H.264 rung of the same size, so that each rung
//!   scales from the one before it in the list without ever upscaling.

use serde::{Deserialize, Serialize};

use crate::keys::RungName;
pub use crate::video::video_codec::{VideoCodec, VideoRange};

/// A frame rate or time base as a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }
}

/// What the probe found, as far as planning needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceVideo {
    /// Coded size, before rotation.
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio; 1:1 for square pixels (0:x means unknown = 1:1).
    pub sample_aspect: Rational,
    /// Clockwise display rotation in degrees (0, 90, 180, 270).
    pub rotation: i32,
    /// Average frame rate.
    pub frame_rate: Rational,
}

impl SourceVideo {
    /// Display size: square pixels, rotation applied.
    pub fn display_size(&self) -> (u32, u32) {
        let sar =
            if self.sample_aspect.num == 0 || self.sample_aspect.den == 0 { 1.0 } else { self.sample_aspect.as_f64() };
        let (w, h) = if sar >= 1.0 {
            ((f64::from(self.width) * sar).round() as u32, self.height)
        } else {
            (self.width, (f64::from(self.height) / sar).round() as u32)
        };
        if self.rotation.rem_euclid(180) == 90 {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// What the caller may tune per job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LadderOptions {
    /// Target segment length in seconds.
    pub segment_s: u32,
    /// Keyframe interval in seconds; segments hold whole GOPs.
    pub gop_s: u32,
    /// Keep at most this many rungs (the highest ones). 0 means no limit.
    pub max_rungs: u32,
    /// The tallest rung by name (e.g. 1080 stops at 1080p).
    pub max_rung: u32,
    /// x264 preset for every rung.
    pub preset: String,
    /// The codecs of the ladder, in [`VideoCodec`]'s order; empty means
    /// H.264 alone. A job's `codecs` option sets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<VideoCodec>,
}

impl Default for LadderOptions {
    fn default() -> Self {
        Self { segment_s: 4, gop_s: 2, max_rungs: 0, max_rung: 2160, preset: "veryfast".into(), codecs: Vec::new() }
    }
}

impl LadderOptions {
    /// The codecs the ladder is made in: `codecs`, or H.264 when it is empty.
    pub fn ladder_codecs(&self) -> Vec<VideoCodec> {
        if self.codecs.is_empty() {
            vec![VideoCodec::H264]
        } else {
            self.codecs.clone()
        }
    }
}

/// The standard boxes, largest first: (name, long side, short side, target kbps
/// at 30 fps). The 240p box is 428 wide so that 16:9 fits it by height (426x240).
pub const BOXES: [(u32, u32, u32, u32); 7] = [
    (2160, 3840, 2160, 14_000),
    (1440, 2560, 1440, 8_000),
    (1080, 1920, 1080, 5_000),
    (720, 1280, 720, 2_800),
    (480, 854, 480, 1_400),
    (360, 640, 360, 800),
    (240, 428, 240, 400),
];

/// One rung to encode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    pub name: RungName,
    pub width: u32,
    pub height: u32,
    /// Target average video bitrate, bits/s.
    pub bitrate: u32,
    /// VBV maximum rate, bits/s.
    pub max_bitrate: u32,
    /// VBV buffer size, bits.
    pub buffer_size: u32,
    /// H.264 unless the job asked for other codecs.
    #[serde(default, skip_serializing_if = "VideoCodec::is_h264")]
    pub codec: VideoCodec,
    /// SDR unless the source is HDR and the codec keeps it
    /// ([`LadderPlan::keeping_hdr`]): the rung is then 10-bit in the
    /// source's transfer and primaries.
    #[serde(default, skip_serializing_if = "VideoRange::is_sdr")]
    pub range: VideoRange,
}

/// Audio for the whole ladder, encoded once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioPlan {
    pub sample_rate: u32,
    pub channels: u32,
    pub bitrate: u32,
}

/// AAC-LC stereo 48 kHz at 128 kb/s, whatever the source layout.
pub const AUDIO: AudioPlan = AudioPlan { sample_rate: 48_000, channels: 2, bitrate: 128_000 };

/// Bytes one media segment of a rung may hold beyond what its VBV cap
/// allows the video: the fragment's boxes.
const SEGMENT_BOX_BYTES: u64 = 64 * 1024;

/// The most bytes a media segment of `rung` lasting `duration_s` may hold.
/// The video's VBV cap lets it reach `max_bitrate × duration + buffer_size`
/// bits in any span; x264 may overshoot a little on short spans, so twice
/// that is allowed. The audio may run [`crate::video::timeline::AUDIO_TAIL_S`] past
/// the video in the last segment, and AAC's rate varies: twice its bitrate
/// over the duration and the tail. Anything larger is not what the ladder
/// was planned to be (audio that was never cut, an encoder gone wrong), and
/// is never published.
pub fn max_segment_bytes(rung: &Rung, duration_s: f64, has_audio: bool) -> u64 {
    let d = if duration_s.is_finite() { duration_s.max(0.0) } else { 0.0 };
    let video_bits = f64::from(rung.max_bitrate) * d + f64::from(rung.buffer_size);
    let audio_bits =
        if has_audio { f64::from(AUDIO.bitrate) * (d + crate::video::timeline::AUDIO_TAIL_S) } else { 0.0 };
    (2.0 * (video_bits + audio_bits) / 8.0).ceil() as u64 + SEGMENT_BOX_BYTES
}

/// A media segment larger than its rung's cap ([`max_segment_bytes`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "segment {seq} of the {rung} rung came out at {bytes} bytes for {duration_s:.1} s, more than the {limit} bytes its bitrate cap allows; the file is damaged or crafted (for example audio far longer than its video), so nothing more is published"
)]
pub struct SegmentTooLarge {
    pub rung: String,
    pub seq: u32,
    pub duration_s: f64,
    pub bytes: u64,
    pub limit: u64,
}

/// Checks one segment against [`max_segment_bytes`].
pub fn check_segment_size(
    rung: &Rung,
    seq: u32,
    duration_s: f64,
    bytes: u64,
    has_audio: bool,
) -> Result<(), SegmentTooLarge> {
    let limit = max_segment_bytes(rung, duration_s, has_audio);
    if bytes <= limit {
        Ok(())
    } else {
        Err(SegmentTooLarge { rung: rung.name.as_str().to_owned(), seq, duration_s, bytes, limit })
    }
}

/// Everything the encoder needs to produce an aligned ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderPlan {
    pub rungs: Vec<Rung>,
    /// Output frame rate for every rung (constant).
    pub frame_rate: Rational,
    /// Frames per GOP; every GOP starts with an IDR frame on every rung.
    pub gop_frames: u32,
    /// GOPs per segment.
    pub gops_per_segment: u32,
    /// Frames in the first segment ([`FIRST_SEGMENT_S`] worth, at most one
    /// GOP), so a player (and `playable`) can start once a fraction of a
    /// second is encoded rather than a whole GOP. Keyframes fall on frame 0
    /// and on `first_segment_frames + k·gop_frames`; segments end at
    /// `first_segment_frames + k·segment_frames`. 0 (a plan stored before
    /// this field) means a first segment of one GOP.
    #[serde(default)]
    pub first_segment_frames: u32,
}

impl LadderPlan {
    /// The plan for a source in `range`: an HDR source's rungs in codecs
    /// that keep HDR ([`VideoCodec::keeps_hdr`]) are in its range, the
    /// others SDR (tone-mapped). An SDR source's plan is unchanged.
    pub fn keeping_hdr(mut self, range: VideoRange) -> Self {
        for rung in &mut self.rungs {
            rung.range = if rung.codec.keeps_hdr() { range } else { VideoRange::Sdr };
        }
        self
    }

    /// Whether any rung is HDR (the decoder then keeps the source's frames beside the tone-mapped ones).
    pub fn has_hdr_rungs(&self) -> bool {
        self.rungs.iter().any(|r| !r.range.is_sdr())
    }

    /// Segment length in seconds (the HLS target duration before rounding).
    pub fn segment_duration_s(&self) -> f64 {
        f64::from(self.segment_frames()) / self.frame_rate.as_f64()
    }

    /// Frames in a full segment.
    pub fn segment_frames(&self) -> u32 {
        self.gop_frames * self.gops_per_segment
    }

    /// Frames in the first segment: `first_segment_frames`, within 1..=one GOP.
    pub fn first_frames(&self) -> u32 {
        let gop = self.gop_frames.max(1);
        if self.first_segment_frames == 0 {
            gop
        } else {
            self.first_segment_frames.min(gop)
        }
    }

    /// The frame at which segment `seq` ends (segments start where the previous ended).
    pub fn segment_end_frame(&self, seq: u32) -> u64 {
        u64::from(self.first_frames()) + u64::from(seq) * u64::from(self.segment_frames())
    }

    /// Whether output frame `n` must be a keyframe (an IDR): frame 0, the
    /// end of the short first segment, then every GOP from there. Every rung
    /// and every chunk of a chunked job decide with this one rule, so
    /// keyframes land on the same frames ladder-wide and across chunks.
    pub fn is_keyframe(&self, n: u64) -> bool {
        let first = u64::from(self.first_frames());
        n == 0 || (n >= first && (n - first).is_multiple_of(u64::from(self.gop_frames.max(1))))
    }
}

/// How long the first segment of every ladder lasts, in seconds (rounded to
/// whole frames): the time to playable waits for it to be encoded on every
/// rung, so it is short; the rest are full segments.
pub const FIRST_SEGMENT_S: f64 = 0.5;

/// Why a source cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("the video is {width}x{height}; both sides must be at least 2 pixels")]
    TooSmall { width: u32, height: u32 },
    #[error("the video is {width}x{height}; the largest accepted is {MAX_SOURCE_SIDE} pixels on a side and {} megapixels", MAX_SOURCE_PIXELS / 1_000_000)]
    TooLarge { width: u32, height: u32 },
    #[error("the video's frame rate {num}/{den} is not usable")]
    BadFrameRate { num: u32, den: u32 },
}

/// The largest source accepted, per side and in area (8K UHD fits): beyond
/// this every decoded frame in flight costs hundreds of megabytes, so such a
/// file is refused before decoding rather than taking the transcoder down.
pub const MAX_SOURCE_SIDE: u32 = 8192;
pub const MAX_SOURCE_PIXELS: u64 = 8192 * 4320;

/// The output frame rate: the source's, halved until it is at most 60 fps.
pub fn output_frame_rate(src: Rational) -> Result<Rational, PlanError> {
    let fps = src.as_f64();
    if !(fps.is_finite() && (1.0..=1000.0).contains(&fps)) {
        return Err(PlanError::BadFrameRate { num: src.num, den: src.den });
    }
    let mut r = src;
    while r.as_f64() > 60.5 {
        r = if r.num.is_multiple_of(2) { Rational::new(r.num / 2, r.den) } else { Rational::new(r.num, r.den * 2) };
    }
    Ok(r)
}

/// `a * b / c` without overflow, rounded down.
fn mul_div(a: u32, b: u32, c: u32) -> u32 {
    (u64::from(a) * u64::from(b) / u64::from(c)) as u32
}

fn even_floor(x: u32) -> u32 {
    (x & !1).max(2)
}

/// Plans the ladder for `source` under `options`.
pub fn plan_ladder(source: &SourceVideo, options: &LadderOptions) -> Result<LadderPlan, PlanError> {
    let (dw, dh) = source.display_size();
    if dw < 2 || dh < 2 {
        return Err(PlanError::TooSmall { width: dw, height: dh });
    }
    if dw > MAX_SOURCE_SIDE || dh > MAX_SOURCE_SIDE || u64::from(dw) * u64::from(dh) > MAX_SOURCE_PIXELS {
        return Err(PlanError::TooLarge { width: dw, height: dh });
    }
    let frame_rate = output_frame_rate(source.frame_rate)?;
    let fps = frame_rate.as_f64();
    let rate_factor = if fps > 31.0 { 1.5 } else { 1.0 };
    let landscape = dw >= dh;

    let mut rungs = Vec::new();
    let mut top_found = false;
    // Smallest box first, so that the first box the source fits in is the top.
    for &(name, long, short, kbps) in BOXES.iter().rev() {
        if name > options.max_rung.max(240) || top_found {
            continue;
        }
        let (bw, bh) = if landscape { (long, short) } else { (short, long) };
        // Fit inside the box exactly: the binding side takes the box's size,
        // the other follows in integer arithmetic (no float rounding up).
        let (w, h) = if dw <= bw && dh <= bh {
            top_found = true;
            (even_floor(dw), even_floor(dh))
        } else if u64::from(bw) * u64::from(dh) <= u64::from(bh) * u64::from(dw) {
            (even_floor(bw), even_floor(mul_div(dh, bw, dw)))
        } else {
            (even_floor(mul_div(dw, bh, dh)), even_floor(bh))
        };
        let area_share = (f64::from(w) * f64::from(h)) / (f64::from(bw) * f64::from(bh));
        let bitrate = (f64::from(kbps) * 1000.0 * area_share.min(1.0) * rate_factor).round().max(64_000.0) as u32;
        let max_bitrate = bitrate / 2 * 3;
        rungs.push(Rung {
            name: RungName::from_short_side(name),
            width: w,
            height: h,
            bitrate,
            max_bitrate,
            buffer_size: max_bitrate * 2,
            codec: VideoCodec::H264,
            range: VideoRange::Sdr,
        });
    }
    rungs.reverse();
    // A source smaller than a box's neighbour can map two boxes to the same size.
    rungs.dedup_by(|b, a| a.width == b.width && a.height == b.height);
    if options.max_rungs > 0 {
        rungs.truncate(options.max_rungs as usize);
    }
    let rungs = in_codecs(rungs, &options.ladder_codecs());
    let gop_frames = ((f64::from(options.gop_s.max(1)) * fps).round() as u32).max(1);
    let gops_per_segment = (options.segment_s.max(options.gop_s) / options.gop_s.max(1)).max(1);
    let first_segment_frames = ((FIRST_SEGMENT_S * fps).round() as u32).clamp(1, gop_frames);
    Ok(LadderPlan { rungs, frame_rate, gop_frames, gops_per_segment, first_segment_frames })
}

/// Each size's rung in each of `codecs`, sizes largest first and codecs in
/// [`VideoCodec`]'s order within a size (the H.264 rungs as planned).
fn in_codecs(h264: Vec<Rung>, codecs: &[VideoCodec]) -> Vec<Rung> {
    let mut codecs = codecs.to_vec();
    codecs.sort();
    codecs.dedup();
    let mut rungs = Vec::with_capacity(h264.len() * codecs.len());
    for rung in h264 {
        let lines: u32 = rung.name.as_str().trim_end_matches('p').parse().unwrap_or(0);
        for &codec in &codecs {
            let share = codec.bitrate_share();
            let scaled = |bits: u32| ((f64::from(bits) * share).round() as u32).max(48_000);
            rungs.push(Rung {
                name: RungName::for_codec(lines, codec),
                bitrate: scaled(rung.bitrate),
                max_bitrate: scaled(rung.max_bitrate),
                buffer_size: scaled(rung.buffer_size),
                codec,
                ..rung.clone()
            });
        }
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(w: u32, h: u32, rotation: i32, fps: (u32, u32)) -> SourceVideo {
        SourceVideo {
            width: w,
            height: h,
            sample_aspect: Rational::new(1, 1),
            rotation,
            frame_rate: Rational::new(fps.0, fps.1),
        }
    }

    fn sizes(plan: &LadderPlan) -> Vec<(&str, u32, u32)> {
        plan.rungs.iter().map(|r| (r.name.as_str(), r.width, r.height)).collect()
    }

    #[test]
    fn ladders_by_source() {
        let o = LadderOptions::default();
        #[allow(clippy::type_complexity)] // a table: source, then (rung, width, height) rows
        let cases: Vec<(SourceVideo, Vec<(&str, u32, u32)>)> = vec![
            (
                src(1920, 1080, 0, (30, 1)),
                vec![
                    ("1080p", 1920, 1080),
                    ("720p", 1280, 720),
                    ("480p", 852, 480),
                    ("360p", 640, 360),
                    ("240p", 426, 240),
                ],
            ),
            (
                src(3840, 2160, 0, (30, 1)),
                vec![
                    ("2160p", 3840, 2160),
                    ("1440p", 2560, 1440),
                    ("1080p", 1920, 1080),
                    ("720p", 1280, 720),
                    ("480p", 852, 480),
                    ("360p", 640, 360),
                    ("240p", 426, 240),
                ],
            ),
            // 8K: capped at 2160p, never above.
            (
                src(7680, 4320, 0, (30, 1)),
                vec![
                    ("2160p", 3840, 2160),
                    ("1440p", 2560, 1440),
                    ("1080p", 1920, 1080),
                    ("720p", 1280, 720),
                    ("480p", 852, 480),
                    ("360p", 640, 360),
                    ("240p", 426, 240),
                ],
            ),
            // Portrait phone video stored landscape with rotation metadata.
            (
                src(1920, 1080, 90, (30, 1)),
                vec![
                    ("1080p", 1080, 1920),
                    ("720p", 720, 1280),
                    ("480p", 480, 852),
                    ("360p", 360, 640),
                    ("240p", 240, 426),
                ],
            ),
            (
                src(1080, 1920, 0, (30, 1)),
                vec![
                    ("1080p", 1080, 1920),
                    ("720p", 720, 1280),
                    ("480p", 480, 852),
                    ("360p", 360, 640),
                    ("240p", 240, 426),
                ],
            ),
            // Upside down is still landscape.
            (
                src(1280, 720, 180, (30, 1)),
                vec![("720p", 1280, 720), ("480p", 852, 480), ("360p", 640, 360), ("240p", 426, 240)],
            ),
            // Odd sizes round down to even; the top rung is the source itself.
            (
                src(1001, 563, 0, (25, 1)),
                vec![("720p", 1000, 562), ("480p", 852, 480), ("360p", 640, 358), ("240p", 426, 240)],
            ),
            // Ultra-wide keeps its full width in the 1080p box.
            (
                src(1920, 800, 0, (24, 1)),
                vec![
                    ("1080p", 1920, 800),
                    ("720p", 1280, 532),
                    ("480p", 854, 354),
                    ("360p", 640, 266),
                    ("240p", 428, 178),
                ],
            ),
            // Tiny: one rung at source size.
            (src(160, 120, 0, (15, 1)), vec![("240p", 160, 120)]),
            (src(3, 3, 0, (30, 1)), vec![("240p", 2, 2)]),
        ];
        for (source, want) in cases {
            let plan = plan_ladder(&source, &o).unwrap();
            assert_eq!(sizes(&plan), want, "{source:?}");
            for r in &plan.rungs {
                assert!(r.width % 2 == 0 && r.height % 2 == 0, "{r:?}");
                let (dw, dh) = source.display_size();
                assert!(r.width <= dw.max(2) && r.height <= dh.max(2), "upscaled: {r:?}");
            }
        }
    }

    #[test]
    fn aspect_is_kept_within_rounding() {
        let plan = plan_ladder(&src(1920, 1080, 0, (30, 1)), &LadderOptions::default()).unwrap();
        for r in &plan.rungs {
            let aspect = f64::from(r.width) / f64::from(r.height);
            assert!((aspect - 16.0 / 9.0).abs() < 0.02, "{r:?}");
        }
    }

    #[test]
    fn anamorphic_sources_get_square_pixels() {
        // DVD-style 720x576 with 16:15 pixels shows as 768x576.
        let s = SourceVideo { sample_aspect: Rational::new(16, 15), ..src(720, 576, 0, (25, 1)) };
        assert_eq!(s.display_size(), (768, 576));
        assert_eq!(plan_ladder(&s, &LadderOptions::default()).unwrap().rungs[0].width, 768);
    }

    #[test]
    fn bitrates_follow_area_and_frame_rate_and_are_capped() {
        let o = LadderOptions::default();
        let p30 = plan_ladder(&src(1920, 1080, 0, (30, 1)), &o).unwrap();
        let p60 = plan_ladder(&src(1920, 1080, 0, (60, 1)), &o).unwrap();
        let wide = plan_ladder(&src(1920, 800, 0, (30, 1)), &o).unwrap();
        assert_eq!(p30.rungs[0].bitrate, 5_000_000);
        assert_eq!(p60.rungs[0].bitrate, 7_500_000);
        assert!(wide.rungs[0].bitrate < 4_000_000);
        for r in p30.rungs.iter().chain(&p60.rungs) {
            assert_eq!(r.max_bitrate, r.bitrate / 2 * 3);
            assert_eq!(r.buffer_size, r.max_bitrate * 2);
        }
        // Higher rungs always cost more.
        assert!(p30.rungs.windows(2).all(|w| w[0].bitrate > w[1].bitrate));
    }

    #[test]
    fn options_limit_the_ladder_and_set_the_cadence() {
        let o = LadderOptions { max_rungs: 4, max_rung: 1080, ..LadderOptions::default() };
        let plan = plan_ladder(&src(3840, 2160, 0, (30, 1)), &o).unwrap();
        assert_eq!(
            sizes(&plan),
            vec![("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 852, 480), ("360p", 640, 360)]
        );
        assert_eq!((plan.gop_frames, plan.gops_per_segment, plan.first_segment_frames), (60, 2, 15));
        // A half-second first segment, then 4 s segments.
        assert_eq!([plan.segment_end_frame(0), plan.segment_end_frame(1), plan.segment_end_frame(2)], [15, 135, 255]);
        assert!((plan.segment_duration_s() - 4.0).abs() < 1e-9);
        let ntsc = plan_ladder(&src(1280, 720, 0, (30_000, 1001)), &LadderOptions::default()).unwrap();
        assert_eq!((ntsc.gop_frames, ntsc.first_segment_frames), (60, 15));
        assert!((ntsc.segment_duration_s() - 4.004).abs() < 1e-9);
        let film = plan_ladder(&src(1280, 720, 0, (24, 1)), &LadderOptions::default()).unwrap();
        assert_eq!((film.gop_frames, film.first_segment_frames), (48, 12));
        // One frame a second: the first segment is one frame, never none.
        let slow = plan_ladder(&src(1280, 720, 0, (1, 1)), &LadderOptions::default()).unwrap();
        assert_eq!((slow.gop_frames, slow.first_segment_frames), (2, 1));
    }

    #[test]
    fn keyframes_start_every_segment_and_every_gop_after_the_short_first_one() {
        let plan = plan_ladder(&src(1920, 1080, 0, (30, 1)), &LadderOptions::default()).unwrap();
        let keys: Vec<u64> = (0..400).filter(|n| plan.is_keyframe(*n)).collect();
        assert_eq!(keys, vec![0, 15, 75, 135, 195, 255, 315, 375]);
        // Every segment starts on a keyframe.
        for seq in 0..10 {
            assert!(plan.is_keyframe(plan.segment_end_frame(seq)), "segment {}", seq + 1);
        }
        // A plan stored before the short first segment (no field) keeps one-GOP first segments.
        let mut value = serde_json::to_value(&plan).unwrap();
        value.as_object_mut().unwrap().remove("first_segment_frames");
        let old: LadderPlan = serde_json::from_value(value).unwrap();
        assert_eq!(old.segment_end_frame(0), 60);
        assert_eq!((0..200).filter(|n| old.is_keyframe(*n)).collect::<Vec<_>>(), vec![0, 60, 120, 180]);
    }

    #[test]
    fn frame_rates() {
        assert_eq!(output_frame_rate(Rational::new(120, 1)).unwrap(), Rational::new(60, 1));
        assert_eq!(output_frame_rate(Rational::new(240, 1)).unwrap(), Rational::new(60, 1));
        assert_eq!(output_frame_rate(Rational::new(60_000, 1001)).unwrap(), Rational::new(60_000, 1001));
        assert_eq!(output_frame_rate(Rational::new(119_881, 1000)).unwrap(), Rational::new(119_881, 2000));
        assert!(output_frame_rate(Rational::new(0, 1)).is_err());
        assert!(output_frame_rate(Rational::new(1, 0)).is_err());
    }

    #[test]
    fn unusable_sources_are_refused_with_the_reason() {
        let o = LadderOptions::default();
        assert_eq!(
            plan_ladder(&src(1, 1080, 0, (30, 1)), &o).unwrap_err(),
            PlanError::TooSmall { width: 1, height: 1080 }
        );
        let huge = plan_ladder(&src(32_768, 32_768, 0, (30, 1)), &o).unwrap_err();
        assert_eq!(
            huge.to_string(),
            "the video is 32768x32768; the largest accepted is 8192 pixels on a side and 35 megapixels"
        );
        // 8K UHD and 8192x4096 panoramas are fine; 8192x8192 is too many pixels.
        assert!(plan_ladder(&src(7680, 4320, 0, (30, 1)), &o).is_ok());
        assert!(plan_ladder(&src(8192, 4096, 0, (30, 1)), &o).is_ok());
        assert!(plan_ladder(&src(8192, 8192, 0, (30, 1)), &o).is_err());
        assert!(plan_ladder(&src(10_000, 100, 0, (30, 1)), &o).is_err());
    }

    #[test]
    fn a_segment_is_bounded_by_its_rung_s_vbv_cap_and_audio() {
        let source = SourceVideo {
            width: 1280,
            height: 720,
            sample_aspect: Rational::new(1, 1),
            rotation: 0,
            frame_rate: Rational::new(30, 1),
        };
        let plan = plan_ladder(&source, &LadderOptions::default()).unwrap();
        let top = &plan.rungs[0];
        // 720p at 30 fps: 4.2 Mb/s cap, 8.4 Mb buffer; 4 s of it with AAC.
        let limit = max_segment_bytes(top, 4.0, true);
        let video = (u64::from(top.max_bitrate) * 4 + u64::from(top.buffer_size)) / 8;
        assert!(limit > 2 * video && limit < 2 * video + 300_000, "{limit} for {video}");
        assert!(check_segment_size(top, 3, 4.0, limit, true).is_ok());
        let e = check_segment_size(top, 3, 4.0, limit + 1, true).unwrap_err();
        assert!(e.to_string().starts_with(&format!("segment 3 of the 720p rung came out at {}", limit + 1)), "{e}");
        // The audio-tail file: 2 s of 240p video carrying 120 s of AAC (1.9 MB) is far over.
        let low = plan.rungs.last().unwrap();
        assert!(max_segment_bytes(low, 2.0, true) < 120 * u64::from(AUDIO.bitrate) / 8);
        assert!(max_segment_bytes(low, 2.0, false) < max_segment_bytes(low, 2.0, true));
        assert!(max_segment_bytes(low, f64::NAN, false) > 0);
    }

    #[test]
    fn other_codecs_add_a_rung_at_every_size_next_to_h264_s() {
        let source = src(1280, 720, 0, (30, 1));
        let h264 = plan_ladder(&source, &LadderOptions::default()).unwrap();
        let o = LadderOptions {
            codecs: vec![VideoCodec::Av1, VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1],
            ..LadderOptions::default()
        };
        let plan = plan_ladder(&source, &o).unwrap();
        let names: Vec<&str> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names[..6], ["720p", "720p-hevc", "720p-av1", "480p", "480p-hevc", "480p-av1"]);
        assert_eq!(plan.rungs.len(), 3 * h264.rungs.len(), "each codec once, duplicates dropped");
        // Sizes never grow down the list, so every rung can scale from the one before it.
        assert!(plan.rungs.windows(2).all(|w| w[1].width <= w[0].width && w[1].height <= w[0].height));
        let av1 = &plan.rungs[2];
        assert_eq!((av1.codec, av1.width, av1.height), (VideoCodec::Av1, 1280, 720));
        assert_eq!(av1.bitrate, (f64::from(h264.rungs[0].bitrate) * 0.6).round() as u32);
        assert_eq!(plan.rungs[0], h264.rungs[0], "the H.264 rungs are as planned alone");
        // AV1 alone: no H.264 rung.
        let only = plan_ladder(&source, &LadderOptions { codecs: vec![VideoCodec::Av1], ..o.clone() }).unwrap();
        assert!(only.rungs.iter().all(|r| r.codec == VideoCodec::Av1 && r.name.as_str().ends_with("-av1")));
        // Rung names round-trip, and an unknown suffix is no rung.
        for r in &plan.rungs {
            assert_eq!(RungName::parse(r.name.as_str()).as_ref(), Some(&r.name));
        }
        for bad in ["720p-vp9", "720p-", "720p-h264", "-av1", "720-av1", "720p-av1-av1"] {
            assert_eq!(RungName::parse(bad), None, "{bad}");
        }
        // A plan stored before codecs reads as H.264; an H.264 rung serializes as before.
        let json = serde_json::to_string(&h264.rungs[0]).unwrap();
        assert!(!json.contains("codec"), "{json}");
        assert_eq!(serde_json::from_str::<Rung>(&json).unwrap().codec, VideoCodec::H264);
    }

    #[test]
    fn an_hdr_source_keeps_its_range_in_hevc_and_av1_rungs_only() {
        let source = src(1280, 720, 0, (30, 1));
        let o = LadderOptions { codecs: VideoCodec::ALL.to_vec(), ..LadderOptions::default() };
        let sdr = plan_ladder(&source, &o).unwrap();
        assert!(!sdr.has_hdr_rungs());
        assert_eq!(sdr.clone().keeping_hdr(VideoRange::Sdr), sdr, "an SDR source's plan is unchanged");
        let pq = sdr.clone().keeping_hdr(VideoRange::Pq);
        assert!(pq.has_hdr_rungs());
        for r in &pq.rungs {
            let want = if r.codec == VideoCodec::H264 { VideoRange::Sdr } else { VideoRange::Pq };
            assert_eq!(r.range, want, "{}", r.name.as_str());
        }
        // H.264 alone stays SDR (tone-mapped) whatever the source.
        let h264 = plan_ladder(&source, &LadderOptions::default()).unwrap().keeping_hdr(VideoRange::Hlg);
        assert!(!h264.has_hdr_rungs());
        // The range is stored with the rung, and an SDR rung serializes as before.
        let json = serde_json::to_string(&pq.rungs[2]).unwrap();
        assert!(json.contains(r#""range":"PQ""#), "{json}");
        assert_eq!(serde_json::from_str::<Rung>(&json).unwrap(), pq.rungs[2]);
        assert!(!serde_json::to_string(&pq.rungs[0]).unwrap().contains("range"));
        assert_eq!(VideoCodec::Hevc.planned_codec_string(VideoRange::Hlg), "hvc1.2.4.L120.90");
        assert_eq!(VideoCodec::Av1.planned_codec_string(VideoRange::Pq), "av01.0.08M.10");
    }
}

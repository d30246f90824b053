//! What a job makes besides its H.264 ladder, asked for at notify: rungs in
//! more codecs (`codecs`: HEVC, AV1), a cover image at a chosen time (JPEG
//! and WebP) and a short animated preview (WebP or GIF), as apps use for
//! cards and hover previews. Pure.
//!
//! - All are optional and off by default. A body's `codecs` list and its
//!   `cover` and `preview` objects are read strictly: an unknown codec or
//!   field, or a value out of bounds, is refused with the field's name
//!   ([`Extras::from_fields`]).
//! - `codecs` is kept in one spelling (each codec once, in
//!   [`VideoCodec`]'s order, H.264 alone as none), so the same codecs asked
//!   in another order are the same job.
//! - They are part of the job's identity: a notify asking for other
//!   extras than the job was made with runs the job again with them
//!   ([`Extras::differs_from`]); the same ones change nothing.
//! - A time past the video's end is not an error: the cover is the last
//!   frame and the preview the last `duration_s` of the video. What was made
//!   is reported back ([`CoverMeta`], [`PreviewMeta`]) with the times used.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::video::video_codec::VideoCodec;

/// The longest preview, in seconds.
pub const PREVIEW_MAX_S: f64 = 10.0;
/// The shortest preview, in seconds (one frame at 10 fps).
pub const PREVIEW_MIN_S: f64 = 0.1;
/// The preview's width bounds, in pixels (its height follows the video's shape).
pub const PREVIEW_WIDTH: (u32, u32) = (16, 1280);
/// The preview's frame rate bounds.
pub const PREVIEW_FPS: (u32, u32) = (1, 30);
/// The latest time a cover or preview may ask for (24 h), so a typo such as
/// a time in milliseconds is refused rather than silently clamped.
pub const MAX_TIME_S: f64 = 86_400.0;

/// What a job makes besides its ladder.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extras {
    /// The ladder's codecs, when other than H.264 alone: `h264`, `hevc`,
    /// `av1`, each once, in that order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<VideoCodec>,
    /// A still image at `time_s`, as `cover.jpg` and `cover.webp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover: Option<CoverOption>,
    /// A short silent animation, as `preview.webp` or `preview.gif`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewOption>,
}

/// `cover`: the frame shown at `time_s`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverOption {
    /// Seconds from the start, 0 to 86400; past the end: the last frame.
    #[cfg_attr(feature = "openapi", schema(example = 1.5, minimum = 0, maximum = 86400))]
    pub time_s: f64,
}

/// `preview`: `duration_s` seconds from `start_s`, `width` wide, `fps` frames a second.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewOption {
    /// 0 when left out.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400, default = 0))]
    #[serde(default)]
    pub start_s: f64,
    /// 0.1 to 10; 3 when left out.
    #[cfg_attr(feature = "openapi", schema(minimum = 0.1, maximum = 10, default = 3))]
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// 16 to 1280 pixels, even; 480 when left out, never wider than the video.
    #[cfg_attr(feature = "openapi", schema(minimum = 16, maximum = 1280, multiple_of = 2, default = 480))]
    #[serde(default = "default_width")]
    pub width: u32,
    /// 1 to 30; 10 when left out.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 30, default = 10))]
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// `webp` (the default) or `gif`.
    #[serde(default)]
    pub format: PreviewFormat,
}

fn default_duration() -> f64 {
    3.0
}
fn default_width() -> u32 {
    480
}
fn default_fps() -> u32 {
    10
}

/// The preview's file format.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreviewFormat {
    #[default]
    Webp,
    Gif,
}

impl PreviewFormat {
    pub fn extension(self) -> &'static str {
        match self {
            PreviewFormat::Webp => "webp",
            PreviewFormat::Gif => "gif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PreviewFormat::Webp => "image/webp",
            PreviewFormat::Gif => "image/gif",
        }
    }
}

/// The cover's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoverFormat {
    Jpeg,
    Webp,
}

impl CoverFormat {
    pub const ALL: [CoverFormat; 2] = [CoverFormat::Jpeg, CoverFormat::Webp];

    pub fn extension(self) -> &'static str {
        match self {
            CoverFormat::Jpeg => "jpg",
            CoverFormat::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            CoverFormat::Jpeg => "image/jpeg",
            CoverFormat::Webp => "image/webp",
        }
    }
}

/// The cover as made: the time of the frame used and its size.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoverMeta {
    /// The time of the frame shown (the last frame's when the video is shorter than asked).
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
}

/// The preview as made.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreviewMeta {
    pub format: PreviewFormat,
    /// Where it starts in the video (earlier than asked when the video is shorter).
    pub start_s: f64,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
}

impl Extras {
    /// Their names in a notify's body.
    pub const FIELDS: [&'static str; 3] = ["codecs", "cover", "preview"];

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The extras a body's `codecs`, `cover` and `preview` ask for (absent
    /// or `null`: none), or why they are refused.
    pub fn from_fields(codecs: Option<&Value>, cover: Option<&Value>, preview: Option<&Value>) -> Result<Self, String> {
        let codecs = match codecs {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => codecs_from(v)?,
        };
        let cover = match cover {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => {
                let c: CoverOption = serde_json::from_value(v.clone()).map_err(|e| format!("cover: {e}"))?;
                Some(c.checked()?)
            }
            Some(v) => return Err(format!("cover must be an object like {{\"time_s\": 1.5}}, not {v}")),
        };
        let preview = match preview {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => {
                let p: PreviewOption = serde_json::from_value(v.clone()).map_err(|e| format!("preview: {e}"))?;
                Some(p.checked()?)
            }
            Some(v) => {
                return Err(format!(
                    "preview must be an object like {{\"start_s\": 1, \"duration_s\": 3, \"width\": 480, \"fps\": 10, \"format\": \"webp\"}}, not {v}"
                ))
            }
        };
        Ok(Self { codecs, cover, preview })
    }

    /// Whether a notify asking for `asked` needs the job run again: other
    /// extras than it was made with.
    pub fn differs_from(&self, asked: &Extras) -> bool {
        self != asked
    }
}

/// `codecs`: a non-empty list of known codec names, in one spelling (see the module doc).
fn codecs_from(v: &Value) -> Result<Vec<VideoCodec>, String> {
    let names = VideoCodec::ALL.map(|c| format!("\"{}\"", c.as_str())).join(", ");
    let list = match v {
        Value::Array(items) if !items.is_empty() && items.len() <= 8 => items,
        _ => return Err(format!("codecs must be a list of one or more of {names}, like [\"h264\", \"av1\"], not {v}")),
    };
    let mut codecs = Vec::with_capacity(list.len());
    for item in list {
        let codec = item.as_str().and_then(VideoCodec::parse);
        codecs.push(codec.ok_or_else(|| format!("codecs: {item} is not one of {names}"))?);
    }
    codecs.sort();
    codecs.dedup();
    if codecs == [VideoCodec::H264] {
        codecs.clear();
    }
    Ok(codecs)
}

fn time_in_bounds(name: &str, t: f64) -> Result<f64, String> {
    if !t.is_finite() || !(0.0..=MAX_TIME_S).contains(&t) {
        return Err(format!("{name} must be between 0 and {MAX_TIME_S} seconds, not {t}"));
    }
    Ok(t)
}

impl CoverOption {
    fn checked(self) -> Result<Self, String> {
        time_in_bounds("cover.time_s", self.time_s)?;
        Ok(self)
    }
}

impl PreviewOption {
    fn checked(self) -> Result<Self, String> {
        time_in_bounds("preview.start_s", self.start_s)?;
        if !(PREVIEW_MIN_S..=PREVIEW_MAX_S).contains(&self.duration_s) {
            return Err(format!(
                "preview.duration_s must be from {PREVIEW_MIN_S} to {PREVIEW_MAX_S} seconds, not {}",
                self.duration_s
            ));
        }
        let (lo, hi) = PREVIEW_WIDTH;
        if !(lo..=hi).contains(&self.width) || !self.width.is_multiple_of(2) {
            return Err(format!(
                "preview.width must be an even number of pixels from {lo} to {hi}, not {}",
                self.width
            ));
        }
        let (lo, hi) = PREVIEW_FPS;
        if !(lo..=hi).contains(&self.fps) {
            return Err(format!("preview.fps must be from {lo} to {hi}, not {}", self.fps));
        }
        Ok(self)
    }

    /// Where the preview starts and how long it lasts in a video of
    /// `video_s` seconds: as asked, or moved back so that it ends with the
    /// video (and no longer than the video).
    pub fn window_in(&self, video_s: f64) -> (f64, f64) {
        let video_s = if video_s.is_finite() { video_s.max(0.0) } else { 0.0 };
        let duration = self.duration_s.min(video_s);
        let start = self.start_s.min(video_s - duration).max(0.0);
        (start, duration)
    }

    /// Frames in a preview of `duration_s` seconds at this rate (at least one).
    pub fn frames_in(&self, duration_s: f64) -> u32 {
        ((duration_s * f64::from(self.fps)).round() as u32).max(1)
    }

    /// The preview's size for a video shown at `width`x`height`: the asked
    /// width (never wider than the video), the height in proportion, both even.
    pub fn size_for(&self, width: u32, height: u32) -> (u32, u32) {
        let w = self.width.min(width.max(2)) & !1;
        let h = ((f64::from(height) * f64::from(w) / f64::from(width.max(1))).round() as u32 & !1).max(2);
        (w.max(2), h)
    }
}

impl CoverOption {
    /// The time of the frame used in a video of `video_s` seconds whose
    /// frames last `frame_s`: as asked, or the last frame's.
    pub fn time_in(&self, video_s: f64, frame_s: f64) -> f64 {
        let last = (video_s - frame_s).max(0.0);
        self.time_s.min(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(cover: Value, preview: Value) -> Result<Extras, String> {
        Extras::from_fields(None, Some(&cover), Some(&preview))
    }

    fn codecs(v: Value) -> Result<Vec<VideoCodec>, String> {
        Extras::from_fields(Some(&v), None, None).map(|e| e.codecs)
    }

    #[test]
    fn codecs_are_kept_in_one_spelling_and_unknown_ones_refused() {
        use VideoCodec::*;
        assert_eq!(codecs(json!(["av1", "h264"])), Ok(vec![H264, Av1]));
        assert_eq!(codecs(json!(["av1", "hevc", "av1"])), Ok(vec![Hevc, Av1]));
        assert_eq!(codecs(json!(["h264"])), Ok(vec![]), "H.264 alone is the default");
        assert_eq!(codecs(Value::Null), Ok(vec![]));
        let a = Extras::from_fields(Some(&json!(["h264", "av1"])), None, None).unwrap();
        let b = Extras::from_fields(Some(&json!(["av1", "h264", "av1"])), None, None).unwrap();
        assert!(!a.differs_from(&b), "the same codecs in another order are the same job");
        assert!(a.differs_from(&Extras::default()));
        for (v, says) in [
            (json!([]), "codecs must be a list of one or more of \"h264\", \"hevc\", \"av1\""),
            (json!("av1"), "codecs must be a list"),
            (json!(["vp9"]), "codecs: \"vp9\" is not one of"),
            (json!(["AV1"]), "codecs: \"AV1\" is not one of"),
            (json!([1]), "codecs: 1 is not one of"),
            (Value::Array(vec![json!("av1"); 9]), "codecs must be a list"),
        ] {
            let e = codecs(v.clone()).unwrap_err();
            assert!(e.contains(says), "{v}: {e}");
        }
        // Stored as names, absent when H.264 alone.
        assert_eq!(serde_json::to_value(&a).unwrap(), json!({"codecs": ["h264", "av1"]}));
        assert_eq!(serde_json::to_value(Extras::default()).unwrap(), json!({}));
    }

    #[test]
    fn both_are_off_unless_asked() {
        assert_eq!(Extras::from_fields(None, None, None), Ok(Extras::default()));
        assert_eq!(parse(Value::Null, Value::Null), Ok(Extras::default()));
        assert!(Extras::default().is_default());
    }

    #[test]
    fn a_preview_takes_defaults_for_what_it_leaves_out() {
        let e = parse(json!({"time_s": 2}), json!({})).unwrap();
        assert_eq!(e.cover, Some(CoverOption { time_s: 2.0 }));
        assert_eq!(
            e.preview,
            Some(PreviewOption { start_s: 0.0, duration_s: 3.0, width: 480, fps: 10, format: PreviewFormat::Webp })
        );
        let gif =
            parse(Value::Null, json!({"start_s": 1.5, "duration_s": 2, "width": 320, "fps": 12, "format": "gif"}))
                .unwrap();
        assert_eq!(
            gif.preview,
            Some(PreviewOption { start_s: 1.5, duration_s: 2.0, width: 320, fps: 12, format: PreviewFormat::Gif })
        );
    }

    #[test]
    fn unknown_fields_and_values_out_of_bounds_are_refused_by_name() {
        let refused = [
            (json!({"time_s": 1, "at": 2}), Value::Null, "unknown field `at`"),
            (json!({}), Value::Null, "missing field `time_s`"),
            (json!({"time_s": -1}), Value::Null, "cover.time_s must be between 0"),
            (json!({"time_s": 90000}), Value::Null, "cover.time_s must be between 0"),
            (json!(1.5), Value::Null, "cover must be an object"),
            (Value::Null, json!({"timestamp_sec": 1}), "unknown field `timestamp_sec`"),
            (Value::Null, json!({"duration_s": 0}), "preview.duration_s must be from 0.1 to 10"),
            (Value::Null, json!({"duration_s": 0.05}), "preview.duration_s must be from 0.1 to 10"),
            (Value::Null, json!({"duration_s": 11}), "preview.duration_s must be from 0.1 to 10"),
            (Value::Null, json!({"width": 481}), "preview.width must be an even number"),
            (Value::Null, json!({"width": 2000}), "preview.width must be an even number"),
            (Value::Null, json!({"fps": 0}), "preview.fps must be from 1 to 30"),
            (Value::Null, json!({"fps": 60}), "preview.fps must be from 1 to 30"),
            (Value::Null, json!({"format": "apng"}), "unknown variant `apng`"),
            (Value::Null, json!("webp"), "preview must be an object"),
        ];
        for (cover, preview, says) in refused {
            let e = parse(cover.clone(), preview.clone()).unwrap_err();
            assert!(e.contains(says), "{cover} {preview}: {e}");
        }
    }

    #[test]
    fn other_extras_differ_and_the_same_do_not() {
        let a = parse(json!({"time_s": 2}), Value::Null).unwrap();
        assert!(!a.differs_from(&a.clone()));
        assert!(a.differs_from(&parse(json!({"time_s": 3}), Value::Null).unwrap()));
        assert!(a.differs_from(&Extras::default()));
        assert!(Extras::default().differs_from(&a));
    }

    #[test]
    fn a_preview_past_the_end_ends_with_the_video() {
        let p = PreviewOption { start_s: 8.0, duration_s: 3.0, width: 480, fps: 10, format: PreviewFormat::Webp };
        assert_eq!(p.window_in(20.0), (8.0, 3.0), "inside: as asked");
        assert_eq!(p.window_in(10.0), (7.0, 3.0), "moved back to end with the video");
        assert_eq!(p.window_in(2.0), (0.0, 2.0), "a video shorter than the preview: all of it");
        assert_eq!(p.window_in(f64::NAN), (0.0, 0.0));
        assert_eq!(p.frames_in(3.0), 30);
        assert_eq!(p.frames_in(0.0), 1);
        assert_eq!(p.size_for(1920, 1080), (480, 270));
        assert_eq!(p.size_for(320, 240), (320, 240), "never wider than the video");
        assert_eq!(p.size_for(1080, 1920), (480, 852), "portrait keeps its shape (853.3, even)");
        let c = CoverOption { time_s: 12.0 };
        assert_eq!(c.time_in(20.0, 0.04), 12.0);
        assert!((c.time_in(10.0, 0.04) - 9.96).abs() < 1e-9, "past the end: the last frame");
    }
}

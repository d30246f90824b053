//! The object-key layout: the one place that knows where every object lives.
//!
//! ```text
//! raw/{app_id}/{video_id}/source.{ext}                 a video as uploaded
//! images/{app_id}/{image_id}                           an image as uploaded
//! hls/{app_id}/{video_id}/{output_id}/master.m3u8      the ladder of one attempt
//! hls/{app_id}/{video_id}/{output_id}/{rung}/index.m3u8
//! hls/{app_id}/{video_id}/{output_id}/{rung}/init.mp4
//! hls/{app_id}/{video_id}/{output_id}/{rung}/{seq:05}.m4s
//! hls/{app_id}/{video_id}/{output_id}/audio/…            a chunked job's audio rendition (same files as a rung)
//! hls/{app_id}/{video_id}/{output_id}/poster.jpg
//! hls/{app_id}/{video_id}/{output_id}/sprite.jpg
//! hls/{app_id}/{video_id}/{output_id}/thumbnails.vtt
//! hls/{app_id}/{video_id}/{output_id}/cover.{jpg,webp}   the cover, when the job asked for one
//! hls/{app_id}/{video_id}/{output_id}/preview.{webp,gif} the animated preview, when asked
//! downloads/{app_id}/{video_id}/{output_id}/{video_id}.mp4   the MP4 download (opt-in)
//! keys/{app_id}/{video_id}/{output_id}/aes128.key      an encrypted ladder's AES-128 key
//! ```
//!
//! Every transcoding attempt writes under a fresh `output_id`, so published
//! segments never change under a cache that holds them as immutable.
//! An encrypted attempt's key lives outside `hls/` on purpose: the public
//! HLS routes serve only what parses as [`ObjectKey::Hls`], so the key is
//! read by the token-guarded key route alone.
//! [`ObjectKey::parse`] accepts exactly what [`ObjectKey`]'s `Display` prints:
//! any other spelling (extra slashes, dot segments, other padding, other case)
//! is refused, which is what keeps public routes inside their prefix.

use std::fmt;

use crate::ids::{check_id, AppId, ImageId, VideoId};
use crate::media::VideoType;
use crate::video::extras::{CoverFormat, PreviewFormat};

/// A rung of the ladder by name: its short side in pixels and `p` (`1080p`),
/// then `-hevc` or `-av1` for a rung in another codec than H.264
/// (`1080p-av1`), or [`RungName::AUDIO`], the audio-only rendition of a
/// chunked job, whose folder holds the same files as a video rung's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RungName(String);

impl RungName {
    pub fn from_short_side(px: u32) -> Self {
        Self(format!("{px}p"))
    }

    /// The rung of `px` lines in `codec`: `720p`, `720p-hevc`, `720p-av1`.
    pub fn for_codec(px: u32, codec: crate::video::video_codec::VideoCodec) -> Self {
        match codec.rung_suffix() {
            "" => Self::from_short_side(px),
            suffix => Self(format!("{px}p-{suffix}")),
        }
    }

    /// The audio rendition's name (and folder).
    pub const AUDIO: &'static str = "audio";

    pub fn audio() -> Self {
        Self(Self::AUDIO.to_owned())
    }

    /// True for the audio rendition.
    pub fn is_audio(&self) -> bool {
        self.0 == Self::AUDIO
    }

    pub fn parse(s: &str) -> Option<Self> {
        if s == Self::AUDIO {
            return Some(Self::audio());
        }
        let lines = match s.split_once('-') {
            Some((lines, suffix)) if crate::video::video_codec::VideoCodec::from_rung_suffix(suffix).is_some() => lines,
            Some(_) => return None,
            None => s,
        };
        let digits = lines.strip_suffix('p')?;
        let canonical = !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        canonical.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RungName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not a rung name like \"720p\" or \"720p-av1\" (or \"audio\")"))
    }
}

impl From<RungName> for String {
    fn from(r: RungName) -> String {
        r.0
    }
}

/// Names one attempt's output folder: 1-32 lowercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OutputId(String);

impl OutputId {
    /// A fresh output id from 10 random bytes (16 base32 characters).
    pub fn from_random(bytes: [u8; 10]) -> Self {
        Self(crate::ids::base32_lower(&bytes))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OutputId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not an output id"))
    }
}

impl From<OutputId> for String {
    fn from(o: OutputId) -> String {
        o.0
    }
}

/// A file inside one rung's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RungFile {
    Playlist,
    Init,
    /// A media segment by sequence number (0-based).
    Segment(u32),
}

/// A file of one attempt's HLS output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HlsFile {
    Master,
    Rung(RungName, RungFile),
    Poster,
    Sprite,
    ThumbnailsVtt,
    /// The cover the job asked for (`cover.jpg`, `cover.webp`).
    Cover(CoverFormat),
    /// The animated preview the job asked for (`preview.webp`, `preview.gif`).
    Preview(PreviewFormat),
    /// A caption track's subtitle rendition (`subs/{language}/index.m3u8`,
    /// `subs/{language}/00000.vtt`): rendered by the HLS route from the
    /// track in storage ([`ObjectKey::Caption`]), never written here.
    Subtitles(String, SubtitleFile),
}

/// A file of a subtitle rendition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubtitleFile {
    Playlist,
    Segment(u32),
}

/// How long a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Written once under a unique key, never changed.
    Immutable,
    /// Rewritten while the ladder grows (playlists).
    Short,
}

impl CachePolicy {
    pub fn header_value(self) -> &'static str {
        match self {
            CachePolicy::Immutable => "public, max-age=31536000, immutable",
            CachePolicy::Short => "public, max-age=2",
        }
    }
}

impl HlsFile {
    /// The path below the output folder.
    pub fn relative_path(&self) -> String {
        match self {
            HlsFile::Master => "master.m3u8".into(),
            HlsFile::Rung(r, RungFile::Playlist) => format!("{}/index.m3u8", r.as_str()),
            HlsFile::Rung(r, RungFile::Init) => format!("{}/init.mp4", r.as_str()),
            HlsFile::Rung(r, RungFile::Segment(n)) => format!("{}/{}", r.as_str(), segment_file_name(*n)),
            HlsFile::Poster => "poster.jpg".into(),
            HlsFile::Sprite => "sprite.jpg".into(),
            HlsFile::ThumbnailsVtt => "thumbnails.vtt".into(),
            HlsFile::Cover(f) => format!("cover.{}", f.extension()),
            HlsFile::Preview(f) => format!("preview.{}", f.extension()),
            HlsFile::Subtitles(lang, SubtitleFile::Playlist) => format!("subs/{lang}/index.m3u8"),
            HlsFile::Subtitles(lang, SubtitleFile::Segment(n)) => {
                format!("subs/{lang}/{}", crate::video::captions::subtitle_segment_name(*n))
            }
        }
    }

    fn parse_relative(parts: &[&str]) -> Option<HlsFile> {
        match parts {
            ["master.m3u8"] => Some(HlsFile::Master),
            ["poster.jpg"] => Some(HlsFile::Poster),
            ["sprite.jpg"] => Some(HlsFile::Sprite),
            ["thumbnails.vtt"] => Some(HlsFile::ThumbnailsVtt),
            ["cover.jpg"] => Some(HlsFile::Cover(CoverFormat::Jpeg)),
            ["cover.webp"] => Some(HlsFile::Cover(CoverFormat::Webp)),
            ["preview.webp"] => Some(HlsFile::Preview(PreviewFormat::Webp)),
            ["preview.gif"] => Some(HlsFile::Preview(PreviewFormat::Gif)),
            ["subs", lang, file] => {
                let lang = crate::video::captions::language_tag(lang).ok().filter(|l| l == lang)?;
                let file = match *file {
                    "index.m3u8" => SubtitleFile::Playlist,
                    seg => {
                        let digits = seg.strip_suffix(".vtt")?;
                        let n: u32 = digits.parse().ok()?;
                        (crate::video::captions::subtitle_segment_name(n) == seg).then_some(SubtitleFile::Segment(n))?
                    }
                };
                Some(HlsFile::Subtitles(lang, file))
            }
            [rung, file] => {
                let rung = RungName::parse(rung)?;
                let file = match *file {
                    "index.m3u8" => RungFile::Playlist,
                    "init.mp4" => RungFile::Init,
                    seg => RungFile::Segment(parse_segment_file_name(seg)?),
                };
                Some(HlsFile::Rung(rung, file))
            }
            _ => None,
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            HlsFile::Master | HlsFile::Rung(_, RungFile::Playlist) => "application/vnd.apple.mpegurl",
            HlsFile::Rung(r, RungFile::Init | RungFile::Segment(_)) if r.is_audio() => "audio/mp4",
            HlsFile::Rung(_, RungFile::Init) => "video/mp4",
            HlsFile::Rung(_, RungFile::Segment(_)) => "video/iso.segment",
            HlsFile::Poster | HlsFile::Sprite => "image/jpeg",
            HlsFile::ThumbnailsVtt => "text/vtt; charset=utf-8",
            HlsFile::Cover(f) => f.content_type(),
            HlsFile::Preview(f) => f.content_type(),
            HlsFile::Subtitles(_, SubtitleFile::Playlist) => "application/vnd.apple.mpegurl",
            HlsFile::Subtitles(_, SubtitleFile::Segment(_)) => "text/vtt; charset=utf-8",
        }
    }

    pub fn cache_policy(&self) -> CachePolicy {
        match self {
            // A caption track can be replaced or deleted at any time.
            HlsFile::Master | HlsFile::Rung(_, RungFile::Playlist) | HlsFile::Subtitles(..) => CachePolicy::Short,
            _ => CachePolicy::Immutable,
        }
    }
}

/// `00042.m4s`: five digits at least, so names sort in playback order.
pub fn segment_file_name(seq: u32) -> String {
    format!("{seq:05}.m4s")
}

fn parse_segment_file_name(s: &str) -> Option<u32> {
    let n: u32 = s.strip_suffix(".m4s")?.parse().ok()?;
    (segment_file_name(n) == s).then_some(n)
}

/// Every object the platform stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    RawUpload {
        app: AppId,
        video: VideoId,
        kind: VideoType,
    },
    Image {
        app: AppId,
        image: ImageId,
    },
    Hls {
        app: AppId,
        video: VideoId,
        output: OutputId,
        file: HlsFile,
    },
    /// One attempt's progressive MP4 of a rung (`crate::video::download`).
    Download {
        app: AppId,
        video: VideoId,
        output: OutputId,
    },
    /// The AES-128 key of one attempt's encrypted segments
    /// ([`crate::video::encryption`]): 16 raw bytes.
    HlsKey {
        app: AppId,
        video: VideoId,
        output: OutputId,
    },
    /// A caption track of a video, as normalised WebVTT
    /// (`captions/{app}/{video}/{language}.vtt`): one per language, outside
    /// every attempt, so a re-run keeps it.
    Caption {
        app: AppId,
        video: VideoId,
        language: String,
    },
}

/// The top folders that hold an attempt's outputs, each as
/// `{root}/{app_id}/{video_id}/{output_id}/...`: what retention prunes per
/// attempt and a delete removes with the video.
pub const ATTEMPT_ROOTS: &[&str] = &["hls", "downloads", "keys"];

impl ObjectKey {
    /// The prefix under which every output of one attempt lives (with a trailing slash).
    pub fn hls_prefix(app: &AppId, video: &VideoId, output: &OutputId) -> String {
        format!("{}{}/", ObjectKey::outputs_prefix(app, video), output.as_str())
    }

    /// The prefix of every attempt's HLS outputs of one video (with a trailing slash).
    pub fn outputs_prefix(app: &AppId, video: &VideoId) -> String {
        format!("hls/{app}/{video}/")
    }

    /// The prefix of a video's source (with a trailing slash).
    pub fn raw_prefix(app: &AppId, video: &VideoId) -> String {
        format!("raw/{app}/{video}/")
    }

    /// Every prefix a video has objects under: its source and all its
    /// outputs (thumbnails and downloads included). Deleting these deletes the video.
    pub fn video_prefixes(app: &AppId, video: &VideoId) -> Vec<String> {
        let mut prefixes = vec![Self::raw_prefix(app, video)];
        prefixes.extend(Self::attempt_roots(app, video));
        prefixes.push(format!("captions/{app}/{video}/"));
        prefixes
    }

    /// The prefix of every attempt's outputs of a video under each of
    /// [`ATTEMPT_ROOTS`] (`hls/{app}/{video}/`, `downloads/{app}/{video}/`),
    /// with a trailing slash; one attempt's part of each is
    /// [`ObjectKey::attempt_prefix`].
    pub fn attempt_roots(app: &AppId, video: &VideoId) -> Vec<String> {
        ATTEMPT_ROOTS.iter().map(|root| format!("{root}/{app}/{video}/")).collect()
    }

    /// One attempt's part of a prefix from [`ObjectKey::attempt_roots`].
    pub fn attempt_prefix(root: &str, output: &OutputId) -> String {
        format!("{root}{}/", output.as_str())
    }

    /// The file name a download has, in storage and in `Content-Disposition`.
    pub fn download_file_name(video: &VideoId) -> String {
        format!("{video}.mp4")
    }

    /// Parses a key, accepting only the canonical spelling.
    pub fn parse(key: &str) -> Option<ObjectKey> {
        let parts: Vec<&str> = key.split('/').collect();
        let parsed = match parts.as_slice() {
            ["raw", app, video, file] => {
                let kind = VideoType::from_extension(file.strip_prefix("source.")?)?;
                ObjectKey::RawUpload { app: AppId::parse(app).ok()?, video: VideoId::parse(video).ok()?, kind }
            }
            ["images", app, image] => {
                ObjectKey::Image { app: AppId::parse(app).ok()?, image: ImageId::parse(image).ok()? }
            }
            ["hls", app, video, output, rest @ ..] => ObjectKey::Hls {
                app: AppId::parse(app).ok()?,
                video: VideoId::parse(video).ok()?,
                output: OutputId::parse(output)?,
                file: HlsFile::parse_relative(rest)?,
            },
            ["downloads", app, video, output, _file] => ObjectKey::Download {
                app: AppId::parse(app).ok()?,
                video: VideoId::parse(video).ok()?,
                output: OutputId::parse(output)?,
            },
            ["captions", app, video, file] => ObjectKey::Caption {
                app: AppId::parse(app).ok()?,
                video: VideoId::parse(video).ok()?,
                language: crate::video::captions::language_tag(file.strip_suffix(".vtt")?).ok()?,
            },
            ["keys", app, video, output, "aes128.key"] => ObjectKey::HlsKey {
                app: AppId::parse(app).ok()?,
                video: VideoId::parse(video).ok()?,
                output: OutputId::parse(output)?,
            },
            _ => return None,
        };
        // The parts above are validated one by one; this catches anything a
        // looser sub-parser might let through.
        (parsed.to_string() == key).then_some(parsed)
    }

    pub fn app(&self) -> &AppId {
        match self {
            ObjectKey::RawUpload { app, .. }
            | ObjectKey::Image { app, .. }
            | ObjectKey::Hls { app, .. }
            | ObjectKey::Download { app, .. }
            | ObjectKey::HlsKey { app, .. }
            | ObjectKey::Caption { app, .. } => app,
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKey::RawUpload { app, video, kind } => {
                write!(f, "{}source.{}", ObjectKey::raw_prefix(app, video), kind.extension())
            }
            ObjectKey::Image { app, image } => write!(f, "images/{app}/{image}"),
            ObjectKey::Hls { app, video, output, file } => {
                write!(f, "{}{}", ObjectKey::hls_prefix(app, video, output), file.relative_path())
            }
            ObjectKey::Download { app, video, output } => {
                write!(
                    f,
                    "downloads/{app}/{video}/{output}/{}",
                    ObjectKey::download_file_name(video),
                    output = output.as_str()
                )
            }
            ObjectKey::HlsKey { app, video, output } => write!(f, "keys/{app}/{video}/{}/aes128.key", output.as_str()),
            ObjectKey::Caption { app, video, language } => write!(f, "captions/{app}/{video}/{language}.vtt"),
        }
    }
}

/// Checks that a caller-supplied `raw_key` is the upload key of this app and
/// video, naming what is wrong.
pub fn check_raw_key(raw_key: &str, app: &AppId, video: &VideoId) -> Result<VideoType, crate::error::ApiError> {
    match ObjectKey::parse(raw_key) {
        Some(ObjectKey::RawUpload { app: a, video: v, kind }) if &a == app && &v == video => Ok(kind),
        Some(ObjectKey::RawUpload { .. }) => Err(crate::error::ApiError::invalid_field(format!(
            "raw_key {raw_key:?} belongs to another app_id or video_id; use the raw_key /generate-upload-url returned for app_id {app:?} and video_id {video:?}"
        ))),
        _ => Err(crate::error::ApiError::invalid_field(format!(
            "raw_key {raw_key:?} is not an upload key; use the raw_key /generate-upload-url returned (raw/{app}/{video}/source.<ext>)"
        ))),
    }
}

/// Validates a path parameter as an id, for routes that take ids in the path.
pub fn is_valid_id(s: &str) -> bool {
    check_id("id", s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppId {
        AppId::parse("app1").unwrap()
    }
    fn video() -> VideoId {
        VideoId::parse("vid_1").unwrap()
    }
    fn out() -> OutputId {
        OutputId::parse("k3v9").unwrap()
    }
    fn rung(s: &str) -> RungName {
        RungName::parse(s).unwrap()
    }

    #[test]
    fn every_key_round_trips() {
        let hls = |file| ObjectKey::Hls { app: app(), video: video(), output: out(), file };
        let cases = [
            (ObjectKey::RawUpload { app: app(), video: video(), kind: VideoType::Mp4 }, "raw/app1/vid_1/source.mp4"),
            (
                ObjectKey::RawUpload { app: app(), video: video(), kind: VideoType::Matroska },
                "raw/app1/vid_1/source.mkv",
            ),
            (ObjectKey::Image { app: app(), image: ImageId::parse("img-9").unwrap() }, "images/app1/img-9"),
            (hls(HlsFile::Master), "hls/app1/vid_1/k3v9/master.m3u8"),
            (hls(HlsFile::Rung(rung("1080p"), RungFile::Playlist)), "hls/app1/vid_1/k3v9/1080p/index.m3u8"),
            (hls(HlsFile::Rung(rung("240p"), RungFile::Init)), "hls/app1/vid_1/k3v9/240p/init.mp4"),
            (hls(HlsFile::Rung(rung("720p"), RungFile::Segment(0))), "hls/app1/vid_1/k3v9/720p/00000.m4s"),
            (hls(HlsFile::Rung(rung("720p"), RungFile::Segment(123_456))), "hls/app1/vid_1/k3v9/720p/123456.m4s"),
            (hls(HlsFile::Rung(RungName::audio(), RungFile::Playlist)), "hls/app1/vid_1/k3v9/audio/index.m3u8"),
            (hls(HlsFile::Rung(RungName::audio(), RungFile::Init)), "hls/app1/vid_1/k3v9/audio/init.mp4"),
            (hls(HlsFile::Rung(RungName::audio(), RungFile::Segment(7))), "hls/app1/vid_1/k3v9/audio/00007.m4s"),
            (hls(HlsFile::Poster), "hls/app1/vid_1/k3v9/poster.jpg"),
            (hls(HlsFile::Sprite), "hls/app1/vid_1/k3v9/sprite.jpg"),
            (hls(HlsFile::ThumbnailsVtt), "hls/app1/vid_1/k3v9/thumbnails.vtt"),
            (hls(HlsFile::Cover(CoverFormat::Jpeg)), "hls/app1/vid_1/k3v9/cover.jpg"),
            (hls(HlsFile::Cover(CoverFormat::Webp)), "hls/app1/vid_1/k3v9/cover.webp"),
            (hls(HlsFile::Preview(PreviewFormat::Webp)), "hls/app1/vid_1/k3v9/preview.webp"),
            (hls(HlsFile::Preview(PreviewFormat::Gif)), "hls/app1/vid_1/k3v9/preview.gif"),
            (
                hls(HlsFile::Subtitles("pt-BR".into(), SubtitleFile::Playlist)),
                "hls/app1/vid_1/k3v9/subs/pt-BR/index.m3u8",
            ),
            (hls(HlsFile::Subtitles("en".into(), SubtitleFile::Segment(3))), "hls/app1/vid_1/k3v9/subs/en/00003.vtt"),
            (ObjectKey::Caption { app: app(), video: video(), language: "en".into() }, "captions/app1/vid_1/en.vtt"),
            (ObjectKey::Download { app: app(), video: video(), output: out() }, "downloads/app1/vid_1/k3v9/vid_1.mp4"),
            (ObjectKey::HlsKey { app: app(), video: video(), output: out() }, "keys/app1/vid_1/k3v9/aes128.key"),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(ObjectKey::parse(text), Some(key), "{text}");
        }
    }

    #[test]
    fn non_canonical_and_escaping_keys_are_refused() {
        for bad in [
            "",
            "/",
            "raw/app1/vid_1/source.MP4",
            "raw/app1/vid_1/source.avi",
            "raw/app1/vid_1/other.mp4",
            "raw/app1/vid_1/source.mp4/",
            "raw/app1//source.mp4",
            "images/app1/img/extra",
            "images/app1/",
            "images/app1/..",
            "images/../images/app1/x",
            "images/app1/%2e%2e",
            "/images/app1/x",
            "images//app1/x",
            "hls/app1/vid_1/k3v9/1080p/1.m4s",
            "hls/app1/vid_1/k3v9/1080p/00001.ts",
            "hls/app1/vid_1/k3v9/1080p/../../other/master.m3u8",
            "hls/app1/vid_1/k3v9/0720p/index.m3u8",
            "hls/app1/vid_1/k3v9/1080/index.m3u8",
            "hls/app1/vid_1/K3V9/master.m3u8",
            "hls/app1/vid_1/k3v9/./master.m3u8",
            "hls/app1/vid_1/k3v9/master.m3u8?x",
            "hls/app1/vid_1/master.m3u8",
            "hls/app1/vid_1/k3v9/secret.txt",
            "HLS/app1/vid_1/k3v9/master.m3u8",
            "downloads/app1/vid_1/k3v9/other.mp4",
            "downloads/app1/vid_1/k3v9/vid_1.MP4",
            "downloads/app1/vid_1/k3v9/vid_1.mp4/",
            "downloads/app1/vid_1/vid_1.mp4",
            "downloads/app1/vid_1/K3V9/vid_1.mp4",
            "downloads/app1/../k3v9/vid_1.mp4",
            "keys/app1/vid_1/k3v9/other.key",
            "keys/app1/vid_1/aes128.key",
            "keys/app1/vid_1/K3V9/aes128.key",
            "keys/app1/vid_1/k3v9/aes128.key/",
            "hls/app1/vid_1/k3v9/aes128.key",
            "hls/app1/vid_1/k3v9/key",
            "hls/app1/vid_1/k3v9/Audio/index.m3u8",
            "hls/app1/vid_1/k3v9/audio/master.m3u8",
            "hls/app1/vid_1/k3v9/audio",
        ] {
            assert_eq!(ObjectKey::parse(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_video_s_prefixes_cover_its_source_and_every_attempt_root() {
        let prefixes = ObjectKey::video_prefixes(&app(), &video());
        assert_eq!(
            prefixes,
            ["raw/app1/vid_1/", "hls/app1/vid_1/", "downloads/app1/vid_1/", "keys/app1/vid_1/", "captions/app1/vid_1/"]
        );
        // Every key of the video, whatever the attempt, is under one of them.
        let download = ObjectKey::Download { app: app(), video: video(), output: out() }.to_string();
        let hls = ObjectKey::Hls { app: app(), video: video(), output: out(), file: HlsFile::Master }.to_string();
        let aes_key = ObjectKey::HlsKey { app: app(), video: video(), output: out() }.to_string();
        for key in [&download, &hls, &aes_key] {
            assert!(prefixes.iter().any(|p| key.starts_with(p.as_str())), "{key}");
            let attempt: Vec<String> = ObjectKey::attempt_roots(&app(), &video())
                .iter()
                .map(|root| ObjectKey::attempt_prefix(root, &out()))
                .collect();
            assert!(attempt.iter().any(|p| key.starts_with(p.as_str())), "{key}");
        }
        assert_eq!(
            ObjectKey::attempt_prefix(&ObjectKey::outputs_prefix(&app(), &video()), &out()),
            ObjectKey::hls_prefix(&app(), &video(), &out())
        );
    }

    #[test]
    fn raw_key_must_belong_to_the_app_and_video() {
        assert_eq!(check_raw_key("raw/app1/vid_1/source.webm", &app(), &video()), Ok(VideoType::WebM));
        let other = check_raw_key("raw/app2/vid_1/source.mp4", &app(), &video()).unwrap_err();
        assert_eq!(other.status(), 400);
        assert!(other.message.contains("another app_id or video_id"));
        let junk = check_raw_key("images/app1/x", &app(), &video()).unwrap_err();
        assert!(junk.message.contains("not an upload key"));
    }

    #[test]
    fn content_types_and_caching_per_file() {
        let r = || rung("480p");
        let cases = [
            (HlsFile::Master, "application/vnd.apple.mpegurl", CachePolicy::Short),
            (HlsFile::Rung(r(), RungFile::Playlist), "application/vnd.apple.mpegurl", CachePolicy::Short),
            (HlsFile::Rung(r(), RungFile::Init), "video/mp4", CachePolicy::Immutable),
            (HlsFile::Rung(r(), RungFile::Segment(3)), "video/iso.segment", CachePolicy::Immutable),
            (HlsFile::Poster, "image/jpeg", CachePolicy::Immutable),
            (HlsFile::Sprite, "image/jpeg", CachePolicy::Immutable),
            (HlsFile::ThumbnailsVtt, "text/vtt; charset=utf-8", CachePolicy::Immutable),
            (HlsFile::Cover(CoverFormat::Jpeg), "image/jpeg", CachePolicy::Immutable),
            (HlsFile::Cover(CoverFormat::Webp), "image/webp", CachePolicy::Immutable),
            (HlsFile::Preview(PreviewFormat::Webp), "image/webp", CachePolicy::Immutable),
            (HlsFile::Preview(PreviewFormat::Gif), "image/gif", CachePolicy::Immutable),
            (HlsFile::Rung(RungName::audio(), RungFile::Playlist), "application/vnd.apple.mpegurl", CachePolicy::Short),
            (HlsFile::Rung(RungName::audio(), RungFile::Init), "audio/mp4", CachePolicy::Immutable),
            (HlsFile::Rung(RungName::audio(), RungFile::Segment(0)), "audio/mp4", CachePolicy::Immutable),
        ];
        for (file, ct, cache) in cases {
            assert_eq!(file.content_type(), ct, "{file:?}");
            assert_eq!(file.cache_policy(), cache, "{file:?}");
        }
    }

    #[test]
    fn rung_names() {
        for (s, ok) in [
            ("1080p", true),
            ("240p", true),
            ("2160p", true),
            ("p", false),
            ("0p", false),
            ("12345p", false),
            ("720", false),
            ("720P", false),
            ("audio", true),
            ("Audio", false),
            ("audiop", false),
        ] {
            assert_eq!(RungName::parse(s).is_some(), ok, "{s}");
        }
        assert_eq!(RungName::from_short_side(720).as_str(), "720p");
        assert!(RungName::parse("audio").unwrap().is_audio() && !RungName::from_short_side(720).is_audio());
        let o = OutputId::from_random([9; 10]);
        assert_eq!(o.as_str().len(), 16);
        assert_eq!(OutputId::parse(o.as_str()), Some(o));
    }
}

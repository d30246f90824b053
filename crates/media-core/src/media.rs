//! What may be uploaded: the accepted content types of images and videos, the
//! size limits, and recognising an image by its bytes (magic numbers here;
//! the pixel dimensions from its header by `imagesize`) so a file is never
//! trusted by its label.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// Default cap for an image upload: 25 MiB.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 25 * 1024 * 1024;
/// Default cap for a video upload: 5 GiB, the most one presigned `PUT` can
/// carry to R2 or S3.
pub const DEFAULT_MAX_VIDEO_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// An accepted video container, named by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoType {
    Mp4,
    QuickTime,
    WebM,
    Matroska,
    Ogg,
}

impl VideoType {
    pub const ALL: [VideoType; 5] = [Self::Mp4, Self::QuickTime, Self::WebM, Self::Matroska, Self::Ogg];

    /// Recognises a content type (case-insensitive, no parameters).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.trim().to_ascii_lowercase().as_str() {
            "video/mp4" => Some(Self::Mp4),
            "video/quicktime" => Some(Self::QuickTime),
            "video/webm" => Some(Self::WebM),
            "video/x-matroska" | "video/matroska" => Some(Self::Matroska),
            "video/ogg" => Some(Self::Ogg),
            _ => None,
        }
    }

    /// The file extension of the raw upload's object key.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::QuickTime => "mov",
            Self::WebM => "webm",
            Self::Matroska => "mkv",
            Self::Ogg => "ogv",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.extension() == ext)
    }

    pub fn canonical_content_type(self) -> &'static str {
        match self {
            Self::Mp4 => "video/mp4",
            Self::QuickTime => "video/quicktime",
            Self::WebM => "video/webm",
            Self::Matroska => "video/x-matroska",
            Self::Ogg => "video/ogg",
        }
    }
}

/// An accepted image format. SVG is refused on purpose: it can carry script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageType {
    Jpeg,
    Png,
    WebP,
    Avif,
    Gif,
}

impl ImageType {
    pub const ALL: [ImageType; 5] = [Self::Jpeg, Self::Png, Self::WebP, Self::Avif, Self::Gif];

    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::WebP),
            "image/avif" => Some(Self::Avif),
            "image/gif" => Some(Self::Gif),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Avif => "image/avif",
            Self::Gif => "image/gif",
        }
    }

    /// Recognises an image by its first bytes (16 are enough for all five).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else if is_avif(bytes) {
            Some(Self::Avif)
        } else {
            None
        }
    }
}

fn is_avif(b: &[u8]) -> bool {
    if b.len() < 16 || &b[4..8] != b"ftyp" {
        return false;
    }
    let size = be32(b, 0) as usize;
    let end = size.min(b.len());
    // Major brand, then compatible brands after the minor version.
    std::iter::once(8).chain((16..end).step_by(4)).any(|i| i + 4 <= end && matches!(&b[i..i + 4], b"avif" | b"avis"))
}

/// Refuses a content type that is not an accepted video, saying which are.
pub fn check_video_type(content_type: &str) -> Result<VideoType, ApiError> {
    VideoType::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content_type {content_type:?} is not accepted for videos; use one of {}",
                VideoType::ALL.map(VideoType::canonical_content_type).join(", ")
            ),
        )
    })
}

/// Refuses a content type that is not an accepted image, saying which are.
pub fn check_image_type(content_type: &str) -> Result<ImageType, ApiError> {
    ImageType::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content_type {content_type:?} is not accepted for images; use one of {}",
                ImageType::ALL.map(ImageType::content_type).join(", ")
            ),
        )
    })
}

/// Refuses a size over `max` (and an empty upload).
pub fn check_size(what: &str, size: u64, max: u64) -> Result<(), ApiError> {
    if size == 0 {
        return Err(ApiError::invalid_field(format!("{what} is empty; send a file of at least 1 byte")));
    }
    if size > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{what} is {size} bytes; the limit is {max} bytes ({})", human_bytes(max)),
        ));
    }
    Ok(())
}

/// The `size` of a presign: required, so that the upload URL is always
/// bound to one length (and `If-None-Match: *`), then held to `max` as
/// [`check_size`] holds it. Clients of the first API left it out; they get
/// a 400 that says what to send.
pub fn required_size(size: Option<u64>, max: u64) -> Result<u64, ApiError> {
    let size = size.ok_or_else(|| {
        ApiError::invalid_field(format!(
            "size is required: the file's length in bytes, at most {max} ({}); the upload URL accepts exactly that many bytes, once",
            human_bytes(max)
        ))
    })?;
    check_size("size", size, max)?;
    Ok(size)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Pixel dimensions read from an image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// Reads width and height from the header of an image of type `kind`, with
/// the `imagesize` crate. `None` when the header is truncated or malformed,
/// or is not a header of `kind` (the bytes were checked against the claimed
/// type before, by [`check_image_bytes`]; this does not decide what is accepted).
pub fn image_dimensions(kind: ImageType, b: &[u8]) -> Option<Dimensions> {
    let found = imagesize::image_type(b).ok()?;
    let same_format = matches!(
        (kind, found),
        (ImageType::Png, imagesize::ImageType::Png)
            | (ImageType::Jpeg, imagesize::ImageType::Jpeg)
            | (ImageType::Gif, imagesize::ImageType::Gif)
            | (ImageType::WebP, imagesize::ImageType::Webp)
            | (ImageType::Avif, imagesize::ImageType::Heif(_))
    );
    let size = imagesize::blob_size(b).ok().filter(|_| same_format)?;
    let d = Dimensions { width: u32::try_from(size.width).ok()?, height: u32::try_from(size.height).ok()? };
    (d.width > 0 && d.height > 0).then_some(d)
}

impl ImageType {
    /// The format's usual name, for messages (`PNG`, `JPEG`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
            Self::Avif => "AVIF",
            Self::Gif => "GIF",
        }
    }
}

/// Says what `bytes` look like, for a message to someone whose upload was
/// refused: "a PNG image", "an SVG image", "plain text", "a PDF document"...
/// Only the first few hundred bytes are looked at.
pub fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "empty (no bytes at all)".into();
    }
    if let Some(kind) = ImageType::sniff(bytes) {
        return format!("a {} image", kind.label());
    }
    let head = &bytes[..bytes.len().min(512)];
    let starts = |magic: &[u8]| head.starts_with(magic);
    let known: Option<&str> = if starts(b"%PDF-") {
        Some("a PDF document")
    } else if starts(b"PK\x03\x04") {
        Some("a ZIP archive (or a document packed as one)")
    } else if starts(&[0x1f, 0x8b]) {
        Some("gzip-compressed data")
    } else if starts(b"BM") && head.len() >= 14 && head[6..10] == [0, 0, 0, 0] {
        Some("a BMP image, which is not accepted")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("a TIFF image, which is not accepted")
    } else if starts(&[0, 0, 1, 0]) && head.len() >= 6 {
        Some("an ICO icon, which is not accepted")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        Some(match &head[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                "a HEIC/HEIF image, which is not accepted (convert it to JPEG, WebP or AVIF)"
            }
            _ => "an MP4/QuickTime video, not an image",
        })
    } else if head.len() >= 12 && starts(b"RIFF") {
        Some("a RIFF file (audio or video), not an image")
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("a WebM/Matroska video, not an image")
    } else {
        None
    };
    if let Some(k) = known {
        return k.into();
    }
    // Text: valid UTF-8 (allowing a character cut at the end) without control bytes.
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    if let Some(t) = text.filter(|t| !t.chars().any(|c| c.is_control() && !c.is_whitespace())) {
        let lower = t.trim_start_matches('\u{feff}').trim_start().to_ascii_lowercase();
        return if lower.contains("<svg") {
            "an SVG image, which is not accepted (it can carry script); convert it to PNG or WebP".into()
        } else if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
            "an HTML document".into()
        } else if lower.starts_with("<?xml") || lower.starts_with('<') {
            "an XML document".into()
        } else if lower.starts_with('{') || lower.starts_with('[') {
            "JSON text".into()
        } else {
            "plain text".into()
        };
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unrecognised binary data (it starts with {})", hex.join(" "))
}

/// Checks that `bytes` really are an image of the `claimed` type, so that a
/// file is never stored under a label it does not deserve. The error (415)
/// says what the bytes look like and what to send instead.
pub fn check_image_bytes(claimed: ImageType, bytes: &[u8]) -> Result<(), ApiError> {
    match ImageType::sniff(bytes) {
        Some(actual) if actual == claimed => Ok(()),
        Some(actual) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "the file was sent as {} but its bytes are a {} image; send it with the content type {}",
                claimed.content_type(),
                actual.label(),
                actual.content_type()
            ),
        )),
        None => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "the file was sent as {} but its bytes are {}; upload a {} or {} image",
                claimed.content_type(),
                describe_bytes(bytes),
                ImageType::ALL[..ImageType::ALL.len() - 1].iter().map(|t| t.label()).collect::<Vec<_>>().join(", "),
                ImageType::ALL[ImageType::ALL.len() - 1].label()
            ),
        )),
    }
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_types() {
        let cases = [
            ("video/mp4", Some(VideoType::Mp4)),
            ("Video/MP4", Some(VideoType::Mp4)),
            ("video/quicktime", Some(VideoType::QuickTime)),
            ("video/webm", Some(VideoType::WebM)),
            ("video/x-matroska", Some(VideoType::Matroska)),
            ("video/matroska", Some(VideoType::Matroska)),
            ("video/ogg", Some(VideoType::Ogg)),
            ("video/mp4; codecs=avc1", None),
            ("video/avi", None),
            ("image/png", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(VideoType::from_content_type(ct), want, "{ct}");
            assert_eq!(check_video_type(ct).is_ok(), want.is_some());
        }
        for t in VideoType::ALL {
            assert_eq!(VideoType::from_extension(t.extension()), Some(t));
            assert_eq!(VideoType::from_content_type(t.canonical_content_type()), Some(t));
        }
        let e = check_video_type("video/avi").unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.message.contains("video/mp4, video/quicktime"), "{}", e.message);
    }

    #[test]
    fn image_types_exclude_svg() {
        for (ct, ok) in [
            ("image/jpeg", true),
            ("image/png", true),
            ("image/webp", true),
            ("image/avif", true),
            ("image/gif", true),
            ("image/svg+xml", false),
            ("text/html", false),
        ] {
            assert_eq!(check_image_type(ct).is_ok(), ok, "{ct}");
        }
    }

    #[test]
    fn sizes() {
        assert!(check_size("upload", 1, 10).is_ok());
        assert!(check_size("upload", 10, 10).is_ok());
        assert_eq!(check_size("upload", 11, 10).unwrap_err().status(), 413);
        assert_eq!(check_size("upload", 0, 10).unwrap_err().status(), 400);
        let e = check_size("size", DEFAULT_MAX_IMAGE_BYTES + 1, DEFAULT_MAX_IMAGE_BYTES).unwrap_err();
        assert!(e.message.ends_with("the limit is 26214400 bytes (25 MiB)"), "{}", e.message);
    }

    #[test]
    fn a_presign_size_is_required_and_bounded() {
        let e = required_size(None, DEFAULT_MAX_IMAGE_BYTES).unwrap_err();
        assert_eq!((e.status(), e.code), (400, ErrorCode::InvalidField));
        assert!(
            e.message.starts_with("size is required: the file's length in bytes, at most 26214400 (25 MiB)"),
            "{}",
            e.message
        );
        assert_eq!(required_size(Some(10), 10).unwrap(), 10);
        assert_eq!(required_size(Some(11), 10).unwrap_err().status(), 413);
        assert_eq!(required_size(Some(0), 10).unwrap_err().status(), 400);
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend(w.to_be_bytes());
        v.extend(h.to_be_bytes());
        v.extend([8, 2, 0, 0, 0]);
        v
    }

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        v.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        v.extend([0xFF, 0xDB, 0, 4, 0, 0]); // a (short) quantisation table segment
        v.extend([0xFF, 0xC2, 0, 17, 8]);
        v.extend(h.to_be_bytes());
        v.extend(w.to_be_bytes());
        v.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v
    }

    fn avif(w: u32, h: u32) -> Vec<u8> {
        fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            v.extend(kind);
            v.extend(body);
            v
        }
        let mut ispe = vec![0, 0, 0, 0];
        ispe.extend(w.to_be_bytes());
        ispe.extend(h.to_be_bytes());
        let ipco = bx(b"ipco", &bx(b"ispe", &ispe));
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(bx(b"hdlr", &[0; 25]));
        meta.extend(bx(b"iprp", &ipco));
        let mut v = bx(b"ftyp", b"avif\0\0\0\0mif1miaf");
        v.extend(bx(b"meta", &meta));
        v
    }

    fn webp(chunk: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WEBP".to_vec();
        v.extend(chunk);
        v.extend([0; 4]);
        v.extend(payload);
        v.resize(32, 0);
        v
    }

    #[test]
    fn sniffs_and_measures_each_format() {
        let gif = b"GIF89a\x40\x01\xf0\x00\x00\x00".to_vec();
        let vp8 = webp(b"VP8 ", &[0, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        let vp8l = {
            let bits: u32 = 99 | (49 << 14);
            let mut p = vec![0x2f];
            p.extend(bits.to_le_bytes());
            webp(b"VP8L", &p)
        };
        let vp8x = webp(b"VP8X", &[0, 0, 0, 0, 0xff, 0x03, 0, 0xff, 0x01, 0]);
        let cases: Vec<(Vec<u8>, ImageType, (u32, u32))> = vec![
            (png(640, 480), ImageType::Png, (640, 480)),
            (jpeg(1920, 1080), ImageType::Jpeg, (1920, 1080)),
            (gif, ImageType::Gif, (320, 240)),
            (vp8, ImageType::WebP, (640, 480)),
            (vp8l, ImageType::WebP, (100, 50)),
            (vp8x, ImageType::WebP, (1024, 512)),
            (avif(4000, 3000), ImageType::Avif, (4000, 3000)),
        ];
        for (bytes, kind, (w, h)) in cases {
            assert_eq!(ImageType::sniff(&bytes), Some(kind));
            assert_eq!(image_dimensions(kind, &bytes), Some(Dimensions { width: w, height: h }), "{kind:?}");
        }
    }

    #[test]
    fn rejects_impostors_and_truncation() {
        for bytes in
            [&b""[..], b"<svg xmlns=", b"%PDF-1.7", b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", b"RIFF\0\0\0\0WAVEfmt "]
        {
            assert_eq!(ImageType::sniff(bytes), None, "{bytes:?}");
        }
        assert_eq!(image_dimensions(ImageType::Png, &png(1, 1)[..20]), None);
        assert_eq!(image_dimensions(ImageType::Jpeg, &jpeg(10, 10)[..30]), None);
        assert_eq!(image_dimensions(ImageType::Png, &png(0, 10)), None);
    }

    #[test]
    fn describes_what_bytes_look_like() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (&png(2, 2), "a PNG image"),
            (&jpeg(2, 2), "a JPEG image"),
            (b"GIF87a\x01\0\x01\0", "a GIF image"),
            (b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "an SVG image"),
            (b"  <svg viewBox=\"0 0 1 1\"></svg>", "an SVG image"),
            (b"<!DOCTYPE html><html></html>", "an HTML document"),
            (b"<?xml version=\"1.0\"?><a/>", "an XML document"),
            (b"{\"a\": 1}", "JSON text"),
            (b"hello, world\n", "plain text"),
            (b"BMW or Audi? A car question.", "plain text"),
            ("caf\u{e9} cr\u{e8}me".as_bytes(), "plain text"),
            (b"%PDF-1.7\n", "a PDF document"),
            (b"PK\x03\x04rest", "a ZIP archive"),
            (b"BM\0\0\0\0\0\0\0\0\0\0\0\0", "a BMP image"),
            (b"II*\0\x08\0\0\0", "a TIFF image"),
            (b"\0\0\0\x18ftypheic\0\0\0\0", "a HEIC/HEIF image"),
            (b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", "an MP4/QuickTime video"),
            (b"RIFF\0\0\0\0WAVEfmt ", "a RIFF file"),
            (&[0x1A, 0x45, 0xDF, 0xA3, 0, 0], "a WebM/Matroska video"),
            (
                &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04],
                "unrecognised binary data (it starts with de ad be ef 00 01 02 03)",
            ),
        ];
        for (bytes, want) in cases {
            let got = describe_bytes(bytes);
            assert!(got.starts_with(want), "{bytes:?}: {got}");
        }
    }

    #[test]
    fn claimed_type_must_match_the_bytes() {
        assert_eq!(check_image_bytes(ImageType::Png, &png(3, 3)), Ok(()));
        assert_eq!(check_image_bytes(ImageType::Jpeg, &jpeg(3, 3)), Ok(()));
        let e = check_image_bytes(ImageType::Jpeg, &png(3, 3)).unwrap_err();
        assert_eq!(e.status(), 415);
        assert_eq!(
            e.message,
            "the file was sent as image/jpeg but its bytes are a PNG image; send it with the content type image/png"
        );
        let e = check_image_bytes(ImageType::Png, b"just some text").unwrap_err();
        assert_eq!(e.status(), 415);
        assert_eq!(
            e.message,
            "the file was sent as image/png but its bytes are plain text; upload a JPEG, PNG, WebP, AVIF or GIF image"
        );
        let e = check_image_bytes(ImageType::Png, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap_err();
        assert!(e.message.contains("its bytes are an SVG image, which is not accepted"), "{}", e.message);
    }
}

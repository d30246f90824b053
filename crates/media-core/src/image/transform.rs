//! Image transformation URLs: the defaults of the `transform_url` handed out
//! with every image (`{base}/images/{app_id}/{image_id}/w=1280,q=85,f=auto`,
//! the service's own route, see [`crate::image::variant`]), and the older
//! Cloudflare form `{base}/cdn-cgi/image/{options}/assets/images/...`, which
//! earlier answers handed out and which the service still answers with the
//! same transforms (its options are read by the same rules).

use crate::error::ApiError;

/// The path prefix of Cloudflare's form (its zones answer it themselves when
/// Image Transformations are enabled on them).
pub const TRANSFORM_PATH_PREFIX: &str = "/cdn-cgi/image/";
/// The default width of `transform_url` (`TRANSFORM_WIDTH`): large enough
/// for a full-width image on most screens, far smaller than camera originals.
pub const DEFAULT_TRANSFORM_WIDTH: u32 = 1280;
/// The default quality of `transform_url` (`TRANSFORM_QUALITY`).
pub const DEFAULT_TRANSFORM_QUALITY: u8 = 85;
/// The largest width or height Cloudflare produces (its documented limit).
pub const MAX_TRANSFORM_DIMENSION: u32 = 12_000;
/// Options segments longer than this are refused (real ones are a few dozen bytes).
pub const MAX_OPTIONS_LEN: usize = 512;

/// The options of the `transform_url` handed out with every image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformDefaults {
    /// Resize to at most this many pixels wide.
    pub width: u32,
    /// Encoder quality, 1-100.
    pub quality: u8,
}

impl Default for TransformDefaults {
    fn default() -> Self {
        Self { width: DEFAULT_TRANSFORM_WIDTH, quality: DEFAULT_TRANSFORM_QUALITY }
    }
}

impl TransformDefaults {
    /// Checks the configured values; the error says which is out of range.
    pub fn new(width: u32, quality: u8) -> Result<Self, String> {
        if width == 0 || width > MAX_TRANSFORM_DIMENSION {
            return Err(format!("width {width} is out of range; use 1-{MAX_TRANSFORM_DIMENSION}"));
        }
        if quality == 0 || quality > 100 {
            return Err(format!("quality {quality} is out of range; use 1-100"));
        }
        Ok(Self { width, quality })
    }

    /// `w=1280,q=85,f=auto`: `f=auto` sends AVIF or WebP to browsers that
    /// take them.
    pub fn options(&self) -> String {
        format!("w={},q={},f=auto", self.width, self.quality)
    }
}

/// Splits the path of a transformation request into its options segment and
/// its source (which Cloudflare reads as an absolute path, or as an absolute
/// URL when it starts with `http:`/`https:`). `None` when `path` is not a
/// transformation path at all.
pub fn split_transform_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(TRANSFORM_PATH_PREFIX)?;
    let (options, source) = rest.split_once('/').unwrap_or((rest, ""));
    Some((options, source))
}

/// The options segment with percent-escapes undone: clients that encode
/// path parameters send `width%3D640%2Cquality%3D75` for
/// `width=640,quality=75`. (Only the options are decoded; the source path
/// after them is matched exactly as sent.)
pub fn decode_options(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid_field("the transformation options are not UTF-8 once percent-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_transform_url() {
        let d = TransformDefaults::default();
        assert_eq!(d.options(), "w=1280,q=85,f=auto");
        assert_eq!(TransformDefaults::new(640, 70).unwrap().options(), "w=640,q=70,f=auto");
        assert!(TransformDefaults::new(0, 70).unwrap_err().contains("width 0"));
        assert!(TransformDefaults::new(12_001, 70).is_err());
        assert!(TransformDefaults::new(640, 0).unwrap_err().contains("quality 0"));
        assert!(TransformDefaults::new(640, 101).is_err());
        // What this module builds, the service's own route accepts.
        assert!(crate::image::variant::VariantPolicy::default().parse(&d.options()).is_ok());
    }

    #[test]
    fn splits_options_from_source() {
        assert_eq!(split_transform_path("/cdn-cgi/image/w=1/assets/images/a/b"), Some(("w=1", "assets/images/a/b")));
        assert_eq!(split_transform_path("/cdn-cgi/image/w=1"), Some(("w=1", "")));
        assert_eq!(split_transform_path("/cdn-cgi/image/"), Some(("", "")));
        assert_eq!(split_transform_path("/cdn-cgi/image"), None);
        assert_eq!(split_transform_path("/assets/images/a/b"), None);
    }

    #[test]
    fn decodes_percent_escaped_options() {
        assert_eq!(decode_options("width%3D640%2Cquality%3D75").unwrap(), "width=640,quality=75");
        assert_eq!(decode_options("background=%2523fff").unwrap(), "background=%23fff");
        assert_eq!(decode_options("w=1").unwrap(), "w=1");
        assert_eq!(decode_options("w=%FF").unwrap_err().status(), 400);
    }
}

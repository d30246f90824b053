//! Cloudflare image transformations by URL: the `transform_url` handed out
//! with every image, `{base}/cdn-cgi/image/{options}/{source path}`, and the
//! syntax of its options segment.
//!
//! In production Cloudflare answers `/cdn-cgi/image/...` at the zone, before
//! the Worker runs, and fetches the source path from the zone (the Worker's
//! `/assets/` route). Locally there is no such edge, so the image service
//! answers the same URLs itself with the original; [`parse_options`] checks
//! the options the way the edge reads them, so a URL that works locally is a
//! URL production accepts.

use crate::error::ApiError;

/// The fixed path prefix Cloudflare intercepts.
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

    /// `width=1280,quality=85,format=auto`: `format=auto` lets the edge send
    /// AVIF or WebP to browsers that take them.
    pub fn options(&self) -> String {
        format!("width={},quality={},format=auto", self.width, self.quality)
    }

    /// The transformation URL of the image at `source_path` (an absolute path
    /// on `public_base`, such as `/assets/images/app/img`).
    pub fn url(&self, public_base: &str, source_path: &str) -> String {
        transform_url(public_base, &self.options(), source_path)
    }
}

/// `{base}/cdn-cgi/image/{options}{source_path}`.
pub fn transform_url(public_base: &str, options: &str, source_path: &str) -> String {
    format!(
        "{}{TRANSFORM_PATH_PREFIX}{options}/{}",
        public_base.trim_end_matches('/'),
        source_path.trim_start_matches('/')
    )
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

/// One `name=value` option, with the name as written (short or long form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformOption<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// The values an option takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A whole number of pixels, 1 to the dimension limit.
    Pixels,
    /// A number (decimals allowed) within the range.
    Number(f64, f64),
    /// One of these words.
    Word(&'static [&'static str]),
    /// Quality: 1-100, or a named level.
    Quality,
    /// Gravity: a word, or `XxY` with both in 0-1.
    Gravity,
    /// Free text from a safe alphabet (colours, `trim`, `border`); checked for syntax only.
    Text,
}

/// Every option the edge takes by URL: long name, short name, values.
const OPTIONS: &[(&str, Option<&str>, Kind)] = &[
    ("width", Some("w"), Kind::Pixels),
    ("height", Some("h"), Kind::Pixels),
    ("quality", Some("q"), Kind::Quality),
    ("format", Some("f"), Kind::Word(&["auto", "avif", "webp", "jpeg", "baseline-jpeg", "png", "json"])),
    ("fit", None, Kind::Word(&["scale-down", "contain", "cover", "crop", "pad", "squeeze"])),
    ("gravity", Some("g"), Kind::Gravity),
    ("dpr", None, Kind::Number(0.1, 10.0)),
    ("anim", None, Kind::Word(&["true", "false"])),
    ("metadata", None, Kind::Word(&["keep", "copyright", "none"])),
    ("background", None, Kind::Text),
    ("blur", None, Kind::Number(0.0, 250.0)),
    ("border", None, Kind::Text),
    ("brightness", None, Kind::Number(0.0, 10.0)),
    ("contrast", None, Kind::Number(0.0, 10.0)),
    ("saturation", None, Kind::Number(0.0, 10.0)),
    ("gamma", None, Kind::Number(0.0, 10.0)),
    ("sharpen", None, Kind::Number(0.0, 10.0)),
    ("rotate", None, Kind::Word(&["0", "90", "180", "270"])),
    ("flip", None, Kind::Word(&["h", "v", "hv"])),
    ("trim", None, Kind::Text),
    ("zoom", None, Kind::Number(0.0, 1.0)),
    ("compression", None, Kind::Word(&["fast"])),
    ("onerror", None, Kind::Word(&["redirect"])),
    ("segment", None, Kind::Word(&["foreground"])),
    ("slow-connection-quality", Some("scq"), Kind::Quality),
];

const QUALITY_LEVELS: [&str; 4] = ["high", "medium-high", "medium-low", "low"];
const GRAVITY_WORDS: [&str; 7] = ["auto", "face", "left", "right", "top", "bottom", "center"];

fn number(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1;
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

fn value_ok(kind: Kind, v: &str) -> Result<(), String> {
    match kind {
        Kind::Pixels => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_TRANSFORM_DIMENSION).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(format!("a whole number of pixels, 1-{MAX_TRANSFORM_DIMENSION}")),
        },
        Kind::Number(lo, hi) => match number(v) {
            Some(n) if n >= lo && n <= hi => Ok(()),
            _ => Err(format!("a number from {lo} to {hi}")),
        },
        Kind::Word(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(format!("one of {}", words.join(", ")))
            }
        }
        Kind::Quality => match v.parse::<u8>() {
            Ok(n) if (1..=100).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ if QUALITY_LEVELS.contains(&v) => Ok(()),
            _ => Err(format!("a number from 1 to 100, or one of {}", QUALITY_LEVELS.join(", "))),
        },
        Kind::Gravity => {
            let point = v.split_once('x').and_then(|(x, y)| Some((number(x)?, number(y)?)));
            match point {
                _ if GRAVITY_WORDS.contains(&v) => Ok(()),
                Some((x, y)) if (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y) => Ok(()),
                _ => Err(format!(
                    "one of {}, or a point XxY with both in 0-1 (0.5x0.5 is the centre)",
                    GRAVITY_WORDS.join(", ")
                )),
            }
        }
        Kind::Text => {
            let safe = |c: char| c.is_ascii_alphanumeric() || "#%.;:()_-".contains(c);
            if !v.is_empty() && v.chars().all(safe) {
                Ok(())
            } else {
                Err("letters, digits and # % . ; : ( ) _ - only (percent-encode anything else)".into())
            }
        }
    }
}

/// Parses an options segment (`width=640,quality=75,format=auto`): at least
/// one option, each `name=value` with a name the edge knows and a value of
/// the right kind. The error (400) names the option and what it takes.
pub fn parse_options(segment: &str) -> Result<Vec<TransformOption<'_>>, ApiError> {
    let hint = "write them as name=value pairs separated by commas, e.g. width=640,quality=75,format=auto";
    if segment.is_empty() {
        return Err(ApiError::invalid_field(format!("the transformation options are missing; {hint}")));
    }
    if segment.len() > MAX_OPTIONS_LEN {
        return Err(ApiError::invalid_field(format!(
            "the transformation options are {} characters long; the limit is {MAX_OPTIONS_LEN}",
            segment.len()
        )));
    }
    segment
        .split(',')
        .map(|item| {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                ApiError::invalid_field(format!("the transformation option {item:?} has no value; {hint}"))
            })?;
            let (_, _, kind) =
                OPTIONS.iter().find(|(long, short, _)| *long == name || *short == Some(name)).ok_or_else(|| {
                    ApiError::invalid_field(format!(
                        "{name:?} is not a Cloudflare image transformation option; use {}",
                        OPTIONS.iter().map(|(long, _, _)| *long).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            value_ok(*kind, value).map_err(|want| {
                ApiError::invalid_field(format!(
                    "the transformation option {name}={value} is invalid: {name} takes {want}"
                ))
            })?;
            Ok(TransformOption { name, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_transform_url() {
        let d = TransformDefaults::default();
        assert_eq!(d.options(), "width=1280,quality=85,format=auto");
        assert_eq!(
            d.url("https://assets.example.com/", "/assets/images/app1/img1"),
            "https://assets.example.com/cdn-cgi/image/width=1280,quality=85,format=auto/assets/images/app1/img1"
        );
        assert_eq!(TransformDefaults::new(640, 70).unwrap().options(), "width=640,quality=70,format=auto");
        assert!(TransformDefaults::new(0, 70).unwrap_err().contains("width 0"));
        assert!(TransformDefaults::new(12_001, 70).is_err());
        assert!(TransformDefaults::new(640, 0).unwrap_err().contains("quality 0"));
        assert!(TransformDefaults::new(640, 101).is_err());
        // What this module builds, it accepts.
        assert_eq!(parse_options(&d.options()).unwrap().len(), 3);
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

    #[test]
    fn accepts_what_the_edge_accepts() {
        for ok in [
            "width=1280,quality=85,format=auto",
            "w=80,h=60,q=75,f=webp",
            "fit=cover,gravity=auto",
            "g=0.5x0.25",
            "gravity=face,zoom=0.5",
            "dpr=2",
            "dpr=1.5,width=300",
            "quality=medium-high",
            "anim=false,metadata=none",
            "background=%23ffffff",
            "background=rgb(255;0;0)",
            "blur=50,sharpen=1.5",
            "rotate=90,flip=hv",
            "trim=10;20;10;20",
            "onerror=redirect",
            "format=json",
            "scq=50",
            "width=12000",
        ] {
            assert!(parse_options(ok).is_ok(), "{ok}: {:?}", parse_options(ok));
        }
    }

    #[test]
    fn refuses_bad_syntax_with_a_message_naming_the_option() {
        let cases = [
            ("", "missing"),
            ("width", "has no value"),
            ("width=1280,", "has no value"),
            ("colour=red", "is not a Cloudflare image transformation option"),
            ("width=0", "width takes a whole number of pixels"),
            ("width=12001", "width takes a whole number of pixels"),
            ("width=-5", "width takes a whole number"),
            ("width=12.5", "width takes a whole number"),
            ("width=+5", "width takes a whole number"),
            ("quality=0", "quality takes a number from 1 to 100"),
            ("q=101", "q takes a number from 1 to 100"),
            ("format=gif", "format takes one of auto, avif"),
            ("fit=stretch", "fit takes one of scale-down"),
            ("gravity=2x0", "gravity takes one of auto"),
            ("dpr=0", "dpr takes a number from 0.1"),
            ("dpr=1..5", "dpr takes a number"),
            ("rotate=45", "rotate takes one of 0, 90"),
            ("background=<script>", "background takes letters, digits"),
            ("width=100=200", "width takes a whole number"),
        ];
        for (input, want) in cases {
            let e = parse_options(input).unwrap_err();
            assert_eq!(e.status(), 400, "{input}");
            assert!(e.message.contains(want), "{input:?}: {}", e.message);
        }
        assert!(parse_options(&"w=1,".repeat(200)).unwrap_err().message.contains("the limit is 512"));
    }
}

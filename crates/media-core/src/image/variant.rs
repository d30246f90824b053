//! The image service's own transforms: `GET /images/{app_id}/{image_id}/{options}`.
//!
//! This module owns the rules, with no I/O:
//! - the options grammar (`w=640,h=480,q=75,fit=cover,f=auto`, long names too);
//! - the allowed set ([`VariantPolicy`]: sizes, qualities, fits), which bounds
//!   how many variants (billed transformations) one image can ever have;
//! - the canonical name of a variant, so that aliases (`width=` and `w=`, any
//!   option order, defaults left out) share one stored object;
//! - `f=auto`: AVIF, WebP or the original's own format from `Accept`;
//! - the transformer's limits (input bytes, source pixels, AVIF's side).
//!
//! The Worker reads the original, calls the Images binding with
//! [`VariantOptions`] and stores the result under [`variant_key`].

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::ids::{AppId, ImageId};
use crate::image::transform::{TransformDefaults, MAX_OPTIONS_LEN};
use crate::media::{Dimensions, ImageType};

/// The route's path prefix (`/images/{app_id}/{image_id}/{options}`).
pub const VARIANT_ROUTE_PREFIX: &str = "/images/";
/// The largest original the Images binding takes (Cloudflare's limit is
/// 20 MB; originals may be up to `MAX_IMAGE_BYTES`).
pub const MAX_TRANSFORM_INPUT_BYTES: u64 = 20_000_000;
/// The most pixels a source may declare (Cloudflare's limit on image area).
/// Checked from the header before anything is decoded: a small file that
/// declares 50,000 x 50,000 is refused here, not by a decoder running out of
/// memory.
pub const MAX_SOURCE_PIXELS: u64 = 100_000_000;
/// AVIF output is at most this many pixels a side (the binding's limit).
pub const MAX_AVIF_SIDE: u32 = 1200;
/// The allowed sizes by default (`TRANSFORM_SIZES`), in pixels, for both `w` and `h`.
pub const DEFAULT_SIZES: [u32; 8] = [160, 320, 480, 640, 960, 1280, 1600, 1920];
/// The allowed qualities by default (`TRANSFORM_QUALITIES`).
pub const DEFAULT_QUALITIES: [u8; 4] = [50, 65, 75, 85];

/// How the image fits the box `w` x `h` (Cloudflare's names and meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fit {
    /// Within the box, keeping the aspect ratio, never enlarged (the default).
    ScaleDown,
    /// Within the box, keeping the aspect ratio, enlarged if smaller.
    Contain,
    /// Fills the box exactly, cropping what overflows.
    Cover,
    /// Like cover, but never enlarged.
    Crop,
    /// Within the box, padded to fill it exactly.
    Pad,
}

impl Fit {
    pub const ALL: [Fit; 5] = [Fit::ScaleDown, Fit::Contain, Fit::Cover, Fit::Crop, Fit::Pad];

    pub fn as_str(self) -> &'static str {
        match self {
            Fit::ScaleDown => "scale-down",
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Crop => "crop",
            Fit::Pad => "pad",
        }
    }

    pub fn parse(s: &str) -> Option<Fit> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FormatChoice {
    /// AVIF or WebP when the client takes them, else the original's own.
    Auto,
    Exactly(OutputFormat),
}

/// A format the service writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputFormat {
    Avif,
    Webp,
    Jpeg,
    Png,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 4] = [OutputFormat::Avif, OutputFormat::Webp, OutputFormat::Jpeg, OutputFormat::Png];

    /// The name in URLs and file names (`f=webp`, `.webp`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Avif => "avif",
            OutputFormat::Webp => "webp",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Avif => "image/avif",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
        }
    }

    /// Whether `content_type` (what the Images binding says it made) is
    /// this format: a variant is stored only when it is the one asked for.
    pub fn is_content_type(self, content_type: &str) -> bool {
        crate::http::media_type(content_type).eq_ignore_ascii_case(self.content_type())
    }

    fn parse(s: &str) -> Option<OutputFormat> {
        match s {
            "jpg" => Some(OutputFormat::Jpeg),
            _ => Self::ALL.into_iter().find(|f| f.as_str() == s),
        }
    }
}

/// One variant as asked for, with defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VariantOptions {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub quality: u8,
    pub fit: Fit,
    pub format: FormatChoice,
}

impl VariantOptions {
    /// The canonical options segment: every option, in one order
    /// (`w=640,q=75,fit=scale-down,f=auto`; `w`/`h` only when given).
    pub fn canonical(&self) -> String {
        let format = match self.format {
            FormatChoice::Auto => "auto",
            FormatChoice::Exactly(f) => f.as_str(),
        };
        let mut out = String::new();
        if let Some(w) = self.width {
            out.push_str(&format!("w={w},"));
        }
        if let Some(h) = self.height {
            out.push_str(&format!("h={h},"));
        }
        out.push_str(&format!("q={},fit={},f={format}", self.quality, self.fit.as_str()));
        out
    }

    /// The stored object's name within the image's prefix, for the format
    /// the options resolved to: `w640-h0-q75-scale-down.webp` (0: not given).
    pub fn object_name(&self, format: OutputFormat) -> String {
        format!(
            "w{}-h{}-q{}-{}.{}",
            self.width.unwrap_or(0),
            self.height.unwrap_or(0),
            self.quality,
            self.fit.as_str(),
            format.as_str()
        )
    }

    /// The size of the output for a source of `source` pixels, following
    /// the fit's rules (rounded to whole pixels, at least 1).
    pub fn output_size(&self, source: Dimensions) -> Dimensions {
        let (sw, sh) = (f64::from(source.width), f64::from(source.height));
        let by_w = self.width.map(|w| f64::from(w) / sw);
        let by_h = self.height.map(|h| f64::from(h) / sh);
        let scaled = |s: f64| Dimensions { width: round_px(sw * s), height: round_px(sh * s) };
        if by_w.is_none() && by_h.is_none() {
            return source;
        }
        let smaller = by_w.unwrap_or(f64::INFINITY).min(by_h.unwrap_or(f64::INFINITY));
        let larger = by_w.unwrap_or(0.0).max(by_h.unwrap_or(0.0));
        let boxed = self.width.zip(self.height).map(|(width, height)| Dimensions { width, height });
        match (self.fit, boxed) {
            (Fit::ScaleDown, _) => scaled(smaller.min(1.0)),
            (Fit::Contain, _) => scaled(smaller),
            (Fit::Cover | Fit::Pad, Some(b)) => b,
            (Fit::Cover, None) => scaled(larger),
            (Fit::Pad, None) => scaled(smaller),
            (Fit::Crop, Some(b)) if larger <= 1.0 => b,
            (Fit::Crop, Some(b)) => {
                Dimensions { width: b.width.min(source.width), height: b.height.min(source.height) }
            }
            (Fit::Crop, None) => scaled(larger.min(1.0)),
        }
    }
}

fn round_px(v: f64) -> u32 {
    // Sizes come from the allowed set and sources from checked headers: far
    // inside u32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let px = v.round().clamp(1.0, f64::from(u32::MAX)) as u32;
    px
}

/// What may be asked for: the allowed sizes (for `w` and `h`), qualities
/// and fits. Anything else is a 400, so one image has at most
/// [`VariantPolicy::variant_limit`] variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantPolicy {
    sizes: Vec<u32>,
    qualities: Vec<u8>,
    fits: Vec<Fit>,
    default_quality: u8,
}

impl Default for VariantPolicy {
    fn default() -> Self {
        Self {
            sizes: DEFAULT_SIZES.to_vec(),
            qualities: DEFAULT_QUALITIES.to_vec(),
            fits: Fit::ALL.to_vec(),
            default_quality: TransformDefaults::default().quality,
        }
    }
}

impl VariantPolicy {
    /// Checks a configuration: non-empty lists of values in range. The
    /// options of the `transform_url` handed out (`defaults`) are always
    /// allowed, so changing the lists never breaks those URLs.
    pub fn new(
        mut sizes: Vec<u32>,
        mut qualities: Vec<u8>,
        fits: Vec<Fit>,
        defaults: TransformDefaults,
    ) -> Result<Self, String> {
        let default_quality = defaults.quality;
        sizes.push(defaults.width);
        qualities.push(default_quality);
        sizes.sort_unstable();
        sizes.dedup();
        qualities.sort_unstable();
        qualities.dedup();
        if fits.is_empty() {
            return Err("the list of fits needs at least one value".into());
        }
        if let Some(bad) = sizes.iter().find(|&&s| s == 0 || s > crate::image::transform::MAX_TRANSFORM_DIMENSION) {
            return Err(format!(
                "size {bad} is out of range; use 1-{}",
                crate::image::transform::MAX_TRANSFORM_DIMENSION
            ));
        }
        if let Some(bad) = qualities.iter().find(|&&q| q == 0 || q > 100) {
            return Err(format!("quality {bad} is out of range; use 1-100"));
        }
        let mut unique = Vec::new();
        for f in fits {
            if !unique.contains(&f) {
                unique.push(f);
            }
        }
        Ok(Self { sizes, qualities, fits: unique, default_quality })
    }

    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    pub fn qualities(&self) -> &[u8] {
        &self.qualities
    }

    pub fn fits(&self) -> &[Fit] {
        &self.fits
    }

    pub fn default_quality(&self) -> u8 {
        self.default_quality
    }

    /// The most variants one image can have: every width (or none) with
    /// every height (or none), quality, fit and written format.
    pub fn variant_limit(&self) -> u64 {
        let sides = self.sizes.len() as u64 + 1;
        sides * sides * self.qualities.len() as u64 * self.fits.len() as u64 * OutputFormat::ALL.len() as u64
    }

    /// What is allowed, for error messages and the README.
    pub fn describe(&self) -> String {
        let list = |v: Vec<String>| v.join(", ");
        format!(
            "w and h: {}; q: {}; fit: {}; f: auto, avif, webp, jpeg, png",
            list(self.sizes.iter().map(u32::to_string).collect()),
            list(self.qualities.iter().map(u8::to_string).collect()),
            list(self.fits.iter().map(|f| f.as_str().to_owned()).collect()),
        )
    }

    /// Reads an options segment. Names: `w`/`width`, `h`/`height`,
    /// `q`/`quality`, `f`/`format`, `fit`; each at most once, values from
    /// the allowed set. Defaults: the configured quality, `fit=scale-down`
    /// (when allowed, else the first allowed fit), `f=auto`.
    pub fn parse(&self, segment: &str) -> Result<VariantOptions, ApiError> {
        let bad = |m: String| ApiError::invalid_field(format!("{m}; allowed: {}", self.describe()));
        if segment.len() > MAX_OPTIONS_LEN {
            return Err(bad(format!(
                "the options are {} characters long; the limit is {MAX_OPTIONS_LEN}",
                segment.len()
            )));
        }
        let mut opts = VariantOptions {
            width: None,
            height: None,
            quality: self.default_quality,
            fit: if self.fits.contains(&Fit::ScaleDown) { Fit::ScaleDown } else { self.fits[0] },
            format: FormatChoice::Auto,
        };
        let mut seen: Vec<&str> = Vec::new();
        for item in segment.split(',').filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("the option {item:?} has no value; write name=value, e.g. w=640,f=auto")))?;
            let long = match name {
                "w" | "width" => "width",
                "h" | "height" => "height",
                "q" | "quality" => "quality",
                "f" | "format" => "format",
                "fit" => "fit",
                _ => return Err(bad(format!("{name:?} is not an option of this service"))),
            };
            if seen.contains(&long) {
                return Err(bad(format!("{long} is given twice")));
            }
            seen.push(long);
            let not_allowed = || bad(format!("{name}={value} is not allowed"));
            match long {
                "width" | "height" => {
                    let px = whole(value).filter(|v| self.sizes.contains(v)).ok_or_else(not_allowed)?;
                    if long == "width" {
                        opts.width = Some(px);
                    } else {
                        opts.height = Some(px);
                    }
                }
                "quality" => {
                    opts.quality = whole(value)
                        .and_then(|q| u8::try_from(q).ok())
                        .filter(|q| self.qualities.contains(q))
                        .ok_or_else(not_allowed)?;
                }
                "format" => {
                    opts.format = match value {
                        "auto" => FormatChoice::Auto,
                        v => FormatChoice::Exactly(OutputFormat::parse(v).ok_or_else(not_allowed)?),
                    };
                }
                _ => opts.fit = Fit::parse(value).filter(|f| self.fits.contains(f)).ok_or_else(not_allowed)?,
            }
        }
        Ok(opts)
    }
}

/// A whole number written plainly (no sign, no leading zeros but "0" itself).
fn whole(s: &str) -> Option<u32> {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !(s.len() > 1 && s.starts_with('0'));
    plain.then(|| s.parse().ok()).flatten()
}

/// Which modern formats a client's `Accept` names (explicitly: `*/*` and
/// `image/*` do not promise AVIF or WebP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptClass {
    Avif,
    Webp,
    Neither,
}

impl AcceptClass {
    pub fn of(accept: Option<&str>) -> AcceptClass {
        let mut webp = false;
        for item in accept.unwrap_or("").split(',') {
            let mut params = item.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = params.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f64>().is_ok_and(|q| q <= 0.0))
            });
            match media.as_str() {
                "image/avif" if !refused => return AcceptClass::Avif,
                "image/webp" if !refused => webp = true,
                _ => {}
            }
        }
        if webp {
            AcceptClass::Webp
        } else {
            AcceptClass::Neither
        }
    }

    /// Its name in cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptClass::Avif => "avif",
            AcceptClass::Webp => "webp",
            AcceptClass::Neither => "none",
        }
    }
}

/// The format to write: `f=auto` picks AVIF (when the client takes it and
/// the output fits AVIF's side limit), else WebP (when taken), else the
/// original's own format (PNG for GIF, WebP and AVIF originals, which a
/// client that named neither may not read). An explicit `f=avif` over the
/// side limit is a 400.
pub fn negotiate(
    choice: FormatChoice,
    accept: AcceptClass,
    original: ImageType,
    output: Dimensions,
) -> Result<OutputFormat, ApiError> {
    let avif_fits = output.width <= MAX_AVIF_SIDE && output.height <= MAX_AVIF_SIDE;
    match choice {
        FormatChoice::Exactly(OutputFormat::Avif) if !avif_fits => Err(ApiError::invalid_field(format!(
            "f=avif makes images of at most {MAX_AVIF_SIDE} pixels a side, and this one would be {}x{}; ask for a smaller w or h, or f=webp",
            output.width, output.height
        ))),
        FormatChoice::Exactly(f) => Ok(f),
        FormatChoice::Auto => Ok(match (accept, original) {
            (AcceptClass::Avif, _) if avif_fits => OutputFormat::Avif,
            (AcceptClass::Avif | AcceptClass::Webp, _) => OutputFormat::Webp,
            (AcceptClass::Neither, ImageType::Jpeg) => OutputFormat::Jpeg,
            (AcceptClass::Neither, _) => OutputFormat::Png,
        }),
    }
}

/// Refuses a source the transformer must not be given: over its input
/// limit, of unknown dimensions, or declaring more than [`MAX_SOURCE_PIXELS`].
pub fn check_source(size: u64, dims: Option<Dimensions>) -> Result<Dimensions, ApiError> {
    let unprocessable = |m: String| ApiError::new(ErrorCode::ImageUnprocessable, m);
    if size > MAX_TRANSFORM_INPUT_BYTES {
        return Err(unprocessable(format!(
            "this image is {size} bytes; transforms take originals of at most {MAX_TRANSFORM_INPUT_BYTES} bytes (the original is served as it is at its asset_url)"
        )));
    }
    let d = dims.ok_or_else(|| {
        unprocessable("this image's header gives no width and height, so it cannot be transformed; the original is served as it is at its asset_url".into())
    })?;
    let pixels = u64::from(d.width) * u64::from(d.height);
    if pixels > MAX_SOURCE_PIXELS {
        return Err(unprocessable(format!(
            "this image declares {}x{} pixels ({pixels}); transforms take at most {MAX_SOURCE_PIXELS} pixels",
            d.width, d.height
        )));
    }
    Ok(d)
}

/// The prefix under which an image's variants are stored: inside the
/// image's own name, so deleting the image deletes them
/// (`images/{app}/{image}/`; the original is `images/{app}/{image}`).
pub fn variant_prefix(app: &AppId, image: &ImageId) -> String {
    format!("images/{app}/{image}/")
}

/// The stored object of one variant.
pub fn variant_key(app: &AppId, image: &ImageId, opts: &VariantOptions, format: OutputFormat) -> String {
    format!("{}{}", variant_prefix(app, image), opts.object_name(format))
}

/// The path (and query) under which an answer is kept at the edge (Cache
/// API keys are URLs). `f=auto` answers differ by `Accept`, and the Cache
/// API does not honour `Vary`, so the client's [`AcceptClass`] is part of
/// their key; a hit then needs neither the record nor storage.
pub fn cache_path(app: &AppId, image: &ImageId, opts: &VariantOptions, accept: AcceptClass) -> String {
    let path = format!("{VARIANT_ROUTE_PREFIX}{app}/{image}/{}", opts.canonical());
    match opts.format {
        FormatChoice::Auto => format!("{path}?accept={}", accept.as_str()),
        FormatChoice::Exactly(_) => path,
    }
}

/// Every [`cache_path`] an answer made from the stored variant
/// `object_name` (see [`VariantOptions::object_name`]) may be kept under:
/// its explicit format, and `f=auto` for each kind of client. Deleting an
/// image drops these. `None` for a name this module did not make.
pub fn cache_paths_of(app: &AppId, image: &ImageId, object_name: &str) -> Option<Vec<String>> {
    let (stem, ext) = object_name.rsplit_once('.')?;
    let format = OutputFormat::ALL.into_iter().find(|f| f.as_str() == ext)?;
    let mut parts = stem.splitn(4, '-');
    let mut side = |prefix: char| -> Option<Option<u32>> {
        let n: u32 = parts.next()?.strip_prefix(prefix)?.parse().ok()?;
        Some((n > 0).then_some(n))
    };
    let (width, height) = (side('w')?, side('h')?);
    let quality = parts.next()?.strip_prefix('q')?.parse().ok()?;
    let fit = Fit::parse(parts.next()?)?;
    let exact = VariantOptions { width, height, quality, fit, format: FormatChoice::Exactly(format) };
    let auto = VariantOptions { format: FormatChoice::Auto, ..exact };
    let mut paths = vec![cache_path(app, image, &exact, AcceptClass::Neither)];
    paths
        .extend([AcceptClass::Avif, AcceptClass::Webp, AcceptClass::Neither].map(|a| cache_path(app, image, &auto, a)));
    Some(paths)
}

/// `{base}/images/{app}/{image}/{options}`.
pub fn variant_url(public_base: &str, app: &AppId, image: &ImageId, options: &str) -> String {
    format!("{}{VARIANT_ROUTE_PREFIX}{app}/{image}/{options}", public_base.trim_end_matches('/'))
}

/// The ids and options segment of a route path
/// (`/images/{app_id}/{image_id}/{options}`); `None` when it is not one.
/// Ids are checked; the options are not (see [`VariantPolicy::parse`]).
pub fn split_variant_path(path: &str) -> Option<(AppId, ImageId, &str)> {
    let rest = path.strip_prefix(VARIANT_ROUTE_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let app = AppId::parse(parts.next()?).ok()?;
    let image = ImageId::parse(parts.next()?).ok()?;
    let options = parts.next()?;
    (!options.contains('/')).then_some((app, image, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(width: u32, height: u32) -> Dimensions {
        Dimensions { width, height }
    }

    fn parse(s: &str) -> Result<VariantOptions, ApiError> {
        VariantPolicy::default().parse(s)
    }

    #[test]
    fn a_binding_output_is_taken_only_in_the_format_asked_for() {
        assert!(OutputFormat::Webp.is_content_type("image/webp"));
        assert!(OutputFormat::Jpeg.is_content_type("IMAGE/JPEG; q=1"));
        for other in ["image/png", "", "text/html", "image/webp2"] {
            assert!(!OutputFormat::Webp.is_content_type(other), "{other}");
        }
    }

    #[test]
    fn options_travel_as_json_to_the_images_object() {
        let opts = VariantOptions {
            width: Some(640),
            height: None,
            quality: 75,
            fit: Fit::Cover,
            format: FormatChoice::Exactly(OutputFormat::Avif),
        };
        let text = serde_json::to_string(&opts).unwrap();
        assert_eq!(serde_json::from_str::<VariantOptions>(&text).unwrap(), opts);
    }

    #[test]
    fn aliases_and_order_give_one_canonical_variant() {
        let a = parse("w=640,q=75,f=auto").unwrap();
        for alias in ["width=640,quality=75", "q=75,w=640", "format=auto,fit=scale-down,w=640,q=75", "w=640,q=75,"] {
            assert_eq!(parse(alias).unwrap(), a, "{alias}");
        }
        assert_eq!(a.canonical(), "w=640,q=75,fit=scale-down,f=auto");
        let d = parse("").unwrap();
        assert_eq!(d.canonical(), "q=85,fit=scale-down,f=auto", "defaults");
        assert_eq!(parse("h=480,f=jpg,fit=cover").unwrap().canonical(), "h=480,q=85,fit=cover,f=jpeg");
        assert_eq!(a.object_name(OutputFormat::Webp), "w640-h0-q75-scale-down.webp");
    }

    #[test]
    fn anything_outside_the_allowed_set_is_a_400_naming_what_is_allowed() {
        for bad in [
            "w=641",
            "w=0640",
            "w=-640",
            "w=640.0",
            "q=77",
            "q=0",
            "fit=squeeze",
            "f=gif",
            "f=json",
            "blur=5",
            "w=640,w=320",
            "w=640,width=320",
            "w",
            "rotate=90",
            &"w=640,".repeat(100),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.message.contains("allowed: w and h: 160, 320"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn the_policy_is_checked_and_bounds_the_variants() {
        let p = VariantPolicy::default();
        assert_eq!(p.variant_limit(), 9 * 9 * 4 * 5 * 4);
        let defaults = TransformDefaults { width: 640, quality: 75 };
        let small = VariantPolicy::new(vec![640, 320, 640], vec![75], vec![Fit::Cover], defaults).unwrap();
        assert_eq!(small.sizes(), &[320, 640]);
        assert_eq!(small.variant_limit(), 3 * 3 * 4);
        assert_eq!(small.parse("").unwrap().fit, Fit::Cover, "the first allowed fit when scale-down is not");
        // The handed-out options are always allowed.
        let p = VariantPolicy::new(vec![], vec![50], vec![Fit::Cover], defaults).unwrap();
        assert_eq!((p.sizes(), p.qualities(), p.default_quality()), (&[640][..], &[50, 75][..], 75));
        assert!(VariantPolicy::new(vec![640], vec![75], vec![], defaults).is_err());
        assert!(VariantPolicy::new(vec![0], vec![75], vec![Fit::Cover], defaults).is_err());
        assert!(VariantPolicy::new(vec![640], vec![101], vec![Fit::Cover], defaults).is_err());
    }

    #[test]
    fn output_sizes_follow_the_fit() {
        let src = dims(2000, 1000);
        let o = |s: &str| parse(s).unwrap().output_size(src);
        assert_eq!(o("w=640"), dims(640, 320));
        assert_eq!(o("h=160"), dims(320, 160));
        assert_eq!(o(""), src);
        assert_eq!(o("w=640,h=640"), dims(640, 320), "scale-down: within the box");
        assert_eq!(o("w=640,h=640,fit=cover"), dims(640, 640));
        assert_eq!(o("w=640,h=640,fit=pad"), dims(640, 640));
        assert_eq!(o("w=640,h=640,fit=contain"), dims(640, 320));
        assert_eq!(o("w=640,h=640,fit=crop"), dims(640, 640));
        let tiny = dims(100, 50);
        let t = |s: &str| parse(s).unwrap().output_size(tiny);
        assert_eq!(t("w=640"), tiny, "scale-down never enlarges");
        assert_eq!(t("w=640,fit=contain"), dims(640, 320));
        assert_eq!(t("w=640,h=640,fit=crop"), dims(100, 50));
        assert_eq!(t("w=160,fit=cover"), dims(160, 80));
    }

    #[test]
    fn auto_picks_avif_webp_or_the_original_and_avif_stays_within_its_side() {
        let chrome = Some("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8");
        assert_eq!(AcceptClass::of(chrome), AcceptClass::Avif);
        assert_eq!(AcceptClass::of(Some("image/webp,*/*")), AcceptClass::Webp);
        assert_eq!(AcceptClass::of(Some("image/avif;q=0, image/webp")), AcceptClass::Webp);
        assert_eq!(AcceptClass::of(Some("*/*")), AcceptClass::Neither);
        assert_eq!(AcceptClass::of(None), AcceptClass::Neither);
        let small = dims(640, 480);
        let big = dims(1280, 720);
        let n = |a, o, d| negotiate(FormatChoice::Auto, a, o, d).unwrap();
        assert_eq!(n(AcceptClass::Avif, ImageType::Jpeg, small), OutputFormat::Avif);
        assert_eq!(n(AcceptClass::Avif, ImageType::Jpeg, big), OutputFormat::Webp);
        assert_eq!(n(AcceptClass::Webp, ImageType::Png, small), OutputFormat::Webp);
        assert_eq!(n(AcceptClass::Neither, ImageType::Jpeg, small), OutputFormat::Jpeg);
        for o in [ImageType::Png, ImageType::Gif, ImageType::WebP, ImageType::Avif] {
            assert_eq!(n(AcceptClass::Neither, o, small), OutputFormat::Png);
        }
        let avif = FormatChoice::Exactly(OutputFormat::Avif);
        assert_eq!(negotiate(avif, AcceptClass::Neither, ImageType::Png, small).unwrap(), OutputFormat::Avif);
        let e = negotiate(avif, AcceptClass::Avif, ImageType::Png, big).unwrap_err();
        assert!(e.status() == 400 && e.message.contains("1200"), "{}", e.message);
    }

    #[test]
    fn sources_over_the_transformers_limits_are_422() {
        assert_eq!(check_source(1000, Some(dims(4000, 3000))).unwrap(), dims(4000, 3000));
        for (size, d) in
            [(MAX_TRANSFORM_INPUT_BYTES + 1, Some(dims(10, 10))), (1000, Some(dims(50_000, 50_000))), (1000, None)]
        {
            let e = check_source(size, d).unwrap_err();
            assert_eq!((e.status(), e.code), (422, ErrorCode::ImageUnprocessable), "{size} {d:?}");
        }
    }

    #[test]
    fn route_paths_and_keys() {
        let (app, image, opts) = split_variant_path("/images/app-a/img_1/w=640,f=auto").unwrap();
        assert_eq!((app.as_str(), image.as_str(), opts), ("app-a", "img_1", "w=640,f=auto"));
        for bad in
            ["/images/app-a/img_1", "/images/app-a/img_1/w=1/x", "/images/../img/w=1", "/images/app-a//w=1", "/images"]
        {
            assert!(split_variant_path(bad).is_none(), "{bad}");
        }
        let o = parse("w=640").unwrap();
        assert_eq!(variant_key(&app, &image, &o, OutputFormat::Avif), "images/app-a/img_1/w640-h0-q85-scale-down.avif");
        assert_eq!(variant_url("https://x.test/", &app, &image, "w=640"), "https://x.test/images/app-a/img_1/w=640");
    }

    #[test]
    fn a_stored_variant_names_every_cache_entry_it_can_be_served_from() {
        let (app, image) = (AppId::parse("app-a").unwrap(), ImageId::parse("img_1").unwrap());
        let o = parse("w=640,h=480,fit=cover,q=75").unwrap();
        let name = o.object_name(OutputFormat::Webp);
        let paths = cache_paths_of(&app, &image, &name).unwrap();
        for accept in [AcceptClass::Avif, AcceptClass::Webp, AcceptClass::Neither] {
            assert!(paths.contains(&cache_path(&app, &image, &o, accept)), "{accept:?}");
        }
        let exact = parse("w=640,h=480,fit=cover,q=75,f=webp").unwrap();
        assert!(paths.contains(&cache_path(&app, &image, &exact, AcceptClass::Avif)));
        assert_eq!(paths[0], "/images/app-a/img_1/w=640,h=480,q=75,fit=cover,f=webp");
        assert_eq!(paths[1], "/images/app-a/img_1/w=640,h=480,q=75,fit=cover,f=auto?accept=avif");
        let no_size = parse("f=png").unwrap().object_name(OutputFormat::Png);
        assert_eq!(cache_paths_of(&app, &image, &no_size).unwrap()[0], "/images/app-a/img_1/q=85,fit=scale-down,f=png");
        for bad in ["x.webp", "w1-h1-q1-cover.gif", "w1-h1-q1-stretch.png", "w1-h1-cover.png", "nodot"] {
            assert!(cache_paths_of(&app, &image, bad).is_none(), "{bad}");
        }
    }
}

//! The image service's own configuration: the vars only it reads, with
//! their defaults. What both services read (API keys, CORS, environment,
//! public base URL, upload URL lifetime, storage, Sentry) is
//! `worker_kit::settings::CommonSettings`. (Bindings: `MEDIA_BUCKET` R2,
//! `MEDIA_KV` KV, `IMAGE_OBJECTS` Durable Objects, `KEY_RATE_LIMITER`,
//! `BAD_KEY_RATE_LIMITER` and `PUBLIC_RATE_LIMITER` rate limits.)

use media_core::image::transform::{TransformDefaults, DEFAULT_TRANSFORM_QUALITY, DEFAULT_TRANSFORM_WIDTH};
use media_core::image::variant::{Fit, VariantPolicy, DEFAULT_QUALITIES, DEFAULT_SIZES};
use media_core::media::DEFAULT_MAX_IMAGE_BYTES;
use worker_kit::config::{ConfigError, Vars};

use crate::events::EventSettings;

pub struct ImageSettings {
    /// `MAX_IMAGE_BYTES`: the largest image accepted (default 25 MiB).
    pub max_image_bytes: u64,
    /// `TRANSFORM_WIDTH` (default 1280) and `TRANSFORM_QUALITY` (default 85):
    /// the options of the `transform_url` handed out.
    pub transform: TransformDefaults,
    /// `TRANSFORM_SIZES`, `TRANSFORM_QUALITIES`, `TRANSFORM_FITS`: what
    /// `/images/{app_id}/{image_id}/{options}` may ask for (comma lists).
    pub variants: VariantPolicy,
    /// `UPLOAD_CHECK_GRACE_S` (default 900): how long after a presigned
    /// URL expires what it uploaded is checked (`crate::image_object`). A
    /// `PUT` started just before the expiry may still be running: 15
    /// minutes carry 25 MiB at 250 kbit/s.
    pub upload_check_grace_s: u64,
    /// `INTERNAL_EVENTS_TOKEN`, `VIDEO_SERVICE_URL`: where `image.*` events go.
    pub events: EventSettings,
}

/// A comma list of values, or `default` when the variable is unset.
fn list<T: std::str::FromStr + Clone>(vars: &Vars<'_>, name: &str, default: &[T]) -> Result<Vec<T>, ConfigError> {
    let Some(text) = vars.get(name) else { return Ok(default.to_vec()) };
    text.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse().map_err(|_| ConfigError {
                name: name.into(),
                problem: format!("has {v:?}, which is not a valid value"),
            })
        })
        .collect()
}

impl ImageSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let width = vars.number("TRANSFORM_WIDTH", DEFAULT_TRANSFORM_WIDTH)?;
        let quality = vars.number("TRANSFORM_QUALITY", DEFAULT_TRANSFORM_QUALITY)?;
        let transform = TransformDefaults::new(width, quality).map_err(|problem| ConfigError {
            name: "TRANSFORM_WIDTH/TRANSFORM_QUALITY".into(),
            problem: format!("give an unusable transformation: {problem}"),
        })?;
        let sizes = list(vars, "TRANSFORM_SIZES", &DEFAULT_SIZES)?;
        let qualities = list(vars, "TRANSFORM_QUALITIES", &DEFAULT_QUALITIES)?;
        let fit_names = list(vars, "TRANSFORM_FITS", &Fit::ALL.map(|f| f.as_str().to_owned()))?;
        let fits = fit_names
            .iter()
            .map(|n| {
                Fit::parse(n).ok_or_else(|| ConfigError {
                    name: "TRANSFORM_FITS".into(),
                    problem: format!("has {n:?}; use scale-down, contain, cover, crop or pad"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let variants = VariantPolicy::new(sizes, qualities, fits, transform).map_err(|problem| ConfigError {
            name: "TRANSFORM_SIZES/TRANSFORM_QUALITIES/TRANSFORM_FITS".into(),
            problem,
        })?;
        let max_image_bytes = vars.number("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES)?;
        if max_image_bytes == 0 {
            return Err(ConfigError {
                name: "MAX_IMAGE_BYTES".into(),
                problem: "is 0; no image could be uploaded".into(),
            });
        }
        let upload_check_grace_s = vars.number("UPLOAD_CHECK_GRACE_S", 900)?;
        Ok(Self { max_image_bytes, transform, variants, upload_check_grace_s, events: EventSettings::load(vars) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<ImageSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        ImageSettings::load(&Vars(&map))
    }

    #[test]
    fn defaults_and_set_values() {
        let s = load(&[]).unwrap();
        assert_eq!((s.max_image_bytes, s.transform), (DEFAULT_MAX_IMAGE_BYTES, TransformDefaults::default()));
        assert_eq!((&s.variants, s.upload_check_grace_s), (&VariantPolicy::default(), 900));
        let s = load(&[
            ("MAX_IMAGE_BYTES", "1000"),
            ("TRANSFORM_WIDTH", "640"),
            ("TRANSFORM_QUALITY", "70"),
            ("TRANSFORM_SIZES", "320, 640"),
            ("TRANSFORM_QUALITIES", "70,90"),
            ("TRANSFORM_FITS", "cover"),
            ("UPLOAD_CHECK_GRACE_S", "5"),
        ])
        .unwrap();
        assert_eq!(s.upload_check_grace_s, 5);
        assert_eq!((s.max_image_bytes, s.transform), (1000, TransformDefaults { width: 640, quality: 70 }));
        assert_eq!(
            (s.variants.sizes(), s.variants.qualities(), s.variants.fits()),
            (&[320, 640][..], &[70, 90][..], &[Fit::Cover][..])
        );
        // The transform_url's own options are always allowed.
        let s = load(&[("TRANSFORM_WIDTH", "1000"), ("TRANSFORM_QUALITY", "70")]).unwrap();
        assert!(s.variants.sizes().contains(&1000) && s.variants.qualities().contains(&70));
    }

    #[test]
    fn errors_name_the_variable() {
        for (vars, name) in [
            (&[("MAX_IMAGE_BYTES", "0")][..], "MAX_IMAGE_BYTES"),
            (&[("MAX_IMAGE_BYTES", "lots")], "MAX_IMAGE_BYTES"),
            (&[("TRANSFORM_QUALITY", "0")], "TRANSFORM_WIDTH/TRANSFORM_QUALITY"),
            (&[("TRANSFORM_WIDTH", "-1")], "TRANSFORM_WIDTH"),
            (&[("TRANSFORM_SIZES", "640,big")], "TRANSFORM_SIZES"),
            (&[("TRANSFORM_FITS", "stretch")], "TRANSFORM_FITS"),
            (&[("TRANSFORM_SIZES", "0")], "TRANSFORM_SIZES/TRANSFORM_QUALITIES/TRANSFORM_FITS"),
        ] {
            assert_eq!(load(vars).err().map(|e| e.name), Some(name.to_owned()), "{vars:?}");
        }
    }
}

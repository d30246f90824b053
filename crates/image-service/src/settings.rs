//! The image service's own configuration: the vars only it reads, with
//! their defaults. What both services read (API keys, CORS, environment,
//! public base URL, upload URL lifetime, storage, Sentry) is
//! `worker_kit::settings::CommonSettings`. (Bindings: `MEDIA_BUCKET` R2,
//! `MEDIA_KV` KV, `KEY_RATE_LIMITER`, `BAD_KEY_RATE_LIMITER` and
//! `PUBLIC_RATE_LIMITER` rate limits.)

use media_core::media::DEFAULT_MAX_IMAGE_BYTES;
use media_core::transform::{TransformDefaults, DEFAULT_TRANSFORM_QUALITY, DEFAULT_TRANSFORM_WIDTH};
use worker_kit::config::{ConfigError, Vars};

pub struct ImageSettings {
    /// `MAX_IMAGE_BYTES`: the largest image accepted (default 25 MiB).
    pub max_image_bytes: u64,
    /// `TRANSFORM_WIDTH` (default 1280) and `TRANSFORM_QUALITY` (default 85):
    /// the options of the `transform_url` handed out.
    pub transform: TransformDefaults,
}

impl ImageSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let width = vars.number("TRANSFORM_WIDTH", DEFAULT_TRANSFORM_WIDTH)?;
        let quality = vars.number("TRANSFORM_QUALITY", DEFAULT_TRANSFORM_QUALITY)?;
        let transform = TransformDefaults::new(width, quality).map_err(|problem| ConfigError {
            name: "TRANSFORM_WIDTH/TRANSFORM_QUALITY".into(),
            problem: format!("give an unusable transformation: {problem}"),
        })?;
        let max_image_bytes = vars.number("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES)?;
        if max_image_bytes == 0 {
            return Err(ConfigError {
                name: "MAX_IMAGE_BYTES".into(),
                problem: "is 0; no image could be uploaded".into(),
            });
        }
        Ok(Self { max_image_bytes, transform })
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
        let s = load(&[("MAX_IMAGE_BYTES", "1000"), ("TRANSFORM_WIDTH", "640"), ("TRANSFORM_QUALITY", "70")]).unwrap();
        assert_eq!((s.max_image_bytes, s.transform), (1000, TransformDefaults { width: 640, quality: 70 }));
    }

    #[test]
    fn errors_name_the_variable() {
        for (vars, name) in [
            (&[("MAX_IMAGE_BYTES", "0")][..], "MAX_IMAGE_BYTES"),
            (&[("MAX_IMAGE_BYTES", "lots")], "MAX_IMAGE_BYTES"),
            (&[("TRANSFORM_QUALITY", "0")], "TRANSFORM_WIDTH/TRANSFORM_QUALITY"),
            (&[("TRANSFORM_WIDTH", "-1")], "TRANSFORM_WIDTH"),
        ] {
            assert_eq!(load(vars).err().map(|e| e.name), Some(name.to_owned()), "{vars:?}");
        }
    }
}

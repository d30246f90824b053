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

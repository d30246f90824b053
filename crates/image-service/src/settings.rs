//! The image service's configuration: every var and secret it reads, with
//! its default, in one place. (Bindings: `MEDIA_BUCKET` R2, `MEDIA_KV` KV,
//! `KEY_RATE_LIMITER`, `BAD_KEY_RATE_LIMITER` and `PUBLIC_RATE_LIMITER` rate limits. Storage vars — `STORAGE_BACKEND`, `S3_*` — are
//! read by `worker_kit::store`; `IV_SENTRY_DSN` by `worker_kit::sentry`.)

use media_core::auth::ApiKeys;
use media_core::media::DEFAULT_MAX_IMAGE_BYTES;
use media_core::transform::{TransformDefaults, DEFAULT_TRANSFORM_QUALITY, DEFAULT_TRANSFORM_WIDTH};
use worker::Env;
use worker_kit::config::{api_keys, ConfigError, Settings};

pub struct ImageSettings {
    /// `IV_API_KEY` (secret): the API keys, each with the apps it may use
    /// (`key:app-a|app-b`) or alone (any app); see `media_core::auth`.
    pub api_keys: ApiKeys,
    /// `MAX_IMAGE_BYTES`: the largest image accepted (default 25 MiB).
    pub max_image_bytes: u64,
    /// `UPLOAD_URL_TTL_S`: how long a presigned upload URL lives (default 900 s).
    pub upload_ttl_s: u32,
    /// `PUBLIC_BASE_URL`: the origin in `asset_url` and `transform_url`
    /// (default: the request's). In production, a hostname of the zone with
    /// image transformations enabled.
    pub public_base: Option<String>,
    /// `TRANSFORM_WIDTH` (default 1280) and `TRANSFORM_QUALITY` (default 85):
    /// the options of the `transform_url` handed out.
    pub transform: TransformDefaults,
    /// `CORS_ALLOWED_ORIGINS`: `*` (default) or a comma-separated list.
    pub cors_origins: String,
    /// `ENVIRONMENT`: reported with errors (default `production`).
    pub environment: String,
}

impl ImageSettings {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let s = Settings(env);
        let width = s.number("TRANSFORM_WIDTH", DEFAULT_TRANSFORM_WIDTH)?;
        let quality = s.number("TRANSFORM_QUALITY", DEFAULT_TRANSFORM_QUALITY)?;
        let transform = TransformDefaults::new(width, quality).map_err(|problem| ConfigError {
            name: "TRANSFORM_WIDTH/TRANSFORM_QUALITY".into(),
            problem: format!("give an unusable transformation: {problem}"),
        })?;
        let max_image_bytes = s.number("MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES)?;
        if max_image_bytes == 0 {
            return Err(ConfigError {
                name: "MAX_IMAGE_BYTES".into(),
                problem: "is 0; no image could be uploaded".into(),
            });
        }
        Ok(Self {
            api_keys: api_keys(&s)?,
            max_image_bytes,
            upload_ttl_s: s.number("UPLOAD_URL_TTL_S", 900)?,
            public_base: s.get("PUBLIC_BASE_URL").map(|b| b.trim_end_matches('/').to_owned()),
            transform,
            cors_origins: s.or("CORS_ALLOWED_ORIGINS", "*"),
            environment: s.or("ENVIRONMENT", "production"),
        })
    }
}

impl worker_kit::entry::ServiceSettings for ImageSettings {
    fn cors_origins(&self) -> &str {
        &self.cors_origins
    }
    fn environment(&self) -> &str {
        &self.environment
    }
    fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }
    fn public_base(&self) -> Option<&str> {
        self.public_base.as_deref()
    }
}

//! The video service's configuration: every var and secret it reads, with
//! its default, in one place. (Bindings: `MEDIA_BUCKET` R2, `MEDIA_KV` KV,
//! `JOBS` Durable Object, `KEY_RATE_LIMITER`, `BAD_KEY_RATE_LIMITER` and `PUBLIC_RATE_LIMITER` rate limits.)

use media_core::auth::ApiKeys;
use media_core::job::RetryPolicy;
use media_core::ladder::LadderOptions;
use media_core::media::DEFAULT_MAX_VIDEO_BYTES;
use worker::Env;
use worker_kit::config::{api_keys, ConfigError, Settings};

pub struct VideoSettings {
    /// `IV_API_KEY` (secret): the API keys, each with the apps it may use
    /// (`key:app-a|app-b`) or alone (any app); see `media_core::auth`.
    pub api_keys: ApiKeys,
    /// `MAX_VIDEO_BYTES`: the upload size limit (default 5 GiB).
    pub max_video_bytes: u64,
    /// `UPLOAD_URL_TTL_S`: how long a presigned upload URL lives (default 900 s).
    pub upload_ttl_s: u32,
    /// `PUBLIC_BASE_URL`: the origin in playback URLs (default: the request's).
    pub public_base: Option<String>,
    /// `CORS_ALLOWED_ORIGINS`: `*` (default) or a comma-separated list.
    pub cors_origins: String,
    /// `ENVIRONMENT`: reported with errors (default `production`).
    pub environment: String,
}

impl VideoSettings {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let s = Settings(env);
        Ok(Self {
            api_keys: api_keys(&s)?,
            max_video_bytes: s.number("MAX_VIDEO_BYTES", DEFAULT_MAX_VIDEO_BYTES)?,
            upload_ttl_s: s.number("UPLOAD_URL_TTL_S", 900)?,
            public_base: s.get("PUBLIC_BASE_URL").map(|b| b.trim_end_matches('/').to_owned()),
            cors_origins: s.or("CORS_ALLOWED_ORIGINS", "*"),
            environment: s.or("ENVIRONMENT", "production"),
        })
    }
}

/// `TRANSCODER_TOKEN` (secret): the bearer token of the internal API.
pub fn transcoder_token(env: &Env) -> Option<String> {
    Settings(env).get("TRANSCODER_TOKEN")
}

/// The queue's retry rules: `JOB_MAX_ATTEMPTS` (3), `LEASE_TTL_MS` (30000),
/// `RETRY_BACKOFF_MS` (5000).
pub fn retry_policy(env: &Env) -> Result<RetryPolicy, ConfigError> {
    let s = Settings(env);
    let d = RetryPolicy::default();
    Ok(RetryPolicy {
        max_attempts: s.number("JOB_MAX_ATTEMPTS", d.max_attempts)?.max(1),
        lease_ttl_ms: s.number("LEASE_TTL_MS", d.lease_ttl_ms)?.max(1000),
        backoff_base_ms: s.number("RETRY_BACKOFF_MS", d.backoff_base_ms)?,
    })
}

/// The default ladder of new jobs: `LADDER_MAX_RUNG` (2160), `LADDER_MAX_RUNGS`
/// (0 = all), `LADDER_SEGMENT_S` (4), `LADDER_PRESET` (veryfast).
pub fn ladder_options(env: &Env) -> Result<LadderOptions, ConfigError> {
    let s = Settings(env);
    let d = LadderOptions::default();
    Ok(LadderOptions {
        max_rung: s.number("LADDER_MAX_RUNG", d.max_rung)?,
        max_rungs: s.number("LADDER_MAX_RUNGS", d.max_rungs)?,
        segment_s: s.number("LADDER_SEGMENT_S", d.segment_s)?.max(1),
        gop_s: d.gop_s,
        preset: s.or("LADDER_PRESET", &d.preset),
    })
}

impl worker_kit::entry::ServiceSettings for VideoSettings {
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

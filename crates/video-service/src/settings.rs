//! The video service's own configuration: the vars and secrets only it
//! reads, with their defaults. What both services read (API keys, CORS,
//! environment, public base URL, upload URL lifetime, storage, Sentry) is
//! `worker_kit::settings::CommonSettings`. The queue's retry rules and the
//! default ladder are read by the `JobQueue` Durable Object, which runs
//! apart from any request. (Bindings: `MEDIA_BUCKET` R2, `MEDIA_KV` KV,
//! `JOBS` Durable Object, `KEY_RATE_LIMITER`, `BAD_KEY_RATE_LIMITER` and
//! `PUBLIC_RATE_LIMITER` rate limits.)

use media_core::job::RetryPolicy;
use media_core::ladder::LadderOptions;
use media_core::media::DEFAULT_MAX_VIDEO_BYTES;
use worker::Env;
use worker_kit::config::{ConfigError, Vars};

/// What the Worker's routes read, once per request.
pub struct VideoSettings {
    /// `MAX_VIDEO_BYTES`: the upload size limit (default 5 GiB).
    pub max_video_bytes: u64,
    /// `TRANSCODER_TOKEN` (secret): the bearer token of the internal API;
    /// unset, the internal API admits nobody.
    pub transcoder_token: Option<String>,
}

impl VideoSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_video_bytes: vars.number("MAX_VIDEO_BYTES", DEFAULT_MAX_VIDEO_BYTES)?,
            transcoder_token: vars.get("TRANSCODER_TOKEN"),
        })
    }
}

/// The queue's retry rules: `JOB_MAX_ATTEMPTS` (3), `LEASE_TTL_MS` (30000),
/// `RETRY_BACKOFF_MS` (5000).
pub fn retry_policy(env: &Env) -> Result<RetryPolicy, ConfigError> {
    let vars = Vars(env);
    let d = RetryPolicy::default();
    Ok(RetryPolicy {
        max_attempts: vars.number("JOB_MAX_ATTEMPTS", d.max_attempts)?.max(1),
        lease_ttl_ms: vars.number("LEASE_TTL_MS", d.lease_ttl_ms)?.max(1000),
        backoff_base_ms: vars.number("RETRY_BACKOFF_MS", d.backoff_base_ms)?,
    })
}

/// The default ladder of new jobs: `LADDER_MAX_RUNG` (2160), `LADDER_MAX_RUNGS`
/// (0 = all), `LADDER_SEGMENT_S` (4), `LADDER_PRESET` (veryfast).
pub fn ladder_options(env: &Env) -> Result<LadderOptions, ConfigError> {
    let vars = Vars(env);
    let d = LadderOptions::default();
    Ok(LadderOptions {
        max_rung: vars.number("LADDER_MAX_RUNG", d.max_rung)?,
        max_rungs: vars.number("LADDER_MAX_RUNGS", d.max_rungs)?,
        segment_s: vars.number("LADDER_SEGMENT_S", d.segment_s)?.max(1),
        gop_s: d.gop_s,
        preset: vars.or("LADDER_PRESET", &d.preset),
    })
}

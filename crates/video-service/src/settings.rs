//! The video service's own configuration: the vars and secrets only it
//! reads, with their defaults. What both services read (API keys, CORS,
//! environment, public base URL, upload URL lifetime, storage, Sentry) is
//! `worker_kit::settings::CommonSettings`. The retry rules, the default
//! ladder and the size classes are read by the `VideoJob` Durable Objects,
//! which run apart from any request. (Bindings: `MEDIA_BUCKET` R2,
//! `MEDIA_KV` KV, `VIDEO_JOBS` and `DISPATCH` Durable Objects,
//! `KEY_RATE_LIMITER`, `BAD_KEY_RATE_LIMITER` and `PUBLIC_RATE_LIMITER`
//! rate limits.)
//!
//! The objects' settings ([`ObjectSettings`]) are read by one function,
//! [`ObjectSettings::load`], which the Worker runs for every request (inside
//! [`VideoSettings::load`]) and the `VideoJob` object for every command and
//! alarm. One that cannot be used refuses, nothing silently defaults: the
//! Worker answers every request 500 before any object is reached, the
//! object refuses its commands the same way, and its alarm waits for the
//! variable to be fixed (see `crate::video_job`).

use media_core::media::DEFAULT_MAX_VIDEO_BYTES;
use media_core::video::chunks::ChunkSettings;
use media_core::video::delivery::{DeliveryPolicy, RetrySchedule};
use media_core::video::dispatch::{DEFAULT_LARGE_SOURCE_BYTES, MAX_QUEUE_SHARDS};
use media_core::video::events::StreamCaps;
use media_core::video::job::RetryPolicy;
use media_core::video::ladder::LadderOptions;
use media_core::video::upload_session::DEFAULT_SESSION_TTL_S;
use media_core::video::webhook::WebhookConfig;
use worker_kit::config::{ConfigError, Vars};

/// What the Worker's routes read, once per request.
pub struct VideoSettings {
    /// `MAX_VIDEO_BYTES`: the upload size limit (default 5 GiB).
    pub max_video_bytes: u64,
    /// `TRANSCODER_TOKEN` (secret): the bearer token of the internal API;
    /// unset, the internal API admits nobody.
    pub transcoder_token: Option<String>,
    /// `INTERNAL_EVENTS_TOKEN` (secret, the same as the image Worker's): the
    /// bearer token of `/internal/events`; unset, that route admits nobody.
    pub internal_events_token: Option<String>,
    /// What the objects run by (`QUEUE_SHARDS`, `IV_WEBHOOKS` and the rest),
    /// read here too so that one that cannot be used refuses every request.
    pub objects: ObjectSettings,
    /// `UPLOAD_SESSION_TTL_S`: how long a resumable upload session's token
    /// lasts (default 6 h; 60 s to 24 h).
    pub upload_session_ttl_s: u64,
    /// `UPLOAD_LIST_PAGE` (1000, S3's and R2's most): uploads a page when a
    /// delete lists a video's open uploads; tests set a small one.
    pub upload_list_page: u32,
    /// `UPLOAD_MIN_TIMEOUT_S`: the shortest `timeout_s` `POST /uploads`
    /// takes (60, Mux's; tests set less to see uploads time out, 1 to 60).
    pub upload_min_timeout_s: u64,
}

/// The longest `UPLOAD_SESSION_TTL_S` may be: a day.
const MAX_UPLOAD_SESSION_TTL_S: u64 = 24 * 60 * 60;

impl VideoSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let upload_session_ttl_s = vars.number("UPLOAD_SESSION_TTL_S", DEFAULT_SESSION_TTL_S)?;
        if !(60..=MAX_UPLOAD_SESSION_TTL_S).contains(&upload_session_ttl_s) {
            return Err(ConfigError {
                name: "UPLOAD_SESSION_TTL_S".into(),
                problem: format!("is {upload_session_ttl_s}; it must be from 60 to {MAX_UPLOAD_SESSION_TTL_S} seconds"),
            });
        }
        Ok(Self {
            max_video_bytes: vars.number("MAX_VIDEO_BYTES", DEFAULT_MAX_VIDEO_BYTES)?,
            transcoder_token: vars.get("TRANSCODER_TOKEN"),
            internal_events_token: vars.get("INTERNAL_EVENTS_TOKEN"),
            objects: ObjectSettings::load(vars)?,
            upload_session_ttl_s,
            upload_list_page: vars.number::<u32>("UPLOAD_LIST_PAGE", 1000)?.clamp(1, 1000),
            upload_min_timeout_s: vars
                .number("UPLOAD_MIN_TIMEOUT_S", media_core::video::upload::MIN_TIMEOUT_S)?
                .clamp(1, media_core::video::upload::MIN_TIMEOUT_S),
        })
    }
}

/// What the `VideoJob` objects run by, read once per command or alarm (and
/// by the Worker once per request, so that it refuses first).
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    /// `JOB_MAX_ATTEMPTS`, `LEASE_TTL_MS`, `RETRY_BACKOFF_MS`.
    pub policy: RetryPolicy,
    /// The default ladder of new jobs.
    pub ladder: LadderOptions,
    /// `QUEUE_SHARDS`, `LARGE_SOURCE_BYTES`.
    pub dispatch: DispatchSettings,
    /// `IV_WEBHOOKS` and the delivery policy.
    pub webhooks: WebhookSettings,
    /// `KEEP_SOURCE`.
    pub keep_source: bool,
    /// `SSE_MAX_PER_VIDEO`, `SSE_MAX_PER_ADDRESS`.
    pub caps: StreamCaps,
    /// `SSE_HEARTBEAT_MS`.
    pub heartbeat_ms: u64,
    /// `CHUNK_FROM_S`, `CHUNK_S`, `FIRST_CHUNK_S`.
    pub chunks: ChunkSettings,
}

impl ObjectSettings {
    /// Reads every setting the objects use; the first that cannot be used
    /// is the error.
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        // Read by the objects when they are built (`object_log_lens`);
        // checked here so that a broken one refuses too.
        event_log_lens(vars)?;
        Ok(Self {
            policy: retry_policy(vars)?,
            ladder: ladder_options(vars)?,
            dispatch: DispatchSettings::load(vars)?,
            webhooks: WebhookSettings::load(vars)?,
            keep_source: keep_source(vars)?,
            caps: stream_caps(vars)?,
            heartbeat_ms: sse_heartbeat(vars)?,
            chunks: chunk_settings(vars)?,
        })
    }
}

/// How jobs are dispatched (`media_core::video::dispatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchSettings {
    /// `QUEUE_SHARDS`: how many queue shards jobs are spread over, 1-32
    /// (default 4). Raising it is safe: live jobs keep their shard.
    pub queue_shards: u32,
    /// `LARGE_SOURCE_BYTES`: sources this size or larger wait in the `large`
    /// class (default 1 GiB).
    pub large_source_bytes: u64,
}

impl DispatchSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let queue_shards: u32 = vars.number("QUEUE_SHARDS", 4)?;
        if !(1..=MAX_QUEUE_SHARDS).contains(&queue_shards) {
            return Err(ConfigError {
                name: "QUEUE_SHARDS".into(),
                problem: format!("is {queue_shards}; it must be from 1 to {MAX_QUEUE_SHARDS}"),
            });
        }
        Ok(Self {
            queue_shards,
            large_source_bytes: vars.number("LARGE_SOURCE_BYTES", DEFAULT_LARGE_SOURCE_BYTES)?.max(1),
        })
    }
}

/// Where and how webhooks are sent.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `IV_WEBHOOKS` (secret): `{"<app_id>": {"url": "https://...", "secret": "..."}}`;
    /// `url` may be left out when the app only uses notify's `callback_url`.
    pub config: WebhookConfig,
    /// `WEBHOOK_RETRY_BASE_MS` (10000): the wait before the second attempt (±20%),
    /// doubling after each; `WEBHOOK_TIMEOUT_MS` (10000) per attempt; 8 attempts.
    pub policy: DeliveryPolicy,
    /// `http://127.0.0.1` destinations are allowed when `ENVIRONMENT` is
    /// `development` or `test`; never in production.
    pub allow_local_http: bool,
    /// `WEBHOOK_RETRY_SCHEDULE_MS`: the waits between attempts to an app's
    /// endpoints, comma-separated ms (default Standard Webhooks' 5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; tests set short ones).
    pub schedule: RetrySchedule,
}

impl WebhookSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let environment = vars.or("ENVIRONMENT", "production");
        let allow_local_http = matches!(environment.as_str(), "development" | "test");
        let config = match vars.get("IV_WEBHOOKS") {
            None => WebhookConfig::empty(),
            Some(json) => WebhookConfig::parse(&json, allow_local_http)
                .map_err(|problem| ConfigError { name: "IV_WEBHOOKS".into(), problem })?,
        };
        let d = DeliveryPolicy::default();
        let policy = DeliveryPolicy {
            max_attempts: d.max_attempts,
            base_delay_ms: vars.number("WEBHOOK_RETRY_BASE_MS", d.base_delay_ms)?,
            timeout_ms: vars.number("WEBHOOK_TIMEOUT_MS", d.timeout_ms)?.max(100),
        };
        let schedule = match vars.get("WEBHOOK_RETRY_SCHEDULE_MS") {
            None => RetrySchedule::default(),
            Some(list) => RetrySchedule::parse(&list)
                .map_err(|problem| ConfigError { name: "WEBHOOK_RETRY_SCHEDULE_MS".into(), problem })?,
        };
        Ok(Self { config, policy, allow_local_http, schedule })
    }
}

/// `SSE_HEARTBEAT_MS`: how often a quiet event stream sends a heartbeat
/// (default 15000; at least 100).
pub fn sse_heartbeat(vars: &Vars<'_>) -> Result<u64, ConfigError> {
    Ok(vars.number("SSE_HEARTBEAT_MS", media_core::video::events::HEARTBEAT_INTERVAL_MS)?.max(100))
}

/// How many events each stream's log keeps for clients that resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogLens {
    /// A video's (`/job-events`).
    pub video: u64,
    /// An app's (`/events`).
    pub app: u64,
}

/// The most events `SSE_LOG_EVENTS` may keep.
const MAX_SSE_LOG_EVENTS: u64 = 10_000;

/// `SSE_LOG_EVENTS`: how many events each log keeps for clients that
/// resume with `Last-Event-ID`; unset, a video keeps its last 200 and an
/// app its last 500; set (1 to 10000), both keep that many. A client whose
/// id fell out of the log gets `reset`; tests shrink the logs to see it.
pub fn event_log_lens(vars: &Vars<'_>) -> Result<EventLogLens, ConfigError> {
    let defaults = EventLogLens {
        video: media_core::video::events::VIDEO_EVENT_LOG_LEN,
        app: crate::app_hub::hub::APP_EVENT_LOG_LEN,
    };
    match vars.get("SSE_LOG_EVENTS") {
        None => Ok(defaults),
        Some(_) => {
            let n: u64 = vars.number("SSE_LOG_EVENTS", 0)?;
            if !(1..=MAX_SSE_LOG_EVENTS).contains(&n) {
                return Err(ConfigError {
                    name: "SSE_LOG_EVENTS".into(),
                    problem: format!("is {n}; it must be from 1 to {MAX_SSE_LOG_EVENTS}"),
                });
            }
            Ok(EventLogLens { video: n, app: n })
        }
    }
}

/// [`event_log_lens`] for an object being built, which cannot refuse: a
/// value that cannot be used is logged and the defaults kept (the Worker
/// refuses every request until it is fixed, so no stream opens meanwhile).
pub fn object_log_lens(vars: &Vars<'_>) -> EventLogLens {
    event_log_lens(vars).unwrap_or_else(|e| {
        tracing::error!(setting = %e.name, problem = %e.problem, "event log length: keeping the defaults");
        EventLogLens {
            video: media_core::video::events::VIDEO_EVENT_LOG_LEN,
            app: crate::app_hub::hub::APP_EVENT_LOG_LEN,
        }
    })
}

/// `SSE_MAX_PER_VIDEO` (500) and `SSE_MAX_PER_ADDRESS` (10): the most
/// `/job-events` streams one video keeps open, in all and from one client
/// address (`media_core::video::events::StreamCaps`). Read by the video's object.
pub fn stream_caps(vars: &Vars<'_>) -> Result<StreamCaps, ConfigError> {
    let d = StreamCaps::default();
    Ok(StreamCaps {
        per_video: vars.number("SSE_MAX_PER_VIDEO", d.per_video)?,
        per_address: vars.number("SSE_MAX_PER_ADDRESS", d.per_address)?,
    })
}

/// `KEEP_SOURCE` (`true`, the default, or `false`): whether a video's raw
/// source is kept after a successful transcode; `false` deletes
/// `raw/{app}/{video}/` once the job is done (a notify can then not start
/// it again without a new upload).
pub fn keep_source(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    match vars.or("KEEP_SOURCE", "true").trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => {
            Err(ConfigError { name: "KEEP_SOURCE".into(), problem: format!("is {other:?}; it must be true or false") })
        }
    }
}

/// Split-and-stitch encoding (`media_core::video::chunks`): sources whose
/// probe finds at least `CHUNK_FROM_S` seconds (default 120; 0 turns it
/// off) are cut into chunk tasks of `CHUNK_S` seconds (30), the first of
/// `FIRST_CHUNK_S` (10), which several transcoders encode at once. Jobs
/// that ask for encryption or a download stay single-pass.
pub fn chunk_settings(vars: &Vars<'_>) -> Result<ChunkSettings, ConfigError> {
    let d = ChunkSettings::default();
    let seconds = |name: &str, default: f64, zero_ok: bool| -> Result<f64, ConfigError> {
        let v: f64 = vars.number(name, default)?;
        let fine = v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v <= 86_400.0;
        match fine {
            true => Ok(v),
            false => Err(ConfigError {
                name: name.into(),
                problem: format!(
                    "is {v}; it must be a number of seconds {} 86400",
                    if zero_ok { "from 0 (off) to" } else { "above 0, at most" }
                ),
            }),
        }
    };
    Ok(ChunkSettings {
        from_s: seconds("CHUNK_FROM_S", d.from_s, true)?,
        chunk_s: seconds("CHUNK_S", d.chunk_s, false)?,
        first_chunk_s: seconds("FIRST_CHUNK_S", d.first_chunk_s, false)?,
    })
}

/// The queue's retry rules: `JOB_MAX_ATTEMPTS` (3), `LEASE_TTL_MS` (30000),
/// `RETRY_BACKOFF_MS` (5000).
pub fn retry_policy(vars: &Vars<'_>) -> Result<RetryPolicy, ConfigError> {
    let d = RetryPolicy::default();
    Ok(RetryPolicy {
        max_attempts: vars.number("JOB_MAX_ATTEMPTS", d.max_attempts)?.max(1),
        lease_ttl_ms: vars.number("LEASE_TTL_MS", d.lease_ttl_ms)?.max(1000),
        backoff_base_ms: vars.number("RETRY_BACKOFF_MS", d.backoff_base_ms)?,
    })
}

/// The default ladder of new jobs: `LADDER_MAX_RUNG` (2160), `LADDER_MAX_RUNGS`
/// (0 = all), `LADDER_SEGMENT_S` (4), `LADDER_PRESET` (veryfast).
pub fn ladder_options(vars: &Vars<'_>) -> Result<LadderOptions, ConfigError> {
    let d = LadderOptions::default();
    Ok(LadderOptions {
        max_rung: vars.number("LADDER_MAX_RUNG", d.max_rung)?,
        max_rungs: vars.number("LADDER_MAX_RUNGS", d.max_rungs)?,
        segment_s: vars.number("LADDER_SEGMENT_S", d.segment_s)?.max(1),
        gop_s: d.gop_s,
        preset: vars.or("LADDER_PRESET", &d.preset),
        codecs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<VideoSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        VideoSettings::load(&Vars(&map))
    }

    #[test]
    fn the_routes_settings_with_their_defaults() {
        let s = load(&[]).unwrap();
        assert_eq!((s.max_video_bytes, s.transcoder_token), (DEFAULT_MAX_VIDEO_BYTES, None));
        let s = load(&[("MAX_VIDEO_BYTES", "100"), ("TRANSCODER_TOKEN", "t0ken")]).unwrap();
        assert_eq!((s.max_video_bytes, s.transcoder_token.as_deref()), (100, Some("t0ken")));
        // A blank token is no token: the internal API then admits nobody.
        assert_eq!(load(&[("TRANSCODER_TOKEN", " ")]).unwrap().transcoder_token, None);
        assert_eq!(load(&[("MAX_VIDEO_BYTES", "5G")]).err().map(|e| e.name).as_deref(), Some("MAX_VIDEO_BYTES"));
    }

    #[test]
    fn upload_sessions_last_six_hours_unless_set_within_a_day() {
        let s = load(&[]).unwrap();
        assert_eq!((s.upload_session_ttl_s, s.upload_list_page), (6 * 3600, 1000));
        let s = load(&[("UPLOAD_SESSION_TTL_S", "3600"), ("UPLOAD_LIST_PAGE", "2")]).unwrap();
        assert_eq!((s.upload_session_ttl_s, s.upload_list_page), (3600, 2));
        for bad in ["59", "86401", "6h"] {
            let e = load(&[("UPLOAD_SESSION_TTL_S", bad)]).err().unwrap();
            assert_eq!(e.name, "UPLOAD_SESSION_TTL_S", "{bad}");
        }
    }

    #[test]
    fn webhooks_are_read_and_checked() {
        let w = load(&[]).unwrap().objects.webhooks;
        assert!(w.config.is_empty() && !w.allow_local_http);
        assert_eq!((w.policy.max_attempts, w.policy.base_delay_ms, w.policy.timeout_ms), (8, 10_000, 10_000));
        let json = r#"{"app1": {"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"}}"#;
        // A local receiver is for development and tests only.
        let e = load(&[("IV_WEBHOOKS", json)]).err().unwrap();
        assert_eq!(e.name, "IV_WEBHOOKS");
        assert!(!e.problem.contains("0123456789abcdef"), "never the secret: {}", e.problem);
        let w = load(&[("IV_WEBHOOKS", json), ("ENVIRONMENT", "test"), ("WEBHOOK_RETRY_BASE_MS", "200")])
            .unwrap()
            .objects
            .webhooks;
        let app = media_core::ids::AppId::parse("app1").unwrap();
        assert_eq!(w.config.for_app(&app).and_then(|h| h.url.as_deref()), Some("http://127.0.0.1:9/hook"));
        assert_eq!(w.policy.base_delay_ms, 200);
    }

    #[test]
    fn keep_source_is_true_unless_set_false() {
        let read = |v: &[(&str, &str)]| keep_source(&Vars(&v.iter().copied().collect::<HashMap<&str, &str>>()));
        assert_eq!(read(&[]), Ok(true));
        assert_eq!(read(&[("KEEP_SOURCE", "false")]), Ok(false));
        assert_eq!(read(&[("KEEP_SOURCE", " TRUE ")]), Ok(true));
        assert_eq!(read(&[("KEEP_SOURCE", "maybe")]).unwrap_err().name, "KEEP_SOURCE");
    }

    #[test]
    fn queue_shards_are_bounded() {
        let d = load(&[]).unwrap().objects.dispatch;
        assert_eq!((d.queue_shards, d.large_source_bytes), (4, DEFAULT_LARGE_SOURCE_BYTES));
        assert_eq!(load(&[("QUEUE_SHARDS", "32")]).unwrap().objects.dispatch.queue_shards, 32);
        for bad in ["0", "33", "-1", "two"] {
            let e = load(&[("QUEUE_SHARDS", bad)]).err().unwrap();
            assert_eq!(e.name, "QUEUE_SHARDS", "{bad}");
        }
    }

    #[test]
    fn the_worker_refuses_on_any_setting_its_objects_use() {
        let bad = [
            ("JOB_MAX_ATTEMPTS", "many"),
            ("LEASE_TTL_MS", "30s"),
            ("RETRY_BACKOFF_MS", "-5"),
            ("LADDER_MAX_RUNG", "4k"),
            ("LADDER_MAX_RUNGS", "all"),
            ("LADDER_SEGMENT_S", "four"),
            ("LARGE_SOURCE_BYTES", "1G"),
            ("WEBHOOK_RETRY_BASE_MS", "soon"),
            ("WEBHOOK_TIMEOUT_MS", "10s"),
            ("KEEP_SOURCE", "maybe"),
            ("SSE_MAX_PER_VIDEO", "lots"),
            ("SSE_MAX_PER_ADDRESS", "lots"),
            ("SSE_HEARTBEAT_MS", "15s"),
            ("SSE_LOG_EVENTS", "0"),
            ("SSE_LOG_EVENTS", "10001"),
            ("SSE_LOG_EVENTS", "few"),
            ("CHUNK_FROM_S", "-1"),
            ("CHUNK_FROM_S", "2min"),
            ("CHUNK_S", "0"),
            ("CHUNK_S", "NaN"),
            ("FIRST_CHUNK_S", "-3"),
        ];
        for (name, value) in bad {
            let e = load(&[(name, value)]).err().unwrap_or_else(|| panic!("{name}={value} was accepted"));
            assert_eq!(e.name, name);
        }
        let defaults = load(&[]).unwrap().objects;
        assert_eq!((defaults.keep_source, defaults.caps, defaults.heartbeat_ms), (true, StreamCaps::default(), 15_000));
        let lens = |v: &[(&str, &str)]| event_log_lens(&Vars(&v.iter().copied().collect::<HashMap<&str, &str>>()));
        assert_eq!(lens(&[]), Ok(EventLogLens { video: 200, app: 500 }));
        assert_eq!(lens(&[("SSE_LOG_EVENTS", "4")]), Ok(EventLogLens { video: 4, app: 4 }));
    }

    #[test]
    fn chunking_starts_at_two_minutes_unless_set_and_zero_turns_it_off() {
        let chunks = |v: &[(&str, &str)]| load(v).unwrap().objects.chunks;
        assert_eq!(chunks(&[]), ChunkSettings { from_s: 120.0, chunk_s: 30.0, first_chunk_s: 10.0 });
        let set = chunks(&[("CHUNK_FROM_S", "20"), ("CHUNK_S", "6"), ("FIRST_CHUNK_S", "2.5")]);
        assert_eq!(set, ChunkSettings { from_s: 20.0, chunk_s: 6.0, first_chunk_s: 2.5 });
        let off = chunks(&[("CHUNK_FROM_S", "0")]);
        assert_eq!(off.chunk_from_s(&Default::default()), None);
        assert_eq!(set.chunk_from_s(&Default::default()), Some(20.0));
    }
}

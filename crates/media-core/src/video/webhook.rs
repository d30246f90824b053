//! Signed webhooks on the Standard Webhooks spec
//! (<https://www.standardwebhooks.com>, the spec behind the `standardwebhooks`
//! libraries on npm and PyPI): which job events are announced
//! ([`announced_type`]), the body of an announced event ([`EventBody`], ids
//! minted from bytes passed in), secrets ([`new_secret`], [`SigningKey`]),
//! the three headers and their check ([`signature_header`], [`verify`]),
//! and the per-app destinations of the `IV_WEBHOOKS` secret
//! ([`WebhookConfig`]).
//!
//! A delivery carries `webhook-id` (the event id, the same in every retry),
//! `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>`,
//! several separated by spaces while a secret is rotated (any one matching
//! passes). A secret `whsec_<base64>` signs with its decoded bytes, as the
//! libraries read it; any other string (an `IV_WEBHOOKS` secret from before
//! the spec) with its own bytes, which receivers pass as a raw key
//! (`new Webhook(secret, { format: "raw" })` in JavaScript). Hand-written
//! on hmac/sha2/base64: the `standardwebhooks` crate's `verify` reads the
//! clock with `time::OffsetDateTime::now_utc()`, which panics in a wasm32
//! Worker, and it would add `time` and a second base64 to the Workers.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::catalogue::EventType;
use crate::ids::{base32_lower, AppId};
use crate::time::Timestamp;
use crate::video::callback::url_problem;
use crate::video::events::JobEvent;

/// The header that carries the event id (receivers dedupe on it: a delivery
/// may be repeated).
pub const ID_HEADER: &str = "webhook-id";

/// The header that carries the attempt's time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";

/// The header that carries the signatures ([`signature_header`]).
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far (seconds) a timestamp may be from the receiver's clock (the
/// libraries' five minutes).
pub const SIGNATURE_TOLERANCE_S: u64 = 300;

/// The shortest `IV_WEBHOOKS` secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// How a Standard Webhooks secret starts.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret(random: [u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(random))
}

/// The bytes a secret signs with. Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// The key of `secret` as the Standard Webhooks libraries read it:
    /// `whsec_<base64>` is the decoded bytes; any other string (a legacy
    /// `IV_WEBHOOKS` secret, or `whsec_` with no base64 after it) is its
    /// own UTF-8 bytes, a "raw" key to the libraries.
    pub fn of_secret(secret: &str) -> SigningKey {
        match secret.strip_prefix(SECRET_PREFIX).map(|b64| BASE64.decode(b64)) {
            Some(Ok(bytes)) if !bytes.is_empty() => SigningKey(bytes),
            _ => SigningKey(secret.as_bytes().to_vec()),
        }
    }

    /// Whether `secret` is read as a raw key (not `whsec_<base64>`).
    pub fn is_raw(secret: &str) -> bool {
        SigningKey::of_secret(secret).0 == secret.as_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The catalogue event a job event announces, if any: playable, completed,
/// a final error and canceled do; started, progress and errors with a retry
/// queued do not. `job:created` does not either: `video.created` is a
/// video's first notify only, which the video's object knows.
pub fn announced_type(e: &JobEvent) -> Option<EventType> {
    match e {
        JobEvent::Playable { .. } => Some(EventType::VideoPlayable),
        JobEvent::Completed { .. } => Some(EventType::VideoReady),
        JobEvent::Error { is_final: true, .. } => Some(EventType::VideoErrored),
        JobEvent::Canceled { .. } => Some(EventType::VideoCanceled),
        JobEvent::Error { is_final: false, .. }
        | JobEvent::Created { .. }
        | JobEvent::Started { .. }
        | JobEvent::Progress { .. } => None,
    }
}

/// An announced event's JSON body, the same in a webhook, the app's stream
/// and `/job-events`: `{"id", "type", "created_at", "data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    /// `evt_` and 26 lowercase base32 characters ([`event_id`]); also sent
    /// as [`ID_HEADER`], the same in every retry and redelivery.
    pub id: String,
    /// The catalogue name (`video.ready`).
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: Timestamp,
    /// The event's payload (for `video.*`, the job as `GET /job-status`
    /// shows it when the event happened).
    pub data: Value,
}

impl EventBody {
    /// The body of an `event_type` event about `data`, with an id minted from `random`.
    pub fn new(event_type: EventType, random: [u8; 16], created_at: Timestamp, data: Value) -> EventBody {
        EventBody { id: event_id(random), event_type, created_at, data }
    }

    /// The raw body to sign and send.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("event bodies always serialize")
    }
}

/// A fresh event id from 16 random bytes: `evt_` and 26 lowercase base32
/// characters (the alphabet of job ids).
pub fn event_id(random: [u8; 16]) -> String {
    format!("evt_{}", base32_lower(&random))
}

/// HMAC-SHA256(key, "<msg_id>.<unix_s>.<body>").
fn mac(key: &SigningKey, msg_id: &str, unix_s: u64, body: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(unix_s.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// One signature: `v1,<base64 HMAC-SHA256(key, "<msg_id>.<unix_s>.<body>")>`.
pub fn sign(key: &SigningKey, msg_id: &str, unix_s: u64, body: &[u8]) -> String {
    format!("v1,{}", BASE64.encode(mac(key, msg_id, unix_s, body)))
}

/// The `webhook-signature` value of `body` sent as `msg_id` at `unix_s`:
/// one signature per key, separated by spaces (the new secret's first and
/// the old one's while a secret is rotated).
pub fn signature_header(keys: &[SigningKey], msg_id: &str, unix_s: u64, body: &[u8]) -> String {
    keys.iter().map(|k| sign(k, msg_id, unix_s, body)).collect::<Vec<_>>().join(" ")
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header is missing or not of its form.
    #[error("malformed webhook headers: {0}")]
    Malformed(String),
    /// The timestamp is too far from now (a replay, or a clock far off).
    #[error("the webhook timestamp {t} is {skew_s} s away from now ({now}); at most {tolerance_s} s is accepted")]
    OutsideTolerance { t: u64, now: u64, skew_s: u64, tolerance_s: u64 },
    /// No `v1` signature is the HMAC of this message with this key.
    #[error("no v1 signature matches the message (a different secret, or the body was changed on the way)")]
    NoMatch,
}

/// Checks a delivery as the Standard Webhooks libraries do: the timestamp
/// (`webhook-timestamp`, Unix seconds) within `tolerance_s` of `now_unix_s`
/// either way, and any `v1,<base64>` of the space-separated
/// `webhook-signature` equal (in constant time) to the HMAC of
/// `"<msg_id>.<timestamp>.<body>"` under `key`; other versions are skipped.
pub fn verify(
    key: &SigningKey,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_unix_s: u64,
    tolerance_s: u64,
) -> Result<(), VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    if msg_id.is_empty() {
        return Err(malformed("no webhook-id"));
    }
    let t = timestamp.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("webhook-timestamp is not a number of seconds"));
    }
    let t: u64 = t.parse().map_err(|_| malformed("webhook-timestamp is not a number of seconds"))?;
    let skew_s = now_unix_s.abs_diff(t);
    if skew_s > tolerance_s {
        return Err(VerifyError::OutsideTolerance { t, now: now_unix_s, skew_s, tolerance_s });
    }
    let expected = mac(key, msg_id, t, body);
    let mut matched = Choice::from(0);
    for item in signatures.split(' ').filter(|i| !i.is_empty()) {
        // A value that is not 32 bytes of base64 cannot match; look at every one.
        if let Some(("v1", sig)) = item.split_once(',') {
            if let Ok(bytes) = BASE64.decode(sig) {
                if bytes.len() == expected.len() {
                    matched |= expected.ct_eq(&bytes[..]);
                }
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// One app's webhook destination. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AppWebhook {
    /// Where every job's webhooks go; absent, only to a notify's `callback_url`.
    pub url: Option<String>,
    pub secret: String,
}

impl fmt::Debug for AppWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppWebhook").field("url", &self.url).field("secret", &"<redacted>").finish()
    }
}

/// Per-app webhook destinations, from the `IV_WEBHOOKS` secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    apps: BTreeMap<AppId, AppWebhook>,
}

impl WebhookConfig {
    /// No destinations (the secret is not set).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Reads `{"<app_id>": {"url": "https://...", "secret": "..."}, ...}`:
    /// every key a valid app id, every url accepted by the callback rules
    /// ([`crate::video::callback::check_url`]; `allow_local_http` in development),
    /// every secret at least [`MIN_SECRET_CHARS`] characters, no other
    /// fields. Errors name the app and the problem, never the secret.
    pub fn parse(json: &str, allow_local_http: bool) -> Result<WebhookConfig, String> {
        const SHAPE: &str = r#"{"<app_id>": {"url": "https://...", "secret": "..."}}"#;
        let value: Value = serde_json::from_str(json).map_err(|e| format!("is not JSON ({e}); write {SHAPE}"))?;
        let Value::Object(entries) = value else {
            return Err(format!("must be a JSON object: {SHAPE}"));
        };
        let mut apps = BTreeMap::new();
        for (key, entry) in entries {
            let app = AppId::parse(&key).map_err(|e| format!("has an invalid app id {key:?}: {e}"))?;
            let problem = |what: &str| format!("app {app}: {what}");
            let Value::Object(fields) = entry else {
                return Err(problem(r#"must be an object {"url": ..., "secret": ...}"#));
            };
            if let Some(other) = fields.keys().find(|k| !matches!(k.as_str(), "url" | "secret")) {
                return Err(problem(&format!("unknown field {other:?}; only url and secret are accepted")));
            }
            // No url: the app's webhooks go only to the callback_url of a notify.
            let url = match fields.get("url") {
                None | Some(Value::Null) => None,
                Some(Value::String(url)) => {
                    if let Some(why) = url_problem(url, allow_local_http) {
                        return Err(problem(&format!("url {why}")));
                    }
                    Some(url.clone())
                }
                Some(_) => return Err(problem("url must be a string")),
            };
            let Some(Value::String(secret)) = fields.get("secret") else {
                return Err(problem("secret must be a string"));
            };
            if secret.chars().count() < MIN_SECRET_CHARS {
                return Err(problem(&format!("secret must be at least {MIN_SECRET_CHARS} characters")));
            }
            apps.insert(app, AppWebhook { url, secret: secret.clone() });
        }
        Ok(WebhookConfig { apps })
    }

    /// The destination of `app`'s webhooks, if it has one.
    pub fn for_app(&self, app: &AppId) -> Option<&AppWebhook> {
        self.apps.get(app)
    }

    /// True when no app has a destination.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{JobId, LeaseId, VideoId};
    use crate::keys::OutputId;
    use crate::video::events::events_between;
    use crate::video::job::{Job, JobResult, RetryPolicy, SourceUpload};
    use crate::video::ladder::LadderOptions;
    use crate::wire::api::JobView;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const T: u64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::of_secret(SECRET)
    }

    #[test]
    fn signing_matches_the_spec_test_vector() {
        // The Standard Webhooks / Svix documentation's example (research
        // notes §1), recomputed with python3's hmac.
        let (id, ts, body) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        let want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(&key(), id, ts, body), want);
        assert_eq!(signature_header(&[key()], id, ts, body), want);
        assert_eq!(verify(&key(), id, &ts.to_string(), want, body, ts + 10, SIGNATURE_TOLERANCE_S), Ok(()));
    }

    #[test]
    fn secrets_are_whsec_base64_and_legacy_ones_raw_keys() {
        let fresh = new_secret([7; 32]);
        assert!(fresh.starts_with("whsec_") && fresh.len() == 6 + 44, "{fresh}");
        assert_eq!(SigningKey::of_secret(&fresh), SigningKey(vec![7; 32]));
        assert!(!SigningKey::is_raw(&fresh));
        // Independently: python3 hmac.new(b'legacy-secret-0123456789', b'evt_1.1700000000.<body>', sha256), base64.
        let body = br#"{"id":"evt_1","type":"video.ready"}"#;
        let legacy = "legacy-secret-0123456789";
        assert!(SigningKey::is_raw(legacy));
        assert_eq!(
            sign(&SigningKey::of_secret(legacy), "evt_1", T, body),
            "v1,Rxwk5VZMYxems9arnakads0BOLPDQOtbYkzhSgeU4qo="
        );
        // `whsec_` with no base64 after it is a raw key too, the whole string.
        assert!(SigningKey::is_raw("whsec_test_0123456789abcdef"));
        // `whsec_` and hex is valid base64: decoded, as the libraries do.
        let hexy = "whsec_0123456789abcdef0123456789abcdef";
        assert!(!SigningKey::is_raw(hexy));
        assert_eq!(
            sign(&SigningKey::of_secret(hexy), "evt_1", T, body),
            "v1,0WUlQfuk+0Pe9vc20pqwwFXQDHsCqW0VRG/AilyOrDE="
        );
        assert_eq!(format!("{:?}", key()), "SigningKey(<redacted>)");
    }

    #[test]
    fn a_rotation_header_verifies_with_either_secret() {
        let (old, new) = (SigningKey::of_secret(&new_secret([1; 32])), SigningKey::of_secret(&new_secret([2; 32])));
        let header = signature_header(&[new.clone(), old.clone()], "evt_1", T, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")), "{header}");
        for k in [&old, &new] {
            assert_eq!(verify(k, "evt_1", &T.to_string(), &header, b"{}", T, SIGNATURE_TOLERANCE_S), Ok(()));
        }
        let other = SigningKey::of_secret(&new_secret([3; 32]));
        assert_eq!(verify(&other, "evt_1", &T.to_string(), &header, b"{}", T, 300), Err(VerifyError::NoMatch));
    }

    /// What, the id, the timestamp, the signatures, the body, now, and Ok or a part of the error.
    type VerifyCase = (&'static str, &'static str, String, String, &'static [u8], u64, Result<(), &'static str>);

    #[test]
    fn verification_refuses_what_it_should() {
        const BODY: &[u8] = br#"{"id":"evt_1","type":"video.ready"}"#;
        let good = sign(&key(), "evt_1", T, BODY);
        let other = sign(&SigningKey::of_secret("another_secret_0123456789"), "evt_1", T, BODY);
        let ts = T.to_string();
        let cases: Vec<VerifyCase> = vec![
            ("round trip", "evt_1", ts.clone(), good.clone(), BODY, T, Ok(())),
            ("within tolerance, later", "evt_1", ts.clone(), good.clone(), BODY, T + 300, Ok(())),
            ("within tolerance, earlier", "evt_1", ts.clone(), good.clone(), BODY, T - 300, Ok(())),
            ("several, the second matches", "evt_1", ts.clone(), format!("{other} {good}"), BODY, T, Ok(())),
            ("other versions are skipped", "evt_1", ts.clone(), format!("v1a,abc {good} v2,x"), BODY, T, Ok(())),
            ("not base64 is skipped", "evt_1", ts.clone(), format!("v1,@@@ {good}"), BODY, T, Ok(())),
            (
                "tampered body",
                "evt_1",
                ts.clone(),
                good.clone(),
                br#"{"id":"evt_1"}"#,
                T,
                Err("no v1 signature matches"),
            ),
            ("another id", "evt_2", ts.clone(), good.clone(), BODY, T, Err("no v1 signature matches")),
            (
                "a changed timestamp",
                "evt_1",
                (T + 1).to_string(),
                good.clone(),
                BODY,
                T,
                Err("no v1 signature matches"),
            ),
            ("wrong secret", "evt_1", ts.clone(), other, BODY, T, Err("no v1 signature matches")),
            ("no v1 at all", "evt_1", ts.clone(), String::new(), BODY, T, Err("no v1 signature matches")),
            ("the legacy format", "evt_1", ts.clone(), format!("t={T},v1=00"), BODY, T, Err("no v1 signature matches")),
            (
                "too old",
                "evt_1",
                ts.clone(),
                good.clone(),
                BODY,
                T + 301,
                Err("is 301 s away from now (1700000301); at most 300 s"),
            ),
            ("too far ahead", "evt_1", ts.clone(), good.clone(), BODY, T - 301, Err("is 301 s away")),
            ("no id", "", ts.clone(), good.clone(), BODY, T, Err("no webhook-id")),
            ("no timestamp", "evt_1", String::new(), good.clone(), BODY, T, Err("webhook-timestamp is not a number")),
            (
                "timestamp negative",
                "evt_1",
                "-1".into(),
                good.clone(),
                BODY,
                T,
                Err("webhook-timestamp is not a number"),
            ),
            ("timestamp too large", "evt_1", "99999999999999999999".into(), good, BODY, T, Err("not a number")),
        ];
        for (what, id, ts, sigs, body, now, want) in cases {
            let got = verify(&key(), id, &ts, &sigs, body, now, SIGNATURE_TOLERANCE_S);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(part), Err(e)) => assert!(e.to_string().contains(part), "{what}: {e} does not say {part:?}"),
                _ => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn event_ids_are_evt_and_26_base32_characters() {
        assert_eq!(event_id([0; 16]), format!("evt_{}", "0".repeat(26)));
        assert_eq!(event_id([0xff; 16]), format!("evt_{}w", "z".repeat(25)));
        let id = event_id(*b"0123456789abcdef");
        assert_eq!(id.len(), 30);
        assert!(id[4..].bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()), "{id}");
        assert_ne!(event_id([1; 16]), event_id([2; 16]));
    }

    fn job() -> Job {
        let p = RetryPolicy::default();
        let source = SourceUpload {
            raw_key: "raw/app/vid/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 1,
            etag: None,
        };
        Job::new(
            JobId::parse("job_1").unwrap(),
            AppId::parse("app").unwrap(),
            VideoId::parse("vid").unwrap(),
            source,
            LadderOptions::default(),
            &p,
            Timestamp::from_secs(T),
        )
    }

    /// The webhook types of the events a series of steps on a job sends.
    fn webhooks_of(steps: &[fn(&mut Job)]) -> Vec<(&'static str, Option<&'static str>)> {
        let mut j = job();
        let mut out = vec![];
        for step in steps {
            let before = j.clone();
            step(&mut j);
            for e in events_between(Some(&before), &j, "https://videos.example.com") {
                out.push((e.name(), announced_type(&e).map(EventType::as_str)));
            }
        }
        out
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 2, ..RetryPolicy::default() }
    }

    fn lease(j: &mut Job, id: &str, at: u64) {
        j.lease(LeaseId::parse(id).unwrap(), OutputId::parse("o1").unwrap(), &policy(), Timestamp::from_secs(at))
            .unwrap();
    }

    #[test]
    fn job_events_map_to_webhook_types() {
        let ran = webhooks_of(&[
            |j| lease(j, "L1", T),
            |j| {
                j.heartbeat(&LeaseId::parse("L1").unwrap(), 20, None, true, &policy(), Timestamp::from_secs(T))
                    .unwrap();
            },
            |j| {
                j.fail(&LeaseId::parse("L1").unwrap(), "S3 timed out", true, &policy(), Timestamp::from_secs(T))
                    .unwrap();
            },
            |j| lease(j, "L2", T + 60),
            |j| {
                let result = JobResult {
                    duration_s: 1.0,
                    renditions: vec![],
                    thumbnails: None,
                    has_audio: false,
                    download: None,
                    ..Default::default()
                };
                j.complete(&LeaseId::parse("L2").unwrap(), result, Timestamp::from_secs(T + 61)).unwrap();
            },
        ]);
        assert_eq!(
            ran,
            [
                ("job:started", None),
                ("job:progress", None),
                ("job:playable", Some("video.playable")),
                ("job:error", None),
                ("job:started", None),
                ("job:playable", Some("video.playable")),
                ("job:completed", Some("video.ready")),
            ]
        );
        let failed = webhooks_of(&[
            |j| lease(j, "L1", T),
            |j| {
                j.fail(&LeaseId::parse("L1").unwrap(), "not a video", false, &policy(), Timestamp::from_secs(T))
                    .unwrap();
            },
            |j| {
                j.renotify(j.source.clone(), &policy(), Timestamp::from_secs(T + 1));
            },
            |j| assert!(j.cancel("canceled through the API", Timestamp::from_secs(T + 2))),
        ]);
        assert_eq!(
            failed,
            [
                ("job:started", None),
                ("job:error", Some("video.errored")),
                ("job:created", None),
                ("job:canceled", Some("video.canceled")),
            ]
        );
    }

    #[test]
    fn the_body_has_the_documented_shape() {
        let view = JobView::of(&job(), "https://videos.example.com");
        let data = serde_json::to_value(&view).unwrap();
        let body = EventBody::new(EventType::VideoReady, [0; 16], Timestamp::from_secs(T), data);
        let v: Value = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(v["id"], format!("evt_{}", "0".repeat(26)));
        assert_eq!(
            (v["type"].as_str(), v["created_at"].as_str()),
            (Some("video.ready"), Some("2023-11-14T22:13:20.000Z"))
        );
        assert_eq!(v["data"], serde_json::to_value(&view).unwrap());
        assert_eq!(v.as_object().unwrap().len(), 4);
        assert_eq!(serde_json::from_value::<EventBody>(v).unwrap(), body);
        // The signature covers exactly these bytes.
        let raw = body.to_json();
        let header = signature_header(&[key()], &body.id, T, raw.as_bytes());
        assert_eq!(verify(&key(), &body.id, &T.to_string(), &header, raw.as_bytes(), T + 5, 300), Ok(()));
    }

    #[test]
    fn the_config_is_checked_entry_by_entry() {
        let secret = "s3cr3t-s3cr3t-s3cr3t";
        let ok = format!(
            r#"{{"app-a": {{"url": "https://hooks.example.com/a", "secret": "{secret}"}}, "b": {{"url": "https://b.example/x", "secret": "{secret}"}}}}"#
        );
        let c = WebhookConfig::parse(&ok, false).unwrap();
        let a = c.for_app(&AppId::parse("app-a").unwrap()).unwrap();
        assert_eq!((a.url.as_deref(), a.secret.as_str()), (Some("https://hooks.example.com/a"), secret));
        // An app that only uses notify's callback_url has a secret and no url.
        let only = format!(r#"{{"cb": {{"secret": "{secret}"}}}}"#);
        let cb = WebhookConfig::parse(&only, false).unwrap();
        assert_eq!(cb.for_app(&AppId::parse("cb").unwrap()).unwrap().url, None);
        assert!(c.for_app(&AppId::parse("other").unwrap()).is_none());
        assert!(WebhookConfig::parse("{}", false).unwrap().is_empty());
        assert!(WebhookConfig::empty().is_empty());
        let local = format!(r#"{{"dev": {{"url": "http://127.0.0.1:9000/hook", "secret": "{secret}"}}}}"#);
        assert!(WebhookConfig::parse(&local, true).is_ok());

        let cases: &[(&str, bool, &str)] = &[
            ("", false, "is not JSON"),
            ("[]", false, "must be a JSON object"),
            (
                r#"{"bad id!": {"url": "https://x.example/", "secret": "0123456789abcdef"}}"#,
                false,
                "invalid app id \"bad id!\"",
            ),
            (r#"{"a": "https://x.example/"}"#, false, "app a: must be an object"),
            (
                r#"{"a": {"url": "https://x.example/", "secret": "0123456789abcdef", "events": []}}"#,
                false,
                "app a: unknown field \"events\"",
            ),
            (r#"{"a": {"url": 5, "secret": "0123456789abcdef"}}"#, false, "app a: url must be a string"),
            (
                r#"{"a": {"url": "http://x.example/", "secret": "0123456789abcdef"}}"#,
                false,
                "app a: url must use https, not http",
            ),
            (
                r#"{"a": {"url": "https://10.0.0.1/", "secret": "0123456789abcdef"}}"#,
                false,
                "app a: url must not point at a private address",
            ),
            (
                r#"{"a": {"url": "http://127.0.0.1:9000/", "secret": "0123456789abcdef"}}"#,
                false,
                "app a: url must use https",
            ),
            (r#"{"a": {"url": "https://x.example/"}}"#, false, "app a: secret must be a string"),
            (
                r#"{"a": {"url": "https://x.example/", "secret": 1234567890123456789}}"#,
                false,
                "app a: secret must be a string",
            ),
            (
                r#"{"a": {"url": "https://x.example/", "secret": "short-secret-15"}}"#,
                false,
                "app a: secret must be at least 16 characters",
            ),
        ];
        for (json, local, part) in cases {
            let e = WebhookConfig::parse(json, *local).unwrap_err();
            assert!(e.contains(part), "{json}: {e:?} does not say {part:?}");
            for secret in ["0123456789abcdef", "short-secret-15", "1234567890123456789"] {
                assert!(!e.contains(secret), "{e} shows the secret");
            }
        }
        // Debug output never shows a secret.
        let shown = format!("{c:?} {a:?}");
        assert!(
            !shown.contains(secret) && shown.contains("<redacted>") && shown.contains("hooks.example.com"),
            "{shown}"
        );
    }
}

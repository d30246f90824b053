//! Signed webhooks: which job events are sent ([`WebhookType`]), the body
//! ([`WebhookBody`], ids minted from bytes passed in), the
//! `Webhook-Signature` header and its check ([`signature_header`],
//! [`verify`]) and the per-app destinations of the `IV_WEBHOOKS`
//! secret ([`WebhookConfig`]).
//!
//! The signature is `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`;
//! a receiver recomputes it over the raw bytes it got, compares in constant
//! time and refuses a `t` more than [`SIGNATURE_TOLERANCE_S`] away from its
//! clock (replays). Several `v1=` may be present (a secret being rotated);
//! any match passes.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::ids::{base32_lower, AppId};
use crate::time::Timestamp;
use crate::video::callback::url_problem;
use crate::video::events::JobEvent;
use crate::wire::api::JobView;

/// The header that carries the event id (receivers dedupe on it: a delivery
/// may be repeated).
pub const ID_HEADER: &str = "webhook-id";

/// The header that carries the signature ([`signature_header`]).
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far (seconds) a signature's `t` may be from the receiver's clock.
pub const SIGNATURE_TOLERANCE_S: u64 = 300;

/// The shortest secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// What a webhook tells: the job events that are worth a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookType {
    /// `video.playable`: a player can start.
    #[serde(rename = "video.playable")]
    Playable,
    /// `video.ready`: the ladder is finished.
    #[serde(rename = "video.ready")]
    Ready,
    /// `video.errored`: the job failed for good.
    #[serde(rename = "video.errored")]
    Errored,
    /// `video.canceled`: the job was canceled through the API.
    #[serde(rename = "video.canceled")]
    Canceled,
}

impl WebhookType {
    /// The `type` of the body.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::Playable => "video.playable",
            WebhookType::Ready => "video.ready",
            WebhookType::Errored => "video.errored",
            WebhookType::Canceled => "video.canceled",
        }
    }

    /// The webhook a job event sends, if any: playable, completed, a final
    /// error and canceled do; created, started, progress and errors with a
    /// retry queued do not.
    pub fn of_event(e: &JobEvent) -> Option<WebhookType> {
        match e {
            JobEvent::Playable { .. } => Some(WebhookType::Playable),
            JobEvent::Completed { .. } => Some(WebhookType::Ready),
            JobEvent::Error { is_final: true, .. } => Some(WebhookType::Errored),
            JobEvent::Canceled { .. } => Some(WebhookType::Canceled),
            JobEvent::Error { is_final: false, .. }
            | JobEvent::Created { .. }
            | JobEvent::Started { .. }
            | JobEvent::Progress { .. } => None,
        }
    }
}

/// A webhook's JSON body: `{"id", "type", "created_at", "data": JobView}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// `evt_` and 26 lowercase base32 characters ([`event_id`]); also sent as [`ID_HEADER`].
    pub id: String,
    /// [`WebhookType::as_str`].
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: Timestamp,
    /// The job as `GET /job-status` shows it when the event happened.
    pub data: JobView,
}

impl WebhookBody {
    /// The body of a `kind` webhook about `data`, with an id minted from `random`.
    pub fn new(kind: WebhookType, random: [u8; 16], created_at: Timestamp, data: JobView) -> WebhookBody {
        WebhookBody { id: event_id(random), kind: kind.as_str().to_owned(), created_at, data }
    }

    /// The raw body to sign and send.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("webhook bodies always serialize")
    }
}

/// A fresh event id from 16 random bytes: `evt_` and 26 lowercase base32
/// characters (the alphabet of job ids).
pub fn event_id(random: [u8; 16]) -> String {
    format!("evt_{}", base32_lower(&random))
}

/// HMAC-SHA256(secret, "<unix_s>.<body>").
fn mac(secret: &str, unix_s: u64, body: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(unix_s.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The `Webhook-Signature` value of `body` sent at `unix_s`:
/// `t=<unix>,v1=<lowercase hex HMAC-SHA256(secret, "<unix>.<raw body>")>`.
pub fn signature_header(secret: &str, unix_s: u64, body: &[u8]) -> String {
    format!("t={unix_s},v1={}", hex::encode(mac(secret, unix_s, body)))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<unix>,v1=<hex>[,v1=<hex>...]`.
    #[error("malformed webhook-signature header: {0}; expected t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    Malformed(String),
    /// `t` is too far from now (a replay, or a clock far off).
    #[error("the signature's timestamp {t} is {skew_s} s away from now ({now}); at most {tolerance_s} s is accepted")]
    OutsideTolerance { t: u64, now: u64, skew_s: u64, tolerance_s: u64 },
    /// No `v1` is the HMAC of this body with this secret.
    #[error("no v1 signature matches the body (a different secret, or the body was changed on the way)")]
    NoMatch,
}

/// Checks a `Webhook-Signature` header against the raw body: reads `t` and
/// every `v1` (comma-separated; other schemes are ignored), refuses a `t`
/// more than `tolerance_s` from `now_unix_s` either way, and passes when
/// any `v1` is the HMAC of `"<t>.<body>"` under `secret` (compared in
/// constant time).
pub fn verify(secret: &str, header: &str, body: &[u8], now_unix_s: u64, tolerance_s: u64) -> Result<(), VerifyError> {
    let malformed = |why: &str| VerifyError::Malformed(why.to_owned());
    let (mut t, mut signatures) = (None, Vec::new());
    for item in header.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| malformed("an item has no '='"))?;
        match key.trim() {
            "t" => {
                let value = value.trim();
                if t.is_some() {
                    return Err(malformed("t is given twice"));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed("t is not a number of seconds"));
                }
                t = Some(value.parse::<u64>().map_err(|_| malformed("t is not a number of seconds"))?);
            }
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| malformed("no t="))?;
    if signatures.is_empty() {
        return Err(malformed("no v1="));
    }
    let skew_s = now_unix_s.abs_diff(t);
    if skew_s > tolerance_s {
        return Err(VerifyError::OutsideTolerance { t, now: now_unix_s, skew_s, tolerance_s });
    }
    let expected = mac(secret, t, body);
    let mut matched = Choice::from(0);
    for sig in signatures {
        // A value that is not 32 bytes of hex cannot match; look at every one.
        if let Ok(bytes) = hex::decode(sig) {
            if bytes.len() == expected.len() {
                matched |= expected.ct_eq(&bytes[..]);
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

    const SECRET: &str = "whsec_test_secret_0123456789";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"video.ready"}"#;
    // Computed independently:
    //   printf '%s' '1700000000.{"id":"evt_1","type":"video.ready"}' \
    //     | openssl dgst -sha256 -hmac 'whsec_test_secret_0123456789'
    // (python3's hmac.new(secret, msg, hashlib.sha256).hexdigest() agrees).
    const SIG: &str = "4d78f4a72f077baead87ba665ff506b81c7de04a69f6d665ae37e3da8a527d60";
    const T: u64 = 1_700_000_000;

    #[test]
    fn signing_matches_an_independent_hmac() {
        assert_eq!(signature_header(SECRET, T, BODY), format!("t={T},v1={SIG}"));
    }

    /// What, the header, the body, now, and Ok or a part of the error.
    type VerifyCase = (&'static str, String, &'static [u8], u64, Result<(), &'static str>);

    #[test]
    fn verification_refuses_what_it_should() {
        let good = signature_header(SECRET, T, BODY);
        let other = signature_header("another_secret_0123456789", T, BODY);
        let zeros = "0".repeat(64);
        let cases: Vec<VerifyCase> = vec![
            ("round trip", good.clone(), BODY, T, Ok(())),
            ("within tolerance, later", good.clone(), BODY, T + 300, Ok(())),
            ("within tolerance, earlier", good.clone(), BODY, T - 300, Ok(())),
            ("spaces around items", format!(" t = {T} , v1 = {SIG} "), BODY, T, Ok(())),
            ("several v1, the second matches", format!("t={T},v1={zeros},v1={SIG}"), BODY, T, Ok(())),
            ("a v1 that is not hex is skipped", format!("t={T},v1=nothex,v1={SIG}"), BODY, T, Ok(())),
            ("other schemes are ignored", format!("v0=abc,t={T},v1={SIG},v2=x"), BODY, T, Ok(())),
            ("upper-case hex", format!("t={T},v1={}", SIG.to_uppercase()), BODY, T, Ok(())),
            (
                "tampered body",
                good.clone(),
                br#"{"id":"evt_1","type":"video.errored"}"#,
                T,
                Err("no v1 signature matches"),
            ),
            ("wrong secret", other, BODY, T, Err("no v1 signature matches")),
            ("a changed t", format!("t={},v1={SIG}", T + 1), BODY, T, Err("no v1 signature matches")),
            ("a truncated signature", format!("t={T},v1={}", &SIG[..62]), BODY, T, Err("no v1 signature matches")),
            ("too old", good.clone(), BODY, T + 301, Err("is 301 s away from now (1700000301); at most 300 s")),
            ("too far ahead", good.clone(), BODY, T - 301, Err("is 301 s away")),
            ("empty", String::new(), BODY, T, Err("malformed webhook-signature header: no t=")),
            ("no t", format!("v1={SIG}"), BODY, T, Err("no t=")),
            ("no v1", format!("t={T}"), BODY, T, Err("no v1=")),
            ("t twice", format!("t={T},t={T},v1={SIG}"), BODY, T, Err("t is given twice")),
            ("t not a number", format!("t=soon,v1={SIG}"), BODY, T, Err("t is not a number")),
            ("t negative", format!("t=-1,v1={SIG}"), BODY, T, Err("t is not a number")),
            ("t too large", format!("t=99999999999999999999,v1={SIG}"), BODY, T, Err("t is not a number")),
            ("an item without =", format!("t={T},{SIG}"), BODY, T, Err("an item has no '='")),
        ];
        for (what, header, body, now, want) in cases {
            let got = verify(SECRET, &header, body, now, SIGNATURE_TOLERANCE_S);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(part), Err(e)) => assert!(e.to_string().contains(part), "{what}: {e} does not say {part:?}"),
                _ => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(verify(SECRET, "t=1,v1=00", BODY, 1, 0), Err(VerifyError::NoMatch));
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
                out.push((e.name(), WebhookType::of_event(&e).map(WebhookType::as_str)));
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
                let result = JobResult { duration_s: 1.0, renditions: vec![], thumbnails: None, has_audio: false };
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
        for t in [WebhookType::Playable, WebhookType::Ready, WebhookType::Errored, WebhookType::Canceled] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }

    #[test]
    fn the_body_has_the_documented_shape() {
        let view = JobView::of(&job(), "https://videos.example.com");
        let body = WebhookBody::new(WebhookType::Ready, [0; 16], Timestamp::from_secs(T), view.clone());
        let v: Value = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(v["id"], format!("evt_{}", "0".repeat(26)));
        assert_eq!(
            (v["type"].as_str(), v["created_at"].as_str()),
            (Some("video.ready"), Some("2023-11-14T22:13:20.000Z"))
        );
        assert_eq!(v["data"], serde_json::to_value(&view).unwrap());
        assert_eq!(v.as_object().unwrap().len(), 4);
        assert_eq!(serde_json::from_value::<WebhookBody>(v).unwrap(), body);
        // The signature covers exactly these bytes.
        let raw = body.to_json();
        let header = signature_header(SECRET, T, raw.as_bytes());
        assert_eq!(verify(SECRET, &header, raw.as_bytes(), T + 5, SIGNATURE_TOLERANCE_S), Ok(()));
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

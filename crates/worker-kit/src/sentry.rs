//! Reporting our own faults to Sentry (`IV_SENTRY_DSN`) from a Worker: the
//! DSN, the envelope of one error event, and posting it with `fetch` inside
//! `wait_until`, after the response has gone out. The `sentry` client crate
//! cannot run in a Worker (it reads the system clock, which panics on wasm32,
//! and its transport blocks). `sentry-types` (Sentry's protocol types) was
//! tried instead of this small writer: it added 96 KB to each Worker's wasm,
//! needed every event field spelled out to keep it off the clock, and leaves
//! out `"level": "error"` (Sentry's default), so this stays hand-written.

use media_core::time::Timestamp;
use serde_json::json;
use worker::{Context, Fetch, Headers, Method, Request, RequestInit};

/// A parsed DSN: `https://<key>@<host>/<project>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub raw: String,
    pub public_key: String,
    /// `scheme://host[:port]` plus any path before the project id.
    pub base: String,
    pub project_id: String,
}

impl Dsn {
    pub fn parse(s: &str) -> Option<Dsn> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://")?;
        let (key_part, host_path) = rest.split_once('@')?;
        let public_key = key_part.split(':').next()?.to_owned();
        let (host_and_prefix, project_id) = host_path.trim_end_matches('/').rsplit_once('/')?;
        if public_key.is_empty()
            || project_id.is_empty()
            || host_and_prefix.is_empty()
            || !project_id.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Dsn {
            raw: s.to_owned(),
            public_key,
            base: format!("{scheme}://{host_and_prefix}"),
            project_id: project_id.to_owned(),
        })
    }

    pub fn envelope_url(&self) -> String {
        format!("{}/api/{}/envelope/", self.base, self.project_id)
    }

    pub fn auth_header(&self) -> String {
        format!(
            "Sentry sentry_version=7, sentry_key={}, sentry_client=media-platform/{}",
            self.public_key,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// What is known about a fault.
#[derive(Debug, Clone)]
pub struct Fault<'a> {
    pub service: &'a str,
    pub environment: &'a str,
    pub message: &'a str,
    pub method: &'a str,
    pub url: &'a str,
}

/// The envelope body for one error event.
pub fn envelope(dsn: &Dsn, event_id: [u8; 16], now: Timestamp, fault: &Fault<'_>) -> String {
    let id: String = event_id.iter().map(|b| format!("{b:02x}")).collect();
    let header = json!({ "event_id": id, "sent_at": now.to_rfc3339(), "dsn": dsn.raw });
    let event = json!({
        "event_id": id,
        "timestamp": now.millis() as f64 / 1000.0,
        "platform": "native",
        "level": "error",
        "logger": fault.service,
        "environment": fault.environment,
        "release": concat!("media-platform@", env!("CARGO_PKG_VERSION")),
        "tags": { "service": fault.service },
        "exception": { "values": [ { "type": "InternalError", "value": fault.message } ] },
        "request": { "method": fault.method, "url": fault.url },
    });
    let item = event.to_string();
    format!("{header}\n{}\n{item}\n", json!({ "type": "event", "length": item.len() }))
}

/// Where faults go: the DSN read once per request
/// ([`crate::settings::sentry_dsn`]); nowhere when it is unset.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    dsn: Option<String>,
}

impl Reporter {
    pub fn new(dsn: Option<String>) -> Self {
        Reporter { dsn }
    }

    /// Sends `fault` to Sentry after the response, if a DSN is set.
    pub fn report(&self, ctx: &Context, fault: Fault<'_>) {
        if let Some((dsn, body)) = self.prepare(&fault) {
            ctx.wait_until(post(dsn, body));
        }
    }

    /// Sends `fault` now, if a DSN is set: for work already running after
    /// the response (inside `wait_until`).
    pub async fn send(&self, fault: Fault<'_>) {
        if let Some((dsn, body)) = self.prepare(&fault) {
            post(dsn, body).await;
        }
    }

    fn prepare(&self, fault: &Fault<'_>) -> Option<(Dsn, String)> {
        let dsn = self.dsn.as_deref().and_then(Dsn::parse)?;
        let body = envelope(&dsn, crate::clock::random_bytes(), crate::clock::now(), fault);
        Some((dsn, body))
    }
}

/// Posts one envelope.
async fn post(dsn: Dsn, body: String) {
    let send = async {
        let headers = Headers::new();
        headers.set("content-type", "application/x-sentry-envelope")?;
        headers.set("x-sentry-auth", &dsn.auth_header())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        Fetch::Request(Request::new_with_init(&dsn.envelope_url(), &init)?).send().await
    };
    match send.await {
        Ok(r) if r.status_code() < 300 => {}
        Ok(r) => tracing::warn!(status = r.status_code(), "sentry refused the event"),
        Err(e) => tracing::warn!(error = %e, "sentry unreachable"),
    }
}

/// A [`Reporter`] with its request's service and environment, owned: for
/// work that outlives the request's context (a purge after the answer).
#[derive(Debug, Clone)]
pub struct OwnedReporter {
    pub reporter: Reporter,
    pub service: String,
    pub environment: String,
}

impl OwnedReporter {
    /// Sends one fault now ([`Reporter::send`]).
    pub async fn send(&self, message: &str, method: &str, url: &str) {
        let fault = Fault { service: &self.service, environment: &self.environment, message, method, url };
        self.reporter.send(fault).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsns() {
        let d = Dsn::parse("https://abc123@o42.ingest.sentry.io/4501").unwrap();
        assert_eq!(d.envelope_url(), "https://o42.ingest.sentry.io/api/4501/envelope/");
        assert!(d.auth_header().starts_with("Sentry sentry_version=7, sentry_key=abc123, "));
        let self_hosted = Dsn::parse("http://key:secret@127.0.0.1:9000/sentry/7").unwrap();
        assert_eq!(self_hosted.envelope_url(), "http://127.0.0.1:9000/sentry/api/7/envelope/");
        assert_eq!(self_hosted.public_key, "key");
        for bad in ["", "nope", "https://host/1", "https://k@host/", "https://k@host/abc"] {
            assert_eq!(Dsn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn envelope_has_three_json_lines() {
        let d = Dsn::parse("https://abc@example.com/1").unwrap();
        let f =
            Fault { service: "video-service", environment: "dev", message: "boom", method: "GET", url: "https://v/x" };
        let e = envelope(&d, [0xab; 16], Timestamp::from_secs(1_700_000_000), &f);
        let lines: Vec<serde_json::Value> = e.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event_id"], "abababababababababababababababab");
        assert_eq!(lines[1]["type"], "event");
        assert_eq!(lines[1]["length"].as_u64().unwrap() as usize, e.lines().nth(2).unwrap().len());
        assert_eq!(lines[2]["exception"]["values"][0]["value"], "boom");
        assert_eq!(lines[2]["timestamp"], 1_700_000_000.0);
    }
}

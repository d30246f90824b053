//! Logs and error reports: JSON `tracing` logs (one object per line, a span
//! per job), and Sentry events for our own failures (`TRANS_SENTRY_DSN`),
//! built with the same envelope code the Workers use.

use media_core::sentry::{envelope, Dsn, Fault};
use media_core::Timestamp;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    let _ = if json { builder.json().with_current_span(true).with_span_list(false).try_init() } else { builder.try_init() };
}

/// Sends error events to Sentry when a DSN is configured.
#[derive(Clone)]
pub struct Reporter {
    dsn: Option<Dsn>,
    http: reqwest::Client,
    environment: String,
}

impl Reporter {
    pub fn new(dsn: Option<&str>) -> Self {
        let dsn = dsn.and_then(|d| {
            let parsed = Dsn::parse(d);
            if parsed.is_none() {
                tracing::warn!("TRANS_SENTRY_DSN is not a valid DSN; errors will only be logged");
            }
            parsed
        });
        let environment = std::env::var("ENVIRONMENT").unwrap_or_else(|_| "production".into());
        Self { dsn, http: reqwest::Client::new(), environment }
    }

    /// Reports `message` (about `job`); failures to report are only logged.
    pub async fn report(&self, job: &str, message: &str) {
        let Some(dsn) = &self.dsn else { return };
        let mut id = [0u8; 16];
        let _ = getrandom::getrandom(&mut id);
        let now = Timestamp::from_millis(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0));
        let url = format!("job:{job}");
        let body = envelope(dsn, id, now, &Fault { service: "transcoder", environment: &self.environment, message, method: "JOB", url: &url });
        let sent = self
            .http
            .post(dsn.envelope_url())
            .header("content-type", "application/x-sentry-envelope")
            .header("x-sentry-auth", dsn.auth_header())
            .body(body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = r.status().as_u16(), "sentry refused the event"),
            Err(e) => tracing::warn!(error = %e, "sentry unreachable"),
        }
    }
}

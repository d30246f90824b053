//! Reporting our own faults to Sentry (`IV_SENTRY_DSN`) from a Worker: the
//! envelope comes from `media_core::sentry`, and is posted with `fetch`
//! inside `wait_until`, after the response has gone out.

pub use media_core::sentry::Fault;
use media_core::sentry::{envelope, Dsn};
use worker::{Context, Fetch, Headers, Method, Request, RequestInit};

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
        let Some(dsn) = self.dsn.as_deref().and_then(Dsn::parse) else {
            return;
        };
        let body = envelope(&dsn, crate::clock::random_bytes(), crate::clock::now(), &fault);
        ctx.wait_until(async move {
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
        });
    }
}

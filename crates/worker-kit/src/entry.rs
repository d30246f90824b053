//! The shell every Worker's fetch handler runs its routes in: the service's
//! settings, the route, a failure turned into its JSON error (logged and
//! reported to Sentry when it is our own fault), and CORS on every answer.

use std::future::Future;

use worker::{Context, Env, Request, Response};

use crate::config::ConfigError;
use crate::respond::{error_response, with_cors};
use crate::{sentry, Handled};

/// What the shell needs from a service's settings.
pub trait ServiceSettings {
    /// `CORS_ALLOWED_ORIGINS`: `*` or a comma-separated list.
    fn cors_origins(&self) -> &str;
    /// `ENVIRONMENT`, as reported to Sentry.
    fn environment(&self) -> &str;
}

/// Runs `route` with `settings` (or answers their error) and finishes the answer.
pub async fn handle<S, Fut>(
    service: &'static str,
    req: Request,
    env: &Env,
    ctx: &Context,
    settings: Result<S, ConfigError>,
    route: impl FnOnce(Request, S) -> Fut,
) -> worker::Result<Response>
where
    S: ServiceSettings,
    Fut: Future<Output = Handled>,
{
    let origin = req.headers().get("origin").ok().flatten();
    let (method, url) = (req.method().to_string(), req.url().map(|u| u.to_string()).unwrap_or_default());
    let (cors, environment) = match &settings {
        Ok(s) => (s.cors_origins().to_owned(), s.environment().to_owned()),
        Err(_) => ("*".to_owned(), "unknown".to_owned()),
    };
    let outcome = match settings {
        Ok(settings) => route(req, settings).await,
        Err(e) => Err(e.into()),
    };
    let resp = outcome.unwrap_or_else(|failure| {
        if let Some(detail) = failure.report_detail() {
            tracing::error!(method = %method, url = %url, detail, "request failed");
            sentry::report(env, ctx, sentry::Fault { service, environment: &environment, message: detail, method: &method, url: &url });
        }
        error_response(&failure.to_api_error())
    });
    Ok(with_cors(resp, &cors, origin.as_deref()))
}

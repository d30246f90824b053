//! The shell every Worker's fetch handler runs its routes in: the request's
//! context (settings read once, the store, Sentry; see [`RequestContext`]),
//! the route, a failure turned into its JSON error (logged and reported to
//! Sentry when it is our own fault), and CORS on every answer browsers may
//! read (none on the server-only routes); and what every service's routes
//! share around it: the guard of the API-key routes, `/openapi.json` and
//! `/health`.

use media_core::http::auth::KeyGrant;
use worker::{Context, Env, Request, Response};

use crate::config::{ConfigError, Vars};
use crate::context::RequestContext;
use crate::cors::{with_cors, without_cors};
use crate::failure::{Failure, Handled};
use crate::reply::{error_response, json};
use crate::sentry::{Fault, Reporter};
use crate::{ratelimit, settings};

/// The routes browsers must never call: the API-key routes (exact paths)
/// and the internal API (path prefixes). Their answers, preflights included,
/// carry no CORS headers, so a browser can neither send them a key nor read
/// what they say.
#[derive(Debug, Clone, Copy)]
pub struct ServerOnly {
    pub paths: &'static [&'static str],
    pub prefixes: &'static [&'static str],
}

impl ServerOnly {
    pub fn covers(&self, path: &str) -> bool {
        self.paths.contains(&path) || self.prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// Builds the request's context (the service's settings from
/// `load_settings`), runs `route` with it (or answers the settings error)
/// and finishes the answer.
pub async fn handle<S>(
    service: &'static str,
    server_only: ServerOnly,
    req: Request,
    env: &Env,
    execution: &Context,
    load_settings: impl FnOnce(&Vars<'_>) -> Result<S, ConfigError>,
    route: impl AsyncFnOnce(Request, &RequestContext<'_, S>) -> Handled,
) -> worker::Result<Response> {
    crate::logging::first_request(service);
    let origin = req.headers().get("origin").ok().flatten();
    let browsers_may_read = !server_only.covers(&req.path());
    let (method, url) = (req.method().to_string(), req.url().map(|u| u.to_string()).unwrap_or_default());
    // First, so that broken settings are reported too.
    let sentry = Reporter::new(settings::sentry_dsn(&Vars(env)));
    let loaded = RequestContext::load(service, env, execution, sentry.clone(), load_settings);
    let (outcome, cors, environment) = match &loaded {
        Ok(cx) => (route(req, cx).await, cx.common.cors_origins.as_str(), cx.common.environment.as_str()),
        Err(e) => (Err(Failure::from(e.clone())), "*", "unknown"),
    };
    let resp = outcome.unwrap_or_else(|failure| {
        if let Some(detail) = failure.report_detail() {
            tracing::error!(method = %method, url = %url, detail, "request failed");
            sentry.report(execution, Fault { service, environment, message: detail, method: &method, url: &url });
        }
        error_response(&failure.to_api_error())
    });
    Ok(if browsers_may_read { with_cors(resp, cors, origin.as_deref()) } else { without_cors(resp) })
}

/// The guard of every API-key route: the key, then its budget. A valid key
/// is counted against its own per-key limit and gives the [`KeyGrant`] the
/// handler must check the request's `app_id` against
/// ([`KeyGrant::check_app`], 403 `app_not_allowed`). A missing or wrong key
/// is counted against the client's address (a strict limit, so guessing
/// stops after a few tries: 429), then refused (401/403). The key itself is
/// never logged; its fingerprint is.
pub async fn guard<S>(req: &Request, cx: &RequestContext<'_, S>, route: &str) -> Result<KeyGrant, Failure> {
    let keys = &cx.common.api_keys;
    if keys.is_empty() {
        return Err(Failure::internal("IV_API_KEY is not set: no API key can be accepted"));
    }
    match keys.check(req.headers().get("x-api-key")?.as_deref()) {
        Ok(grant) => {
            ratelimit::enforce_key(cx.env, &grant, route).await?;
            Ok(grant)
        }
        Err(refused) => {
            ratelimit::enforce_failed_key(cx.env, req, route).await?;
            Err(refused.into())
        }
    }
}

/// `GET /openapi.json`: the service's OpenAPI document.
pub fn openapi(document: &'static str) -> Handled {
    let mut resp = Response::ok(document)?;
    resp.headers_mut().set("content-type", "application/json; charset=utf-8")?;
    Ok(resp)
}

/// `GET /health`: the service's name and version.
pub fn health(service: &str, version: &str) -> Handled {
    json(200, &media_core::wire::api::Health::ok(service, version))
}

//! The shell every Worker's fetch handler runs its routes in: the service's
//! settings, the route, a failure turned into its JSON error (logged and
//! reported to Sentry when it is our own fault), and CORS on every answer
//! browsers may read (none on the server-only routes); and what every
//! service's routes share around it: the method gate, the guard of the
//! API-key routes, the public base URL, `/openapi.json` and `/health`.

use std::future::Future;

use media_core::auth::{ApiKeys, KeyGrant};
use worker::{Context, Env, Method, Request, Response};

use crate::config::ConfigError;
use crate::respond::{error_response, json, method_not_allowed_response, preflight, with_cors, without_cors};
use crate::{ratelimit, sentry, Failure, Handled};

/// What the shell needs from a service's settings.
pub trait ServiceSettings {
    /// `CORS_ALLOWED_ORIGINS`: `*` or a comma-separated list.
    fn cors_origins(&self) -> &str;
    /// `ENVIRONMENT`, as reported to Sentry.
    fn environment(&self) -> &str;
    /// `IV_API_KEY`: the API keys and the apps each may use.
    fn api_keys(&self) -> &ApiKeys;
    /// `PUBLIC_BASE_URL`, when set.
    fn public_base(&self) -> Option<&str>;
}

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

/// Runs `route` with `settings` (or answers their error) and finishes the answer.
pub async fn handle<S, Fut>(
    service: &'static str,
    server_only: ServerOnly,
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
    let browsers_may_read = !server_only.covers(&req.path());
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
            sentry::report(
                env,
                ctx,
                sentry::Fault { service, environment: &environment, message: detail, method: &method, url: &url },
            );
        }
        error_response(&failure.to_api_error())
    });
    Ok(if browsers_may_read { with_cors(resp, &cors, origin.as_deref()) } else { without_cors(resp) })
}

/// `None` when `method` is one of `allowed`; otherwise the answer: a CORS
/// preflight for `OPTIONS`, 405 with `Allow` for anything else (including a
/// method the runtime has no name for, `None`).
pub fn other_method(method: Option<&Method>, allowed: &[Method]) -> Option<Handled> {
    if method.is_some_and(|m| allowed.contains(m)) {
        return None;
    }
    let list = allowed.iter().map(|m| m.as_ref()).chain(["OPTIONS"]).collect::<Vec<_>>().join(", ");
    Some(match method {
        Some(Method::Options) => preflight(&list),
        _ => Ok(method_not_allowed_response(&list)),
    })
}

/// The guard of every API-key route: the key, then its budget. A valid key
/// is counted against its own per-key limit and gives the [`KeyGrant`] the
/// handler must check the request's `app_id` against
/// ([`KeyGrant::check_app`], 403 `app_not_allowed`). A missing or wrong key
/// is counted against the client's address (a strict limit, so guessing
/// stops after a few tries: 429), then refused (401/403). The key itself is
/// never logged; its fingerprint is.
pub async fn guard(
    req: &Request,
    env: &Env,
    settings: &impl ServiceSettings,
    route: &str,
) -> Result<KeyGrant, Failure> {
    let keys = settings.api_keys();
    if keys.is_empty() {
        return Err(Failure::internal("IV_API_KEY is not set: no API key can be accepted"));
    }
    match keys.check(req.headers().get("x-api-key")?.as_deref()) {
        Ok(grant) => {
            ratelimit::enforce_key(env, &grant, route).await?;
            Ok(grant)
        }
        Err(refused) => {
            ratelimit::enforce_failed_key(env, req, route).await?;
            Err(refused.into())
        }
    }
}

/// The origin used in the URLs a service hands out: `PUBLIC_BASE_URL`, or
/// the origin the request came to.
pub fn public_base(req: &Request, settings: &impl ServiceSettings) -> String {
    settings
        .public_base()
        .map(str::to_owned)
        .unwrap_or_else(|| req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default())
}

/// `GET /openapi.json`: the service's OpenAPI document.
pub fn openapi(document: &'static str) -> Handled {
    let mut resp = Response::ok(document)?;
    resp.headers_mut().set("content-type", "application/json; charset=utf-8")?;
    Ok(resp)
}

/// `GET /health`: the service's name and version.
pub fn health(service: &str, version: &str) -> Handled {
    json(200, &media_core::api::Health::ok(service, version))
}

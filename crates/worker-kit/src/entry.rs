//! The shell every Worker's fetch handler runs its routes in: the request's
//! context (settings read once, the store, Sentry; see [`RequestContext`]),
//! the route, a failure turned into its JSON error (logged and reported to
//! Sentry when it is our own fault), and CORS on every answer browsers may
//! read (none on the server-only routes), all decided by the service's route
//! table (`media_core::wire::routes`); and what every service's routes
//! share around it: the guard of the API-key routes, `/openapi.json` and
//! `/health`.

use media_core::http::auth::KeyGrant;
use media_core::wire::routes::{find, Auth, Route};
use worker::{Context, Env, Request, Response};

use crate::config::{ConfigError, Vars};
use crate::context::RequestContext;
use crate::cors::{with_cors, without_cors};
use crate::failure::{no_route, Failure, Handled};
use crate::method::{gate, known_method};
use crate::reply::{error_response, json};
use crate::sentry::{Fault, Reporter};
use crate::{ratelimit, settings};

/// Builds the request's context (the service's settings from
/// `load_settings`), finds the request's row in the service's route
/// `table`, gates its method ([`gate`]), runs `route` with the row (or
/// answers the settings error, or 404) and finishes the answer: CORS unless
/// the row is server-only ([`Auth::is_server_only`]). A handler of an
/// [`Auth::ApiKey`] row that answers without running [`guard`] answers 500.
pub async fn handle<S, Id: Copy>(
    service: &'static str,
    table: &'static [Route<Id>],
    req: Request,
    env: &Env,
    execution: &Context,
    load_settings: impl FnOnce(&Vars<'_>) -> Result<S, ConfigError>,
    route: impl AsyncFnOnce(Request, &RequestContext<'_, S>, &'static Route<Id>) -> Handled,
) -> worker::Result<Response> {
    crate::logging::first_request(service);
    let origin = req.headers().get("origin").ok().flatten();
    let path = req.path();
    let found = find(table, &path);
    let browsers_may_read = !found.as_ref().is_some_and(|f| f.auth().is_server_only());
    let (method, url) = (req.method().to_string(), req.url().map(|u| u.to_string()).unwrap_or_default());
    // First, so that broken settings are reported too.
    let sentry = Reporter::new(settings::sentry_dsn(&Vars(env)));
    let loaded = RequestContext::load(service, env, execution, sentry.clone(), load_settings);
    let (outcome, cors, environment) = match &loaded {
        Ok(cx) => {
            let outcome = match &found {
                None => Err(no_route(&path)),
                // The transcoder's routes check their token before the method.
                Some(f) if !f.auth().gated_by_table() => route(req, cx, f.rows[0]).await,
                Some(f) => match gate(known_method(&req).as_ref(), f) {
                    Ok(row) => {
                        let outcome = route(req, cx, row).await;
                        if row.auth == Auth::ApiKey && !cx.key_checked() {
                            // The table says this route needs a key: a handler that never
                            // asked for one must not answer.
                            Err(Failure::internal(format!("{path}: an API-key route answered without the key guard")))
                        } else {
                            outcome
                        }
                    }
                    Err(answer) => answer,
                },
            };
            (outcome, cx.common.cors_origins.as_str(), cx.common.environment.as_str())
        }
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
    cx.mark_key_checked();
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

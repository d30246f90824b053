//! The shell every Worker's fetch handler runs its routes in: the request's
//! context (settings read once, the store, Sentry; see [`RequestContext`]),
//! the route, a failure turned into its JSON error (logged and reported to
//! Sentry when it is our own fault), and CORS on every answer browsers may
//! read (none on the server-only routes), all decided by the service's route
//! table (`media_core::wire::routes`); and what every service's routes
//! share around it: the guard of the API-key routes, `/openapi.json` and
//! `/health`.

use media_core::http::auth::KeyGrant;
use media_core::video::redact::url_for_logs;
use media_core::video::stream_token::STREAM_TOKEN_PARAM;
use media_core::wire::routes::{find, Route};
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
/// the row is server-only (`Auth::browsers_may_read`: on `/events`, only for
/// a request with a stream token). A handler of an `Auth::ApiKey` row that
/// answers without running [`guard`] (or, where a stream token is allowed,
/// [`guard_key_or_stream_token`]) answers 500. The URL that failures log
/// and report never shows a stream or upload token.
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
    let with_stream_token = req.url().is_ok_and(|u| u.query_pairs().any(|(k, _)| k == STREAM_TOKEN_PARAM));
    let browsers_may_read = found.as_ref().is_none_or(|f| f.auth().browsers_may_read(with_stream_token));
    let method = req.method().to_string();
    let url = req.url().map(|u| url_for_logs(u.as_str()).into_owned()).unwrap_or_default();
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
                        if row.auth.needs_guard() && !cx.key_checked() {
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

/// What let a request into a route that takes the API key or a stream token.
#[derive(Debug)]
pub enum Admitted<T> {
    /// The `x-api-key` header, through [`guard`] (the handler checks its app).
    Key(KeyGrant),
    /// A stream token, with what `verify` made of it.
    StreamToken(T),
}

/// The guard of `Auth::ApiKeyOrStreamToken` routes. A request with
/// `?stream_token=` is a browser's: its token is what `verify` makes of it
/// (claims, or the refusal to answer), counted as a public read against the
/// client's address, and a refused one also as a wrong key is (so guessing
/// stops). Any other request goes through [`guard`].
pub async fn guard_key_or_stream_token<S, T>(
    req: &Request,
    cx: &RequestContext<'_, S>,
    route: &str,
    verify: impl FnOnce(&str) -> Result<T, Failure>,
) -> Result<Admitted<T>, Failure> {
    let token = req.url()?.query_pairs().find(|(k, _)| k == STREAM_TOKEN_PARAM).map(|(_, v)| v.into_owned());
    let Some(token) = token else { return guard(req, cx, route).await.map(Admitted::Key) };
    cx.mark_key_checked();
    ratelimit::enforce_public(cx.env, req, route).await?;
    match verify(&token) {
        Ok(claims) => Ok(Admitted::StreamToken(claims)),
        Err(refused) => {
            if matches!(&refused, Failure::Client(e) if e.status() < 500) {
                ratelimit::enforce_failed_key(cx.env, req, route).await?;
            }
            Err(refused)
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

//! How handlers answer: the one error type they return ([`Failure`]), its
//! conversion to a JSON response in one place, CORS headers (and their
//! removal on routes browsers must not call), preflights, and reading
//! request bodies (streamed, with a cap) and queries safely.
//!
//! Client errors carry the message of the rule that refused them. Our own
//! faults are logged and sent to Sentry with their detail, while the client
//! gets a generic message: internals never leak.

use futures_util::StreamExt;
use media_core::http::{cors_allow_origin, cors_varies_by_origin, CORS_ALLOW_HEADERS, CORS_EXPOSE};
use media_core::sigv4::SigningError;
use media_core::{ApiError, ErrorCode};
use serde::Serialize;
use worker::{Headers, Method, Request, Response};

use crate::config::ConfigError;
use crate::store::StoreError;

/// Why a handler did not produce its normal answer.
#[derive(Debug)]
pub enum Failure {
    /// The client must change something; the message says what.
    Client(ApiError),
    /// Our fault. `detail` goes to logs and Sentry only.
    Internal { detail: String },
    /// A dependency (storage, KV, the job queue) failed. `detail` goes to logs and Sentry only.
    Unavailable { detail: String },
}

/// What every handler returns.
pub type Handled = Result<Response, Failure>;

impl Failure {
    pub fn internal(detail: impl Into<String>) -> Self {
        Failure::Internal { detail: detail.into() }
    }

    /// The error as the client sees it.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Failure::Client(e) => e.clone(),
            Failure::Internal { .. } => ApiError::internal(),
            Failure::Unavailable { .. } => ApiError::new(
                ErrorCode::Unavailable,
                "a storage or queue service did not answer; please retry in a few seconds",
            ),
        }
    }

    /// The detail to report, for our own faults.
    pub fn report_detail(&self) -> Option<&str> {
        match self {
            Failure::Client(_) => None,
            Failure::Internal { detail } | Failure::Unavailable { detail } => Some(detail),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Client(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Internal { detail: format!("runtime error: {e}") }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Internal { detail: format!("configuration: {e}") }
    }
}

impl From<SigningError> for Failure {
    fn from(e: SigningError) -> Self {
        Failure::Internal { detail: e.to_string() }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Unavailable { detail: format!("storage: {e}") }
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, body: &T) -> Handled {
    let text = serde_json::to_string(body).map_err(|e| Failure::internal(format!("serializing a response: {e}")))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}

/// The JSON error response for `e` (with `Retry-After` when rate limited or unavailable).
pub fn error_response(e: &ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    match e.code {
        ErrorCode::RateLimited => {
            let _ = headers.set("retry-after", "60");
        }
        ErrorCode::Unavailable => {
            let _ = headers.set("retry-after", "5");
        }
        _ => {}
    }
    Response::ok(e.to_json())
        .map(|r| r.with_status(e.status()).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().expect("an empty response can always be built").with_status(e.status()))
}

/// Adds CORS headers for a request from `origin` to `resp`. With an
/// allow-list (`CORS_ALLOWED_ORIGINS` not `*`) the answer depends on the
/// `Origin` header, so it always says `Vary: Origin`, also when the origin is
/// absent or not on the list; otherwise a cache could hand one origin's
/// answer (or the answer without CORS) to another.
pub fn with_cors(mut resp: Response, allowed_origins: &str, origin: Option<&str>) -> Response {
    let h = resp.headers_mut();
    if cors_varies_by_origin(allowed_origins) {
        let _ = h.append("vary", "Origin");
    }
    if let Some(allow) = cors_allow_origin(allowed_origins, origin) {
        let _ = h.set("access-control-allow-origin", &allow);
        let _ = h.set("access-control-expose-headers", CORS_EXPOSE);
    }
    resp
}

/// Removes every CORS header from `resp`: the answers of routes browsers
/// must never call (the API-key and internal routes), including their
/// preflights, which then grant nothing.
pub fn without_cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let names: Vec<String> = h.keys().filter(|k| k.to_ascii_lowercase().starts_with("access-control-")).collect();
    for name in names {
        let _ = h.delete(&name);
    }
    resp
}

/// Answers a browser's CORS preflight for a route that takes `methods`.
pub fn preflight(methods: &str) -> Handled {
    let headers = Headers::new();
    headers.set("allow", methods)?;
    headers.set("access-control-allow-methods", methods)?;
    headers.set("access-control-allow-headers", CORS_ALLOW_HEADERS)?;
    headers.set("access-control-max-age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// Reads the body, refusing more than `max` bytes with 413: by the declared
/// `Content-Length` before anything is read, and otherwise (a chunked body,
/// or one whose length is not declared) chunk by chunk as it arrives, so
/// that reading stops, and the rest of the upload is cancelled, as soon as
/// the cap is passed. A body that ends short of its declared length (the
/// client went away) is refused too, rather than taken for the whole.
pub async fn read_body(req: &mut Request, max: u64) -> Result<Vec<u8>, Failure> {
    let too_large = |what: String| {
        Failure::Client(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is {what} bytes; this route takes at most {max} bytes"),
        ))
    };
    let unreadable = |e: worker::Error| {
        Failure::Client(ApiError::new(ErrorCode::InvalidJson, format!("the request body could not be read: {e}")))
    };
    let declared = req.headers().get("content-length")?.and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared {
        if declared > max {
            return Err(too_large(declared.to_string()));
        }
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    // `declared` is at most `max` here, so this never reserves more than the cap.
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut chunks = req.stream().map_err(unreadable)?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if (body.len() + chunk.len()) as u64 > max {
            // Dropping the stream cancels it: nothing more is read.
            return Err(too_large(format!("more than {max}")));
        }
        body.extend_from_slice(&chunk);
    }
    if let Some(declared) = declared {
        if (body.len() as u64) < declared {
            return Err(Failure::Client(ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body ended after {} of its {declared} bytes; send it again", body.len()),
            )));
        }
    }
    Ok(body)
}

/// The decoded query parameters of a request.
pub fn query(req: &Request) -> Result<Vec<(String, String)>, Failure> {
    Ok(req.url()?.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

/// The client's IP as Cloudflare reports it (`CF-Connecting-IP`); locally,
/// where there is no such header, every client shares one bucket.
pub fn client_ip(req: &Request) -> String {
    req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_else(|| "local".into())
}

/// 405 naming the methods the route takes.
pub fn method_not_allowed(allowed: &str) -> Failure {
    Failure::Client(ApiError::new(ErrorCode::MethodNotAllowed, format!("this route takes {allowed}")))
}

/// The request's method, or `None` for a method `worker::Method` has no name
/// for (`QUERY`, `PROPFIND`, ...), which `Request::method()` reports as
/// `GET`: routes that must answer those with 405 ask here instead.
pub fn known_method(req: &Request) -> Option<Method> {
    let raw = req.inner().method();
    let method = Method::from(raw.clone());
    method.as_ref().eq_ignore_ascii_case(&raw).then_some(method)
}

/// The whole 405 response: the JSON error of [`method_not_allowed`] plus the
/// `Allow` header RFC 9110 requires, listing `allowed` (e.g. `GET, HEAD`).
pub fn method_not_allowed_response(allowed: &str) -> Response {
    let mut resp = error_response(&method_not_allowed(allowed).to_api_error());
    let _ = resp.headers_mut().set("allow", allowed);
    resp
}

/// 404 for a path no route serves.
pub fn no_route(path: &str) -> Failure {
    Failure::Client(ApiError::not_found(format!(
        "no route for {path}; see /openapi.json for the routes of this service"
    )))
}

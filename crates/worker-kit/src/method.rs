//! The method gate every route passes: the request's method as the client
//! sent it ([`known_method`]), and the answer to any other one
//! ([`other_method`]: a CORS preflight for `OPTIONS`, 405 with `Allow`
//! otherwise).

use media_core::{ApiError, ErrorCode};
use worker::{Method, Request, Response};

use crate::cors::preflight;
use crate::failure::{Failure, Handled};
use crate::reply::error_response;

/// The request's method, or `None` for a method `worker::Method` has no name
/// for (`QUERY`, `PROPFIND`, ...), which `Request::method()` reports as
/// `GET`: routes that must answer those with 405 ask here instead.
pub fn known_method(req: &Request) -> Option<Method> {
    let raw = req.inner().method();
    let method = Method::from(raw.clone());
    method.as_ref().eq_ignore_ascii_case(&raw).then_some(method)
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

/// 405 naming the methods the route takes.
pub fn method_not_allowed(allowed: &str) -> Failure {
    Failure::Client(ApiError::new(ErrorCode::MethodNotAllowed, format!("this route takes {allowed}")))
}

/// The whole 405 response: the JSON error of [`method_not_allowed`] plus the
/// `Allow` header RFC 9110 requires, listing `allowed` (e.g. `GET, HEAD`).
pub fn method_not_allowed_response(allowed: &str) -> Response {
    let mut resp = error_response(&method_not_allowed(allowed).to_api_error());
    let _ = resp.headers_mut().set("allow", allowed);
    resp
}

//! The method gate every route passes: the request's method as the client
//! sent it ([`known_method`]), and the answer to a method the route table
//! does not list for the path ([`gate`]: a CORS preflight for `OPTIONS`,
//! 405 with `Allow` otherwise).

use media_core::wire::routes::{Found, Method as RouteMethod, Route};
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

/// The row of `found` whose handler takes the request's `method`, else the
/// answer: a CORS preflight for `OPTIONS`, 405 with `Allow` (the path's
/// methods, from the route table) for anything else, including a method the
/// runtime has no name for (`None`).
pub fn gate<Id: Copy>(method: Option<&Method>, found: &Found<Id>) -> Result<&'static Route<Id>, Handled> {
    if let Some(row) = method.and_then(table_method).and_then(|m| found.row_for(m)) {
        return Ok(row);
    }
    let list = found.methods().iter().map(|m| m.as_str()).chain(["OPTIONS"]).collect::<Vec<_>>().join(", ");
    Err(match method {
        Some(Method::Options) => preflight(&list),
        _ => Ok(method_not_allowed_response(&list)),
    })
}

/// `None` when `method` is one of `allowed`; otherwise the 405 naming them,
/// `OPTIONS` included (for routes browsers never call: no preflight).
pub fn strict_gate(method: Option<&Method>, allowed: &[RouteMethod]) -> Option<Response> {
    if method.and_then(table_method).is_some_and(|m| allowed.contains(&m)) {
        return None;
    }
    Some(method_not_allowed_response(&allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")))
}

/// The route table's name for a method, if the table has one.
fn table_method(method: &Method) -> Option<RouteMethod> {
    [RouteMethod::Get, RouteMethod::Head, RouteMethod::Post, RouteMethod::Delete]
        .into_iter()
        .find(|m| m.as_str() == method.as_ref())
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

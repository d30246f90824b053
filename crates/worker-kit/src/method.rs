//! The method gate every route passes: the request's method as the client
//! sent it ([`known_method`]), and the answer to a method the route table
//! does not list for the path ([`gate`]: a CORS preflight for `OPTIONS`,
//! 405 with `Allow` otherwise).

use media_core::wire::routes::{Auth, Found, Method as RouteMethod, Route};
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
    match decide(method, found) {
        Decision::Row(row) => Ok(row),
        Decision::Preflight(list) => Err(preflight(&list, found.auth() == Auth::UploadToken)),
        Decision::NotAllowed(list) => Err(Ok(method_not_allowed_response(&list))),
    }
}

/// What [`gate`] does with a request's method, as plain data.
#[derive(Debug, PartialEq)]
pub enum Decision<Id: 'static> {
    /// The handler of this row takes it.
    Row(&'static Route<Id>),
    /// `OPTIONS`: a CORS preflight offering these methods.
    Preflight(String),
    /// 405 with this `Allow`.
    NotAllowed(String),
}

/// The decision of [`gate`]: the path's methods (in table order) and
/// `OPTIONS` are what `Allow` and a preflight offer.
pub fn decide<Id: Copy>(method: Option<&Method>, found: &Found<Id>) -> Decision<Id> {
    if let Some(row) = method.and_then(table_method).and_then(|m| found.row_for(m)) {
        return Decision::Row(row);
    }
    let list = found.methods().iter().map(|m| m.as_str()).chain(["OPTIONS"]).collect::<Vec<_>>().join(", ");
    match method {
        Some(Method::Options) => Decision::Preflight(list),
        _ => Decision::NotAllowed(list),
    }
}

/// `None` when `method` is one of `allowed`; otherwise the 405 naming them
/// (for routes browsers never call: no `OPTIONS` offered, no preflight).
pub fn strict_gate(method: Option<&Method>, allowed: &[RouteMethod]) -> Option<Response> {
    strict_allow(method, allowed).map(|list| method_not_allowed_response(&list))
}

/// The `Allow` of [`strict_gate`]'s 405, or `None` when `method` is allowed.
fn strict_allow(method: Option<&Method>, allowed: &[RouteMethod]) -> Option<String> {
    if method.and_then(table_method).is_some_and(|m| allowed.contains(&m)) {
        return None;
    }
    Some(allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
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

#[cfg(test)]
mod tests {
    use media_core::wire::routes::{find, ImageRoute, VideoRoute, IMAGE_ROUTES, VIDEO_ROUTES};

    use super::*;

    fn id<Id: Copy>(d: Decision<Id>) -> Option<Id> {
        match d {
            Decision::Row(row) => Some(row.id),
            _ => None,
        }
    }

    #[test]
    fn a_path_takes_its_rows_methods_and_names_them_otherwise() {
        let images = find(IMAGE_ROUTES, "/images").unwrap();
        assert_eq!(id(decide(Some(&Method::Get), &images)), Some(ImageRoute::Metadata));
        assert_eq!(id(decide(Some(&Method::Delete), &images)), Some(ImageRoute::Delete));
        assert_eq!(decide(Some(&Method::Post), &images), Decision::NotAllowed("GET, DELETE, OPTIONS".into()));
        assert_eq!(decide(Some(&Method::Options), &images), Decision::Preflight("GET, DELETE, OPTIONS".into()));
        // A method the runtime has no name for (PROPFIND, QUERY...) is a 405 too.
        assert_eq!(decide(None, &images), Decision::NotAllowed("GET, DELETE, OPTIONS".into()));

        let hls = find(VIDEO_ROUTES, "/hls/a/v/o/master.m3u8").unwrap();
        assert_eq!(id(decide(Some(&Method::Head), &hls)), Some(VideoRoute::Hls));
        assert_eq!(decide(Some(&Method::Put), &hls), Decision::NotAllowed("GET, HEAD, OPTIONS".into()));
        let status = find(VIDEO_ROUTES, "/job-status").unwrap();
        assert_eq!(decide(Some(&Method::Head), &status), Decision::NotAllowed("GET, OPTIONS".into()));
        let upload = find(VIDEO_ROUTES, "/uploads/t/s3/multipart/u").unwrap();
        assert_eq!(decide(Some(&Method::Post), &upload), Decision::NotAllowed("GET, DELETE, OPTIONS".into()));
    }

    #[test]
    fn the_transcoders_routes_offer_only_their_methods() {
        let internal = find(VIDEO_ROUTES, "/internal/jobs/lease").unwrap();
        assert!(!internal.auth().gated_by_table());
        let methods = internal.rows[0].methods;
        assert_eq!(strict_allow(Some(&Method::Post), methods), None);
        assert_eq!(strict_allow(Some(&Method::Options), methods).as_deref(), Some("POST"));
        assert_eq!(strict_allow(None, methods).as_deref(), Some("POST"));
    }
}

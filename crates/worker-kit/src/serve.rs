//! Streaming a stored object to a client: the one implementation behind
//! `/assets/*` (images) and the HLS playback route (videos). Conditional
//! requests (`If-None-Match` → 304), byte ranges (`Range` → 206/416),
//! `HEAD`, the caller's content type and caching, and `nosniff`.

use media_core::http::{if_none_match, parse_range, RangeRequest};
use media_core::{ApiError, ErrorCode};
use worker::{Headers, Method, Request, Response};

use crate::respond::{Failure, Handled};
use crate::store::{ObjectInfo, ObjectStore};

/// How to present one object.
pub struct Presentation<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
}

/// Answers a `GET` or `HEAD` for the object at `key`, or 404 (JSON) when
/// there is none. `what` names the thing in the 404 message.
pub async fn serve_object<S: ObjectStore>(store: &S, key: &str, req: &Request, how: Presentation<'_>, what: &str) -> Handled {
    serve_object_as(store, key, req, how.cache_control, |_| how.content_type.to_owned(), what).await
}

/// [`serve_object`] for objects whose content type depends on what storage
/// recorded of them: `content_type` picks it from the object's info (for
/// example the stored type when it is an accepted one, a safe default
/// otherwise).
pub async fn serve_object_as<S, F>(store: &S, key: &str, req: &Request, cache_control: &str, content_type: F, what: &str) -> Handled
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let head_only = req.method() == Method::Head;
    let info = store
        .head(key)
        .await?
        .ok_or_else(|| Failure::Client(ApiError::not_found(format!("{what} does not exist"))))?;

    let headers = Headers::new();
    headers.set("content-type", &content_type(&info))?;
    headers.set("cache-control", cache_control)?;
    headers.set("etag", &info.etag)?;
    headers.set("accept-ranges", "bytes")?;
    headers.set("x-content-type-options", "nosniff")?;

    if if_none_match(req.headers().get("if-none-match")?.as_deref(), &info.etag) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    let range = match parse_range(req.headers().get("range")?.as_deref(), info.size) {
        RangeRequest::Full => None,
        RangeRequest::Partial(r) => Some(r),
        RangeRequest::Unsatisfiable => {
            let e = ApiError::new(ErrorCode::RangeNotSatisfiable, format!("the requested range is outside the object ({} bytes)", info.size));
            let mut resp = crate::respond::error_response(&e);
            resp.headers_mut().set("content-range", &format!("bytes */{}", info.size))?;
            return Ok(resp);
        }
    };
    let (status, length) = match range {
        Some(r) => {
            headers.set("content-range", &r.content_range(info.size))?;
            (206, r.len())
        }
        None => (200, info.size),
    };
    headers.set("content-length", &length.to_string())?;
    if head_only {
        return Ok(Response::empty()?.with_status(status).with_headers(headers));
    }
    let object = store
        .get(key, range)
        .await?
        .ok_or_else(|| Failure::Client(ApiError::not_found(format!("{what} does not exist"))))?;
    Ok(Response::from_body(object.body)?.with_status(status).with_headers(headers))
}

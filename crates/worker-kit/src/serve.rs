//! Streaming a stored object to a client: the one implementation behind
//! `/assets/*` (images) and the HLS playback route (videos). Conditional
//! requests (`If-None-Match` → 304), byte ranges (`Range` → 206/416),
//! `HEAD`, the caller's content type and caching, and `nosniff`.
//!
//! A `GET` is one storage operation: a conditional, ranged read
//! ([`ObjectStore::read`]) that brings the metadata with the bytes, so they
//! come from the same version even while a playlist is being rewritten. A
//! `HEAD` is one `HEAD`. Full answers the caller marks cacheable are kept in
//! the edge cache (the Cache API) for as long as their `Cache-Control`
//! says, and later requests, ranges and revalidations included, are
//! answered from there with no storage operation. Every answer says what it
//! cost: `Server-Timing: cache;desc="hit|miss", storage;desc="ops=N"`.

use media_core::http::{if_none_match, parse_range, single_etag_condition, RangeRequest, RangeSpec};
use media_core::{ApiError, ErrorCode};
use worker::{Cache, Context, Headers, Method, Request, RequestInit, Response};

use crate::failure::{error_response, Failure, Handled};
use crate::store::{ObjectInfo, ObjectStore, ReadOutcome, ReadRequest};

/// How to serve one object.
pub struct ServeSpec<'a> {
    pub key: &'a str,
    /// Names the object in the 404 message ("this image").
    pub what: &'a str,
    pub cache_control: &'a str,
    /// Serve only this version (bare entity tag); any other is answered 404.
    pub pinned_etag: Option<String>,
    /// The object's size when the caller knows it (a metadata record): lets
    /// a 416 from R2, whose refusal does not say the size, name it.
    pub known_size: Option<u64>,
    /// Keep full answers at the edge: the Cache API key (a URL), and the
    /// context whose `wait_until` stores them after the answer has left.
    pub edge_cache: Option<(String, &'a Context)>,
}

/// The `Server-Timing` value of an answer: whether the edge cache had it,
/// and how many storage operations it took.
fn timing(hit: bool, ops: u32) -> String {
    format!("cache;desc=\"{}\", storage;desc=\"ops={ops}\"", if hit { "hit" } else { "miss" })
}

fn not_found(what: &str) -> Failure {
    Failure::Client(ApiError::not_found(format!("{what} does not exist")))
}

fn object_headers(content_type: Option<&str>, cache_control: &str, etag: &str) -> worker::Result<Headers> {
    let headers = Headers::new();
    if let Some(ct) = content_type {
        headers.set("content-type", ct)?;
    }
    headers.set("cache-control", cache_control)?;
    headers.set("etag", etag)?;
    headers.set("accept-ranges", "bytes")?;
    headers.set("x-content-type-options", "nosniff")?;
    Ok(headers)
}

/// 416, with `Content-Range: bytes */{size}` when the size is known (RFC 9110
/// says SHOULD: where storage did not say it, asking again would double the
/// cost of every bad range, so the header is left out).
fn unsatisfiable(size: Option<u64>) -> Handled {
    let message = match size {
        Some(size) => format!("the requested range is outside the object ({size} bytes)"),
        None => "the requested range starts past the end of the object".to_owned(),
    };
    let mut resp = error_response(&ApiError::new(ErrorCode::RangeNotSatisfiable, message));
    if let Some(size) = size {
        resp.headers_mut().set("content-range", &format!("bytes */{size}"))?;
    }
    Ok(resp)
}

/// The edge cache's answer to `req` for the object kept under `key`, with
/// the request's `Range` and `If-None-Match` (which the Cache API honours:
/// 206, 304). Headers are copied onto a new response, since the cache's
/// own cannot be changed.
pub async fn from_edge_cache(key: &str, req: &Request) -> worker::Result<Option<Response>> {
    let headers = Headers::new();
    // Only a range this service honours, in its plain form: anything else is
    // answered with the whole object, as from storage (a cache would refuse it).
    if let Some(range) = RangeSpec::parse(req.headers().get("range")?.as_deref()) {
        headers.set("range", &range.header_value())?;
    }
    if let Some(v) = req.headers().get("if-none-match")? {
        headers.set("if-none-match", &v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let lookup = Request::new_with_init(key, &init)?;
    let Some(cached) = Cache::default().get(&lookup, false).await? else {
        return Ok(None);
    };
    let mut status = cached.status_code();
    if status == 416 {
        // The cache's own 416 has no body: answer with ours (the size is in its Content-Range).
        let size = cached
            .headers()
            .get("content-range")?
            .and_then(|cr| cr.rsplit_once('/').and_then(|(_, t)| t.trim().parse().ok()));
        return unsatisfiable(size).map(Some).map_err(|f| worker::Error::RustError(format!("{f:?}")));
    }
    let copied = Headers::new();
    for (k, v) in cached.headers().entries() {
        copied.append(&k, &v)?;
    }
    // A list of tags or `*`, which a cache may not evaluate: matched here too.
    let etag = copied.get("etag")?.unwrap_or_default();
    if status == 200 && if_none_match(req.headers().get("if-none-match")?.as_deref(), &etag) {
        status = 304;
    }
    let (_, body) = cached.into_parts();
    let resp =
        if req.method() == Method::Head || status == 304 { Response::empty()? } else { Response::from_body(body)? };
    Ok(Some(resp.with_status(status).with_headers(copied)))
}

/// Answers a `GET` or `HEAD` for the object `spec.key`, or 404 (JSON) when
/// there is none. `content_type` picks the type from what storage recorded
/// of the object (for example the stored type when it is an accepted one, a
/// safe default otherwise).
pub async fn serve_object<S, F>(store: &S, req: &Request, spec: ServeSpec<'_>, content_type: F) -> Handled
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let head_only = req.method() == Method::Head;
    if let Some((key, _)) = &spec.edge_cache {
        match from_edge_cache(key, req).await {
            Ok(Some(mut hit)) => {
                hit.headers_mut().append("server-timing", &timing(true, 0))?;
                return Ok(hit);
            }
            Ok(None) => {}
            // The cache is an optimisation: storage still answers.
            Err(e) => tracing::warn!(key, error = %e, "edge cache lookup failed"),
        }
    }
    let before = store.operations();
    let mut resp = if head_only {
        head(store, req, &spec, content_type).await?
    } else {
        get(store, req, &spec, content_type).await?
    };
    resp.headers_mut().append("server-timing", &timing(false, store.operations() - before))?;
    Ok(resp)
}

/// `HEAD`: one `HEAD` of the object, the rest decided here.
async fn head<S, F>(store: &S, req: &Request, spec: &ServeSpec<'_>, content_type: F) -> Handled
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let info = store.head(spec.key).await?.ok_or_else(|| not_found(spec.what))?;
    if spec.pinned_etag.as_deref().is_some_and(|pin| single_etag_condition(Some(&info.etag)).as_deref() != Some(pin)) {
        return Err(not_found(spec.what));
    }
    let headers = object_headers(Some(&content_type(&info)), spec.cache_control, &info.etag)?;
    if if_none_match(req.headers().get("if-none-match")?.as_deref(), &info.etag) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    let (status, length) = match parse_range(req.headers().get("range")?.as_deref(), info.size) {
        RangeRequest::Full => (200, info.size),
        RangeRequest::Partial(r) => {
            headers.set("content-range", &r.content_range(info.size))?;
            (206, r.len())
        }
        RangeRequest::Unsatisfiable => return unsatisfiable(Some(info.size)),
    };
    headers.set("content-length", &length.to_string())?;
    Ok(Response::empty()?.with_status(status).with_headers(headers))
}

/// `GET`: one conditional, ranged read.
async fn get<S, F>(store: &S, req: &Request, spec: &ServeSpec<'_>, content_type: F) -> Handled
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let client_if_none_match = req.headers().get("if-none-match")?;
    let read = ReadRequest {
        if_none_match: single_etag_condition(client_if_none_match.as_deref()),
        if_match: spec.pinned_etag.clone(),
        range: RangeSpec::parse(req.headers().get("range")?.as_deref()),
    };
    let outcome = store.read(spec.key, &read).await?.ok_or_else(|| not_found(spec.what))?;
    let (info, range, body) = match outcome {
        ReadOutcome::NotModified { etag } => {
            let headers = object_headers(None, spec.cache_control, &etag)?;
            return Ok(Response::empty()?.with_status(304).with_headers(headers));
        }
        ReadOutcome::PreconditionFailed => return Err(not_found(spec.what)),
        ReadOutcome::RangeNotSatisfiable { size } => return unsatisfiable(size.or(spec.known_size)),
        ReadOutcome::Body { info, range, body } => (info, range, body),
    };
    let headers = object_headers(Some(&content_type(&info)), spec.cache_control, &info.etag)?;
    // A list of tags, or `*`: matched here (the read could take only one).
    if if_none_match(client_if_none_match.as_deref(), &info.etag) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    let (status, length) = match range {
        Some(r) => {
            headers.set("content-range", &r.content_range(info.size))?;
            (206, r.len())
        }
        None => (200, info.size),
    };
    headers.set("content-length", &length.to_string())?;
    let mut resp = Response::from_body(body)?.with_status(status).with_headers(headers);
    if let (Some((key, ctx)), 200) = (&spec.edge_cache, status) {
        let copy = resp.cloned()?;
        let key = key.clone();
        ctx.wait_until(async move {
            if let Err(e) = Cache::default().put(key.as_str(), copy).await {
                tracing::warn!(key, error = %e, "keeping the object at the edge failed");
            }
        });
    }
    Ok(resp)
}

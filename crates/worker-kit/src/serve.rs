//! Serving a stored object to a client: the one implementation behind
//! `/assets/*` (images) and the HLS playback route (videos). Conditional
//! requests (`If-None-Match` → 304), byte ranges (`Range` → 206/416),
//! `HEAD`, the caller's content type and caching, and `nosniff`.
//!
//! The rules are [`answer`]: plain data in ([`ObjectRequest`], any
//! [`ObjectStore`]), a [`Reply`] out, tested natively against the in-memory
//! store. [`serve_object`] is the runtime around them: the request's
//! headers, the `worker::Response`, keeping full answers at the edge.
//! [`edge_hit`] answers from the edge cache; each caller looks there once,
//! after whatever checks must precede it (an image's vetting record is
//! skipped on a hit; a playback file's current job is not).
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

use crate::failure::{Failure, Handled};
use crate::reply::{error_reply, Reply};
use crate::store::{ObjectInfo, ObjectStore, ReadOutcome, ReadRequest};

/// What a client's `GET` or `HEAD` asks of an object: the parts of its
/// request that serving reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRequest {
    /// A `HEAD`: headers only.
    pub head_only: bool,
    /// The `Range` header, as sent.
    pub range: Option<String>,
    /// The `If-None-Match` header, as sent.
    pub if_none_match: Option<String>,
}

impl ObjectRequest {
    /// What `req` asks.
    pub fn of(req: &Request) -> worker::Result<Self> {
        Ok(ObjectRequest {
            head_only: req.method() == Method::Head,
            range: req.headers().get("range")?,
            if_none_match: req.headers().get("if-none-match")?,
        })
    }
}

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
    /// Keep full answers at the edge ([`answer`] does not read it).
    pub edge_cache: Option<EdgeCache<'a>>,
}

/// Where and how a full answer is kept at the edge.
pub struct EdgeCache<'a> {
    /// The Cache API key (a URL).
    pub key: String,
    /// The context whose `wait_until` stores the answer after it has left.
    pub ctx: &'a Context,
    /// The `Cache-Tag` of the copy kept (`media_core::http::purge`), so that
    /// a delete's purge by tag drops it at every location. Only the copy
    /// carries it: it is never sent to a client ([`edge_hit`] removes it).
    pub tags: Vec<String>,
}

/// The `Server-Timing` value of an answer: whether the edge cache had it,
/// and how many storage operations it took.
pub fn server_timing(hit: bool, ops: u32) -> String {
    format!("cache;desc=\"{}\", storage;desc=\"ops={ops}\"", if hit { "hit" } else { "miss" })
}

fn not_found(what: &str) -> Failure {
    Failure::Client(ApiError::not_found(format!("{what} does not exist")))
}

/// An answer about the object, with its headers and no body yet.
fn object_reply(status: u16, content_type: Option<&str>, cache_control: &str, etag: &str) -> Reply {
    let mut reply = Reply::empty(status);
    if let Some(ct) = content_type {
        reply.set("content-type", ct);
    }
    reply.set("cache-control", cache_control);
    reply.set("etag", etag);
    reply.set("accept-ranges", "bytes");
    reply.set("x-content-type-options", "nosniff");
    reply
}

/// 416, with `Content-Range: bytes */{size}` when the size is known (RFC 9110
/// says SHOULD: where storage did not say it, asking again would double the
/// cost of every bad range, so the header is left out).
fn unsatisfiable(size: Option<u64>) -> Reply {
    let message = match size {
        Some(size) => format!("the requested range is outside the object ({size} bytes)"),
        None => "the requested range starts past the end of the object".to_owned(),
    };
    let mut reply = error_reply(&ApiError::new(ErrorCode::RangeNotSatisfiable, message));
    if let Some(size) = size {
        reply.set("content-range", format!("bytes */{size}"));
    }
    reply
}

/// The answer to `asked` for the object `spec.key`, from `store`: 200, 206,
/// 304 or 416, or a 404 failure when there is no such object (or not the
/// pinned version), or the store's failure. `content_type` picks the type
/// from what storage recorded of the object (for example the stored type
/// when it is an accepted one, a safe default otherwise).
pub async fn answer<S, F>(
    store: &S,
    asked: &ObjectRequest,
    spec: &ServeSpec<'_>,
    content_type: F,
) -> Result<Reply, Failure>
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    if asked.head_only {
        head(store, asked, spec, content_type).await
    } else {
        get(store, asked, spec, content_type).await
    }
}

/// `HEAD`: one `HEAD` of the object, the rest decided here.
async fn head<S, F>(store: &S, asked: &ObjectRequest, spec: &ServeSpec<'_>, content_type: F) -> Result<Reply, Failure>
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let info = store.head(spec.key).await?.ok_or_else(|| not_found(spec.what))?;
    if spec.pinned_etag.as_deref().is_some_and(|pin| single_etag_condition(Some(&info.etag)).as_deref() != Some(pin)) {
        return Err(not_found(spec.what));
    }
    let mut reply = object_reply(200, Some(&content_type(&info)), spec.cache_control, &info.etag);
    if if_none_match(asked.if_none_match.as_deref(), &info.etag) {
        reply.status = 304;
        return Ok(reply);
    }
    let length = match parse_range(asked.range.as_deref(), info.size) {
        RangeRequest::Full => info.size,
        RangeRequest::Partial(r) => {
            reply.status = 206;
            reply.set("content-range", r.content_range(info.size));
            r.len()
        }
        RangeRequest::Unsatisfiable => return Ok(unsatisfiable(Some(info.size))),
    };
    reply.set("content-length", length.to_string());
    Ok(reply)
}

/// `GET`: one conditional, ranged read.
async fn get<S, F>(store: &S, asked: &ObjectRequest, spec: &ServeSpec<'_>, content_type: F) -> Result<Reply, Failure>
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let read = ReadRequest {
        if_none_match: single_etag_condition(asked.if_none_match.as_deref()),
        if_match: spec.pinned_etag.clone(),
        range: RangeSpec::parse(asked.range.as_deref()),
    };
    let outcome = store.read(spec.key, &read).await?.ok_or_else(|| not_found(spec.what))?;
    let (info, range, body) = match outcome {
        ReadOutcome::NotModified { etag } => return Ok(object_reply(304, None, spec.cache_control, &etag)),
        ReadOutcome::PreconditionFailed => return Err(not_found(spec.what)),
        ReadOutcome::RangeNotSatisfiable { size } => return Ok(unsatisfiable(size.or(spec.known_size))),
        ReadOutcome::Body { info, range, body } => (info, range, body),
    };
    let mut reply = object_reply(200, Some(&content_type(&info)), spec.cache_control, &info.etag);
    // A list of tags, or `*`: matched here (the read could take only one).
    if if_none_match(asked.if_none_match.as_deref(), &info.etag) {
        reply.status = 304;
        return Ok(reply);
    }
    let length = match range {
        Some(r) => {
            reply.status = 206;
            reply.set("content-range", r.content_range(info.size));
            r.len()
        }
        None => info.size,
    };
    reply.set("content-length", length.to_string());
    reply.body = body;
    Ok(reply)
}

/// The edge cache's answer to `req` for the object kept under `key`, with
/// the request's `Range` and `If-None-Match` (which the Cache API honours:
/// 206, 304). Headers are copied onto a new response, since the cache's
/// own cannot be changed.
async fn from_edge_cache(key: &str, req: &Request) -> worker::Result<Option<Response>> {
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
        return unsatisfiable(size).into_response().map(Some);
    }
    let copied = Headers::new();
    for (k, v) in cached.headers().entries() {
        // Cloudflare removes it before a Worker sees a cached answer; workerd locally keeps it.
        if !k.eq_ignore_ascii_case("cache-tag") {
            copied.append(&k, &v)?;
        }
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

/// The edge cache's answer to `req` for `key`, with its `Server-Timing`,
/// or `None` on a miss. A failed lookup is a miss: the cache is an
/// optimisation, and storage still answers.
pub async fn edge_hit(key: &str, req: &Request) -> worker::Result<Option<Response>> {
    match from_edge_cache(key, req).await {
        Ok(Some(mut hit)) => {
            hit.headers_mut().append("server-timing", &server_timing(true, 0))?;
            Ok(Some(hit))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(key, error = %e, "edge cache lookup failed");
            Ok(None)
        }
    }
}

/// Answers a `GET` or `HEAD` for the object `spec.key` from storage
/// ([`answer`]), keeping a full answer at the edge when `spec` says so. It
/// does not look there first: the caller does, with [`edge_hit`].
pub async fn serve_object<S, F>(store: &S, req: &Request, spec: ServeSpec<'_>, content_type: F) -> Handled
where
    S: ObjectStore,
    F: FnOnce(&ObjectInfo) -> String,
{
    let asked = ObjectRequest::of(req)?;
    let before = store.operations();
    let reply = answer(store, &asked, &spec, content_type).await?;
    let ops = store.operations() - before;
    let keep_at_edge = reply.status == 200 && !asked.head_only;
    let mut resp = reply.into_response()?;
    if let (Some(edge), true) = (&spec.edge_cache, keep_at_edge) {
        // Kept without the Server-Timing of this answer: a hit says its own.
        let mut copy = resp.cloned()?;
        if !edge.tags.is_empty() {
            copy.headers_mut().set("cache-tag", &edge.tags.join(","))?;
        }
        let key = edge.key.clone();
        edge.ctx.wait_until(async move {
            if let Err(e) = Cache::default().put(key.as_str(), copy).await {
                tracing::warn!(key, error = %e, "keeping the object at the edge failed");
            }
        });
    }
    resp.headers_mut().append("server-timing", &server_timing(false, ops))?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{block_on, MemoryStore};

    const KEY: &str = "hls/app/vid/out/720p/seg-1.m4s";
    const BYTES: &[u8] = b"0123456789";
    const CACHE: &str = "public, max-age=31536000, immutable";

    fn spec(pinned_etag: Option<String>, known_size: Option<u64>) -> ServeSpec<'static> {
        ServeSpec { key: KEY, what: "this file", cache_control: CACHE, pinned_etag, known_size, edge_cache: None }
    }

    fn stored() -> (MemoryStore, String) {
        let store = MemoryStore::new();
        let etag = store.insert(KEY, BYTES, Some("video/mp4"));
        (store, etag)
    }

    fn asked(head_only: bool, range: Option<&str>, if_none_match: Option<&str>) -> ObjectRequest {
        ObjectRequest { head_only, range: range.map(str::to_owned), if_none_match: if_none_match.map(str::to_owned) }
    }

    fn serve(store: &MemoryStore, asked: &ObjectRequest, spec: &ServeSpec<'_>) -> Result<Reply, Failure> {
        block_on(answer(store, asked, spec, |info| format!("served/{}", info.content_type.as_deref().unwrap_or("?"))))
    }

    /// The answer a failure becomes, as the entry shell sends it.
    fn error_of(result: Result<Reply, Failure>) -> (Reply, Failure) {
        let failure = result.expect_err("a failure");
        (failure.to_reply(), failure)
    }

    fn error_json(reply: &Reply) -> (String, String) {
        let v: serde_json::Value = serde_json::from_slice(reply.body_bytes().unwrap()).unwrap();
        (v["error"]["code"].as_str().unwrap().to_owned(), v["error"]["message"].as_str().unwrap().to_owned())
    }

    #[test]
    fn a_get_sends_the_whole_object_with_its_headers_in_one_operation() {
        let (store, etag) = stored();
        let reply = serve(&store, &asked(false, None, None), &spec(None, None)).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body_bytes(), Some(BYTES));
        assert_eq!(reply.header("content-length"), Some("10"));
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
        assert_eq!(reply.header("content-type"), Some("served/video/mp4"));
        assert_eq!(reply.header("cache-control"), Some(CACHE));
        assert_eq!(reply.header("accept-ranges"), Some("bytes"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("content-range"), None);
        assert_eq!(store.operations(), 1);
    }

    #[test]
    fn a_range_is_answered_206_with_its_bytes_and_content_range() {
        let (store, _) = stored();
        for (range, content_range, bytes) in [
            ("bytes=2-5", "bytes 2-5/10", &b"2345"[..]),
            ("bytes=7-", "bytes 7-9/10", b"789"),
            ("bytes=-3", "bytes 7-9/10", b"789"),
            ("bytes=5-100", "bytes 5-9/10", b"56789"),
        ] {
            let reply = serve(&store, &asked(false, Some(range), None), &spec(None, None)).unwrap();
            assert_eq!(reply.status, 206, "{range}");
            assert_eq!(reply.header("content-range"), Some(content_range), "{range}");
            assert_eq!(reply.header("content-length"), Some(bytes.len().to_string().as_str()), "{range}");
            assert_eq!(reply.body_bytes(), Some(bytes), "{range}");
        }
        // Several ranges, other units, bad syntax: the whole object, as RFC 9110 allows.
        for range in ["bytes=0-1,3-4", "items=0-1", "bytes=5-2"] {
            let reply = serve(&store, &asked(false, Some(range), None), &spec(None, None)).unwrap();
            assert_eq!((reply.status, reply.body_bytes()), (200, Some(BYTES)), "{range}");
        }
    }

    #[test]
    fn a_range_outside_the_object_is_416_naming_the_size_when_known() {
        let (store, _) = stored();
        for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
            for head_only in [false, true] {
                let reply = serve(&store, &asked(head_only, Some(range), None), &spec(None, None)).unwrap();
                assert_eq!(reply.status, 416, "{range}");
                assert_eq!(reply.header("content-range"), Some("bytes */10"), "{range}");
                assert_eq!(error_json(&reply).0, "range_not_satisfiable");
            }
        }
        // R2 refuses without the size: the caller's record gives it, else it is left out.
        store.refuse_ranges_without_size();
        let reply = serve(&store, &asked(false, Some("bytes=10-"), None), &spec(None, Some(10))).unwrap();
        assert_eq!((reply.status, reply.header("content-range")), (416, Some("bytes */10")));
        let reply = serve(&store, &asked(false, Some("bytes=10-"), None), &spec(None, None)).unwrap();
        assert_eq!((reply.status, reply.header("content-range")), (416, None));
        assert_eq!(error_json(&reply).1, "the requested range starts past the end of the object");
    }

    #[test]
    fn a_matching_if_none_match_is_304_without_a_body() {
        let (store, etag) = stored();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", {etag}");
        for (header, head_only) in
            [(etag.as_str(), false), (weak.as_str(), false), (listed.as_str(), false), ("*", false), (&etag, true)]
        {
            let reply = serve(&store, &asked(head_only, Some("bytes=0-1"), Some(header)), &spec(None, None)).unwrap();
            assert_eq!(reply.status, 304, "{header}");
            assert_eq!(reply.body_bytes(), Some(&[][..]), "{header}");
            assert_eq!(reply.header("etag"), Some(etag.as_str()), "{header}");
            assert_eq!(reply.header("cache-control"), Some(CACHE), "{header}");
        }
        let reply = serve(&store, &asked(false, None, Some("\"other\"")), &spec(None, None)).unwrap();
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn only_the_pinned_version_is_served() {
        let (store, etag) = stored();
        let bare = etag.trim_matches('"').to_owned();
        for head_only in [false, true] {
            let reply = serve(&store, &asked(head_only, None, None), &spec(Some(bare.clone()), None)).unwrap();
            assert_eq!(reply.status, 200);
            let (reply, _) = error_of(serve(&store, &asked(head_only, None, None), &spec(Some("v0-1".into()), None)));
            assert_eq!(reply.status, 404);
            assert_eq!(error_json(&reply), ("not_found".into(), "this file does not exist".into()));
        }
    }

    #[test]
    fn a_missing_object_is_404() {
        let store = MemoryStore::new();
        for head_only in [false, true] {
            let (reply, failure) = error_of(serve(&store, &asked(head_only, None, None), &spec(None, None)));
            assert_eq!(reply.status, 404);
            assert_eq!(error_json(&reply), ("not_found".into(), "this file does not exist".into()));
            assert_eq!(failure.report_detail(), None, "not our fault: not reported");
        }
    }

    #[test]
    fn a_head_is_one_head_with_the_length_and_no_body() {
        let (store, _) = stored();
        let reply = serve(&store, &asked(true, None, None), &spec(None, None)).unwrap();
        assert_eq!((reply.status, reply.header("content-length")), (200, Some("10")));
        assert_eq!(reply.body_bytes(), Some(&[][..]));
        assert_eq!(reply.header("content-type"), Some("served/video/mp4"));
        let reply = serve(&store, &asked(true, Some("bytes=0-3"), None), &spec(None, None)).unwrap();
        assert_eq!((reply.status, reply.header("content-range")), (206, Some("bytes 0-3/10")));
        assert_eq!(reply.header("content-length"), Some("4"));
        assert_eq!(store.operations(), 2);
    }

    #[test]
    fn storage_that_fails_is_a_generic_503_with_the_detail_kept_for_the_report() {
        let (store, _) = stored();
        store.insert("hls/other/file", BYTES, None);
        store.fail_all("hls/app/");
        for head_only in [false, true] {
            let (reply, failure) = error_of(serve(&store, &asked(head_only, None, None), &spec(None, None)));
            assert_eq!(reply.status, 503);
            assert_eq!(reply.header("retry-after"), Some("5"));
            let (code, message) = error_json(&reply);
            assert_eq!(code, "unavailable");
            assert!(!message.contains(KEY) && !message.contains("injected"), "{message}");
            let op = if head_only { "HEAD" } else { "GET" };
            assert_eq!(failure.report_detail(), Some(format!("storage: {op} {KEY}: injected fault").as_str()));
        }
        // Other keys are untouched.
        let other = ServeSpec { key: "hls/other/file", ..spec(None, None) };
        assert_eq!(serve(&store, &asked(false, None, None), &other).unwrap().status, 200);
    }
}

//! The S3 adapter: SigV4-signed `fetch` calls to any S3-compatible endpoint
//! (Garage in development, R2's S3 API, S3).
//!
//! Listing is `ListObjectsV2` (1000 keys a page); deleting many keys is one
//! `DeleteObjects` (`POST /{bucket}/?delete`, an XML body with its
//! `Content-MD5`, which S3 requires) per 1000 keys rather than a `DELETE`
//! each: a video has thousands of segments, and a Worker or Durable Object
//! invocation may only make so many subrequests. The XML is [`super::s3_xml`].

use std::cell::Cell;

use base64::Engine as _;
use md5::Digest as _;
use media_core::http::s3_xml::{
    complete_body, parse_parts, parse_upload_id, parse_uploads, CompletedPart, InProgress, StoredPart, UploadsMarker,
};
use media_core::http::sigv4::{sha256_hex, S3Bucket, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use media_core::http::{quote_etag, ByteRange};
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, Response};

use super::s3_xml::{delete_request, parse_delete_errors, parse_list_page};
use super::{Listing, ObjectInfo, ObjectStore, ReadOutcome, ReadRequest, StoreError, DELETE_BATCH, MAX_LISTED_KEYS};
use crate::clock::now;

pub struct S3Store {
    bucket: S3Bucket,
    /// Requests sent to the endpoint so far.
    ops: Cell<u32>,
}

impl S3Store {
    pub fn new(bucket: S3Bucket) -> Self {
        Self { bucket, ops: Cell::new(0) }
    }

    pub fn bucket(&self) -> &S3Bucket {
        &self.bucket
    }

    async fn send(
        &self,
        op: &'static str,
        key: &str,
        extra: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, StoreError> {
        let payload = if body.is_some() { UNSIGNED_PAYLOAD } else { EMPTY_SHA256 };
        self.send_to(op, op, Some(key), &[], extra, body, payload).await
    }

    /// A request on `key` with a query of its own (the multipart calls).
    async fn send_query(
        &self,
        op: &'static str,
        key: &str,
        query: &[(String, String)],
        extra: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, StoreError> {
        let payload = if body.is_some() { UNSIGNED_PAYLOAD } else { EMPTY_SHA256 };
        self.send_to(op, op, Some(key), query, extra, body, payload).await
    }

    /// A bucket-level call without a body (listing uploads).
    async fn send_bucket(&self, op: &'static str, query: &[(String, String)]) -> Result<Response, StoreError> {
        self.send_to(op, op, None, query, &[], None, EMPTY_SHA256).await
    }

    /// One signed request: `method` on `key` (the bucket itself when
    /// `None`), `op` naming it in errors, `target` in them being the key
    /// or the prefix it is about.
    #[allow(clippy::too_many_arguments)]
    async fn send_to(
        &self,
        op: &'static str,
        method: &str,
        key: Option<&str>,
        query: &[(String, String)],
        extra: &[(String, String)],
        body: Option<Vec<u8>>,
        payload: &str,
    ) -> Result<Response, StoreError> {
        let target = key.unwrap_or_default();
        let transport = |e: worker::Error| StoreError::Transport { op, key: target.to_owned(), detail: e.to_string() };
        self.ops.set(self.ops.get() + 1);
        let (url, headers) = self
            .bucket
            .sign(method, key, query, extra, payload, now())
            .map_err(|e| StoreError::Signing { op, key: target.to_owned(), detail: e.to_string() })?;
        let h = Headers::new();
        for (k, v) in &headers {
            h.set(k, v).map_err(transport)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(method.to_owned())).with_headers(h);
        if let Some(b) = body {
            init.with_body(Some(JsValue::from(js_sys::Uint8Array::from(b.as_slice()))));
        }
        let req = Request::new_with_init(&url, &init).map_err(transport)?;
        Fetch::Request(req).send().await.map_err(transport)
    }
}

impl S3Store {
    /// One `PUT`; with `if_absent`, `If-None-Match: *` and `None` when the
    /// store refuses it for an object already there.
    async fn put_with(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        if_absent: bool,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        let size = bytes.len() as u64;
        let mut extra = vec![("content-type".to_owned(), content_type.to_owned())];
        if if_absent {
            extra.push(("if-none-match".to_owned(), "*".to_owned()));
        }
        let mut resp = self.send("PUT", key, &extra, Some(bytes)).await?;
        match resp.status_code() {
            200 => Ok(Some(ObjectInfo {
                size,
                etag: quote_etag(&header(&resp, "etag").unwrap_or_default()),
                content_type: Some(content_type.to_owned()),
                version: header(&resp, "x-amz-version-id"),
            })),
            412 | 409 if if_absent => Ok(None),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(status_error("PUT", key, s, text))
            }
        }
    }
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

fn status_error(op: &'static str, key: &str, status: u16, detail: String) -> StoreError {
    StoreError::Status { op, key: key.to_owned(), status, detail: detail.chars().take(300).collect() }
}

fn info_from(resp: &Response, size: u64) -> ObjectInfo {
    ObjectInfo {
        size,
        etag: quote_etag(&header(resp, "etag").unwrap_or_default()),
        content_type: header(resp, "content-type"),
        version: header(resp, "x-amz-version-id").or_else(|| header(resp, "last-modified")),
    }
}

/// The whole size from `Content-Range` (`bytes 0-99/1000`, `bytes */1000`).
fn total_from_content_range(resp: &Response) -> Option<u64> {
    header(resp, "content-range").and_then(|cr| cr.rsplit_once('/').and_then(|(_, t)| t.trim().parse().ok()))
}

/// The range an answer carries, from its `Content-Range` (`bytes 0-99/1000`).
fn range_from_content_range(resp: &Response) -> Option<ByteRange> {
    let cr = header(resp, "content-range")?;
    let (span, _) = cr.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some(ByteRange { start: a.trim().parse().ok()?, end: b.trim().parse().ok()? })
}

impl ObjectStore for S3Store {
    fn operations(&self) -> u32 {
        self.ops.get()
    }

    async fn read(&self, key: &str, req: &ReadRequest) -> Result<Option<ReadOutcome>, StoreError> {
        let mut extra: Vec<(String, String)> = vec![];
        if let Some(r) = req.range {
            extra.push(("range".to_owned(), r.header_value()));
        }
        if let Some(tag) = &req.if_none_match {
            extra.push(("if-none-match".to_owned(), quote_etag(tag)));
        }
        if let Some(tag) = &req.if_match {
            extra.push(("if-match".to_owned(), quote_etag(tag)));
        }
        let mut resp = self.send("GET", key, &extra, None).await?;
        match resp.status_code() {
            200 => {
                let size = header(&resp, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let info = info_from(&resp, size);
                // A store that ignored the range sent everything: that is a valid answer too.
                let (_, body) = resp.into_parts();
                Ok(Some(ReadOutcome::Body { info, range: None, body }))
            }
            206 => {
                let size = total_from_content_range(&resp).unwrap_or(0);
                let info = info_from(&resp, size);
                let range = range_from_content_range(&resp);
                let (_, body) = resp.into_parts();
                Ok(Some(ReadOutcome::Body { info, range, body }))
            }
            // Some stores leave the ETag out of a 304; the one asked about is the one that matched.
            304 => Ok(Some(ReadOutcome::NotModified {
                etag: quote_etag(&header(&resp, "etag").or_else(|| req.if_none_match.clone()).unwrap_or_default()),
            })),
            412 => Ok(Some(ReadOutcome::PreconditionFailed)),
            416 => Ok(Some(ReadOutcome::RangeNotSatisfiable { size: total_from_content_range(&resp) })),
            404 => Ok(None),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(status_error("GET", key, s, text))
            }
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let resp = self.send("HEAD", key, &[], None).await?;
        match resp.status_code() {
            200 => {
                let size = header(&resp, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                Ok(Some(info_from(&resp, size)))
            }
            404 => Ok(None),
            s => Err(status_error("HEAD", key, s, String::new())),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        let written = self.put_with(key, bytes, content_type, false).await?;
        written.ok_or_else(|| status_error("PUT", key, 412, "an unconditional PUT was refused".into()))
    }

    /// A `PUT` with `If-None-Match: *`, which R2's S3 API and S3 check and
    /// write in one step (412 when an object is there; S3 may answer 409 to
    /// the loser of two such writes in flight at once). Garage 2.5 ignores
    /// the header on `PUT` and overwrites, so a `HEAD` goes first: against
    /// Garage that refuses a key already taken, though two writers racing
    /// between the `HEAD` and the `PUT` can still both succeed there. (The
    /// R2 binding, which production uses, needs no `HEAD`.)
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        if self.head(key).await?.is_some() {
            return Ok(None);
        }
        self.put_with(key, bytes, content_type, true).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut resp = self.send("DELETE", key, &[], None).await?;
        match resp.status_code() {
            200 | 204 | 404 => Ok(()),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(status_error("DELETE", key, s, text))
            }
        }
    }

    async fn list_after(&self, prefix: &str, start_after: Option<&str>) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = (MAX_LISTED_KEYS - listing.keys.len()).min(1000);
            let mut query = vec![
                ("list-type".to_owned(), "2".to_owned()),
                ("max-keys".to_owned(), page.to_string()),
                ("prefix".to_owned(), prefix.to_owned()),
            ];
            if let Some(t) = token.take() {
                query.push(("continuation-token".to_owned(), t));
            } else if let Some(a) = start_after {
                query.push(("start-after".to_owned(), a.to_owned()));
            }
            // Bucket-level: the prefix names the request in errors.
            let mut resp = self.send_to("LIST", "GET", None, &query, &[], None, EMPTY_SHA256).await?;
            let text = resp.text().await.unwrap_or_default();
            if resp.status_code() != 200 {
                return Err(status_error("LIST", prefix, resp.status_code(), text));
            }
            let parsed = parse_list_page(&text).map_err(|e| status_error("LIST", prefix, 200, e))?;
            listing.keys.extend(parsed.keys);
            token = parsed.next_token.filter(|_| parsed.truncated);
            listing.more = parsed.truncated;
            if token.is_none() || listing.keys.len() >= MAX_LISTED_KEYS {
                return Ok(listing);
            }
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let first = batch.first().map(String::as_str).unwrap_or_default();
            let body = delete_request(batch).into_bytes();
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
            let extra =
                vec![("content-md5".to_owned(), md5), ("content-type".to_owned(), "application/xml".to_owned())];
            let query = vec![("delete".to_owned(), String::new())];
            let payload = sha256_hex(&body);
            let mut resp = self.send_to("DELETE", "POST", None, &query, &extra, Some(body), &payload).await?;
            let text = resp.text().await.unwrap_or_default();
            if resp.status_code() != 200 {
                return Err(status_error("DELETE", first, resp.status_code(), text));
            }
            let errors = parse_delete_errors(&text).map_err(|e| status_error("DELETE", first, 200, e))?;
            // A key that is not there is no error (S3 does not report one; be sure).
            if let Some(e) = errors.iter().find(|e| e.code != "NoSuchKey") {
                let detail = format!(
                    "{} of {} keys not deleted, first {}: {} {}",
                    errors.len(),
                    batch.len(),
                    e.key,
                    e.code,
                    e.message
                );
                return Err(status_error("DELETE", first, 200, detail));
            }
        }
        Ok(())
    }
}

/// Multipart uploads through the S3 API (R2's S3 endpoint, Garage): what
/// resumable uploads need, and the R2 binding lacks (it cannot list parts).
/// `media_core::video::upload_session` reads and writes the XML.
impl S3Store {
    /// Starts a multipart upload of `key`; its upload id.
    pub async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        let query = [("uploads".to_owned(), String::new())];
        let extra = [("content-type".to_owned(), content_type.to_owned())];
        let mut resp = self.send_query("POST", key, &query, &extra, Some(Vec::new())).await?;
        let text = resp.text().await.unwrap_or_default();
        match resp.status_code() {
            200 => parse_upload_id(&text).map_err(|e| status_error("POST", key, 200, e)),
            s => Err(status_error("POST", key, s, text)),
        }
    }

    /// The parts stored so far, all pages; `None` when there is no such
    /// upload (completed, aborted or cleaned up).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<StoredPart>>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<u64> = None;
        // 10,000 parts at 1,000 a page: never more than 10 pages.
        for _ in 0..11 {
            let mut query = vec![("uploadId".to_owned(), upload_id.to_owned())];
            if let Some(m) = marker {
                query.push(("part-number-marker".to_owned(), m.to_string()));
            }
            let mut resp = self.send_query("GET", key, &query, &[], None).await?;
            let text = resp.text().await.unwrap_or_default();
            match resp.status_code() {
                200 => {}
                404 => return Ok(None),
                s => return Err(status_error("GET", key, s, text)),
            }
            let (page, next) = parse_parts(&text).map_err(|e| status_error("GET", key, 200, e))?;
            parts.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(Some(parts)),
            }
        }
        Err(status_error("GET", key, 200, "ListParts did not end after 11 pages".into()))
    }

    /// Joins the parts into the object. `Ok(false)` when there is no such upload.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<bool, StoreError> {
        let query = [("uploadId".to_owned(), upload_id.to_owned())];
        let extra = [("content-type".to_owned(), "application/xml".to_owned())];
        let body = complete_body(parts).into_bytes();
        let mut resp = self.send_query("POST", key, &query, &extra, Some(body)).await?;
        let text = resp.text().await.unwrap_or_default();
        match resp.status_code() {
            // S3 may answer 200 and put an error in the body.
            200 if !text.contains("<Error>") => Ok(true),
            404 => Ok(false),
            s => Err(status_error("POST", key, s, text)),
        }
    }

    /// The multipart uploads in progress under `prefix`, every page of
    /// `ListMultipartUploads` (`page_size` uploads a page: 1 to 1,000, the
    /// most S3 and R2 send; tests ask for small pages).
    pub async fn uploads_in_progress(&self, prefix: &str, page_size: u32) -> Result<Vec<InProgress>, StoreError> {
        let mut all = Vec::new();
        let mut marker: Option<UploadsMarker> = None;
        loop {
            let mut query = vec![
                ("max-uploads".to_owned(), page_size.clamp(1, 1000).to_string()),
                ("prefix".to_owned(), prefix.to_owned()),
                ("uploads".to_owned(), String::new()),
            ];
            if let Some(m) = &marker {
                query.push(("key-marker".to_owned(), m.key.clone()));
                query.push(("upload-id-marker".to_owned(), m.upload_id.clone()));
            }
            let mut resp = self.send_bucket("GET", &query).await?;
            let text = resp.text().await.unwrap_or_default();
            if resp.status_code() != 200 {
                return Err(status_error("GET", prefix, resp.status_code(), text));
            }
            let (page, next) = parse_uploads(&text).map_err(|e| status_error("GET", prefix, 200, e))?;
            all.extend(page);
            match next {
                None => return Ok(all),
                Some(m) if marker.as_ref() == Some(&m) => {
                    return Err(status_error(
                        "GET",
                        prefix,
                        200,
                        "ListMultipartUploads: the next page starts where this one did".into(),
                    ))
                }
                next => marker = next,
            }
        }
    }

    /// Drops an upload and its parts; a repeat (no such upload) is fine.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let query = [("uploadId".to_owned(), upload_id.to_owned())];
        let mut resp = self.send_query("DELETE", key, &query, &[], None).await?;
        match resp.status_code() {
            200 | 204 | 404 => Ok(()),
            s => Err(status_error("DELETE", key, s, resp.text().await.unwrap_or_default())),
        }
    }
}

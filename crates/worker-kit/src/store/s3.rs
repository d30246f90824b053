//! The S3 adapter: SigV4-signed `fetch` calls to any S3-compatible endpoint
//! (Garage in development, R2's S3 API, S3).

use media_core::http::{quote_etag, ByteRange};
use media_core::sigv4::{S3Bucket, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, Response};

use super::{ObjectBody, ObjectInfo, ObjectStore, StoreError};
use crate::clock::now;

pub struct S3Store {
    bucket: S3Bucket,
}

impl S3Store {
    pub fn new(bucket: S3Bucket) -> Self {
        Self { bucket }
    }

    pub fn bucket(&self) -> &S3Bucket {
        &self.bucket
    }

    async fn send(&self, op: &'static str, key: &str, extra: &[(String, String)], body: Option<Vec<u8>>) -> Result<Response, StoreError> {
        let transport = |e: worker::Error| StoreError::Transport { op, key: key.to_owned(), detail: e.to_string() };
        let payload = if body.is_some() { UNSIGNED_PAYLOAD } else { EMPTY_SHA256 };
        let (url, headers) = self.bucket.sign(op, Some(key), &[], extra, payload, now());
        let h = Headers::new();
        for (k, v) in &headers {
            h.set(k, v).map_err(transport)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(op.to_owned())).with_headers(h);
        if let Some(b) = body {
            init.with_body(Some(JsValue::from(js_sys::Uint8Array::from(b.as_slice()))));
        }
        let req = Request::new_with_init(&url, &init).map_err(transport)?;
        Fetch::Request(req).send().await.map_err(transport)
    }
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers().get(name).ok().flatten()
}

fn status_error(op: &'static str, key: &str, status: u16, detail: String) -> StoreError {
    StoreError::Status { op, key: key.to_owned(), status, detail: detail.chars().take(300).collect() }
}

fn info_from(resp: &Response, size: u64) -> ObjectInfo {
    ObjectInfo { size, etag: quote_etag(&header(resp, "etag").unwrap_or_default()), content_type: header(resp, "content-type") }
}

impl ObjectStore for S3Store {
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

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<ObjectBody>, StoreError> {
        let extra: Vec<(String, String)> = range.map(|r| ("range".to_owned(), format!("bytes={}-{}", r.start, r.end))).into_iter().collect();
        let mut resp = self.send("GET", key, &extra, None).await?;
        let status = resp.status_code();
        match status {
            200 | 206 => {
                // The whole size: from Content-Range on a partial answer.
                let size = match header(&resp, "content-range").and_then(|cr| cr.rsplit_once('/').and_then(|(_, t)| t.parse().ok())) {
                    Some(total) => total,
                    None => header(&resp, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0),
                };
                let info = info_from(&resp, size);
                let (_, body) = resp.into_parts();
                Ok(Some(ObjectBody { info, body }))
            }
            404 => Ok(None),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(status_error("GET", key, s, text))
            }
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        let size = bytes.len() as u64;
        let extra = vec![("content-type".to_owned(), content_type.to_owned())];
        let mut resp = self.send("PUT", key, &extra, Some(bytes)).await?;
        match resp.status_code() {
            200 => Ok(ObjectInfo { size, etag: quote_etag(&header(&resp, "etag").unwrap_or_default()), content_type: Some(content_type.to_owned()) }),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(status_error("PUT", key, s, text))
            }
        }
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
}

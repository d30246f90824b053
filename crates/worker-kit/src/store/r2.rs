//! The R2 binding adapter (production).

use media_core::http::{quote_etag, RangeRequest, RangeSpec};
use std::cell::Cell;

use worker::{Bucket, Conditional, HttpMetadata, Range};

use super::{Listing, ObjectInfo, ObjectStore, ReadOutcome, ReadRequest, StoreError, DELETE_BATCH, MAX_LISTED_KEYS};

pub struct R2Store {
    bucket: Bucket,
    /// Calls made to the bucket so far.
    ops: Cell<u32>,
}

impl R2Store {
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket, ops: Cell::new(0) }
    }

    /// The bucket, counting the call about to be made.
    fn bucket(&self) -> &Bucket {
        self.ops.set(self.ops.get() + 1);
        &self.bucket
    }
}

fn info(o: &worker::Object) -> ObjectInfo {
    ObjectInfo {
        size: o.size(),
        etag: quote_etag(&o.http_etag()),
        content_type: o.http_metadata().content_type,
        version: Some(o.version()),
    }
}

fn transport(op: &'static str, key: &str, e: worker::Error) -> StoreError {
    StoreError::Transport { op, key: key.to_owned(), detail: e.to_string() }
}

fn r2_range(spec: RangeSpec) -> Range {
    match spec {
        RangeSpec::FromTo(start, end) => Range::OffsetWithLength { offset: start, length: end - start + 1 },
        RangeSpec::From(offset) => Range::OffsetToEnd { offset },
        RangeSpec::Suffix(suffix) => Range::Suffix { suffix },
    }
}

/// R2 refuses a range that starts past the end with an error (not a status).
fn is_range_error(e: &worker::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("range")
}

impl ObjectStore for R2Store {
    fn operations(&self) -> u32 {
        self.ops.get()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(self.bucket().head(key).await.map_err(|e| transport("HEAD", key, e))?.as_ref().map(info))
    }

    async fn read(&self, key: &str, req: &ReadRequest) -> Result<Option<ReadOutcome>, StoreError> {
        let conditional = Conditional {
            etag_matches: req.if_match.clone(),
            etag_does_not_match: req.if_none_match.clone(),
            ..Conditional::default()
        };
        let mut get = self.bucket().get(key);
        if conditional != Conditional::default() {
            get = get.only_if(conditional);
        }
        // A suffix of zero bytes is unsatisfiable whatever the size; R2 wants
        // a positive one, so it is read as the whole object and refused below.
        let range = req.range.filter(|r| *r != RangeSpec::Suffix(0));
        if let Some(spec) = range {
            get = get.range(r2_range(spec));
        }
        let obj = match get.execute().await {
            Ok(Some(obj)) => obj,
            Ok(None) => return Ok(None),
            // The error does not say the size; learning it would cost another operation.
            Err(e) if range.is_some() && is_range_error(&e) => {
                return Ok(Some(ReadOutcome::RangeNotSatisfiable { size: None }))
            }
            Err(e) => return Err(transport("GET", key, e)),
        };
        let info = info(&obj);
        let Some(body) = obj.body() else {
            // A condition failed: R2 answers with the metadata and no body.
            let bare = obj.etag();
            if req.if_none_match.as_deref() == Some(bare.as_str()) {
                return Ok(Some(ReadOutcome::NotModified { etag: info.etag }));
            }
            return Ok(Some(ReadOutcome::PreconditionFailed));
        };
        let range = match req.range.map(|r| r.resolve(info.size)) {
            None | Some(RangeRequest::Full) => None,
            Some(RangeRequest::Partial(r)) => Some(r),
            Some(RangeRequest::Unsatisfiable) => {
                return Ok(Some(ReadOutcome::RangeNotSatisfiable { size: Some(info.size) }))
            }
        };
        let body = body.response_body().map_err(|e| transport("GET", key, e))?;
        Ok(Some(ReadOutcome::Body { info, range, body }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        let meta = HttpMetadata { content_type: Some(content_type.to_owned()), ..HttpMetadata::default() };
        let obj =
            self.bucket().put(key, bytes).http_metadata(meta).execute().await.map_err(|e| transport("PUT", key, e))?;
        obj.as_ref().map(info).ok_or_else(|| StoreError::Transport {
            op: "PUT",
            key: key.to_owned(),
            detail: "R2 stored nothing".into(),
        })
    }

    /// The binding's conditional put (`onlyIf: { etagDoesNotMatch: "*" }`):
    /// R2 checks and writes in one step, and answers `null` when an object
    /// is there.
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        let meta = HttpMetadata { content_type: Some(content_type.to_owned()), ..HttpMetadata::default() };
        let absent = Conditional { etag_does_not_match: Some("*".to_owned()), ..Conditional::default() };
        let obj = self
            .bucket()
            .put(key, bytes)
            .http_metadata(meta)
            .only_if(absent)
            .execute()
            .await
            .map_err(|e| transport("PUT", key, e))?;
        Ok(obj.as_ref().map(info))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket().delete(key).await.map_err(|e| transport("DELETE", key, e))
    }

    async fn list_after(&self, prefix: &str, start_after: Option<&str>) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        let mut cursor: Option<String> = None;
        loop {
            let page = (MAX_LISTED_KEYS - listing.keys.len()).min(1000) as u32;
            let mut list = self.bucket().list().prefix(prefix).limit(page);
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            } else if let Some(a) = start_after {
                list = list.start_after(a);
            }
            let objects = list.execute().await.map_err(|e| transport("LIST", prefix, e))?;
            listing.keys.extend(objects.objects().iter().map(worker::Object::key));
            cursor = objects.cursor().filter(|_| objects.truncated());
            listing.more = cursor.is_some();
            if cursor.is_none() || listing.keys.len() >= MAX_LISTED_KEYS {
                return Ok(listing);
            }
        }
    }

    /// The binding's `delete(keys[])`, 1000 keys a call.
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let first = batch.first().map(String::as_str).unwrap_or_default();
            self.bucket().delete_multiple(batch.to_vec()).await.map_err(|e| transport("DELETE", first, e))?;
        }
        Ok(())
    }
}

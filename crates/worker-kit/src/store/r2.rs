//! The R2 binding adapter (production).

use media_core::http::{quote_etag, ByteRange};
use worker::{Bucket, HttpMetadata, Range};

use super::{ObjectBody, ObjectInfo, ObjectStore, StoreError};

pub struct R2Store {
    bucket: Bucket,
}

impl R2Store {
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket }
    }
}

fn info(o: &worker::Object) -> ObjectInfo {
    ObjectInfo { size: o.size(), etag: quote_etag(&o.http_etag()), content_type: o.http_metadata().content_type }
}

fn transport(op: &'static str, key: &str, e: worker::Error) -> StoreError {
    StoreError::Transport { op, key: key.to_owned(), detail: e.to_string() }
}

impl ObjectStore for R2Store {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(self.bucket.head(key).await.map_err(|e| transport("HEAD", key, e))?.as_ref().map(info))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<ObjectBody>, StoreError> {
        let mut req = self.bucket.get(key);
        if let Some(r) = range {
            req = req.range(Range::OffsetWithLength { offset: r.start, length: r.len() });
        }
        let Some(obj) = req.execute().await.map_err(|e| transport("GET", key, e))? else {
            return Ok(None);
        };
        let body = obj
            .body()
            .ok_or_else(|| StoreError::Transport { op: "GET", key: key.to_owned(), detail: "R2 returned no body".into() })?
            .response_body()
            .map_err(|e| transport("GET", key, e))?;
        Ok(Some(ObjectBody { info: info(&obj), body }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        let meta = HttpMetadata { content_type: Some(content_type.to_owned()), ..HttpMetadata::default() };
        let obj = self.bucket.put(key, bytes).http_metadata(meta).execute().await.map_err(|e| transport("PUT", key, e))?;
        obj.as_ref().map(info).ok_or_else(|| StoreError::Transport { op: "PUT", key: key.to_owned(), detail: "R2 stored nothing".into() })
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.delete(key).await.map_err(|e| transport("DELETE", key, e))
    }
}

//! An in-memory [`ObjectStore`] for native tests (the `cloudflare/azul`
//! pattern): objects in a `RefCell<HashMap>`, answering reads with the same
//! rules as the R2 and S3 adapters (conditions, ranges, entity tags), and
//! faults that can be injected per key prefix and operation, so that
//! handler logic meets a storage outage without a network.
//!
//! Built for `cargo test` and, for the services' tests, with the
//! `test-utils` feature.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use media_core::http::{quote_etag, ByteRange, RangeRequest, RangeSpec};
use worker::ResponseBody;

use super::{ObjectInfo, ObjectStore, ReadOutcome, ReadRequest, StoreError};

/// One stored object.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    content_type: Option<String>,
    /// Bare, as a store keeps it; quoted in [`ObjectInfo`].
    etag: String,
}

/// A fault to inject: operations (`HEAD`, `GET`, `PUT`, `DELETE`; `None`
/// for all) on keys under `prefix` fail as if storage did not answer.
#[derive(Debug, Clone)]
struct Fault {
    op: Option<&'static str>,
    prefix: String,
}

/// Objects in memory. Single-threaded, as a Worker is.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: RefCell<HashMap<String, Stored>>,
    faults: RefCell<Vec<Fault>>,
    /// Bumped on every write, so each version has its own entity tag.
    versions: Cell<u64>,
    ops: Cell<u32>,
    /// Refuse an unsatisfiable range without the size, as the R2 binding does.
    range_refusals_without_size: Cell<bool>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `bytes` under `key` (not counted as an operation) and returns
    /// the entity tag it got, quoted.
    pub fn insert(&self, key: &str, bytes: impl Into<Vec<u8>>, content_type: Option<&str>) -> String {
        let stored = self.version(bytes.into(), content_type.map(str::to_owned));
        let etag = quote_etag(&stored.etag);
        self.objects.borrow_mut().insert(key.to_owned(), stored);
        etag
    }

    /// Whether an object is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.objects.borrow().contains_key(key)
    }

    /// Makes every operation on keys under `prefix` fail (`""`: all keys).
    pub fn fail_all(&self, prefix: &str) {
        self.faults.borrow_mut().push(Fault { op: None, prefix: prefix.to_owned() });
    }

    /// Makes operation `op` (`HEAD`, `GET`, `PUT`, `DELETE`) on keys under `prefix` fail.
    pub fn fail(&self, op: &'static str, prefix: &str) {
        self.faults.borrow_mut().push(Fault { op: Some(op), prefix: prefix.to_owned() });
    }

    /// Answers an unsatisfiable range as the R2 binding does: refused,
    /// without saying the object's size.
    pub fn refuse_ranges_without_size(&self) {
        self.range_refusals_without_size.set(true);
    }

    fn version(&self, bytes: Vec<u8>, content_type: Option<String>) -> Stored {
        self.versions.set(self.versions.get() + 1);
        Stored { etag: format!("v{}-{}", self.versions.get(), bytes.len()), bytes, content_type }
    }

    /// Counts one operation, and fails it when a fault covers it.
    fn begin(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
        self.ops.set(self.ops.get() + 1);
        let faulty = self.faults.borrow().iter().any(|f| f.op.is_none_or(|o| o == op) && key.starts_with(&f.prefix));
        if faulty {
            return Err(StoreError::Transport { op, key: key.to_owned(), detail: "injected fault".into() });
        }
        Ok(())
    }

    fn stored(&self, key: &str) -> Option<Stored> {
        self.objects.borrow().get(key).cloned()
    }
}

fn info(s: &Stored) -> ObjectInfo {
    ObjectInfo { size: s.bytes.len() as u64, etag: quote_etag(&s.etag), content_type: s.content_type.clone() }
}

fn slice(bytes: &[u8], range: Option<ByteRange>) -> ResponseBody {
    let bytes = match range {
        Some(r) => bytes[r.start as usize..=r.end as usize].to_vec(),
        None => bytes.to_vec(),
    };
    ResponseBody::Body(bytes)
}

impl ObjectStore for MemoryStore {
    fn operations(&self) -> u32 {
        self.ops.get()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.begin("HEAD", key)?;
        Ok(self.stored(key).as_ref().map(info))
    }

    /// Conditions first (`If-Match`, then `If-None-Match`, as RFC 9110
    /// orders them), then the range.
    async fn read(&self, key: &str, req: &ReadRequest) -> Result<Option<ReadOutcome>, StoreError> {
        self.begin("GET", key)?;
        let Some(s) = self.stored(key) else { return Ok(None) };
        if req.if_match.as_ref().is_some_and(|tag| *tag != s.etag) {
            return Ok(Some(ReadOutcome::PreconditionFailed));
        }
        if req.if_none_match.as_ref().is_some_and(|tag| *tag == s.etag) {
            return Ok(Some(ReadOutcome::NotModified { etag: quote_etag(&s.etag) }));
        }
        let info = info(&s);
        let range = match req.range.map(|r: RangeSpec| r.resolve(info.size)) {
            None | Some(RangeRequest::Full) => None,
            Some(RangeRequest::Partial(r)) => Some(r),
            Some(RangeRequest::Unsatisfiable) => {
                let size = (!self.range_refusals_without_size.get()).then_some(info.size);
                return Ok(Some(ReadOutcome::RangeNotSatisfiable { size }));
            }
        };
        Ok(Some(ReadOutcome::Body { body: slice(&s.bytes, range), info, range }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        self.begin("PUT", key)?;
        let stored = self.version(bytes, Some(content_type.to_owned()));
        let info = info(&stored);
        self.objects.borrow_mut().insert(key.to_owned(), stored);
        Ok(info)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.begin("DELETE", key)?;
        self.objects.borrow_mut().remove(key);
        Ok(())
    }
}

/// Runs a future that never waits (one on a [`MemoryStore`]) to its end,
/// natively, with no runtime.
///
/// # Panics
/// If the future waits on something (a real store, a timer).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("block_on: the future waited; only futures on in-memory doubles can run here"),
    }
}

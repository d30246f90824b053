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

use super::{Listing, ObjectInfo, ObjectStore, ReadOutcome, ReadRequest, StoreError, DELETE_BATCH, MAX_LISTED_KEYS};

/// One stored object.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    content_type: Option<String>,
    /// Bare, as a store keeps it; quoted in [`ObjectInfo`].
    etag: String,
}

/// A fault to inject: operations (`HEAD`, `GET`, `PUT`, `DELETE`, `LIST`;
/// `None` for all) on keys under `prefix` fail as if storage did not answer
/// (a `LIST` is "on" the prefix it lists; a batch delete fails when any of
/// its keys is covered, deleting none of the batch).
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

    /// The stored keys under `prefix`, in order.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.borrow().keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.sort();
        keys
    }

    /// Makes every operation on keys under `prefix` fail (`""`: all keys).
    pub fn fail_all(&self, prefix: &str) {
        self.faults.borrow_mut().push(Fault { op: None, prefix: prefix.to_owned() });
    }

    /// Makes operation `op` (`HEAD`, `GET`, `PUT`, `DELETE`, `LIST`) on keys under `prefix` fail.
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
    ObjectInfo {
        size: s.bytes.len() as u64,
        etag: quote_etag(&s.etag),
        content_type: s.content_type.clone(),
        version: Some(s.etag.clone()),
    }
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

    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        self.begin("PUT", key)?;
        if self.contains(key) {
            return Ok(None);
        }
        let stored = self.version(bytes, Some(content_type.to_owned()));
        let info = info(&stored);
        self.objects.borrow_mut().insert(key.to_owned(), stored);
        Ok(Some(info))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.begin("DELETE", key)?;
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    /// One operation per page of 1000, as the adapters count.
    async fn list_after(&self, prefix: &str, start_after: Option<&str>) -> Result<Listing, StoreError> {
        let all: Vec<String> =
            self.keys(prefix).into_iter().filter(|k| start_after.is_none_or(|a| k.as_str() > a)).collect();
        let pages = all.len().min(MAX_LISTED_KEYS).div_ceil(1000).max(1);
        for _ in 0..pages {
            self.begin("LIST", prefix)?;
        }
        let more = all.len() > MAX_LISTED_KEYS;
        Ok(Listing { keys: all.into_iter().take(MAX_LISTED_KEYS).collect(), more })
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(DELETE_BATCH) {
            for key in batch {
                // Counted once per batch below; a covered key fails the batch.
                let faulty = self
                    .faults
                    .borrow()
                    .iter()
                    .any(|f| f.op.is_none_or(|o| o == "DELETE") && key.starts_with(&f.prefix));
                if faulty {
                    self.ops.set(self.ops.get() + 1);
                    return Err(StoreError::Transport {
                        op: "DELETE",
                        key: key.clone(),
                        detail: "injected fault".into(),
                    });
                }
            }
            self.ops.set(self.ops.get() + 1);
            let mut objects = self.objects.borrow_mut();
            for key in batch {
                objects.remove(key);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::delete_prefix;
    use super::*;

    #[test]
    fn list_gives_the_keys_under_a_prefix_in_order_bounded() {
        let store = MemoryStore::new();
        for k in ["hls/a/v1/o/2", "hls/a/v1/o/1", "hls/a/v10/o/1", "raw/a/v1/source.mp4"] {
            store.insert(k, b"x".to_vec(), None);
        }
        let l = block_on(store.list("hls/a/v1/")).unwrap();
        assert_eq!((l.keys, l.more), (vec!["hls/a/v1/o/1".to_owned(), "hls/a/v1/o/2".to_owned()], false));
        assert_eq!(block_on(store.list("nothing/")).unwrap(), Listing::default());

        for i in 0..MAX_LISTED_KEYS + 5 {
            store.insert(&format!("many/{i:06}"), b"x".to_vec(), None);
        }
        let before = store.operations();
        let l = block_on(store.list("many/")).unwrap();
        assert_eq!((l.keys.len(), l.more, l.keys[0].as_str()), (MAX_LISTED_KEYS, true, "many/000000"));
        assert_eq!(store.operations() - before, 10, "one operation per page of 1000");
    }

    #[test]
    fn delete_prefix_removes_everything_under_it_and_nothing_else() {
        let store = MemoryStore::new();
        for i in 0..MAX_LISTED_KEYS + 1500 {
            store.insert(&format!("hls/a/v1/o/{i:06}.m4s"), b"x".to_vec(), None);
        }
        store.insert("hls/a/v10/o/master.m3u8", b"x".to_vec(), None);
        store.insert("raw/a/v1/source.mp4", b"x".to_vec(), None);
        assert_eq!(block_on(delete_prefix(&store, "hls/a/v1/")).unwrap(), (MAX_LISTED_KEYS + 1500) as u64);
        assert!(store.keys("hls/a/v1/").is_empty());
        assert!(store.contains("hls/a/v10/o/master.m3u8") && store.contains("raw/a/v1/source.mp4"));
        // Again: nothing left, nothing deleted, no error.
        assert_eq!(block_on(delete_prefix(&store, "hls/a/v1/")).unwrap(), 0);
        // A prefix without its slash would reach other videos: refused.
        assert!(block_on(delete_prefix(&store, "hls/a/v1")).is_err());
        assert!(block_on(delete_prefix(&store, "")).is_err());
        assert!(store.contains("hls/a/v10/o/master.m3u8"));
    }

    #[test]
    fn delete_prefix_while_stops_when_told_and_deletes_nothing_it_was_not_allowed_to() {
        let store = MemoryStore::new();
        for i in 0..(MAX_LISTED_KEYS + 10) {
            store.insert(&format!("hls/a/v/o1/{i:06}.m4s"), vec![1], None);
        }
        let none = block_on(super::super::delete_prefix_while(&store, "hls/a/v/", || false)).unwrap();
        assert!(none.is_empty());
        assert_eq!(block_on(store.list("hls/a/v/")).unwrap().keys.len(), MAX_LISTED_KEYS, "all still there");
        let rounds = std::cell::Cell::new(0);
        let first = block_on(super::super::delete_prefix_while(&store, "hls/a/v/", || {
            rounds.set(rounds.get() + 1);
            rounds.get() == 1
        }))
        .unwrap();
        assert_eq!(first.len(), MAX_LISTED_KEYS, "one round, then told to stop");
        assert_eq!(block_on(store.list("hls/a/v/")).unwrap().keys.len(), 10);
    }

    #[test]
    fn put_if_absent_writes_a_new_key_once() {
        let store = MemoryStore::new();
        let first = block_on(store.put_if_absent("images/a/i", b"one".to_vec(), "image/png")).unwrap();
        assert!(first.is_some());
        assert_eq!(block_on(store.put_if_absent("images/a/i", b"two".to_vec(), "image/gif")).unwrap(), None);
        let Some(ReadOutcome::Body { body: ResponseBody::Body(bytes), .. }) =
            block_on(store.read("images/a/i", &ReadRequest::default())).unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(bytes, b"one", "the first write stays");
        store.fail("PUT", "images/");
        assert!(block_on(store.put_if_absent("images/a/j", b"x".to_vec(), "image/png")).is_err());
    }

    #[test]
    fn delete_prefix_except_pages_past_the_kept_keys() {
        // The kept attempt sorts first and fills more than one listing:
        // one listing would see none of the stale keys after it.
        let store = MemoryStore::new();
        for i in 0..MAX_LISTED_KEYS + 5 {
            store.insert(&format!("hls/a/v/o1/{i:06}.m4s"), vec![1], None);
        }
        for i in 0..1200 {
            store.insert(&format!("hls/a/v/o2/{i:06}.m4s"), vec![1], None);
        }
        store.insert("hls/a/v10/o2/master.m3u8", vec![1], None);
        let first = block_on(store.list("hls/a/v/")).unwrap();
        assert!(first.more && first.keys.iter().all(|k| k.starts_with("hls/a/v/o1/")), "the setup");
        let n = block_on(super::super::delete_prefix_except(&store, "hls/a/v/", "hls/a/v/o1/")).unwrap();
        assert_eq!(n, 1200);
        assert!(store.keys("hls/a/v/o2/").is_empty());
        assert_eq!(store.keys("hls/a/v/o1/").len(), MAX_LISTED_KEYS + 5, "the kept attempt stays whole");
        assert!(store.contains("hls/a/v10/o2/master.m3u8"), "another video's outputs");
        let after = block_on(store.list_after("hls/a/v/o1/", Some("hls/a/v/o1/010000.m4s"))).unwrap();
        assert_eq!((after.keys.len(), after.more), (4, false));
        assert!(block_on(super::super::delete_prefix_except(&store, "hls/a/v", "hls/a/v/o1/")).is_err());
    }

    #[test]
    fn faults_stop_a_list_or_a_batch() {
        let store = MemoryStore::new();
        store.insert("raw/a/v/source.mp4", b"x".to_vec(), None);
        store.insert("raw/a/v/z", b"x".to_vec(), None);
        store.fail("LIST", "raw/");
        assert!(matches!(block_on(store.list("raw/a/v/")), Err(StoreError::Transport { op: "LIST", .. })));
        let store = MemoryStore::new();
        store.insert("raw/a/v/source.mp4", b"x".to_vec(), None);
        store.insert("raw/a/v/z", b"x".to_vec(), None);
        store.fail("DELETE", "raw/a/v/z");
        let err = block_on(delete_prefix(&store, "raw/a/v/")).unwrap_err();
        assert!(matches!(&err, StoreError::Transport { op: "DELETE", key, .. } if key == "raw/a/v/z"), "{err}");
        assert_eq!(store.keys("raw/").len(), 2, "a failed batch deletes none of its keys");
    }
}

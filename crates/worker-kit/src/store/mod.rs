//! One interface to object storage, two adapters behind it:
//!
//! - [`R2Store`]: the R2 binding, for production on Cloudflare.
//! - [`S3Store`]: any S3-compatible endpoint over `fetch` with SigV4 (R2's S3
//!   API, Garage locally). With it, the Workers, the browsers' presigned
//!   uploads and the transcoder all see the same bucket in development.
//!
//! And, for native tests (`cfg(test)` or the `test-utils` feature),
//! `memory::MemoryStore`: objects in memory, with faults that can be
//! injected, so that handler logic runs under `cargo test`.
//!
//! `STORAGE_BACKEND` (`r2`, the default, or `s3`; see [`crate::settings`])
//! picks the adapter. Both are exercised by the same route tests
//! (tests/workers), once per backend.
//!
//! Every method is one storage operation, except the two that work on many
//! keys: [`ObjectStore::list`] (one per 1000 keys listed) and
//! [`ObjectStore::delete_many`] (one per 1000 keys deleted, a batch delete
//! on both adapters). [`delete_prefix`] builds on them: it is how a video
//! or an image is deleted for good. [`ObjectStore::read`] is the one
//! serving uses: a conditional, ranged read that brings the metadata with
//! the bytes, so both come from the same version of the object.

#[cfg(any(test, feature = "test-utils"))]
pub mod memory;
mod r2;
pub mod s3;
mod s3_xml;

use media_core::http::{ByteRange, RangeSpec};
use worker::{Env, ResponseBody};

pub use r2::R2Store;
pub use s3::S3Store;

use crate::config::ConfigError;
use crate::settings::{StorageBackend, StorageSettings};

/// What storage knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Quoted entity tag, as sent in `ETag`.
    pub etag: String,
    pub content_type: Option<String>,
    /// Which upload of its key this object is, where storage says (R2's
    /// version id, S3's `Last-Modified`): the same bytes uploaded again
    /// under the key have the same `etag` but not the same version.
    pub version: Option<String>,
}

/// What a client's `GET` asks of one object, passed to storage as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// Bare entity tag: answer [`ReadOutcome::NotModified`] when the object has it.
    pub if_none_match: Option<String>,
    /// Bare entity tag: answer [`ReadOutcome::PreconditionFailed`] unless the object has it.
    pub if_match: Option<String>,
    pub range: Option<RangeSpec>,
}

/// What a [`ReadRequest`] got.
#[derive(Debug)]
pub enum ReadOutcome {
    /// The bytes: all of them, or `range` of them.
    Body { info: ObjectInfo, range: Option<ByteRange>, body: ResponseBody },
    /// The object has the tag of `if_none_match` (quoted, as sent in `ETag`).
    NotModified { etag: String },
    /// The object's tag is not that of `if_match`.
    PreconditionFailed,
    /// The range starts past the end of the object, of `size` bytes when the
    /// store said (S3 does; the R2 binding refuses with an error that does not).
    RangeNotSatisfiable { size: Option<u64> },
}

/// All the bytes of a body a store gave: natively (the in-memory store)
/// they are already there; in workerd the stream is read to its end.
pub async fn collect_body(body: ResponseBody) -> worker::Result<Vec<u8>> {
    match body {
        ResponseBody::Empty => Ok(Vec::new()),
        ResponseBody::Body(bytes) => Ok(bytes),
        stream @ ResponseBody::Stream(_) => worker::Response::from_body(stream)?.bytes().await,
    }
}

/// Storage did not do what was asked (not "not found": that is `Ok(None)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store answered with an unexpected status.
    Status { op: &'static str, key: String, status: u16, detail: String },
    /// The call failed before an answer (network, binding).
    Transport { op: &'static str, key: String, detail: String },
    /// The request could not be signed: our fault, and retrying cannot help.
    Signing { op: &'static str, key: String, detail: String },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Status { op, key, status, detail } => write!(f, "{op} {key}: status {status}: {detail}"),
            StoreError::Transport { op, key, detail } => write!(f, "{op} {key}: {detail}"),
            StoreError::Signing { op, key, detail } => write!(f, "{op} {key}: signing: {detail}"),
        }
    }
}

/// The most keys one [`ObjectStore::list`] returns: a bound on one call's
/// memory and subrequests (10 listing pages).
pub const MAX_LISTED_KEYS: usize = 10_000;
/// The most keys one batch delete takes (R2's binding and S3's `DeleteObjects`).
pub const DELETE_BATCH: usize = 1000;
/// How many list-and-delete rounds [`delete_prefix`] makes at most (a
/// million keys): a video has a few thousand.
const MAX_DELETE_ROUNDS: usize = 100;

/// Keys under a prefix, from [`ObjectStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// In key order, at most [`MAX_LISTED_KEYS`].
    pub keys: Vec<String>,
    /// Other keys remain after these (delete these, then list again).
    pub more: bool,
}

/// The operations the services need.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no Send bound wanted.
pub trait ObjectStore {
    /// How many storage operations this store has made so far (each method
    /// below is one, except where it says otherwise).
    fn operations(&self) -> u32;
    /// Size, ETag and type, or `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// One conditional, ranged read, or `None` when there is no such object.
    async fn read(&self, key: &str, req: &ReadRequest) -> Result<Option<ReadOutcome>, StoreError>;
    /// Stores `bytes` under `key` with its content type.
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError>;
    /// [`ObjectStore::put`], only if no object is stored under `key`
    /// (`If-None-Match: *`): `None`, with nothing written, when one is.
    /// One conditional write, so of two writers racing for a new key exactly
    /// one wins (see each adapter for the store's part in that).
    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<ObjectInfo>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The first keys under `prefix` (at most [`MAX_LISTED_KEYS`]), and
    /// whether more remain. One operation per page of 1000 keys.
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        self.list_after(prefix, None).await
    }
    /// [`ObjectStore::list`] from the first key after `start_after` (none:
    /// from the start), to page on past keys that stay.
    async fn list_after(&self, prefix: &str, start_after: Option<&str>) -> Result<Listing, StoreError>;
    /// Deletes `keys` (an absent key is no error). One operation per
    /// [`DELETE_BATCH`] keys.
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// Deletes every object under `prefix` (which must end with `/`, so that
/// `hls/app/v1/` never reaches `hls/app/v10/`), listing again until nothing
/// is left; returns how many objects it deleted.
pub async fn delete_prefix(store: &impl ObjectStore, prefix: &str) -> Result<u64, StoreError> {
    delete_prefix_keys(store, prefix).await.map(|keys| keys.len() as u64)
}

/// [`delete_prefix`], answering the keys it deleted (for callers that must
/// also drop what was derived from them, such as edge cache entries).
pub async fn delete_prefix_keys(store: &impl ObjectStore, prefix: &str) -> Result<Vec<String>, StoreError> {
    delete_prefix_while(store, prefix, || true).await
}

/// [`delete_prefix_keys`], asking `still()` after each listing, before
/// deleting what it listed, and stopping (with what it deleted so far) once
/// it answers false. For a Durable Object whose state may change while it
/// waits on storage: it checks, with no wait in between, that the keys it
/// listed may still go.
pub async fn delete_prefix_while(
    store: &impl ObjectStore,
    prefix: &str,
    still: impl Fn() -> bool,
) -> Result<Vec<String>, StoreError> {
    if prefix.len() < 2 || !prefix.ends_with('/') {
        return Err(StoreError::Signing {
            op: "LIST",
            key: prefix.to_owned(),
            detail: "refusing to delete under a prefix that does not end with '/'".into(),
        });
    }
    let mut deleted = Vec::new();
    for _ in 0..MAX_DELETE_ROUNDS {
        let listing = store.list(prefix).await?;
        if listing.keys.is_empty() || !still() {
            return Ok(deleted);
        }
        store.delete_many(&listing.keys).await?;
        deleted.extend(listing.keys);
        if !listing.more {
            return Ok(deleted);
        }
    }
    Err(StoreError::Transport {
        op: "DELETE",
        key: prefix.to_owned(),
        detail: format!(
            "still objects after {MAX_DELETE_ROUNDS} rounds of {MAX_LISTED_KEYS}; deleted {}",
            deleted.len()
        ),
    })
}

/// Deletes every object under `prefix` except those under `keep` (both
/// ending with `/`), paging through every listing after the last key seen,
/// so thousands of kept keys never hide the stale ones after them; returns
/// how many objects it deleted.
pub async fn delete_prefix_except(store: &impl ObjectStore, prefix: &str, keep: &str) -> Result<u64, StoreError> {
    if prefix.len() < 2 || !prefix.ends_with('/') || !keep.ends_with('/') {
        return Err(StoreError::Signing {
            op: "LIST",
            key: prefix.to_owned(),
            detail: "refusing to delete under a prefix that does not end with '/'".into(),
        });
    }
    let mut after: Option<String> = None;
    let mut deleted = 0;
    for _ in 0..MAX_DELETE_ROUNDS {
        let listing = store.list_after(prefix, after.as_deref()).await?;
        let Some(last) = listing.keys.last().cloned() else { return Ok(deleted) };
        let stale: Vec<String> = listing.keys.into_iter().filter(|k| !k.starts_with(keep)).collect();
        if !stale.is_empty() {
            store.delete_many(&stale).await?;
            deleted += stale.len() as u64;
        }
        if !listing.more {
            return Ok(deleted);
        }
        after = Some(last);
    }
    Err(StoreError::Transport {
        op: "DELETE",
        key: prefix.to_owned(),
        detail: format!("still listing after {MAX_DELETE_ROUNDS} pages of {MAX_LISTED_KEYS}; deleted {deleted}"),
    })
}

/// The adapter chosen by configuration.
pub enum AnyStore {
    R2(R2Store),
    S3(S3Store),
}

/// The R2 binding name in both wrangler files.
pub const BUCKET_BINDING: &str = "MEDIA_BUCKET";

impl AnyStore {
    /// The adapter `settings` pick: the R2 binding, or the S3 endpoint.
    pub fn open(env: &Env, settings: &StorageSettings) -> Result<AnyStore, ConfigError> {
        match settings.backend.clone()? {
            StorageBackend::R2 => env.bucket(BUCKET_BINDING).map(|b| AnyStore::R2(R2Store::new(b))).map_err(|e| ConfigError {
                name: BUCKET_BINDING.into(),
                problem: format!("is not an R2 bucket binding ({e}); add [[r2_buckets]] binding = \"{BUCKET_BINDING}\" to the wrangler file"),
            }),
            StorageBackend::S3 => Ok(AnyStore::S3(S3Store::new(settings.s3.clone()?))),
        }
    }
}

impl ObjectStore for AnyStore {
    fn operations(&self) -> u32 {
        match self {
            AnyStore::R2(s) => s.operations(),
            AnyStore::S3(s) => s.operations(),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self {
            AnyStore::R2(s) => s.head(key).await,
            AnyStore::S3(s) => s.head(key).await,
        }
    }

    async fn read(&self, key: &str, req: &ReadRequest) -> Result<Option<ReadOutcome>, StoreError> {
        match self {
            AnyStore::R2(s) => s.read(key, req).await,
            AnyStore::S3(s) => s.read(key, req).await,
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<ObjectInfo, StoreError> {
        match self {
            AnyStore::R2(s) => s.put(key, bytes, content_type).await,
            AnyStore::S3(s) => s.put(key, bytes, content_type).await,
        }
    }

    async fn put_if_absent(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        match self {
            AnyStore::R2(s) => s.put_if_absent(key, bytes, content_type).await,
            AnyStore::S3(s) => s.put_if_absent(key, bytes, content_type).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::R2(s) => s.delete(key).await,
            AnyStore::S3(s) => s.delete(key).await,
        }
    }

    async fn list_after(&self, prefix: &str, start_after: Option<&str>) -> Result<Listing, StoreError> {
        match self {
            AnyStore::R2(s) => s.list_after(prefix, start_after).await,
            AnyStore::S3(s) => s.list_after(prefix, start_after).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        match self {
            AnyStore::R2(s) => s.delete_many(keys).await,
            AnyStore::S3(s) => s.delete_many(keys).await,
        }
    }
}

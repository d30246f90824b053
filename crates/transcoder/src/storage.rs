//! Object storage for the transcoder: the S3 client (R2 in production,
//! Garage locally), where outputs go ([`Sink`]: the bucket, or a local
//! folder for the CLI and tests), and [`SourceReader`], which lets libav read
//! an upload straight from the bucket with ranged GETs, spooling what it
//! fetched to the work directory so seeks back (an index at the end of an
//! MP4) cost nothing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::config::S3Config;
use crate::error::JobError;

/// The S3 client bound to one bucket.
#[derive(Clone)]
pub struct Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Multipart uploads' part size; files above [`PARTS_FROM`] parts use them.
    part_bytes: u64,
}

impl Storage {
    pub fn new(cfg: &S3Config) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&cfg.endpoint)
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(&cfg.access_key_id, &cfg.secret_access_key, None, None, "config"))
            .force_path_style(true)
            // Streaming checksums (aws-chunked) are refused by some S3 servers over plain http.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            // The SDK's own retries are the only ones around a storage call
            // (network faults, 5xx, throttling): 6 attempts, backing off
            // exponentially with jitter up to 8 s, about half a minute in all,
            // which rides out a storage restart.
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(500))
                    .with_max_backoff(Duration::from_secs(8)),
            )
            .http_client(http)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            part_bytes: cfg.upload_part_bytes,
        }
    }

    /// The first read of a source: bytes `0..len` of `key` (fewer when it is
    /// shorter), only from version `if_match` when given, with the object's
    /// size (`Content-Range`) and entity tag, in one request instead of a
    /// `HEAD` and then a `GET`. A 412 is [`REPLACED`]; a 416 (a range of a
    /// 0-byte object) is an empty upload.
    pub async fn read_first(&self, key: &str, len: u64, if_match: Option<&str>) -> Result<FirstRead, JobError> {
        let what = format!("GET {key} bytes 0-{}", len - 1);
        let mut broken = String::new();
        for _ in 0..BODY_ATTEMPTS {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes=0-{}", len - 1))
                .set_if_match(if_match.map(quoted_etag))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(FirstRead::Missing),
                Err(e) => {
                    return Err(match e.raw_response().map(|r| r.status().as_u16()) {
                        Some(412) => JobError::permanent(REPLACED),
                        Some(416) => JobError::empty_upload(),
                        Some(404) => return Ok(FirstRead::Missing),
                        _ => JobError::retryable(format!("storage {what}: {}", describe(&e))),
                    })
                }
            };
            let etag = out.e_tag().map(str::to_owned);
            let total = out.content_range().and_then(content_range_total);
            match out.body.collect().await {
                Ok(body) => {
                    let bytes = body.into_bytes();
                    // A server that ignored the range sent the whole object.
                    let size = total.unwrap_or(bytes.len() as u64);
                    let bytes = bytes.slice(..bytes.len().min(len as usize));
                    return Ok(FirstRead::Read { info: SourceInfo { size, etag }, bytes });
                }
                Err(e) => {
                    tracing::warn!(op = %what, error = %e, "storage body broke off; asking again");
                    broken = e.to_string();
                }
            }
        }
        Err(JobError::retryable(format!("storage {what}: the body broke off {BODY_ATTEMPTS} times: {broken}")))
    }

    /// Bytes `start..=end` of `key`, retried a few times. With `if_match`,
    /// only from that version of the object: a replaced object fails the
    /// job permanently instead of mixing two files' bytes.
    pub async fn get_range(&self, key: &str, start: u64, end: u64, if_match: Option<&str>) -> Result<Bytes, JobError> {
        let what = format!("GET bytes {start}-{end}");
        // The SDK retries the request; a body that breaks after the answer
        // began is outside its reach, so that alone is asked for again.
        let mut broken = String::new();
        for _ in 0..BODY_ATTEMPTS {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes={start}-{end}"))
                .set_if_match(if_match.map(quoted_etag))
                .send()
                .await
                .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(412) => JobError::permanent(REPLACED),
                    _ => JobError::retryable(format!("storage {what}: {}", describe(&e))),
                })?;
            match out.body.collect().await {
                Ok(body) => return Ok(body.into_bytes()),
                Err(e) => {
                    tracing::warn!(op = %what, error = %e, "storage body broke off; asking again");
                    broken = e.to_string();
                }
            }
        }
        Err(JobError::retryable(format!("storage {what}: the body broke off {BODY_ATTEMPTS} times: {broken}")))
    }

    /// Stores `bytes` at `key`, retried a few times.
    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str, cache_control: &str) -> Result<(), JobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(cache_control)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| JobError::retryable(format!("storage PUT {key}: {}", describe(&e))))
    }

    /// Stores the file at `path` at `key`, read from the disk as it is sent:
    /// one `PUT` up to [`PARTS_FROM`] parts' bytes (`S3_UPLOAD_PART_BYTES`,
    /// 64 MiB by default), a multipart upload of equal parts above (a single
    /// `PUT` stops at 5 GiB on S3 and R2).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        cache_control: &str,
    ) -> Result<(), JobError> {
        let size = tokio::fs::metadata(path).await?.len();
        if size <= self.part_bytes * PARTS_FROM {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| JobError::retryable(format!("reading {} to upload it: {e}", path.display())))?;
            return self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .cache_control(cache_control)
                .content_length(size as i64)
                .body(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| JobError::retryable(format!("storage PUT {key}: {}", describe(&e))));
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(cache_control)
            .send()
            .await
            .map_err(|e| JobError::retryable(format!("storage multipart create {key}: {}", describe(&e))))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let uploaded = self.put_parts(key, &upload_id, path, size).await;
        if uploaded.is_err() {
            // Parts already stored would otherwise be kept (and billed) until a lifecycle rule drops them.
            let _ =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
        }
        uploaded
    }

    async fn put_parts(&self, key: &str, upload_id: &str, path: &Path, size: u64) -> Result<(), JobError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        use aws_smithy_types::byte_stream::Length;
        let mut parts = Vec::new();
        for (i, offset) in (0..size).step_by(self.part_bytes as usize).enumerate() {
            let number = i as i32 + 1;
            let length = self.part_bytes.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .map_err(|e| JobError::retryable(format!("reading {} to upload it: {e}", path.display())))?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(length as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    JobError::retryable(format!("storage multipart part {number} of {key}: {}", describe(&e)))
                })?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build());
        }
        let count = parts.len();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| JobError::retryable(format!("storage multipart complete {key}: {}", describe(&e))))?;
        tracing::info!(key, bytes = size, parts = count, "stored in parts");
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), JobError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| JobError::retryable(format!("storage DELETE {key}: {}", describe(&e))))
    }
}

fn describe<E: std::error::Error>(e: &E) -> String {
    // The SDK's Display is terse ("service error"); walk the sources.
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// What the first read of a source found.
#[derive(Debug)]
pub enum FirstRead {
    /// No such object.
    Missing,
    /// Its size and version, and its first bytes.
    Read { info: SourceInfo, bytes: Bytes },
}

/// The complete length in a `Content-Range: bytes 0-99/1234` answer.
fn content_range_total(header: &str) -> Option<u64> {
    header.trim().strip_prefix("bytes ")?.rsplit_once('/')?.1.trim().parse().ok()
}

/// The object's size and version, as storage reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    pub size: u64,
    pub etag: Option<String>,
}

/// What the job is told when its source changed under it.
pub const REPLACED: &str = "the upload was replaced after it was notified; notify again to transcode the new file";

/// An entity tag as `If-Match` takes it: quoted (stores differ in whether they quote it).
fn quoted_etag(etag: &str) -> String {
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    format!("\"{bare}\"")
}

/// Whether an entity tag names the same version as another, however each is quoted.
pub fn same_etag(a: &str, b: &str) -> bool {
    quoted_etag(a) == quoted_etag(b)
}

/// Files larger than this many parts are uploaded in parts
/// ([`Storage::put_file`]); every part but the last has the same size (R2
/// wants them equal).
pub const PARTS_FROM: u64 = 1;

/// How often a ranged GET is asked for again when its body breaks off.
const BODY_ATTEMPTS: usize = 3;

/// Where the outputs of an attempt go.
#[derive(Clone)]
pub enum Sink {
    Bucket(Storage),
    /// A local folder (the CLI's `transcode` command and the tests).
    Dir(PathBuf),
}

impl Sink {
    pub async fn put(&self, key: &str, bytes: Bytes, content_type: &str, cache_control: &str) -> Result<(), JobError> {
        match self {
            Sink::Bucket(s) => s.put(key, bytes, content_type, cache_control).await,
            Sink::Dir(root) => {
                let path = root.join(key);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                // Write then rename, so a reader never sees half a file.
                let tmp = path.with_extension("partial");
                tokio::fs::write(&tmp, &bytes).await?;
                tokio::fs::rename(&tmp, &path).await?;
                Ok(())
            }
        }
    }
}

impl Sink {
    /// Stores the file at `path` at `key` (a folder sink copies it).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        cache_control: &str,
    ) -> Result<(), JobError> {
        match self {
            Sink::Bucket(s) => s.put_file(key, path, content_type, cache_control).await,
            Sink::Dir(root) => {
                let target = root.join(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let tmp = target.with_extension("partial");
                tokio::fs::copy(path, &tmp).await?;
                tokio::fs::rename(&tmp, &target).await?;
                Ok(())
            }
        }
    }
}

/// Spool files are `source-<n>.spool` in a job's folder of the work directory.
const SPOOL_PREFIX: &str = "source-";
const SPOOL_SUFFIX: &str = ".spool";

/// A download's spool files in a job's folder: `download-<n>.fmp4` (the
/// kept fragments) and `download-<n>.mp4` (their remux); `crate::download`
/// names them, this module removes what a killed run left.
pub const DOWNLOAD_SPOOL_PREFIX: &str = "download-";

/// Removes the spools a previous run left behind (it was killed mid-job):
/// only files named like spools (the source's, and a download's fragments
/// and remux: [`DOWNLOAD_SPOOL_PREFIX`]), inside job folders, and then the folders
/// they leave empty; nothing else in `work_dir` is touched. Returns the
/// bytes freed.
pub fn remove_stale_spools(work_dir: &Path) -> u64 {
    let mut freed = 0;
    let Ok(jobs) = std::fs::read_dir(work_dir) else { return 0 };
    for job in jobs.flatten() {
        let dir = job.path();
        if !job.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for file in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            let download =
                name.starts_with(DOWNLOAD_SPOOL_PREFIX) && (name.ends_with(".fmp4") || name.ends_with(".mp4"));
            if (name.starts_with(SPOOL_PREFIX) && name.ends_with(SPOOL_SUFFIX)) || download {
                let size = file.metadata().map_or(0, |m| m.len());
                if std::fs::remove_file(file.path()).is_ok() {
                    freed += size;
                }
            }
        }
        let _ = std::fs::remove_dir(&dir); // only succeeds when empty
    }
    freed
}

/// Bytes free for this process in the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail * st.f_frsize)
}

/// The chunk size of ranged reads: large enough for throughput, small enough
/// that the first frames decode soon after the job starts.
pub const CHUNK: u64 = 4 * 1024 * 1024;

/// A `Read + Seek` view of an object in the bucket for libav. Runs on a
/// blocking thread; fetches chunks with the async client through `handle`,
/// keeps the next chunk in flight while libav decodes the current one, and
/// spools fetched chunks to a file in the work directory.
pub struct SourceReader<S: RangeSource = Storage> {
    storage: S,
    key: String,
    /// The version notified; every read is made against it.
    etag: Option<String>,
    size: u64,
    pos: u64,
    handle: Handle,
    spool: File,
    spool_path: PathBuf,
    have: HashMap<u64, u64>,
    prefetch: Option<(u64, JoinHandle<Result<Bytes, JobError>>)>,
    /// The last failure of storage or of the spool, so a libav read error
    /// can be told apart from a corrupt file.
    pub failure: crate::pipeline::IoFailure,
}

/// Where a [`SourceReader`] fetches byte ranges from: the bucket, or in
/// unit tests bytes in memory.
pub trait RangeSource: Clone + Send + Sync + 'static {
    /// Bytes `start..=end` of `key`, only from version `if_match` when given.
    fn get_range(
        &self,
        key: &str,
        start: u64,
        end: u64,
        if_match: Option<&str>,
    ) -> impl std::future::Future<Output = Result<Bytes, JobError>> + Send;
}

impl RangeSource for Storage {
    async fn get_range(&self, key: &str, start: u64, end: u64, if_match: Option<&str>) -> Result<Bytes, JobError> {
        Storage::get_range(self, key, start, end, if_match).await
    }
}

impl RangeSource for Bytes {
    async fn get_range(&self, _key: &str, start: u64, end: u64, _if_match: Option<&str>) -> Result<Bytes, JobError> {
        Ok(self.slice(start as usize..=end as usize))
    }
}

impl<S: RangeSource> SourceReader<S> {
    pub fn new(storage: S, key: &str, info: &SourceInfo, handle: Handle, work_dir: &Path) -> Result<Self, JobError> {
        std::fs::create_dir_all(work_dir)?;
        let spool_path = work_dir.join(format!(
            "{SPOOL_PREFIX}{}{SPOOL_SUFFIX}",
            std::process::id() as u64 * 1_000_000 + u64::from(rand_u32())
        ));
        let spool = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&spool_path)?;
        Self::with_spool(storage, key, info, handle, spool, spool_path)
    }

    /// A reader spooling to an already open file (tests give it one that is full).
    pub fn with_spool(
        storage: S,
        key: &str,
        info: &SourceInfo,
        handle: Handle,
        spool: File,
        spool_path: PathBuf,
    ) -> Result<Self, JobError> {
        Ok(Self {
            storage,
            key: key.to_owned(),
            etag: info.etag.clone(),
            size: info.size,
            pos: 0,
            handle,
            spool,
            spool_path,
            have: HashMap::new(),
            prefetch: None,
            failure: Arc::new(Mutex::new(None)),
        })
    }

    /// Takes `bytes` as the source's first chunk, already read (by
    /// [`Storage::read_first`]): spooled now, and the next chunk asked for;
    /// or, for an MP4 whose index (`moov`) comes after its media, the chunk
    /// where the index starts, which libav reads next, so that read does not
    /// wait for a request of its own.
    pub fn with_first_chunk(mut self, bytes: Bytes) -> std::io::Result<Self> {
        if !bytes.is_empty() && bytes.len() as u64 == CHUNK.min(self.size) {
            if let Some(index) = index_after_media(&bytes, self.size).map(|at| at / CHUNK).filter(|&i| i > 0) {
                self.prefetch = Some((index, self.fetch(index)));
            }
            self.store(0, &bytes)?;
        }
        Ok(self)
    }

    fn fetch(&self, idx: u64) -> JoinHandle<Result<Bytes, JobError>> {
        let (storage, key, etag) = (self.storage.clone(), self.key.clone(), self.etag.clone());
        let start = idx * CHUNK;
        let end = (start + CHUNK).min(self.size) - 1;
        self.handle.spawn(async move { RangeSource::get_range(&storage, &key, start, end, etag.as_deref()).await })
    }

    fn ensure(&mut self, idx: u64) -> std::io::Result<()> {
        if self.have.contains_key(&idx) {
            return Ok(());
        }
        let task = match self.prefetch.take() {
            Some((i, t)) if i == idx => t,
            other => {
                self.prefetch = other;
                self.fetch(idx)
            }
        };
        let bytes = self.handle.block_on(task).map_err(|e| std::io::Error::other(e.to_string()))?.map_err(|e| {
            *self.failure.lock().expect("not poisoned") = Some(e.clone());
            std::io::Error::other(e.to_string())
        })?;
        self.store(idx, &bytes)
    }

    /// Spools chunk `idx` and starts on the next one.
    fn store(&mut self, idx: u64, bytes: &Bytes) -> std::io::Result<()> {
        // A full work disk is ours to fix, not a damaged upload.
        self.spool.write_all_at(bytes, idx * CHUNK).inspect_err(|e| {
            let copy = e
                .raw_os_error()
                .map_or_else(|| std::io::Error::new(e.kind(), e.to_string()), std::io::Error::from_raw_os_error);
            *self.failure.lock().expect("not poisoned") = Some(JobError::from(copy));
        })?;
        self.have.insert(idx, bytes.len() as u64);
        // Sequential reading is the common case: start on the next chunk now.
        let next = idx + 1;
        if next * CHUNK < self.size && !self.have.contains_key(&next) && self.prefetch.is_none() {
            self.prefetch = Some((next, self.fetch(next)));
        }
        Ok(())
    }
}

/// Where the box after the media (`mdat`) starts in an MP4 whose first
/// bytes are `head` and whose length is `size`, when no index (`moov`) came
/// before the media: where libav looks for the index next. `None` for
/// anything else (a faststart MP4, another container, a head too short).
fn index_after_media(head: &[u8], size: u64) -> Option<u64> {
    let mut at = 0u64;
    while at + 8 <= head.len() as u64 {
        let i = at as usize;
        let small = u64::from(u32::from_be_bytes(head[i..i + 4].try_into().ok()?));
        let kind = &head[i + 4..i + 8];
        let len = match small {
            // To the end of the file: nothing after it.
            0 => return None,
            1 => u64::from_be_bytes(head.get(i + 8..i + 16)?.try_into().ok()?),
            n => n,
        };
        if len < 8 || !kind.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        match kind {
            b"moov" => return None,
            b"mdat" => return Some(at + len).filter(|&next| next < size),
            _ => at += len,
        }
    }
    None
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).unwrap_or_default();
    u32::from_le_bytes(b)
}

impl<S: RangeSource> Read for SourceReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let idx = self.pos / CHUNK;
        self.ensure(idx)?;
        let chunk_end = idx * CHUNK + self.have[&idx];
        let n = ((chunk_end - self.pos) as usize).min(buf.len());
        let n = self.spool.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<S: RangeSource> Seek for SourceReader<S> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.size as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}

impl<S: RangeSource> Drop for SourceReader<S> {
    fn drop(&mut self) {
        if let Some((_, t)) = self.prefetch.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.spool_path);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn boxed(kind: &[u8; 4], len: u32) -> Vec<u8> {
        let mut b = len.to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(len.min(64) as usize, 0);
        b
    }

    #[test]
    fn the_index_after_the_media_is_found_from_the_head() {
        // ftyp, free, mdat (1000 bytes), then moov: the index starts at 32 + 8 + 1000.
        let mut head = boxed(b"ftyp", 32);
        head.extend(boxed(b"free", 8));
        head.extend(boxed(b"mdat", 1000));
        assert_eq!(index_after_media(&head, 2000), Some(1040));
        // The media runs to the end: nothing after it.
        assert_eq!(index_after_media(&head, 1040), None);
        // A 64-bit media size.
        let mut large = boxed(b"ftyp", 32);
        large.extend(1u32.to_be_bytes());
        large.extend(b"mdat");
        large.extend((5_000_000_000u64).to_be_bytes());
        assert_eq!(index_after_media(&large, 6_000_000_000), Some(5_000_000_032));
        // Faststart: the index comes first.
        let mut fast = boxed(b"ftyp", 32);
        fast.extend(boxed(b"moov", 500));
        assert_eq!(index_after_media(&fast, 10_000), None);
        // Not an MP4.
        assert_eq!(index_after_media(b"\x1a\x45\xdf\xa3 matroska and more", 10_000), None);
        assert_eq!(index_after_media(&[0, 0, 0], 10_000), None);
    }

    /// An MP4 whose index is at the end: with the first chunk, the reader
    /// asks for the index's chunk at once, and then libav finds it there.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_index_at_the_end_is_asked_for_with_the_first_chunk() {
        let size = 3 * CHUNK as usize + 5000;
        let mut data = boxed(b"ftyp", 32);
        data.extend(((size - 32 - 4000) as u32).to_be_bytes());
        data.extend(b"mdat");
        data.resize(size, 7);
        let data = Bytes::from(data);
        let reads = Arc::new(AtomicUsize::new(0));
        let dir = tempfile::tempdir().unwrap();
        let info = SourceInfo { size: size as u64, etag: None };
        let first = data.slice(..CHUNK as usize);
        let source = Counted(data.clone(), Arc::clone(&reads));
        let reader = SourceReader::new(source, "k", &info, Handle::current(), dir.path()).unwrap();
        let reader = reader.with_first_chunk(first).unwrap();
        assert_eq!(reader.prefetch.as_ref().map(|(i, _)| *i), Some(3), "the index's chunk is in flight");
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            reader.seek(SeekFrom::Start(size as u64 - 4000)).unwrap();
            let mut index = vec![0; 4000];
            reader.read_exact(&mut index).unwrap();
            assert_eq!(index, vec![7; 4000]);
        })
        .await
        .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one ranged read: the prefetched index's chunk");
    }

    #[test]
    fn the_size_comes_from_content_range() {
        assert_eq!(content_range_total("bytes 0-4194303/9417759"), Some(9_417_759));
        assert_eq!(content_range_total("bytes 0-99/100"), Some(100));
        assert_eq!(content_range_total("bytes 0-99/*"), None);
        assert_eq!(content_range_total("items 0-1/2"), None);
    }

    /// Bytes in memory that count the ranged reads asked of them.
    #[derive(Clone)]
    struct Counted(Bytes, Arc<AtomicUsize>);

    impl RangeSource for Counted {
        async fn get_range(
            &self,
            _key: &str,
            start: u64,
            end: u64,
            _if_match: Option<&str>,
        ) -> Result<Bytes, JobError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(self.0.slice(start as usize..=end as usize))
        }
    }

    /// The first chunk, read before the reader exists (with the size and
    /// version), is not asked for again: the reader starts on the second.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_first_chunk_read_is_not_read_again() {
        let size = CHUNK as usize + 1000;
        let data = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let reads = Arc::new(AtomicUsize::new(0));
        let source = Counted(data.clone(), Arc::clone(&reads));
        let dir = tempfile::tempdir().unwrap();
        let info = SourceInfo { size: size as u64, etag: None };
        let first = data.slice(..CHUNK as usize);
        let (all, asked) = tokio::task::spawn_blocking({
            let (dir, handle) = (dir.path().to_path_buf(), Handle::current());
            move || {
                let mut reader =
                    SourceReader::new(source, "k", &info, handle, &dir).unwrap().with_first_chunk(first).unwrap();
                let mut head = vec![0; 100];
                reader.read_exact(&mut head).unwrap();
                let after_head = reads.load(Ordering::SeqCst);
                let mut all = head;
                reader.read_to_end(&mut all).unwrap();
                (all, after_head)
            }
        })
        .await
        .unwrap();
        assert_eq!(all, data);
        assert!(asked <= 1, "only the second chunk was asked for ({asked} reads)");
    }
}

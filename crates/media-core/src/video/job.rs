//! The transcoding job: its model and the state machine every change goes
//! through. The video service's Durable Object stores jobs and calls these
//! transitions; nothing else changes a job's status.
//!
//! ```text
//!            notify (new, or retry of error / stale)
//!                 │
//!                 ▼            lease                complete
//!   ┌────────► queued ───────────────► processing ───────────► done
//!   │  retryable failure               │   │  ▲ heartbeat
//!   │  or expired lease, attempts left │   └──┘
//!   └──────────────────────────────────┤
//!                                      │ permanent failure, or no attempts left
//!                                      ▼
//!                                    error ──(notify)──► queued
//! ```
//!
//! A lease is fencing: every call from a transcoder names its lease, and a
//! lease that has been replaced or ended is refused with [`LeaseLost`], so a
//! transcoder that lost its job stops instead of overwriting another's work.
//! The one exception is a `complete` repeated by the holder whose first
//! `complete` committed (its answer was lost): it is answered as done.
//!
//! A long source may be split after its probe ([`Job::plan`]): the job
//! stays `processing` while its chunk tasks ([`ChunkTable`]) run, each with
//! its own lease, attempts and backoff, and is `done` when the last task
//! is. The lease that planned becomes task 0's; a task that fails for good
//! (or runs out of attempts) ends the job and every other task.
//!
//! A job keeps the full text of every failure (for logs and Sentry); what
//! the public routes show of it is [`public_failure_message`]: messages
//! written for uploaders pass, our own faults become a generic sentence.

use crate::video::delivery::{CallbackState, CallbackStatus};
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, JobId, LeaseId, VideoId};
use crate::keys::{ObjectKey, OutputId, RungName};
use crate::time::{epoch_millis, Timestamp};
use crate::video::access::PlaybackOptions;
use crate::video::bandwidth::{measured_bandwidth, SegmentEntry};
use crate::video::chunks::{
    plan_chunks, ChunkGeometry, ChunkRange, ChunkReport, ChunkSettings, ChunkSource, ChunkSpec,
};
use crate::video::download::{DownloadReport, DownloadState, DownloadStatus};
use crate::video::extras::{CoverMeta, Extras, PreviewMeta};
use crate::video::ladder::LadderOptions;
use crate::video::video_codec::VideoRange;

/// Where a job is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Processing,
    Done,
    Error,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Done => "done",
            JobStatus::Error => "error",
        }
    }
}

impl JobStatus {
    /// How long the edge may keep a public read of a job in this status
    /// (`/job-status`, `/playback-url`, the HLS route's output check), in
    /// seconds. Short while the job moves, so progress and heartbeats stay
    /// fresh; longer once done, which is final (a notify or a cancel leaves a
    /// done job as it is).
    pub fn public_cache_ttl_s(self) -> u32 {
        match self {
            JobStatus::Queued | JobStatus::Processing => 1,
            // A notify can queue a failed job again; pollers see it within 2 s.
            JobStatus::Error => 2,
            JobStatus::Done => 60,
        }
    }
}

/// Whose fault a failure was: what decides how much of its text the public
/// routes may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The upload itself (a permanent failure the transcoder reported, with
    /// a message written for the uploader).
    Upload,
    /// Ours: a retryable fault, a crash, a lease that ran out.
    Processing,
    /// The caller canceled the job.
    Canceled,
}

/// What the public routes show of a failure whose full text is `message`.
/// `attempts` is the number of attempts made; `ended` is true when the job
/// ended in `error` (false while a retry is queued).
///
/// Messages of upload failures pass when they carry no internals (storage
/// keys, URLs, panic text); everything of ours becomes a generic sentence,
/// since its detail means nothing to an uploader and may reveal the
/// platform's insides. Jobs stored before the kind was recorded (`None`) are
/// shown like upload failures: their text passes only when it is clean.
pub fn public_failure_message(kind: Option<FailureKind>, message: &str, attempts: u32, ended: bool) -> String {
    const UPLOAD: &str = "the upload could not be processed; upload a video file in a supported format";
    match kind {
        Some(FailureKind::Canceled) => "canceled through the API".to_owned(),
        Some(FailureKind::Processing) if ended => {
            format!(
                "processing failed on our side after {attempts} attempt{}; call /notify-upload-complete to try again",
                if attempts == 1 { "" } else { "s" }
            )
        }
        Some(FailureKind::Processing) => "processing failed on our side; it will be retried".to_owned(),
        Some(FailureKind::Upload) | None if is_presentable(message) => message.to_owned(),
        Some(FailureKind::Upload) => UPLOAD.to_owned(),
        None if ended => "processing failed; call /notify-upload-complete to try again".to_owned(),
        None => "processing failed; it will be retried".to_owned(),
    }
}

/// True when `message` reads as a sentence for people and shows nothing of
/// the platform's insides.
fn is_presentable(message: &str) -> bool {
    const INTERNAL: &[&str] = &[
        "raw/",
        "hls/",
        "images/",
        "panic",
        "internal error",
        "backtrace",
        "out of bounds",
        "unwrap",
        ".rs:",
        "://",
        "127.0.0.1",
        "localhost",
        "x-amz",
        "lease_",
        "job_",
        "gave up after",
        "heartbeat",
        "storage",
        "status 5",
        "errno",
        "os error",
    ];
    let lower = message.to_ascii_lowercase();
    !message.is_empty()
        && message.len() <= 300
        && !message.chars().any(char::is_control)
        && !INTERNAL.iter().any(|needle| lower.contains(needle))
}

/// How hard the platform tries before a job ends in `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts per run (a run starts with a notify). Default 3.
    pub max_attempts: u32,
    /// How long a lease lasts without a heartbeat. Default 30 s.
    pub lease_ttl_ms: u64,
    /// Wait before the first retry; each further retry waits 3x longer. Default 5 s.
    pub backoff_base_ms: u64,
}

/// A new lease lasts this long (or the lease TTL, if shorter) until its first
/// heartbeat: a lease handed to a transcoder that vanished during its
/// long-poll (stopped, crashed) comes back to the queue quickly.
pub const FIRST_HEARTBEAT_MS: u64 = 10_000;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 }
    }
}

/// How often a transcoder heartbeats, in milliseconds: at least this...
pub const MIN_HEARTBEAT_INTERVAL_MS: u64 = 250;
/// ...and at most this, so progress stays fresh for pollers.
pub const MAX_HEARTBEAT_INTERVAL_MS: u64 = 2_000;

/// The heartbeat interval a transcoder keeps, given the one its lease asks
/// for: within [`MIN_HEARTBEAT_INTERVAL_MS`]..=[`MAX_HEARTBEAT_INTERVAL_MS`],
/// so a lease from a misconfigured (or older) service can neither flood it
/// with calls nor leave the lease to lapse between two beats.
pub fn bounded_heartbeat_interval_ms(asked_ms: u64) -> u64 {
    asked_ms.clamp(MIN_HEARTBEAT_INTERVAL_MS, MAX_HEARTBEAT_INTERVAL_MS)
}

impl RetryPolicy {
    /// How often the holder of a lease must heartbeat: six beats per lease
    /// TTL, so that several may be lost before the lease runs out, within the
    /// bounds of [`bounded_heartbeat_interval_ms`] (every 2 s with the default
    /// 30 s lease).
    pub fn heartbeat_interval_ms(&self) -> u64 {
        bounded_heartbeat_interval_ms(self.lease_ttl_ms / 6)
    }

    /// Wait before retrying after attempt `attempt` (1-based) failed:
    /// base, 3x base, 9x base..., at most 10 minutes.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let factor = 3u64.saturating_pow(attempt.saturating_sub(1));
        self.backoff_base_ms.saturating_mul(factor).min(600_000)
    }
}

/// A transcoder's claim on a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: LeaseId,
    #[serde(with = "epoch_millis")]
    pub expires_at: Timestamp,
    /// Where this attempt writes its outputs.
    pub output_id: OutputId,
}

/// The source upload a job transcodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUpload {
    pub raw_key: String,
    pub content_type: String,
    pub size: u64,
    /// The object's entity tag (quoted, as storage sent it) when the notify
    /// checked it: the transcoder reads the source with `If-Match` on it, so
    /// a source replaced after the notify is refused rather than mixed in.
    /// Absent on jobs stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A finished ladder, as the transcoder reports it (a chunk task reports a
/// [`ChunkReport`] instead, and the job assembles this from them).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobResult {
    pub duration_s: f64,
    pub renditions: Vec<Rendition>,
    /// Absent when the video has no frame to show (never for a finished job
    /// in practice, but the model allows it).
    pub thumbnails: Option<ThumbnailMeta>,
    /// Whether the ladder carries an audio track.
    pub has_audio: bool,
    /// The MP4 download, when the job asked for one (absent from
    /// transcoders that predate downloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadReport>,
    /// The cover, when the job asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<CoverMeta>,
    /// The animated preview, when the job asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewMeta>,
}

/// One rung of a finished ladder, as the transcoder reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    #[cfg_attr(feature = "openapi", schema(example = "720p"))]
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bits per second over any segment (HLS `BANDWIDTH`).
    pub bandwidth: u64,
    /// Mean bits per second (HLS `AVERAGE-BANDWIDTH`).
    pub average_bandwidth: u64,
    /// RFC 6381 codecs string, e.g. `avc1.640028,mp4a.40.2`.
    pub codecs: String,
    pub frame_rate: f64,
    /// `PQ` or `HLG` for an HDR source's HEVC and AV1 rungs (10-bit, HLS
    /// `VIDEO-RANGE`); absent for SDR.
    #[serde(default, skip_serializing_if = "VideoRange::is_sdr")]
    pub video_range: VideoRange,
}

/// How the thumbnail sprite is laid out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThumbnailMeta {
    /// Seconds between two thumbnails.
    pub interval_s: f64,
    pub tile_w: u32,
    pub tile_h: u32,
    pub cols: u32,
    pub rows: u32,
    pub count: u32,
}

/// One video's transcoding job, as the job store keeps it (times as epoch
/// milliseconds, [`epoch_millis`]; the public form is `api::JobView`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: JobId,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub source: SourceUpload,
    pub status: JobStatus,
    /// 0-100, never decreasing within an attempt.
    pub progress: u8,
    /// What the transcoder is doing (`probing`, `encoding`, `publishing`...).
    pub stage: Option<String>,
    /// Why the job ended in `error` (only set in that status).
    pub error: Option<String>,
    /// Why the last attempt failed, kept while a retry is queued.
    pub last_error: Option<String>,
    /// Whose fault the last failure was (absent on jobs stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// The lease whose `complete` finished the job: a repeat of that
    /// `complete` (its first answer was lost) is answered as done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by: Option<LeaseId>,
    /// Attempts started in this run.
    pub attempts: u32,
    pub max_attempts: u32,
    /// True once a player can start: every rung has segments and a playlist.
    pub playable: bool,
    #[serde(with = "epoch_millis")]
    pub created_at: Timestamp,
    #[serde(with = "epoch_millis")]
    pub updated_at: Timestamp,
    /// When the job entered the queue last; the queue is served oldest first.
    #[serde(with = "epoch_millis")]
    pub queued_at: Timestamp,
    /// A queued retry waits until then (backoff).
    #[serde(with = "epoch_millis")]
    pub not_before: Timestamp,
    #[serde(with = "epoch_millis::option")]
    pub started_at: Option<Timestamp>,
    #[serde(with = "epoch_millis::option")]
    pub finished_at: Option<Timestamp>,
    #[serde(with = "epoch_millis::option")]
    pub heartbeat_at: Option<Timestamp>,
    pub lease: Option<Lease>,
    /// The output folder players should use: the attempt that became playable.
    pub output_id: Option<OutputId>,
    pub result: Option<JobResult>,
    pub ladder: LadderOptions,
    /// Signed URLs, encryption and the MP4 download, as the notify asked
    /// (all off for jobs stored before they existed).
    #[serde(default, skip_serializing_if = "PlaybackOptions::is_default")]
    pub playback: PlaybackOptions,
    /// The cover and the preview, as the notify asked (none for jobs
    /// stored before they existed).
    #[serde(default, skip_serializing_if = "Extras::is_default")]
    pub extras: Extras,
    /// The video's caption tracks, by language, in the order they were
    /// added (the captions routes); kept across re-runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captions: Vec<crate::video::captions::CaptionTrack>,
    /// How the job's webhooks are being delivered (absent when it has no
    /// destination): kept here so every read of the job shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackState>,
    /// The chunk tasks of a run split after its probe (absent: single-pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ChunkTable>,
}

/// Where one chunk task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Processing,
    Done,
}

/// One chunk of a chunked run, with its own lease, attempts and backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTask {
    pub range: ChunkRange,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Attempts started on this task in this run.
    pub attempts: u32,
    /// A queued retry waits until then (its own backoff).
    #[serde(with = "epoch_millis")]
    pub not_before: Timestamp,
    /// 0-100 within the task.
    #[serde(default)]
    pub progress: u8,
    /// The chunk's own segments (from its `first_seq`) uploaded on every
    /// video rung: a contiguous prefix that never shrinks.
    #[serde(default)]
    pub published_segments: u32,
    /// Task 0: the audio rendition's segments uploaded (from seq 0).
    #[serde(default)]
    pub published_audio_segments: u32,
    /// What the task reported at complete (set once done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ChunkReport>,
}

/// A run split into chunk tasks after its probe; every task writes under
/// the one `output_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTable {
    pub output_id: OutputId,
    pub geometry: ChunkGeometry,
    pub t0_s: f64,
    pub duration_s: f64,
    pub has_audio: bool,
    /// The video rungs every task encodes, as planned.
    #[serde(default)]
    pub rungs: Vec<crate::video::ladder::Rung>,
    pub tasks: Vec<ChunkTask>,
}

/// What a notify did, and so how `POST /notify-upload-complete` answers
/// ([`NotifyOutcome::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOutcome {
    /// A new job was queued (HTTP 202).
    Created,
    /// A failed or stale job was queued again (HTTP 202).
    Requeued,
    /// The job was already queued, running or done; nothing changed (HTTP 200).
    Unchanged,
    /// The job was still waiting in the queue and now reads the source named
    /// now (a re-upload before any transcoder took it): the same job, in the
    /// same place, answered like an unchanged one (HTTP 200).
    SourceUpdated,
}

impl NotifyOutcome {
    /// The status `POST /notify-upload-complete` answers with: 202 when work
    /// was queued, 200 when the job is left as it was.
    pub fn http_status(self) -> u16 {
        match self {
            NotifyOutcome::Created | NotifyOutcome::Requeued => 202,
            NotifyOutcome::Unchanged | NotifyOutcome::SourceUpdated => 200,
        }
    }

    /// Whether the notify queued work (a new job, or a retry).
    pub fn queued_work(self) -> bool {
        self.http_status() == 202
    }
}

/// The caller does not hold the lease it names (any more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease {lease_id} does not hold job {job_id} (the job is {status}); stop working on it")]
pub struct LeaseLost {
    pub job_id: JobId,
    pub lease_id: LeaseId,
    pub status: &'static str,
}

/// What a `complete` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The job is now done.
    Completed,
    /// The same lease had already completed it; nothing changed.
    AlreadyDone,
}

/// Why a lease that ran out failed its attempt.
const EXPIRED: &str = "the transcoder stopped sending heartbeats (its lease expired)";

/// What a failure report or an expired lease led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again after the backoff.
    Retrying { not_before: Timestamp },
    /// Ended in `error`.
    Failed,
}

impl Job {
    /// The state of the job's MP4 download; `None` when the video did not ask for one.
    /// Ready only once the job is done and its current output carries it.
    pub fn download_state(&self) -> Option<DownloadState> {
        self.playback.download.as_ref()?;
        let report = self.result.as_ref().and_then(|r| r.download.as_ref());
        let (status, rung, size) = match (self.status, report) {
            (JobStatus::Done, Some(DownloadReport::Ready { rung, size })) if self.output_id.is_some() => {
                (DownloadStatus::Ready, Some(rung.clone()), Some(*size))
            }
            (JobStatus::Done, Some(DownloadReport::Errored { rung, .. })) => {
                (DownloadStatus::Errored, rung.clone(), None)
            }
            // Done without a report: made by a transcoder that knew nothing of downloads.
            (JobStatus::Done, _) => (DownloadStatus::Errored, None, None),
            (JobStatus::Error, _) => (DownloadStatus::Errored, None, None),
            (JobStatus::Queued | JobStatus::Processing, _) => (DownloadStatus::Preparing, None, None),
        };
        Some(DownloadState { status, rung, size })
    }

    /// A new job, queued at `now`.
    pub fn new(
        job_id: JobId,
        app_id: AppId,
        video_id: VideoId,
        source: SourceUpload,
        ladder: LadderOptions,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Job {
        Job {
            job_id,
            app_id,
            video_id,
            source,
            status: JobStatus::Queued,
            progress: 0,
            stage: None,
            error: None,
            last_error: None,
            failure: None,
            completed_by: None,
            attempts: 0,
            max_attempts: policy.max_attempts,
            playable: false,
            created_at: now,
            updated_at: now,
            queued_at: now,
            not_before: now,
            started_at: None,
            finished_at: None,
            heartbeat_at: None,
            lease: None,
            output_id: None,
            result: None,
            ladder,
            playback: PlaybackOptions::default(),
            extras: Extras::default(),
            captions: Vec::new(),
            callback: None,
            chunks: None,
        }
    }

    /// How long the edge may keep a public read of this job: its status'
    /// time ([`JobStatus::public_cache_ttl_s`]), but no more than 2 s while
    /// a webhook is still being delivered, so `callback_status` moves on.
    pub fn public_cache_ttl_s(&self) -> u32 {
        let ttl = self.status.public_cache_ttl_s();
        match &self.callback {
            Some(c) if c.status == CallbackStatus::Pending => ttl.min(2),
            _ => ttl,
        }
    }

    /// `error` as the public routes show it ([`public_failure_message`]).
    pub fn public_error(&self) -> Option<String> {
        self.error.as_deref().map(|m| public_failure_message(self.failure, m, self.attempts, true))
    }

    /// `last_error` as the public routes show it.
    pub fn public_last_error(&self) -> Option<String> {
        self.last_error
            .as_deref()
            .map(|m| public_failure_message(self.failure, m, self.attempts, self.status == JobStatus::Error))
    }

    /// True when the job is processing under a lease that has run out (a
    /// chunked job: when one of its running tasks' has).
    pub fn lease_expired(&self, now: Timestamp) -> bool {
        if let (JobStatus::Processing, Some(table)) = (self.status, &self.chunks) {
            return table.tasks.iter().any(|t| t.lease_expired(now));
        }
        self.status == JobStatus::Processing && self.lease.as_ref().is_none_or(|l| now > l.expires_at)
    }

    /// When the earliest live lease (the job's, or a running chunk task's)
    /// runs out: the alarm acts then.
    pub fn next_lease_expiry(&self) -> Option<Timestamp> {
        if self.status != JobStatus::Processing {
            return None;
        }
        let tasks = self.chunks.iter().flat_map(|c| &c.tasks).filter(|t| t.status == TaskStatus::Processing);
        let leases = self.lease.iter().chain(tasks.filter_map(|t| t.lease.as_ref()));
        leases.map(|l| l.expires_at).min()
    }

    /// May a transcoder lease this job at `now`?
    pub fn is_leasable(&self, now: Timestamp) -> bool {
        self.status == JobStatus::Queued && self.not_before <= now
    }

    /// A notify for a video that already has this job. Queued, running (with
    /// a live lease) and done jobs are left as they are; a failed job, or one
    /// whose transcoder went silent, is queued again with a fresh attempt
    /// budget and the source the caller names now.
    pub fn renotify(&mut self, source: SourceUpload, policy: &RetryPolicy, now: Timestamp) -> NotifyOutcome {
        let retry = match self.status {
            JobStatus::Queued | JobStatus::Done => false,
            JobStatus::Processing => self.lease_expired(now),
            JobStatus::Error => true,
        };
        if !retry {
            // Nothing has read the source yet: what the caller names now
            // (a corrected re-upload, its new ETag) is what will be read.
            if self.status == JobStatus::Queued && self.attempts == 0 && self.source != source {
                self.source = source;
                return NotifyOutcome::SourceUpdated;
            }
            return NotifyOutcome::Unchanged;
        }
        if self.status == JobStatus::Processing {
            self.last_error = Some("the transcoder stopped sending heartbeats; retried on request".into());
            self.failure = Some(FailureKind::Processing);
        }
        self.run_again(source, policy, now);
        NotifyOutcome::Requeued
    }

    /// Queues a new run of the job on `source` at once, with a fresh
    /// attempt budget and no error.
    fn run_again(&mut self, source: SourceUpload, policy: &RetryPolicy, now: Timestamp) {
        self.source = source;
        self.attempts = 0;
        self.max_attempts = policy.max_attempts;
        self.enqueue(now, now);
        self.error = None;
    }

    /// A notify asking for other extras (cover, preview) than the job was
    /// made with: the job runs again with them, whatever its state. A run
    /// in progress loses its lease (its holder stops at its next call); a
    /// done video stops being playable until the new run is. Returns
    /// `Requeued`, or `None` when the extras are the same (then
    /// [`Job::renotify`] decides).
    pub fn rerun_for(
        &mut self,
        extras: &Extras,
        source: SourceUpload,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Option<NotifyOutcome> {
        if !self.extras.differs_from(extras) {
            return None;
        }
        self.extras = extras.clone();
        self.run_again(source, policy, now);
        self.last_error = None;
        self.failure = None;
        Some(NotifyOutcome::Requeued)
    }

    fn enqueue(&mut self, now: Timestamp, not_before: Timestamp) {
        self.status = JobStatus::Queued;
        self.progress = 0;
        self.stage = None;
        self.lease = None;
        self.playable = false;
        self.output_id = None;
        self.result = None;
        self.chunks = None;
        self.finished_at = None;
        self.queued_at = now;
        self.not_before = not_before;
        self.updated_at = now;
    }

    /// Hands the job to a transcoder. The caller mints `lease_id` and `output_id`.
    pub fn lease(
        &mut self,
        lease_id: LeaseId,
        output_id: OutputId,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<&Lease, NotLeasable> {
        if !self.is_leasable(now) {
            return Err(NotLeasable { status: self.status.as_str(), not_before: self.not_before });
        }
        self.status = JobStatus::Processing;
        self.attempts += 1;
        self.progress = 0;
        self.stage = Some("starting".into());
        self.started_at = Some(now);
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        let first = policy.lease_ttl_ms.min(FIRST_HEARTBEAT_MS);
        self.lease = Some(Lease { id: lease_id, expires_at: now.plus_millis(first), output_id });
        Ok(self.lease.as_ref().expect("just set"))
    }

    fn check_lease(&self, lease_id: &LeaseId) -> Result<&Lease, LeaseLost> {
        match &self.lease {
            Some(l) if self.status == JobStatus::Processing && l.id == *lease_id => Ok(l),
            _ => {
                Err(LeaseLost { job_id: self.job_id.clone(), lease_id: lease_id.clone(), status: self.status.as_str() })
            }
        }
    }

    /// Progress from the lease holder; extends the lease. A late heartbeat
    /// is still accepted while nobody has acted on the expiry.
    pub fn heartbeat(
        &mut self,
        lease_id: &LeaseId,
        progress: u8,
        stage: Option<String>,
        playable: bool,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<Timestamp, LeaseLost> {
        if let Some(i) = self.task_of(lease_id) {
            return Ok(self.task_heartbeat(i, progress, stage, playable, policy, now));
        }
        let output_id = self.check_lease(lease_id)?.output_id.clone();
        self.progress = self.progress.max(progress.min(99));
        if stage.is_some() {
            self.stage = stage;
        }
        if playable && !self.playable {
            self.playable = true;
            self.output_id = Some(output_id);
        }
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        let lease = self.lease.as_mut().expect("checked above");
        lease.expires_at = now.plus_millis(policy.lease_ttl_ms);
        Ok(lease.expires_at)
    }

    /// The lease holder finished the ladder. A repeat by the same holder
    /// after the job is done (the first answer was lost on the way) changes
    /// nothing and answers [`Completion::AlreadyDone`].
    pub fn complete(&mut self, lease_id: &LeaseId, result: JobResult, now: Timestamp) -> Result<Completion, LeaseLost> {
        if self.status == JobStatus::Done && self.completed_by.as_ref() == Some(lease_id) {
            return Ok(Completion::AlreadyDone);
        }
        let output_id = self.check_lease(lease_id)?.output_id.clone();
        self.status = JobStatus::Done;
        self.progress = 100;
        self.stage = Some("done".into());
        self.playable = true;
        self.output_id = Some(output_id);
        self.result = Some(result);
        self.error = None;
        self.lease = None;
        self.completed_by = Some(lease_id.clone());
        self.finished_at = Some(now);
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        Ok(Completion::Completed)
    }

    /// The lease holder gave up. Retryable faults are queued again while
    /// attempts remain; permanent ones end the job at once.
    pub fn fail(
        &mut self,
        lease_id: &LeaseId,
        message: &str,
        retryable: bool,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<FailOutcome, LeaseLost> {
        if let Some(i) = self.task_of(lease_id) {
            return Ok(self.fail_task(i, message, retryable, policy, now));
        }
        self.check_lease(lease_id)?;
        Ok(self.end_attempt(message, retryable, policy, now))
    }

    /// The lease holder gives the job back untouched (it is shutting down and
    /// had just leased it): queued again at once, in its old place, without
    /// counting the attempt.
    pub fn release(&mut self, lease_id: &LeaseId, now: Timestamp) -> Result<(), LeaseLost> {
        if let Some(i) = self.task_of(lease_id) {
            self.release_task(i, now);
            return Ok(());
        }
        self.check_lease(lease_id)?;
        let (queued_at, attempts) = (self.queued_at, self.attempts.saturating_sub(1));
        self.enqueue(now, now);
        self.queued_at = queued_at;
        self.attempts = attempts;
        self.started_at = None;
        self.heartbeat_at = None;
        Ok(())
    }

    /// Stops a queued or running job at the caller's request: it ends in
    /// `error` with `reason`, and its lease (if any) is gone, so the
    /// transcoder stops at its next heartbeat. A notify retries it later.
    /// Returns false when there was nothing to cancel (done or already failed).
    pub fn cancel(&mut self, reason: &str, now: Timestamp) -> bool {
        if !matches!(self.status, JobStatus::Queued | JobStatus::Processing) {
            return false;
        }
        self.status = JobStatus::Error;
        self.error = Some(reason.to_owned());
        self.failure = Some(FailureKind::Canceled);
        self.stage = Some("canceled".into());
        self.lease = None;
        self.chunks = None;
        self.playable = false;
        self.output_id = None;
        self.finished_at = Some(now);
        self.updated_at = now;
        true
    }

    /// Called by the alarm: a processing job whose lease ran out is treated as
    /// a retryable failure. Returns `None` when the lease is still live.
    pub fn expire_lease(&mut self, policy: &RetryPolicy, now: Timestamp) -> Option<FailOutcome> {
        if !self.lease_expired(now) {
            return None;
        }
        if self.chunks.is_some() {
            return self.expire_tasks(policy, now);
        }
        Some(self.end_attempt(EXPIRED, true, policy, now))
    }

    fn end_attempt(&mut self, message: &str, retryable: bool, policy: &RetryPolicy, now: Timestamp) -> FailOutcome {
        self.last_error = Some(message.to_owned());
        self.failure = Some(if retryable { FailureKind::Processing } else { FailureKind::Upload });
        if retryable && self.attempts < self.max_attempts {
            let not_before = now.plus_millis(policy.backoff_ms(self.attempts));
            self.enqueue(now, not_before);
            return FailOutcome::Retrying { not_before };
        }
        let error = if retryable {
            format!("gave up after {} attempts; the last one failed with: {message}", self.attempts)
        } else {
            message.to_owned()
        };
        self.end_in_error(error, now)
    }

    /// Ends the run in `error`: every lease (the job's, every chunk task's) is gone.
    fn end_in_error(&mut self, error: String, now: Timestamp) -> FailOutcome {
        self.status = JobStatus::Error;
        self.error = Some(error);
        self.stage = Some("failed".into());
        self.lease = None;
        self.chunks = None;
        self.playable = false;
        self.output_id = None;
        self.finished_at = Some(now);
        self.updated_at = now;
        FailOutcome::Failed
    }
}

/// A job split into chunk tasks: planning, leasing a task, and each task's
/// beats, completion and failure. Every task writes under the run's one
/// output; the job is done when the last task is, and fails when a task
/// fails for good.
impl Job {
    /// The holder of the whole job's lease probed a source long enough to
    /// split: its lease becomes task 0 (same id, same output, same expiry)
    /// and the other tasks wait at once. `Ok(None)`, changing nothing, when
    /// the job stays single-pass: chunking is off or not for this job
    /// ([`ChunkSettings::chunk_from_s`]), the source is shorter than that, or
    /// it fits in one chunk. A repeat by task 0's lease answers the same chunk.
    pub fn plan(
        &mut self,
        lease_id: &LeaseId,
        source: ChunkSource,
        settings: &ChunkSettings,
        now: Timestamp,
    ) -> Result<Option<ChunkSpec>, LeaseLost> {
        if let Some(i) = self.task_of(lease_id) {
            return if i == 0 { Ok(self.task_spec(0)) } else { Err(self.lease_lost(lease_id)) };
        }
        self.check_lease(lease_id)?;
        let Some(from_s) = settings.chunk_from_s(&self.playback) else { return Ok(None) };
        if source.duration_s.is_nan() || source.duration_s < from_s {
            return Ok(None);
        }
        let ranges = plan_chunks(&source.geometry, settings.chunk_s, settings.first_chunk_s);
        if ranges.len() < 2 {
            return Ok(None);
        }
        let lease = self.lease.take().expect("checked above");
        let tasks = ranges
            .into_iter()
            .map(|range| {
                let first = range.index == 0;
                ChunkTask {
                    range,
                    status: if first { TaskStatus::Processing } else { TaskStatus::Queued },
                    lease: first.then(|| lease.clone()),
                    attempts: u32::from(first),
                    not_before: now,
                    progress: 0,
                    published_segments: 0,
                    published_audio_segments: 0,
                    report: None,
                }
            })
            .collect();
        self.chunks = Some(ChunkTable {
            output_id: lease.output_id,
            geometry: source.geometry,
            t0_s: source.t0_s,
            duration_s: source.duration_s,
            has_audio: source.has_audio,
            rungs: source.rungs,
            tasks,
        });
        self.updated_at = now;
        Ok(self.task_spec(0))
    }

    /// Hands chunk task `index` to a transcoder: its own lease (the caller
    /// mints `lease_id`) on the run's output. Refused unless the job runs
    /// in chunks and that task is queued and due.
    pub fn lease_task(
        &mut self,
        index: u16,
        lease_id: LeaseId,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Result<JobSpec, NotLeasable> {
        let status = self.status;
        let Some(table) = self.chunks.as_mut().filter(|_| status == JobStatus::Processing) else {
            return Err(NotLeasable { status: status.as_str(), not_before: self.not_before });
        };
        let output_id = table.output_id.clone();
        let Some(task) = table.tasks.get_mut(usize::from(index)) else {
            return Err(NotLeasable { status: "gone", not_before: now });
        };
        if task.status != TaskStatus::Queued || task.not_before > now {
            return Err(NotLeasable { status: task.status.as_str(), not_before: task.not_before });
        }
        let first = policy.lease_ttl_ms.min(FIRST_HEARTBEAT_MS);
        task.status = TaskStatus::Processing;
        task.attempts += 1;
        task.progress = 0;
        task.lease = Some(Lease { id: lease_id, expires_at: now.plus_millis(first), output_id });
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        Ok(JobSpec::of_task(self, index, policy).expect("just leased"))
    }

    /// What a chunk task's holder reports it has uploaded: the chunk's own
    /// segments on every rung and (task 0) the audio's, each a contiguous
    /// prefix. The counts never shrink (a retry rewrites the same keys), and
    /// a task's video count stays within its planned segments (the last
    /// task's runs to the end of the file). Ignored for the whole job's lease.
    pub fn record_published(
        &mut self,
        lease_id: &LeaseId,
        segments: Option<u32>,
        audio_segments: Option<u32>,
    ) -> Result<(), LeaseLost> {
        let Some(i) = self.task_of(lease_id) else { return self.check_lease(lease_id).map(|_| ()) };
        let table = self.chunks.as_mut().expect("a task holds the lease");
        let last = i + 1 == table.tasks.len();
        let task = &mut table.tasks[i];
        if let Some(n) = segments {
            let n = if last { n } else { n.min(task.range.segments) };
            task.published_segments = task.published_segments.max(n);
        }
        if let (Some(n), 0) = (audio_segments, i) {
            task.published_audio_segments = task.published_audio_segments.max(n);
        }
        Ok(())
    }

    /// `complete` as the transcoder's call names it: a chunk task's lease
    /// completes its task with its report (a task's call without one is
    /// refused, so its holder stops and the task is retried); the whole
    /// job's lease completes the job with `result`. A repeat by a lease
    /// whose complete committed answers [`Completion::AlreadyDone`].
    pub fn finish(
        &mut self,
        lease_id: &LeaseId,
        result: JobResult,
        chunk: Option<ChunkReport>,
        now: Timestamp,
    ) -> Result<Completion, LeaseLost> {
        let repeated = self.chunks.as_ref().is_some_and(|c| {
            c.tasks.iter().any(|t| t.status == TaskStatus::Done && t.lease.as_ref().is_some_and(|l| l.id == *lease_id))
        });
        if repeated {
            return Ok(Completion::AlreadyDone);
        }
        match (self.task_of(lease_id), chunk) {
            (Some(i), Some(report)) => Ok(self.complete_task(i, report, now)),
            (Some(_), None) => Err(self.lease_lost(lease_id)),
            (None, _) => self.complete(lease_id, result, now),
        }
    }

    /// The running task whose lease is `lease_id`.
    fn task_of(&self, lease_id: &LeaseId) -> Option<usize> {
        if self.status != JobStatus::Processing {
            return None;
        }
        self.chunks
            .as_ref()?
            .tasks
            .iter()
            .position(|t| t.status == TaskStatus::Processing && t.lease.as_ref().is_some_and(|l| l.id == *lease_id))
    }

    fn lease_lost(&self, lease_id: &LeaseId) -> LeaseLost {
        LeaseLost { job_id: self.job_id.clone(), lease_id: lease_id.clone(), status: self.status.as_str() }
    }

    /// The chunk task `index` runs.
    fn task_spec(&self, index: usize) -> Option<ChunkSpec> {
        let table = self.chunks.as_ref()?;
        let count = u16::try_from(table.tasks.len()).ok()?;
        Some(table.tasks.get(index)?.range.spec(count, table.t0_s, table.geometry, table.has_audio))
    }

    fn task_heartbeat(
        &mut self,
        i: usize,
        progress: u8,
        stage: Option<String>,
        playable: bool,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> Timestamp {
        let table = self.chunks.as_mut().expect("a task holds the lease");
        let task = &mut table.tasks[i];
        task.progress = task.progress.max(progress.min(99));
        let lease = task.lease.as_mut().expect("a running task has a lease");
        lease.expires_at = now.plus_millis(policy.lease_ttl_ms);
        let expires_at = lease.expires_at;
        // Task 0 carries the start of every rendition: its word makes the job playable.
        if playable && i == 0 && !self.playable {
            self.playable = true;
            self.output_id = Some(table.output_id.clone());
        }
        if stage.is_some() {
            self.stage = stage;
        }
        self.progress = self.progress.max(table.progress());
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        expires_at
    }

    fn complete_task(&mut self, i: usize, report: ChunkReport, now: Timestamp) -> Completion {
        let table = self.chunks.as_mut().expect("a task holds the lease");
        let task = &mut table.tasks[i];
        task.status = TaskStatus::Done;
        task.progress = 100;
        task.published_segments = task.published_segments.max(report.segments);
        if let Some(audio) = &report.audio {
            task.published_audio_segments = task.published_audio_segments.max(audio.segment_bytes.len() as u32);
        }
        task.report = Some(report);
        let output_id = table.output_id.clone();
        let all_done = table.tasks.iter().all(|t| t.status == TaskStatus::Done);
        let progress = table.progress();
        if i == 0 {
            // Every rendition's start is up, whether or not its beat said so.
            self.playable = true;
            self.output_id = Some(output_id.clone());
        }
        self.heartbeat_at = Some(now);
        self.updated_at = now;
        if !all_done {
            self.progress = self.progress.max(progress);
            return Completion::Completed;
        }
        let result = self.chunks.as_ref().map(ChunkTable::result);
        if let Some(table) = self.chunks.as_mut() {
            table.forget_segment_sizes();
        }
        self.status = JobStatus::Done;
        self.progress = 100;
        self.stage = Some("done".into());
        self.playable = true;
        self.output_id = Some(output_id);
        self.result = result;
        self.error = None;
        self.lease = None;
        self.completed_by = self.chunks.as_ref().and_then(|c| c.tasks[i].lease.as_ref()).map(|l| l.id.clone());
        self.finished_at = Some(now);
        Completion::Completed
    }

    fn fail_task(
        &mut self,
        i: usize,
        message: &str,
        retryable: bool,
        policy: &RetryPolicy,
        now: Timestamp,
    ) -> FailOutcome {
        self.last_error = Some(message.to_owned());
        self.failure = Some(if retryable { FailureKind::Processing } else { FailureKind::Upload });
        self.updated_at = now;
        let max_attempts = self.max_attempts;
        let table = self.chunks.as_mut().expect("a task holds the lease");
        let task = &mut table.tasks[i];
        if retryable && task.attempts < max_attempts {
            let not_before = now.plus_millis(policy.backoff_ms(task.attempts));
            task.status = TaskStatus::Queued;
            task.lease = None;
            task.progress = 0;
            task.not_before = not_before;
            return FailOutcome::Retrying { not_before };
        }
        let error = if retryable {
            format!("gave up on chunk {i} after {} attempts; the last one failed with: {message}", task.attempts)
        } else {
            message.to_owned()
        };
        self.end_in_error(error, now)
    }

    fn release_task(&mut self, i: usize, now: Timestamp) {
        let table = self.chunks.as_mut().expect("a task holds the lease");
        let task = &mut table.tasks[i];
        task.status = TaskStatus::Queued;
        task.lease = None;
        task.progress = 0;
        task.attempts = task.attempts.saturating_sub(1);
        task.not_before = now;
        self.updated_at = now;
    }

    /// Every running task whose lease ran out fails (retryably); the answer
    /// is the earliest retry, or `Failed` once one ends the job.
    fn expire_tasks(&mut self, policy: &RetryPolicy, now: Timestamp) -> Option<FailOutcome> {
        let expired: Vec<usize> = self.chunks.as_ref().map_or(Vec::new(), |c| {
            c.tasks.iter().enumerate().filter(|(_, t)| t.lease_expired(now)).map(|(i, _)| i).collect()
        });
        let mut outcome = None;
        for i in expired {
            if self.chunks.is_none() {
                break;
            }
            outcome = Some(match (outcome, self.fail_task(i, EXPIRED, true, policy, now)) {
                (_, FailOutcome::Failed) | (Some(FailOutcome::Failed), _) => FailOutcome::Failed,
                (Some(FailOutcome::Retrying { not_before: a }), FailOutcome::Retrying { not_before: b }) => {
                    FailOutcome::Retrying { not_before: a.min(b) }
                }
                (None, retry) => retry,
            });
        }
        outcome
    }
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Processing => "processing",
            TaskStatus::Done => "done",
        }
    }
}

impl ChunkTask {
    /// Running under a lease that has run out.
    pub fn lease_expired(&self, now: Timestamp) -> bool {
        self.status == TaskStatus::Processing && self.lease.as_ref().is_none_or(|l| now > l.expires_at)
    }
}

impl ChunkTable {
    /// The run's progress, 0-99: every task's share weighted by its frames
    /// (a done task counts whole).
    pub fn progress(&self) -> u8 {
        let frames = |t: &ChunkTask| t.range.planned_frames(&self.geometry).max(1) as f64;
        let total: f64 = self.tasks.iter().map(frames).sum();
        let done: f64 = self.tasks.iter().map(|t| frames(t) * f64::from(t.progress.min(100)) / 100.0).sum();
        if total <= 0.0 {
            return 0;
        }
        ((done / total * 100.0).floor() as u8).min(99)
    }

    /// The frame the video ends at: the last task's report once it is in
    /// (`None`: not known yet).
    pub fn end_frame(&self) -> Option<u64> {
        let last = self.tasks.last()?;
        Some(last.range.start_frame + last.report.as_ref()?.frames)
    }

    /// The segments of rendition `name` (a video rung, or `audio`) that may
    /// be listed now, in seq order, with their byte sizes when reported:
    /// every done task's, then the published prefix of the first task not
    /// done, never past a gap. The last task's segments are listed only as
    /// far as they are surely full until it is done (its final one may be
    /// short, and only its report says how short).
    pub fn listed_segments(&self, name: &str) -> Vec<(u32, Option<u64>)> {
        let mut out = Vec::new();
        if name == RungName::AUDIO {
            // Task 0 encodes the whole audio track.
            let Some(task) = self.tasks.first().filter(|_| self.has_audio) else { return out };
            let audio = task.report.as_ref().and_then(|r| r.audio.as_ref());
            // Task 0's complete counted its report's segments in.
            let published = task.published_audio_segments;
            // As far as the video goes: all its segments once it is known
            // where it ends, else those surely full (an audio tail past the
            // video's end is not listed).
            let video = match self.end_frame() {
                Some(end) => self.geometry.segments_in(end),
                None => self.full_segments().saturating_sub(1),
            };
            let n = published.min(video);
            out.extend((0..n).map(|seq| (seq, audio.and_then(|a| a.segment_bytes.get(seq as usize).copied()))));
            return out;
        }
        let last = self.tasks.len().saturating_sub(1);
        for (i, task) in self.tasks.iter().enumerate() {
            let rung = task.report.as_ref().and_then(|r| r.rungs.iter().find(|x| x.name == name));
            let n = match (&task.report, task.status) {
                (Some(r), TaskStatus::Done) if i == last => r.segments,
                // Never into the next chunk's seqs, whatever a report says.
                (Some(r), TaskStatus::Done) => r.segments.min(task.range.segments),
                _ if i == last => {
                    let full = self.full_segments().saturating_sub(1).saturating_sub(task.range.first_seq);
                    task.published_segments.min(full)
                }
                _ => task.published_segments.min(task.range.segments),
            };
            let bytes = |k: u32| rung.and_then(|x| x.segment_bytes.get(k as usize).copied());
            out.extend((0..n).map(|k| (task.range.first_seq + k, bytes(k))));
            if task.status != TaskStatus::Done {
                break;
            }
        }
        out
    }

    /// Drops the per-segment byte counts once the result holds what they
    /// measured: a done job's record (read for every playlist request) then
    /// stays small however long the video; the counts of segments remain.
    fn forget_segment_sizes(&mut self) {
        for report in self.tasks.iter_mut().filter_map(|t| t.report.as_mut()) {
            for rung in report.rungs.iter_mut().chain(report.audio.as_mut()) {
                rung.segment_bytes = Vec::new();
            }
        }
    }

    /// Segments that end within the planned frames (the last one may be
    /// the video's short final segment).
    fn full_segments(&self) -> u32 {
        let g = &self.geometry;
        let n = g.segments_in(g.total_frames);
        if g.segment_end_frame(n - 1) <= g.total_frames {
            n
        } else {
            n - 1
        }
    }

    /// The length of segment `seq`: from the geometry, the video's final
    /// segment cut where the last task's report says the video ends.
    pub fn segment_duration_s(&self, seq: u32) -> f64 {
        self.geometry.segment_duration_s(seq, self.end_frame())
    }

    /// The video rungs: as planned, else as task 0 reported them.
    pub fn rung_names(&self) -> Vec<String> {
        if !self.rungs.is_empty() {
            return self.rungs.iter().map(|r| r.name.as_str().to_owned()).collect();
        }
        let reported = self.tasks.iter().find_map(|t| t.report.as_ref()).map(|r| &r.rungs);
        reported.map_or(Vec::new(), |rungs| rungs.iter().map(|r| r.name.clone()).collect())
    }

    /// The finished ladder, assembled from every task's report: renditions
    /// with bandwidth measured over the stitched segments (the audio
    /// rendition's added to every variant, which plays it beside its video),
    /// no sprite (chunked runs make the poster only).
    pub fn result(&self) -> JobResult {
        let end = self.end_frame().unwrap_or(self.geometry.total_frames);
        let entries = |name: &str, init: u64| {
            let segments: Vec<SegmentEntry> = self
                .listed_segments(name)
                .into_iter()
                .map(|(seq, bytes)| SegmentEntry {
                    uri: String::new(),
                    duration_s: self.segment_duration_s(seq),
                    bytes: bytes.unwrap_or(0),
                })
                .collect();
            measured_bandwidth(init, &segments)
        };
        let first = self.tasks.first().and_then(|t| t.report.as_ref());
        let audio = first.and_then(|r| r.audio.as_ref()).filter(|_| self.has_audio);
        let (audio_peak, audio_avg) = audio.map_or((0, 0), |a| entries(RungName::AUDIO, a.init_bytes));
        let renditions = first
            .map(|r| &r.rungs[..])
            .unwrap_or_default()
            .iter()
            .map(|rung| {
                let (peak, avg) = entries(&rung.name, rung.init_bytes);
                Rendition {
                    name: rung.name.clone(),
                    width: rung.width,
                    height: rung.height,
                    bandwidth: (peak + audio_peak).max(1),
                    average_bandwidth: (avg + audio_avg).max(1),
                    codecs: match audio {
                        Some(a) => format!("{},{}", rung.codecs, a.codecs),
                        None => rung.codecs.clone(),
                    },
                    frame_rate: self.geometry.frame_rate.as_f64(),
                    video_range: self
                        .rungs
                        .iter()
                        .find(|r| r.name.as_str() == rung.name)
                        .map_or_else(Default::default, |r| r.range),
                }
            })
            .collect();
        JobResult {
            duration_s: end as f64 * self.geometry.frame_s(),
            renditions,
            thumbnails: None,
            has_audio: audio.is_some(),
            download: None,
            cover: first.and_then(|r| r.cover),
            preview: first.and_then(|r| r.preview),
        }
    }
}

/// What a transcoder needs to run one attempt of a job: the answer to
/// `POST /internal/jobs/lease` (`api::LeaseResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub job_id: JobId,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub attempt: u32,
    pub lease_id: LeaseId,
    /// RFC 3339; the lease ends then unless a heartbeat extends it.
    pub lease_expires_at: Timestamp,
    /// Heartbeat at least this often to keep the lease
    /// ([`RetryPolicy::heartbeat_interval_ms`]; a transcoder keeps it within
    /// [`bounded_heartbeat_interval_ms`]).
    pub heartbeat_interval_ms: u64,
    pub source_key: String,
    pub source_size: u64,
    /// The source's entity tag recorded at notify (quoted): read the source
    /// with `If-Match` on it, so an upload replaced since is refused. Absent
    /// for jobs notified before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_etag: Option<String>,
    pub content_type: String,
    pub output_id: OutputId,
    /// Every output key starts with this (`hls/{app}/{video}/{output_id}/`).
    pub output_prefix: String,
    pub ladder: LadderOptions,
    /// Whether to encrypt the segments and make an MP4 download.
    #[serde(default, skip_serializing_if = "PlaybackOptions::is_default")]
    pub playback: PlaybackOptions,
    /// The codecs, cover and preview to make (a chunked job's task 0 makes
    /// the cover and preview; every task encodes every codec's rungs).
    #[serde(default, skip_serializing_if = "Extras::is_default")]
    pub extras: Extras,
    /// A chunk task: encode this chunk only (absent: the whole job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<ChunkSpec>,
    /// A whole-job lease: ask `/plan` to chunk it when the probed duration
    /// is at least this many seconds (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_from_s: Option<f64>,
}

impl JobSpec {
    /// The ladder to encode: the operator's options, in the codecs the job asked for.
    pub fn ladder_options(&self) -> LadderOptions {
        LadderOptions { codecs: self.extras.codecs.clone(), ..self.ladder.clone() }
    }

    /// Chunk task `index` of `job`, as its holder is told it; `None` when no
    /// lease holds that task.
    pub fn of_task(job: &Job, index: u16, policy: &RetryPolicy) -> Option<JobSpec> {
        let table = job.chunks.as_ref().filter(|_| job.status == JobStatus::Processing)?;
        let task = table.tasks.get(usize::from(index)).filter(|t| t.status == TaskStatus::Processing)?;
        let lease = task.lease.as_ref()?;
        Some(Self::held(job, lease, task.attempts, job.task_spec(usize::from(index)), policy))
    }

    /// The attempt `job`'s current lease runs, as its transcoder is told it;
    /// `None` when no lease holds the job.
    pub fn of_lease(job: &Job, policy: &RetryPolicy) -> Option<JobSpec> {
        let lease = job.lease.as_ref().filter(|_| job.status == JobStatus::Processing)?;
        Some(Self::held(job, lease, job.attempts, None, policy))
    }

    /// What the holder of `lease` on `job` is told: its attempt, and the
    /// chunk it runs (`None`: the whole job).
    fn held(job: &Job, lease: &Lease, attempt: u32, chunk: Option<ChunkSpec>, policy: &RetryPolicy) -> JobSpec {
        JobSpec {
            job_id: job.job_id.clone(),
            app_id: job.app_id.clone(),
            video_id: job.video_id.clone(),
            attempt,
            lease_id: lease.id.clone(),
            lease_expires_at: lease.expires_at,
            heartbeat_interval_ms: policy.heartbeat_interval_ms(),
            source_key: job.source.raw_key.clone(),
            source_size: job.source.size,
            source_etag: job.source.etag.clone(),
            content_type: job.source.content_type.clone(),
            output_id: lease.output_id.clone(),
            output_prefix: ObjectKey::hls_prefix(&job.app_id, &job.video_id, &lease.output_id),
            ladder: job.ladder.clone(),
            playback: job.playback.clone(),
            extras: job.extras.clone(),
            chunk,
            chunk_from_s: None,
        }
    }
}

/// A job that cannot be leased now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job is {status}, not queued and due")]
pub struct NotLeasable {
    pub status: &'static str,
    pub not_before: Timestamp,
}

#[cfg(test)]
mod chunk_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn lid(s: &str) -> LeaseId {
        LeaseId::parse(s).unwrap()
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 }
    }

    fn source(key: &str) -> SourceUpload {
        SourceUpload { raw_key: key.into(), content_type: "video/mp4".into(), size: 1000, etag: Some("\"e1\"".into()) }
    }

    fn job() -> Job {
        Job::new(
            JobId::parse("job_1").unwrap(),
            AppId::parse("app").unwrap(),
            VideoId::parse("vid").unwrap(),
            source("raw/app/vid/source.mp4"),
            LadderOptions::default(),
            &policy(),
            T0,
        )
    }

    fn out(s: &str) -> OutputId {
        OutputId::parse(s).unwrap()
    }

    fn result() -> JobResult {
        JobResult { duration_s: 10.0, has_audio: true, ..Default::default() }
    }

    #[test]
    fn happy_path() {
        let p = policy();
        let mut j = job();
        assert_eq!((j.status, j.attempts), (JobStatus::Queued, 0));
        let lease = j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(lease.expires_at, T0.plus_secs(10), "short until the first heartbeat");
        assert_eq!((j.status, j.attempts), (JobStatus::Processing, 1));

        let exp = j.heartbeat(&lid("L1"), 40, Some("encoding".into()), false, &p, T0.plus_secs(8)).unwrap();
        assert_eq!(exp, T0.plus_secs(38), "then the full lease");
        assert_eq!((j.progress, j.stage.as_deref(), j.playable), (40, Some("encoding"), false));
        // Progress never goes back; playable sticks and names the attempt's output.
        j.heartbeat(&lid("L1"), 10, None, true, &p, T0.plus_secs(25)).unwrap();
        assert_eq!((j.progress, j.stage.as_deref(), j.playable), (40, Some("encoding"), true));
        assert_eq!(j.output_id, Some(out("o1")));
        // 100 is reserved for done.
        j.heartbeat(&lid("L1"), 100, None, true, &p, T0.plus_secs(26)).unwrap();
        assert_eq!(j.progress, 99);

        j.complete(&lid("L1"), result(), T0.plus_secs(40)).unwrap();
        assert_eq!((j.status, j.progress, j.playable), (JobStatus::Done, 100, true));
        assert_eq!(j.finished_at, Some(T0.plus_secs(40)));
        assert!(j.lease.is_none());
    }

    #[test]
    fn only_due_queued_jobs_can_be_leased() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(j.lease(lid("L2"), out("o2"), &p, T0).unwrap_err().status, "processing");
        j.fail(&lid("L1"), "network", true, &p, T0.plus_secs(1)).unwrap();
        // Backoff: not before 5 s after the failure.
        assert!(!j.is_leasable(T0.plus_secs(5)));
        assert!(j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(5)).is_err());
        assert!(j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(6)).is_ok());
    }

    #[test]
    fn a_lost_lease_is_refused_everywhere() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(j.expire_lease(&p, T0.plus_secs(11)), Some(FailOutcome::Retrying { not_before: T0.plus_secs(16) }));
        j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(40)).unwrap();
        // The first transcoder wakes up: every call is refused.
        let lost = j.heartbeat(&lid("L1"), 50, None, true, &p, T0.plus_secs(41)).unwrap_err();
        assert_eq!(lost.status, "processing");
        assert!(lost.to_string().contains("stop working on it"));
        assert!(j.complete(&lid("L1"), result(), T0.plus_secs(42)).is_err());
        assert!(j.fail(&lid("L1"), "x", false, &p, T0.plus_secs(42)).is_err());
        assert!(!j.playable);
        // The holder is unaffected.
        assert!(j.heartbeat(&lid("L2"), 5, None, false, &p, T0.plus_secs(43)).is_ok());
        j.complete(&lid("L2"), result(), T0.plus_secs(44)).unwrap();
        assert!(j.heartbeat(&lid("L2"), 5, None, false, &p, T0.plus_secs(45)).is_err(), "a done job holds no lease");
    }

    #[test]
    fn a_lease_never_heartbeated_expires_early() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert!(j.expire_lease(&p, T0.plus_secs(11)).is_some());
        // With a lease shorter than the first-heartbeat window, the lease rules.
        let short = RetryPolicy { lease_ttl_ms: 3_000, ..policy() };
        let mut k = job();
        assert_eq!(k.lease(lid("L1"), out("o1"), &short, T0).unwrap().expires_at, T0.plus_secs(3));
    }

    #[test]
    fn expiry_only_after_the_lease_runs_out_and_heartbeats_extend_it() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(j.expire_lease(&p, T0.plus_secs(10)), None);
        j.heartbeat(&lid("L1"), 1, None, false, &p, T0.plus_secs(9)).unwrap();
        assert_eq!(j.expire_lease(&p, T0.plus_secs(30)), None);
        j.heartbeat(&lid("L1"), 1, None, false, &p, T0.plus_secs(29)).unwrap();
        assert_eq!(j.expire_lease(&p, T0.plus_secs(58)), None);
        assert!(j.expire_lease(&p, T0.plus_secs(60)).is_some());
        assert_eq!(j.last_error.as_deref(), Some("the transcoder stopped sending heartbeats (its lease expired)"));
    }

    #[test]
    fn attempts_are_bounded_with_growing_backoff() {
        let p = policy();
        let mut j = job();
        let mut now = T0;
        let mut waits = vec![];
        for attempt in 1..=3 {
            j.lease(lid(&format!("L{attempt}")), out("o"), &p, now).unwrap();
            assert_eq!(j.attempts, attempt);
            match j.fail(&lid(&format!("L{attempt}")), "S3 timed out", true, &p, now).unwrap() {
                FailOutcome::Retrying { not_before } => {
                    waits.push(not_before.millis_since(now) / 1000);
                    now = not_before;
                }
                FailOutcome::Failed => assert_eq!(attempt, 3),
            }
        }
        assert_eq!(waits, vec![5, 15]);
        assert_eq!(j.status, JobStatus::Error);
        assert_eq!(j.error.as_deref(), Some("gave up after 3 attempts; the last one failed with: S3 timed out"));
        assert_eq!(p.backoff_ms(20), 600_000, "capped");
    }

    #[test]
    fn permanent_failures_end_at_once() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(
            j.fail(&lid("L1"), "the upload is not a video libav can read", false, &p, T0).unwrap(),
            FailOutcome::Failed
        );
        assert_eq!((j.status, j.attempts), (JobStatus::Error, 1));
        assert_eq!(j.error.as_deref(), Some("the upload is not a video libav can read"));
    }

    #[test]
    fn notify_is_idempotent_and_retries_what_failed_or_went_silent() {
        let p = policy();
        // Queued: unchanged, unless the source was uploaded again before any
        // transcoder read it: then the job reads the new one.
        let mut j = job();
        assert_eq!(j.renotify(source("raw/app/vid/source.mp4"), &p, T0), NotifyOutcome::Unchanged);
        let reuploaded = SourceUpload { etag: Some("\"e2\"".into()), ..source("raw/app/vid/source.mp4") };
        assert_eq!(j.renotify(reuploaded.clone(), &p, T0), NotifyOutcome::SourceUpdated);
        assert_eq!((j.source.etag.as_deref(), j.status, j.queued_at), (Some("\"e2\""), JobStatus::Queued, T0));
        assert_eq!(NotifyOutcome::SourceUpdated.http_status(), 200);
        assert!(!NotifyOutcome::SourceUpdated.queued_work() && NotifyOutcome::Requeued.queued_work());
        let mut j = job();
        // Processing with a live lease: unchanged.
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        j.heartbeat(&lid("L1"), 1, None, false, &p, T0.plus_secs(1)).unwrap();
        assert_eq!(j.renotify(source("raw/app/vid/source.mp4"), &p, T0.plus_secs(10)), NotifyOutcome::Unchanged);
        assert_eq!(j.status, JobStatus::Processing);
        // Processing but silent past the lease: requeued now, fresh budget.
        assert_eq!(j.renotify(source("raw/app/vid/source.mp4"), &p, T0.plus_secs(32)), NotifyOutcome::Requeued);
        assert_eq!((j.status, j.attempts), (JobStatus::Queued, 0));
        assert!(j.is_leasable(T0.plus_secs(32)));
        // Done: unchanged.
        j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(32)).unwrap();
        j.complete(&lid("L2"), result(), T0.plus_secs(32)).unwrap();
        assert_eq!(j.renotify(source("raw/app/vid/source.webm"), &p, T0.plus_secs(33)), NotifyOutcome::Unchanged);
        assert_eq!(j.source.raw_key, "raw/app/vid/source.mp4");
        // Error: requeued with the newly named source.
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        j.fail(&lid("L1"), "corrupt", false, &p, T0).unwrap();
        assert_eq!(j.renotify(source("raw/app/vid/source.webm"), &p, T0.plus_secs(1)), NotifyOutcome::Requeued);
        assert_eq!((j.status, j.attempts, j.error.as_deref()), (JobStatus::Queued, 0, None));
        assert_eq!(j.last_error.as_deref(), Some("corrupt"));
        assert_eq!(j.source.raw_key, "raw/app/vid/source.webm");
        assert_eq!(NotifyOutcome::Requeued.http_status(), 202);
        assert_eq!(NotifyOutcome::Unchanged.http_status(), 200);
    }

    #[test]
    fn release_gives_the_job_back_without_using_an_attempt() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0.plus_secs(5)).unwrap();
        j.release(&lid("L1"), T0.plus_secs(6)).unwrap();
        assert_eq!((j.status, j.attempts, j.queued_at), (JobStatus::Queued, 0, T0), "same place in the queue");
        assert!(j.is_leasable(T0.plus_secs(6)), "no backoff");
        assert!(j.release(&lid("L1"), T0.plus_secs(7)).is_err(), "only the holder can");
        assert_eq!(j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(7)).unwrap().id.as_str(), "L2");
        assert_eq!(j.attempts, 1);
    }

    #[test]
    fn cancel_stops_queued_and_running_jobs_only() {
        let p = policy();
        let mut queued = job();
        assert!(queued.cancel("canceled through the API", T0));
        assert_eq!((queued.status, queued.error.as_deref()), (JobStatus::Error, Some("canceled through the API")));
        // A notify starts it again.
        assert_eq!(queued.renotify(source("raw/app/vid/source.mp4"), &p, T0), NotifyOutcome::Requeued);

        let mut running = job();
        running.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        running.heartbeat(&lid("L1"), 30, None, true, &p, T0).unwrap();
        assert!(running.cancel("canceled through the API", T0.plus_secs(1)));
        assert!(!running.playable);
        assert!(
            running.heartbeat(&lid("L1"), 40, None, false, &p, T0.plus_secs(2)).is_err(),
            "the transcoder must stop"
        );
        assert!(running.complete(&lid("L1"), result(), T0.plus_secs(3)).is_err());

        let mut done = job();
        done.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        done.complete(&lid("L1"), result(), T0).unwrap();
        assert!(!done.cancel("x", T0));
        assert_eq!(done.status, JobStatus::Done);
        assert!(!running.cancel("again", T0.plus_secs(4)), "already ended");
    }

    #[test]
    fn a_retry_forgets_the_failed_attempts_output() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        j.heartbeat(&lid("L1"), 30, None, true, &p, T0).unwrap();
        assert!(j.playable);
        j.fail(&lid("L1"), "disk full", true, &p, T0).unwrap();
        assert!(!j.playable);
        assert_eq!(j.output_id, None);
        assert_eq!(j.status, JobStatus::Queued);
    }

    #[test]
    fn a_repeated_complete_by_the_same_lease_is_answered_as_done() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        assert_eq!(j.complete(&lid("L1"), result(), T0.plus_secs(5)).unwrap(), Completion::Completed);
        let done = j.clone();
        let other = JobResult { duration_s: 99.0, ..result() };
        assert_eq!(j.complete(&lid("L1"), other, T0.plus_secs(9)).unwrap(), Completion::AlreadyDone);
        assert_eq!(j, done, "the repeat changes nothing");
        // Another lease is still refused, and so is the holder after a new run.
        assert!(j.complete(&lid("L2"), result(), T0.plus_secs(9)).is_err());
        let mut k = job();
        k.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        k.fail(&lid("L1"), "network", true, &p, T0).unwrap();
        assert!(k.complete(&lid("L1"), result(), T0.plus_secs(1)).is_err(), "a lease that failed never completes");
    }

    #[test]
    fn public_failure_messages_hide_internals() {
        use FailureKind::*;
        let cases: &[(Option<FailureKind>, &str, u32, bool, &str)] = &[
            (Some(Upload), "the upload is not a video libav can read", 1, true, "the upload is not a video libav can read"),
            (Some(Upload), "the video is longer than 6 h (21600 s); trim it", 1, true, "the video is longer than 6 h (21600 s); trim it"),
            (Some(Upload), "cannot open raw/app/vid/source.mp4: Invalid data", 1, true, "the upload could not be processed; upload a video file in a supported format"),
            (Some(Upload), "internal error: the transcoder crashed (index out of bounds)", 1, true, "the upload could not be processed; upload a video file in a supported format"),
            (Some(Upload), "line one\nline two", 1, true, "the upload could not be processed; upload a video file in a supported format"),
            (Some(Processing), "storage HEAD raw/a/v/source.mp4: status 503", 1, false, "processing failed on our side; it will be retried"),
            (Some(Processing), "internal error: the transcoder crashed at src/pipeline/mod.rs:120 (index out of bounds: the len is 3)", 2, false, "processing failed on our side; it will be retried"),
            (Some(Processing), "gave up after 3 attempts; the last one failed with: the transcoder stopped sending heartbeats (its lease expired)", 3, true, "processing failed on our side after 3 attempts; call /notify-upload-complete to try again"),
            (Some(Processing), "disk full", 1, true, "processing failed on our side after 1 attempt; call /notify-upload-complete to try again"),
            (Some(Canceled), "canceled through the API", 0, true, "canceled through the API"),
            (None, "corrupt", 1, true, "corrupt"),
            (None, "thread 'main' panicked at src/lib.rs:1", 1, true, "processing failed; call /notify-upload-complete to try again"),
            (None, "GET http://10.0.0.1/x failed", 1, false, "processing failed; it will be retried"),
        ];
        for (kind, message, attempts, ended, want) in cases {
            assert_eq!(public_failure_message(*kind, message, *attempts, *ended), *want, "{kind:?} {message:?}");
        }
    }

    #[test]
    fn failures_record_whose_fault_they_were() {
        let p = policy();
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        j.fail(&lid("L1"), "storage PUT hls/app/vid/o1/720p/00001.m4s: status 503", true, &p, T0).unwrap();
        assert_eq!(j.failure, Some(FailureKind::Processing));
        assert_eq!(j.public_last_error().as_deref(), Some("processing failed on our side; it will be retried"));
        assert!(j.last_error.as_deref().unwrap().contains("hls/app/vid"), "the full text is kept for the logs");
        j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(10)).unwrap();
        j.fail(&lid("L2"), "the upload is not a video", false, &p, T0.plus_secs(11)).unwrap();
        assert_eq!(
            (j.failure, j.public_error().as_deref()),
            (Some(FailureKind::Upload), Some("the upload is not a video"))
        );
        assert!(j.cancel("canceled through the API", T0) || j.status == JobStatus::Error);
        let mut c = job();
        c.cancel("canceled through the API", T0);
        assert_eq!(
            (c.failure, c.public_error().as_deref()),
            (Some(FailureKind::Canceled), Some("canceled through the API"))
        );
        assert_eq!(JobStatus::Processing.public_cache_ttl_s(), 1);
        assert!(JobStatus::Done.public_cache_ttl_s() > JobStatus::Error.public_cache_ttl_s());
    }

    #[test]
    fn a_done_job_with_a_webhook_on_its_way_is_cached_briefly() {
        let mut j = job();
        j.status = JobStatus::Done;
        assert_eq!(j.public_cache_ttl_s(), 60);
        j.callback = Some(CallbackState::pending());
        assert_eq!(j.public_cache_ttl_s(), 2, "callback_status must move on within seconds");
        j.callback.as_mut().unwrap().record_delivery();
        assert_eq!(j.public_cache_ttl_s(), 60);
        j.status = JobStatus::Processing;
        j.callback = Some(CallbackState::pending());
        assert_eq!(j.public_cache_ttl_s(), 1);
    }

    #[test]
    fn jobs_stored_without_a_source_etag_still_load() {
        let j = job();
        let mut v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["source"]["etag"], "\"e1\"");
        v["source"].as_object_mut().unwrap().remove("etag");
        let back: Job = serde_json::from_value(v).unwrap();
        assert_eq!(back.source.etag, None);
    }

    #[test]
    fn the_store_keeps_times_as_epoch_millis() {
        // A row as the job store wrote it before times had a type of their
        // own: it still loads, and is written back the same way.
        let stored = r#"{"job_id":"job_1","app_id":"app","video_id":"vid","source":{"raw_key":"raw/app/vid/source.mp4","content_type":"video/mp4","size":1000},"status":"processing","progress":3,"stage":"starting","error":null,"last_error":null,"attempts":1,"max_attempts":3,"playable":false,"created_at":1700000000000,"updated_at":1700000001000,"queued_at":1700000000000,"not_before":1700000000000,"started_at":1700000001000,"finished_at":null,"heartbeat_at":1700000001000,"lease":{"id":"lease_x","expires_at":1700000011000,"output_id":"o1"},"output_id":null,"result":null,"ladder":{"max_rung":2160,"max_rungs":0,"segment_s":4,"gop_s":2,"preset":"veryfast"}}"#;
        let j: Job = serde_json::from_str(stored).unwrap();
        assert_eq!((j.started_at, j.lease.as_ref().unwrap().expires_at), (Some(T0.plus_secs(1)), T0.plus_secs(11)));
        let again = serde_json::to_value(&j).unwrap();
        let old: serde_json::Value = serde_json::from_str(stored).unwrap();
        for k in ["created_at", "updated_at", "queued_at", "not_before", "started_at", "finished_at", "heartbeat_at"] {
            assert_eq!(again[k], old[k], "{k}");
        }
        assert_eq!(again["lease"], old["lease"]);
    }

    #[test]
    fn a_lease_is_handed_out_as_a_job_spec() {
        let p = policy();
        let mut j = job();
        assert_eq!(JobSpec::of_lease(&j, &p), None, "no lease, no spec");
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        let spec = JobSpec::of_lease(&j, &p).unwrap();
        assert_eq!(
            (spec.job_id.as_str(), spec.lease_id.as_str(), spec.attempt, spec.lease_expires_at),
            ("job_1", "L1", 1, T0.plus_secs(10))
        );
        assert_eq!((spec.output_prefix.as_str(), spec.source_etag.as_deref()), ("hls/app/vid/o1/", Some("\"e1\"")));
        assert_eq!(spec.heartbeat_interval_ms, 2_000);
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["lease_expires_at"], "2023-11-14T22:13:30.000Z", "RFC 3339 on the wire");
        assert_eq!(serde_json::from_value::<JobSpec>(v).unwrap(), spec);
    }

    #[test]
    fn the_heartbeat_interval_has_one_rule() {
        let with_ttl = |lease_ttl_ms| RetryPolicy { lease_ttl_ms, ..policy() }.heartbeat_interval_ms();
        assert_eq!((with_ttl(30_000), with_ttl(6_000), with_ttl(1_000), with_ttl(600_000)), (2_000, 1_000, 250, 2_000));
        // What a transcoder keeps of the interval a lease asks for.
        assert_eq!([0, 250, 1_500, 2_000, 60_000].map(bounded_heartbeat_interval_ms), [250, 250, 1_500, 2_000, 2_000]);
    }

    #[test]
    fn jobs_round_trip_through_json() {
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &policy(), T0).unwrap();
        let back: Job = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
    }

    // The MP4 download's state, as /job-status shows it.
    fn with_download(download: Option<crate::video::access::DownloadOption>) -> Job {
        let source = SourceUpload {
            raw_key: "raw/a/v/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 9,
            etag: None,
        };
        let policy = RetryPolicy { max_attempts: 1, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 };
        let mut j = Job::new(
            JobId::parse("job_1").unwrap(),
            AppId::parse("a").unwrap(),
            VideoId::parse("v").unwrap(),
            source,
            LadderOptions::default(),
            &policy,
            Timestamp::from_millis(1_700_000_000_000),
        );
        j.playback.download = download;
        j
    }

    fn finished(mut j: Job, report: Option<DownloadReport>) -> Job {
        let (lease, now) = (LeaseId::parse("L1").unwrap(), Timestamp::from_millis(1_700_000_001_000));
        let policy = RetryPolicy { max_attempts: 1, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 };
        j.lease(lease.clone(), OutputId::parse("o1").unwrap(), &policy, now).unwrap();
        j.heartbeat(&lease, 50, None, true, &policy, now).unwrap();
        let result = JobResult { duration_s: 1.0, has_audio: true, download: report, ..Default::default() };
        j.complete(&lease, result, now).unwrap();
        j
    }

    #[test]
    fn the_state_follows_the_job_and_the_report() {
        assert_eq!(state_of(&with_download(None)), None, "no option, no download field");
        let asked = || Some(crate::video::access::DownloadOption::default());
        let preparing = state_of(&with_download(asked())).unwrap();
        assert_eq!((preparing.status, preparing.rung, preparing.size), (DownloadStatus::Preparing, None, None));
        let ready = finished(with_download(asked()), Some(DownloadReport::Ready { rung: "720p".into(), size: 99 }));
        let ready = state_of(&ready).unwrap();
        assert_eq!((ready.status, ready.rung.as_deref(), ready.size), (DownloadStatus::Ready, Some("720p"), Some(99)));
        let failed = DownloadReport::Errored { rung: Some("720p".into()), message: "x".into() };
        let errored = state_of(&finished(with_download(asked()), Some(failed))).unwrap();
        assert_eq!((errored.status, errored.rung.as_deref()), (DownloadStatus::Errored, Some("720p")));
        // A transcoder that made no download: it never will be.
        assert_eq!(state_of(&finished(with_download(asked()), None)).unwrap().status, DownloadStatus::Errored);
        let mut failed_job = with_download(asked());
        failed_job.status = JobStatus::Error;
        assert_eq!(state_of(&failed_job).unwrap().status, DownloadStatus::Errored);
    }

    fn state_of(j: &Job) -> Option<crate::video::download::DownloadState> {
        j.download_state()
    }
}

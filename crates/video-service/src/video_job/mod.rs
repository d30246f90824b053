//! One video's job: a SQLite-backed Durable Object (`VideoJob`) per
//! `{app_id}/{video_id}`, the source of truth for that video's job and the
//! fence for its leases. Every change goes through `media_core::video::job`'s state
//! machine and is written in the same synchronous step, so reads are always
//! current; public reads (`/job-status`, `/playback-url`, HLS) come here and
//! never to a queue shard.
//!
//! The job's queue shard ([`crate::dispatch`]) only knows which jobs wait:
//! after each change this object tells it what `media_core::video::dispatch::
//! shard_change` says (the job waits again, or ended). When the shard cannot
//! be told, the row remembers it (`enqueue_due`) and the alarm tries again,
//! so a job is never lost between the two. The one alarm also expires the
//! running attempt's lease.
//!
//! Each change is also told as events (`media_core::video::events::events_between`):
//! they are kept in a bounded log (the last `VIDEO_EVENT_LOG_LEN`, with ids
//! that never repeat) and written to the object's open `GET /job-events`
//! streams ([`crate::sse`]), which end after a terminal event.
//!
//! ## Deleting
//!
//! `VideoOp::Delete` (`DELETE /videos`) removes the video for good, in this
//! order:
//!
//! 1. The job's state goes: storage is wiped (`delete_all`, the alarm
//!    deleted), so every event, delivery and setting of the video is gone.
//!    The object then keeps only a **tombstone** row (`tombstone`: the ids
//!    and `sweep_at`) and an alarm at `sweep_at`. While it stands, a
//!    transcoder's calls (heartbeat, complete, fail, release) get 409
//!    `lease_lost`, a grant 409, a notify 409 (try again after `sweep_at`),
//!    reads 404. When a job was queued or running, a transcoder may still
//!    hold a lease and be writing segments: `sweep_at` is then now +
//!    `LEASE_TTL_MS` + 5 s and the tombstone stays until then. Otherwise it
//!    only guards the deleting itself (a notify meanwhile would queue a job
//!    whose source is being deleted) and goes at its end; its alarm (30 s)
//!    finishes a delete that failed half-way.
//! 2. The shard hears the job ended; open `/job-events` streams are closed;
//!    the app's hub (`/events`) drops the video from its recent jobs and
//!    blanks the data of its kept events (best effort, logged).
//! 3. Every object under `raw/{app}/{video}/` and `hls/{app}/{video}/` is
//!    deleted (`worker_kit::store::delete_prefix`), then the KV playback record.
//! 4. At `sweep_at` the alarm sweeps both prefixes once more (what the
//!    transcoder wrote before its heartbeat was refused, or a late upload)
//!    and the record, then wipes the tombstone; a sweep that fails is tried
//!    again 30 s later.
//!
//! A repeated delete deletes whatever is there again and answers zeros. A
//! storage failure in step 3 answers 503 and loses nothing the caller
//! cares about: the job is already gone and the sweep (or a retry) finishes.
//! The object's storage ends empty (`deleteAll()`, not even its tables),
//! so a deleted video leaves no stored object once its tombstone is gone.
//!
//! ## Reads create no state
//!
//! An object creates its tables with its first write (a notify, a delete);
//! every other command on an object without them answers "no job" and
//! creates nothing. With its job's first change the object writes the
//! video's job marker in KV ([`job_marker_key`]); public reads of ids
//! without a marker (nor a playback record) answer 404 without reaching an
//! object at all ([`crate::status`]). The delete removes the marker with
//! the playback record.
//!
//! **Retention**: when a job completes, the outputs of its earlier attempts
//! (`hls/{app}/{video}/{output_id}/` other than the completed one) are
//! deleted, and, with `KEEP_SOURCE=false`, the raw source too; when it fails
//! for good or is canceled, every attempt's outputs are (the source stays,
//! for a retry), and once more by the alarm `LEASE_TTL_MS` + 5 s later when
//! a transcoder held its lease (`late_sweep_at` in `meta`). Best effort,
//! logged, after the change is committed.
//!
//! The settings a command runs by (`LEASE_TTL_MS` and the other retry and
//! ladder settings, `QUEUE_SHARDS`, `LARGE_SOURCE_BYTES`) are read for the
//! commands that use them; one that cannot be used refuses the command as a
//! Worker refuses a request on a broken setting (500, generic message, detail
//! logged), rather than running on defaults unnoticed.

use std::cell::Cell;
use std::time::Duration;

use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::{ObjectKey, OutputId};
use media_core::video::delivery::{CallbackState, CallbackStatus};
use media_core::video::dispatch::{shard_change, shard_of, ShardChange, SizeClass};
use media_core::video::events::{connected, events_between, JobEvent, VIDEO_EVENT_LOG_LEN};
use media_core::video::job::{Completion, FailOutcome, Job, JobStatus, NotifyOutcome, RetryPolicy, SourceUpload};
use media_core::video::upload_session::SessionStep;
use media_core::video::webhook::{WebhookBody, WebhookType};
use media_core::wire::api::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, JobSpec, ReleaseRequest,
};
use media_core::wire::api::{DeletedVideo, JobView};
use media_core::{ApiError, ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State};
use worker_kit::clock::{now, random_bytes};
use worker_kit::config::ConfigError;
use worker_kit::reply::error_response;
use worker_kit::store::{delete_prefix, delete_prefix_except, delete_prefix_while, AnyStore};
use worker_kit::Failure;

use crate::client::call;
use crate::protocol::app_hub::{HubCommand, JobSummary, APP_EVENTS_BINDING};
use crate::protocol::dispatch::{shard_name, ShardCommand, DISPATCH_BINDING};
use crate::settings::{
    dispatch_settings, keep_source_of, ladder_options, retry_policy, sse_heartbeat_ms, store_of, stream_caps,
    webhook_settings,
};
use crate::sse::{EventLog, Subscribers, EVENT_LOG_SCHEMA};
use crate::webhooks::{self, Attempt};

mod sessions;

/// The Durable Object binding of the video objects.
pub const VIDEO_JOBS_BINDING: &str = "VIDEO_JOBS";
/// The KV binding holding published playback records.
pub const KV_BINDING: &str = "MEDIA_KV";
/// How soon the alarm tries again to tell the shard of a waiting job.
const ENQUEUE_RETRY_MS: u64 = 2_000;
/// How long after a running job's lease would have ended the final sweep of
/// a deleted video comes.
const SWEEP_MARGIN_MS: u64 = 5_000;
/// The `meta` key of the late sweep of an ended job's outputs, in ms since the epoch.
const LATE_SWEEP_KEY: &str = "late_sweep_at";
/// How soon a final sweep that failed is tried again.
const SWEEP_RETRY_MS: u64 = 30_000;

/// The KV key of a finished video's playback record (the final job as JSON).
pub fn playback_record_key(app: &AppId, video: &VideoId) -> String {
    format!("playback/{app}/{video}")
}

/// The KV key saying a video has a job (written by its object with the
/// job's first change, removed by its delete), so public reads of ids
/// without one answer 404 without reaching an object ([`crate::status`]).
pub fn job_marker_key(app: &AppId, video: &VideoId) -> String {
    format!("jobs/{app}/{video}")
}

/// Writes the video's job marker ([`job_marker_key`]) in KV.
pub async fn write_job_marker(env: &Env, app: &AppId, video: &VideoId) -> worker::Result<()> {
    env.kv(KV_BINDING)?.put(&job_marker_key(app, video), "1")?.execute().await?;
    Ok(())
}

/// The `meta` key recording that the job marker was written.
const MARKER_META_KEY: &str = "kv_marker";

/// A command to the object of one video.
#[derive(Debug, Serialize, Deserialize)]
pub struct VideoCall {
    pub app_id: AppId,
    pub video_id: VideoId,
    /// The service's public origin as the caller saw it, for the URLs in
    /// events (the last one given is kept for calls without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub op: VideoOp,
}

impl VideoCall {
    /// The name of the object it goes to.
    pub fn object_name(&self) -> String {
        format!("{}/{}", self.app_id, self.video_id)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VideoOp {
    /// `callback_url`, when given, also receives this video's webhooks (it
    /// stays until a later notify names another).
    Notify {
        source: SourceUpload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback_url: Option<String>,
    },
    Get,
    /// From the job's shard: lease the job (if it is still queued and due).
    Grant {
        job_id: JobId,
        lease_id: LeaseId,
        output_id: OutputId,
        worker: String,
    },
    Heartbeat {
        job_id: JobId,
        req: HeartbeatRequest,
    },
    Complete {
        job_id: JobId,
        req: CompleteRequest,
    },
    Fail {
        job_id: JobId,
        req: FailRequest,
    },
    Release {
        job_id: JobId,
        req: ReleaseRequest,
    },
    Cancel,
    /// Opens an event stream, replaying the events after `last_event_id`
    /// (all kept events when absent). `address`: the client's, as its
    /// streams count (`media_core::video::events::address_bucket`).
    Events {
        last_event_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// Deletes the video for good (see the module doc).
    Delete,
    /// A step of the resumable upload session `session` ([`crate::resumable`];
    /// its ledger is [`sessions`]).
    UploadSession {
        session: String,
        step: SessionStep,
    },
}

/// The answer to a delete.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteReply {
    pub deleted: DeletedVideo,
    pub final_sweep_at: Option<Timestamp>,
}

/// The answer to a cancel.
#[derive(Debug, Serialize, Deserialize)]
pub struct CancelReply {
    /// False when the job had already ended (done, or failed).
    pub canceled: bool,
    pub job: Job,
}

/// The answer to a notify: what it did (which decides the HTTP status,
/// `NotifyOutcome::http_status`) and the job.
#[derive(Debug, Serialize, Deserialize)]
pub struct NotifyReply {
    pub outcome: NotifyOutcome,
    pub job: Job,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    shard INTEGER NOT NULL,
    class TEXT NOT NULL,
    enqueue_due INTEGER,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstone (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    sweep_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL,
    dest TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, dest)
);
";

#[derive(Deserialize)]
struct ValueRow {
    value: String,
}

/// The stored row: the job, its shard and class, and whether the shard
/// still has to hear that it waits.
struct Stored {
    job: Job,
    shard: u32,
    class: SizeClass,
    enqueue_due: Option<Timestamp>,
}

#[derive(Deserialize)]
struct Row {
    shard: f64,
    class: String,
    enqueue_due: Option<f64>,
    body: String,
}

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn failure(e: &ApiError) -> worker::Result<Response> {
    Ok(Response::ok(e.to_json())?.with_status(e.status()))
}

/// The answer to a command refused through our own fault (a broken
/// setting): the JSON error a Worker gives for it, detail logged.
fn our_fault(e: ConfigError) -> Response {
    let f: Failure = e.into();
    if let Some(detail) = f.report_detail() {
        tracing::error!(detail, "video job command refused");
    }
    error_response(&f.to_api_error())
}

fn lease_lost(e: media_core::video::job::LeaseLost) -> ApiError {
    ApiError::new(ErrorCode::LeaseLost, e.to_string())
}

#[durable_object]
pub struct VideoJob {
    state: State,
    env: Env,
    /// Open `/job-events` streams.
    subscribers: Subscribers,
    /// Whether the tables exist, once looked up (see [`VideoJob::has_tables`]).
    tables: Cell<Option<bool>>,
}

impl VideoJob {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// Whether this object has its tables. An object gets them with its
    /// first write ([`VideoJob::ensure_tables`]); reads of one without them
    /// answer "no job" and create nothing, so a read never leaves state.
    fn has_tables(&self) -> worker::Result<bool> {
        if let Some(known) = self.tables.get() {
            return Ok(known);
        }
        #[derive(Deserialize)]
        struct Count {
            n: f64,
        }
        let rows: Vec<Count> = self
            .sql()
            .exec("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'job'", None)?
            .to_array()?;
        let exists = rows.first().is_some_and(|r| r.n > 0.0);
        self.tables.set(Some(exists));
        Ok(exists)
    }

    /// Creates the tables before a write, when they are not there yet.
    fn ensure_tables(&self) -> worker::Result<()> {
        if !self.has_tables()? {
            self.sql().exec(&format!("{EVENT_LOG_SCHEMA}{SCHEMA}"), None)?;
            self.tables.set(Some(true));
        }
        Ok(())
    }

    /// The answer a command gets from an object without tables (no job was
    /// ever written, or the video was deleted and swept), without creating
    /// them; `None` for the commands that write (a notify, a delete).
    fn answer_without_tables(op: &VideoOp) -> Option<worker::Result<Response>> {
        let none =
            || ApiError::not_found("no job for that app_id and video_id; call /notify-upload-complete after uploading");
        Some(match op {
            VideoOp::Get => Response::from_json(&None::<Job>),
            VideoOp::Events { .. } | VideoOp::Cancel => failure(&none()),
            VideoOp::Grant { job_id, .. }
            | VideoOp::Heartbeat { job_id, .. }
            | VideoOp::Complete { job_id, .. }
            | VideoOp::Fail { job_id, .. }
            | VideoOp::Release { job_id, .. } => failure(&ApiError::not_found(format!("no job {job_id}"))),
            VideoOp::UploadSession { step, .. } => return sessions::answer_without_tables(step),
            _ => return None,
        })
    }

    /// Writes the video's job marker in KV once (with the job's first
    /// change, and for a job from before markers, its next one). A failed
    /// write is logged and tried again with the next change.
    async fn ensure_marker(&self, job: &Job) -> worker::Result<()> {
        if self.meta(MARKER_META_KEY)?.is_some() {
            return Ok(());
        }
        match write_job_marker(&self.env, &job.app_id, &job.video_id).await {
            Ok(()) => self.set_meta(MARKER_META_KEY, "1"),
            Err(e) => {
                tracing::error!(job_id = %job.job_id, error = %e, "writing the job marker failed; public reads miss the job until the next change writes it");
                Ok(())
            }
        }
    }

    fn load(&self) -> worker::Result<Option<Stored>> {
        let rows: Vec<Row> = self.sql().exec("SELECT shard, class, enqueue_due, body FROM job", None)?.to_array()?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let job = serde_json::from_str(&row.body).map_err(|e| worker::Error::RustError(format!("stored job: {e}")))?;
        Ok(Some(Stored {
            job,
            shard: row.shard as u32,
            class: SizeClass::parse(&row.class).unwrap_or(SizeClass::Standard),
            enqueue_due: row.enqueue_due.map(|t| Timestamp::from_millis(t as u64)),
        }))
    }

    fn save(&self, s: &Stored) -> worker::Result<()> {
        let body = serde_json::to_string(&s.job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql().exec(
            "INSERT INTO job (one, shard, class, enqueue_due, body) VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (one) DO UPDATE SET shard = excluded.shard, class = excluded.class,
               enqueue_due = excluded.enqueue_due, body = excluded.body",
            vec![
                SqlStorageValue::Integer(i64::from(s.shard)),
                s.class.as_str().into(),
                s.enqueue_due.map(int).unwrap_or(SqlStorageValue::Null),
                body.into(),
            ],
        )?;
        Ok(())
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        let rows: Vec<ValueRow> =
            self.sql().exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// When the ended job's outputs are swept once more (see [`Self::drop_outputs`]).
    fn late_sweep_at(&self) -> worker::Result<Option<Timestamp>> {
        Ok(self.meta(LATE_SWEEP_KEY)?.and_then(|v| v.parse().ok()).map(Timestamp::from_millis))
    }

    /// After a cancel or an expired lease that ended the job: its transcoder
    /// may still write until its next heartbeat is refused, so the outputs
    /// are swept again once its lease could not still be used.
    fn plan_late_sweep(&self) -> worker::Result<()> {
        match retry_policy(&self.env) {
            Ok(p) => {
                self.set_meta(LATE_SWEEP_KEY, &now().plus_millis(p.lease_ttl_ms + SWEEP_MARGIN_MS).millis().to_string())
            }
            Err(e) => {
                tracing::error!(detail = %e, "no late sweep of the ended job's outputs: a setting cannot be used");
                Ok(())
            }
        }
    }

    /// Keeps the public origin a call came with, for events of later calls
    /// without one (the shard's grants, the alarm).
    fn remember_base(&self, base: Option<&str>) -> worker::Result<()> {
        match base {
            Some(b) if self.meta("base")?.as_deref() != Some(b) => self.set_meta("base", b),
            _ => Ok(()),
        }
    }

    fn base(&self) -> worker::Result<String> {
        Ok(self.meta("base")?.unwrap_or_default())
    }

    fn log(&self) -> EventLog {
        EventLog::new(self.sql(), VIDEO_EVENT_LOG_LEN)
    }

    /// Appends `events` to the log (dropping the oldest beyond its bound)
    /// and writes them to the open streams; a terminal event ends them.
    fn record(&self, job: &Job, events: &[JobEvent]) -> worker::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.publish_to_app(job, events.iter().map(|e| (e.name().to_owned(), e.data())).collect());
        for frame in self.log().append(events.iter().map(|e| (e.name(), e.data().to_string())))? {
            self.subscribers.broadcast(&frame);
        }
        if events.iter().any(JobEvent::is_terminal) {
            self.subscribers.close_all();
        }
        Ok(())
    }

    /// Hands events to the app's hub (`/events`), after this call's own
    /// writes; best effort, not retried (see `crate::app_hub`).
    fn publish_to_app(&self, job: &Job, events: Vec<(String, serde_json::Value)>) {
        let summary = JobSummary {
            video_id: job.video_id.clone(),
            job_id: job.job_id.to_string(),
            status: job.status.as_str().to_owned(),
            progress: job.progress,
            stage: job.stage.clone(),
            updated_at: job.updated_at,
        };
        let cmd = HubCommand::Publish { job: summary, events };
        let (env, app) = (self.env.clone(), job.app_id.to_string());
        self.state.wait_until(async move {
            match call(&env, APP_EVENTS_BINDING, &app, &cmd).await {
                Ok(a) if a.status == 200 => {}
                Ok(a) => tracing::warn!(app_id = %app, status = a.status, "the app hub refused events"),
                Err(e) => tracing::warn!(app_id = %app, error = %e, "handing events to the app hub failed"),
            }
        });
    }

    /// `GET /job-events`: `connected` (with the job as it is now), the kept
    /// events after `last_event_id`, then live ones until a terminal event.
    /// A client that already has everything of an ended job gets 204, which
    /// tells an `EventSource` to stop reconnecting.
    fn events(
        &self,
        last_event_id: Option<u64>,
        address: Option<&str>,
        base: Option<&str>,
    ) -> worker::Result<Response> {
        let Some(stored) = self.load()? else {
            return failure(&ApiError::not_found(
                "no job for that app_id and video_id; call /notify-upload-complete after uploading",
            ));
        };
        let ended = matches!(stored.job.status, JobStatus::Done | JobStatus::Error);
        let log = self.log();
        let last = log.last_id()?;
        let from = last_event_id.unwrap_or(0);
        if ended && last_event_id.is_some() && from >= last {
            return Ok(Response::empty()?.with_status(204));
        }
        let address = address.unwrap_or("unknown");
        if !ended {
            let (open, from_address) = self.subscribers.open_counts(address);
            if let Err(e) = stream_caps(&self.env).admit(open, from_address) {
                tracing::warn!(open, from_address, address, "event stream refused: at its cap");
                return failure(&e);
            }
        }
        let view = JobView::of(&stored.job, &base.map_or_else(|| self.base(), |b| Ok(b.to_owned()))?);
        let client_id = format!("c_{}", hex::encode(random_bytes::<8>()));
        let first = log.opening(connected(&client_id, Some(&view)), from)?;
        let heartbeat_ms = sse_heartbeat_ms(&self.env);
        self.subscribers.open_from(Some(address.to_owned()), first, last.max(from), !ended, heartbeat_ms)
    }

    /// The retry rules and the stored job `job_id` names, or the answer a
    /// call about that job gets instead (500 on a broken setting, 404).
    fn policy_and_job(&self, job_id: &JobId) -> Result<(RetryPolicy, Stored), worker::Result<Response>> {
        let policy = retry_policy(&self.env).map_err(|e| Ok(our_fault(e)))?;
        let stored = self.leased(job_id).map_err(|e| failure(&e))?;
        Ok((policy, stored))
    }

    /// The stored job `job_id` names, or the error a transcoder's call gets.
    fn leased(&self, job_id: &JobId) -> Result<Stored, ApiError> {
        match self.load() {
            Ok(Some(s)) if s.job.job_id == *job_id => Ok(s),
            Ok(_) => Err(ApiError::not_found(format!("no job {job_id}"))),
            Err(e) => Err(ApiError::new(ErrorCode::Internal, e.to_string())),
        }
    }

    /// Writes the job after a change from `before`, then tells its shard
    /// what the change means for the queue, and sets the alarm.
    async fn commit(&self, before: Option<&Job>, mut stored: Stored) -> worker::Result<Stored> {
        let change = shard_change(before, &stored.job);
        if change == ShardChange::Enqueue {
            stored.enqueue_due = Some(now());
        }
        let base = self.base()?;
        let events = events_between(before, &stored.job, &base);
        let deliveries = self.plan_deliveries(&stored.job, &events, &base)?;
        if !deliveries.is_empty() {
            stored.job.callback = Some(CallbackState::pending());
        }
        self.save(&stored)?;
        self.record(&stored.job, &events)?;
        self.queue_deliveries(&deliveries)?;
        self.ensure_marker(&stored.job).await?;
        match change {
            ShardChange::Enqueue => self.tell_shard_waiting(&stored).await?,
            ShardChange::Ended => {
                let ended = ShardCommand::Ended { job_id: stored.job.job_id.clone() };
                // Best effort: a row left behind is refused at its grant (409).
                if let Err(e) = call(&self.env, DISPATCH_BINDING, &shard_name(stored.shard), &ended).await {
                    tracing::warn!(job_id = %stored.job.job_id, error = %e, "telling the shard the job ended failed");
                }
            }
            ShardChange::None => {}
        }
        self.schedule_alarm().await?;
        Ok(stored)
    }

    /// Tells the job's shard it waits; on failure leaves `enqueue_due` set
    /// for the alarm to try again.
    async fn tell_shard_waiting(&self, stored: &Stored) -> worker::Result<()> {
        // Only used to ring the other shards: a broken value rings none.
        let shards = dispatch_settings(&self.env).map(|d| d.queue_shards).unwrap_or(1);
        let job = &stored.job;
        let cmd = ShardCommand::Enqueue {
            job_id: job.job_id.clone(),
            app_id: job.app_id.clone(),
            video_id: job.video_id.clone(),
            class: stored.class,
            queued_at: job.queued_at,
            not_before: job.not_before,
            shard: stored.shard,
            shards,
        };
        let sent_at = now();
        let sent = call(&self.env, DISPATCH_BINDING, &shard_name(stored.shard), &cmd).await;
        // Other calls may have run while this one waited (a grant through the
        // shard, even): only the enqueue mark is touched, never the job.
        let problem = match sent {
            Ok(a) if a.status == 200 => {
                self.sql().exec("UPDATE job SET enqueue_due = NULL WHERE enqueue_due <= ?", vec![int(sent_at)])?;
                return Ok(());
            }
            Ok(a) => format!("the shard answered {}: {}", a.status, a.body),
            Err(e) => e.to_string(),
        };
        tracing::warn!(job_id = %job.job_id, problem, "telling the shard the job waits failed; retrying");
        self.sql().exec("UPDATE job SET enqueue_due = ?", vec![int(now().plus_millis(ENQUEUE_RETRY_MS))])?;
        Ok(())
    }

    /// The alarm fires at the earliest of: the lease's expiry, a retry of
    /// telling the shard, the next webhook attempt. Read from what is stored
    /// now, never from a copy an await may have made stale.
    async fn schedule_alarm(&self) -> worker::Result<()> {
        let Some(s) = self.load()? else { return Ok(()) };
        let lease_end = s.job.lease.as_ref().filter(|_| s.job.status == JobStatus::Processing).map(|l| l.expires_at);
        let due = [lease_end, s.enqueue_due, self.next_delivery()?, self.late_sweep_at()?].into_iter().flatten().min();
        if let Some(due) = due {
            // An i64 would be an offset; pass the wait as a Duration.
            let wait = due.millis_since(now()).max(10);
            self.state.storage().set_alarm(Duration::from_millis(wait)).await?;
        }
        Ok(())
    }

    async fn notify(&self, app_id: AppId, video_id: VideoId, source: SourceUpload) -> worker::Result<Response> {
        let (policy, ladder, dispatch) =
            match (retry_policy(&self.env), ladder_options(&self.env), dispatch_settings(&self.env)) {
                (Ok(p), Ok(l), Ok(d)) => (p, l, d),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(our_fault(e)),
            };
        let t = now();
        let class = SizeClass::of_size(source.size, dispatch.large_source_bytes);
        let before = self.load()?;
        let (stored, outcome) = match &before {
            None => {
                let job_id = JobId::from_random(random_bytes());
                let shard = shard_of(&job_id, dispatch.queue_shards);
                let job = Job::new(job_id, app_id, video_id, source, ladder, &policy, t);
                (Stored { job, shard, class, enqueue_due: None }, NotifyOutcome::Created)
            }
            Some(s) => {
                let mut job = s.job.clone();
                let outcome = job.renotify(source, &policy, t);
                (Stored { job, shard: s.shard, class, enqueue_due: s.enqueue_due }, outcome)
            }
        };
        let stored = if outcome == NotifyOutcome::Unchanged {
            stored
        } else {
            let stored = self.commit(before.as_ref().map(|s| &s.job), stored).await?;
            let j = &stored.job;
            tracing::info!(job_id = %j.job_id, app_id = %j.app_id, video_id = %j.video_id, shard = stored.shard, class = stored.class.as_str(), ?outcome, "job queued");
            stored
        };
        Response::from_json(&NotifyReply { outcome, job: stored.job })
    }

    async fn grant(
        &self,
        job_id: &JobId,
        lease_id: LeaseId,
        output_id: OutputId,
        worker: &str,
    ) -> worker::Result<Response> {
        let (policy, mut stored) = match self.policy_and_job(job_id) {
            Ok(both) => both,
            Err(answer) => return answer,
        };
        let before = stored.job.clone();
        if let Err(not) = stored.job.lease(lease_id, output_id, &policy, now()) {
            return failure(&ApiError::new(ErrorCode::Conflict, not.to_string()));
        }
        let stored = self.commit(Some(&before), stored).await?;
        tracing::info!(%job_id, worker, attempt = stored.job.attempts, "lease granted");
        Response::from_json(&JobSpec::of_lease(&stored.job, &policy))
    }

    async fn heartbeat(&self, job_id: &JobId, req: HeartbeatRequest) -> worker::Result<Response> {
        let (policy, mut stored) = match self.policy_and_job(job_id) {
            Ok(both) => both,
            Err(answer) => return answer,
        };
        let before = stored.job.clone();
        match stored.job.heartbeat(&req.lease_id, req.progress, req.stage, req.playable, &policy, now()) {
            Ok(expires) => {
                let stored = self.commit(Some(&before), stored).await?;
                if stored.job.playable && !before.playable {
                    tracing::info!(%job_id, "job playable");
                }
                Response::from_json(&HeartbeatResponse {
                    lease_expires_at: expires,
                    app_id: Some(stored.job.app_id.clone()),
                    video_id: Some(stored.job.video_id.clone()),
                })
            }
            Err(lost) => failure(&lease_lost(lost)),
        }
    }

    async fn complete(&self, job_id: &JobId, req: CompleteRequest) -> worker::Result<Response> {
        let mut stored = match self.leased(job_id) {
            Ok(s) => s,
            Err(e) => return failure(&e),
        };
        let before = stored.job.clone();
        match stored.job.complete(&req.lease_id, req.result, now()) {
            Ok(Completion::Completed) => {}
            // A retry of a complete that committed (its answer was lost): the same answer, no change.
            Ok(Completion::AlreadyDone) => {
                tracing::info!(%job_id, "complete repeated by its lease; already done");
                return Response::from_json(&stored.job);
            }
            Err(lost) => return failure(&lease_lost(lost)),
        }
        let stored = self.commit(Some(&before), stored).await?;
        tracing::info!(%job_id, "job done");
        self.publish_playback_record(&stored.job).await;
        self.retain(&stored.job).await;
        Response::from_json(&stored.job)
    }

    /// Publishes the read model of a done job. The job row is the truth; a
    /// failed KV write only means public reads ask this object instead.
    async fn publish_playback_record(&self, job: &Job) {
        let written = async {
            let record = serde_json::to_string(job).map_err(|e| worker::Error::RustError(e.to_string()))?;
            let kv = self.env.kv(KV_BINDING)?;
            kv.put(&playback_record_key(&job.app_id, &job.video_id), record)?.execute().await?;
            Ok::<(), worker::Error>(())
        };
        if let Err(e) = written.await {
            tracing::error!(job_id = %job.job_id, error = %e, "writing the playback record failed");
        }
    }

    async fn fail(&self, job_id: &JobId, req: FailRequest) -> worker::Result<Response> {
        let (policy, mut stored) = match self.policy_and_job(job_id) {
            Ok(both) => both,
            Err(answer) => return answer,
        };
        let before = stored.job.clone();
        match stored.job.fail(&req.lease_id, &req.message, req.retryable, &policy, now()) {
            Ok(outcome) => {
                let stored = self.commit(Some(&before), stored).await?;
                match outcome {
                    FailOutcome::Retrying { .. } => {
                        tracing::warn!(%job_id, message = %req.message, "attempt failed; retrying")
                    }
                    FailOutcome::Failed => {
                        tracing::error!(%job_id, message = %req.message, "job failed");
                        self.drop_outputs(&stored.job).await;
                    }
                }
                Response::from_json(&stored.job)
            }
            Err(lost) => failure(&lease_lost(lost)),
        }
    }

    async fn release(&self, job_id: &JobId, req: ReleaseRequest) -> worker::Result<Response> {
        let mut stored = match self.leased(job_id) {
            Ok(s) => s,
            Err(e) => return failure(&e),
        };
        let before = stored.job.clone();
        if let Err(lost) = stored.job.release(&req.lease_id, now()) {
            return failure(&lease_lost(lost));
        }
        let stored = self.commit(Some(&before), stored).await?;
        tracing::info!(%job_id, "job released by its transcoder");
        Response::from_json(&stored.job)
    }

    async fn cancel(&self, app_id: &AppId, video_id: &VideoId) -> worker::Result<Response> {
        let Some(mut stored) = self.load()? else {
            return failure(&ApiError::not_found(format!("no job for app_id {app_id:?} and video_id {video_id:?}")));
        };
        let before = stored.job.clone();
        let canceled = stored.job.cancel("canceled through the API", now());
        if canceled {
            if before.lease.is_some() {
                // Before the commit, whose alarm then includes it.
                self.plan_late_sweep()?;
            }
            stored = self.commit(Some(&before), stored).await?;
            tracing::info!(job_id = %stored.job.job_id, "job canceled");
            self.drop_outputs(&stored.job).await;
        }
        Response::from_json(&CancelReply { canceled, job: stored.job })
    }

    /// When the final sweep of a deleted video is due, while its tombstone stands.
    fn tombstone(&self) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct Row {
            sweep_at: f64,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT sweep_at FROM tombstone", None)?.to_array()?;
        Ok(rows.into_iter().next().map(|r| Timestamp::from_millis(r.sweep_at as u64)))
    }

    /// Wipes the object's storage and its alarm (`deleteAll()`): nothing
    /// stays, not even the tables, which a next write creates again.
    async fn wipe(&self) -> worker::Result<()> {
        let storage = self.state.storage();
        storage.delete_alarm().await?;
        storage.delete_all().await?;
        self.tables.set(Some(false));
        Ok(())
    }

    /// The answer a call gets while the video's tombstone stands, or `None`
    /// for the calls that answer it themselves (a repeated delete).
    fn refused_while_deleted(&self, op: &VideoOp, sweep_at: Timestamp) -> Option<worker::Result<Response>> {
        let gone = || ApiError::not_found("no job for that app_id and video_id: the video was deleted");
        Some(match op {
            VideoOp::Delete => return None,
            VideoOp::UploadSession { step, .. } => sessions::while_deleted(step, sweep_at),
            VideoOp::Get => Response::from_json(&None::<Job>),
            VideoOp::Events { .. } | VideoOp::Cancel => failure(&gone()),
            VideoOp::Grant { .. } => failure(&ApiError::new(ErrorCode::Conflict, "the video was deleted")),
            VideoOp::Heartbeat { .. } | VideoOp::Complete { .. } | VideoOp::Fail { .. } | VideoOp::Release { .. } => {
                failure(&ApiError::new(ErrorCode::LeaseLost, "the video was deleted; stop working on it"))
            }
            VideoOp::Notify { .. } => failure(&ApiError::new(
                ErrorCode::Conflict,
                format!("the video is being deleted; its last objects are removed at {sweep_at}; notify after that"),
            )),
        })
    }

    /// `DELETE /videos`: see the module doc's "Deleting".
    async fn delete(&self, app_id: &AppId, video_id: &VideoId) -> worker::Result<Response> {
        let (policy, store) = match (retry_policy(&self.env), store_of(&self.env)) {
            (Ok(p), Ok(s)) => (p, s),
            (Err(e), _) | (_, Err(e)) => return Ok(our_fault(e)),
        };
        let pending = self.tombstone()?;
        let stored = if pending.is_some() { None } else { self.load()? };
        // 1. The job's state goes; a tombstone stays while a transcoder may still write.
        let running = stored.as_ref().filter(|s| !matches!(s.job.status, JobStatus::Done | JobStatus::Error));
        let final_sweep_at = match (pending, running) {
            (Some(at), _) => Some(at),
            (None, Some(_)) => Some(now().plus_millis(policy.lease_ttl_ms + SWEEP_MARGIN_MS)),
            (None, None) => None,
        };
        if stored.is_some() {
            self.wipe().await?;
        }
        if pending.is_none() {
            // Also while nothing runs, for the time the deleting takes: a notify
            // meanwhile is refused rather than queue a job whose source goes, and
            // if the deleting fails half-way the alarm finishes it.
            let at = final_sweep_at.unwrap_or_else(|| now().plus_millis(SWEEP_RETRY_MS));
            self.ensure_tables()?;
            self.sql().exec(
                "INSERT INTO tombstone (one, app_id, video_id, sweep_at) VALUES (1, ?, ?, ?)",
                vec![app_id.as_str().into(), video_id.as_str().into(), int(at)],
            )?;
            self.state.storage().set_alarm(Duration::from_millis(at.millis_since(now()).max(10))).await?;
        }
        // 2. The shard and the open streams hear of it.
        if let Some(s) = running {
            let ended = ShardCommand::Ended { job_id: s.job.job_id.clone() };
            if let Err(e) = call(&self.env, DISPATCH_BINDING, &shard_name(s.shard), &ended).await {
                tracing::warn!(job_id = %s.job.job_id, error = %e, "telling the shard the deleted job ended failed");
            }
        }
        self.subscribers.close_all();
        let forget = HubCommand::Forget { video_id: video_id.clone() };
        match call(&self.env, APP_EVENTS_BINDING, app_id.as_str(), &forget).await {
            Ok(a) if a.status == 200 => {}
            Ok(a) => tracing::warn!(%app_id, status = a.status, "the app hub refused to forget a deleted video"),
            Err(e) => tracing::warn!(%app_id, error = %e, "telling the app hub to forget a deleted video failed"),
        }
        // 3. The objects, then the playback record.
        let mut objects = 0;
        for prefix in ObjectKey::video_prefixes(app_id, video_id) {
            match delete_prefix(&store, &prefix).await {
                Ok(n) => objects += n,
                Err(e) => {
                    let f: Failure = e.into();
                    if let Some(detail) = f.report_detail() {
                        tracing::error!(%app_id, %video_id, detail, "deleting the video's objects failed");
                    }
                    return Ok(error_response(&f.to_api_error()));
                }
            }
        }
        let playback_record = match self.remove_playback_record(app_id, video_id).await {
            Ok(removed) => removed,
            Err(e) => {
                tracing::error!(%app_id, %video_id, error = %e, "deleting the playback record failed");
                return Ok(error_response(&Failure::Unavailable { detail: e.to_string() }.to_api_error()));
            }
        };
        if final_sweep_at.is_none() {
            // Done, and nothing can write any more: no sweep to wait for.
            self.wipe().await?;
        }
        let deleted = DeletedVideo { objects, job: stored.is_some(), playback_record };
        tracing::info!(%app_id, %video_id, objects, job = deleted.job, playback_record, final_sweep_at = ?final_sweep_at.map(Timestamp::to_rfc3339), "video deleted");
        Response::from_json(&DeleteReply { deleted, final_sweep_at })
    }

    /// Removes the KV playback record and the job marker; whether there
    /// was a record.
    async fn remove_playback_record(&self, app_id: &AppId, video_id: &VideoId) -> worker::Result<bool> {
        let kv = self.env.kv(KV_BINDING)?;
        kv.delete(&job_marker_key(app_id, video_id)).await?;
        let key = playback_record_key(app_id, video_id);
        let existed = kv.get(&key).text().await?.is_some();
        if existed {
            kv.delete(&key).await?;
        }
        Ok(existed)
    }

    /// The tombstone's alarm: the last sweep of a deleted video, then nothing is left.
    async fn final_sweep(&self) -> worker::Result<()> {
        let Some((app, video)) = self.tombstone_ids()? else { return self.wipe().await };
        let swept = async {
            let store = store_of(&self.env).map_err(|e| e.to_string())?;
            let mut n = 0;
            for prefix in ObjectKey::video_prefixes(&app, &video) {
                n += delete_prefix(&store, &prefix).await.map_err(|e| e.to_string())?;
            }
            // In case the delete itself stopped before it.
            self.remove_playback_record(&app, &video).await.map_err(|e| e.to_string())?;
            Ok::<u64, String>(n)
        };
        match swept.await {
            Ok(n) => {
                tracing::info!(app_id = %app, video_id = %video, objects = n, "final sweep of a deleted video done");
                self.wipe().await
            }
            Err(e) => {
                tracing::error!(app_id = %app, video_id = %video, error = %e, "final sweep of a deleted video failed; retrying");
                self.state.storage().set_alarm(Duration::from_millis(SWEEP_RETRY_MS)).await
            }
        }
    }

    /// The ids of a deleted video, kept with its tombstone.
    fn tombstone_ids(&self) -> worker::Result<Option<(AppId, VideoId)>> {
        #[derive(Deserialize)]
        struct Ids {
            app_id: String,
            video_id: String,
        }
        let rows: Vec<Ids> = self.sql().exec("SELECT app_id, video_id FROM tombstone", None)?.to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| Some((AppId::parse(&r.app_id).ok()?, VideoId::parse(&r.video_id).ok()?))))
    }

    /// The store retention deletes from, or `None` (logged) when it cannot
    /// be opened.
    fn retention_store(&self) -> Option<AnyStore> {
        store_of(&self.env)
            .map_err(|e| tracing::error!(detail = %e, "retention skipped: the store cannot be opened"))
            .ok()
    }

    /// After a job completed: deletes the outputs of its other attempts and,
    /// with `KEEP_SOURCE=false`, its source. Best effort, logged.
    async fn retain(&self, job: &Job) {
        let Some(current) = &job.output_id else { return };
        let Some(store) = self.retention_store() else { return };
        let outputs = ObjectKey::outputs_prefix(&job.app_id, &job.video_id);
        let keep = ObjectKey::hls_prefix(&job.app_id, &job.video_id, current);
        // Every page: the kept attempt's thousands of keys never hide the rest.
        match delete_prefix_except(&store, &outputs, &keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(job_id = %job.job_id, objects = n, "retention: earlier attempts' outputs deleted"),
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, error = %e, "retention: deleting earlier attempts' outputs failed")
            }
        }
        if !keep_source_of(&self.env) {
            match delete_prefix(&store, &ObjectKey::raw_prefix(&job.app_id, &job.video_id)).await {
                Ok(n) => {
                    tracing::info!(job_id = %job.job_id, objects = n, "retention: source deleted (KEEP_SOURCE=false)")
                }
                Err(e) => tracing::warn!(job_id = %job.job_id, error = %e, "retention: deleting the source failed"),
            }
        }
    }

    /// After a job failed for good or was canceled: deletes every attempt's
    /// outputs, which nothing serves any more (only a done job's output is
    /// played, and a done job is never queued again). The source stays, for
    /// a retry. Best effort, logged.
    ///
    /// Other calls run while this one waits on storage: a notify may queue
    /// the job again and a transcoder start a new attempt under the same
    /// prefix. So each listed batch is deleted only while the job still
    /// stands failed (checked with no wait between the check and the
    /// batch's listing, which was made while it stood failed). A transcoder
    /// that lost its lease (canceled, gone silent) may still write until its
    /// next heartbeat is refused: the alarm sweeps once more when that lease
    /// could no longer be used ([`Self::plan_late_sweep`]).
    async fn drop_outputs(&self, job: &Job) {
        let Some(store) = self.retention_store() else { return };
        let prefix = ObjectKey::outputs_prefix(&job.app_id, &job.video_id);
        let still_failed = || matches!(self.load(), Ok(Some(s)) if s.job.status == JobStatus::Error);
        match delete_prefix_while(&store, &prefix, still_failed).await {
            Ok(keys) if keys.is_empty() => {}
            Ok(keys) => {
                tracing::info!(job_id = %job.job_id, objects = keys.len(), "retention: the ended job's outputs deleted")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.job_id, error = %e, "retention: deleting the ended job's outputs failed")
            }
        }
    }

    /// The alarm's work: expire a lease that ran out, retry telling the
    /// shard, send the webhook attempts that are due.
    async fn on_alarm(&self, policy: &RetryPolicy) -> worker::Result<()> {
        if self.tombstone()?.is_some() {
            return self.final_sweep().await;
        }
        if let Some(mut stored) = self.load()? {
            let before = stored.job.clone();
            if let Some(outcome) = stored.job.expire_lease(policy, now()) {
                tracing::warn!(job_id = %stored.job.job_id, attempts = stored.job.attempts, ?outcome, "lease expired");
                let stored = self.commit(Some(&before), stored).await?;
                if outcome == FailOutcome::Failed {
                    self.plan_late_sweep()?;
                    self.drop_outputs(&stored.job).await;
                }
            }
        }
        if self.late_sweep_at()?.is_some_and(|at| at <= now()) {
            self.sql().exec("DELETE FROM meta WHERE key = ?", vec![LATE_SWEEP_KEY.into()])?;
            // Queued again since: that attempt's completion keeps only its own outputs.
            if let Some(stored) = self.load()?.filter(|s| s.job.status == JobStatus::Error) {
                self.drop_outputs(&stored.job).await;
            }
        }
        if let Some(stored) = self.load()? {
            if stored.enqueue_due.is_some_and(|due| due <= now()) {
                if stored.job.status == JobStatus::Queued {
                    self.tell_shard_waiting(&stored).await?;
                } else {
                    self.sql().exec("UPDATE job SET enqueue_due = NULL", None)?;
                }
            }
        }
        self.deliver_due().await?;
        self.schedule_alarm().await
    }

    /// The webhook deliveries `events` call for: one per event that has a
    /// webhook type and destination (the app's url, this video's
    /// `callback_url`), signed with the app's secret when sent.
    fn plan_deliveries(&self, job: &Job, events: &[JobEvent], base: &str) -> worker::Result<Vec<Delivery>> {
        let kinds: Vec<WebhookType> = events.iter().filter_map(WebhookType::of_event).collect();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let settings = match webhook_settings(&self.env) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(detail = %e, "no webhooks can be sent: a setting cannot be used");
                return Ok(Vec::new());
            }
        };
        let Some(hook) = settings.config.for_app(&job.app_id) else { return Ok(Vec::new()) };
        let mut destinations = Vec::new();
        if let Some(url) = &hook.url {
            destinations.push(("app", url.clone()));
        }
        if let Some(url) = self.meta("callback_url")? {
            destinations.push(("callback", url));
        }
        let view = JobView::with_delivery(job, base);
        let mut out = Vec::new();
        for kind in kinds {
            let body = WebhookBody::new(kind, random_bytes(), now(), view.clone());
            let json = body.to_json();
            for (dest, url) in &destinations {
                out.push(Delivery { event_id: body.id.clone(), dest, kind, url: url.clone(), body: json.clone() });
            }
        }
        Ok(out)
    }

    /// Stores planned deliveries, due now; keeps only the newest ended ones.
    fn queue_deliveries(&self, deliveries: &[Delivery]) -> worker::Result<()> {
        let t = now();
        for d in deliveries {
            self.sql().exec(
                "INSERT OR IGNORE INTO deliveries (event_id, dest, kind, url, body, state, attempts, next_at, last_error, created_at)
                 VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?)",
                vec![
                    d.event_id.as_str().into(),
                    d.dest.into(),
                    d.kind.as_str().into(),
                    d.url.as_str().into(),
                    d.body.as_str().into(),
                    int(t),
                    int(t),
                ],
            )?;
        }
        if !deliveries.is_empty() {
            self.sql().exec(
                "DELETE FROM deliveries WHERE state != 'pending' AND rowid NOT IN
                   (SELECT rowid FROM deliveries ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                vec![SqlStorageValue::Integer(KEPT_DELIVERIES)],
            )?;
        }
        Ok(())
    }

    fn next_delivery(&self) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct Min {
            t: Option<f64>,
        }
        let rows: Vec<Min> =
            self.sql().exec("SELECT MIN(next_at) AS t FROM deliveries WHERE state = 'pending'", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    /// Sends the webhook attempts that are due, one after another, and
    /// records each outcome (`media_core::video::delivery::CallbackState`).
    async fn deliver_due(&self) -> worker::Result<()> {
        #[derive(Deserialize)]
        struct Due {
            event_id: String,
            dest: String,
            kind: String,
            url: String,
            body: String,
            attempts: f64,
        }
        let due: Vec<Due> = self
            .sql()
            .exec(
                "SELECT event_id, dest, kind, url, body, attempts FROM deliveries
                 WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT 8",
                vec![int(now())],
            )?
            .to_array()?;
        if due.is_empty() {
            return Ok(());
        }
        let Some(stored) = self.load()? else { return Ok(()) };
        let settings = match webhook_settings(&self.env) {
            Ok(s) => s,
            Err(e) => {
                // Not a busy loop: look again in a minute, once the setting is mended.
                tracing::error!(detail = %e, "webhooks held back: a setting cannot be used");
                self.sql().exec(
                    "UPDATE deliveries SET next_at = ? WHERE state = 'pending'",
                    vec![int(now().plus_millis(60_000))],
                )?;
                return Ok(());
            }
        };
        let secret = settings.config.for_app(&stored.job.app_id).map(|h| h.secret.clone());
        let mut outcomes = Vec::new();
        for d in due {
            let attempts = d.attempts as u32;
            let outcome = match &secret {
                Some(secret) => {
                    let attempt = Attempt {
                        event_id: &d.event_id,
                        url: &d.url,
                        secret,
                        body: &d.body,
                        timeout_ms: settings.policy.timeout_ms,
                        allow_local_http: settings.allow_local_http,
                    };
                    webhooks::send(&attempt).await
                }
                None => Err("the app has no webhook secret any more (IV_WEBHOOKS)".to_owned()),
            };
            let mut state = CallbackState { status: CallbackStatus::Pending, attempts, last_error: None };
            let (row_state, next_at) = match &outcome {
                Ok(()) => {
                    state.record_delivery();
                    ("delivered", now())
                }
                Err(why) => {
                    match state.record_failure(why, &settings.policy, now(), &format!("{}|{}", d.event_id, d.dest)) {
                        Some(next) => ("pending", next),
                        None => ("failed", now()),
                    }
                }
            };
            self.sql().exec(
                "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE event_id = ? AND dest = ?",
                vec![
                    row_state.into(),
                    SqlStorageValue::Integer(i64::from(state.attempts)),
                    int(next_at),
                    state.last_error.clone().map_or(SqlStorageValue::Null, SqlStorageValue::from),
                    d.event_id.as_str().into(),
                    d.dest.as_str().into(),
                ],
            )?;
            outcomes.push((
                "webhook".to_owned(),
                serde_json::json!({
                    "eventId": d.event_id, "type": d.kind, "destination": d.dest, "state": row_state,
                    "attempts": state.attempts, "lastError": state.last_error,
                }),
            ));
            match &outcome {
                Ok(()) => {
                    tracing::info!(event_id = %d.event_id, dest = %d.dest, attempts = state.attempts, "webhook delivered")
                }
                Err(why) => {
                    tracing::warn!(event_id = %d.event_id, dest = %d.dest, attempts = state.attempts, state = row_state, error = %why, "webhook attempt failed")
                }
            }
        }
        self.publish_to_app(&stored.job, outcomes);
        self.refresh_callback().await
    }

    /// Shows the newest webhook event's delivery in the job (`callback_status`):
    /// pending while any destination is, else failed if any failed, else delivered.
    async fn refresh_callback(&self) -> worker::Result<()> {
        #[derive(Deserialize)]
        struct Latest {
            state: String,
            attempts: f64,
            last_error: Option<String>,
        }
        let rows: Vec<Latest> = self
            .sql()
            .exec(
                "SELECT state, attempts, last_error FROM deliveries WHERE event_id =
                   (SELECT event_id FROM deliveries ORDER BY created_at DESC, rowid DESC LIMIT 1)",
                None,
            )?
            .to_array()?;
        let Some(mut stored) = self.load()? else { return Ok(()) };
        if rows.is_empty() {
            return Ok(());
        }
        let any = |s: &str| rows.iter().any(|r| r.state == s);
        let status = if any("pending") {
            CallbackStatus::Pending
        } else if any("failed") {
            CallbackStatus::Failed
        } else {
            CallbackStatus::Delivered
        };
        let callback = CallbackState {
            status,
            attempts: rows.iter().map(|r| r.attempts as u32).max().unwrap_or(0),
            last_error: rows.iter().filter(|r| r.state != "delivered").find_map(|r| r.last_error.clone()),
        };
        if stored.job.callback.as_ref() == Some(&callback) {
            return Ok(());
        }
        stored.job.callback = Some(callback);
        self.save(&stored)?;
        if stored.job.status == JobStatus::Done {
            // The done job's KV record is what public reads see first.
            self.publish_playback_record(&stored.job).await;
        }
        Ok(())
    }
}

/// One planned webhook delivery.
struct Delivery {
    event_id: String,
    dest: &'static str,
    kind: WebhookType,
    url: String,
    body: String,
}

/// How many ended deliveries a video keeps (for `callback_status` and operators).
const KEPT_DELIVERIES: i64 = 16;

impl DurableObject for VideoJob {
    fn new(state: State, env: Env) -> Self {
        // No tables yet: the first write creates them (`ensure_tables`).
        Self { state, env, subscribers: Subscribers::default(), tables: Cell::new(None) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let call: VideoCall = match crate::client::read_command(&mut req, "video job command").await {
            Ok(c) => c,
            Err(e) => return Ok(Response::ok(e.to_json())?.with_status(e.status())),
        };
        if !self.has_tables()? {
            if let Some(answer) = Self::answer_without_tables(&call.op) {
                return answer;
            }
            self.ensure_tables()?;
        }
        if let Some(sweep_at) = self.tombstone()? {
            if let Some(answer) = self.refused_while_deleted(&call.op, sweep_at) {
                return answer;
            }
        }
        match call.op {
            VideoOp::Events { last_event_id, address } => {
                return self.events(last_event_id, address.as_deref(), call.base.as_deref())
            }
            VideoOp::Delete => return self.delete(&call.app_id, &call.video_id).await,
            VideoOp::Get => return Response::from_json(&self.load()?.map(|s| s.job)),
            VideoOp::UploadSession { session, step } => return self.upload_session(&session, &step),
            _ => self.remember_base(call.base.as_deref())?,
        }
        match call.op {
            VideoOp::Events { .. } | VideoOp::Get | VideoOp::Delete | VideoOp::UploadSession { .. } => {
                unreachable!("answered above")
            }
            VideoOp::Notify { source, callback_url } => {
                if let Some(url) = callback_url {
                    self.set_meta("callback_url", &url)?;
                }
                self.notify(call.app_id, call.video_id, source).await
            }
            VideoOp::Grant { job_id, lease_id, output_id, worker } => {
                self.grant(&job_id, lease_id, output_id, &worker).await
            }
            VideoOp::Heartbeat { job_id, req } => self.heartbeat(&job_id, req).await,
            VideoOp::Complete { job_id, req } => self.complete(&job_id, req).await,
            VideoOp::Fail { job_id, req } => self.fail(&job_id, req).await,
            VideoOp::Release { job_id, req } => self.release(&job_id, req).await,
            VideoOp::Cancel => self.cancel(&call.app_id, &call.video_id).await,
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // A broken setting fails the alarm, which the runtime retries; the
        // commands that use it meanwhile answer 500 (see `fetch`).
        let policy = retry_policy(&self.env).map_err(|e| {
            tracing::error!(detail = %e, "video job alarm: a setting cannot be used");
            worker::Error::RustError(format!("configuration: {e}"))
        })?;
        if self.has_tables()? {
            self.on_alarm(&policy).await?;
        }
        Response::ok("")
    }
}

//! The job queue: one SQLite-backed Durable Object that is both the source of
//! truth for every job and the lease-based queue transcoders pull from.
//! Every change goes through `media_core::job`'s state machine and is written
//! in the same synchronous step, so status reads are always current.
//!
//! The Worker talks to it with [`QueueCommand`]s (JSON over the stub's
//! `fetch`). Long-polling lease requests wait on an in-memory list of waiters
//! woken by new work, with a timer bounded by the request's wait and the next
//! retry's backoff. An alarm re-queues jobs whose lease ran out.
//!
//! The queue's settings (`LEASE_TTL_MS` and the other retry and ladder
//! settings) are read once per command; one that cannot be used refuses the
//! command as a Worker refuses a request on a broken setting (500, generic
//! message, detail logged), rather than running on defaults unnoticed.
//!
//! Rows keep the job as JSON (`media_core::job::Job`, times as epoch
//! milliseconds) beside the columns the queue is searched by.

use std::cell::RefCell;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use media_core::api::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, JobSpec, LeaseResponse, ReleaseRequest,
    MAX_LEASE_WAIT_MS,
};
use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::job::{Completion, FailOutcome, Job, NotifyOutcome, RetryPolicy, SourceUpload};
use media_core::keys::OutputId;
use media_core::ladder::LadderOptions;
use media_core::{ApiError, ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};
use worker::{durable_object, Delay, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State};
use worker_kit::clock::{now, random_bytes};
use worker_kit::config::ConfigError;
use worker_kit::failure::error_response;
use worker_kit::Failure;

/// The Durable Object binding and the one instance's name.
pub const QUEUE_BINDING: &str = "JOBS";
pub const QUEUE_NAME: &str = "global";
/// The KV binding holding published playback records.
pub const KV_BINDING: &str = "MEDIA_KV";

/// The KV key of a finished video's playback record (the final job as JSON).
pub fn playback_record_key(app: &AppId, video: &VideoId) -> String {
    format!("playback/{app}/{video}")
}

/// What the Worker asks of the queue.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QueueCommand {
    Notify { app_id: AppId, video_id: VideoId, source: SourceUpload },
    Get { app_id: AppId, video_id: VideoId },
    Lease { worker: String, wait_ms: u64 },
    Heartbeat { job_id: JobId, req: HeartbeatRequest },
    Complete { job_id: JobId, req: CompleteRequest },
    Fail { job_id: JobId, req: FailRequest },
    Cancel { app_id: AppId, video_id: VideoId },
    Release { job_id: JobId, req: ReleaseRequest },
}

/// The queue's answer to a cancel.
#[derive(Debug, Serialize, Deserialize)]
pub struct CancelReply {
    /// False when the job had already ended (done, or failed).
    pub canceled: bool,
    pub job: Job,
}

/// The queue's answer to a notify: what it did (which decides the HTTP
/// status, `NotifyOutcome::http_status`) and the job.
#[derive(Debug, Serialize, Deserialize)]
pub struct NotifyReply {
    pub outcome: NotifyOutcome,
    pub job: Job,
}

/// The settings a notify runs by (a new job takes the ladder and the retry policy).
struct Rules {
    policy: RetryPolicy,
    ladder: LadderOptions,
}

impl Rules {
    fn load(env: &Env) -> Result<Rules, ConfigError> {
        Ok(Rules { policy: crate::settings::retry_policy(env)?, ladder: crate::settings::ladder_options(env)? })
    }
}

#[durable_object]
pub struct JobQueue {
    state: State,
    env: Env,
    /// Lease requests waiting for work.
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    job_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    lease_expires_at INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (app_id, video_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (status, not_before, queued_at);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (status, lease_expires_at);
";

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct TimeRow {
    t: Option<f64>,
}

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn failure(e: &ApiError) -> worker::Result<Response> {
    Ok(Response::ok(e.to_json())?.with_status(e.status()))
}

/// The answer to a command the queue cannot run through our own fault (a
/// broken setting): the JSON error a Worker gives for it, detail logged.
fn our_fault(f: Failure) -> Response {
    if let Some(detail) = f.report_detail() {
        tracing::error!(detail, "job queue command refused");
    }
    error_response(&f.to_api_error())
}

fn reply<T: Serialize>(v: &T) -> worker::Result<Response> {
    Response::from_json(v)
}

impl JobQueue {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn load(&self, query: &str, bind: Vec<SqlStorageValue>) -> worker::Result<Option<Job>> {
        let rows: Vec<BodyRow> = self.sql().exec(query, bind)?.to_array()?;
        rows.into_iter()
            .next()
            .map(|r| serde_json::from_str(&r.body).map_err(|e| worker::Error::RustError(format!("stored job: {e}"))))
            .transpose()
    }

    fn load_all(&self, query: &str, bind: Vec<SqlStorageValue>) -> worker::Result<Vec<Job>> {
        let rows: Vec<BodyRow> = self.sql().exec(query, bind)?.to_array()?;
        rows.into_iter()
            .map(|r| serde_json::from_str(&r.body).map_err(|e| worker::Error::RustError(format!("stored job: {e}"))))
            .collect()
    }

    fn by_video(&self, app: &AppId, video: &VideoId) -> worker::Result<Option<Job>> {
        self.load(
            "SELECT body FROM jobs WHERE app_id = ? AND video_id = ?",
            vec![app.as_str().into(), video.as_str().into()],
        )
    }

    fn by_id(&self, job_id: &JobId) -> worker::Result<Option<Job>> {
        self.load("SELECT body FROM jobs WHERE job_id = ?", vec![job_id.as_str().into()])
    }

    fn save(&self, job: &Job) -> worker::Result<()> {
        let body = serde_json::to_string(job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let lease = job.lease.as_ref().map(|l| int(l.expires_at)).unwrap_or(SqlStorageValue::Null);
        self.sql().exec(
            "INSERT INTO jobs (app_id, video_id, job_id, status, queued_at, not_before, lease_expires_at, body)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (app_id, video_id) DO UPDATE SET
               job_id = excluded.job_id, status = excluded.status, queued_at = excluded.queued_at,
               not_before = excluded.not_before, lease_expires_at = excluded.lease_expires_at, body = excluded.body",
            vec![
                job.app_id.as_str().into(),
                job.video_id.as_str().into(),
                job.job_id.as_str().into(),
                job.status.as_str().into(),
                int(job.queued_at),
                int(job.not_before),
                lease,
                body.into(),
            ],
        )?;
        Ok(())
    }

    /// Re-queues (or fails) every job whose lease ran out.
    fn sweep_expired(&self, policy: &RetryPolicy, at: Timestamp) -> worker::Result<usize> {
        let expired =
            self.load_all("SELECT body FROM jobs WHERE status = 'processing' AND lease_expires_at < ?", vec![int(at)])?;
        for mut job in expired.iter().cloned() {
            if let Some(outcome) = job.expire_lease(policy, at) {
                tracing::warn!(job_id = %job.job_id, attempts = job.attempts, ?outcome, "lease expired");
                self.save(&job)?;
            }
        }
        Ok(expired.len())
    }

    /// The next moment something is due: a lease expiry or a retry's backoff end.
    fn next_due(&self) -> worker::Result<Option<Timestamp>> {
        let rows: Vec<TimeRow> = self
            .sql()
            .exec(
                "SELECT MIN(t) AS t FROM (
                   SELECT MIN(lease_expires_at) AS t FROM jobs WHERE status = 'processing'
                   UNION ALL SELECT MIN(not_before) AS t FROM jobs WHERE status = 'queued')",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    async fn schedule_alarm(&self) -> worker::Result<()> {
        if let Some(due) = self.next_due()? {
            // An i64 would be an offset; pass the wait as a Duration.
            let wait = due.millis_since(now()).max(10);
            self.state.storage().set_alarm(Duration::from_millis(wait)).await?;
        }
        Ok(())
    }

    fn wake_waiters(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
    }

    async fn notify(
        &self,
        rules: &Rules,
        app_id: AppId,
        video_id: VideoId,
        source: SourceUpload,
    ) -> worker::Result<Response> {
        let t = now();
        let (job, outcome) = match self.by_video(&app_id, &video_id)? {
            None => {
                let job_id = JobId::from_random(random_bytes());
                let job = Job::new(job_id, app_id, video_id, source, rules.ladder.clone(), &rules.policy, t);
                (job, NotifyOutcome::Created)
            }
            Some(mut job) => {
                let outcome = job.renotify(source, &rules.policy, t);
                (job, outcome)
            }
        };
        if outcome != NotifyOutcome::Unchanged {
            self.save(&job)?;
            tracing::info!(job_id = %job.job_id, app_id = %job.app_id, video_id = %job.video_id, ?outcome, "job queued");
            self.wake_waiters();
            self.schedule_alarm().await?;
        }
        reply(&NotifyReply { outcome, job })
    }

    /// Leases the oldest due job, waiting up to `wait_ms` for one.
    async fn lease(&self, policy: &RetryPolicy, worker: &str, wait_ms: u64) -> worker::Result<Response> {
        let deadline = now().plus_millis(wait_ms.min(MAX_LEASE_WAIT_MS));
        loop {
            let t = now();
            self.sweep_expired(policy, t)?;
            let next = self.load(
                "SELECT body FROM jobs WHERE status = 'queued' AND not_before <= ? ORDER BY queued_at LIMIT 1",
                vec![int(t)],
            )?;
            if let Some(mut job) = next {
                let (lease_id, output_id) =
                    (LeaseId::from_random(random_bytes()), OutputId::from_random(random_bytes()));
                job.lease(lease_id, output_id, policy, t).map_err(|e| worker::Error::RustError(e.to_string()))?;
                self.save(&job)?;
                self.schedule_alarm().await?;
                tracing::info!(job_id = %job.job_id, worker, attempt = job.attempts, "job leased");
                return reply(&LeaseResponse { job: JobSpec::of_lease(&job, policy) });
            }
            if t >= deadline {
                return reply(&LeaseResponse { job: None });
            }
            // Sleep until woken by new work, the next retry comes due, or the deadline.
            let mut wake_at = deadline;
            if let Some(due) = self.next_due()? {
                if due > t {
                    wake_at = wake_at.min(due);
                }
            }
            let (tx, rx) = oneshot::channel();
            self.waiters.borrow_mut().push(tx);
            let timer = Delay::from(Duration::from_millis(wake_at.millis_since(t).max(5)));
            match select(rx, timer).await {
                Either::Left(_) | Either::Right(_) => {}
            }
        }
    }

    fn leased_job(&self, job_id: &JobId) -> Result<Job, ApiError> {
        match self.by_id(job_id) {
            Ok(Some(job)) => Ok(job),
            Ok(None) => Err(ApiError::not_found(format!("no job {job_id}"))),
            Err(e) => Err(ApiError::new(ErrorCode::Internal, e.to_string())),
        }
    }

    fn lease_lost(e: media_core::job::LeaseLost) -> ApiError {
        ApiError::new(ErrorCode::LeaseLost, e.to_string())
    }

    async fn heartbeat(&self, policy: &RetryPolicy, job_id: &JobId, req: HeartbeatRequest) -> worker::Result<Response> {
        let mut job = match self.leased_job(job_id) {
            Ok(j) => j,
            Err(e) => return failure(&e),
        };
        let was_playable = job.playable;
        match job.heartbeat(&req.lease_id, req.progress, req.stage, req.playable, policy, now()) {
            Ok(expires) => {
                self.save(&job)?;
                self.schedule_alarm().await?;
                if job.playable && !was_playable {
                    tracing::info!(%job_id, "job playable");
                }
                reply(&HeartbeatResponse {
                    lease_expires_at: expires,
                    app_id: Some(job.app_id.clone()),
                    video_id: Some(job.video_id.clone()),
                })
            }
            Err(lost) => failure(&Self::lease_lost(lost)),
        }
    }

    async fn complete(&self, job_id: &JobId, req: CompleteRequest) -> worker::Result<Response> {
        let mut job = match self.leased_job(job_id) {
            Ok(j) => j,
            Err(e) => return failure(&e),
        };
        match job.complete(&req.lease_id, req.result, now()) {
            Ok(Completion::Completed) => {}
            // A retry of a complete that committed (its answer was lost): the same answer, no change.
            Ok(Completion::AlreadyDone) => {
                tracing::info!(%job_id, "complete repeated by its lease; already done");
                return reply(&job);
            }
            Err(lost) => return failure(&Self::lease_lost(lost)),
        }
        self.save(&job)?;
        self.schedule_alarm().await?;
        tracing::info!(%job_id, "job done");
        // Publish the read model. The job row is the truth; a failed KV write
        // only means /playback-url asks the queue instead.
        let record = serde_json::to_string(&job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        match self.env.kv(KV_BINDING) {
            Ok(kv) => match kv.put(&playback_record_key(&job.app_id, &job.video_id), record) {
                Ok(put) => {
                    if let Err(e) = put.execute().await {
                        tracing::error!(%job_id, error = %e, "writing the playback record failed");
                    }
                }
                Err(e) => tracing::error!(%job_id, error = %e, "writing the playback record failed"),
            },
            Err(e) => tracing::error!(%job_id, error = %e, "KV binding missing"),
        }
        reply(&job)
    }

    async fn fail(&self, policy: &RetryPolicy, job_id: &JobId, req: FailRequest) -> worker::Result<Response> {
        let mut job = match self.leased_job(job_id) {
            Ok(j) => j,
            Err(e) => return failure(&e),
        };
        match job.fail(&req.lease_id, &req.message, req.retryable, policy, now()) {
            Ok(outcome) => {
                self.save(&job)?;
                self.schedule_alarm().await?;
                match outcome {
                    FailOutcome::Retrying { .. } => {
                        tracing::warn!(%job_id, message = %req.message, "attempt failed; retrying")
                    }
                    FailOutcome::Failed => tracing::error!(%job_id, message = %req.message, "job failed"),
                }
                reply(&job)
            }
            Err(lost) => failure(&Self::lease_lost(lost)),
        }
    }
}

impl JobQueue {
    async fn release(&self, job_id: &JobId, req: ReleaseRequest) -> worker::Result<Response> {
        let mut job = match self.leased_job(job_id) {
            Ok(j) => j,
            Err(e) => return failure(&e),
        };
        if let Err(lost) = job.release(&req.lease_id, now()) {
            return failure(&Self::lease_lost(lost));
        }
        self.save(&job)?;
        tracing::info!(%job_id, "job released by its transcoder");
        self.wake_waiters();
        self.schedule_alarm().await?;
        reply(&job)
    }

    async fn cancel(&self, app_id: &AppId, video_id: &VideoId) -> worker::Result<Response> {
        let Some(mut job) = self.by_video(app_id, video_id)? else {
            return failure(&ApiError::not_found(format!("no job for app_id {app_id:?} and video_id {video_id:?}")));
        };
        let canceled = job.cancel("canceled through the API", now());
        if canceled {
            self.save(&job)?;
            self.schedule_alarm().await?;
            tracing::info!(job_id = %job.job_id, "job canceled");
        }
        reply(&CancelReply { canceled, job })
    }
}

impl DurableObject for JobQueue {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            tracing::error!(error = %e, "creating the jobs table failed");
        }
        Self { state, env, waiters: RefCell::new(Vec::new()) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let cmd: QueueCommand = match req.json().await {
            Ok(c) => c,
            Err(e) => return failure(&ApiError::new(ErrorCode::InvalidJson, format!("queue command: {e}"))),
        };
        // The settings a command runs by, read for the commands that use
        // them: a broken one fails those loudly (500, detail logged), while
        // reads, completions, cancels and releases, which use none, go on.
        let policy = || crate::settings::retry_policy(&self.env).map_err(|e| our_fault(e.into()));
        match cmd {
            QueueCommand::Notify { app_id, video_id, source } => {
                let rules = match Rules::load(&self.env) {
                    Ok(rules) => rules,
                    Err(e) => return Ok(our_fault(e.into())),
                };
                self.notify(&rules, app_id, video_id, source).await
            }
            QueueCommand::Get { app_id, video_id } => reply(&self.by_video(&app_id, &video_id)?),
            QueueCommand::Lease { worker, wait_ms } => match policy() {
                Ok(p) => self.lease(&p, &worker, wait_ms).await,
                Err(answer) => Ok(answer),
            },
            QueueCommand::Heartbeat { job_id, req } => match policy() {
                Ok(p) => self.heartbeat(&p, &job_id, req).await,
                Err(answer) => Ok(answer),
            },
            QueueCommand::Complete { job_id, req } => self.complete(&job_id, req).await,
            QueueCommand::Fail { job_id, req } => match policy() {
                Ok(p) => self.fail(&p, &job_id, req).await,
                Err(answer) => Ok(answer),
            },
            QueueCommand::Cancel { app_id, video_id } => self.cancel(&app_id, &video_id).await,
            QueueCommand::Release { job_id, req } => self.release(&job_id, req).await,
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // A broken setting fails the alarm, which the runtime retries; the
        // commands that use it meanwhile answer 500 (see `fetch`).
        let policy = crate::settings::retry_policy(&self.env).map_err(|e| {
            tracing::error!(detail = %e, "job queue alarm: a setting cannot be used");
            worker::Error::RustError(format!("configuration: {e}"))
        })?;
        let swept = self.sweep_expired(&policy, now())?;
        if swept > 0 {
            tracing::info!(swept, "alarm re-queued expired leases");
        }
        self.wake_waiters();
        self.schedule_alarm().await?;
        Response::ok("")
    }
}

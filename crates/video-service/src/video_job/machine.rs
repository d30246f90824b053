//! The commands of a video's object as functions of (stored state, now,
//! settings). Each reads and writes the object's own storage through
//! [`JobStore`] (synchronously: no await between a check and its write)
//! and answers a typed reply, or an [`ApiError`], with the [`Effect`]s the
//! shell ([`super`]) carries out afterwards, in order: telling the shard
//! and the app's hub, the KV read model, retention, webhook sends, the
//! alarm. No clock and no I/O here: `now` and randomness are arguments.

use media_core::catalogue::EventType;
use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::access::{Encryption, PlaybackOptions};
use media_core::video::delivery::CallbackState;
use media_core::video::dispatch::{shard_changes, shard_of, ShardChange, SizeClass};
use media_core::video::events::{connected, events_between, JobEvent, ResetState};
use media_core::video::extras::Extras;
use media_core::video::job::{
    Completion, FailOutcome, Job, JobStatus, LeaseLost, NotLeasable, NotifyOutcome, SourceUpload, TaskStatus,
};
use media_core::video::upload_session::{SessionRecord, SessionStep};
use media_core::video::webhook::{announced_type, EventBody};
use media_core::wire::api::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, JobSpec, JobView, PlanRequest, PlanResponse,
    ReleaseRequest,
};
use media_core::{ApiError, ErrorCode, Timestamp};

use super::deliveries::{self, CALLBACK_URL_KEY};
use super::sessions;
use super::store::{JobStore, Stored};
use crate::protocol::app_hub::JobSummary;
use crate::protocol::dispatch::ShardCommand;
use crate::protocol::video_job::{CancelReply, NotifyReply, UploadReply, VideoOp};
use crate::settings::DispatchSettings;

/// How soon the alarm tries again to tell the shard of a waiting job.
pub const ENQUEUE_RETRY_MS: u64 = 2_000;
/// How long after a running job's lease would have ended the final sweep of
/// a deleted video (and the late sweep of an ended job's outputs) comes.
pub const SWEEP_MARGIN_MS: u64 = 5_000;
/// How soon a final sweep that failed is tried again, and how long a
/// tombstone guards a delete of a video nothing was writing.
pub const SWEEP_RETRY_MS: u64 = 30_000;
/// The `meta` key of the late sweep of an ended job's outputs, in ms since the epoch.
const LATE_SWEEP_KEY: &str = "late_sweep_at";
/// The `meta` key recording that the job marker was written.
pub const MARKER_META_KEY: &str = "kv_marker";
/// The `meta` key of the public origin last given.
const BASE_KEY: &str = "base";

pub use super::announce::{announce_op, announcements_refused, outbox};
use super::announce::{announcements, keep_announced};
pub use super::effect::{Cx, Effect, Refusal, Settings, Step};

/// An answer given before a command runs (no tables, a tombstone).
#[derive(Debug)]
pub enum Early {
    /// `null`: no job (a `Get`).
    NoJob,
    Refused(ApiError),
}

fn no_job() -> ApiError {
    ApiError::not_found("no job for that app_id and video_id; call /notify-upload-complete after uploading")
}

fn lease_lost(e: LeaseLost) -> Refusal {
    Refusal::Answer(ApiError::new(ErrorCode::LeaseLost, e.to_string()))
}

/// The answer a command gets from an object without tables (no job was
/// ever written, or the video was deleted and swept), without creating
/// them; `None` for the commands that write (a notify, a delete, an issue).
fn without_tables(op: &VideoOp, now: Timestamp) -> Option<Early> {
    Some(match op {
        VideoOp::Get => Early::NoJob,
        VideoOp::Events { .. } | VideoOp::Cancel | VideoOp::SetAccess { .. } | VideoOp::SetCaption { .. } => {
            Early::Refused(no_job())
        }
        VideoOp::Grant { job_id, .. }
        | VideoOp::Plan { job_id, .. }
        | VideoOp::Heartbeat { job_id, .. }
        | VideoOp::Complete { job_id, .. }
        | VideoOp::Fail { job_id, .. }
        | VideoOp::Release { job_id, .. } => Early::Refused(ApiError::not_found(format!("no job {job_id}"))),
        VideoOp::UploadSession { step, .. } => return sessions::answer_without_tables(step, now).map(Early::Refused),
        VideoOp::UploadGet { upload_id } | VideoOp::UploadCancel { upload_id } => {
            Early::Refused(sessions::no_upload(upload_id))
        }
        VideoOp::UploadLanded { upload_id: Some(upload_id), .. } => Early::Refused(sessions::no_upload(upload_id)),
        VideoOp::UploadLanded { upload_id: None, .. } => {
            Early::Refused(ApiError::not_found("no upload for that video"))
        }
        VideoOp::Notify { .. } | VideoOp::Delete | VideoOp::Announce { .. } | VideoOp::UploadCreate { .. } => {
            return None
        }
    })
}

/// The answer a call gets while the video's tombstone stands, or `None`
/// for a repeated delete, which answers itself.
fn while_deleted(op: &VideoOp, sweep_at: Timestamp, now: Timestamp) -> Option<Early> {
    let gone = || ApiError::not_found("no job for that app_id and video_id: the video was deleted");
    Some(match op {
        VideoOp::Delete => return None,
        VideoOp::UploadSession { step, .. } => Early::Refused(sessions::while_deleted(step, sweep_at, now)),
        VideoOp::UploadCreate { .. } => Early::Refused(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the video is being deleted; its last objects are removed at {sweep_at}; create the upload after that"
            ),
        )),
        VideoOp::UploadGet { .. } | VideoOp::UploadCancel { .. } | VideoOp::UploadLanded { .. } => {
            Early::Refused(ApiError::not_found("no upload for that video: the video was deleted"))
        }
        VideoOp::Get => Early::NoJob,
        VideoOp::Events { .. }
        | VideoOp::Cancel
        | VideoOp::Announce { .. }
        | VideoOp::SetAccess { .. }
        | VideoOp::SetCaption { .. } => Early::Refused(gone()),
        VideoOp::Grant { .. } => Early::Refused(ApiError::new(ErrorCode::Conflict, "the video was deleted")),
        VideoOp::Plan { .. }
        | VideoOp::Heartbeat { .. }
        | VideoOp::Complete { .. }
        | VideoOp::Fail { .. }
        | VideoOp::Release { .. } => {
            Early::Refused(ApiError::new(ErrorCode::LeaseLost, "the video was deleted; stop working on it"))
        }
        VideoOp::Notify { .. } => Early::Refused(ApiError::new(
            ErrorCode::Conflict,
            format!("the video is being deleted; its last objects are removed at {sweep_at}; notify after that"),
        )),
    })
}

/// Before a command: the answer of an object without tables or whose
/// tombstone stands, if it gets one; otherwise the tables exist (a write
/// creates them) and the command runs.
pub fn admit(store: &impl JobStore, op: &VideoOp, now: Timestamp) -> worker::Result<Option<Early>> {
    if !store.has_tables()? {
        if let Some(answer) = without_tables(op, now) {
            return Ok(Some(answer));
        }
        store.ensure_tables()?;
    }
    match store.tombstone()? {
        Some(t) => Ok(while_deleted(op, t.sweep_at, now)),
        None => Ok(None),
    }
}

/// Keeps the public origin a call came with, for events of later calls
/// without one (the shard's grants, the alarm).
pub fn remember_base(store: &impl JobStore, base: Option<&str>) -> worker::Result<()> {
    match base {
        Some(b) if store.meta(BASE_KEY)?.as_deref() != Some(b) => store.set_meta(BASE_KEY, b),
        _ => Ok(()),
    }
}

fn base(store: &impl JobStore) -> worker::Result<String> {
    Ok(store.meta(BASE_KEY)?.unwrap_or_default())
}

/// When the ended job's outputs are swept once more.
fn late_sweep_at(store: &impl JobStore) -> worker::Result<Option<Timestamp>> {
    Ok(store.meta(LATE_SWEEP_KEY)?.and_then(|v| v.parse().ok()).map(Timestamp::from_millis))
}

/// After a cancel, an expired lease or a chunk task's failure that ended
/// the job: a transcoder may still write until its next heartbeat is
/// refused, so the outputs are swept again once its lease could not still
/// be used.
fn plan_late_sweep(store: &impl JobStore, cx: &Cx) -> worker::Result<()> {
    let at = cx.now.plus_millis(cx.settings.policy.lease_ttl_ms + SWEEP_MARGIN_MS);
    store.set_meta(LATE_SWEEP_KEY, &at.millis().to_string())
}

/// `Get`: the job, if any.
pub fn get(store: &impl JobStore) -> worker::Result<Option<Job>> {
    Ok(store.load()?.map(|s| s.job))
}

/// When the alarm is due: the earliest of the running leases' expiry (the
/// job's, or any of its chunk tasks'), a retry of telling the shard, the
/// next webhook attempt, the late sweep, a retry of handing announced
/// events to the hub.
pub fn next_alarm(store: &impl JobStore) -> worker::Result<Option<Timestamp>> {
    let outbox = store.next_announcement()?;
    // A waiting upload times out then.
    let upload_expiry = sessions::next_expiry(store)?;
    let Some(s) = store.load()? else { return Ok([outbox, upload_expiry].into_iter().flatten().min()) };
    let lease_end = s.job.next_lease_expiry();
    let pending = [lease_end, s.enqueue_due, store.next_delivery()?, late_sweep_at(store)?, outbox, upload_expiry];
    Ok(pending.into_iter().flatten().min())
}

/// The shard answered an enqueue sent at `sent_at` (`told`: with 200): the
/// mark is cleared, unless set again since; or the alarm tries again soon.
pub fn shard_answered(store: &impl JobStore, sent_at: Timestamp, told: bool, now: Timestamp) -> worker::Result<()> {
    if told {
        store.clear_enqueue_due_until(sent_at)
    } else {
        store.set_enqueue_due(Some(now.plus_millis(ENQUEUE_RETRY_MS)))
    }
}

/// Whether the job marker a command asked for is still wanted when its
/// turn comes: other calls run while the shell awaits, and a delete in
/// between leaves a tombstone (or nothing) that the marker must not outlive.
pub fn marker_wanted(store: &impl JobStore) -> worker::Result<bool> {
    Ok(store.has_tables()? && store.tombstone()?.is_none() && store.load()?.is_some())
}

/// The shard was told the job ended. The shard matches `Ended` by job id
/// alone, so one that arrives after a later enqueue of the same job (a
/// notify requeued it while this message was on its way) ends the waiting
/// row. When the job waits again by now, the enqueue is marked due at once,
/// and the alarm tells the shard again (enqueues are idempotent).
/// A chunk task's own `Ended` (`task`) races nothing: a done task never waits again.
pub fn shard_told_ended(store: &impl JobStore, task: Option<u16>, now: Timestamp) -> worker::Result<()> {
    if task.is_some() || !store.has_tables()? {
        return Ok(());
    }
    match store.load()? {
        Some(s) if s.job.status == JobStatus::Queued || !queued_tasks(&s.job).is_empty() => {
            store.set_enqueue_due(Some(now))
        }
        _ => Ok(()),
    }
}

/// The job's chunk tasks waiting for a transcoder, with when each is due.
fn queued_tasks(job: &Job) -> Vec<(u16, Timestamp)> {
    let Some(table) = job.chunks.as_ref().filter(|_| job.status == JobStatus::Processing) else { return Vec::new() };
    table.tasks.iter().filter(|t| t.status == TaskStatus::Queued).map(|t| (t.range.index, t.not_before)).collect()
}

/// The enqueues of `tasks` (the whole job's row when empty), one per due
/// time: a plan's tasks all go in one message. Task rows keep the job's
/// place in the queue (`queued_at`).
fn enqueue(stored: &Stored, dispatch: &DispatchSettings, tasks: &[(u16, Timestamp)]) -> Vec<Effect> {
    let job = &stored.job;
    let cmd = |tasks: Vec<u16>, not_before: Timestamp| Effect::TellShardWaiting {
        shard: stored.shard,
        cmd: ShardCommand::Enqueue {
            job_id: job.job_id.clone(),
            tasks,
            app_id: job.app_id.clone(),
            video_id: job.video_id.clone(),
            class: stored.class,
            queued_at: job.queued_at,
            not_before,
            shard: stored.shard,
            shards: dispatch.queue_shards,
        },
    };
    if tasks.is_empty() {
        return vec![cmd(Vec::new(), job.not_before)];
    }
    let mut by_due: Vec<(Timestamp, Vec<u16>)> = Vec::new();
    for &(task, due) in tasks {
        match by_due.iter_mut().find(|(t, _)| *t == due) {
            Some((_, list)) => list.push(task),
            None => by_due.push((due, vec![task])),
        }
    }
    by_due.into_iter().map(|(due, list)| cmd(list, due)).collect()
}

/// Every enqueue the job's rows need now: the whole job while it is
/// queued, and each queued chunk task (the alarm's retry after the shard
/// could not be told; enqueues are idempotent upserts), but those already
/// being told (`told`: enqueues of a job, empty for its whole row).
fn enqueue_all(stored: &Stored, dispatch: &DispatchSettings, told: &[(JobId, Vec<u16>)]) -> Vec<Effect> {
    let job_id = &stored.job.job_id;
    let mine = || told.iter().filter(|(j, _)| j == job_id);
    let mut effects = Vec::new();
    if stored.job.status == JobStatus::Queued && !mine().any(|(_, tasks)| tasks.is_empty()) {
        effects.extend(enqueue(stored, dispatch, &[]));
    }
    let mut tasks = queued_tasks(&stored.job);
    tasks.retain(|(k, _)| !mine().any(|(_, told)| told.contains(k)));
    if !tasks.is_empty() {
        effects.extend(enqueue(stored, dispatch, &tasks));
    }
    effects
}

/// What the job's shard must be told after a change, from
/// `media_core::video::dispatch::shard_changes`: a job that ended ends every
/// row of it at once (its tasks' too); a task that waits (again) or is done
/// is its own row.
fn shard_effects(stored: &Stored, changes: &[(Option<u16>, ShardChange)], dispatch: &DispatchSettings) -> Vec<Effect> {
    let job = &stored.job;
    let ended = matches!(job.status, JobStatus::Done | JobStatus::Error);
    let mut effects = Vec::new();
    if changes.contains(&(None, ShardChange::Ended)) && ended {
        effects.push(Effect::TellShardEnded { shard: stored.shard, job_id: job.job_id.clone(), task: None });
        return effects;
    }
    if changes.contains(&(None, ShardChange::Enqueue)) {
        effects.extend(enqueue(stored, dispatch, &[]));
    }
    let due = |k: u16| {
        let tasks = job.chunks.as_ref().map(|c| c.tasks.as_slice()).unwrap_or_default();
        tasks.iter().find(|t| t.range.index == k).map_or(job.not_before, |t| t.not_before)
    };
    let tasks: Vec<(u16, Timestamp)> = changes
        .iter()
        .filter_map(|(task, change)| match (task, change) {
            (Some(k), ShardChange::Enqueue) => Some((*k, due(*k))),
            _ => None,
        })
        .collect();
    if !tasks.is_empty() {
        effects.extend(enqueue(stored, dispatch, &tasks));
    }
    for (task, change) in changes {
        if let (Some(k), ShardChange::Ended) = (task, change) {
            effects.push(Effect::TellShardEnded { shard: stored.shard, job_id: job.job_id.clone(), task: Some(*k) });
        }
    }
    effects
}

/// The job as the app's hub lists it.
pub fn summary(job: &Job) -> JobSummary {
    JobSummary {
        video_id: job.video_id.clone(),
        job_id: job.job_id.to_string(),
        status: job.status.as_str().to_owned(),
        progress: job.progress,
        stage: job.stage.clone(),
        updated_at: job.updated_at,
    }
}

/// Writes the job after a change from `before` with its events, log and
/// webhook deliveries; the effects tell the hub, the streams, the shard
/// and set the alarm.
fn commit(store: &impl JobStore, cx: &Cx, before: Option<&Job>, mut stored: Stored) -> Step<Stored> {
    let changes = shard_changes(before, &stored.job);
    if changes.iter().any(|(_, c)| *c == ShardChange::Enqueue) {
        stored.enqueue_due = Some(cx.now);
    }
    let base = base(store)?;
    let events = events_between(before, &stored.job, &base);
    // The catalogue events of the change: `video.created` with the video's
    // first job, then one per job event that announces one.
    let types: Vec<EventType> = before
        .is_none()
        .then_some(EventType::VideoCreated)
        .into_iter()
        .chain(events.iter().filter_map(announced_type))
        .collect();
    let announced = match types.is_empty() {
        true => Vec::new(),
        false => {
            let view = serde_json::to_value(JobView::of(&stored.job, &base))
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            announcements(cx, &stored.job.video_id, types.into_iter().map(|t| (t, view.clone())).collect())
        }
    };
    let bodies: Vec<EventBody> = announced.iter().map(|a| a.body.clone()).collect();
    let planned = deliveries::plan(store, &cx.settings.webhooks, &stored.job, &bodies)?;
    if !planned.is_empty() {
        stored.job.callback = Some(CallbackState::pending());
    }
    store.save(&stored)?;
    let mut effects = Vec::new();
    if !events.is_empty() {
        let job = &stored.job;
        let named: Vec<(String, serde_json::Value)> = events.iter().map(|e| (e.name().to_owned(), e.data())).collect();
        effects.push(Effect::HubPublish { app: job.app_id.clone(), job: summary(job), events: named });
        let logged: Vec<(&str, String)> = events.iter().map(|e| (e.name(), e.data().to_string())).collect();
        effects.push(Effect::Broadcast(store.append_events(&logged)?));
    }
    effects.extend(keep_announced(store, cx, &stored.job.app_id, &announced)?);
    if events.iter().any(JobEvent::is_terminal) {
        effects.push(Effect::CloseStreams);
    }
    store.queue_deliveries(&planned, cx.now)?;
    if store.meta(MARKER_META_KEY)?.is_none() {
        let job = &stored.job;
        effects.push(Effect::WriteMarker {
            app: job.app_id.clone(),
            video: job.video_id.clone(),
            job_id: job.job_id.clone(),
        });
    }
    effects.extend(shard_effects(&stored, &changes, &cx.settings.dispatch));
    effects.push(Effect::ScheduleAlarm);
    Ok((stored, effects))
}

/// The stored job `job_id` names, or the error a transcoder's call gets.
fn leased(store: &impl JobStore, job_id: &JobId) -> Result<Stored, Refusal> {
    match store.load() {
        Ok(Some(s)) if s.job.job_id == *job_id => Ok(s),
        Ok(_) => Err(ApiError::not_found(format!("no job {job_id}")).into()),
        Err(e) => Err(ApiError::new(ErrorCode::Internal, e.to_string()).into()),
    }
}

/// `UploadLanded`: what storage has for an upload ([`sessions::landed`]);
/// the first report of the declared file starts the job through [`notify`].
pub fn upload_landed(
    store: &impl JobStore,
    cx: &Cx,
    app: AppId,
    video: VideoId,
    id: Option<&str>,
    source: Option<SourceUpload>,
) -> Step<UploadReply> {
    match sessions::landed(store, cx, app.clone(), video.clone(), id, source)? {
        sessions::LandedStep::Done(reply, effects) => Ok((*reply, effects)),
        sessions::LandedStep::StartJob { upload_id, source, callback, playback, extras } => {
            let asked = Asked { callback_url: callback.as_deref(), playback: &playback, extras: &extras };
            let (notified, effects) = notify(store, cx, app, video, source, asked)?;
            Ok((sessions::started_reply(store, &upload_id, notified.job)?, effects))
        }
    }
}

/// What a notify asks of the video's job besides its source.
pub struct Asked<'a> {
    /// Kept for the video's later events.
    pub callback_url: Option<&'a str>,
    /// A new job's playback options; an existing job made with options
    /// these conflict with answers 409 `conflict`.
    pub playback: &'a PlaybackOptions,
    /// The cover and preview; other ones than an existing job's run it again.
    pub extras: &'a Extras,
}

/// `Notify`: a new job (202), a retry of a failed or stale one (202), or the
/// job as it is (200).
pub fn notify(
    store: &impl JobStore,
    cx: &Cx,
    app_id: AppId,
    video_id: VideoId,
    source: SourceUpload,
    asked: Asked<'_>,
) -> Step<NotifyReply> {
    let before = store.load()?;
    if let Some(conflict) = before.as_ref().and_then(|s| s.job.playback.conflict_with(asked.playback)) {
        return Err(ApiError::new(ErrorCode::Conflict, conflict).into());
    }
    if let Some(url) = asked.callback_url {
        store.set_meta(CALLBACK_URL_KEY, url)?;
    }
    let (policy, dispatch) = (&cx.settings.policy, &cx.settings.dispatch);
    let class = SizeClass::of_size(source.size, dispatch.large_source_bytes);
    let (stored, outcome) = match &before {
        None => {
            let job_id = JobId::from_random((cx.random)());
            let shard = shard_of(&job_id, dispatch.queue_shards);
            let mut job = Job::new(job_id, app_id, video_id, source, cx.settings.ladder.clone(), policy, cx.now);
            job.playback = asked.playback.clone();
            job.extras = asked.extras.clone();
            (Stored { job, shard, class, enqueue_due: None }, NotifyOutcome::Created)
        }
        Some(s) => {
            let mut job = s.job.clone();
            let outcome = match job.rerun_for(asked.extras, source.clone(), policy, cx.now) {
                Some(rerun) => rerun,
                None => job.renotify(source, policy, cx.now),
            };
            (Stored { job, shard: s.shard, class, enqueue_due: s.enqueue_due }, outcome)
        }
    };
    let was_done = before.as_ref().is_some_and(|s| s.job.status == JobStatus::Done);
    if outcome == NotifyOutcome::Unchanged {
        // A waiting upload of the video is asset_created all the same.
        let effects = sessions::job_started(store, cx, &stored.job)?;
        return Ok((NotifyReply { outcome, job: stored.job }, effects));
    }
    let (stored, mut effects) = commit(store, cx, before.as_ref().map(|s| &s.job), stored)?;
    if was_done {
        // Only other extras requeue a done job: its old result must leave public reads.
        let j = &stored.job;
        effects.push(Effect::UnpublishRecord { app: j.app_id.clone(), video: j.video_id.clone() });
        tracing::info!(job_id = %j.job_id, extras = ?j.extras, "done job runs again for other extras");
    }
    effects.extend(sessions::job_started(store, cx, &stored.job)?);
    let j = &stored.job;
    tracing::info!(job_id = %j.job_id, app_id = %j.app_id, video_id = %j.video_id, shard = stored.shard, class = stored.class.as_str(), ?outcome, "job queued");
    Ok((NotifyReply { outcome, job: stored.job }, effects))
}

/// `Grant`, from the job's shard: leases the job to `worker` if it is still
/// queued and due (409 if not); the spec the transcoder works by. With
/// `task`, that chunk task of the job (its `output_id` is the planned
/// run's; `output_id` is then unused). A whole-job spec says from which
/// probed length the transcoder should ask to plan chunks
/// (`JobSpec::chunk_from_s`: never for jobs that stay single-pass).
pub fn grant(
    store: &impl JobStore,
    cx: &Cx,
    job_id: &JobId,
    task: Option<u16>,
    lease_id: LeaseId,
    output_id: OutputId,
    worker: &str,
) -> Step<Option<JobSpec>> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    let policy = &cx.settings.policy;
    let refused = |not: NotLeasable| Refusal::from(ApiError::new(ErrorCode::Conflict, not.to_string()));
    let task_spec = match task {
        None => {
            stored.job.lease(lease_id, output_id, policy, cx.now).map_err(refused)?;
            None
        }
        Some(k) => Some(stored.job.lease_task(k, lease_id, policy, cx.now).map_err(refused)?),
    };
    let (stored, effects) = commit(store, cx, Some(&before), stored)?;
    let job = &stored.job;
    let spec = match task_spec {
        Some(spec) => {
            tracing::info!(%job_id, task, worker, attempt = spec.attempt, "chunk task lease granted");
            Some(spec)
        }
        None => {
            tracing::info!(%job_id, worker, attempt = job.attempts, "lease granted");
            JobSpec::of_lease(job, policy)
                .map(|spec| JobSpec { chunk_from_s: cx.settings.chunks.chunk_from_s(&job.playback), ..spec })
        }
    };
    Ok((spec, effects))
}

/// `Plan`: the holder of the whole job's lease probed a source long enough
/// to split (`JobSpec::chunk_from_s`). Its lease becomes chunk task 0 and
/// the other tasks wait at once, each in its own shard row; the answer is
/// task 0's chunk, or `None` (go on single-pass) when the job stays
/// single-pass or the source fits in one chunk. 409 `lease_lost` for any
/// other caller. A repeat by the same lease answers the same chunk.
pub fn plan(store: &impl JobStore, cx: &Cx, job_id: &JobId, req: PlanRequest) -> Step<PlanResponse> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    let chunk = stored.job.plan(&req.lease_id, req.source, &cx.settings.chunks, cx.now).map_err(lease_lost)?;
    if stored.job == before {
        return Ok((PlanResponse { chunk }, Vec::new()));
    }
    let (stored, effects) = commit(store, cx, Some(&before), stored)?;
    let tasks = stored.job.chunks.as_ref().map_or(0, |c| c.tasks.len());
    tracing::info!(%job_id, tasks, "job planned in chunk tasks");
    Ok((PlanResponse { chunk }, effects))
}

/// `Heartbeat`: progress from the lease's holder (the job's, or a chunk
/// task's, with its published segments), which extends that lease; 409
/// `lease_lost` for any other (fencing).
pub fn heartbeat(store: &impl JobStore, cx: &Cx, job_id: &JobId, req: HeartbeatRequest) -> Step<HeartbeatResponse> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    let job = &mut stored.job;
    // A chunk task's uploaded prefix: what the rendered playlists list.
    job.record_published(&req.lease_id, req.published_segments, req.published_audio_segments).map_err(lease_lost)?;
    let expires = job
        .heartbeat(&req.lease_id, req.progress, req.stage, req.playable, &cx.settings.policy, cx.now)
        .map_err(lease_lost)?;
    let (stored, effects) = commit(store, cx, Some(&before), stored)?;
    if stored.job.playable && !before.playable {
        tracing::info!(%job_id, "job playable");
    }
    let reply = HeartbeatResponse {
        lease_expires_at: expires,
        app_id: Some(stored.job.app_id.clone()),
        video_id: Some(stored.job.video_id.clone()),
    };
    Ok((reply, effects))
}

/// `SetAccess`: whether the video's public routes need a signed token
/// (`job.playback.require_signed_urls`). A done job's playback record is
/// published again, where public reads find it. An encrypted video stays
/// private (409): its key is served to token holders only. The same flag
/// again changes nothing.
pub fn set_access(store: &impl JobStore, cx: &Cx, require_signed_urls: bool) -> Step<Job> {
    let Some(mut stored) = store.load()? else { return Err(no_job().into()) };
    if stored.job.playback.require_signed_urls == require_signed_urls {
        return Ok((stored.job, Vec::new()));
    }
    if !require_signed_urls && stored.job.playback.encryption == Encryption::Aes128 {
        return Err(ApiError::conflict(
            "the video is encrypted (aes-128): its key is served to token holders only, so it keeps requiring signed URLs",
        )
        .into());
    }
    let before = stored.job.clone();
    stored.job.playback.require_signed_urls = require_signed_urls;
    let (stored, mut effects) = commit(store, cx, Some(&before), stored)?;
    tracing::info!(job_id = %stored.job.job_id, require_signed_urls, "access changed");
    if stored.job.status == JobStatus::Done {
        effects.push(Effect::PublishRecord(stored.job.clone()));
    }
    Ok((stored.job, effects))
}

/// `SetCaption`: adds or replaces the caption track of `language`, or
/// removes it (`track` `None`; 404 when there is none). At most
/// [`MAX_TRACKS`](media_core::video::captions::MAX_TRACKS) a video (409).
/// A done job's playback record is published again, as the public reads
/// list the tracks.
pub fn set_caption(
    store: &impl JobStore,
    cx: &Cx,
    language: &str,
    track: Option<media_core::video::captions::CaptionTrack>,
) -> Step<Job> {
    use media_core::video::captions::MAX_TRACKS;
    let Some(mut stored) = store.load()? else { return Err(no_job().into()) };
    let before = stored.job.clone();
    let captions = &mut stored.job.captions;
    let at = captions.iter().position(|t| t.language == language);
    match (track, at) {
        (Some(track), Some(i)) => captions[i] = track,
        (Some(_), None) if captions.len() >= MAX_TRACKS => {
            return Err(ApiError::conflict(format!(
                "the video has {MAX_TRACKS} caption tracks, the most it may have; delete one first"
            ))
            .into())
        }
        (Some(track), None) => captions.push(track),
        (None, Some(i)) => {
            captions.remove(i);
        }
        (None, None) => {
            return Err(ApiError::not_found(format!("the video has no caption track in {language:?}")).into())
        }
    }
    let (stored, mut effects) = commit(store, cx, Some(&before), stored)?;
    tracing::info!(job_id = %stored.job.job_id, language, tracks = stored.job.captions.len(), "captions changed");
    if stored.job.status == JobStatus::Done {
        effects.push(Effect::PublishRecord(stored.job.clone()));
    }
    Ok((stored.job, effects))
}

/// `Complete`: the job is done; its record is published and retention runs.
/// A repeat by the same lease answers the same job, changing nothing. A
/// chunk task's complete (its `chunk` report) ends that task; the last one
/// makes the job done, its result assembled from every task's report.
pub fn complete(store: &impl JobStore, cx: &Cx, job_id: &JobId, req: CompleteRequest) -> Step<Job> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    match stored.job.finish(&req.lease_id, req.result, req.chunk, cx.now).map_err(lease_lost)? {
        Completion::Completed => {}
        // A retry of a complete that committed (its answer was lost): the same answer, no change.
        Completion::AlreadyDone => {
            tracing::info!(%job_id, "complete repeated by its lease; already done");
            return Ok((stored.job, Vec::new()));
        }
    }
    let (stored, mut effects) = commit(store, cx, Some(&before), stored)?;
    if stored.job.status != JobStatus::Done {
        tracing::info!(%job_id, "chunk task done");
        return Ok((stored.job, effects));
    }
    tracing::info!(%job_id, "job done");
    effects.push(Effect::PublishRecord(stored.job.clone()));
    effects.push(Effect::Retain(stored.job.clone()));
    Ok((stored.job, effects))
}

/// `Fail`: the attempt failed; the job waits again (retryable, attempts
/// left) or ends in `error`, whose outputs then go.
pub fn fail(store: &impl JobStore, cx: &Cx, job_id: &JobId, req: FailRequest) -> Step<Job> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    let outcome =
        stored.job.fail(&req.lease_id, &req.message, req.retryable, &cx.settings.policy, cx.now).map_err(lease_lost)?;
    // A chunk task that ends the job: the other tasks' holders may still
    // write until their next heartbeat is refused, so the outputs are swept
    // once more after their leases could end (before the commit, whose
    // alarm then includes it), as after a cancel.
    if outcome == FailOutcome::Failed && before.chunks.is_some() && before.next_lease_expiry().is_some() {
        plan_late_sweep(store, cx)?;
    }
    let (stored, mut effects) = commit(store, cx, Some(&before), stored)?;
    match outcome {
        FailOutcome::Retrying { .. } => tracing::warn!(%job_id, message = %req.message, "attempt failed; retrying"),
        FailOutcome::Failed => {
            tracing::error!(%job_id, message = %req.message, "job failed");
            effects.push(Effect::DropOutputs(stored.job.clone()));
        }
    }
    Ok((stored.job, effects))
}

/// `Release`: the holder gives the job back, to be leased again at once.
pub fn release(store: &impl JobStore, cx: &Cx, job_id: &JobId, req: ReleaseRequest) -> Step<Job> {
    let mut stored = leased(store, job_id)?;
    let before = stored.job.clone();
    stored.job.release(&req.lease_id, cx.now).map_err(lease_lost)?;
    let (stored, effects) = commit(store, cx, Some(&before), stored)?;
    tracing::info!(%job_id, "job released by its transcoder");
    Ok((stored.job, effects))
}

/// `Cancel`: a job not yet ended ends in `error`; its outputs go now and,
/// when a transcoder held its lease, once more after that lease could end.
pub fn cancel(store: &impl JobStore, cx: &Cx, app_id: &AppId, video_id: &VideoId) -> Step<CancelReply> {
    let Some(mut stored) = store.load()? else {
        return Err(ApiError::not_found(format!("no job for app_id {app_id:?} and video_id {video_id:?}")).into());
    };
    let before = stored.job.clone();
    let canceled = stored.job.cancel("canceled through the API", cx.now);
    let mut effects = Vec::new();
    if canceled {
        // A transcoder held the job's lease, or a chunk task's.
        if before.next_lease_expiry().is_some() {
            // Before the commit, whose alarm then includes it.
            plan_late_sweep(store, cx)?;
        }
        (stored, effects) = commit(store, cx, Some(&before), stored)?;
        tracing::info!(job_id = %stored.job.job_id, "job canceled");
        effects.push(Effect::DropOutputs(stored.job.clone()));
    }
    Ok((CancelReply { canceled, job: stored.job }, effects))
}

/// How `GET /job-events` answers.
#[derive(Debug, PartialEq, Eq)]
pub enum EventsAnswer {
    /// 204: the client has everything of an ended job.
    NoContent,
    /// A stream starting with `first`, live (until a terminal event) or not.
    Open { first: String, address: String, last_id: u64, live: bool, heartbeat_ms: u64 },
}

/// `Events`: `connected` (with the job as it is now), the kept events after
/// `last_event_id`, then live ones until a terminal event. `open` counts the
/// object's open streams, in all and from `address` (the caps).
pub fn events(
    store: &impl JobStore,
    cx: &Cx,
    last_event_id: Option<u64>,
    address: Option<&str>,
    base_given: Option<&str>,
    open: (u32, u32),
) -> Result<EventsAnswer, Refusal> {
    let stored = store.load()?;
    // Before its job, a video with an upload streams its upload's events.
    if stored.is_none() && !sessions::has_upload(store)? {
        return Err(no_job().into());
    }
    let ended = match &stored {
        Some(s) => matches!(s.job.status, JobStatus::Done | JobStatus::Error),
        None => sessions::all_ended(store)?,
    };
    let last = store.last_event_id()?;
    let from = last_event_id.unwrap_or(0);
    // An id past the end is from a log that is gone: a reset, not a 204.
    if ended && last_event_id.is_some() && from == last {
        return Ok(EventsAnswer::NoContent);
    }
    let address = address.unwrap_or("unknown");
    if !ended {
        let (open, from_address) = open;
        if let Err(e) = cx.settings.caps.admit(open, from_address) {
            tracing::warn!(open, from_address, address, "event stream refused: at its cap");
            return Err(e.into());
        }
    }
    let base = match base_given {
        Some(b) => b.to_owned(),
        None => base(store)?,
    };
    let view = stored.map(|s| JobView::of(&s.job, &base));
    let client_id = format!("c_{}", hex::encode(&(cx.random)()[..8]));
    let resumed = last_event_id.map(|_| ResetState::Job(view.clone().map(Box::new)));
    let first = store.opening(connected(&client_id, view.as_ref()), from, resumed.as_ref())?;
    Ok(EventsAnswer::Open {
        first,
        address: address.to_owned(),
        // After a reset too, the newest id is where the client goes on from.
        last_id: last,
        live: !ended,
        heartbeat_ms: cx.settings.heartbeat_ms,
    })
}

/// What a delete does: `first` before the video's objects and KV record
/// are removed (by the shell, which counts them), `then` after.
#[derive(Debug)]
pub struct DeletePlan {
    /// Whether there was a job.
    pub job: bool,
    pub final_sweep_at: Option<Timestamp>,
    pub first: Vec<Effect>,
    pub then: Vec<Effect>,
}

/// `Delete` (see the shell's module doc, "Deleting"): the job's state goes
/// at once; a tombstone stays while a transcoder may still write (queued
/// or running: a lease TTL and a margin), else only while the deleting
/// runs; the shard, the streams and the app's hub hear of it.
pub fn delete(store: &impl JobStore, cx: &Cx, app_id: &AppId, video_id: &VideoId) -> Result<DeletePlan, Refusal> {
    let pending = store.tombstone()?.map(|t| t.sweep_at);
    let stored = if pending.is_some() { None } else { store.load()? };
    let running = stored.as_ref().filter(|s| !matches!(s.job.status, JobStatus::Done | JobStatus::Error));
    let final_sweep_at = match (pending, running) {
        (Some(at), _) => Some(at),
        (None, Some(_)) => Some(cx.now.plus_millis(cx.settings.policy.lease_ttl_ms + SWEEP_MARGIN_MS)),
        (None, None) => None,
    };
    let mut first = Vec::new();
    // What the hub has not taken yet goes before the storage does: a job's
    // events, or an upload's without a job (its wipe is in `then`).
    if stored.is_some() || store.next_announcement()?.is_some() {
        first.push(Effect::FlushAnnouncements);
    }
    if stored.is_some() {
        first.push(Effect::Wipe);
    }
    if pending.is_none() {
        // Also while nothing runs, for the time the deleting takes: a notify
        // meanwhile is refused rather than queue a job whose source goes, and
        // if the deleting fails half-way the alarm finishes it.
        let at = final_sweep_at.unwrap_or_else(|| cx.now.plus_millis(SWEEP_RETRY_MS));
        first.push(Effect::WriteTombstone { app: app_id.clone(), video: video_id.clone(), sweep_at: at });
        first.push(Effect::SetAlarm(at));
    }
    if let Some(s) = running {
        // Every row of the job, its chunk tasks' too.
        first.push(Effect::TellShardEnded { shard: s.shard, job_id: s.job.job_id.clone(), task: None });
    }
    first.push(Effect::CloseStreams);
    first.push(Effect::HubForget { app: app_id.clone(), video: video_id.clone() });
    // Done, and nothing can write any more: no sweep to wait for.
    let then = if final_sweep_at.is_none() { vec![Effect::Wipe] } else { Vec::new() };
    Ok(DeletePlan { job: stored.is_some(), final_sweep_at, first, then })
}

/// The alarm: a deleted video's final sweep; otherwise expire a lease that
/// ran out, the late sweep of an ended job's outputs, retry telling the
/// shard, send the webhook attempts that are due, and set the next alarm.
pub fn alarm(store: &impl JobStore, cx: &Cx) -> Result<Vec<Effect>, Refusal> {
    if let Some(t) = store.tombstone()? {
        return Ok(match t.ids {
            Some((app, video)) => vec![Effect::FinalSweep { app, video }],
            None => vec![Effect::Wipe],
        });
    }
    let mut effects = Vec::new();
    if let Some(mut stored) = store.load()? {
        let before = stored.job.clone();
        if let Some(outcome) = stored.job.expire_lease(&cx.settings.policy, cx.now) {
            tracing::warn!(job_id = %stored.job.job_id, attempts = stored.job.attempts, ?outcome, "lease expired");
            let (stored, committed) = commit(store, cx, Some(&before), stored)?;
            effects.extend(committed);
            if outcome == FailOutcome::Failed {
                plan_late_sweep(store, cx)?;
                effects.push(Effect::DropOutputs(stored.job));
            }
        }
    }
    if late_sweep_at(store)?.is_some_and(|at| at <= cx.now) {
        store.delete_meta(LATE_SWEEP_KEY)?;
        // Queued again since: that attempt's completion keeps only its own outputs.
        if let Some(stored) = store.load()?.filter(|s| s.job.status == JobStatus::Error) {
            effects.push(Effect::DropOutputs(stored.job));
        }
    }
    // A commit above that queued the job (or some of its tasks) tells the
    // shard of those itself; the retry tells the others.
    let told: Vec<(JobId, Vec<u16>)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::TellShardWaiting { cmd: ShardCommand::Enqueue { job_id, tasks, .. }, .. } => {
                Some((job_id.clone(), tasks.clone()))
            }
            _ => None,
        })
        .collect();
    if let Some(stored) = store.load()? {
        if stored.enqueue_due.is_some_and(|due| due <= cx.now) {
            let enqueues = enqueue_all(&stored, &cx.settings.dispatch, &told);
            if enqueues.is_empty() && told.is_empty() {
                store.set_enqueue_due(None)?;
            }
            effects.extend(enqueues);
        }
    }
    if store.next_announcement()?.is_some_and(|due| due <= cx.now) {
        effects.push(Effect::FlushAnnouncements);
    }
    effects.extend(sessions::expire_due(store, cx)?);
    effects.push(Effect::DeliverDue);
    effects.push(Effect::ScheduleAlarm);
    Ok(effects)
}

/// `UploadSession`: see [`sessions`].
pub fn upload_session(
    store: &impl JobStore,
    cx: &Cx,
    session: &str,
    step: &SessionStep,
) -> Result<SessionRecord, Refusal> {
    Ok(sessions::step(store, cx.now, session, step)??)
}

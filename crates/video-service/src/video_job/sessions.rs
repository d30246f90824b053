//! The ledger of one video's resumable upload sessions ([`crate::resumable`]):
//! a `meta` row per session (`upload_session:{id}`, the
//! `media_core::video::upload_session::SessionRecord` as JSON), moved on by
//! `session_step`. Issuing a session is a write (the API key's presign);
//! every other step on an object without tables, or whose video is being
//! deleted, is refused as revoked and creates nothing. A delete wipes the
//! rows with the rest of the object, which is what revokes its tokens.
//! Rows of expired sessions are dropped when the next session is issued.
//!
//! Upload objects (`POST /uploads`) live here too: an upload is a session
//! with a state (see the section below).

use media_core::ids::{AppId, VideoId};
use media_core::video::access::PlaybackOptions;
use media_core::video::extras::Extras;
use media_core::video::job::{Job, SourceUpload};
use media_core::video::upload::{Landed, UploadId, UploadRecord, UploadStatus};
use media_core::video::upload_session::{session_step, SessionEnd, SessionRecord, SessionStep};
use media_core::{ApiError, ErrorCode, Timestamp};

use super::effect::{Cx, Effect, Refusal, Step};
use super::store::JobStore;
use crate::protocol::video_job::UploadReply;

/// The `meta` key prefix of the sessions' rows.
const SESSION_PREFIX: &str = "upload_session:";

/// `VideoOp::UploadSession` at `now`: the session's next entry (200), or
/// why not (403, 409).
pub fn step(
    store: &impl JobStore,
    now: Timestamp,
    session: &str,
    step: &SessionStep,
) -> worker::Result<Result<SessionRecord, ApiError>> {
    let key = format!("{SESSION_PREFIX}{session}");
    let record: Option<SessionRecord> = match store.meta(&key)? {
        None => None,
        Some(v) => {
            Some(serde_json::from_str(&v).map_err(|e| worker::Error::RustError(format!("stored session: {e}")))?)
        }
    };
    let next = match session_step(record.as_ref(), step, now) {
        Ok(next) => next,
        Err(e) => return Ok(Err(e)),
    };
    if matches!(step, SessionStep::Issue { .. }) {
        drop_expired(store, now)?;
    }
    if record.as_ref() != Some(&next) {
        let json = serde_json::to_string(&next).map_err(|e| worker::Error::RustError(e.to_string()))?;
        store.set_meta(&key, &json)?;
    }
    Ok(Ok(next))
}

/// Drops the rows of sessions whose token has expired by `now` (the
/// token's own expiry refuses it from then on).
fn drop_expired(store: &impl JobStore, now: Timestamp) -> worker::Result<()> {
    for (key, value) in store.meta_prefixed(SESSION_PREFIX)? {
        let expired = serde_json::from_str::<SessionRecord>(&value).map_or(true, |r| now >= r.expires_at());
        if expired {
            store.delete_meta(&key)?;
        }
    }
    Ok(())
}

/// A session step on an object without tables (no session was ever issued
/// here, or the video was deleted since): refused without creating them,
/// but for an issue, which is a write.
pub fn answer_without_tables(step: &SessionStep, now: Timestamp) -> Option<ApiError> {
    match step {
        SessionStep::Issue { .. } => None,
        _ => Some(revoked(step, now)),
    }
}

/// A session step while the video's tombstone stands: a new session waits
/// for the delete to end; every token of the video is revoked.
pub fn while_deleted(step: &SessionStep, sweep_at: Timestamp, now: Timestamp) -> ApiError {
    match step {
        SessionStep::Issue { .. } => ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the video is being deleted; its last objects are removed at {sweep_at}; ask for an upload after that"
            ),
        ),
        _ => revoked(step, now),
    }
}

fn revoked(step: &SessionStep, now: Timestamp) -> ApiError {
    session_step(None, step, now).expect_err("only an issue is accepted without a ledger entry")
}

// ---- upload objects ----------------------------------------------------------
//
// An upload (`POST /uploads`, `media_core::video::upload`) is a `meta` row
// `upload:{id}` (its `UploadRecord`); a multipart one also has its session
// row above (the session id is the upload id), which its cancel or timeout
// revokes. At most one upload of a video waits at a time, and none once the
// video has a job. The job starts in this object, in the same synchronous
// step that finds the upload waiting, so of any number of triggers exactly
// one starts it ([`landed`]); a legacy notify moves a waiting upload on too
// ([`job_started`]). The alarm times uploads out ([`expire_due`]).

/// The `meta` key prefix of the uploads' rows.
const UPLOAD_PREFIX: &str = "upload:";

fn upload_key(id: &str) -> String {
    format!("{UPLOAD_PREFIX}{id}")
}

fn stored_error(e: serde_json::Error) -> worker::Error {
    worker::Error::RustError(format!("stored upload: {e}"))
}

fn load_upload(store: &impl JobStore, id: &str) -> worker::Result<Option<UploadRecord>> {
    store.meta(&upload_key(id))?.map(|v| serde_json::from_str(&v).map_err(stored_error)).transpose()
}

fn save_upload(store: &impl JobStore, record: &UploadRecord) -> worker::Result<()> {
    store.set_meta(&upload_key(&record.id), &serde_json::to_string(record).map_err(stored_error)?)
}

fn uploads(store: &impl JobStore) -> worker::Result<Vec<UploadRecord>> {
    store
        .meta_prefixed(UPLOAD_PREFIX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_str(&v).map_err(stored_error))
        .collect()
}

fn waiting(store: &impl JobStore) -> worker::Result<Option<UploadRecord>> {
    Ok(uploads(store)?.into_iter().find(|u| u.status == UploadStatus::Waiting))
}

pub fn no_upload(id: &str) -> ApiError {
    ApiError::not_found(format!("no upload {id:?} (never created, or its video was deleted)"))
}

/// The video an upload is of (its id names it).
fn video_of(record: &UploadRecord) -> worker::Result<(AppId, VideoId)> {
    let id =
        UploadId::parse(&record.id).map_err(|e| worker::Error::RustError(format!("stored upload: {}", e.message)))?;
    Ok((id.app_id, id.video_id))
}

/// Announces the upload's state (`upload.created`, `.asset_created`, ...):
/// the video's log and `/job-events`, the app's stream and webhooks
/// ([`super::announce::announce`]).
fn announce(store: &impl JobStore, cx: &Cx, record: &UploadRecord) -> worker::Result<Vec<Effect>> {
    let (app, video) = video_of(record)?;
    let (_, mut effects) =
        super::announce::announce(store, cx, &app, &video, vec![(record.event_type(), record.event_data())])?;
    // An upload that ended with no job ends the video's streams: nothing more comes.
    if record.status != UploadStatus::Waiting && record.job_id.is_none() && store.load()?.is_none() {
        effects.push(Effect::CloseStreams);
    }
    // The alarm retries handing it to the app's hub.
    effects.push(Effect::ScheduleAlarm);
    Ok(effects)
}

/// The session of a multipart upload is revoked with it (its upload id is the session id).
fn revoke_session(store: &impl JobStore, now: Timestamp, record: &UploadRecord, how: SessionEnd) -> worker::Result<()> {
    if record.multipart && store.meta(&format!("{SESSION_PREFIX}{}", record.id))?.is_some() {
        // An ended session stays ended (the refusal is not an error here).
        let _ = step(store, now, &record.id, &SessionStep::Revoke { how })?;
    }
    Ok(())
}

/// Whether a cancelled or timed-out upload's leftovers (open multipart
/// uploads, partial `raw/` objects) may go: no job and no waiting upload
/// use the video's `raw/` prefix.
pub fn may_clean(store: &impl JobStore) -> bool {
    matches!((store.has_tables(), store.load(), waiting(store)), (Ok(true), Ok(None), Ok(None)))
}

fn reply(store: &impl JobStore, upload: Option<UploadRecord>) -> worker::Result<UploadReply> {
    Ok(UploadReply { upload, job: store.load()?.map(|s| s.job) })
}

/// `UploadCreate`: the upload waits (409 while another waits, or once the video has a job).
pub fn create(store: &impl JobStore, cx: &Cx, record: UploadRecord) -> Step<UploadReply> {
    if let Some(s) = store.load()? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "video has a job already ({}, {}); upload to a new video_id, or delete the video first",
                s.job.job_id,
                s.job.status.as_str()
            ),
        )
        .into());
    }
    if let Some(w) = waiting(store)? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "upload {} is waiting for this video until {}; finish it, or cancel it (DELETE /uploads/{}) first",
                w.id, w.expires_at, w.id
            ),
        )
        .into());
    }
    if record.multipart {
        if let Err(e) = step(store, cx.now, &record.id, &SessionStep::Issue { expires_at: record.expires_at })? {
            return Err(e.into());
        }
    }
    save_upload(store, &record)?;
    let mut effects = announce(store, cx, &record)?;
    effects.push(Effect::ScheduleAlarm);
    tracing::info!(upload_id = %record.id, multipart = record.multipart, timeout_s = record.timeout_s, "upload created");
    Ok((reply(store, Some(record))?, effects))
}

/// `UploadGet`.
pub fn get(store: &impl JobStore, id: &str) -> Result<UploadReply, Refusal> {
    match load_upload(store, id)? {
        Some(r) => Ok(reply(store, Some(r))?),
        None => Err(no_upload(id).into()),
    }
}

/// `UploadCancel`: a waiting upload is cancelled, its token revoked and its
/// leftovers removed (409 for an upload no longer waiting).
pub fn cancel(store: &impl JobStore, cx: &Cx, app: &AppId, video: &VideoId, id: &str) -> Step<UploadReply> {
    let mut record = load_upload(store, id)?.ok_or_else(|| no_upload(id))?;
    record.cancel()?;
    save_upload(store, &record)?;
    revoke_session(store, cx.now, &record, SessionEnd::Cancelled)?;
    let mut effects = announce(store, cx, &record)?;
    effects.push(Effect::CleanUpload { app: app.clone(), video: video.clone() });
    tracing::info!(upload_id = %record.id, "upload cancelled");
    Ok((reply(store, Some(record))?, effects))
}

/// `UploadLanded`: see [`VideoOp::UploadLanded`](crate::protocol::video_job::VideoOp).
pub fn landed(
    store: &impl JobStore,
    cx: &Cx,
    app: AppId,
    video: VideoId,
    id: Option<&str>,
    source: Option<SourceUpload>,
) -> Result<LandedStep, Refusal> {
    let record = match id {
        Some(id) => Some(load_upload(store, id)?.ok_or_else(|| no_upload(id))?),
        // Storage's event: the waiting upload of that key, else the one that started the job.
        None => uploads(store)?
            .into_iter()
            .filter(|u| source.as_ref().is_some_and(|s| s.raw_key == u.key))
            .find(|u| matches!(u.status, UploadStatus::Waiting | UploadStatus::AssetCreated)),
    };
    let Some(mut record) = record else {
        // A file of an upload that already ended (a single PUT after its
        // cancel or timeout: its presigned URL outlives both) is a leftover.
        let late = id.is_none() && source.is_some() && ended_with_key(store, source.as_ref())?;
        let effects = if late && may_clean(store) {
            tracing::info!(app_id = %app, video_id = %video, "storage event: a file of an ended upload; removing it");
            vec![Effect::CleanUpload { app, video }]
        } else {
            Vec::new()
        };
        return Ok(LandedStep::Done(Box::new(reply(store, None)?), effects));
    };
    match record.landed(source.as_ref().map(|s| s.size))? {
        Landed::AlreadyStarted => Ok(LandedStep::Done(Box::new(reply(store, Some(record))?), Vec::new())),
        Landed::Errored => {
            save_upload(store, &record)?;
            revoke_session(store, cx.now, &record, SessionEnd::Aborted)?;
            tracing::warn!(upload_id = %record.id, error = ?record.error, "upload errored");
            let mut effects = announce(store, cx, &record)?;
            // The wrong file goes: it would block the video's next upload (R2
            // refuses its `If-None-Match: *` PUT) or start a job of its own.
            effects.push(Effect::CleanUpload { app, video });
            Ok(LandedStep::Done(Box::new(reply(store, Some(record))?), effects))
        }
        Landed::StartJob => {
            let mut source = source.expect("a size was given");
            source.content_type = record.content_type.clone();
            Ok(LandedStep::StartJob {
                upload_id: record.id.clone(),
                source,
                callback: record.callback_url.clone(),
                playback: record.playback.clone(),
                extras: record.extras.clone(),
            })
        }
    }
}

/// What storage's report of an upload's file leads to: an answer now, or
/// the job to start (`machine::upload_landed` runs its notify, which moves
/// the waiting upload on through [`job_started`]).
pub enum LandedStep {
    Done(Box<UploadReply>, Vec<Effect>),
    StartJob {
        upload_id: String,
        source: SourceUpload,
        callback: Option<String>,
        playback: PlaybackOptions,
        extras: Extras,
    },
}

/// The upload `id` as the reply after its job started.
pub fn started_reply(store: &impl JobStore, id: &str, job: Job) -> worker::Result<UploadReply> {
    Ok(UploadReply { upload: load_upload(store, id)?, job: Some(job) })
}

fn ended_without_job(u: &UploadRecord) -> bool {
    u.status != UploadStatus::Waiting && u.job_id.is_none()
}

/// Whether an upload of the video that ended with no job (cancelled, timed
/// out, errored) wrote to `source`'s key.
fn ended_with_key(store: &impl JobStore, source: Option<&SourceUpload>) -> worker::Result<bool> {
    let Some(source) = source else { return Ok(false) };
    Ok(uploads(store)?.iter().any(|u| u.key == source.raw_key && ended_without_job(u)))
}

/// Whether a new upload should find the video's `raw/` prefix cleaned
/// first: an earlier upload ended with no job (its file may have landed
/// after its cleanup, with no storage event to remove it) and nothing uses
/// the prefix. The object cleans before it creates the upload
/// (`VideoOp::UploadCreate`), so the new upload's `If-None-Match: *` PUT
/// never meets an old file.
pub fn clean_before_create(store: &impl JobStore) -> worker::Result<bool> {
    Ok(may_clean(store) && uploads(store)?.iter().any(ended_without_job))
}

/// After a notify (any trigger, the legacy `/notify-upload-complete` too):
/// the waiting upload of the video, if any, is `asset_created` with `job`.
pub fn job_started(store: &impl JobStore, cx: &Cx, job: &Job) -> worker::Result<Vec<Effect>> {
    let Some(mut record) = waiting(store)? else { return Ok(Vec::new()) };
    if !record.job_started(&job.job_id) {
        return Ok(Vec::new());
    }
    save_upload(store, &record)?;
    tracing::info!(upload_id = %record.id, job_id = %job.job_id, "upload: asset created");
    announce(store, cx, &record)
}

/// When the next waiting upload times out.
pub fn next_expiry(store: &impl JobStore) -> worker::Result<Option<Timestamp>> {
    Ok(waiting(store)?.map(|u| u.expires_at))
}

/// The alarm: a waiting upload past its `expires_at` is `timed_out`, its
/// token revoked and its leftovers removed.
pub fn expire_due(store: &impl JobStore, cx: &Cx) -> worker::Result<Vec<Effect>> {
    let Some(mut record) = waiting(store)? else { return Ok(Vec::new()) };
    if !record.expire(cx.now) {
        return Ok(Vec::new());
    }
    save_upload(store, &record)?;
    revoke_session(store, cx.now, &record, SessionEnd::TimedOut)?;
    tracing::info!(upload_id = %record.id, "upload timed out");
    let mut effects = announce(store, cx, &record)?;
    let (app, video) = video_of(&record)?;
    effects.push(Effect::CleanUpload { app, video });
    Ok(effects)
}

/// Whether the video has an upload (its `/job-events` stream opens before the job).
pub fn has_upload(store: &impl JobStore) -> worker::Result<bool> {
    Ok(!store.meta_prefixed(UPLOAD_PREFIX)?.is_empty())
}

/// Whether every upload of the video ended (a video with no job: its
/// `/job-events` is then over, as an ended job's).
pub fn all_ended(store: &impl JobStore) -> worker::Result<bool> {
    Ok(waiting(store)?.is_none())
}

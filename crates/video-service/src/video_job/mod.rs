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
//! they are kept in a bounded log (the last `VIDEO_EVENT_LOG_LEN`, or `SSE_LOG_EVENTS`, with ids
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
//! ## Layout
//!
//! This module is the `#[durable_object]` shell: it reads the settings once
//! per fetch or alarm with [`crate::settings::ObjectSettings::load`], the
//! function the Worker runs at its entry too, so a broken one normally
//! refuses the request there. One that cannot be used refuses the command
//! as a Worker refuses a request on a broken setting (500, generic message,
//! detail logged; reads of the job use none), and defers the alarm: logged,
//! set again 60 s later, until the variable is fixed (a failed alarm would
//! be dropped after the runtime's retries, leaving leases unexpired). It
//! runs the command in [`machine`] against the object's storage
//! ([`store`]), and carries out the effects it answers (the shard, the
//! app's hub, KV, the streams, retention ([`retention`]), webhook sends
//! ([`deliveries`]), the alarm). Resumable
//! upload sessions are [`sessions`]. The messages are
//! [`crate::protocol::video_job`]'s.

use std::time::Duration;

use media_core::ids::{AppId, VideoId};
use media_core::video::job::{Job, JobStatus};
use media_core::video::webhook::SigningKey;
use media_core::wire::api::DeletedVideo;
use media_core::Timestamp;
use serde::Serialize;
use worker::{durable_object, DurableObject, Env, Request, Response, State};
use worker_kit::clock::{now, random_bytes};
use worker_kit::config::{ConfigError, Vars};
use worker_kit::reply::error_response;
use worker_kit::settings::StorageSettings;
use worker_kit::store::AnyStore;
use worker_kit::Failure;

use crate::client::{call, our_fault, refusal};
use crate::protocol::app_hub::{HubCommand, APP_EVENTS_BINDING};
use crate::protocol::dispatch::{shard_name, ShardCommand, DISPATCH_BINDING};
use crate::protocol::video_job::{DeleteReply, VideoCall, VideoOp};
use crate::sse::Subscribers;
use crate::webhooks::{self, Attempt};

mod announce;
mod deliveries;
mod effect;
mod machine;
mod retention;
mod sessions;
mod store;
#[cfg(test)]
mod tests;

use machine::{Cx, Early, Effect, EventsAnswer, Refusal, Settings};
use store::{JobStore, SqlJobStore};

/// The KV binding holding published playback records.
pub const KV_BINDING: &str = "MEDIA_KV";

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

/// Writes the video's job marker expiring in `ttl_s` (an upload's, before
/// any job: [`crate::status::expect_job`]).
pub async fn write_expiring_job_marker(env: &Env, app: &AppId, video: &VideoId, ttl_s: u64) -> worker::Result<()> {
    env.kv(KV_BINDING)?.put(&job_marker_key(app, video), "1")?.expiration_ttl(ttl_s).execute().await?;
    Ok(())
}

/// What the object runs by, read once per fetch or alarm.
struct Loaded {
    core: Settings,
    storage: StorageSettings,
}

/// Reads every setting the object uses ([`Settings::load`], the function
/// the Worker runs at its entry too); one that cannot be used refuses the
/// command and defers the alarm (see the module doc).
fn load_settings(env: &Env) -> Result<Loaded, ConfigError> {
    let vars = Vars(env);
    Ok(Loaded { core: Settings::load(&vars)?, storage: StorageSettings::load(&vars) })
}

/// How long an alarm that found a setting it cannot use waits before it
/// reads the settings again.
const BROKEN_SETTING_RETRY_MS: u64 = 60_000;

fn reply<T: Serialize>(value: &T) -> worker::Result<Response> {
    Response::from_json(value)
}

fn early(answer: Early) -> worker::Result<Response> {
    match answer {
        Early::NoJob => reply(&None::<Job>),
        Early::Refused(e) => refusal(&e),
    }
}

#[durable_object]
pub struct VideoJob {
    state: State,
    env: Env,
    /// Open `/job-events` streams.
    subscribers: Subscribers,
    store: SqlJobStore,
}

impl VideoJob {
    /// A command's reply after its effects, or its refusal.
    async fn answer<T: Serialize>(&self, loaded: &Loaded, step: machine::Step<T>) -> worker::Result<Response> {
        match step {
            Ok((value, effects)) => {
                self.carry(loaded, effects).await?;
                reply(&value)
            }
            Err(refusal) => self.refused(refusal),
        }
    }

    fn refused(&self, why: Refusal) -> worker::Result<Response> {
        match why {
            Refusal::Answer(e) => refusal(&e),
            Refusal::Storage(e) => Err(e),
        }
    }

    /// Carries out `effects` in order.
    async fn carry(&self, loaded: &Loaded, effects: Vec<Effect>) -> worker::Result<()> {
        for effect in effects {
            self.carry_one(loaded, effect).await?;
        }
        Ok(())
    }

    async fn carry_one(&self, loaded: &Loaded, effect: Effect) -> worker::Result<()> {
        match effect {
            Effect::HubPublish { app, job, events } => self.publish_to_app(app, HubCommand::Publish { job, events }),
            Effect::HubForget { app, video } => {
                let forget = HubCommand::Forget { video_id: video };
                match call(&self.env, APP_EVENTS_BINDING, app.as_str(), &forget).await {
                    Ok(a) if a.status == 200 => {}
                    Ok(a) => {
                        tracing::warn!(app_id = %app, status = a.status, "the app hub refused to forget a deleted video")
                    }
                    Err(e) => {
                        tracing::warn!(app_id = %app, error = %e, "telling the app hub to forget a deleted video failed")
                    }
                }
            }
            Effect::Broadcast(frames) => frames.iter().for_each(|f| self.subscribers.broadcast(f)),
            Effect::CloseStreams => self.subscribers.close_all(),
            Effect::WriteMarker { app, video, job_id } => {
                if !machine::marker_wanted(&self.store)? {
                    return Ok(());
                }
                match write_job_marker(&self.env, &app, &video).await {
                    // A delete during the write removes the marker again in its final sweep.
                    Ok(()) if machine::marker_wanted(&self.store)? => {
                        self.store.set_meta(machine::MARKER_META_KEY, "1")?
                    }
                    Ok(()) => {}
                    Err(e) => {
                        tracing::error!(%job_id, error = %e, "writing the job marker failed; public reads miss the job until the next change writes it")
                    }
                }
            }
            Effect::TellShardWaiting { shard, cmd } => {
                let sent_at = now();
                let sent = call(&self.env, DISPATCH_BINDING, &shard_name(shard), &cmd).await;
                // Other calls may have run while this one waited (a grant
                // through the shard, even): only the enqueue mark is touched.
                let problem = match sent {
                    Ok(a) if a.status == 200 => None,
                    Ok(a) => Some(format!("the shard answered {}: {}", a.status, a.body)),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(problem) = &problem {
                    let ShardCommand::Enqueue { job_id, .. } = &cmd else { unreachable!("an enqueue") };
                    tracing::warn!(%job_id, problem, "telling the shard the job waits failed; retrying");
                }
                machine::shard_answered(&self.store, sent_at, problem.is_none(), now())?;
            }
            Effect::TellShardEnded { shard, job_id, task } => {
                let ended = ShardCommand::Ended { job_id: job_id.clone(), task };
                // Best effort: a row left behind is refused at its grant (409).
                if let Err(e) = call(&self.env, DISPATCH_BINDING, &shard_name(shard), &ended).await {
                    tracing::warn!(%job_id, error = %e, "telling the shard the job ended failed");
                }
                machine::shard_told_ended(&self.store, task, now())?;
            }
            Effect::ScheduleAlarm => {
                // Read from what is stored now, never from a copy an await may have made stale.
                if let Some(due) = machine::next_alarm(&self.store)? {
                    self.set_alarm(due).await?;
                }
            }
            Effect::SetAlarm(at) => self.set_alarm(at).await?,
            Effect::PublishRecord(job) => self.publish_playback_record(&job).await,
            Effect::UnpublishRecord { app, video } => self.unpublish_playback_record(&app, &video).await,
            Effect::Retain(job) => {
                if let Some(store) = self.object_store(loaded) {
                    retention::after_done(&store, &job, loaded.core.keep_source).await;
                }
            }
            Effect::DropOutputs(job) => {
                if let Some(store) = self.object_store(loaded) {
                    let still_failed = || matches!(self.store.load(), Ok(Some(s)) if s.job.status == JobStatus::Error);
                    retention::after_end(&store, &job, still_failed).await;
                }
            }
            Effect::DeliverDue => self.deliver_due(loaded).await?,
            Effect::FlushAnnouncements => self.flush_announcements().await?,
            Effect::Wipe => self.wipe().await?,
            Effect::WriteTombstone { app, video, sweep_at } => {
                self.store.ensure_tables()?;
                self.store.set_tombstone(&app, &video, sweep_at)?;
            }
            Effect::FinalSweep { app, video } => self.final_sweep(loaded, &app, &video).await?,
            Effect::CleanUpload { app, video } => self.clean_upload(loaded, &app, &video).await,
        }
        Ok(())
    }

    async fn set_alarm(&self, at: Timestamp) -> worker::Result<()> {
        // An i64 would be an offset; pass the wait as a Duration.
        let wait = at.millis_since(now()).max(10);
        self.state.storage().set_alarm(Duration::from_millis(wait)).await
    }

    /// Hands a command to the app's hub (`/events`), after this call's own
    /// writes; best effort, not retried (see `crate::app_hub`).
    fn publish_to_app(&self, app: AppId, cmd: HubCommand) {
        let env = self.env.clone();
        self.state.wait_until(async move {
            match call(&env, APP_EVENTS_BINDING, app.as_str(), &cmd).await {
                Ok(a) if a.status == 200 => {}
                Ok(a) => tracing::warn!(app_id = %app, status = a.status, "the app hub refused events"),
                Err(e) => tracing::warn!(app_id = %app, error = %e, "handing events to the app hub failed"),
            }
        });
    }

    /// Hands the outbox's announced events to the app's hub and, when it
    /// has them (200), removes them; otherwise the alarm tries again
    /// ([`machine::announcements_refused`]). The hub skips ids it has, so
    /// a repeat (two calls flushing at once, an answer lost) is harmless.
    async fn flush_announcements(&self) -> worker::Result<()> {
        let Some((app, events)) = machine::outbox(&self.store)? else { return Ok(()) };
        let ids: Vec<String> = events.iter().map(|a| a.body.id.clone()).collect();
        let announce = HubCommand::Announce { app_id: app.clone(), events };
        let problem = match call(&self.env, APP_EVENTS_BINDING, app.as_str(), &announce).await {
            Ok(a) if a.status == 200 => None,
            Ok(a) => Some(format!("the app hub answered {}", a.status)),
            Err(e) => Some(e.to_string()),
        };
        match problem {
            None => self.store.announcements_taken(&ids),
            Some(problem) => {
                tracing::warn!(app_id = %app, events = ids.len(), problem, "handing announced events to the app hub failed; retrying");
                machine::announcements_refused(&self.store, now())?;
                match machine::next_alarm(&self.store)? {
                    Some(due) => self.set_alarm(due).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// The store retention deletes from, or `None` (logged) when it cannot
    /// be opened.
    fn object_store(&self, loaded: &Loaded) -> Option<AnyStore> {
        AnyStore::open(&self.env, &loaded.storage)
            .map_err(|e| tracing::error!(detail = %e, "retention skipped: the store cannot be opened"))
            .ok()
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

    /// Removes the KV playback record of a job that runs again (the job
    /// marker stays: the job exists). A failed delete is logged: public
    /// reads then show the old result until the new run publishes its own.
    async fn unpublish_playback_record(&self, app_id: &AppId, video_id: &VideoId) {
        let removed = async {
            let kv = self.env.kv(KV_BINDING)?;
            kv.delete(&playback_record_key(app_id, video_id)).await?;
            Ok::<(), worker::Error>(())
        };
        if let Err(e) = removed.await {
            tracing::error!(%app_id, %video_id, error = %e, "removing the playback record of a re-run failed");
        }
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

    /// Wipes the object's storage and its alarm (`deleteAll()`): nothing
    /// stays, not even the tables, which a next write creates again.
    async fn wipe(&self) -> worker::Result<()> {
        let storage = self.state.storage();
        storage.delete_alarm().await?;
        storage.delete_all().await?;
        self.store.wiped();
        Ok(())
    }

    /// `DELETE /videos`: see the module doc's "Deleting".
    async fn delete(&self, loaded: &Loaded, app_id: &AppId, video_id: &VideoId) -> worker::Result<Response> {
        let store = match AnyStore::open(&self.env, &loaded.storage) {
            Ok(s) => s,
            Err(e) => return Ok(our_fault(e, "video job command refused")),
        };
        let cx = self.cx(&loaded.core);
        let plan = match machine::delete(&self.store, &cx, app_id, video_id) {
            Ok(plan) => plan,
            Err(refusal) => return self.refused(refusal),
        };
        self.carry(loaded, plan.first).await?;
        // The objects, then the playback record.
        let objects = match retention::remove_video(&store, app_id, video_id).await {
            Ok(n) => n,
            Err(e) => {
                let f: Failure = e.into();
                if let Some(detail) = f.report_detail() {
                    tracing::error!(%app_id, %video_id, detail, "deleting the video's objects failed");
                }
                return Ok(error_response(&f.to_api_error()));
            }
        };
        let playback_record = match self.remove_playback_record(app_id, video_id).await {
            Ok(removed) => removed,
            Err(e) => {
                tracing::error!(%app_id, %video_id, error = %e, "deleting the playback record failed");
                return Ok(error_response(&Failure::Unavailable { detail: e.to_string() }.to_api_error()));
            }
        };
        self.carry(loaded, plan.then).await?;
        let final_sweep_at = plan.final_sweep_at;
        let deleted = DeletedVideo { objects, job: plan.job, playback_record };
        tracing::info!(%app_id, %video_id, objects, job = deleted.job, playback_record, final_sweep_at = ?final_sweep_at.map(Timestamp::to_rfc3339), "video deleted");
        reply(&DeleteReply { deleted, final_sweep_at })
    }

    /// A cancelled or timed-out upload's leftovers: every multipart upload
    /// open under the video's `raw/` prefix is aborted and every object
    /// there deleted, each batch only while no job and no waiting upload
    /// use the prefix (`sessions::may_clean`, asked with no wait before
    /// it). Best effort and logged: storage's lifecycle rule aborts what is
    /// left of a multipart upload after 7 days.
    async fn clean_upload(&self, loaded: &Loaded, app: &AppId, video: &VideoId) {
        let prefix = media_core::keys::ObjectKey::raw_prefix(app, video);
        let still = || sessions::may_clean(&self.store);
        match loaded.storage.s3.clone() {
            Ok(bucket) => {
                let s3 = worker_kit::store::s3::S3Store::new(bucket);
                match s3.uploads_in_progress(&prefix, 1000).await {
                    Ok(open) => {
                        for u in open.iter().take_while(|_| still()) {
                            if let Err(e) = s3.abort_multipart(&u.key, &u.upload_id).await {
                                tracing::warn!(app_id = %app, video_id = %video, error = %e, "aborting an ended upload's multipart upload failed");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(app_id = %app, video_id = %video, error = %e, "listing an ended upload's multipart uploads failed")
                    }
                }
            }
            Err(e) => tracing::warn!(detail = %e, "an ended upload's multipart uploads are left: no S3 settings"),
        }
        if let Some(store) = self.object_store(loaded) {
            match worker_kit::store::delete_prefix_while(&store, &prefix, still).await {
                Ok(keys) if keys.is_empty() => {}
                Ok(keys) => {
                    tracing::info!(app_id = %app, video_id = %video, objects = keys.len(), "an ended upload's objects deleted")
                }
                Err(e) => {
                    tracing::warn!(app_id = %app, video_id = %video, error = %e, "deleting an ended upload's objects failed")
                }
            }
        }
    }

    /// The tombstone's alarm: the last sweep of a deleted video, then nothing is left.
    async fn final_sweep(&self, loaded: &Loaded, app: &AppId, video: &VideoId) -> worker::Result<()> {
        let swept = async {
            let store = AnyStore::open(&self.env, &loaded.storage).map_err(|e| e.to_string())?;
            let n = retention::remove_video(&store, app, video).await.map_err(|e| e.to_string())?;
            // In case the delete itself stopped before it.
            self.remove_playback_record(app, video).await.map_err(|e| e.to_string())?;
            Ok::<u64, String>(n)
        };
        match swept.await {
            Ok(n) => {
                tracing::info!(app_id = %app, video_id = %video, objects = n, "final sweep of a deleted video done");
                self.wipe().await
            }
            Err(e) => {
                tracing::error!(app_id = %app, video_id = %video, error = %e, "final sweep of a deleted video failed; retrying");
                self.state.storage().set_alarm(Duration::from_millis(machine::SWEEP_RETRY_MS)).await
            }
        }
    }

    /// Sends the webhook attempts that are due, one after another, and
    /// records each outcome ([`deliveries`]).
    async fn deliver_due(&self, loaded: &Loaded) -> worker::Result<()> {
        let due = self.store.due_deliveries(now(), deliveries::ATTEMPTS_PER_ALARM)?;
        if due.is_empty() {
            return Ok(());
        }
        let Some(stored) = self.store.load()? else { return Ok(()) };
        let settings = &loaded.core.webhooks;
        let keys = settings.config.for_app(&stored.job.app_id).map(|h| vec![SigningKey::of_secret(&h.secret)]);
        let mut reports = Vec::new();
        for d in due {
            let outcome = match &keys {
                Some(keys) => {
                    let attempt = Attempt {
                        event_id: &d.event_id,
                        url: &d.url,
                        keys,
                        body: &d.body,
                        timeout_ms: settings.policy.timeout_ms,
                        allow_local_http: settings.allow_local_http,
                    };
                    webhooks::send(&attempt).await.outcome
                }
                None => Err("the app has no webhook secret any more (IV_WEBHOOKS)".to_owned()),
            };
            let report = deliveries::record_attempt(&self.store, &settings.policy, now(), &d, &outcome)?;
            let data = serde_json::to_value(&report).map_err(|e| worker::Error::RustError(e.to_string()))?;
            reports.push(("webhook".to_owned(), data));
        }
        let job = &stored.job;
        let summary = machine::summary(job);
        self.publish_to_app(job.app_id.clone(), HubCommand::Publish { job: summary, events: reports });
        if let Some(done) = deliveries::refresh_callback(&self.store)? {
            // The done job's KV record is what public reads see first.
            self.publish_playback_record(&done).await;
        }
        Ok(())
    }

    fn cx<'a>(&self, settings: &'a Settings) -> Cx<'a> {
        Cx { now: now(), settings, random: &random_bytes::<16> }
    }

    /// Runs one command (the object has its tables and no tombstone).
    async fn run(&self, loaded: &Loaded, call: VideoCall) -> worker::Result<Response> {
        let store = &self.store;
        let cx = self.cx(&loaded.core);
        match call.op {
            VideoOp::Events { last_event_id, address } => {
                let open = self.subscribers.open_counts(address.as_deref().unwrap_or("unknown"));
                return match machine::events(store, &cx, last_event_id, address.as_deref(), call.base.as_deref(), open)
                {
                    Ok(EventsAnswer::NoContent) => Ok(Response::empty()?.with_status(204)),
                    Ok(EventsAnswer::Open { first, address, last_id, live, heartbeat_ms }) => {
                        self.subscribers.open_from(Some(address), first, last_id, live, heartbeat_ms)
                    }
                    Err(refusal) => self.refused(refusal),
                };
            }
            VideoOp::Delete => return self.delete(loaded, &call.app_id, &call.video_id).await,
            VideoOp::Get => return reply(&machine::get(store)?),
            VideoOp::UploadSession { session, step } => {
                return match machine::upload_session(store, &cx, &session, &step) {
                    Ok(record) => reply(&record),
                    Err(refusal) => self.refused(refusal),
                }
            }
            VideoOp::UploadGet { upload_id } => {
                return match sessions::get(store, &upload_id) {
                    Ok(upload) => reply(&upload),
                    Err(refusal) => self.refused(refusal),
                }
            }
            _ => machine::remember_base(store, call.base.as_deref())?,
        }
        match call.op {
            VideoOp::Events { .. }
            | VideoOp::Get
            | VideoOp::Delete
            | VideoOp::UploadSession { .. }
            | VideoOp::UploadGet { .. } => {
                unreachable!("answered above")
            }
            VideoOp::UploadCreate { record } => {
                // An ended upload's late file would block this one's PUT (`sessions::clean_before_create`).
                if sessions::clean_before_create(store)? {
                    self.clean_upload(loaded, &call.app_id, &call.video_id).await;
                }
                self.answer(loaded, sessions::create(store, &cx, record)).await
            }
            VideoOp::UploadCancel { upload_id } => {
                let step = sessions::cancel(store, &cx, &call.app_id, &call.video_id, &upload_id);
                self.answer(loaded, step).await
            }
            VideoOp::UploadLanded { upload_id, source } => {
                let step = machine::upload_landed(store, &cx, call.app_id, call.video_id, upload_id.as_deref(), source);
                self.answer(loaded, step).await
            }
            VideoOp::Notify { source, callback_url, playback, extras } => {
                let asked =
                    machine::Asked { callback_url: callback_url.as_deref(), playback: &playback, extras: &extras };
                let step = machine::notify(store, &cx, call.app_id, call.video_id, source, asked);
                self.answer(loaded, step).await
            }
            VideoOp::Grant { job_id, task, lease_id, output_id, worker } => {
                self.answer(loaded, machine::grant(store, &cx, &job_id, task, lease_id, output_id, &worker)).await
            }
            VideoOp::Plan { job_id, req } => self.answer(loaded, machine::plan(store, &cx, &job_id, req)).await,
            VideoOp::Heartbeat { job_id, req } => {
                self.answer(loaded, machine::heartbeat(store, &cx, &job_id, req)).await
            }
            VideoOp::Complete { job_id, req } => {
                self.answer(loaded, machine::complete(store, &cx, &job_id, *req)).await
            }
            VideoOp::Fail { job_id, req } => self.answer(loaded, machine::fail(store, &cx, &job_id, req)).await,
            VideoOp::Release { job_id, req } => self.answer(loaded, machine::release(store, &cx, &job_id, req)).await,
            VideoOp::Cancel => self.answer(loaded, machine::cancel(store, &cx, &call.app_id, &call.video_id)).await,
            VideoOp::SetAccess { require_signed_urls } => {
                self.answer(loaded, machine::set_access(store, &cx, require_signed_urls)).await
            }
            VideoOp::SetCaption { language, track } => {
                self.answer(loaded, machine::set_caption(store, &cx, &language, track)).await
            }
            VideoOp::Announce { event_type, data } => {
                let step = machine::announce_op(store, &cx, &call.app_id, &call.video_id, event_type, data);
                self.answer(loaded, step).await
            }
        }
    }
}

impl DurableObject for VideoJob {
    fn new(state: State, env: Env) -> Self {
        // No tables yet: the first write creates them (`JobStore::ensure_tables`).
        let keep = crate::settings::object_log_lens(&Vars(&env)).video;
        let store = SqlJobStore::new(state.storage().sql(), keep);
        Self { state, env, subscribers: Subscribers::default(), store }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let call: VideoCall = match crate::client::read_command(&mut req, "video job command").await {
            Ok(c) => c,
            Err(e) => return refusal(&e),
        };
        if let Some(answer) = machine::admit(&self.store, &call.op, now())? {
            return early(answer);
        }
        if matches!(call.op, VideoOp::Get) {
            // A read of the job runs by no setting.
            return reply(&machine::get(&self.store)?);
        }
        let loaded = match load_settings(&self.env) {
            Ok(l) => l,
            Err(e) => return Ok(our_fault(e, "video job command refused")),
        };
        self.run(&loaded, call).await
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // A broken setting defers the alarm rather than failing it: failed,
        // the runtime would retry it a few times and then drop it, and
        // expired leases would never expire even once the variable is
        // fixed. So the error is logged (the variable and its problem, never
        // a secret's value) and the alarm set again a minute later, until
        // the settings can be read; meanwhile the commands answer 500 (see
        // `fetch`), as the Worker does before reaching the object.
        let loaded = match load_settings(&self.env) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(detail = %e, "video job alarm deferred: a setting cannot be used");
                self.state.storage().set_alarm(Duration::from_millis(BROKEN_SETTING_RETRY_MS)).await?;
                return Response::ok("");
            }
        };
        if self.store.has_tables()? {
            let cx = self.cx(&loaded.core);
            match machine::alarm(&self.store, &cx) {
                Ok(effects) => self.carry(&loaded, effects).await?,
                Err(Refusal::Storage(e)) => return Err(e),
                Err(Refusal::Answer(e)) => return Err(worker::Error::RustError(e.to_json())),
            }
        }
        Response::ok("")
    }
}

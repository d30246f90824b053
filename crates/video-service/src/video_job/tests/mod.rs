//! Native tests of a video's object under fake time: the commands of
//! [`super::machine`] against the in-memory [`MemoryJobStore`] and
//! [`MemoryStore`], with a [`World`] that carries out their effects as the
//! shell does (the shard, the hub, KV, the alarm, retention, webhook
//! attempts) and records them. Each test asserts what the workerd tests
//! (`tests/workers/video.test.mjs`, `delete.test.mjs`, `events.test.mjs`)
//! rely on, at chosen instants instead of sleeps.
//!
//! The harness mirrors the shell's effect handling (`VideoJob::carry_one`,
//! `delete`, `deliver_due` in `super`): it is a copy, kept in step by hand,
//! not the shell itself, which only the workerd tests exercise.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::chunks::ChunkSettings;
use media_core::video::delivery::{CallbackStatus, DeliveryPolicy};
use media_core::video::dispatch::SizeClass;
use media_core::video::events::{StreamCaps, VIDEO_EVENT_LOG_LEN};
use media_core::video::job::{Job, JobResult, JobStatus, NotifyOutcome, RetryPolicy, SourceUpload};
use media_core::video::ladder::LadderOptions;
use media_core::video::upload_session::{SessionRecord, SessionStep};
use media_core::video::webhook::WebhookConfig;
use media_core::wire::api::{CompleteRequest, FailRequest, HeartbeatRequest, JobSpec, JobVideo, ReleaseRequest};
use media_core::{ApiError, ErrorCode, Timestamp};
use serde_json::Value;
use worker_kit::store::memory::{block_on, MemoryStore};

use super::deliveries::{self, ATTEMPTS_PER_ALARM};
use super::machine::{self, Cx, Early, Effect, EventsAnswer, Refusal, Settings, SWEEP_MARGIN_MS, SWEEP_RETRY_MS};
use super::retention;
use super::store::{JobStore, RowState, KEPT_DELIVERIES};
use super::{job_marker_key, playback_record_key};
use crate::client::Answer as ClientAnswer;
use crate::dispatch::shard::{Reply as ShardReply, Row as ShardRow, RowState as ShardRowState, Shard, ShardIo};
use crate::dispatch::store::MemoryShardStore;
use crate::dispatch::tests::FakeIo;
use crate::protocol::dispatch::ShardCommand;
use crate::protocol::video_job::{CancelReply, NotifyReply, VideoOp};
use crate::settings::{DispatchSettings, WebhookSettings};
use store::MemoryJobStore;

const LEASE_TTL_MS: u64 = 1_000;
const BACKOFF_MS: u64 = 200;
const T0: u64 = 1_800_000_000_000;
const SECRET: &str = "whsec_test_0123456789abcdef";

fn app() -> AppId {
    AppId::parse("app-a").unwrap()
}

fn video() -> VideoId {
    VideoId::parse("v1").unwrap()
}

fn settings() -> Settings {
    Settings {
        policy: RetryPolicy { max_attempts: 2, lease_ttl_ms: LEASE_TTL_MS, backoff_base_ms: BACKOFF_MS },
        ladder: LadderOptions::default(),
        dispatch: DispatchSettings { queue_shards: 4, large_source_bytes: 5_000 },
        webhooks: WebhookSettings {
            config: WebhookConfig::empty(),
            policy: DeliveryPolicy::default(),
            allow_local_http: true,
            schedule: Default::default(),
        },
        keep_source: true,
        caps: StreamCaps { per_video: 3, per_address: 2 },
        heartbeat_ms: 400,
        chunks: ChunkSettings { from_s: 20.0, chunk_s: 6.0, first_chunk_s: 2.0 },
    }
}

/// Settings with webhooks to the app's url (retry base `base_ms`, 3 attempts).
fn with_webhooks(base_ms: u64) -> Settings {
    let json = format!(r#"{{"app-a": {{"url": "http://127.0.0.1:9/hook", "secret": "{SECRET}"}}}}"#);
    let mut s = settings();
    s.webhooks.config = WebhookConfig::parse(&json, true).unwrap();
    s.webhooks.policy = DeliveryPolicy { max_attempts: 3, base_delay_ms: base_ms, timeout_ms: 1_000 };
    s
}

fn source(raw: &str, size: u64) -> SourceUpload {
    SourceUpload { raw_key: raw.to_owned(), content_type: "video/mp4".into(), size, etag: Some("\"e1\"".into()) }
}

fn ids() -> JobVideo {
    JobVideo { app_id: Some(app()), video_id: Some(video()) }
}

fn result() -> JobResult {
    JobResult { duration_s: 2.0, has_audio: true, ..Default::default() }
}

thread_local! {
    static RANDOM: Cell<u8> = const { Cell::new(0) };
}

/// Fresh bytes for each call, distinct within a test.
fn fresh() -> [u8; 16] {
    let n = RANDOM.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    [n; 16]
}

/// A reply as JSON, or the error it was refused with.
type Answer = Result<Value, ApiError>;

/// One video's object and what its effects reached, at a fake time.
struct World {
    store: MemoryJobStore,
    objects: MemoryStore,
    settings: Settings,
    now: Cell<u64>,
    /// Whether the shard answers 200.
    shard_up: Cell<bool>,
    told_shard: RefCell<Vec<ShardCommand>>,
    /// Event names handed to the app's hub, in order.
    hub: RefCell<Vec<String>>,
    hub_forgot: Cell<u32>,
    /// Whether the app's hub takes announced events; the (id, type) of
    /// those it took, in order, repeats included.
    hub_up: Cell<bool>,
    announced: RefCell<Vec<(String, String)>>,
    kv: RefCell<BTreeMap<String, String>>,
    alarm: Cell<Option<Timestamp>>,
    streams_closed: Cell<u32>,
    frames: RefCell<Vec<u64>>,
    /// How the next webhook attempts go (`Ok` when none left).
    receiver: RefCell<VecDeque<Result<(), String>>>,
    /// Whether every webhook attempt fails (answered 503).
    receiver_down: Cell<bool>,
    /// The job's id as last seen (its transcoder keeps calling with it after a delete).
    job_id: RefCell<Option<JobId>>,
    /// The job's shard (the real one, in memory): what the `TellShard*`
    /// effects reach when the shard is up.
    shard: Shard<MemoryShardStore>,
    shard_io: FakeIo,
    /// Whether the next command's effects are held back ([`World::hold_next`]).
    hold: Cell<bool>,
    /// Effects held back, oldest first, until [`World::release`].
    held: RefCell<VecDeque<Vec<Effect>>>,
}

impl World {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: Settings) -> Self {
        World {
            store: MemoryJobStore::new(VIDEO_EVENT_LOG_LEN),
            objects: MemoryStore::new(),
            settings,
            now: Cell::new(T0),
            shard_up: Cell::new(true),
            told_shard: RefCell::default(),
            hub: RefCell::default(),
            hub_forgot: Cell::new(0),
            hub_up: Cell::new(true),
            announced: RefCell::default(),
            kv: RefCell::default(),
            alarm: Cell::new(None),
            streams_closed: Cell::new(0),
            frames: RefCell::default(),
            receiver: RefCell::default(),
            receiver_down: Cell::new(false),
            job_id: RefCell::default(),
            shard: Shard::new(MemoryShardStore::default()),
            shard_io: FakeIo::at(Timestamp::from_millis(T0)),
            hold: Cell::new(false),
            held: RefCell::default(),
        }
    }

    /// Holds back the next command's effects: it has saved and answered,
    /// and others run before [`World::release`] carries them out (in the
    /// shell, while one call awaits the shard or KV, the object takes
    /// others).
    fn hold_next(&self) {
        self.hold.set(true);
    }

    /// Carries out the oldest held-back effects; the error the caller of
    /// that command would get, if one fails.
    fn release(&self) -> Result<(), ApiError> {
        let effects = self.held.borrow_mut().pop_front().expect("effects held back");
        self.carry(effects).map_err(storage_failed)
    }

    /// Hands `cmd` to the shard, as it stands now.
    fn to_shard(&self, cmd: ShardCommand) {
        self.shard_io.clock.set(self.now());
        block_on(self.shard.handle(&self.shard_io, cmd)).expect("the shard runs the command");
    }

    /// The shard's rows of the job: its states.
    fn shard_rows(&self) -> Vec<ShardRowState> {
        self.shard.store.rows().into_iter().map(|r| r.state).collect()
    }

    /// A transcoder's lease through the shard: the shard offers its oldest
    /// due row and asks this object for the grant, as in the platform.
    fn lease_via_shard(&self) -> Option<JobSpec> {
        self.lease_via_shard_as(false)
    }

    /// [`Self::lease_via_shard`] by a transcoder that runs chunk tasks (`chunks`) or not.
    fn lease_via_shard_as(&self, chunks: bool) -> Option<JobSpec> {
        let lease = ShardCommand::Lease {
            worker: "t1".into(),
            wait_ms: 0,
            classes: vec![SizeClass::Standard, SizeClass::Large],
            standard_first: false,
            chunks,
        };
        self.shard_io.clock.set(self.now());
        match block_on(self.shard.handle(&ObjectIo(self), lease)).expect("the shard leases").0 {
            ShardReply::Lease(reply) => reply.job,
            other => panic!("a lease reply, not {other:?}"),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.get())
    }

    fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }

    fn cx(&self) -> Cx<'_> {
        Cx { now: self.now(), settings: &self.settings, random: &fresh }
    }

    /// Runs `op` as the shell does (admission, then the command) and
    /// carries out its effects.
    fn call(&self, op: VideoOp) -> Answer {
        if let Some(early) = machine::admit(&self.store, &op, self.now()).unwrap() {
            return match early {
                Early::NoJob => Ok(Value::Null),
                Early::Refused(e) => Err(e),
            };
        }
        let (store, cx) = (&self.store, self.cx());
        if !matches!(
            op,
            VideoOp::Events { .. }
                | VideoOp::Delete
                | VideoOp::Get
                | VideoOp::UploadSession { .. }
                | VideoOp::UploadGet { .. }
        ) {
            machine::remember_base(store, Some("https://media.example")).unwrap();
        }
        let step = match op {
            VideoOp::Notify { source, callback_url, playback, extras } => {
                let asked =
                    machine::Asked { callback_url: callback_url.as_deref(), playback: &playback, extras: &extras };
                self.json(machine::notify(store, &cx, app(), video(), source, asked))
            }
            VideoOp::Get => return Ok(serde_json::to_value(machine::get(store).unwrap()).unwrap()),
            VideoOp::Grant { job_id, task, lease_id, output_id, worker } => {
                self.json(machine::grant(store, &cx, &job_id, task, lease_id, output_id, &worker))
            }
            VideoOp::Plan { job_id, req } => self.json(machine::plan(store, &cx, &job_id, req)),
            VideoOp::Heartbeat { job_id, req } => self.json(machine::heartbeat(store, &cx, &job_id, req)),
            VideoOp::Complete { job_id, req } => self.json(machine::complete(store, &cx, &job_id, *req)),
            VideoOp::Fail { job_id, req } => self.json(machine::fail(store, &cx, &job_id, req)),
            VideoOp::Release { job_id, req } => self.json(machine::release(store, &cx, &job_id, req)),
            VideoOp::Cancel => self.json(machine::cancel(store, &cx, &app(), &video())),
            VideoOp::SetAccess { require_signed_urls } => {
                self.json(machine::set_access(store, &cx, require_signed_urls))
            }
            VideoOp::SetCaption { language, track } => self.json(machine::set_caption(store, &cx, &language, track)),
            VideoOp::Announce { event_type, data } => {
                self.json(machine::announce_op(store, &cx, &app(), &video(), event_type, data))
            }
            VideoOp::Events { last_event_id, address } => {
                return match machine::events(store, &cx, last_event_id, address.as_deref(), None, (0, 0)) {
                    Ok(EventsAnswer::NoContent) => Ok(Value::from(204)),
                    Ok(EventsAnswer::Open { first, .. }) => Ok(Value::from(first)),
                    Err(r) => Err(answer(r)),
                }
            }
            VideoOp::Delete => return self.delete(),
            VideoOp::UploadSession { session, step } => {
                return machine::upload_session(store, &cx, &session, &step)
                    .map(|r| serde_json::to_value(r).unwrap())
                    .map_err(answer)
            }
            VideoOp::UploadCreate { record } => {
                // As the shell: `VideoJob::clean_upload` first when an ended upload may have left a file.
                if super::sessions::clean_before_create(store).unwrap() {
                    let prefix = media_core::keys::ObjectKey::raw_prefix(&app(), &video());
                    let still = || super::sessions::may_clean(&self.store);
                    block_on(worker_kit::store::delete_prefix_while(&self.objects, &prefix, still)).unwrap();
                }
                self.json(super::sessions::create(store, &cx, record))
            }
            VideoOp::UploadGet { upload_id } => {
                return super::sessions::get(store, &upload_id)
                    .map(|r| serde_json::to_value(r).unwrap())
                    .map_err(answer)
            }
            VideoOp::UploadCancel { upload_id } => {
                self.json(super::sessions::cancel(store, &cx, &app(), &video(), &upload_id))
            }
            VideoOp::UploadLanded { upload_id, source } => {
                self.json(super::machine::upload_landed(store, &cx, app(), video(), upload_id.as_deref(), source))
            }
        };
        let (value, effects) = step?;
        if self.hold.take() {
            self.held.borrow_mut().push_back(effects);
            return Ok(value);
        }
        // An effect that fails fails the call, as the shell's `?` does (500).
        self.carry(effects).map_err(storage_failed)?;
        Ok(value)
    }

    fn json<T: serde::Serialize>(&self, step: machine::Step<T>) -> Result<(Value, Vec<Effect>), ApiError> {
        step.map(|(v, e)| (serde_json::to_value(v).unwrap(), e)).map_err(answer)
    }

    /// A delete as the shell runs it: the plan's first effects, the
    /// video's objects and KV entries, then the rest.
    fn delete(&self) -> Answer {
        let plan = machine::delete(&self.store, &self.cx(), &app(), &video()).map_err(answer)?;
        self.carry(plan.first).map_err(storage_failed)?;
        let objects = block_on(retention::remove_video(&self.objects, &app(), &video()))
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "storage"))?;
        self.kv.borrow_mut().remove(&job_marker_key(&app(), &video()));
        let record = self.kv.borrow_mut().remove(&playback_record_key(&app(), &video())).is_some();
        self.carry(plan.then).map_err(storage_failed)?;
        Ok(serde_json::json!({
            "objects": objects, "job": plan.job, "playback_record": record,
            "final_sweep_at": plan.final_sweep_at.map(Timestamp::millis),
        }))
    }

    /// The alarm, when set and due at the current time.
    fn alarm(&self) {
        let due = self.alarm.get().expect("an alarm is set");
        assert!(due <= self.now(), "the alarm is due at {due}, not yet at {}", self.now());
        self.alarm.set(None);
        if !self.store.has_tables().unwrap() {
            return;
        }
        let effects = machine::alarm(&self.store, &self.cx()).unwrap();
        self.carry(effects).expect("the alarm's effects");
    }

    /// Moves to the alarm's time and runs it (the runtime fires it a moment after).
    fn run_alarm(&self) {
        let due = self.alarm.get().expect("an alarm is set").millis();
        self.now.set(self.now.get().max(due + 1));
        self.alarm();
    }

    /// Sets the alarm as the shell does: never sooner than 10 ms from now.
    fn set_alarm(&self, at: Timestamp) {
        self.alarm.set(Some(at.max(self.now().plus_millis(10))));
    }

    /// Carries out `effects` in order, stopping at the first that fails.
    fn carry(&self, effects: Vec<Effect>) -> worker::Result<()> {
        for effect in effects {
            match effect {
                Effect::HubPublish { events, .. } => self.hub.borrow_mut().extend(events.into_iter().map(|(n, _)| n)),
                Effect::HubForget { .. } => self.hub_forgot.set(self.hub_forgot.get() + 1),
                Effect::Broadcast(frames) => self.frames.borrow_mut().extend(frames.iter().map(|f| f.0)),
                Effect::CloseStreams => self.streams_closed.set(self.streams_closed.get() + 1),
                Effect::WriteMarker { app, video, .. } => {
                    if machine::marker_wanted(&self.store)? {
                        self.kv.borrow_mut().insert(job_marker_key(&app, &video), "1".into());
                        self.store.set_meta(machine::MARKER_META_KEY, "1")?;
                    }
                }
                Effect::TellShardWaiting { cmd, .. } => {
                    if self.shard_up.get() {
                        // A copy (the message is not `Clone`): what the shard got.
                        self.to_shard(serde_json::from_value(serde_json::to_value(&cmd).unwrap()).unwrap());
                    }
                    self.told_shard.borrow_mut().push(cmd);
                    machine::shard_answered(&self.store, self.now(), self.shard_up.get(), self.now())?;
                }
                Effect::TellShardEnded { job_id, task, .. } => {
                    self.told_shard.borrow_mut().push(ShardCommand::Ended { job_id: job_id.clone(), task });
                    if self.shard_up.get() {
                        self.to_shard(ShardCommand::Ended { job_id, task });
                    }
                    machine::shard_told_ended(&self.store, task, self.now())?;
                }
                Effect::ScheduleAlarm => {
                    if let Some(at) = machine::next_alarm(&self.store)? {
                        self.set_alarm(at);
                    }
                }
                Effect::SetAlarm(at) => self.set_alarm(at),
                Effect::PublishRecord(job) => {
                    let key = playback_record_key(&job.app_id, &job.video_id);
                    self.kv.borrow_mut().insert(key, serde_json::to_string(&job).unwrap());
                }
                Effect::UnpublishRecord { app, video } => {
                    self.kv.borrow_mut().remove(&playback_record_key(&app, &video));
                }
                Effect::Retain(job) => block_on(retention::after_done(&self.objects, &job, self.settings.keep_source)),
                Effect::DropOutputs(job) => {
                    let still_failed = || matches!(self.store.load(), Ok(Some(s)) if s.job.status == JobStatus::Error);
                    block_on(retention::after_end(&self.objects, &job, still_failed));
                }
                Effect::DeliverDue => self.deliver_due()?,
                Effect::FlushAnnouncements => {
                    // `VideoJob::flush_announcements`.
                    if let Some((_, events)) = machine::outbox(&self.store)? {
                        if self.hub_up.get() {
                            let ids: Vec<String> = events.iter().map(|a| a.body.id.clone()).collect();
                            let taken = events.iter().map(|a| (a.body.id.clone(), a.body.event_type.to_string()));
                            self.announced.borrow_mut().extend(taken);
                            self.store.announcements_taken(&ids)?;
                        } else {
                            machine::announcements_refused(&self.store, self.now())?;
                            if let Some(at) = machine::next_alarm(&self.store)? {
                                self.set_alarm(at);
                            }
                        }
                    }
                }
                Effect::CleanUpload { app, video } => {
                    // `VideoJob::clean_upload` (memory has no multipart uploads).
                    let prefix = media_core::keys::ObjectKey::raw_prefix(&app, &video);
                    let still = || super::sessions::may_clean(&self.store);
                    block_on(worker_kit::store::delete_prefix_while(&self.objects, &prefix, still)).unwrap();
                }
                Effect::Wipe => {
                    self.store.wiped();
                    self.alarm.set(None);
                }
                Effect::WriteTombstone { app, video, sweep_at } => {
                    self.store.ensure_tables()?;
                    self.store.set_tombstone(&app, &video, sweep_at)?;
                }
                Effect::FinalSweep { app, video } => {
                    match block_on(retention::remove_video(&self.objects, &app, &video)) {
                        Ok(_) => {
                            // `remove_playback_record`: the marker and the record, then `wipe`.
                            self.kv.borrow_mut().remove(&job_marker_key(&app, &video));
                            self.kv.borrow_mut().remove(&playback_record_key(&app, &video));
                            self.store.wiped();
                            self.alarm.set(None);
                        }
                        Err(_) => self.set_alarm(self.now().plus_millis(SWEEP_RETRY_MS)),
                    }
                }
            }
        }
        Ok(())
    }

    /// The shell's webhook sends, with the receiver's scripted answers.
    fn deliver_due(&self) -> worker::Result<()> {
        let due = self.store.due_deliveries(self.now(), ATTEMPTS_PER_ALARM)?;
        for d in due {
            let scripted = self.receiver.borrow_mut().pop_front();
            let down = self.receiver_down.get().then(|| Err("HTTP 503".to_owned()));
            let outcome = scripted.or(down).unwrap_or(Ok(()));
            let report =
                deliveries::record_attempt(&self.store, &self.settings.webhooks.policy, self.now(), &d, &outcome)?;
            self.hub.borrow_mut().push(format!("webhook:{}", report.state));
        }
        if let Some(done) = deliveries::refresh_callback(&self.store)? {
            let key = playback_record_key(&done.app_id, &done.video_id);
            self.kv.borrow_mut().insert(key, serde_json::to_string(&done).unwrap());
        }
        Ok(())
    }

    fn job(&self) -> Job {
        self.store.load().unwrap().expect("a job").job
    }

    fn job_id(&self) -> JobId {
        if let Some(s) = self.store.load().ok().flatten() {
            *self.job_id.borrow_mut() = Some(s.job.job_id);
        }
        self.job_id.borrow().clone().expect("a job was seen")
    }

    fn notify(&self, raw: &str) -> NotifyReply {
        let op = VideoOp::Notify {
            source: source(raw, 1_000),
            callback_url: None,
            playback: Default::default(),
            extras: Default::default(),
        };
        serde_json::from_value(self.call(op).unwrap()).unwrap()
    }

    /// Grants the job to a transcoder; its lease.
    fn grant(&self) -> Result<JobSpec, ApiError> {
        let op = VideoOp::Grant {
            job_id: self.job_id(),
            task: None,
            lease_id: LeaseId::from_random(fresh()),
            output_id: OutputId::from_random(fresh()[..10].try_into().unwrap()),
            worker: "t1".into(),
        };
        self.call(op).map(|v| serde_json::from_value::<Option<JobSpec>>(v).unwrap().expect("a spec"))
    }

    fn heartbeat(&self, lease: &LeaseId, progress: u8) -> Answer {
        let req = HeartbeatRequest {
            lease_id: lease.clone(),
            video: ids(),
            progress,
            stage: None,
            playable: false,
            published_segments: None,
            published_audio_segments: None,
        };
        self.call(VideoOp::Heartbeat { job_id: self.job_id(), req })
    }

    fn complete(&self, lease: &LeaseId) -> Answer {
        let req = CompleteRequest { lease_id: lease.clone(), video: ids(), result: result(), chunk: None };
        self.call(VideoOp::Complete { job_id: self.job_id(), req: Box::new(req) })
    }

    fn fail(&self, lease: &LeaseId, retryable: bool) -> Answer {
        let req = FailRequest { lease_id: lease.clone(), video: ids(), message: "boom".into(), retryable };
        self.call(VideoOp::Fail { job_id: self.job_id(), req })
    }

    fn enqueues(&self) -> usize {
        self.told_shard.borrow().iter().filter(|c| matches!(c, ShardCommand::Enqueue { .. })).count()
    }

    fn ended(&self) -> usize {
        self.told_shard.borrow().iter().filter(|c| matches!(c, ShardCommand::Ended { .. })).count()
    }

    /// Writes an attempt's output (a segment) under `output`.
    fn write_output(&self, output: &str, name: &str) -> String {
        let key = format!("hls/app-a/v1/{output}/{name}");
        self.objects.insert(&key, b"seg".to_vec(), Some("video/mp4"));
        key
    }
}

/// The shard's way to the object, for [`World::lease_via_shard`]: grants
/// go to this world's object; no waits.
struct ObjectIo<'a>(&'a World);

impl ShardIo for ObjectIo<'_> {
    fn now(&self) -> Timestamp {
        self.0.now()
    }

    async fn grant(&self, row: &ShardRow, worker: &str) -> worker::Result<ClientAnswer> {
        let op = VideoOp::Grant {
            job_id: row.job_id.clone(),
            task: row.task,
            lease_id: LeaseId::from_random(fresh()),
            output_id: OutputId::from_random(fresh()[..10].try_into().unwrap()),
            worker: worker.to_owned(),
        };
        Ok(match self.0.call(op) {
            Ok(spec) => ClientAnswer { status: 200, body: spec.to_string() },
            Err(e) => ClientAnswer { status: e.status(), body: e.message },
        })
    }

    async fn sleep(
        &self,
        _woken: futures_channel::oneshot::Receiver<crate::dispatch::shard::Wake>,
        _ms: u64,
    ) -> Option<crate::dispatch::shard::Wake> {
        None
    }
}

fn answer(r: Refusal) -> ApiError {
    match r {
        Refusal::Answer(e) => e,
        Refusal::Storage(e) => panic!("storage failed: {e}"),
    }
}

/// A failed effect as the caller sees it: the shell's `?` answers 500.
fn storage_failed(e: worker::Error) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> ErrorCode {
    r.expect_err("refused").code
}

fn lease_of(spec: &JobSpec) -> LeaseId {
    spec.lease_id.clone()
}

/// Where the running attempt writes.
fn output_of(w: &World) -> String {
    w.job().lease.expect("a lease").output_id.as_str().to_owned()
}

mod access;
mod announce;
mod cancel;
mod chunks;
mod delete;
mod events;
mod leases;
mod notify;
mod races;
mod retained;
mod store;
mod uploads;
mod webhooks;

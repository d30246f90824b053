//! Job lifecycle events, as Server-Sent Events clients see them: which events
//! a change of a job means ([`events_between`], reading the state machine's
//! before and after), their names and JSON payloads (Openinary's names,
//! camelCase keys), and the SSE wire format (frames, `retry`, heartbeats,
//! `Last-Event-ID`).
//!
//! ```text
//!   job:created ──► job:started ──► job:progress* ──► job:playable ──► job:completed
//!        ▲               │                                │
//!        │               ├──► job:error (final: false) ───┘ (retry queued: started again)
//!        │ notify        ├──► job:error (final: true)
//!        └───────────────┴──► job:canceled
//! ```
//!
//! A stream ends after a terminal event ([`JobEvent::is_terminal`]): done,
//! failed for good, or canceled. A failure with attempts left is a
//! `job:error` with `final: false` and the stream goes on.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ids::{AppId, JobId, VideoId};
use crate::time::Timestamp;
use crate::video::job::{FailureKind, Job, JobStatus};
use crate::wire::api::JobView;
use crate::{ApiError, ErrorCode};

/// How often a stream with nothing to say sends a `heartbeat` frame.
pub const HEARTBEAT_INTERVAL_MS: u64 = 15_000;

/// How many events a video keeps for replay.
pub const VIDEO_EVENT_LOG_LEN: u64 = 200;

/// The reconnection delay every stream asks for in its first bytes ([`retry_frame`]).
pub const RETRY_MS: u64 = 3_000;

/// The most `/job-events` streams one video's object keeps open: in all
/// (`SSE_MAX_PER_VIDEO`) and from one client address (`SSE_MAX_PER_ADDRESS`;
/// an IPv6 address counts by its /64, [`address_bucket`]). Each open stream
/// keeps the video's object resident, so a client cannot pin it with
/// thousands of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCaps {
    pub per_video: u32,
    pub per_address: u32,
}

impl Default for StreamCaps {
    /// 500 viewers of one video following it live (a launch page; the rest
    /// poll), 10 tabs (or a NAT's few users) per address.
    fn default() -> Self {
        StreamCaps { per_video: 500, per_address: 10 }
    }
}

impl StreamCaps {
    /// Whether one more stream may open, given the video's open streams
    /// (`open`) and those of the same address (`from_address`); a 429 that
    /// says which cap is reached otherwise.
    pub fn admit(&self, open: u32, from_address: u32) -> Result<(), ApiError> {
        let why = if from_address >= self.per_address {
            format!(
                "too many open event streams for this video from this address (at most {}); close one, or poll /job-status, and retry after the time in Retry-After",
                self.per_address
            )
        } else if open >= self.per_video {
            format!(
                "too many open event streams for this video (at most {}); poll /job-status instead, or retry after the time in Retry-After",
                self.per_video
            )
        } else {
            return Ok(());
        };
        Err(ApiError::new(ErrorCode::RateLimited, why))
    }
}

/// The address a client's streams count under: an IPv4 address as it is,
/// an IPv6 address by its /64 (one subscriber's network, which rotating
/// addresses inside it does not escape); anything else as given.
pub fn address_bucket(ip: &str) -> String {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.trim().to_owned(),
    }
}

/// One event of a job's life, as SSE clients see it (Openinary's names).
///
/// Its serde form is the stored one, `{"event": "job:…", "data": {…}}`;
/// what a client receives is [`JobEvent::name`] and [`JobEvent::data`]
/// (the same fields plus the constant `status`). [`JobEvent::from_parts`]
/// reads a stored name and data back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all_fields = "camelCase")]
pub enum JobEvent {
    /// A job was queued: a first notify, or a notify that runs it again.
    #[serde(rename = "job:created")]
    Created { job_id: JobId, app_id: AppId, video_id: VideoId },
    /// A transcoder leased the job; `attempt` is 1-based within the run.
    #[serde(rename = "job:started")]
    Started { job_id: JobId, video_id: VideoId, attempt: u32 },
    /// Progress (0-100) or stage changed while processing.
    #[serde(rename = "job:progress")]
    Progress { job_id: JobId, progress: u8, stage: Option<String> },
    /// A player can start.
    #[serde(rename = "job:playable")]
    Playable { job_id: JobId, playback_url: String, poster_url: Option<String> },
    /// The ladder is finished; `job` is the public view of the done job.
    #[serde(rename = "job:completed")]
    Completed { job_id: JobId, video_id: VideoId, job: Box<JobView> },
    /// An attempt failed. `error` is the public message only; `final` is
    /// false when a retry is queued.
    #[serde(rename = "job:error")]
    Error {
        job_id: JobId,
        video_id: VideoId,
        error: String,
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// The job was canceled through the API.
    #[serde(rename = "job:canceled")]
    Canceled { job_id: JobId },
}

impl JobEvent {
    /// The SSE event name (`job:created`, `job:started`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            JobEvent::Created { .. } => "job:created",
            JobEvent::Started { .. } => "job:started",
            JobEvent::Progress { .. } => "job:progress",
            JobEvent::Playable { .. } => "job:playable",
            JobEvent::Completed { .. } => "job:completed",
            JobEvent::Error { .. } => "job:error",
            JobEvent::Canceled { .. } => "job:canceled",
        }
    }

    /// The `status` an event's payload carries (Openinary's words), if any.
    fn status(&self) -> Option<&'static str> {
        match self {
            JobEvent::Created { .. } => Some("pending"),
            JobEvent::Started { .. } => Some("running"),
            JobEvent::Completed { .. } => Some("completed"),
            JobEvent::Error { .. } => Some("error"),
            JobEvent::Canceled { .. } => Some("canceled"),
            JobEvent::Progress { .. } | JobEvent::Playable { .. } => None,
        }
    }

    /// The JSON payload, with camelCase keys (the nested `job` of
    /// `job:completed` is a [`JobView`], as the REST routes show it).
    pub fn data(&self) -> Value {
        let mut v = match serde_json::to_value(self).expect("events always serialize") {
            Value::Object(mut m) => m.remove("data").expect("adjacently tagged"),
            _ => unreachable!("an enum with content serializes as an object"),
        };
        if let (Some(status), Value::Object(m)) = (self.status(), &mut v) {
            m.insert("status".to_owned(), Value::from(status));
        }
        v
    }

    /// True for the events after which a job's stream ends: completed, a
    /// final error, canceled.
    pub fn is_terminal(&self) -> bool {
        match self {
            JobEvent::Completed { .. } | JobEvent::Canceled { .. } => true,
            JobEvent::Error { is_final, .. } => *is_final,
            JobEvent::Created { .. }
            | JobEvent::Started { .. }
            | JobEvent::Progress { .. }
            | JobEvent::Playable { .. } => false,
        }
    }

    /// Reads back an event stored as its name and [`JobEvent::data`]
    /// (the event log's columns); `None` when they do not make one.
    pub fn from_parts(name: &str, data: &Value) -> Option<JobEvent> {
        serde_json::from_value(json!({ "event": name, "data": data })).ok()
    }

    /// The event as one SSE frame ([`frame`]).
    pub fn to_frame(&self, id: Option<u64>) -> String {
        frame(id, self.name(), &self.data().to_string())
    }
}

/// The `connected` event that opens every stream: the client's id and the
/// job as it is now (`null` when the video has no job yet).
pub fn connected(client_id: &str, job: Option<&JobView>) -> (&'static str, Value) {
    ("connected", to_value(Connected { client_id, job }))
}

/// The data of the `connected` event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Connected<'a> {
    client_id: &'a str,
    job: Option<&'a JobView>,
}

/// The name of the event that tells a resuming client it missed events.
pub const RESET: &str = "reset";

/// Why a stream sends `reset` to a resuming client instead of replaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// Its `Last-Event-ID` is older than the oldest event kept: what came
    /// between was dropped from the bounded log.
    LastEventIdTooOld,
    /// Its `Last-Event-ID` is newer than the newest event: the log it came
    /// from is gone (a deleted video's object was wiped since).
    LastEventIdUnknown,
}

/// What a `reset` shows of the present, in place of the events missed.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetState {
    /// `/job-events`: the video's job as `/job-status` shows it (`null`
    /// before notify, while its upload waits).
    Job(Option<Box<JobView>>),
    /// `/events`: the app's recent jobs, as `connected.recent` lists them.
    Jobs(Vec<Value>),
}

/// The data of the `reset` event.
#[derive(Serialize)]
struct Reset<'a> {
    reason: ResetReason,
    /// The id of the oldest event the stream still keeps (0 when it keeps none).
    oldest_kept: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a Option<Box<JobView>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<&'a [Value]>,
}

/// The `reset` event a resuming client gets when its id fell out of the
/// log (or is from a log that is gone): why, the oldest id kept, and the
/// present state. The stream sends it with the newest id, so the client's
/// `Last-Event-ID` moves on, then goes on live.
pub fn reset(reason: ResetReason, oldest_kept: u64, state: &ResetState) -> (&'static str, Value) {
    let (job, jobs) = match state {
        ResetState::Job(job) => (Some(job), None),
        ResetState::Jobs(jobs) => (None, Some(jobs.as_slice())),
    };
    (RESET, to_value(Reset { reason, oldest_kept, job, jobs }))
}

/// The data of the `heartbeat` event.
#[derive(Serialize)]
struct Heartbeat {
    timestamp: String,
}

/// An event's data as JSON: the types above always serialise.
fn to_value<T: Serialize>(data: T) -> Value {
    serde_json::to_value(data).expect("event data serialises")
}

/// The `heartbeat` event sent every [`HEARTBEAT_INTERVAL_MS`] of silence.
pub fn heartbeat(now: Timestamp) -> (&'static str, Value) {
    ("heartbeat", to_value(Heartbeat { timestamp: now.to_rfc3339() }))
}

/// The events that take a job from `before` (`None`: it did not exist) to
/// `after`, in the order clients should see them. `public_base` is the video
/// service's origin, for the URLs of `job:playable` and `job:completed`.
///
/// - a new job, or a notify that runs it again (a new `job_id`; back to
///   queued from done or error; a stale running job queued again with a
///   fresh budget): `job:created`;
/// - queued → processing (a lease): `job:started`; a new attempt seen while
///   processing (a new lease) likewise;
/// - progress or stage changed while processing: `job:progress`;
/// - newly playable: `job:playable`, before `job:completed` when one change does both;
/// - → done: `job:completed`;
/// - processing → queued after a failure or an expired lease with attempts
///   left: `job:error` with `final: false` (the public last error);
/// - → error: `job:canceled` when canceled, else `job:error` with `final: true`;
/// - a release (processing → queued, the attempt not counted), a re-upload
///   before any lease, an unchanged job: nothing.
pub fn events_between(before: Option<&Job>, after: &Job, public_base: &str) -> Vec<JobEvent> {
    let mut out = Vec::new();
    let before = before.filter(|b| !is_new_run(b, after));
    if before.is_none() {
        out.push(JobEvent::Created {
            job_id: after.job_id.clone(),
            app_id: after.app_id.clone(),
            video_id: after.video_id.clone(),
        });
    }
    // A new run starts from a freshly queued job.
    let (status, attempts, progress, stage, playable) = match before {
        Some(b) => (b.status, b.attempts, b.progress, b.stage.as_deref(), b.playable),
        None => (JobStatus::Queued, 0, 0, None, false),
    };
    // Planning chunks moves the lease into task 0 (`lease` becomes None): the
    // same attempt goes on, so no second `job:started`.
    let same_lease = before.is_some_and(|b| {
        b.lease.as_ref().map(|l| &l.id) == after.lease.as_ref().map(|l| &l.id)
            || (b.status == JobStatus::Processing && after.lease.is_none() && after.chunks.is_some())
    });
    match after.status {
        JobStatus::Queued => {
            // Back in the queue with the attempt counted: it failed (or its
            // lease ran out) and a retry is queued. A release uncounts it.
            if status == JobStatus::Processing && after.attempts == attempts && attempts > 0 {
                out.push(error_event(after, false));
            }
        }
        JobStatus::Processing => {
            let new_attempt = status != JobStatus::Processing || after.attempts != attempts || !same_lease;
            if new_attempt {
                out.push(JobEvent::Started {
                    job_id: after.job_id.clone(),
                    video_id: after.video_id.clone(),
                    attempt: after.attempts,
                });
                if after.progress > 0 {
                    out.push(progress_event(after));
                }
            } else if after.progress != progress || after.stage.as_deref() != stage {
                out.push(progress_event(after));
            }
            if after.playable && (new_attempt || !playable) {
                out.extend(playable_event(after, public_base));
            }
        }
        JobStatus::Done => {
            if status != JobStatus::Done {
                if !playable {
                    out.extend(playable_event(after, public_base));
                }
                out.push(JobEvent::Completed {
                    job_id: after.job_id.clone(),
                    video_id: after.video_id.clone(),
                    job: Box::new(JobView::of(after, public_base)),
                });
            }
        }
        JobStatus::Error => {
            if status != JobStatus::Error {
                if after.failure == Some(FailureKind::Canceled) {
                    out.push(JobEvent::Canceled { job_id: after.job_id.clone() });
                } else {
                    out.push(error_event(after, true));
                }
            }
        }
    }
    out
}

/// True when `after` is a new run of the video rather than a step of `before`'s.
fn is_new_run(before: &Job, after: &Job) -> bool {
    if before.job_id != after.job_id {
        return true;
    }
    after.status == JobStatus::Queued
        && match before.status {
            JobStatus::Done | JobStatus::Error => true,
            // A notify queued a silent job again: a fresh budget, and the
            // attempt's start is kept (a release forgets it; a retry keeps
            // the attempt count).
            JobStatus::Processing => after.attempts != before.attempts && after.started_at.is_some(),
            JobStatus::Queued => false,
        }
}

fn progress_event(job: &Job) -> JobEvent {
    JobEvent::Progress { job_id: job.job_id.clone(), progress: job.progress, stage: job.stage.clone() }
}

/// `job:playable` with the view's URLs; none when the job has no playable output.
fn playable_event(job: &Job, public_base: &str) -> Option<JobEvent> {
    let view = JobView::of(job, public_base);
    Some(JobEvent::Playable {
        job_id: job.job_id.clone(),
        playback_url: view.playback_url?,
        poster_url: view.poster_url,
    })
}

fn error_event(job: &Job, is_final: bool) -> JobEvent {
    let public = if is_final { job.public_error() } else { job.public_last_error() };
    JobEvent::Error {
        job_id: job.job_id.clone(),
        video_id: job.video_id.clone(),
        // Both are always set in these states; the fallback only keeps the
        // payload a sentence.
        error: public.unwrap_or_else(|| "processing failed".to_owned()),
        is_final,
    }
}

/// One SSE frame: `id: {id}\nevent: {name}\ndata: {data}\n\n`, the id line
/// left out when `id` is `None`. `data` is meant to be one line of JSON
/// (`serde_json` never writes a raw newline); should it hold line breaks
/// anyway, each line gets its own `data:` field, which clients join back
/// with `\n`, so the frame can never be cut short or forged. Line breaks in
/// `name` are dropped for the same reason.
pub fn frame(id: Option<u64>, name: &str, data: &str) -> String {
    let mut out = String::with_capacity(name.len() + data.len() + 32);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str("event: ");
    out.extend(name.chars().filter(|c| !matches!(c, '\r' | '\n')));
    out.push('\n');
    let data = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// An event's data as streams may show it (`/job-events` is public), for
/// what is logged and what is replayed. Events logged before issue 23
/// carried `filePath` (a storage key) and, in `job:completed`'s `job`, the
/// webhook delivery fields; a done job logs no new events, so its kept log
/// would replay them for as long as it stands. An `upload.*` catalogue body
/// (`{id, type, created_at, data}`) never shows the upload's browser
/// credentials (`token`, the presigned `url` and its `headers`,
/// `complete_url`, `endpoint`: `POST /uploads` answers them once, to the
/// backend). Data without any of these is returned as it is.
pub fn public_stored_data(data: &str) -> std::borrow::Cow<'_, str> {
    const DELIVERY: [&str; 3] = ["callback_status", "callback_attempts", "callback_last_error"];
    const UPLOAD_CREDENTIALS: [&str; 5] = ["token", "url", "headers", "complete_url", "endpoint"];
    let upload = data.contains("\"upload.") && UPLOAD_CREDENTIALS.iter().any(|k| data.contains(&format!("\"{k}\"")));
    if !upload && !data.contains("\"filePath\"") && !DELIVERY.iter().any(|k| data.contains(k)) {
        return std::borrow::Cow::Borrowed(data);
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(data) else {
        return std::borrow::Cow::Borrowed(data);
    };
    fields.remove("filePath");
    if let Some(Value::Object(job)) = fields.get_mut("job") {
        for k in DELIVERY {
            job.remove(k);
        }
    }
    let is_upload = fields.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("upload."));
    if let (true, Some(Value::Object(upload))) = (is_upload, fields.get_mut("data")) {
        for k in UPLOAD_CREDENTIALS {
            upload.remove(k);
        }
    }
    std::borrow::Cow::Owned(Value::Object(fields).to_string())
}

/// The first bytes of every stream: `retry: {ms}\n\n` (how long a client
/// waits before reconnecting).
pub fn retry_frame(ms: u64) -> String {
    format!("retry: {ms}\n\n")
}

/// Reads a `Last-Event-ID` value: a decimal `u64` after trimming; anything
/// else (absent, empty, signed, not a number, too large) is `None`, which
/// replays nothing.
pub fn parse_last_event_id(value: Option<&str>) -> Option<u64> {
    let v = value?.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LeaseId;
    use crate::keys::OutputId;
    use crate::video::chunks::{ChunkGeometry, ChunkSettings, ChunkSource};
    use crate::video::job::{JobResult, RetryPolicy, SourceUpload, ThumbnailMeta};
    use crate::video::ladder::LadderOptions;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
    const BASE: &str = "https://videos.example.com";

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 2, lease_ttl_ms: 30_000, backoff_base_ms: 5_000 }
    }

    fn lid(s: &str) -> LeaseId {
        LeaseId::parse(s).unwrap()
    }

    fn out(s: &str) -> OutputId {
        OutputId::parse(s).unwrap()
    }

    fn source(key: &str) -> SourceUpload {
        SourceUpload { raw_key: key.into(), content_type: "video/mp4".into(), size: 1000, etag: None }
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

    fn result() -> JobResult {
        JobResult {
            duration_s: 10.0,
            renditions: vec![],
            thumbnails: Some(ThumbnailMeta { interval_s: 2.0, tile_w: 160, tile_h: 90, cols: 5, rows: 1, count: 5 }),
            has_audio: true,
            download: None,
            ..Default::default()
        }
    }

    fn leased() -> Job {
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &policy(), T0).unwrap();
        j
    }

    /// The names of the events between two states.
    fn names(before: Option<&Job>, after: &Job) -> Vec<&'static str> {
        events_between(before, after, BASE).iter().map(JobEvent::name).collect()
    }

    /// One case: what, the job before, the step, the events expected.
    type Case = (&'static str, fn() -> Job, fn(&mut Job), &'static [&'static str]);

    #[test]
    fn every_transition_of_the_state_machine_has_its_events() {
        let p = policy();
        let cases: &[Case] = &[
            (
                "lease",
                job,
                |j| {
                    let _ = j.lease(lid("L1"), out("o1"), &policy(), T0).unwrap();
                },
                &["job:started"],
            ),
            (
                "planned into chunks: the lease goes on as task 0's, the same attempt",
                leased,
                |j| {
                    let geometry = ChunkGeometry {
                        frame_rate: crate::video::ladder::Rational::new(30, 1),
                        gop_frames: 60,
                        first_segment_frames: 15,
                        segment_frames: 120,
                        total_frames: 9000,
                    };
                    let source = ChunkSource { geometry, t0_s: 0.0, duration_s: 300.0, has_audio: true, rungs: vec![] };
                    let spec = j.plan(&lid("L1"), source, &ChunkSettings::default(), T0).unwrap();
                    assert!(spec.is_some() && j.chunks.is_some() && j.lease.is_none());
                },
                &[],
            ),
            (
                "heartbeat with progress",
                leased,
                |j| {
                    let _ = j.heartbeat(&lid("L1"), 10, None, false, &policy(), T0).unwrap();
                },
                &["job:progress"],
            ),
            (
                "heartbeat with a new stage",
                leased,
                |j| {
                    let _ = j.heartbeat(&lid("L1"), 0, Some("encoding".into()), false, &policy(), T0).unwrap();
                },
                &["job:progress"],
            ),
            (
                "heartbeat that changes nothing",
                leased,
                |j| {
                    let _ = j.heartbeat(&lid("L1"), 0, None, false, &policy(), T0.plus_secs(1)).unwrap();
                },
                &[],
            ),
            (
                "heartbeat that makes it playable",
                leased,
                |j| {
                    let _ = j.heartbeat(&lid("L1"), 30, None, true, &policy(), T0).unwrap();
                },
                &["job:progress", "job:playable"],
            ),
            (
                "complete, not playable before",
                leased,
                |j| {
                    let _ = j.complete(&lid("L1"), result(), T0).unwrap();
                },
                &["job:playable", "job:completed"],
            ),
            (
                "retryable failure with attempts left",
                leased,
                |j| {
                    let _ = j.fail(&lid("L1"), "S3 timed out", true, &policy(), T0).unwrap();
                },
                &["job:error"],
            ),
            (
                "permanent failure",
                leased,
                |j| {
                    let _ = j.fail(&lid("L1"), "not a video", false, &policy(), T0).unwrap();
                },
                &["job:error"],
            ),
            (
                "lease expiry with attempts left",
                leased,
                |j| {
                    let _ = j.expire_lease(&policy(), T0.plus_secs(11)).unwrap();
                },
                &["job:error"],
            ),
            ("lease still live", leased, |j| assert!(j.expire_lease(&policy(), T0.plus_secs(1)).is_none()), &[]),
            ("release", leased, |j| j.release(&lid("L1"), T0.plus_secs(1)).unwrap(), &[]),
            ("cancel while running", leased, |j| assert!(j.cancel("canceled through the API", T0)), &["job:canceled"]),
            ("cancel while queued", job, |j| assert!(j.cancel("canceled through the API", T0)), &["job:canceled"]),
            (
                "re-upload before any lease",
                job,
                |j| {
                    let _ = j.renotify(source("raw/app/vid/source.webm"), &policy(), T0);
                },
                &[],
            ),
            (
                "renotify of a queued job",
                job,
                |j| {
                    let _ = j.renotify(source("raw/app/vid/source.mp4"), &policy(), T0);
                },
                &[],
            ),
            (
                "renotify of a running job",
                leased,
                |j| {
                    let _ = j.renotify(source("raw/app/vid/source.mp4"), &policy(), T0.plus_secs(1));
                },
                &[],
            ),
            (
                "renotify of a silent running job",
                leased,
                |j| {
                    let _ = j.renotify(source("raw/app/vid/source.mp4"), &policy(), T0.plus_secs(11));
                },
                &["job:created"],
            ),
        ];
        for (what, start, step, want) in cases {
            let before = start();
            let mut after = before.clone();
            step(&mut after);
            assert_eq!(names(Some(&before), &after), *want, "{what}");
        }
        // The ones that need a longer history.
        let mut j = leased();
        j.heartbeat(&lid("L1"), 50, None, true, &p, T0).unwrap();
        let before = j.clone();
        j.complete(&lid("L1"), result(), T0.plus_secs(1)).unwrap();
        assert_eq!(names(Some(&before), &j), ["job:completed"], "complete, already playable");
        let before = j.clone();
        j.complete(&lid("L1"), result(), T0.plus_secs(2)).unwrap();
        assert_eq!(names(Some(&before), &j), [] as [&str; 0], "a repeated complete");
        let before = j.clone();
        j.renotify(source("raw/app/vid/source.mp4"), &p, T0.plus_secs(3));
        assert_eq!(names(Some(&before), &j), [] as [&str; 0], "renotify of a done job");
        assert!(!j.cancel("x", T0), "nothing to cancel");

        // Error → queued again by a notify, then leased: a new run, attempt 1.
        let mut j = leased();
        j.fail(&lid("L1"), "not a video", false, &p, T0).unwrap();
        let before = j.clone();
        j.renotify(source("raw/app/vid/source.webm"), &p, T0.plus_secs(1));
        assert_eq!(names(Some(&before), &j), ["job:created"], "renotify of a failed job");
        let before = j.clone();
        j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(1)).unwrap();
        assert_eq!(events_between(Some(&before), &j, BASE)[0].data()["attempt"], 1);

        // Canceled → notify: created again.
        let mut j = job();
        j.cancel("canceled through the API", T0);
        let before = j.clone();
        j.renotify(source("raw/app/vid/source.mp4"), &p, T0);
        assert_eq!(names(Some(&before), &j), ["job:created"], "renotify of a canceled job");

        // A new job: created; a different job id for the same video: created.
        assert_eq!(names(None, &job()), ["job:created"]);
        let other = Job { job_id: JobId::parse("job_2").unwrap(), ..job() };
        assert_eq!(names(Some(&leased()), &other), ["job:created"]);
        // Unchanged: nothing, in every status.
        for j in [job(), leased()] {
            assert!(events_between(Some(&j), &j, BASE).is_empty());
        }
    }

    #[test]
    fn retries_are_non_final_errors_and_the_last_failure_is_final() {
        let p = policy();
        let mut j = leased();
        let before = j.clone();
        j.fail(&lid("L1"), "storage PUT hls/app/vid/o1/x: status 503", true, &p, T0).unwrap();
        let ev = events_between(Some(&before), &j, BASE);
        assert_eq!(ev.len(), 1);
        assert!(!ev[0].is_terminal());
        assert_eq!(
            ev[0].data(),
            json!({"jobId": "job_1", "videoId": "vid", "status": "error",
                   "error": "processing failed on our side; it will be retried", "final": false})
        );
        // The retry: started again, attempt 2; then it runs out of attempts.
        let before = j.clone();
        j.lease(lid("L2"), out("o2"), &p, T0.plus_secs(5)).unwrap();
        assert_eq!(events_between(Some(&before), &j, BASE)[0].data()["attempt"], 2);
        let before = j.clone();
        j.expire_lease(&p, T0.plus_secs(60)).unwrap();
        let ev = events_between(Some(&before), &j, BASE);
        assert!(ev[0].is_terminal());
        assert_eq!(ev[0].data()["final"], true);
        let error = ev[0].data()["error"].as_str().unwrap().to_owned();
        assert_eq!(error, "processing failed on our side after 2 attempts; call /notify-upload-complete to try again");
        assert!(!error.contains("heartbeat"), "never the stored text");
        // An uploader's message passes as written.
        let mut k = leased();
        let before = k.clone();
        k.fail(&lid("L1"), "the upload is not a video", false, &p, T0).unwrap();
        assert_eq!(events_between(Some(&before), &k, BASE)[0].data()["error"], "the upload is not a video");
    }

    #[test]
    fn payloads_have_the_documented_shapes() {
        let p = policy();
        let created = events_between(None, &job(), BASE).remove(0);
        assert_eq!(created.data(), json!({"jobId": "job_1", "appId": "app", "videoId": "vid", "status": "pending"}));
        let mut j = job();
        j.lease(lid("L1"), out("o1"), &p, T0).unwrap();
        let started = events_between(Some(&job()), &j, BASE).remove(0);
        assert_eq!(started.data(), json!({"jobId": "job_1", "videoId": "vid", "status": "running", "attempt": 1}));
        let before = j.clone();
        j.heartbeat(&lid("L1"), 42, Some("encoding".into()), true, &p, T0).unwrap();
        let ev = events_between(Some(&before), &j, BASE);
        assert_eq!(ev[0].data(), json!({"jobId": "job_1", "progress": 42, "stage": "encoding"}));
        assert_eq!(
            ev[1].data(),
            json!({"jobId": "job_1", "playbackUrl": "https://videos.example.com/hls/app/vid/o1/master.m3u8",
                   "posterUrl": "https://videos.example.com/hls/app/vid/o1/poster.jpg"})
        );
        let before = j.clone();
        j.complete(&lid("L1"), result(), T0.plus_secs(9)).unwrap();
        let completed = events_between(Some(&before), &j, BASE).remove(0);
        let data = completed.data();
        assert_eq!(
            (data["status"].clone(), data["videoId"].clone(), data.get("filePath")),
            (json!("completed"), json!("vid"), None)
        );
        assert_eq!(data["job"], serde_json::to_value(JobView::of(&j, BASE)).unwrap());
        assert!(completed.is_terminal());
        let mut c = job();
        c.cancel("canceled through the API", T0);
        let canceled = events_between(Some(&job()), &c, BASE).remove(0);
        assert_eq!(canceled.data(), json!({"jobId": "job_1", "status": "canceled"}));
        assert!(canceled.is_terminal());
        // The helpers.
        assert_eq!(connected("c1", None), ("connected", json!({"clientId": "c1", "job": null})));
        let view = JobView::of(&j, BASE);
        assert_eq!(connected("c1", Some(&view)).1["job"]["status"], "done");
        assert_eq!(heartbeat(T0), ("heartbeat", json!({"timestamp": "2023-11-14T22:13:20.000Z"})));
    }

    #[test]
    fn names_terminality_and_stored_form() {
        let mut j = leased();
        j.heartbeat(&lid("L1"), 10, None, true, &policy(), T0).unwrap();
        let mut all = events_between(None, &j, BASE);
        j.complete(&lid("L1"), result(), T0).unwrap();
        all.push(events_between(Some(&leased()), &j, BASE).pop().unwrap());
        all.push(JobEvent::Error {
            job_id: j.job_id.clone(),
            video_id: j.video_id.clone(),
            error: "e".into(),
            is_final: false,
        });
        all.push(JobEvent::Error {
            job_id: j.job_id.clone(),
            video_id: j.video_id.clone(),
            error: "e".into(),
            is_final: true,
        });
        all.push(JobEvent::Canceled { job_id: j.job_id.clone() });
        let got: Vec<(&str, bool)> = all.iter().map(|e| (e.name(), e.is_terminal())).collect();
        assert_eq!(
            got,
            [
                ("job:created", false),
                ("job:started", false),
                ("job:progress", false),
                ("job:playable", false),
                ("job:completed", true),
                ("job:error", false),
                ("job:error", true),
                ("job:canceled", true),
            ]
        );
        for e in &all {
            // Stored as name + data, read back the same.
            assert_eq!(JobEvent::from_parts(e.name(), &e.data()).as_ref(), Some(e), "{}", e.name());
            // Public texts name the video, never a storage key.
            assert!(!e.data().to_string().contains("raw/"), "{}", e.data());
            let stored = serde_json::to_value(e).unwrap();
            assert_eq!(stored["event"], e.name());
            assert_eq!(serde_json::from_value::<JobEvent>(stored).unwrap(), *e);
            // One line of JSON, one frame.
            let f = e.to_frame(Some(7));
            assert!(f.starts_with(&format!("id: 7\nevent: {}\ndata: {{", e.name())) && f.ends_with("}\n\n"));
            assert_eq!(f.matches('\n').count(), 4, "{f}");
        }
        assert_eq!(JobEvent::from_parts("job:nope", &json!({})), None);
        assert_eq!(JobEvent::from_parts("job:canceled", &json!({"status": "canceled"})), None, "no jobId");
    }

    #[test]
    fn reset_carries_its_reason_the_oldest_kept_id_and_the_present() {
        let view = JobView::of(&job(), BASE);
        let (name, data) = reset(ResetReason::LastEventIdTooOld, 7, &ResetState::Job(Some(Box::new(view.clone()))));
        assert_eq!(name, "reset");
        assert_eq!(data["reason"], "last_event_id_too_old");
        assert_eq!(data["oldest_kept"], 7);
        assert_eq!(data["job"], serde_json::to_value(&view).unwrap());
        assert!(data.get("jobs").is_none(), "{data}");
        let (_, data) = reset(ResetReason::LastEventIdUnknown, 0, &ResetState::Job(None));
        assert_eq!(data, json!({"reason": "last_event_id_unknown", "oldest_kept": 0, "job": null}));
        let (_, data) = reset(ResetReason::LastEventIdTooOld, 3, &ResetState::Jobs(vec![json!({"videoId": "v"})]));
        assert_eq!(data, json!({"reason": "last_event_id_too_old", "oldest_kept": 3, "jobs": [{"videoId": "v"}]}));
    }

    #[test]
    fn frames_follow_the_sse_format() {
        let cases: &[(Option<u64>, &str, &str, &str)] = &[
            (Some(12), "job:progress", r#"{"progress":5}"#, "id: 12\nevent: job:progress\ndata: {\"progress\":5}\n\n"),
            (None, "connected", "{}", "event: connected\ndata: {}\n\n"),
            (Some(0), "heartbeat", "", "id: 0\nevent: heartbeat\ndata: \n\n"),
            // Line breaks can never end a frame early or inject a field.
            (None, "x", "a\nid: 99\n\nb", "event: x\ndata: a\ndata: id: 99\ndata: \ndata: b\n\n"),
            (None, "x", "a\r\nb\rc", "event: x\ndata: a\ndata: b\ndata: c\n\n"),
            (None, "x\ndata: y", "1", "event: xdata: y\ndata: 1\n\n"),
        ];
        for (id, name, data, want) in cases {
            assert_eq!(frame(*id, name, data), *want, "{name:?} {data:?}");
        }
        assert_eq!(retry_frame(RETRY_MS), "retry: 3000\n\n");
        let (name, data) = heartbeat(T0);
        assert_eq!(
            frame(Some(3), name, &data.to_string()),
            "id: 3\nevent: heartbeat\ndata: {\"timestamp\":\"2023-11-14T22:13:20.000Z\"}\n\n"
        );
        assert_eq!((HEARTBEAT_INTERVAL_MS, VIDEO_EVENT_LOG_LEN), (15_000, 200));
    }

    #[test]
    fn stream_caps_count_the_video_and_the_address() {
        let caps = StreamCaps { per_video: 3, per_address: 2 };
        assert!(caps.admit(0, 0).is_ok());
        assert!(caps.admit(2, 1).is_ok());
        let e = caps.admit(2, 2).unwrap_err();
        assert_eq!((e.status(), e.code), (429, ErrorCode::RateLimited));
        assert!(e.message.contains("from this address (at most 2)"), "{}", e.message);
        let e = caps.admit(3, 0).unwrap_err();
        assert!(e.message.contains("for this video (at most 3)"), "{}", e.message);
        assert_eq!(StreamCaps::default(), StreamCaps { per_video: 500, per_address: 10 });
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let cases = [
            ("203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::ffff:198.51.100.4", "198.51.100.4"),
            ("local", "local"),
        ];
        for (ip, want) in cases {
            assert_eq!(address_bucket(ip), want, "{ip}");
        }
    }

    #[test]
    fn last_event_ids_are_decimal_u64s() {
        let cases: &[(Option<&str>, Option<u64>)] = &[
            (None, None),
            (Some(""), None),
            (Some("   "), None),
            (Some("0"), Some(0)),
            (Some("42"), Some(42)),
            (Some(" 42\t"), Some(42)),
            (Some("007"), Some(7)),
            (Some("18446744073709551615"), Some(u64::MAX)),
            (Some("18446744073709551616"), None),
            (Some("-1"), None),
            (Some("+1"), None),
            (Some("1.5"), None),
            (Some("0x10"), None),
            (Some("1 2"), None),
            (Some("abc"), None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_last_event_id(*value), *want, "{value:?}");
        }
    }

    #[test]
    fn events_stored_before_issue_23_replay_without_storage_keys_or_delivery_errors() {
        let old = r#"{"jobId":"job_1","filePath":"raw/app/vid/source.mp4","job":{"status":"done","callback_status":"failed","callback_attempts":3,"callback_last_error":"HTTP 401"}}"#;
        let replayed: Value = serde_json::from_str(&public_stored_data(old)).unwrap();
        assert_eq!(replayed, json!({"jobId": "job_1", "job": {"status": "done"}}));
        let new = r#"{"jobId":"job_1","videoId":"vid","attempt":1}"#;
        assert!(matches!(public_stored_data(new), std::borrow::Cow::Borrowed(d) if d == new));
        assert_eq!(public_stored_data("not json, filePath"), "not json, filePath");
    }

    #[test]
    fn upload_events_never_show_the_uploads_credentials() {
        let created = json!({"id": "evt_1", "type": "upload.created", "created_at": "2026-12-06T12:00:00.000Z",
            "data": {"id": "upl_1.app.vid", "status": "waiting", "token": "up1.abc.def", "url": "https://s3/raw?X-Amz-Signature=1",
                     "headers": {"Content-Type": "video/mp4"}, "complete_url": "https://v/uploads/upl_1/complete",
                     "endpoint": "https://v/uploads/up1.abc.def"}});
        let shown: Value = serde_json::from_str(&public_stored_data(&created.to_string())).unwrap();
        assert_eq!(shown["data"], json!({"id": "upl_1.app.vid", "status": "waiting"}));
        assert_eq!((shown["id"].clone(), shown["type"].clone()), (json!("evt_1"), json!("upload.created")));
        // Other events keep their fields (a video's playback URL is public).
        let ready =
            json!({"id": "evt_2", "type": "video.ready", "data": {"playback_url": "u", "url": "x"}}).to_string();
        assert!(matches!(public_stored_data(&ready), std::borrow::Cow::Borrowed(_)));
    }
}

//! What the object's commands return and run by: the moment and settings
//! of a command ([`Cx`]), why it gives no reply ([`Refusal`]) and what the
//! shell carries out after it ([`Effect`]). Plain data at the bottom of the
//! object's logic, so every command module ([`super::machine`],
//! [`super::sessions`], [`super::announce`]) shares it without importing another.

use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::job::Job;
use media_core::{ApiError, Timestamp};

use crate::protocol::app_hub::JobSummary;
use crate::protocol::dispatch::ShardCommand;
use crate::sse::Frame;

/// What the commands run by, read once per fetch or alarm by the shell.
pub use crate::settings::ObjectSettings as Settings;

/// The moment a command runs in and what it runs by.
pub struct Cx<'a> {
    pub now: Timestamp,
    pub settings: &'a Settings,
    /// 16 fresh random bytes per call (ids).
    pub random: &'a dyn Fn() -> [u8; 16],
}

/// Why a command gives no reply: an answer for the caller, or storage failed.
#[derive(Debug)]
pub enum Refusal {
    Answer(ApiError),
    Storage(worker::Error),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Answer(e)
    }
}

impl From<worker::Error> for Refusal {
    fn from(e: worker::Error) -> Self {
        Refusal::Storage(e)
    }
}

/// A command's reply and what the shell then does.
pub type Step<T> = Result<(T, Vec<Effect>), Refusal>;

/// What the shell carries out after a command, in order.
#[derive(Debug)]
pub enum Effect {
    /// Hand events (name, data) to the app's hub, in the background.
    HubPublish { app: AppId, job: JobSummary, events: Vec<(String, serde_json::Value)> },
    /// The app's hub forgets a deleted video (awaited, best effort).
    HubForget { app: AppId, video: VideoId },
    /// Write frames to the open `/job-events` streams.
    Broadcast(Vec<Frame>),
    /// End the open streams.
    CloseStreams,
    /// Write the video's job marker in KV; on success record it (`machine::MARKER_META_KEY`).
    WriteMarker { app: AppId, video: VideoId, job_id: JobId },
    /// Tell the shard the job waits (`machine::shard_answered` with the outcome).
    TellShardWaiting { shard: u32, cmd: ShardCommand },
    /// Tell the shard the job left the queue (best effort): every row of
    /// it, or with `task`, that chunk task's row (the task is done).
    TellShardEnded { shard: u32, job_id: JobId, task: Option<u16> },
    /// Set the alarm at `machine::next_alarm`, read when the effect runs.
    ScheduleAlarm,
    /// Set the alarm at this time.
    SetAlarm(Timestamp),
    /// Write the done job's playback record in KV.
    PublishRecord(Job),
    /// Remove the playback record of a done job that runs again (other
    /// extras asked), so public reads see the new run, not the old result.
    UnpublishRecord { app: AppId, video: VideoId },
    /// Retention after a job completed ([`super::retention::after_done`]).
    Retain(Job),
    /// Retention after a job ended failed ([`super::retention::after_end`]).
    DropOutputs(Job),
    /// Send the webhook attempts that are due ([`super::deliveries`]).
    DeliverDue,
    /// Hand the outbox's announced events to the app's hub (awaited); they
    /// leave the outbox when it answers 200, else [`super::announce::announcements_refused`]
    /// and the alarm tries again ([`super::announce::announce`]).
    FlushAnnouncements,
    /// Wipe the object's storage and its alarm (`deleteAll()`).
    Wipe,
    /// Write the tombstone of a deleted video (tables created first).
    WriteTombstone { app: AppId, video: VideoId, sweep_at: Timestamp },
    /// The last sweep of a deleted video: both prefixes, the KV record and
    /// marker, then [`Effect::Wipe`]; on failure, again in `machine::SWEEP_RETRY_MS`.
    FinalSweep { app: AppId, video: VideoId },
    /// A cancelled or timed-out upload's leftovers: abort the video's open
    /// multipart uploads and delete its `raw/` objects, while
    /// `sessions::may_clean` (best effort, logged).
    CleanUpload { app: AppId, video: VideoId },
}

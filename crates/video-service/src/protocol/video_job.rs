//! The messages of `VideoJob` (one per video, [`crate::video_job`]): what
//! the Worker and the queue shards ask of a video's object, its typed
//! replies, the binding, and how an object is named (`{app_id}/{video_id}`).

use media_core::catalogue::EventType;
use media_core::ids::{AppId, JobId, LeaseId, VideoId};
use media_core::keys::OutputId;
use media_core::video::access::PlaybackOptions;
use media_core::video::extras::Extras;
use media_core::video::job::{Job, NotifyOutcome, SourceUpload};
use media_core::video::upload::UploadRecord;
use media_core::video::upload_session::SessionStep;
use media_core::wire::api::{
    CompleteRequest, DeletedVideo, FailRequest, HeartbeatRequest, PlanRequest, ReleaseRequest,
};
use media_core::Timestamp;
use serde::{Deserialize, Serialize};

/// The Durable Object binding of the video objects.
pub const VIDEO_JOBS_BINDING: &str = "VIDEO_JOBS";

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
        /// Signed URLs, encryption, download: set on a new job; a job made
        /// with others answers 409 (`PlaybackOptions::conflict_with`).
        #[serde(default, skip_serializing_if = "PlaybackOptions::is_default")]
        playback: PlaybackOptions,
        /// Cover and preview: other ones than the job's run it again
        /// (`Job::rerun_for`).
        #[serde(default, skip_serializing_if = "Extras::is_default")]
        extras: Extras,
    },
    Get,
    /// From the job's shard: lease the job (if it is still queued and due),
    /// or with `task`, that chunk task of it (its `output_id` is then the
    /// planned run's, not this one).
    Grant {
        job_id: JobId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u16>,
        lease_id: LeaseId,
        output_id: OutputId,
        worker: String,
    },
    /// The holder of a whole-job lease splits the job into chunk tasks
    /// after its probe (`PlanResponse`).
    Plan {
        job_id: JobId,
        req: PlanRequest,
    },
    Heartbeat {
        job_id: JobId,
        req: HeartbeatRequest,
    },
    Complete {
        job_id: JobId,
        req: Box<CompleteRequest>,
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
    /// `POST /videos/{app_id}/{video_id}/access`: whether the video's
    /// public routes need a signed token. Answers the job.
    SetAccess {
        require_signed_urls: bool,
    },
    /// `POST`/`DELETE /videos/{app_id}/{video_id}/captions/{language}`:
    /// adds or replaces the track of `language` (`track`), or removes it
    /// (`None`). The file itself is in storage. Answers the job.
    SetCaption {
        language: String,
        track: Option<media_core::video::captions::CaptionTrack>,
    },
    /// Opens an event stream, replaying the events after `last_event_id`
    /// (all kept events when absent). `address`: the client's, as its
    /// streams count (`media_core::video::events::address_bucket`).
    Events {
        last_event_id: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// Deletes the video for good (see [`crate::video_job`]'s "Deleting").
    Delete,
    /// Announces a catalogue event of this video from the Worker
    /// (`video_job::machine::announce`): into its `/job-events` and to the
    /// app's hub. `data` is public. Answers the event's body.
    Announce {
        event_type: EventType,
        data: serde_json::Value,
    },
    /// A step of the resumable upload session `session` ([`crate::resumable`];
    /// its ledger is `video_job::sessions`).
    UploadSession {
        session: String,
        step: SessionStep,
    },
    /// `POST /uploads`: a new waiting upload (a multipart one also issues
    /// its session in the ledger); `video_job::sessions`.
    UploadCreate {
        record: UploadRecord,
    },
    /// `GET /uploads/{id}`.
    UploadGet {
        upload_id: String,
    },
    /// `DELETE /uploads/{id}`.
    UploadCancel {
        upload_id: String,
    },
    /// A trigger says the upload's file landed (`source`: what storage has
    /// at its key, `None` when nothing is there yet): the first starts the
    /// job, the others change nothing. `upload_id: None` (storage's event
    /// notification): the video's waiting upload, if any.
    UploadLanded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<SourceUpload>,
    },
}

/// The answer to the upload commands: the upload (`None`: a storage event
/// for a video with no upload of that key) and the video's job, if any.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadReply {
    pub upload: Option<UploadRecord>,
    pub job: Option<Job>,
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

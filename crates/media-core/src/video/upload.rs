//! Direct uploads as objects (Mux's direct uploads are the model), with no
//! I/O: an upload's id, its record and the moves of its state.
//!
//! `POST /uploads` creates an [`UploadRecord`] in the video's object,
//! `waiting`, with a timeout (default [`DEFAULT_TIMEOUT_S`], 60 s to 7
//! days). It ends once, in one of:
//! - `asset_created`: the file landed and the video's job started (or had
//!   started: a legacy notify for the video counts too), [`UploadRecord::job_started`];
//! - `errored`: what landed is not what was declared ([`UploadRecord::landed`]);
//! - `cancelled`: `DELETE /uploads/{id}` while waiting ([`UploadRecord::cancel`]);
//! - `timed_out`: nothing finished by `expires_at` ([`UploadRecord::expire`]).
//!
//! Any number of triggers may report the same file (the browser's
//! completion call, a resumable upload's complete, storage's event
//! notification, a legacy notify): only the first moves a waiting upload,
//! the others find it `asset_created` and change nothing.
//!
//! An upload id names its video: `upl_{16 hex}.{app_id}.{video_id}` (ids
//! never hold a `.`), so `GET /uploads/{id}` reaches the video's object
//! with no lookup in between ([`UploadId`]).

use serde::{Deserialize, Serialize};

use crate::catalogue::EventType;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{AppId, JobId, VideoId};
use crate::time::Timestamp;
use crate::video::access::PlaybackOptions;
use crate::video::extras::Extras;

/// How long an upload waits for its file unless told otherwise (Mux's default).
pub const DEFAULT_TIMEOUT_S: u64 = 3600;
/// The shortest timeout a client may ask for.
pub const MIN_TIMEOUT_S: u64 = 60;
/// The longest: 7 days, also the longest a presigned URL may live.
pub const MAX_TIMEOUT_S: u64 = 604_800;

const ID_PREFIX: &str = "upl_";

/// An upload's id: which video it is for, and a random part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadId {
    pub app_id: AppId,
    pub video_id: VideoId,
    nonce: String,
}

impl UploadId {
    /// A new id for an upload of `video_id`.
    pub fn new(app_id: AppId, video_id: VideoId, random: [u8; 8]) -> Self {
        UploadId { app_id, video_id, nonce: hex::encode(random) }
    }

    /// The id `s` spells; 404 for anything that is not an upload id (no
    /// upload can have it).
    pub fn parse(s: &str) -> Result<UploadId, ApiError> {
        let none =
            || ApiError::not_found(format!("no upload {s:?}: upload ids look like upl_<16 hex>.<app_id>.<video_id>"));
        let rest = s.strip_prefix(ID_PREFIX).ok_or_else(none)?;
        let mut parts = rest.split('.');
        let (Some(nonce), Some(app), Some(video), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(none());
        };
        if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(none());
        }
        let app_id = AppId::parse(app).map_err(|_| none())?;
        let video_id = VideoId::parse(video).map_err(|_| none())?;
        Ok(UploadId { app_id, video_id, nonce: nonce.to_owned() })
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{ID_PREFIX}{}.{}.{}", self.nonce, self.app_id, self.video_id)
    }
}

/// The `timeout_s` a create asks for (`None`: the default), held to
/// `min_s` (normally [`MIN_TIMEOUT_S`]; tests configure less) to [`MAX_TIMEOUT_S`].
pub fn check_timeout(asked: Option<u64>, min_s: u64) -> Result<u64, ApiError> {
    let t = asked.unwrap_or(DEFAULT_TIMEOUT_S);
    if !(min_s..=MAX_TIMEOUT_S).contains(&t) {
        return Err(ApiError::invalid_field(format!(
            "timeout_s is {t}; it must be from {min_s} to {MAX_TIMEOUT_S} seconds (7 days), {DEFAULT_TIMEOUT_S} when left out"
        )));
    }
    Ok(t)
}

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    Waiting,
    AssetCreated,
    Errored,
    Cancelled,
    TimedOut,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Waiting => "waiting",
            UploadStatus::AssetCreated => "asset_created",
            UploadStatus::Errored => "errored",
            UploadStatus::Cancelled => "cancelled",
            UploadStatus::TimedOut => "timed_out",
        }
    }
}

/// Why an upload errored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadError {
    /// `size_mismatch`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// What the video's object keeps of one upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    pub status: UploadStatus,
    pub timeout_s: u64,
    #[serde(with = "crate::time::epoch_millis")]
    pub created_at: Timestamp,
    #[serde(with = "crate::time::epoch_millis")]
    pub expires_at: Timestamp,
    /// The object key the file goes to (`raw/{app}/{video}/source.{ext}`).
    pub key: String,
    pub content_type: String,
    pub size: u64,
    pub multipart: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The job's playback options, given at create.
    #[serde(default, skip_serializing_if = "PlaybackOptions::is_default")]
    pub playback: PlaybackOptions,
    /// The job's cover and preview, given at create.
    #[serde(default, skip_serializing_if = "Extras::is_default")]
    pub extras: Extras,
    /// Set once `asset_created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<UploadError>,
}

/// What a create asks for: the file and what to do once it landed.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadSpec {
    pub key: String,
    pub content_type: String,
    pub size: u64,
    pub multipart: bool,
    pub callback_url: Option<String>,
    pub playback: PlaybackOptions,
    pub extras: Extras,
}

/// What a report that the file landed does to an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Waiting, and the file is as declared: start the job, then
    /// [`UploadRecord::job_started`].
    StartJob,
    /// Started already (another trigger came first): nothing changes.
    AlreadyStarted,
    /// The file is not what was declared: the upload is now `errored`.
    Errored,
}

impl UploadRecord {
    /// A new, waiting upload of `spec`, ending `timeout_s` after `now`.
    pub fn new(id: &UploadId, spec: UploadSpec, timeout_s: u64, now: Timestamp) -> Self {
        UploadRecord {
            id: id.to_string(),
            status: UploadStatus::Waiting,
            timeout_s,
            created_at: now,
            expires_at: now.plus_secs(timeout_s),
            key: spec.key,
            content_type: spec.content_type,
            size: spec.size,
            multipart: spec.multipart,
            callback_url: spec.callback_url,
            playback: spec.playback,
            extras: spec.extras,
            job_id: None,
            error: None,
        }
    }

    fn ended(&self) -> ApiError {
        match self.status {
            UploadStatus::Cancelled | UploadStatus::TimedOut => ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this upload token was revoked: upload {} was {}; ask your backend for a new upload",
                    self.id,
                    if self.status == UploadStatus::Cancelled { "cancelled" } else { "timed out" }
                ),
            ),
            _ => ApiError::new(
                ErrorCode::Conflict,
                format!("upload {} is {}; ask your backend for a new upload", self.id, self.status.as_str()),
            ),
        }
    }

    /// A trigger reports the file at the upload's key, `size` bytes (`None`:
    /// nothing is there yet). Refused (403) once cancelled or timed out,
    /// 409 once errored or while nothing is there.
    pub fn landed(&mut self, size: Option<u64>) -> Result<Landed, ApiError> {
        match self.status {
            UploadStatus::AssetCreated => return Ok(Landed::AlreadyStarted),
            UploadStatus::Waiting => {}
            _ => return Err(self.ended()),
        }
        let Some(size) = size else {
            return Err(ApiError::new(
                ErrorCode::UploadMissing,
                format!("nothing has been uploaded for upload {} yet; PUT the file first, then complete", self.id),
            ));
        };
        if size != self.size {
            self.status = UploadStatus::Errored;
            self.error = Some(UploadError {
                kind: "size_mismatch".into(),
                message: format!("the uploaded file is {size} bytes; the upload declared {}", self.size),
            });
            return Ok(Landed::Errored);
        }
        Ok(Landed::StartJob)
    }

    /// The video's job started (`job_id`): a waiting upload is `asset_created`.
    /// Whether it moved.
    pub fn job_started(&mut self, job_id: &JobId) -> bool {
        if self.status != UploadStatus::Waiting {
            return false;
        }
        self.status = UploadStatus::AssetCreated;
        self.job_id = Some(job_id.clone());
        true
    }

    /// `DELETE /uploads/{id}`: only a waiting upload can be cancelled (409 otherwise).
    pub fn cancel(&mut self) -> Result<(), ApiError> {
        if self.status != UploadStatus::Waiting {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "upload {} is {}; only a waiting upload can be cancelled{}",
                    self.id,
                    self.status.as_str(),
                    if self.status == UploadStatus::AssetCreated {
                        " (its job runs: cancel it with POST /cancel-job, or delete the video)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        self.status = UploadStatus::Cancelled;
        Ok(())
    }

    /// At `now`, a waiting upload past its `expires_at` is `timed_out`. Whether it moved.
    pub fn expire(&mut self, now: Timestamp) -> bool {
        if self.status != UploadStatus::Waiting || now < self.expires_at {
            return false;
        }
        self.status = UploadStatus::TimedOut;
        true
    }

    /// The catalogue event that announces the upload's current state.
    pub fn event_type(&self) -> EventType {
        match self.status {
            UploadStatus::Waiting => EventType::UploadCreated,
            UploadStatus::AssetCreated => EventType::UploadAssetCreated,
            UploadStatus::Errored => EventType::UploadErrored,
            UploadStatus::Cancelled => EventType::UploadCancelled,
            UploadStatus::TimedOut => EventType::UploadTimedOut,
        }
    }

    /// The event's data: the upload's public fields.
    pub fn event_data(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": self.status.as_str(),
            "timeout_s": self.timeout_s,
            "expires_at": self.expires_at.to_rfc3339(),
            "job_id": self.job_id,
            "error": self.error,
        })
    }
}

/// An R2 event notification, as a Queue delivers it (Cloudflare's
/// documented message: `{account, action, bucket, object: {key, size,
/// eTag}, eventTime, copySource?}`). Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageEvent {
    pub action: String,
    #[serde(default)]
    pub bucket: String,
    pub object: StorageEventObject,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageEventObject {
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
}

/// What an R2 event notification means for uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEventMeaning {
    /// A video's source was written (`PutObject`, `CopyObject`,
    /// `CompleteMultipartUpload` of `raw/{app}/{video}/source.{ext}`).
    SourceLanded { app_id: AppId, video_id: VideoId, key: String },
    /// Anything else (a delete, another key, another message): acknowledged, ignored.
    Ignored,
}

impl StorageEvent {
    /// Parses a queue message's body (JSON); `None` when it is not an R2
    /// event notification.
    pub fn parse(body: &str) -> Option<StorageEvent> {
        serde_json::from_str(body).ok()
    }

    /// What the event means ([`crate::keys::ObjectKey`] decides the key).
    pub fn meaning(&self) -> StorageEventMeaning {
        if !matches!(self.action.as_str(), "PutObject" | "CopyObject" | "CompleteMultipartUpload") {
            return StorageEventMeaning::Ignored;
        }
        match crate::keys::ObjectKey::parse(&self.object.key) {
            Some(crate::keys::ObjectKey::RawUpload { app, video, .. }) => {
                StorageEventMeaning::SourceLanded { app_id: app, video_id: video, key: self.object.key.clone() }
            }
            _ => StorageEventMeaning::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> UploadId {
        UploadId::new(AppId::parse("app-1").unwrap(), VideoId::parse("vid_2").unwrap(), [0xab; 8])
    }

    fn record(now: Timestamp) -> UploadRecord {
        let spec = UploadSpec {
            key: "raw/app-1/vid_2/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 100,
            multipart: false,
            callback_url: None,
            playback: PlaybackOptions::default(),
            extras: Extras::default(),
        };
        UploadRecord::new(&id(), spec, 60, now)
    }

    #[test]
    fn ids_name_their_video_and_nothing_else_parses() {
        let s = id().to_string();
        assert_eq!(s, "upl_abababababababab.app-1.vid_2");
        assert_eq!(UploadId::parse(&s).unwrap(), id());
        for bad in [
            "",
            "upl_",
            "upl_abababababababab.app-1",
            "upl_abababababababab.app-1.vid_2.x",
            "upl_ABABABABABABABAB.app-1.vid_2",
            "upl_abab.app-1.vid_2",
            "upx_abababababababab.app-1.vid_2",
            "upl_abababababababab.app 1.vid_2",
            "upl_abababababababab..vid_2",
        ] {
            let e = UploadId::parse(bad).unwrap_err();
            assert_eq!(e.status(), 404, "{bad}");
        }
    }

    #[test]
    fn timeouts_default_and_are_bounded() {
        assert_eq!(check_timeout(None, MIN_TIMEOUT_S), Ok(3600));
        assert_eq!(check_timeout(Some(60), MIN_TIMEOUT_S), Ok(60));
        assert_eq!(check_timeout(Some(604_800), MIN_TIMEOUT_S), Ok(604_800));
        for bad in [0, 59, 604_801] {
            let e = check_timeout(Some(bad), MIN_TIMEOUT_S).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.message.contains("from 60 to 604800"), "{}", e.message);
        }
        assert_eq!(check_timeout(Some(2), 1), Ok(2));
    }

    #[test]
    fn the_first_trigger_starts_the_job_and_the_others_change_nothing() {
        let t = Timestamp::from_secs(1_700_000_000);
        let mut r = record(t);
        assert_eq!(r.event_type(), EventType::UploadCreated);
        let missing = r.landed(None).unwrap_err();
        assert_eq!((missing.status(), missing.code), (409, ErrorCode::UploadMissing));
        assert_eq!(r.status, UploadStatus::Waiting);
        assert_eq!(r.landed(Some(100)), Ok(Landed::StartJob));
        let job = JobId::from_random([1; 16]);
        assert!(r.job_started(&job));
        assert_eq!((r.status, r.job_id.as_ref()), (UploadStatus::AssetCreated, Some(&job)));
        assert_eq!(r.event_type(), EventType::UploadAssetCreated);
        // Every later trigger, and a later job start, changes nothing.
        assert_eq!(r.landed(Some(100)), Ok(Landed::AlreadyStarted));
        assert_eq!(r.landed(None), Ok(Landed::AlreadyStarted));
        assert!(!r.job_started(&JobId::from_random([2; 16])));
        assert_eq!(r.job_id.as_ref(), Some(&job));
        // Not cancellable now, and it does not time out.
        let e = r.cancel().unwrap_err();
        assert_eq!(e.status(), 409);
        assert!(e.message.contains("is asset_created; only a waiting upload can be cancelled"), "{}", e.message);
        assert!(!r.expire(t.plus_secs(61)));
    }

    #[test]
    fn a_file_of_another_size_errors_the_upload() {
        let mut r = record(Timestamp::from_secs(1));
        assert_eq!(r.landed(Some(99)), Ok(Landed::Errored));
        assert_eq!(r.status, UploadStatus::Errored);
        assert_eq!(r.error.as_ref().unwrap().kind, "size_mismatch");
        assert_eq!(r.event_type(), EventType::UploadErrored);
        assert_eq!(r.landed(Some(100)).unwrap_err().status(), 409);
        assert!(!r.job_started(&JobId::from_random([1; 16])));
    }

    #[test]
    fn cancelled_and_timed_out_uploads_refuse_their_token() {
        let t = Timestamp::from_secs(1_700_000_000);
        let mut r = record(t);
        assert!(!r.expire(t.plus_secs(59)));
        assert!(r.expire(t.plus_secs(60)));
        assert_eq!((r.status, r.event_type()), (UploadStatus::TimedOut, EventType::UploadTimedOut));
        let e = r.landed(Some(100)).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.message.contains("was timed out"), "{}", e.message);
        assert_eq!(r.cancel().unwrap_err().status(), 409);

        let mut r = record(t);
        r.cancel().unwrap();
        assert_eq!((r.status, r.event_type()), (UploadStatus::Cancelled, EventType::UploadCancelled));
        let e = r.landed(Some(100)).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.message.contains("token was revoked") && e.message.contains("was cancelled"), "{}", e.message);
        assert!(!r.expire(t.plus_secs(3600)));
        assert!(!r.job_started(&JobId::from_random([1; 16])));
        // Stored as JSON with times in ms.
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""status":"cancelled""#), "{json}");
        assert_eq!(serde_json::from_str::<UploadRecord>(&json).unwrap(), r);
    }

    #[test]
    fn storage_events_map_video_sources_to_their_video() {
        // Cloudflare's documented example, with a video source's key.
        let body = r#"{"account":"3f4b7e3dcab231cbfdaa90a6a28bd548","action":"PutObject","bucket":"media",
            "object":{"key":"raw/app-1/vid_2/source.mp4","size":65536,"eTag":"c846ff7a18f28c2e262116d6e8719ef0"},
            "eventTime":"2024-05-24T19:36:44.379Z"}"#;
        let e = StorageEvent::parse(body).unwrap();
        assert_eq!(e.object.size, Some(65536));
        let landed = StorageEventMeaning::SourceLanded {
            app_id: AppId::parse("app-1").unwrap(),
            video_id: VideoId::parse("vid_2").unwrap(),
            key: "raw/app-1/vid_2/source.mp4".into(),
        };
        assert_eq!(e.meaning(), landed);
        for action in ["CopyObject", "CompleteMultipartUpload"] {
            let other = body.replace("PutObject", action);
            assert_eq!(StorageEvent::parse(&other).unwrap().meaning(), landed, "{action}");
        }
        // Deletes, outputs, images, odd keys and other messages are not ours.
        let delete = r#"{"action":"DeleteObject","bucket":"media","object":{"key":"raw/app-1/vid_2/source.mp4"}}"#;
        assert_eq!(StorageEvent::parse(delete).unwrap().meaning(), StorageEventMeaning::Ignored);
        for key in
            ["hls/app-1/vid_2/o/master.m3u8", "images/app-1/img", "raw/app-1/vid_2/other.mp4", "raw/../x/source.mp4"]
        {
            let other = body.replace("raw/app-1/vid_2/source.mp4", key);
            assert_eq!(StorageEvent::parse(&other).unwrap().meaning(), StorageEventMeaning::Ignored, "{key}");
        }
        for junk in ["", "{}", "[1]", r#"{"action":"PutObject"}"#, "not json"] {
            assert_eq!(StorageEvent::parse(junk), None, "{junk}");
        }
    }
}

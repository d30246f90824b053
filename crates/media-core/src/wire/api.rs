//! The wire types of both services' routes, with the field names existing
//! clients use, and [`Fields`]: reading a JSON body with errors that name the
//! field and say what it should be. Every JSON answer the Workers give is one
//! of these types (errors are `error::ErrorBody`); times are
//! [`Timestamp`]s, RFC 3339 on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::ids::{AppId, IdError, ImageId, JobId, LeaseId, VideoId};
use crate::image::transform::TransformDefaults;
use crate::keys::{HlsFile, ObjectKey, OutputId};
use crate::media::{describe_bytes, image_dimensions, ImageType};
use crate::time::Timestamp;
use crate::video::access::PlaybackOptions;
use crate::video::chunks::{ChunkReport, ChunkSource, ChunkSpec};
use crate::video::delivery::CallbackStatus;
use crate::video::dispatch::SizeClass;
use crate::video::download::DownloadStatus;
use crate::video::extras::{CoverFormat, CoverMeta, Extras, PreviewMeta};
pub use crate::video::job::JobSpec;
use crate::video::job::{Job, JobResult, JobStatus, Rendition, ThumbnailMeta};
use crate::video::upload::{UploadError, UploadRecord, UploadStatus};

/// A JSON object body, read field by field.
#[derive(Debug)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Parses a body that must be a JSON object.
    pub fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(ErrorCode::InvalidJson, "the request body is empty; send a JSON object"));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(_) => Err(ApiError::new(ErrorCode::InvalidJson, "the request body must be a JSON object")),
            Err(e) => Err(ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// Refuses a field not in `known`, naming it and the accepted ones.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(other) => Err(ApiError::invalid_field(format!(
                "unknown field {other:?}; the accepted fields are {}",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A field as it was sent: `None` when absent, `Some(Null)` for `null`
    /// (for the fields where the two mean different things).
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn optional_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::invalid_field(format!("{name} must be a string, not {}", kind(other)))),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&str, ApiError> {
        self.optional_str(name)?.ok_or_else(|| ApiError::invalid_field(format!("{name} is required")))
    }

    /// A video's playback options (`require_signed_urls`, `encryption`,
    /// `download`), absent ones off.
    pub fn playback_options(&self) -> Result<PlaybackOptions, ApiError> {
        let [signed, encryption, download] = PlaybackOptions::FIELDS.map(|name| self.raw(name));
        PlaybackOptions::from_fields(signed, encryption, download).map_err(ApiError::invalid_field)
    }

    /// The `codecs`, `cover` and `preview` a body asks for.
    pub fn extras(&self) -> Result<Extras, ApiError> {
        let [codecs, cover, preview] = Extras::FIELDS.map(|name| self.raw(name));
        Extras::from_fields(codecs, cover, preview).map_err(ApiError::invalid_field)
    }

    pub fn optional_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ApiError::invalid_field(format!("{name} must be true or false, not {}", kind(other)))),
        }
    }

    pub fn optional_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid_field(format!("{name} must be a whole number of bytes, not {n}"))),
            Some(other) => Err(ApiError::invalid_field(format!("{name} must be a number, not {}", kind(other)))),
        }
    }

    /// A caller id; empty strings count as missing.
    pub fn required_id<T>(&self, name: &'static str, parse: fn(&str) -> Result<T, IdError>) -> Result<T, ApiError> {
        Ok(parse(self.required_str(name)?)?)
    }

    pub fn optional_id<T>(
        &self,
        name: &'static str,
        parse: fn(&str) -> Result<T, IdError>,
    ) -> Result<Option<T>, ApiError> {
        self.optional_str(name)?.map(parse).transpose().map_err(ApiError::from)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one query parameter as a caller id.
pub fn query_id<T>(
    query: &[(String, String)],
    name: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, ApiError> {
    let value = query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::invalid_query(format!("the query parameter {name} is required")))?;
    parse(value).map_err(|e| ApiError::invalid_query(e.to_string()))
}

// ---- video service ---------------------------------------------------------

/// `POST /generate-upload-url`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct VideoUploadUrlRequest {
    pub app_id: AppId,
    pub video_id: VideoId,
    #[cfg_attr(feature = "openapi", schema(value_type = VideoContentType))]
    pub content_type: String,
    /// Required: the file's size in bytes, at most `MAX_VIDEO_BYTES` (5 GiB
    /// unless configured otherwise; more is a 413). The upload URL accepts
    /// exactly this many bytes and is bound to `If-None-Match: *` (returned in
    /// `headers`; send it), so it writes the source once; a resumable
    /// session's parts add up to it.
    // The bound is `media::DEFAULT_MAX_VIDEO_BYTES` (a literal here; `openapi`'s tests compare them).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5368709120))]
    pub size: u64,
    /// True for a resumable (multipart) upload session instead of one
    /// presigned `PUT`: the answer is an `UploadSession` (Uppy's
    /// `@uppy/aws-s3` works with its `endpoint`).
    /// Null is the same as leaving it out (false), as for every optional field.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, default = false))]
    pub multipart: bool,
}

impl VideoUploadUrlRequest {
    /// The request, its `size` required and at most `max_bytes`
    /// ([`crate::media::required_size`]).
    pub fn from_json(body: &[u8], max_bytes: u64) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            video_id: f.required_id("video_id", VideoId::parse)?,
            content_type: f.required_str("content_type")?.to_owned(),
            size: crate::media::required_size(f.optional_u64("size")?, max_bytes)?,
            multipart: f.optional_bool("multipart")?.unwrap_or(false),
        })
    }
}

/// `POST /generate-upload-url` with `"multipart": true`: a resumable
/// upload session. The browser holds `upload_token` (inside `endpoint`),
/// never the API key; the token allows only this upload's calls: it starts
/// one upload, and completing or aborting it, or deleting the video,
/// revokes the token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    /// Always true.
    pub multipart: bool,
    pub upload_token: String,
    /// The Companion-compatible endpoint for `@uppy/aws-s3` (`{base}/uploads/{upload_token}`):
    /// `POST {endpoint}/s3/multipart`, `GET {endpoint}/s3/multipart/{uploadId}/{partNumber}?key=`,
    /// `GET {endpoint}/s3/multipart/{uploadId}?key=`, `POST {endpoint}/s3/multipart/{uploadId}/complete?key=`,
    /// `DELETE {endpoint}/s3/multipart/{uploadId}?key=`.
    pub endpoint: String,
    /// Where the upload lands; notify with it once complete.
    pub raw_key: String,
    pub size: u64,
    /// Every part but the last has exactly this many bytes (5 MiB-5 GiB).
    pub part_size: u64,
    /// How many parts (at most 10,000).
    pub parts: u64,
    /// RFC 3339; the token is refused after this (`UPLOAD_SESSION_TTL_S`, 6 h by default).
    pub expires_at: Timestamp,
}

/// `POST /uploads`: a direct upload of one video's file (Mux's direct
/// uploads): the browser uploads with the answer's token, and the upload
/// starts the video's job itself when it lands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct CreateUploadRequest {
    pub app_id: AppId,
    pub video_id: VideoId,
    #[cfg_attr(feature = "openapi", schema(value_type = VideoContentType))]
    pub content_type: String,
    /// Required: the file's size in bytes, as for `/generate-upload-url`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5368709120))]
    pub size: u64,
    /// True for a resumable (multipart) upload: the answer has an `endpoint`
    /// (Uppy's `@uppy/aws-s3`) instead of one presigned `url`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, default = false))]
    pub multipart: bool,
    /// Seconds the upload waits for its file before it is `timed_out`:
    /// 60 to 604800 (7 days), 3600 when left out.
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 604800, default = 3600))]
    pub timeout_s: Option<u64>,
    /// Where to send this video's signed webhooks, as `/notify-upload-complete` takes it.
    #[cfg_attr(feature = "openapi", schema(example = "https://api.example.com/hooks/video", max_length = 2048))]
    pub callback_url: Option<String>,
    /// The job's `require_signed_urls`, `encryption` and `download`, as
    /// `/notify-upload-complete` takes them.
    pub playback: PlaybackOptions,
    /// The job's `cover` and `preview`, as `/notify-upload-complete` takes them.
    pub extras: Extras,
}

impl CreateUploadRequest {
    /// The fields a create may carry; any other is refused.
    pub const FIELDS: &'static [&'static str] = &[
        "app_id",
        "video_id",
        "content_type",
        "size",
        "multipart",
        "timeout_s",
        "callback_url",
        "require_signed_urls",
        "encryption",
        "download",
        "codecs",
        "cover",
        "preview",
    ];

    /// The request, its `size` required and at most `max_bytes`.
    pub fn from_json(body: &[u8], max_bytes: u64) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(Self::FIELDS)?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            video_id: f.required_id("video_id", VideoId::parse)?,
            content_type: f.required_str("content_type")?.to_owned(),
            size: crate::media::required_size(f.optional_u64("size")?, max_bytes)?,
            multipart: f.optional_bool("multipart")?.unwrap_or(false),
            timeout_s: f.optional_u64("timeout_s")?,
            callback_url: f.optional_str("callback_url")?.map(str::to_owned),
            playback: f.playback_options()?,
            extras: f.extras()?,
        })
    }
}

/// An upload, as `POST /uploads`, `GET /uploads/{id}` and
/// `DELETE /uploads/{id}` answer it. The credentials (`token`, `url`,
/// `endpoint`) are in the creation's answer only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadView {
    /// `upl_<16 hex>.<app_id>.<video_id>`.
    #[cfg_attr(feature = "openapi", schema(example = "upl_3f2a9c01d4e5b6a7.yourAppId.yourVideoId"))]
    pub id: String,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub status: UploadStatus,
    pub timeout_s: u64,
    pub created_at: Timestamp,
    /// RFC 3339: a waiting upload becomes `timed_out` then, and its token is revoked.
    pub expires_at: Timestamp,
    pub size: u64,
    pub content_type: String,
    pub multipart: bool,
    /// The job its file started (`asset_created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// `GET /job-status` of the video (`asset_created`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status_url: Option<String>,
    /// Why it errored (`errored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<UploadError>,
    /// The browser's credential (creation only): single-use and revocable.
    /// For a single `PUT`, send it as `Authorization: Bearer` to `complete_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Single `PUT` (creation only): the presigned URL, valid until `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Single `PUT` (creation only): the headers the `PUT` must carry exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Single `PUT` (creation only): `POST` here with the token once the `PUT` succeeded; the job starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_url: Option<String>,
    /// Resumable (creation only): the Companion-compatible endpoint for `@uppy/aws-s3`;
    /// its complete call starts the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
}

impl UploadView {
    /// The public view of `record` (no credentials), with `base` for the job's status URL.
    pub fn of(record: &UploadRecord, app_id: &AppId, video_id: &VideoId, base: &str) -> Self {
        let job_status_url = record
            .job_id
            .as_ref()
            .map(|_| format!("{}/job-status?app_id={app_id}&video_id={video_id}", base.trim_end_matches('/')));
        UploadView {
            id: record.id.clone(),
            app_id: app_id.clone(),
            video_id: video_id.clone(),
            status: record.status,
            timeout_s: record.timeout_s,
            created_at: record.created_at,
            expires_at: record.expires_at,
            size: record.size,
            content_type: record.content_type.clone(),
            multipart: record.multipart,
            job_id: record.job_id.clone(),
            job_status_url,
            error: record.error.clone(),
            token: None,
            url: None,
            headers: None,
            complete_url: None,
            endpoint: None,
            part_size: None,
            parts: None,
        }
    }
}

/// A presigned `PUT`: where to send the bytes and with which headers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedPut {
    /// Presigned S3/R2 URL: `PUT` the file here, with `headers`. No API key.
    pub upload_url: String,
    /// Always `PUT`.
    #[cfg_attr(feature = "openapi", schema(value_type = PutMethod))]
    pub method: String,
    /// Headers the upload must carry exactly (they are signed): the content
    /// type and `If-None-Match: *`. `Content-Length` is signed too; it is
    /// left out here because HTTP clients set it from the body (and browsers
    /// refuse to let code set it).
    pub headers: BTreeMap<String, String>,
    /// RFC 3339; the URL is refused after this.
    pub expires_at: Timestamp,
}

impl PresignedPut {
    /// The client-facing form of a presigned `PUT`.
    pub fn from_presigned(p: crate::http::sigv4::PresignedRequest) -> Self {
        PresignedPut {
            upload_url: p.url,
            method: p.method,
            headers: p.headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).collect(),
            expires_at: p.expires_at,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoUploadUrlResponse {
    #[serde(flatten)]
    pub put: PresignedPut,
    /// Where the upload is stored; send it to `/notify-upload-complete`.
    #[cfg_attr(feature = "openapi", schema(example = "raw/yourAppId/yourVideoId/source.mp4"))]
    pub raw_key: String,
}

/// `POST /notify-upload-complete`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyRequest {
    pub app_id: AppId,
    pub video_id: VideoId,
    /// The `raw_key` `/generate-upload-url` returned:
    /// `raw/{app_id}/{video_id}/source.{ext}`, with this request's `app_id`
    /// and `video_id` and the extension of its `content_type`; anything else is a 400.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "raw/yourAppId/yourVideoId/source.mp4",
            pattern = r"^raw/[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,64}/source\.(mp4|mov|webm|mkv|ogv)$"
        )
    )]
    pub raw_key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = VideoContentType))]
    pub content_type: String,
    /// Where to send this job's signed webhooks, besides the app's own
    /// destination: `https` only, never a private or loopback address.
    #[cfg_attr(feature = "openapi", schema(example = "https://api.example.com/hooks/video", max_length = 2048))]
    pub callback_url: Option<String>,
    /// `require_signed_urls`, `encryption` and `download`: in the body
    /// beside the other fields (the document lists them there).
    pub playback: PlaybackOptions,
    /// `codecs`, `cover` and `preview`: made besides the H.264 ladder.
    /// Asking for other ones than the video's job was made with runs the
    /// job again.
    pub extras: Extras,
}

impl NotifyRequest {
    /// The fields a notify may carry; any other is refused, so a misspelt
    /// `callback_url` is not silently ignored.
    pub const FIELDS: &'static [&'static str] = &[
        "app_id",
        "video_id",
        "raw_key",
        "content_type",
        "callback_url",
        "require_signed_urls",
        "encryption",
        "download",
        "codecs",
        "cover",
        "preview",
    ];

    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(Self::FIELDS)?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            video_id: f.required_id("video_id", VideoId::parse)?,
            raw_key: f.required_str("raw_key")?.to_owned(),
            content_type: f.required_str("content_type")?.to_owned(),
            callback_url: f.optional_str("callback_url")?.map(str::to_owned),
            playback: f.playback_options()?,
            extras: f.extras()?,
        })
    }
}

/// `POST /cancel-job`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct CancelRequest {
    pub app_id: AppId,
    pub video_id: VideoId,
}

impl CancelRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            video_id: f.required_id("video_id", VideoId::parse)?,
        })
    }
}

/// A rung as `/job-status` shows it: the rung as the transcoder reported
/// it, and the URL of its media playlist.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionView {
    #[serde(flatten)]
    pub rendition: Rendition,
    /// The rendition's media playlist.
    pub url: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThumbnailsView {
    pub poster: String,
    pub sprite: String,
    pub vtt: String,
    pub meta: ThumbnailMeta,
}

/// `GET /job-status` (and the body of `/notify-upload-complete`). `error` and
/// `last_error` are the public forms of the job's failure messages
/// ([`crate::video::job::public_failure_message`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: JobId,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub status: JobStatus,
    pub progress: u8,
    /// What the transcoder is doing: probing, encoding, finishing...
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub stage: Option<String>,
    /// Why the job failed (status `error`), in its public form: an
    /// uploader's message as written, a fault on our side as a generic sentence.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub error: Option<String>,
    /// Why the last attempt failed (kept while a retry is queued), in the same public form as `error`.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_error: Option<String>,
    /// RFC 3339 time of the last sign of life from the transcoder.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub heartbeat: Option<Timestamp>,
    pub attempts: u32,
    pub max_attempts: u32,
    /// True as soon as a player can start (long before done).
    pub playable: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub finished_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub duration_s: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub has_audio: Option<bool>,
    pub renditions: Vec<RenditionView>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub thumbnails: Option<ThumbnailsView>,
    /// The master playlist once playable.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub playback_url: Option<String>,
    /// The poster image once playable.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub poster_url: Option<String>,
    /// The MP4 download, present when the video asked for one (`download` at notify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadView>,
    /// The cover (`cover` at notify), once the job is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<CoverView>,
    /// The animated preview (`preview` at notify), once the job is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewView>,
    /// The caption tracks (`PUT /videos/{app_id}/{video_id}/captions/{language}`),
    /// each an HLS subtitle rendition of the master playlist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captions: Vec<CaptionView>,
    /// Delivery of the job's webhooks: `pending`, `delivered` or `failed`.
    /// Absent when the job has no webhook destination, and always on public
    /// routes (only API-key answers and webhooks carry the `callback_*` fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_status: Option<CallbackStatus>,
    /// Delivery attempts made for the latest webhook event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_attempts: Option<u32>,
    /// Why the last failed attempt failed (`HTTP 500`, a timeout...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_last_error: Option<String>,
}

/// A video's MP4 download as `/job-status` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadView {
    pub status: DownloadStatus,
    /// The rung remuxed (`720p`), once known.
    #[cfg_attr(feature = "openapi", schema(required = true, example = "720p"))]
    pub rung: Option<String>,
    /// The file's bytes, once ready.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub size: Option<u64>,
    /// `GET /download?app_id=&video_id=` once ready; null for a video that
    /// requires signed URLs (see `note`).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub url: Option<String>,
    /// For a video that requires signed URLs: how to download it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The cover as `/job-status` shows it: its two files and the frame used.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverView {
    /// `cover.jpg` through the HLS route.
    pub jpg: String,
    /// `cover.webp` through the HLS route.
    pub webp: String,
    #[serde(flatten)]
    pub meta: CoverMeta,
}

/// The animated preview as `/job-status` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewView {
    /// `preview.webp` or `preview.gif` through the HLS route.
    pub url: String,
    #[serde(flatten)]
    pub meta: PreviewMeta,
}

/// What a video that requires signed URLs says instead of a download URL.
pub const SIGNED_DOWNLOAD_NOTE: &str =
    "this video requires signed URLs: download it with GET /download?token={token}, \
     a playback token whose claims carry \"downloadable\": true (mint one with POST /playback-tokens and \
     downloadable: true, or sign one with a key from /signing-keys)";

impl DownloadView {
    /// `job`'s download, or `None` when it did not ask for one.
    pub fn of(job: &Job, public_base: &str) -> Option<DownloadView> {
        let state = job.download_state()?;
        let signed = job.playback.require_signed_urls;
        let url = (state.status == DownloadStatus::Ready && !signed).then(|| {
            format!("{}/download?app_id={}&video_id={}", public_base.trim_end_matches('/'), job.app_id, job.video_id)
        });
        Some(DownloadView {
            status: state.status,
            rung: state.rung,
            size: state.size,
            url,
            note: signed.then(|| SIGNED_DOWNLOAD_NOTE.to_owned()),
        })
    }
}

/// The public URL of an output file: `{base}/` + its object key.
pub fn hls_url(public_base: &str, job: &Job, output: &OutputId, file: HlsFile) -> String {
    let key = ObjectKey::Hls { app: job.app_id.clone(), video: job.video_id.clone(), output: output.clone(), file };
    format!("{}/{key}", public_base.trim_end_matches('/'))
}

impl JobView {
    /// What anyone with the ids sees of `job` (public routes, `/job-events`);
    /// `public_base` is the video service's origin. Never the webhook
    /// delivery (`callback_*`): whether and how a tenant's receiver fails is
    /// the tenant's business ([`JobView::with_delivery`]).
    pub fn of(job: &Job, public_base: &str) -> JobView {
        JobView {
            callback_status: None,
            callback_attempts: None,
            callback_last_error: None,
            ..Self::with_delivery(job, public_base)
        }
    }

    /// [`JobView::of`] with the delivery of the job's webhooks, for the
    /// API-key routes and the webhooks themselves.
    pub fn with_delivery(job: &Job, public_base: &str) -> JobView {
        let playable_output = job.output_id.as_ref().filter(|_| job.playable);
        let url = |file: HlsFile| playable_output.map(|o| hls_url(public_base, job, o, file));
        let result: Option<&JobResult> = job.result.as_ref();
        let renditions = match (result, playable_output) {
            (Some(r), Some(o)) => r
                .renditions
                .iter()
                .map(|x| RenditionView {
                    rendition: x.clone(),
                    url: crate::keys::RungName::parse(&x.name)
                        .map(|rung| hls_url(public_base, job, o, HlsFile::Rung(rung, crate::keys::RungFile::Playlist)))
                        .unwrap_or_default(),
                })
                .collect(),
            _ => vec![],
        };
        let thumbnails = match (result.and_then(|r| r.thumbnails), playable_output) {
            (Some(meta), Some(o)) => Some(ThumbnailsView {
                poster: hls_url(public_base, job, o, HlsFile::Poster),
                sprite: hls_url(public_base, job, o, HlsFile::Sprite),
                vtt: hls_url(public_base, job, o, HlsFile::ThumbnailsVtt),
                meta,
            }),
            _ => None,
        };
        JobView {
            job_id: job.job_id.clone(),
            app_id: job.app_id.clone(),
            video_id: job.video_id.clone(),
            status: job.status,
            progress: job.progress,
            stage: job.stage.clone(),
            // Never the stored text itself: it may carry internals (storage keys, panic text).
            error: job.public_error(),
            last_error: job.public_last_error(),
            heartbeat: job.heartbeat_at,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            playable: job.playable,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            duration_s: result.map(|r| r.duration_s),
            has_audio: result.map(|r| r.has_audio),
            renditions,
            thumbnails,
            playback_url: url(HlsFile::Master),
            poster_url: url(HlsFile::Poster),
            download: DownloadView::of(job, public_base),
            cover: match (result.and_then(|r| r.cover), playable_output) {
                (Some(meta), Some(o)) => Some(CoverView {
                    jpg: hls_url(public_base, job, o, HlsFile::Cover(CoverFormat::Jpeg)),
                    webp: hls_url(public_base, job, o, HlsFile::Cover(CoverFormat::Webp)),
                    meta,
                }),
                _ => None,
            },
            preview: match (result.and_then(|r| r.preview), playable_output) {
                (Some(meta), Some(o)) => {
                    Some(PreviewView { url: hls_url(public_base, job, o, HlsFile::Preview(meta.format)), meta })
                }
                _ => None,
            },
            captions: job
                .captions
                .iter()
                .map(|t| CaptionView {
                    url: playable_output.map(|o| {
                        hls_url(
                            public_base,
                            job,
                            o,
                            HlsFile::Subtitles(t.language.clone(), crate::keys::SubtitleFile::Playlist),
                        )
                    }),
                    track: t.clone(),
                })
                .collect(),
            callback_status: job.callback.as_ref().map(|c| c.status),
            callback_attempts: job.callback.as_ref().map(|c| c.attempts),
            callback_last_error: job.callback.as_ref().and_then(|c| c.last_error.clone()),
        }
    }
}

use crate::video::captions::CaptionTrack;

/// `GET /videos/{app_id}/{video_id}/captions`, and what a delete leaves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionList {
    pub captions: Vec<CaptionView>,
}

/// A caption track in `/job-status`: the track, and its subtitle playlist once the video is playable.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionView {
    #[serde(flatten)]
    pub track: CaptionTrack,
    /// The subtitle rendition's playlist (segmented WebVTT), once the video is playable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `POST /cancel-job`: the job after the request, and whether anything was stopped.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelResponse {
    #[serde(flatten)]
    pub job: JobView,
    /// False when the job had already ended (done, or failed).
    pub canceled: bool,
}

/// `POST /events/token`: a short-lived token that lets a browser's
/// `EventSource` read one app's `/events` (`media_core::video::stream_token`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTokenRequest {
    pub app_id: AppId,
    /// Seconds the token is accepted for, 1 to 3600 (default 600). It is
    /// checked when a stream opens: an open stream is not cut at the expiry.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600, default = 600))]
    pub ttl_s: Option<u64>,
}

impl StreamTokenRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(&["app_id", "ttl_s"])?;
        let ttl_s =
            match f.present("ttl_s") {
                None => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ApiError::invalid_field(format!("ttl_s must be a whole number of seconds, not {v}"))
                })?),
            };
        Ok(Self { app_id: f.required_id("app_id", AppId::parse)?, ttl_s })
    }
}

/// The answer of `POST /events/token`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamTokenResponse {
    /// Reads this app's `/events` (as `?stream_token=`) until `expires_at`; nothing else.
    pub token: String,
    /// RFC 3339.
    pub expires_at: Timestamp,
    /// `/events` with `app_id` and the token, for `new EventSource(events_url)`.
    /// To resume after an error, mint a new token and add `&last_event_id=`.
    pub events_url: String,
}

/// What `DELETE /videos` removed. Zeros and `false` when there was
/// nothing left to remove (a repeated delete).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedVideo {
    /// Objects deleted under `raw/{app_id}/{video_id}/` and `hls/{app_id}/{video_id}/`
    /// (the source, every attempt's outputs, thumbnails).
    pub objects: u64,
    /// Whether the video had a job (canceled if it was running; its state and events are gone).
    pub job: bool,
    /// Whether the published playback record of a done job was removed.
    pub playback_record: bool,
}

/// `DELETE /videos?app_id=&video_id=`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVideoResponse {
    pub app_id: AppId,
    pub video_id: VideoId,
    pub deleted: DeletedVideo,
    /// RFC 3339 time of one more sweep of the video's outputs, after the
    /// lease of a job that was running has surely ended (its transcoder
    /// stops at its next heartbeat, which is refused); `null` when no job
    /// was running or waiting.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub final_sweep_at: Option<Timestamp>,
}

/// What `DELETE /images` removed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedImage {
    /// Objects deleted: the original and its stored variants
    /// (`images/{app_id}/{image_id}/...`).
    pub objects: u64,
    /// Whether the image's metadata record was removed.
    pub record: bool,
}

/// `DELETE /images?app_id=&image_id=`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteImageResponse {
    pub app_id: AppId,
    pub image_id: ImageId,
    pub deleted: DeletedImage,
}

/// `GET /playback-url`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackUrlResponse {
    /// The HLS master playlist.
    pub url: String,
    pub status: JobStatus,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub poster_url: Option<String>,
}

/// `GET /playback-url` before the video is playable (409): the error, and
/// where the job is, so a client knows whether to keep polling.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotPlayableResponse {
    #[serde(flatten)]
    pub error: ErrorBody,
    pub status: JobStatus,
    pub progress: u8,
}

/// `GET /health` of both services.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub service: String,
    /// Always `ok`.
    #[cfg_attr(feature = "openapi", schema(value_type = HealthStatus))]
    pub status: String,
    pub version: String,
}

impl Health {
    /// The answer of a service that is up.
    pub fn ok(service: &str, version: &str) -> Health {
        Health { service: service.to_owned(), status: "ok".to_owned(), version: version.to_owned() }
    }
}

// ---- image service ---------------------------------------------------------

/// `POST /generate-image-upload-url`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUploadUrlRequest {
    pub app_id: AppId,
    /// Optional: a random, collision-safe id is chosen when it is left out (or null).
    pub image_id: Option<ImageId>,
    #[cfg_attr(feature = "openapi", schema(value_type = ImageContentType))]
    pub content_type: String,
    /// Required: the file's size in bytes, at most `MAX_IMAGE_BYTES` (25 MiB
    /// unless configured otherwise; more is a 413). The upload URL accepts
    /// exactly this many bytes and is bound to `If-None-Match: *` (returned in
    /// `headers`; send it), so it writes the image once and cannot overwrite it.
    // The bound is `media::DEFAULT_MAX_IMAGE_BYTES` (a literal here; `openapi`'s tests compare them).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 26214400))]
    pub size: u64,
    /// `true`: the image is served (original and variants) only to signed
    /// URLs (`exp`, `sig`; see `POST /url-signing-keys`). Default `false`
    /// (left out or null); changed later with
    /// `POST /images/{app_id}/{image_id}/access`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, default = false))]
    pub require_signed_urls: bool,
}

impl ImageUploadUrlRequest {
    /// The request, its `size` required and at most `max_bytes`
    /// ([`crate::media::required_size`]).
    pub fn from_json(body: &[u8], max_bytes: u64) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        Ok(Self {
            app_id: f.required_id("app_id", AppId::parse)?,
            image_id: f.optional_id("image_id", ImageId::parse)?,
            content_type: f.required_str("content_type")?.to_owned(),
            size: crate::media::required_size(f.optional_u64("size")?, max_bytes)?,
            require_signed_urls: f.optional_bool("require_signed_urls")?.unwrap_or(false),
        })
    }
}

/// Where an image can be fetched.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLocation {
    /// The object key (`images/{app_id}/{image_id}`).
    pub key: String,
    /// The image's id (the one sent, or the random one chosen).
    pub image_id: String,
    /// The original, as uploaded.
    pub asset_url: String,
    /// A resized variant made by the service (`/images/{app_id}/{image_id}/{options}`,
    /// the configured width and quality, `f=auto`: AVIF or WebP for clients that
    /// take them, else JPEG or PNG), stored after the first request.
    pub transform_url: String,
}

/// The path under which the image service serves originals: the rest of
/// the path is the object key (`/assets/images/{app_id}/{image_id}`).
pub const IMAGE_ASSETS_PREFIX: &str = "/assets/";

impl ImageLocation {
    /// Where image `image` of `app` is found on the image service at
    /// `public_base`: the original under [`IMAGE_ASSETS_PREFIX`], and its
    /// transformation URL with the configured defaults.
    pub fn of(public_base: &str, app: &AppId, image: &ImageId, transform: &TransformDefaults) -> Self {
        let key = ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string();
        let path = format!("{IMAGE_ASSETS_PREFIX}{key}");
        ImageLocation {
            asset_url: format!("{}{path}", public_base.trim_end_matches('/')),
            transform_url: crate::image::variant::variant_url(public_base, app, image, &transform.options()),
            image_id: image.to_string(),
            key,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUploadUrlResponse {
    #[serde(flatten)]
    pub put: PresignedPut,
    #[serde(flatten)]
    pub location: ImageLocation,
}

/// What the image service records of a stored image (in KV, and in `/upload`'s answer).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The type the bytes were checked to be.
    #[cfg_attr(feature = "openapi", schema(value_type = CheckedImageType))]
    pub content_type: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub size: u64,
    /// Pixels, read from the image header (null if the header could not be read).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub width: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub height: Option<u32>,
    pub uploaded_at: Timestamp,
    /// Served only to signed URLs (`exp`, `sig`): see docs/image-api.md#private-images.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub require_signed_urls: bool,
}

/// The KV record of a stored image: its metadata, and the version of the
/// object that was checked (its bare entity tag). `/assets/` serves only
/// that version, so an object replaced after its check (a second `PUT` to a
/// live presigned URL) is never served. Records written before the tag was
/// kept have none, and their object is served as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    #[serde(flatten)]
    pub meta: ImageMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// How many leading bytes of a presigned upload are read to check it before
/// its first serve: enough for every accepted type's signature and, for all
/// but JPEGs with large metadata, its dimensions.
pub const IMAGE_SNIFF_BYTES: u64 = 64 * 1024;

/// Why a stored object may not be served as an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefusal {
    #[error("it is {size} bytes, over the {max}-byte limit for images")]
    TooLarge { size: u64, max: u64 },
    #[error("it was stored as {stored:?}, which is not an accepted image type")]
    NotAnImageType { stored: String },
    #[error("its bytes are {actual}, not the {claimed} it was stored as")]
    WrongBytes { claimed: &'static str, actual: String },
}

impl ImageRecord {
    /// The check of an object uploaded straight to storage (a presigned
    /// `PUT`, which the service never saw), before its first serve: its size
    /// within `max`, an accepted stored type, and leading bytes (`head`, the
    /// first [`IMAGE_SNIFF_BYTES`] or all of a smaller object) of that type.
    /// The record to keep on success; `etag` is the object's bare tag and
    /// `now` the time of the check.
    pub fn vet(
        stored_type: Option<&str>,
        size: u64,
        head: &[u8],
        max: u64,
        etag: &str,
        now: Timestamp,
    ) -> Result<ImageRecord, ImageRefusal> {
        if size > max {
            return Err(ImageRefusal::TooLarge { size, max });
        }
        let stored = stored_type.unwrap_or("");
        let claimed = ImageType::from_content_type(crate::http::media_type(stored))
            .ok_or_else(|| ImageRefusal::NotAnImageType { stored: stored.to_owned() })?;
        if ImageType::sniff(head) != Some(claimed) {
            return Err(ImageRefusal::WrongBytes { claimed: claimed.content_type(), actual: describe_bytes(head) });
        }
        let dims = image_dimensions(claimed, head);
        Ok(ImageRecord {
            meta: ImageMeta {
                content_type: claimed.content_type().to_owned(),
                size,
                width: dims.map(|d| d.width),
                height: dims.map(|d| d.height),
                uploaded_at: now,
                require_signed_urls: false,
            },
            etag: Some(etag.to_owned()),
        })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUploadResponse {
    #[serde(flatten)]
    pub location: ImageLocation,
    #[serde(flatten)]
    pub meta: ImageMeta,
}

// ---- the transcoder's internal API -------------------------------------------

/// `POST /internal/jobs/lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Names the transcoder in logs.
    pub worker: String,
    /// How long to wait for a job, at most [`MAX_LEASE_WAIT_MS`].
    #[serde(default)]
    pub wait_ms: u64,
    /// The size classes this transcoder takes (`JOB_CLASSES`); absent, every class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<SizeClass>>,
    /// This transcoder runs chunk specs (`JobSpec.chunk`): chunk tasks are
    /// offered only to such transcoders. Absent (older ones): false.
    #[serde(default)]
    pub chunks: bool,
}

/// `POST /internal/jobs/withdraw`: a stopping transcoder takes back its
/// waiting lease requests, so no job is granted to it after it has gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawRequest {
    /// The `worker` its lease requests named.
    pub worker: String,
}

/// The answer to [`WithdrawRequest`]: how many waiting requests were ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawResponse {
    pub withdrawn: u64,
}

/// The longest a lease request is held open.
pub const MAX_LEASE_WAIT_MS: u64 = 25_000;

/// `POST /internal/jobs/lease` answers `{"job": null}` when nothing came within the wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub job: Option<JobSpec>,
}

/// The video a transcoder's call is about, as its [`JobSpec`] named it:
/// the service then goes straight to that video's job object instead of
/// looking the job up in its queue shard. Optional: a call without it (an
/// older transcoder) is looked up. The video's object still checks the job
/// id and the lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVideo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<VideoId>,
}

impl JobVideo {
    pub fn of(spec: &JobSpec) -> Self {
        Self { app_id: Some(spec.app_id.clone()), video_id: Some(spec.video_id.clone()) }
    }

    /// Both ids, when the call named them.
    pub fn ids(&self) -> Option<(AppId, VideoId)> {
        Some((self.app_id.clone()?, self.video_id.clone()?))
    }
}

/// `POST /internal/jobs/{job_id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub lease_id: LeaseId,
    #[serde(flatten)]
    pub video: JobVideo,
    pub progress: u8,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub playable: bool,
    /// A chunk task: how many of the chunk's own segments (counted from its
    /// `first_seq`) are uploaded on every video rung, a contiguous prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_segments: Option<u32>,
    /// Task 0 of a chunked job with audio: the audio rendition's segments
    /// uploaded (from seq 0), a contiguous prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_audio_segments: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub lease_expires_at: Timestamp,
    /// The job's video, so the Worker can drop its cached public read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_id: Option<VideoId>,
}

/// `POST /internal/jobs/{job_id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub lease_id: LeaseId,
    #[serde(flatten)]
    pub video: JobVideo,
    /// The whole ladder (a whole-job lease). A chunk task sends `chunk`
    /// only; the service assembles the result from every task's report.
    #[serde(default)]
    pub result: JobResult,
    /// A chunk task's report (used when the lease is a task's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<ChunkReport>,
}

/// `POST /internal/jobs/{job_id}/plan`: the holder of a whole-job lease
/// whose probed source is long enough asks to split it. Its lease becomes
/// task 0 (same lease id, same output); tasks 1.. are queued at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub lease_id: LeaseId,
    #[serde(flatten)]
    pub video: JobVideo,
    /// `geometry`, `t0_s`, `duration_s`, `has_audio`, `rungs`.
    #[serde(flatten)]
    pub source: ChunkSource,
}

/// The answer to a [`PlanRequest`]: the chunk the caller's lease now runs,
/// or `None` to go on single-pass (too short to split, chunking off, or a
/// job that stays single-pass).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    pub chunk: Option<ChunkSpec>,
}

/// `POST /internal/jobs/{job_id}/release`: give back a job just leased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub lease_id: LeaseId,
    #[serde(flatten)]
    pub video: JobVideo,
}

/// `POST /internal/jobs/{job_id}/fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailRequest {
    pub lease_id: LeaseId,
    #[serde(flatten)]
    pub video: JobVideo,
    pub message: String,
    pub retryable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::job::{Rendition, RetryPolicy, SourceUpload};
    use crate::video::ladder::LadderOptions;

    #[test]
    fn stream_token_requests_take_an_app_and_a_life() {
        let r = StreamTokenRequest::from_json(br#"{"app_id":"a"}"#).unwrap();
        assert_eq!((r.app_id.as_str(), r.ttl_s), ("a", None));
        let r = StreamTokenRequest::from_json(br#"{"app_id":"a","ttl_s":60}"#).unwrap();
        assert_eq!(r.ttl_s, Some(60));
        for (body, want) in [
            (r#"{}"#, "app_id is required"),
            (r#"{"app_id":"a","ttl_s":-1}"#, "ttl_s must be a whole number of seconds, not -1"),
            (r#"{"app_id":"a","ttl_s":"60"}"#, "ttl_s must be a whole number of seconds"),
            (r#"{"app_id":"a","scope":"all"}"#, "unknown field \"scope\""),
        ] {
            let e = StreamTokenRequest::from_json(body.as_bytes()).unwrap_err();
            assert!(e.status() == 400 && e.message.starts_with(want), "{body}: {}", e.message);
        }
    }

    #[test]
    fn field_errors_name_the_field() {
        let cases: &[(&str, u16, &str)] = &[
            ("", 400, "the request body is empty; send a JSON object"),
            ("[1]", 400, "the request body must be a JSON object"),
            ("{\"app_id\":", 400, "the request body is not valid JSON: EOF while parsing"),
            ("{}", 400, "app_id is required"),
            ("{\"app_id\":null}", 400, "app_id is required"),
            ("{\"app_id\":5}", 400, "app_id must be a string, not a number"),
            ("{\"app_id\":\"a/b\"}", 400, "app_id contains '/'"),
            ("{\"app_id\":\"a\"}", 400, "video_id is required"),
            ("{\"app_id\":\"a\",\"video_id\":\"v\"}", 400, "content_type is required"),
            (
                "{\"app_id\":\"a\",\"video_id\":\"v\",\"content_type\":\"video/mp4\",\"size\":-1}",
                400,
                "size must be a whole number of bytes, not -1",
            ),
            (
                "{\"app_id\":\"a\",\"video_id\":\"v\",\"content_type\":\"video/mp4\",\"size\":\"9\"}",
                400,
                "size must be a number, not a string",
            ),
            // Clients of the first API left size out: the 400 says what to send.
            (
                "{\"app_id\":\"a\",\"video_id\":\"v\",\"content_type\":\"video/mp4\"}",
                400,
                "size is required: the file's length in bytes, at most 100 (100 bytes)",
            ),
            ("{\"app_id\":\"a\",\"video_id\":\"v\",\"content_type\":\"video/mp4\",\"size\":101}", 413, "size is"),
        ];
        for (body, status, msg) in cases {
            let e = VideoUploadUrlRequest::from_json(body.as_bytes(), 100).unwrap_err();
            assert_eq!(e.status(), *status, "{body}");
            assert!(e.message.starts_with(msg), "{body}: {}", e.message);
        }
        let ok = VideoUploadUrlRequest::from_json(
            br#"{"app_id":"a","video_id":"v","content_type":"video/mp4","size":100,"extra":1}"#,
            100,
        )
        .unwrap();
        assert_eq!((ok.app_id.as_str(), ok.size), ("a", 100));
    }

    #[test]
    fn image_id_is_optional() {
        let r =
            ImageUploadUrlRequest::from_json(br#"{"app_id":"a","content_type":"image/png","size":10}"#, 10).unwrap();
        assert_eq!((r.image_id, r.size), (None, 10));
        let e = ImageUploadUrlRequest::from_json(br#"{"app_id":"a","image_id":"x y","content_type":"image/png"}"#, 10)
            .unwrap_err();
        assert!(e.message.starts_with("image_id contains ' '"));
    }

    #[test]
    fn an_image_presign_needs_its_size() {
        for body in
            [r#"{"app_id":"a","content_type":"image/png"}"#, r#"{"app_id":"a","content_type":"image/png","size":null}"#]
        {
            let e = ImageUploadUrlRequest::from_json(body.as_bytes(), 100).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert!(
                e.message.starts_with("size is required: the file's length in bytes, at most 100"),
                "{}",
                e.message
            );
        }
        let e = ImageUploadUrlRequest::from_json(br#"{"app_id":"a","content_type":"image/png","size":101}"#, 100);
        assert_eq!(e.unwrap_err().status(), 413);
    }

    #[test]
    fn image_locations() {
        let (app, image) = (AppId::parse("app1").unwrap(), ImageId::parse("img_9").unwrap());
        let loc = ImageLocation::of(
            "https://assets.example.com/",
            &app,
            &image,
            &TransformDefaults { width: 800, quality: 70 },
        );
        assert_eq!(loc.key, "images/app1/img_9");
        assert_eq!(loc.image_id, "img_9");
        assert_eq!(loc.asset_url, "https://assets.example.com/assets/images/app1/img_9");
        assert_eq!(loc.transform_url, "https://assets.example.com/images/app1/img_9/w=800,q=70,f=auto");
        // The asset path is the prefix and the key, which the asset route parses back.
        let path = loc.asset_url.strip_prefix("https://assets.example.com").unwrap();
        assert_eq!(
            ObjectKey::parse(path.strip_prefix(IMAGE_ASSETS_PREFIX).unwrap()),
            Some(ObjectKey::Image { app, image })
        );
    }

    #[test]
    fn query_ids() {
        let q = vec![("app_id".to_owned(), "a".to_owned()), ("video_id".to_owned(), "../x".to_owned())];
        assert_eq!(query_id(&q, "app_id", AppId::parse).unwrap().as_str(), "a");
        let e = query_id(&q, "video_id", VideoId::parse).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::InvalidQuery, "video_id contains '.'; use only letters, digits, '-' and '_'")
        );
        assert_eq!(
            query_id(&[], "app_id", AppId::parse).unwrap_err().message,
            "the query parameter app_id is required"
        );
    }

    #[test]
    fn response_field_names_are_the_contract() {
        let put = PresignedPut {
            upload_url: "u".into(),
            method: "PUT".into(),
            headers: BTreeMap::from([("Content-Type".into(), "video/mp4".into())]),
            expires_at: Timestamp::from_secs(1_700_000_000),
        };
        let v = serde_json::to_value(VideoUploadUrlResponse { put: put.clone(), raw_key: "raw/a/v/source.mp4".into() })
            .unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["expires_at", "headers", "method", "raw_key", "upload_url"]);
        let loc =
            ImageLocation { key: "k".into(), image_id: "i".into(), asset_url: "a".into(), transform_url: "t".into() };
        let v = serde_json::to_value(ImageUploadUrlResponse { put, location: loc }).unwrap();
        for k in ["upload_url", "key", "asset_url", "transform_url", "expires_at", "method", "headers"] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn presigned_images_are_vetted_before_their_first_serve() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x02\x80\0\0\x01\xe0\x08\x02\0\0\0";
        let now = || Timestamp::parse_rfc3339("2026-11-22T10:00:00.000Z").unwrap();
        let ok = ImageRecord::vet(Some("image/png"), 2146, png, 1000, "e", now());
        assert_eq!(ok.unwrap_err(), ImageRefusal::TooLarge { size: 2146, max: 1000 });
        let rec = ImageRecord::vet(Some("image/png"), 2146, png, 25 << 20, "e1", now()).unwrap();
        assert_eq!(
            (rec.meta.content_type.as_str(), rec.meta.width, rec.meta.height, rec.etag.as_deref()),
            ("image/png", Some(640), Some(480), Some("e1"))
        );
        let mut html_tail = vec![7u8; 64];
        html_tail.extend_from_slice(b"<html><script>alert(1)</script>");
        let cases: &[(Option<&str>, &[u8], &str)] = &[
            (Some("image/png"), &html_tail, "its bytes are"),
            (Some("image/png"), b"<!doctype html><html>", "its bytes are"),
            (Some("image/jpeg"), png, "its bytes are a PNG image, not the image/jpeg"),
            (Some("text/html"), png, "not an accepted image type"),
            (Some("image/svg+xml"), b"<svg/>", "not an accepted image type"),
            (None, png, "not an accepted image type"),
            (Some("image/png"), b"", "its bytes are empty"),
        ];
        for (stored, head, want) in cases {
            let e = ImageRecord::vet(*stored, 100, head, 25 << 20, "e", now()).unwrap_err();
            assert!(e.to_string().contains(want), "{stored:?}: {e}");
        }
        // The record keeps the /upload answer's fields, with the tag beside them.
        let v = serde_json::to_value(&rec).unwrap();
        assert_eq!((v["content_type"].as_str(), v["etag"].as_str()), (Some("image/png"), Some("e1")));
        let old: ImageRecord = serde_json::from_str(
            r#"{"content_type":"image/png","size":1,"width":null,"height":null,"uploaded_at":"2026-11-22T10:00:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!(old.etag, None);
    }

    #[test]
    fn job_spec_source_etag_is_optional_on_the_wire() {
        let spec = JobSpec {
            job_id: JobId::parse("job_1").unwrap(),
            app_id: AppId::parse("a").unwrap(),
            video_id: VideoId::parse("v").unwrap(),
            attempt: 1,
            lease_id: LeaseId::parse("L").unwrap(),
            lease_expires_at: Timestamp::from_secs(1_700_000_000),
            heartbeat_interval_ms: 2000,
            source_key: "raw/a/v/source.mp4".into(),
            source_size: 5,
            source_etag: Some("\"abc\"".into()),
            content_type: "video/mp4".into(),
            output_id: OutputId::parse("o1").unwrap(),
            output_prefix: "hls/a/v/o1/".into(),
            ladder: LadderOptions::default(),
            playback: Default::default(),
            extras: Default::default(),
            chunk: None,
            chunk_from_s: None,
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["source_etag"], "\"abc\"");
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("source_etag");
        let back: JobSpec = serde_json::from_value(old).unwrap();
        assert_eq!(back.source_etag, None, "a lease from before the field still parses");
        let none = serde_json::to_value(JobSpec { source_etag: None, ..spec }).unwrap();
        assert!(none.get("source_etag").is_none(), "omitted when unknown");
    }

    #[test]
    fn job_view_shows_urls_only_once_playable() {
        let p = RetryPolicy::default();
        let t0 = Timestamp::from_secs(1_700_000_000);
        let mut job = Job::new(
            JobId::parse("job_1").unwrap(),
            AppId::parse("app").unwrap(),
            VideoId::parse("vid").unwrap(),
            SourceUpload {
                raw_key: "raw/app/vid/source.mp4".into(),
                content_type: "video/mp4".into(),
                size: 5,
                etag: None,
            },
            LadderOptions::default(),
            &p,
            t0,
        );
        let v = JobView::of(&job, "https://videos.example.com/");
        assert_eq!(
            (v.status, v.playable, v.playback_url.as_deref(), v.heartbeat),
            (JobStatus::Queued, false, None, None)
        );
        let json = serde_json::to_value(&v).unwrap();
        for k in [
            "status",
            "progress",
            "stage",
            "error",
            "heartbeat",
            "attempts",
            "playable",
            "duration_s",
            "renditions",
            "thumbnails",
            "created_at",
        ] {
            assert!(json.get(k).is_some(), "{k} missing");
        }

        let lease = LeaseId::parse("L").unwrap();
        job.lease(lease.clone(), OutputId::parse("o1").unwrap(), &p, t0).unwrap();
        job.heartbeat(&lease, 20, Some("encoding".into()), true, &p, t0.plus_secs(3)).unwrap();
        let v = JobView::of(&job, "https://videos.example.com");
        assert_eq!(v.playback_url.as_deref(), Some("https://videos.example.com/hls/app/vid/o1/master.m3u8"));
        assert_eq!(v.heartbeat.map(|t| t.to_rfc3339()).as_deref(), Some("2023-11-14T22:13:23.000Z"));
        assert!(v.thumbnails.is_none());

        let meta = ThumbnailMeta { interval_s: 1.0, tile_w: 160, tile_h: 90, cols: 10, rows: 1, count: 5 };
        let rendition = Rendition {
            name: "720p".into(),
            width: 1280,
            height: 720,
            bandwidth: 3,
            average_bandwidth: 2,
            codecs: "c".into(),
            frame_rate: 30.0,
            video_range: Default::default(),
        };
        job.complete(
            &lease,
            JobResult {
                duration_s: 5.0,
                renditions: vec![rendition],
                thumbnails: Some(meta),
                has_audio: false,
                download: None,
                ..Default::default()
            },
            t0.plus_secs(9),
        )
        .unwrap();
        let v = JobView::of(&job, "https://videos.example.com");
        assert_eq!(v.renditions[0].url, "https://videos.example.com/hls/app/vid/o1/720p/index.m3u8");
        let th = v.thumbnails.unwrap();
        assert_eq!(th.vtt, "https://videos.example.com/hls/app/vid/o1/thumbnails.vtt");
        assert_eq!(th.meta.count, 5);
        assert_eq!(v.duration_s, Some(5.0));

        // A receiver that fails: only the keyed view says so.
        job.callback = Some(crate::video::delivery::CallbackState {
            status: crate::video::delivery::CallbackStatus::Failed,
            attempts: 3,
            last_error: Some("could not connect".into()),
        });
        let public = serde_json::to_string(&JobView::of(&job, "https://videos.example.com")).unwrap();
        assert!(!public.contains("callback") && !public.contains("could not connect"), "{public}");
        let keyed = JobView::with_delivery(&job, "https://videos.example.com");
        assert_eq!(
            (keyed.callback_status, keyed.callback_attempts, keyed.callback_last_error.as_deref()),
            (Some(crate::video::delivery::CallbackStatus::Failed), Some(3), Some("could not connect"))
        );
    }

    #[test]
    fn the_cover_and_preview_are_listed_with_their_urls_once_made() {
        use crate::video::extras::{CoverMeta, PreviewFormat, PreviewMeta};
        let p = RetryPolicy::default();
        let t0 = Timestamp::from_secs(1_700_000_000);
        let source = SourceUpload {
            raw_key: "raw/app/vid/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 5,
            etag: None,
        };
        let ids = (JobId::parse("job_1").unwrap(), AppId::parse("app").unwrap(), VideoId::parse("vid").unwrap());
        let mut job = Job::new(ids.0, ids.1, ids.2, source, LadderOptions::default(), &p, t0);
        let json = serde_json::to_value(JobView::of(&job, "https://v.example.com")).unwrap();
        assert!(json.get("cover").is_none() && json.get("preview").is_none(), "absent until made: {json}");
        let lease = LeaseId::parse("L").unwrap();
        job.lease(lease.clone(), OutputId::parse("o1").unwrap(), &p, t0).unwrap();
        let cover = CoverMeta { time_s: 2.5, width: 1280, height: 720 };
        let preview = PreviewMeta {
            format: PreviewFormat::Gif,
            start_s: 1.0,
            duration_s: 3.0,
            width: 480,
            height: 270,
            fps: 10,
            frames: 30,
        };
        let result = JobResult { duration_s: 5.0, cover: Some(cover), preview: Some(preview), ..Default::default() };
        job.complete(&lease, result, t0.plus_secs(9)).unwrap();
        let json = serde_json::to_value(JobView::of(&job, "https://v.example.com")).unwrap();
        assert_eq!(
            json["cover"],
            serde_json::json!({"jpg": "https://v.example.com/hls/app/vid/o1/cover.jpg",
                "webp": "https://v.example.com/hls/app/vid/o1/cover.webp", "time_s": 2.5, "width": 1280, "height": 720})
        );
        assert_eq!(json["preview"]["url"], "https://v.example.com/hls/app/vid/o1/preview.gif");
        assert_eq!((json["preview"]["format"].as_str(), json["preview"]["frames"].as_u64()), (Some("gif"), Some(30)));
    }

    #[test]
    fn the_download_shows_its_url_only_when_ready_and_public() {
        use crate::video::access::DownloadOption;
        use crate::video::download::DownloadReport;
        let p = RetryPolicy::default();
        let t0 = Timestamp::from_secs(1_700_000_000);
        let source = SourceUpload {
            raw_key: "raw/app/vid/source.mp4".into(),
            content_type: "video/mp4".into(),
            size: 5,
            etag: None,
        };
        let mut job = Job::new(
            JobId::parse("job_1").unwrap(),
            AppId::parse("app").unwrap(),
            VideoId::parse("vid").unwrap(),
            source,
            LadderOptions::default(),
            &p,
            t0,
        );
        assert_eq!(JobView::of(&job, "https://v.example.com").download, None);
        let json = serde_json::to_value(JobView::of(&job, "https://v.example.com")).unwrap();
        assert!(json.get("download").is_none(), "absent without the option: {json}");
        job.playback.download = Some(DownloadOption::default());
        let preparing = JobView::of(&job, "https://v.example.com").download.unwrap();
        assert_eq!((preparing.status, preparing.url), (DownloadStatus::Preparing, None));
        let lease = LeaseId::parse("L").unwrap();
        job.lease(lease.clone(), OutputId::parse("o1").unwrap(), &p, t0).unwrap();
        job.heartbeat(&lease, 20, None, true, &p, t0.plus_secs(3)).unwrap();
        let report = DownloadReport::Ready { rung: "720p".into(), size: 42 };
        let result = JobResult {
            duration_s: 5.0,
            renditions: vec![],
            thumbnails: None,
            has_audio: true,
            download: Some(report),
            ..Default::default()
        };
        job.complete(&lease, result, t0.plus_secs(9)).unwrap();
        let ready = JobView::of(&job, "https://v.example.com/").download.unwrap();
        assert_eq!(
            ready,
            DownloadView {
                status: DownloadStatus::Ready,
                rung: Some("720p".into()),
                size: Some(42),
                url: Some("https://v.example.com/download?app_id=app&video_id=vid".into()),
                note: None,
            }
        );
        // A video that requires signed URLs: no URL anyone could use, a note on how instead.
        job.playback.require_signed_urls = true;
        let signed = JobView::of(&job, "https://v.example.com").download.unwrap();
        assert_eq!((signed.status, signed.url), (DownloadStatus::Ready, None));
        assert!(signed.note.unwrap().contains("downloadable"));
    }

    #[test]
    fn chunk_fields_are_optional_so_older_peers_still_parse() {
        // A transcoder from before chunks: no capability, no counters, a whole result.
        let lease: LeaseRequest = serde_json::from_str(r#"{"worker":"w1","wait_ms":10}"#).unwrap();
        assert!(!lease.chunks);
        let beat: HeartbeatRequest = serde_json::from_str(r#"{"lease_id":"L","progress":5}"#).unwrap();
        assert_eq!((beat.published_segments, beat.published_audio_segments), (None, None));
        let v = serde_json::to_value(&beat).unwrap();
        assert!(v.get("published_segments").is_none(), "not sent when absent: {v}");
        let old = r#"{"lease_id":"L","result":{"duration_s":2.0,"renditions":[],"thumbnails":null,"has_audio":false}}"#;
        let done: CompleteRequest = serde_json::from_str(old).unwrap();
        assert_eq!((done.result.duration_s, done.chunk), (2.0, None));
        // A chunk task sends its report only.
        let chunk = r#"{"lease_id":"L","app_id":"a","video_id":"v","chunk":{"frames":900,"segments":8,
            "rungs":[{"name":"720p","width":1280,"height":720,"codecs":"avc1.64001f","init_bytes":0,"segment_bytes":[1,2]}],
            "poster":false}}"#;
        let done: CompleteRequest = serde_json::from_str(chunk).unwrap();
        assert_eq!(done.result, JobResult::default());
        let report = done.chunk.unwrap();
        assert_eq!((report.frames, report.segments, report.rungs[0].segment_bytes.clone()), (900, 8, vec![1, 2]));
        assert_eq!(report.audio, None);
        // A lease from an older service: no chunk, no chunking threshold.
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "job_id": "job_1", "app_id": "a", "video_id": "v", "attempt": 1, "lease_id": "L",
            "lease_expires_at": "2023-11-14T22:13:20.000Z", "heartbeat_interval_ms": 2000,
            "source_key": "raw/a/v/source.mp4", "source_size": 5, "content_type": "video/mp4",
            "output_id": "o1", "output_prefix": "hls/a/v/o1/", "ladder": {}
        }))
        .unwrap();
        assert_eq!((&spec.chunk, spec.chunk_from_s), (&None, None));
        let v = serde_json::to_value(&spec).unwrap();
        assert!(v.get("chunk").is_none() && v.get("chunk_from_s").is_none(), "{v}");
    }

    #[test]
    fn a_plan_request_is_flat_on_the_wire() {
        let body = r#"{"lease_id":"L","app_id":"a","video_id":"v",
            "geometry":{"frame_rate":{"num":30,"den":1},"gop_frames":60,"first_segment_frames":15,"segment_frames":120,"total_frames":9000},
            "t0_s":0.0,"duration_s":300.0,"has_audio":true}"#;
        let req: PlanRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.video.ids().map(|(a, v)| (a.to_string(), v.to_string())), Some(("a".into(), "v".into())));
        assert_eq!(
            (req.source.geometry.total_frames, req.source.duration_s, req.source.has_audio),
            (9000, 300.0, true)
        );
        assert!(req.source.rungs.is_empty());
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!((v["t0_s"].as_f64(), v["geometry"]["segment_frames"].as_u64()), (Some(0.0), Some(120)));
        assert_eq!(serde_json::from_value::<PlanRequest>(v).unwrap(), req);
        let none: PlanResponse = serde_json::from_str(r#"{"chunk":null}"#).unwrap();
        assert_eq!(none.chunk, None);
    }
}

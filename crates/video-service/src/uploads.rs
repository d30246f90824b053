//! Starting and stopping a video: the presigned upload URL, the
//! upload-complete notice that queues (or re-queues) its transcoding job,
//! and cancelling it. All need an API key that may act for the request's
//! `app_id` (403 otherwise), and count against that key's rate limit.

use media_core::api::{CancelRequest, NotifyRequest, PresignedPut, VideoUploadUrlRequest, VideoUploadUrlResponse};
use media_core::job::SourceUpload;
use media_core::keys::{check_raw_key, ObjectKey};
use media_core::media::{check_size, check_video_type};
use media_core::{ApiError, ErrorCode};
use worker::{Env, Request};
use worker_kit::clock::now;
use worker_kit::config::Settings;
use worker_kit::entry::guard;
use worker_kit::respond::{json, read_body};
use worker_kit::store::{s3_bucket, AnyStore, ObjectStore};
use worker_kit::{Failure, Handled};

use crate::client;
use crate::queue::{CancelReply, NotifyReply, QueueCommand};
use crate::settings::VideoSettings;

/// The most a JSON request body of these routes may be.
const MAX_JSON_BODY: u64 = 16 * 1024;

/// `POST /generate-upload-url`.
pub async fn generate_upload_url(mut req: Request, env: &Env, settings: &VideoSettings) -> Handled {
    let grant = guard(&req, env, settings, "generate-upload-url").await?;
    let r = VideoUploadUrlRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let kind = check_video_type(&r.content_type)?;
    if let Some(size) = r.size {
        check_size("size", size, settings.max_video_bytes)?;
    }
    let key = ObjectKey::RawUpload { app: r.app_id.clone(), video: r.video_id.clone(), kind }.to_string();
    let put = s3_bucket(&Settings(env))?.presign_put(&key, &r.content_type, r.size, settings.upload_ttl_s, now())?;
    tracing::info!(app_id = %r.app_id, video_id = %r.video_id, content_type = %r.content_type, size = ?r.size, "video upload URL issued");
    json(200, &VideoUploadUrlResponse { put: PresignedPut::from_presigned(put), raw_key: key })
}

/// `POST /notify-upload-complete`: checks the upload is there, then queues.
/// 202 when a job was queued (new or retried), 200 when it already was
/// queued, running or done.
pub async fn notify_upload_complete(mut req: Request, env: &Env, settings: &VideoSettings, base: &str) -> Handled {
    let grant = guard(&req, env, settings, "notify-upload-complete").await?;
    let r = NotifyRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let kind = check_video_type(&r.content_type)?;
    let key_kind = check_raw_key(&r.raw_key, &r.app_id, &r.video_id)?;
    if kind != key_kind {
        return Err(ApiError::invalid_field(format!(
            "content_type {:?} does not match the raw_key (a {} upload); send the content_type you uploaded with",
            r.content_type,
            key_kind.canonical_content_type()
        ))
        .into());
    }
    let store = AnyStore::from_env(env)?;
    let info = store.head(&r.raw_key).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UploadMissing,
            format!("nothing has been uploaded to {}; PUT the file to the upload_url first, then notify", r.raw_key),
        )
    })?;
    check_size("the upload", info.size, settings.max_video_bytes)?;
    let cmd = QueueCommand::Notify {
        app_id: r.app_id.clone(),
        video_id: r.video_id.clone(),
        source: SourceUpload {
            raw_key: r.raw_key.clone(),
            content_type: r.content_type.clone(),
            size: info.size,
            etag: Some(info.etag.clone()),
        },
    };
    let reply: NotifyReply = client::ask(env, &cmd).await?;
    if reply.changed {
        crate::status::forget(&r.app_id, &r.video_id).await;
    }
    let status = if reply.changed { 202 } else { 200 };
    if reply.changed {
        tracing::info!(app_id = %r.app_id, video_id = %r.video_id, job_id = %reply.job.job_id, created = reply.created, size = info.size, "transcode queued");
    }
    json(status, &media_core::api::JobView::of(&reply.job, base))
}

/// `POST /cancel-job`: stops a queued or running job (it ends in `error`,
/// "canceled through the API"; a notify starts it again). 200 with the job
/// either way, `canceled` saying whether anything was stopped.
pub async fn cancel_job(mut req: Request, env: &Env, settings: &VideoSettings, base: &str) -> Handled {
    let grant = guard(&req, env, settings, "cancel-job").await?;
    let r = CancelRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    grant.check_app(&r.app_id)?;
    let reply: CancelReply =
        client::ask(env, &QueueCommand::Cancel { app_id: r.app_id.clone(), video_id: r.video_id.clone() }).await?;
    if reply.canceled {
        crate::status::forget(&r.app_id, &r.video_id).await;
    }
    let mut body = serde_json::to_value(media_core::api::JobView::of(&reply.job, base))
        .map_err(|e| Failure::internal(e.to_string()))?;
    body["canceled"] = serde_json::json!(reply.canceled);
    json(200, &body)
}

//! The public read routes: `GET /job-status` (always from the queue, so it
//! reflects the latest heartbeat) and `GET /playback-url` (from the KV
//! playback record once done, from the queue while in progress).

use media_core::api::{query_id, JobView, PlaybackUrlResponse};
use media_core::ids::{AppId, VideoId};
use media_core::job::{Job, JobStatus};
use media_core::{ApiError, ErrorCode};
use worker::{Env, Request};
use worker_kit::respond::{json, query};
use worker_kit::Handled;

use crate::client;
use crate::queue::{playback_record_key, QueueCommand, KV_BINDING};

fn ids(req: &Request) -> Result<(AppId, VideoId), worker_kit::Failure> {
    let q = query(req)?;
    Ok((query_id(&q, "app_id", AppId::parse)?, query_id(&q, "video_id", VideoId::parse)?))
}

fn unknown(app: &AppId, video: &VideoId) -> worker_kit::Failure {
    ApiError::not_found(format!("no job for app_id {app:?} and video_id {video:?}; call /notify-upload-complete after uploading")).into()
}

async fn job_from_queue(env: &Env, app: &AppId, video: &VideoId) -> Result<Option<Job>, worker_kit::Failure> {
    client::ask(env, &QueueCommand::Get { app_id: app.clone(), video_id: video.clone() }).await
}

/// `GET /job-status?app_id=&video_id=`.
pub async fn job_status(req: Request, env: &Env, base: &str) -> Handled {
    let (app, video) = ids(&req)?;
    let job = job_from_queue(env, &app, &video).await?.ok_or_else(|| unknown(&app, &video))?;
    json(200, &JobView::of(&job, base))
}

/// `GET /playback-url?app_id=&video_id=`: the master playlist once playable,
/// 409 with the current status before.
pub async fn playback_url(req: Request, env: &Env, base: &str) -> Handled {
    let (app, video) = ids(&req)?;
    let published: Option<Job> = match env.kv(KV_BINDING) {
        Ok(kv) => kv.get(&playback_record_key(&app, &video)).json().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the playback record failed; asking the queue");
            None
        }),
        Err(_) => None,
    };
    let job = match published {
        Some(job) => job,
        None => job_from_queue(env, &app, &video).await?.ok_or_else(|| unknown(&app, &video))?,
    };
    let view = JobView::of(&job, base);
    match view.playback_url {
        Some(url) => json(200, &PlaybackUrlResponse { url, status: job.status, poster_url: view.poster_url }),
        None => {
            let why = match job.status {
                JobStatus::Error => format!("the video failed to transcode: {}", job.error.as_deref().unwrap_or("unknown error")),
                s => format!("the video is not playable yet: it is {} ({}%); poll /job-status", s.as_str(), job.progress),
            };
            let e = ApiError::new(ErrorCode::Conflict, why);
            let mut body = serde_json::to_value(e.body()).map_err(|e| worker_kit::Failure::internal(e.to_string()))?;
            body["status"] = serde_json::json!(job.status);
            body["progress"] = serde_json::json!(job.progress);
            json(409, &body)
        }
    }
}

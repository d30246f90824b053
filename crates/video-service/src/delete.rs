//! `DELETE /videos?app_id=&video_id=`: deletes a video for good. An API
//! key that may act for `app_id` (403 otherwise), counted against its rate
//! limit. The video's `VideoJob` does the work (cancels the job, deletes
//! the objects and the playback record, wipes its state; see
//! [`crate::video_job`]'s "Deleting"); this drops the Worker's cached read
//! of the job in this location, so public reads answer 404 at once here
//! (elsewhere within that read's short TTL).

use media_core::api::{query_id, DeleteVideoResponse};
use media_core::ids::{AppId, VideoId};
use worker::Request;
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::Handled;

use crate::client;
use crate::video_job::{DeleteReply, VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::VideoContext;

/// `DELETE /videos`: 200 with what was removed; a repeat answers zeros.
pub async fn delete_video(req: Request, cx: &VideoContext<'_>) -> Handled {
    let grant = guard(&req, cx, "delete-video").await?;
    let q = query(&req)?;
    let app_id = query_id(&q, "app_id", AppId::parse)?;
    let video_id = query_id(&q, "video_id", VideoId::parse)?;
    grant.check_app(&app_id)?;
    let call = VideoCall { app_id: app_id.clone(), video_id: video_id.clone(), base: None, op: VideoOp::Delete };
    let reply: DeleteReply = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    crate::status::forget(&app_id, &video_id).await;
    json(200, &DeleteVideoResponse { app_id, video_id, deleted: reply.deleted, final_sweep_at: reply.final_sweep_at })
}

//! The caption routes (API key, the key's apps only):
//! `GET /videos/{app_id}/{video_id}/captions` lists a video's tracks,
//! `POST …/captions/{language}` adds or replaces one from a WebVTT or SRT
//! body, `DELETE …/captions/{language}` removes one.
//!
//! A posted file is read strictly (`media_core::video::captions`: 400
//! naming the line of the first fault) before anything is stored; then its
//! normalised WebVTT is written to storage (`captions/{app}/{video}/{language}.vtt`)
//! and the track recorded in the video's object, which publishes a done
//! job's record again. The video's cache tag is purged, as its master
//! playlist now lists other subtitle renditions. A delete removes the
//! record first, then the file. The HLS route serves each track as a
//! subtitle rendition (`crate::hls`).

use media_core::http::purge::video_tag;
use media_core::ids::{AppId, VideoId};
use media_core::keys::ObjectKey;
use media_core::video::captions::{self, CaptionTrack, MAX_CAPTION_BYTES};
use media_core::video::job::Job;
use media_core::wire::api::{CaptionList, JobView};
use media_core::wire::routes::{Route, VideoRoute};
use media_core::ApiError;
use worker::{Method, Request};
use worker_kit::failure::no_route;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::store::ObjectStore;
use worker_kit::Handled;

use crate::client;
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::status::remember_job;

/// The longest label accepted.
const MAX_LABEL_CHARS: usize = 64;

/// Both caption routes.
pub async fn route(mut req: Request, cx: &crate::VideoContext<'_>, base: &str, row: &Route<VideoRoute>) -> Handled {
    let grant = worker_kit::entry::guard(&req, cx, "captions").await?;
    let path = req.path();
    let params = row.pattern.params(&path).unwrap_or_default();
    let (app, video, language) = match params.as_slice() {
        [app, video] => (app, video, None),
        [app, video, language] => (app, video, Some(language)),
        _ => return Err(no_route(&path)),
    };
    let (app, video) = (AppId::parse(app).map_err(ApiError::from)?, VideoId::parse(video).map_err(ApiError::from)?);
    grant.check_app(&app)?;
    let Some(language) = language else {
        let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: None, op: VideoOp::Get };
        let job: Option<Job> = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
        let job = job.ok_or_else(|| ApiError::not_found("no job for that app_id and video_id"))?;
        return json(200, &list(&job, base));
    };
    let language = captions::language_tag(language).map_err(ApiError::invalid_field)?;
    let key = ObjectKey::Caption { app: app.clone(), video: video.clone(), language: language.clone() }.to_string();
    let (status, body) = if req.method() == Method::Post {
        let label = query(&req)?.into_iter().find(|(k, _)| k == "label").map(|(_, v)| v);
        let label = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).unwrap_or_else(|| language.clone());
        if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(format!(
                "label must be at most {MAX_LABEL_CHARS} characters, without control characters"
            ))
            .into());
        }
        let bytes = worker_kit::body::read_body(&mut req, MAX_CAPTION_BYTES as u64).await?;
        let (format, cues) =
            captions::parse_caption(&bytes).map_err(|e| ApiError::invalid_field(format!("the caption file: {e}")))?;
        let vtt = captions::to_webvtt(&cues).into_bytes();
        let track = CaptionTrack {
            language: language.clone(),
            label,
            cues: cues.len() as u32,
            bytes: vtt.len() as u64,
            source_format: format,
        };
        // The file first: a track is never listed without its file.
        cx.store()?.put(&key, vtt, "text/vtt; charset=utf-8").await?;
        let job = set(cx, &app, &video, &language, Some(track.clone())).await?;
        tracing::info!(app_id = %app, video_id = %video, language, cues = track.cues, "caption track stored");
        (200, serde_json::to_value(list(&job, base).captions.into_iter().find(|c| c.track.language == language)))
    } else {
        let job = set(cx, &app, &video, &language, None).await?;
        if let Err(e) = cx.store()?.delete(&key).await {
            // Unlisted, it is never served; the video's delete sweeps it.
            tracing::warn!(app_id = %app, video_id = %video, language, error = %e, "deleting a caption file failed");
        }
        tracing::info!(app_id = %app, video_id = %video, language, "caption track deleted");
        (200, serde_json::to_value(list(&job, base)))
    };
    cx.purge_tags(&worker_kit::purge::host_of(base), vec![video_tag(&app, &video)]);
    json(status, &body.map_err(|_| ApiError::internal())?)
}

/// Records the change in the video's object; answers the job.
async fn set(
    cx: &crate::VideoContext<'_>,
    app: &AppId,
    video: &VideoId,
    language: &str,
    track: Option<CaptionTrack>,
) -> Result<Job, worker_kit::Failure> {
    let op = VideoOp::SetCaption { language: language.to_owned(), track };
    let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: None, op };
    let job: Job = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    remember_job(&job).await;
    Ok(job)
}

fn list(job: &Job, base: &str) -> CaptionList {
    CaptionList { captions: JobView::of(job, base).captions }
}

//! `GET`/`HEAD /download`: a video's MP4 download (asked for at notify
//! with `download`; made by the transcoder once the ladder is done, see
//! `media_core::video::download`).
//!
//! A public video is named by `?app_id=&video_id=`; a video that requires
//! signed URLs only by `?token=`, a playback token
//! (`crate::playback_auth::verify`) whose claims carry `downloadable: true`.
//! The file is `ObjectKey::Download` of the video's *current* output,
//! served with `Content-Disposition: attachment; filename="{video_id}.mp4"`,
//! Range and ETag (`worker_kit::serve`). Its edge copy is keyed by the
//! object key (so a re-made video never gets an old file) and tagged with
//! the video's cache tag, so a delete purges it with the HLS files; files
//! above [`EDGE_CACHE_MAX_BYTES`] are streamed from storage only (keeping a
//! copy tees the body, and a slow client would make the isolate buffer it).
//! Clients are told a short `Cache-Control`: the URL names the video, not
//! the output. Every request counts against the client's public-read budget.

use media_core::http::purge::video_tag;
use media_core::ids::{AppId, VideoId};
use media_core::keys::{CachePolicy, ObjectKey, OutputId};
use media_core::video::download::{content_disposition, DownloadStatus};
use media_core::video::job::Job;
use media_core::wire::api::query_id;
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::clock::now;
use worker_kit::query::query;
use worker_kit::ratelimit::enforce_public;
use worker_kit::serve::{edge_hit, serve_object, EdgeCache, ServeSpec};
use worker_kit::{Failure, Handled};

use crate::status::public_job;
use crate::{playback_auth, VideoContext};

/// The largest download kept in the edge cache.
pub const EDGE_CACHE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// How long a client may keep a download (the edge keeps it longer, by
/// its output's key): a deleted or re-made video's URL changes meaning.
const CLIENT_MAX_AGE_S: u64 = 300;

/// Who asked: the ids of a public video, or a token's video.
struct Asked {
    app: AppId,
    video: VideoId,
    /// With a token: seconds it has left.
    token_left_s: Option<u64>,
}

async fn asked(req: &Request, cx: &VideoContext<'_>) -> Result<Asked, Failure> {
    let q = query(req)?;
    let Some((_, token)) = q.iter().find(|(k, _)| k == "token") else {
        let (app, video) = (query_id(&q, "app_id", AppId::parse)?, query_id(&q, "video_id", VideoId::parse)?);
        return Ok(Asked { app, video, token_left_s: None });
    };
    if q.iter().any(|(k, _)| k == "app_id" || k == "video_id") {
        return Err(ApiError::invalid_query("a token names its video: leave app_id and video_id out").into());
    }
    let grant = playback_auth::verify(cx.env, req, token, "download").await?;
    if !grant.downloadable {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this token does not allow downloads: mint one with downloadable: true (POST /playback-tokens), or \
             sign one whose claims carry \"downloadable\": true",
        )
        .into());
    }
    let token_left_s = Some(grant.expires_at.secs().saturating_sub(now().secs()));
    Ok(Asked { app: grant.app, video: grant.video, token_left_s })
}

/// The output and size of `job`'s download when it can be served now,
/// else why not (404 without the option, 409 before it is ready).
fn ready(job: &Job) -> Result<(OutputId, u64), Failure> {
    let video = job.video_id.as_str();
    let Some(download) = job.download_state() else {
        return Err(ApiError::not_found(format!(
            "video {video:?} has no MP4 download: ask for one with \"download\": true (or {{\"rung\": \"720p\"}}) \
             when you notify or create the upload"
        ))
        .into());
    };
    let why = match download.status {
        DownloadStatus::Ready => {
            return match (job.output_id.clone(), download.size) {
                (Some(output), Some(size)) => Ok((output, size)),
                _ => Err(Failure::internal("a ready download without its output or size")),
            }
        }
        DownloadStatus::Preparing => format!(
            "the MP4 download of video {video:?} is being prepared: the job is {} ({}%); poll /job-status until \
             download.status is ready",
            job.status.as_str(),
            job.progress
        ),
        DownloadStatus::Errored => format!(
            "the MP4 download of video {video:?} could not be made (download.status is errored in /job-status); \
             upload the video again to retry"
        ),
    };
    Err(ApiError::new(ErrorCode::Conflict, why).into())
}

pub async fn serve(req: Request, cx: &VideoContext<'_>) -> Handled {
    enforce_public(cx.env, &req, "download").await?;
    let asked = asked(&req, cx).await?;
    let (app, video) = (&asked.app, &asked.video);
    let (job, source) = public_job(cx.env, app, video, None).await?;
    let Some(job) = job else {
        return Err(ApiError::not_found(format!(
            "no job for app_id {app:?} and video_id {video:?}; call /notify-upload-complete after uploading"
        ))
        .into());
    };
    if asked.token_left_s.is_none() && job.playback.require_signed_urls {
        return Err(ApiError::new(
            ErrorCode::SignedUrlRequired,
            format!(
                "video {video:?} of app {app:?} requires signed URLs: download it with /download?token={{token}}, \
                 a playback token with \"downloadable\": true (POST /playback-tokens with downloadable: true, or \
                 signed offline with a key from POST /signing-keys)"
            ),
        )
        .into());
    }
    let (output, size) = ready(&job)?;
    let key = ObjectKey::Download { app: app.clone(), video: video.clone(), output }.to_string();
    let origin = req.url()?.origin().ascii_serialization();
    let cache_key = format!("{origin}/{key}");
    let mut resp = match edge_hit(&cache_key, &req).await? {
        Some(hit) => hit,
        None => {
            let host = req.url()?.host_str().unwrap_or_default().to_owned();
            let cache_control = cx.common.purge.edge_cache_control(CachePolicy::Immutable.header_value(), &host);
            let edge_cache = (size <= EDGE_CACHE_MAX_BYTES).then(|| EdgeCache {
                key: cache_key,
                ctx: cx.execution,
                tags: vec![video_tag(app, video)],
            });
            let spec = ServeSpec {
                key: &key,
                what: "this video's download",
                cache_control: &cache_control,
                pinned_etag: None,
                known_size: Some(size),
                edge_cache,
            };
            serve_object(cx.store()?, &req, spec, |_| "video/mp4".to_owned()).await?
        }
    };
    let client_cache = match asked.token_left_s {
        None => format!("public, max-age={CLIENT_MAX_AGE_S}"),
        Some(left_s) => format!("private, max-age={}", left_s.min(CLIENT_MAX_AGE_S)),
    };
    let headers = resp.headers_mut();
    headers.set("cache-control", &client_cache)?;
    headers.set("content-disposition", &content_disposition(video))?;
    headers.append("server-timing", &source.server_timing())?;
    Ok(resp)
}

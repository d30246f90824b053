//! The public read routes, `GET /job-status` and `GET /playback-url`, and
//! the job read model they and the HLS route share ([`public_job`]).
//!
//! Public reads are many (every viewer polls) and should not all reach the
//! job store, the video's `VideoJob` Durable Object (they never reach a
//! queue shard). So a read looks in the edge cache first (the Cache API, for as long as
//! `Job::public_cache_ttl_s` allows: 1-2 s while the job moves or a webhook is being delivered, a
//! minute once done), then the KV playback record (done jobs), then the
//! video's job marker in KV (`video_job::job_marker_key`, written by the
//! object with the job's first change, and already by the presign that
//! precedes it, expiring an hour after that upload could last so an upload
//! that ends with no job leaves none for good: [`expect_job`]), and only when that exists asks the
//! video's object. A read of ids without a job thus answers 404 from KV and
//! never reaches (nor creates) an object. The marker is written before the
//! upload URL is handed out, so a page that polls while it uploads finds it
//! (and asks the object, which answers 404 until the notify without storing
//! anything) instead of leaving a negative KV lookup cached in its location
//! for up to a minute, which would hide the job from it after the notify. A
//! notify also puts the new job in this location's edge cache, so it is
//! readable here at once. Writes that pass through this Worker (notify, cancel, the
//! transcoder's calls) drop the cached copy in their location ([`forget`]);
//! elsewhere it lives out its short TTL. Each answer says where it came from
//! in `Server-Timing: jobstore;desc="cache|kv|video"`.
//!
//! Both routes count against the generous per-IP limit of public reads, and
//! show failures only in their public form (`media_core::video::job::public_failure_message`).

use media_core::http::auth::KeyGrant;
use media_core::http::purge::video_tag;
use media_core::ids::{AppId, VideoId};
use media_core::video::job::{Job, JobStatus};
use media_core::video::playback_token::signed_url_required;
use media_core::wire::api::{query_id, JobView, NotPlayableResponse, PlaybackUrlResponse};
use media_core::wire::routes::{Route, VideoRoute};
use media_core::{ApiError, ErrorCode};
use worker::{Cache, Env, Headers, Request, Response};
use worker_kit::failure::no_route;
use worker_kit::query::query;
use worker_kit::ratelimit::enforce_public;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::video_job::{VideoCall, VideoOp, VIDEO_JOBS_BINDING};
use crate::video_job::{job_marker_key, playback_record_key, KV_BINDING};

/// Where a public read found the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// The edge cache: nothing else was asked.
    Cache,
    /// The KV playback record of a done job.
    Kv,
    /// The job store: the video's own Durable Object.
    Video,
}

impl ReadSource {
    fn as_str(self) -> &'static str {
        match self {
            ReadSource::Cache => "cache",
            ReadSource::Kv => "kv",
            ReadSource::Video => "video",
        }
    }

    /// The `Server-Timing` entry naming it.
    pub fn server_timing(self) -> String {
        format!("jobstore;desc=\"{}\"", self.as_str())
    }
}

/// The cache key of a video's job. A fixed origin, so the transcoder's calls
/// (under whatever host name they arrive) drop the same entry public reads use.
fn cache_key(app: &AppId, video: &VideoId) -> String {
    format!("https://job-read-model.internal/{app}/{video}")
}

fn ids(req: &Request) -> Result<(AppId, VideoId), Failure> {
    let q = query(req)?;
    Ok((query_id(&q, "app_id", AppId::parse)?, query_id(&q, "video_id", VideoId::parse)?))
}

fn unknown(app: &AppId, video: &VideoId) -> Failure {
    ApiError::not_found(format!(
        "no job for app_id {app:?} and video_id {video:?}; call /notify-upload-complete after uploading"
    ))
    .into()
}

async fn cached(key: &str) -> Option<Job> {
    let mut resp = Cache::default().get(key, false).await.ok()??;
    resp.json().await.ok()
}

async fn remember(key: &str, job: &Job) {
    let stored = async {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set("cache-control", &format!("max-age={}", job.public_cache_ttl_s()))?;
        // The video's delete purges it at every location with its files.
        headers.set("cache-tag", &video_tag(&job.app_id, &job.video_id))?;
        let body = serde_json::to_string(job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        Cache::default().put(key, Response::ok(body)?.with_headers(headers)).await
    };
    if let Err(e) = stored.await {
        // Only the next read pays: it asks again.
        tracing::warn!(key, error = %e, "caching the job read failed");
    }
}

/// Puts the job a change made through this Worker left in this location's
/// cache (a notify: readable here at once, before KV shows its marker).
pub async fn remember_job(job: &Job) {
    remember(&cache_key(&job.app_id, &job.video_id), job).await;
}

/// Drops the cached read of a video's job in this location, after a change
/// made through this Worker. Other locations keep theirs for its short TTL.
pub async fn forget(app: &AppId, video: &VideoId) {
    if let Err(e) = Cache::default().delete(cache_key(app, video), false).await {
        tracing::warn!(app_id = %app, video_id = %video, error = %e, "dropping the cached job read failed");
    }
}

/// How long an upload's job marker outlives the upload: its ended upload's
/// events stay readable on `/job-events` that long.
pub const MARKER_GRACE_S: u64 = 3600;

/// Writes the video's job marker when an upload for it is presigned: the
/// job follows within the upload's life (`lasts_s`), and reads from then
/// on must reach its object (see the module doc). This marker expires
/// [`MARKER_GRACE_S`] after the upload could last, so an upload that ends
/// with no job leaves none for good; the object writes it again, with no
/// expiry, with the job's first change. Best effort: a failed write (KV
/// allows one write a second per key) is logged, not answered.
pub async fn expect_job(env: &Env, app: &AppId, video: &VideoId, lasts_s: u64) {
    let ttl_s = lasts_s.saturating_add(MARKER_GRACE_S);
    if let Err(e) = crate::video_job::write_expiring_job_marker(env, app, video, ttl_s).await {
        tracing::warn!(app_id = %app, video_id = %video, error = %e, "writing the job marker at presign failed; the job's first change writes it");
    }
}

async fn playback_record(env: &Env, app: &AppId, video: &VideoId) -> Option<Job> {
    let kv = env.kv(KV_BINDING).ok()?;
    kv.get(&playback_record_key(app, video)).json().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the playback record failed; asking the video's job object");
        None
    })
}

/// Whether KV says the video has a job (its marker). A failed read counts
/// as yes: the object then answers, as before markers.
async fn has_marker(env: &Env, app: &AppId, video: &VideoId) -> bool {
    let Ok(kv) = env.kv(KV_BINDING) else { return true };
    match kv.get(&job_marker_key(app, video)).text().await {
        Ok(found) => found.is_some(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the job marker failed; asking the video's job object");
            true
        }
    }
}

/// Whether the video may have a job, from the edge cache or KV only: false
/// means a public read answers 404 without asking any object.
pub async fn may_have_job(env: &Env, app: &AppId, video: &VideoId) -> bool {
    cached(&cache_key(app, video)).await.is_some()
        || playback_record(env, app, video).await.is_some()
        || has_marker(env, app, video).await
}

/// The job of `video` as public routes may show it, and where it came from:
/// the edge cache, else the KV record of a done job, else the video's
/// object (never a queue shard). `None`
/// for a video without a job (not cached: a notify must show at once).
/// With `count` (a route that does not count every request itself), a read
/// the edge cache does not answer is first counted against the client's
/// public-read budget.
pub async fn public_job(
    env: &Env,
    app: &AppId,
    video: &VideoId,
    count: Option<(&Request, &str)>,
) -> Result<(Option<Job>, ReadSource), Failure> {
    let key = cache_key(app, video);
    if let Some(job) = cached(&key).await {
        return Ok((Some(job), ReadSource::Cache));
    }
    // Past the edge cache a read costs KV reads, maybe the object's: counted.
    if let Some((req, route)) = count {
        enforce_public(env, req, route).await?;
    }
    let (job, source) = match playback_record(env, app, video).await {
        Some(job) => (Some(job), ReadSource::Kv),
        // No job: nothing asks (or creates) the video's object.
        None if !has_marker(env, app, video).await => (None, ReadSource::Kv),
        None => {
            let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: None, op: VideoOp::Get };
            (client::ask(env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?, ReadSource::Video)
        }
    };
    if let Some(job) = &job {
        remember(&key, job).await;
    }
    Ok((job, source))
}

fn with_source(mut resp: Response, source: ReadSource) -> Handled {
    resp.headers_mut().set("server-timing", &source.server_timing())?;
    Ok(resp)
}

/// `GET /videos/delivery?app_id=&video_id=` (API key, that app only): the
/// job with the delivery of its webhooks (`callback_status`,
/// `callback_attempts`, `callback_last_error`), which public routes never
/// show. Asks the video's object (an API-key call, never cached).
pub async fn delivery(req: Request, cx: &crate::VideoContext<'_>, base: &str) -> Handled {
    let grant = worker_kit::entry::guard(&req, cx, "videos-delivery").await?;
    let (app, video) = ids(&req)?;
    keyed_job(cx, &grant, app, video, base).await
}

/// `GET /videos/{app_id}/{video_id}` (API key, that app only): the same
/// API-key view of the job as [`delivery`], the video named by its path.
pub async fn video(req: Request, cx: &crate::VideoContext<'_>, base: &str, row: &Route<VideoRoute>) -> Handled {
    let grant = worker_kit::entry::guard(&req, cx, "videos").await?;
    let path = req.path();
    let params = row.pattern.params(&path);
    let Some([app, video]) = params.as_deref() else { return Err(no_route(&path)) };
    let (app, video) = (AppId::parse(app).map_err(ApiError::from)?, VideoId::parse(video).map_err(ApiError::from)?);
    keyed_job(cx, &grant, app, video, base).await
}

/// The job with its webhook delivery, for a key that may act for `app`
/// (403 otherwise), read from the video's object; 404 without a job.
async fn keyed_job(cx: &crate::VideoContext<'_>, grant: &KeyGrant, app: AppId, video: VideoId, base: &str) -> Handled {
    grant.check_app(&app)?;
    let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: None, op: VideoOp::Get };
    let job: Option<Job> = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    let job = job.ok_or_else(|| unknown(&app, &video))?;
    json(200, &JobView::with_delivery(&job, base))
}

/// `POST /videos/{app_id}/{video_id}/access {"require_signed_urls": bool}`
/// (API key, that app only): sets whether the video's public routes need a
/// token. The video's object changes its job and, for a done job, writes
/// the KV playback record again before it answers; the job read cached in
/// this location is replaced, and making a video private also purges its
/// cache tag at every location (its cached job reads, which the public
/// routes check before any cached file). Answers the job as
/// `GET /videos/{app_id}/{video_id}` does.
pub async fn access(mut req: Request, cx: &crate::VideoContext<'_>, base: &str, row: &Route<VideoRoute>) -> Handled {
    let grant = worker_kit::entry::guard(&req, cx, "video-access").await?;
    let path = req.path();
    let params = row.pattern.params(&path);
    let Some([app, video]) = params.as_deref() else { return Err(no_route(&path)) };
    let (app, video) = (AppId::parse(app).map_err(ApiError::from)?, VideoId::parse(video).map_err(ApiError::from)?);
    grant.check_app(&app)?;
    let body = worker_kit::body::read_body(&mut req, 1024).await?;
    let asked = media_core::wire::playback::AccessRequest::from_json(&body)?;
    let op = VideoOp::SetAccess { require_signed_urls: asked.require_signed_urls };
    let call = VideoCall { app_id: app.clone(), video_id: video.clone(), base: None, op };
    let job: Job = client::ask(cx.env, VIDEO_JOBS_BINDING, &call.object_name(), &call).await?;
    remember_job(&job).await;
    if asked.require_signed_urls {
        cx.purge_tags(&worker_kit::purge::host_of(base), vec![video_tag(&app, &video)]);
    }
    tracing::info!(app_id = %app, video_id = %video, require_signed_urls = asked.require_signed_urls, "video access set");
    json(200, &JobView::with_delivery(&job, base))
}

/// `GET /job-status?app_id=&video_id=`.
pub async fn job_status(req: Request, env: &Env, base: &str) -> Handled {
    enforce_public(env, &req, "job-status").await?;
    let (app, video) = ids(&req)?;
    let (job, source) = public_job(env, &app, &video, None).await?;
    let job = job.ok_or_else(|| unknown(&app, &video))?;
    with_source(json(200, &JobView::of(&job, base))?, source)
}

/// `GET /playback-url?app_id=&video_id=`: the master playlist once playable,
/// 409 with the current status before.
pub async fn playback_url(req: Request, env: &Env, base: &str) -> Handled {
    enforce_public(env, &req, "playback-url").await?;
    let (app, video) = ids(&req)?;
    let (job, source) = public_job(env, &app, &video, None).await?;
    let job = job.ok_or_else(|| unknown(&app, &video))?;
    if job.playback.require_signed_urls {
        return Err(signed_url_required(&app, &video).into());
    }
    let view = JobView::of(&job, base);
    let resp = match view.playback_url {
        Some(url) => json(200, &PlaybackUrlResponse { url, status: job.status, poster_url: view.poster_url })?,
        None => {
            let why = match job.status {
                JobStatus::Error => {
                    format!("the video failed to transcode: {}", view.error.as_deref().unwrap_or("unknown error"))
                }
                s => {
                    format!("the video is not playable yet: it is {} ({}%); poll /job-status", s.as_str(), job.progress)
                }
            };
            let error = ApiError::new(ErrorCode::Conflict, why).body();
            json(409, &NotPlayableResponse { error, status: job.status, progress: job.progress })?
        }
    };
    with_source(resp, source)
}

//! The video service Worker (`wrangler-video.toml`).
//!
//! | route | auth | module |
//! |---|---|---|
//! | `POST /generate-upload-url` | API key, rate limited | [`uploads`] |
//! | `POST /notify-upload-complete` | API key, rate limited | [`uploads`] |
//! | `POST /cancel-job` | API key, rate limited | [`uploads`] |
//! | `DELETE /videos` | API key, rate limited | [`delete`] |
//! | `GET /videos/delivery` | API key, rate limited | [`status`] |
//! | `GET /job-status` | public | [`status`] |
//! | `GET /playback-url` | public | [`status`] |
//! | `GET /job-events` | public | [`events`] |
//! | `GET /events` | API key, rate limited | [`events`] |
//! | `GET`/`HEAD /hls/...` | public | [`hls`] |
//! | `/uploads/{token}/s3/multipart...` | the session's upload token | [`resumable`] |
//! | `POST /internal/jobs/...` | transcoder token | [`internal`] |
//! | `GET /openapi.json`, `GET /health` | public | here |
//!
//! Each video's job lives in its own `VideoJob` Durable Object
//! ([`video_job`]); which jobs wait lives in `QUEUE_SHARDS` `DispatchShard`
//! objects ([`dispatch`]); [`client`] talks to both. Configuration is read once per request, into the
//! [`VideoContext`] every handler takes (the common settings, [`settings`],
//! the store). Errors become JSON in one place (`worker_kit::failure`).

mod app_hub;
mod client;
mod delete;
mod dispatch;
mod events;
mod hls;
mod internal;
mod lease;
mod protocol;
mod resumable;
mod settings;
mod sse;
mod status;
mod uploads;
mod video_job;
mod webhooks;

use worker::{event, Context, Env, Method, Request, Response};
use worker_kit::entry::{health, openapi, ServerOnly};
use worker_kit::failure::no_route;
use worker_kit::method::{known_method, other_method};
use worker_kit::{Handled, RequestContext};

pub use app_hub::AppHub;
pub use dispatch::DispatchShard;
use settings::VideoSettings;
pub use video_job::VideoJob;

const SERVICE: &str = "video-service";
/// What every handler of this service runs with.
pub(crate) type VideoContext<'a> = RequestContext<'a, VideoSettings>;
/// The OpenAPI document of the public routes, kept in the repository.
const OPENAPI: &str = include_str!("../../../openapi/video-service.json");

/// The API-key routes and the internal API: browsers never call them, so
/// their answers carry no CORS headers.
const SERVER_ONLY: ServerOnly = ServerOnly {
    paths: &[
        "/generate-upload-url",
        "/notify-upload-complete",
        "/cancel-job",
        "/videos",
        "/videos/delivery",
        "/events",
    ],
    prefixes: &["/internal/"],
};

#[event(start)]
fn start() {
    worker_kit::logging::init();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    worker_kit::entry::handle(SERVICE, SERVER_ONLY, req, &env, &ctx, VideoSettings::load, route).await
}

async fn route(req: Request, cx: &VideoContext<'_>) -> Handled {
    let path = req.path();
    // `None` for methods the runtime binding would otherwise report as GET.
    let method = known_method(&req);
    let base = cx.public_base(&req);
    if path.starts_with("/internal/") {
        return internal::route(req, cx).await;
    }
    if path.starts_with("/uploads/") {
        return resumable::route(req, cx).await;
    }
    if path.starts_with("/hls/") {
        if let Some(answer) = other_method(method.as_ref(), &[Method::Get, Method::Head]) {
            return answer;
        }
        return hls::serve(req, cx).await;
    }
    let route = match path.as_str() {
        "/generate-upload-url" => Route::UploadUrl,
        "/notify-upload-complete" => Route::Notify,
        "/cancel-job" => Route::Cancel,
        "/videos" => Route::DeleteVideo,
        "/videos/delivery" => Route::Delivery,
        "/job-status" => Route::JobStatus,
        "/playback-url" => Route::PlaybackUrl,
        "/job-events" => Route::JobEvents,
        "/events" => Route::AppEvents,
        "/openapi.json" => Route::OpenApi,
        "/health" | "/" => Route::Health,
        _ => return Err(no_route(&path)),
    };
    if let Some(answer) = other_method(method.as_ref(), &[route.method()]) {
        return answer;
    }
    match route {
        Route::UploadUrl => uploads::generate_upload_url(req, cx).await,
        Route::Notify => uploads::notify_upload_complete(req, cx, &base).await,
        Route::Cancel => uploads::cancel_job(req, cx, &base).await,
        Route::DeleteVideo => delete::delete_video(req, cx).await,
        Route::Delivery => status::delivery(req, cx, &base).await,
        Route::JobStatus => status::job_status(req, cx.env, &base).await,
        Route::PlaybackUrl => status::playback_url(req, cx.env, &base).await,
        Route::JobEvents => events::job_events(req, cx, &base).await,
        Route::AppEvents => events::app_events(req, cx).await,
        Route::OpenApi => openapi(OPENAPI),
        Route::Health => health(SERVICE, env!("CARGO_PKG_VERSION")),
    }
}

/// The fixed-path routes.
enum Route {
    UploadUrl,
    Notify,
    Cancel,
    DeleteVideo,
    Delivery,
    JobStatus,
    PlaybackUrl,
    JobEvents,
    AppEvents,
    OpenApi,
    Health,
}

impl Route {
    fn method(&self) -> Method {
        match self {
            Route::UploadUrl | Route::Notify | Route::Cancel => Method::Post,
            Route::DeleteVideo => Method::Delete,
            Route::Delivery
            | Route::JobStatus
            | Route::PlaybackUrl
            | Route::JobEvents
            | Route::AppEvents
            | Route::OpenApi
            | Route::Health => Method::Get,
        }
    }
}

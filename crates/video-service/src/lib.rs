//! The video service Worker (`wrangler-video.toml`).
//!
//! Its routes are the rows of `media_core::wire::routes::VIDEO_ROUTES`
//! (path, methods, who may call it); `route` below gives each row its
//! handler: [`uploads`] (presign, notify, cancel), [`delete`], [`download`] (the MP4 download), [`status`]
//! (`/job-status`, `/playback-url`, `/videos/delivery`,
//! `/videos/{app_id}/{video_id}` and its `/access`), [`events`], [`hls`]
//! and [`signed_hls`] (`/hls/t/{token}/...`, checked by [`playback_auth`];
//! the keys and minted tokens are [`signing_keys`]'),
//! [`resumable`] (the upload token's multipart routes), [`upload_objects`]
//! (direct uploads as objects, `/uploads`; R2's event notifications reach
//! them through the `queue` handler, [`upload_queue`]), [`internal`] (the
//! transcoder's API) and [`worker_events`] (the image Worker's events).
//!
//! Each video's job lives in its own `VideoJob` Durable Object
//! ([`video_job`]); which jobs wait lives in `QUEUE_SHARDS` `DispatchShard`
//! objects ([`dispatch`]); [`client`] talks to both. Configuration is read once per request, into the
//! [`VideoContext`] every handler takes (the common settings, [`settings`],
//! the store). Errors become JSON in one place (`worker_kit::failure`).

mod app_hub;
mod captions;
mod client;
mod delete;
mod dispatch;
mod download;
mod endpoints;
mod events;
mod hls;
mod internal;
mod lease;
mod playback_auth;
mod protocol;
mod resumable;
mod settings;
mod signed_hls;
mod signing_keys;
mod sse;
mod status;
mod stream_token;
mod upload_landing;
mod upload_objects;
mod upload_queue;
mod uploads;
mod video_job;
mod webhooks;
mod worker_events;

use media_core::wire::routes::{Route, VideoRoute, VIDEO_ROUTES};
use worker::{event, Context, Env, MessageBatch, Request, Response};
use worker_kit::entry::{health, openapi};
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

#[event(start)]
fn start() {
    worker_kit::logging::init();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    worker_kit::entry::handle(SERVICE, VIDEO_ROUTES, req, &env, &ctx, VideoSettings::load, route).await
}

/// R2's event notifications through the `UPLOAD_EVENTS` queue ([`upload_queue`]).
#[event(queue)]
async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> worker::Result<()> {
    upload_queue::consume(batch, &env).await;
    Ok(())
}

/// The handler of each row of [`VIDEO_ROUTES`] (which has already gated
/// the method and decided CORS).
async fn route(req: Request, cx: &VideoContext<'_>, row: &'static Route<VideoRoute>) -> Handled {
    let base = cx.public_base(&req);
    match row.id {
        VideoRoute::UploadUrl => uploads::generate_upload_url(req, cx).await,
        VideoRoute::Notify => uploads::notify_upload_complete(req, cx, &base).await,
        VideoRoute::Cancel => uploads::cancel_job(req, cx, &base).await,
        VideoRoute::DeleteVideo => delete::delete_video(req, cx).await,
        VideoRoute::Delivery => status::delivery(req, cx, &base).await,
        VideoRoute::Video => status::video(req, cx, &base, row).await,
        VideoRoute::JobStatus => status::job_status(req, cx.env, &base).await,
        VideoRoute::PlaybackUrl => status::playback_url(req, cx.env, &base).await,
        VideoRoute::JobEvents => events::job_events(req, cx, &base).await,
        VideoRoute::AppEvents => events::app_events(req, cx).await,
        VideoRoute::StreamToken => stream_token::mint(req, cx, &base).await,
        VideoRoute::Hls => hls::serve(req, cx).await,
        VideoRoute::Download => download::serve(req, cx).await,
        VideoRoute::SignedHls => signed_hls::serve(req, cx).await,
        VideoRoute::SigningKeys | VideoRoute::SigningKey => signing_keys::route(req, cx, row).await,
        VideoRoute::PlaybackTokens => signing_keys::mint(req, cx, &base).await,
        VideoRoute::VideoAccess => status::access(req, cx, &base, row).await,
        VideoRoute::Captions | VideoRoute::Caption => captions::route(req, cx, &base, row).await,
        VideoRoute::WebhookEndpoints
        | VideoRoute::WebhookEndpoint
        | VideoRoute::WebhookEndpointRotate
        | VideoRoute::WebhookDeliveries
        | VideoRoute::WebhookRedeliver => endpoints::route(req, cx, row).await,
        VideoRoute::CreateUpload => upload_objects::create(req, cx, &base).await,
        VideoRoute::Upload => upload_objects::upload(req, cx, &base).await,
        VideoRoute::CompleteUpload => upload_objects::complete(req, cx, &base).await,
        VideoRoute::MultipartCreate
        | VideoRoute::MultipartUpload
        | VideoRoute::MultipartComplete
        | VideoRoute::MultipartPart => resumable::route(req, cx).await,
        VideoRoute::WorkerEvents => worker_events::receive(req, cx, row).await,
        VideoRoute::Internal => internal::route(req, cx, row).await,
        VideoRoute::OpenApi => openapi(OPENAPI),
        VideoRoute::Health => health(SERVICE, env!("CARGO_PKG_VERSION")),
    }
}

//! The image service Worker (`wrangler-image.toml`).
//!
//! Its routes are the rows of `media_core::wire::routes::IMAGE_ROUTES`
//! (path, methods, who may call it); `route` below gives each row its
//! handler: [`uploads`] (presign, `/upload`), [`metadata`] and [`delete`]
//! (`/images`), [`assets`] (originals) and [`variants`] (transforms);
//! private images: [`access`] (an image's `require_signed_urls`),
//! [`url_keys`] (an app's URL-signing secrets) and [`signed`] (the gate of
//! the public routes).
//!
//! Variants are made, and presigned uploads checked when they land, by
//! one Durable Object per image ([`image_object`]). `image.created` and
//! `image.deleted` go to the video Worker's app hubs ([`events`]).
//!
//! Configuration is read once per request, into the [`ImageContext`] every
//! handler takes (the common settings, [`settings`], the store); errors
//! become JSON in one place (`worker_kit::failure`), and our own faults go
//! to the logs and Sentry.

mod access;
mod assets;
mod delete;
mod events;
mod image_object;
mod images_binding;
mod metadata;
mod records;
mod settings;
mod signed;
mod uploads;
mod url_keys;
mod variants;

use media_core::ids::{AppId, ImageId};
use media_core::wire::api::query_id;
use media_core::wire::routes::{ImageRoute, Route, IMAGE_ROUTES};
use worker::{event, Context, Env, Request, Response};
use worker_kit::entry::{guard, health, openapi};
use worker_kit::query::query;
use worker_kit::{Failure, Handled, RequestContext};

use settings::ImageSettings;

pub use image_object::ImageObject;

const SERVICE: &str = "image-service";
/// What every handler of this service runs with.
pub(crate) type ImageContext<'a> = RequestContext<'a, ImageSettings>;
/// The OpenAPI document of the public routes, kept in the repository.
const OPENAPI: &str = include_str!("../../../openapi/image-service.json");

/// The image an API-key route is about: `app_id` and `image_id` from the
/// query, after the key's check and rate limit (`route` names its bucket),
/// and only for an app the key may act for (403 otherwise).
pub(crate) async fn keyed_image(
    req: &Request,
    cx: &ImageContext<'_>,
    route: &str,
) -> Result<(AppId, ImageId), Failure> {
    let grant = guard(req, cx, route).await?;
    let q = query(req)?;
    let app = query_id(&q, "app_id", AppId::parse)?;
    let image = query_id(&q, "image_id", ImageId::parse)?;
    grant.check_app(&app)?;
    Ok((app, image))
}

#[event(start)]
fn start() {
    worker_kit::logging::init();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    worker_kit::entry::handle(SERVICE, IMAGE_ROUTES, req, &env, &ctx, ImageSettings::load, route).await
}

/// The handler of each row of [`IMAGE_ROUTES`] (which has already gated
/// the method and decided CORS).
async fn route(req: Request, cx: &ImageContext<'_>, row: &'static Route<ImageRoute>) -> Handled {
    let base = cx.public_base(&req);
    match row.id {
        ImageRoute::Asset => assets::serve_asset(req, cx).await,
        ImageRoute::Variant => variants::serve_variant(req, cx).await,
        ImageRoute::CdnCgi => variants::serve_cdn_cgi(req, cx).await,
        ImageRoute::UploadUrl => uploads::generate_image_upload_url(req, cx, &base).await,
        ImageRoute::Upload => uploads::upload(req, cx, &base).await,
        ImageRoute::Metadata => metadata::image_metadata(req, cx, &base).await,
        ImageRoute::Delete => delete::delete_image(req, cx).await,
        ImageRoute::Access => access::set_access(req, cx, &base).await,
        ImageRoute::UrlSigningKeys => url_keys::url_signing_keys(req, cx).await,
        ImageRoute::OpenApi => openapi(OPENAPI),
        ImageRoute::Health => health(SERVICE, env!("CARGO_PKG_VERSION")),
    }
}

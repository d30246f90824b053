//! The image service Worker (`wrangler-image.toml`).
//!
//! | route | auth | module |
//! |---|---|---|
//! | `POST /generate-image-upload-url` | API key, rate limited | [`uploads`] |
//! | `POST /upload` | API key, rate limited | [`uploads`] |
//! | `GET /images?app_id=&image_id=` | API key, rate limited | [`metadata`] |
//! | `DELETE /images` | API key, rate limited | [`delete`] |
//! | `GET`/`HEAD /assets/images/{app_id}/{image_id}` | public | [`assets`] |
//! | `GET`/`HEAD /images/{app_id}/{image_id}/{options}` | public | [`variants`] |
//! | `GET`/`HEAD /cdn-cgi/image/{options}/assets/...` | public (earlier `transform_url`s) | [`variants`] |
//! | `GET /openapi.json`, `GET /health` | public | here |
//!
//! Variants are made, and presigned uploads checked when they land, by
//! one Durable Object per image ([`image_object`]).
//!
//! Configuration is read once per request, into the [`ImageContext`] every
//! handler takes (the common settings, [`settings`], the store); errors
//! become JSON in one place (`worker_kit::failure`), and our own faults go
//! to the logs and Sentry.

mod assets;
mod delete;
mod image_object;
mod images_binding;
mod metadata;
mod records;
mod settings;
mod uploads;
mod variants;

use media_core::ids::{AppId, ImageId};
use media_core::image::transform::TRANSFORM_PATH_PREFIX;
use media_core::image::variant::VARIANT_ROUTE_PREFIX;
use media_core::wire::api::{query_id, IMAGE_ASSETS_PREFIX};
use worker::{event, Context, Env, Method, Request, Response};
use worker_kit::entry::{guard, health, openapi, ServerOnly};
use worker_kit::failure::no_route;
use worker_kit::method::{known_method, other_method};
use worker_kit::query::query;
use worker_kit::{Failure, Handled, RequestContext};

use settings::ImageSettings;

pub use image_object::ImageObject;

const SERVICE: &str = "image-service";
/// What every handler of this service runs with.
pub(crate) type ImageContext<'a> = RequestContext<'a, ImageSettings>;
/// The OpenAPI document of the public routes, kept in the repository.
const OPENAPI: &str = include_str!("../../../openapi/image-service.json");

/// The API-key routes: browsers never call them, so their answers carry no
/// CORS headers.
const SERVER_ONLY: ServerOnly =
    ServerOnly { paths: &["/generate-image-upload-url", "/upload", "/images"], prefixes: &[] };

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
    worker_kit::entry::handle(SERVICE, SERVER_ONLY, req, &env, &ctx, ImageSettings::load, route).await
}

async fn route(req: Request, cx: &ImageContext<'_>) -> Handled {
    let path = req.path();
    // `None` for methods the runtime binding would otherwise report as GET.
    let method = known_method(&req);
    let public = [IMAGE_ASSETS_PREFIX, VARIANT_ROUTE_PREFIX, TRANSFORM_PATH_PREFIX];
    if let Some(prefix) = public.into_iter().find(|p| path.starts_with(p)) {
        if let Some(answer) = other_method(method.as_ref(), &[Method::Get, Method::Head]) {
            return answer;
        }
        return match prefix {
            IMAGE_ASSETS_PREFIX => assets::serve_asset(req, cx).await,
            VARIANT_ROUTE_PREFIX => variants::serve_variant(req, cx).await,
            _ => variants::serve_cdn_cgi(req, cx).await,
        };
    }
    let route = match path.as_str() {
        "/generate-image-upload-url" => Route::UploadUrl,
        "/upload" => Route::Upload,
        "/images" => Route::Image,
        "/openapi.json" => Route::OpenApi,
        "/health" | "/" => Route::Health,
        _ => return Err(no_route(&path)),
    };
    if let Some(answer) = other_method(method.as_ref(), route.methods()) {
        return answer;
    }
    let base = cx.public_base(&req);
    match route {
        Route::UploadUrl => uploads::generate_image_upload_url(req, cx, &base).await,
        Route::Upload => uploads::upload(req, cx, &base).await,
        Route::Image if method == Some(Method::Delete) => delete::delete_image(req, cx).await,
        Route::Image => metadata::image_metadata(req, cx, &base).await,
        Route::OpenApi => openapi(OPENAPI),
        Route::Health => health(SERVICE, env!("CARGO_PKG_VERSION")),
    }
}

/// The fixed-path routes.
enum Route {
    UploadUrl,
    Upload,
    /// `GET` (metadata) and `DELETE`.
    Image,
    OpenApi,
    Health,
}

impl Route {
    fn methods(&self) -> &'static [Method] {
        match self {
            Route::UploadUrl | Route::Upload => &[Method::Post],
            Route::Image => &[Method::Get, Method::Delete],
            Route::OpenApi | Route::Health => &[Method::Get],
        }
    }
}

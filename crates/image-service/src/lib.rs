//! The image service Worker (`wrangler-image.toml`).
//!
//! | route | auth | module |
//! |---|---|---|
//! | `POST /generate-image-upload-url` | API key, rate limited | [`uploads`] |
//! | `POST /upload` | API key, rate limited | [`uploads`] |
//! | `GET`/`HEAD /assets/images/{app_id}/{image_id}` | public | [`assets`] |
//! | `GET`/`HEAD /cdn-cgi/image/{options}/assets/...` | public (local passthrough; the edge answers it in production) | [`assets`] |
//! | `GET /openapi.json`, `GET /health` | public | here |
//!
//! Configuration is read once per request ([`settings`]); errors become JSON
//! in one place (`worker_kit::respond`), and our own faults go to the logs
//! and Sentry.

mod assets;
mod settings;
mod uploads;

use media_core::api::IMAGE_ASSETS_PREFIX;
use media_core::transform::TRANSFORM_PATH_PREFIX;
use worker::{event, Context, Env, Method, Request, Response};
use worker_kit::respond::{json, known_method, method_not_allowed_response, no_route, preflight};
use worker_kit::Handled;

use settings::ImageSettings;

pub(crate) const SERVICE: &str = "image-service";
/// The OpenAPI document of the public routes, kept in the repository.
const OPENAPI: &str = include_str!("../../../openapi/image-service.json");

#[event(start)]
fn start() {
    worker_kit::logging::init(SERVICE);
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let (env, ctx) = (&env, &ctx);
    worker_kit::entry::handle(SERVICE, req, env, ctx, ImageSettings::load(env), |req, settings| async move { route(req, env, ctx, &settings).await }).await
}

/// The origin used in the URLs this service hands out.
fn public_base(req: &Request, settings: &ImageSettings) -> String {
    settings.public_base.clone().unwrap_or_else(|| req.url().map(|u| u.origin().ascii_serialization()).unwrap_or_default())
}

async fn route(req: Request, env: &Env, ctx: &Context, settings: &ImageSettings) -> Handled {
    let path = req.path();
    // `None` for methods the runtime binding would otherwise report as GET.
    let method = known_method(&req);
    if path.starts_with(IMAGE_ASSETS_PREFIX) || path.starts_with(TRANSFORM_PATH_PREFIX) {
        return match method {
            Some(Method::Get | Method::Head) if path.starts_with(IMAGE_ASSETS_PREFIX) => assets::serve_asset(req, env).await,
            Some(Method::Get | Method::Head) => assets::transform_passthrough(req, env).await,
            Some(Method::Options) => preflight("GET, HEAD, OPTIONS"),
            _ => Ok(method_not_allowed_response("GET, HEAD, OPTIONS")),
        };
    }
    let route = match path.as_str() {
        "/generate-image-upload-url" => Route::UploadUrl,
        "/upload" => Route::Upload,
        "/openapi.json" => Route::OpenApi,
        "/health" | "/" => Route::Health,
        _ => return Err(no_route(&path)),
    };
    let allowed = route.method();
    match method {
        Some(Method::Options) => return preflight(&format!("{allowed}, OPTIONS")),
        Some(m) if m == allowed => {}
        _ => return Ok(method_not_allowed_response(&format!("{allowed}, OPTIONS"))),
    }
    let base = public_base(&req, settings);
    match route {
        Route::UploadUrl => uploads::generate_image_upload_url(req, env, settings, &base).await,
        Route::Upload => uploads::upload(req, env, ctx, settings, &base).await,
        Route::OpenApi => {
            let mut resp = Response::ok(OPENAPI)?;
            resp.headers_mut().set("content-type", "application/json; charset=utf-8")?;
            Ok(resp)
        }
        Route::Health => json(200, &serde_json::json!({ "service": SERVICE, "status": "ok", "version": env!("CARGO_PKG_VERSION") })),
    }
}

/// The fixed-path routes.
enum Route {
    UploadUrl,
    Upload,
    OpenApi,
    Health,
}

impl Route {
    fn method(&self) -> Method {
        match self {
            Route::UploadUrl | Route::Upload => Method::Post,
            Route::OpenApi | Route::Health => Method::Get,
        }
    }
}

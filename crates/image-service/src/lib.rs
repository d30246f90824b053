//! The image service Worker (`wrangler-image.toml`): presigned and
//! server-to-server image uploads, public serving of originals under
//! `/assets/`, and transform URLs for resized variants.

use worker::{event, Context, Env, Method, Request, Response};
use worker_kit::respond::{error_response, json, method_not_allowed, no_route, with_cors};
use worker_kit::Handled;

const SERVICE: &str = "image-service";

#[event(start)]
fn start() {
    worker_kit::logging::init(SERVICE);
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let origin = req.headers().get("origin").ok().flatten();
    let resp = route(req, &env).await.unwrap_or_else(|f| error_response(&f.to_api_error()));
    Ok(with_cors(resp, "*", origin.as_deref()))
}

async fn route(req: Request, _env: &Env) -> Handled {
    match (req.path().as_str(), req.method()) {
        ("/health" | "/", Method::Get) => json(200, &serde_json::json!({ "service": SERVICE, "status": "ok", "version": env!("CARGO_PKG_VERSION") })),
        ("/health" | "/", _) => Err(method_not_allowed("GET")),
        (path, _) => Err(no_route(path)),
    }
}

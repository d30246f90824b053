//! Serving images. `GET`/`HEAD /assets/{key}` streams an original from
//! storage, where `{key}` must be exactly the canonical key of an image
//! (`images/{app_id}/{image_id}`, see `media_core::keys`): that, not path
//! cleaning, is what keeps requests inside the image prefix.
//!
//! `GET`/`HEAD /cdn-cgi/image/{options}/assets/{key}` is the transformation
//! URL. In production Cloudflare answers it at the zone before the Worker
//! runs; in local development (no image transformations in `wrangler dev`)
//! this serves the original unchanged, marked `x-image-transform:
//! passthrough`, after checking the options the way the edge would.

use media_core::api::IMAGE_ASSETS_PREFIX;
use media_core::keys::{CachePolicy, ObjectKey};
use media_core::media::ImageType;
use media_core::http::media_type;
use media_core::transform::{decode_options, parse_options, split_transform_path};
use media_core::ApiError;
use worker::{Env, Request};
use worker_kit::serve::serve_object_as;
use worker_kit::store::{AnyStore, ObjectInfo};
use worker_kit::{Failure, Handled};

/// The type an image is served with: what storage recorded, when that is an
/// accepted image type (in its canonical spelling), else a type no browser
/// renders. (A presigned upload is bound to an accepted type, but the
/// object could have been written another way.)
fn served_content_type(info: &ObjectInfo) -> String {
    info.content_type
        .as_deref()
        .and_then(|ct| ImageType::from_content_type(media_type(ct)))
        .map_or("application/octet-stream", ImageType::content_type)
        .to_owned()
}

fn no_such_image() -> Failure {
    ApiError::not_found("no such image; use the asset_url or transform_url the upload returned (/assets/images/{app_id}/{image_id})").into()
}

/// Streams the image at `key` (already checked to be an image key).
async fn serve_image(req: &Request, env: &Env, key: &str) -> Handled {
    let store = AnyStore::from_env(env)?;
    let mut resp = serve_object_as(&store, key, req, CachePolicy::Immutable.header_value(), served_content_type, "this image").await?;
    // Lets pages that require CORP (cross-origin isolation) embed the images.
    resp.headers_mut().set("cross-origin-resource-policy", "cross-origin")?;
    Ok(resp)
}

/// The object key in an asset path (`images/...` of `/assets/images/...`),
/// if it is the canonical key of an image.
fn image_key(asset_path: &str) -> Option<&str> {
    let key = asset_path.strip_prefix(IMAGE_ASSETS_PREFIX)?;
    matches!(ObjectKey::parse(key), Some(ObjectKey::Image { .. })).then_some(key)
}

/// `GET`/`HEAD /assets/{key}`.
pub async fn serve_asset(req: Request, env: &Env) -> Handled {
    let path = req.path();
    let key = image_key(&path).ok_or_else(no_such_image)?;
    serve_image(&req, env, key).await
}

/// `GET`/`HEAD /cdn-cgi/image/{options}/{source}` in local development.
pub async fn transform_passthrough(req: Request, env: &Env) -> Handled {
    let path = req.path();
    let (options, source) = split_transform_path(&path).ok_or_else(no_such_image)?;
    parse_options(&decode_options(options)?)?;
    // Cloudflare reads the source as an absolute path on the zone (or a full
    // URL, which this service never hands out).
    let source_path = format!("/{source}");
    let key = image_key(&source_path).ok_or_else(|| {
        Failure::from(ApiError::not_found(
            "the image to transform must be one of this service's images: /cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}",
        ))
    })?;
    let mut resp = serve_image(&req, env, key).await?;
    resp.headers_mut().set("x-image-transform", "passthrough")?;
    Ok(resp)
}

//! Serving images. `GET`/`HEAD /assets/{key}` streams an original from
//! storage, where `{key}` must be exactly the canonical key of an image
//! (`images/{app_id}/{image_id}`, see `media_core::keys`): that, not path
//! cleaning, is what keeps requests inside the image prefix.
//!
//! Only checked images are served: each has its record ([`crate::records`]:
//! made by `/upload`, or by the first use of a presigned upload or its
//! check once the URL has expired, whichever comes first), which names
//! the version checked (its ETag), and only that version is served: an
//! object replaced afterwards (a second `PUT` to a live URL) is 404. Served images
//! are kept at the edge for a year (the Cache API), so a repeat costs no
//! storage operation; requests the edge does not answer count against the
//! client address's `PUBLIC_RATE_LIMITER` budget.
//! (Transformed images are [`crate::variants`].)

use media_core::http::media_type;
use media_core::http::purge::image_tag;
use media_core::ids::{AppId, ImageId};
use media_core::keys::{CachePolicy, ObjectKey};
use media_core::media::ImageType;
use media_core::wire::api::IMAGE_ASSETS_PREFIX;
use worker::Request;
use worker_kit::ratelimit::enforce_public;
use worker_kit::serve::{edge_hit, serve_object, EdgeCache, ServeSpec};
use worker_kit::store::{ObjectInfo, ObjectStore};
use worker_kit::Handled;

use crate::records::no_such_image;
use crate::{image_object, signed, ImageContext};

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

/// Serves the image at `key` (already checked to be an image key of `app`).
async fn serve_image(req: &Request, cx: &ImageContext<'_>, key: &str, app: &AppId, image: &ImageId) -> Handled {
    let origin = req.url()?.origin().ascii_serialization();
    // A signed request is verified first, and looks only among signed copies.
    let signed = signed::check(req, cx, app).await?;
    let cache_key = signed::cache_key(&origin, &format!("{IMAGE_ASSETS_PREFIX}{key}"), signed);
    // Only checked images ever reach the edge cache: a hit is served as it is.
    if let Some(mut hit) = edge_hit(&cache_key, req).await? {
        hit.headers_mut().set("cross-origin-resource-policy", "cross-origin")?;
        signed::for_client(&mut hit, signed)?;
        return Ok(hit);
    }
    enforce_public(cx.env, req, "assets").await?;
    let record = image_object::record_or_vet(cx, key, app, image).await?;
    signed::require(record.meta.require_signed_urls, signed)?;
    let store = cx.store()?;
    let host = req.url()?.host_str().unwrap_or_default().to_owned();
    let cache_control = cx.common.purge.edge_cache_control(CachePolicy::Immutable.header_value(), &host);
    let spec = ServeSpec {
        key,
        what: "this image",
        cache_control: &cache_control,
        known_size: Some(record.meta.size),
        pinned_etag: record.etag,
        edge_cache: Some(EdgeCache { key: cache_key, ctx: cx.execution, tags: vec![image_tag(app, image)] }),
    };
    let vetting_ops = store.operations();
    let mut resp = serve_object(store, req, spec, served_content_type).await?;
    if vetting_ops > 0 {
        resp.headers_mut().append("server-timing", &format!("vet;desc=\"ops={vetting_ops}\""))?;
    }
    // Lets pages that require CORP (cross-origin isolation) embed the images.
    resp.headers_mut().set("cross-origin-resource-policy", "cross-origin")?;
    signed::for_client(&mut resp, signed)?;
    Ok(resp)
}

/// The ids in an asset path (`images/...` of `/assets/images/...`), if it
/// is the canonical key of an image.
fn image_key(asset_path: &str) -> Option<(&str, AppId, ImageId)> {
    let key = asset_path.strip_prefix(IMAGE_ASSETS_PREFIX)?;
    match ObjectKey::parse(key) {
        Some(ObjectKey::Image { app, image }) => Some((key, app, image)),
        _ => None,
    }
}

/// `GET`/`HEAD /assets/{key}`.
pub async fn serve_asset(req: Request, cx: &ImageContext<'_>) -> Handled {
    let path = req.path();
    let (key, app, image) = image_key(&path).ok_or_else(no_such_image)?;
    serve_image(&req, cx, key, &app, &image).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_key_of_an_image_is_served() {
        let (key, app, image) = image_key("/assets/images/app-a/img_1").unwrap();
        assert_eq!((key, app.as_str(), image.as_str()), ("images/app-a/img_1", "app-a", "img_1"));
        for path in [
            "/assets/images/app-a/img_1/",
            "/assets/images/app-a/../app-b/img_1",
            "/assets/images/app-a/./img_1",
            "/assets/images/app-a",
            "/assets/images//img_1",
            "/assets/images/app%2Fa/img_1",
            "/assets/raw/app-a/v/source.mp4",
            "/assets/hls/app-a/v/k3v9/master.m3u8",
            "/images/app-a/img_1",
            "/assets//images/app-a/img_1",
        ] {
            assert!(image_key(path).is_none(), "{path}");
        }
    }

    #[test]
    fn an_image_is_served_with_its_accepted_type_or_one_no_browser_renders() {
        let info = |ct: Option<&str>| ObjectInfo {
            size: 1,
            etag: "\"e\"".into(),
            content_type: ct.map(str::to_owned),
            version: None,
        };
        assert_eq!(served_content_type(&info(Some("image/png"))), "image/png");
        assert_eq!(served_content_type(&info(Some("IMAGE/JPG; charset=binary"))), "image/jpeg");
        for stored in [Some("text/html"), Some("image/svg+xml"), Some(""), None] {
            assert_eq!(served_content_type(&info(stored)), "application/octet-stream", "{stored:?}");
        }
    }
}

//! `POST /images/{app_id}/{image_id}/access` `{"require_signed_urls": bool}`
//! (API key, only for an app the key may act for): whether the image's
//! original and variants answer only to signed URLs ([`crate::signed`]).
//! Answers the image as `GET /images` does.
//!
//! The flag goes to the image's object (the authority a later check of an
//! unrecorded image reads, [`crate::image_object`]) and then to its KV
//! record, where public reads look. Turning an image private also drops its
//! copies from the edge caches ([`crate::delete::drop_from_edge`]: this
//! location at once, every location by a purge of its cache tag), so that
//! copies cached while it was public stop serving. Other locations read
//! the record through KV's cache, so the change reaches them within KV's
//! propagation (up to 60 s).

use media_core::ids::{AppId, ImageId};
use media_core::image::variant::variant_prefix;
use media_core::keys::ObjectKey;
use media_core::wire::api::{ImageLocation, ImageUploadResponse};
use media_core::wire::private_images::ImageAccessRequest;
use media_core::wire::routes::Pattern;
use media_core::ApiError;
use worker::Request;
use worker_kit::body::read_body;
use worker_kit::entry::guard;
use worker_kit::reply::json;
use worker_kit::store::ObjectStore;
use worker_kit::{Failure, Handled};

use crate::image_object::{self, ImageCommand};
use crate::{delete, records, ImageContext};

const PATH: Pattern = Pattern::Template("/images/{app_id}/{image_id}/access");
const MAX_JSON_BODY: u64 = 1024;

/// `POST /images/{app_id}/{image_id}/access`: 200 with the image.
pub async fn set_access(mut req: Request, cx: &ImageContext<'_>, base: &str) -> Handled {
    let grant = guard(&req, cx, "image-access").await?;
    let path = req.path();
    let params = PATH.params(&path).unwrap_or_default();
    let (Some(app), Some(image)) = (params.first(), params.get(1)) else {
        return Err(ApiError::not_found("the path is /images/{app_id}/{image_id}/access").into());
    };
    let app = AppId::parse(app).map_err(|e| ApiError::invalid_field(format!("app_id in the path: {e}")))?;
    let image = ImageId::parse(image).map_err(|e| ApiError::invalid_field(format!("image_id in the path: {e}")))?;
    grant.check_app(&app)?;
    let asked = ImageAccessRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
    let private = asked.require_signed_urls;
    let key = ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string();
    let mut record = image_object::record_or_vet(cx, &key, &app, &image).await?;
    let set = ImageCommand::SetAccess { require_signed_urls: private };
    let _: bool = image_object::ask(cx.env, &app, &image, &set).await?;
    let changed = record.meta.require_signed_urls != private;
    if changed {
        record.meta.require_signed_urls = private;
        records::write(cx.env, &app, &image, &record)
            .await
            .map_err(|e| Failure::Unavailable { detail: format!("writing the image record: {e}") })?;
    }
    if private {
        // Copies cached while it was public must not keep serving (done on a repeat too: it is cheap and
        // covers a purge that failed before).
        let variants = variant_keys(cx.store()?, &variant_prefix(&app, &image)).await?;
        delete::drop_from_edge(cx, &req, &app, &image, &variants).await?;
    }
    tracing::info!(app_id = %app, image_id = %image, require_signed_urls = private, changed, "image access set");
    let location = ImageLocation::of(base, &app, &image, &cx.settings.transform);
    json(200, &ImageUploadResponse { location, meta: record.meta })
}

/// The keys of the image's stored variants.
async fn variant_keys(store: &impl ObjectStore, prefix: &str) -> Result<Vec<String>, Failure> {
    let mut keys = Vec::new();
    loop {
        let page = store.list_after(prefix, keys.last().map(String::as_str)).await?;
        keys.extend(page.keys);
        if !page.more {
            return Ok(keys);
        }
    }
}

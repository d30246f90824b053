//! Serving images. `GET`/`HEAD /assets/{key}` streams an original from
//! storage, where `{key}` must be exactly the canonical key of an image
//! (`images/{app_id}/{image_id}`, see `media_core::keys`): that, not path
//! cleaning, is what keeps requests inside the image prefix.
//!
//! Only checked images are served. `/upload` checks the bytes before it
//! stores them and writes the image's KV record; a presigned upload goes
//! straight to storage, so its first serve checks it
//! (`ImageRecord::vet`: size, stored type, leading bytes) and writes the
//! record, or removes the object and answers 404. The record names the
//! version checked (its ETag), and only that version is served: an object
//! replaced afterwards (a second `PUT` to a live URL) is 404. Served images
//! are kept at the edge for a year (the Cache API), so a repeat costs no
//! storage operation.
//!
//! `GET`/`HEAD /cdn-cgi/image/{options}/assets/{key}` is the transformation
//! URL. In production Cloudflare answers it at the zone before the Worker
//! runs; in local development (no image transformations in `wrangler dev`)
//! this serves the original unchanged, marked `x-image-transform:
//! passthrough`, after checking the options the way the edge would.

use media_core::api::{ImageRecord, IMAGE_ASSETS_PREFIX, IMAGE_SNIFF_BYTES};
use media_core::http::{media_type, single_etag_condition, RangeSpec};
use media_core::ids::{AppId, ImageId};
use media_core::keys::{CachePolicy, ObjectKey};
use media_core::media::ImageType;
use media_core::time::Timestamp;
use media_core::transform::{decode_options, parse_options, split_transform_path};
use media_core::ApiError;
use worker::{Env, Request};
use worker_kit::clock::now;
use worker_kit::serve::{from_edge_cache, serve_object, server_timing, ServeSpec};
use worker_kit::store::{collect_body, ObjectInfo, ObjectStore, ReadOutcome, ReadRequest};
use worker_kit::{Failure, Handled};

use crate::uploads::{image_record_key, KV_BINDING};
use crate::ImageContext;

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
    ApiError::not_found(
        "no such image; use the asset_url or transform_url the upload returned (/assets/images/{app_id}/{image_id})",
    )
    .into()
}

/// The image's KV record, if it has one. A failed read is treated as none:
/// the image is then checked again, which costs a read, never a wrong serve.
async fn record(env: &Env, app: &AppId, image: &ImageId) -> Option<ImageRecord> {
    let kv = env.kv(KV_BINDING).ok()?;
    kv.get(&image_record_key(app, image)).json().await.unwrap_or_else(|e| {
        tracing::warn!(app_id = %app, image_id = %image, error = %e, "reading the image record failed; checking the image again");
        None
    })
}

/// Checks an image that has no record (a presigned upload, never seen by
/// the service): one ranged read of its first bytes. Returns its record
/// (checked at `checked_at`), for the caller to keep; a refused
/// object is removed and answered 404.
async fn check_unrecorded(
    store: &impl ObjectStore,
    max_image_bytes: u64,
    key: &str,
    (app, image): (&AppId, &ImageId),
    checked_at: Timestamp,
) -> Result<ImageRecord, Failure> {
    let read = ReadRequest { range: Some(RangeSpec::FromTo(0, IMAGE_SNIFF_BYTES - 1)), ..ReadRequest::default() };
    let (info, body) = match store.read(key, &read).await? {
        None => return Err(no_such_image()),
        Some(ReadOutcome::Body { info, body, .. }) => (info, body),
        // Only an empty object has no first byte.
        Some(ReadOutcome::RangeNotSatisfiable { size }) => (
            ObjectInfo { size: size.unwrap_or(0), etag: String::new(), content_type: None },
            worker::ResponseBody::Empty,
        ),
        Some(ReadOutcome::NotModified { .. } | ReadOutcome::PreconditionFailed) => {
            return Err(Failure::internal("an unconditional read answered as a conditional one"))
        }
    };
    let head = collect_body(body).await?;
    let etag = single_etag_condition(Some(&info.etag)).unwrap_or_default();
    match ImageRecord::vet(info.content_type.as_deref(), info.size, &head, max_image_bytes, &etag, checked_at) {
        Ok(rec) => {
            tracing::info!(app_id = %app, image_id = %image, size = info.size, content_type = %rec.meta.content_type, "presigned image checked before its first serve");
            Ok(rec)
        }
        Err(refusal) => {
            tracing::warn!(app_id = %app, image_id = %image, size = info.size, stored_type = ?info.content_type, reason = %refusal, "presigned upload refused and removed: not an image we serve");
            store.delete(key).await?;
            Err(ApiError::not_found(format!("no such image: what was uploaded under this id was refused ({refusal}) and removed; upload an accepted image under a new id")).into())
        }
    }
}

/// [`check_unrecorded`], then the record kept in KV. A failed write is
/// logged: the image is served all the same (the version checked), and the
/// next request only checks again.
async fn vet(
    store: &impl ObjectStore,
    env: &Env,
    max_image_bytes: u64,
    key: &str,
    app: &AppId,
    image: &ImageId,
) -> Result<ImageRecord, Failure> {
    let rec = check_unrecorded(store, max_image_bytes, key, (app, image), now()).await?;
    let written = async {
        let text = serde_json::to_string(&rec).map_err(|e| e.to_string())?;
        let kv = env.kv(KV_BINDING).map_err(|e| e.to_string())?;
        kv.put(&image_record_key(app, image), text)
            .map_err(|e| e.to_string())?
            .execute()
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = written.await {
        tracing::error!(app_id = %app, image_id = %image, error = %e, "writing the image record failed");
    }
    Ok(rec)
}

/// Serves the image at `key` (already checked to be an image key of `app`).
async fn serve_image(req: &Request, cx: &ImageContext<'_>, key: &str, app: &AppId, image: &ImageId) -> Handled {
    let origin = req.url()?.origin().ascii_serialization();
    let cache_key = format!("{origin}{IMAGE_ASSETS_PREFIX}{key}");
    // Only checked images ever reach the edge cache: a hit is served as it is.
    if let Some(mut hit) = from_edge_cache(&cache_key, req).await.unwrap_or(None) {
        hit.headers_mut().append("server-timing", &server_timing(true, 0))?;
        hit.headers_mut().set("cross-origin-resource-policy", "cross-origin")?;
        return Ok(hit);
    }
    let store = cx.store()?;
    let record = match record(cx.env, app, image).await {
        Some(rec) => rec,
        None => vet(store, cx.env, cx.settings.max_image_bytes, key, app, image).await?,
    };
    let spec = ServeSpec {
        key,
        what: "this image",
        cache_control: CachePolicy::Immutable.header_value(),
        known_size: Some(record.meta.size),
        pinned_etag: record.etag,
        edge_cache: Some((cache_key, cx.execution)),
    };
    let vetting_ops = store.operations();
    let mut resp = serve_object(store, req, spec, served_content_type).await?;
    if vetting_ops > 0 {
        resp.headers_mut().append("server-timing", &format!("vet;desc=\"ops={vetting_ops}\""))?;
    }
    // Lets pages that require CORP (cross-origin isolation) embed the images.
    resp.headers_mut().set("cross-origin-resource-policy", "cross-origin")?;
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

/// `GET`/`HEAD /cdn-cgi/image/{options}/{source}` in local development.
pub async fn transform_passthrough(req: Request, cx: &ImageContext<'_>) -> Handled {
    let path = req.path();
    let (options, source) = split_transform_path(&path).ok_or_else(no_such_image)?;
    parse_options(&decode_options(options)?)?;
    // Cloudflare reads the source as an absolute path on the zone (or a full
    // URL, which this service never hands out).
    let source_path = format!("/{source}");
    let (key, app, image) = image_key(&source_path).ok_or_else(|| {
        Failure::from(ApiError::not_found(
            "the image to transform must be one of this service's images: /cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}",
        ))
    })?;
    let mut resp = serve_image(&req, cx, key, &app, &image).await?;
    resp.headers_mut().set("x-image-transform", "passthrough")?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use worker_kit::store::memory::{block_on, MemoryStore};

    use super::*;

    const KEY: &str = "images/app-a/img_1";
    /// The leading bytes of a 2 x 3 PNG.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x02\0\0\0\x03\x08\x06\0\0\0";
    /// 2026-11-30T03:00:00Z.
    const CHECKED_AT: Timestamp = Timestamp::from_secs(1_796_007_600);

    fn check(store: &MemoryStore, max: u64) -> Result<ImageRecord, Failure> {
        let (app, image) = (AppId::parse("app-a").unwrap(), ImageId::parse("img_1").unwrap());
        block_on(check_unrecorded(store, max, KEY, (&app, &image), CHECKED_AT))
    }

    fn not_found_message(result: Result<ImageRecord, Failure>) -> String {
        match result {
            Err(Failure::Client(e)) if e.status() == 404 => e.message,
            other => panic!("not a 404: {other:?}"),
        }
    }

    #[test]
    fn a_presigned_image_is_checked_by_its_first_bytes_and_recorded_with_its_version() {
        let store = MemoryStore::new();
        let mut bytes = PNG.to_vec();
        bytes.resize(IMAGE_SNIFF_BYTES as usize * 2, 0);
        let etag = store.insert(KEY, bytes, Some("image/png"));
        let rec = check(&store, 1 << 20).unwrap();
        assert_eq!(rec.etag.as_deref(), Some(etag.trim_matches('"')));
        assert_eq!((rec.meta.content_type.as_str(), rec.meta.size), ("image/png", IMAGE_SNIFF_BYTES * 2));
        assert_eq!(rec.meta.uploaded_at, CHECKED_AT);
        assert_eq!(store.operations(), 1, "one ranged read");
    }

    #[test]
    fn a_refused_upload_is_removed_and_answered_404() {
        for (stored_type, bytes, max) in [
            (Some("text/html"), PNG, 1 << 20),
            (None, PNG, 1 << 20),
            (Some("image/png"), &b"GIF89a......"[..], 1 << 20),
            (Some("image/png"), PNG, 8),
            (Some("image/png"), &b""[..], 1 << 20),
        ] {
            let store = MemoryStore::new();
            store.insert(KEY, bytes, stored_type);
            let message = not_found_message(check(&store, max));
            assert!(message.contains("was refused") && message.contains("removed"), "{message}");
            assert!(!store.contains(KEY), "{stored_type:?} {max}: removed");
        }
        assert!(not_found_message(check(&MemoryStore::new(), 1 << 20)).starts_with("no such image; use the asset_url"));
    }

    #[test]
    fn storage_that_fails_is_503_and_nothing_is_removed() {
        let store = MemoryStore::new();
        store.insert(KEY, PNG, Some("image/png"));
        store.fail("GET", "images/");
        assert_eq!(check(&store, 1 << 20).unwrap_err().to_reply().status, 503);
        // A refusal whose removal fails is not answered as done.
        let store = MemoryStore::new();
        store.insert(KEY, PNG, Some("text/html"));
        store.fail("DELETE", "images/");
        assert_eq!(check(&store, 1 << 20).unwrap_err().to_reply().status, 503);
        assert!(store.contains(KEY));
    }

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
        let info = |ct: Option<&str>| ObjectInfo { size: 1, etag: "\"e\"".into(), content_type: ct.map(str::to_owned) };
        assert_eq!(served_content_type(&info(Some("image/png"))), "image/png");
        assert_eq!(served_content_type(&info(Some("IMAGE/JPG; charset=binary"))), "image/jpeg");
        for stored in [Some("text/html"), Some("image/svg+xml"), Some(""), None] {
            assert_eq!(served_content_type(&info(stored)), "application/octet-stream", "{stored:?}");
        }
    }
}

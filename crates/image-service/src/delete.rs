//! `DELETE /images?app_id=&image_id=`: deletes an image for good. An API
//! key that may act for `app_id` (403 otherwise), counted against its rate
//! limit. Removes the original (`images/{app}/{image}`), its stored
//! variants (`images/{app}/{image}/...`) and its KV metadata record, then
//! drops the image and its variants from this location's edge cache at once,
//! and from every other location with one purge by the image's cache tag
//! after the answer (`worker_kit::purge`; without a configured purge, other
//! locations keep their copy for at most `EDGE_TTL_WITHOUT_PURGE_S`: see
//! docs/operating.md). A delete that removed anything is announced as
//! `image.deleted` ([`crate::events`]). A repeat answers zeros (and purges
//! again, announcing nothing).

use media_core::http::purge::image_tag;
use media_core::ids::{AppId, ImageId};
use media_core::image::variant::{cache_paths_of, variant_prefix};
use media_core::keys::ObjectKey;
use media_core::wire::api::{DeleteImageResponse, DeletedImage, IMAGE_ASSETS_PREFIX};
use worker::{Cache, Request};
use worker_kit::purge::host_of;
use worker_kit::reply::json;
use worker_kit::store::{delete_prefix_keys, ObjectStore};
use worker_kit::{Failure, Handled};

use crate::image_object::{self, ImageCommand};
use crate::records::{image_record_key, KV_BINDING};
use crate::signed::{self, Signed};
use crate::{keyed_image, ImageContext};

/// `DELETE /images`: 200 with what was removed.
pub async fn delete_image(req: Request, cx: &ImageContext<'_>) -> Handled {
    let (app_id, image_id) = keyed_image(&req, cx, "delete-image").await?;
    let key = ObjectKey::Image { app: app_id.clone(), image: image_id.clone() }.to_string();
    let store = cx.store()?;
    // Variants first: while the original stands, a request can still make
    // one, which a retry of this delete then removes.
    let prefix = variant_prefix(&app_id, &image_id);
    let variants = delete_prefix_keys(store, &prefix).await?;
    let objects = delete_original(store, &key).await? + variants.len() as u64;
    let record = remove_record(cx, &app_id, &image_id).await?;
    // A later image under this id starts public (ids are not meant to be reused).
    if record {
        let public = ImageCommand::SetAccess { require_signed_urls: false };
        let _: bool = image_object::ask(cx.env, &app_id, &image_id, &public).await?;
    }
    drop_from_edge(cx, &req, &app_id, &image_id, &variants).await?;
    if objects > 0 || record {
        crate::events::image_deleted(cx.env, &cx.settings.events, &app_id, &image_id).await;
    }
    tracing::info!(%app_id, %image_id, objects, variants = variants.len(), record, "image deleted");
    json(200, &DeleteImageResponse { app_id, image_id, deleted: DeletedImage { objects, record } })
}

/// Drops the image's answers from the edge caches: the original and the
/// answers of each stored variant (`variants`, their object keys) at once
/// from this location's cache, under the request's origin and the public
/// base; then, after the answer, every location's copies, signed ones too,
/// with one purge by the image's cache tag (see `worker_kit::purge`).
pub(crate) async fn drop_from_edge(
    cx: &ImageContext<'_>,
    req: &Request,
    app_id: &AppId,
    image_id: &ImageId,
    variants: &[String],
) -> Result<(), Failure> {
    let key = ObjectKey::Image { app: app_id.clone(), image: image_id.clone() }.to_string();
    let prefix = variant_prefix(app_id, image_id);
    // The paths it is cached under: the original, and each variant's answers.
    let mut paths = vec![format!("{IMAGE_ASSETS_PREFIX}{key}")];
    for variant in variants {
        let name = variant.strip_prefix(&prefix).unwrap_or(variant);
        paths.extend(cache_paths_of(app_id, image_id, name).unwrap_or_default());
    }
    // ... as requested here, and under the public base.
    let own = req.url()?.origin().ascii_serialization();
    let mut origins = vec![own, cx.public_base(req)];
    origins.dedup();
    for origin in &origins {
        for path in &paths {
            for signed in [None, Some(Signed { exp: 0 })] {
                let cached = signed::cache_key(origin, path, signed);
                if let Err(e) = Cache::default().delete(cached, false).await {
                    tracing::warn!(%app_id, %image_id, path, error = %e, "dropping from the edge cache failed");
                }
            }
        }
    }
    // Every location: one purge by the image's tag, after the answer (see worker_kit::purge).
    // Judged by the host images are served from, which may not be the one this call came to.
    let public_host = host_of(&cx.public_base(req));
    cx.purge_tags(&public_host, vec![image_tag(app_id, image_id)]);
    Ok(())
}

/// Deletes the original at `key`; how many objects that removed (0 or 1).
async fn delete_original(store: &impl ObjectStore, key: &str) -> Result<u64, Failure> {
    let existed = store.head(key).await?.is_some();
    if existed {
        store.delete(key).await?;
    }
    Ok(u64::from(existed))
}

/// Removes the image's KV record; whether there was one.
async fn remove_record(cx: &ImageContext<'_>, app: &AppId, image: &ImageId) -> Result<bool, Failure> {
    let unavailable = |e: worker::Error| Failure::Unavailable { detail: format!("{KV_BINDING}: {e}") };
    let kv = cx.env.kv(KV_BINDING).map_err(unavailable)?;
    let key = image_record_key(app, image);
    let existed = kv.get(&key).text().await.map_err(|e| unavailable(e.into()))?.is_some();
    if existed {
        kv.delete(&key).await.map_err(|e| unavailable(e.into()))?;
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use worker_kit::store::memory::{block_on, MemoryStore};

    use super::*;

    #[test]
    fn the_original_is_deleted_once_and_a_failing_store_keeps_it() {
        let store = MemoryStore::new();
        store.insert("images/app-a/img1", b"x".to_vec(), Some("image/png"));
        store.insert("images/app-a/img10", b"x".to_vec(), Some("image/png"));
        assert_eq!(block_on(delete_original(&store, "images/app-a/img1")).unwrap(), 1);
        assert!(!store.contains("images/app-a/img1"));
        assert!(store.contains("images/app-a/img10"), "only that image, not those its id begins");
        assert_eq!(block_on(delete_original(&store, "images/app-a/img1")).unwrap(), 0);

        store.fail("DELETE", "images/");
        let f = block_on(delete_original(&store, "images/app-a/img10")).unwrap_err();
        assert_eq!(f.to_reply().status, 503);
        assert!(store.contains("images/app-a/img10"));
    }
}

//! `DELETE /images?app_id=&image_id=`: deletes an image for good. An API
//! key that may act for `app_id` (403 otherwise), counted against its rate
//! limit. Removes the original (`images/{app}/{image}`: the only object an
//! image has; its variants are made at the edge by Cloudflare Images and
//! never stored) and its KV metadata record, then drops the image from
//! this location's edge cache, where `/assets/...` would otherwise keep
//! serving it (other locations keep their copy until evicted or purged:
//! see the README's "Deleting"). A repeat answers zeros.

use media_core::api::{query_id, DeleteImageResponse, DeletedImage, IMAGE_ASSETS_PREFIX};
use media_core::ids::{AppId, ImageId};
use media_core::keys::ObjectKey;
use worker::{Cache, Request};
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::store::ObjectStore;
use worker_kit::{Failure, Handled};

use crate::uploads::{image_record_key, KV_BINDING};
use crate::ImageContext;

/// `DELETE /images`: 200 with what was removed.
pub async fn delete_image(req: Request, cx: &ImageContext<'_>) -> Handled {
    let grant = guard(&req, cx, "delete-image").await?;
    let q = query(&req)?;
    let app_id = query_id(&q, "app_id", AppId::parse)?;
    let image_id = query_id(&q, "image_id", ImageId::parse)?;
    grant.check_app(&app_id)?;
    let key = ObjectKey::Image { app: app_id.clone(), image: image_id.clone() }.to_string();
    let objects = delete_original(cx.store()?, &key).await?;
    let record = remove_record(cx, &app_id, &image_id).await?;
    // The URL it is cached under: as requested here, and under the public base.
    let own = req.url()?.origin().ascii_serialization();
    let mut origins = vec![own, cx.public_base(&req)];
    origins.dedup();
    for origin in origins {
        let url = format!("{origin}{IMAGE_ASSETS_PREFIX}{key}");
        if let Err(e) = Cache::default().delete(&url, false).await {
            tracing::warn!(%app_id, %image_id, error = %e, "dropping the image from the edge cache failed");
        }
    }
    tracing::info!(%app_id, %image_id, objects, record, "image deleted");
    json(200, &DeleteImageResponse { app_id, image_id, deleted: DeletedImage { objects, record } })
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

//! Image metadata records: one KV entry per image (`image/{app}/{image}`,
//! an [`ImageRecord`] as JSON: type, size, width, height, the version
//! checked). `/upload` writes it with the image. A presigned upload goes
//! straight to storage, so its record is made the first time anything asks
//! for the image (a serve, a transform, `GET /images`), or else by the
//! image's object once the upload URL has expired
//! ([`crate::image_object`]): [`vet`] checks the object's first bytes
//! (size, stored type, leading bytes, dimensions) and keeps the record, or
//! removes the object. Only the version checked is ever served or
//! transformed. Each record written is announced as `image.created`
//! ([`crate::events`]).

use media_core::http::{single_etag_condition, RangeSpec};
use media_core::ids::{AppId, ImageId};
use media_core::time::Timestamp;
use media_core::wire::api::{ImageRecord, IMAGE_SNIFF_BYTES};
use media_core::ApiError;
use worker::Env;
use worker_kit::clock::now;
use worker_kit::store::{collect_body, ObjectInfo, ObjectStore, ReadOutcome, ReadRequest};
use worker_kit::Failure;

use crate::events;
use crate::settings::ImageSettings;

/// The KV binding holding image metadata.
pub const KV_BINDING: &str = "MEDIA_KV";

/// The KV key of an image's metadata record ([`ImageRecord`] as JSON).
pub fn image_record_key(app: &AppId, image: &ImageId) -> String {
    format!("image/{app}/{image}")
}

/// Writes an image's record.
pub async fn write(env: &Env, app: &AppId, image: &ImageId, rec: &ImageRecord) -> Result<(), String> {
    let text = serde_json::to_string(rec).map_err(|e| e.to_string())?;
    let kv = env.kv(KV_BINDING).map_err(|e| format!("the {KV_BINDING} binding: {e}"))?;
    kv.put(&image_record_key(app, image), text).map_err(|e| e.to_string())?.execute().await.map_err(|e| e.to_string())
}

pub(crate) fn no_such_image() -> Failure {
    ApiError::not_found(
        "no such image; use the asset_url or transform_url the upload returned (/assets/images/{app_id}/{image_id})",
    )
    .into()
}

/// The image's KV record, if it has one. A failed read is treated as none:
/// the image is then checked again, which costs a read, never a wrong serve.
pub async fn read(env: &Env, app: &AppId, image: &ImageId) -> Option<ImageRecord> {
    let kv = env.kv(KV_BINDING).ok()?;
    kv.get(&image_record_key(app, image)).json().await.unwrap_or_else(|e| {
        tracing::warn!(app_id = %app, image_id = %image, error = %e, "reading the image record failed; checking the image again");
        None
    })
}

/// Checks an image that has no record (a presigned upload, never seen by
/// the service): one ranged read of its first bytes. Returns its record
/// (checked at `checked_at`), for the caller to keep, and the stored
/// object's version; a refused object is removed and answered 404.
async fn check_unrecorded(
    store: &impl ObjectStore,
    max_image_bytes: u64,
    key: &str,
    (app, image): (&AppId, &ImageId),
    checked_at: Timestamp,
) -> Result<(ImageRecord, Option<String>), Failure> {
    let read = ReadRequest { range: Some(RangeSpec::FromTo(0, IMAGE_SNIFF_BYTES - 1)), ..ReadRequest::default() };
    let (info, body) = match store.read(key, &read).await? {
        None => return Err(no_such_image()),
        Some(ReadOutcome::Body { info, body, .. }) => (info, body),
        // Only an empty object has no first byte.
        Some(ReadOutcome::RangeNotSatisfiable { size }) => (
            ObjectInfo { size: size.unwrap_or(0), etag: String::new(), content_type: None, version: None },
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
            Ok((rec, info.version))
        }
        Err(refusal) => {
            tracing::warn!(app_id = %app, image_id = %image, size = info.size, stored_type = ?info.content_type, reason = %refusal, "presigned upload refused and removed: not an image we serve");
            store.delete(key).await?;
            Err(ApiError::not_found(format!("no such image: what was uploaded under this id was refused ({refusal}) and removed; upload an accepted image under a new id")).into())
        }
    }
}

/// [`check_unrecorded`], then the record kept in KV (requiring signed URLs
/// when `private`, asked only once the image has passed its check, says
/// so: the image's object knows it for a private presign, or a record not
/// yet seen here; a request for an id with nothing stored reaches no
/// object) and `image.created` announced ([`crate::events`]). A failed write is logged: the image is
/// served all the same (the version checked), and the next request only
/// checks again (and announces then).
pub async fn vet(
    store: &impl ObjectStore,
    env: &Env,
    settings: &ImageSettings,
    key: &str,
    app: &AppId,
    image: &ImageId,
    private: impl AsyncFnOnce() -> Result<bool, Failure>,
) -> Result<ImageRecord, Failure> {
    let (mut rec, version) = check_unrecorded(store, settings.max_image_bytes, key, (app, image), now()).await?;
    rec.meta.require_signed_urls = private().await?;
    // The stored object's version names this upload: two checks of it are one event, a re-upload another.
    let version = version.unwrap_or_else(|| rec.meta.uploaded_at.millis().to_string());
    match write(env, app, image, &rec).await {
        Ok(()) => events::image_created(env, &settings.events, app, image, &rec, &version).await,
        Err(e) => tracing::error!(app_id = %app, image_id = %image, error = %e, "writing the image record failed"),
    }
    Ok(rec)
}

/// The original's bytes, only in the version its record checked: an object
/// replaced since is not transformed (404, as `/assets/` answers it).
pub(crate) async fn read_original(store: &impl ObjectStore, key: &str, etag: Option<&str>) -> Result<Vec<u8>, Failure> {
    let read = ReadRequest { if_match: etag.map(str::to_owned), ..ReadRequest::default() };
    match store.read(key, &read).await? {
        Some(ReadOutcome::Body { info, body, .. }) => {
            if etag.is_some() && single_etag_condition(Some(&info.etag)).as_deref() != etag {
                return Err(no_such_image());
            }
            Ok(collect_body(body).await?)
        }
        None | Some(ReadOutcome::PreconditionFailed) => Err(no_such_image()),
        Some(ReadOutcome::NotModified { .. } | ReadOutcome::RangeNotSatisfiable { .. }) => {
            Err(Failure::internal("a whole-object read answered as a conditional or ranged one"))
        }
    }
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
        block_on(check_unrecorded(store, max, KEY, (&app, &image), CHECKED_AT)).map(|(rec, _)| rec)
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
    fn only_the_checked_version_of_the_original_is_read() {
        let store = MemoryStore::new();
        let etag = store.insert("images/a/i", b"one".to_vec(), Some("image/png"));
        let bare = etag.trim_matches('"').to_owned();
        assert_eq!(block_on(read_original(&store, "images/a/i", Some(&bare))).unwrap(), b"one");
        store.insert("images/a/i", b"two".to_vec(), Some("image/png"));
        let e = block_on(read_original(&store, "images/a/i", Some(&bare))).unwrap_err();
        assert_eq!(e.to_reply().status, 404, "replaced since it was checked");
        assert_eq!(block_on(read_original(&store, "images/a/none", None)).unwrap_err().to_reply().status, 404);
        store.fail("GET", "images/");
        assert_eq!(block_on(read_original(&store, "images/a/i", None)).unwrap_err().to_reply().status, 503);
    }
}

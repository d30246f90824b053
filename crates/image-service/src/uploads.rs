//! Getting images in. `POST /generate-image-upload-url` hands out a
//! presigned `PUT` so a browser uploads straight to storage; `POST /upload`
//! takes the image through the Worker (server to server), as a form or a raw
//! body, checks that its bytes are the image type claimed, stores it and
//! records its metadata in KV. Both need an API key that may act for the
//! request's `app_id` (403 otherwise), and count against that key's rate
//! limit. An `image_id` names one image for good: its URLs are
//! cached as immutable, so an id already taken is refused (409), never
//! overwritten: both write with `If-None-Match: *` (the presigned URL signs
//! it; `/upload` writes conditionally), so the store itself refuses the
//! second write. A presign also schedules the check of what lands
//! ([`crate::image_object`]).

use media_core::http::auth::KeyGrant;
use media_core::http::media_type;
use media_core::http::multipart::{self, FormPart};
use media_core::http::sigv4::S3Bucket;
use media_core::http::single_etag_condition;
use media_core::ids::{AppId, IdError, ImageId};
use media_core::keys::ObjectKey;
use media_core::media::{check_image_bytes, check_image_type, check_size, describe_bytes, image_dimensions, ImageType};
use media_core::time::Timestamp;
use media_core::wire::api::{
    query_id, ImageLocation, ImageMeta, ImageRecord, ImageUploadResponse, ImageUploadUrlRequest,
    ImageUploadUrlResponse, PresignedPut,
};
use media_core::{ApiError, ErrorCode};
use worker::Request;
use worker_kit::body::read_body;
use worker_kit::clock::{now, random_bytes};
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::store::{ObjectInfo, ObjectStore};
use worker_kit::{Failure, Handled};

use crate::image_object::{self, ImageCommand};
use crate::records;
use crate::settings::ImageSettings;
use crate::ImageContext;

/// The most a JSON request body of these routes may be.
const MAX_JSON_BODY: u64 = 16 * 1024;
/// What a form body may carry besides the file itself: boundaries, part
/// headers and the id fields. The file alone is held to `MAX_IMAGE_BYTES`.
const MAX_FORM_OVERHEAD: u64 = 64 * 1024;
/// The 409 of an `image_id` already taken.
fn taken(app: &AppId, image: &ImageId) -> Failure {
    ApiError::conflict(format!(
        "image_id \"{image}\" is already taken in app \"{app}\"; images are immutable (their URLs are cached for a year), so use a new image_id, or leave it out to get a random one"
    ))
    .into()
}

/// The id of a presign: the caller's, refused early (409) when an image
/// is stored under it, or a fresh random one (128 bits: collisions are not
/// a practical concern, so it is not looked up). The early refusal is a
/// courtesy: what keeps a stored image from being replaced is the URL's
/// signed `If-None-Match: *`, which the store checks as it writes.
async fn presign_image_id(
    store: &impl ObjectStore,
    app: &AppId,
    requested: Option<ImageId>,
) -> Result<ImageId, Failure> {
    match requested {
        Some(image) if store.head(&image_key(app, &image)).await?.is_some() => Err(taken(app, &image)),
        Some(image) => Ok(image),
        None => Ok(ImageId::from_random(random_bytes())),
    }
}

fn image_key(app: &AppId, image: &ImageId) -> String {
    ObjectKey::Image { app: app.clone(), image: image.clone() }.to_string()
}

/// Stores an image `/upload` received under a new id: one conditional
/// write (`If-None-Match: *`, [`ObjectStore::put_if_absent`]), so an id
/// already taken is refused (409), never overwritten, and of two uploads
/// racing for one new id exactly one is stored.
async fn store_new_image(
    store: &impl ObjectStore,
    app: &AppId,
    image: &ImageId,
    bytes: Vec<u8>,
    kind: ImageType,
) -> Result<ObjectInfo, Failure> {
    store.put_if_absent(&image_key(app, image), bytes, kind.content_type()).await?.ok_or_else(|| taken(app, image))
}

/// `POST /generate-image-upload-url`.
pub async fn generate_image_upload_url(mut req: Request, cx: &ImageContext<'_>, base: &str) -> Handled {
    let settings = &cx.settings;
    let grant = guard(&req, cx, "generate-image-upload-url").await?;
    // `size` is required (400 saying what to send) and at most MAX_IMAGE_BYTES (413).
    let r = ImageUploadUrlRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?, settings.max_image_bytes)?;
    grant.check_app(&r.app_id)?;
    check_image_type(&r.content_type)?;
    let image = presign_image_id(cx.store()?, &r.app_id, r.image_id).await?;
    let location = ImageLocation::of(base, &r.app_id, &image, &settings.transform);
    let issued = now();
    let put =
        presign_image_put(cx.presigner()?, &location.key, &r.content_type, r.size, cx.common.upload_ttl_s, issued)?;
    // What lands is checked once the URL can no longer be used, read or not.
    let check_at = issued.plus_secs(u64::from(cx.common.upload_ttl_s) + settings.upload_check_grace_s);
    let check = ImageCommand::CheckUploadAt {
        app: r.app_id.clone(),
        image: image.clone(),
        check_at,
        require_signed_urls: r.require_signed_urls,
    };
    let _: bool = image_object::ask(cx.env, &r.app_id, &image, &check).await?;
    tracing::info!(app_id = %r.app_id, image_id = %image, content_type = %r.content_type, size = r.size, "image upload URL issued");
    json(200, &ImageUploadUrlResponse { put: PresignedPut::from_presigned(put), location })
}

/// The presigned `PUT` of one image, bound (signed headers the uploader
/// must send) to the content type, to exactly `size` bytes, and to
/// `If-None-Match: *`: the URL writes the image once and never replaces it
/// (R2 and S3 refuse the `PUT` with 412 when an object is there; Garage 2.5
/// ignores the header, see docs/image-api.md#garage-and-if-none-match).
fn presign_image_put(
    bucket: &S3Bucket,
    key: &str,
    content_type: &str,
    size: u64,
    ttl_s: u32,
    issued: Timestamp,
) -> Result<media_core::http::sigv4::PresignedRequest, Failure> {
    let headers = [
        ("Content-Type".to_owned(), content_type.trim().to_owned()),
        ("Content-Length".to_owned(), size.to_string()),
        ("If-None-Match".to_owned(), "*".to_owned()),
    ];
    Ok(bucket.presign("PUT", key, &headers, ttl_s, issued)?)
}

/// An image as `/upload` received it, before it is checked.
struct Incoming {
    app: AppId,
    image: Option<ImageId>,
    /// The type the client says the bytes are.
    claimed: ImageType,
    bytes: Vec<u8>,
    /// Served only to signed URLs (the `require_signed_urls` field or query parameter).
    require_signed_urls: bool,
}

/// `require_signed_urls` as a form field or query parameter: `true` or
/// `false` (absent or empty: `false`).
fn flag(value: Option<&str>, as_query: bool) -> Result<bool, ApiError> {
    match value.unwrap_or("") {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        other => {
            let message = format!("require_signed_urls must be true or false, not {other:?}");
            Err(if as_query { ApiError::invalid_query(message) } else { ApiError::invalid_field(message) })
        }
    }
}

/// An optional id from a form field or the query string; empty counts as absent.
fn optional_id<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<T, IdError>,
    as_query: bool,
) -> Result<Option<T>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            parse(v).map(Some).map_err(|e| if as_query { ApiError::invalid_query(e.to_string()) } else { e.into() })
        }
    }
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `/upload` with a raw body: the type is the request's `Content-Type`, the
/// ids come from the query string.
async fn raw_upload(
    req: &mut Request,
    content_type: &str,
    settings: &ImageSettings,
    grant: &KeyGrant,
) -> Result<Incoming, Failure> {
    let claimed = ImageType::from_content_type(media_type(content_type)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Content-Type {content_type:?} is not accepted; send the image as multipart/form-data (a file field), or as the raw body with one of {}",
                ImageType::ALL.map(ImageType::content_type).join(", ")
            ),
        )
    })?;
    let q = query(req)?;
    let app = query_id(&q, "app_id", AppId::parse)?;
    // Before the body is read: another app's upload costs nothing.
    grant.check_app(&app)?;
    let image = optional_id(query_value(&q, "image_id"), ImageId::parse, true)?;
    let require_signed_urls = flag(query_value(&q, "require_signed_urls"), true)?;
    let bytes = read_body(req, settings.max_image_bytes).await?;
    Ok(Incoming { app, image, claimed, bytes, require_signed_urls })
}

/// `/upload` with a form: the image is the `file` field, with its own type;
/// `app_id` and `image_id` are fields (a field wins over a query parameter
/// of the same name, which is read only when the field is absent).
async fn form_upload(
    req: &mut Request,
    content_type: &str,
    settings: &ImageSettings,
    grant: &KeyGrant,
) -> Result<Incoming, Failure> {
    let boundary = multipart::boundary(content_type)?;
    let q = query(req)?;
    let body = read_body(req, settings.max_image_bytes + MAX_FORM_OVERHEAD).await?;
    incoming_from_form(body, &boundary, &q, grant)
}

/// The image of a form body (see [`form_upload`]), the `app_id` checked
/// against the key's apps.
fn incoming_from_form(
    mut body: Vec<u8>,
    boundary: &str,
    q: &[(String, String)],
    grant: &KeyGrant,
) -> Result<Incoming, Failure> {
    let parts = multipart::parse(&body, boundary)?;
    // The field, or else the query parameter of the same name.
    let field = |name: &str| -> Result<Option<String>, ApiError> {
        let mut fields = parts.iter().filter(|p| p.name == name && p.filename.is_none());
        let from_form = match (fields.next(), fields.next()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(format!("the form has more than one {name} field; send it once")))
            }
            (Some(p), None) => Some(p.text(&body)?.to_owned()).filter(|v| !v.is_empty()),
            (None, _) => None,
        };
        Ok(from_form.or_else(|| query_value(q, name).filter(|v| !v.is_empty()).map(str::to_owned)))
    };
    let app_id = field("app_id")?
        .ok_or_else(|| ApiError::invalid_field("app_id is required: send it as a form field next to the file"))?;
    let app = AppId::parse(&app_id).map_err(ApiError::from)?;
    grant.check_app(&app)?;
    let image = optional_id(field("image_id")?.as_deref(), ImageId::parse, false)?;
    let require_signed_urls = flag(field("require_signed_urls")?.as_deref(), false)?;

    let mut files = parts.iter().filter(|p| p.name == "file");
    let file: &FormPart = match (files.next(), files.next()) {
        (Some(f), None) => f,
        (None, _) => {
            return Err(ApiError::invalid_field(format!(
                "the form has no file field; send the image in a field named \"file\" (it has: {})",
                parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
            .into())
        }
        (Some(_), Some(_)) => {
            return Err(
                ApiError::invalid_field("the form has more than one file field; upload one image per request").into()
            )
        }
    };
    // The part's own type is the claim. Clients that label files generically
    // (or not at all) get the type their bytes show, which is checked below
    // all the same.
    let bytes_of_file = file.bytes(&body);
    let claimed = match file.content_type.as_deref().map(media_type).filter(|ct| !ct.is_empty() && !ct.eq_ignore_ascii_case("application/octet-stream")) {
        Some(ct) => check_image_type(ct)?,
        None => ImageType::sniff(bytes_of_file).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "the file has no image content type and its bytes are {}; upload a JPEG, PNG, WebP, AVIF or GIF image",
                    describe_bytes(bytes_of_file)
                ),
            )
        })?,
    };
    // Keep only the file's bytes, in the body's own buffer (no second copy).
    let range = file.data.clone();
    body.truncate(range.end);
    body.drain(..range.start);
    Ok(Incoming { app, image, claimed, bytes: body, require_signed_urls })
}

/// `POST /upload`: stores an image sent through the Worker. 201 with its
/// URLs and metadata.
pub async fn upload(mut req: Request, cx: &ImageContext<'_>, base: &str) -> Handled {
    let settings = &cx.settings;
    let grant = guard(&req, cx, "upload").await?;
    let content_type = req.headers().get("content-type")?.unwrap_or_default();
    let incoming = if multipart::is_form_data(&content_type) {
        form_upload(&mut req, &content_type, settings, &grant).await?
    } else if content_type.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the request has no Content-Type; send the image as multipart/form-data (a file field), or as the raw body with its image Content-Type",
        )
        .into());
    } else {
        raw_upload(&mut req, &content_type, settings, &grant).await?
    };
    let Incoming { app, image, claimed, bytes, require_signed_urls } = incoming;
    check_size("the image", bytes.len() as u64, settings.max_image_bytes)?;
    check_image_bytes(claimed, &bytes)?;
    let dimensions = image_dimensions(claimed, &bytes);

    let store = cx.store()?;
    let image = image.unwrap_or_else(|| ImageId::from_random(random_bytes()));
    let location = ImageLocation::of(base, &app, &image, &settings.transform);
    let size = bytes.len() as u64;
    let stored = store_new_image(store, &app, &image, bytes, claimed).await?;
    if require_signed_urls {
        // Before the record: a check that finds no record (one not yet seen at a location) reads it there.
        let private = ImageCommand::SetAccess { require_signed_urls: true };
        let _: bool = image_object::ask(cx.env, &app, &image, &private).await?;
    }
    let meta = ImageMeta {
        content_type: claimed.content_type().to_owned(),
        size,
        width: dimensions.map(|d| d.width),
        height: dimensions.map(|d| d.height),
        uploaded_at: now(),
        require_signed_urls,
    };
    let record = ImageRecord { meta: meta.clone(), etag: single_etag_condition(Some(&stored.etag)) };
    record_metadata(cx, &req, &app, &image, &record).await;
    tracing::info!(
        app_id = %app,
        image_id = %image,
        content_type = %meta.content_type,
        size,
        width = meta.width,
        height = meta.height,
        "image uploaded"
    );
    json(201, &ImageUploadResponse { location, meta })
}

/// Writes the metadata record. The stored object is the truth and the
/// upload has succeeded, so a failed write is reported (logs, Sentry) but
/// does not fail the request: a retry would only meet the 409. A record
/// written is announced as `image.created` ([`crate::events`]).
async fn record_metadata(cx: &ImageContext<'_>, req: &Request, app: &AppId, image: &ImageId, meta: &ImageRecord) {
    match records::write(cx.env, app, image, meta).await {
        // This upload's own time names it (the 409 keeps it from being told twice).
        Ok(()) => {
            let version = meta.meta.uploaded_at.millis().to_string();
            crate::events::image_created(cx.env, &cx.settings.events, app, image, meta, &version).await
        }
        Err(e) => {
            let detail = format!("writing the image record {}: {e}", records::image_record_key(app, image));
            tracing::error!(app_id = %app, image_id = %image, detail, "image metadata not recorded");
            let url = req.url().map(|u| u.to_string()).unwrap_or_default();
            cx.report("POST", &url, &detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use media_core::http::auth::ApiKeys;
    use worker_kit::store::memory::{block_on, MemoryStore};

    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const BOUNDARY: &str = "b0undary";

    /// A key that may act for `app-a` only.
    fn grant() -> KeyGrant {
        ApiKeys::parse("k1:app-a").unwrap().check(Some("k1")).unwrap()
    }

    /// One part of a test form: name, filename, content type, bytes.
    type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    /// A form body of `parts`.
    fn form(parts: &[Part<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, filename, content_type, bytes) in parts {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
            );
            if let Some(f) = filename {
                body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            if let Some(ct) = content_type {
                body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    fn query_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn refusal(result: Result<Incoming, Failure>) -> ApiError {
        match result {
            Err(Failure::Client(e)) => e,
            Err(other) => panic!("not a client error: {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn require_signed_urls_is_true_or_false_and_absent_is_false() {
        assert_eq!(flag(Some("true"), false), Ok(true));
        for off in [None, Some(""), Some("false")] {
            assert_eq!(flag(off, true), Ok(false), "{off:?}");
        }
        let e = flag(Some("yes"), true).unwrap_err();
        assert_eq!((e.status(), e.code), (400, ErrorCode::InvalidQuery));
        assert!(e.message.contains("true or false"), "{}", e.message);
        assert_eq!(flag(Some("1"), false).unwrap_err().code, ErrorCode::InvalidField);
    }

    #[test]
    fn a_form_gives_its_file_bytes_and_ids() {
        let body = form(&[
            ("app_id", None, None, b"app-a"),
            ("image_id", None, None, b"img-1"),
            ("file", Some("a.png"), Some("image/png"), PNG),
        ]);
        let got = incoming_from_form(body, BOUNDARY, &[], &grant()).unwrap();
        assert_eq!(got.app.as_str(), "app-a");
        assert_eq!(got.image.as_ref().map(ImageId::as_str), Some("img-1"));
        assert_eq!(got.claimed, ImageType::Png);
        assert_eq!(got.bytes, PNG, "exactly the file's bytes");
    }

    #[test]
    fn a_field_wins_over_the_query_which_fills_in_when_it_is_absent_or_empty() {
        let q = query_of(&[("app_id", "app-b"), ("image_id", "from-query")]);
        let body = form(&[("app_id", None, None, b"app-a"), ("file", Some("a.png"), Some("image/png"), PNG)]);
        let got = incoming_from_form(body, BOUNDARY, &q, &grant()).unwrap();
        assert_eq!(got.app.as_str(), "app-a");
        assert_eq!(got.image.as_ref().map(ImageId::as_str), Some("from-query"));
        let body = form(&[("app_id", None, None, b""), ("file", None, None, PNG)]);
        let q = query_of(&[("app_id", "app-a")]);
        assert_eq!(incoming_from_form(body, BOUNDARY, &q, &grant()).unwrap().app.as_str(), "app-a");
    }

    #[test]
    fn the_key_must_allow_the_forms_app() {
        let body = form(&[("app_id", None, None, b"app-b"), ("file", None, Some("image/png"), PNG)]);
        assert_eq!(refusal(incoming_from_form(body, BOUNDARY, &[], &grant())).status(), 403);
    }

    #[test]
    fn a_form_without_one_file_or_with_a_repeated_field_is_refused_saying_why() {
        let cases: [(Vec<u8>, &str); 4] = [
            (form(&[("file", None, Some("image/png"), PNG)]), "app_id is required"),
            (
                form(&[("app_id", None, None, b"app-a"), ("app_id", None, None, b"app-a"), ("file", None, None, PNG)]),
                "more than one app_id field",
            ),
            (form(&[("app_id", None, None, b"app-a"), ("image", None, None, PNG)]), "has no file field"),
            (
                form(&[("app_id", None, None, b"app-a"), ("file", None, None, PNG), ("file", None, None, PNG)]),
                "more than one file field",
            ),
        ];
        for (body, why) in cases {
            let e = refusal(incoming_from_form(body, BOUNDARY, &[], &grant()));
            assert_eq!(e.status(), 400, "{why}");
            assert!(e.message.contains(why), "{}: {why}", e.message);
        }
    }

    #[test]
    fn a_file_without_an_image_type_is_known_by_its_bytes() {
        for content_type in [None, Some("application/octet-stream")] {
            let body = form(&[("app_id", None, None, b"app-a"), ("file", Some("x"), content_type, PNG)]);
            assert_eq!(incoming_from_form(body, BOUNDARY, &[], &grant()).unwrap().claimed, ImageType::Png);
            let body = form(&[("app_id", None, None, b"app-a"), ("file", Some("x"), content_type, b"GIF? no")]);
            assert_eq!(refusal(incoming_from_form(body, BOUNDARY, &[], &grant())).status(), 415);
        }
        let body = form(&[("app_id", None, None, b"app-a"), ("file", Some("x"), Some("text/html"), PNG)]);
        assert_eq!(refusal(incoming_from_form(body, BOUNDARY, &[], &grant())).status(), 415);
    }

    #[test]
    fn a_taken_image_id_is_409_and_a_failing_store_503() {
        let store = MemoryStore::new();
        let app = AppId::parse("app-a").unwrap();
        let taken_id = ImageId::parse("taken").unwrap();
        store.insert("images/app-a/taken", PNG, Some("image/png"));
        let free = ImageId::parse("free").unwrap();
        assert_eq!(block_on(presign_image_id(&store, &app, Some(free.clone()))).unwrap(), free);
        match block_on(presign_image_id(&store, &app, Some(taken_id))) {
            Err(Failure::Client(e)) => assert_eq!((e.status(), e.code), (409, ErrorCode::Conflict)),
            other => panic!("{other:?}"),
        }
        // A fresh id is not looked up.
        let before = store.operations();
        block_on(presign_image_id(&store, &app, None)).unwrap();
        assert_eq!(store.operations(), before);
        store.fail("HEAD", "images/");
        let failure = block_on(presign_image_id(&store, &app, Some(ImageId::parse("free").unwrap()))).unwrap_err();
        assert_eq!(failure.to_reply().status, 503);
    }

    #[test]
    fn an_upload_is_one_conditional_write_and_never_replaces_an_image() {
        let store = MemoryStore::new();
        let app = AppId::parse("app-a").unwrap();
        let image = ImageId::parse("once").unwrap();
        block_on(store_new_image(&store, &app, &image, PNG.to_vec(), ImageType::Png)).unwrap();
        assert_eq!(store.operations(), 1, "no HEAD first");
        match block_on(store_new_image(&store, &app, &image, b"GIF89a".to_vec(), ImageType::Gif)) {
            Err(Failure::Client(e)) => {
                assert_eq!((e.status(), e.code), (409, ErrorCode::Conflict));
                assert!(e.message.contains("already taken"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        store.fail("PUT", "images/");
        let e = block_on(store_new_image(&store, &app, &ImageId::parse("new").unwrap(), PNG.to_vec(), ImageType::Png));
        assert_eq!(e.unwrap_err().to_reply().status, 503);
    }
}

//! The image service's document: its routes' operations, from `IMAGE_ROUTES`.

use super::*;
use crate::wire::private_images::{
    ImageAccessRequest, UrlSigningKeyCreated, UrlSigningKeyList, UrlSigningKeyRequest, UrlSigningKeyView,
};

/// The image service's document (`openapi/image-service.json`).
pub fn image_service() -> OpenApi {
    let mut doc = base_document(
        "Image service",
        "Image uploads (presigned or through the service), public originals under /assets/, and resized \
         AVIF/WebP/JPEG/PNG variants the service makes through the Cloudflare Images binding \
         (/images/{app_id}/{image_id}/{options}), stored and cached after the first request. Errors are JSON: {\"error\": {\"code\", \"message\"}}, the message saying what to \
         change. Each API key acts only for the apps it is configured for (403 app_not_allowed for another app_id). \
         API-key routes are rate limited per key (600 a minute by default); requests with a missing or wrong key are \
         limited per client IP (10 a minute); image reads the edge cache does not answer are limited per client \
         IP (1200 a minute); all answer 429 with Retry-After. The API-key routes send no CORS \
         headers: call them from servers only. Accepted images: JPEG, PNG, WebP, AVIF and GIF (never SVG), checked \
         by their bytes, up to MAX_IMAGE_BYTES (25 MiB by default).",
        8787,
    );
    let c = doc.components.as_mut().expect("set by base_document");
    error_responses(c, RATE_LIMITED);
    public_rate_limited(c);
    add::<ImageId>(c);
    add::<ImageContentType>(c);
    add::<ImageUploadUrlRequest>(c);
    add::<ImageLocation>(c);
    add::<ImageUploadUrlResponse>(c);
    add::<CheckedImageType>(c);
    add::<ImageMeta>(c);
    add::<ImageUploadResponse>(c);
    add::<UploadForm>(c);
    add::<DeletedImage>(c);
    add::<DeleteImageResponse>(c);
    add::<ImageAccessRequest>(c);
    add::<UrlSigningKeyRequest>(c);
    add::<UrlSigningKeyView>(c);
    add::<UrlSigningKeyCreated>(c);
    add::<UrlSigningKeyList>(c);
    closed(c, &["ImageAccessRequest", "UrlSigningKeyRequest"]);
    c.responses.insert(
        "ImageUnprocessable".into(),
        json_response(
            "The image is stored but cannot be transformed (code image_unprocessable): an original over \
             20,000,000 bytes, one declaring more than 100,000,000 pixels or no dimensions, or one the Images \
             binding cannot decode. Its asset_url still serves it as it is; nothing is stored.",
            "ErrorBody",
        )
        .into(),
    );

    document(&mut doc, IMAGE_ROUTES, image_operations);
    doc
}

/// The operations of each documented row of [`IMAGE_ROUTES`].
fn image_operations(id: ImageRoute) -> Vec<Documented> {
    match id {
        ImageRoute::UploadUrl => {
            let op = operation(
        "Get a presigned URL to upload an image",
        "generateImageUploadUrl",
        Some(
            "Server-side only (API key). size is required (400 without it): the browser then PUTs exactly that many \
             bytes to upload_url with exactly the returned headers (Content-Type and If-None-Match: *; the URL writes \
             the image once, never over one), and uses asset_url or transform_url. An image uploaded this way is \
             checked (size, stored type, leading bytes) on its first read or GET /images, and in any case once the \
             URL has expired, read or not: anything else is removed and never served.",
        ),
    )
    .response(
        "200",
        json_response(
            "A presigned PUT bound to the key, content type, size and If-None-Match: *, and where the image will be served.",
            "ImageUploadUrlResponse",
        ),
    );
            let op = with_errors(json_body(op, "ImageUploadUrlRequest"), &[&[(409, "Error"), (415, "Error")]]);
            vec![at(Method::Post, op)]
        }
        ImageRoute::Upload => {
            let mut body = RequestBodyBuilder::new().required(Some(Required::True)).content(
                "multipart/form-data",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Ref::from_schema_name("UploadForm"))
                    .encoding(
                        "file",
                        utoipa::openapi::encoding::EncodingBuilder::new()
                            .content_type(Some(ImageType::ALL.map(ImageType::content_type).join(", ")))
                            .build(),
                    )
                    .build(),
            );
            for kind in ImageType::ALL {
                body = body.content(kind.content_type(), Content::new(binary()));
            }
            let op = operation(
        "Upload an image through the service (server to server)",
        "uploadImage",
        Some(
            "Either a multipart/form-data body (file, app_id, image_id) or the raw image as the body with its \
             Content-Type (app_id and image_id then in the query string). The bytes must be the image type claimed. \
             Metadata is recorded in KV under image/{app_id}/{image_id}.",
        ),
    )
    .parameter(param("app_id", ParameterIn::Query, false, Ref::from_schema_name("AppId")).description(Some(
        "With a raw body: required. With a form: read only when the form has no app_id field (or an empty one); \
             the field wins.",
    )))
    .parameter(
        param("image_id", ParameterIn::Query, false, Ref::from_schema_name("ImageId"))
            .description(Some(
                "Optional; a random id is chosen when it is left out or empty. With a form, an image_id field wins \
                 over it.",
            ))
            // utoipa 4 has no field for it; extensions are written as they are.
            .extensions(Some([("allowEmptyValue".to_owned(), true.into())].into())),
    )
    .parameter(
        param("require_signed_urls", ParameterIn::Query, false, ObjectBuilder::new().schema_type(SchemaType::Boolean))
            .description(Some(
                "true: the image is served only to signed URLs (see POST /url-signing-keys); with a form, a \
                 require_signed_urls field wins over it. Default false, also when left empty.",
            ))
            .extensions(Some([("allowEmptyValue".to_owned(), true.into())].into())),
    )
    .request_body(Some(body.build()))
    .response("201", json_response("Stored.", "ImageUploadResponse"));
            let op = with_errors(op, &[&[(409, "Error"), (415, "Error")]]);
            vec![at(Method::Post, op)]
        }
        ImageRoute::Metadata => {
            let op = operation(
        "An image's record and URLs",
        "getImage",
        Some(
            "The fields of /upload's 201: the image's URLs, and its type, size, width and height as checked. A \
             presigned upload is checked by the first request for it (a serve, a transform, or this call), or once \
             its URL has expired if none came: call this once the browser's PUT is done to learn what was stored, \
             or 404 if it was refused (and removed). 404 too for an image that does not exist.",
        ),
    )
    .parameters(Some([query_id("app_id", "AppId"), query_id("image_id", "ImageId")]))
    .response("200", json_response("The image's URLs and metadata.", "ImageUploadResponse"));
            let op = with_errors(op, &[&[(404, "Error")]]);
            vec![at(Method::Get, op)]
        }
        ImageRoute::Delete => {
            let op = operation(
                "Delete an image for good",
                "deleteImage",
                Some(
                    "Deletes the original, its stored variants (images/{app_id}/{image_id}/..., counted in \
             deleted.objects) and its metadata record; /assets/... and /images/{app_id}/{image_id}/... then \
             answer 404. The location that answered drops them from its edge cache; other locations keep their \
             copies until evicted, or a zone purge (see docs/image-api.md). Repeating it is harmless: 200 with zeros.",
                ),
            )
            .parameters(Some([query_id("app_id", "AppId"), query_id("image_id", "ImageId")]))
            .response("200", json_response("What was removed.", "DeleteImageResponse"));
            let op = op;
            vec![at(Method::Delete, op)]
        }
        ImageRoute::Access => {
            let op = operation(
                "Make an image private or public",
                "setImageAccess",
                Some(
                    "require_signed_urls true: the original and every variant answer only to signed URLs (exp and \
                     sig in the query, HMAC-SHA256 with the app's URL-signing secret from POST /url-signing-keys; \
                     see docs/image-api.md#private-images), unsigned requests get 403 signed_url_required. Making \
                     an image private drops its copies from this location's edge cache at once and purges its \
                     cache tag at every location (where the purge is configured). Other locations see the change \
                     within KV's propagation (up to 60 s). false: public again. Answers the image as GET /images.",
                ),
            )
            .parameters(Some(image_ids()))
            .response("200", json_response("The image, with its require_signed_urls.", "ImageUploadResponse"));
            vec![at(Method::Post, with_errors(json_body(op, "ImageAccessRequest"), &[&[(404, "Error")]]))]
        }
        ImageRoute::UrlSigningKeys => {
            let create = operation(
                "Create or rotate the app's URL-signing secret",
                "createUrlSigningKey",
                Some(
                    "A new uss_ secret for app_id, shown this once: the HMAC-SHA256 key (its UTF-8 bytes) of the \
                     app's signed image URLs. The app's current secret, if any, keeps signing beside it for \
                     old_secret_expires_in_s (default 86400, at most 604800, 0 for none), named in previous. \
                     Never the API key: app backends sign URLs with this secret.",
                ),
            )
            .response(
                "201",
                json_response("The new secret (shown once) and the one it replaced.", "UrlSigningKeyCreated"),
            );
            let list = operation(
                "List the app's URL-signing secrets",
                "listUrlSigningKeys",
                Some("The secrets that sign now, current first: ids and dates, never the secrets."),
            )
            .parameters(Some([query_id("app_id", "AppId")]))
            .response("200", json_response("The app's live secrets.", "UrlSigningKeyList"));
            vec![at(Method::Get, list), at(Method::Post, json_body(create, "UrlSigningKeyRequest"))]
        }
        ImageRoute::Asset => asset_routes(),
        ImageRoute::Variant => under(VARIANT_ROUTE_PREFIX, variant_routes()),
        ImageRoute::CdnCgi => under(TRANSFORM_PATH_PREFIX, variant_routes()),
        ImageRoute::OpenApi => openapi_operation(),
        ImageRoute::Health => health_operation(),
    }
}

/// The operations of `ops` documented under `prefix`.
fn under(prefix: &str, ops: Vec<Documented>) -> Vec<Documented> {
    ops.into_iter().filter(|d| d.path.as_deref().is_some_and(|p| p.starts_with(prefix))).collect()
}

/// The headers of every stored image's 200 and 206 answers.
fn image_headers() -> Vec<(&'static str, Header)> {
    vec![
        ("ETag", header(string(), Some("The stored object's entity tag; send it back in If-None-Match."))),
        ("Cache-Control", header(string(), Some("public, max-age=31536000, immutable"))),
        ("Content-Length", header(integer(), None)),
        ("Accept-Ranges", header(string().enum_values(Some(["bytes"])), None)),
        ("X-Content-Type-Options", header(string().enum_values(Some(["nosniff"])), None)),
    ]
}

/// The path parameters naming an image.
fn image_ids() -> Vec<Parameter> {
    vec![path_id("app_id", "AppId"), path_id("image_id", "ImageId")]
}

/// The query of a signed URL (`crate::image::url_signing`).
fn signed_url_params() -> [Parameter; 2] {
    [
        param("exp", ParameterIn::Query, false, integer().minimum(Some(0.0)))
            .description(Some(
                "Signed URLs (required for an image with require_signed_urls): when the URL stops working, in \
                 unix seconds. Sent with sig; either alone is a 401.",
            ))
            .build(),
        param("sig", ParameterIn::Query, false, string().pattern(Some("^[0-9a-fA-F]{64}$")))
            .description(Some(
                "Signed URLs: the hex HMAC-SHA256, keyed with the app's URL-signing secret, of the path and \
                 the query without sig (\"{path}?exp={exp}\" for the URLs the service hands out). Expired, \
                 altered or wrongly signed: 401 invalid_token.",
            ))
            .build(),
    ]
}

/// `GET`/`HEAD /assets/...`.
fn asset_routes() -> Vec<Documented> {
    const DESCRIPTION: &str = "Public. Only checked images are served: /upload checks the bytes before storing; a \
        presigned upload is checked at its first serve, or once its URL has expired if nobody asked (size within \
        MAX_IMAGE_BYTES, an accepted stored type, bytes of that type), and removed (404) if it fails. Only the version checked is served: an object replaced \
        afterwards is 404. A GET is one conditional, ranged storage read (the first serve of a presigned upload adds \
        one ranged read of its first 64 KiB); images are then kept at the edge for a year, so repeats cost no \
        storage operation. Server-Timing reports it: cache;desc=\"hit|miss\", storage;desc=\"ops=N\" (and \
        vet;desc=\"ops=N\" on a first serve). Requests the edge cache does not answer count against a generous \
        per-IP limit (429).";
    let mut types: Vec<&str> = ImageType::ALL.map(ImageType::content_type).to_vec();
    types.push("application/octet-stream");
    let mut parameters = image_ids();
    parameters.extend(signed_url_params());
    parameters.extend(conditional_headers());
    object_routes(ObjectRoute {
        path: "/assets/images/{app_id}/{image_id}",
        summary: "An original image",
        operation_id: Some("getAsset"),
        description: DESCRIPTION,
        parameters,
        what: "The image as uploaded, with its type (application/octet-stream if storage holds no accepted image \
                   type).",
        content_types: &types,
        headers: image_headers(),
        errors: &[
            (401, "Error"),
            (403, "Error"),
            (404, "Error"),
            (405, "Error"),
            (416, "RangeNotSatisfiable"),
            (429, "PublicRateLimited"),
            (500, "Error"),
            (503, "Unavailable"),
        ],
    })
}

/// `GET`/`HEAD /images/{app_id}/{image_id}/{options}`: the service's own
/// transforms ([`crate::image::variant`]), and the older `/cdn-cgi/image/` form
/// answered the same way.
fn variant_routes() -> Vec<Documented> {
    const DESCRIPTION: &str = "Public. A resized variant of a checked image (see /assets/), made through the \
        Cloudflare Images binding. Answered from the first place that has it: the edge cache (the Cache API), the \
        variant stored under images/{app_id}/{image_id}/, or the Images binding, called once per variant (one \
        billed transformation; concurrent first requests wait for that one call), whose output is stored and \
        cached; x-image-variant says which (edge, stored, created). Stored variants are deleted with the image (DELETE /images). f=auto picks the format from Accept: \
        AVIF when it names image/avif and the output is at most 1200 px a side, else WebP when it names image/webp, \
        else JPEG for a JPEG original and PNG for the others; those answers carry Vary: Accept. An animated GIF \
        gives its first frame. ETag/304 and Range/206 as for /assets/. Server-Timing reports \
        cache;desc=\"hit|miss\" and storage;desc=\"ops=N\". Requests the edge cache does not answer count \
        against a generous per-IP limit (429).";
    const ERRORS: Errors<'static> = &[
        (400, "Error"),
        (401, "Error"),
        (403, "Error"),
        (404, "Error"),
        (405, "Error"),
        (416, "RangeNotSatisfiable"),
        (422, "ImageUnprocessable"),
        (429, "PublicRateLimited"),
        (500, "Error"),
        (503, "Unavailable"),
    ];
    let options = param(
        "options",
        ParameterIn::Path,
        true,
        string()
            .max_length(Some(MAX_OPTIONS_LEN))
            .pattern(Some(options_pattern()))
            .example(Some("w=1280,q=85,f=auto".into())),
    )
    .description(Some(format!(
        "Comma-separated name=value options, in any order, each at most once: w/width and h/height (px), \
         q/quality, fit (scale-down, contain, cover, crop, pad; default scale-down), f/format (auto, avif, webp, \
         jpeg or jpg, png; default auto). Left out: no resize on that side, the configured TRANSFORM_QUALITY \
         (85 by default), scale-down, auto. Values must be in the service's allowed set (TRANSFORM_SIZES, \
         TRANSFORM_QUALITIES, TRANSFORM_FITS, plus the transform_url's own TRANSFORM_WIDTH and \
         TRANSFORM_QUALITY); the pattern is that of the default set (sizes {}, qualities {}), written in the \
         canonical order. Anything else (an unknown option, a value not allowed, an option given twice, f=avif \
         larger than {MAX_AVIF_SIDE} px a side) is a 400 whose message lists what is allowed. Aliases, order and \
         defaults do not make new variants: w=640 and width=640,q=85,fit=scale-down,f=auto are one. \
         Percent-encoded options (w%3D640) are decoded first.",
        DEFAULT_SIZES.map(|s| s.to_string()).join(", "),
        DEFAULT_QUALITIES.map(|q| q.to_string()).join(", "),
    )))
    .build();
    let types = ["image/avif", "image/webp", "image/jpeg", "image/png"];
    let mut variant_headers = image_headers();
    variant_headers.push((
        "x-image-variant",
        header(
            string().enum_values(Some(["edge", "stored", "created"])),
            Some(
                "Where the answer came from: edge (the edge cache), stored (the variant kept in storage, or made \
                 by a concurrent request this one waited for) or created (made now by the Images binding: a billed \
                 transformation).",
            ),
        ),
    ));
    variant_headers.push((
        "Vary",
        header(
            string().example(Some("Accept".into())),
            Some(
                "Names Accept with f=auto (the default), whose format follows it (and Origin with a CORS allow-list).",
            ),
        ),
    ));
    let what = format!(
        "The variant, in the format asked for or chosen by f=auto. The original may be at most \
         {MAX_TRANSFORM_INPUT_BYTES} bytes and declare at most {MAX_SOURCE_PIXELS} pixels (422 otherwise)."
    );
    let mut parameters = image_ids();
    parameters.push(options.clone());
    parameters.extend(signed_url_params());
    parameters.extend(conditional_headers());
    let mut ops = object_routes(ObjectRoute {
        path: "/images/{app_id}/{image_id}/{options}",
        summary: "A transformed image",
        operation_id: Some("getVariant"),
        description: DESCRIPTION,
        parameters,
        what: &what,
        content_types: &types,
        headers: variant_headers.clone(),
        errors: ERRORS,
    });
    let mut parameters = vec![options];
    parameters.extend(image_ids());
    parameters.extend(signed_url_params());
    parameters.extend(conditional_headers());
    ops.extend(object_routes(ObjectRoute {
        path: "/cdn-cgi/image/{options}/assets/images/{app_id}/{image_id}",
        summary: "A transformed image (the older transform_url)",
        operation_id: Some("getTransformed"),
        description: "Public. The form of transform_url that earlier answers handed out, answered by the \
                service exactly as /images/{app_id}/{image_id}/{options}: the same options and rules (Cloudflare's \
                other URL options, such as blur, dpr or gravity, are a 400), the same stored variants and headers. \
                Where a zone has Cloudflare's own Image Transformations enabled, the zone answers this path before \
                the Worker runs. A source that is not one of the service's images is a 404.",
        parameters,
        what: &what,
        content_types: &types,
        headers: variant_headers,
        errors: ERRORS,
    }));
    ops
}

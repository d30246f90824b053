//! The OpenAPI 3.0 documents of both services' public routes, generated: the
//! schemas from the API types themselves (`ToSchema` on the types of
//! [`crate::wire::api`], [`crate::ids`], [`crate::video::job`], [`crate::error`] and
//! [`crate::time`]), the routes from the one table per service below. Only
//! with the `openapi` feature: the Workers serve the committed
//! `openapi/*.json`, which `tests/openapi.rs` keeps equal to what this writes.

use utoipa::openapi::path::{Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItemType};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, SchemaFormat, SchemaType};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{
    Components, Content, Header, InfoBuilder, ObjectBuilder, OpenApi, PathItem, Ref, RefOr, Required, Response,
    ResponseBuilder, Schema,
};
use utoipa::ToSchema;

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::ids::{AppId, ImageId, JobId, VideoId, MAX_ID_LEN};
use crate::image::transform::{MAX_OPTIONS_LEN, TRANSFORM_PATH_PREFIX};
use crate::image::variant::{
    Fit, DEFAULT_QUALITIES, DEFAULT_SIZES, MAX_AVIF_SIDE, MAX_SOURCE_PIXELS, MAX_TRANSFORM_INPUT_BYTES,
    VARIANT_ROUTE_PREFIX,
};
use crate::media::ImageType;
use crate::time::Timestamp;
use crate::video::delivery::CallbackStatus;
use crate::video::job::{JobStatus, Rendition, ThumbnailMeta};
use crate::wire::api::{
    CancelRequest, CancelResponse, DeleteImageResponse, DeleteVideoResponse, DeletedImage, DeletedVideo, Health,
    ImageLocation, ImageMeta, ImageUploadResponse, ImageUploadUrlRequest, ImageUploadUrlResponse, JobView,
    NotPlayableResponse, NotifyRequest, PlaybackUrlResponse, PresignedPut, RenditionView, ThumbnailsView,
    UploadSession, VideoUploadUrlRequest, VideoUploadUrlResponse,
};
use crate::wire::routes::{Auth, ImageRoute, Method, Pattern, Route, VideoRoute, IMAGE_ROUTES, VIDEO_ROUTES};

/// The version both documents carry (the services' release).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The pattern of every caller id ([`crate::ids::check_id`]).
fn id_pattern() -> String {
    format!("^[A-Za-z0-9_-]{{1,{MAX_ID_LEN}}}$")
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::String)
}

fn id_schema(description: &str, example: &str) -> RefOr<Schema> {
    string().pattern(Some(id_pattern())).description(Some(description)).example(Some(example.into())).into()
}

impl<'s> ToSchema<'s> for AppId {
    fn schema() -> (&'s str, RefOr<Schema>) {
        ("AppId", id_schema("Your application's id: 1-64 letters, digits, '-' or '_'.", "yourAppId"))
    }
}

impl<'s> ToSchema<'s> for VideoId {
    fn schema() -> (&'s str, RefOr<Schema>) {
        ("VideoId", id_schema("The video's id, unique within the app.", "yourVideoId"))
    }
}

impl<'s> ToSchema<'s> for ImageId {
    fn schema() -> (&'s str, RefOr<Schema>) {
        (
            "ImageId",
            id_schema(
                "The image's id, unique within the app. An id already taken is refused (409): images are immutable.",
                "yourImageId",
            ),
        )
    }
}

impl<'s> ToSchema<'s> for JobId {
    fn schema() -> (&'s str, RefOr<Schema>) {
        ("JobId", id_schema("The job's id, minted by the service.", "job_0m4k1x2c3v5b6n7q8r9s0t1v2w"))
    }
}

impl<'s> ToSchema<'s> for Timestamp {
    fn schema() -> (&'s str, RefOr<Schema>) {
        (
            "Timestamp",
            string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("RFC 3339 in UTC with milliseconds, as JavaScript's Date.toISOString() prints it."))
                .example(Some("2026-11-22T09:30:00.000Z".into()))
                .into(),
        )
    }
}

/// The content types `/generate-upload-url` and `/notify-upload-complete`
/// accept (a schema only; the rule is [`VideoType::from_content_type`]).
pub struct VideoContentType;

/// Every spelling [`VideoType::from_content_type`] accepts.
pub const VIDEO_CONTENT_TYPES: [&str; 6] =
    ["video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/matroska", "video/ogg"];

impl<'s> ToSchema<'s> for VideoContentType {
    fn schema() -> (&'s str, RefOr<Schema>) {
        ("VideoContentType", string().enum_values(Some(VIDEO_CONTENT_TYPES)).into())
    }
}

/// The content types the image routes accept (a schema only; the rule is
/// [`ImageType::from_content_type`]).
pub struct ImageContentType;

/// Every spelling [`ImageType::from_content_type`] accepts.
pub const IMAGE_CONTENT_TYPES: [&str; 6] =
    ["image/jpeg", "image/jpg", "image/png", "image/webp", "image/avif", "image/gif"];

impl<'s> ToSchema<'s> for ImageContentType {
    fn schema() -> (&'s str, RefOr<Schema>) {
        (
            "ImageContentType",
            string()
                .enum_values(Some(IMAGE_CONTENT_TYPES))
                .description(Some("SVG is never accepted (it can carry script)."))
                .into(),
        )
    }
}

/// The pattern of a transformation's options segment with the default
/// allowed set ([`crate::image::variant::VariantPolicy::default`]: `TRANSFORM_SIZES`,
/// `TRANSFORM_QUALITIES`, `TRANSFORM_FITS` unset), a schema for clients and
/// fuzzers. The service takes the options in any order, each at most once;
/// a pattern cannot say "each once", so it lists them in the canonical order
/// (`w,h,q,fit,f`, [`crate::image::variant::VariantOptions::canonical`]). An
/// explicit `f=avif` goes with sizes within AVIF's side only (larger is a
/// 400). Empty: every default.
fn options_pattern() -> String {
    let sizes = |max: u32| {
        let list: Vec<String> = DEFAULT_SIZES.iter().filter(|&&s| s <= max).map(u32::to_string).collect();
        list.join("|")
    };
    let qualities: Vec<String> = DEFAULT_QUALITIES.iter().map(u8::to_string).collect();
    let fits: Vec<&str> = Fit::ALL.iter().map(|f| f.as_str()).collect();
    let side = |names: &str, max: u32| format!("(?:{names})=(?:{})", sizes(max));
    let quality = format!("(?:quality|q)=(?:{})", qualities.join("|"));
    let fit = format!("fit=(?:{})", fits.join("|"));
    let format = "(?:format|f)=(?:auto|webp|jpeg|jpg|png)";
    // A non-empty comma list of `items`, in their order, each optional.
    let ordered = |items: &[String]| -> String {
        let alternatives: Vec<String> = (0..items.len())
            .map(|first| {
                let rest: String = items[first + 1..].iter().map(|i| format!("(?:,{i})?")).collect();
                format!("{}{rest}", items[first])
            })
            .collect();
        alternatives.join("|")
    };
    let any = ordered(&[
        side("width|w", u32::MAX),
        side("height|h", u32::MAX),
        quality.clone(),
        fit.clone(),
        format.to_owned(),
    ]);
    let avif_prefix: String = [side("width|w", MAX_AVIF_SIDE), side("height|h", MAX_AVIF_SIDE), quality, fit]
        .iter()
        .map(|i| format!("(?:{i},)?"))
        .collect();
    format!("^(?:{any}|{avif_prefix}(?:format|f)=avif)?$")
}

/// A schema of one fixed string, for fields that only ever carry it.
fn constant(name: &'static str, value: &'static str, description: &str) -> (&'static str, RefOr<Schema>) {
    (name, string().enum_values(Some([value])).description(Some(description)).into())
}

/// `PresignedPut::method` (a schema only).
pub struct PutMethod;

impl<'s> ToSchema<'s> for PutMethod {
    fn schema() -> (&'s str, RefOr<Schema>) {
        constant("PutMethod", "PUT", "The method of a presigned upload.")
    }
}

/// `Health::status` (a schema only).
pub struct HealthStatus;

impl<'s> ToSchema<'s> for HealthStatus {
    fn schema() -> (&'s str, RefOr<Schema>) {
        constant("HealthStatus", "ok", "A service that answers is up.")
    }
}

/// `ImageMeta::content_type`: the canonical type the bytes were checked to be.
pub struct CheckedImageType;

impl<'s> ToSchema<'s> for CheckedImageType {
    fn schema() -> (&'s str, RefOr<Schema>) {
        ("CheckedImageType", string().enum_values(Some(ImageType::ALL.map(ImageType::content_type))).into())
    }
}

/// The `multipart/form-data` body of `POST /upload` (a schema only; the
/// image service reads the form field by field).
pub struct UploadForm;

impl<'s> ToSchema<'s> for UploadForm {
    fn schema() -> (&'s str, RefOr<Schema>) {
        let or_empty = |id: &str, description: &str| -> RefOr<Schema> {
            let empty = string().enum_values(Some([""]));
            utoipa::openapi::schema::OneOfBuilder::new()
                .item(Ref::from_schema_name(id))
                .item(empty)
                .description(Some(description))
                .into()
        };
        (
            "UploadForm",
            ObjectBuilder::new()
                .property(
                    "file",
                    binary().description(Some(
                        "The image, with its content type (a generic or missing one is replaced by what the bytes show).",
                    )),
                )
                .required("file")
                .property(
                    "app_id",
                    or_empty("AppId", "The app; or leave it out (or empty) and send app_id in the query string."),
                )
                .property(
                    "image_id",
                    or_empty(
                        "ImageId",
                        "Optional; a random id is chosen when it is left out or empty (and the query has none).",
                    ),
                )
                .description(Some(
                    "app_id is required in the form or as the app_id query parameter; a field wins over the query \
                     parameter of the same name, and an empty field counts as left out (as browsers send a blank input).",
                ))
                .into(),
        )
    }
}

fn binary() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Integer)
}

/// Adds the schema of `T` to `components`, under its name.
fn add<'s, T: ToSchema<'s>>(components: &mut Components) {
    let (name, schema) = T::schema();
    components.schemas.insert(name.to_owned(), schema);
}

/// The schemas both services share.
fn common_schemas(c: &mut Components) {
    add::<AppId>(c);
    add::<Timestamp>(c);
    add::<ErrorCode>(c);
    add::<ErrorDetail>(c);
    add::<ErrorBody>(c);
    add::<PutMethod>(c);
    add::<PresignedPut>(c);
    add::<HealthStatus>(c);
    add::<Health>(c);
}

fn json(schema: &str) -> Content {
    Content::new(Ref::from_schema_name(schema))
}

fn json_response(description: &str, schema: &str) -> Response {
    ResponseBuilder::new().description(description).content("application/json", json(schema)).build()
}

fn header(schema: ObjectBuilder, description: Option<&str>) -> Header {
    let mut h = Header::new(schema);
    h.description = description.map(str::to_owned);
    h
}

/// The reusable error answers, referred to by name from the operations.
fn error_responses(c: &mut Components, rate_limited: &str) {
    let error = |description: &str| json_response(description, "ErrorBody");
    c.responses.insert("Error".into(), error("An error; the message says what to change.").into());
    c.responses.insert(
        "Forbidden".into(),
        error("The API key is not valid (code forbidden), or it may not act for this app_id (code app_not_allowed).")
            .into(),
    );
    let mut limited = error(rate_limited);
    limited.headers.insert("Retry-After".into(), header(integer(), Some("Seconds to wait.")));
    c.responses.insert("RateLimited".into(), limited.into());
    let mut unavailable = error("Storage (or the job queue) did not answer; retry.");
    unavailable.headers.insert("Retry-After".into(), header(integer(), Some("Seconds to wait.")));
    c.responses.insert("Unavailable".into(), unavailable.into());
    let mut range = error("The Range is outside the object.");
    range.headers.insert("Content-Range".into(), header(string(), Some("bytes */size")));
    c.responses.insert("RangeNotSatisfiable".into(), range.into());
}

/// `(status, response name)`: which of [`error_responses`] an operation answers with.
type Errors<'a> = &'a [(u16, &'a str)];

/// The errors every API-key route may answer.
const KEY_ROUTE_ERRORS: Errors<'static> = &[
    (400, "Error"),
    (401, "Error"),
    (403, "Forbidden"),
    (405, "Error"),
    (413, "Error"),
    (429, "RateLimited"),
    (500, "Error"),
    (503, "Unavailable"),
];

fn with_errors(mut op: OperationBuilder, lists: &[Errors<'_>]) -> OperationBuilder {
    for list in lists {
        for (status, name) in *list {
            op = op.response(status.to_string(), Ref::from_response_name(*name));
        }
    }
    op
}

fn operation(summary: &str, operation_id: &str, description: Option<&str>) -> OperationBuilder {
    OperationBuilder::new().summary(Some(summary)).operation_id(Some(operation_id)).description(description)
}

fn api_key(op: OperationBuilder) -> OperationBuilder {
    op.security(SecurityRequirement::new("ApiKey", Vec::<String>::new()))
}

fn json_body(op: OperationBuilder, schema: &str) -> OperationBuilder {
    op.request_body(Some(
        RequestBodyBuilder::new().required(Some(Required::True)).content("application/json", json(schema)).build(),
    ))
}

fn param(name: &str, at: ParameterIn, required: bool, schema: impl Into<RefOr<Schema>>) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(if required { Required::True } else { Required::False })
        .schema(Some(schema))
}

fn path_id(name: &str, schema: &str) -> Parameter {
    param(name, ParameterIn::Path, true, Ref::from_schema_name(schema)).build()
}

fn query_id(name: &str, schema: &str) -> Parameter {
    param(name, ParameterIn::Query, true, Ref::from_schema_name(schema)).build()
}

/// `Range` and `If-None-Match`, taken by every stored-object route.
fn conditional_headers() -> [Parameter; 2] {
    [
        param("Range", ParameterIn::Header, false, string().example(Some("bytes=0-1023".into()))).build(),
        param("If-None-Match", ParameterIn::Header, false, string()).build(),
    ]
}

/// `GET /openapi.json`, in every service.
fn openapi_operation() -> Vec<Documented> {
    let op = operation("This document", "openapi", None).response(
        "200",
        ResponseBuilder::new()
            .description("OpenAPI 3.0")
            .content("application/json", Content::new(ObjectBuilder::new()))
            .build(),
    );
    vec![at(Method::Get, op)]
}

/// `GET /health`, in every service.
fn health_operation() -> Vec<Documented> {
    vec![at(
        Method::Get,
        operation("Liveness", "health", None).response("200", json_response("The service is up.", "Health")),
    )]
}

/// One operation of a route table's row.
struct Documented {
    /// Where it is documented: the row's template, or for a prefix row
    /// (`/hls/`, `/assets/`...) the paths under it.
    path: Option<String>,
    method: Method,
    op: OperationBuilder,
}

/// The operation `op` at the row's own path.
fn at(method: Method, op: OperationBuilder) -> Documented {
    Documented { path: None, method, op }
}

/// Adds the documented rows of `table` to `doc`, each with the operations
/// `operations` describes for its id: API-key rows ([`Auth::ApiKey`]) take
/// the key and its errors ([`KEY_ROUTE_ERRORS`]). Panics (the `openapi`
/// test fails) when a row's methods and its operations differ.
fn document<Id: Copy + std::fmt::Debug>(
    doc: &mut OpenApi,
    table: &[Route<Id>],
    operations: impl Fn(Id) -> Vec<Documented>,
) {
    for row in table.iter().filter(|r| r.documented) {
        let ops = operations(row.id);
        for m in row.methods {
            assert!(ops.iter().any(|d| d.method == *m), "{:?}: {} is not documented", row.id, m.as_str());
        }
        for d in ops {
            assert!(row.methods.contains(&d.method), "{:?}: documents {}", row.id, d.method.as_str());
            let path = match (d.path, row.pattern) {
                (None, Pattern::Template(t)) => t.to_owned(),
                (Some(p), Pattern::Prefix(prefix)) if p.starts_with(prefix) => p,
                (p, pattern) => panic!("{:?}: {p:?} is not a path of {pattern:?}", row.id),
            };
            let op = match row.auth {
                Auth::ApiKey => with_errors(api_key(d.op), &[KEY_ROUTE_ERRORS]),
                _ => d.op,
            };
            let method = match d.method {
                Method::Get => PathItemType::Get,
                Method::Head => PathItemType::Head,
                Method::Post => PathItemType::Post,
                Method::Delete => PathItemType::Delete,
            };
            route(doc, &path, method, op.build());
        }
    }
}

fn route(doc: &mut OpenApi, path: &str, method: PathItemType, op: Operation) {
    match doc.paths.paths.get_mut(path) {
        Some(item) => {
            item.operations.insert(method, op);
        }
        None => {
            doc.paths.paths.insert(path.to_owned(), PathItem::new(method, op));
        }
    }
}

/// A stored object served with `GET` and `HEAD`: the same parameters and
/// answers, without a body for `HEAD`.
struct ObjectRoute<'a> {
    path: &'a str,
    summary: &'a str,
    operation_id: Option<&'a str>,
    description: &'a str,
    parameters: Vec<Parameter>,
    /// What the 200 is.
    what: &'a str,
    content_types: &'a [&'a str],
    /// Headers of the 200 and 206 answers.
    headers: Vec<(&'a str, Header)>,
    /// `(status, response name)` of its errors.
    errors: Errors<'a>,
}

fn object_routes(r: ObjectRoute<'_>) -> Vec<Documented> {
    let mut ops = Vec::new();
    for (method, head) in [(Method::Get, false), (Method::Head, true)] {
        let answer = |description: &str, extra: Option<(&str, Header)>| {
            let suffix = if head { " (no body)" } else { "" };
            let mut b = ResponseBuilder::new().description(format!("{description}{suffix}"));
            for (name, h) in r.headers.iter().cloned().chain(extra) {
                b = b.header(name, h);
            }
            if !head {
                for ct in r.content_types {
                    b = b.content(*ct, Content::new(binary()));
                }
            }
            b.build()
        };
        let content_range = ("Content-Range", header(string(), Some("bytes start-end/total")));
        let summary = if head { format!("{} (headers only)", r.summary) } else { r.summary.to_owned() };
        let operation_id = r.operation_id.map(|id| if head { format!("{id}Head") } else { id.to_owned() });
        let mut op = OperationBuilder::new()
            .summary(Some(summary))
            .operation_id(operation_id)
            .description(Some(r.description))
            .parameters(Some(r.parameters.iter().cloned()))
            .response("200", answer(r.what, None))
            .response("206", answer("The byte range asked for with Range.", Some(content_range)))
            .response(
                "304",
                ResponseBuilder::new()
                    .description("Not modified: If-None-Match matched the ETag.")
                    .header("ETag", header(string(), None))
                    .build(),
            );
        op = with_errors(op, &[r.errors]);
        ops.push(Documented { path: Some(r.path.to_owned()), method, op });
    }
    ops
}

fn base_document(title: &str, description: &str, port: u16) -> OpenApi {
    let mut doc = OpenApi::new(
        InfoBuilder::new().title(title).version(VERSION).description(Some(description)).build(),
        utoipa::openapi::Paths::new(),
    );
    doc.servers = Some(vec![ServerBuilder::new()
        .url(format!("http://127.0.0.1:{port}"))
        .description(Some("local (scripts/up.sh)"))
        .build()]);
    let mut c = Components::new();
    c.security_schemes.insert(
        "ApiKey".into(),
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-api-key",
            "One of the keys in IV_API_KEY; a key configured with app ids (key:app-a|app-b) may act only for those \
             apps. Server-to-server only: never ship it to browsers.",
        ))),
    );
    common_schemas(&mut c);
    doc.components = Some(c);
    doc
}

const RATE_LIMITED: &str = "Too many requests: this API key used its budget (600 a minute by default), or this \
                            address sent too many requests with a missing or wrong key (10 a minute).";

/// One event of a `text/event-stream` answer, as clients parse it: its
/// name, its id and its data (one line of JSON, described by the route).
fn sse_event() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Object)
        .property("event", string())
        .property("id", string().pattern(Some("^[0-9]+$")))
        .property("data", string().description(Some("One line of JSON.")))
        .property("retry", integer())
        .required("data")
}

/// The video service's document (`openapi/video-service.json`).
pub fn video_service() -> OpenApi {
    let mut doc = base_document(
        "Video service",
        "Presigned video uploads, transcoding jobs, job status, playback URLs and HLS playback. Errors are JSON: \
         {\"error\": {\"code\", \"message\"}}. Each API key acts only for the apps it is configured for (403 \
         app_not_allowed for another app_id). API-key routes are rate limited per key (600 a minute by default); \
         requests with a missing or wrong key are limited per client IP (10 a minute); public reads that reach \
         the job store are limited per client IP (1200 a minute); all answer 429 with Retry-After. The API-key \
         routes send no CORS headers: call them from servers only.",
        8788,
    );
    let c = doc.components.as_mut().expect("set by base_document");
    error_responses(c, RATE_LIMITED);
    add::<VideoId>(c);
    add::<JobId>(c);
    add::<VideoContentType>(c);
    add::<JobStatus>(c);
    add::<CallbackStatus>(c);
    add::<VideoUploadUrlRequest>(c);
    add::<VideoUploadUrlResponse>(c);
    add::<UploadSession>(c);
    add::<NotifyRequest>(c);
    // A notify refuses fields it does not know (a misspelt callback_url must
    // not pass unseen: `NotifyRequest::FIELDS`). utoipa 4 says so only for a
    // type with serde's `deny_unknown_fields`, and NotifyRequest is read field
    // by field, not by serde; a test checks the properties are those FIELDS.
    if let Some(RefOr::T(Schema::Object(notify))) = c.schemas.get_mut("NotifyRequest") {
        notify.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    }
    add::<CancelRequest>(c);
    add::<ThumbnailMeta>(c);
    add::<ThumbnailsView>(c);
    add::<Rendition>(c);
    add::<RenditionView>(c);
    add::<JobView>(c);
    add::<CancelResponse>(c);
    add::<DeletedVideo>(c);
    add::<DeleteVideoResponse>(c);
    add::<PlaybackUrlResponse>(c);
    add::<NotPlayableResponse>(c);
    public_rate_limited(c);

    document(&mut doc, VIDEO_ROUTES, video_operations);
    doc
}

/// What the public job reads say of themselves.
const PUBLIC_READ: &str = "Public. Answered from a short edge cache (the Cache API: 1 s while the job is queued \
            or processing, 2 s after an error, 60 s once done), so at most about one read a second per video and \
            location reaches the job store; counted against a generous per-IP limit (429). error and last_error are \
            the public forms of the job's failure: a message written for uploaders passes, faults on our side read \
            \"processing failed on our side; it will be retried\" or \"... after N attempts; call \
            /notify-upload-complete to try again\" (the full text goes to the logs). Ids without a job answer 404 \
            from KV without reaching any job object. Webhook delivery (callback_*) is never shown here: see \
            GET /videos/delivery.";
/// `Server-Timing` of the public job reads.
fn read_from() -> Header {
    header(
        string(),
        Some(
            "Where the job was read: jobstore;desc=\"cache\" (the edge cache), \"kv\" (a done job's record) or \
                     \"video\" (the video's job object).",
        ),
    )
}

/// The errors of the public job reads.
const PUBLIC_ERRORS: Errors<'static> =
    &[(400, "Error"), (404, "Error"), (405, "Error"), (429, "PublicRateLimited"), (500, "Error"), (503, "Unavailable")];
/// The query parameters naming a video.
fn ids() -> [Parameter; 2] {
    [query_id("app_id", "AppId"), query_id("video_id", "VideoId")]
}

/// The operations of each documented row of [`VIDEO_ROUTES`].
fn video_operations(id: VideoRoute) -> Vec<Documented> {
    match id {
        VideoRoute::UploadUrl => {
            let either = utoipa::openapi::schema::OneOfBuilder::new()
                .item(Ref::from_schema_name("VideoUploadUrlResponse"))
                .item(Ref::from_schema_name("UploadSession"));
            let op = operation(
            "Get a presigned URL to upload a video (or a resumable upload session)",
            "generateUploadUrl",
            Some(
                "size is required (without it: 400 saying what to send). Without multipart: a presigned PUT bound to \
                 the key, content type, size and If-None-Match: * (it writes the source once), for files up to 5 GiB. \
                 With \"multipart\": true: an UploadSession whose endpoint Uppy's @uppy/aws-s3 uses as is \
                 (Companion-compatible routes under /uploads/{upload_token}/s3/multipart, authorised by the token \
                 alone); parts follow R2's rules (5 MiB-5 GiB, all equal but the last, at most 10,000). The token \
                 starts one upload (a second create is 409) and allows only that one; completing or aborting it, or \
                 deleting the video, revokes the token (403); it expires after UPLOAD_SESSION_TTL_S (6 h).",
            ),
        )
        .response(
            "200",
            ResponseBuilder::new()
                .description("VideoUploadUrlResponse, or UploadSession when multipart was asked for.")
                .content("application/json", Content::new(either))
                .build(),
        );
            let op = with_errors(json_body(op, "VideoUploadUrlRequest"), &[&[(415, "Error")]]);
            vec![at(Method::Post, op)]
        }
        VideoRoute::Notify => {
            let op = operation(
            "Start (or retry) transcoding an uploaded video",
            "notifyUploadComplete",
            Some(
                "Checks the upload exists, then queues the job. Idempotent: a job already queued, running or done is \
                 returned as it is (200); a new job, or a retry of a failed or stalled one, is queued (202).",
            ),
        )
        .response("200", json_response("The job was already queued, running or done.", "JobView"))
        .response("202", json_response("The job was queued.", "JobView"));
            let op = with_errors(json_body(op, "NotifyRequest"), &[&[(409, "Error"), (415, "Error")]]);
            vec![at(Method::Post, op)]
        }
        VideoRoute::Cancel => {
            let op = operation(
            "Cancel a queued or running job",
            "cancelJob",
            Some(
                "Stops the job: it ends in status error (\"canceled through the API\") and its transcoder stops at its \
                 next heartbeat. A notify starts it again. `canceled` is false when the job had already ended.",
            ),
        )
        .response("200", json_response("The job after the request.", "CancelResponse"));
            let op = with_errors(json_body(op, "CancelRequest"), &[&[(404, "Error")]]);
            vec![at(Method::Post, op)]
        }
        VideoRoute::DeleteVideo => {
            let op = operation(
            "Delete a video for good",
            "deleteVideo",
            Some(
                "Cancels a queued or running job (its transcoder stops at its next heartbeat, which is refused), deletes \
                 every object of the video (the source, every attempt's outputs, thumbnails), its playback record, and \
                 its job state and events. When a job was queued or running, one more sweep of its objects follows at \
                 final_sweep_at (after the lease has surely ended), for what the transcoder wrote meanwhile; a notify \
                 of the same video is refused (409) until then. /job-status, /playback-url, /job-events and the HLS \
                 routes then answer 404 (within a minute in other locations, whose cached job reads expire). Repeating \
                 it is harmless: 200 with zeros. Edge caches and players may still hold files already served.",
            ),
        )
        .parameters(Some([
            query_id("app_id", "AppId"),
            query_id("video_id", "VideoId"),
            param("force", ParameterIn::Query, false, string().enum_values(Some(["true"])))
                .description(Some(
                    "Abort every resumable upload of the video still in progress (all of them, every page), then \
                     delete. Either way the delete revokes the video's upload session tokens.",
                ))
                .build(),
        ]))
        .response("200", json_response("What was removed.", "DeleteVideoResponse"));
            let op = with_errors(op, &[&[(409, "Error")]]);
            vec![at(Method::Delete, op)]
        }
        VideoRoute::Delivery => {
            let op = operation(
                "A job with its webhook delivery",
                "videoDelivery",
                Some(
                    "The job as /job-status shows it, plus the delivery of its webhooks: callback_status, \
                 callback_attempts and callback_last_error (why the receiver failed: \"HTTP 401\", \"could not \
                 connect\"...). Public routes never show these; only this route, the notify and cancel answers, and \
                 the app's /events stream do. Read from the video's job object, never cached.",
                ),
            )
            .parameters(Some([query_id("app_id", "AppId"), query_id("video_id", "VideoId")]))
            .response("200", json_response("The job with its webhook delivery.", "JobView"));
            let op = with_errors(op, &[&[(404, "Error")]]);
            vec![at(Method::Get, op)]
        }
        VideoRoute::Video => {
            let op = operation(
                "A video's job, for the app's backend",
                "getVideo",
                Some(
                    "The job as /job-status shows it, plus the delivery of its webhooks (callback_status, \
                     callback_attempts, callback_last_error): the answer of GET /videos/delivery, the video named \
                     by its path. The key must act for app_id (403 app_not_allowed otherwise); 404 for a video \
                     without a job. Read from the video's job object, never cached.",
                ),
            )
            .parameters(Some([path_id("app_id", "AppId"), path_id("video_id", "VideoId")]))
            .response("200", json_response("The job with its webhook delivery.", "JobView"));
            vec![at(Method::Get, with_errors(op, &[&[(404, "Error")]]))]
        }
        VideoRoute::JobStatus => {
            let mut ok = json_response("The job as it is now.", "JobView");
            ok.headers.insert("Server-Timing".into(), read_from());
            let op =
                operation("Poll a job", "jobStatus", Some(PUBLIC_READ)).parameters(Some(ids())).response("200", ok);
            vec![at(Method::Get, with_errors(op, &[PUBLIC_ERRORS]))]
        }
        VideoRoute::PlaybackUrl => {
            let mut ok = json_response(
                "The master playlist (available once playable, before the whole ladder is done).",
                "PlaybackUrlResponse",
            );
            ok.headers.insert("Server-Timing".into(), read_from());
            let op = operation("Get the HLS playback URL", "playbackUrl", Some(PUBLIC_READ))
                .parameters(Some(ids()))
                .response("200", ok)
                .response(
                    "409",
                    json_response(
                        "Not playable yet (or failed): the error, with the job's status and progress.",
                        "NotPlayableResponse",
                    ),
                );
            vec![at(Method::Get, with_errors(op, &[PUBLIC_ERRORS]))]
        }
        VideoRoute::JobEvents => {
            let stream = ResponseBuilder::new()
            .description(
                "text/event-stream. Every event has an id. `connected` {clientId, job: JobView} first, then the kept \
                 events after Last-Event-ID (all kept events without one), then live ones: job:created {jobId, appId, \
                 videoId, status: pending}, job:started {jobId, videoId, status: running, attempt}, \
                 job:progress {jobId, progress 0-100, stage}, job:playable {jobId, playbackUrl, posterUrl}, \
                 job:completed {jobId, videoId, status: completed, job: JobView}, job:error {jobId, videoId, status: \
                 error, error (public message), final}, job:canceled {jobId, status: canceled}, and heartbeat \
                 {timestamp} every 15 s while quiet. The stream ends after job:completed, a final job:error or \
                 job:canceled.",
            )
            .content("text/event-stream", Content::new(sse_event()))
            .build();
            let op = operation(
            "Follow a job's events (Server-Sent Events)",
            "jobEvents",
            Some(
                "Public, like /job-status. An EventSource reconnects by itself with Last-Event-ID and gets what it \
                 missed (the video keeps its last 200 events). 204 when the job has ended and the client has every \
                 event, which tells an EventSource to stop. A video keeps at most SSE_MAX_PER_VIDEO (500) streams \
                 open, and SSE_MAX_PER_ADDRESS (10) from one client address (an IPv6 address counts by its /64): \
                 past them, 429 rate_limited with Retry-After.",
            ),
        )
        .parameters(Some([
            query_id("app_id", "AppId"),
            query_id("video_id", "VideoId"),
            param("Last-Event-ID", ParameterIn::Header, false, integer().minimum(Some(0.0))).build(),
            param("last_event_id", ParameterIn::Query, false, integer().minimum(Some(0.0)))
                .description(Some("The same, for clients that cannot set the header."))
                .build(),
        ]))
        .response("200", stream)
        .response("204", ResponseBuilder::new().description("The job ended and the client has every event.").build());
            vec![at(Method::Get, with_errors(op, &[PUBLIC_ERRORS]))]
        }
        VideoRoute::AppEvents => {
            let app_stream = ResponseBuilder::new()
                .description(
                    "text/event-stream. `connected` {clientId, recent: [{videoId, jobId, status, progress, stage, \
                 updatedAt}] (the app's last 100 changed jobs, newest first)}, then every job event of every video of \
                 the app (the names and data of /job-events, with videoId), `webhook` {eventId, type, destination, \
                 state, attempts, lastError} for each delivery attempt, and heartbeat. Never ends on its own.",
                )
                .content("text/event-stream", Content::new(sse_event()))
                .build();
            let op = operation(
            "Follow every job of an app (Server-Sent Events)",
            "appEvents",
            Some(
                "For backends and dashboards: one stream of the app's job events and webhook outcomes. The key must \
                 act for app_id (403 app_not_allowed otherwise). Resumes with Last-Event-ID (the app keeps its last \
                 500 events); without it, only live events after `connected`.",
            ),
        )
        .parameters(Some([
            query_id("app_id", "AppId"),
            param("Last-Event-ID", ParameterIn::Header, false, integer().minimum(Some(0.0))).build(),
            param("last_event_id", ParameterIn::Query, false, integer().minimum(Some(0.0))).build(),
        ]))
        .response("200", app_stream);
            vec![at(Method::Get, op)]
        }
        VideoRoute::Hls => hls_routes(),
        VideoRoute::OpenApi => openapi_operation(),
        VideoRoute::Health => health_operation(),
        VideoRoute::MultipartCreate
        | VideoRoute::MultipartUpload
        | VideoRoute::MultipartComplete
        | VideoRoute::MultipartPart
        | VideoRoute::Internal => vec![],
    }
}

/// `GET`/`HEAD /hls/...`: the files of a video's playable output.
fn hls_routes() -> Vec<Documented> {
    const DESCRIPTION: &str = "Public. Only the video's current output (the attempt that became playable) is \
        served; the outputs of failed or canceled attempts, and any other output_id, are 404. A GET is one \
        conditional, ranged storage read; segments and images are then kept at the edge (the Cache API) for a year \
        and playlists for 2 s, so repeats, ranges and revalidations cost no storage operation. Server-Timing \
        reports it: cache;desc=\"hit|miss\", storage;desc=\"ops=N\". A request whose job read reaches the \
        video's job object (a running job's playlists, an unknown video) counts against the per-IP limit of public \
        reads (429).";
    const ERRORS: Errors<'static> = &[
        (400, "Error"),
        (404, "Error"),
        (405, "Error"),
        (416, "RangeNotSatisfiable"),
        (429, "PublicRateLimited"),
        (500, "Error"),
        (503, "Unavailable"),
    ];
    let rung = || {
        param(
            "rung",
            ParameterIn::Path,
            true,
            string().pattern(Some("^[1-9][0-9]{0,3}p$")).example(Some("720p".into())),
        )
        .build()
    };
    let segment = || {
        param(
            "segment",
            ParameterIn::Path,
            true,
            string().pattern(Some("^[0-9]{5,}\\.m4s$")).example(Some("00000.m4s".into())),
        )
        .build()
    };
    let files: [(&str, &str, &str, bool, bool); 7] = [
        ("master.m3u8", "The master playlist", "application/vnd.apple.mpegurl", false, false),
        ("{rung}/index.m3u8", "A rendition's media playlist", "application/vnd.apple.mpegurl", true, false),
        ("{rung}/init.mp4", "A rendition's fMP4 initialization segment", "video/mp4", true, false),
        ("{rung}/{segment}", "A media segment", "video/iso.segment", true, true),
        ("poster.jpg", "The poster image", "image/jpeg", false, false),
        ("sprite.jpg", "The thumbnail sprite", "image/jpeg", false, false),
        (
            "thumbnails.vtt",
            "The WebVTT thumbnails track (cues point into the sprite with #xywh=)",
            "text/vtt",
            false,
            false,
        ),
    ];
    let mut ops = Vec::new();
    for (file, what, content_type, has_rung, has_segment) in files {
        let mut parameters = vec![
            path_id("app_id", "AppId"),
            path_id("video_id", "VideoId"),
            param("output_id", ParameterIn::Path, true, string().pattern(Some("^[a-z0-9]{1,32}$"))).build(),
        ];
        if has_rung {
            parameters.push(rung());
        }
        if has_segment {
            parameters.push(segment());
        }
        parameters.extend(conditional_headers());
        ops.extend(object_routes(ObjectRoute {
            path: &format!("/hls/{{app_id}}/{{video_id}}/{{output_id}}/{file}"),
            summary: what,
            operation_id: None,
            description: DESCRIPTION,
            parameters,
            what,
            content_types: &[content_type],
            headers: vec![("ETag", header(string(), None)), ("Cache-Control", header(string(), None))],
            errors: ERRORS,
        }));
    }
    ops
}

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
             copies until evicted, or a zone purge (see the README). Repeating it is harmless: 200 with zeros.",
                ),
            )
            .parameters(Some([query_id("app_id", "AppId"), query_id("image_id", "ImageId")]))
            .response("200", json_response("What was removed.", "DeleteImageResponse"));
            let op = op;
            vec![at(Method::Delete, op)]
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

/// The 429 of public routes past the edge cache, counted per client address
/// (`PUBLIC_RATE_LIMITER`), in both services' documents.
fn public_rate_limited(c: &mut utoipa::openapi::Components) {
    let mut public_limited = json_response(
        "Too many public reads from this address (PUBLIC_RATE_LIMITER: 1200 a minute by default).",
        "ErrorBody",
    );
    public_limited.headers.insert("Retry-After".into(), header(integer(), Some("Seconds to wait.")));
    c.responses.insert("PublicRateLimited".into(), public_limited.into());
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

/// A document as committed: pretty JSON and a final newline.
pub fn to_json(doc: &OpenApi) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("an OpenAPI document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::VideoType;

    #[test]
    fn content_type_lists_follow_the_rules() {
        for ct in VIDEO_CONTENT_TYPES {
            assert!(VideoType::from_content_type(ct).is_some(), "{ct}");
        }
        for kind in VideoType::ALL {
            assert!(VIDEO_CONTENT_TYPES.contains(&kind.canonical_content_type()), "{kind:?}");
        }
        for ct in IMAGE_CONTENT_TYPES {
            assert!(ImageType::from_content_type(ct).is_some(), "{ct}");
        }
        for kind in ImageType::ALL {
            assert!(IMAGE_CONTENT_TYPES.contains(&kind.content_type()), "{kind:?}");
        }
    }

    #[test]
    fn a_notify_documents_exactly_the_fields_it_accepts() {
        let v = serde_json::to_value(video_service()).unwrap();
        let notify = &v["components"]["schemas"]["NotifyRequest"];
        let mut documented: Vec<&str> = notify["properties"].as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut accepted = crate::wire::api::NotifyRequest::FIELDS.to_vec();
        documented.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(documented, accepted);
        assert_eq!(notify["additionalProperties"], false);
    }

    #[test]
    fn documented_size_limits_are_the_defaults() {
        use crate::media::{DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_VIDEO_BYTES};
        let max = |doc: OpenApi, schema: &str| {
            let v = serde_json::to_value(doc).unwrap();
            v["components"]["schemas"][schema]["properties"]["size"]["maximum"].as_f64()
        };
        assert_eq!(max(video_service(), "VideoUploadUrlRequest"), Some(DEFAULT_MAX_VIDEO_BYTES as f64));
        assert_eq!(max(image_service(), "ImageUploadUrlRequest"), Some(DEFAULT_MAX_IMAGE_BYTES as f64));
    }
}

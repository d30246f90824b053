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
    NotPlayableResponse, NotifyRequest, PlaybackUrlResponse, PresignedPut, RenditionView, StreamTokenRequest,
    StreamTokenResponse, ThumbnailsView, UploadSession, VideoUploadUrlRequest, VideoUploadUrlResponse,
};
use crate::wire::routes::{Auth, ImageRoute, Method, Pattern, Route, VideoRoute, IMAGE_ROUTES, VIDEO_ROUTES};

mod image;
mod video;

pub use image::image_service;
pub use video::video_service;

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
                .property(
                    "require_signed_urls",
                    string().enum_values(Some(["true", "false"])).description(Some(
                        "true: the image is served only to signed URLs (see POST /url-signing-keys). Default false.",
                    )),
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

/// A JSON body the route also takes absent (empty): its defaults.
fn optional_json_body(op: OperationBuilder, schema: &str) -> OperationBuilder {
    op.request_body(Some(
        RequestBodyBuilder::new().required(Some(Required::False)).content("application/json", json(schema)).build(),
    ))
}

/// The object schema `name` among `c`'s components, to state what its
/// derive cannot; a missing or non-object schema is a bug in this module.
fn object_schema<'c>(c: &'c mut Components, name: &str) -> &'c mut utoipa::openapi::schema::Object {
    match c.schemas.get_mut(name) {
        Some(RefOr::T(Schema::Object(o))) => o,
        _ => panic!("{name} is not an object schema among the components"),
    }
}

/// Bodies read with `Fields::only`, which refuses a field it does not list:
/// utoipa 4 says so only for serde's `deny_unknown_fields`, and these types
/// are read field by field, not by serde.
fn closed(c: &mut Components, names: &[&str]) {
    for name in names {
        object_schema(c, name).additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    }
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
                // Either one: the key (servers) or a stream token (browsers).
                Auth::ApiKeyOrStreamToken => with_errors(
                    api_key(d.op).security(SecurityRequirement::new("StreamToken", Vec::<String>::new())),
                    &[KEY_ROUTE_ERRORS],
                ),
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

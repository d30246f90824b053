//! One route table per service: the one place a route is declared. Each row
//! names a path pattern, the methods it takes, who may call it ([`Auth`])
//! and the handler (a route id the Worker matches on). From the table come:
//!
//! - the method gate: any other method is a 405 whose `Allow` lists the
//!   path's methods (and `OPTIONS`, answered as a CORS preflight);
//! - CORS: answers of [`Auth::is_server_only`] routes carry none, so a
//!   browser can neither send them a key nor read them;
//! - the OpenAPI paths (`wire::openapi` documents each documented row, and
//!   marks API-key rows with the key and their errors).
//!
//! Adding a route is one row here, one handler in its Worker (matched on
//! its id) and its types. The table is plain data: the Workers match
//! requests against it ([`find`]) and the native OpenAPI builder reads it.

/// A method a route takes (what `worker::Method` calls them, in capitals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone: browsers read the answers (CORS).
    Public,
    /// A resumable upload's token in the path; browsers call these (CORS).
    UploadToken,
    /// The `x-api-key` header (checked by the handler through the guard):
    /// servers only, no CORS.
    ApiKey,
    /// The transcoder's bearer token. Servers only, no CORS; the handler
    /// checks the token before the method, so callers without it learn
    /// nothing of the internal routes (401 for every one of them).
    Transcoder,
    /// The bearer token the platform's Workers share
    /// (`INTERNAL_EVENTS_TOKEN`): the image Worker, through its service
    /// binding. Servers only, no CORS; checked before the method, as
    /// [`Auth::Transcoder`].
    Workers,
    /// The `x-api-key` header, as [`Auth::ApiKey`] (servers: no CORS), or
    /// a stream token in `?stream_token=` (`crate::video::stream_token`),
    /// which a browser's `EventSource` can send: the answers to those carry
    /// CORS. Decided per request ([`Auth::browsers_may_read`]).
    ApiKeyOrStreamToken,
}

impl Auth {
    /// Browsers must never call it: its answers, preflights included, carry
    /// no CORS headers.
    pub fn is_server_only(self) -> bool {
        matches!(self, Auth::ApiKey | Auth::Transcoder | Auth::Workers)
    }

    /// Whether the answer to a request carries CORS: never on server-only
    /// routes; on [`Auth::ApiKeyOrStreamToken`] routes only for a request
    /// with a stream token (`with_stream_token`), a browser's.
    pub fn browsers_may_read(self, with_stream_token: bool) -> bool {
        match self {
            Auth::ApiKeyOrStreamToken => with_stream_token,
            other => !other.is_server_only(),
        }
    }

    /// The handler must run the API-key guard (or, where the row allows a
    /// stream token, the guard that checks one of the two).
    pub fn needs_guard(self) -> bool {
        matches!(self, Auth::ApiKey | Auth::ApiKeyOrStreamToken)
    }

    /// The Worker applies the method gate before the handler runs (the
    /// transcoder's routes gate after their token).
    pub fn gated_by_table(self) -> bool {
        !matches!(self, Auth::Transcoder | Auth::Workers)
    }
}

/// The paths a row serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `/`-separated segments; `{name}` is any one segment, anything else
    /// itself. The whole path must match (`/job-status/` does not).
    Template(&'static str),
    /// Every path that starts with it; the handler reads the rest.
    Prefix(&'static str),
}

impl Pattern {
    /// The text of the pattern.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Template(t) | Pattern::Prefix(t) => t,
        }
    }

    /// Whether `path` is one of its paths.
    pub fn matches(self, path: &str) -> bool {
        self.params(path).is_some()
    }

    /// The values of a template's `{name}` segments in `path`, in order
    /// (empty for a prefix), or `None` when `path` is not one of its paths.
    pub fn params(self, path: &str) -> Option<Vec<&str>> {
        match self {
            Pattern::Prefix(p) => path.starts_with(p).then(Vec::new),
            Pattern::Template(t) => {
                let (want, got): (Vec<&str>, Vec<&str>) = (t.split('/').collect(), path.split('/').collect());
                if want.len() != got.len() {
                    return None;
                }
                let mut params = Vec::new();
                for (w, g) in want.iter().zip(&got) {
                    if w.starts_with('{') && w.ends_with('}') {
                        params.push(*g);
                    } else if w != g {
                        return None;
                    }
                }
                Some(params)
            }
        }
    }
}

/// One row of a service's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<Id: 'static> {
    pub pattern: Pattern,
    /// The methods this row's handler takes. Rows of the same pattern with
    /// other methods may follow (`GET /images`, `DELETE /images`).
    pub methods: &'static [Method],
    pub auth: Auth,
    pub id: Id,
    /// In the service's OpenAPI document (`wire::openapi` describes it).
    pub documented: bool,
}

/// What a request's path found in a table: the rows of the first pattern
/// that matches it (one per handler), in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<Id: 'static> {
    pub rows: Vec<&'static Route<Id>>,
}

impl<Id: Copy> Found<Id> {
    /// Who may call the path (the same for all its rows; a test checks the tables).
    pub fn auth(&self) -> Auth {
        self.rows[0].auth
    }

    /// The row whose handler takes `method`.
    pub fn row_for(&self, method: Method) -> Option<&'static Route<Id>> {
        self.rows.iter().copied().find(|r| r.methods.contains(&method))
    }

    /// Every method the path takes, in table order (the `Allow` of its 405).
    pub fn methods(&self) -> Vec<Method> {
        self.rows.iter().flat_map(|r| r.methods.iter().copied()).collect()
    }
}

/// The rows serving `path`: those of the first pattern in `table` that
/// matches it. `None`: no route (404).
pub fn find<Id>(table: &'static [Route<Id>], path: &str) -> Option<Found<Id>> {
    let first = table.iter().find(|r| r.pattern.matches(path))?;
    Some(Found { rows: table.iter().filter(|r| r.pattern == first.pattern).collect() })
}

const GET: &[Method] = &[Method::Get];
const GET_HEAD: &[Method] = &[Method::Get, Method::Head];
const POST: &[Method] = &[Method::Post];
const DELETE: &[Method] = &[Method::Delete];

const fn row<Id>(pattern: Pattern, methods: &'static [Method], auth: Auth, id: Id) -> Route<Id> {
    Route { pattern, methods, auth, id, documented: true }
}

const fn hidden<Id>(pattern: Pattern, methods: &'static [Method], auth: Auth, id: Id) -> Route<Id> {
    Route { pattern, methods, auth, id, documented: false }
}

use Auth::{ApiKey, ApiKeyOrStreamToken, Public, Transcoder, UploadToken, Workers};
use Pattern::{Prefix, Template};

/// The video service's handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoRoute {
    /// `POST /generate-upload-url`.
    UploadUrl,
    /// `POST /notify-upload-complete`.
    Notify,
    /// `POST /cancel-job`.
    Cancel,
    /// `DELETE /videos`.
    DeleteVideo,
    /// `GET /videos/delivery`.
    Delivery,
    /// `GET /videos/{app_id}/{video_id}`.
    Video,
    /// `GET /job-status`.
    JobStatus,
    /// `GET /playback-url`.
    PlaybackUrl,
    /// `GET /job-events`.
    JobEvents,
    /// `GET /events`.
    AppEvents,
    /// `POST /events/token`.
    StreamToken,
    /// `GET`/`HEAD /hls/...`.
    Hls,
    /// `GET`/`HEAD /download`: a video's MP4 download.
    Download,
    /// `GET`/`HEAD /hls/t/{token}/...`: a private video's files, with a token.
    SignedHls,
    /// `GET`/`POST /signing-keys`: list, create.
    SigningKeys,
    /// `DELETE /signing-keys/{key_id}`: revoke.
    SigningKey,
    /// `POST /playback-tokens`: mint a token.
    PlaybackTokens,
    /// `POST /videos/{app_id}/{video_id}/access`: `require_signed_urls`.
    VideoAccess,
    /// `GET /videos/{app_id}/{video_id}/captions`: the caption tracks.
    Captions,
    /// `POST`/`DELETE /videos/{app_id}/{video_id}/captions/{language}`.
    Caption,
    /// `GET`/`POST /webhooks/endpoints`: list, create.
    WebhookEndpoints,
    /// `GET`/`POST`/`DELETE /webhooks/endpoints/{endpoint_id}`: get, update, delete.
    WebhookEndpoint,
    /// `POST /webhooks/endpoints/{endpoint_id}/rotate`.
    WebhookEndpointRotate,
    /// `GET /webhooks/endpoints/{endpoint_id}/deliveries`.
    WebhookDeliveries,
    /// `POST /webhooks/endpoints/{endpoint_id}/deliveries/{event_id}/redeliver`.
    WebhookRedeliver,
    /// `POST /uploads`: a direct upload object.
    CreateUpload,
    /// `GET`/`DELETE /uploads/{upload_id}`.
    Upload,
    /// `POST /uploads/{upload_id}/complete` (the upload's token).
    CompleteUpload,
    /// Uppy's resumable upload routes, by the shape of their path.
    MultipartCreate,
    MultipartUpload,
    MultipartComplete,
    MultipartPart,
    /// `POST /internal/events`: the image Worker's catalogue events.
    WorkerEvents,
    /// `POST /internal/...`, the transcoder's API (its own routes after the token).
    Internal,
    OpenApi,
    Health,
}

/// The video service's routes, in match order.
pub static VIDEO_ROUTES: &[Route<VideoRoute>] = &[
    row(Template("/generate-upload-url"), POST, ApiKey, VideoRoute::UploadUrl),
    row(Template("/notify-upload-complete"), POST, ApiKey, VideoRoute::Notify),
    row(Template("/cancel-job"), POST, ApiKey, VideoRoute::Cancel),
    row(Template("/videos"), DELETE, ApiKey, VideoRoute::DeleteVideo),
    row(Template("/videos/delivery"), GET, ApiKey, VideoRoute::Delivery),
    row(Template("/videos/{app_id}/{video_id}"), GET, ApiKey, VideoRoute::Video),
    row(Template("/videos/{app_id}/{video_id}/access"), POST, ApiKey, VideoRoute::VideoAccess),
    row(Template("/videos/{app_id}/{video_id}/captions"), GET, ApiKey, VideoRoute::Captions),
    row(
        Template("/videos/{app_id}/{video_id}/captions/{language}"),
        &[Method::Post, Method::Delete],
        ApiKey,
        VideoRoute::Caption,
    ),
    row(Template("/job-status"), GET, Public, VideoRoute::JobStatus),
    row(Template("/playback-url"), GET, Public, VideoRoute::PlaybackUrl),
    row(Template("/job-events"), GET, Public, VideoRoute::JobEvents),
    row(Template("/events"), GET, ApiKeyOrStreamToken, VideoRoute::AppEvents),
    row(Template("/events/token"), POST, ApiKey, VideoRoute::StreamToken),
    // Before `/hls/`. A path of app `t` (`/hls/t/{video}/...`: no dots in
    // its video id, where a token has two) is handed to the public route.
    row(Prefix(crate::video::playback_token::TOKEN_PATH_PREFIX), GET_HEAD, Public, VideoRoute::SignedHls),
    row(Prefix("/hls/"), GET_HEAD, Public, VideoRoute::Hls),
    row(Template("/download"), GET_HEAD, Public, VideoRoute::Download),
    row(Template("/signing-keys"), &[Method::Get, Method::Post], ApiKey, VideoRoute::SigningKeys),
    row(Template("/signing-keys/{key_id}"), DELETE, ApiKey, VideoRoute::SigningKey),
    row(Template("/playback-tokens"), POST, ApiKey, VideoRoute::PlaybackTokens),
    row(Template("/webhooks/endpoints"), &[Method::Get, Method::Post], ApiKey, VideoRoute::WebhookEndpoints),
    row(
        Template("/webhooks/endpoints/{endpoint_id}"),
        &[Method::Get, Method::Post, Method::Delete],
        ApiKey,
        VideoRoute::WebhookEndpoint,
    ),
    row(Template("/webhooks/endpoints/{endpoint_id}/rotate"), POST, ApiKey, VideoRoute::WebhookEndpointRotate),
    row(Template("/webhooks/endpoints/{endpoint_id}/deliveries"), GET, ApiKey, VideoRoute::WebhookDeliveries),
    row(
        Template("/webhooks/endpoints/{endpoint_id}/deliveries/{event_id}/redeliver"),
        POST,
        ApiKey,
        VideoRoute::WebhookRedeliver,
    ),
    row(Template("/uploads"), POST, ApiKey, VideoRoute::CreateUpload),
    row(Template("/uploads/{upload_id}"), &[Method::Get, Method::Delete], ApiKey, VideoRoute::Upload),
    row(Template("/uploads/{upload_id}/complete"), POST, UploadToken, VideoRoute::CompleteUpload),
    hidden(Template("/uploads/{upload_token}/s3/multipart"), POST, UploadToken, VideoRoute::MultipartCreate),
    hidden(
        Template("/uploads/{upload_token}/s3/multipart/{upload_id}"),
        &[Method::Get, Method::Delete],
        UploadToken,
        VideoRoute::MultipartUpload,
    ),
    hidden(
        Template("/uploads/{upload_token}/s3/multipart/{upload_id}/complete"),
        POST,
        UploadToken,
        VideoRoute::MultipartComplete,
    ),
    hidden(
        Template("/uploads/{upload_token}/s3/multipart/{upload_id}/{part}"),
        GET,
        UploadToken,
        VideoRoute::MultipartPart,
    ),
    hidden(Template(crate::wire::worker_events::WORKER_EVENTS_PATH), POST, Workers, VideoRoute::WorkerEvents),
    hidden(Prefix("/internal/"), POST, Transcoder, VideoRoute::Internal),
    row(Template("/openapi.json"), GET, Public, VideoRoute::OpenApi),
    row(Template("/health"), GET, Public, VideoRoute::Health),
    hidden(Template("/"), GET, Public, VideoRoute::Health),
];

/// The image service's handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRoute {
    /// `POST /generate-image-upload-url`.
    UploadUrl,
    /// `POST /upload`.
    Upload,
    /// `GET /images`: an image's record.
    Metadata,
    /// `DELETE /images`.
    Delete,
    /// `GET`/`HEAD /assets/...`: originals.
    Asset,
    /// `GET`/`HEAD /images/{app_id}/{image_id}/{options}`: variants.
    Variant,
    /// `GET`/`HEAD /cdn-cgi/image/...`: the older `transform_url`.
    CdnCgi,
    /// `POST /images/{app_id}/{image_id}/access`: `require_signed_urls`.
    Access,
    /// `GET`/`POST /url-signing-keys`: list, create or rotate.
    UrlSigningKeys,
    OpenApi,
    Health,
}

/// The image service's routes, in match order.
pub static IMAGE_ROUTES: &[Route<ImageRoute>] = &[
    row(Prefix(crate::wire::api::IMAGE_ASSETS_PREFIX), GET_HEAD, Public, ImageRoute::Asset),
    // Before the variants' prefix, which would take it for options.
    row(Template("/images/{app_id}/{image_id}/access"), POST, ApiKey, ImageRoute::Access),
    row(Prefix(crate::image::variant::VARIANT_ROUTE_PREFIX), GET_HEAD, Public, ImageRoute::Variant),
    row(Prefix(crate::image::transform::TRANSFORM_PATH_PREFIX), GET_HEAD, Public, ImageRoute::CdnCgi),
    row(Template("/generate-image-upload-url"), POST, ApiKey, ImageRoute::UploadUrl),
    row(Template("/upload"), POST, ApiKey, ImageRoute::Upload),
    row(Template("/images"), GET, ApiKey, ImageRoute::Metadata),
    row(Template("/images"), DELETE, ApiKey, ImageRoute::Delete),
    row(Template("/url-signing-keys"), &[Method::Get, Method::Post], ApiKey, ImageRoute::UrlSigningKeys),
    row(Template("/openapi.json"), GET, Public, ImageRoute::OpenApi),
    row(Template("/health"), GET, Public, ImageRoute::Health),
    hidden(Template("/"), GET, Public, ImageRoute::Health),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<Id: Copy>(found: Option<Found<Id>>) -> Vec<Id> {
        found.map(|f| f.rows.iter().map(|r| r.id).collect()).unwrap_or_default()
    }

    #[test]
    fn paths_find_their_handlers() {
        assert_eq!(ids(find(VIDEO_ROUTES, "/videos")), [VideoRoute::DeleteVideo]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/videos/delivery")), [VideoRoute::Delivery]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/videos/app/vid")), [VideoRoute::Video]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/videos/app/vid/x")), []);
        assert_eq!(ids(find(VIDEO_ROUTES, "/job-status/")), []);
        assert_eq!(ids(find(VIDEO_ROUTES, "/")), [VideoRoute::Health]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/hls/a/b/c/master.m3u8")), [VideoRoute::Hls]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/download")), [VideoRoute::Download]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/download/x")), []);
        assert_eq!(ids(find(VIDEO_ROUTES, "/hls/t/x.y.z/master.m3u8")), [VideoRoute::SignedHls]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/videos/app/vid/access")), [VideoRoute::VideoAccess]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/signing-keys")), [VideoRoute::SigningKeys]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/signing-keys/k")), [VideoRoute::SigningKey]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/playback-tokens")), [VideoRoute::PlaybackTokens]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/internal/anything")), [VideoRoute::Internal]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/internal/events")), [VideoRoute::WorkerEvents]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/t/s3/multipart")), [VideoRoute::MultipartCreate]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/t/s3/multipart/u")), [VideoRoute::MultipartUpload]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/t/s3/multipart/u/complete")), [VideoRoute::MultipartComplete]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/t/s3/multipart/u/batch")), [VideoRoute::MultipartPart]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/t/s3/multipart/u/1/2")), []);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads")), [VideoRoute::CreateUpload]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/u")), [VideoRoute::Upload]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/u/complete")), [VideoRoute::CompleteUpload]);
        assert_eq!(ids(find(VIDEO_ROUTES, "/uploads/u/s3")), []);
        assert_eq!(ids(find(IMAGE_ROUTES, "/images")), [ImageRoute::Metadata, ImageRoute::Delete]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/images/a/b/w=1")), [ImageRoute::Variant]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/images/a/b/access")), [ImageRoute::Access]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/url-signing-keys")), [ImageRoute::UrlSigningKeys]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/assets/images/a/b")), [ImageRoute::Asset]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/cdn-cgi/image/w=1/assets/images/a/b")), [ImageRoute::CdnCgi]);
        assert_eq!(ids(find(IMAGE_ROUTES, "/nope")), []);
    }

    #[test]
    fn a_path_lists_its_methods_and_params() {
        let images = find(IMAGE_ROUTES, "/images").unwrap();
        assert_eq!(images.methods(), [Method::Get, Method::Delete]);
        assert_eq!(images.row_for(Method::Delete).map(|r| r.id), Some(ImageRoute::Delete));
        assert_eq!(images.row_for(Method::Post), None);
        let pattern = Template("/uploads/{upload_token}/s3/multipart/{upload_id}/{part}");
        assert_eq!(pattern.params("/uploads/tok/s3/multipart/up/3"), Some(vec!["tok", "up", "3"]));
        assert_eq!(pattern.params("/uploads/tok/s3/multipart/up"), None);
    }

    /// The rows of one pattern are one path: they agree on who may call it
    /// (CORS and the key are decided per path) and share no method.
    fn consistent<Id: std::fmt::Debug>(table: &[Route<Id>]) {
        for (i, a) in table.iter().enumerate() {
            for b in &table[i + 1..] {
                if a.pattern == b.pattern {
                    assert_eq!(a.auth, b.auth, "{:?}", a.pattern);
                    assert!(a.methods.iter().all(|m| !b.methods.contains(m)), "{:?} twice", a.pattern);
                }
            }
            assert!(!a.methods.is_empty(), "{:?}", a.pattern);
        }
    }

    #[test]
    fn the_tables_are_consistent() {
        consistent(VIDEO_ROUTES);
        consistent(IMAGE_ROUTES);
        // The server-only paths: the API-key routes and the internal API.
        let server_only: Vec<&str> =
            VIDEO_ROUTES.iter().filter(|r| r.auth.is_server_only()).map(|r| r.pattern.as_str()).collect();
        assert_eq!(
            server_only,
            [
                "/generate-upload-url",
                "/notify-upload-complete",
                "/cancel-job",
                "/videos",
                "/videos/delivery",
                "/videos/{app_id}/{video_id}",
                "/videos/{app_id}/{video_id}/access",
                "/videos/{app_id}/{video_id}/captions",
                "/videos/{app_id}/{video_id}/captions/{language}",
                "/events/token",
                "/signing-keys",
                "/signing-keys/{key_id}",
                "/playback-tokens",
                "/webhooks/endpoints",
                "/webhooks/endpoints/{endpoint_id}",
                "/webhooks/endpoints/{endpoint_id}/rotate",
                "/webhooks/endpoints/{endpoint_id}/deliveries",
                "/webhooks/endpoints/{endpoint_id}/deliveries/{event_id}/redeliver",
                "/uploads",
                "/uploads/{upload_id}",
                "/internal/events",
                "/internal/"
            ]
        );
        // `/events` answers browsers only when they bring a stream token.
        let events = find(VIDEO_ROUTES, "/events").unwrap().auth();
        assert_eq!(events, ApiKeyOrStreamToken);
        assert!(!events.browsers_may_read(false) && events.browsers_may_read(true) && events.needs_guard());
        assert!(Public.browsers_may_read(false) && !ApiKey.browsers_may_read(true) && !Transcoder.needs_guard());
        assert_eq!(ids(find(VIDEO_ROUTES, "/events/token")), [VideoRoute::StreamToken]);
    }
}

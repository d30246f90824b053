//! The video service's document: its routes' operations, from `VIDEO_ROUTES`.

use super::*;
use crate::video::access::{DownloadOption, Encryption, PlaybackOptions};
use crate::video::download::DownloadStatus;
use crate::video::extras::{CoverMeta, CoverOption, Extras, PreviewFormat, PreviewMeta, PreviewOption};
use crate::video::playback_token::Alg;
use crate::video::upload::{UploadError, UploadStatus};
use crate::wire::api::{CoverView, DownloadView, PreviewView};
use crate::wire::api::{CreateUploadRequest, UploadView};
use crate::wire::endpoints::{
    DeliveryAttempt, DeliveryLog, EndpointCreateRequest, EndpointCreated, EndpointDeleted, EndpointList,
    EndpointUpdateRequest, EndpointView, Redelivery, RotateRequest, RotatedSecret,
};
use crate::wire::playback::{
    AccessRequest, PlaybackTokenRequest, PlaybackTokenResponse, SigningKeyCreateRequest, SigningKeyCreated,
    SigningKeyInfo, SigningKeyList, SigningKeyRevoked,
};

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
    add::<UploadStatus>(c);
    add::<UploadError>(c);
    add::<CreateUploadRequest>(c);
    add::<UploadView>(c);
    add::<NotifyRequest>(c);
    add::<CancelRequest>(c);
    add::<ThumbnailMeta>(c);
    add::<ThumbnailsView>(c);
    add::<Rendition>(c);
    add::<RenditionView>(c);
    add::<DownloadStatus>(c);
    add::<DownloadView>(c);
    add::<JobView>(c);
    add::<CancelResponse>(c);
    add::<DeletedVideo>(c);
    add::<DeleteVideoResponse>(c);
    add::<PlaybackUrlResponse>(c);
    add::<NotPlayableResponse>(c);
    add::<StreamTokenRequest>(c);
    add::<EndpointCreateRequest>(c);
    add::<EndpointUpdateRequest>(c);
    add::<RotateRequest>(c);
    add::<EndpointView>(c);
    add::<EndpointCreated>(c);
    add::<EndpointList>(c);
    add::<EndpointDeleted>(c);
    add::<RotatedSecret>(c);
    add::<DeliveryAttempt>(c);
    add::<DeliveryLog>(c);
    add::<Redelivery>(c);
    add::<StreamTokenResponse>(c);
    add::<Alg>(c);
    add::<SigningKeyCreateRequest>(c);
    add::<SigningKeyCreated>(c);
    add::<SigningKeyInfo>(c);
    add::<SigningKeyList>(c);
    add::<SigningKeyRevoked>(c);
    add::<PlaybackTokenRequest>(c);
    add::<PlaybackTokenResponse>(c);
    add::<AccessRequest>(c);
    add::<Encryption>(c);
    add::<DownloadOption>(c);
    add::<PlaybackOptions>(c);
    add::<CoverOption>(c);
    add::<PreviewFormat>(c);
    add::<crate::video::captions::CaptionTrack>(c);
    add::<crate::video::captions::CaptionFormat>(c);
    add::<crate::wire::api::CaptionView>(c);
    add::<crate::wire::api::CaptionList>(c);
    add::<crate::video::ladder::VideoCodec>(c);
    add::<crate::video::ladder::VideoRange>(c);
    add::<PreviewOption>(c);
    add::<Extras>(c);
    add::<CoverMeta>(c);
    add::<PreviewMeta>(c);
    add::<CoverView>(c);
    add::<PreviewView>(c);
    // A notify refuses fields it does not know (a misspelt callback_url must
    // not pass unseen: `NotifyRequest::FIELDS`), and so do these bodies; a
    // test checks NotifyRequest's properties are those FIELDS.
    closed(
        c,
        &[
            "NotifyRequest",
            "CreateUploadRequest",
            "StreamTokenRequest",
            "EndpointCreateRequest",
            "EndpointUpdateRequest",
            "RotateRequest",
            "DownloadOption",
            "CoverOption",
            "PreviewOption",
            "SigningKeyCreateRequest",
            "PlaybackTokenRequest",
            "AccessRequest",
        ],
    );
    for name in ["NotifyRequest", "CreateUploadRequest"] {
        playback_fields(c, name);
    }
    for name in ["NotifyRequest", "CreateUploadRequest"] {
        extras_fields(c, name);
    }
    for name in ["EndpointCreateRequest", "EndpointUpdateRequest"] {
        object_schema(c, name).properties.insert("events".into(), event_filter().into());
    }
    // An update names at least one field to change.
    object_schema(c, "EndpointUpdateRequest").min_properties = Some(1);
    c.security_schemes.insert(
        "StreamToken".into(),
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "stream_token",
            "A stream token from POST /events/token: reads one app's /events, for a browser's EventSource \
             (which cannot send x-api-key). Checked when a stream opens; expired, altered or another kind of \
             token: 401.",
        ))),
    );
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
                )
                .response(
                    "403",
                    json_response(
                        "signed_url_required: the video requires signed URLs; the message says how to get a \
                         token (POST /playback-tokens, or sign one with a key from POST /signing-keys) and play \
                         /hls/t/{token}/master.m3u8.",
                        "ErrorBody",
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
                 job:canceled. A client resuming from an id the video no longer keeps (older than its oldest kept \
                 event, or newer than its newest: the video was deleted and made again) gets, right after \
                 connected, `reset` {reason: last_event_id_too_old | last_event_id_unknown, oldest_kept, job: \
                 JobView or null} with the newest id instead of a replay: what it missed is gone, the job is how it \
                 stands now. Upload and video events of the catalogue (upload.created, video.ready, ...) come with \
                 their names and data as webhooks carry them.",
            )
            .content("text/event-stream", Content::new(sse_event()))
            .build();
            let op = operation(
            "Follow a job's events (Server-Sent Events)",
            "jobEvents",
            Some(
                "Public, like /job-status. An EventSource reconnects by itself with Last-Event-ID and gets what it \
                 missed (the video keeps its last 200 events; `reset` when it missed more). 204 when the job has \
                 ended and the client has every event, which tells an EventSource to stop. A video keeps at most SSE_MAX_PER_VIDEO (500) streams \
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
                 state, attempts, lastError} for each delivery attempt, the catalogue's events (upload.*, video.*, \
                 image.*) with their names, and heartbeat. A client resuming from an id the app no longer keeps gets \
                 `reset` {reason, oldest_kept, jobs: [the recent jobs, as in connected]} with the newest id, then \
                 live events. Never ends on its own.",
                )
                .content("text/event-stream", Content::new(sse_event()))
                .build();
            let op = operation(
            "Follow every job of an app (Server-Sent Events)",
            "appEvents",
            Some(
                "For backends and dashboards: one stream of the app's job events and webhook outcomes. The key must \
                 act for app_id (403 app_not_allowed otherwise). Resumes with Last-Event-ID (the app keeps its last \
                 500 events); without it, only live events after `connected`. A browser opens it with \
                 `new EventSource(events_url)` from POST /events/token (?stream_token=, no key): those answers carry \
                 CORS, key answers none. The token is checked when the stream opens; an EventSource reconnecting \
                 after it expired gets 401, which closes it for good: on `error`, mint a new token and open \
                 events_url again with &last_event_id= the last id seen. 401 for an expired, altered or non-stream \
                 token; 403 app_not_allowed for a token of another app.",
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
        VideoRoute::StreamToken => {
            let op = operation(
                "Mint a stream token for a browser's EventSource",
                "streamToken",
                Some(
                    "For an app's backend: a short-lived token (ttl_s 1-3600 s, default 600) that lets a page read \
                     this app's /events with `new EventSource(events_url)`, with no key in the browser. It reads \
                     that one stream and nothing else, and cannot be revoked before it expires (keep ttl_s short). \
                     The key must act for app_id (403 app_not_allowed otherwise).",
                ),
            )
            .response("200", json_response("The token, when it expires, and the stream URL.", "StreamTokenResponse"));
            vec![at(Method::Post, json_body(op, "StreamTokenRequest"))]
        }
        VideoRoute::Hls => hls_routes(false),
        VideoRoute::SignedHls => hls_routes(true),
        VideoRoute::Download => download_routes(),
        VideoRoute::SigningKeys => {
            let create = operation(
                "Create a playback signing key",
                "createSigningKey",
                Some(
                    "A key pair for signing playback tokens offline (JWTs: header alg and kid, claims sub = the \
                     video id, exp at most 24 h ahead, optional nbf and downloadable). alg RS256 (the default, \
                     2048-bit RSA) or ES256 (P-256). The private key is answered this once, as PKCS#8 PEM and as a \
                     JWK; the service keeps only the public key. The key must act for app_id (403 app_not_allowed \
                     otherwise). At most 50 keys per app (409).",
                ),
            )
            .response("201", json_response("The key, with its private half (shown once).", "SigningKeyCreated"));
            let list = operation(
                "List an app's playback signing keys",
                "listSigningKeys",
                Some("The keys that sign valid tokens (revoked ones are gone), oldest first. No key material."),
            )
            .parameters(Some([query_id("app_id", "AppId")]))
            .response("200", json_response("The keys.", "SigningKeyList"));
            vec![
                at(Method::Get, list),
                at(Method::Post, with_errors(json_body(create, "SigningKeyCreateRequest"), &[&[(409, "Error")]])),
            ]
        }
        VideoRoute::SigningKey => {
            let op = operation(
                "Revoke a playback signing key",
                "revokeSigningKey",
                Some(
                    "Tokens it signed are refused (401 invalid_token) from then on: at once where the revocation \
                     was made, elsewhere within SIGNING_KEY_CACHE_S (60 s by default; imported keys are cached per \
                     isolate) plus KV's propagation (up to 60 s). 404 for a key the app does not have.",
                ),
            )
            .parameters(Some([
                param("key_id", ParameterIn::Path, true, string().pattern(Some("^[0-9a-f]{32}$"))).build(),
                query_id("app_id", "AppId"),
            ]))
            .response("200", json_response("Revoked.", "SigningKeyRevoked"));
            vec![at(Method::Delete, with_errors(op, &[&[(404, "Error")]]))]
        }
        VideoRoute::PlaybackTokens => {
            let op = operation(
                "Mint a playback token",
                "mintPlaybackToken",
                Some(
                    "For backends that do not sign tokens themselves: a token for one video (ttl_s 1-86400 s, \
                     default 3600), signed with the app's service key (ES256, made on the app's first mint), and \
                     the URLs that carry it: playback_url (/hls/t/{token}/master.m3u8, for any HLS player as it \
                     is), poster_url, and download_url for a downloadable token. 404 for a video without a job.",
                ),
            )
            .response("200", json_response("The token, when it expires, and its URLs.", "PlaybackTokenResponse"));
            vec![at(Method::Post, with_errors(json_body(op, "PlaybackTokenRequest"), &[&[(404, "Error")]]))]
        }
        VideoRoute::VideoAccess => {
            let op = operation(
                "Require (or stop requiring) signed URLs for a video",
                "setVideoAccess",
                Some(
                    "require_signed_urls true: the video's public /hls/... files and /playback-url answer 403 \
                     signed_url_required, and it plays only through /hls/t/{token}/...; false: public again. \
                     Takes effect at once in the KV playback record and the cached job here; other locations' \
                     cached job reads follow within a minute. The key must act for app_id (403 app_not_allowed \
                     otherwise); 404 for a video without a job. An encrypted video stays private (409).",
                ),
            )
            .parameters(Some([path_id("app_id", "AppId"), path_id("video_id", "VideoId")]))
            .response("200", json_response("The job, with its new playback options.", "JobView"));
            vec![at(Method::Post, with_errors(json_body(op, "AccessRequest"), &[&[(404, "Error"), (409, "Error")]]))]
        }
        VideoRoute::Captions => {
            let op = operation(
                "List a video's caption tracks",
                "listCaptions",
                Some(
                    "Its caption tracks, in the order they were added, each with its subtitle playlist once the \
                     video is playable (as /job-status lists them). The key must act for app_id (403 \
                     app_not_allowed otherwise); 404 for a video without a job.",
                ),
            )
            .parameters(Some([path_id("app_id", "AppId"), path_id("video_id", "VideoId")]))
            .response("200", json_response("The tracks.", "CaptionList"));
            vec![at(Method::Get, with_errors(op, &[&[(404, "Error")]]))]
        }
        VideoRoute::Caption => {
            let language = || {
                param(
                    "language",
                    ParameterIn::Path,
                    true,
                    string().max_length(Some(35)).pattern(Some("^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")),
                )
                .description(Some("A BCP 47 language tag: en, pt-BR, zh-Hant."))
                .build()
            };
            let put = operation(
                "Add or replace a caption track",
                "putCaption",
                Some(
                    "The body is the track as a WebVTT or SRT file (UTF-8, at most 512 KiB; SRT is converted to \
                     WebVTT). It is read strictly: a fault answers 400 invalid_field naming the line, and cue \
                     text may carry WebVTT's own markup only (b, i, u, c, v, lang, ruby, rt, timestamps; SRT's \
                     font tags are dropped). label (query, at most 64 characters) is what players show; the \
                     language when left out. The track is served at once as an HLS subtitle rendition \
                     (EXT-X-MEDIA TYPE=SUBTITLES, segmented WebVTT) of the master playlist, and listed in \
                     /job-status. At most 20 tracks a video (409). 404 for a video without a job.",
                ),
            )
            .parameters(Some([
                path_id("app_id", "AppId"),
                path_id("video_id", "VideoId"),
                language(),
                param(
                    "label",
                    ParameterIn::Query,
                    false,
                    string().max_length(Some(64)).pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]*$")),
                )
                .description(Some("What players show; no control characters."))
                .build(),
            ]))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("text/vtt", Content::new(string()))
                    .content("application/x-subrip", Content::new(string()))
                    .build(),
            ))
            .response("200", json_response("The track as stored.", "CaptionTrack"));
            let delete = operation(
                "Delete a caption track",
                "deleteCaption",
                Some("The track leaves the master playlist and storage. 404 for a language the video has no track in."),
            )
            .parameters(Some([path_id("app_id", "AppId"), path_id("video_id", "VideoId"), language()]))
            .response("200", json_response("The tracks left.", "CaptionList"));
            vec![
                at(Method::Post, with_errors(put, &[&[(404, "Error"), (409, "Error"), (413, "Error")]])),
                at(Method::Delete, with_errors(delete, &[&[(404, "Error")]])),
            ]
        }
        VideoRoute::WebhookEndpoints => {
            let create = operation(
                "Create a webhook endpoint",
                "createWebhookEndpoint",
                Some(
                    "An endpoint of app_id (the key must act for it: 403 app_not_allowed otherwise): its url \
                     (the callback_url rules: https, no private or loopback address), the event types it gets \
                     (events: a list of catalogue types; absent or null, every type) and a description. The \
                     answer carries its whsec_ secret, shown this once: deliveries carry webhook-id, \
                     webhook-timestamp and webhook-signature (Standard Webhooks; verify with the standardwebhooks \
                     libraries). At most 20 endpoints per app (409).",
                ),
            )
            .response("201", json_response("The endpoint and its secret.", "EndpointCreated"));
            let list = operation(
                "List an app's webhook endpoints",
                "listWebhookEndpoints",
                Some("Its IV_WEBHOOKS entry first, as the endpoint default, then the ones made by API. No secrets."),
            )
            .parameters(Some([query_id("app_id", "AppId")]))
            .response("200", json_response("The endpoints.", "EndpointList"));
            vec![
                at(Method::Get, list),
                at(Method::Post, with_errors(json_body(create, "EndpointCreateRequest"), &[&[(409, "Error")]])),
            ]
        }
        VideoRoute::WebhookEndpoint => {
            let params = || Some([endpoint_id_param(), query_id("app_id", "AppId")]);
            let get = operation("A webhook endpoint", "getWebhookEndpoint", None)
                .parameters(params())
                .response("200", json_response("The endpoint (no secret).", "EndpointView"));
            let update = operation(
                "Update a webhook endpoint",
                "updateWebhookEndpoint",
                Some(
                    "Changes the fields given: url, events (null: every type), description (null: none), enabled \
                     (true enables an endpoint a 410 Gone disabled). The endpoint default is the operator's \
                     (IV_WEBHOOKS): 409.",
                ),
            )
            .parameters(params())
            .response("200", json_response("The endpoint.", "EndpointView"));
            let delete = operation(
                "Delete a webhook endpoint",
                "deleteWebhookEndpoint",
                Some("With its pending deliveries and its log. The endpoint default: 409."),
            )
            .parameters(params())
            .response("200", json_response("Deleted.", "EndpointDeleted"));
            vec![
                at(Method::Get, with_errors(get, &[&[(404, "Error")]])),
                at(
                    Method::Post,
                    with_errors(json_body(update, "EndpointUpdateRequest"), &[&[(404, "Error"), (409, "Error")]]),
                ),
                at(Method::Delete, with_errors(delete, &[&[(404, "Error"), (409, "Error")]])),
            ]
        }
        VideoRoute::WebhookEndpointRotate => {
            let op = operation(
                "Rotate a webhook endpoint's secret",
                "rotateWebhookEndpointSecret",
                Some(
                    "A new whsec_ secret, shown this once. The old one keeps signing beside it for \
                     old_secret_expires_in_s (default 86400, at most 604800, 0 for none): meanwhile every \
                     delivery's webhook-signature carries both (v1,<new> v1,<old>), so receivers switch when they \
                     like. The body may be empty. The endpoint default: 409.",
                ),
            )
            .parameters(Some([endpoint_id_param(), query_id("app_id", "AppId")]))
            .response("200", json_response("The new secret and when the old one stops.", "RotatedSecret"));
            vec![at(
                Method::Post,
                with_errors(optional_json_body(op, "RotateRequest"), &[&[(404, "Error"), (409, "Error")]]),
            )]
        }
        VideoRoute::WebhookDeliveries => {
            let op = operation(
                "A webhook endpoint's delivery log",
                "listWebhookDeliveries",
                Some(
                    "Its last 50 attempts, newest first: event id and type, attempt number, the receiver's status \
                     (absent when it did not answer), latency, the error in the platform's words, and when.",
                ),
            )
            .parameters(Some([endpoint_id_param(), query_id("app_id", "AppId")]))
            .response("200", json_response("The attempts.", "DeliveryLog"));
            vec![at(Method::Get, with_errors(op, &[&[(404, "Error")]]))]
        }
        VideoRoute::WebhookRedeliver => {
            let event = param("event_id", ParameterIn::Path, true, string())
                .description(Some("An event's id (evt_…, its webhook-id)."))
                .build();
            let op = operation(
                "Redeliver an event to a webhook endpoint",
                "redeliverWebhookEvent",
                Some(
                    "Sends a kept event (the app's last 1000) again, with the same webhook-id, on a fresh retry \
                     schedule. 404 for an event no longer kept; 409 for a disabled endpoint.",
                ),
            )
            .parameters(Some([endpoint_id_param(), event, query_id("app_id", "AppId")]))
            .response("202", json_response("Queued.", "Redelivery"));
            vec![at(Method::Post, with_errors(op, &[&[(404, "Error"), (409, "Error")]]))]
        }
        VideoRoute::OpenApi => openapi_operation(),
        VideoRoute::Health => health_operation(),
        VideoRoute::CreateUpload => {
            let op = operation(
                "Create a direct upload (the job starts when the file lands)",
                "createUpload",
                Some(
                    "A waiting upload of one video (Mux's direct uploads): the answer has the browser's single-use, \
                    revocable token and, for a single PUT, the presigned url (send headers as given) and complete_url \
                    (POST it with Authorization: Bearer <token> once the PUT succeeded), or, with \"multipart\": true, \
                    the resumable endpoint (@uppy/aws-s3; its complete call starts the job). The job starts with no \
                    backend call, on the first of: the completion call, the resumable complete, storage's event \
                    notification, a /notify-upload-complete; one job however many arrive. Not finished by expires_at \
                    (timeout_s, 3600 by default, 60 to 604800), the upload is timed_out, its token revoked and its \
                    partial objects removed. /job-events of the video streams from now on (upload.created, \
                    upload.asset_created, ...). 409 while another upload of the video waits, or once the video has a \
                    job.",
                ),
            )
            .response("201", json_response("The upload, with its credentials.", "UploadView"));
            let op = with_errors(json_body(op, "CreateUploadRequest"), &[&[(409, "Error"), (415, "Error")]]);
            vec![at(Method::Post, op)]
        }
        VideoRoute::Upload => {
            let id = || {
                param("upload_id", ParameterIn::Path, true, string())
                    .description(Some("The id POST /uploads answered (upl_<16 hex>.<app_id>.<video_id>)."))
                    .build()
            };
            let get = operation(
                "An upload's state",
                "getUpload",
                Some(
                    "waiting, asset_created (with job_id and job_status_url), errored (with error), cancelled or                      timed_out. The key must act for the app the id names (403 app_not_allowed otherwise); 404 for                      an id no upload has (or whose video was deleted). No credentials.",
                ),
            )
            .parameters(Some([id()]))
            .response("200", json_response("The upload.", "UploadView"));
            let delete = operation(
                "Cancel a waiting upload",
                "cancelUpload",
                Some(
                    "The upload is cancelled: its token is revoked (later completion or multipart calls with it are                      403), its multipart upload aborted and its partial objects removed. 409 for an upload that is                      not waiting (asset_created: cancel the job with /cancel-job or delete the video).",
                ),
            )
            .parameters(Some([id()]))
            .response("200", json_response("The cancelled upload.", "UploadView"));
            vec![
                at(Method::Get, with_errors(get, &[&[(404, "Error")]])),
                at(Method::Delete, with_errors(delete, &[&[(404, "Error"), (409, "Error")]])),
            ]
        }
        VideoRoute::CompleteUpload => {
            let op = operation(
                "Finish a single-PUT upload (the browser; starts the job)",
                "completeUpload",
                Some(
                    "Authorization: Bearer <the upload's token>; no API key, CORS allowed. Checks the file is in                      storage with the declared size, then starts the video's job (asset_created). Idempotent: a                      repeat, or any other trigger, answers the same upload and job. 409 upload_missing before the                      PUT; 401 without a token; 403 for a token that is not this upload's, expired, or revoked                      (the upload was cancelled or timed out).",
                ),
            )
            .parameters(Some([param("upload_id", ParameterIn::Path, true, string()).build()]))
            .response("200", json_response("The upload, asset_created.", "UploadView"));
            let errors: Errors<'_> = &[
                (401, "Error"),
                (403, "Error"),
                (404, "Error"),
                (405, "Error"),
                (409, "Error"),
                (500, "Error"),
                (503, "Unavailable"),
            ];
            vec![at(Method::Post, with_errors(op, &[errors]))]
        }
        VideoRoute::MultipartCreate
        | VideoRoute::MultipartUpload
        | VideoRoute::MultipartComplete
        | VideoRoute::MultipartPart
        | VideoRoute::WorkerEvents
        | VideoRoute::Internal => vec![],
    }
}

/// `GET`/`HEAD /hls/...`: the files of a video's playable output; with
/// `signed`, `/hls/t/{token}/...` (and its key route).
fn hls_routes(signed: bool) -> Vec<Documented> {
    const SIGNED: &str = "With a playback token in the path (a JWT from POST /playback-tokens, or signed offline with \
        a key from POST /signing-keys): the files of the token's video's current output, for private videos (and \
        public ones). The relative URIs of the playlists keep the token, so players need no rewriting. 401 \
        invalid_token for a malformed, expired, altered, unknown-key or revoked-key token; 403 for one not valid \
        yet (nbf). Answers are Cache-Control: private, for at most the token's remaining life; our edge cache keeps \
        one copy per file, keyed by the file (never the token), shared with every viewer. A path whose second \
        segment has no dot is app t's public file.";
    const DESCRIPTION: &str = "Public, unless the video requires signed URLs (403 signed_url_required: play \
        /hls/t/{token}/... instead). Only the video's current output (the attempt that became playable) is \
        served; the outputs of failed or canceled attempts, and any other output_id, are 404. A GET is one \
        conditional, ranged storage read (except the playlists of a video encoded in chunks, rendered from its \
        job); segments and images are then kept at the edge (the Cache API) for a year \
        and playlists for 2 s, so repeats, ranges and revalidations cost no storage operation. Server-Timing \
        reports it: cache;desc=\"hit|miss\", storage;desc=\"ops=N\". A request whose job read reaches the \
        video's job object (a running job's playlists, an unknown video) counts against the per-IP limit of public \
        reads (429).";
    const ERRORS: Errors<'static> = &[
        (400, "Error"),
        (401, "Error"),
        (403, "Error"),
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
            string().pattern(Some("^([1-9][0-9]{0,3}p|audio)$")).example(Some("720p".into())),
        )
        .description(Some(
            "A rendition: a video rung (720p), or audio, the audio rendition of a video encoded in chunks \
            (its master playlist names it in EXT-X-MEDIA).",
        ))
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
    const PLAYLIST: &[&str] = &["application/vnd.apple.mpegurl"];
    let files: [(&str, &str, &[&str], bool, bool); 7] = [
        ("master.m3u8", "The master playlist", PLAYLIST, false, false),
        ("{rung}/index.m3u8", "A rendition's media playlist", PLAYLIST, true, false),
        (
            "{rung}/init.mp4",
            "A rendition's fMP4 initialization segment (audio/mp4 for the audio rendition)",
            &["video/mp4", "audio/mp4"],
            true,
            false,
        ),
        (
            "{rung}/{segment}",
            "A media segment (audio/mp4 for the audio rendition)",
            &["video/iso.segment", "audio/mp4"],
            true,
            true,
        ),
        ("poster.jpg", "The poster image", &["image/jpeg"], false, false),
        ("sprite.jpg", "The thumbnail sprite", &["image/jpeg"], false, false),
        (
            "thumbnails.vtt",
            "The WebVTT thumbnails track (cues point into the sprite with #xywh=)",
            &["text/vtt"],
            false,
            false,
        ),
    ];
    let token = || {
        param(
            "token",
            ParameterIn::Path,
            true,
            string().pattern(Some("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$")),
        )
        .description(Some("A playback token (JWT)."))
        .build()
    };
    let mut ops = Vec::new();
    if signed {
        ops.extend(object_routes(ObjectRoute {
            path: "/hls/t/{token}/key",
            summary: "An encrypted video's AES-128 key",
            operation_id: None,
            description: "The 16-byte key of the video's current output (EXT-X-KEY's URI, ../key from a rung \
                playlist). Never cached (Cache-Control: no-store). 404 for a video that is not encrypted.",
            parameters: vec![token()],
            what: "The key",
            content_types: &["application/octet-stream"],
            headers: vec![("Cache-Control", header(string(), Some("no-store")))],
            errors: ERRORS,
        }));
    }
    for (file, what, content_types, has_rung, has_segment) in files {
        let mut parameters = if signed {
            vec![token()]
        } else {
            vec![
                path_id("app_id", "AppId"),
                path_id("video_id", "VideoId"),
                param("output_id", ParameterIn::Path, true, string().pattern(Some("^[a-z0-9]{1,32}$"))).build(),
            ]
        };
        if has_rung {
            parameters.push(rung());
        }
        if has_segment {
            parameters.push(segment());
        }
        parameters.extend(conditional_headers());
        let path = if signed {
            format!("/hls/t/{{token}}/{file}")
        } else {
            format!("/hls/{{app_id}}/{{video_id}}/{{output_id}}/{file}")
        };
        ops.extend(object_routes(ObjectRoute {
            path: &path,
            summary: what,
            operation_id: None,
            description: if signed { SIGNED } else { DESCRIPTION },
            parameters,
            what,
            content_types,
            headers: vec![("ETag", header(string(), None)), ("Cache-Control", header(string(), None))],
            errors: ERRORS,
        }));
    }
    ops
}

/// `GET`/`HEAD /download`: a video's MP4 download.
fn download_routes() -> Vec<Documented> {
    const DESCRIPTION: &str = "The video's MP4 download: one rung of its ladder (the one asked for at notify with \
        download: {\"rung\": \"720p\"}, else the tallest rung not above it, else the top rung) with its audio, \
        remuxed from the ladder's own segments (no second encode) into a progressive MP4 whose moov comes first, so \
        players start before the end has arrived. Served as an attachment (Content-Disposition: attachment; \
        filename=\"{video_id}.mp4\") from the video's current output, with Range (206) and ETag (304). A public \
        video is named by app_id and video_id; a video that requires signed URLs only by token (a playback token \
        whose claims carry \"downloadable\": true; 403 signed_url_required with the ids, 403 forbidden for a \
        token without downloadable, 401 invalid_token for a bad one). 404 for a video without the download option \
        (or without a job); 409 while it is being prepared or when it could not be made (see download.status in \
        /job-status). Kept at the edge like HLS segments when small, and purged with the video.";
    const ERRORS: Errors<'static> = &[
        (400, "Error"),
        (401, "Error"),
        (403, "Error"),
        (404, "Error"),
        (405, "Error"),
        (409, "Error"),
        (416, "RangeNotSatisfiable"),
        (429, "PublicRateLimited"),
        (500, "Error"),
        (503, "Unavailable"),
    ];
    let optional_id = |name: &str, schema: &str| {
        param(name, ParameterIn::Query, false, Ref::from_schema_name(schema))
            .description(Some("With the other id: a public video. Not with token."))
            .build()
    };
    let token = param(
        "token",
        ParameterIn::Query,
        false,
        string().pattern(Some("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$")),
    )
    .description(Some("A playback token (JWT) with \"downloadable\": true; names the video by itself."))
    .build();
    let mut parameters = vec![optional_id("app_id", "AppId"), optional_id("video_id", "VideoId"), token];
    parameters.extend(conditional_headers());
    let ops = object_routes(ObjectRoute {
        path: "/download",
        summary: "Download a video as MP4",
        operation_id: Some("download"),
        description: DESCRIPTION,
        parameters,
        what: "The MP4 file.",
        content_types: &["video/mp4"],
        headers: vec![
            ("ETag", header(string(), None)),
            ("Cache-Control", header(string(), None)),
            ("Content-Disposition", header(string(), Some("attachment; filename=\"{video_id}.mp4\""))),
        ],
        errors: ERRORS,
    });
    // A template row's operations name no path of their own.
    ops.into_iter().map(|d| Documented { path: None, ..d }).collect()
}

/// The `{endpoint_id}` of the webhook endpoint routes.
fn endpoint_id_param() -> Parameter {
    param("endpoint_id", ParameterIn::Path, true, string())
        .description(Some("ep_… (from the creation), or default: the operator's IV_WEBHOOKS entry."))
        .build()
}

/// An endpoint's `events`: distinct catalogue types, at least one; `null`
/// (or absent) for every type.
fn event_filter() -> utoipa::openapi::schema::Array {
    let names = crate::catalogue::EventType::ALL.map(|t| t.as_str());
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(string().enum_values(Some(names)))
        .min_items(Some(1))
        .unique_items(true)
        .nullable(true)
        .description(Some("The event types it gets: distinct catalogue types; absent or null, every type."))
        .example(Some(serde_json::json!(["video.ready", "video.errored"])))
        .build()
}

/// A request that carries a video's playback options has them beside its
/// other fields (the type holds them in one `playback` field): the
/// document lists `PlaybackOptions`' properties in its place, `download`
/// as `true`/`false` or `{"rung": …}`.
fn playback_fields(c: &mut Components, name: &str) {
    let mut options = object_schema(c, "PlaybackOptions").properties.clone();
    let download = utoipa::openapi::schema::OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::Boolean))
        .item(Ref::from_schema_name("DownloadOption"))
        .nullable(true)
        .description(Some(
            "An MP4 download of one rung, remuxed from the ladder's segments: true for the top rung, or \
             {\"rung\": \"720p\"} for the tallest rung not above it.",
        ));
    options.insert("download".into(), download.into());
    // null reads as left out (`PlaybackOptions::from_fields`), as for the
    // requests' other optional fields.
    for field in ["require_signed_urls", "encryption"] {
        match options.get_mut(field) {
            Some(RefOr::T(Schema::Object(o))) => o.nullable = true,
            Some(RefOr::T(Schema::AllOf(a))) => a.nullable = true,
            _ => panic!("PlaybackOptions.{field} is neither an object nor an allOf schema"),
        }
    }
    flatten(c, name, "playback", options);
}

/// Lists `properties` in request `name` in place of its `field`: the body
/// carries them beside its other fields, the type holds them in one.
fn flatten(c: &mut Components, name: &str, field: &str, properties: impl IntoIterator<Item = (String, RefOr<Schema>)>) {
    let request = object_schema(c, name);
    request.properties.remove(field);
    request.required.retain(|r| r != field);
    request.properties.extend(properties);
}

/// A request's `extras` as the body carries them: `codecs`, `cover` and
/// `preview` beside the other fields, each null when left out.
fn extras_fields(c: &mut Components, name: &str) {
    let mut extras = object_schema(c, "Extras").properties.clone();
    let codecs = utoipa::openapi::schema::ArrayBuilder::new()
        .items(Ref::from_schema_name("VideoCodec"))
        .min_items(Some(1))
        .max_items(Some(8))
        .nullable(true)
        .description(Some(
            "The codecs of the ladder, each a rung at every size: h264 (the default), hevc (libx265, hvc1) and \
             av1 (SVT-AV1). A player picks from the master playlist's CODECS what it can decode. Order and \
             repeats do not matter. Asking for other codecs than the video's job was made with runs the job again.",
        ))
        .example(Some(serde_json::json!(["h264", "av1"])));
    extras.insert("codecs".into(), codecs.build().into());
    for (field, schema, what) in [
        ("cover", "CoverOption", "A still image at time_s, made as cover.jpg and cover.webp; listed in /job-status once done."),
        (
            "preview",
            "PreviewOption",
            "A short silent animation (WebP or GIF), made as preview.webp or preview.gif; listed in /job-status once done.",
        ),
    ] {
        let one = utoipa::openapi::schema::OneOfBuilder::new()
            .item(Ref::from_schema_name(schema))
            .nullable(true)
            .description(Some(format!(
                "{what} Asking for other extras than the video's job was made with runs the job again; the same \
                 ones change nothing."
            )));
        extras.insert(field.into(), one.into());
    }
    flatten(c, name, "extras", extras);
}

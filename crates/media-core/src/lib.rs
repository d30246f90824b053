//! The platform's rules, in one crate with no I/O, shared by both Workers
//! (wasm32) and the transcoder (native). Time and randomness come in as
//! arguments, so every rule is tested here with plain `cargo test`.
//!
//! | module | owns |
//! |---|---|
//! | [`ids`] | `app_id`/`image_id`/`video_id` rules; minted job, lease and image ids |
//! | [`media`] | accepted content types, size limits, image sniffing and dimensions |
//! | [`keys`] | the object-key layout (build and parse, canonical only), content types and caching of outputs |
//! | [`job`] | the job model and its state machine (lease, heartbeat, retry, expiry) |
//! | [`dispatch`] | which queue shard and size class a job waits in, and which class is served next |
//! | [`ladder`] | planning the ABR ladder from a probed source |
//! | [`codecs`] | the codec whitelist: which video and audio codecs (and libav decoders) the transcoder opens |
//! | [`timeline`] | the bounds of a source's timeline: duration, timestamp jumps, audio offset, job time |
//! | [`playlist`] | HLS playlists, WebVTT thumbnails, codec strings, sprite layout |
//! | [`events`] | job lifecycle events for Server-Sent Events: which change means which event, payloads, frames |
//! | [`webhook`] | signed webhooks: event ids, `Webhook-Signature` signing and checking, delivery retries, per-app destinations |
//! | [`callback`] | callback URL safety: https only, no private, loopback or numeric-trick hosts |
//! | [`api`] | request/response types and JSON field reading |
//! | [`multipart`] | reading `multipart/form-data` upload bodies (raw bytes of every part, filename or not) |
//! | [`upload_session`] | resumable (multipart) uploads: signed upload tokens, R2's part rules, S3's multipart XML |
//! | [`transform`] | the `transform_url` defaults, and the older Cloudflare `/cdn-cgi/image/` form |
//! | [`variant`] | the service's own image transforms: options, the allowed set, canonical names, `f=auto`, the transformer's limits |
//! | [`sigv4`] | SigV4 signing and presigned URLs for S3-compatible storage |
//! | [`auth`] | API keys and the apps each may act for (`IV_API_KEY`), key fingerprints, bearer token checks; in constant time |
//! | [`http`] | byte ranges, entity tags, CORS values |
//! | [`error`] | error codes, their HTTP statuses and the error body |
//! | [`time`] | timestamps passed in by the caller, RFC 3339 and SigV4 formats |
//! | `openapi` | (feature `openapi`) the services' OpenAPI documents, generated from the API types |

pub mod api;
pub mod auth;
pub mod callback;
pub mod codecs;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod http;
pub mod ids;
pub mod job;
pub mod keys;
pub mod ladder;
pub mod media;
pub mod multipart;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod playlist;
pub mod sigv4;
pub mod time;
pub mod timeline;
pub mod transform;
pub mod upload_session;
pub mod variant;
pub mod webhook;

pub use error::{ApiError, ErrorCode};
pub use time::Timestamp;

//! The platform's rules, in one crate with no I/O, shared by both Workers
//! (wasm32) and the transcoder (native). Time and randomness come in as
//! arguments, so every rule is tested here with plain `cargo test`.
//!
//! Four groups, one folder each, over a few foundations at the root. Nothing
//! in a foundation imports a group.
//!
//! | where | owns |
//! |---|---|
//! | [`ids`] | `app_id`/`image_id`/`video_id` rules; minted job, lease and image ids |
//! | [`media`] | accepted content types, size limits, image sniffing and dimensions |
//! | [`keys`] | the object-key layout (build and parse, canonical only), content types and caching of outputs |
//! | [`error`] | error codes, their HTTP statuses and the error body |
//! | [`time`] | timestamps passed in by the caller, RFC 3339 and SigV4 formats |
//! | [`catalogue`] | the event catalogue: every event type (`upload.*`, `video.*`, `image.*`) webhooks and streams announce |
//! | [`video`] | the video domain: jobs and their state machine, dispatch, the ladder, codecs, timelines, playlists, events, webhooks, resumable uploads |
//! | [`image`] | the image domain: the service's own transforms and `transform_url` |
//! | [`wire`] | the wire API of both services (request/response types, field reading) and, with feature `openapi`, their OpenAPI documents |
//! | [`http`] | protocol helpers: byte ranges, entity tags, CORS values, SigV4, `multipart/form-data`, credentials |

pub mod catalogue;
pub mod error;
pub mod http;
pub mod ids;
pub mod image;
pub mod keys;
pub mod media;
pub mod time;
pub mod video;
pub mod wire;

pub use error::{ApiError, ErrorCode};
pub use time::Timestamp;

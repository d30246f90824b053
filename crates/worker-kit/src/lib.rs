//! The Workers' shared adapter layer (wasm32): everything both the image and
//! the video service need from the runtime, so that each service crate holds
//! only its routes and rules. The rules that choose an answer (settings,
//! errors, object serving) work on plain data and are tested natively with
//! `cargo test`; the modules that touch the runtime stay thin.
//!
//! | module | owns |
//! |---|---|
//! | [`entry`] | the shell of every fetch handler (the request's context, errors to JSON and Sentry, CORS, none on server-only routes) and what all routes share: API-key guard (key, its apps, its budget), `/openapi.json`, `/health` |
//! | [`context`] | the per-request context handlers take: env, settings read once, the store, the presigner, Sentry |
//! | [`settings`] | the settings both services share (keys, CORS, environment, base URL, upload TTL, storage, Sentry DSN) |
//! | [`config`] | reading vars and secrets (and `IV_API_KEY`'s keys and apps), with errors that name the variable |
//! | [`failure`] | the error type handlers return and the client's view of it (generic for our own faults) |
//! | [`reply`] | a response as plain data (status, headers, body), its one conversion to `worker::Response`, JSON bodies and the JSON error of every failure |
//! | [`cors`] | CORS headers, their removal on server-only routes, preflights |
//! | [`method`] | the method gate: the method as sent, 405 with `Allow`, preflights for `OPTIONS` |
//! | [`body`] | reading request bodies, streamed and capped |
//! | [`query`] | reading query strings |
//! | [`store`] | the `ObjectStore` trait, its R2-binding and S3 (fetch + SigV4) adapters, and an in-memory double with fault injection |
//! | [`serve`] | serving a stored object: ETag/304, Range/206/416 and cache headers decided on plain data; the edge cache and the runtime around it |
//! | [`purge`] | the zone purge by cache tag a delete sends to reach every location, and the edge TTL cap where none is configured |
//! | [`ratelimit`] | the rate limits (Rate Limiting bindings): per API key, per IP for missing or wrong keys, per IP for public reads |
//! | [`sentry`] | reporting unexpected errors to Sentry from `wait_until` (DSN, envelope, post) |
//! | [`logging`] | JSON `tracing` logs on the console (through `tracing-web`) |
//! | [`clock`] | the time and random bytes, from the runtime |

pub mod body;
pub mod clock;
pub mod config;
pub mod context;
pub mod cors;
pub mod entry;
pub mod failure;
pub mod logging;
pub mod method;
pub mod purge;
pub mod query;
pub mod ratelimit;
pub mod reply;
pub mod sentry;
pub mod serve;
pub mod settings;
pub mod store;

pub use context::RequestContext;
pub use failure::{Failure, Handled};

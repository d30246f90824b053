//! The Workers' shared adapter layer (wasm32): everything both the image and
//! the video service need from the runtime, so that each service crate holds
//! only its routes and rules.
//!
//! | module | owns |
//! |---|---|
//! | [`entry`] | the shell of every fetch handler (settings, errors to JSON and Sentry, CORS, none on server-only routes) and what all routes share: method gate, API-key guard (key, its apps, its budget), public base URL, `/openapi.json`, `/health` |
//! | [`store`] | the `ObjectStore` trait and its R2-binding and S3 (fetch + SigV4) adapters |
//! | [`config`] | reading vars and secrets (and `IV_API_KEY`'s keys and apps), with errors that name the variable |
//! | [`form`] | `multipart/form-data` bodies, read capped and parsed by the runtime, with messages that say what is wrong
//! | [`respond`] | JSON bodies, the error type handlers return, CORS, preflights, reading bodies (streamed, capped) and queries |
//! | [`serve`] | streaming a stored object with ETag/304, Range/206 and cache headers |
//! | [`ratelimit`] | the rate limits (Rate Limiting bindings): per API key, per IP for missing or wrong keys, per IP for public reads |
//! | [`sentry`] | reporting unexpected errors to Sentry from `wait_until` (DSN, envelope, post) |
//! | [`logging`] | JSON `tracing` logs on the console (through `tracing-web`) |
//! | [`clock`] | the time and random bytes, from the runtime |

pub mod clock;
pub mod config;
pub mod entry;
pub mod form;
pub mod logging;
pub mod ratelimit;
pub mod respond;
pub mod sentry;
pub mod serve;
pub mod store;

pub use respond::{Failure, Handled};

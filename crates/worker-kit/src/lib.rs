//! The Workers' shared adapter layer (wasm32): everything both the image and
//! the video service need from the runtime, so that each service crate holds
//! only its routes and rules.
//!
//! | module | owns |
//! |---|---|
//! | [`entry`] | the shell of every fetch handler (settings, errors to JSON and Sentry, CORS) and what all routes share: method gate, API-key guard, public base URL, `/openapi.json`, `/health` |
//! | [`store`] | the `ObjectStore` trait and its R2-binding and S3 (fetch + SigV4) adapters |
//! | [`config`] | reading vars and secrets, with errors that name the variable |
//! | [`respond`] | JSON bodies, the error type handlers return, CORS, preflights, reading bodies and queries |
//! | [`serve`] | streaming a stored object with ETag/304, Range/206 and cache headers |
//! | [`ratelimit`] | the per-IP limit on sensitive routes (Rate Limiting binding) |
//! | [`sentry`] | reporting unexpected errors to Sentry from `wait_until` |
//! | [`logging`] | JSON `tracing` logs on the console |
//! | [`clock`] | the time and random bytes, from the runtime |

pub mod clock;
pub mod config;
pub mod entry;
pub mod logging;
pub mod ratelimit;
pub mod respond;
pub mod sentry;
pub mod serve;
pub mod store;

pub use respond::{Failure, Handled};

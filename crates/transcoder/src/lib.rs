//! The transcoder: leases jobs from the video service, reads each upload
//! from the bucket, encodes the HLS ladder with libav and publishes it as it
//! goes, then reports the result.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | configuration from the environment, errors naming the variable |
//! | [`api`] | the video service's internal job API (lease, heartbeat, complete, fail, release): the `VideoApi` trait, its HTTP client, an in-memory double for tests |
//! | [`storage`] | the S3 client, output sinks, and reading uploads with ranged GETs |
//! | [`pipeline`] | probe, decode once, encode every rung in parallel, package fMP4, thumbnails |
//! | [`publish`] | uploading outputs as they are final, playlists, `playable`, the result |
//! | [`encrypt`] | encrypted HLS: an attempt's random AES-128 key, whole-segment AES-128-CBC |
//! | [`download`] | the opt-in MP4 download: the chosen rung's clear fragments kept, remuxed (stream copy, faststart), uploaded |
//! | [`local`] | transcoding a local file into a folder (CLI, tests, benchmarks) |
//! | [`runner`] | the job loop: lease, heartbeats, cancellation, failures, shutdown; one attempt's rules as a state machine (`runner::attempt`) |
//! | [`telemetry`] | JSON logs and Sentry reports |
//! | [`error`] | retryable vs permanent failures |

pub mod api;
pub mod config;
pub mod download;
pub mod encrypt;
pub mod error;
pub mod local;
pub mod pipeline;
pub mod publish;
pub mod runner;
pub mod storage;
pub mod telemetry;

/// Makes rustls use ring, the provider the S3 client already carries, for
/// every HTTPS client of the process (the video service's API, Sentry).
/// Idempotent; called by whatever builds such a client.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

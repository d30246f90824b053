//! Request limits, kept by Cloudflare's Rate Limiting bindings (declared in
//! both wrangler files, production and `[env.dev]`), not in process memory.
//! They run in `wrangler dev` and Miniflare too. Three buckets:
//!
//! | binding | counts | default (production) |
//! |---|---|---|
//! | [`KEY_RATE_LIMIT_BINDING`] | calls with a valid API key, per key (by its fingerprint, never the key) | 600 per 60 s |
//! | [`IP_RATE_LIMIT_BINDING`] | calls with a missing or wrong key, per client IP, counted only when the key fails | 10 per 60 s |
//! | [`PUBLIC_RATE_LIMIT_BINDING`] | public reads that reach the job store (video) or that the edge cache does not answer (images), per client IP ([`enforce_public`]) | 1200 per 60 s |
//!
//! So a customer's backend has its own budget, which nobody without its key
//! can spend, and guessing keys from one address stops after a few tries.
//! Cloudflare counts per location and eventually: the limits are a guard
//! against floods and runaway clients, not exact quotas.

use media_core::http::auth::KeyGrant;
use media_core::{ApiError, ErrorCode};
use worker::{Env, Request};

use crate::failure::Failure;

/// The client's IP as Cloudflare reports it (`CF-Connecting-IP`); locally,
/// where there is no such header, every client shares one bucket.
pub fn client_ip(req: &Request) -> String {
    req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_else(|| "local".into())
}

/// Calls with a valid API key, per key.
pub const KEY_RATE_LIMIT_BINDING: &str = "KEY_RATE_LIMITER";
/// Calls with a missing or wrong API key, per client IP.
pub const IP_RATE_LIMIT_BINDING: &str = "BAD_KEY_RATE_LIMITER";
/// Public reads, per client IP.
pub const PUBLIC_RATE_LIMIT_BINDING: &str = "PUBLIC_RATE_LIMITER";

/// Counts one request against `binding`'s bucket `key`. `Ok(true)` when it
/// is within the limit. Without the binding (a misconfiguration) requests
/// are let through and the fault is logged, rather than refusing them all.
async fn count(env: &Env, binding: &'static str, key: String) -> Result<bool, Failure> {
    let limiter = match env.rate_limiter(binding) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(binding, error = %e, "rate limit binding missing; not limiting");
            return Ok(true);
        }
    };
    let outcome = limiter.limit(key).await.map_err(|e| Failure::internal(format!("rate limiter {binding}: {e}")))?;
    Ok(outcome.success)
}

fn limited(message: &str) -> Failure {
    Failure::Client(ApiError::new(ErrorCode::RateLimited, message))
}

/// Counts one call made with a valid key against that key's budget
/// (bucket `key:<fingerprint>`); 429 when it is spent.
pub async fn enforce_key(env: &Env, grant: &KeyGrant, route: &str) -> Result<(), Failure> {
    if count(env, KEY_RATE_LIMIT_BINDING, format!("key:{}", grant.fingerprint())).await? {
        return Ok(());
    }
    tracing::warn!(key = grant.fingerprint(), route, "rate limited (per key)");
    Err(limited(
        "too many requests with this API key: each key has its own budget per minute (600 by default); retry after the time in Retry-After",
    ))
}

/// Counts one call whose API key was missing or wrong against the client's
/// address; 429 (instead of the 401/403) when the address has used up its
/// few tries. Calls with a valid key never count here.
pub async fn enforce_failed_key(env: &Env, req: &Request, route: &str) -> Result<(), Failure> {
    let ip = client_ip(req);
    if count(env, IP_RATE_LIMIT_BINDING, format!("ip:{ip}")).await? {
        return Ok(());
    }
    tracing::warn!(client_ip = %ip, route, "rate limited (missing or wrong API key)");
    Err(limited(
        "too many requests without a valid API key from this address (10 a minute); send the right key in x-api-key, and retry after the time in Retry-After",
    ))
}

/// The generous per-IP limit of public reads (`/job-status`, `/playback-url`,
/// images past the edge cache, and any other public route that reaches
/// storage or the job store).
/// Call it first in such a handler: `ratelimit::enforce_public(env, &req,
/// "job-status").await?;`. It counts the request against the client's
/// address in the [`PUBLIC_RATE_LIMIT_BINDING`] binding (1200 per 60 s in
/// production: a page polling every 2 s uses 30, so one address can carry
/// about 40 such viewers behind a NAT) and answers 429 with `Retry-After`
/// when over. Without the binding it lets requests through (logged).
pub async fn enforce_public(env: &Env, req: &Request, route: &str) -> Result<(), Failure> {
    let ip = client_ip(req);
    if count(env, PUBLIC_RATE_LIMIT_BINDING, format!("public:{ip}")).await? {
        return Ok(());
    }
    tracing::warn!(client_ip = %ip, route, "rate limited (public reads)");
    Err(limited("too many requests from this address; retry after the time in Retry-After"))
}

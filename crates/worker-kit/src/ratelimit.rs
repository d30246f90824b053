//! The per-client limit on sensitive routes, kept by Cloudflare's Rate
//! Limiting binding (10 requests per 60 s per IP by default, configured in
//! the wrangler file), not in process memory. It runs in `wrangler dev` too.

use media_core::{ApiError, ErrorCode};
use worker::{Env, Request};

use crate::respond::{client_ip, Failure};

/// The binding name in both wrangler files.
pub const RATE_LIMIT_BINDING: &str = "RATE_LIMITER";

/// Counts one request of this client against the limit; 429 when over.
/// Without the binding (a misconfiguration) requests are let through and the
/// fault is reported, rather than refusing all writes.
pub async fn enforce(env: &Env, req: &Request, route: &str) -> Result<(), Failure> {
    let limiter = match env.rate_limiter(RATE_LIMIT_BINDING) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(binding = RATE_LIMIT_BINDING, error = %e, "rate limit binding missing; not limiting");
            return Ok(());
        }
    };
    let ip = client_ip(req);
    let outcome = limiter.limit(ip.clone()).await.map_err(|e| Failure::internal(format!("rate limiter: {e}")))?;
    if outcome.success {
        Ok(())
    } else {
        tracing::warn!(client_ip = %ip, route, "rate limited");
        Err(Failure::Client(ApiError::new(
            ErrorCode::RateLimited,
            "too many requests from this address: sensitive routes allow 10 per minute; retry after the time in Retry-After",
        )))
    }
}

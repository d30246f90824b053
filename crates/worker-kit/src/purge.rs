//! Purging what the Workers keep at the edge, at every location: the zone
//! purge client a delete calls, and the edge TTL cap used where no purge can
//! be had. The rules (tag names, the request body, when to retry, the cap)
//! are `media_core::http::purge`'s.
//!
//! | var | what | default |
//! |---|---|---|
//! | `CF_ZONE_ID` | the zone the Workers' routes are on | none |
//! | `CF_PURGE_TOKEN` (secret) | an API token with the zone's Cache Purge permission | none |
//! | `CF_API_BASE` | Cloudflare's API (tests point it at `devkit/purge-standin.mjs`) | `https://api.cloudflare.com/client/v4` |
//! | `EDGE_TTL_WITHOUT_PURGE_S` | the longest the edge keeps a response when no purge is configured | 3600 |
//!
//! With a zone and a token, a delete sends one purge by tag after it has
//! committed ([`PurgeSettings::purge_tags`], in `wait_until`), retried on a
//! 429, a 5xx or a network error (up to [`ATTEMPTS`] attempts within about
//! 15 s); one that still fails is logged at error level with
//! `metric="cache_purge_failed"` and the tags, never the token, and sent to
//! Sentry (`IV_SENTRY_DSN`) when the delete's context gives a reporter. Responses
//! keep their long TTLs. Without either (or on a `*.workers.dev` host, which
//! has no zone), nothing is sent and every response kept at the edge has its
//! `max-age` capped at `EDGE_TTL_WITHOUT_PURGE_S`
//! ([`PurgeSettings::edge_cache_control`]).

use std::borrow::Cow;
use std::time::Duration;

use media_core::http::purge::{bounded_cache_control, next_step, PurgeByTags, PurgeStep, MAX_ITEMS_PER_REQUEST};
use worker::{Context, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::config::{ConfigError, Vars};
use crate::sentry::OwnedReporter;

/// Cloudflare's API, where `CF_API_BASE` does not say otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// How many times one purge is tried.
pub const ATTEMPTS: u32 = 3;

/// The longest wait between two attempts (`wait_until` has about 30 s).
const MAX_WAIT_S: u32 = 8;

/// Where deletes send their purge, and how long the edge may keep what no
/// purge reaches. No `Debug`: it holds the token.
#[derive(Clone)]
pub struct PurgeSettings {
    /// `CF_API_BASE` without its trailing `/`.
    pub api_base: String,
    /// `CF_ZONE_ID`.
    pub zone_id: Option<String>,
    /// `CF_PURGE_TOKEN`.
    token: Option<String>,
    /// `EDGE_TTL_WITHOUT_PURGE_S`.
    pub edge_ttl_without_purge_s: u32,
}

impl PurgeSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let edge_ttl_without_purge_s = vars.number("EDGE_TTL_WITHOUT_PURGE_S", 3600)?;
        if edge_ttl_without_purge_s == 0 {
            return Err(ConfigError {
                name: "EDGE_TTL_WITHOUT_PURGE_S".into(),
                problem: "is 0; give the longest the edge may keep a response, in seconds".into(),
            });
        }
        Ok(PurgeSettings {
            api_base: vars.or("CF_API_BASE", DEFAULT_API_BASE).trim_end_matches('/').to_owned(),
            zone_id: vars.get("CF_ZONE_ID"),
            token: vars.get("CF_PURGE_TOKEN"),
            edge_ttl_without_purge_s,
        })
    }

    /// The zone and token a purge for a request to `host` uses, when it can
    /// be had: both set, and not a `workers.dev` host (no zone of ours;
    /// the Cache API does nothing there anyway).
    fn target(&self, host: &str) -> Option<(&str, &str)> {
        if host.ends_with(".workers.dev") {
            return None;
        }
        self.zone_id.as_deref().zip(self.token.as_deref())
    }

    /// Whether a delete of what a request to `host` served reaches every location.
    pub fn reaches_every_location(&self, host: &str) -> bool {
        self.target(host).is_some()
    }

    /// The `Cache-Control` a response kept at the edge for a request to
    /// `host` carries: `policy` where a purge reaches every location, else
    /// capped at `EDGE_TTL_WITHOUT_PURGE_S`.
    pub fn edge_cache_control<'p>(&self, policy: &'p str, host: &str) -> Cow<'p, str> {
        if self.reaches_every_location(host) {
            Cow::Borrowed(policy)
        } else {
            bounded_cache_control(policy, self.edge_ttl_without_purge_s)
        }
    }

    /// Drops every response tagged with one of `tags` at every location,
    /// after the answer has gone (`wait_until`): call it once the delete has
    /// committed. Does nothing where no purge can be had (see
    /// [`Self::edge_cache_control`] for what bounds those instead).
    pub fn purge_tags(&self, ctx: &Context, host: &str, tags: Vec<String>, sentry: Option<OwnedReporter>) {
        let Some((zone, token)) = self.target(host) else {
            tracing::debug!(?tags, "no cache purge configured; the edge TTL cap bounds the other locations");
            return;
        };
        let url = format!("{}/zones/{zone}/purge_cache", self.api_base);
        let token = token.to_owned();
        ctx.wait_until(async move {
            for chunk in tags.chunks(MAX_ITEMS_PER_REQUEST) {
                purge_with_retries(&url, &token, chunk, sentry.as_ref()).await;
            }
        });
    }
}

/// The host of `url` (a base URL such as `PUBLIC_BASE_URL`), or nothing
/// when it is not a URL.
pub fn host_of(url: &str) -> String {
    worker::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

/// One purge request, tried up to [`ATTEMPTS`] times.
async fn purge_with_retries(url: &str, token: &str, tags: &[String], sentry: Option<&OwnedReporter>) {
    let body = match serde_json::to_string(&PurgeByTags { tags }) {
        Ok(b) => b,
        Err(e) => return tracing::error!(error = %e, "the purge body did not serialise"),
    };
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let (status, retry_after) = match send(url, token, &body).await {
            Ok(answer) => answer,
            Err(e) => {
                last = format!("network: {e}");
                (None, None)
            }
        };
        if let Some(s) = status {
            last = format!("status {s}");
        }
        match next_step(status, retry_after.as_deref(), attempt, MAX_WAIT_S) {
            PurgeStep::Done => {
                tracing::info!(?tags, attempt, "edge cache purged at every location");
                return;
            }
            PurgeStep::GiveUp => break,
            PurgeStep::RetryAfter(s) if attempt < ATTEMPTS => {
                tracing::warn!(?tags, attempt, wait_s = s, outcome = %last, "cache purge failed; trying again");
                Delay::from(Duration::from_secs(u64::from(s))).await;
            }
            PurgeStep::RetryAfter(_) => {}
        }
    }
    tracing::error!(
        metric = "cache_purge_failed",
        ?tags,
        outcome = %last,
        "cache purge failed; other locations keep their copies until their TTL runs out"
    );
    if let Some(sentry) = sentry {
        sentry.send(&format!("cache purge failed ({last}) for tags {tags:?}"), "POST", url).await;
    }
}

/// Sends one purge; the status and `Retry-After` of the answer.
async fn send(url: &str, token: &str, body: &str) -> worker::Result<(Option<u16>, Option<String>)> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &format!("Bearer {token}"))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.to_owned().into()));
    let resp = Fetch::Request(Request::new_with_init(url, &init)?).send().await?;
    Ok((Some(resp.status_code()), resp.headers().get("retry-after")?))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<PurgeSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        PurgeSettings::load(&Vars(&map))
    }

    const IMMUTABLE: &str = "public, max-age=31536000, immutable";

    #[test]
    fn without_a_zone_and_token_the_edge_ttl_is_capped() {
        let s = load(&[]).unwrap();
        assert_eq!((s.api_base.as_str(), s.edge_ttl_without_purge_s), (DEFAULT_API_BASE, 3600));
        assert!(!s.reaches_every_location("media.example"));
        assert_eq!(s.edge_cache_control(IMMUTABLE, "media.example"), "public, max-age=3600, immutable");
        let only_zone = load(&[("CF_ZONE_ID", "z"), ("EDGE_TTL_WITHOUT_PURGE_S", "60")]).unwrap();
        assert_eq!(only_zone.edge_cache_control(IMMUTABLE, "media.example"), "public, max-age=60, immutable");
    }

    #[test]
    fn with_a_zone_and_token_the_long_ttl_stays_except_on_workers_dev() {
        let s = load(&[("CF_ZONE_ID", "z"), ("CF_PURGE_TOKEN", "t"), ("CF_API_BASE", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(s.api_base, "http://127.0.0.1:9");
        assert!(s.reaches_every_location("media.example"));
        assert_eq!(s.edge_cache_control(IMMUTABLE, "media.example"), IMMUTABLE);
        assert!(!s.reaches_every_location("image-service.acct.workers.dev"));
        assert_eq!(s.edge_cache_control(IMMUTABLE, "x.workers.dev"), "public, max-age=3600, immutable");
    }

    #[test]
    fn a_zero_cap_is_refused() {
        assert_eq!(load(&[("EDGE_TTL_WITHOUT_PURGE_S", "0")]).err().unwrap().name, "EDGE_TTL_WITHOUT_PURGE_S");
    }
}

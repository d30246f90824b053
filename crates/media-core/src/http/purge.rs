//! Reaching every location's edge cache on a delete, with no I/O: the cache
//! tag that names an image or a video on every response the Workers keep in
//! the Cache API, the zone purge request that drops them all, what to do with
//! its answer, and the edge TTL cap used where no purge can be had.
//!
//! The Cache API is per location, and `cache.delete` reaches only the
//! location that runs it. A zone's purge by tag reaches every location
//! (Cloudflare's "Instant Purge"), and it also reaches entries stored under a
//! custom cache key (our variant keys name the `Accept` class), which a
//! purge by URL does not. So every cached response carries `Cache-Tag:`
//! [`image_tag`] or [`video_tag`], and a delete sends one
//! `{"tags":[...]}` request.
//!
//! Tag rules (developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags):
//! printable ASCII, no spaces, comma-separated, case-insensitive, up to
//! 1,024 characters per tag in a purge call, 16 KB per header. Ids are
//! letters, digits, `-` and `_` (1-64), so `:` separates the parts without
//! ambiguity and a tag is at most 136 characters. Two apps whose ids differ
//! only in case share a tag: a purge of one also drops the other's copy,
//! which costs a cache miss, never a stale answer.

use std::borrow::Cow;

use serde::Serialize;

use crate::ids::{AppId, ImageId, VideoId};

/// The tag on every cached response of an image: its original and every
/// variant, under every options string and `Accept` class.
pub fn image_tag(app: &AppId, image: &ImageId) -> String {
    format!("iv-img:{app}:{image}")
}

/// The tag on every cached response of a video: each HLS file of every
/// output (playlists, init and media segments, poster, sprite, thumbnails
/// track) and the cached job read that gates them.
pub fn video_tag(app: &AppId, video: &VideoId) -> String {
    format!("iv-vid:{app}:{video}")
}

/// The most items Cloudflare takes in one purge request on any plan.
pub const MAX_ITEMS_PER_REQUEST: usize = 100;

/// The body of a zone purge by tag (`POST /zones/{zone_id}/purge_cache`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PurgeByTags<'a> {
    pub tags: &'a [String],
}

/// What to do after one purge attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeStep {
    /// Cloudflare took it.
    Done,
    /// Worth trying again after this many seconds: rate limited (429, the
    /// Free plan allows 5 purge requests a minute), Cloudflare's fault (5xx)
    /// or the network.
    RetryAfter(u32),
    /// Refused for good (a bad token, a wrong zone, a bad body): retrying
    /// cannot help; the operator must fix the settings.
    GiveUp,
}

/// The step after an answer of `status` (`None`: no answer, a network
/// error), on attempt `attempt` (1-based), honouring `Retry-After` (in
/// seconds) up to `max_wait_s`.
pub fn next_step(status: Option<u16>, retry_after: Option<&str>, attempt: u32, max_wait_s: u32) -> PurgeStep {
    let backoff = (2u32.saturating_pow(attempt)).min(max_wait_s);
    match status {
        Some(200..=299) => PurgeStep::Done,
        Some(429) => {
            let asked = retry_after.and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(backoff);
            PurgeStep::RetryAfter(asked.clamp(1, max_wait_s))
        }
        Some(500..=599) | None => PurgeStep::RetryAfter(backoff),
        Some(_) => PurgeStep::GiveUp,
    }
}

/// `cache_control` with its `max-age` and `s-maxage` no longer than
/// `max_s` seconds: what a response kept at the edge carries where no purge
/// reaches the other locations, so a delete takes effect everywhere within
/// `max_s`. Other directives are kept as they are.
pub fn bounded_cache_control(cache_control: &str, max_s: u32) -> Cow<'_, str> {
    let mut changed = false;
    let parts: Vec<String> = cache_control
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let Some((name, value)) = d.split_once('=') else { return d.to_owned() };
            let name = name.trim();
            let is_age = name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage");
            match value.trim().trim_matches('"').parse::<u64>() {
                Ok(age) if is_age && age > u64::from(max_s) => {
                    changed = true;
                    format!("{name}={max_s}")
                }
                _ => d.to_owned(),
            }
        })
        .collect();
    if changed {
        Cow::Owned(parts.join(", "))
    } else {
        Cow::Borrowed(cache_control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (AppId, ImageId, VideoId) {
        (AppId::parse("app-a").unwrap(), ImageId::parse("img_1").unwrap(), VideoId::parse("vid-2").unwrap())
    }

    #[test]
    fn tags_name_one_object_and_keep_to_cloudflares_rules() {
        let (app, image, video) = ids();
        assert_eq!(image_tag(&app, &image), "iv-img:app-a:img_1");
        assert_eq!(video_tag(&app, &video), "iv-vid:app-a:vid-2");
        // `-` is in ids: with `-` as the separator app "a-b" image "c" and app "a" image "b-c" would share a tag.
        let a = image_tag(&AppId::parse("a-b").unwrap(), &ImageId::parse("c").unwrap());
        let b = image_tag(&AppId::parse("a").unwrap(), &ImageId::parse("b-c").unwrap());
        assert_ne!(a, b);
        let long = "x".repeat(64);
        let tag = video_tag(&AppId::parse(&long).unwrap(), &VideoId::parse(&long).unwrap());
        assert!(tag.len() <= 1024 && tag.len() == 136, "{}", tag.len());
        assert!(tag.bytes().all(|b| b.is_ascii_graphic() && b != b','), "{tag}");
    }

    #[test]
    fn the_purge_body_lists_the_tags() {
        let tags = vec!["iv-img:a:b".to_owned()];
        assert_eq!(serde_json::to_string(&PurgeByTags { tags: &tags }).unwrap(), r#"{"tags":["iv-img:a:b"]}"#);
    }

    #[test]
    fn rate_limits_and_server_faults_are_retried_refusals_are_not() {
        assert_eq!(next_step(Some(200), None, 1, 10), PurgeStep::Done);
        assert_eq!(next_step(Some(429), Some("3"), 1, 10), PurgeStep::RetryAfter(3));
        assert_eq!(next_step(Some(429), Some("60"), 1, 10), PurgeStep::RetryAfter(10), "capped");
        assert_eq!(next_step(Some(429), None, 2, 10), PurgeStep::RetryAfter(4));
        assert_eq!(next_step(Some(503), None, 1, 10), PurgeStep::RetryAfter(2));
        assert_eq!(next_step(None, None, 3, 10), PurgeStep::RetryAfter(8));
        assert_eq!(next_step(None, None, 9, 10), PurgeStep::RetryAfter(10));
        for refused in [400, 401, 403, 404] {
            assert_eq!(next_step(Some(refused), None, 1, 10), PurgeStep::GiveUp, "{refused}");
        }
    }

    #[test]
    fn the_edge_ttl_cap_lowers_only_longer_ages() {
        assert_eq!(
            bounded_cache_control("public, max-age=31536000, immutable", 3600),
            "public, max-age=3600, immutable"
        );
        assert_eq!(
            bounded_cache_control("public, max-age=86400, s-maxage=604800", 600),
            "public, max-age=600, s-maxage=600"
        );
        for kept in ["public, max-age=2", "max-age=3600", "no-store", "private, max-age=10"] {
            assert!(matches!(bounded_cache_control(kept, 3600), Cow::Borrowed(v) if v == kept), "{kept}");
        }
    }
}

//! Webhook endpoints an app manages by API (`/webhooks/endpoints`): what an
//! endpoint is ([`Endpoint`]: its url, event filter, secret), which events
//! it gets ([`Endpoint::wants`]), a secret's rotation (the old one keeps
//! signing beside the new until it expires, [`Endpoint::rotate`],
//! [`Endpoint::signing_secrets`]), what a receiver's answer does to it (410
//! disables it, [`Endpoint::gone`]), how many attempts its delivery log
//! keeps ([`DELIVERY_LOG_LEN`]), and the operator's `IV_WEBHOOKS` entry as
//! the app's default endpoint ([`Endpoint::operator_default`]). No I/O:
//! the app's hub stores them and sends.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalogue::EventType;
use crate::ids::base32_lower;
use crate::time::Timestamp;
use crate::video::webhook::AppWebhook;

/// The id of an app's default endpoint: the operator's `IV_WEBHOOKS` entry.
/// Its deliveries are listed and redelivered like any endpoint's; it is
/// changed only in `IV_WEBHOOKS`.
pub const DEFAULT_ENDPOINT_ID: &str = "default";

/// How many endpoints an app may have (the default one aside).
pub const MAX_ENDPOINTS: usize = 20;

/// How many delivery attempts an endpoint's log keeps, newest first.
pub const DELIVERY_LOG_LEN: usize = 50;

/// How long an old secret keeps signing after a rotation, unless asked.
pub const DEFAULT_ROTATION_GRACE_S: u64 = 24 * 60 * 60;

/// The longest grace a rotation may ask for: a week.
pub const MAX_ROTATION_GRACE_S: u64 = 7 * 24 * 60 * 60;

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// A fresh endpoint id from 16 random bytes: `ep_` and 26 lowercase base32 characters.
pub fn endpoint_id(random: [u8; 16]) -> String {
    format!("ep_{}", base32_lower(&random))
}

/// Whether `id` can name an endpoint (`ep_` ids, and the default one):
/// anything else is refused before a hub is asked.
pub fn is_endpoint_id(id: &str) -> bool {
    id == DEFAULT_ENDPOINT_ID
        || id
            .strip_prefix("ep_")
            .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// The secret a rotation replaced, signing until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: Timestamp,
}

/// One webhook endpoint of an app, as its hub stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// The types it gets; `None`: every type.
    pub events: Option<BTreeSet<EventType>>,
    pub enabled: bool,
    /// Why it was disabled by the platform (a 410 from the receiver).
    pub disabled_reason: Option<String>,
    /// `whsec_…`; an operator default's may be a raw legacy secret.
    pub secret: String,
    pub previous: Option<PreviousSecret>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Endpoint {
    /// A new, enabled endpoint.
    pub fn new(
        id: String,
        url: String,
        description: Option<String>,
        events: Option<BTreeSet<EventType>>,
        secret: String,
        now: Timestamp,
    ) -> Endpoint {
        Endpoint {
            id,
            url,
            description,
            events,
            enabled: true,
            disabled_reason: None,
            secret,
            previous: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The app's default endpoint from its `IV_WEBHOOKS` entry (every
    /// type), if the entry has a url.
    pub fn operator_default(hook: &AppWebhook) -> Option<Endpoint> {
        let url = hook.url.clone()?;
        let epoch = Timestamp::from_millis(0);
        Some(Endpoint::new(
            DEFAULT_ENDPOINT_ID.into(),
            url,
            Some("IV_WEBHOOKS".into()),
            None,
            hook.secret.clone(),
            epoch,
        ))
    }

    /// Whether the operator's entry is this endpoint.
    pub fn is_default(&self) -> bool {
        self.id == DEFAULT_ENDPOINT_ID
    }

    /// Whether it gets events of type `t`: enabled, and `t` in its filter.
    pub fn wants(&self, t: EventType) -> bool {
        self.enabled && self.events.as_ref().is_none_or(|only| only.contains(&t))
    }

    /// The secrets a delivery at `now` is signed with: the current one,
    /// then the one a rotation replaced until it expires.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let old = self.previous.as_ref().filter(|p| now < p.expires_at).map(|p| p.secret.as_str());
        std::iter::once(self.secret.as_str()).chain(old).collect()
    }

    /// Replaces the secret with `new_secret` at `now`; the old one keeps
    /// signing for `grace_s` seconds (0: not at all). A rotation during
    /// another's grace drops the older secret. When the old one stops.
    pub fn rotate(&mut self, new_secret: String, grace_s: u64, now: Timestamp) -> Option<Timestamp> {
        let old = std::mem::replace(&mut self.secret, new_secret);
        let expires_at = now.plus_millis(grace_s.saturating_mul(1000));
        self.previous = (grace_s > 0).then_some(PreviousSecret { secret: old, expires_at });
        self.updated_at = now;
        self.previous.as_ref().map(|p| p.expires_at)
    }

    /// The receiver answered 410 Gone at `now`: the endpoint is disabled
    /// (the spec's rule) until its owner enables it again.
    pub fn gone(&mut self, now: Timestamp) {
        self.enabled = false;
        self.disabled_reason = Some("the receiver answered 410 Gone".into());
        self.updated_at = now;
    }
}

/// The event types a filter lists, read from their names: `None` for
/// every type (the list absent); an empty list, an unknown or repeated
/// name is refused, naming it.
pub fn parse_filter(names: Option<&[&str]>) -> Result<Option<BTreeSet<EventType>>, String> {
    let Some(names) = names else { return Ok(None) };
    if names.is_empty() {
        return Err("events must list at least one event type; leave it out to get every type".into());
    }
    let mut types = BTreeSet::new();
    for name in names {
        let t = EventType::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("events: unknown event type {name:?}; the types are {}", known.join(", "))
        })?;
        if !types.insert(t) {
            return Err(format!("events: {name:?} is listed twice"));
        }
    }
    Ok(Some(types))
}

/// A description, trimmed; refused when longer than [`MAX_DESCRIPTION_CHARS`].
pub fn check_description(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A rotation's grace in seconds: the default when absent, at most a week.
pub fn rotation_grace(asked: Option<u64>) -> Result<u64, String> {
    match asked {
        None => Ok(DEFAULT_ROTATION_GRACE_S),
        Some(s) if s <= MAX_ROTATION_GRACE_S => Ok(s),
        Some(s) => Err(format!("old_secret_expires_in_s is {s}; it must be from 0 to {MAX_ROTATION_GRACE_S} (a week)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    fn endpoint(events: Option<BTreeSet<EventType>>) -> Endpoint {
        let at = Timestamp::from_secs(T);
        Endpoint::new(endpoint_id([1; 16]), "https://h.example/x".into(), None, events, "whsec_new".into(), at)
    }

    #[test]
    fn filters_pick_the_types_and_a_disabled_endpoint_gets_none() {
        let all = endpoint(None);
        assert!(EventType::ALL.iter().all(|t| all.wants(*t)));
        let only = endpoint(parse_filter(Some(&["video.ready", "image.deleted"])).unwrap());
        let wanted: Vec<EventType> = EventType::ALL.into_iter().filter(|t| only.wants(*t)).collect();
        assert_eq!(wanted, [EventType::VideoReady, EventType::ImageDeleted]);
        let mut gone = endpoint(None);
        gone.gone(Timestamp::from_secs(T + 1));
        assert!(!gone.wants(EventType::VideoReady));
        assert_eq!(gone.disabled_reason.as_deref(), Some("the receiver answered 410 Gone"));
    }

    #[test]
    fn filters_refuse_empty_unknown_and_repeated_names() {
        assert_eq!(parse_filter(None), Ok(None));
        assert!(parse_filter(Some(&[])).unwrap_err().contains("at least one"));
        let e = parse_filter(Some(&["video.ready", "video.cancelled"])).unwrap_err();
        assert!(e.contains("unknown event type \"video.cancelled\"") && e.contains("video.canceled"), "{e}");
        assert!(parse_filter(Some(&["video.ready", "video.ready"])).unwrap_err().contains("twice"));
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_it_expires() {
        let mut e = endpoint(None);
        let now = Timestamp::from_secs(T);
        assert_eq!(e.signing_secrets(now), ["whsec_new"]);
        let expires = e.rotate("whsec_newer".into(), 3600, now).unwrap();
        assert_eq!(expires, Timestamp::from_secs(T + 3600));
        assert_eq!(e.signing_secrets(now), ["whsec_newer", "whsec_new"], "the new one first");
        assert_eq!(e.signing_secrets(Timestamp::from_secs(T + 3599)).len(), 2);
        assert_eq!(e.signing_secrets(Timestamp::from_secs(T + 3600)), ["whsec_newer"], "expired");
        // Rotating again drops the oldest; a grace of 0 keeps no old secret.
        e.rotate("whsec_3".into(), 60, now);
        assert_eq!(e.signing_secrets(now), ["whsec_3", "whsec_newer"]);
        assert_eq!(e.rotate("whsec_4".into(), 0, now), None);
        assert_eq!(e.signing_secrets(now), ["whsec_4"]);
    }

    #[test]
    fn ids_descriptions_and_graces_are_checked() {
        assert!(is_endpoint_id(&endpoint_id([0xab; 16])));
        assert!(is_endpoint_id(DEFAULT_ENDPOINT_ID));
        for bad in ["", "ep_", "ep_UPPERCASEUPPERCASEUPPERCA", "x", "ep_abc/../x", &format!("ep_{}", "a".repeat(27))] {
            assert!(!is_endpoint_id(bad), "{bad}");
        }
        assert_eq!(check_description("  orders  "), Ok(Some("orders".into())));
        assert_eq!(check_description(" "), Ok(None));
        assert!(check_description(&"x".repeat(201)).is_err());
        assert_eq!(rotation_grace(None), Ok(86_400));
        assert_eq!(rotation_grace(Some(0)), Ok(0));
        assert!(rotation_grace(Some(MAX_ROTATION_GRACE_S + 1)).is_err());
    }

    #[test]
    fn the_operator_entry_is_the_default_endpoint_for_every_type() {
        let hook = AppWebhook { url: Some("https://ops.example/hook".into()), secret: "legacy-secret-0123".into() };
        let d = Endpoint::operator_default(&hook).unwrap();
        assert!(d.is_default() && d.enabled && d.events.is_none());
        assert_eq!(d.signing_secrets(Timestamp::from_secs(T)), ["legacy-secret-0123"]);
        assert!(Endpoint::operator_default(&AppWebhook { url: None, secret: "s".repeat(16) }).is_none());
    }
}

//! What the webhook endpoint routes (`/webhooks/endpoints…`, API key) take
//! and answer: creating and updating an endpoint (checked with
//! `crate::video::endpoint`'s rules and the callback url rules), rotating
//! its secret, its delivery log and a redelivery. An endpoint's secret is
//! answered once, by its creation or rotation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::EventType;
use crate::ids::AppId;
use crate::time::Timestamp;
use crate::video::callback::url_problem;
use crate::video::endpoint::{check_description, parse_filter, rotation_grace, Endpoint};
use crate::wire::api::Fields;
use crate::ApiError;

/// Which types an endpoint gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    All,
    Only(BTreeSet<EventType>),
}

impl Filter {
    fn of(types: Option<BTreeSet<EventType>>) -> Filter {
        types.map_or(Filter::All, Filter::Only)
    }

    /// The types, `None` for all.
    pub fn types(self) -> Option<BTreeSet<EventType>> {
        match self {
            Filter::All => None,
            Filter::Only(t) => Some(t),
        }
    }
}

/// The `events` field: absent or `null`, every type; else a list of names.
fn filter_of(value: Option<&Value>) -> Result<Filter, ApiError> {
    let names: Option<Vec<&str>> = match value {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| ApiError::invalid_field("events must be a list of event type names")))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(ApiError::invalid_field("events must be a list of event type names, or null for all")),
    };
    Ok(Filter::of(parse_filter(names.as_deref()).map_err(ApiError::invalid_field)?))
}

fn url_of(f: &Fields, allow_local_http: bool) -> Result<Option<String>, ApiError> {
    let Some(url) = f.optional_str("url")? else { return Ok(None) };
    if let Some(problem) = url_problem(url, allow_local_http) {
        return Err(ApiError::invalid_field(format!("url {problem}")));
    }
    Ok(Some(url.to_owned()))
}

/// `POST /webhooks/endpoints`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointCreateRequest {
    pub app_id: AppId,
    /// Where the app's events go: the `callback_url` rules (https, no
    /// private or loopback address).
    #[cfg_attr(feature = "openapi", schema(example = "https://api.example.com/hooks/media", max_length = 2048))]
    pub url: String,
    /// The event types it gets; absent or `null`: every type.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>, example = json!(["video.ready", "video.errored"])))]
    pub events: Option<BTreeSet<EventType>>,
    /// At most 200 characters.
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub description: Option<String>,
}

impl EndpointCreateRequest {
    pub const FIELDS: &'static [&'static str] = &["app_id", "url", "events", "description"];

    pub fn from_json(body: &[u8], allow_local_http: bool) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(Self::FIELDS)?;
        let app_id = f.required_id("app_id", AppId::parse)?;
        let url = url_of(&f, allow_local_http)?.ok_or_else(|| ApiError::invalid_field("url is required"))?;
        let events = filter_of(f.raw("events"))?.types();
        let description = match f.optional_str("description")? {
            Some(d) => check_description(d).map_err(ApiError::invalid_field)?,
            None => None,
        };
        Ok(Self { app_id, url, events, description })
    }
}

/// A field that is there, `null` included (`Some(None)`); absent, the
/// field's default (`None`): serde's `Option` alone reads both as `None`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What an update changes (`POST /webhooks/endpoints/{id}`); absent fields stay.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointUpdateRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(example = "https://api.example.com/hooks/media", max_length = 2048, nullable = false)
    )]
    pub url: Option<String>,
    /// `null`: every type from now on; a list: only those.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub events: Option<Filter>,
    /// `null` or `""` clears it; at most 200 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 200))]
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// `true` enables an endpoint again (after a 410 disabled it).
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub enabled: Option<bool>,
}

impl EndpointUpdateRequest {
    pub const FIELDS: &'static [&'static str] = &["url", "events", "description", "enabled"];

    pub fn from_json(body: &[u8], allow_local_http: bool) -> Result<Self, ApiError> {
        let f = Fields::parse(body)?;
        f.only(Self::FIELDS)?;
        // null means something for events (every type) and description
        // (none); for these it would change nothing, so it is refused.
        for name in ["url", "enabled"] {
            if f.raw(name) == Some(&Value::Null) {
                return Err(ApiError::invalid_field(format!("{name} cannot be null; leave it out to keep it")));
            }
        }
        let events = f.raw("events").map(|v| filter_of(Some(v))).transpose()?;
        let description = match f.raw("description") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => Some(check_description(f.required_str("description")?).map_err(ApiError::invalid_field)?),
        };
        let r = Self { url: url_of(&f, allow_local_http)?, events, description, enabled: f.optional_bool("enabled")? };
        if r == Self::default() {
            return Err(ApiError::invalid_field(format!("name at least one of {} to change", Self::FIELDS.join(", "))));
        }
        Ok(r)
    }

    /// Applies the changes to `e` at `now`; enabling clears why it was disabled.
    pub fn apply(self, e: &mut Endpoint, now: Timestamp) {
        if let Some(url) = self.url {
            e.url = url;
        }
        if let Some(filter) = self.events {
            e.events = filter.types();
        }
        if let Some(description) = self.description {
            e.description = description;
        }
        if let Some(enabled) = self.enabled {
            e.enabled = enabled;
            if enabled {
                e.disabled_reason = None;
            }
        }
        e.updated_at = now;
    }
}

/// `POST /webhooks/endpoints/{id}/rotate`: how long the old secret keeps
/// signing beside the new one (an empty body: a day).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// Seconds, 0 to 604800 (a week); default 86400.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 604800, default = 86400))]
    pub old_secret_expires_in_s: Option<u64>,
}

impl RotateRequest {
    /// The grace in seconds.
    pub fn grace_s_from_json(body: &[u8]) -> Result<u64, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return rotation_grace(None).map_err(ApiError::invalid_field);
        }
        let f = Fields::parse(body)?;
        f.only(&["old_secret_expires_in_s"])?;
        rotation_grace(f.optional_u64("old_secret_expires_in_s")?).map_err(ApiError::invalid_field)
    }
}

/// An endpoint as the routes show it: never its secret.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    /// `ep_…`, or `default` for the operator's `IV_WEBHOOKS` entry.
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// The types it gets; `null`: every type.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<String>>))]
    pub events: Option<BTreeSet<EventType>>,
    pub enabled: bool,
    /// Why the platform disabled it (a `410 Gone` from the receiver).
    pub disabled_reason: Option<String>,
    /// While a rotated-out secret still signs: when it stops.
    pub old_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EndpointView {
    /// The view of `e` at `now`.
    pub fn of(e: &Endpoint, now: Timestamp) -> EndpointView {
        EndpointView {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            events: e.events.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            old_secret_expires_at: e.previous.as_ref().map(|p| p.expires_at).filter(|at| now < *at),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// The answer to a creation: the endpoint and its secret, shown this once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointCreated {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_` and the base64 of 32 random bytes: verify deliveries with it.
    #[cfg_attr(feature = "openapi", schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))]
    pub secret: String,
}

/// `GET /webhooks/endpoints`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// `DELETE /webhooks/endpoints/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointDeleted {
    pub id: String,
    pub deleted: bool,
}

/// The answer to a rotation: the new secret, shown this once, and when
/// the old one stops signing (`null` with a grace of 0).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotatedSecret {
    pub secret: String,
    pub old_secret_expires_at: Option<Timestamp>,
}

/// One attempt in an endpoint's delivery log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub event_id: String,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub event_type: EventType,
    /// 1 for the first attempt of a (re)delivery.
    pub attempt: u32,
    pub delivered: bool,
    /// The receiver's status; absent when it did not answer.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// Why it failed, in our words (never the receiver's body).
    pub error: Option<String>,
    pub at: Timestamp,
}

/// `GET /webhooks/endpoints/{id}/deliveries`: the last 50 attempts, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLog {
    pub endpoint_id: String,
    pub attempts: Vec<DeliveryAttempt>,
}

/// `POST /webhooks/endpoints/{id}/deliveries/{event_id}/redeliver` (202).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redelivery {
    pub endpoint_id: String,
    pub event_id: String,
    /// `queued`: the first attempt goes out within a moment.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.status(), 400, "{e:?}");
        e.message
    }

    #[test]
    fn an_update_refuses_null_where_null_would_change_nothing() {
        for body in [&br#"{"enabled":null}"#[..], br#"{"url":null}"#, br#"{"url":null,"enabled":true}"#] {
            assert!(err(EndpointUpdateRequest::from_json(body, false)).contains("cannot be null"));
        }
        // null keeps its meaning where it has one: every type, no description.
        let r = EndpointUpdateRequest::from_json(br#"{"events":null,"description":null}"#, false).unwrap();
        assert_eq!((r.events.map(|f| f.types()), r.description), (Some(None), Some(None)));
    }

    #[test]
    fn a_creation_is_checked_field_by_field() {
        let ok = EndpointCreateRequest::from_json(
            br#"{"app_id":"a1","url":"https://h.example/x","events":["video.ready"],"description":" orders "}"#,
            false,
        )
        .unwrap();
        assert_eq!(ok.events, Some([EventType::VideoReady].into()));
        assert_eq!(ok.description.as_deref(), Some("orders"));
        let all =
            EndpointCreateRequest::from_json(br#"{"app_id":"a1","url":"https://h.example/x","events":null}"#, false);
        assert_eq!(all.unwrap().events, None);
        let local = br#"{"app_id":"a1","url":"http://127.0.0.1:9/x"}"#;
        assert!(EndpointCreateRequest::from_json(local, true).is_ok(), "the local-dev allowance");
        assert!(err(EndpointCreateRequest::from_json(local, false)).contains("url must use https"));
        for (body, part) in [
            (&br#"{"app_id":"a1"}"#[..], "url is required"),
            (br#"{"app_id":"a1","url":"https://10.0.0.1/"}"#, "private"),
            (br#"{"app_id":"a1","url":"https://h.example/","events":[]}"#, "at least one"),
            (br#"{"app_id":"a1","url":"https://h.example/","events":["video.nope"]}"#, "unknown event type"),
            (br#"{"app_id":"a1","url":"https://h.example/","events":"video.ready"}"#, "must be a list"),
            (br#"{"app_id":"a1","url":"https://h.example/","events":[1]}"#, "must be a list"),
            (br#"{"app_id":"a1","url":"https://h.example/","secret":"x"}"#, "unknown field \"secret\""),
            (br#"{"url":"https://h.example/"}"#, "app_id"),
        ] {
            assert!(
                err(EndpointCreateRequest::from_json(body, false)).contains(part),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_update_changes_what_it_names_and_null_means_all_or_cleared() {
        let mut e = Endpoint::new(
            "ep_x".into(),
            "https://a.example/".into(),
            Some("d".into()),
            Some([EventType::VideoReady].into()),
            "whsec_x".into(),
            Timestamp::from_secs(1),
        );
        e.gone(Timestamp::from_secs(2));
        let r =
            EndpointUpdateRequest::from_json(br#"{"events":null,"description":null,"enabled":true}"#, false).unwrap();
        r.apply(&mut e, Timestamp::from_secs(3));
        assert_eq!(
            (e.events.clone(), e.description.clone(), e.enabled, e.disabled_reason.clone()),
            (None, None, true, None)
        );
        assert_eq!(e.url, "https://a.example/", "absent: kept");
        let r = EndpointUpdateRequest::from_json(br#"{"url":"https://b.example/","events":["image.created"]}"#, false);
        r.unwrap().apply(&mut e, Timestamp::from_secs(4));
        assert_eq!((e.url.as_str(), e.events.clone()), ("https://b.example/", Some([EventType::ImageCreated].into())));
        assert!(err(EndpointUpdateRequest::from_json(b"{}", false)).contains("at least one of"));
        // What the Worker hands the hub keeps "clear" apart from "keep".
        for body in [&br#"{"description":null}"#[..], br#"{"enabled":false}"#, br#"{"events":null}"#] {
            let r = EndpointUpdateRequest::from_json(body, false).unwrap();
            let back: EndpointUpdateRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r, "{}", String::from_utf8_lossy(body));
        }
        assert!(err(EndpointUpdateRequest::from_json(br#"{"enabled":"yes"}"#, false)).contains("true or false"));
        assert!(err(EndpointUpdateRequest::from_json(br#"{"url":"ftp://x/"}"#, false)).contains("url"));
    }

    #[test]
    fn a_rotation_takes_an_optional_grace() {
        assert_eq!(RotateRequest::grace_s_from_json(b"").unwrap(), 86_400);
        assert_eq!(RotateRequest::grace_s_from_json(br#"{"old_secret_expires_in_s":0}"#).unwrap(), 0);
        assert!(err(RotateRequest::grace_s_from_json(br#"{"old_secret_expires_in_s":9999999}"#)).contains("a week"));
        assert!(err(RotateRequest::grace_s_from_json(br#"{"grace":1}"#)).contains("unknown field"));
    }

    #[test]
    fn views_never_show_the_secret() {
        let mut e = Endpoint::new(
            "ep_x".into(),
            "https://a/".into(),
            None,
            None,
            "whsec_s3cr3t".into(),
            Timestamp::from_secs(1),
        );
        e.rotate("whsec_n3w".into(), 10, Timestamp::from_secs(1));
        let v = serde_json::to_string(&EndpointView::of(&e, Timestamp::from_secs(2))).unwrap();
        assert!(!v.contains("s3cr3t") && !v.contains("n3w"), "{v}");
        assert!(v.contains("\"old_secret_expires_at\":\"1970-01-01T00:00:11.000Z\""), "{v}");
        let later = EndpointView::of(&e, Timestamp::from_secs(11));
        assert_eq!(later.old_secret_expires_at, None, "expired: no longer shown");
    }
}

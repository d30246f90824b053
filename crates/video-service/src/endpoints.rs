//! The webhook endpoint routes (`/webhooks/endpoints…`, API key, the key's
//! own apps only: another app's is 403): create, list, get, update,
//! delete, rotate the secret, the delivery log and a redelivery. The input
//! is checked here (`media_core::wire::endpoints`, the callback url rules
//! with the same local-development allowance as `IV_WEBHOOKS`); the
//! endpoints live in the app's `AppHub` ([`crate::app_hub::webhooks`]),
//! whose answer is relayed as it is. `app_id` is the body's on a creation
//! and the query's everywhere else.

use media_core::ids::AppId;
use media_core::video::endpoint::is_endpoint_id;
use media_core::wire::api::query_id;
use media_core::wire::endpoints::{EndpointCreateRequest, EndpointUpdateRequest, RotateRequest};
use media_core::wire::routes::{Route, VideoRoute};
use media_core::ApiError;
use serde_json::Value;
use worker::{Method, Request};
use worker_kit::body::read_body;
use worker_kit::entry::guard;
use worker_kit::query::query;
use worker_kit::reply::json;
use worker_kit::{Failure, Handled};

use crate::client;
use crate::protocol::app_hub::{EndpointOp, HubCommand, APP_EVENTS_BINDING};
use crate::VideoContext;

/// The most a JSON request body of these routes may be.
const MAX_JSON_BODY: u64 = 16 * 1024;

/// Whether `id` can be an announced event's id (`evt_` and 26 base32).
fn is_event_id(id: &str) -> bool {
    id.strip_prefix("evt_")
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// The endpoint id of the path (404 when it cannot name one), and the
/// event id after it, if the row has one.
fn path_ids(req: &Request, row: &Route<VideoRoute>) -> Result<(String, Option<String>), ApiError> {
    let path = req.path();
    let params = row.pattern.params(&path).unwrap_or_default();
    let id = params.first().copied().unwrap_or_default();
    if !is_endpoint_id(id) {
        return Err(ApiError::not_found(format!("no webhook endpoint {id:?}: endpoint ids are ep_… or default")));
    }
    let event = params.get(1).copied();
    if let Some(event) = event.filter(|e| !is_event_id(e)) {
        return Err(ApiError::not_found(format!("no event {event:?}: event ids are evt_ and 26 characters")));
    }
    Ok((id.to_owned(), event.map(str::to_owned)))
}

/// `/webhooks/endpoints`, `/webhooks/endpoints/{endpoint_id}` and below.
pub async fn route(mut req: Request, cx: &VideoContext<'_>, row: &'static Route<VideoRoute>) -> Handled {
    let grant = guard(&req, cx, "webhook-endpoints").await?;
    let local = cx.settings.objects.webhooks.allow_local_http;
    let q = query(&req)?;
    let app_in_query = || query_id(&q, "app_id", AppId::parse);
    let method = req.method();
    let (app_id, op) = match (row.id, method) {
        (VideoRoute::WebhookEndpoints, Method::Post) => {
            let r = EndpointCreateRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?, local)?;
            (r.app_id, EndpointOp::Create { url: r.url, description: r.description, events: r.events })
        }
        (VideoRoute::WebhookEndpoints, _) => (app_in_query()?, EndpointOp::List),
        (VideoRoute::WebhookEndpoint, Method::Post) => {
            let app = app_in_query()?;
            let (id, _) = path_ids(&req, row)?;
            let changes = EndpointUpdateRequest::from_json(&read_body(&mut req, MAX_JSON_BODY).await?, local)?;
            (app, EndpointOp::Update { id, changes })
        }
        (VideoRoute::WebhookEndpoint, Method::Delete) => {
            (app_in_query()?, EndpointOp::Delete { id: path_ids(&req, row)?.0 })
        }
        (VideoRoute::WebhookEndpoint, _) => (app_in_query()?, EndpointOp::Get { id: path_ids(&req, row)?.0 }),
        (VideoRoute::WebhookEndpointRotate, _) => {
            let app = app_in_query()?;
            let (id, _) = path_ids(&req, row)?;
            let grace_s = RotateRequest::grace_s_from_json(&read_body(&mut req, MAX_JSON_BODY).await?)?;
            (app, EndpointOp::Rotate { id, grace_s })
        }
        (VideoRoute::WebhookDeliveries, _) => (app_in_query()?, EndpointOp::Deliveries { id: path_ids(&req, row)?.0 }),
        (VideoRoute::WebhookRedeliver, _) => {
            let (id, event_id) = path_ids(&req, row)?;
            (app_in_query()?, EndpointOp::Redeliver { id, event_id: event_id.unwrap_or_default() })
        }
        (other, _) => return Err(Failure::internal(format!("{other:?} is not a webhook endpoint route"))),
    };
    grant.check_app(&app_id)?;
    let cmd = HubCommand::Endpoints { app_id: app_id.clone(), endpoint: op };
    let answer = client::call(cx.env, APP_EVENTS_BINDING, app_id.as_str(), &cmd)
        .await
        .map_err(|e| Failure::Unavailable { detail: format!("app hub {app_id}: {e}") })?;
    if !(200..300).contains(&answer.status) {
        return Err(client::read::<Value>(APP_EVENTS_BINDING, answer).unwrap_err());
    }
    let status = answer.status;
    let body: Value = client::read(APP_EVENTS_BINDING, client::Answer { status: 200, body: answer.body })?;
    json(status, &body)
}

//! One app's event hub: a SQLite-backed Durable Object (`AppHub`, named by
//! `app_id`) behind `GET /events?app_id=` (API key). Each video's object
//! ([`crate::video_job`]) publishes its job events here, and its webhook
//! deliveries' outcomes; the hub numbers them in its own sequence, keeps the
//! last [`hub::APP_EVENT_LOG_LEN`] for clients that reconnect with
//! `Last-Event-ID`, keeps the app's [`hub::RECENT_JOBS`] most recently changed
//! jobs for dashboards (`connected.recent`), and writes everything to its
//! open streams ([`crate::sse`]). App streams never end on their own.
//!
//! Announced catalogue events (`HubCommand::Announce`, from the video
//! objects' outboxes and the Worker) are numbered into the same log under
//! their type, once per event id, and delivered to the app's webhook
//! endpoints ([`webhooks`]: the ones its API manages, and its `IV_WEBHOOKS`
//! entry as the endpoint `default`) from this object's alarm, on the retry
//! schedule (`WEBHOOK_RETRY_SCHEDULE_MS`); each attempt is reported on the
//! stream (`event: webhook`) and kept in the endpoint's delivery log.
//!
//! The logic is [`hub`]'s and [`webhooks`]', tested natively; this object is
//! their shell: it reads the command, runs it against its SQLite tables,
//! writes the frames to its streams and sends the due webhook attempts.
//!
//! Publishing `job:*` events is best effort: a video's object sends once,
//! after its own write, and does not retry. A dashboard that must not miss
//! anything reads `/job-status` of the videos it cares about after a
//! reconnect. Announced events are not: their senders retry until the hub
//! has them.

use std::time::Duration;

use media_core::catalogue::EventType;
use media_core::ids::AppId;
use media_core::video::endpoint::Endpoint;
use media_core::video::webhook::SigningKey;
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Request, Response, State};
use worker_kit::clock::{now, random_bytes};
use worker_kit::config::Vars;

use crate::client::{our_fault, read_command, refusal};
use crate::protocol::app_hub::{Announcement, HubCommand};
use crate::settings::{sse_heartbeat, WebhookSettings};
use crate::sse::{EventLog, Subscribers, EVENT_LOG_SCHEMA};
use crate::webhooks::{self as send, Attempt};

pub mod hub;
pub mod signing_keys;
#[cfg(test)]
mod tests;
pub mod webhooks;

use hub::{AnnouncedEvents, Hub, SqlRecentJobs, SCHEMA};
use webhooks::{EndpointTables, Sent, SqlEndpoints, Webhooks, ATTEMPTS_PER_ALARM};

/// The `hub_meta` key of the hub's app (its name), kept for the alarm.
const APP_KEY: &str = "app_id";

/// How long an alarm that found a setting it cannot use waits before it
/// reads the settings again.
const BROKEN_SETTING_RETRY_MS: u64 = 60_000;

#[durable_object]
pub struct AppHub {
    state: State,
    env: Env,
    hub: Hub<SqlRecentJobs>,
    webhooks: Webhooks<SqlEndpoints>,
    /// The app's playback signing keys.
    keys: signing_keys::SqlKeys,
    subscribers: Subscribers,
    /// The event types this instance has refused once ([`FAULT_REFUSE_VAR`]).
    refused: std::cell::RefCell<Vec<EventType>>,
}

/// Tests only: `FAULT_HUB_REFUSES_FIRST`, comma-separated catalogue types;
/// the hub answers 503 to the first announcement carrying each (once per
/// object instance), as a deploy or an evicted object would, so that the
/// senders' retries are seen to work. Unset in production.
const FAULT_REFUSE_VAR: &str = "FAULT_HUB_REFUSES_FIRST";

impl AppHub {
    /// Whether [`FAULT_REFUSE_VAR`] makes this announcement fail.
    fn refuse_for_a_test(&self, events: &[Announcement]) -> bool {
        let Some(types) = Vars(&self.env).get(FAULT_REFUSE_VAR) else { return false };
        let mut refused = self.refused.borrow_mut();
        for t in types.split(',').filter_map(|t| EventType::parse(t.trim())) {
            if !refused.contains(&t) && events.iter().any(|a| a.body.event_type == t) {
                refused.push(t);
                return true;
            }
        }
        false
    }

    /// The app's `IV_WEBHOOKS` entry as its default endpoint, if it has one.
    fn default_endpoint(&self, settings: &WebhookSettings, app: Option<&AppId>) -> Option<Endpoint> {
        app.and_then(|app| settings.config.for_app(app)).and_then(Endpoint::operator_default)
    }

    /// Keeps the hub's app id (the first command names it).
    fn remember_app(&self, app: &AppId) -> worker::Result<()> {
        if self.webhooks.tables.meta(APP_KEY)?.as_deref() != Some(app.as_str()) {
            self.webhooks.tables.set_meta(APP_KEY, app.as_str())?;
        }
        Ok(())
    }

    fn app(&self) -> worker::Result<Option<AppId>> {
        Ok(self.webhooks.tables.meta(APP_KEY)?.and_then(|a| AppId::parse(&a).ok()))
    }

    /// Sets the alarm for the next due delivery, if any.
    async fn schedule(&self) -> worker::Result<()> {
        if let Some(due) = self.webhooks.tables.next_due()? {
            let wait = due.millis_since(now()).max(10);
            self.state.storage().set_alarm(Duration::from_millis(wait)).await?;
        }
        Ok(())
    }

    /// Sends the due attempts one after another, records each and shows
    /// it on the app's stream.
    async fn deliver_due(&self, settings: &WebhookSettings) -> worker::Result<()> {
        let default = self.default_endpoint(settings, self.app()?.as_ref());
        for d in self.webhooks.tables.due(now(), ATTEMPTS_PER_ALARM)? {
            let endpoint = self.webhooks.find(&d.endpoint_id, default.as_ref())?;
            let announced = self.hub.recent.announced(&d.event_id)?;
            let (Some(endpoint), Some(announced)) = (endpoint.filter(|e| e.enabled), announced) else {
                tracing::warn!(endpoint_id = %d.endpoint_id, event_id = %d.event_id, "webhook delivery dropped: its endpoint is gone or disabled, or its event is no longer kept");
                self.webhooks.drop_delivery(&d, now())?;
                continue;
            };
            let keys: Vec<SigningKey> =
                endpoint.signing_secrets(now()).into_iter().map(SigningKey::of_secret).collect();
            let attempt = Attempt {
                event_id: &d.event_id,
                url: &endpoint.url,
                keys: &keys,
                body: &announced.body.to_json(),
                timeout_ms: settings.policy.timeout_ms,
                allow_local_http: settings.allow_local_http,
            };
            let sent = send::send(&attempt).await;
            let sent = Sent { status: sent.status, latency_ms: sent.latency_ms, outcome: sent.outcome };
            let t = announced.body.event_type;
            let report = self.webhooks.record(&endpoint, &d, t, &sent, &settings.schedule, now())?;
            match &sent.outcome {
                Ok(()) => {
                    tracing::info!(endpoint_id = %d.endpoint_id, event_id = %d.event_id, attempts = report.attempts, "webhook delivered")
                }
                Err(why) => {
                    tracing::warn!(endpoint_id = %d.endpoint_id, event_id = %d.event_id, attempts = report.attempts, state = report.state, error = %why, "webhook attempt failed")
                }
            }
            let mut data = serde_json::to_value(&report).map_err(|e| worker::Error::RustError(e.to_string()))?;
            if let (Value::Object(fields), Some(video)) = (&mut data, &announced.video_id) {
                fields.insert("videoId".into(), Value::String(video.to_string()));
            }
            for frame in self.hub.log.append([("webhook", data.to_string())])? {
                self.subscribers.broadcast(&frame);
            }
        }
        Ok(())
    }
}

impl DurableObject for AppHub {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(&format!("{EVENT_LOG_SCHEMA}{SCHEMA}"), None) {
            tracing::error!(error = %e, "creating the app hub tables failed");
        }
        if let Err(e) = sql.exec(webhooks::SCHEMA, None) {
            tracing::error!(error = %e, "creating the app hub's webhook tables failed");
        }
        if let Err(e) = sql.exec(signing_keys::SCHEMA, None) {
            tracing::error!(error = %e, "creating the app hub's signing key table failed");
        }
        let keep = crate::settings::object_log_lens(&Vars(&env)).app;
        let hub = Hub { log: EventLog::new(sql.clone(), keep), recent: SqlRecentJobs(sql.clone()) };
        let webhooks = Webhooks { tables: SqlEndpoints(sql.clone()) };
        let keys = signing_keys::SqlKeys(sql);
        Self { state, env, hub, webhooks, keys, subscribers: Subscribers::default(), refused: Default::default() }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let cmd: HubCommand = match read_command(&mut req, "hub command").await {
            Ok(c) => c,
            Err(e) => return refusal(&e),
        };
        match cmd {
            HubCommand::Publish { job, events } => {
                for frame in self.hub.publish(&job, &events, now())? {
                    self.subscribers.broadcast(&frame);
                }
                Response::from_json(&true)
            }
            HubCommand::Announce { app_id, events } => {
                if self.refuse_for_a_test(&events) {
                    return Response::error("refused once for a test", 503);
                }
                // Before anything is kept: refused, the sender retries, and
                // no event is taken without its deliveries.
                let settings = match WebhookSettings::load(&Vars(&self.env)) {
                    Ok(s) => s,
                    Err(e) => return Ok(our_fault(e, "announced events refused")),
                };
                self.remember_app(&app_id)?;
                let (frames, fresh) = self.hub.announce(&events, now())?;
                for frame in &frames {
                    self.subscribers.broadcast(frame);
                }
                let default = self.default_endpoint(&settings, Some(&app_id));
                if self.webhooks.plan(&fresh, default.as_ref(), now())? {
                    self.webhooks.tables.prune(&|_| Ok(true))?;
                    self.schedule().await?;
                }
                Response::from_json(&true)
            }
            HubCommand::Endpoints { app_id, endpoint: op } => {
                let settings = match WebhookSettings::load(&Vars(&self.env)) {
                    Ok(s) => s,
                    Err(e) => return Ok(our_fault(e, "webhook endpoint command refused")),
                };
                self.remember_app(&app_id)?;
                let default = self.default_endpoint(&settings, Some(&app_id));
                let kept = |id: &str| Ok(self.hub.recent.announced(id)?.map(|a| a.body.event_type));
                let (answer, queued) =
                    self.webhooks.run(op, default.as_ref(), now(), &|| random_bytes::<32>(), &kept)?;
                if queued {
                    self.schedule().await?;
                }
                match answer {
                    Ok((status, body)) => Ok(Response::from_json(&body)?.with_status(status)),
                    Err(e) => refusal(&e),
                }
            }
            HubCommand::SigningKeys { app_id, key } => {
                self.remember_app(&app_id)?;
                match signing_keys::run(&self.keys, key, now())? {
                    Ok((status, body)) => Ok(Response::from_json(&body)?.with_status(status)),
                    Err(e) => refusal(&e),
                }
            }
            HubCommand::Subscribe { last_event_id } => {
                // Refused like every other setting the video service cannot
                // use (the Worker checks it first, at its entry).
                let heartbeat_ms = match sse_heartbeat(&Vars(&self.env)) {
                    Ok(ms) => ms,
                    Err(e) => return Ok(our_fault(e, "app hub stream refused")),
                };
                let client_id = format!("c_{}", hex::encode(random_bytes::<8>()));
                let (first, last_id) = self.hub.opening(&client_id, last_event_id)?;
                self.subscribers.open(first, last_id, true, heartbeat_ms)
            }
            HubCommand::Forget { video_id } => {
                self.hub.forget(&video_id)?;
                Response::from_json(&true)
            }
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        // A broken setting defers the alarm (logged), as a video's object does.
        let settings = match WebhookSettings::load(&Vars(&self.env)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(detail = %e, "app hub alarm deferred: a setting cannot be used");
                self.state.storage().set_alarm(Duration::from_millis(BROKEN_SETTING_RETRY_MS)).await?;
                return Response::ok("");
            }
        };
        self.deliver_due(&settings).await?;
        self.schedule().await?;
        Response::ok("")
    }
}

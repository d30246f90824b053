//! One app's event hub: a SQLite-backed Durable Object (`AppHub`, named by
//! `app_id`) behind `GET /events?app_id=` (API key). Each video's object
//! ([`crate::video_job`]) publishes its job events here, and its webhook
//! deliveries' outcomes; the hub numbers them in its own sequence, keeps the
//! last [`hub::APP_EVENT_LOG_LEN`] for clients that reconnect with
//! `Last-Event-ID`, keeps the app's [`hub::RECENT_JOBS`] most recently changed
//! jobs for dashboards (`connected.recent`), and writes everything to its
//! open streams ([`crate::sse`]). App streams never end on their own.
//!
//! The logic is [`hub`]'s, tested natively; this object is its shell: it
//! reads the command, runs it against its SQLite tables and writes the
//! frames to its streams.
//!
//! Publishing is best effort: a video's object sends once, after its own
//! write, and does not retry. A dashboard that must not miss anything reads
//! `/job-status` of the videos it cares about after a reconnect.

use worker::{durable_object, DurableObject, Env, Request, Response, State};
use worker_kit::clock::{now, random_bytes};
use worker_kit::config::Vars;

use crate::client::{our_fault, read_command, refusal};
use crate::protocol::app_hub::HubCommand;
use crate::settings::sse_heartbeat;
use crate::sse::{EventLog, Subscribers, EVENT_LOG_SCHEMA};

pub mod hub;
#[cfg(test)]
mod tests;

use hub::{Hub, SqlRecentJobs, SCHEMA};

#[durable_object]
pub struct AppHub {
    env: Env,
    hub: Hub<SqlRecentJobs>,
    subscribers: Subscribers,
}

impl DurableObject for AppHub {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(&format!("{EVENT_LOG_SCHEMA}{SCHEMA}"), None) {
            tracing::error!(error = %e, "creating the app hub tables failed");
        }
        let keep = crate::settings::object_log_lens(&Vars(&env)).app;
        let hub = Hub { log: EventLog::new(sql.clone(), keep), recent: SqlRecentJobs(sql) };
        Self { env, hub, subscribers: Subscribers::default() }
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
            HubCommand::Announce { events } => {
                let (frames, _fresh) = self.hub.announce(&events, now())?;
                for frame in &frames {
                    self.subscribers.broadcast(frame);
                }
                Response::from_json(&true)
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
}

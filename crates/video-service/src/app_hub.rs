//! One app's event hub: a SQLite-backed Durable Object (`AppHub`, named by
//! `app_id`) behind `GET /events?app_id=` (API key). Each video's object
//! ([`crate::video_job`]) publishes its job events here, and its webhook
//! deliveries' outcomes; the hub numbers them in its own sequence, keeps the
//! last [`APP_EVENT_LOG_LEN`] for clients that reconnect with
//! `Last-Event-ID`, keeps the app's [`RECENT_JOBS`] most recently changed
//! jobs for dashboards (`connected.recent`), and writes everything to its
//! open streams ([`crate::sse`]). App streams never end on their own.
//!
//! Publishing is best effort: a video's object sends once, after its own
//! write, and does not retry. A dashboard that must not miss anything reads
//! `/job-status` of the videos it cares about after a reconnect.

use media_core::ids::VideoId;
use media_core::video::events::connected;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State};
use worker_kit::clock::{now, random_bytes};

use crate::protocol::app_hub::{HubCommand, JobSummary};
use crate::settings::sse_heartbeat_ms;
use crate::sse::{EventLog, Subscribers, EVENT_LOG_SCHEMA};

/// How many events an app keeps for replay.
pub const APP_EVENT_LOG_LEN: u64 = 500;
/// How many of an app's jobs `connected.recent` lists.
pub const RECENT_JOBS: i64 = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recent (
    video_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
";

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[durable_object]
pub struct AppHub {
    state: State,
    env: Env,
    subscribers: Subscribers,
}

impl AppHub {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn log(&self) -> EventLog {
        EventLog::new(self.sql(), APP_EVENT_LOG_LEN)
    }

    fn publish(&self, job: &JobSummary, events: &[(String, Value)]) -> worker::Result<()> {
        let with_video = events.iter().map(|(name, data)| {
            let mut data = data.clone();
            if let Value::Object(fields) = &mut data {
                fields.entry("videoId").or_insert_with(|| json!(job.video_id));
            }
            (name.as_str(), data.to_string())
        });
        for frame in self.log().append(with_video)? {
            self.subscribers.broadcast(&frame);
        }
        let body = serde_json::to_string(job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql().exec(
            "INSERT INTO recent (video_id, body, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (video_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            vec![job.video_id.as_str().into(), body.into(), SqlStorageValue::Integer(now().millis() as i64)],
        )?;
        self.sql().exec(
            "DELETE FROM recent WHERE video_id NOT IN (SELECT video_id FROM recent ORDER BY updated_at DESC LIMIT ?)",
            vec![SqlStorageValue::Integer(RECENT_JOBS)],
        )?;
        Ok(())
    }

    fn forget(&self, video: &VideoId) -> worker::Result<()> {
        self.sql().exec("DELETE FROM recent WHERE video_id = ?", vec![video.as_str().into()])?;
        let redacted = json!({ "videoId": video, "deleted": true }).to_string();
        self.sql().exec(
            "UPDATE events SET data = ? WHERE json_extract(data, '$.videoId') = ?",
            vec![redacted.into(), video.as_str().into()],
        )?;
        Ok(())
    }

    fn subscribe(&self, last_event_id: Option<u64>) -> worker::Result<Response> {
        let recent: Vec<BodyRow> =
            self.sql().exec("SELECT body FROM recent ORDER BY updated_at DESC", None)?.to_array()?;
        let recent: Vec<Value> = recent.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
        let log = self.log();
        let last = log.last_id()?;
        let from = last_event_id.unwrap_or(last);
        let client_id = format!("c_{}", hex::encode(random_bytes::<8>()));
        let (name, mut data) = connected(&client_id, None);
        if let Value::Object(fields) = &mut data {
            fields.remove("job");
            fields.insert("recent".into(), Value::Array(recent));
        }
        let first = log.opening((name, data), from)?;
        self.subscribers.open(first, last.max(from), true, sse_heartbeat_ms(&self.env))
    }
}

impl DurableObject for AppHub {
    fn new(state: State, env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(&format!("{EVENT_LOG_SCHEMA}{SCHEMA}"), None) {
            tracing::error!(error = %e, "creating the app hub tables failed");
        }
        Self { state, env, subscribers: Subscribers::default() }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let cmd: HubCommand = match crate::client::read_command(&mut req, "hub command").await {
            Ok(c) => c,
            Err(e) => return Ok(Response::ok(e.to_json())?.with_status(e.status())),
        };
        match cmd {
            HubCommand::Publish { job, events } => {
                self.publish(&job, &events)?;
                Response::from_json(&true)
            }
            HubCommand::Subscribe { last_event_id } => self.subscribe(last_event_id),
            HubCommand::Forget { video_id } => {
                self.forget(&video_id)?;
                Response::from_json(&true)
            }
        }
    }
}

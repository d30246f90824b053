//! An app hub's webhook endpoints and deliveries, apart from its Durable
//! Object: the endpoints its API manages ([`Webhooks::run`]: create, list,
//! get, update, delete, rotate, delivery log, redeliver), which announced
//! events each endpoint gets ([`Webhooks::plan`]: one delivery row per
//! endpoint and event, so each gets each event once), and what an attempt's
//! outcome does ([`Webhooks::record`]: the next try on the retry schedule,
//! or delivered, or failed; a 410 disables the endpoint; each attempt goes
//! into the endpoint's log, the newest [`DELIVERY_LOG_LEN`] kept).
//!
//! The operator's `IV_WEBHOOKS` entry for the app is its endpoint
//! [`DEFAULT_ENDPOINT_ID`], read from the settings, never stored. Functions
//! of the tables ([`EndpointTables`]: SQL in the object, memory in tests),
//! the time and the settings; sending is the shell's.

use media_core::catalogue::EventType;
use media_core::video::delivery::RetrySchedule;
use media_core::video::endpoint::{endpoint_id, Endpoint, DEFAULT_ENDPOINT_ID, DELIVERY_LOG_LEN, MAX_ENDPOINTS};
use media_core::video::webhook::new_secret;
use media_core::wire::endpoints::{
    DeliveryAttempt, DeliveryLog, EndpointCreated, EndpointDeleted, EndpointList, EndpointView, Redelivery,
    RotatedSecret,
};
use media_core::{ApiError, ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use crate::protocol::app_hub::{Announcement, EndpointOp};

/// The tables of endpoints, their deliveries and their logs.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS endpoints (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE TABLE IF NOT EXISTS attempts (endpoint_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hub_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// How many due attempts one alarm sends, one after another.
pub const ATTEMPTS_PER_ALARM: usize = 16;

/// A delivery whose next attempt is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub endpoint_id: String,
    pub event_id: String,
    /// Attempts made so far in this (re)delivery.
    pub attempts: u32,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Delivered,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

/// The hub's endpoint tables.
pub trait EndpointTables {
    fn endpoints(&self) -> worker::Result<Vec<Endpoint>>;
    fn endpoint(&self, id: &str) -> worker::Result<Option<Endpoint>>;
    fn put_endpoint(&self, e: &Endpoint) -> worker::Result<()>;
    /// Removes the endpoint, its deliveries and its log.
    fn remove_endpoint(&self, id: &str) -> worker::Result<()>;
    /// A delivery of `event_id` to `endpoint_id`, due `now`, unless one exists.
    fn queue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()>;
    /// The delivery due `now` again from its first attempt, whatever it was.
    fn requeue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()>;
    fn set_delivery(&self, d: &Due, state: State, attempts: u32, next_at: Timestamp) -> worker::Result<()>;
    /// The pending deliveries due by `now`, soonest first.
    fn due(&self, now: Timestamp, limit: usize) -> worker::Result<Vec<Due>>;
    fn next_due(&self) -> worker::Result<Option<Timestamp>>;
    /// Ended deliveries of events no longer kept go.
    fn prune(&self, kept_event: &dyn Fn(&str) -> worker::Result<bool>) -> worker::Result<()>;
    /// Appends to the endpoint's log and keeps its newest `keep`.
    fn log(&self, endpoint_id: &str, a: &DeliveryAttempt, keep: usize) -> worker::Result<()>;
    /// The endpoint's log, newest first.
    fn logged(&self, endpoint_id: &str) -> worker::Result<Vec<DeliveryAttempt>>;
    fn meta(&self, key: &str) -> worker::Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()>;
}

/// What an attempt got, as the shell's send reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub outcome: Result<(), String>,
}

/// An attempt's outcome as the app's stream shows it (`event: webhook`):
/// the hub's endpoint deliveries and a video's `callback_url` deliveries
/// (`video_job::deliveries`) report in this one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub destination: String,
    pub state: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// One app's webhook endpoints and deliveries.
pub struct Webhooks<T> {
    pub tables: T,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id:?} for this app"))
}

fn operator_only() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "the endpoint \"default\" is the operator's IV_WEBHOOKS entry: change it there, not through the API",
    )
}

fn to_json<T: Serialize>(value: &T) -> worker::Result<Value> {
    serde_json::to_value(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// A command's answer: its status and JSON, or the refusal.
pub type Answer = Result<(u16, Value), ApiError>;

impl<T: EndpointTables> Webhooks<T> {
    /// The endpoint `id`: the app's default (`default`, when `IV_WEBHOOKS`
    /// has one) or a stored one.
    pub fn find(&self, id: &str, default: Option<&Endpoint>) -> worker::Result<Option<Endpoint>> {
        if id == DEFAULT_ENDPOINT_ID {
            return Ok(default.cloned());
        }
        self.tables.endpoint(id)
    }

    /// Queues a delivery of each new announcement to each endpoint that
    /// wants its type; whether any was queued.
    pub fn plan(&self, fresh: &[&Announcement], default: Option<&Endpoint>, now: Timestamp) -> worker::Result<bool> {
        if fresh.is_empty() {
            return Ok(false);
        }
        let endpoints: Vec<Endpoint> = default.cloned().into_iter().chain(self.tables.endpoints()?).collect();
        let mut queued = false;
        for a in fresh {
            for e in endpoints.iter().filter(|e| e.wants(a.body.event_type)) {
                self.tables.queue(&e.id, &a.body.id, now)?;
                queued = true;
            }
        }
        Ok(queued)
    }

    /// Records an attempt of `d` (of an event of type `t`) to `endpoint`
    /// made at `now`: the delivery's next state, its log entry, a 410's
    /// disabling; the report for the app's stream.
    pub fn record(
        &self,
        endpoint: &Endpoint,
        d: &Due,
        t: EventType,
        sent: &Sent,
        schedule: &RetrySchedule,
        now: Timestamp,
    ) -> worker::Result<Report> {
        let attempts = d.attempts + 1;
        let gone = sent.status == Some(410);
        let (state, next_at) = match &sent.outcome {
            Ok(()) => (State::Delivered, now),
            Err(_) if gone => (State::Failed, now),
            Err(_) => match schedule.next_attempt_at(attempts, now, &format!("{}|{}", d.endpoint_id, d.event_id)) {
                Some(next) => (State::Pending, next),
                None => (State::Failed, now),
            },
        };
        self.tables.set_delivery(d, state, attempts, next_at)?;
        let error = sent.outcome.clone().err();
        let entry = DeliveryAttempt {
            event_id: d.event_id.clone(),
            event_type: t,
            attempt: attempts,
            delivered: sent.outcome.is_ok(),
            status_code: sent.status,
            latency_ms: sent.latency_ms,
            error: error.clone(),
            at: now,
        };
        self.tables.log(&d.endpoint_id, &entry, DELIVERY_LOG_LEN)?;
        if gone && !endpoint.is_default() {
            let mut disabled = endpoint.clone();
            disabled.gone(now);
            self.tables.put_endpoint(&disabled)?;
        }
        Ok(Report {
            event_id: d.event_id.clone(),
            kind: t.as_str().to_owned(),
            // The default endpoint is the app's url the objects called `app`.
            destination: if endpoint.is_default() { "app".into() } else { endpoint.id.clone() },
            state: state.as_str(),
            attempts,
            last_error: error,
        })
    }

    /// A delivery that cannot be attempted (its endpoint or event is gone,
    /// or the endpoint is disabled) ends failed, without a log entry.
    pub fn drop_delivery(&self, d: &Due, now: Timestamp) -> worker::Result<()> {
        self.tables.set_delivery(d, State::Failed, d.attempts, now)
    }

    /// Runs an endpoint command at `now` (`random`: fresh bytes for ids and
    /// secrets; `kept_event`: whether an event id is still kept, for a
    /// redelivery); the answer and whether a delivery was queued.
    pub fn run(
        &self,
        op: EndpointOp,
        default: Option<&Endpoint>,
        now: Timestamp,
        random: &dyn Fn() -> [u8; 32],
        kept_event: &dyn Fn(&str) -> worker::Result<Option<EventType>>,
    ) -> worker::Result<(Answer, bool)> {
        let view = |e: &Endpoint| EndpointView::of(e, now);
        let answer = match op {
            EndpointOp::Create { url, description, events } => {
                if self.tables.endpoints()?.len() >= MAX_ENDPOINTS {
                    Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!("an app has at most {MAX_ENDPOINTS} endpoints; delete one first"),
                    ))
                } else {
                    let id = endpoint_id(random()[..16].try_into().expect("16 of 32 bytes"));
                    let e = Endpoint::new(id, url, description, events, new_secret(random()), now);
                    self.tables.put_endpoint(&e)?;
                    Ok((201, to_json(&EndpointCreated { endpoint: view(&e), secret: e.secret.clone() })?))
                }
            }
            EndpointOp::List => {
                let endpoints =
                    default.into_iter().cloned().chain(self.tables.endpoints()?).map(|e| view(&e)).collect();
                Ok((200, to_json(&EndpointList { endpoints })?))
            }
            EndpointOp::Get { id } => match self.find(&id, default)? {
                Some(e) => Ok((200, to_json(&view(&e))?)),
                None => Err(not_found(&id)),
            },
            EndpointOp::Update { id, changes } => match self.stored(&id)? {
                Ok(mut e) => {
                    changes.apply(&mut e, now);
                    self.tables.put_endpoint(&e)?;
                    Ok((200, to_json(&view(&e))?))
                }
                Err(refused) => Err(refused),
            },
            EndpointOp::Delete { id } => match self.stored(&id)? {
                Ok(_) => {
                    self.tables.remove_endpoint(&id)?;
                    Ok((200, to_json(&EndpointDeleted { id, deleted: true })?))
                }
                Err(refused) => Err(refused),
            },
            EndpointOp::Rotate { id, grace_s } => match self.stored(&id)? {
                Ok(mut e) => {
                    let secret = new_secret(random());
                    let old_secret_expires_at = e.rotate(secret.clone(), grace_s, now);
                    self.tables.put_endpoint(&e)?;
                    Ok((200, to_json(&RotatedSecret { secret, old_secret_expires_at })?))
                }
                Err(refused) => Err(refused),
            },
            EndpointOp::Deliveries { id } => match self.find(&id, default)? {
                Some(_) => {
                    Ok((200, to_json(&DeliveryLog { endpoint_id: id.clone(), attempts: self.tables.logged(&id)? })?))
                }
                None => Err(not_found(&id)),
            },
            EndpointOp::Redeliver { id, event_id } => match (self.find(&id, default)?, kept_event(&event_id)?) {
                (None, _) => Err(not_found(&id)),
                (Some(_), None) => Err(ApiError::not_found(format!(
                    "no event {event_id:?} is kept for this app (the newest {} are)",
                    super::hub::KEPT_EVENTS
                ))),
                (Some(e), Some(_)) if !e.enabled => Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("the endpoint {id} is disabled; enable it (\"enabled\": true) before redelivering"),
                )),
                (Some(_), Some(_)) => {
                    self.tables.requeue(&id, &event_id, now)?;
                    let queued = Redelivery { endpoint_id: id, event_id, status: "queued".into() };
                    return Ok((Ok((202, to_json(&queued)?)), true));
                }
            },
        };
        Ok((answer, false))
    }

    /// A stored endpoint the API may change (not the operator's default).
    fn stored(&self, id: &str) -> worker::Result<Result<Endpoint, ApiError>> {
        if id == DEFAULT_ENDPOINT_ID {
            return Ok(Err(operator_only()));
        }
        Ok(self.tables.endpoint(id)?.ok_or_else(|| not_found(id)))
    }
}

/// The endpoint tables in the object's SQLite storage.
pub struct SqlEndpoints(pub SqlStorage);

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn parse<D: serde::de::DeserializeOwned>(what: &str, text: &str) -> worker::Result<D> {
    serde_json::from_str(text).map_err(|e| worker::Error::RustError(format!("stored {what}: {e}")))
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

impl EndpointTables for SqlEndpoints {
    fn endpoints(&self) -> worker::Result<Vec<Endpoint>> {
        let rows: Vec<BodyRow> = self.0.exec("SELECT body FROM endpoints ORDER BY rowid", None)?.to_array()?;
        rows.iter().map(|r| parse("endpoint", &r.body)).collect()
    }

    fn endpoint(&self, id: &str) -> worker::Result<Option<Endpoint>> {
        let rows: Vec<BodyRow> = self.0.exec("SELECT body FROM endpoints WHERE id = ?", vec![id.into()])?.to_array()?;
        rows.first().map(|r| parse("endpoint", &r.body)).transpose()
    }

    fn put_endpoint(&self, e: &Endpoint) -> worker::Result<()> {
        let body = serde_json::to_string(e).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.0.exec(
            "INSERT INTO endpoints (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            vec![e.id.as_str().into(), body.into()],
        )?;
        Ok(())
    }

    fn remove_endpoint(&self, id: &str) -> worker::Result<()> {
        for table in ["endpoints WHERE id", "deliveries WHERE endpoint_id", "attempts WHERE endpoint_id"] {
            self.0.exec(&format!("DELETE FROM {table} = ?"), vec![id.into()])?;
        }
        Ok(())
    }

    fn queue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "INSERT OR IGNORE INTO deliveries (endpoint_id, event_id, state, attempts, next_at) VALUES (?, ?, 'pending', 0, ?)",
            vec![endpoint_id.into(), event_id.into(), int(now)],
        )?;
        Ok(())
    }

    fn requeue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "INSERT INTO deliveries (endpoint_id, event_id, state, attempts, next_at) VALUES (?, ?, 'pending', 0, ?)
             ON CONFLICT (endpoint_id, event_id) DO UPDATE SET state = 'pending', attempts = 0, next_at = excluded.next_at",
            vec![endpoint_id.into(), event_id.into(), int(now)],
        )?;
        Ok(())
    }

    fn set_delivery(&self, d: &Due, state: State, attempts: u32, next_at: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "UPDATE deliveries SET state = ?, attempts = ?, next_at = ? WHERE endpoint_id = ? AND event_id = ?",
            vec![
                state.as_str().into(),
                SqlStorageValue::Integer(i64::from(attempts)),
                int(next_at),
                d.endpoint_id.as_str().into(),
                d.event_id.as_str().into(),
            ],
        )?;
        Ok(())
    }

    fn due(&self, now: Timestamp, limit: usize) -> worker::Result<Vec<Due>> {
        #[derive(Deserialize)]
        struct Row {
            endpoint_id: String,
            event_id: String,
            attempts: f64,
        }
        let rows: Vec<Row> = self
            .0
            .exec(
                "SELECT endpoint_id, event_id, attempts FROM deliveries WHERE state = 'pending' AND next_at <= ?
                 ORDER BY next_at, rowid LIMIT ?",
                vec![int(now), SqlStorageValue::Integer(limit as i64)],
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| Due { endpoint_id: r.endpoint_id, event_id: r.event_id, attempts: r.attempts as u32 })
            .collect())
    }

    fn next_due(&self) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct Min {
            t: Option<f64>,
        }
        let rows: Vec<Min> =
            self.0.exec("SELECT MIN(next_at) AS t FROM deliveries WHERE state = 'pending'", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    fn prune(&self, _kept_event: &dyn Fn(&str) -> worker::Result<bool>) -> worker::Result<()> {
        // The same rule as the memory tables', in one statement.
        self.0.exec(
            "DELETE FROM deliveries WHERE state != 'pending' AND event_id NOT IN (SELECT id FROM announced)",
            None,
        )?;
        Ok(())
    }

    fn log(&self, endpoint_id: &str, a: &DeliveryAttempt, keep: usize) -> worker::Result<()> {
        let body = serde_json::to_string(a).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.0.exec("INSERT INTO attempts (endpoint_id, body) VALUES (?, ?)", vec![endpoint_id.into(), body.into()])?;
        self.0.exec(
            "DELETE FROM attempts WHERE endpoint_id = ? AND rowid NOT IN
               (SELECT rowid FROM attempts WHERE endpoint_id = ? ORDER BY rowid DESC LIMIT ?)",
            vec![endpoint_id.into(), endpoint_id.into(), SqlStorageValue::Integer(keep as i64)],
        )?;
        Ok(())
    }

    fn logged(&self, endpoint_id: &str) -> worker::Result<Vec<DeliveryAttempt>> {
        let rows: Vec<BodyRow> = self
            .0
            .exec("SELECT body FROM attempts WHERE endpoint_id = ? ORDER BY rowid DESC", vec![endpoint_id.into()])?
            .to_array()?;
        rows.iter().map(|r| parse("delivery attempt", &r.body)).collect()
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        #[derive(Deserialize)]
        struct ValueRow {
            value: String,
        }
        let rows: Vec<ValueRow> =
            self.0.exec("SELECT value FROM hub_meta WHERE key = ?", vec![key.into()])?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.0.exec(
            "INSERT INTO hub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }
}

/// A delivery row in memory: (endpoint, event, state, attempts, next_at).
#[cfg(test)]
pub type MemoryDelivery = (String, String, State, u32, Timestamp);

/// The endpoint tables in memory, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryEndpoints {
    endpoints: std::cell::RefCell<Vec<Endpoint>>,
    pub deliveries: std::cell::RefCell<Vec<MemoryDelivery>>,
    attempts: std::cell::RefCell<Vec<(String, DeliveryAttempt)>>,
    meta: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
impl EndpointTables for MemoryEndpoints {
    fn endpoints(&self) -> worker::Result<Vec<Endpoint>> {
        Ok(self.endpoints.borrow().clone())
    }

    fn endpoint(&self, id: &str) -> worker::Result<Option<Endpoint>> {
        Ok(self.endpoints.borrow().iter().find(|e| e.id == id).cloned())
    }

    fn put_endpoint(&self, e: &Endpoint) -> worker::Result<()> {
        let mut all = self.endpoints.borrow_mut();
        match all.iter_mut().find(|x| x.id == e.id) {
            Some(x) => *x = e.clone(),
            None => all.push(e.clone()),
        }
        Ok(())
    }

    fn remove_endpoint(&self, id: &str) -> worker::Result<()> {
        self.endpoints.borrow_mut().retain(|e| e.id != id);
        self.deliveries.borrow_mut().retain(|d| d.0 != id);
        self.attempts.borrow_mut().retain(|a| a.0 != id);
        Ok(())
    }

    fn queue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()> {
        let mut all = self.deliveries.borrow_mut();
        if !all.iter().any(|d| d.0 == endpoint_id && d.1 == event_id) {
            all.push((endpoint_id.into(), event_id.into(), State::Pending, 0, now));
        }
        Ok(())
    }

    fn requeue(&self, endpoint_id: &str, event_id: &str, now: Timestamp) -> worker::Result<()> {
        self.deliveries.borrow_mut().retain(|d| !(d.0 == endpoint_id && d.1 == event_id));
        self.queue(endpoint_id, event_id, now)
    }

    fn set_delivery(&self, d: &Due, state: State, attempts: u32, next_at: Timestamp) -> worker::Result<()> {
        for row in self.deliveries.borrow_mut().iter_mut().filter(|r| r.0 == d.endpoint_id && r.1 == d.event_id) {
            (row.2, row.3, row.4) = (state, attempts, next_at);
        }
        Ok(())
    }

    fn due(&self, now: Timestamp, limit: usize) -> worker::Result<Vec<Due>> {
        let mut due: Vec<_> =
            self.deliveries.borrow().iter().filter(|d| d.2 == State::Pending && d.4 <= now).cloned().collect();
        due.sort_by_key(|d| d.4);
        Ok(due.into_iter().take(limit).map(|d| Due { endpoint_id: d.0, event_id: d.1, attempts: d.3 }).collect())
    }

    fn next_due(&self) -> worker::Result<Option<Timestamp>> {
        Ok(self.deliveries.borrow().iter().filter(|d| d.2 == State::Pending).map(|d| d.4).min())
    }

    fn prune(&self, kept_event: &dyn Fn(&str) -> worker::Result<bool>) -> worker::Result<()> {
        let mut keep = Vec::new();
        for d in self.deliveries.borrow().iter() {
            if d.2 == State::Pending || kept_event(&d.1)? {
                keep.push(d.clone());
            }
        }
        *self.deliveries.borrow_mut() = keep;
        Ok(())
    }

    fn log(&self, endpoint_id: &str, a: &DeliveryAttempt, keep: usize) -> worker::Result<()> {
        let mut all = self.attempts.borrow_mut();
        all.push((endpoint_id.into(), a.clone()));
        let mine = all.iter().filter(|x| x.0 == endpoint_id).count();
        let mut drop = mine.saturating_sub(keep);
        all.retain(|x| {
            let go = drop > 0 && x.0 == endpoint_id;
            if go {
                drop -= 1;
            }
            !go
        });
        Ok(())
    }

    fn logged(&self, endpoint_id: &str) -> worker::Result<Vec<DeliveryAttempt>> {
        Ok(self.attempts.borrow().iter().rev().filter(|x| x.0 == endpoint_id).map(|x| x.1.clone()).collect())
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        Ok(self.meta.borrow().get(key).cloned())
    }

    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.meta.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }
}

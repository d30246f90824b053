//! Where a video's object keeps its state: [`JobStore`], the reads and
//! writes its commands ([`super::machine`]) make, all synchronous, over the
//! object's SQLite tables ([`SqlJobStore`]: the job row, `meta`, the
//! tombstone, webhook `deliveries`, the event log and the `outbox` of
//! announced events the app's hub has not taken yet) or, for native tests,
//! memory (`tests::store::MemoryJobStore`).

use std::cell::Cell;

use media_core::catalogue::EventType;
use media_core::ids::{AppId, VideoId};
use media_core::video::dispatch::SizeClass;
use media_core::video::events::ResetState;
use media_core::video::job::Job;
use media_core::Timestamp;
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::protocol::app_hub::Announcement;
use crate::sse::{EventLog, Frame, EVENT_LOG_SCHEMA};

/// The stored job row: the job, its shard and class, and whether the shard
/// still has to hear that it waits (`enqueue_due`).
#[derive(Debug, Clone)]
pub struct Stored {
    pub job: Job,
    pub shard: u32,
    pub class: SizeClass,
    pub enqueue_due: Option<Timestamp>,
}

/// What a deleted video leaves while a transcoder may still write: its ids
/// (`None` when they no longer parse) and when its last sweep is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub ids: Option<(AppId, VideoId)>,
    pub sweep_at: Timestamp,
}

/// One planned webhook delivery (an event to one destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: String,
    /// `app` (the app's url) or `callback` (the notify's `callback_url`).
    pub dest: &'static str,
    pub kind: EventType,
    pub url: String,
    pub body: String,
}

/// A pending delivery whose next attempt is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub event_id: String,
    pub dest: String,
    pub kind: String,
    pub url: String,
    pub body: String,
    pub attempts: u32,
}

/// Where a delivery stands (the `state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Pending,
    Delivered,
    Failed,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Delivered => "delivered",
            RowState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> RowState {
        match s {
            "delivered" => RowState::Delivered,
            "failed" => RowState::Failed,
            _ => RowState::Pending,
        }
    }
}

/// A delivery of the newest webhook event, as `callback_status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub state: RowState,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// How many ended deliveries a video keeps (for `callback_status` and operators).
pub const KEPT_DELIVERIES: usize = 16;

/// The object's storage, as its commands use it.
pub trait JobStore {
    /// Whether the tables exist: an object gets them with its first write,
    /// and reads of one without them create nothing.
    fn has_tables(&self) -> worker::Result<bool>;
    /// Creates the tables before a write, when they are not there yet.
    fn ensure_tables(&self) -> worker::Result<()>;
    /// Told after the shell wiped the storage (`deleteAll()`): nothing is left.
    fn wiped(&self);
    fn load(&self) -> worker::Result<Option<Stored>>;
    fn save(&self, s: &Stored) -> worker::Result<()>;
    /// Sets the enqueue mark alone, never the job (other calls may have
    /// changed it while the shell waited on the shard).
    fn set_enqueue_due(&self, at: Option<Timestamp>) -> worker::Result<()>;
    /// Clears the enqueue mark if it was set no later than `sent_at`.
    fn clear_enqueue_due_until(&self, sent_at: Timestamp) -> worker::Result<()>;
    fn meta(&self, key: &str) -> worker::Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()>;
    fn delete_meta(&self, key: &str) -> worker::Result<()>;
    /// The `meta` rows whose key starts with `prefix`.
    fn meta_prefixed(&self, prefix: &str) -> worker::Result<Vec<(String, String)>>;
    fn tombstone(&self) -> worker::Result<Option<Tombstone>>;
    fn set_tombstone(&self, app: &AppId, video: &VideoId, sweep_at: Timestamp) -> worker::Result<()>;
    /// The id of the newest event kept (0 before any).
    fn last_event_id(&self) -> worker::Result<u64>;
    /// Appends events to the bounded log; each one's frame with its id.
    fn append_events(&self, events: &[(&str, String)]) -> worker::Result<Vec<Frame>>;
    /// A stream's first bytes: `retry`, `connected`, the kept events after `from`.
    /// `resumed`: the present state, when the client gave a `Last-Event-ID`
    /// (a `reset` with it replaces the replay when `from` is out of the log).
    fn opening(
        &self,
        connected: (&str, serde_json::Value),
        from: u64,
        resumed: Option<&ResetState>,
    ) -> worker::Result<String>;
    /// Stores planned deliveries, due `now`; keeps only the newest ended ones.
    fn queue_deliveries(&self, deliveries: &[Delivery], now: Timestamp) -> worker::Result<()>;
    /// When the next pending delivery is due.
    fn next_delivery(&self) -> worker::Result<Option<Timestamp>>;
    /// The pending deliveries due by `now`, soonest first, at most `limit`.
    fn due_deliveries(&self, now: Timestamp, limit: u32) -> worker::Result<Vec<DueDelivery>>;
    fn record_attempt(
        &self,
        event_id: &str,
        dest: &str,
        state: RowState,
        attempts: u32,
        next_at: Timestamp,
        last_error: Option<&str>,
    ) -> worker::Result<()>;
    /// The deliveries of the newest webhook event.
    fn newest_event_deliveries(&self) -> worker::Result<Vec<DeliveryRow>>;
    /// Keeps announced events in the outbox until the app's hub has them, due `now`.
    fn queue_announcements(&self, events: &[Announcement], now: Timestamp) -> worker::Result<()>;
    /// The announced events the hub has not taken, oldest first.
    fn pending_announcements(&self) -> worker::Result<Vec<Announcement>>;
    /// The hub took these (by event id): they leave the outbox.
    fn announcements_taken(&self, ids: &[String]) -> worker::Result<()>;
    /// The outbox's next try is due at `at` (a try failed).
    fn defer_announcements(&self, at: Timestamp) -> worker::Result<()>;
    /// When the outbox's next try is due (`None`: it is empty).
    fn next_announcement(&self) -> worker::Result<Option<Timestamp>>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    shard INTEGER NOT NULL,
    class TEXT NOT NULL,
    enqueue_due INTEGER,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstone (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    sweep_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL,
    dest TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, dest)
);
";

/// The outbox of announced events (also created on first use in objects
/// whose tables predate it).
const OUTBOX_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, next_at INTEGER NOT NULL);";

/// [`JobStore`] over the object's SQLite storage.
pub struct SqlJobStore {
    sql: SqlStorage,
    keep_events: u64,
    /// Whether the tables exist, once looked up.
    tables: Cell<Option<bool>>,
    /// Whether the outbox was created in this object's life.
    outbox: Cell<bool>,
}

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn stored_error(what: &str, e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(format!("stored {what}: {e}"))
}

impl SqlJobStore {
    pub fn new(sql: SqlStorage, keep_events: u64) -> Self {
        Self { sql, keep_events, tables: Cell::new(None), outbox: Cell::new(false) }
    }

    /// The outbox table, created when missing; `None` in an object without
    /// tables (never created, or wiped by a delete while a call awaited),
    /// which the outbox must not bring back.
    fn outbox(&self) -> worker::Result<Option<&SqlStorage>> {
        if !self.has_tables()? {
            return Ok(None);
        }
        if !self.outbox.get() {
            self.sql.exec(OUTBOX_SCHEMA, None)?;
            self.outbox.set(true);
        }
        Ok(Some(&self.sql))
    }

    fn log(&self) -> EventLog {
        EventLog::new(self.sql.clone(), self.keep_events)
    }
}

impl JobStore for SqlJobStore {
    fn has_tables(&self) -> worker::Result<bool> {
        if let Some(known) = self.tables.get() {
            return Ok(known);
        }
        #[derive(Deserialize)]
        struct Count {
            n: f64,
        }
        let rows: Vec<Count> = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'job'", None)?
            .to_array()?;
        let exists = rows.first().is_some_and(|r| r.n > 0.0);
        self.tables.set(Some(exists));
        Ok(exists)
    }

    fn ensure_tables(&self) -> worker::Result<()> {
        if !self.has_tables()? {
            self.sql.exec(&format!("{EVENT_LOG_SCHEMA}{SCHEMA}{OUTBOX_SCHEMA}"), None)?;
            self.tables.set(Some(true));
        }
        Ok(())
    }

    fn wiped(&self) {
        self.tables.set(Some(false));
        self.outbox.set(false);
    }

    fn load(&self) -> worker::Result<Option<Stored>> {
        #[derive(Deserialize)]
        struct Row {
            shard: f64,
            class: String,
            enqueue_due: Option<f64>,
            body: String,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT shard, class, enqueue_due, body FROM job", None)?.to_array()?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let job = serde_json::from_str(&row.body).map_err(|e| stored_error("job", e))?;
        Ok(Some(Stored {
            job,
            shard: row.shard as u32,
            class: SizeClass::parse(&row.class).unwrap_or(SizeClass::Standard),
            enqueue_due: row.enqueue_due.map(|t| Timestamp::from_millis(t as u64)),
        }))
    }

    fn save(&self, s: &Stored) -> worker::Result<()> {
        let body = serde_json::to_string(&s.job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            "INSERT INTO job (one, shard, class, enqueue_due, body) VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (one) DO UPDATE SET shard = excluded.shard, class = excluded.class,
               enqueue_due = excluded.enqueue_due, body = excluded.body",
            vec![
                SqlStorageValue::Integer(i64::from(s.shard)),
                s.class.as_str().into(),
                s.enqueue_due.map(int).unwrap_or(SqlStorageValue::Null),
                body.into(),
            ],
        )?;
        Ok(())
    }

    fn set_enqueue_due(&self, at: Option<Timestamp>) -> worker::Result<()> {
        self.sql.exec("UPDATE job SET enqueue_due = ?", vec![at.map(int).unwrap_or(SqlStorageValue::Null)])?;
        Ok(())
    }

    fn clear_enqueue_due_until(&self, sent_at: Timestamp) -> worker::Result<()> {
        self.sql.exec("UPDATE job SET enqueue_due = NULL WHERE enqueue_due <= ?", vec![int(sent_at)])?;
        Ok(())
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        #[derive(Deserialize)]
        struct ValueRow {
            value: String,
        }
        let rows: Vec<ValueRow> =
            self.sql.exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    fn delete_meta(&self, key: &str) -> worker::Result<()> {
        self.sql.exec("DELETE FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(())
    }

    fn meta_prefixed(&self, prefix: &str) -> worker::Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            value: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                // Exact prefix (LIKE would treat `_` as a wildcard and ignore
                // ASCII case) in key order, which the delete's session list
                // relies on, as the memory store gives.
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
                vec![(prefix.chars().count() as i64).into(), prefix.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
    }

    fn tombstone(&self) -> worker::Result<Option<Tombstone>> {
        #[derive(Deserialize)]
        struct Row {
            app_id: String,
            video_id: String,
            sweep_at: f64,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT app_id, video_id, sweep_at FROM tombstone", None)?.to_array()?;
        Ok(rows.into_iter().next().map(|r| Tombstone {
            ids: AppId::parse(&r.app_id).ok().zip(VideoId::parse(&r.video_id).ok()),
            sweep_at: Timestamp::from_millis(r.sweep_at as u64),
        }))
    }

    fn set_tombstone(&self, app: &AppId, video: &VideoId, sweep_at: Timestamp) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO tombstone (one, app_id, video_id, sweep_at) VALUES (1, ?, ?, ?)",
            vec![app.as_str().into(), video.as_str().into(), int(sweep_at)],
        )?;
        Ok(())
    }

    fn last_event_id(&self) -> worker::Result<u64> {
        self.log().last_id()
    }

    fn append_events(&self, events: &[(&str, String)]) -> worker::Result<Vec<Frame>> {
        self.log().append(events.iter().map(|(name, data)| (*name, data.clone())))
    }

    fn opening(
        &self,
        connected: (&str, serde_json::Value),
        from: u64,
        resumed: Option<&ResetState>,
    ) -> worker::Result<String> {
        self.log().opening(connected, from, resumed)
    }

    fn queue_deliveries(&self, deliveries: &[Delivery], now: Timestamp) -> worker::Result<()> {
        for d in deliveries {
            self.sql.exec(
                "INSERT OR IGNORE INTO deliveries (event_id, dest, kind, url, body, state, attempts, next_at, last_error, created_at)
                 VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?)",
                vec![
                    d.event_id.as_str().into(),
                    d.dest.into(),
                    d.kind.as_str().into(),
                    d.url.as_str().into(),
                    d.body.as_str().into(),
                    int(now),
                    int(now),
                ],
            )?;
        }
        if !deliveries.is_empty() {
            self.sql.exec(
                "DELETE FROM deliveries WHERE state != 'pending' AND rowid NOT IN
                   (SELECT rowid FROM deliveries ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                vec![SqlStorageValue::Integer(KEPT_DELIVERIES as i64)],
            )?;
        }
        Ok(())
    }

    fn next_delivery(&self) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct Min {
            t: Option<f64>,
        }
        let rows: Vec<Min> =
            self.sql.exec("SELECT MIN(next_at) AS t FROM deliveries WHERE state = 'pending'", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    fn due_deliveries(&self, now: Timestamp, limit: u32) -> worker::Result<Vec<DueDelivery>> {
        #[derive(Deserialize)]
        struct Due {
            event_id: String,
            dest: String,
            kind: String,
            url: String,
            body: String,
            attempts: f64,
        }
        let due: Vec<Due> = self
            .sql
            .exec(
                "SELECT event_id, dest, kind, url, body, attempts FROM deliveries
                 WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?",
                vec![int(now), SqlStorageValue::Integer(i64::from(limit))],
            )?
            .to_array()?;
        Ok(due
            .into_iter()
            .map(|d| DueDelivery {
                event_id: d.event_id,
                dest: d.dest,
                kind: d.kind,
                url: d.url,
                body: d.body,
                attempts: d.attempts as u32,
            })
            .collect())
    }

    fn record_attempt(
        &self,
        event_id: &str,
        dest: &str,
        state: RowState,
        attempts: u32,
        next_at: Timestamp,
        last_error: Option<&str>,
    ) -> worker::Result<()> {
        self.sql.exec(
            "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE event_id = ? AND dest = ?",
            vec![
                state.as_str().into(),
                SqlStorageValue::Integer(i64::from(attempts)),
                int(next_at),
                last_error.map_or(SqlStorageValue::Null, SqlStorageValue::from),
                event_id.into(),
                dest.into(),
            ],
        )?;
        Ok(())
    }

    fn newest_event_deliveries(&self) -> worker::Result<Vec<DeliveryRow>> {
        #[derive(Deserialize)]
        struct Latest {
            state: String,
            attempts: f64,
            last_error: Option<String>,
        }
        let rows: Vec<Latest> = self
            .sql
            .exec(
                "SELECT state, attempts, last_error FROM deliveries WHERE event_id =
                   (SELECT event_id FROM deliveries ORDER BY created_at DESC, rowid DESC LIMIT 1)",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| DeliveryRow {
                state: RowState::parse(&r.state),
                attempts: r.attempts as u32,
                last_error: r.last_error,
            })
            .collect())
    }
    fn queue_announcements(&self, events: &[Announcement], now: Timestamp) -> worker::Result<()> {
        let Some(sql) = self.outbox()? else {
            return Err(worker::Error::RustError("no such table: outbox".into()));
        };
        for a in events {
            let body = serde_json::to_string(a).map_err(|e| worker::Error::RustError(e.to_string()))?;
            sql.exec(
                "INSERT OR IGNORE INTO outbox (id, body, next_at) VALUES (?, ?, ?)",
                vec![a.body.id.as_str().into(), body.into(), int(now)],
            )?;
        }
        Ok(())
    }

    fn pending_announcements(&self) -> worker::Result<Vec<Announcement>> {
        #[derive(Deserialize)]
        struct BodyRow {
            body: String,
        }
        let Some(sql) = self.outbox()? else { return Ok(Vec::new()) };
        let rows: Vec<BodyRow> = sql.exec("SELECT body FROM outbox ORDER BY rowid", None)?.to_array()?;
        rows.into_iter().map(|r| serde_json::from_str(&r.body).map_err(|e| stored_error("announcement", e))).collect()
    }

    fn announcements_taken(&self, ids: &[String]) -> worker::Result<()> {
        let Some(sql) = self.outbox()? else { return Ok(()) };
        for id in ids {
            sql.exec("DELETE FROM outbox WHERE id = ?", vec![id.as_str().into()])?;
        }
        Ok(())
    }

    fn defer_announcements(&self, at: Timestamp) -> worker::Result<()> {
        if let Some(sql) = self.outbox()? {
            sql.exec("UPDATE outbox SET next_at = ?", vec![int(at)])?;
        }
        Ok(())
    }

    fn next_announcement(&self) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct Min {
            t: Option<f64>,
        }
        let Some(sql) = self.outbox()? else { return Ok(None) };
        let rows: Vec<Min> = sql.exec("SELECT MIN(next_at) AS t FROM outbox", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }
}

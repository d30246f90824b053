//! [`JobStore`] in memory, with the SQL store's rules (the job row, `meta`,
//! the tombstone, webhook deliveries kept and pruned
//! as the SQL does; the event log is `sse::EventLog` itself over memory
//! rows), for the native tests of the object.

use std::cell::RefCell;
use std::collections::BTreeMap;

use media_core::ids::{AppId, VideoId};
use media_core::video::events::ResetState;
use media_core::Timestamp;

use crate::protocol::app_hub::Announcement;
use crate::sse::{EventLog, Frame};
use crate::video_job::store::{
    Delivery, DeliveryRow, DueDelivery, JobStore, RowState, Stored, Tombstone, KEPT_DELIVERIES,
};

#[derive(Debug, Clone)]
struct DeliveryRecord {
    rowid: u64,
    event_id: String,
    dest: String,
    kind: String,
    url: String,
    body: String,
    state: RowState,
    attempts: u32,
    next_at: Timestamp,
    last_error: Option<String>,
    created_at: Timestamp,
}

/// The tables; the event log is `sse::EventLog` itself, over memory rows.
struct Tables {
    job: Option<Stored>,
    meta: BTreeMap<String, String>,
    tombstone: Option<Tombstone>,
    events: EventLog,
    deliveries: Vec<DeliveryRecord>,
    rowids: u64,
    /// The outbox: announcements and when each is next due.
    outbox: Vec<(Announcement, Timestamp)>,
}

impl Tables {
    fn new(keep_events: u64) -> Self {
        Self {
            job: None,
            meta: BTreeMap::new(),
            tombstone: None,
            events: EventLog::in_memory(keep_events),
            deliveries: Vec::new(),
            rowids: 0,
            outbox: Vec::new(),
        }
    }
}

/// The object's storage in memory; `None` while it has no tables.
pub struct MemoryJobStore {
    tables: RefCell<Option<Tables>>,
    keep_events: u64,
}

impl MemoryJobStore {
    pub fn new(keep_events: u64) -> Self {
        Self { tables: RefCell::new(None), keep_events }
    }

    /// Every delivery: (event id, destination, state, attempts, next attempt, url).
    pub fn deliveries(&self) -> Vec<(String, String, RowState, u32, Timestamp, String)> {
        self.read(|t| {
            t.deliveries
                .iter()
                .map(|d| (d.event_id.clone(), d.dest.clone(), d.state, d.attempts, d.next_at, d.url.clone()))
                .collect()
        })
    }

    /// A write: fails, as SQLite's "no such table" does, while the tables
    /// are absent (before the first [`JobStore::ensure_tables`] or after a
    /// wipe), so a write the shell makes after a concurrent delete shows.
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> worker::Result<T> {
        let mut tables = self.tables.borrow_mut();
        let tables = tables.as_mut().ok_or_else(|| worker::Error::RustError("no such table".into()))?;
        Ok(f(tables))
    }

    fn read<T: Default>(&self, f: impl FnOnce(&Tables) -> T) -> T {
        self.tables.borrow().as_ref().map(f).unwrap_or_default()
    }
}

impl JobStore for MemoryJobStore {
    fn has_tables(&self) -> worker::Result<bool> {
        Ok(self.tables.borrow().is_some())
    }

    fn ensure_tables(&self) -> worker::Result<()> {
        self.tables.borrow_mut().get_or_insert_with(|| Tables::new(self.keep_events));
        Ok(())
    }

    fn wiped(&self) {
        *self.tables.borrow_mut() = None;
    }

    fn load(&self) -> worker::Result<Option<Stored>> {
        Ok(self.read(|t| t.job.clone()))
    }

    fn save(&self, s: &Stored) -> worker::Result<()> {
        self.with(|t| t.job = Some(s.clone()))
    }

    fn set_enqueue_due(&self, at: Option<Timestamp>) -> worker::Result<()> {
        self.with(|t| t.job.iter_mut().for_each(|j| j.enqueue_due = at))
    }

    fn clear_enqueue_due_until(&self, sent_at: Timestamp) -> worker::Result<()> {
        self.with(|t| {
            for j in t.job.iter_mut().filter(|j| j.enqueue_due.is_some_and(|d| d <= sent_at)) {
                j.enqueue_due = None;
            }
        })
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        Ok(self.read(|t| t.meta.get(key).cloned()))
    }

    fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.with(|t| {
            t.meta.insert(key.to_owned(), value.to_owned());
        })
    }

    fn delete_meta(&self, key: &str) -> worker::Result<()> {
        self.with(|t| {
            t.meta.remove(key);
        })
    }

    fn meta_prefixed(&self, prefix: &str) -> worker::Result<Vec<(String, String)>> {
        Ok(self.read(|t| {
            t.meta.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect()
        }))
    }

    fn tombstone(&self) -> worker::Result<Option<Tombstone>> {
        Ok(self.read(|t| t.tombstone.clone()))
    }

    fn set_tombstone(&self, app: &AppId, video: &VideoId, sweep_at: Timestamp) -> worker::Result<()> {
        self.with(|t| t.tombstone = Some(Tombstone { ids: Some((app.clone(), video.clone())), sweep_at }))
    }

    fn last_event_id(&self) -> worker::Result<u64> {
        self.tables.borrow().as_ref().map_or(Ok(0), |t| t.events.last_id())
    }

    fn append_events(&self, events: &[(&str, String)]) -> worker::Result<Vec<Frame>> {
        self.with(|t| t.events.append(events.iter().map(|(name, data)| (*name, data.clone()))))?
    }

    fn opening(
        &self,
        connected: (&str, serde_json::Value),
        from: u64,
        resumed: Option<&ResetState>,
    ) -> worker::Result<String> {
        match self.tables.borrow().as_ref() {
            Some(t) => t.events.opening(connected, from, resumed),
            // No tables: no kept events, as SQL's empty log.
            None => EventLog::in_memory(self.keep_events).opening(connected, from, resumed),
        }
    }

    fn queue_deliveries(&self, deliveries: &[Delivery], now: Timestamp) -> worker::Result<()> {
        self.with(|t| {
            for d in deliveries {
                if t.deliveries.iter().any(|r| r.event_id == d.event_id && r.dest == d.dest) {
                    continue;
                }
                t.rowids += 1;
                t.deliveries.push(DeliveryRecord {
                    rowid: t.rowids,
                    event_id: d.event_id.clone(),
                    dest: d.dest.to_owned(),
                    kind: d.kind.as_str().to_owned(),
                    url: d.url.clone(),
                    body: d.body.clone(),
                    state: RowState::Pending,
                    attempts: 0,
                    next_at: now,
                    last_error: None,
                    created_at: now,
                });
            }
            if !deliveries.is_empty() {
                let mut newest: Vec<(Timestamp, u64)> = t.deliveries.iter().map(|d| (d.created_at, d.rowid)).collect();
                newest.sort_by(|a, b| b.cmp(a));
                newest.truncate(KEPT_DELIVERIES);
                t.deliveries
                    .retain(|d| d.state == RowState::Pending || newest.iter().any(|(_, rowid)| *rowid == d.rowid));
            }
        })
    }

    fn next_delivery(&self) -> worker::Result<Option<Timestamp>> {
        Ok(self.read(|t| t.deliveries.iter().filter(|d| d.state == RowState::Pending).map(|d| d.next_at).min()))
    }

    fn due_deliveries(&self, now: Timestamp, limit: u32) -> worker::Result<Vec<DueDelivery>> {
        Ok(self.read(|t| {
            let mut due: Vec<&DeliveryRecord> =
                t.deliveries.iter().filter(|d| d.state == RowState::Pending && d.next_at <= now).collect();
            due.sort_by_key(|d| d.next_at);
            due.into_iter()
                .take(limit as usize)
                .map(|d| DueDelivery {
                    event_id: d.event_id.clone(),
                    dest: d.dest.clone(),
                    kind: d.kind.clone(),
                    url: d.url.clone(),
                    body: d.body.clone(),
                    attempts: d.attempts,
                })
                .collect()
        }))
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
        self.with(|t| {
            for d in t.deliveries.iter_mut().filter(|d| d.event_id == event_id && d.dest == dest) {
                (d.state, d.attempts, d.next_at) = (state, attempts, next_at);
                d.last_error = last_error.map(str::to_owned);
            }
        })
    }

    fn newest_event_deliveries(&self) -> worker::Result<Vec<DeliveryRow>> {
        Ok(self.read(|t| {
            let Some(newest) = t.deliveries.iter().max_by_key(|d| (d.created_at, d.rowid)) else {
                return Vec::new();
            };
            t.deliveries
                .iter()
                .filter(|d| d.event_id == newest.event_id)
                .map(|d| DeliveryRow { state: d.state, attempts: d.attempts, last_error: d.last_error.clone() })
                .collect()
        }))
    }
    fn queue_announcements(&self, events: &[Announcement], now: Timestamp) -> worker::Result<()> {
        self.with(|t| {
            for a in events {
                if !t.outbox.iter().any(|(o, _)| o.body.id == a.body.id) {
                    t.outbox.push((a.clone(), now));
                }
            }
        })
    }

    fn pending_announcements(&self) -> worker::Result<Vec<Announcement>> {
        Ok(self.read(|t| t.outbox.iter().map(|(a, _)| a.clone()).collect()))
    }

    fn announcements_taken(&self, ids: &[String]) -> worker::Result<()> {
        // As the SQL store: nothing to do in an object without tables.
        if let Some(t) = self.tables.borrow_mut().as_mut() {
            t.outbox.retain(|(a, _)| !ids.contains(&a.body.id));
        }
        Ok(())
    }

    fn defer_announcements(&self, at: Timestamp) -> worker::Result<()> {
        if let Some(t) = self.tables.borrow_mut().as_mut() {
            t.outbox.iter_mut().for_each(|(_, due)| *due = at);
        }
        Ok(())
    }

    fn next_announcement(&self) -> worker::Result<Option<Timestamp>> {
        Ok(self.read(|t| t.outbox.iter().map(|(_, due)| *due).min()))
    }
}

//! Where a queue shard keeps its rows ([`ShardStore`]): the object's SQLite
//! tables ([`SqlShardStore`]), and in memory for tests ([`MemoryShardStore`]).
//! Row states are stored as their text (`waiting`, `offered`, `leased`,
//! `ended`), read and written through [`RowState`].

use std::collections::BTreeMap;

use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::dispatch::SizeClass;
use media_core::Timestamp;
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use super::shard::{Row, RowState, ShardStore};

/// The shard's tables, created when its object starts.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS waiting (
    job_id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    class TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    state TEXT NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS waiting_by_due ON waiting (state, class, not_before, queued_at);
CREATE INDEX IF NOT EXISTS waiting_by_change ON waiting (state, changed_at);
CREATE TABLE IF NOT EXISTS stats (op TEXT PRIMARY KEY, n INTEGER NOT NULL);
";

const COLUMNS: &str = "job_id, app_id, video_id, class, queued_at, not_before, state, changed_at";

/// A row as SQLite gives it back (its integers as JavaScript numbers).
#[derive(Deserialize)]
struct StoredRow {
    job_id: String,
    app_id: String,
    video_id: String,
    class: String,
    queued_at: f64,
    not_before: f64,
    state: String,
    changed_at: f64,
}

impl StoredRow {
    /// The row, or `None` when a field is not one this shard writes.
    fn parse(&self) -> Option<Row> {
        let at = |ms: f64| Timestamp::from_millis(ms as u64);
        Some(Row {
            job_id: JobId::parse(&self.job_id).ok()?,
            app_id: AppId::parse(&self.app_id).ok()?,
            video_id: VideoId::parse(&self.video_id).ok()?,
            class: SizeClass::parse(&self.class)?,
            queued_at: at(self.queued_at),
            not_before: at(self.not_before),
            state: RowState::parse(&self.state)?,
            changed_at: at(self.changed_at),
        })
    }
}

fn int(t: Timestamp) -> SqlStorageValue {
    SqlStorageValue::Integer(t.millis() as i64)
}

fn state(s: RowState) -> SqlStorageValue {
    s.as_str().into()
}

/// The rows in the object's SQLite storage.
pub struct SqlShardStore(pub SqlStorage);

impl ShardStore for SqlShardStore {
    fn upsert(&self, row: &Row) -> worker::Result<()> {
        self.0.exec(
            "INSERT INTO waiting (job_id, app_id, video_id, class, queued_at, not_before, state, changed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET class = excluded.class, queued_at = excluded.queued_at,
               not_before = excluded.not_before, state = excluded.state, changed_at = excluded.changed_at",
            vec![
                row.job_id.as_str().into(),
                row.app_id.as_str().into(),
                row.video_id.as_str().into(),
                row.class.as_str().into(),
                int(row.queued_at),
                int(row.not_before),
                state(row.state),
                int(row.changed_at),
            ],
        )?;
        Ok(())
    }

    fn set_state(&self, job_id: &JobId, to: RowState, only_if: Option<RowState>, at: Timestamp) -> worker::Result<()> {
        match only_if {
            Some(was) => self.0.exec(
                "UPDATE waiting SET state = ?, changed_at = ? WHERE job_id = ? AND state = ?",
                vec![state(to), int(at), job_id.as_str().into(), state(was)],
            )?,
            None => self.0.exec(
                "UPDATE waiting SET state = ?, changed_at = ? WHERE job_id = ?",
                vec![state(to), int(at), job_id.as_str().into()],
            )?,
        };
        Ok(())
    }

    fn delete_changed_before(&self, in_state: RowState, before: Timestamp) -> worker::Result<()> {
        self.0.exec("DELETE FROM waiting WHERE state = ? AND changed_at < ?", vec![state(in_state), int(before)])?;
        Ok(())
    }

    fn oldest_due(&self, class: SizeClass, now: Timestamp, offered_before: Timestamp) -> worker::Result<Option<Row>> {
        loop {
            let rows: Vec<StoredRow> = self
                .0
                .exec(
                    &format!(
                        "SELECT {COLUMNS} FROM waiting
                         WHERE ((state = ?) OR (state = ? AND changed_at < ?))
                           AND class = ? AND not_before <= ?
                         ORDER BY queued_at, job_id LIMIT 1"
                    ),
                    vec![
                        state(RowState::Waiting),
                        state(RowState::Offered),
                        int(offered_before),
                        class.as_str().into(),
                        int(now),
                    ],
                )?
                .to_array()?;
            let Some(stored) = rows.into_iter().next() else {
                return Ok(None);
            };
            if let Some(row) = stored.parse() {
                return Ok(Some(row));
            }
            // A row no command of this shard could have written: it ends
            // rather than block its class.
            self.0.exec(
                "UPDATE waiting SET state = ?, changed_at = ? WHERE job_id = ?",
                vec![state(RowState::Ended), int(now), stored.job_id.as_str().into()],
            )?;
        }
    }

    fn next_due(&self, now: Timestamp) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct TimeRow {
            t: Option<f64>,
        }
        let rows: Vec<TimeRow> = self
            .0
            .exec(
                "SELECT MIN(not_before) AS t FROM waiting WHERE state = ? AND not_before > ?",
                vec![state(RowState::Waiting), int(now)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    fn get(&self, job_id: &JobId) -> worker::Result<Option<Row>> {
        let rows: Vec<StoredRow> = self
            .0
            .exec(&format!("SELECT {COLUMNS} FROM waiting WHERE job_id = ?"), vec![job_id.as_str().into()])?
            .to_array()?;
        Ok(rows.first().and_then(StoredRow::parse))
    }

    fn count(&self, op: &str) -> worker::Result<()> {
        self.0.exec(
            "INSERT INTO stats (op, n) VALUES (?, 1) ON CONFLICT (op) DO UPDATE SET n = n + 1",
            vec![op.into()],
        )?;
        Ok(())
    }

    fn counts(&self) -> worker::Result<BTreeMap<String, u64>> {
        #[derive(Deserialize)]
        struct StatRow {
            op: String,
            n: f64,
        }
        let rows: Vec<StatRow> = self.0.exec("SELECT op, n FROM stats", None)?.to_array()?;
        Ok(rows.into_iter().map(|r| (r.op, r.n as u64)).collect())
    }
}

/// The rows in memory, by job id, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryShardStore {
    rows: std::cell::RefCell<BTreeMap<String, Row>>,
    counts: std::cell::RefCell<BTreeMap<String, u64>>,
}

#[cfg(test)]
impl MemoryShardStore {
    /// Every row, by job id.
    pub fn rows(&self) -> Vec<Row> {
        self.rows.borrow().values().cloned().collect()
    }
}

#[cfg(test)]
impl ShardStore for MemoryShardStore {
    fn upsert(&self, row: &Row) -> worker::Result<()> {
        let mut rows = self.rows.borrow_mut();
        match rows.get_mut(row.job_id.as_str()) {
            Some(r) => {
                r.class = row.class;
                r.queued_at = row.queued_at;
                r.not_before = row.not_before;
                r.state = row.state;
                r.changed_at = row.changed_at;
            }
            None => {
                rows.insert(row.job_id.to_string(), row.clone());
            }
        }
        Ok(())
    }

    fn set_state(&self, job_id: &JobId, to: RowState, only_if: Option<RowState>, at: Timestamp) -> worker::Result<()> {
        if let Some(r) = self.rows.borrow_mut().get_mut(job_id.as_str()) {
            if only_if.is_none_or(|was| r.state == was) {
                r.state = to;
                r.changed_at = at;
            }
        }
        Ok(())
    }

    fn delete_changed_before(&self, in_state: RowState, before: Timestamp) -> worker::Result<()> {
        self.rows.borrow_mut().retain(|_, r| !(r.state == in_state && r.changed_at < before));
        Ok(())
    }

    fn oldest_due(&self, class: SizeClass, now: Timestamp, offered_before: Timestamp) -> worker::Result<Option<Row>> {
        let rows = self.rows.borrow();
        let due = rows.values().filter(|r| {
            let open = r.state == RowState::Waiting || (r.state == RowState::Offered && r.changed_at < offered_before);
            open && r.class == class && r.not_before <= now
        });
        Ok(due.min_by_key(|r| r.queued_at).cloned())
    }

    fn next_due(&self, now: Timestamp) -> worker::Result<Option<Timestamp>> {
        let rows = self.rows.borrow();
        Ok(rows.values().filter(|r| r.state == RowState::Waiting && r.not_before > now).map(|r| r.not_before).min())
    }

    fn get(&self, job_id: &JobId) -> worker::Result<Option<Row>> {
        Ok(self.rows.borrow().get(job_id.as_str()).cloned())
    }

    fn count(&self, op: &str) -> worker::Result<()> {
        *self.counts.borrow_mut().entry(op.to_owned()).or_default() += 1;
        Ok(())
    }

    fn counts(&self) -> worker::Result<BTreeMap<String, u64>> {
        Ok(self.counts.borrow().clone())
    }
}

//! Where a queue shard keeps its rows ([`ShardStore`]): the object's SQLite
//! tables ([`SqlShardStore`]), and in memory for tests ([`MemoryShardStore`]).
//! Row states are stored as their text (`waiting`, `offered`, `leased`,
//! `ended`), read and written through [`RowState`]; a row's task as its
//! index, `-1` for the whole job's row (`(job_id, task)` is the key, and
//! SQLite keys need a value there).

use std::collections::BTreeMap;

use media_core::ids::{AppId, JobId, VideoId};
use media_core::video::dispatch::SizeClass;
use media_core::Timestamp;
use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use super::shard::{Row, RowState, ShardStore};

/// The shard's tables, created when its object starts.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
    job_id TEXT NOT NULL,
    task INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    class TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    state TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, task)
);
CREATE INDEX IF NOT EXISTS queue_by_due ON queue (state, class, not_before, queued_at);
CREATE INDEX IF NOT EXISTS queue_by_change ON queue (state, changed_at);
CREATE TABLE IF NOT EXISTS stats (op TEXT PRIMARY KEY, n INTEGER NOT NULL);
";

const COLUMNS: &str = "job_id, task, app_id, video_id, class, queued_at, not_before, state, changed_at";

/// The stored `task` of the whole job's row.
const WHOLE_JOB: i64 = -1;

fn task_value(task: Option<u16>) -> SqlStorageValue {
    SqlStorageValue::Integer(task.map_or(WHOLE_JOB, i64::from))
}

/// The bound a row's stored task is below when a lease may take it: every
/// task with `tasks`, else only the whole job's row (-1).
fn task_bound(tasks: bool) -> SqlStorageValue {
    SqlStorageValue::Integer(if tasks { i64::from(u16::MAX) + 1 } else { 0 })
}

/// A row as SQLite gives it back (its integers as JavaScript numbers).
#[derive(Deserialize)]
struct StoredRow {
    job_id: String,
    task: f64,
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
        let task = match self.task as i64 {
            WHOLE_JOB => None,
            n => Some(u16::try_from(n).ok()?),
        };
        Some(Row {
            job_id: JobId::parse(&self.job_id).ok()?,
            task,
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
            "INSERT INTO queue (job_id, task, app_id, video_id, class, queued_at, not_before, state, changed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id, task) DO UPDATE SET class = excluded.class, queued_at = excluded.queued_at,
               not_before = excluded.not_before, state = excluded.state, changed_at = excluded.changed_at",
            vec![
                row.job_id.as_str().into(),
                task_value(row.task),
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

    fn set_state(
        &self,
        job_id: &JobId,
        task: Option<u16>,
        to: RowState,
        only_if: Option<RowState>,
        at: Timestamp,
    ) -> worker::Result<()> {
        match only_if {
            Some(was) => self.0.exec(
                "UPDATE queue SET state = ?, changed_at = ? WHERE job_id = ? AND task = ? AND state = ?",
                vec![state(to), int(at), job_id.as_str().into(), task_value(task), state(was)],
            )?,
            None => self.0.exec(
                "UPDATE queue SET state = ?, changed_at = ? WHERE job_id = ? AND task = ?",
                vec![state(to), int(at), job_id.as_str().into(), task_value(task)],
            )?,
        };
        Ok(())
    }

    fn end_job(&self, job_id: &JobId, at: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "UPDATE queue SET state = ?, changed_at = ? WHERE job_id = ? AND state != ?",
            vec![state(RowState::Ended), int(at), job_id.as_str().into(), state(RowState::Ended)],
        )?;
        Ok(())
    }

    fn delete_changed_before(&self, in_state: RowState, before: Timestamp) -> worker::Result<()> {
        self.0.exec("DELETE FROM queue WHERE state = ? AND changed_at < ?", vec![state(in_state), int(before)])?;
        Ok(())
    }

    fn oldest_due(
        &self,
        class: SizeClass,
        now: Timestamp,
        offered_before: Timestamp,
        tasks: bool,
    ) -> worker::Result<Option<Row>> {
        let below = task_bound(tasks);
        loop {
            let rows: Vec<StoredRow> = self
                .0
                .exec(
                    &format!(
                        "SELECT {COLUMNS} FROM queue
                         WHERE ((state = ?) OR (state = ? AND changed_at < ?))
                           AND class = ? AND not_before <= ? AND task < ?
                         ORDER BY queued_at, job_id, task LIMIT 1"
                    ),
                    vec![
                        state(RowState::Waiting),
                        state(RowState::Offered),
                        int(offered_before),
                        class.as_str().into(),
                        int(now),
                        below.clone(),
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
                "UPDATE queue SET state = ?, changed_at = ? WHERE job_id = ? AND task = ?",
                vec![state(RowState::Ended), int(now), stored.job_id.as_str().into(), (stored.task as i64).into()],
            )?;
        }
    }

    fn next_due(&self, now: Timestamp, tasks: bool) -> worker::Result<Option<Timestamp>> {
        #[derive(Deserialize)]
        struct TimeRow {
            t: Option<f64>,
        }
        let rows: Vec<TimeRow> = self
            .0
            .exec(
                "SELECT MIN(not_before) AS t FROM queue WHERE state = ? AND not_before > ? AND task < ?",
                vec![state(RowState::Waiting), int(now), task_bound(tasks)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.t).map(|t| Timestamp::from_millis(t as u64)))
    }

    fn get(&self, job_id: &JobId) -> worker::Result<Option<Row>> {
        let rows: Vec<StoredRow> = self
            .0
            .exec(
                &format!("SELECT {COLUMNS} FROM queue WHERE job_id = ? ORDER BY task LIMIT 1"),
                vec![job_id.as_str().into()],
            )?
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

/// The rows in memory, by job id and task, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryShardStore {
    rows: std::cell::RefCell<BTreeMap<(String, i32), Row>>,
    counts: std::cell::RefCell<BTreeMap<String, u64>>,
}

#[cfg(test)]
fn mem_key(job_id: &JobId, task: Option<u16>) -> (String, i32) {
    (job_id.to_string(), task.map_or(-1, i32::from))
}

#[cfg(test)]
impl MemoryShardStore {
    /// Every row, by job id and task.
    pub fn rows(&self) -> Vec<Row> {
        self.rows.borrow().values().cloned().collect()
    }
}

#[cfg(test)]
impl ShardStore for MemoryShardStore {
    fn upsert(&self, row: &Row) -> worker::Result<()> {
        let mut rows = self.rows.borrow_mut();
        match rows.get_mut(&mem_key(&row.job_id, row.task)) {
            Some(r) => {
                r.class = row.class;
                r.queued_at = row.queued_at;
                r.not_before = row.not_before;
                r.state = row.state;
                r.changed_at = row.changed_at;
            }
            None => {
                rows.insert(mem_key(&row.job_id, row.task), row.clone());
            }
        }
        Ok(())
    }

    fn set_state(
        &self,
        job_id: &JobId,
        task: Option<u16>,
        to: RowState,
        only_if: Option<RowState>,
        at: Timestamp,
    ) -> worker::Result<()> {
        if let Some(r) = self.rows.borrow_mut().get_mut(&mem_key(job_id, task)) {
            if only_if.is_none_or(|was| r.state == was) {
                r.state = to;
                r.changed_at = at;
            }
        }
        Ok(())
    }

    fn end_job(&self, job_id: &JobId, at: Timestamp) -> worker::Result<()> {
        for r in self.rows.borrow_mut().values_mut().filter(|r| r.job_id == *job_id && r.state != RowState::Ended) {
            r.state = RowState::Ended;
            r.changed_at = at;
        }
        Ok(())
    }

    fn delete_changed_before(&self, in_state: RowState, before: Timestamp) -> worker::Result<()> {
        self.rows.borrow_mut().retain(|_, r| !(r.state == in_state && r.changed_at < before));
        Ok(())
    }

    fn oldest_due(
        &self,
        class: SizeClass,
        now: Timestamp,
        offered_before: Timestamp,
        tasks: bool,
    ) -> worker::Result<Option<Row>> {
        let rows = self.rows.borrow();
        let due = rows.values().filter(|r| {
            let open = r.state == RowState::Waiting || (r.state == RowState::Offered && r.changed_at < offered_before);
            open && r.class == class && r.not_before <= now && (tasks || r.task.is_none())
        });
        // By key within a time: job, then task (the whole job's row first).
        Ok(due.min_by_key(|r| r.queued_at).cloned())
    }

    fn next_due(&self, now: Timestamp, tasks: bool) -> worker::Result<Option<Timestamp>> {
        let rows = self.rows.borrow();
        Ok(rows
            .values()
            .filter(|r| r.state == RowState::Waiting && r.not_before > now && (tasks || r.task.is_none()))
            .map(|r| r.not_before)
            .min())
    }

    fn get(&self, job_id: &JobId) -> worker::Result<Option<Row>> {
        Ok(self.rows.borrow().values().find(|r| r.job_id == *job_id).cloned())
    }

    fn count(&self, op: &str) -> worker::Result<()> {
        *self.counts.borrow_mut().entry(op.to_owned()).or_default() += 1;
        Ok(())
    }

    fn counts(&self) -> worker::Result<BTreeMap<String, u64>> {
        Ok(self.counts.borrow().clone())
    }
}

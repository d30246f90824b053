//! An app hub's logic, apart from its Durable Object: publishing a video's
//! events (numbered in the app's own log, each stamped with its video),
//! taking announced catalogue events (numbered there too, kept by id so a
//! repeated announcement is skipped, [`Hub::announce`]),
//! the app's recent jobs, forgetting a deleted video, and the opening of a
//! new stream. Functions of the stored log ([`EventLog`]) and recent jobs
//! ([`RecentJobs`]: SQL in the object, in memory in tests) and the time;
//! the frames they return are the shell's to broadcast.

use media_core::ids::VideoId;
use media_core::video::events::{connected, ResetState};
use media_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{SqlStorage, SqlStorageValue};

use crate::protocol::app_hub::{Announcement, JobSummary};
use crate::sse::{EventLog, Frame};

/// How many events an app keeps for replay.
pub const APP_EVENT_LOG_LEN: u64 = 500;
/// How many of an app's jobs `connected.recent` lists.
pub const RECENT_JOBS: usize = 100;
/// How many announced events an app keeps (to skip repeats, and to
/// redeliver by id).
pub const KEPT_EVENTS: usize = 1000;

/// The hub's tables besides its event log.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recent (
    video_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS announced (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

/// The app's most recently changed jobs, one summary (JSON text) per video.
pub trait RecentJobs {
    /// Sets `video`'s summary, changed at `at`.
    fn put(&self, video: &VideoId, body: &str, at: Timestamp) -> worker::Result<()>;
    /// Keeps the `n` most recently changed only.
    fn keep_newest(&self, n: usize) -> worker::Result<()>;
    fn remove(&self, video: &VideoId) -> worker::Result<()>;
    /// The summaries, most recently changed first.
    fn newest_first(&self) -> worker::Result<Vec<String>>;
}

/// The app's announced events, kept by id ([`KEPT_EVENTS`] newest).
pub trait AnnouncedEvents {
    /// The announcement with event id `id`, if kept.
    fn announced(&self, id: &str) -> worker::Result<Option<Announcement>>;
    /// Keeps `a`, taken at `at`.
    fn keep_announced(&self, a: &Announcement, at: Timestamp) -> worker::Result<()>;
    /// Keeps the `n` newest only.
    fn keep_newest_announced(&self, n: usize) -> worker::Result<()>;
    /// Drops the events about `video` (a deleted video's are neither
    /// redelivered nor retried).
    fn drop_announced_of(&self, video: &VideoId) -> worker::Result<()>;
}

/// The data of an announced event in the app's stream: its body, and the
/// video's id (`videoId`, as every event of the stream has one) when it is
/// about a video.
pub fn stream_data(a: &Announcement) -> Value {
    let mut data = serde_json::to_value(&a.body).unwrap_or(Value::Null);
    if let (Value::Object(fields), Some(video)) = (&mut data, &a.video_id) {
        fields.insert("videoId".into(), Value::String(video.to_string()));
    }
    data
}

/// The data a deleted video's kept events are left with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Deleted<'a> {
    deleted: bool,
    video_id: &'a VideoId,
}

/// The data of an app stream's `connected` event: the client's id and the
/// app's recent jobs (no `job`: a stream of many videos).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppConnected {
    client_id: String,
    recent: Vec<JobSummary>,
}

/// One app's hub: its event log and recent jobs.
pub struct Hub<R> {
    pub log: EventLog,
    pub recent: R,
}

fn json<T: Serialize>(value: &T) -> worker::Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

impl<R: RecentJobs + AnnouncedEvents> Hub<R> {
    /// Takes announced events: those whose id is new are kept and numbered
    /// into the app's log (`event:` their type, [`stream_data`]). The
    /// frames to broadcast and the new announcements (to deliver).
    pub fn announce<'a>(
        &self,
        events: &'a [Announcement],
        now: Timestamp,
    ) -> worker::Result<(Vec<Frame>, Vec<&'a Announcement>)> {
        let mut fresh: Vec<&Announcement> = Vec::new();
        for a in events {
            // Also once per call: a sender may repeat an id within one batch.
            if self.recent.announced(&a.body.id)?.is_none() && !fresh.iter().any(|f| f.body.id == a.body.id) {
                fresh.push(a);
            }
        }
        for a in &fresh {
            self.recent.keep_announced(a, now)?;
        }
        let frames = self.log.append(fresh.iter().map(|a| (a.body.event_type.as_str(), stream_data(a).to_string())))?;
        if !fresh.is_empty() {
            self.recent.keep_newest_announced(KEPT_EVENTS)?;
        }
        Ok((frames, fresh))
    }

    /// Appends a video's events (each data object gets the video's
    /// `videoId` unless it has one) and records its job as changed `now`,
    /// keeping the [`RECENT_JOBS`] newest. The frames to broadcast.
    pub fn publish(&self, job: &JobSummary, events: &[(String, Value)], now: Timestamp) -> worker::Result<Vec<Frame>> {
        let with_video = events.iter().map(|(name, data)| {
            let mut data = data.clone();
            if let Value::Object(fields) = &mut data {
                fields.entry("videoId").or_insert_with(|| Value::String(job.video_id.to_string()));
            }
            (name.as_str(), data.to_string())
        });
        let frames = self.log.append(with_video)?;
        self.recent.put(&job.video_id, &json(job)?, now)?;
        self.recent.keep_newest(RECENT_JOBS)?;
        Ok(frames)
    }

    /// A deleted video leaves the recent jobs, and its kept events keep
    /// their ids but lose their data.
    pub fn forget(&self, video: &VideoId) -> worker::Result<()> {
        self.recent.remove(video)?;
        self.recent.drop_announced_of(video)?;
        let deleted = json(&Deleted { deleted: true, video_id: video })?;
        self.log.replace_data_of_video(video.as_str(), &deleted)
    }

    /// A new stream's first bytes for `client_id` (`connected` with the
    /// recent jobs, then what came after `last_event_id`; without one,
    /// nothing is replayed; one no longer in the log gets `reset` with the
    /// recent jobs), and the id its heartbeats carry.
    pub fn opening(&self, client_id: &str, last_event_id: Option<u64>) -> worker::Result<(String, u64)> {
        let recent = self.recent.newest_first()?.iter().filter_map(|body| serde_json::from_str(body).ok()).collect();
        let last = self.log.last_id()?;
        let from = last_event_id.unwrap_or(last);
        let (name, _) = connected(client_id, None);
        let data = serde_json::to_value(AppConnected { client_id: client_id.to_owned(), recent })
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let resumed = last_event_id.map(|_| ResetState::Jobs(data["recent"].as_array().cloned().unwrap_or_default()));
        // After a reset too, the newest id is where the client goes on from.
        Ok((self.log.opening((name, data), from, resumed.as_ref())?, last))
    }
}

/// The recent jobs and announced events in the object's SQLite tables
/// `recent` and `announced`.
pub struct SqlRecentJobs(pub SqlStorage);

impl AnnouncedEvents for SqlRecentJobs {
    fn announced(&self, id: &str) -> worker::Result<Option<Announcement>> {
        #[derive(Deserialize)]
        struct BodyRow {
            body: String,
        }
        let rows: Vec<BodyRow> = self.0.exec("SELECT body FROM announced WHERE id = ?", vec![id.into()])?.to_array()?;
        rows.into_iter()
            .next()
            .map(|r| serde_json::from_str(&r.body).map_err(|e| worker::Error::RustError(format!("stored event: {e}"))))
            .transpose()
    }

    fn keep_announced(&self, a: &Announcement, at: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "INSERT OR IGNORE INTO announced (id, body, at) VALUES (?, ?, ?)",
            vec![a.body.id.as_str().into(), json(a)?.into(), SqlStorageValue::Integer(at.millis() as i64)],
        )?;
        Ok(())
    }

    fn drop_announced_of(&self, video: &VideoId) -> worker::Result<()> {
        self.0.exec("DELETE FROM announced WHERE json_extract(body, '$.video_id') = ?", vec![video.as_str().into()])?;
        Ok(())
    }

    fn keep_newest_announced(&self, n: usize) -> worker::Result<()> {
        self.0.exec(
            "DELETE FROM announced WHERE rowid NOT IN (SELECT rowid FROM announced ORDER BY rowid DESC LIMIT ?)",
            vec![SqlStorageValue::Integer(n as i64)],
        )?;
        Ok(())
    }
}

impl RecentJobs for SqlRecentJobs {
    fn put(&self, video: &VideoId, body: &str, at: Timestamp) -> worker::Result<()> {
        self.0.exec(
            "INSERT INTO recent (video_id, body, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (video_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            vec![video.as_str().into(), body.into(), SqlStorageValue::Integer(at.millis() as i64)],
        )?;
        Ok(())
    }

    fn keep_newest(&self, n: usize) -> worker::Result<()> {
        self.0.exec(
            "DELETE FROM recent WHERE video_id NOT IN (SELECT video_id FROM recent ORDER BY updated_at DESC LIMIT ?)",
            vec![SqlStorageValue::Integer(n as i64)],
        )?;
        Ok(())
    }

    fn remove(&self, video: &VideoId) -> worker::Result<()> {
        self.0.exec("DELETE FROM recent WHERE video_id = ?", vec![video.as_str().into()])?;
        Ok(())
    }

    fn newest_first(&self) -> worker::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct BodyRow {
            body: String,
        }
        let rows: Vec<BodyRow> = self.0.exec("SELECT body FROM recent ORDER BY updated_at DESC", None)?.to_array()?;
        Ok(rows.into_iter().map(|r| r.body).collect())
    }
}

/// The recent jobs and announced events in memory, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryRecentJobs(
    std::cell::RefCell<std::collections::BTreeMap<String, (String, Timestamp)>>,
    std::cell::RefCell<Vec<Announcement>>,
);

#[cfg(test)]
impl AnnouncedEvents for MemoryRecentJobs {
    fn announced(&self, id: &str) -> worker::Result<Option<Announcement>> {
        Ok(self.1.borrow().iter().find(|a| a.body.id == id).cloned())
    }

    fn keep_announced(&self, a: &Announcement, _at: Timestamp) -> worker::Result<()> {
        if self.announced(&a.body.id)?.is_none() {
            self.1.borrow_mut().push(a.clone());
        }
        Ok(())
    }

    fn drop_announced_of(&self, video: &VideoId) -> worker::Result<()> {
        self.1.borrow_mut().retain(|a| a.video_id.as_ref() != Some(video));
        Ok(())
    }

    fn keep_newest_announced(&self, n: usize) -> worker::Result<()> {
        let mut kept = self.1.borrow_mut();
        let drop = kept.len().saturating_sub(n);
        kept.drain(..drop);
        Ok(())
    }
}

#[cfg(test)]
impl MemoryRecentJobs {
    fn sorted(&self) -> Vec<(String, String)> {
        let rows = self.0.borrow();
        let mut all: Vec<_> = rows.iter().map(|(v, (b, t))| (*t, v.clone(), b.clone())).collect();
        all.sort_by_key(|row| std::cmp::Reverse(row.0));
        all.into_iter().map(|(_, v, b)| (v, b)).collect()
    }
}

#[cfg(test)]
impl RecentJobs for MemoryRecentJobs {
    fn put(&self, video: &VideoId, body: &str, at: Timestamp) -> worker::Result<()> {
        self.0.borrow_mut().insert(video.to_string(), (body.into(), at));
        Ok(())
    }

    fn keep_newest(&self, n: usize) -> worker::Result<()> {
        let keep: Vec<String> = self.sorted().into_iter().take(n).map(|(v, _)| v).collect();
        self.0.borrow_mut().retain(|v, _| keep.contains(v));
        Ok(())
    }

    fn remove(&self, video: &VideoId) -> worker::Result<()> {
        self.0.borrow_mut().remove(video.as_str());
        Ok(())
    }

    fn newest_first(&self) -> worker::Result<Vec<String>> {
        Ok(self.sorted().into_iter().map(|(_, b)| b).collect())
    }
}

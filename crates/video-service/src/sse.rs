//! Server-Sent Event streams held by a Durable Object (a video's job
//! object, an app's event hub): the bounded, numbered log of events it
//! replays from ([`EventLog`]), the subscribers it writes frames to, and the
//! `text/event-stream` response each subscriber reads. The frames themselves
//! are `media_core::video::events`'.
//!
//! A stream sends its first bytes at once (the `retry` frame, `connected`,
//! and whatever is replayed), then each frame the object broadcasts, and a
//! `heartbeat` whenever it has been quiet for the heartbeat interval, so
//! proxies keep it open. It ends when the object drops its subscribers
//! (after a terminal event) or is evicted; a client that reconnects with
//! `Last-Event-ID` gets what it missed.

use std::cell::RefCell;
use std::time::Duration;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};
use media_core::video::events::{
    frame, heartbeat, public_stored_data, reset, retry_frame, ResetReason, ResetState, RETRY_MS,
};
use serde::Deserialize;
use worker::{Delay, Headers, Response, SqlStorage, SqlStorageValue};
use worker_kit::clock::now;

/// One frame on its way to subscribers, with its event id.
pub type Frame = (u64, String);

/// The open streams of one object, each with the client address it
/// counts under (for the caps of `media_core::video::events::StreamCaps`).
#[derive(Default)]
pub struct Subscribers(RefCell<Vec<(Option<String>, UnboundedSender<Frame>)>>);

impl Subscribers {
    /// Sends `frame` to every open stream, forgetting the closed ones.
    pub fn broadcast(&self, frame: &Frame) {
        self.0.borrow_mut().retain(|(_, tx)| tx.unbounded_send(frame.clone()).is_ok());
    }

    /// Ends every stream.
    pub fn close_all(&self) {
        self.0.borrow_mut().clear();
    }

    /// How many streams are open, and how many of them from `address`,
    /// after forgetting those whose reader went away (a client that left).
    pub fn open_counts(&self, address: &str) -> (u32, u32) {
        let mut subs = self.0.borrow_mut();
        subs.retain(|(_, tx)| !tx.is_closed());
        let here = subs.iter().filter(|(a, _)| a.as_deref() == Some(address)).count();
        (subs.len() as u32, here as u32)
    }

    /// A new stream that starts with `first` and, when `live`, goes on with
    /// what is broadcast; heartbeats carry `last_id`, then the id of the
    /// last frame sent.
    pub fn open(&self, first: String, last_id: u64, live: bool, heartbeat_ms: u64) -> worker::Result<Response> {
        self.open_from(None, first, last_id, live, heartbeat_ms)
    }

    /// [`Subscribers::open`] for a client counted under `address`.
    pub fn open_from(
        &self,
        address: Option<String>,
        first: String,
        last_id: u64,
        live: bool,
        heartbeat_ms: u64,
    ) -> worker::Result<Response> {
        event_stream(first, self.subscribe(address, live), last_id, heartbeat_ms)
    }

    /// The frames a new stream reads: what is broadcast from now on when
    /// `live`, else nothing (it ends after its first bytes).
    fn subscribe(&self, address: Option<String>, live: bool) -> UnboundedReceiver<Frame> {
        let (tx, rx) = unbounded();
        if live {
            self.0.borrow_mut().push((address, tx));
        }
        rx
    }
}

struct Reader {
    first: Option<String>,
    rx: UnboundedReceiver<Frame>,
    last_id: u64,
    heartbeat_ms: u64,
}

/// The `text/event-stream` response reading `rx`.
fn event_stream(
    first: String,
    rx: UnboundedReceiver<Frame>,
    last_id: u64,
    heartbeat_ms: u64,
) -> worker::Result<Response> {
    let reader = Reader { first: Some(first), rx, last_id, heartbeat_ms };
    let frames = stream::unfold(reader, |mut r| async move {
        if let Some(first) = r.first.take() {
            return Some((Ok::<Vec<u8>, worker::Error>(first.into_bytes()), r));
        }
        let quiet = Delay::from(Duration::from_millis(r.heartbeat_ms));
        let next = match select(r.rx.next(), quiet).await {
            Either::Left((Some((id, text)), _)) => {
                r.last_id = id;
                text
            }
            // The object ended the stream (terminal event) or went away.
            Either::Left((None, _)) => return None,
            Either::Right(_) => {
                let (name, data) = heartbeat(now());
                frame(Some(r.last_id), name, &data.to_string())
            }
        };
        Some((Ok(next.into_bytes()), r))
    });
    Ok(Response::from_stream(frames)?.with_headers(stream_headers()?))
}

/// The headers of an event stream: never cached, never buffered by proxies.
pub fn stream_headers() -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(headers)
}

/// A bounded log of numbered events in an object's storage ([`EventRows`]:
/// the SQLite table `events`, or memory in tests): ids rise by one and
/// never repeat, the oldest beyond `keep` are dropped, and a stream opens
/// with what came after a client's id, or with `reset` when that id is no
/// longer in the log ([`EventLog::since`]).
pub struct EventLog {
    rows: Box<dyn EventRows>,
    keep: u64,
}

/// The table an [`EventLog`] keeps (created with the object's schema).
pub const EVENT_LOG_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL);";

/// One kept event: its id, name and data (JSON text).
pub type StoredEvent = (u64, String, String);

/// Where an [`EventLog`] keeps its events.
pub trait EventRows {
    /// The id of the newest event (0 before any).
    fn max_seq(&self) -> worker::Result<u64>;
    /// The id of the oldest event kept (0 when none is).
    fn min_seq(&self) -> worker::Result<u64>;
    fn insert(&self, seq: u64, name: &str, data: &str) -> worker::Result<()>;
    /// Deletes the events with ids up to `seq`.
    fn delete_through(&self, seq: u64) -> worker::Result<()>;
    /// The events after `seq`, in order.
    fn after(&self, seq: u64) -> worker::Result<Vec<StoredEvent>>;
    /// Replaces the data of the events whose data's `videoId` is `video`.
    fn replace_data_of_video(&self, video: &str, data: &str) -> worker::Result<()>;
}

#[derive(Deserialize)]
struct EventRow {
    seq: f64,
    name: String,
    data: String,
}

impl EventRows for SqlStorage {
    fn max_seq(&self) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Max {
            seq: Option<f64>,
        }
        let rows: Vec<Max> = self.exec("SELECT MAX(seq) AS seq FROM events", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.seq).map_or(0, |s| s as u64))
    }

    fn min_seq(&self) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Min {
            seq: Option<f64>,
        }
        let rows: Vec<Min> = self.exec("SELECT MIN(seq) AS seq FROM events", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.seq).map_or(0, |s| s as u64))
    }

    fn insert(&self, seq: u64, name: &str, data: &str) -> worker::Result<()> {
        self.exec(
            "INSERT INTO events (seq, name, data) VALUES (?, ?, ?)",
            vec![SqlStorageValue::Integer(seq as i64), name.into(), data.into()],
        )?;
        Ok(())
    }

    fn delete_through(&self, seq: u64) -> worker::Result<()> {
        self.exec("DELETE FROM events WHERE seq <= ?", vec![SqlStorageValue::Integer(seq as i64)])?;
        Ok(())
    }

    fn after(&self, seq: u64) -> worker::Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = self
            .exec(
                "SELECT seq, name, data FROM events WHERE seq > ? ORDER BY seq",
                // SQLite's integers stop at 2^63: ids past that are past the end.
                vec![SqlStorageValue::Integer(i64::try_from(seq).unwrap_or(i64::MAX))],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(|r| (r.seq as u64, r.name, r.data)).collect())
    }

    fn replace_data_of_video(&self, video: &str, data: &str) -> worker::Result<()> {
        self.exec(
            "UPDATE events SET data = ? WHERE json_extract(data, '$.videoId') = ?",
            vec![data.into(), video.into()],
        )?;
        Ok(())
    }
}

/// What a stream resuming after an id starts with.
#[derive(Debug, PartialEq)]
pub enum Replay {
    /// The kept events after the id (none missed).
    Events(Vec<StoredEvent>),
    /// The id is not in the log: `reset` (with `newest`, the id to go on
    /// from) instead of a replay with a hole in it.
    Reset { reason: ResetReason, oldest_kept: u64, newest: u64 },
}

impl EventLog {
    pub fn new(sql: SqlStorage, keep: u64) -> Self {
        Self { rows: Box::new(sql), keep }
    }

    /// A log kept in memory, for tests.
    #[cfg(test)]
    pub fn in_memory(keep: u64) -> Self {
        Self { rows: Box::new(memory::MemoryEventRows::default()), keep }
    }

    /// The id of the newest event kept (0 before any).
    pub fn last_id(&self) -> worker::Result<u64> {
        self.rows.max_seq()
    }

    /// Appends events in order, each as public streams may show it
    /// (`public_stored_data`); returns each one's frame with its id, to
    /// broadcast. Drops what falls out of the bound.
    pub fn append<'a>(&self, events: impl IntoIterator<Item = (&'a str, String)>) -> worker::Result<Vec<Frame>> {
        let mut seq = self.last_id()?;
        let mut frames = Vec::new();
        for (name, data) in events {
            seq += 1;
            // What any stream shows, live or replayed (the log keeps nothing else).
            let data = public_stored_data(&data);
            self.rows.insert(seq, name, &data)?;
            frames.push((seq, frame(Some(seq), name, &data)));
        }
        self.rows.delete_through(seq.saturating_sub(self.keep))?;
        Ok(frames)
    }

    /// What a client that saw every event up to `from` is sent: the kept
    /// events after it when none it missed was dropped (`from` is at or
    /// after the oldest kept id minus one), else a reset: `from` is older
    /// than that ([`ResetReason::LastEventIdTooOld`]) or newer than the
    /// newest id ([`ResetReason::LastEventIdUnknown`]: ids of a log that
    /// was wiped since).
    pub fn since(&self, from: u64) -> worker::Result<Replay> {
        let (oldest_kept, newest) = (self.rows.min_seq()?, self.rows.max_seq()?);
        let reason = if from > newest {
            ResetReason::LastEventIdUnknown
        } else if oldest_kept > 0 && from < oldest_kept - 1 {
            ResetReason::LastEventIdTooOld
        } else {
            return Ok(Replay::Events(self.rows.after(from)?));
        };
        Ok(Replay::Reset { reason, oldest_kept, newest })
    }

    /// A stream's first bytes: the `retry` frame, `connected` (carrying
    /// `from`, the resume point) and every kept event after `from`. When
    /// the client resumes (`resumed` holds the present state, given with
    /// its `Last-Event-ID`) from an id that is not in the log
    /// ([`EventLog::since`]), `reset` with that state and the newest id
    /// takes the place of the replay. A new stream (`None`) never resets.
    pub fn opening(
        &self,
        connected: (&str, serde_json::Value),
        from: u64,
        resumed: Option<&ResetState>,
    ) -> worker::Result<String> {
        let mut first = retry_frame(RETRY_MS);
        first.push_str(&frame(Some(from), connected.0, &connected.1.to_string()));
        let replay = match resumed {
            Some(state) => match self.since(from)? {
                Replay::Reset { reason, oldest_kept, newest } => {
                    let (name, data) = reset(reason, oldest_kept, state);
                    first.push_str(&frame(Some(newest), name, &data.to_string()));
                    return Ok(first);
                }
                Replay::Events(events) => events,
            },
            None => self.rows.after(from)?,
        };
        for (seq, name, data) in replay {
            first.push_str(&frame(Some(seq), &name, &public_stored_data(&data)));
        }
        Ok(first)
    }

    /// Replaces the data of every kept event of `video` with `data` (their
    /// ids stay: ids never repeat).
    pub fn replace_data_of_video(&self, video: &str, data: &str) -> worker::Result<()> {
        self.rows.replace_data_of_video(video, data)
    }
}

#[cfg(test)]
mod memory {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::{EventRows, StoredEvent};

    /// Events by id, in memory.
    #[derive(Default)]
    pub struct MemoryEventRows(RefCell<BTreeMap<u64, (String, String)>>);

    impl EventRows for MemoryEventRows {
        fn max_seq(&self) -> worker::Result<u64> {
            Ok(self.0.borrow().keys().next_back().copied().unwrap_or(0))
        }

        fn min_seq(&self) -> worker::Result<u64> {
            Ok(self.0.borrow().keys().next().copied().unwrap_or(0))
        }

        fn insert(&self, seq: u64, name: &str, data: &str) -> worker::Result<()> {
            self.0.borrow_mut().insert(seq, (name.into(), data.into()));
            Ok(())
        }

        fn delete_through(&self, seq: u64) -> worker::Result<()> {
            self.0.borrow_mut().retain(|s, _| *s > seq);
            Ok(())
        }

        fn after(&self, seq: u64) -> worker::Result<Vec<StoredEvent>> {
            let rows = self.0.borrow();
            Ok(rows.range(seq.saturating_add(1)..).map(|(s, (n, d))| (*s, n.clone(), d.clone())).collect())
        }

        fn replace_data_of_video(&self, video: &str, data: &str) -> worker::Result<()> {
            for (_, d) in self.0.borrow_mut().values_mut() {
                let of_video = serde_json::from_str::<serde_json::Value>(d)
                    .is_ok_and(|v| v.get("videoId").and_then(|v| v.as_str()) == Some(video));
                if of_video {
                    *d = data.into();
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use worker_kit::store::memory::block_on;

    use super::*;

    #[test]
    fn broadcast_reaches_every_open_stream_and_forgets_the_closed() {
        let subs = Subscribers::default();
        let mut a = subs.subscribe(Some("1.2.3.4".into()), true);
        let b = subs.subscribe(Some("1.2.3.4".into()), true);
        let mut c = subs.subscribe(None, true);
        let mut replay_only = subs.subscribe(Some("1.2.3.4".into()), false);
        assert_eq!(block_on(replay_only.next()), None, "a stream that is not live ends after its first bytes");
        assert_eq!(subs.open_counts("1.2.3.4"), (3, 2));
        assert_eq!(subs.open_counts("5.6.7.8"), (3, 0));

        drop(b);
        assert_eq!(subs.open_counts("1.2.3.4"), (2, 1), "a client that left is not counted");
        subs.broadcast(&(7, "id: 7\n".into()));
        assert_eq!(block_on(a.next()), Some((7, "id: 7\n".into())));
        assert_eq!(block_on(c.next()), Some((7, "id: 7\n".into())));

        subs.close_all();
        assert_eq!(block_on(a.next()), None, "the object ended the streams");
        assert_eq!(subs.open_counts("1.2.3.4"), (0, 0));
    }

    #[test]
    fn a_log_numbers_its_events_and_replays_after_a_resume_point() {
        let log = EventLog::in_memory(2);
        assert_eq!(log.last_id().unwrap(), 0);
        let frames = log.append([("a", "{}".to_owned()), ("b", "{}".to_owned()), ("c", "{}".to_owned())]).unwrap();
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2, 3]);
        let opening = log.opening(("connected", serde_json::json!({})), 1, None).unwrap();
        assert!(opening.starts_with(&format!("retry: {RETRY_MS}\n\nid: 1\nevent: connected\n")), "{opening}");
        assert!(opening.contains("id: 2\nevent: b\n") && opening.contains("id: 3\nevent: c\n"), "{opening}");
        // Only the last two are kept.
        let opening = log.opening(("connected", serde_json::json!({})), 0, None).unwrap();
        assert!(!opening.contains("event: a\n"), "{opening}");
        // Replays show stored data as public.
        log.append([("job:progress", r#"{"filePath":"/tmp/x","progress":5}"#.to_owned())]).unwrap();
        let opening = log.opening(("connected", serde_json::json!({})), 3, None).unwrap();
        assert!(opening.contains(r#"data: {"progress":5}"#), "{opening}");
    }

    #[test]
    fn an_upload_event_is_logged_and_broadcast_without_its_credentials() {
        let log = EventLog::in_memory(5);
        let body = r#"{"id":"evt_1","type":"upload.created","data":{"id":"upl_1","token":"up1.secret.mac"}}"#;
        let frames = log.append([("upload.created", body.to_owned())]).unwrap();
        assert!(!frames[0].1.contains("up1.secret"), "{}", frames[0].1);
        let replay = log.opening(("connected", serde_json::json!({})), 0, None).unwrap();
        assert!(replay.contains(r#""id":"upl_1""#) && !replay.contains("up1.secret"), "{replay}");
    }

    #[test]
    fn a_resume_point_out_of_the_log_is_a_reset_and_one_in_it_a_replay() {
        let log = EventLog::in_memory(3);
        let events = |n: u64| (0..n).map(|_| ("e", "{}".to_owned())).collect::<Vec<_>>();
        let ids = |r: Replay| match r {
            Replay::Events(events) => events.into_iter().map(|e| e.0).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        // An empty log: id 0 is its start, anything later is unknown.
        assert_eq!(ids(log.since(0).unwrap()), [] as [u64; 0]);
        let unknown = Replay::Reset { reason: ResetReason::LastEventIdUnknown, oldest_kept: 0, newest: 0 };
        assert_eq!(log.since(1).unwrap(), unknown);
        log.append(events(2)).unwrap();
        assert_eq!(ids(log.since(0).unwrap()), [1, 2], "nothing dropped yet");
        log.append(events(4)).unwrap();
        // Ids 4, 5, 6 are kept: a client that saw 3 missed nothing.
        assert_eq!(ids(log.since(3).unwrap()), [4, 5, 6]);
        assert_eq!(ids(log.since(6).unwrap()), [] as [u64; 0]);
        for from in [0, 1, 2] {
            let too_old = Replay::Reset { reason: ResetReason::LastEventIdTooOld, oldest_kept: 4, newest: 6 };
            assert_eq!(log.since(from).unwrap(), too_old, "{from}");
        }
        for from in [7, u64::MAX] {
            let ahead = Replay::Reset { reason: ResetReason::LastEventIdUnknown, oldest_kept: 4, newest: 6 };
            assert_eq!(log.since(from).unwrap(), ahead, "{from}");
        }
    }

    #[test]
    fn a_resuming_stream_out_of_the_log_opens_with_reset_and_the_newest_id() {
        let log = EventLog::in_memory(2);
        let names = ["a", "b", "c", "d"];
        log.append(names.iter().map(|n| (*n, "{}".to_owned()))).unwrap();
        let connected = || ("connected", serde_json::json!({}));
        let state = ResetState::Job(None);
        // Ids 3 and 4 are kept: a client that saw 1 missed 2.
        let opening = log.opening(connected(), 1, Some(&state)).unwrap();
        let (head, data) = opening.split_once("id: 4\nevent: reset\ndata: ").expect("a reset with the newest id");
        assert!(head.ends_with("id: 1\nevent: connected\ndata: {}\n\n"), "right after connected: {opening}");
        let data: serde_json::Value = serde_json::from_str(data.strip_suffix("\n\n").unwrap()).unwrap();
        assert_eq!(data, serde_json::json!({"reason": "last_event_id_too_old", "oldest_kept": 3, "job": null}));
        // A new stream from 0 replays what is kept, without a reset.
        let fresh = log.opening(connected(), 0, None).unwrap();
        assert!(!fresh.contains("event: reset") && fresh.contains("id: 3\nevent: c\n"), "{fresh}");
        // A resume point still in the log replays as before.
        let resumed = log.opening(connected(), 2, Some(&state)).unwrap();
        assert!(!resumed.contains("event: reset") && resumed.ends_with("id: 4\nevent: d\ndata: {}\n\n"), "{resumed}");
        let ahead = log.opening(connected(), 9, Some(&state)).unwrap();
        assert!(ahead.contains("id: 4\nevent: reset\n") && ahead.contains("last_event_id_unknown"), "{ahead}");
    }
}

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
use media_core::video::events::{frame, heartbeat, public_stored_data, retry_frame, RETRY_MS};
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
        let (tx, rx) = unbounded();
        if live {
            self.0.borrow_mut().push((address, tx));
        } else {
            drop(tx);
        }
        event_stream(first, rx, last_id, heartbeat_ms)
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

/// A bounded log of numbered events in an object's SQLite storage (table
/// `events`): ids rise by one and never repeat, the oldest beyond `keep`
/// are dropped, and a stream opens with what came after a client's id.
pub struct EventLog {
    sql: SqlStorage,
    keep: u64,
}

/// The table an [`EventLog`] keeps (created with the object's schema).
pub const EVENT_LOG_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, name TEXT NOT NULL, data TEXT NOT NULL);";

#[derive(Deserialize)]
struct EventRow {
    seq: f64,
    name: String,
    data: String,
}

impl EventLog {
    pub fn new(sql: SqlStorage, keep: u64) -> Self {
        Self { sql, keep }
    }

    /// The id of the newest event kept (0 before any).
    pub fn last_id(&self) -> worker::Result<u64> {
        #[derive(Deserialize)]
        struct Max {
            seq: Option<f64>,
        }
        let rows: Vec<Max> = self.sql.exec("SELECT MAX(seq) AS seq FROM events", None)?.to_array()?;
        Ok(rows.into_iter().next().and_then(|r| r.seq).map_or(0, |s| s as u64))
    }

    /// Appends events in order; returns each one's frame with its id, to
    /// broadcast. Drops what falls out of the bound.
    pub fn append<'a>(&self, events: impl IntoIterator<Item = (&'a str, String)>) -> worker::Result<Vec<Frame>> {
        let mut seq = self.last_id()?;
        let mut frames = Vec::new();
        for (name, data) in events {
            seq += 1;
            self.sql.exec(
                "INSERT INTO events (seq, name, data) VALUES (?, ?, ?)",
                vec![SqlStorageValue::Integer(seq as i64), name.into(), data.as_str().into()],
            )?;
            frames.push((seq, frame(Some(seq), name, &data)));
        }
        self.sql.exec(
            "DELETE FROM events WHERE seq <= ?",
            vec![SqlStorageValue::Integer(seq.saturating_sub(self.keep) as i64)],
        )?;
        Ok(frames)
    }

    /// A stream's first bytes: the `retry` frame, `connected` (carrying
    /// `from`, the resume point) and every kept event after `from`.
    pub fn opening(&self, connected: (&str, serde_json::Value), from: u64) -> worker::Result<String> {
        let mut first = retry_frame(RETRY_MS);
        first.push_str(&frame(Some(from), connected.0, &connected.1.to_string()));
        let rows: Vec<EventRow> = self
            .sql
            .exec(
                "SELECT seq, name, data FROM events WHERE seq > ? ORDER BY seq",
                // SQLite's integers stop at 2^63: ids past that are past the end.
                vec![SqlStorageValue::Integer(i64::try_from(from).unwrap_or(i64::MAX))],
            )?
            .to_array()?;
        for row in &rows {
            first.push_str(&frame(Some(row.seq as u64), &row.name, &public_stored_data(&row.data)));
        }
        Ok(first)
    }
}

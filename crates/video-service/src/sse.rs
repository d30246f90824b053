//! Server-Sent Event streams held by a Durable Object (a video's job
//! object, an app's event hub): the subscribers it writes frames to, and the
//! `text/event-stream` response each subscriber reads. The frames themselves
//! are `media_core::events`'.
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
use media_core::events::{frame, heartbeat};
use worker::{Delay, Headers, Response};
use worker_kit::clock::now;

/// One frame on its way to subscribers, with its event id.
pub type Frame = (u64, String);

/// The open streams of one object.
#[derive(Default)]
pub struct Subscribers(RefCell<Vec<UnboundedSender<Frame>>>);

impl Subscribers {
    /// Sends `frame` to every open stream, forgetting the closed ones.
    pub fn broadcast(&self, frame: &Frame) {
        self.0.borrow_mut().retain(|tx| tx.unbounded_send(frame.clone()).is_ok());
    }

    /// Ends every stream.
    pub fn close_all(&self) {
        self.0.borrow_mut().clear();
    }

    /// A new stream that starts with `first` and, when `live`, goes on with
    /// what is broadcast; heartbeats carry `last_id`, then the id of the
    /// last frame sent.
    pub fn open(&self, first: String, last_id: u64, live: bool, heartbeat_ms: u64) -> worker::Result<Response> {
        let (tx, rx) = unbounded();
        if live {
            self.0.borrow_mut().push(tx);
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

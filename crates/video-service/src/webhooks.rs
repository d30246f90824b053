//! One attempt to deliver a signed webhook: a `POST` of the stored body to
//! its destination with the Standard Webhooks headers `webhook-id`,
//! `webhook-timestamp` (now) and `webhook-signature` (one `v1,` signature
//! per key: `media_core::video::webhook::signature_header`), a timeout, and
//! redirects refused; its answer's status and latency. Which events are
//! sent, to whom and when to try again is the app hub's
//! ([`crate::app_hub`]) and, for a notify's `callback_url`, the video's
//! object's ([`crate::video_job`]).

use std::time::Duration;

use futures_util::future::{select, Either};
use media_core::video::callback::check_url;
use media_core::video::delivery::is_delivered;
use media_core::video::webhook::{signature_header, SigningKey, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};
use worker_kit::clock::now;

/// What one attempt is sent with.
pub struct Attempt<'a> {
    pub event_id: &'a str,
    pub url: &'a str,
    /// The keys it is signed with (two while a secret is rotated).
    pub keys: &'a [SigningKey],
    pub body: &'a str,
    pub timeout_ms: u64,
    /// Development and tests may send to `http://127.0.0.1`.
    pub allow_local_http: bool,
}

/// What an attempt got: the receiver's status (none when it did not
/// answer), how long it took, and `Ok` for a 2xx or why not, in words fit
/// for an API-key route (never the secret, never the receiver's body).
pub struct Sent {
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub outcome: Result<(), String>,
}

/// Sends one attempt.
pub async fn send(a: &Attempt<'_>) -> Sent {
    let started = now();
    let (status, outcome) = post(a).await.unwrap_or_else(|why| (None, Err(why)));
    Sent { status, latency_ms: now().millis_since(started), outcome }
}

async fn post(a: &Attempt<'_>) -> Result<(Option<u16>, Result<(), String>), String> {
    // Checked again at each attempt: the rules may have tightened since.
    check_url(a.url, a.allow_local_http).map_err(|e| e.message)?;
    let unix_s = now().millis() / 1000;
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| format!("header {name}: {e}"));
    set("content-type", "application/json")?;
    set("user-agent", "media-platform-webhooks/1")?;
    set(ID_HEADER, a.event_id)?;
    set(TIMESTAMP_HEADER, &unix_s.to_string())?;
    set(SIGNATURE_HEADER, &signature_header(a.keys, a.event_id, unix_s, a.body.as_bytes()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(a.body.into()))
        .with_redirect(RequestRedirect::Manual);
    let req = Request::new_with_init(a.url, &init).map_err(|e| format!("bad request: {e}"))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let sent = Box::pin(fetch.send_with_signal(&signal));
    let timer = Delay::from(Duration::from_millis(a.timeout_ms));
    let answered = match select(sent, timer).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(_) => None,
    };
    Ok(match answered {
        Some(Ok(resp)) => {
            let status = resp.status_code();
            let outcome = if is_delivered(status) {
                Ok(())
            } else if (300..400).contains(&status) {
                Err(format!("HTTP {status} (redirects are not followed)"))
            } else {
                Err(format!("HTTP {status}"))
            };
            (Some(status), outcome)
        }
        Some(Err(e)) => (None, Err(format!("could not connect: {e}"))),
        None => {
            controller.abort();
            (None, Err(format!("no answer within {} s", a.timeout_ms / 1000)))
        }
    })
}

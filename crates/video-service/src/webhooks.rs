//! One attempt to deliver a signed webhook: a `POST` of the stored body to
//! its destination with `Webhook-Id` and `Webhook-Signature`
//! (`media_core::video::webhook::signature_header`, signed now), a timeout, and
//! redirects refused. Which events are sent, to whom, when to try again and
//! what a job shows of it is the video's object's ([`crate::video_job`]) and
//! `media_core::video::webhook`'s.

use std::time::Duration;

use futures_util::future::{select, Either};
use media_core::video::callback::check_url;
use media_core::video::delivery::is_delivered;
use media_core::video::webhook::{signature_header, ID_HEADER, SIGNATURE_HEADER};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};
use worker_kit::clock::now;

/// What one attempt is sent with.
pub struct Attempt<'a> {
    pub event_id: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub body: &'a str,
    pub timeout_ms: u64,
    /// Development and tests may send to `http://127.0.0.1`.
    pub allow_local_http: bool,
}

/// Sends one attempt. `Ok` when the receiver answered 2xx; otherwise why
/// not, in words fit for `callback_last_error` (never the secret).
pub async fn send(a: &Attempt<'_>) -> Result<(), String> {
    // Checked again at each attempt: the rules may have tightened since.
    check_url(a.url, a.allow_local_http).map_err(|e| e.message)?;
    let unix_s = now().millis() / 1000;
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| format!("header {name}: {e}"));
    set("content-type", "application/json")?;
    set("user-agent", "media-platform-webhooks/1")?;
    set(ID_HEADER, a.event_id)?;
    set(SIGNATURE_HEADER, &signature_header(a.secret, unix_s, a.body.as_bytes()))?;
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
    match answered {
        Some(Ok(resp)) => {
            let status = resp.status_code();
            if is_delivered(status) {
                Ok(())
            } else if (300..400).contains(&status) {
                Err(format!("HTTP {status} (redirects are not followed)"))
            } else {
                Err(format!("HTTP {status}"))
            }
        }
        Some(Err(e)) => Err(format!("could not connect: {e}")),
        None => {
            controller.abort();
            Err(format!("no answer within {} s", a.timeout_ms / 1000))
        }
    }
}

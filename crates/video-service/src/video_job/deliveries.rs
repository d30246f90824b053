//! A video's webhook deliveries to the `callback_url` its notify named
//! ([`plan`]: the announced event's body, signed with the app's
//! `IV_WEBHOOKS` secret; the app's own endpoints, its `IV_WEBHOOKS` url
//! among them, are the app hub's: `crate::app_hub::webhooks`), how each attempt's outcome is recorded with its backoff and
//! jitter ([`record_attempt`], by `media_core::video::delivery::CallbackState`),
//! and what the job shows of the newest event's delivery ([`refresh_callback`]).
//! Sending one attempt is [`crate::webhooks`]'; the shell ([`super`]) sends
//! the due ones from the alarm.

use media_core::video::delivery::{CallbackState, CallbackStatus, DeliveryPolicy};
use media_core::video::job::{Job, JobStatus};
use media_core::video::webhook::EventBody;
use media_core::Timestamp;

use super::store::{Delivery, DueDelivery, JobStore, RowState};
use crate::app_hub::webhooks::Report;
use crate::settings::WebhookSettings;

/// The `meta` key of the notify's `callback_url`.
pub const CALLBACK_URL_KEY: &str = "callback_url";

/// How many due attempts one alarm sends, one after another.
pub const ATTEMPTS_PER_ALARM: u32 = 8;

/// The deliveries announced events call for: one per event to this
/// video's `callback_url`, if it has one, each the event's body (its id is
/// the `webhook-id`, the same the app's endpoints get).
pub fn plan(
    store: &impl JobStore,
    settings: &WebhookSettings,
    job: &Job,
    bodies: &[EventBody],
) -> worker::Result<Vec<Delivery>> {
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    if settings.config.for_app(&job.app_id).is_none() {
        return Ok(Vec::new());
    }
    let Some(url) = store.meta(CALLBACK_URL_KEY)? else { return Ok(Vec::new()) };
    // The four a callback_url got before the catalogue; not `video.created`.
    let out = bodies
        .iter()
        .filter(|b| b.event_type != media_core::catalogue::EventType::VideoCreated)
        .map(|b| Delivery {
            event_id: b.id.clone(),
            dest: "callback",
            kind: b.event_type,
            url: url.clone(),
            body: b.to_json(),
        })
        .collect();
    Ok(out)
}

/// Records an attempt of `d` made at `now`: delivered, or pending until its
/// next attempt (the policy's backoff, spread per event and destination),
/// or failed after the last one.
pub fn record_attempt(
    store: &impl JobStore,
    policy: &DeliveryPolicy,
    now: Timestamp,
    d: &DueDelivery,
    outcome: &Result<(), String>,
) -> worker::Result<Report> {
    let mut state = CallbackState { status: CallbackStatus::Pending, attempts: d.attempts, last_error: None };
    let (row_state, next_at) = match outcome {
        Ok(()) => {
            state.record_delivery();
            (RowState::Delivered, now)
        }
        Err(why) => match state.record_failure(why, policy, now, &format!("{}|{}", d.event_id, d.dest)) {
            Some(next) => (RowState::Pending, next),
            None => (RowState::Failed, now),
        },
    };
    store.record_attempt(&d.event_id, &d.dest, row_state, state.attempts, next_at, state.last_error.as_deref())?;
    match outcome {
        Ok(()) => {
            tracing::info!(event_id = %d.event_id, dest = %d.dest, attempts = state.attempts, "webhook delivered")
        }
        Err(why) => {
            tracing::warn!(event_id = %d.event_id, dest = %d.dest, attempts = state.attempts, state = row_state.as_str(), error = %why, "webhook attempt failed")
        }
    }
    Ok(Report {
        event_id: d.event_id.clone(),
        kind: d.kind.clone(),
        destination: d.dest.clone(),
        state: row_state.as_str(),
        attempts: state.attempts,
        last_error: state.last_error,
    })
}

/// Shows the newest webhook event's delivery in the job (`callback_status`):
/// pending while any destination is, else failed if any failed, else
/// delivered. Answers the job when it changed and is done, whose KV record
/// (what public reads see first) must then be written again.
pub fn refresh_callback(store: &impl JobStore) -> worker::Result<Option<Job>> {
    let rows = store.newest_event_deliveries()?;
    let Some(mut stored) = store.load()? else { return Ok(None) };
    if rows.is_empty() {
        return Ok(None);
    }
    let any = |s: RowState| rows.iter().any(|r| r.state == s);
    let status = if any(RowState::Pending) {
        CallbackStatus::Pending
    } else if any(RowState::Failed) {
        CallbackStatus::Failed
    } else {
        CallbackStatus::Delivered
    };
    let callback = CallbackState {
        status,
        attempts: rows.iter().map(|r| r.attempts).max().unwrap_or(0),
        last_error: rows.iter().filter(|r| r.state != RowState::Delivered).find_map(|r| r.last_error.clone()),
    };
    if stored.job.callback.as_ref() == Some(&callback) {
        return Ok(None);
    }
    stored.job.callback = Some(callback);
    store.save(&stored)?;
    Ok((stored.job.status == JobStatus::Done).then_some(stored.job))
}

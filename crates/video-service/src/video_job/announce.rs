//! Announcing a video's catalogue events (the `crate::video_job` doc's
//! "Announcing"): each event gets an id and its body, goes into the
//! video's event log (`/job-events`) and into the outbox, which the shell
//! hands to the app's hub until the hub has it. Below the commands: both
//! [`super::machine`] and [`super::sessions`] announce through it.

use media_core::catalogue::EventType;
use media_core::ids::{AppId, VideoId};
use media_core::video::webhook::EventBody;
use media_core::Timestamp;

use super::effect::{Cx, Effect, Step};
use super::store::JobStore;
use crate::protocol::app_hub::Announcement;

/// The `meta` key of the app whose hub takes this object's announced events.
pub const APP_KEY: &str = "app_id";
/// How soon the alarm tries again to hand announced events to the app's hub.
pub const ANNOUNCE_RETRY_MS: u64 = 2_000;

/// Announces catalogue events of this video (the `crate::video_job` doc's
/// "Announcing"): each gets an event id and its body ([`EventBody`]), is
/// appended to the video's event log now (`/job-events`, `event:` its
/// type) and kept in the outbox, which [`Effect::FlushAnnouncements`]
/// hands to the app's hub (the app's stream and webhook endpoints); the
/// alarm retries until the hub has it. `data` is public: `/job-events`
/// shows it to anyone with the ids. Creates the tables if needed (an
/// announcement is a write). Returns the bodies (the ids are fresh) and
/// the effects to carry out, in order, after the command's own.
pub fn announce(
    store: &impl JobStore,
    cx: &Cx,
    app: &AppId,
    video: &VideoId,
    events: Vec<(EventType, serde_json::Value)>,
) -> worker::Result<(Vec<EventBody>, Vec<Effect>)> {
    store.ensure_tables()?;
    let announced = announcements(cx, video, events);
    let effects = keep_announced(store, cx, app, &announced)?;
    Ok((announced.into_iter().map(|a| a.body).collect(), effects))
}

/// `Announce`: one event from the Worker ([`announce`]); its body.
pub fn announce_op(
    store: &impl JobStore,
    cx: &Cx,
    app: &AppId,
    video: &VideoId,
    event_type: EventType,
    data: serde_json::Value,
) -> Step<EventBody> {
    let (mut bodies, mut effects) = announce(store, cx, app, video, vec![(event_type, data)])?;
    effects.push(Effect::ScheduleAlarm);
    let body = bodies.pop().expect("one body per event");
    Ok((body, effects))
}

/// Bodies for `events`, with fresh ids.
pub(super) fn announcements(
    cx: &Cx,
    video: &VideoId,
    events: Vec<(EventType, serde_json::Value)>,
) -> Vec<Announcement> {
    events
        .into_iter()
        .map(|(t, data)| Announcement {
            body: EventBody::new(t, (cx.random)(), cx.now, data),
            video_id: Some(video.clone()),
        })
        .collect()
}

/// Writes announcements to the event log and the outbox; the effects that
/// broadcast them and hand them to the hub.
pub(super) fn keep_announced(
    store: &impl JobStore,
    cx: &Cx,
    app: &AppId,
    announced: &[Announcement],
) -> worker::Result<Vec<Effect>> {
    if announced.is_empty() {
        return Ok(Vec::new());
    }
    if store.meta(APP_KEY)?.as_deref() != Some(app.as_str()) {
        store.set_meta(APP_KEY, app.as_str())?;
    }
    let logged: Vec<(&str, String)> =
        announced.iter().map(|a| (a.body.event_type.as_str(), a.body.to_json())).collect();
    let frames = store.append_events(&logged)?;
    store.queue_announcements(announced, cx.now)?;
    Ok(vec![Effect::Broadcast(frames), Effect::FlushAnnouncements])
}

/// The app whose hub takes the outbox, and the announcements it holds.
pub fn outbox(store: &impl JobStore) -> worker::Result<Option<(AppId, Vec<Announcement>)>> {
    let pending = store.pending_announcements()?;
    if pending.is_empty() {
        return Ok(None);
    }
    let app = store.meta(APP_KEY)?.and_then(|a| AppId::parse(&a).ok());
    Ok(app.map(|app| (app, pending)))
}

/// The hub refused or could not be reached at `now`: the outbox is tried
/// again [`ANNOUNCE_RETRY_MS`] later (the alarm, `machine::next_alarm`).
pub fn announcements_refused(store: &impl JobStore, now: Timestamp) -> worker::Result<()> {
    store.defer_announcements(now.plus_millis(ANNOUNCE_RETRY_MS))
}

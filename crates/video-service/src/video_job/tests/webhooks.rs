//! Webhook deliveries to a notify's `callback_url` (the app's own
//! endpoints, its `IV_WEBHOOKS` url among them, are the app hub's):
//! backoff, jitter per event, giving up, what the job shows.

use super::*;

/// A notify naming a `callback_url`.
fn notify_with_callback(w: &World) {
    let op = VideoOp::Notify {
        source: source("raw/app-a/v1/source.mp4", 1_000),
        callback_url: Some("http://127.0.0.1:9/callback".into()),
        playback: Default::default(),
        extras: Default::default(),
    };
    w.call(op).unwrap();
}

#[test]
fn webhook_attempts_back_off_with_jitter_and_give_up() {
    let w = World::with(with_webhooks(10_000));
    notify_with_callback(&w);
    let spec = w.grant().unwrap();
    w.receiver_down.set(true);
    w.complete(&lease_of(&spec)).unwrap();
    assert_eq!(w.job().callback.as_ref().map(|c| c.status), Some(CallbackStatus::Pending));
    let done_at = w.now();
    assert_eq!(w.alarm.get(), Some(done_at.plus_millis(10)), "the first attempt is due at once");
    let row = |w: &World| w.store.deliveries()[0].clone();
    w.run_alarm();
    let (_, _, state, attempts, next, _) = row(&w);
    assert_eq!((state, attempts), (RowState::Pending, 1));
    let wait = next.millis_since(w.now());
    assert!((8_000..12_000).contains(&wait), "10 s ±20%: {wait}");
    assert!(w.alarm.get().is_some_and(|at| at <= next), "the alarm comes back for it");
    // The other event's attempts have their own times: run alarms until this one's second.
    while row(&w).3 < 2 {
        assert!(w.now() < next, "not attempted before its time");
        w.run_alarm();
    }
    let (_, _, state, attempts, next, _) = row(&w);
    assert_eq!((state, attempts), (RowState::Pending, 2));
    let wait = next.millis_since(w.now());
    assert!((16_000..24_000).contains(&wait), "doubled: {wait}");
    while w.alarm.get().is_some() {
        w.run_alarm();
    }
    for (_, _, state, attempts, ..) in w.store.deliveries() {
        assert_eq!((state, attempts), (RowState::Failed, 3), "gave up after its attempts");
    }
    let callback = w.job().callback.unwrap();
    assert_eq!((callback.status, callback.attempts), (CallbackStatus::Failed, 3));
    assert_eq!(callback.last_error.as_deref(), Some("HTTP 503"));
    let record: Job = serde_json::from_str(&w.kv.borrow()["playback/app-a/v1"]).unwrap();
    assert_eq!(record.callback.map(|c| c.status), Some(CallbackStatus::Failed), "the done job's record shows it");
    // Two events (job:playable and job:completed), three attempts each, each shown by the hub.
    assert_eq!(w.hub.borrow().iter().filter(|e| e.starts_with("webhook:")).count(), 6);
}

#[test]
fn the_callback_url_gets_each_event_once_and_the_apps_url_is_left_to_the_hub() {
    let w = World::with(with_webhooks(10_000));
    notify_with_callback(&w);
    let spec = w.grant().unwrap();
    w.receiver_down.set(true);
    w.complete(&lease_of(&spec)).unwrap();
    w.run_alarm();
    let rows = w.store.deliveries();
    let dests: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(dests, ["callback", "callback"], "video.playable and video.ready; not the app's url (the hub's)");
    assert!(rows.iter().all(|r| r.5 == "http://127.0.0.1:9/callback"));
    // The same event ids the hub got: one id per event everywhere.
    let announced: Vec<String> = w.announced.borrow().iter().map(|(id, _)| id.clone()).collect();
    assert!(rows.iter().all(|r| announced.contains(&r.0)), "{rows:?} {announced:?}");
    assert_ne!(rows[0].4, rows[1].4, "spread apart, not back in the same instant");
    // The receiver is back: the newest event shows pending, then delivered.
    w.receiver_down.set(false);
    while w.alarm.get().is_some() {
        w.run_alarm();
    }
    assert_eq!(w.job().callback.map(|c| c.status), Some(CallbackStatus::Delivered));
}

#[test]
fn a_delivered_webhook_shows_in_the_job_and_no_event_without_a_type_is_sent() {
    let w = World::with(with_webhooks(10_000));
    notify_with_callback(&w);
    let spec = w.grant().unwrap();
    w.heartbeat(&lease_of(&spec), 50).unwrap();
    assert!(w.store.deliveries().is_empty(), "created, started and progress send no webhook");
    assert_eq!(w.job().callback, None);
    w.complete(&lease_of(&spec)).unwrap();
    w.run_alarm();
    let callback = w.job().callback.unwrap();
    assert_eq!((callback.status, callback.attempts, callback.last_error), (CallbackStatus::Delivered, 1, None));
}

#[test]
fn only_the_newest_ended_deliveries_are_kept() {
    let w = World::with(with_webhooks(10_000));
    // Every event id queued for delivery, oldest first.
    let mut queued: Vec<String> = Vec::new();
    for n in 0..20 {
        notify_with_callback(&w);
        w.call(VideoOp::Cancel).unwrap();
        for row in w.store.deliveries() {
            if !queued.contains(&row.0) {
                queued.push(row.0);
            }
        }
        w.run_alarm();
        w.advance(1 + n);
    }
    assert_eq!(queued.len(), 20, "one delivery per cancel");
    let rows = w.store.deliveries();
    // Pruned when the next deliveries are queued: the newest 16 rows stay, the last one's among them.
    let kept: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(kept, queued[queued.len() - KEPT_DELIVERIES..], "the newest event ids are the ones kept");
    assert!(rows.iter().all(|r| r.2 == RowState::Delivered));
}

#[test]
fn an_app_without_webhooks_gets_none_even_with_a_callback_url() {
    let w = World::new();
    let op = VideoOp::Notify {
        source: source("raw/app-a/v1/source.mp4", 1_000),
        callback_url: Some("http://127.0.0.1:9/cb".into()),
        playback: Default::default(),
        extras: Default::default(),
    };
    w.call(op).unwrap();
    w.call(VideoOp::Cancel).unwrap();
    assert!(w.store.deliveries().is_empty());
    assert_eq!(w.job().callback, None);
}

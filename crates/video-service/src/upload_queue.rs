//! The queue consumer of R2's event notifications (`UPLOAD_EVENTS`,
//! `docs/operating.md`: a bucket notification on `object-create` under
//! `raw/` feeds a Cloudflare Queue this Worker consumes). Each message is
//! Cloudflare's documented body (`media_core::video::upload::StorageEvent`);
//! a video source written is a trigger of its video's waiting upload, as
//! the browser's completion call is ([`crate::upload_landing::landed`]),
//! so an upload from a client that never calls back still starts its job.
//!
//! Each message is acknowledged on its own: once handled, when it is not
//! ours (another key, a delete, a video with no upload, a body that is not
//! an event), and retried (with a delay) only when storage or the video's
//! object could not be reached. Delivery is at least once; the object
//! starts one job however many messages (and other triggers) arrive.

use media_core::video::upload::{StorageEvent, StorageEventMeaning};
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};
use worker_kit::config::Vars;
use worker_kit::settings::StorageSettings;
use worker_kit::store::AnyStore;
use worker_kit::Failure;

use crate::upload_landing::landed;

/// How long a message whose handling failed waits before it comes again.
const RETRY_DELAY_S: u32 = 10;

/// What handling one message came to.
enum Handled {
    Done,
    Ignored(&'static str),
    Retry(String),
}

/// The `queue` handler: every message of `batch`, acknowledged or retried one by one.
pub async fn consume(batch: MessageBatch<serde_json::Value>, env: &Env) {
    let storage = StorageSettings::load(&Vars(env));
    let store = AnyStore::open(env, &storage);
    for message in batch.raw_iter() {
        let body =
            worker::js_sys::JSON::stringify(&message.body()).ok().and_then(|s| s.as_string()).unwrap_or_default();
        let outcome = match &store {
            Ok(store) => handle(env, store, &body).await,
            Err(e) => Handled::Retry(format!("the store cannot be opened: {e}")),
        };
        match outcome {
            Handled::Done => message.ack(),
            Handled::Ignored(why) => {
                tracing::info!(message_id = %message.id(), why, "storage event ignored");
                message.ack();
            }
            Handled::Retry(problem) => {
                tracing::warn!(message_id = %message.id(), problem, "storage event not handled; retrying");
                message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(RETRY_DELAY_S).build());
            }
        }
    }
}

async fn handle(env: &Env, store: &AnyStore, body: &str) -> Handled {
    let Some(event) = StorageEvent::parse(body) else { return Handled::Ignored("not an R2 event notification") };
    let StorageEventMeaning::SourceLanded { app_id, video_id, key } = event.meaning() else {
        return Handled::Ignored("not a video source written");
    };
    match landed(env, store, &app_id, &video_id, None, &key, None).await {
        Ok(reply) => match reply.upload {
            Some(upload) => {
                tracing::info!(%app_id, %video_id, upload_id = %upload.id, status = upload.status.as_str(), "storage event: upload landed");
                Handled::Done
            }
            None => Handled::Ignored("no upload of that video waits for the file"),
        },
        // The object's own answers (no upload, revoked, errored) are final.
        Err(Failure::Client(e)) => {
            tracing::info!(%app_id, %video_id, code = e.code.as_str(), message = %e.message, "storage event refused");
            Handled::Done
        }
        Err(other) => Handled::Retry(other.report_detail().unwrap_or("unavailable").to_owned()),
    }
}

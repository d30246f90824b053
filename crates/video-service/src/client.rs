//! The Worker's side of the queue: sending a [`QueueCommand`] to the one
//! `JobQueue` Durable Object and reading its answer, relaying its errors.

use media_core::ApiError;
use serde::de::DeserializeOwned;
use worker::{Env, Method, Request, RequestInit};
use worker_kit::Failure;

use crate::queue::{QueueCommand, QUEUE_BINDING, QUEUE_NAME};

/// The queue's raw answer: status and JSON text.
pub struct QueueAnswer {
    pub status: u16,
    pub body: String,
}

pub async fn send(env: &Env, cmd: &QueueCommand) -> Result<QueueAnswer, Failure> {
    let unavailable = |e: worker::Error| Failure::Unavailable { detail: format!("job queue: {e}") };
    let stub = env.durable_object(QUEUE_BINDING)?.id_from_name(QUEUE_NAME)?.get_stub()?;
    let body = serde_json::to_string(cmd).map_err(|e| Failure::internal(format!("queue command: {e}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init("https://queue.internal/", &init)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(unavailable)?;
    let status = resp.status_code();
    let body = resp.text().await.map_err(unavailable)?;
    Ok(QueueAnswer { status, body })
}

/// Sends `cmd` and parses a successful answer as `T`; relays the queue's
/// client errors (404, 409) as they are.
pub async fn ask<T: DeserializeOwned>(env: &Env, cmd: &QueueCommand) -> Result<T, Failure> {
    let answer = send(env, cmd).await?;
    if answer.status == 200 {
        return serde_json::from_str(&answer.body).map_err(|e| Failure::internal(format!("queue answer: {e}")));
    }
    match ApiError::from_json(&answer.body) {
        Some(e) if answer.status < 500 => Err(Failure::Client(e)),
        _ => Err(Failure::internal(format!("queue answered {}: {}", answer.status, answer.body))),
    }
}

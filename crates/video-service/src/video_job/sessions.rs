//! The ledger of one video's resumable upload sessions ([`crate::resumable`]):
//! a `meta` row per session (`upload_session:{id}`, the
//! `media_core::video::upload_session::SessionRecord` as JSON), moved on by
//! `session_step`. Issuing a session is a write (the API key's presign);
//! every other step on an object without tables, or whose video is being
//! deleted, is refused as revoked and creates nothing. A delete wipes the
//! rows with the rest of the object, which is what revokes its tokens.
//! Rows of expired sessions are dropped when the next session is issued.

use media_core::video::upload_session::{session_step, SessionRecord, SessionStep};
use media_core::{ApiError, ErrorCode, Timestamp};

use super::store::JobStore;

/// The `meta` key prefix of the sessions' rows.
const SESSION_PREFIX: &str = "upload_session:";

/// `VideoOp::UploadSession` at `now`: the session's next entry (200), or
/// why not (403, 409).
pub fn step(
    store: &impl JobStore,
    now: Timestamp,
    session: &str,
    step: &SessionStep,
) -> worker::Result<Result<SessionRecord, ApiError>> {
    let key = format!("{SESSION_PREFIX}{session}");
    let record: Option<SessionRecord> = match store.meta(&key)? {
        None => None,
        Some(v) => {
            Some(serde_json::from_str(&v).map_err(|e| worker::Error::RustError(format!("stored session: {e}")))?)
        }
    };
    let next = match session_step(record.as_ref(), step, now) {
        Ok(next) => next,
        Err(e) => return Ok(Err(e)),
    };
    if matches!(step, SessionStep::Issue { .. }) {
        drop_expired(store, now)?;
    }
    if record.as_ref() != Some(&next) {
        let json = serde_json::to_string(&next).map_err(|e| worker::Error::RustError(e.to_string()))?;
        store.set_meta(&key, &json)?;
    }
    Ok(Ok(next))
}

/// Drops the rows of sessions whose token has expired by `now` (the
/// token's own expiry refuses it from then on).
fn drop_expired(store: &impl JobStore, now: Timestamp) -> worker::Result<()> {
    for (key, value) in store.meta_prefixed(SESSION_PREFIX)? {
        let expired = serde_json::from_str::<SessionRecord>(&value).map_or(true, |r| now >= r.expires_at());
        if expired {
            store.delete_meta(&key)?;
        }
    }
    Ok(())
}

/// A session step on an object without tables (no session was ever issued
/// here, or the video was deleted since): refused without creating them,
/// but for an issue, which is a write.
pub fn answer_without_tables(step: &SessionStep, now: Timestamp) -> Option<ApiError> {
    match step {
        SessionStep::Issue { .. } => None,
        _ => Some(revoked(step, now)),
    }
}

/// A session step while the video's tombstone stands: a new session waits
/// for the delete to end; every token of the video is revoked.
pub fn while_deleted(step: &SessionStep, sweep_at: Timestamp, now: Timestamp) -> ApiError {
    match step {
        SessionStep::Issue { .. } => ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the video is being deleted; its last objects are removed at {sweep_at}; ask for an upload after that"
            ),
        ),
        _ => revoked(step, now),
    }
}

fn revoked(step: &SessionStep, now: Timestamp) -> ApiError {
    session_step(None, step, now).expect_err("only an issue is accepted without a ledger entry")
}

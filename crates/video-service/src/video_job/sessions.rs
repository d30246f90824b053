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
use serde::Deserialize;
use worker::Response;
use worker_kit::clock::now;

use super::{failure, VideoJob};

/// The `meta` key prefix of the sessions' rows.
const SESSION_PREFIX: &str = "upload_session:";

impl VideoJob {
    /// `VideoOp::UploadSession`: the session's next entry (200), or why not (403, 409).
    pub(super) fn upload_session(&self, session: &str, step: &SessionStep) -> worker::Result<Response> {
        let key = format!("{SESSION_PREFIX}{session}");
        let record: Option<SessionRecord> = match self.meta(&key)? {
            None => None,
            Some(v) => {
                Some(serde_json::from_str(&v).map_err(|e| worker::Error::RustError(format!("stored session: {e}")))?)
            }
        };
        let next = match session_step(record.as_ref(), step, now()) {
            Ok(next) => next,
            Err(e) => return failure(&e),
        };
        if matches!(step, SessionStep::Issue { .. }) {
            self.drop_expired_sessions()?;
        }
        if record.as_ref() != Some(&next) {
            let json = serde_json::to_string(&next).map_err(|e| worker::Error::RustError(e.to_string()))?;
            self.set_meta(&key, &json)?;
        }
        Response::from_json(&next)
    }

    /// Drops the rows of sessions whose token has expired (the token's own
    /// expiry refuses it from then on).
    fn drop_expired_sessions(&self) -> worker::Result<()> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            value: String,
        }
        let rows: Vec<Row> = self
            .sql()
            .exec("SELECT key, value FROM meta WHERE key LIKE ?", vec![format!("{SESSION_PREFIX}%").into()])?
            .to_array()?;
        let t = now();
        for row in rows {
            let expired = serde_json::from_str::<SessionRecord>(&row.value).map_or(true, |r| t >= r.expires_at());
            if expired {
                self.sql().exec("DELETE FROM meta WHERE key = ?", vec![row.key.into()])?;
            }
        }
        Ok(())
    }
}

/// A session step on an object without tables (no session was ever issued
/// here, or the video was deleted since): refused without creating them,
/// but for an issue, which is a write.
pub(super) fn answer_without_tables(step: &SessionStep) -> Option<worker::Result<Response>> {
    match step {
        SessionStep::Issue { .. } => None,
        _ => Some(failure(&revoked(step))),
    }
}

/// A session step while the video's tombstone stands: a new session waits
/// for the delete to end; every token of the video is revoked.
pub(super) fn while_deleted(step: &SessionStep, sweep_at: Timestamp) -> worker::Result<Response> {
    match step {
        SessionStep::Issue { .. } => failure(&ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the video is being deleted; its last objects are removed at {sweep_at}; ask for an upload after that"
            ),
        )),
        _ => failure(&revoked(step)),
    }
}

fn revoked(step: &SessionStep) -> ApiError {
    session_step(None, step, now()).expect_err("only an issue is accepted without a ledger entry")
}

//! Resumable (multipart) uploads: the rules of an upload session, with no I/O.
//!
//! - A backend asks for a session with the API key; the browser gets an
//!   [`UploadToken`]: the session's claims (app, video, content type, total
//!   size, part size, object key, expiry) signed with HMAC-SHA256. The token
//!   authorises only that upload's calls, and nothing is stored for it.
//! - The parts follow R2's rules ([`PartPlan`]): 5 MiB to 5 GiB each, all
//!   the same size except a smaller last one, at most 10,000. The plan fixes
//!   the part size, so each part's presigned URL binds its exact length and
//!   a part of the wrong size is refused by storage, and a completion is
//!   checked against the declared size before storage is asked
//!   ([`PartPlan::check_complete`]).
//! - Each token is one upload, and can be revoked: it carries a random
//!   session id, and the video's object keeps a ledger entry for it
//!   ([`SessionRecord`], moved on by [`session_step`]): issued, then the one
//!   upload its first create started, then ended. Completing or aborting
//!   that upload ends the session, and deleting the video wipes every
//!   entry, so a token replayed after any of them is refused. A token lives
//!   [`DEFAULT_SESSION_TTL_S`] (6 h) unless configured otherwise.
//! - S3's XML answers to the multipart calls, and the completion body, are
//!   [`crate::http::s3_xml`]'s.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};
use crate::http::s3_xml::{CompletedPart, StoredPart};
use crate::ids::{AppId, VideoId};
use crate::time::Timestamp;

/// The smallest part R2 and S3 accept (but for the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The largest part.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one upload may have.
pub const MAX_PARTS: u64 = 10_000;
/// The part size used unless the file needs larger parts (fewer requests
/// than 5 MiB, small enough to resume cheaply on a phone).
pub const DEFAULT_PART_BYTES: u64 = 16 * 1024 * 1024;
/// The largest object a multipart upload can make on R2 (4.995 TiB).
pub const MAX_MULTIPART_OBJECT_BYTES: u64 = 5_492_282_130_268;
/// The largest single `PUT` R2 and S3 take.
pub const MAX_SINGLE_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Whether a file of `size` bytes may be sent as one presigned `PUT`
/// (`multipart: false`): 413 above [`MAX_SINGLE_PUT_BYTES`], naming the way
/// out. The one rule of both `POST /generate-upload-url` and `POST /uploads`.
pub fn check_single_put(size: u64) -> Result<(), ApiError> {
    if size > MAX_SINGLE_PUT_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("one PUT can carry at most {MAX_SINGLE_PUT_BYTES} bytes; ask for \"multipart\": true"),
        ));
    }
    Ok(())
}

/// How a file of `size` bytes is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub parts: u64,
}

impl PartPlan {
    /// The plan for `size` bytes: [`DEFAULT_PART_BYTES`] parts, or larger
    /// ones (whole MiB) when 10,000 of those would not hold the file.
    pub fn for_size(size: u64) -> Result<PartPlan, ApiError> {
        if size == 0 {
            return Err(ApiError::invalid_field("size must be at least 1 byte for a multipart upload"));
        }
        if size > MAX_MULTIPART_OBJECT_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("size is {size} bytes; one object can be at most {MAX_MULTIPART_OBJECT_BYTES} bytes"),
            ));
        }
        const MIB: u64 = 1024 * 1024;
        let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        let part_size = needed.clamp(DEFAULT_PART_BYTES, MAX_PART_BYTES);
        Ok(PartPlan { size, part_size, parts: size.div_ceil(part_size) })
    }

    /// The exact size part `n` must have, or why `n` is not a part.
    pub fn part_bytes(&self, n: u64) -> Result<u64, ApiError> {
        if n == 0 || n > self.parts {
            return Err(ApiError::invalid_field(format!(
                "part {n} does not exist: this upload has parts 1 to {} of {} bytes",
                self.parts, self.part_size
            )));
        }
        Ok(if n < self.parts { self.part_size } else { self.size - self.part_size * (self.parts - 1) })
    }

    /// Checks a completion before storage is asked: the client names every
    /// part once, with the ETag storage listed, and the stored parts have
    /// the sizes of the plan (so the total is the declared size).
    pub fn check_complete(&self, stored: &[StoredPart], named: &[CompletedPart]) -> Result<(), ApiError> {
        let missing: Vec<u64> = (1..=self.parts).filter(|n| !stored.iter().any(|p| p.part_number == *n)).collect();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(10).map(u64::to_string).collect();
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "{} of {} parts are not uploaded yet (parts {}{}); upload them, then complete",
                    missing.len(),
                    self.parts,
                    shown.join(", "),
                    if missing.len() > 10 { ", ..." } else { "" }
                ),
            ));
        }
        for part in stored {
            let want = self.part_bytes(part.part_number)?;
            if part.size != want {
                return Err(ApiError::invalid_field(format!(
                    "part {} is {} bytes; it must be {want} (every part but the last is {} bytes)",
                    part.part_number, part.size, self.part_size
                )));
            }
        }
        if named.len() as u64 != self.parts {
            return Err(ApiError::invalid_field(format!(
                "name all {} parts, each once, with their ETags; {} were named",
                self.parts,
                named.len()
            )));
        }
        for (i, part) in named.iter().enumerate() {
            let n = i as u64 + 1;
            let Some(stored) = stored.iter().find(|p| p.part_number == n) else { unreachable!("checked above") };
            if part.part_number != n {
                return Err(ApiError::invalid_field(format!(
                    "parts must be named in order: entry {n} is part {}",
                    part.part_number
                )));
            }
            if part.etag.trim_matches('"') != stored.etag.trim_matches('"') {
                return Err(ApiError::invalid_field(format!(
                    "part {n}'s ETag is {:?}, not {:?}: upload it again or name the stored one",
                    stored.etag, part.etag
                )));
            }
        }
        Ok(())
    }
}

/// How long an upload session's token lasts by default: a multi-gigabyte
/// file over a slow phone link, with pauses, fits; a token that leaked is
/// dead the same working day. (Each part's URL is signed for 15 minutes.)
pub const DEFAULT_SESSION_TTL_S: u64 = 6 * 60 * 60;

/// What an upload token allows: one upload, of one file, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadClaims {
    /// The session's id (random): its entry in the video's ledger.
    pub id: String,
    pub app_id: AppId,
    pub video_id: VideoId,
    pub content_type: String,
    /// The object key the upload writes (`raw/{app}/{video}/source.{ext}`).
    pub key: String,
    pub plan: PartPlan,
    pub expires_at: Timestamp,
}

/// A signed upload token: `up1.{hex(JSON claims)}.{hex(HMAC-SHA256)}`.
pub struct UploadToken;

const TOKEN_PREFIX: &str = "up1";

impl UploadToken {
    /// The token for `claims`, signed with `secret`.
    pub fn sign(claims: &UploadClaims, secret: &[u8]) -> String {
        let body = hex::encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{TOKEN_PREFIX}.{body}");
        format!("{signed}.{}", hex::encode(mac(secret, signed.as_bytes())))
    }

    /// The claims of a token this service signed and that has not expired;
    /// 403 for anything else (another service's, altered, or expired).
    pub fn verify(token: &str, secret: &[u8], now: Timestamp) -> Result<UploadClaims, ApiError> {
        let refuse = |why: &str| ApiError::new(ErrorCode::Forbidden, format!("this upload token {why}"));
        let (signed, signature) = token.rsplit_once('.').ok_or_else(|| refuse("is malformed"))?;
        let (prefix, body) = signed.split_once('.').ok_or_else(|| refuse("is malformed"))?;
        if prefix != TOKEN_PREFIX {
            return Err(refuse("is malformed"));
        }
        let given = hex::decode(signature).map_err(|_| refuse("is malformed"))?;
        let mut check = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        check.update(signed.as_bytes());
        check.verify_slice(&given).map_err(|_| refuse("was not issued here (or was altered)"))?;
        let bytes = hex::decode(body).map_err(|_| refuse("is malformed"))?;
        let claims: UploadClaims = serde_json::from_slice(&bytes).map_err(|_| refuse("is malformed"))?;
        if now >= claims.expires_at {
            return Err(refuse(&format!(
                "expired at {}; ask your backend for a new upload session (parts already stored are kept until the upload is aborted or cleaned up)",
                claims.expires_at
            )));
        }
        Ok(claims)
    }
}

fn mac(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

// ---- the ledger --------------------------------------------------------------

/// How an upload session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    Completed,
    Aborted,
    /// Its upload object was cancelled (`DELETE /uploads/{id}`).
    Cancelled,
    /// Its upload object timed out.
    TimedOut,
}

impl SessionEnd {
    fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Completed => "completed",
            SessionEnd::Aborted => "aborted",
            SessionEnd::Cancelled => "cancelled",
            SessionEnd::TimedOut => "timed out",
        }
    }
}

/// What the video's object keeps of one upload session, until its token expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionRecord {
    /// Issued; no upload started yet.
    Issued {
        #[serde(with = "crate::time::epoch_millis")]
        expires_at: Timestamp,
    },
    /// Its one create is under way at storage, since `since`.
    Starting {
        #[serde(with = "crate::time::epoch_millis")]
        expires_at: Timestamp,
        #[serde(with = "crate::time::epoch_millis")]
        since: Timestamp,
    },
    /// The one upload the token may use.
    Open {
        #[serde(with = "crate::time::epoch_millis")]
        expires_at: Timestamp,
        upload_id: String,
    },
    /// Completed or aborted: the token is revoked.
    Ended {
        #[serde(with = "crate::time::epoch_millis")]
        expires_at: Timestamp,
        how: SessionEnd,
    },
}

impl SessionRecord {
    /// When the token expires; after that the entry can go (the token's own
    /// expiry refuses it).
    pub fn expires_at(&self) -> Timestamp {
        match self {
            SessionRecord::Issued { expires_at }
            | SessionRecord::Starting { expires_at, .. }
            | SessionRecord::Open { expires_at, .. }
            | SessionRecord::Ended { expires_at, .. } => *expires_at,
        }
    }
}

/// A step of an upload session, as its routes take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SessionStep {
    /// `POST /generate-upload-url` issued the token.
    Issue {
        #[serde(with = "crate::time::epoch_millis")]
        expires_at: Timestamp,
    },
    /// `POST .../s3/multipart`, before storage is asked.
    Start,
    /// Storage started the upload `upload_id`.
    Started { upload_id: String },
    /// Storage could not start it: the token may try again.
    StartFailed,
    /// Listing parts, signing parts, or completing or aborting (before
    /// storage is asked): `upload_id` must be the session's.
    Use { upload_id: String },
    /// Storage completed or aborted the session's upload: the token is revoked.
    End { upload_id: String, how: SessionEnd },
    /// Its upload object was cancelled or timed out: the token is revoked,
    /// whatever upload it started.
    Revoke { how: SessionEnd },
}

/// A create that has not reported back within this long (its Worker went
/// away mid-call) no longer holds the session: the token may create again.
pub const START_STALE_MS: u64 = 60_000;

/// The session's entry after `step`, or why the step is refused. `record`
/// is `None` when the video's object knows no such session: the video was
/// deleted since (a delete wipes every entry), or the token was never
/// issued here. Refusals are 403 for a token that no longer (or never)
/// allows the call, 409 for a second upload with the same token.
pub fn session_step(
    record: Option<&SessionRecord>,
    step: &SessionStep,
    now: Timestamp,
) -> Result<SessionRecord, ApiError> {
    let forbidden = |why: String| ApiError::new(ErrorCode::Forbidden, why);
    let Some(record) = record else {
        if let SessionStep::Issue { expires_at } = step {
            return Ok(SessionRecord::Issued { expires_at: *expires_at });
        }
        return Err(forbidden(
            "this upload token was revoked: its video was deleted (or the token was never issued here); \
             ask your backend for a new upload session"
                .into(),
        ));
    };
    let expires_at = record.expires_at();
    if let SessionRecord::Ended { how, .. } = record {
        return Err(forbidden(format!(
            "this upload token was revoked: its upload was {}, which ends the session; \
             ask your backend for a new upload session",
            how.as_str()
        )));
    }
    let started_already = |upload_id: &str| {
        ApiError::new(
            ErrorCode::Conflict,
            format!(
                "this upload token already started upload {upload_id:?}, and a token starts one upload only: \
                 resume it (GET {{endpoint}}/s3/multipart/{{uploadId}}?key=... lists the stored parts), \
                 or abort it and ask your backend for a new upload session"
            ),
        )
    };
    let not_ours = |upload_id: &str| {
        forbidden(format!(
            "this upload token does not allow upload {upload_id:?}: a token allows only the one upload it started \
             (POST {{endpoint}}/s3/multipart)"
        ))
    };
    match (record, step) {
        (_, SessionStep::Issue { .. }) => {
            Err(ApiError::new(ErrorCode::Conflict, "this upload session was issued already"))
        }
        (SessionRecord::Issued { .. }, SessionStep::Start) => Ok(SessionRecord::Starting { expires_at, since: now }),
        (SessionRecord::Starting { since, .. }, SessionStep::Start) => {
            if now.millis_since(*since) < START_STALE_MS {
                Err(ApiError::new(
                    ErrorCode::Conflict,
                    "an upload is being started with this token already, and a token starts one upload only; \
                     wait for its answer",
                ))
            } else {
                Ok(SessionRecord::Starting { expires_at, since: now })
            }
        }
        (SessionRecord::Open { upload_id, .. }, SessionStep::Start) => Err(started_already(upload_id)),
        (SessionRecord::Starting { .. }, SessionStep::Started { upload_id }) => {
            Ok(SessionRecord::Open { expires_at, upload_id: upload_id.clone() })
        }
        (SessionRecord::Open { upload_id, .. }, SessionStep::Started { .. }) => Err(started_already(upload_id)),
        (SessionRecord::Issued { .. }, SessionStep::Started { upload_id }) => Err(not_ours(upload_id)),
        (SessionRecord::Starting { .. }, SessionStep::StartFailed) => Ok(SessionRecord::Issued { expires_at }),
        (_, SessionStep::StartFailed) => Ok(record.clone()),
        (SessionRecord::Open { upload_id: ours, .. }, SessionStep::Use { upload_id }) if ours == upload_id => {
            Ok(record.clone())
        }
        (SessionRecord::Open { upload_id: ours, .. }, SessionStep::End { upload_id, how }) if ours == upload_id => {
            Ok(SessionRecord::Ended { expires_at, how: *how })
        }
        (_, SessionStep::Use { upload_id } | SessionStep::End { upload_id, .. }) => Err(not_ours(upload_id)),
        (_, SessionStep::Revoke { how }) => Ok(SessionRecord::Ended { expires_at, how: *how }),
        (SessionRecord::Ended { .. }, _) => unreachable!("answered above"),
    }
}

/// The key upload tokens are signed with, derived from a secret the
/// service already has (the storage secret) so that no new secret is needed
/// and the storage secret itself signs nothing but storage requests.
pub fn token_key(storage_secret: &str) -> Vec<u8> {
    mac(storage_secret.as_bytes(), b"media-platform upload tokens v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn one_put_carries_at_most_5_gib() {
        assert_eq!(check_single_put(MAX_SINGLE_PUT_BYTES), Ok(()));
        let e = check_single_put(MAX_SINGLE_PUT_BYTES + 1).unwrap_err();
        assert_eq!((e.status(), e.code), (413, ErrorCode::PayloadTooLarge));
        assert!(e.message.contains("\"multipart\": true"), "{}", e.message);
    }

    #[test]
    fn plans_follow_r2s_part_rules() {
        let p = PartPlan::for_size(100 * MIB + 5).unwrap();
        assert_eq!((p.part_size, p.parts), (16 * MIB, 7));
        assert_eq!(p.part_bytes(1).unwrap(), 16 * MIB);
        assert_eq!(p.part_bytes(7).unwrap(), 100 * MIB + 5 - 6 * 16 * MIB);
        assert_eq!(p.part_bytes(8).unwrap_err().status(), 400);
        assert_eq!(p.part_bytes(0).unwrap_err().status(), 400);
        // A small file is one (short) part.
        assert_eq!(PartPlan::for_size(10).unwrap().parts, 1);
        // 6 GiB: 16 MiB parts, 384 of them.
        assert_eq!(PartPlan::for_size(6 * 1024 * MIB).unwrap().parts, 384);
        // A file that would need more than 10,000 default parts gets larger ones, in whole MiB.
        let big = PartPlan::for_size(1_000_000 * MIB).unwrap();
        assert!(
            big.parts <= MAX_PARTS && big.part_size.is_multiple_of(MIB) && big.part_size >= MIN_PART_BYTES,
            "{big:?}"
        );
        let max = PartPlan::for_size(MAX_MULTIPART_OBJECT_BYTES).unwrap();
        assert!(max.parts <= MAX_PARTS && max.part_size <= MAX_PART_BYTES, "{max:?}");
        assert_eq!(PartPlan::for_size(MAX_MULTIPART_OBJECT_BYTES + 1).unwrap_err().status(), 413);
        assert_eq!(PartPlan::for_size(0).unwrap_err().status(), 400);
    }

    fn stored(n: u64, size: u64) -> StoredPart {
        StoredPart { part_number: n, size, etag: format!("\"e{n}\"") }
    }

    fn named(n: u64) -> CompletedPart {
        CompletedPart { part_number: n, etag: format!("\"e{n}\"") }
    }

    #[test]
    fn a_completion_is_checked_before_storage_is_asked() {
        let plan = PartPlan { size: 40, part_size: 16, parts: 3 };
        let all = [stored(1, 16), stored(2, 16), stored(3, 8)];
        let names = [named(1), named(2), named(3)];
        assert_eq!(plan.check_complete(&all, &names), Ok(()));
        let e = plan.check_complete(&all[..2], &names).unwrap_err();
        assert_eq!(e.status(), 409);
        assert!(e.message.contains("1 of 3 parts are not uploaded yet (parts 3)"), "{}", e.message);
        let e = plan.check_complete(&[stored(1, 16), stored(2, 15), stored(3, 8)], &names).unwrap_err();
        assert!(e.message.contains("part 2 is 15 bytes; it must be 16"), "{}", e.message);
        let e = plan.check_complete(&all, &names[..2]).unwrap_err();
        assert!(e.message.contains("name all 3 parts"), "{}", e.message);
        let e = plan.check_complete(&all, &[named(1), named(3), named(2)]).unwrap_err();
        assert!(e.message.contains("in order"), "{}", e.message);
        let mut wrong = names.clone();
        wrong[1].etag = "\"zz\"".into();
        assert!(plan.check_complete(&all, &wrong).unwrap_err().message.contains("part 2's ETag"));
        // Unquoted ETags (as some clients send them) match quoted ones.
        let unquoted = [1, 2, 3].map(|n| CompletedPart { part_number: n, etag: format!("e{n}") });
        assert_eq!(plan.check_complete(&all, &unquoted), Ok(()));
    }

    fn claims(expires_at: Timestamp) -> UploadClaims {
        UploadClaims {
            id: "5e55".into(),
            app_id: AppId::parse("app").unwrap(),
            video_id: VideoId::parse("vid").unwrap(),
            content_type: "video/mp4".into(),
            key: "raw/app/vid/source.mp4".into(),
            plan: PartPlan::for_size(100).unwrap(),
            expires_at,
        }
    }

    #[test]
    fn tokens_authorise_one_upload_until_they_expire() {
        let t = Timestamp::from_secs(1_700_000_000);
        let key = token_key("storage-secret");
        let token = UploadToken::sign(&claims(t.plus_secs(60)), &key);
        assert!(token.starts_with("up1."));
        assert_eq!(UploadToken::verify(&token, &key, t).unwrap(), claims(t.plus_secs(60)));
        let expired = UploadToken::verify(&token, &key, t.plus_secs(60)).unwrap_err();
        assert_eq!(expired.status(), 403);
        assert!(expired.message.contains("expired"), "{}", expired.message);
        let foreign = UploadToken::verify(&token, &token_key("another"), t).unwrap_err();
        assert!(foreign.message.contains("was not issued here"), "{}", foreign.message);
        // Claims changed under the signature (another video) are refused.
        let (prefix_body, sig) = token.rsplit_once('.').unwrap();
        let mut forged = claims(t.plus_secs(60));
        forged.video_id = VideoId::parse("other").unwrap();
        let body = hex::encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("up1.{body}.{sig}");
        assert_ne!(prefix_body, format!("up1.{body}"));
        assert!(UploadToken::verify(&tampered, &key, t).is_err());
        for bad in ["", "up1", "up1.zz.zz", "up2.00.00", "x.y.z"] {
            assert_eq!(UploadToken::verify(bad, &key, t).unwrap_err().status(), 403, "{bad}");
        }
        assert_ne!(token_key("a"), token_key("b"));
    }

    #[test]
    fn a_token_starts_one_upload_and_is_revoked_when_it_ends() {
        let t = Timestamp::from_secs(1_700_000_000);
        let exp = t.plus_secs(3600);
        let step = |r: Option<&SessionRecord>, s: SessionStep| session_step(r, &s, t);
        let use_ = |id: &str| SessionStep::Use { upload_id: id.into() };
        let issued = step(None, SessionStep::Issue { expires_at: exp }).unwrap();
        assert_eq!(issued, SessionRecord::Issued { expires_at: exp });
        assert_eq!(step(Some(&issued), SessionStep::Issue { expires_at: exp }).unwrap_err().status(), 409);
        // Nothing to use before a create; another session's upload is not this token's.
        assert_eq!(step(Some(&issued), use_("u1")).unwrap_err().status(), 403);
        let starting = step(Some(&issued), SessionStep::Start).unwrap();
        assert_eq!(starting, SessionRecord::Starting { expires_at: exp, since: t });
        // A second create while the first is at storage, and after it: 409.
        assert_eq!(step(Some(&starting), SessionStep::Start).unwrap_err().status(), 409);
        // A create whose Worker went away frees the session after a minute; a failed one at once.
        let later = t.plus_millis(START_STALE_MS);
        assert!(matches!(
            session_step(Some(&starting), &SessionStep::Start, later),
            Ok(SessionRecord::Starting { .. })
        ));
        assert_eq!(step(Some(&starting), SessionStep::StartFailed).unwrap(), issued);
        let open = step(Some(&starting), SessionStep::Started { upload_id: "u1".into() }).unwrap();
        assert_eq!(open, SessionRecord::Open { expires_at: exp, upload_id: "u1".into() });
        let again = step(Some(&open), SessionStep::Start).unwrap_err();
        assert_eq!(again.status(), 409);
        assert!(
            again.message.contains("already started upload \"u1\"") && again.message.contains("one upload only"),
            "{}",
            again.message
        );
        // A late start of another create (after a stale one) loses: its upload is aborted by the caller.
        assert_eq!(step(Some(&open), SessionStep::Started { upload_id: "u2".into() }).unwrap_err().status(), 409);
        assert_eq!(step(Some(&open), use_("u1")).unwrap(), open);
        let foreign = step(Some(&open), use_("u9")).unwrap_err();
        assert_eq!(foreign.status(), 403);
        assert!(foreign.message.contains("only the one upload it started"), "{}", foreign.message);
        let end = |how| SessionStep::End { upload_id: "u1".into(), how };
        assert_eq!(
            step(Some(&open), SessionStep::End { upload_id: "u9".into(), how: SessionEnd::Aborted })
                .unwrap_err()
                .status(),
            403
        );
        for how in [SessionEnd::Completed, SessionEnd::Aborted] {
            let ended = step(Some(&open), end(how)).unwrap();
            assert_eq!(ended, SessionRecord::Ended { expires_at: exp, how });
            for s in [SessionStep::Start, use_("u1"), end(how), SessionStep::Started { upload_id: "u1".into() }] {
                let e = step(Some(&ended), s).unwrap_err();
                assert_eq!(e.status(), 403);
                assert!(e.message.contains(&format!("its upload was {}", how.as_str())), "{}", e.message);
            }
        }
        // An upload object cancelled or timed out revokes its session, whatever it had started.
        for (record, how) in [(&issued, SessionEnd::Cancelled), (&open, SessionEnd::TimedOut)] {
            let ended = step(Some(record), SessionStep::Revoke { how }).unwrap();
            assert_eq!(ended, SessionRecord::Ended { expires_at: exp, how });
            let e = step(Some(&ended), use_("u1")).unwrap_err();
            assert_eq!(e.status(), 403);
            assert!(e.message.contains(&format!("its upload was {}", how.as_str())), "{}", e.message);
        }
        // A deleted video's object knows no session: every step but an issue is refused.
        for s in [SessionStep::Start, use_("u1"), end(SessionEnd::Completed), SessionStep::StartFailed] {
            let e = step(None, s).unwrap_err();
            assert_eq!(e.status(), 403);
            assert!(e.message.contains("its video was deleted"), "{}", e.message);
        }
        // Stored as JSON with times in ms.
        let json = serde_json::to_string(&open).unwrap();
        assert_eq!(json, format!(r#"{{"state":"open","expires_at":{},"upload_id":"u1"}}"#, exp.millis()));
        assert_eq!(serde_json::from_str::<SessionRecord>(&json).unwrap(), open);
    }
}

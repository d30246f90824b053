//! Signed URLs of private images (the reference is Cloudflare Images'
//! `requireSignedURLs`): the rules, with no I/O.
//!
//! An image that requires signed URLs is served (original and every
//! variant) only to a request whose query carries `exp` (a unix time, in
//! seconds, not yet passed) and `sig`: the lowercase hex HMAC-SHA256, keyed
//! with the UTF-8 bytes of one of the app's URL-signing secrets, of the
//! **canonical string**:
//!
//! ```text
//! {path}?{query without sig}
//! ```
//!
//! `{path}` is the URL's path exactly as sent (percent-encoding and all,
//! no origin), and `{query without sig}` is the query exactly as sent with
//! the one `sig=...` parameter taken out, the other parameters (`exp`
//! among them) in their order and spelling, joined with `&`. In Node,
//! `u.searchParams.set("exp", exp)`, then `u.pathname + "?" +
//! u.searchParams.toString()` is that string, and
//! `u.searchParams.set("sig", hex)` gives the URL to hand out.
//!
//! The secrets are an app's [`UrlSigningKeys`]: the current one, and after
//! a rotation the previous one until its grace ends (the same rule as
//! webhook secrets, [`crate::video::endpoint::rotation_grace`]).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};
use crate::time::Timestamp;

/// The query parameter carrying the signature.
pub const SIG_PARAM: &str = "sig";
/// The query parameter carrying the expiry (unix seconds).
pub const EXP_PARAM: &str = "exp";

/// A request's `exp`/`sig`, read from its path and raw query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedQuery {
    /// What the signature covers ([`canonical_string`]).
    pub canonical: String,
    /// When the URL stops working (unix seconds).
    pub exp: u64,
    sig: Vec<u8>,
}

/// Why a signed URL is refused: 401 `invalid_token`, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the URL has {has} but no {missing}; a signed URL carries both exp and sig")]
    Incomplete { has: &'static str, missing: &'static str },
    #[error("the URL has more than one {0} parameter")]
    Repeated(&'static str),
    #[error("exp must be a unix time in seconds (digits only)")]
    BadExp,
    #[error("sig must be 64 hex digits (an HMAC-SHA256)")]
    BadSig,
    #[error("the URL expired at {0} (exp); sign a new one")]
    Expired(Timestamp),
    #[error("the signature does not match this URL under any of the app's URL-signing secrets (altered, or signed with a secret that was rotated out)")]
    Mismatch,
    #[error("the app has no URL-signing secret; create one with POST /url-signing-keys")]
    NoSecret,
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> ApiError {
        ApiError::new(ErrorCode::InvalidToken, format!("invalid signed URL: {e}"))
    }
}

/// The answer to an unsigned request for an image that requires signed URLs.
pub fn signed_url_required() -> ApiError {
    ApiError::new(
        ErrorCode::SignedUrlRequired,
        "this image requires a signed URL: add exp (unix seconds) and sig (hex HMAC-SHA256 of \
         \"{path}?{query without sig}\" keyed with the app's URL-signing secret, from POST /url-signing-keys) \
         to the query; see docs/image-api.md#private-images",
    )
}

/// The canonical string of `path` and `raw_query` (without the leading `?`):
/// the path, `?`, and the query's parameters other than `sig`, as sent and
/// in order, joined with `&`.
pub fn canonical_string(path: &str, raw_query: Option<&str>) -> String {
    let rest: Vec<&str> =
        raw_query.unwrap_or("").split('&').filter(|pair| !pair.is_empty() && param_name(pair) != SIG_PARAM).collect();
    format!("{path}?{}", rest.join("&"))
}

fn param_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

/// The request's signature parts: `Ok(None)` when its query has neither
/// `exp` nor `sig` (an unsigned request), an error when they are there but
/// malformed, incomplete or repeated.
pub fn parse(path: &str, raw_query: Option<&str>) -> Result<Option<SignedQuery>, SignatureError> {
    let (mut exp, mut sig) = (None, None);
    for pair in raw_query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            EXP_PARAM => &mut exp,
            SIG_PARAM => &mut sig,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SignatureError::Repeated(if name == EXP_PARAM { EXP_PARAM } else { SIG_PARAM }));
        }
    }
    let (exp, sig) = match (exp, sig) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(SignatureError::Incomplete { has: EXP_PARAM, missing: SIG_PARAM }),
        (None, Some(_)) => return Err(SignatureError::Incomplete { has: SIG_PARAM, missing: EXP_PARAM }),
        (Some(e), Some(s)) => (e, s),
    };
    if exp.is_empty() || exp.len() > 12 || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadExp);
    }
    let exp = exp.parse().map_err(|_| SignatureError::BadExp)?;
    if sig.len() != 64 {
        return Err(SignatureError::BadSig);
    }
    let sig = hex::decode(sig).map_err(|_| SignatureError::BadSig)?;
    Ok(Some(SignedQuery { canonical: canonical_string(path, raw_query), exp, sig }))
}

impl SignedQuery {
    /// Accepts the URL when `exp` has not passed at `now` and the signature
    /// is one of `secrets`' (compared in constant time).
    pub fn verify<'s>(&self, secrets: impl IntoIterator<Item = &'s str>, now: Timestamp) -> Result<(), SignatureError> {
        if now.secs() >= self.exp {
            return Err(SignatureError::Expired(Timestamp::from_secs(self.exp)));
        }
        let mut any = false;
        for secret in secrets {
            any = true;
            let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
            m.update(self.canonical.as_bytes());
            if m.verify_slice(&self.sig).is_ok() {
                return Ok(());
            }
        }
        Err(if any { SignatureError::Mismatch } else { SignatureError::NoSecret })
    }
}

/// The `sig` of `canonical` under `secret` (what an app backend computes).
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(canonical.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// One URL-signing secret of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKey {
    /// `usk_` and 24 hex digits: names the secret in lists (never the secret).
    pub id: String,
    pub secret: String,
    pub created_at: Timestamp,
    /// Set when the key was rotated out: it signs until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// An app's URL-signing secrets: the current one first, then at most one
/// rotated out and still in its grace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSigningKeys {
    pub keys: Vec<UrlSigningKey>,
}

/// The prefix of key ids.
pub const KEY_ID_PREFIX: &str = "usk_";
/// The prefix of secrets (so a leaked one is recognisable in code scans).
pub const SECRET_PREFIX: &str = "uss_";

/// A key id from 12 random bytes.
pub fn key_id(random: [u8; 12]) -> String {
    format!("{KEY_ID_PREFIX}{}", hex::encode(random))
}

/// A secret from 32 random bytes.
pub fn secret(random: [u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", hex::encode(random))
}

impl UrlSigningKeys {
    /// Makes `new` the current key. The current one, if any, keeps signing
    /// for `grace_s` more seconds (none with 0); keys rotated out earlier,
    /// or past their grace, are dropped. Returns the rotated-out key's id and
    /// the end of its grace, if one is kept.
    pub fn rotate(&mut self, new: UrlSigningKey, grace_s: u64, now: Timestamp) -> Option<(String, Timestamp)> {
        let previous = self.keys.drain(..).find(|k| k.expires_at.is_none());
        self.keys.push(new);
        let mut old = previous.filter(|_| grace_s > 0)?;
        let until = now.plus_secs(grace_s);
        old.expires_at = Some(until);
        let id = old.id.clone();
        self.keys.push(old);
        Some((id, until))
    }

    /// The secrets a URL may be signed with at `now`.
    pub fn secrets(&self, now: Timestamp) -> impl Iterator<Item = &str> {
        self.keys.iter().filter(move |k| k.expires_at.is_none_or(|t| now < t)).map(|k| k.secret.as_str())
    }

    /// The keys still signing at `now` (for lists: the caller leaves the secrets out).
    pub fn live(&self, now: Timestamp) -> impl Iterator<Item = &UrlSigningKey> {
        self.keys.iter().filter(move |k| k.expires_at.is_none_or(|t| now < t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "uss_test";
    const T: u64 = 1_800_000_000;

    fn signed(path: &str, query: &str, secret: &str) -> String {
        format!("{query}&sig={}", sign(secret, &canonical_string(path, Some(query))))
    }

    #[test]
    fn the_canonical_string_is_the_path_and_the_query_without_sig_as_sent() {
        assert_eq!(canonical_string("/assets/images/a/i", Some("exp=5")), "/assets/images/a/i?exp=5");
        assert_eq!(canonical_string("/assets/images/a/i", Some("sig=ab&exp=5")), "/assets/images/a/i?exp=5");
        assert_eq!(canonical_string("/p", Some("v=%2F1&exp=5&sig=00&x")), "/p?v=%2F1&exp=5&x");
        assert_eq!(canonical_string("/p", None), "/p?");
        // A parameter that only starts with "sig" is signed like any other.
        assert_eq!(canonical_string("/p", Some("exp=5&sigma=1&sig=0")), "/p?exp=5&sigma=1");
    }

    #[test]
    fn a_url_signed_with_a_live_secret_is_accepted_until_exp() {
        let path = "/images/app/img/w=640,f=auto";
        let query = signed(path, &format!("exp={}", T + 60), SECRET);
        let q = parse(path, Some(&query)).unwrap().unwrap();
        assert_eq!(q.exp, T + 60);
        assert_eq!(q.verify([SECRET], Timestamp::from_secs(T)), Ok(()));
        assert_eq!(q.verify(["other", SECRET], Timestamp::from_secs(T + 59)), Ok(()), "any live secret");
        assert_eq!(
            q.verify([SECRET], Timestamp::from_secs(T + 60)),
            Err(SignatureError::Expired(Timestamp::from_secs(T + 60)))
        );
        assert_eq!(q.verify(["other"], Timestamp::from_secs(T)), Err(SignatureError::Mismatch));
        assert_eq!(q.verify([], Timestamp::from_secs(T)), Err(SignatureError::NoSecret));
        // The same query on another path, or changed, does not verify.
        let other = parse("/images/app/img2/w=640,f=auto", Some(&query)).unwrap().unwrap();
        assert_eq!(other.verify([SECRET], Timestamp::from_secs(T)), Err(SignatureError::Mismatch));
        let later = query.replace(&format!("exp={}", T + 60), &format!("exp={}", T + 6000));
        let later = parse(path, Some(&later)).unwrap().unwrap();
        assert_eq!(later.verify([SECRET], Timestamp::from_secs(T)), Err(SignatureError::Mismatch));
        // Upper-case hex is the same signature.
        let upper = parse(path, Some(&query.to_uppercase().replace("EXP=", "exp=").replace("&SIG=", "&sig=")))
            .unwrap()
            .unwrap();
        assert_eq!(upper.verify([SECRET], Timestamp::from_secs(T)), Ok(()));
    }

    #[test]
    fn unsigned_requests_pass_and_malformed_signatures_are_refused_saying_why() {
        assert_eq!(parse("/p", None), Ok(None));
        assert_eq!(parse("/p", Some("v=2")), Ok(None));
        let sig = "0".repeat(64);
        for (query, want) in [
            ("exp=5".to_owned(), SignatureError::Incomplete { has: "exp", missing: "sig" }),
            (format!("sig={sig}"), SignatureError::Incomplete { has: "sig", missing: "exp" }),
            (format!("exp=5&exp=6&sig={sig}"), SignatureError::Repeated("exp")),
            (format!("exp=5&sig={sig}&sig={sig}"), SignatureError::Repeated("sig")),
            (format!("exp=-5&sig={sig}"), SignatureError::BadExp),
            (format!("exp=&sig={sig}"), SignatureError::BadExp),
            (format!("exp=1e9&sig={sig}"), SignatureError::BadExp),
            (format!("exp={}&sig={sig}", "9".repeat(40)), SignatureError::BadExp),
            ("exp=5&sig=abc".to_owned(), SignatureError::BadSig),
            (format!("exp=5&sig={}", "z".repeat(64)), SignatureError::BadSig),
        ] {
            assert_eq!(parse("/p", Some(&query)), Err(want), "{query}");
        }
        let e = ApiError::from(SignatureError::BadSig);
        assert_eq!((e.status(), e.code), (401, ErrorCode::InvalidToken));
        assert_eq!(signed_url_required().status(), 403);
    }

    fn key(id: &str, at: u64) -> UrlSigningKey {
        UrlSigningKey {
            id: id.into(),
            secret: format!("s_{id}"),
            created_at: Timestamp::from_secs(at),
            expires_at: None,
        }
    }

    #[test]
    fn a_rotated_out_secret_signs_beside_the_new_one_until_its_grace_ends() {
        let now = Timestamp::from_secs(T);
        let mut keys = UrlSigningKeys::default();
        assert_eq!(keys.rotate(key("a", T), 86_400, now), None, "the first key rotates nothing out");
        assert_eq!(keys.secrets(now).collect::<Vec<_>>(), ["s_a"]);
        let kept = keys.rotate(key("b", T), 3600, now);
        assert_eq!(kept, Some(("a".into(), Timestamp::from_secs(T + 3600))));
        assert_eq!(keys.secrets(now).collect::<Vec<_>>(), ["s_b", "s_a"], "the new one first");
        assert_eq!(keys.secrets(Timestamp::from_secs(T + 3599)).count(), 2);
        assert_eq!(keys.secrets(Timestamp::from_secs(T + 3600)).collect::<Vec<_>>(), ["s_b"], "grace over");
        // Rotating again drops the older one; a grace of 0 keeps none.
        keys.rotate(key("c", T), 60, now);
        assert_eq!(keys.live(now).map(|k| k.id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        assert_eq!(keys.rotate(key("d", T), 0, now), None);
        assert_eq!(keys.secrets(now).collect::<Vec<_>>(), ["s_d"]);
    }

    #[test]
    fn ids_and_secrets_have_their_prefixes() {
        assert_eq!(key_id([0xab; 12]), format!("usk_{}", "ab".repeat(12)));
        assert_eq!(secret([1; 32]).len(), 4 + 64);
    }
}

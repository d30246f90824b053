//! Signed playback tokens: the JWTs that open a private video (issue 26),
//! as Cloudflare Stream and Mux have them. An app's backend signs them
//! offline with a signing key from `POST /signing-keys` (RS256 or ES256),
//! or asks `POST /playback-tokens` to mint one; a viewer's player carries
//! one in the path, `/hls/t/{token}/master.m3u8`, so every relative URI of
//! the playlists keeps it.
//!
//! This module holds the rules without the cryptography (the Worker checks
//! the signature with Web Crypto, `crypto.subtle.verify`):
//! - [`parse`]: the token's form: three base64url parts, the header
//!   (`alg` RS256 or ES256, never `none`; `kid`; `typ` JWT when present;
//!   no `crit`), the claims (`sub` a video id, `exp`, optional `nbf`,
//!   `kid`, `downloadable`), and the signing input and signature bytes;
//! - [`UnverifiedToken::check`]: the `alg` is the key's own (no key
//!   confusion), `exp` is in the future but at most [`MAX_TOKEN_TTL_S`]
//!   ahead, `nbf` (if any) has passed;
//! - [`PlaybackClaims::mint`] and [`signing_input`]: what the mint route signs;
//! - [`is_kid`]: the form of a signing key's id;
//! - [`TokenError`]: each refusal, and its status: 401 `invalid_token` for
//!   a token that proves nothing (malformed, expired, altered, unknown or
//!   revoked key), 403 `forbidden` for a valid token that does not open
//!   this (another video, not valid yet).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::ids::{AppId, VideoId};
use crate::time::Timestamp;

/// The furthest ahead a token's `exp` may be (24 hours), checked against
/// the time of each request, so a token minted offline for longer is refused.
pub const MAX_TOKEN_TTL_S: u64 = 24 * 3600;
/// How long a token minted by `POST /playback-tokens` lives unless asked.
pub const DEFAULT_TOKEN_TTL_S: u64 = 3600;
/// The clock difference allowed between the signer and this service, on
/// `nbf` and on the 24 h bound (never on `exp`).
pub const CLOCK_SKEW_S: u64 = 60;
/// The longest token read (an RS256 token with a 4096-bit key is ~900 bytes).
pub const MAX_TOKEN_LEN: usize = 4096;
/// The path segment that introduces a token: `/hls/t/{token}/...`.
pub const TOKEN_PATH_PREFIX: &str = "/hls/t/";

/// A signing key's algorithm (the JWT `alg`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (the default, as Stream's and Mux's).
    #[default]
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256 (signatures are `r || s`, 64 bytes).
    #[serde(rename = "ES256")]
    Es256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// Whether `s` can be a signing key's id: 32 lowercase hex digits (16
/// random bytes), as Stream's key ids are.
pub fn is_kid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new key id from 16 random bytes.
pub fn kid_from_random(bytes: [u8; 16]) -> String {
    hex::encode(bytes)
}

/// Why a token does not open what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT of ours: the detail says which part.
    Malformed(String),
    /// `alg` is not RS256 or ES256 (`none` among them).
    UnsupportedAlg(String),
    /// The header's `alg` is not the algorithm of the key `kid` names.
    AlgMismatch { header: String, key: Alg },
    /// `exp` has passed.
    Expired { at: u64 },
    /// `exp` is more than 24 h ahead.
    TooLong { exp: u64 },
    /// No key has this id (never made, or revoked).
    UnknownKey(String),
    /// The signature does not match (the token was altered, or another key signed it).
    BadSignature,
    /// `nbf` is still ahead.
    NotYetValid { nbf: u64 },
    /// The token is for another video than the one asked.
    OtherVideo { token: String, asked: String },
}

impl TokenError {
    /// 401 for a token that proves nothing, 403 for a valid one that does not open this.
    pub fn status(&self) -> u16 {
        self.code().status()
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::NotYetValid { .. } | TokenError::OtherVideo { .. } => ErrorCode::Forbidden,
            _ => ErrorCode::InvalidToken,
        }
    }

    fn reason(&self) -> String {
        match self {
            TokenError::Malformed(why) => format!("the token is malformed: {why}"),
            TokenError::UnsupportedAlg(alg) => format!("alg {alg:?} is not accepted; sign with RS256 or ES256"),
            TokenError::AlgMismatch { header, key } => {
                format!("the header's alg {header:?} is not its key's ({})", key.as_str())
            }
            TokenError::Expired { at } => format!("the token expired at {}", Timestamp::from_secs(*at)),
            TokenError::TooLong { exp } => format!(
                "exp {} is more than 24 hours ahead; tokens live at most {MAX_TOKEN_TTL_S} s",
                Timestamp::from_secs(*exp)
            ),
            TokenError::UnknownKey(kid) => {
                format!("no signing key {kid:?} (it was never created here, or it was revoked)")
            }
            TokenError::BadSignature => {
                "the signature does not match (the token was altered or signed by another key)".into()
            }
            TokenError::NotYetValid { nbf } => {
                format!("the token is not valid before {} (nbf)", Timestamp::from_secs(*nbf))
            }
            TokenError::OtherVideo { token, asked } => format!("the token is for video {token:?}, not {asked:?}"),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        let hint = match e.code() {
            ErrorCode::InvalidToken => "; ask your backend for a new token (POST /playback-tokens, or sign one with a key from POST /signing-keys)",
            _ => "",
        };
        ApiError::new(e.code(), format!("{}{hint}", e.reason()))
    }
}

/// The JOSE header as read.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A NumericDate: seconds, which RFC 7519 allows to be fractional.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = f64::deserialize(d)?;
    if !n.is_finite() || n < 0.0 {
        return Err(serde::de::Error::custom("a NumericDate is a number of seconds since the epoch"));
    }
    Ok(n.floor() as u64)
}

fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d).map(Some)
}

/// A playback token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackClaims {
    /// The video it opens (of the app whose key signed it).
    pub sub: VideoId,
    /// The signing key's id (the header's `kid` is what is read; when both
    /// are given they must agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Expiry, in seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Not before, in seconds since the epoch.
    #[serde(default, deserialize_with = "optional_numeric_date", skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Whether it also opens the video's MP4 download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloadable: Option<bool>,
}

impl PlaybackClaims {
    /// The claims `POST /playback-tokens` signs at `now`: `ttl_s` (default
    /// [`DEFAULT_TOKEN_TTL_S`], 1 to [`MAX_TOKEN_TTL_S`]; 400 otherwise).
    pub fn mint(
        video: VideoId,
        kid: &str,
        ttl_s: Option<u64>,
        downloadable: bool,
        now: Timestamp,
    ) -> Result<Self, ApiError> {
        let ttl_s = ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
        if !(1..=MAX_TOKEN_TTL_S).contains(&ttl_s) {
            return Err(ApiError::invalid_field(format!(
                "ttl_s is {ttl_s}; a playback token lives from 1 to {MAX_TOKEN_TTL_S} seconds (default {DEFAULT_TOKEN_TTL_S})"
            )));
        }
        Ok(PlaybackClaims {
            sub: video,
            kid: Some(kid.to_owned()),
            exp: now.secs() + ttl_s,
            nbf: None,
            downloadable: downloadable.then_some(true),
        })
    }

    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_secs(self.exp)
    }
}

/// What `base64url(header) . base64url(claims)` a key signs for `claims`.
pub fn signing_input(alg: Alg, kid: &str, claims: &PlaybackClaims) -> String {
    let header = serde_json::json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"});
    let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    let claims = serde_json::to_vec(claims).expect("claims serialise");
    format!("{}.{}", enc(header.to_string().as_bytes()), enc(&claims))
}

/// The token: the signing input and the signature's base64url.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A token read but not yet verified: which key to ask, what it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedToken<'a> {
    /// The header's `alg` as written (compared with the key's).
    pub alg: String,
    pub kid: String,
    pub claims: PlaybackClaims,
    /// `header.claims`, the bytes the signature is over.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(format!("its {what} is not base64url")))
}

/// Reads a token's form (nothing about its key or time yet).
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed(format!("it is longer than {MAX_TOKEN_LEN} characters")));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("a JWT has three parts separated by dots".into()));
    };
    let header: Header = serde_json::from_slice(&b64(h, "header")?)
        .map_err(|e| TokenError::Malformed(format!("its header is not a JOSE header ({e})")))?;
    if Alg::parse(&header.alg).is_none() {
        return Err(TokenError::UnsupportedAlg(header.alg));
    }
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(TokenError::Malformed("typ, when given, must be JWT".into()));
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed("crit extensions are not supported".into()));
    }
    let claims: PlaybackClaims = serde_json::from_slice(&b64(c, "claims")?)
        .map_err(|e| TokenError::Malformed(format!("its claims need sub (a video id) and exp ({e})")))?;
    let kid = match (header.kid, claims.kid.clone()) {
        (Some(h), Some(c)) if h != c => {
            return Err(TokenError::Malformed("the header's kid and the claim's differ".into()))
        }
        (Some(kid), _) | (None, Some(kid)) => kid,
        (None, None) => return Err(TokenError::Malformed("kid (the signing key's id) is missing".into())),
    };
    if !is_kid(&kid) {
        return Err(TokenError::UnknownKey(kid));
    }
    let signature = b64(s, "signature")?;
    if signature.is_empty() {
        return Err(TokenError::Malformed("its signature is empty".into()));
    }
    Ok(UnverifiedToken { alg: header.alg, kid, claims, signing_input: &token[..h.len() + 1 + c.len()], signature })
}

impl UnverifiedToken<'_> {
    /// Checks what does not need the signature, given the algorithm of the
    /// key `kid` names and the time: the header's `alg` must be the key's,
    /// `exp` ahead but at most 24 h, `nbf` passed.
    pub fn check(&self, key_alg: Alg, now: Timestamp) -> Result<(), TokenError> {
        if self.alg != key_alg.as_str() {
            return Err(TokenError::AlgMismatch { header: self.alg.clone(), key: key_alg });
        }
        // ES256 signatures are r || s (what Web Crypto's ECDSA takes), never DER.
        if key_alg == Alg::Es256 && self.signature.len() != 64 {
            return Err(TokenError::Malformed("an ES256 signature is 64 bytes (r || s)".into()));
        }
        check_time(&self.claims, now)
    }
}

/// `exp` ahead but at most [`MAX_TOKEN_TTL_S`] (+ skew) ahead; `nbf` passed (- skew).
pub fn check_time(claims: &PlaybackClaims, now: Timestamp) -> Result<(), TokenError> {
    let now_s = now.secs();
    if claims.exp <= now_s {
        return Err(TokenError::Expired { at: claims.exp });
    }
    if claims.exp > now_s + MAX_TOKEN_TTL_S + CLOCK_SKEW_S {
        return Err(TokenError::TooLong { exp: claims.exp });
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now_s + CLOCK_SKEW_S) {
        return Err(TokenError::NotYetValid { nbf });
    }
    Ok(())
}

/// What a verified token opens: a video of the app its key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub app: AppId,
    pub video: VideoId,
    pub downloadable: bool,
    pub expires_at: Timestamp,
}

impl Grant {
    pub fn of(app: AppId, claims: &PlaybackClaims) -> Grant {
        Grant {
            app,
            video: claims.sub.clone(),
            downloadable: claims.downloadable == Some(true),
            expires_at: claims.expires_at(),
        }
    }

    /// 403 unless it opens `video` of `app` (a request that names the video too).
    pub fn check_video(&self, app: &AppId, video: &VideoId) -> Result<(), TokenError> {
        if &self.app != app || &self.video != video {
            return Err(TokenError::OtherVideo {
                token: format!("{}/{}", self.app, self.video),
                asked: format!("{app}/{video}"),
            });
        }
        Ok(())
    }
}

/// The message of a private video's public route (403 `signed_url_required`).
pub fn signed_url_required(app: &AppId, video: &VideoId) -> ApiError {
    ApiError::new(
        ErrorCode::SignedUrlRequired,
        format!(
            "video {video:?} of app {app:?} requires a signed URL: play /hls/t/{{token}}/master.m3u8 with a token \
             that your backend mints with POST /playback-tokens (API key) or signs offline (RS256/ES256 JWT, \
             claims sub = the video id, kid, exp at most 24 h ahead) with a key from POST /signing-keys"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);
    const KID: &str = "0123456789abcdef0123456789abcdef";

    fn enc(v: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: serde_json::Value, claims: serde_json::Value, sig: &[u8]) -> String {
        format!("{}.{}.{}", enc(header), enc(claims), URL_SAFE_NO_PAD.encode(sig))
    }

    fn good(exp: u64) -> String {
        token(
            serde_json::json!({"alg": "ES256", "kid": KID, "typ": "JWT"}),
            serde_json::json!({"sub": "vid1", "exp": exp}),
            &[7; 64],
        )
    }

    #[test]
    fn a_good_token_reads_and_checks() {
        let t = good(NOW.secs() + 60);
        let u = parse(&t).unwrap();
        assert_eq!((u.alg.as_str(), u.kid.as_str(), u.claims.sub.as_str()), ("ES256", KID, "vid1"));
        assert_eq!(u.signing_input, t.rsplit_once('.').unwrap().0);
        assert_eq!(u.signature, vec![7; 64]);
        assert_eq!(u.check(Alg::Es256, NOW), Ok(()));
        let g = Grant::of(AppId::parse("app1").unwrap(), &u.claims);
        assert!(!g.downloadable);
        assert_eq!(g.expires_at, Timestamp::from_secs(NOW.secs() + 60));
    }

    #[test]
    fn time_rules() {
        let at = |exp| parse(&good(exp)).unwrap().check(Alg::Es256, NOW);
        assert_eq!(at(NOW.secs()), Err(TokenError::Expired { at: NOW.secs() }));
        assert_eq!(at(NOW.secs() - 1).unwrap_err().status(), 401);
        assert_eq!(at(NOW.secs() + MAX_TOKEN_TTL_S), Ok(()));
        let far = NOW.secs() + MAX_TOKEN_TTL_S + CLOCK_SKEW_S + 1;
        assert_eq!(at(far), Err(TokenError::TooLong { exp: far }));
        let nbf = |nbf: u64| {
            let t = token(
                serde_json::json!({"alg": "RS256", "kid": KID}),
                serde_json::json!({"sub": "v", "exp": NOW.secs() + 60, "nbf": nbf}),
                &[1; 256],
            );
            parse(&t).unwrap().check(Alg::Rs256, NOW)
        };
        assert_eq!(nbf(NOW.secs() + CLOCK_SKEW_S), Ok(()));
        let e = nbf(NOW.secs() + 600).unwrap_err();
        assert_eq!((e.status(), e.code()), (403, ErrorCode::Forbidden));
        // Fractional NumericDates are read.
        let t = token(
            serde_json::json!({"alg": "RS256", "kid": KID}),
            serde_json::json!({"sub": "v", "exp": (NOW.secs() + 60) as f64 + 0.5}),
            &[1; 256],
        );
        assert_eq!(parse(&t).unwrap().claims.exp, NOW.secs() + 60);
    }

    #[test]
    fn forms_that_are_refused() {
        let claims = serde_json::json!({"sub": "vid1", "exp": NOW.secs() + 60});
        let h = |v: serde_json::Value| token(v, claims.clone(), &[1; 64]);
        let cases: Vec<(&str, String)> = vec![
            ("alg none", h(serde_json::json!({"alg": "none", "kid": KID}))),
            ("HS256", h(serde_json::json!({"alg": "HS256", "kid": KID}))),
            ("no kid", h(serde_json::json!({"alg": "ES256"}))),
            ("bad kid", h(serde_json::json!({"alg": "ES256", "kid": "../x"}))),
            ("typ", h(serde_json::json!({"alg": "ES256", "kid": KID, "typ": "at+jwt"}))),
            ("crit", h(serde_json::json!({"alg": "ES256", "kid": KID, "crit": ["b64"]}))),
            ("two parts", format!("{}.{}", enc(serde_json::json!({"alg": "ES256"})), enc(claims.clone()))),
            ("four parts", format!("{}.x", good(NOW.secs() + 60))),
            ("not base64", "a.b.c!".into()),
            ("empty", String::new()),
            ("no signature", format!("{}.", good(NOW.secs() + 60).rsplit_once('.').unwrap().0)),
            ("too long", "a".repeat(MAX_TOKEN_LEN + 1)),
            ("no sub", token(serde_json::json!({"alg": "ES256", "kid": KID}), serde_json::json!({"exp": 1}), &[1; 64])),
            (
                "bad sub",
                token(
                    serde_json::json!({"alg": "ES256", "kid": KID}),
                    serde_json::json!({"sub": "a/b", "exp": NOW.secs() + 60}),
                    &[1; 64],
                ),
            ),
            (
                "kids differ",
                token(
                    serde_json::json!({"alg": "ES256", "kid": KID}),
                    serde_json::json!({"sub": "v", "kid": "f".repeat(32), "exp": NOW.secs() + 60}),
                    &[1; 64],
                ),
            ),
        ];
        for (what, t) in cases {
            let e = parse(&t).unwrap_err();
            assert_eq!(e.status(), 401, "{what}: {e:?}");
            let api = ApiError::from(e);
            assert_eq!(api.code.as_str(), "invalid_token", "{what}");
            assert!(api.message.contains("POST /playback-tokens"), "{what}: {}", api.message);
        }
        // A kid in the claims only is read.
        let t = token(
            serde_json::json!({"alg": "ES256"}),
            serde_json::json!({"sub": "v", "kid": KID, "exp": NOW.secs() + 60}),
            &[1; 64],
        );
        assert_eq!(parse(&t).unwrap().kid, KID);
    }

    #[test]
    fn the_key_decides_the_algorithm() {
        // An RS256 header on an ES256 key (or the reverse) is refused before any check.
        let t = good(NOW.secs() + 60);
        let e = parse(&t).unwrap().check(Alg::Rs256, NOW).unwrap_err();
        assert_eq!(e, TokenError::AlgMismatch { header: "ES256".into(), key: Alg::Rs256 });
        assert_eq!(e.status(), 401);
        // A DER-encoded (or any other length) ES256 signature.
        let der = token(
            serde_json::json!({"alg": "ES256", "kid": KID}),
            serde_json::json!({"sub": "v", "exp": NOW.secs() + 60}),
            &[0x30; 70],
        );
        assert_eq!(parse(&der).unwrap().check(Alg::Es256, NOW).unwrap_err().status(), 401);
    }

    #[test]
    fn minting_round_trips() {
        let v = VideoId::parse("vid1").unwrap();
        let c = PlaybackClaims::mint(v.clone(), KID, None, true, NOW).unwrap();
        assert_eq!(c.exp, NOW.secs() + DEFAULT_TOKEN_TTL_S);
        let input = signing_input(Alg::Es256, KID, &c);
        let t = assemble(&input, &[9; 64]);
        let u = parse(&t).unwrap();
        assert_eq!((u.signing_input, &u.claims), (input.as_str(), &c));
        assert_eq!(u.check(Alg::Es256, NOW), Ok(()));
        assert!(Grant::of(AppId::parse("a").unwrap(), &u.claims).downloadable);
        for bad in [0, MAX_TOKEN_TTL_S + 1] {
            assert_eq!(PlaybackClaims::mint(v.clone(), KID, Some(bad), false, NOW).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn a_grant_opens_its_own_video_only() {
        let (a, b) = (AppId::parse("a").unwrap(), AppId::parse("b").unwrap());
        let (v, w) = (VideoId::parse("v").unwrap(), VideoId::parse("w").unwrap());
        let g = Grant { app: a.clone(), video: v.clone(), downloadable: false, expires_at: NOW };
        assert_eq!(g.check_video(&a, &v), Ok(()));
        assert_eq!(g.check_video(&a, &w).unwrap_err().status(), 403);
        assert_eq!(g.check_video(&b, &v).unwrap_err().status(), 403);
        let e = signed_url_required(&a, &v);
        assert_eq!((e.status(), e.code.as_str()), (403, "signed_url_required"));
        assert!(e.message.contains("/hls/t/{token}/master.m3u8") && e.message.contains("POST /signing-keys"));
    }

    #[test]
    fn kids() {
        assert!(is_kid(KID));
        assert!(is_kid(&kid_from_random([0xab; 16])));
        for bad in ["", "ABCDEF0123456789ABCDEF0123456789", &"a".repeat(31), &"g".repeat(32)] {
            assert!(!is_kid(bad), "{bad}");
        }
    }
}

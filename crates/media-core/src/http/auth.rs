//! Checking credentials: the API keys of `IV_API_KEY`, each with the apps it
//! may act for, and the transcoder's bearer token.
//!
//! `IV_API_KEY` is a comma-separated list of entries, each a key alone or a
//! key, a colon, and the `|`-separated app ids it may use:
//!
//! ```text
//! k_backend_a:app-a|app-a-staging, k_backend_b:app-b, k_admin
//! ```
//!
//! A key with no app list (`k_admin`, or `key:*`) may use any app: a plain
//! list of keys, as before, is the single-tenant setup. Keys therefore
//! cannot contain `,`, `:` or `|` (app ids never do). Entries are checked
//! when the settings load ([`ApiKeys::parse`]); the errors name the entry by
//! its position, never by its key.
//!
//! Comparisons hash both sides and compare digests in constant time, and
//! every configured key is compared, so neither the content, the length nor
//! the position of a configured key leaks through timing. Only SHA-256
//! digests of the keys are kept once parsed; a key is named in logs and rate
//! limits by its [`key_fingerprint`], never by itself.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::{ApiError, ErrorCode};
use crate::ids::AppId;

/// Constant-time equality of two secrets.
pub fn secrets_equal(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// A short, stable name for a key that is safe to log and to use as a rate
/// limit bucket: the first 8 bytes of its SHA-256, in hex (16 characters).
/// Keys are long random strings, so this says nothing about the key itself.
pub fn key_fingerprint(key: &str) -> String {
    fingerprint_of(&Sha256::digest(key.as_bytes()).into())
}

fn fingerprint_of(digest: &[u8; 32]) -> String {
    hex::encode(&digest[..8])
}

/// Which apps a key may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppScope {
    /// Any app: a key configured without an app list (the single-tenant default).
    Any,
    /// Only these apps.
    Only(Vec<AppId>),
}

impl AppScope {
    pub fn allows(&self, app: &AppId) -> bool {
        match self {
            AppScope::Any => true,
            AppScope::Only(apps) => apps.contains(app),
        }
    }
}

/// One configured key: its SHA-256 digest and its apps.
#[derive(Debug, Clone)]
struct KeyEntry {
    digest: [u8; 32],
    scope: AppScope,
}

/// The keys of `IV_API_KEY`, parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

/// Why `IV_API_KEY` could not be used. Entries are named by position
/// (1-based, blank entries not counted) so that no key reaches a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyConfigError {
    #[error("entry {entry} has an empty key before its ':'; write key:app-a|app-b")]
    EmptyKey { entry: usize },
    #[error("entry {entry} has no app ids after its ':'; list them as key:app-a|app-b, or leave out the ':' to let the key use any app")]
    NoApps { entry: usize },
    #[error("entry {entry} has an invalid app id: {problem}")]
    BadApp { entry: usize, problem: String },
    #[error("entry {entry} has more than one ':'; keys cannot contain ':', ',' or '|'")]
    ColonInKey { entry: usize },
    #[error("entry {entry} has a '|' in its key; keys cannot contain ':', ',' or '|' (separate app ids with '|' after the ':')")]
    BarInKey { entry: usize },
    #[error("entries {first} and {entry} have the same key; give each key once, with all its apps")]
    Duplicate { first: usize, entry: usize },
}

impl ApiKeys {
    /// Parses `IV_API_KEY` (see the module doc). Blank entries are skipped;
    /// an empty value gives no keys, which admits nobody.
    pub fn parse(configured: &str) -> Result<Self, KeyConfigError> {
        let mut entries: Vec<KeyEntry> = Vec::new();
        for (i, raw) in configured.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let entry = i + 1;
            let (key, scope) = match raw.split_once(':') {
                None => (raw, AppScope::Any),
                Some((key, apps)) => {
                    let (key, apps) = (key.trim(), apps.trim());
                    if key.is_empty() {
                        return Err(KeyConfigError::EmptyKey { entry });
                    }
                    if apps.contains(':') {
                        return Err(KeyConfigError::ColonInKey { entry });
                    }
                    let scope = if apps == "*" {
                        AppScope::Any
                    } else {
                        let ids = apps.split('|').map(str::trim).filter(|a| !a.is_empty()).collect::<Vec<_>>();
                        if ids.is_empty() {
                            return Err(KeyConfigError::NoApps { entry });
                        }
                        let mut parsed = Vec::with_capacity(ids.len());
                        for id in ids {
                            let app = AppId::parse(id)
                                .map_err(|e| KeyConfigError::BadApp { entry, problem: e.to_string() })?;
                            if !parsed.contains(&app) {
                                parsed.push(app);
                            }
                        }
                        AppScope::Only(parsed)
                    };
                    (key, scope)
                }
            };
            if key.contains('|') {
                return Err(KeyConfigError::BarInKey { entry });
            }
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            if let Some(first) = entries.iter().position(|e| e.digest == digest) {
                return Err(KeyConfigError::Duplicate { first: first + 1, entry });
            }
            entries.push(KeyEntry { digest, scope });
        }
        Ok(Self { entries })
    }

    /// No key is configured: nobody can be admitted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Checks the `x-api-key` value: 401 when it is missing or empty, 403
    /// when it matches no configured key; otherwise what the key may do.
    /// Every configured key is compared and the match is selected without
    /// branching, so the time taken does not say which one matched.
    pub fn check(&self, given: Option<&str>) -> Result<KeyGrant, ApiError> {
        let given = match given {
            Some(g) if !g.is_empty() => g,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "this route needs an API key: send it in the x-api-key header",
                ))
            }
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, e) in self.entries.iter().enumerate() {
            let same = digest.ct_eq(&e.digest);
            found |= same;
            index.conditional_assign(&(i as u32), same);
        }
        if bool::from(found) {
            let e = &self.entries[index as usize];
            Ok(KeyGrant { fingerprint: fingerprint_of(&e.digest), scope: e.scope.clone() })
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, "the API key in x-api-key is not valid for this service"))
        }
    }
}

/// What a request with a valid key may do: which apps, and the key's
/// fingerprint (for rate limits and logs). Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a grant must be checked against the request's app_id with `check_app`"]
pub struct KeyGrant {
    fingerprint: String,
    scope: AppScope,
}

impl KeyGrant {
    /// A grant for any app, for tests and single-key tools.
    pub fn any_app(key: &str) -> Self {
        Self { fingerprint: key_fingerprint(key), scope: AppScope::Any }
    }

    /// The key's [`key_fingerprint`].
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn scope(&self) -> &AppScope {
        &self.scope
    }

    /// 403 `app_not_allowed` when the key may not act for `app`.
    pub fn check_app(&self, app: &AppId) -> Result<(), ApiError> {
        if self.scope.allows(app) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::AppNotAllowed,
                format!("the API key in x-api-key may not act for app_id \"{app}\"; use the key issued for that app, or ask the operator to add the app to this key in IV_API_KEY"),
            ))
        }
    }
}

/// Checks an `Authorization: Bearer <token>` header against the expected token.
pub fn check_bearer(authorization: Option<&str>, expected: &str) -> Result<(), ApiError> {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "this route needs the transcoder token: send Authorization: Bearer <TRANSCODER_TOKEN>",
            )
        })?;
    if !expected.is_empty() && secrets_equal(token, expected) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "the bearer token is not valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(s: &str) -> AppId {
        AppId::parse(s).unwrap()
    }

    #[test]
    fn api_key_matrix_of_a_plain_list() {
        let keys = ApiKeys::parse(" key-one ,, key-two,").unwrap();
        assert_eq!(keys.len(), 2);
        let cases: &[(Option<&str>, Option<u16>)] = &[
            (Some("key-one"), None),
            (Some("key-two"), None),
            (None, Some(401)),
            (Some(""), Some(401)),
            (Some("key-thr"), Some(403)),
            (Some("key-one "), Some(403)),
            (Some("KEY-ONE"), Some(403)),
            (Some("key-one,key-two"), Some(403)),
            (Some("key"), Some(403)),
        ];
        for (given, want) in cases {
            let got = keys.check(*given).err().map(|e| e.status());
            assert_eq!(got, *want, "{given:?}");
        }
        // A plain key may use any app.
        assert_eq!(keys.check(Some("key-two")).unwrap().scope(), &AppScope::Any);
        assert!(keys.check(Some("key-one")).unwrap().check_app(&app("whatever")).is_ok());
        // No configured keys: nobody gets in.
        let none = ApiKeys::parse("").unwrap();
        assert!(none.is_empty());
        assert_eq!(none.check(Some("anything")).unwrap_err().status(), 403);
        assert_eq!(ApiKeys::parse(" , ,").unwrap().len(), 0);
    }

    #[test]
    fn keys_act_only_for_their_apps() {
        let keys = ApiKeys::parse("ka:app-a|app-b, kc : app-c , kany, kstar:*").unwrap();
        // (key, app, allowed)
        let cases: &[(&str, &str, bool)] = &[
            ("ka", "app-a", true),
            ("ka", "app-b", true),
            ("ka", "app-c", false),
            ("ka", "app-A", false),
            ("ka", "app", false),
            ("kc", "app-c", true),
            ("kc", "app-a", false),
            ("kany", "app-a", true),
            ("kany", "anything_else", true),
            ("kstar", "app-c", true),
        ];
        for (key, a, allowed) in cases {
            let grant = keys.check(Some(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            let got = grant.check_app(&app(a));
            assert_eq!(got.is_ok(), *allowed, "{key} -> {a}");
            if let Err(e) = got {
                assert_eq!(e.status(), 403);
                assert_eq!(e.code, ErrorCode::AppNotAllowed);
                assert!(e.message.contains(&format!("\"{a}\"")), "{}", e.message);
                assert!(!e.message.contains(key), "the message never repeats the key");
            }
        }
        // The key with its app list, or a key with the separator, is not a key.
        for wrong in ["ka:app-a|app-b", "ka:app-a", "ka:", "kc ", "app-a"] {
            assert_eq!(keys.check(Some(wrong)).unwrap_err().status(), 403, "{wrong}");
        }
        // Each grant is named by its key's fingerprint, not the key.
        let g = keys.check(Some("ka")).unwrap();
        assert_eq!(g.fingerprint(), key_fingerprint("ka"));
        assert_eq!(g.fingerprint().len(), 16);
        assert_ne!(g.fingerprint(), keys.check(Some("kc")).unwrap().fingerprint());
        assert_eq!(
            g,
            KeyGrant { fingerprint: key_fingerprint("ka"), scope: AppScope::Only(vec![app("app-a"), app("app-b")]) }
        );
    }

    #[test]
    fn bad_configurations_name_the_entry_never_the_key() {
        use KeyConfigError::*;
        let cases: &[(&str, KeyConfigError)] = &[
            (":app-a", EmptyKey { entry: 1 }),
            ("k1, :app-a", EmptyKey { entry: 2 }),
            ("secret-one:", NoApps { entry: 1 }),
            ("secret-one: | ", NoApps { entry: 1 }),
            (
                "secret-one:app/a",
                BadApp { entry: 1, problem: "app_id contains '/'; use only letters, digits, '-' and '_'".into() },
            ),
            (
                "k0, secret-one:app a",
                BadApp { entry: 2, problem: "app_id contains ' '; use only letters, digits, '-' and '_'".into() },
            ),
            ("secret:one:app-a", ColonInKey { entry: 1 }),
            ("secret|one", BarInKey { entry: 1 }),
            ("secret|one:app-a", BarInKey { entry: 1 }),
            ("secret-one, secret-two, secret-one:app-a", Duplicate { first: 1, entry: 3 }),
            ("secret-one:app-a, secret-one:app-b", Duplicate { first: 1, entry: 2 }),
        ];
        for (configured, want) in cases {
            let got = ApiKeys::parse(configured).unwrap_err();
            assert_eq!(&got, want, "{configured:?}");
            let message = got.to_string();
            assert!(!message.contains("secret"), "{configured:?}: the message shows no key: {message}");
        }
        // Repeated apps are kept once; spaces around separators are fine.
        let keys = ApiKeys::parse(" k : a | b | a ").unwrap();
        assert_eq!(keys.check(Some("k")).unwrap().scope(), &AppScope::Only(vec![app("a"), app("b")]));
    }

    #[test]
    fn fingerprints_are_short_stable_and_distinct() {
        assert_eq!(key_fingerprint("key-one"), key_fingerprint("key-one"));
        assert_ne!(key_fingerprint("key-one"), key_fingerprint("key-two"));
        assert!(key_fingerprint("key-one").bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!key_fingerprint("key-one").contains("key"));
    }

    #[test]
    fn bearer_matrix() {
        let cases: &[(Option<&str>, Option<u16>)] = &[
            (Some("Bearer s3cret"), None),
            (Some("bearer s3cret"), None),
            (None, Some(401)),
            (Some("Bearer "), Some(401)),
            (Some("Basic s3cret"), Some(401)),
            (Some("s3cret"), Some(401)),
            (Some("Bearer s3cre"), Some(403)),
            (Some("Bearer s3cret2"), Some(403)),
        ];
        for (given, want) in cases {
            assert_eq!(check_bearer(*given, "s3cret").err().map(|e| e.status()), *want, "{given:?}");
        }
        assert_eq!(check_bearer(Some("Bearer x"), "").unwrap_err().status(), 403, "an unset token admits nobody");
    }
}

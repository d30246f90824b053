//! The settings both Workers share, each var and secret read in one place
//! with its default. A service adds its own (`ImageSettings`,
//! `VideoSettings`); [`crate::context::RequestContext`] reads both once per
//! request.
//!
//! | var | what | default |
//! |---|---|---|
//! | `IV_API_KEY` (secret) | the API keys and the apps each may use ([`crate::config::api_keys`]) | none: API-key routes refuse |
//! | `CORS_ALLOWED_ORIGINS` | `*` or a comma-separated list | `*` |
//! | `ENVIRONMENT` | reported with errors | `production` |
//! | `PUBLIC_BASE_URL` | the origin of the URLs handed out | the request's |
//! | `UPLOAD_URL_TTL_S` | how long a presigned upload URL lives | 900 |
//! | `STORAGE_BACKEND` | `r2` (the `MEDIA_BUCKET` binding) or `s3` | `r2` |
//! | `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY` | the S3 endpoint: what uploads are presigned for, and the `s3` backend | region `auto` |
//! | `IV_SENTRY_DSN` (secret) | where our faults are reported ([`sentry_dsn`]) | none: not reported |
//! | `CF_ZONE_ID`, `CF_PURGE_TOKEN` (secret), `CF_API_BASE`, `EDGE_TTL_WITHOUT_PURGE_S` | purging deleted media at every location, or the edge TTL cap without it ([`crate::purge`]) | no purge; cap 3600 s |

use media_core::http::auth::ApiKeys;
use media_core::http::sigv4::{Credentials, S3Bucket};

use crate::config::{api_keys, ConfigError, Vars};
use crate::purge::PurgeSettings;

/// What both services read from their configuration.
pub struct CommonSettings {
    /// `IV_API_KEY`: the API keys, each with the apps it may use.
    pub api_keys: ApiKeys,
    /// `CORS_ALLOWED_ORIGINS`: `*` or a comma-separated list.
    pub cors_origins: String,
    /// `ENVIRONMENT`, as reported to Sentry.
    pub environment: String,
    /// `PUBLIC_BASE_URL` without its trailing `/`, when set.
    pub public_base: Option<String>,
    /// `UPLOAD_URL_TTL_S`: how long a presigned upload URL lives.
    pub upload_ttl_s: u32,
    pub storage: StorageSettings,
    /// `CF_ZONE_ID`, `CF_PURGE_TOKEN`, `CF_API_BASE`, `EDGE_TTL_WITHOUT_PURGE_S`.
    pub purge: PurgeSettings,
}

/// Where objects are. Each part is kept with its error, which is answered
/// only by the routes that need that part, as before this was read once: a
/// Worker whose S3 keys are missing still answers `/health` and serves from
/// R2; only presigning (and the `s3` backend) report the missing keys.
pub struct StorageSettings {
    /// `STORAGE_BACKEND`.
    pub backend: Result<StorageBackend, ConfigError>,
    /// The `S3_*` vars: what presigned URLs are signed for, whichever
    /// backend serves reads, and the endpoint of the `s3` backend.
    pub s3: Result<S3Bucket, ConfigError>,
}

/// The adapter `STORAGE_BACKEND` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// The R2 binding (production).
    R2,
    /// S3 over `fetch` with SigV4 (Garage locally, R2's S3 API).
    S3,
}

impl CommonSettings {
    pub fn load(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(CommonSettings {
            api_keys: api_keys(vars)?,
            cors_origins: vars.or("CORS_ALLOWED_ORIGINS", "*"),
            environment: vars.or("ENVIRONMENT", "production"),
            public_base: vars.get("PUBLIC_BASE_URL").map(|b| b.trim_end_matches('/').to_owned()),
            upload_ttl_s: vars.number("UPLOAD_URL_TTL_S", 900)?,
            storage: StorageSettings::load(vars),
            purge: PurgeSettings::load(vars)?,
        })
    }
}

impl StorageSettings {
    pub fn load(vars: &Vars<'_>) -> Self {
        StorageSettings { backend: storage_backend(vars), s3: s3_bucket(vars) }
    }
}

fn storage_backend(vars: &Vars<'_>) -> Result<StorageBackend, ConfigError> {
    match vars.or("STORAGE_BACKEND", "r2").as_str() {
        "r2" => Ok(StorageBackend::R2),
        "s3" => Ok(StorageBackend::S3),
        other => {
            Err(ConfigError { name: "STORAGE_BACKEND".into(), problem: format!("is {other:?}; use \"r2\" or \"s3\"") })
        }
    }
}

/// The S3 endpoint and keys from `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION`,
/// `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`.
fn s3_bucket(vars: &Vars<'_>) -> Result<S3Bucket, ConfigError> {
    let creds = Credentials {
        access_key_id: vars.required("S3_ACCESS_KEY_ID")?,
        secret_access_key: vars.required("S3_SECRET_ACCESS_KEY")?,
        session_token: None,
    };
    let endpoint = vars.required("S3_ENDPOINT")?;
    S3Bucket::new(&endpoint, &vars.required("S3_BUCKET")?, &vars.or("S3_REGION", "auto"), creds)
        .map_err(|problem| ConfigError { name: "S3_ENDPOINT".into(), problem })
}

/// `IV_SENTRY_DSN`. Read apart from [`CommonSettings`], and first, so that
/// a request whose other settings are broken still reports that.
pub fn sentry_dsn(vars: &Vars<'_>) -> Option<String> {
    vars.get("IV_SENTRY_DSN")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const S3: [(&str, &str); 4] = [
        ("S3_ENDPOINT", "http://127.0.0.1:3900"),
        ("S3_BUCKET", "media"),
        ("S3_ACCESS_KEY_ID", "id"),
        ("S3_SECRET_ACCESS_KEY", "secret"),
    ];

    fn load(vars: &[(&'static str, &'static str)]) -> Result<CommonSettings, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        CommonSettings::load(&Vars(&map))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let s = load(&[]).unwrap();
        assert!(s.api_keys.is_empty());
        assert_eq!((s.cors_origins.as_str(), s.environment.as_str()), ("*", "production"));
        assert_eq!((s.public_base, s.upload_ttl_s), (None, 900));
        assert_eq!(s.storage.backend, Ok(StorageBackend::R2));
        // No S3 keys: an error kept for the routes that presign, not a failed request.
        assert_eq!(s.storage.s3.unwrap_err().name, "S3_ACCESS_KEY_ID");
    }

    #[test]
    fn reads_each_var_once_with_its_rules() {
        let mut vars = S3.to_vec();
        vars.extend([
            ("IV_API_KEY", "k1:app-a,k2"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example"),
            ("ENVIRONMENT", "test"),
            ("PUBLIC_BASE_URL", "https://media.example/"),
            ("UPLOAD_URL_TTL_S", " 60 "),
            ("STORAGE_BACKEND", "s3"),
            ("IV_SENTRY_DSN", "  "),
        ]);
        let s = load(&vars).unwrap();
        assert!(!s.api_keys.is_empty());
        assert_eq!(s.cors_origins, "https://a.example");
        assert_eq!(s.environment, "test");
        assert_eq!(s.public_base.as_deref(), Some("https://media.example"));
        assert_eq!(s.upload_ttl_s, 60);
        assert_eq!(s.storage.backend, Ok(StorageBackend::S3));
        assert!(s.storage.s3.is_ok());
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        assert_eq!(sentry_dsn(&Vars(&map)), None, "a blank var is unset");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(load(&[("UPLOAD_URL_TTL_S", "soon")]).err().unwrap().name, "UPLOAD_URL_TTL_S");
        let keys = load(&[("IV_API_KEY", "secret-one:app/a")]).err().unwrap();
        assert_eq!(keys.name, "IV_API_KEY");
        assert!(!keys.problem.contains("secret-one"), "{keys}");
        let backend = load(&[("STORAGE_BACKEND", "gcs")]).unwrap().storage.backend.unwrap_err();
        assert_eq!(backend.to_string(), "STORAGE_BACKEND is \"gcs\"; use \"r2\" or \"s3\"");
        let mut bad_endpoint = S3.to_vec();
        bad_endpoint[0] = ("S3_ENDPOINT", "not a url");
        assert_eq!(load(&bad_endpoint).unwrap().storage.s3.unwrap_err().name, "S3_ENDPOINT");
    }
}

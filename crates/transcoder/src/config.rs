//! The transcoder's configuration, read from the environment once at start.
//! Every error names the variable and says what it should hold.

use std::path::PathBuf;
use std::time::Duration;

use media_core::video::dispatch::{parse_classes, SizeClass};

/// A missing or malformed variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

/// Where the S3-compatible bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Config {
    /// `S3_ENDPOINT`, e.g. `https://<account>.r2.cloudflarestorage.com`.
    pub endpoint: String,
    /// `S3_BUCKET`.
    pub bucket: String,
    /// `S3_REGION` (default `auto`, which R2 expects).
    pub region: String,
    /// `S3_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `S3_UPLOAD_PART_BYTES`: the part size of multipart uploads, which
    /// files larger than one part use (a download's MP4; default 64 MiB, at
    /// least 1 MiB). Smaller than 5 MiB only in tests: S3 and R2 want 5 MiB.
    pub upload_part_bytes: u64,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Everything the runner needs.
#[derive(Clone)]
pub struct Config {
    /// `VIDEO_SERVICE_URL`: the video service's origin (its `/internal/` API).
    pub video_service_url: String,
    /// `TRANSCODER_TOKEN`: the bearer token of the internal API.
    pub transcoder_token: String,
    pub s3: S3Config,
    /// `TRANS_SENTRY_DSN`: where to report failures (optional).
    pub sentry_dsn: Option<String>,
    /// `WORK_DIR`: scratch space for source spools (default `/tmp/transcoder`).
    pub work_dir: PathBuf,
    /// `CONCURRENCY`: jobs run at once (default 1; each job already uses every core).
    pub concurrency: usize,
    /// `LEASE_WAIT_MS`: how long one lease request waits for work (default 20000).
    pub lease_wait: Duration,
    /// `JOB_CLASSES`: the size classes of jobs this transcoder takes, e.g.
    /// `standard` (default: every class; see `media_core::video::dispatch`).
    pub job_classes: Option<Vec<SizeClass>>,
    /// `SHUTDOWN_GRACE_S`: on SIGTERM, how long a running job may finish before it is handed back (default 30).
    pub shutdown_grace: Duration,
    /// `WORKER_NAME`: this transcoder in the service's logs (default `<hostname>-<pid>`).
    pub worker_name: String,
    /// `LOG_FORMAT`: `json` (default) or `text`.
    pub log_json: bool,
    /// `MAX_VIDEO_BYTES`: the largest source read (default 5 GiB, as the video service's).
    pub max_video_bytes: u64,
    /// `JOB_TIME_LIMIT_S`: the wall-clock time one job may take (default:
    /// ten minutes plus four times the source's duration, see
    /// `media_core::video::timeline::job_time_limit_s`).
    pub job_time_limit: Option<Duration>,
    /// `FIRST_SEGMENT_ENCODER`: `on` (default) gives each rung's first segment
    /// an x264 run of its own, so a video is playable sooner; `off` encodes
    /// every segment with one encoder (for comparisons; see
    /// `pipeline::Tuning::first_segment_encoder`).
    pub first_segment_encoder: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("video_service_url", &self.video_service_url)
            .field("s3", &self.s3)
            .field("work_dir", &self.work_dir)
            .field("concurrency", &self.concurrency)
            .field("worker_name", &self.worker_name)
            .finish_non_exhaustive()
    }
}

/// Reads variables through `get` (the process environment in production, a map in tests).
pub struct Vars<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str, what: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError { name, problem: format!("is not set: {what}") })
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| ConfigError { name, problem: format!("is {v:?}, which is not a whole number") })
            }
        }
    }

    fn url(&self, name: &'static str, what: &str) -> Result<String, ConfigError> {
        let v = self.required(name, what)?;
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err(ConfigError { name, problem: format!("is {v:?}; it must start with http:// or https://") });
        }
        Ok(v.trim_end_matches('/').to_owned())
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(&Vars(|k| std::env::var(k).ok()))
    }

    pub fn from_vars<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Config, ConfigError> {
        let concurrency: usize = v.number("CONCURRENCY", 1)?;
        if concurrency == 0 {
            return Err(ConfigError { name: "CONCURRENCY", problem: "is 0; it must be at least 1".into() });
        }
        let first_segment_encoder = match v.get("FIRST_SEGMENT_ENCODER").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError {
                    name: "FIRST_SEGMENT_ENCODER",
                    problem: format!("is {other:?}; use on or off"),
                })
            }
        };
        let log_format = v.get("LOG_FORMAT").unwrap_or_else(|| "json".into());
        if log_format != "json" && log_format != "text" {
            return Err(ConfigError { name: "LOG_FORMAT", problem: format!("is {log_format:?}; use json or text") });
        }
        Ok(Config {
            video_service_url: v
                .url("VIDEO_SERVICE_URL", "the video service's URL, e.g. https://videos.example.com")?,
            transcoder_token: v
                .required("TRANSCODER_TOKEN", "the same secret the video service has as TRANSCODER_TOKEN")?,
            s3: S3Config {
                endpoint: v
                    .url("S3_ENDPOINT", "the bucket's S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com")?,
                bucket: v.required("S3_BUCKET", "the bucket the Workers use (R2 bucket name)")?,
                region: v.get("S3_REGION").unwrap_or_else(|| "auto".into()),
                access_key_id: v.required("S3_ACCESS_KEY_ID", "an access key with read/write access to the bucket")?,
                secret_access_key: v.required("S3_SECRET_ACCESS_KEY", "the secret of S3_ACCESS_KEY_ID")?,
                upload_part_bytes: match v.number("S3_UPLOAD_PART_BYTES", 64u64 * 1024 * 1024)? {
                    n if n < 1024 * 1024 => {
                        return Err(ConfigError {
                            name: "S3_UPLOAD_PART_BYTES",
                            problem: format!("is {n}; it must be at least 1048576 (1 MiB)"),
                        })
                    }
                    n => n,
                },
            },
            sentry_dsn: v.get("TRANS_SENTRY_DSN"),
            work_dir: v.get("WORK_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("transcoder")),
            concurrency,
            lease_wait: Duration::from_millis(v.number("LEASE_WAIT_MS", 20_000)?),
            job_classes: v
                .get("JOB_CLASSES")
                .map(|list| parse_classes(&list).map_err(|problem| ConfigError { name: "JOB_CLASSES", problem }))
                .transpose()?,
            shutdown_grace: Duration::from_secs(v.number("SHUTDOWN_GRACE_S", 30)?),
            worker_name: v.get("WORKER_NAME").unwrap_or_else(default_worker_name),
            log_json: log_format == "json",
            max_video_bytes: v.number("MAX_VIDEO_BYTES", media_core::media::DEFAULT_MAX_VIDEO_BYTES)?,
            job_time_limit: v
                .get("JOB_TIME_LIMIT_S")
                .map(|_| v.number("JOB_TIME_LIMIT_S", 0u64))
                .transpose()?
                .map(Duration::from_secs),
            first_segment_encoder,
        })
    }
}

fn default_worker_name() -> String {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "transcoder".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(&Vars(move |k| map.get(k).cloned()))
    }

    const FULL: &[(&str, &str)] = &[
        ("VIDEO_SERVICE_URL", "http://127.0.0.1:8788/"),
        ("TRANSCODER_TOKEN", "t"),
        ("S3_ENDPOINT", "http://127.0.0.1:3900"),
        ("S3_BUCKET", "media"),
        ("S3_ACCESS_KEY_ID", "GK1"),
        ("S3_SECRET_ACCESS_KEY", "s"),
    ];

    #[test]
    fn defaults() {
        let c = vars(FULL).unwrap();
        assert_eq!(c.video_service_url, "http://127.0.0.1:8788");
        assert_eq!((c.concurrency, c.s3.region.as_str(), c.log_json), (1, "auto", true));
        assert_eq!((c.lease_wait, c.job_classes.as_deref()), (Duration::from_secs(20), None));
        assert_eq!((c.max_video_bytes, c.job_time_limit), (5 * 1024 * 1024 * 1024, None));
        assert_eq!(c.s3.upload_part_bytes, 64 * 1024 * 1024);
        let small = [FULL, &[("S3_UPLOAD_PART_BYTES", "1000")]].concat();
        assert_eq!(vars(&small).err().map(|e| e.name), Some("S3_UPLOAD_PART_BYTES"));
        assert!(!format!("{c:?}").contains("\"s\""), "secrets stay out of Debug");
    }

    #[test]
    fn job_classes() {
        let with = |list: &str| vars(&[FULL, &[("JOB_CLASSES", list)]].concat());
        assert_eq!(with("standard").unwrap().job_classes, Some(vec![SizeClass::Standard]));
        let e = with("standard,tiny").err().unwrap();
        assert_eq!(e.name, "JOB_CLASSES");
        assert!(e.problem.contains("\"tiny\""), "{}", e.problem);
    }

    #[test]
    fn first_segment_encoder_is_on_unless_turned_off() {
        let with = |v: &str| vars(&[FULL, &[("FIRST_SEGMENT_ENCODER", v)]].concat());
        assert!(vars(FULL).unwrap().first_segment_encoder);
        assert!(with("on").unwrap().first_segment_encoder);
        assert!(!with("off").unwrap().first_segment_encoder);
        assert_eq!(with("no").unwrap_err().to_string(), "FIRST_SEGMENT_ENCODER is \"no\"; use on or off");
    }

    #[test]
    fn every_error_names_its_variable() {
        for missing in [
            "VIDEO_SERVICE_URL",
            "TRANSCODER_TOKEN",
            "S3_ENDPOINT",
            "S3_BUCKET",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
        ] {
            let without: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != missing).collect();
            let e = vars(&without).unwrap_err();
            assert_eq!(e.name, missing);
            assert!(e.to_string().starts_with(&format!("{missing} is not set: ")), "{e}");
        }
        let mut bad = FULL.to_vec();
        bad.push(("CONCURRENCY", "two"));
        assert_eq!(vars(&bad).unwrap_err().to_string(), "CONCURRENCY is \"two\", which is not a whole number");
        let mut bad = FULL.to_vec();
        bad[0] = ("VIDEO_SERVICE_URL", "videos.example.com");
        assert!(vars(&bad).unwrap_err().to_string().contains("must start with http"));
        let mut bad = FULL.to_vec();
        bad.push(("CONCURRENCY", "0"));
        assert_eq!(vars(&bad).unwrap_err().name, "CONCURRENCY");
    }
}

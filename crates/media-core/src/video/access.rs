//! A video's playback options, chosen at notify (or `POST /uploads`):
//! whether its public routes need a signed token, whether its HLS segments
//! are AES-128 encrypted, and whether an MP4 download is made. They live in
//! the job (so public reads see them where they already look) and reach the
//! transcoder in the lease's [`crate::video::job::JobSpec`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a video's segments are stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// In the clear (the default).
    #[default]
    #[serde(rename = "none")]
    None,
    /// Whole-segment AES-128-CBC (RFC 8216), one key per video attempt,
    /// served only to token holders.
    #[serde(rename = "aes-128")]
    Aes128,
}

impl Encryption {
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::None => "none",
            Encryption::Aes128 => "aes-128",
        }
    }
}

/// The MP4 download a video asks for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadOption {
    /// A rung's name (`720p`): the tallest rung not above it is remuxed.
    /// Absent: the top rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "720p", pattern = r"^[1-9][0-9]{1,3}p$"))]
    pub rung: Option<String>,
}

/// A video's playback options; every one off by default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlaybackOptions {
    /// True: the public HLS files, poster, thumbnails and download answer
    /// only with a signed token (`/hls/t/{token}/...`). Changeable later
    /// with `POST /videos/{app_id}/{video_id}/access`.
    #[serde(skip_serializing_if = "is_false")]
    pub require_signed_urls: bool,
    /// `aes-128` encrypts every media segment; it needs
    /// `require_signed_urls` (the key is served to token holders only).
    #[serde(skip_serializing_if = "is_clear")]
    pub encryption: Encryption,
    /// An MP4 download of one rung, remuxed from the ladder's segments:
    /// `true` for the top rung, or `{"rung": "720p"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>, example = json!({"rung": "720p"})))]
    pub download: Option<DownloadOption>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_clear(e: &Encryption) -> bool {
    *e == Encryption::None
}

impl PlaybackOptions {
    /// Their names in a notify's or an upload's body.
    pub const FIELDS: [&'static str; 3] = ["require_signed_urls", "encryption", "download"];

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The options a body's fields ask for (absent or `null`: the default),
    /// or why they are refused.
    pub fn from_fields(
        require_signed_urls: Option<&Value>,
        encryption: Option<&Value>,
        download: Option<&Value>,
    ) -> Result<Self, String> {
        let require_signed_urls = match require_signed_urls {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(format!("require_signed_urls must be true or false, not {v}")),
        };
        let encryption = match encryption {
            None | Some(Value::Null) => Encryption::None,
            Some(Value::String(s)) if s == "none" => Encryption::None,
            Some(Value::String(s)) if s == "aes-128" => Encryption::Aes128,
            Some(v) => return Err(format!("encryption must be \"none\" or \"aes-128\", not {v}")),
        };
        let download = match download {
            None | Some(Value::Null) | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(DownloadOption::default()),
            Some(Value::Object(o)) => {
                if let Some(other) = o.keys().find(|k| k.as_str() != "rung") {
                    return Err(format!("download: unknown field {other:?}; the accepted field is rung"));
                }
                let rung = match o.get("rung") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(r)) if rung_height(r).is_some() => Some(r.clone()),
                    Some(v) => return Err(format!("download.rung must be a rung name like \"720p\", not {v}")),
                };
                Some(DownloadOption { rung })
            }
            Some(v) => return Err(format!("download must be true, false or {{\"rung\": \"720p\"}}, not {v}")),
        };
        let options = Self { require_signed_urls, encryption, download };
        if options.encryption == Encryption::Aes128 && !options.require_signed_urls {
            return Err(
                "encryption \"aes-128\" needs require_signed_urls: true: its key is served to token holders only"
                    .into(),
            );
        }
        Ok(options)
    }

    /// Why a notify asking for `asked` cannot reuse a job made with these
    /// options, if it cannot. Encryption and the download are fixed once the
    /// job exists. The signed-URL flag belongs to the access route after
    /// that: a notify that leaves it out (or false) keeps the job's, so a
    /// backend's repeated notify stays idempotent after the flag was turned
    /// on; one asking for it on a public job is refused rather than left
    /// public without a word.
    pub fn conflict_with(&self, asked: &PlaybackOptions) -> Option<String> {
        let fixed_differ = self.encryption != asked.encryption || self.download != asked.download;
        let would_stay_public = asked.require_signed_urls && !self.require_signed_urls;
        if !fixed_differ && !would_stay_public {
            return None;
        }
        Some(format!(
            "this video's job was made with other playback options ({}); encryption and download are fixed once \
             the job exists (delete the video and upload it again), and require_signed_urls is changed with \
             POST /videos/{{app_id}}/{{video_id}}/access",
            self.summary()
        ))
    }

    fn summary(&self) -> String {
        let download = match &self.download {
            None => "no download".to_owned(),
            Some(DownloadOption { rung: None }) => "download of the top rung".to_owned(),
            Some(DownloadOption { rung: Some(r) }) => format!("download of {r}"),
        };
        format!("require_signed_urls {}, encryption {}, {download}", self.require_signed_urls, self.encryption.as_str())
    }
}

/// The height a rung name (`720p`) stands for: 2 to 4 digits, no leading zero.
pub fn rung_height(name: &str) -> Option<u32> {
    let digits = name.strip_suffix('p')?;
    if !(2..=4).contains(&digits.len()) || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<PlaybackOptions, String> {
        PlaybackOptions::from_fields(body.get("require_signed_urls"), body.get("encryption"), body.get("download"))
    }

    #[test]
    fn absent_and_null_are_the_defaults() {
        assert_eq!(parse(json!({})), Ok(PlaybackOptions::default()));
        assert_eq!(
            parse(json!({"require_signed_urls": null, "encryption": null, "download": null})),
            Ok(PlaybackOptions::default())
        );
        assert_eq!(parse(json!({"download": false, "encryption": "none"})), Ok(PlaybackOptions::default()));
    }

    #[test]
    fn every_option_parses() {
        let o =
            parse(json!({"require_signed_urls": true, "encryption": "aes-128", "download": {"rung": "720p"}})).unwrap();
        assert!(o.require_signed_urls);
        assert_eq!(o.encryption, Encryption::Aes128);
        assert_eq!(o.download, Some(DownloadOption { rung: Some("720p".into()) }));
        assert_eq!(parse(json!({"download": true})).unwrap().download, Some(DownloadOption { rung: None }));
        assert_eq!(parse(json!({"download": {}})).unwrap().download, Some(DownloadOption { rung: None }));
    }

    #[test]
    fn encryption_needs_signed_urls() {
        let e = parse(json!({"encryption": "aes-128"})).unwrap_err();
        assert!(e.contains("require_signed_urls"), "{e}");
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (body, says) in [
            (json!({"require_signed_urls": "yes"}), "true or false"),
            (json!({"encryption": "AES-128"}), "\"aes-128\""),
            (json!({"encryption": 128}), "\"aes-128\""),
            (json!({"download": "720p"}), "{\"rung\""),
            (json!({"download": {"rung": "720"}}), "rung name"),
            (json!({"download": {"rung": "0720p"}}), "rung name"),
            (json!({"download": {"height": 720}}), "unknown field"),
        ] {
            let e = parse(body.clone()).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn the_default_serializes_to_nothing_and_round_trips() {
        assert_eq!(serde_json::to_value(PlaybackOptions::default()).unwrap(), json!({}));
        let o = PlaybackOptions {
            require_signed_urls: true,
            encryption: Encryption::Aes128,
            download: Some(DownloadOption { rung: Some("360p".into()) }),
        };
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v, json!({"require_signed_urls": true, "encryption": "aes-128", "download": {"rung": "360p"}}));
        assert_eq!(serde_json::from_value::<PlaybackOptions>(v).unwrap(), o);
        // A job stored before the options existed reads as all-off.
        assert_eq!(serde_json::from_value::<PlaybackOptions>(json!({})).unwrap(), PlaybackOptions::default());
    }

    #[test]
    fn a_changed_option_is_a_conflict() {
        let public = PlaybackOptions::default();
        let signed = PlaybackOptions { require_signed_urls: true, ..Default::default() };
        assert_eq!(public.conflict_with(&PlaybackOptions::default()), None);
        // Asking a public job to be signed is refused, not ignored.
        let e = public.conflict_with(&signed).unwrap();
        assert!(e.contains("/access"), "{e}");
        // A job made signed (or turned signed by the access route) stays so
        // for a notify that leaves the flag out.
        assert_eq!(signed.conflict_with(&public), None);
        let download = PlaybackOptions { download: Some(DownloadOption::default()), ..Default::default() };
        assert!(public.conflict_with(&download).is_some());
        assert!(download.conflict_with(&public).is_some());
        let encrypted = PlaybackOptions { encryption: Encryption::Aes128, ..signed.clone() };
        assert!(signed.conflict_with(&encrypted).is_some());
    }

    #[test]
    fn rung_names() {
        assert_eq!(rung_height("720p"), Some(720));
        assert_eq!(rung_height("2160p"), Some(2160));
        for bad in ["p", "7p", "720", "0720p", "72a0p", "21600p", ""] {
            assert_eq!(rung_height(bad), None, "{bad}");
        }
    }
}

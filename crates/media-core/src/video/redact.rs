//! What a request's URL shows in logs and error reports: never a
//! credential. Every bearer credential the services take in a URL is
//! replaced by `REDACTED` before the URL is logged or sent to Sentry:
//! - in the query: a stream token (`stream_token=`, [`super::stream_token`]),
//!   a playback token (`/download?token=`, [`super::playback_token`]) and a
//!   private image's signature (`sig=`, `crate::image::url_signing`);
//! - in the path: an upload token (`/uploads/{up1.…}/s3/multipart…`,
//!   [`super::upload_session`]) and a playback token (`/hls/t/{token}/…`).
//!
//! This is the one place these rules live; a new credential in a URL gets
//! its line here and its case in the test below.

use std::borrow::Cow;

use super::playback_token::TOKEN_PATH_PREFIX;
use super::stream_token::STREAM_TOKEN_PARAM;

/// The start of every upload token (`UploadToken`: `up1.{claims}.{mac}`).
const UPLOAD_TOKEN_START: &str = "up1.";

/// Query parameters whose value is a credential.
const CREDENTIAL_PARAMS: [&str; 3] = [STREAM_TOKEN_PARAM, "token", "sig"];

/// `url` with every credential it carries replaced by `REDACTED`.
pub fn url_for_logs(url: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let path_hides = path.split('/').any(|s| s.starts_with(UPLOAD_TOKEN_START)) || path.contains(TOKEN_PATH_PREFIX);
    let is_credential = |pair: &str| CREDENTIAL_PARAMS.contains(&pair.split('=').next().unwrap_or_default());
    let query_hides = query.is_some_and(|q| q.split('&').any(is_credential));
    if !path_hides && !query_hides {
        return Cow::Borrowed(url);
    }
    let mut out = redact_path(path);
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_credential(pair) => format!("{name}=REDACTED"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// The path with an upload token's segment, and the segment after
/// `/hls/t/`, masked.
fn redact_path(path: &str) -> String {
    let (head, tail) = match path.find(TOKEN_PATH_PREFIX) {
        Some(i) => {
            let after = &path[i + TOKEN_PATH_PREFIX.len()..];
            let rest = after.find('/').map_or("", |j| &after[j..]);
            (&path[..i], format!("{TOKEN_PATH_PREFIX}REDACTED{rest}"))
        }
        None => (path, String::new()),
    };
    let masked: Vec<&str> =
        head.split('/').map(|s| if s.starts_with(UPLOAD_TOKEN_START) { "REDACTED" } else { s }).collect();
    format!("{}{tail}", masked.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credential_in_a_url_is_hidden() {
        let cases = [
            (
                "https://v.example/uploads/up1.7b22.9f00/s3/multipart/u1/complete?x=1",
                "https://v.example/uploads/REDACTED/s3/multipart/u1/complete?x=1",
            ),
            (
                "https://v.example/events?app_id=a&stream_token=st1.00.11",
                "https://v.example/events?app_id=a&stream_token=REDACTED",
            ),
            (
                "https://v.example/events?stream_token=x&last_event_id=3#f",
                "https://v.example/events?stream_token=REDACTED&last_event_id=3#f",
            ),
            (
                "https://v.example/hls/t/eyJh.eyJz.c2ln/720p/00001.m4s",
                "https://v.example/hls/t/REDACTED/720p/00001.m4s",
            ),
            ("https://v.example/hls/t/eyJh.eyJz.c2ln", "https://v.example/hls/t/REDACTED"),
            ("https://v.example/download?token=eyJh.eyJz.c2ln", "https://v.example/download?token=REDACTED"),
            (
                "https://i.example/assets/a/cat?exp=1700000000&sig=9f00ab#x",
                "https://i.example/assets/a/cat?exp=1700000000&sig=REDACTED#x",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(url_for_logs(url), want, "{url}");
        }
    }

    #[test]
    fn urls_without_credentials_are_left_as_they_are() {
        for url in [
            "https://v.example/health",
            // A query value that merely starts like a token is not a path segment.
            "https://v.example/job-status?app_id=a&video_id=up1.x",
            "https://v.example/events?my_stream_token=1&tokens=2",
            "https://v.example/hls/a/v/o/master.m3u8",
        ] {
            assert!(matches!(url_for_logs(url), Cow::Borrowed(u) if u == url), "{url}");
        }
    }
}

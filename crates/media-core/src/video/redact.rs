//! What a request's URL shows in logs and error reports: never a
//! credential. A stream token travels in the query (`stream_token=`,
//! [`super::stream_token`]) and an upload token in the path
//! (`/uploads/{up1.…}/s3/multipart…`, [`super::upload_session`]); both
//! are replaced by `REDACTED` before a URL is logged or sent to Sentry.

use std::borrow::Cow;

use super::stream_token::redact_stream_token;

/// The start of every upload token (`UploadToken`: `up1.{claims}.{mac}`).
const UPLOAD_TOKEN_START: &str = "up1.";

/// `url` with every credential it carries replaced by `REDACTED`.
pub fn url_for_logs(url: &str) -> Cow<'_, str> {
    let url = redact_stream_token(url);
    let (path_end, rest) = match url.find(['?', '#']) {
        Some(i) => (i, &url[i..]),
        None => (url.len(), ""),
    };
    let path = &url[..path_end];
    if !path.split('/').any(|s| s.starts_with(UPLOAD_TOKEN_START)) {
        return url;
    }
    let masked: Vec<&str> =
        path.split('/').map(|s| if s.starts_with(UPLOAD_TOKEN_START) { "REDACTED" } else { s }).collect();
    Cow::Owned(format!("{}{rest}", masked.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_tokens_in_paths_and_stream_tokens_in_queries_are_hidden() {
        let url = "https://v.example/uploads/up1.7b22.9f00/s3/multipart/u1/complete?x=1";
        assert_eq!(url_for_logs(url), "https://v.example/uploads/REDACTED/s3/multipart/u1/complete?x=1");
        let url = "https://v.example/events?app_id=a&stream_token=st1.00.11";
        assert_eq!(url_for_logs(url), "https://v.example/events?app_id=a&stream_token=REDACTED");
        // A query that merely contains the prefix is not a path segment.
        let url = "https://v.example/job-status?app_id=a&video_id=up1.x";
        assert_eq!(url_for_logs(url), url);
        assert!(matches!(url_for_logs("https://v.example/health"), Cow::Borrowed(_)));
    }
}

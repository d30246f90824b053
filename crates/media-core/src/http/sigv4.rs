//! Signing requests to S3-compatible storage (R2, Garage, S3) with AWS's own
//! SigV4 implementation, the `aws-sigv4` crate: in headers (the Workers' S3
//! adapter) and in the query string (presigned upload URLs). This module only
//! says how the project calls it: path-style URLs
//! (`{endpoint}/{bucket}/{key}`, which R2, Garage and S3 all accept), keys
//! encoded once and never normalised, time passed in by the caller
//! (`SystemTime::now` panics on wasm32). A presigned `PUT` signs
//! `content-type` (and `content-length` when known), so the store refuses a
//! body of another type or size sent to the same URL.

use std::time::{Duration, UNIX_EPOCH};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `sha256("")`, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The longest expiry SigV4 allows for a presigned URL (7 days).
pub const MAX_PRESIGN_SECS: u32 = 604_800;

/// An access key pair (and session token for temporary credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl Credentials {
    fn identity(&self) -> Identity {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "media-platform",
        )
        .into()
    }
}

/// A request the signer refused (a header value that cannot be sent, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SigV4 signing of {method} {url} failed: {detail}")]
pub struct SigningError {
    pub method: String,
    /// The URL without its query string.
    pub url: String,
    pub detail: String,
}

/// Percent-encodes one path segment or query component the SigV4 way.
pub fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes an object key for a path: every segment encoded, slashes kept.
pub fn encode_key_path(key: &str) -> String {
    key.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// `k=v&k=v`, every name and value encoded once.
fn encode_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k.as_ref()), uri_encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// Where the signature goes.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// `Authorization` and `x-amz-*` headers (with `x-amz-content-sha256`, which S3 requires).
    Headers,
    /// The query string of a URL valid for this long.
    Query { expires_secs: u32 },
}

/// Who signs, where, and when.
#[derive(Debug, Clone, Copy)]
struct Signer<'a> {
    region: &'a str,
    credentials: &'a Credentials,
    now: Timestamp,
}

impl Signer<'_> {
    /// Signs `method url` (`url` already encoded, with its query string)
    /// with `headers` (any case; `host` is taken from the URL, without a
    /// default port, as clients send it). Returns the headers and the query
    /// parameters to add.
    #[allow(clippy::type_complexity)]
    fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        payload_hash: &str,
        placement: Placement,
    ) -> Result<(Vec<(String, String)>, Vec<(&'static str, String)>), SigningError> {
        let failed = |detail: String| SigningError {
            method: method.to_owned(),
            url: url.split('?').next().unwrap_or_default().to_owned(),
            detail,
        };
        let mut settings = SigningSettings::default();
        // Keys are encoded once by `encode_key_path`, and S3 takes paths as they are.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        match placement {
            Placement::Headers => {
                settings.signature_location = SignatureLocation::Headers;
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            }
            Placement::Query { expires_secs } => {
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(Duration::from_secs(u64::from(expires_secs.min(MAX_PRESIGN_SECS))));
            }
        }
        let identity = self.credentials.identity();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("s3")
            .time(UNIX_EPOCH + Duration::from_millis(self.now.millis()))
            .settings(settings)
            .build()
            .map_err(|e| failed(e.to_string()))?
            .into();
        let body = match payload_hash {
            UNSIGNED_PAYLOAD => SignableBody::UnsignedPayload,
            hash => SignableBody::Precomputed(hash.to_owned()),
        };
        let request = SignableRequest::new(method, url, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), body)
            .map_err(|e| failed(e.to_string()))?;
        let (added_headers, added_params) =
            sign(request, &params).map_err(|e| failed(e.to_string()))?.into_parts().0.into_parts();
        Ok((
            added_headers.iter().map(|h| (h.name().to_owned(), h.value().to_owned())).collect(),
            added_params.into_iter().map(|(k, v)| (k, v.into_owned())).collect(),
        ))
    }

    /// `url` (without a query string) with the signature in its query string.
    fn presign_url(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        expires_secs: u32,
    ) -> Result<String, SigningError> {
        let (_, params) = self.sign(method, url, headers, UNSIGNED_PAYLOAD, Placement::Query { expires_secs })?;
        let joiner = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{joiner}{}", encode_query(&params)))
    }
}

/// An S3-compatible bucket reached path-style.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`, as configured.
    pub authority: String,
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
}

/// A presigned request: where to send it and which headers must go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    /// Headers the client must send exactly as given (they are signed).
    pub headers: Vec<(String, String)>,
    pub expires_at: Timestamp,
}

impl S3Bucket {
    /// Parses `http(s)://host[:port]` (a trailing slash allowed, no path).
    pub fn new(endpoint: &str, bucket: &str, region: &str, credentials: Credentials) -> Result<Self, String> {
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| format!("S3 endpoint {endpoint:?} must start with http:// or https://"))?;
        if scheme != "http" && scheme != "https" {
            return Err(format!("S3 endpoint {endpoint:?} must start with http:// or https://"));
        }
        let authority = rest.trim_end_matches('/');
        if authority.is_empty()
            || authority.contains('/')
            || authority.contains('?')
            || authority.contains('@')
            || authority.parse::<http::uri::Authority>().is_err()
        {
            return Err(format!("S3 endpoint {endpoint:?} must be scheme://host[:port] without a path"));
        }
        if bucket.is_empty() || bucket.contains('/') {
            return Err(format!("S3 bucket {bucket:?} is not a bucket name"));
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            credentials,
        })
    }

    /// `/bucket/encoded/key`, or `/bucket/` for bucket-level requests.
    pub fn path(&self, key: Option<&str>) -> String {
        match key {
            Some(k) => format!("/{}/{}", uri_encode(&self.bucket), encode_key_path(k)),
            None => format!("/{}/", uri_encode(&self.bucket)),
        }
    }

    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    fn signer(&self, now: Timestamp) -> Signer<'_> {
        Signer { region: &self.region, credentials: &self.credentials, now }
    }

    /// A presigned URL for `method` on `key` with `headers` signed in.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        headers: &[(String, String)],
        expires_secs: u32,
        now: Timestamp,
    ) -> Result<PresignedRequest, SigningError> {
        self.presign_with_query(method, key, &[], headers, expires_secs, now)
    }

    /// [`Self::presign`] with a query of its own signed in (e.g. a multipart
    /// upload's `partNumber` and `uploadId`).
    pub fn presign_with_query(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        expires_secs: u32,
        now: Timestamp,
    ) -> Result<PresignedRequest, SigningError> {
        let url = match encode_query(query) {
            qs if qs.is_empty() => format!("{}{}", self.origin(), self.path(Some(key))),
            qs => format!("{}{}?{qs}", self.origin(), self.path(Some(key))),
        };
        Ok(PresignedRequest {
            method: method.to_owned(),
            url: self.signer(now).presign_url(method, &url, headers, expires_secs)?,
            headers: headers.to_vec(),
            expires_at: now.plus_secs(u64::from(expires_secs.min(MAX_PRESIGN_SECS))),
        })
    }

    /// A presigned `PUT` of `key` that writes it once: bound to its content
    /// type, its exact length and `If-None-Match: *` (R2 and S3 then refuse
    /// a `PUT` over an object that exists; all three are signed headers the
    /// uploader must send).
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_secs: u32,
        now: Timestamp,
    ) -> Result<PresignedRequest, SigningError> {
        let headers = [
            ("Content-Type".to_owned(), content_type.trim().to_owned()),
            ("Content-Length".to_owned(), content_length.to_string()),
            ("If-None-Match".to_owned(), "*".to_owned()),
        ];
        self.presign("PUT", key, &headers, expires_secs, now)
    }

    /// Signs an API request in headers; returns (url, headers to send).
    pub fn sign(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(String, String)],
        headers: &[(String, String)],
        payload_hash: &str,
        now: Timestamp,
    ) -> Result<(String, Vec<(String, String)>), SigningError> {
        let path = self.path(key);
        let url = match encode_query(query) {
            qs if qs.is_empty() => format!("{}{path}", self.origin()),
            qs => format!("{}{path}?{qs}", self.origin()),
        };
        let (added, _) = self.signer(now).sign(method, &url, headers, payload_hash, Placement::Headers)?;
        let mut all = headers.to_vec();
        all.extend(added);
        Ok((url, all))
    }
}

/// Hex SHA-256 of a body, for `payload_hash`.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of AWS's S3 documentation ("Authenticating Requests:
    // Using Query Parameters" and "Using the Authorization Header"), signed
    // the way this module calls `aws-sigv4`.
    fn aws_example() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }
    const MAY_24_2013: Timestamp = Timestamp::from_secs(1_369_353_600);

    fn authorization(added: &[(String, String)]) -> &str {
        &added.iter().find(|(k, _)| k == "authorization").unwrap().1
    }

    #[test]
    fn presigned_get_matches_the_aws_documentation() {
        let creds = aws_example();
        let signer = Signer { region: "us-east-1", credentials: &creds, now: MAY_24_2013 };
        assert_eq!(
            signer.presign_url("GET", "https://examplebucket.s3.amazonaws.com/test.txt", &[], 86_400).unwrap(),
            "https://examplebucket.s3.amazonaws.com/test.txt?\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn header_signed_get_matches_the_aws_documentation() {
        let creds = aws_example();
        let signer = Signer { region: "us-east-1", credentials: &creds, now: MAY_24_2013 };
        let headers = vec![("Range".to_owned(), "bytes=0-9".to_owned())];
        let url = "https://examplebucket.s3.amazonaws.com/test.txt";
        let (added, params) = signer.sign("GET", url, &headers, EMPTY_SHA256, Placement::Headers).unwrap();
        assert!(params.is_empty());
        assert_eq!(
            authorization(&added),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let value = |name: &str| added.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(value("x-amz-date"), Some("20130524T000000Z"));
        assert_eq!(value("x-amz-content-sha256"), Some(EMPTY_SHA256));
    }

    #[test]
    fn header_signed_list_with_query_matches_the_aws_documentation() {
        // GET Bucket (List Objects) example: ?max-keys=2&prefix=J
        let creds = aws_example();
        let signer = Signer { region: "us-east-1", credentials: &creds, now: MAY_24_2013 };
        let url = "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J";
        let (added, _) = signer.sign("GET", url, &[], EMPTY_SHA256, Placement::Headers).unwrap();
        let auth = authorization(&added);
        assert!(auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), "{auth}");
    }

    fn garage_like() -> S3Bucket {
        S3Bucket::new(
            "http://127.0.0.1:3900/",
            "media",
            "us-east-1",
            Credentials { access_key_id: "GKdev".into(), secret_access_key: "secret".into(), session_token: None },
        )
        .unwrap()
    }

    #[test]
    fn presigned_put_binds_type_and_length() {
        let b = garage_like();
        let p = b.presign_put("raw/a/v/source.mp4", "video/mp4", 1234, 900, MAY_24_2013).unwrap();
        assert!(
            p.url.starts_with("http://127.0.0.1:3900/media/raw/a/v/source.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
            "{}",
            p.url
        );
        assert!(
            p.url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match"),
            "{}",
            p.url
        );
        assert!(p.url.contains("X-Amz-Expires=900"));
        assert_eq!(p.expires_at, MAY_24_2013.plus_secs(900));
        assert_eq!(
            p.headers,
            vec![
                ("Content-Type".into(), "video/mp4".into()),
                ("Content-Length".into(), "1234".into()),
                ("If-None-Match".into(), "*".into())
            ]
        );
        // Each bound value changes the signature.
        let sig = |p: &PresignedRequest| p.url.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
        let other_type = b.presign_put("raw/a/v/source.mp4", "video/webm", 1234, 900, MAY_24_2013).unwrap();
        let other_len = b.presign_put("raw/a/v/source.mp4", "video/mp4", 1235, 900, MAY_24_2013).unwrap();
        let other_key = b.presign_put("raw/a/w/source.mp4", "video/mp4", 1234, 900, MAY_24_2013).unwrap();
        assert_eq!(sig(&p).len(), 64);
        for o in [other_type, other_len, other_key] {
            assert_ne!(sig(&p), sig(&o));
        }
    }

    #[test]
    fn endpoints_are_validated() {
        let c = aws_example();
        assert!(S3Bucket::new("ftp://x", "b", "r", c.clone()).is_err());
        assert!(S3Bucket::new("127.0.0.1:3900", "b", "r", c.clone()).is_err());
        assert!(S3Bucket::new("https://x.r2.cloudflarestorage.com/bucket", "b", "r", c.clone()).is_err());
        assert!(S3Bucket::new("https://x.r2.cloudflarestorage.com", "", "auto", c.clone()).is_err());
        let ok = S3Bucket::new("https://acc.r2.cloudflarestorage.com", "media", "auto", c).unwrap();
        assert_eq!(ok.path(Some("a b/c+d")), "/media/a%20b/c%2Bd");
        assert_eq!(ok.path(None), "/media/");
    }

    /// A part of a multipart upload: its own query is signed in and kept,
    /// the signing parameters follow it after one `?`.
    #[test]
    fn presigned_urls_keep_and_sign_their_own_query() {
        let b = S3Bucket::new("https://acc.r2.cloudflarestorage.com", "media", "auto", aws_example()).unwrap();
        let query = |n: &str| vec![("partNumber".to_owned(), n.to_owned()), ("uploadId".to_owned(), "u+1".to_owned())];
        let headers = [("Content-Length".to_owned(), "5242880".to_owned())];
        let p = b.presign_with_query("PUT", "raw/a/v/source.mp4", &query("3"), &headers, 900, MAY_24_2013).unwrap();
        assert!(
            p.url.starts_with(
                "https://acc.r2.cloudflarestorage.com/media/raw/a/v/source.mp4?partNumber=3&uploadId=u%2B1&X-Amz-"
            ),
            "{}",
            p.url
        );
        assert_eq!(p.url.matches('?').count(), 1);
        assert!(p.url.contains("X-Amz-SignedHeaders=content-length%3Bhost"), "{}", p.url);
        let sig = |url: &str| url.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
        let other = b.presign_with_query("PUT", "raw/a/v/source.mp4", &query("4"), &headers, 900, MAY_24_2013).unwrap();
        assert_ne!(sig(&p.url), sig(&other.url), "the part number is signed");
        let plain = b.presign("PUT", "raw/a/v/source.mp4", &headers, 900, MAY_24_2013).unwrap();
        assert_eq!(plain.url.matches('?').count(), 1);
    }

    /// Browsers (and fetch) never send a scheme's default port in `Host`,
    /// so an endpoint configured with one must be signed without it; any
    /// other port (Garage's 3900) is part of the host that is sent and signed.
    #[test]
    fn default_ports_are_left_out_of_the_signed_host() {
        let bucket = |endpoint: &str| S3Bucket::new(endpoint, "media", "auto", aws_example()).unwrap();
        let sig = |b: &S3Bucket| {
            let p = b.presign_put("images/a/i", "image/png", 10, 900, MAY_24_2013).unwrap();
            p.url.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned()
        };
        let r2 = "https://x.r2.cloudflarestorage.com";
        assert_eq!(sig(&bucket(&format!("{r2}:443"))), sig(&bucket(r2)), "https with :443 signs the host without it");
        assert_eq!(sig(&bucket("http://127.0.0.1:80")), sig(&bucket("http://127.0.0.1")), "http with :80 likewise");
        assert_ne!(sig(&bucket("http://127.0.0.1:3900")), sig(&bucket("http://127.0.0.1")), "other ports are signed");
        assert_ne!(
            sig(&bucket("https://127.0.0.1:80")),
            sig(&bucket("https://127.0.0.1")),
            "80 is not https's default"
        );
        // The same for requests signed in headers (the S3 adapter).
        let auth = |b: &S3Bucket| {
            let (_, headers) = b.sign("HEAD", Some("images/a/i"), &[], &[], EMPTY_SHA256, MAY_24_2013).unwrap();
            authorization(&headers).to_owned()
        };
        assert_eq!(auth(&bucket(&format!("{r2}:443"))), auth(&bucket(r2)));
        assert_ne!(auth(&bucket("http://127.0.0.1:3900")), auth(&bucket("http://127.0.0.1")));
    }

    #[test]
    fn credentials_never_print_the_secret() {
        assert!(!format!("{:?}", aws_example()).contains("EXAMPLEKEY"));
    }
}

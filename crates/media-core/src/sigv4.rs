//! AWS Signature Version 4 for S3-compatible storage (R2, Garage, S3): signing
//! requests in headers (the Workers' S3 adapter) and in the query string
//! (presigned upload URLs). Pure: the caller passes the time.
//!
//! Requests are path-style (`{endpoint}/{bucket}/{key}`), which R2, Garage and
//! S3 all accept. A presigned `PUT` signs `content-type` (and
//! `content-length` when known), so the store refuses a body of another type
//! or size sent to the same URL.

use hmac::{Hmac, Mac};
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

/// The request to sign. Header names may be given in any case.
#[derive(Debug, Clone)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// `host` or `host:port`, exactly as the client will send it.
    pub host: &'a str,
    /// The already-encoded absolute path (`/bucket/key`).
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Headers to sign besides `host` (e.g. `content-type`, `range`, `x-amz-*`).
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Where and as whom to sign.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub credentials: &'a Credentials,
    pub now: Timestamp,
}

impl Scope<'_> {
    fn date(&self) -> String {
        self.now.to_amz_date()[..8].to_owned()
    }

    fn credential_scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date(), self.region, self.service)
    }

    fn signing_key(&self) -> Vec<u8> {
        let k = format!("AWS4{}", self.credentials.secret_access_key);
        let k = hmac(k.as_bytes(), self.date().as_bytes());
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, self.service.as_bytes());
        hmac(&k, b"aws4_request")
    }

    fn signature(&self, canonical_request: &str) -> String {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.now.to_amz_date(),
            self.credential_scope(),
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        hex::encode(hmac(&self.signing_key(), string_to_sign.as_bytes()))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Percent-encodes one path segment or query component the SigV4 way.
pub fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes an object key for a path: every segment encoded, slashes kept.
pub fn encode_key_path(key: &str) -> String {
    key.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (uri_encode(k), uri_encode(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Lowercased, trimmed, sorted headers including `host`; returns
/// (canonical header block, signed header list).
fn canonical_headers(host: &str, headers: &[(String, String)]) -> (String, String) {
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .filter(|(k, _)| k != "host")
        .collect();
    all.push(("host".into(), host.to_owned()));
    all.sort();
    let block = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect::<String>();
    let names = all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    (block, names)
}

fn canonical_request(req: &SignableRequest<'_>, query: &[(String, String)]) -> (String, String) {
    let (headers, signed) = canonical_headers(req.host, req.headers);
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(query),
        headers,
        signed,
        req.payload_hash
    );
    (text, signed)
}

/// Signs a request in headers. Returns the headers to add: `authorization`,
/// `x-amz-date`, `x-amz-content-sha256` (and `x-amz-security-token`). The
/// request's own `headers` must already include those two `x-amz-*` values
/// if the caller wants them signed; this adds them when missing.
pub fn sign_headers(req: &SignableRequest<'_>, scope: &Scope<'_>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = req.headers.to_vec();
    let has = |hs: &[(String, String)], name: &str| hs.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut added = Vec::new();
    if !has(&headers, "x-amz-date") {
        added.push(("x-amz-date".to_owned(), scope.now.to_amz_date()));
    }
    if !has(&headers, "x-amz-content-sha256") {
        added.push(("x-amz-content-sha256".to_owned(), req.payload_hash.to_owned()));
    }
    if let Some(token) = &scope.credentials.session_token {
        if !has(&headers, "x-amz-security-token") {
            added.push(("x-amz-security-token".to_owned(), token.clone()));
        }
    }
    headers.extend(added.iter().cloned());
    let signing = SignableRequest { headers: &headers, ..req.clone() };
    let (canonical, signed) = canonical_request(&signing, req.query);
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
        scope.credentials.access_key_id,
        scope.credential_scope(),
        signed,
        scope.signature(&canonical)
    );
    added.push(("authorization".to_owned(), authorization));
    added
}

/// Signs a request in its query string. Returns the full query string
/// (already encoded, without `?`) to append to the path.
pub fn presign_query(req: &SignableRequest<'_>, scope: &Scope<'_>, expires_secs: u32) -> String {
    let (_, signed) = canonical_headers(req.host, req.headers);
    let mut query: Vec<(String, String)> = req.query.to_vec();
    query.extend([
        ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("X-Amz-Credential".to_owned(), format!("{}/{}", scope.credentials.access_key_id, scope.credential_scope())),
        ("X-Amz-Date".to_owned(), scope.now.to_amz_date()),
        ("X-Amz-Expires".to_owned(), expires_secs.min(MAX_PRESIGN_SECS).to_string()),
        ("X-Amz-SignedHeaders".to_owned(), signed),
    ]);
    if let Some(token) = &scope.credentials.session_token {
        query.push(("X-Amz-Security-Token".to_owned(), token.clone()));
    }
    let (canonical, _) = canonical_request(req, &query);
    let signature = scope.signature(&canonical);
    format!("{}&X-Amz-Signature={signature}", canonical_query(&query))
}

/// An S3-compatible bucket reached path-style.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`.
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
        if authority.is_empty() || authority.contains('/') || authority.contains('?') || authority.contains('@') {
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

    fn scope(&self, now: Timestamp) -> Scope<'_> {
        Scope { region: &self.region, service: "s3", credentials: &self.credentials, now }
    }

    /// A presigned URL for `method` on `key` with `headers` signed in.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        headers: &[(String, String)],
        expires_secs: u32,
        now: Timestamp,
    ) -> PresignedRequest {
        let path = self.path(Some(key));
        let req = SignableRequest {
            method,
            host: &self.authority,
            path: &path,
            query: &[],
            headers,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let query = presign_query(&req, &self.scope(now), expires_secs);
        PresignedRequest {
            method: method.to_owned(),
            url: format!("{}{path}?{query}", self.origin()),
            headers: headers.to_vec(),
            expires_at: now.plus_secs(u64::from(expires_secs.min(MAX_PRESIGN_SECS))),
        }
    }

    /// A presigned `PUT` of `key` bound to its content type and, when known, its length.
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
        expires_secs: u32,
        now: Timestamp,
    ) -> PresignedRequest {
        let mut headers = vec![("Content-Type".to_owned(), content_type.trim().to_owned())];
        if let Some(len) = content_length {
            headers.push(("Content-Length".to_owned(), len.to_string()));
        }
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
    ) -> (String, Vec<(String, String)>) {
        let path = self.path(key);
        let req = SignableRequest { method, host: &self.authority, path: &path, query, headers, payload_hash };
        let mut all = headers.to_vec();
        all.extend(sign_headers(&req, &self.scope(now)));
        let qs = canonical_query(query);
        let url =
            if qs.is_empty() { format!("{}{path}", self.origin()) } else { format!("{}{path}?{qs}", self.origin()) };
        (url, all)
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
    // Using Query Parameters" and "Using the Authorization Header").
    fn aws_example() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }
    const MAY_24_2013: Timestamp = Timestamp::from_secs(1_369_353_600);

    #[test]
    fn presigned_get_matches_the_aws_documentation() {
        let creds = aws_example();
        let scope = Scope { region: "us-east-1", service: "s3", credentials: &creds, now: MAY_24_2013 };
        let req = SignableRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[],
            payload_hash: UNSIGNED_PAYLOAD,
        };
        assert_eq!(
            presign_query(&req, &scope, 86_400),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn header_signed_get_matches_the_aws_documentation() {
        let creds = aws_example();
        let scope = Scope { region: "us-east-1", service: "s3", credentials: &creds, now: MAY_24_2013 };
        let headers = vec![("Range".to_owned(), "bytes=0-9".to_owned())];
        let req = SignableRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let added = sign_headers(&req, &scope);
        let auth = &added.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn header_signed_list_with_query_matches_the_aws_documentation() {
        // GET Bucket (List Objects) example: ?max-keys=2&prefix=J
        let creds = aws_example();
        let scope = Scope { region: "us-east-1", service: "s3", credentials: &creds, now: MAY_24_2013 };
        let query = vec![("max-keys".to_owned(), "2".to_owned()), ("prefix".to_owned(), "J".to_owned())];
        let req = SignableRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: &query,
            headers: &[],
            payload_hash: EMPTY_SHA256,
        };
        let added = sign_headers(&req, &scope);
        let auth = &added.iter().find(|(k, _)| k == "authorization").unwrap().1;
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
        let p = b.presign_put("raw/a/v/source.mp4", "video/mp4", Some(1234), 900, MAY_24_2013);
        assert!(
            p.url.starts_with("http://127.0.0.1:3900/media/raw/a/v/source.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
            "{}",
            p.url
        );
        assert!(p.url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"), "{}", p.url);
        assert!(p.url.contains("X-Amz-Expires=900"));
        assert_eq!(p.expires_at, MAY_24_2013.plus_secs(900));
        assert_eq!(
            p.headers,
            vec![("Content-Type".into(), "video/mp4".into()), ("Content-Length".into(), "1234".into())]
        );
        // Each bound value changes the signature.
        let sig = |p: &PresignedRequest| p.url.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
        let other_type = b.presign_put("raw/a/v/source.mp4", "video/webm", Some(1234), 900, MAY_24_2013);
        let other_len = b.presign_put("raw/a/v/source.mp4", "video/mp4", Some(1235), 900, MAY_24_2013);
        let other_key = b.presign_put("raw/a/w/source.mp4", "video/mp4", Some(1234), 900, MAY_24_2013);
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

    #[test]
    fn credentials_never_print_the_secret() {
        assert!(!format!("{:?}", aws_example()).contains("EXAMPLEKEY"));
    }
}

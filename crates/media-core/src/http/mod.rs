//! HTTP and the protocols around it, with no I/O. Here: the rules the public
//! routes share (byte ranges, entity-tag matching, media types and the CORS
//! headers browsers and players need). Beside it:
//!
//! | module | owns |
//! |---|---|
//! | [`sigv4`] | SigV4 signing and presigned URLs for S3-compatible storage |
//! | [`multipart`] | reading `multipart/form-data` upload bodies (raw bytes of every part, filename or not) |
//! | [`s3_xml`] | S3's multipart XML: reading the multipart answers, writing the completion body |
//! | [`auth`] | API keys and the apps each may act for (`IV_API_KEY`), key fingerprints, bearer token checks; in constant time |
//! | [`purge`] | cache tags on what the Workers keep at the edge, the zone purge by tag a delete sends, the edge TTL cap where no purge can be had |

pub mod auth;
pub mod multipart;
pub mod purge;
pub mod s3_xml;
pub mod sigv4;

/// A satisfiable byte range, inclusive on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// `bytes 0-99/1000`.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole object (also for syntax we ignore, as RFC 9110 allows).
    Full,
    Partial(ByteRange),
    /// Well-formed but outside the object: 416.
    Unsatisfiable,
}

/// A single byte range as the client asked for it, before the object's
/// size is known: what a storage read is asked for, so that the metadata
/// and the bytes come from one read of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (a <= b).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Parses a single-range `Range` header (`bytes=0-99`, `bytes=500-`,
    /// `bytes=-500`). `None` for no header and for what is answered with the
    /// whole object: several ranges, other units, syntax we ignore (as RFC
    /// 9110 allows).
    pub fn parse(header: Option<&str>) -> Option<RangeSpec> {
        let spec = header.map(str::trim)?.strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.trim().split_once('-')?;
        let num = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
        };
        match (a.trim(), b.trim()) {
            ("", suffix) => num(suffix).map(RangeSpec::Suffix),
            (start, "") => num(start).map(RangeSpec::From),
            (start, end) => match (num(start), num(end)) {
                (Some(s), Some(e)) if s <= e => Some(RangeSpec::FromTo(s, e)),
                _ => None,
            },
        }
    }

    /// What the range means for an object of `size` bytes.
    pub fn resolve(self, size: u64) -> RangeRequest {
        match self {
            RangeSpec::Suffix(0) => RangeRequest::Unsatisfiable,
            RangeSpec::Suffix(n) if size > 0 => {
                RangeRequest::Partial(ByteRange { start: size.saturating_sub(n), end: size - 1 })
            }
            RangeSpec::Suffix(_) => RangeRequest::Unsatisfiable,
            RangeSpec::From(s) if s < size => RangeRequest::Partial(ByteRange { start: s, end: size - 1 }),
            RangeSpec::From(_) => RangeRequest::Unsatisfiable,
            RangeSpec::FromTo(s, e) if s < size => RangeRequest::Partial(ByteRange { start: s, end: e.min(size - 1) }),
            RangeSpec::FromTo(..) => RangeRequest::Unsatisfiable,
        }
    }

    /// The `Range` header that asks storage for exactly this range.
    pub fn header_value(self) -> String {
        match self {
            RangeSpec::FromTo(s, e) => format!("bytes={s}-{e}"),
            RangeSpec::From(s) => format!("bytes={s}-"),
            RangeSpec::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// Parses a single-range `Range` header (`bytes=0-99`, `bytes=500-`,
/// `bytes=-500`) against an object of `size` bytes. Multiple ranges are
/// answered with the whole object.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    RangeSpec::parse(header).map_or(RangeRequest::Full, |r| r.resolve(size))
}

/// The one entity tag of an `If-None-Match` header, bare (no quotes, no
/// `W/`), as a storage read's condition takes it; `None` for no header, `*`
/// or a list, which are matched after the read instead ([`if_none_match`]).
pub fn single_etag_condition(header: Option<&str>) -> Option<String> {
    let h = header?.trim();
    if h.is_empty() || h.contains(',') || h == "*" {
        return None;
    }
    let bare = h.trim_start_matches("W/").trim_matches('"');
    (!bare.is_empty()).then(|| bare.to_owned())
}

/// Does an `If-None-Match` header match the object's (quoted) entity tag?
/// Weak comparison, as RFC 9110 prescribes for this header.
pub fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else { return false };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = bare(etag);
    h.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// Quotes an entity tag if the store gave it bare.
pub fn quote_etag(etag: &str) -> String {
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// The media type of a `Content-Type` value, without its parameters
/// (`image/png` of `image/png; charset=binary`).
pub fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Response headers that let browsers read what the platform serves.
pub const CORS_EXPOSE: &str =
    "Content-Length, Content-Range, Content-Type, ETag, Accept-Ranges, Retry-After, X-Image-Variant";
/// Request headers browsers may send to the public routes. Not `x-api-key`
/// nor `Authorization`: the routes that read them are for servers, and
/// answer browsers with no CORS headers at all.
pub const CORS_ALLOW_HEADERS: &str = "Content-Type, Range, If-None-Match";

/// The `Access-Control-Allow-Origin` value for a request from `origin`,
/// given the configured list (`*` or comma-separated origins).
pub fn cors_allow_origin(configured: &str, origin: Option<&str>) -> Option<String> {
    let configured = configured.trim();
    if configured.is_empty() || configured == "*" {
        return Some("*".into());
    }
    let origin = origin?;
    configured.split(',').map(str::trim).any(|o| o == origin).then(|| origin.to_owned())
}

/// Whether answers depend on the request's `Origin` (an allow-list is
/// configured), so they must carry `Vary: Origin` whatever the origin.
pub fn cors_varies_by_origin(configured: &str) -> bool {
    let configured = configured.trim();
    !(configured.is_empty() || configured == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let r = |s, e| Partial(ByteRange { start: s, end: e });
        let cases: &[(Option<&str>, u64, RangeRequest)] = &[
            (None, 100, Full),
            (Some("bytes=0-9"), 100, r(0, 9)),
            (Some("bytes=90-"), 100, r(90, 99)),
            (Some("bytes=-10"), 100, r(90, 99)),
            (Some("bytes=-500"), 100, r(0, 99)),
            (Some("bytes=50-500"), 100, r(50, 99)),
            (Some("bytes=99-99"), 100, r(99, 99)),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=100-200"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=9-0"), 100, Full),
            (Some("bytes=0-1,5-6"), 100, Full),
            (Some("items=0-9"), 100, Full),
            (Some("bytes=a-b"), 100, Full),
            (Some("bytes=+1-2"), 100, Full),
        ];
        for (h, size, want) in cases {
            assert_eq!(parse_range(*h, *size), *want, "{h:?} of {size}");
        }
        assert_eq!(ByteRange { start: 0, end: 9 }.content_range(100), "bytes 0-9/100");
        assert_eq!(ByteRange { start: 5, end: 9 }.len(), 5);
    }

    #[test]
    fn range_specs_are_read_before_the_size_is_known() {
        use RangeSpec::*;
        let cases: &[(Option<&str>, Option<RangeSpec>, Option<&str>)] = &[
            (None, None, None),
            (Some("bytes=0-9"), Some(FromTo(0, 9)), Some("bytes=0-9")),
            (Some(" bytes= 90- "), Some(From(90)), Some("bytes=90-")),
            (Some("bytes=-10"), Some(Suffix(10)), Some("bytes=-10")),
            (Some("bytes=-0"), Some(Suffix(0)), Some("bytes=-0")),
            (Some("bytes=9-0"), None, None),
            (Some("bytes=0-1,5-6"), None, None),
            (Some("items=0-9"), None, None),
            (Some("bytes=a-b"), None, None),
            (Some("bytes=-"), None, None),
        ];
        for (h, want, header) in cases {
            let got = RangeSpec::parse(*h);
            assert_eq!(got, *want, "{h:?}");
            assert_eq!(got.map(RangeSpec::header_value).as_deref(), *header, "{h:?}");
        }
        // Resolving after the read gives what parsing with the size gives.
        assert_eq!(FromTo(50, 500).resolve(100), RangeRequest::Partial(ByteRange { start: 50, end: 99 }));
        assert_eq!(From(100).resolve(100), RangeRequest::Unsatisfiable);
        assert_eq!(Suffix(500).resolve(100), RangeRequest::Partial(ByteRange { start: 0, end: 99 }));
    }

    #[test]
    fn storage_conditions_take_one_bare_etag() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some("\"abc\""), Some("abc")),
            (Some(" W/\"abc\" "), Some("abc")),
            (Some("*"), None),
            (Some("\"a\", \"b\""), None),
            (Some(""), None),
            (Some("\"\""), None),
        ];
        for (h, want) in cases {
            assert_eq!(single_etag_condition(*h).as_deref(), *want, "{h:?}");
        }
    }

    #[test]
    fn etags() {
        assert!(if_none_match(Some("\"abc\""), "\"abc\""));
        assert!(if_none_match(Some("W/\"abc\""), "\"abc\""));
        assert!(if_none_match(Some("\"x\", \"abc\""), "\"abc\""));
        assert!(if_none_match(Some("*"), "\"abc\""));
        assert!(!if_none_match(Some("\"abd\""), "\"abc\""));
        assert!(!if_none_match(None, "\"abc\""));
        assert_eq!(quote_etag("abc"), "\"abc\"");
        assert_eq!(quote_etag("\"abc\""), "\"abc\"");
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(" image/png ; q=1"), "image/png");
        assert_eq!(media_type("image/jpeg"), "image/jpeg");
        assert_eq!(media_type(""), "");
    }

    #[test]
    fn cors_origins() {
        assert_eq!(cors_allow_origin("*", Some("https://a.example")).as_deref(), Some("*"));
        assert_eq!(cors_allow_origin("", None).as_deref(), Some("*"));
        let list = "https://a.example, https://b.example";
        assert_eq!(cors_allow_origin(list, Some("https://b.example")).as_deref(), Some("https://b.example"));
        assert_eq!(cors_allow_origin(list, Some("https://evil.example")), None);
        assert_eq!(cors_allow_origin(list, None), None);
        assert!(cors_varies_by_origin(list));
        assert!(cors_varies_by_origin("https://a.example"));
        assert!(!cors_varies_by_origin("*"));
        assert!(!cors_varies_by_origin(" * "));
        assert!(!cors_varies_by_origin(""));
        assert!(!CORS_ALLOW_HEADERS.to_ascii_lowercase().contains("x-api-key"), "browsers never send the API key");
    }
}

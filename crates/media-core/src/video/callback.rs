//! Callback URL safety: what a webhook or `callback_url` destination must
//! look like before the platform sends anything to it ([`check_url`], used at
//! notify and again at delivery, and for every URL of the webhook config).
//!
//! The rules keep the platform from being turned against its own network or
//! its provider's: `https` only, no userinfo, at most [`MAX_URL_LEN`]
//! characters, and no host that names a private, loopback, link-local,
//! shared (CGNAT), unspecified, multicast, reserved or documentation
//! address. URLs are read with the WHATWG parser (the `url` crate, as
//! `fetch` reads them), which turns every numeric IPv4 form (`2130706433`,
//! `0x7f000001`, `127.1`, `0177.0.0.1`) into the dotted address it means, so
//! those are judged as that address. Plain `http` to `127.0.0.1`, `[::1]` or
//! `localhost` is allowed only in development and tests.
//!
//! Host names are not resolved here (no I/O): a public name that resolves to
//! a private address is the delivery side's concern.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::ApiError;

/// The longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Checks a webhook/callback URL: absolute, scheme `https` (`http` only when
/// `allow_local_http` and the host is `127.0.0.1`, `[::1]` or `localhost`),
/// no userinfo, at most [`MAX_URL_LEN`] characters, a host present, and no
/// IP-literal host in a private, loopback, link-local, CGNAT, unspecified,
/// multicast, reserved or documentation range (IPv4-mapped and other
/// IPv6 forms that embed an IPv4 address are judged by that address).
///
/// The error is an `invalid_field` naming `callback_url` and the reason.
pub fn check_url(url: &str, allow_local_http: bool) -> Result<(), ApiError> {
    url_problem(url, allow_local_http)
        .map_or(Ok(()), |problem| Err(ApiError::invalid_field(format!("callback_url {problem}"))))
}

/// What is wrong with `url` as a callback destination, as the end of a
/// sentence whose subject is the field (`"must use https"`); `None` when it
/// is acceptable. The rules of [`check_url`].
pub(crate) fn url_problem(url: &str, allow_local_http: bool) -> Option<String> {
    if url.len() > MAX_URL_LEN {
        return Some(format!("is {} characters long; at most {MAX_URL_LEN} are accepted", url.len()));
    }
    // The WHATWG parser drops tabs and line breaks anywhere and reads '\'
    // as '/': refuse them, so the URL checked is the URL written.
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return Some("must not contain spaces, control characters or backslashes".to_owned());
    }
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("must be an absolute https URL ({e})")),
    };
    let local = parsed.host().as_ref().is_some_and(is_local_host);
    match parsed.scheme() {
        "https" => {}
        "http" if allow_local_http && local => {}
        "http" if allow_local_http => {
            return Some("must use https (plain http only to 127.0.0.1, [::1] or localhost in development)".to_owned())
        }
        scheme => return Some(format!("must use https, not {scheme}")),
    }
    // The parser also forgives `https:host` and `https:///host`: ask for the
    // form that means the same to every reader.
    let written = url.get(parsed.scheme().len()..).unwrap_or_default();
    if !written.starts_with("://") || written[3..].starts_with('/') {
        return Some(format!("must be an absolute URL written as {}://host/path", parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("must not carry a user name or password".to_owned());
    }
    let host = match parsed.host() {
        Some(h) => h,
        None => return Some("must name a host".to_owned()),
    };
    if local {
        return if allow_local_http { None } else { Some(format!("must not point at this machine ({host})")) };
    }
    let refused = match &host {
        Host::Domain(_) => None,
        Host::Ipv4(ip) => ipv4_refusal(*ip),
        Host::Ipv6(ip) => ipv6_refusal(*ip),
    };
    refused.map(|why| format!("must not point at {why} address ({host})"))
}

/// `127.0.0.1`, `[::1]` and `localhost` (the hosts local development uses).
fn is_local_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Why an IPv4 address may not be a destination (as "a … address"), if it may not.
fn ipv4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "an unspecified (0.0.0.0/8)",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private",
        (100, 64..=127, _) => "a shared (CGNAT, 100.64.0.0/10)",
        (127, ..) => "a loopback",
        (169, 254, _) => "a link-local",
        (192, 0, 0) => "a reserved (IETF, 192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation",
        (198, 18..=19, _) => "a reserved (benchmarking, 198.18.0.0/15)",
        (224..=239, ..) => "a multicast",
        (240..=255, ..) => "a reserved (240.0.0.0/4 and broadcast)",
        _ => return None,
    })
}

/// Why an IPv6 address may not be a destination, if it may not. Forms
/// that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged
/// by it.
fn ipv6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("an unspecified");
    }
    if ip.is_loopback() {
        return Some("a loopback");
    }
    match s {
        // ::ffff:a.b.c.d (mapped): reaches the embedded IPv4 address.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => return ipv4_refusal(embedded(hi, lo)),
        // ::a.b.c.d (the deprecated "compatible" form): never a real destination.
        [0, 0, 0, 0, 0, 0, hi, lo] => {
            return Some(ipv4_refusal(embedded(hi, lo)).unwrap_or("an IPv4-compatible (deprecated, ::/96)"))
        }
        // NAT64 (64:ff9b::/96): reaches the embedded IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return ipv4_refusal(embedded(hi, lo)),
        // 6to4 (2002:a.b.c.d::/48) likewise.
        [0x2002, hi, lo, ..] => return ipv4_refusal(embedded(hi, lo)),
        _ => {}
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "a private (unique local, fc00::/7)",
        0xfe80..=0xfebf => "a link-local",
        0xfec0..=0xfeff => "a site-local",
        0xff00..=0xffff => "a multicast",
        0x2001 if s[1] == 0x0db8 => "a documentation",
        // The rest of ::/8 (other embedded or reserved forms), and 100::/64 (discard).
        0x0000 => "a reserved (::/8)",
        0x0100 if s[1..4] == [0, 0, 0] => "a reserved (discard, 100::/64)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_judged_by_the_rules() {
        // (url, allow_local_http, None when accepted or a part of the message)
        let cases: &[(&str, bool, Option<&str>)] = &[
            ("https://hooks.example.com/x", false, None),
            ("https://hooks.example.com:8443/a/b?c=d#e", false, None),
            ("https://93.184.216.34/x", false, None),
            ("https://[2606:2800:220:1:248:1893:25c8:1946]/x", false, None),
            ("https://xn--bcher-kva.example/x", false, None),
            ("https://bücher.example/x", false, None),
            ("https://8.8.8.8/x", false, None),
            ("https://172.32.0.1/x", false, None),
            ("https://100.128.0.1/x", false, None),
            ("https://[::ffff:93.184.216.34]/x", false, None),
            // Scheme.
            ("http://hooks.example.com/x", false, Some("must use https, not http")),
            ("http://hooks.example.com/x", true, Some("plain http only to 127.0.0.1")),
            ("ftp://hooks.example.com/x", false, Some("must use https, not ftp")),
            ("javascript:alert(1)", false, Some("must use https, not javascript")),
            ("file:///etc/passwd", false, Some("must use https, not file")),
            // Absolute, with a host.
            ("/relative/path", false, Some("must be an absolute https URL (relative URL without a base)")),
            ("hooks.example.com/x", false, Some("must be an absolute https URL")),
            ("", false, Some("must be an absolute https URL")),
            ("https://", false, Some("must be an absolute https URL (empty host)")),
            ("https:///x", false, Some("must be an absolute URL written as https://host/path")),
            ("https:hooks.example.com/x", false, Some("must be an absolute URL written as https://host/path")),
            ("https:/hooks.example.com/x", false, Some("must be an absolute URL written as https://host/path")),
            ("HTTPS://hooks.example.com/x", false, None),
            // Userinfo.
            ("https://user@hooks.example.com/x", false, Some("must not carry a user name or password")),
            ("https://user:pw@hooks.example.com/x", false, Some("must not carry a user name or password")),
            ("https://:pw@hooks.example.com/x", false, Some("must not carry a user name or password")),
            // What the parser would silently rewrite.
            ("https://hooks.exa\tmple.com/x", false, Some("must not contain spaces")),
            ("https://hooks.example.com/x\n", false, Some("must not contain spaces")),
            (" https://hooks.example.com/x", false, Some("must not contain spaces")),
            ("https://evil.example\\@hooks.example.com/", false, Some("backslashes")),
            // Local development only.
            ("http://127.0.0.1:8787/hook", true, None),
            ("http://localhost:8787/hook", true, None),
            ("http://[::1]:8787/hook", true, None),
            ("https://localhost/hook", true, None),
            ("http://127.0.0.1:8787/hook", false, Some("must use https, not http")),
            ("https://127.0.0.1/hook", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://localhost/hook", false, Some("must not point at this machine (localhost)")),
            ("https://LOCALHOST./hook", false, Some("must not point at this machine")),
            ("https://api.localhost/hook", false, Some("must not point at this machine")),
            ("https://[::1]/hook", false, Some("must not point at this machine ([::1])")),
            ("https://127.9.9.9/hook", false, Some("must not point at this machine (127.9.9.9)")),
            // Numeric forms of 127.0.0.1: normalised, then judged.
            ("https://2130706433/x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://0x7f000001/x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://127.1/x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://0177.0.0.1/x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://0x7f.0.0.1/x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://127.0.0.1./x", false, Some("must not point at this machine (127.0.0.1)")),
            ("https://0xa9fea9fe/latest/meta-data", false, Some("a link-local address (169.254.169.254)")),
            ("https://167772161/x", false, Some("a private address (10.0.0.1)")),
            ("https://0/x", false, Some("an unspecified (0.0.0.0/8) address (0.0.0.0)")),
            ("https://1.2.3.256/x", false, Some("must be an absolute https URL (invalid IPv4 address)")),
            // IPv4 ranges.
            ("https://0.0.0.0/x", false, Some("an unspecified")),
            ("https://10.1.2.3/x", false, Some("a private address (10.1.2.3)")),
            ("https://172.16.0.1/x", false, Some("a private address")),
            ("https://172.31.255.255/x", false, Some("a private address")),
            ("https://192.168.1.1/x", false, Some("a private address")),
            ("https://100.64.0.1/x", false, Some("a shared (CGNAT, 100.64.0.0/10) address")),
            ("https://100.127.255.255/x", false, Some("CGNAT")),
            ("https://169.254.169.254/latest/meta-data", false, Some("a link-local address (169.254.169.254)")),
            ("https://192.0.0.8/x", false, Some("a reserved (IETF")),
            ("https://192.0.2.1/x", false, Some("a documentation address")),
            ("https://198.51.100.1/x", false, Some("a documentation address")),
            ("https://203.0.113.9/x", false, Some("a documentation address")),
            ("https://198.18.0.1/x", false, Some("benchmarking")),
            ("https://224.0.0.1/x", false, Some("a multicast address")),
            ("https://239.255.255.250/x", false, Some("a multicast address")),
            ("https://240.0.0.1/x", false, Some("a reserved (240.0.0.0/4 and broadcast) address")),
            ("https://255.255.255.255/x", false, Some("a reserved (240.0.0.0/4")),
            // IPv6.
            ("https://[::]/x", false, Some("an unspecified address ([::])")),
            ("https://[fc00::1]/x", false, Some("a private (unique local, fc00::/7) address")),
            ("https://[fd12:3456::1]/x", false, Some("unique local")),
            ("https://[fe80::1]/x", false, Some("a link-local address")),
            ("https://[febf::1]/x", false, Some("a link-local address")),
            ("https://[fec0::1]/x", false, Some("a site-local address")),
            ("https://[ff02::1]/x", false, Some("a multicast address")),
            ("https://[2001:db8::1]/x", false, Some("a documentation address")),
            ("https://[::ffff:127.0.0.1]/x", false, Some("a loopback address ([::ffff:7f00:1])")),
            ("https://[::ffff:7f00:1]/x", false, Some("a loopback address")),
            ("https://[::ffff:10.0.0.1]/x", false, Some("a private address")),
            ("https://[::ffff:169.254.169.254]/x", false, Some("a link-local address")),
            ("https://[::127.0.0.1]/x", false, Some("a loopback address")),
            ("https://[::8.8.8.8]/x", false, Some("an IPv4-compatible (deprecated, ::/96) address")),
            ("https://[64:ff9b::10.0.0.1]/x", false, Some("a private address")),
            ("https://[2002:a00:1::1]/x", false, Some("a private address")),
            ("https://[2002:5db8:d822::1]/x", false, None),
            ("https://[100::1]/x", false, Some("discard")),
            ("https://[::2]/x", false, Some("an unspecified (0.0.0.0/8)")),
            ("https://[::1:0:0:1]/x", false, Some("a reserved (::/8)")),
        ];
        for (url, allow_local_http, want) in cases {
            let got = check_url(url, *allow_local_http);
            match (want, &got) {
                (None, Ok(())) => {}
                (Some(part), Err(e)) => {
                    assert_eq!(e.code, crate::ErrorCode::InvalidField, "{url}");
                    assert!(e.message.starts_with("callback_url "), "{url}: {}", e.message);
                    assert!(e.message.contains(part), "{url}: {:?} does not say {part:?}", e.message);
                }
                _ => panic!("{url} (local http {allow_local_http}): got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_parser_normalises_numeric_ipv4_hosts() {
        // What the rules rely on: every numeric form is read as the dotted
        // address it means (WHATWG "IPv4 parser", as fetch reads it).
        for form in ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "0x7F.1", "127.0.1", "017700000001"] {
            let u = Url::parse(&format!("https://{form}/x")).unwrap();
            assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{form}");
        }
        assert_eq!(Url::parse("https://[::ffff:127.0.0.1]/").unwrap().host_str(), Some("[::ffff:7f00:1]"));
    }

    #[test]
    fn length_is_bounded() {
        let base = "https://hooks.example.com/";
        let fits = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert_eq!(check_url(&fits, false), Ok(()));
        let long = format!("{fits}a");
        assert!(check_url(&long, false).unwrap_err().message.contains("is 2049 characters long; at most 2048"));
    }
}

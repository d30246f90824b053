//! CORS: the headers on answers browsers may read, their removal from the
//! answers of routes browsers must never call, and preflights.

use media_core::http::{cors_allow_origin, cors_varies_by_origin, CORS_ALLOW_HEADERS, CORS_EXPOSE};
use worker::{Headers, Response};

use crate::failure::Handled;

/// Adds CORS headers for a request from `origin` to `resp`. With an
/// allow-list (`CORS_ALLOWED_ORIGINS` not `*`) the answer depends on the
/// `Origin` header, so it always says `Vary: Origin`, also when the origin is
/// absent or not on the list; otherwise a cache could hand one origin's
/// answer (or the answer without CORS) to another.
pub fn with_cors(mut resp: Response, allowed_origins: &str, origin: Option<&str>) -> Response {
    let h = resp.headers_mut();
    if cors_varies_by_origin(allowed_origins) {
        let _ = h.append("vary", "Origin");
    }
    if let Some(allow) = cors_allow_origin(allowed_origins, origin) {
        let _ = h.set("access-control-allow-origin", &allow);
        let _ = h.set("access-control-expose-headers", CORS_EXPOSE);
    }
    resp
}

/// Removes every CORS header from `resp`: the answers of routes browsers
/// must never call (the API-key and internal routes), including their
/// preflights, which then grant nothing.
pub fn without_cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let names: Vec<String> = h.keys().filter(|k| k.to_ascii_lowercase().starts_with("access-control-")).collect();
    for name in names {
        let _ = h.delete(&name);
    }
    resp
}

/// Answers a browser's CORS preflight for a route that takes `methods`;
/// `bearer`: a route a browser authorises with an upload token in
/// `Authorization: Bearer` (`Auth::UploadToken`), which may then send that
/// header too (no other route invites it).
pub fn preflight(methods: &str, bearer: bool) -> Handled {
    let headers = Headers::new();
    headers.set("allow", methods)?;
    headers.set("access-control-allow-methods", methods)?;
    let allowed = if bearer { format!("{CORS_ALLOW_HEADERS}, Authorization") } else { CORS_ALLOW_HEADERS.to_owned() };
    headers.set("access-control-allow-headers", &allowed)?;
    headers.set("access-control-max-age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

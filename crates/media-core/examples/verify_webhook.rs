//! Verifying the platform's signed webhooks in Rust: the code
//! docs/video-api.md#7-signed-webhooks shows receivers. `tests/readme.rs` runs it
//! against what `media_core::video::webhook` signs and checks the page carries it verbatim.
//!
//!     cargo run -p media-core --example verify_webhook

// BEGIN README webhook-verify-rust
// [dependencies] hmac = "0.12", sha2 = "0.10", hex = "0.4"
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Checks a `Webhook-Signature: t=<unix>,v1=<hex>` header against the raw
/// request body (the exact bytes, before any JSON parsing). `now_s` is the
/// current Unix time; a tolerance of 300 s refuses replays of old requests.
pub fn verify_webhook(
    secret: &str,
    header: &str,
    raw_body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), &'static str> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let t = t.ok_or("malformed Webhook-Signature")?;
    if now_s.abs_diff(t) > tolerance_s {
        return Err("timestamp outside the tolerance: a replay?");
    }
    for signature in signatures {
        let Ok(given) = hex::decode(signature) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(raw_body);
        // Compares in constant time.
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err("no matching signature")
}
// END README webhook-verify-rust

#[allow(dead_code)]
fn main() {
    let body = br#"{"id":"evt_1","type":"video.ready"}"#;
    let header = "t=1700000000,v1=4d78f4a72f077baead87ba665ff506b81c7de04a69f6d665ae37e3da8a527d60";
    println!("{:?}", verify_webhook("whsec_test_secret_0123456789", header, body, 1_700_000_100, 300));
}

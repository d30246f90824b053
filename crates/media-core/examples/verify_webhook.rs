//! Verifying the platform's signed webhooks in Rust without a library: the
//! code docs/video-api.md#7-signed-webhooks shows receivers (Standard
//! Webhooks; the `standardwebhooks` crate does the same). `tests/readme.rs`
//! runs it against what `media_core::video::webhook` signs and checks the
//! page carries it verbatim.
//!
//!     cargo run -p media-core --example verify_webhook

// BEGIN README webhook-verify-rust
// [dependencies] hmac = "0.12", sha2 = "0.10", base64 = "0.22"
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Checks a delivery's `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers against the raw request body (the exact
/// bytes, before any JSON parsing). `secret` is the endpoint's `whsec_…`
/// secret; `now_s` the current Unix time; a tolerance of 300 s refuses
/// replays of old requests.
pub fn verify_webhook(
    secret: &str,
    (id, timestamp, signatures): (&str, &str, &str),
    raw_body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), &'static str> {
    let key = match secret.strip_prefix("whsec_").map(|b64| BASE64.decode(b64)) {
        Some(Ok(bytes)) => bytes,
        _ => secret.as_bytes().to_vec(), // a raw (legacy) secret
    };
    let t: u64 = timestamp.parse().map_err(|_| "malformed webhook-timestamp")?;
    if now_s.abs_diff(t) > tolerance_s {
        return Err("timestamp outside the tolerance: a replay?");
    }
    for signature in signatures.split(' ') {
        let Some(("v1", b64)) = signature.split_once(',') else { continue };
        let Ok(given) = BASE64.decode(b64) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{t}.").as_bytes());
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
    let body = br#"{"test": 2432232314}"#;
    let headers = ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    println!("{:?}", verify_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body, 1_614_265_400, 300));
}

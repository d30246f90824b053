//! Minting a private video's playback URL in Rust, as an app backend does
//! with a key from `POST /signing-keys`: the code
//! docs/video-api.md#signed-playback-private-videos shows (the
//! `jsonwebtoken` crate). `tests/readme.rs` checks that the page carries it
//! verbatim, and that its tokens pass the platform's rules
//! (`media_core::video::playback_token`) and verify with the public key.
//!
//!     cargo run -p media-core --example sign_playback_token -- key.pem KEY_ID VIDEO_ID

// BEGIN README sign-playback-token-rust
// [dependencies] jsonwebtoken = "9", serde = { version = "1", features = ["derive"] }
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

/// A playback URL of `video_id` for `ttl_s` seconds (at most 86400): an
/// RS256 JWT signed with the key's private PEM (`pem` from POST
/// /signing-keys), its `id` as `kid`, in the path. `now_s`: the Unix time.
pub fn playback_url(base: &str, video_id: &str, key_id: &str, pem: &str, now_s: u64, ttl_s: u64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key_id.to_owned());
    header.typ = Some("JWT".to_owned());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("the PEM of an RS256 signing key");
    let token = encode(&header, &Claims { sub: video_id, exp: now_s + ttl_s }, &key).expect("signing");
    format!("{base}/hls/t/{token}/master.m3u8")
}
// END README sign-playback-token-rust

#[allow(dead_code)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, pem, key_id, video_id] = args.as_slice() else {
        eprintln!("usage: sign_playback_token key.pem KEY_ID VIDEO_ID");
        std::process::exit(2);
    };
    let pem = std::fs::read_to_string(pem).expect("the PEM file");
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    println!("{}", playback_url("http://127.0.0.1:8788", video_id, key_id, &pem, now_s, 3600));
}

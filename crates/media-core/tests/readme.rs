//! The webhook verification code the README shows receivers (Rust and
//! Node) is the code that is tested: the README must carry both files'
//! marked blocks verbatim, and the Rust one must accept what
//! `media_core::video::webhook` signs and refuse what it should.

#[path = "../examples/verify_webhook.rs"]
mod example;

use media_core::video::webhook::signature_header;

fn block(text: &str, name: &str) -> String {
    let begin = format!("BEGIN README {name}\n");
    let start = text.find(&begin).unwrap_or_else(|| panic!("no BEGIN README {name}")) + begin.len();
    let end = text[start..].find(&format!("// END README {name}")).expect("an END marker") + start;
    text[start..end].to_owned()
}

#[test]
fn the_readme_carries_the_tested_verification_code() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let rust = std::fs::read_to_string(format!("{root}/crates/media-core/examples/verify_webhook.rs")).unwrap();
    let node = std::fs::read_to_string(format!("{root}/devkit/webhook-verify.mjs")).unwrap();
    for (name, file) in [("webhook-verify-rust", &rust), ("webhook-verify", &node)] {
        let code = block(file, name);
        assert!(readme.contains(&code), "README.md must carry the {name} block of its file verbatim:\n{code}");
    }
}

#[test]
fn the_rust_example_verifies_what_the_platform_signs() {
    let secret = "whsec_test_0123456789abcdef";
    let body = br#"{"id":"evt_x","type":"video.ready","created_at":"2026-11-30T00:00:00.000Z","data":{}}"#;
    let header = signature_header(secret, 1_700_000_000, body);
    assert_eq!(example::verify_webhook(secret, &header, body, 1_700_000_010, 300), Ok(()));
    assert_eq!(
        example::verify_webhook(secret, &header, body, 1_700_000_301, 300),
        Err("timestamp outside the tolerance: a replay?")
    );
    assert_eq!(
        example::verify_webhook("another-secret-00000", &header, body, 1_700_000_000, 300),
        Err("no matching signature")
    );
    assert_eq!(example::verify_webhook(secret, &header, b"{}", 1_700_000_000, 300), Err("no matching signature"));
    assert_eq!(example::verify_webhook(secret, "v1=abc", body, 1_700_000_000, 300), Err("malformed Webhook-Signature"));
    // A rotated secret: the header may carry several v1 values; any one matching passes.
    let two = format!("{header},v1={}", "0".repeat(64));
    assert_eq!(example::verify_webhook(secret, &two, body, 1_700_000_000, 300), Ok(()));
}

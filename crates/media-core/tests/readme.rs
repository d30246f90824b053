//! The docs say what the code does:
//! - the webhook verification code the video API page (`docs/video-api.md`,
//!   moved out of the README) shows receivers, in Rust and Node, is the code
//!   that is tested: the page carries both files' marked blocks verbatim, and
//!   the Rust one accepts what `media_core::video::webhook` signs and refuses
//!   what it should;
//! - every relative link in `README.md` and `docs/` reaches a file, and a
//!   heading when it names one, and so does every `docs/….md#anchor` that a
//!   code comment or a wrangler file points at;
//! - every source path the docs cite (`video-service/src/lease.rs`, under
//!   `crates/`) exists, so the architecture page's module table follows
//!   the code when files move.

#[path = "../examples/verify_webhook.rs"]
mod example;
#[path = "../examples/sign_playback_token.rs"]
mod playback_example;

use media_core::video::webhook::{new_secret, signature_header, SigningKey};

fn block(text: &str, name: &str) -> String {
    let begin = format!("BEGIN README {name}\n");
    let start = text.find(&begin).unwrap_or_else(|| panic!("no BEGIN README {name}")) + begin.len();
    let end = text[start..].find(&format!("// END README {name}")).expect("an END marker") + start;
    text[start..end].to_owned()
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

#[test]
fn the_video_api_page_carries_the_tested_verification_code() {
    let root = ROOT;
    let readme = std::fs::read_to_string(format!("{root}/docs/video-api.md")).unwrap();
    let rust = std::fs::read_to_string(format!("{root}/crates/media-core/examples/verify_webhook.rs")).unwrap();
    let node = std::fs::read_to_string(format!("{root}/devkit/webhook-verify.mjs")).unwrap();
    for (name, file) in [("webhook-verify-rust", &rust), ("webhook-verify", &node)] {
        let code = block(file, name);
        assert!(readme.contains(&code), "docs/video-api.md must carry the {name} block of its file verbatim:\n{code}");
    }
}

#[test]
fn the_image_api_page_carries_the_tested_url_signing_code() {
    let page = std::fs::read_to_string(format!("{ROOT}/docs/image-api.md")).unwrap();
    let node = std::fs::read_to_string(format!("{ROOT}/devkit/sign-image-url.mjs")).unwrap();
    let code = block(&node, "sign-image-url");
    assert!(page.contains(&code), "docs/image-api.md must carry the sign-image-url block verbatim:\n{code}");
}

#[test]
fn the_video_api_page_carries_the_tested_playback_token_code() {
    let page = std::fs::read_to_string(format!("{ROOT}/docs/video-api.md")).unwrap();
    let node = std::fs::read_to_string(format!("{ROOT}/devkit/sign-playback-token.mjs")).unwrap();
    let code = block(&node, "sign-playback-token");
    assert!(page.contains(&code), "docs/video-api.md must carry the sign-playback-token block verbatim:\n{code}");
    let rust = std::fs::read_to_string(format!("{ROOT}/crates/media-core/examples/sign_playback_token.rs")).unwrap();
    let code = block(&rust, "sign-playback-token-rust");
    assert!(page.contains(&code), "docs/video-api.md must carry the sign-playback-token-rust block verbatim:\n{code}");
}

/// The Rust example's token, signed with a key of the kind POST
/// /signing-keys answers (an RSA PKCS#8 PEM, made here with openssl), has
/// the form, claims and times the platform's rules accept, and its
/// signature verifies with the public key as RSASSA-PKCS1-v1_5 SHA-256
/// (what the Worker's `crypto.subtle.verify` checks).
#[test]
fn the_rust_example_signs_playback_tokens_the_platform_accepts() {
    use media_core::video::playback_token::{parse, Alg};
    use media_core::Timestamp;
    let dir = std::env::temp_dir().join(format!("playback-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let public = std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().unwrap();
    let pem = std::fs::read_to_string(&key).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8, as POST /signing-keys answers");
    let (kid, now_s) = ("0123456789abcdef0123456789abcdef", 1_800_000_000);
    let url = playback_example::playback_url("https://v.example", "vid1", kid, &pem, now_s, 600);
    let token = url.strip_prefix("https://v.example/hls/t/").and_then(|t| t.strip_suffix("/master.m3u8")).unwrap();
    let t = parse(token).unwrap();
    assert_eq!(
        (t.alg.as_str(), t.kid.as_str(), t.claims.sub.as_str(), t.claims.exp),
        ("RS256", kid, "vid1", now_s + 600)
    );
    assert_eq!(t.check(Alg::Rs256, Timestamp::from_secs(now_s)), Ok(()));
    let public = jsonwebtoken::DecodingKey::from_rsa_pem(&public.stdout).unwrap();
    let signature = token.rsplit_once('.').unwrap().1;
    assert!(jsonwebtoken::crypto::verify(
        signature,
        t.signing_input.as_bytes(),
        &public,
        jsonwebtoken::Algorithm::RS256
    )
    .unwrap());
}

#[test]
fn the_rust_example_verifies_what_the_platform_signs() {
    let secret = new_secret([9; 32]);
    let key = SigningKey::of_secret(&secret);
    let body = br#"{"id":"evt_x","type":"video.ready","created_at":"2026-11-30T00:00:00.000Z","data":{}}"#;
    let sig = signature_header(&[key], "evt_x", 1_700_000_000, body);
    let headers = ("evt_x", "1700000000", sig.as_str());
    assert_eq!(example::verify_webhook(&secret, headers, body, 1_700_000_010, 300), Ok(()));
    assert_eq!(
        example::verify_webhook(&secret, headers, body, 1_700_000_301, 300),
        Err("timestamp outside the tolerance: a replay?")
    );
    assert_eq!(
        example::verify_webhook(&new_secret([8; 32]), headers, body, 1_700_000_000, 300),
        Err("no matching signature")
    );
    assert_eq!(example::verify_webhook(&secret, headers, b"{}", 1_700_000_000, 300), Err("no matching signature"));
    assert_eq!(
        example::verify_webhook(&secret, ("evt_y", "1700000000", &sig), body, 1_700_000_000, 300),
        Err("no matching signature")
    );
    assert_eq!(
        example::verify_webhook(&secret, ("evt_x", "soon", &sig), body, 1_700_000_000, 300),
        Err("malformed webhook-timestamp")
    );
    // A rotated secret: the header carries several signatures; any one matching passes.
    let two = format!("v1,{} {sig}", "A".repeat(44));
    assert_eq!(example::verify_webhook(&secret, ("evt_x", "1700000000", &two), body, 1_700_000_000, 300), Ok(()));
    // A legacy IV_WEBHOOKS secret is a raw key.
    let legacy = "legacy-secret-0123456789";
    let sig = signature_header(&[SigningKey::of_secret(legacy)], "evt_x", 1_700_000_000, body);
    assert_eq!(example::verify_webhook(legacy, ("evt_x", "1700000000", &sig), body, 1_700_000_000, 300), Ok(()));
}

/// Lines of a Markdown file outside its fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    prose(&text)
        .into_iter()
        .filter_map(|line| line.strip_prefix('#').map(|rest| slug(rest.trim_start_matches('#'))))
        .collect()
}

/// The Markdown files of the docs: the README and everything under docs/.
fn markdown_files() -> Vec<std::path::PathBuf> {
    let mut files = vec![std::path::Path::new(ROOT).join("README.md")];
    let mut dirs = vec![std::path::Path::new(ROOT).join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// Whether `target` (a path relative to `from`'s folder, `#anchor` optional) exists; the error says why not.
fn resolve(from: &std::path::Path, target: &str) -> Result<(), String> {
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() { from.to_path_buf() } else { from.parent().unwrap().join(path) };
    if !file.exists() {
        return Err(format!("no file {}", file.display()));
    }
    if !anchor.is_empty() && file.extension().is_some_and(|e| e == "md") && !anchors(&file).iter().any(|a| a == anchor)
    {
        return Err(format!("no heading #{anchor} in {}", file.display()));
    }
    Ok(())
}

#[test]
fn every_link_in_the_docs_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in prose(&text) {
            let mut rest = line;
            while let Some(at) = rest.find("](") {
                rest = &rest[at + 2..];
                let Some(end) = rest.find(')') else { break };
                let target = &rest[..end];
                rest = &rest[end..];
                if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                    continue;
                }
                if let Err(why) = resolve(&file, target) {
                    broken.push(format!("{}: ({target}): {why}", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn pointers_from_the_code_to_the_docs_reach_a_heading() {
    let root = std::path::Path::new(ROOT);
    let mut files: Vec<_> = ["wrangler-image.toml", "wrangler-video.toml"].iter().map(|f| root.join(f)).collect();
    let mut dirs: Vec<_> =
        ["crates", "scripts", "devkit", "bench", "reliability", "tests"].iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| ["rs", "toml", "mjs", "sh", "py"].iter().any(|x| e == *x)) {
                files.push(path);
            }
        }
    }
    let mut broken = Vec::new();
    let mut seen = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("docs/") {
            rest = &rest[at..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || "/-_.#".contains(c))).unwrap_or(rest.len());
            let target = rest[..end].trim_end_matches('.');
            rest = &rest[end..];
            if !target.contains(".md") {
                continue;
            }
            seen += 1;
            if let Err(why) = resolve(&root.join("README.md"), target) {
                broken.push(format!("{}: {target}: {why}", file.display()));
            }
        }
    }
    assert!(seen > 0, "no pointer to docs/ found: is the walk looking in the right place?");
    assert!(broken.is_empty(), "pointers to the docs that lead nowhere:\n{}", broken.join("\n"));
}

#[test]
fn every_source_path_the_docs_cite_exists() {
    let root = std::path::Path::new(ROOT);
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in prose(&text) {
            for span in line.split('`').skip(1).step_by(2) {
                if !span.contains("/src/") || span.contains(|c: char| c.is_whitespace() || "{}*<>".contains(c)) {
                    continue;
                }
                seen += 1;
                let path = if span.starts_with("crates/") { root.join(span) } else { root.join("crates").join(span) };
                if !path.exists() {
                    missing.push(format!("{}: {span}", file.display()));
                }
            }
        }
    }
    assert!(seen > 0, "no source path found in the docs");
    assert!(missing.is_empty(), "source paths the docs cite that do not exist:\n{}", missing.join("\n"));
}

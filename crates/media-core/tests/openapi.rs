//! The committed OpenAPI documents (`openapi/*.json`, served by the Workers
//! at `/openapi.json`) are exactly what `media_core::wire::openapi` generates from
//! the API types. After changing a route or an API type, regenerate them:
//!
//! ```text
//! UPDATE_OPENAPI=1 cargo test -p media-core --test openapi
//! ```

use std::path::PathBuf;

use media_core::wire::openapi::{image_service, to_json, video_service};
use media_core::wire::routes::{Pattern, Route, IMAGE_ROUTES, VIDEO_ROUTES};
use serde_json::Value;

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi").join(name)
}

fn check(name: &str, generated: String) {
    let path = committed(name);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if on_disk != generated {
        let first = on_disk.lines().zip(generated.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "openapi/{name} is not what the API types generate (first difference at line {}:\n  committed: {}\n  generated: {}).\n\
             Regenerate it with:\n    UPDATE_OPENAPI=1 cargo test -p media-core --test openapi\nand commit the result.",
            first + 1,
            on_disk.lines().nth(first).unwrap_or("<end>"),
            generated.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

/// Every `$ref` in `doc` names something the document defines.
fn refs_resolve(doc: &Value) {
    fn walk(v: &Value, root: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{path}: external $ref {r}"));
                    assert!(root.pointer(pointer).is_some(), "{path}: $ref {r} points at nothing");
                }
                for (k, child) in m {
                    walk(child, root, &format!("{path}/{k}"));
                }
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, child)| walk(child, root, &format!("{path}/{i}"))),
            _ => {}
        }
    }
    walk(doc, doc, "");
}

#[test]
fn video_service_document_is_current() {
    let doc = video_service();
    refs_resolve(&serde_json::to_value(&doc).unwrap());
    check("video-service.json", to_json(&doc));
}

#[test]
fn image_service_document_is_current() {
    let doc = image_service();
    refs_resolve(&serde_json::to_value(&doc).unwrap());
    check("image-service.json", to_json(&doc));
}

/// The document's paths and methods are those of the table's documented
/// rows: a template row at its own path, a prefix row (`/hls/`, `/assets/`...)
/// at paths under its prefix; nothing of a hidden row (the transcoder's API,
/// the upload token's routes).
fn paths_follow_the_table<Id: std::fmt::Debug>(doc: &Value, table: &[Route<Id>]) {
    let paths = doc["paths"].as_object().unwrap();
    let row_of = |path: &str| {
        table.iter().filter(|r| r.documented).find(|r| match r.pattern {
            Pattern::Template(t) => t == path,
            Pattern::Prefix(p) => path.starts_with(p),
        })
    };
    for (path, item) in paths {
        let row = row_of(path).unwrap_or_else(|| panic!("{path} is in no documented row"));
        for method in item.as_object().unwrap().keys() {
            let rows_here: Vec<_> =
                table.iter().filter(|r| r.documented && r.pattern == row.pattern).flat_map(|r| r.methods).collect();
            assert!(rows_here.iter().any(|m| m.as_str().eq_ignore_ascii_case(method)), "{method} {path}");
        }
    }
    for row in table {
        let documented = paths.iter().filter(|(p, _)| match row.pattern {
            Pattern::Template(t) => *p == t,
            Pattern::Prefix(prefix) => p.starts_with(prefix),
        });
        let methods: Vec<String> = documented.flat_map(|(_, item)| item.as_object().unwrap().keys().cloned()).collect();
        for m in row.methods {
            let found = methods.iter().any(|d| d.eq_ignore_ascii_case(m.as_str()));
            assert_eq!(found, row.documented, "{:?} {} {:?}", row.id, m.as_str(), row.pattern);
        }
    }
}

#[test]
fn documents_describe_the_public_routes() {
    let video = serde_json::to_value(video_service()).unwrap();
    assert_eq!(video["openapi"], "3.0.3");
    paths_follow_the_table(&video, VIDEO_ROUTES);
    let hls: Vec<&String> = video["paths"].as_object().unwrap().keys().filter(|p| p.starts_with("/hls/")).collect();
    assert_eq!(hls.iter().filter(|p| !p.starts_with("/hls/t/")).count(), 7);
    // The same seven files through a playback token, and an encrypted video's key.
    assert_eq!(hls.iter().filter(|p| p.starts_with("/hls/t/{token}/")).count(), 8);
    assert!(hls.contains(&&"/hls/t/{token}/key".to_owned()));
    assert!(video["paths"].get("/internal/jobs/lease").is_none(), "the transcoder's API is not public");
    // The job's fields as `/job-status` sends them.
    let job = &video["components"]["schemas"]["JobView"]["properties"];
    for field in ["job_id", "status", "progress", "heartbeat", "created_at", "renditions", "thumbnails", "playback_url"]
    {
        assert!(job.get(field).is_some(), "JobView.{field}");
    }
    let image = serde_json::to_value(image_service()).unwrap();
    paths_follow_the_table(&image, IMAGE_ROUTES);
    for path in ["/assets/images/{app_id}/{image_id}", "/images/{app_id}/{image_id}/{options}"] {
        assert!(image["paths"].get(path).is_some(), "{path}");
    }
    let images = &image["paths"]["/images"];
    assert!(images.get("get").is_some() && images.get("delete").is_some(), "GET /images (metadata) and DELETE /images");
}

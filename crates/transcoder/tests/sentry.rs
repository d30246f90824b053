//! Sentry through the `sentry` crate, against a stand-in Sentry on loopback:
//! a panic that only fails its job still arrives with its backtrace, a
//! `tracing::error!` becomes an event, and a job failure arrives with the
//! job, the service, the release and the environment. (One test: Sentry and
//! the log subscriber are global to the process.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use transcoder::error::{panics_fail_the_job, JobError};
use transcoder::telemetry;

/// Accepts envelope POSTs and keeps their events.
fn start_sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!("http://publickey@127.0.0.1:{}/42", socket.local_addr().unwrap().port());
    let events = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&events);
    std::thread::spawn(move || {
        for conn in socket.incoming().flatten() {
            let mut reader = BufReader::new(conn);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            // An envelope: a header line, then item headers each followed by their payload.
            let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
            for pair in lines.windows(2) {
                let header: Value = serde_json::from_slice(pair[0]).unwrap_or(Value::Null);
                if header["type"] == "event" {
                    kept.lock().unwrap().push(serde_json::from_slice(pair[1]).unwrap_or(Value::Null));
                }
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
        }
    });
    (dsn, events)
}

#[test]
fn panics_tracing_errors_and_job_failures_reach_sentry() {
    let (dsn, events) = start_sink();
    std::env::set_var("ENVIRONMENT", "test");
    let guard = telemetry::init(false, Some(&dsn));

    let failed = panics_fail_the_job(|| -> Result<(), JobError> { panic!("index out of bounds in rung 720p") });
    assert!(matches!(failed, Err(JobError::Retryable(_))), "the panic failed only the job");
    tracing::error!("the video service refused the transcoder token");
    telemetry::report_failure("job_abc", &JobError::retryable("storage GET bytes 0-99 failed after 5 attempts"));
    drop(guard); // sends what is queued

    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 3, "{events:#?}");
    for e in &events {
        assert_eq!(e["release"], concat!("transcoder@", env!("CARGO_PKG_VERSION")), "{e}");
        assert_eq!(e["environment"], "test");
        assert_eq!(e["tags"]["service"], "transcoder");
    }
    let panic = events
        .iter()
        .find(|e| {
            e["exception"]["values"][0]["value"]
                .as_str()
                .is_some_and(|v| v.contains("index out of bounds in rung 720p"))
        })
        .expect("the panic event");
    let exception = &panic["exception"]["values"][0];
    assert_eq!(exception["mechanism"]["type"], "panic", "{exception}");
    let frames = exception["stacktrace"]["frames"].as_array().expect("a backtrace");
    assert!(
        frames.iter().any(|f| f["function"]
            .as_str()
            .is_some_and(|n| n.contains("panics_tracing_errors_and_job_failures_reach_sentry"))),
        "the test's own frame is in the backtrace"
    );

    // (Sentry leaves out the level of an event at the default, error.)
    assert!(
        events.iter().any(|e| e["message"] == "the video service refused the transcoder token"
            && e.get("level").is_none_or(|l| l == "error")),
        "tracing::error! became an event: {events:#?}"
    );

    let job = events.iter().find(|e| e["request"]["url"] == "job:job_abc").expect("the job failure");
    assert_eq!(job["tags"]["job_id"], "job_abc");
    assert!(job["exception"]["values"][0]["value"].as_str().unwrap().contains("storage GET"), "{job}");
}

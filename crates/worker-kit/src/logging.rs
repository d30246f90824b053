//! JSON `tracing` logs on the Workers console: tracing-subscriber's JSON
//! formatter (one object per line, with level, fields and message, which
//! Workers Logs indexes) written through `tracing-web`'s console writer,
//! which picks `console.info`/`warn`/`error` by level. Timestamps come from
//! the runtime's clock because `SystemTime` is unavailable in wasm. Only
//! what the code puts in fields is logged: key fingerprints, never secrets.
//!
//! The runtime's clock reads 0 (1970) outside a request, so the line that
//! marks a new isolate is logged on its first request ([`first_request`]),
//! not at start.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_web::{ConsoleWriter, MakeWebConsoleWriter};

struct RuntimeClock;

impl FormatTime for RuntimeClock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&crate::clock::now().to_rfc3339())
    }
}

/// tracing-web's console writer, without the newline the JSON formatter
/// ends each event with (the console ends each call with its own).
struct Console(MakeWebConsoleWriter);

/// One event on its way to the console.
struct Line(ConsoleWriter);

impl io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter writes a whole event in one call.
        self.0.write_all(buf.strip_suffix(b"\n").unwrap_or(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for Console {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(self.0.make_writer())
    }
    /// The event's level picks `console.info`, `warn` or `error`.
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line(self.0.make_writer_for(meta))
    }
}

/// Installs the JSON subscriber; call once from `#[event(start)]`.
pub fn init() {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_timer(RuntimeClock)
        .with_writer(Console(MakeWebConsoleWriter::new()))
        .with_max_level(tracing::Level::INFO)
        .finish();
    // A second call (another start event in the same isolate) keeps the first.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

static SERVED_ONE: AtomicBool = AtomicBool::new(false);

/// Logs "isolate started" on the isolate's first request, when the clock
/// reads the real time; later calls do nothing.
pub fn first_request(service: &'static str) {
    if !SERVED_ONE.swap(true, Ordering::Relaxed) {
        tracing::info!(service, "isolate started (its first request)");
    }
}

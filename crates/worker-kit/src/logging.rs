//! JSON `tracing` logs on the Workers console (one object per line, which
//! Workers Logs indexes), timestamped with the runtime's clock because
//! `SystemTime` is unavailable in wasm.

use std::io;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

struct RuntimeClock;

impl FormatTime for RuntimeClock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&crate::clock::now().to_rfc3339())
    }
}

/// Buffers one formatted event and hands it to `console.log` when dropped.
struct ConsoleLine(Vec<u8>);

impl io::Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let line = line.trim_end();
        if !line.is_empty() {
            worker::console_log!("{line}");
        }
    }
}

struct Console;

impl<'a> MakeWriter<'a> for Console {
    type Writer = ConsoleLine;
    fn make_writer(&'a self) -> ConsoleLine {
        ConsoleLine(Vec::with_capacity(256))
    }
}

/// Installs the JSON subscriber; call once from `#[event(start)]`.
pub fn init(service: &'static str) {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_timer(RuntimeClock)
        .with_writer(Console)
        .with_max_level(tracing::Level::INFO)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        tracing::info!(service, "logging started");
    }
}

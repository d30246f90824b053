//! Logs and error reports: JSON `tracing` logs (one object per line, a span
//! per job) and Sentry (`TRANS_SENTRY_DSN`) through the `sentry` crate, with
//! release and environment set: panics with their backtraces (also those
//! that only fail their job), every `tracing::error!` as an event (warnings
//! and info become breadcrumbs), and the failures of jobs the runner reports.

use sentry::protocol::{Event, Request};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::error::JobError;

/// Keeps Sentry running; dropping it sends what is queued (up to 2 s).
#[must_use = "Sentry stops when this is dropped"]
pub struct Telemetry {
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Starts Sentry when `dsn` is set, then the global log subscriber (`RUST_LOG`
/// filters, default `info`). Call once, first thing, and keep the result.
pub fn init(json: bool, dsn: Option<&str>) -> Telemetry {
    crate::install_tls_provider();
    let mut bad_dsn = None;
    let guard = dsn.and_then(|dsn| match dsn.parse::<sentry::types::Dsn>() {
        Ok(dsn) => {
            let mut options = sentry::ClientOptions::new();
            options.dsn = Some(dsn);
            options.release = sentry::release_name!();
            options.environment = Some(std::env::var("ENVIRONMENT").unwrap_or_else(|_| "production".into()).into());
            options.attach_stacktrace = true;
            Some(sentry::init(options))
        }
        Err(e) => {
            bad_dsn = Some(e.to_string());
            None
        }
    });
    sentry::configure_scope(|scope| scope.set_tag("service", "transcoder"));
    init_logging(json);
    if let Some(e) = bad_dsn {
        tracing::warn!(error = %e, "TRANS_SENTRY_DSN is not a valid DSN; errors will only be logged");
    }
    Telemetry { _sentry: guard }
}

/// Installs the global subscriber: JSON or text lines on stderr, and the
/// Sentry layer (a no-op while Sentry is not started).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_target(false).with_writer(std::io::stderr);
    let lines = if json { lines.json().with_current_span(true).with_span_list(false).boxed() } else { lines.boxed() };
    use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
    use tracing_subscriber::filter::{filter_fn, LevelFilter};
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(
            BreadcrumbLayer::new()
                .with_filter(filter_fn(|m| matches!(*m.level(), tracing::Level::WARN | tracing::Level::INFO))),
        )
        .with(ErrorLayer::new().with_filter(LevelFilter::ERROR))
        .try_init();
}

/// Reports the failure of job `job_id` to Sentry (nothing when it is not started).
pub fn report_failure(job_id: &str, error: &JobError) {
    sentry::with_scope(
        |scope| scope.set_tag("job_id", job_id),
        || {
            let mut event: Event<'static> = sentry::event_from_error(error);
            event.request = Some(Request {
                url: format!("job:{job_id}").parse().ok(),
                method: Some("JOB".into()),
                ..Default::default()
            });
            sentry::capture_event(event);
        },
    );
}

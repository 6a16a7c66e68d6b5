//! Logging set-up. Lambda's own logging controls are the settings: `AWS_LAMBDA_LOG_FORMAT`
//! (`JSON` or `Text`, the function's `LoggingConfig`) chooses the format and
//! `AWS_LAMBDA_LOG_LEVEL` the level, as `lambda_runtime`'s subscriber reads them. Locally,
//! `RUST_LOG` filters (and wins over the level), and a terminal gets readable text.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. Safe to call more than once (later calls do
/// nothing), so tests and binaries can both call it.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|l| match l.to_ascii_lowercase().as_str() {
            // Lambda's FATAL has no tracing level: the closest is error.
            "fatal" => "error".to_owned(),
            other => other.to_owned(),
        })
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = match std::env::var("AWS_LAMBDA_LOG_FORMAT").ok().as_deref() {
        Some(f) if f.eq_ignore_ascii_case("json") => true,
        Some(f) if f.eq_ignore_ascii_case("text") => false,
        _ => in_lambda,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        // Lambda adds its own timestamp and request id to each line.
        builder.json().flatten_event(true).without_time().try_init()
    } else {
        builder.with_ansi(!in_lambda).try_init()
    };
}

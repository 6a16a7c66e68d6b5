//! Logging set-up: JSON lines in Lambda (CloudWatch parses them), readable text on a
//! terminal. `RUST_LOG` filters (default `info`); `LOG_FORMAT=json|text` overrides the
//! choice.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. Safe to call more than once (later calls do
/// nothing), so tests and binaries can both call it.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
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

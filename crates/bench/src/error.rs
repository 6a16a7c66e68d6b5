//! One error type for the driver: a message that carries its context ("what we were doing:
//! why it failed").

use std::fmt::Display;

/// A failed step of the benchmark, with its context.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BenchError(pub(crate) String);

/// Results of the driver.
pub(crate) type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Adds context to any error that can be displayed.
pub(crate) trait Context<T> {
    /// Wraps the error as `"{what}: {error}"`.
    fn context(self, what: impl Display) -> Result<T>;
    /// Like [`Context::context`], with the message built only on failure.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: std::error::Error> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| BenchError(format!("{what}: {}", chain(&e))))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| BenchError(format!("{}: {}", what(), chain(&e))))
    }
}

/// An error and its sources, `outer: inner: ...`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| BenchError(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| BenchError(what().to_string()))
    }
}

/// Fails with a message.
pub(crate) fn fail<T>(message: impl Display) -> Result<T> {
    Err(BenchError(message.to_string()))
}

//! Every way a run can fail, with the exit code a script can test.

use std::error::Error as StdError;
use std::fmt;

/// Exit code: the answer was received completely.
pub const EXIT_OK: u8 = 0;
/// Exit code: the answer could not be written to stdout.
pub const EXIT_OUTPUT: u8 = 1;
/// Exit code: usage or configuration error (clap uses 2 for its own errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the server answered with an HTTP error status.
pub const EXIT_HTTP: u8 = 3;
/// Exit code: the stream reported an in-band error, or could not be decoded.
pub const EXIT_STREAM: u8 = 4;
/// Exit code: network or transport failure.
pub const EXIT_TRANSPORT: u8 = 5;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a run failed. The `Display` text is the line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// SigV4 was asked for but no credentials or region could be found.
    #[error("{0}")]
    Credentials(String),
    /// The server answered with a non-2xx status.
    #[error("{code}: {message} (HTTP {status})")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The server's error code (`error.code`), or a stand-in when the body has none.
        code: String,
        /// The server's message, or the raw body.
        message: String,
    },
    /// An in-band `event: error` in the stream.
    #[error("{code}: {message} (reported in the stream after it had started; retry the request)")]
    Stream {
        /// The error code (`error.code`).
        code: String,
        /// The message.
        message: String,
    },
    /// The body could not be decoded as what its content type says.
    #[error("{0}")]
    Decode(String),
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Transport(String),
    /// Writing the answer to stdout failed.
    #[error("could not write the answer to stdout: {0}")]
    Output(#[source] std::io::Error),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl ClientError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Credentials(_) => EXIT_USAGE,
            Self::Http { .. } => EXIT_HTTP,
            Self::Stream { .. } | Self::Decode(_) => EXIT_STREAM,
            Self::Transport(_) => EXIT_TRANSPORT,
            Self::Output(_) => EXIT_OUTPUT,
            Self::Interrupted => EXIT_INTERRUPTED,
        }
    }

    /// What to try next, when there is a useful hint.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Http { status: 401, .. } | Self::Http { status: 403, .. } => Some(
                "the endpoint wants credentials: use --sigv4 for IAM auth (Function URL AuthType AWS_IAM, API Gateway IAM), --bearer TOKEN, or --local-user NAME with `make run`",
            ),
            Self::Http { status: 404, .. } => {
                Some("check the URL: see `stream-client --help` for the local and deployed forms")
            }
            Self::Http { status: 413, .. } => Some("send a shorter prompt"),
            Self::Http { status: 429, .. } | Self::Http { status: 409, .. } => {
                Some("retry after a short delay")
            }
            _ => None,
        }
    }

    /// A transport error from reqwest, with its causes and advice for `url`.
    pub fn transport(err: &reqwest::Error, url: &str) -> Self {
        // reqwest's own message repeats the URL; its sources say what happened.
        let causes = err.source().map_or_else(|| err.to_string(), error_chain);
        let (lead, advice) = if err.is_timeout() {
            (
                format!("no answer from {url} in time"),
                "retry, or raise --idle-timeout / --max-time",
            )
        } else if err.is_connect() {
            (
                format!("could not connect to {url}"),
                "is the server running, and is the URL right?",
            )
        } else if err.is_body() || err.is_decode() {
            (
                format!("the answer from {url} broke off before it was complete"),
                "retry the request",
            )
        } else {
            (
                format!("the request to {url} failed"),
                "check the URL and the network, then retry",
            )
        };
        ClientError::Transport(format!("{lead}: {causes}; {advice}"))
    }
}

/// An error and its sources, joined by `: ` (repeated messages dropped).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Parses our JSON error shape `{"error": {"code": ..., "message": ...}}`; also accepts
/// the restJson1 / API Gateway shape `{"message": ...}` (code `None`).
pub fn parse_error_body(body: &str) -> Option<(Option<String>, String)> {
    let value: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    if let Some(err) = value.get("error").filter(|e| e.is_object()) {
        let code = err.get("code").and_then(|c| c.as_str()).map(str::to_owned);
        let message = err
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        return Some((code, message));
    }
    let message = value
        .get("message")
        .or_else(|| value.get("Message"))
        .and_then(|m| m.as_str())?;
    Some((None, message.to_owned()))
}

/// A body excerpt fit for one error line.
pub fn excerpt(body: &str) -> String {
    const MAX: usize = 2000;
    let body = body.trim();
    if body.len() <= MAX {
        return body.to_owned();
    }
    let mut end = MAX;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &body[..end], body.len())
}

/// Displays a [`ClientError`] as `error: ...` plus an optional `hint: ...` line.
pub struct Report<'a>(pub &'a ClientError);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.0)?;
        if let Some(hint) = self.0.hint() {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(r#"{"error":{"code":"missing_prompt","message":"Send one"}}"#),
            Some((Some("missing_prompt".into()), "Send one".into()))
        );
        assert_eq!(
            parse_error_body(r#"{"message":"Forbidden"}"#),
            Some((None, "Forbidden".into()))
        );
        assert_eq!(parse_error_body("<html>Bad gateway</html>"), None);
        assert_eq!(parse_error_body(r#"{"other":1}"#), None);
    }

    #[test]
    fn exit_codes_are_distinct() {
        let errors = [
            ClientError::Usage(String::new()),
            ClientError::Http {
                status: 400,
                code: String::new(),
                message: String::new(),
            },
            ClientError::Stream {
                code: String::new(),
                message: String::new(),
            },
            ClientError::Transport(String::new()),
            ClientError::Output(std::io::Error::other("x")),
            ClientError::Interrupted,
        ];
        let mut codes: Vec<u8> = errors.iter().map(ClientError::exit_code).collect();
        codes.dedup();
        assert_eq!(codes, [2, 3, 4, 5, 1, 130]);
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(3000);
        let cut = excerpt(&body);
        assert!(cut.ends_with("(6000 bytes)"), "{cut}");
    }
}

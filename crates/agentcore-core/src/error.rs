//! Every way a request can fail, as a type with an HTTP status, a stable code and a
//! client-safe message.
//!
//! The `Display` text of [`ApiError`] is what the API caller sees: it says what to fix
//! and never contains ARNs, credentials or upstream internals. Upstream detail is kept in
//! [`UpstreamError::detail`] and only ever logged.

use std::fmt;

use http::StatusCode;
use serde_json::json;

/// A request failure, ready to be shown to the API caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The HTTP method is not `POST`.
    #[error("Method {0} is not allowed: send a POST request with a JSON body")]
    MethodNotAllowed(String),
    /// The request's `Content-Type` is not JSON.
    #[error("Content-Type {0:?} is not supported: send Content-Type: application/json")]
    UnsupportedMediaType(String),
    /// The body is empty.
    #[error("The request body is empty: send a JSON object such as {{\"prompt\": \"Hello\"}}")]
    EmptyBody,
    /// The body is larger than `MAX_REQUEST_BYTES`.
    #[error(
        "The request body is {size} bytes, over the {limit}-byte limit: send a shorter prompt"
    )]
    BodyTooLarge {
        /// The body's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is not valid UTF-8.
    #[error("The request body is not valid UTF-8 text")]
    InvalidEncoding,
    /// The body is not valid JSON.
    #[error("The request body is not valid JSON ({0}): send a JSON object such as {{\"prompt\": \"Hello\"}}")]
    InvalidJson(String),
    /// The body is JSON but not an object.
    #[error("The request body must be a JSON object such as {{\"prompt\": \"Hello\"}}, not {0}")]
    NotAnObject(&'static str),
    /// `prompt` is absent.
    #[error("The field \"prompt\" is required: send {{\"prompt\": \"your question\"}}")]
    MissingPrompt,
    /// `prompt` is present but empty or only white space.
    #[error("The field \"prompt\" is empty: send the question to ask the agent")]
    EmptyPrompt,
    /// `prompt` is not a string.
    #[error("The field \"prompt\" must be a string, not {0}")]
    PromptNotString(&'static str),
    /// Another field has the wrong type or value.
    #[error("The field {field:?} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// The client's session id breaks AgentCore's rules.
    #[error("The session id is invalid: {0}. Omit it to start a new session, or send the X-Session-Id you were given")]
    InvalidSessionId(&'static str),
    /// A forwarded header is over AgentCore's 4 KB limit.
    #[error("The header {name} is over the {limit}-byte limit for headers forwarded to the agent")]
    HeaderTooLarge {
        /// The header.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// A bearer token is required (OAuth upstream mode, or `CALLER_IDENTITY=jwt`) and the
    /// request carries none in the named header.
    #[error("This API requires a bearer token in the {0} header: sign in and send it")]
    MissingToken(String),
    /// `CALLER_IDENTITY` requires an identity (IAM principal, authorizer) and the event
    /// carries none.
    #[error("This API requires an authenticated caller")]
    MissingIdentity,
    /// The token is malformed, signed with an unknown key or algorithm, from another issuer,
    /// or without `sub`.
    #[error("The token is not valid: sign in again")]
    InvalidToken,
    /// The token's `exp` has passed.
    #[error("The token has expired: sign in again")]
    TokenExpired,
    /// The token's `nbf` is in the future.
    #[error("The token is not valid yet: check the device's clock, or sign in again")]
    TokenNotYetValid,
    /// The token is valid but issued for another application (`aud`, `client_id`) or use
    /// (`token_use`).
    #[error("The token was issued for another application or use: sign in to this one")]
    TokenNotAccepted,
    /// The token lacks a scope this API requires.
    #[error("The token does not grant the scopes this API requires")]
    InsufficientScope,
    /// `DELETE` without a session id.
    #[error(
        "Send the id of the session to end in X-Session-Id (or as \"session_id\" in a JSON body)"
    )]
    MissingSessionId,
    /// `DELETE` of a session that is not open, or not the caller's.
    #[error("No session with this id is open for you")]
    SessionNotFound,
    /// AgentCore (or the way to it) failed; see [`UpstreamError`].
    #[error("{}", .0.kind.client_message())]
    Upstream(UpstreamError),
    /// A bug in this function (a panic caught at the handler or the body stream). The
    /// panic message is the log detail; the caller only learns that it was our fault.
    #[error(
        "The API failed while handling the request: retry, and report it if it keeps happening"
    )]
    Internal(String),
}

/// What went wrong between the function and AgentCore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    /// `ValidationException` (400): AgentCore refused the request as malformed.
    Validation,
    /// `AccessDeniedException` or a signature error (403): the function's role (SigV4
    /// mode) is not allowed to invoke the runtime.
    AccessDenied,
    /// OAuth mode: the caller's bearer token was refused.
    TokenRejected,
    /// `ResourceNotFoundException` (404): the runtime or endpoint does not exist.
    NotFound,
    /// `RetryableConflictException` (409): the session is busy with another request.
    Conflict,
    /// `RuntimeClientError` (424): the agent container failed.
    AgentFailed,
    /// `ThrottlingException` (429).
    Throttled,
    /// `ServiceQuotaExceededException`.
    QuotaExceeded,
    /// `InternalServerException` (500) or any other 5xx.
    Internal,
    /// No response in time (first byte, idle gap or overall deadline).
    Timeout,
    /// Could not connect or the request could not be sent.
    Unavailable,
    /// The stream broke after it had started.
    Reset,
    /// The answer is larger than a buffered Lambda response may be.
    ResponseTooLarge,
    /// An error type this code does not know.
    Unknown,
}

impl UpstreamKind {
    /// Maps an AgentCore error type (`X-Amzn-ErrorType`, or the SDK's error code) and the
    /// HTTP status to a kind. Unknown types fall back on the status class.
    pub fn from_error_type(error_type: &str, status: u16) -> Self {
        // The header may carry a suffix after ':' (restJson1 allows `Type:namespace`).
        let name = error_type.split(':').next().unwrap_or_default().trim();
        let name = name.rsplit('#').next().unwrap_or(name);
        match name {
            "ValidationException" => Self::Validation,
            "AccessDeniedException"
            | "InvalidSignatureException"
            | "UnrecognizedClientException"
            | "MissingAuthenticationTokenException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId" => Self::AccessDenied,
            "ResourceNotFoundException" => Self::NotFound,
            "RetryableConflictException" | "ConflictException" => Self::Conflict,
            "RuntimeClientError" => Self::AgentFailed,
            "ThrottlingException" | "TooManyRequestsException" => Self::Throttled,
            "ServiceQuotaExceededException" => Self::QuotaExceeded,
            "InternalServerException" | "ServiceUnavailableException" => Self::Internal,
            _ => match status {
                400 => Self::Validation,
                401 | 403 => Self::AccessDenied,
                404 => Self::NotFound,
                409 => Self::Conflict,
                424 => Self::AgentFailed,
                429 => Self::Throttled,
                500..=599 => Self::Internal,
                _ => Self::Unknown,
            },
        }
    }

    /// The caller-facing facts of this kind, in one place: status, stable code, retry
    /// advice and the client-safe message (what happened and what to do, no internals).
    pub const fn describe(self) -> (ErrorFacts, &'static str) {
        use Retry::{After, Later, No};
        use StatusCode as S;
        match self {
            Self::Validation => (facts(S::BAD_REQUEST, "upstream_validation", No),
                "The agent runtime rejected the request as invalid: check the prompt and fields you sent"),
            Self::AccessDenied => (facts(S::BAD_GATEWAY, "upstream_access_denied", No),
                "The API is not allowed to invoke its agent: the operator must check the function's IAM permissions and runtime ARN"),
            Self::TokenRejected => (facts(S::FORBIDDEN, "token_rejected", No),
                "The agent runtime rejected the bearer token: sign in again and retry"),
            Self::NotFound => (facts(S::BAD_GATEWAY, "agent_not_found", No),
                "The agent this API points at was not found: the operator must check the runtime ARN and qualifier"),
            Self::Conflict => (facts(S::CONFLICT, "session_busy", After(1)),
                "This session is busy with another request: retry when it has finished"),
            Self::AgentFailed => (facts(S::BAD_GATEWAY, "agent_error", No),
                "The agent failed while handling the request: retry, and report it if it keeps happening"),
            Self::Throttled => (facts(S::TOO_MANY_REQUESTS, "throttled", After(1)),
                "Too many requests to the agent: retry after a short delay"),
            Self::QuotaExceeded => (facts(S::TOO_MANY_REQUESTS, "quota_exceeded", After(30)),
                "The agent's service quota is exhausted: retry later"),
            Self::Internal => (facts(S::BAD_GATEWAY, "upstream_error", Later),
                "The agent runtime had an internal error: retry after a short delay"),
            Self::Timeout => (facts(S::GATEWAY_TIMEOUT, "upstream_timeout", Later),
                "The agent did not answer in time: retry, or ask a shorter question"),
            Self::Unavailable => (facts(S::BAD_GATEWAY, "upstream_unavailable", Later),
                "The agent runtime could not be reached: retry after a short delay"),
            Self::Reset => (facts(S::BAD_GATEWAY, "upstream_reset", Later),
                "The connection to the agent broke before the answer was complete: retry"),
            Self::ResponseTooLarge => (facts(S::BAD_GATEWAY, "response_too_large", No),
                "The agent's answer is larger than this buffered API can return: use the streaming endpoint"),
            Self::Unknown => (facts(S::BAD_GATEWAY, "upstream_error", No),
                "The agent runtime returned an unexpected error: retry after a short delay"),
        }
    }

    /// Every kind, for the documentation test and [`catalogue`].
    pub const ALL: [Self; 14] = [
        Self::Validation,
        Self::AccessDenied,
        Self::TokenRejected,
        Self::NotFound,
        Self::Conflict,
        Self::AgentFailed,
        Self::Throttled,
        Self::QuotaExceeded,
        Self::Internal,
        Self::Timeout,
        Self::Unavailable,
        Self::Reset,
        Self::ResponseTooLarge,
        Self::Unknown,
    ];

    /// HTTP status for the API caller.
    pub const fn status(self) -> StatusCode {
        self.describe().0.status
    }

    /// Stable error code for the API caller.
    pub const fn code(self) -> &'static str {
        self.describe().0.code
    }

    /// Client-safe message: what happened and what to do, without internals.
    pub const fn client_message(self) -> &'static str {
        self.describe().1
    }

    /// Whether retrying the same request later may succeed.
    pub const fn retryable(self) -> bool {
        !matches!(self.describe().0.retry, Retry::No)
    }
}

/// Whether, and when, a caller may retry a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// The same request will fail the same way: fix it (or the deployment) first.
    No,
    /// A later retry may succeed.
    Later,
    /// Retry after this many seconds (sent as `Retry-After`).
    After(u32),
}

/// What the caller learns about one kind of failure besides its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorFacts {
    /// The HTTP status (before the first byte; in-band errors carry only the code).
    pub status: StatusCode,
    /// The stable code in `{"error": {"code": ...}}`, listed in the README's error table.
    pub code: &'static str,
    /// Retry advice.
    pub retry: Retry,
}

const fn facts(status: StatusCode, code: &'static str, retry: Retry) -> ErrorFacts {
    ErrorFacts {
        status,
        code,
        retry,
    }
}

/// An upstream failure: its kind, plus detail for the operator's log only.
#[derive(Clone, Debug)]
pub struct UpstreamError {
    /// What happened, as far as the caller is concerned.
    pub kind: UpstreamKind,
    /// Full detail (error type, upstream message, transport error). Logged, never sent.
    pub detail: String,
    /// The request provably never left this function (the connection was refused or
    /// never established), so the agent cannot have seen it.
    pub not_sent: bool,
    /// Attempts made before giving up.
    pub attempts: u32,
}

impl UpstreamError {
    /// An upstream error of `kind` with log `detail`.
    pub fn new(kind: UpstreamKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            not_sent: false,
            attempts: 1,
        }
    }

    /// An [`UpstreamKind::Unavailable`] error for a request that never left the function.
    pub fn not_sent(detail: impl Into<String>) -> Self {
        Self {
            not_sent: true,
            ..Self::new(UpstreamKind::Unavailable, detail)
        }
    }

    /// Whether sending the same request again cannot run the agent twice: the request
    /// never left the function, or AgentCore refused it before handing it to the agent
    /// (`ThrottlingException`, `RetryableConflictException`). Every other failure may
    /// have reached the agent (an I/O error after the request was written, a 5xx, a
    /// timeout), so it is never retried.
    pub fn retry_safe(&self) -> bool {
        self.not_sent || matches!(self.kind, UpstreamKind::Throttled | UpstreamKind::Conflict)
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.client_message())
    }
}

impl std::error::Error for UpstreamError {}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        ApiError::Upstream(e)
    }
}

impl ApiError {
    /// The caller-facing facts of this error (its message is the variant's `Display`).
    pub const fn facts(&self) -> ErrorFacts {
        use Retry::No;
        use StatusCode as S;
        match self {
            Self::MethodNotAllowed(_) => facts(S::METHOD_NOT_ALLOWED, "method_not_allowed", No),
            Self::UnsupportedMediaType(_) => {
                facts(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", No)
            }
            Self::EmptyBody => facts(S::BAD_REQUEST, "empty_body", No),
            Self::BodyTooLarge { .. } => facts(S::PAYLOAD_TOO_LARGE, "body_too_large", No),
            Self::InvalidEncoding => facts(S::BAD_REQUEST, "invalid_encoding", No),
            Self::InvalidJson(_) | Self::NotAnObject(_) => {
                facts(S::BAD_REQUEST, "invalid_json", No)
            }
            Self::MissingPrompt => facts(S::BAD_REQUEST, "missing_prompt", No),
            Self::EmptyPrompt => facts(S::BAD_REQUEST, "empty_prompt", No),
            Self::PromptNotString(_) => facts(S::BAD_REQUEST, "invalid_prompt", No),
            Self::InvalidField { .. } => facts(S::BAD_REQUEST, "invalid_field", No),
            Self::InvalidSessionId(_) => facts(S::BAD_REQUEST, "invalid_session_id", No),
            Self::HeaderTooLarge { .. } => facts(S::BAD_REQUEST, "header_too_large", No),
            Self::MissingToken(_) => facts(S::UNAUTHORIZED, "missing_token", No),
            Self::MissingIdentity => facts(S::UNAUTHORIZED, "missing_identity", No),
            Self::InvalidToken => facts(S::UNAUTHORIZED, "invalid_token", No),
            Self::TokenExpired => facts(S::UNAUTHORIZED, "token_expired", No),
            Self::TokenNotYetValid => facts(S::UNAUTHORIZED, "token_not_yet_valid", No),
            Self::TokenNotAccepted => facts(S::FORBIDDEN, "token_not_accepted", No),
            Self::InsufficientScope => facts(S::FORBIDDEN, "insufficient_scope", No),
            Self::MissingSessionId => facts(S::BAD_REQUEST, "missing_session_id", No),
            Self::SessionNotFound => facts(S::NOT_FOUND, "session_not_found", No),
            Self::Internal(_) => facts(S::INTERNAL_SERVER_ERROR, "internal_error", Retry::Later),
            Self::Upstream(e) => e.kind.describe().0,
        }
    }

    /// HTTP status for the API caller.
    pub const fn status(&self) -> StatusCode {
        self.facts().status
    }

    /// Stable, documented error code for the API caller.
    pub const fn code(&self) -> &'static str {
        self.facts().code
    }

    /// The JSON error document: `{"error": {"code": ..., "message": ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }

    /// Seconds the caller should wait before retrying, for the `Retry-After` header.
    pub const fn retry_after(&self) -> Option<u32> {
        match self.facts().retry {
            Retry::After(secs) => Some(secs),
            Retry::No | Retry::Later => None,
        }
    }

    /// Log detail: the upstream detail where there is one, the message otherwise.
    pub fn log_detail(&self) -> String {
        match self {
            Self::Upstream(e) => e.detail.clone(),
            Self::Internal(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}

/// Every status and code a caller can receive: one error of each variant, and each upstream
/// kind. The README's error table is tested against it.
pub fn catalogue() -> Vec<ErrorFacts> {
    let samples = [
        ApiError::MethodNotAllowed(String::new()),
        ApiError::UnsupportedMediaType(String::new()),
        ApiError::EmptyBody,
        ApiError::BodyTooLarge { size: 0, limit: 0 },
        ApiError::InvalidEncoding,
        ApiError::InvalidJson(String::new()),
        ApiError::NotAnObject(""),
        ApiError::MissingPrompt,
        ApiError::EmptyPrompt,
        ApiError::PromptNotString(""),
        ApiError::InvalidField {
            field: "",
            reason: "",
        },
        ApiError::InvalidSessionId(""),
        ApiError::HeaderTooLarge {
            name: String::new(),
            limit: 0,
        },
        ApiError::MissingToken(String::new()),
        ApiError::MissingIdentity,
        ApiError::InvalidToken,
        ApiError::TokenExpired,
        ApiError::TokenNotYetValid,
        ApiError::TokenNotAccepted,
        ApiError::InsufficientScope,
        ApiError::MissingSessionId,
        ApiError::SessionNotFound,
        ApiError::Internal(String::new()),
    ];
    // A new variant fails to compile here until it is added to `samples` above.
    for sample in &samples {
        match sample {
            ApiError::MethodNotAllowed(_)
            | ApiError::UnsupportedMediaType(_)
            | ApiError::EmptyBody
            | ApiError::BodyTooLarge { .. }
            | ApiError::InvalidEncoding
            | ApiError::InvalidJson(_)
            | ApiError::NotAnObject(_)
            | ApiError::MissingPrompt
            | ApiError::EmptyPrompt
            | ApiError::PromptNotString(_)
            | ApiError::InvalidField { .. }
            | ApiError::InvalidSessionId(_)
            | ApiError::HeaderTooLarge { .. }
            | ApiError::MissingToken(_)
            | ApiError::MissingIdentity
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::TokenNotYetValid
            | ApiError::TokenNotAccepted
            | ApiError::InsufficientScope
            | ApiError::MissingSessionId
            | ApiError::SessionNotFound
            | ApiError::Internal(_)
            | ApiError::Upstream(_) => {}
        }
    }
    samples
        .iter()
        .map(ApiError::facts)
        .chain(UpstreamKind::ALL.iter().map(|k| k.describe().0))
        .collect()
}

/// Name of a JSON value's type, for error messages.
pub(crate) fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agentcore_error_type_has_its_status_and_code() {
        let cases = [
            ("ValidationException", 400, 400, "upstream_validation"),
            ("AccessDeniedException", 403, 502, "upstream_access_denied"),
            (
                "InvalidSignatureException",
                403,
                502,
                "upstream_access_denied",
            ),
            (
                "UnrecognizedClientException",
                403,
                502,
                "upstream_access_denied",
            ),
            ("ResourceNotFoundException", 404, 502, "agent_not_found"),
            ("RetryableConflictException", 409, 409, "session_busy"),
            ("RuntimeClientError", 424, 502, "agent_error"),
            ("ThrottlingException", 429, 429, "throttled"),
            ("ServiceQuotaExceededException", 402, 429, "quota_exceeded"),
            ("InternalServerException", 500, 502, "upstream_error"),
            (
                "ThrottlingException:http://internal.amazon.com/coral/",
                429,
                429,
                "throttled",
            ),
            (
                "aws.protocoltests#ValidationException",
                400,
                400,
                "upstream_validation",
            ),
            ("SomethingNew", 503, 502, "upstream_error"),
            ("SomethingNew", 429, 429, "throttled"),
        ];
        for (ty, upstream_status, status, code) in cases {
            let kind = UpstreamKind::from_error_type(ty, upstream_status);
            assert_eq!(
                (kind.status().as_u16(), kind.code()),
                (status, code),
                "{ty}"
            );
        }
    }

    #[test]
    fn client_messages_carry_no_upstream_detail() {
        let secret = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x AKIDEXAMPLE";
        let e = ApiError::from(UpstreamError::new(UpstreamKind::AccessDenied, secret));
        let body = e.to_json().to_string();
        assert!(!body.contains("arn:aws"), "{body}");
        assert!(!body.contains("AKID"), "{body}");
        assert_eq!(e.log_detail(), secret);
        assert_eq!(e.to_json()["error"]["code"], "upstream_access_denied");
    }

    #[test]
    fn only_failures_that_never_reached_the_agent_are_retry_safe() {
        let safe = [
            UpstreamError::not_sent("connection refused"),
            UpstreamError::new(UpstreamKind::Throttled, "x"),
            UpstreamError::new(UpstreamKind::Conflict, "x"),
        ];
        assert!(safe.iter().all(UpstreamError::retry_safe));
        for kind in [
            UpstreamKind::Internal,
            UpstreamKind::Timeout,
            UpstreamKind::Unavailable,
            UpstreamKind::Reset,
            UpstreamKind::AgentFailed,
            UpstreamKind::Validation,
            UpstreamKind::QuotaExceeded,
            UpstreamKind::Unknown,
        ] {
            assert!(!UpstreamError::new(kind, "x").retry_safe(), "{kind:?}");
        }
    }

    #[test]
    fn a_caught_panic_is_a_500_without_its_message() {
        let e = ApiError::Internal("panicked at src/lib.rs:1: secret".into());
        assert_eq!((e.status().as_u16(), e.code()), (500, "internal_error"));
        assert!(!e.to_json().to_string().contains("secret"));
        assert!(e.log_detail().contains("secret"));
    }

    #[test]
    fn throttling_asks_to_retry_later() {
        let e = ApiError::from(UpstreamError::new(UpstreamKind::Throttled, "x"));
        assert_eq!(e.retry_after(), Some(1));
        assert!(UpstreamKind::Throttled.retryable());
        assert!(!UpstreamKind::Validation.retryable());
        assert_eq!(ApiError::MissingPrompt.retry_after(), None);
    }
}

//! Every way a request can fail, as a type with an HTTP status, a stable code and a
//! client-safe message.
//!
//! The `Display` text of [`ApiError`] is what the API caller sees: it says what to fix
//! and never contains ARNs, credentials or upstream internals. Upstream detail is kept in
//! [`UpstreamError::detail`] and only ever logged.

use std::fmt;

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

    /// HTTP status for the API caller.
    pub fn status(self) -> u16 {
        match self {
            Self::Validation => 400,
            Self::TokenRejected => 403,
            Self::Conflict => 409,
            Self::Throttled | Self::QuotaExceeded => 429,
            Self::Timeout => 504,
            Self::AccessDenied
            | Self::NotFound
            | Self::AgentFailed
            | Self::Internal
            | Self::Unavailable
            | Self::Reset
            | Self::ResponseTooLarge
            | Self::Unknown => 502,
        }
    }

    /// Stable error code for the API caller.
    pub fn code(self) -> &'static str {
        match self {
            Self::Validation => "upstream_validation",
            Self::AccessDenied => "upstream_access_denied",
            Self::TokenRejected => "token_rejected",
            Self::NotFound => "agent_not_found",
            Self::Conflict => "session_busy",
            Self::AgentFailed => "agent_error",
            Self::Throttled => "throttled",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Internal => "upstream_error",
            Self::Timeout => "upstream_timeout",
            Self::Unavailable => "upstream_unavailable",
            Self::Reset => "upstream_reset",
            Self::ResponseTooLarge => "response_too_large",
            Self::Unknown => "upstream_error",
        }
    }

    /// Client-safe message: what happened and what to do, without internals.
    pub fn client_message(self) -> &'static str {
        match self {
            Self::Validation => "The agent runtime rejected the request as invalid: check the prompt and fields you sent",
            Self::AccessDenied => "The API is not allowed to invoke its agent: the operator must check the function's IAM permissions and runtime ARN",
            Self::TokenRejected => "The agent runtime rejected the bearer token: sign in again and retry",
            Self::NotFound => "The agent this API points at was not found: the operator must check the runtime ARN and qualifier",
            Self::Conflict => "This session is busy with another request: retry when it has finished",
            Self::AgentFailed => "The agent failed while handling the request: retry, and report it if it keeps happening",
            Self::Throttled => "Too many requests to the agent: retry after a short delay",
            Self::QuotaExceeded => "The agent's service quota is exhausted: retry later",
            Self::Internal => "The agent runtime had an internal error: retry after a short delay",
            Self::Timeout => "The agent did not answer in time: retry, or ask a shorter question",
            Self::Unavailable => "The agent runtime could not be reached: retry after a short delay",
            Self::Reset => "The connection to the agent broke before the answer was complete: retry",
            Self::ResponseTooLarge => "The agent's answer is larger than this buffered API can return: use the streaming endpoint",
            Self::Unknown => "The agent runtime returned an unexpected error: retry after a short delay",
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Conflict
                | Self::Throttled
                | Self::QuotaExceeded
                | Self::Internal
                | Self::Timeout
                | Self::Unavailable
                | Self::Reset
        )
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
    /// HTTP status for the API caller.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed(_) => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::BodyTooLarge { .. } => 413,
            Self::MissingToken(_)
            | Self::MissingIdentity
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::TokenNotYetValid => 401,
            Self::TokenNotAccepted | Self::InsufficientScope => 403,
            Self::SessionNotFound => 404,
            Self::Internal(_) => 500,
            Self::Upstream(e) => e.kind.status(),
            Self::EmptyBody
            | Self::InvalidEncoding
            | Self::InvalidJson(_)
            | Self::NotAnObject(_)
            | Self::MissingPrompt
            | Self::EmptyPrompt
            | Self::PromptNotString(_)
            | Self::InvalidField { .. }
            | Self::InvalidSessionId(_)
            | Self::MissingSessionId
            | Self::HeaderTooLarge { .. } => 400,
        }
    }

    /// Stable, documented error code for the API caller.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::EmptyBody => "empty_body",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::InvalidEncoding => "invalid_encoding",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject(_) => "invalid_json",
            Self::MissingPrompt => "missing_prompt",
            Self::EmptyPrompt => "empty_prompt",
            Self::PromptNotString(_) => "invalid_prompt",
            Self::InvalidField { .. } => "invalid_field",
            Self::InvalidSessionId(_) => "invalid_session_id",
            Self::HeaderTooLarge { .. } => "header_too_large",
            Self::MissingToken(_) => "missing_token",
            Self::MissingIdentity => "missing_identity",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenNotAccepted => "token_not_accepted",
            Self::InsufficientScope => "insufficient_scope",
            Self::MissingSessionId => "missing_session_id",
            Self::SessionNotFound => "session_not_found",
            Self::Internal(_) => "internal_error",
            Self::Upstream(e) => e.kind.code(),
        }
    }

    /// The JSON error document: `{"error": {"code": ..., "message": ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }

    /// Seconds the caller should wait before retrying, for the `Retry-After` header.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Upstream(e)
                if matches!(e.kind, UpstreamKind::Throttled | UpstreamKind::Conflict) =>
            {
                Some(1)
            }
            Self::Upstream(e) if e.kind == UpstreamKind::QuotaExceeded => Some(30),
            _ => None,
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
            assert_eq!((kind.status(), kind.code()), (status, code), "{ty}");
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
        assert_eq!((e.status(), e.code()), (500, "internal_error"));
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

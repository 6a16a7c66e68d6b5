//! AgentCore errors in the restJson1 shape the AWS SDKs parse.
//!
//! On the wire an error is a status code, an `X-Amzn-ErrorType: <Type>` header and a JSON
//! body `{"message": "..."}`. The SDK reads the type from the header and turns it into its
//! typed variant (`InvokeAgentRuntimeError::ThrottlingException(_)` and so on).

use std::fmt;
use std::str::FromStr;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

/// Name of the header that carries the error type of a restJson1 error.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Every error type the local runtime can answer with.
///
/// The first eight are the modelled errors of `InvokeAgentRuntime`; the others are the
/// authentication errors AWS front doors return before the operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// 400: the request is malformed (session id length, custom headers, payload size...).
    ValidationException,
    /// 403: the caller may not invoke this runtime (also: wrong bearer token in OAuth mode).
    AccessDeniedException,
    /// 404: unknown runtime ARN or endpoint qualifier.
    ResourceNotFoundException,
    /// 409: a conflicting operation is in progress; retrying may succeed.
    RetryableConflictException,
    /// 424: the agent container failed (unreachable, crashed, answered 4xx/5xx).
    RuntimeClientError,
    /// 429: too many requests.
    ThrottlingException,
    /// 402: a service quota was exceeded.
    ServiceQuotaExceededException,
    /// 500: the service failed.
    InternalServerException,
    /// 403: the SigV4 signature does not match, or it expired.
    InvalidSignatureException,
    /// 403: the access key id is not known.
    UnrecognizedClientException,
    /// 403: no `Authorization` header at all.
    MissingAuthenticationTokenException,
    /// 400: the `Authorization` header or `X-Amz-Date` is malformed.
    IncompleteSignatureException,
    /// 404: no operation at this method and path.
    UnknownOperationException,
}

impl ErrorType {
    /// Every error type, in declaration order.
    pub const ALL: [ErrorType; 13] = [
        ErrorType::ValidationException,
        ErrorType::AccessDeniedException,
        ErrorType::ResourceNotFoundException,
        ErrorType::RetryableConflictException,
        ErrorType::RuntimeClientError,
        ErrorType::ThrottlingException,
        ErrorType::ServiceQuotaExceededException,
        ErrorType::InternalServerException,
        ErrorType::InvalidSignatureException,
        ErrorType::UnrecognizedClientException,
        ErrorType::MissingAuthenticationTokenException,
        ErrorType::IncompleteSignatureException,
        ErrorType::UnknownOperationException,
    ];

    /// The modelled errors of `InvokeAgentRuntime` (each has a typed SDK variant).
    pub const MODELLED: [ErrorType; 8] = [
        ErrorType::ValidationException,
        ErrorType::AccessDeniedException,
        ErrorType::ResourceNotFoundException,
        ErrorType::RetryableConflictException,
        ErrorType::RuntimeClientError,
        ErrorType::ThrottlingException,
        ErrorType::ServiceQuotaExceededException,
        ErrorType::InternalServerException,
    ];

    /// The error code as sent in `X-Amzn-ErrorType` (e.g. `"ThrottlingException"`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorType::ValidationException => "ValidationException",
            ErrorType::AccessDeniedException => "AccessDeniedException",
            ErrorType::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorType::RetryableConflictException => "RetryableConflictException",
            ErrorType::RuntimeClientError => "RuntimeClientError",
            ErrorType::ThrottlingException => "ThrottlingException",
            ErrorType::ServiceQuotaExceededException => "ServiceQuotaExceededException",
            ErrorType::InternalServerException => "InternalServerException",
            ErrorType::InvalidSignatureException => "InvalidSignatureException",
            ErrorType::UnrecognizedClientException => "UnrecognizedClientException",
            ErrorType::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorType::IncompleteSignatureException => "IncompleteSignatureException",
            ErrorType::UnknownOperationException => "UnknownOperationException",
        }
    }

    /// The HTTP status code AgentCore uses for this error type.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::ValidationException | ErrorType::IncompleteSignatureException => {
                StatusCode::BAD_REQUEST
            }
            ErrorType::AccessDeniedException
            | ErrorType::InvalidSignatureException
            | ErrorType::UnrecognizedClientException
            | ErrorType::MissingAuthenticationTokenException => StatusCode::FORBIDDEN,
            ErrorType::ResourceNotFoundException | ErrorType::UnknownOperationException => {
                StatusCode::NOT_FOUND
            }
            ErrorType::RetryableConflictException => StatusCode::CONFLICT,
            ErrorType::RuntimeClientError => StatusCode::FAILED_DEPENDENCY,
            ErrorType::ThrottlingException => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::ServiceQuotaExceededException => StatusCode::PAYMENT_REQUIRED,
            ErrorType::InternalServerException => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The string is not one of the [`ErrorType`] codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error type `{0}`")]
pub struct UnknownErrorType(pub String);

impl FromStr for ErrorType {
    type Err = UnknownErrorType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorType::ALL
            .into_iter()
            .find(|t| t.code() == s)
            .ok_or_else(|| UnknownErrorType(s.to_owned()))
    }
}

/// An error answer: its type and the human readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// The error type (gives the status code and the `X-Amzn-ErrorType` header).
    pub kind: ErrorType,
    /// The `message` of the JSON body.
    pub message: String,
}

impl ApiError {
    /// An error of the given type with the given message.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for a `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::new(ErrorType::ValidationException, message)
    }

    /// The JSON body of this error: `{"message": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body()));
        *response.status_mut() = self.kind.status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            ERROR_TYPE_HEADER,
            HeaderValue::from_static(self.kind.code()),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for t in ErrorType::ALL {
            assert_eq!(t.code().parse::<ErrorType>(), Ok(t));
        }
        assert!("Nope".parse::<ErrorType>().is_err());
    }

    #[test]
    fn statuses_match_agentcore() {
        assert_eq!(ErrorType::ValidationException.status().as_u16(), 400);
        assert_eq!(ErrorType::RuntimeClientError.status().as_u16(), 424);
        assert_eq!(ErrorType::ThrottlingException.status().as_u16(), 429);
        assert_eq!(
            ErrorType::ServiceQuotaExceededException.status().as_u16(),
            402
        );
    }

    #[test]
    fn error_response_is_rest_json() {
        let response = ApiError::new(ErrorType::ThrottlingException, "slow down").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get(ERROR_TYPE_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("ThrottlingException")
        );
    }
}

//! The wire format between a client and the agentcore-lambda endpoints, and nothing else:
//! the session header, and server-sent events (decoding, token text, error events). The
//! functions (through `agentcore-core`) and `stream-client` both use it, so a client needs
//! neither the AWS SDK nor the Lambda runtime to read an answer.

pub mod sse;

/// The header that carries the session id, both ways: the client's, or a new one in the
/// response.
pub const SESSION_HEADER: &str = "x-session-id";

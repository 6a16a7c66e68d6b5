//! Session ids: the client's when it follows AgentCore's rules, a new one otherwise.
//!
//! AgentCore routes every request with the same session id to the same microVM, so the
//! id is the conversation's identity. It must be 33 to 256 characters; we also restrict
//! it to a conservative character set, because it travels in an HTTP header.

use std::fmt;

use crate::error::ApiError;

/// Shortest session id AgentCore accepts.
pub const MIN_SESSION_ID_LEN: usize = 33;
/// Longest session id AgentCore accepts.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// A session id that AgentCore will accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh `session-<uuid v4>` id (44 characters).
    pub fn generate() -> Self {
        Self(format!("session-{}", uuid::Uuid::new_v4()))
    }

    /// Validates a client-supplied id.
    pub fn parse(id: &str) -> Result<Self, ApiError> {
        let len = id.chars().count();
        if len < MIN_SESSION_ID_LEN {
            return Err(ApiError::InvalidSessionId(
                "it must be at least 33 characters long",
            ));
        }
        if len > MAX_SESSION_ID_LEN {
            return Err(ApiError::InvalidSessionId(
                "it must be at most 256 characters long",
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(ApiError::InvalidSessionId(
                "it may contain only letters, digits, '-', '_', '.' and ':'",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The client's id when there is one (validated), otherwise a new one. The flag is
    /// `true` when the id was generated.
    pub fn from_client(id: Option<&str>) -> Result<(Self, bool), ApiError> {
        match id {
            Some(id) => Ok((Self::parse(id)?, false)),
            None => Ok((Self::generate(), true)),
        }
    }

    /// An id built by this crate that is valid by construction (a caller's derived
    /// session, see [`crate::identity::Caller::runtime_session_id`]).
    pub(crate) fn derived(id: String) -> Self {
        debug_assert!(Self::parse(&id).is_ok(), "{id}");
        Self(id)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("session-"));
        assert_eq!(a.as_str().len(), 44);
        assert_eq!(SessionId::parse(a.as_str()).expect("valid"), a);
    }

    #[test]
    fn length_bounds_are_33_to_256() {
        assert!(SessionId::parse(&"a".repeat(32)).is_err());
        assert!(SessionId::parse(&"a".repeat(33)).is_ok());
        assert!(SessionId::parse(&"a".repeat(256)).is_ok());
        assert!(SessionId::parse(&"a".repeat(257)).is_err());
        let short = SessionId::parse("1234567890123456").expect_err("16 chars");
        assert_eq!(
            (short.status().as_u16(), short.code()),
            (400, "invalid_session_id")
        );
        assert!(short.to_string().contains("33"));
    }

    #[test]
    fn unsafe_characters_are_refused() {
        for bad in [
            format!("{}\r\nX-Injected: 1", "a".repeat(40)),
            format!("{} space", "a".repeat(40)),
            format!("{}é", "a".repeat(40)),
            format!("{}/../", "a".repeat(40)),
        ] {
            let err = SessionId::parse(&bad).expect_err(&bad);
            assert_eq!(err.code(), "invalid_session_id");
        }
        assert!(SessionId::parse("user-42:conversation.7_2024-11-25-abcdef").is_ok());
    }

    #[test]
    fn absent_id_is_generated() {
        let (id, generated) = SessionId::from_client(None).expect("ok");
        assert!(generated && id.as_str().starts_with("session-"));
        let given = "b".repeat(40);
        let (id, generated) = SessionId::from_client(Some(&given)).expect("ok");
        assert!(!generated);
        assert_eq!(id.as_str(), given);
    }
}

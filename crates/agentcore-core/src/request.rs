//! The request model: from an HTTP request (any Lambda HTTP event that `lambda_http`
//! decodes, base64 bodies included) to a validated [`Invocation`].
//!
//! The API accepts `POST` with a JSON object:
//! `{"prompt": "...", "session_id": "...", "content_type": "...", "accept": "..."}` where
//! only `prompt` is required, plus any extra top-level fields the operator allow-listed
//! (`FORWARD_FIELDS`). The agent receives `{"prompt": ...}` plus those extra fields, as in
//! the original sample.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Map, Value};

use crate::config::{AuthMode, Config};
use crate::error::{json_type_name, ApiError};
use crate::headers::{forwarded_headers, TraceHeaders};
use crate::identity::{Caller, IdentitySource};
use crate::session::SessionId;

/// Content type of the payload sent to the agent when the client does not choose one.
pub const DEFAULT_PAYLOAD_CONTENT_TYPE: &str = "application/json";
/// `Accept` sent to the agent when the client does not choose one: a stream preferred.
pub const DEFAULT_ACCEPT: &str = "text/event-stream, application/json;q=0.9, */*;q=0.1";
/// Header a client may use instead of the `session_id` field (and that answers carry).
pub use agentcore_wire::SESSION_HEADER;
/// Longest accepted `content_type` or `accept` value.
const MAX_MEDIA_TYPE_LEN: usize = 256;

/// A validated request, ready to send to AgentCore.
#[derive(Clone)]
pub struct Invocation {
    /// The prompt (non-empty).
    pub prompt: String,
    /// The session id the client sees: its own, or a new one.
    pub session_id: SessionId,
    /// The session id sent to AgentCore: `session_id` itself, or the caller's own session
    /// derived from it ([`Invocation::bind`]).
    pub runtime_session_id: SessionId,
    /// AgentCore's `runtimeUserId`, when the operator enabled it (`RUNTIME_USER_ID`).
    pub runtime_user_id: Option<String>,
    /// The caller's id (`anonymous` until [`Invocation::bind`]), for the access record.
    pub caller_id: String,
    /// Whether `session_id` was generated for this request.
    pub session_generated: bool,
    /// `Content-Type` of the agent payload.
    pub content_type: String,
    /// `Accept` sent to the agent.
    pub accept: String,
    /// The agent payload: `{"prompt": ...}` plus allow-listed extra fields.
    pub payload: Bytes,
    /// Allow-listed client headers, renamed to AgentCore custom headers.
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    /// Tracing context to propagate.
    pub trace: TraceHeaders,
    /// OAuth mode: the caller's bearer token (without the `Bearer ` prefix).
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for Invocation {
    /// The prompt, the payload and the bearer token are redacted: a `Debug` print must never
    /// put them in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |len: usize| format!("<{len} bytes redacted>");
        f.debug_struct("Invocation")
            .field("prompt", &redacted(self.prompt.len()))
            .field("session_id", &self.session_id)
            .field("runtime_session_id", &self.runtime_session_id)
            .field("runtime_user_id", &self.runtime_user_id)
            .field("caller_id", &self.caller_id)
            .field("content_type", &self.content_type)
            .field("accept", &self.accept)
            .field("payload", &redacted(self.payload.len()))
            .field("custom_headers", &self.custom_headers.len())
            .field("trace", &self.trace)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|t| redacted(t.len())),
            )
            .finish()
    }
}

impl Invocation {
    /// Ties the invocation to its caller: the caller's own AgentCore session, its
    /// `runtimeUserId` when enabled, and its allow-listed claims as custom headers.
    pub fn bind(&mut self, caller: &Caller, config: &Config) {
        self.runtime_session_id = caller.runtime_session_id(config.session_scope, &self.session_id);
        self.caller_id = caller.id.clone();
        if config.runtime_user_id && caller.source != IdentitySource::Anonymous {
            self.runtime_user_id = Some(caller.id.clone());
        }
        self.custom_headers
            .extend(caller.claim_headers(&config.forward_claims));
    }
}

/// Parses and validates a Lambda HTTP request.
pub fn parse_lambda_request(
    req: &lambda_http::Request,
    config: &Config,
) -> Result<Invocation, ApiError> {
    parse_parts(req.method(), req.headers(), req.body().as_ref(), config)
}

/// Parses and validates a request from its parts. Checks run cheapest first, and the
/// body is never parsed when it is over the size limit.
pub fn parse_parts(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    config: &Config,
) -> Result<Invocation, ApiError> {
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed(method.to_string()));
    }
    check_content_type(headers)?;
    let bearer_token = match config.auth_mode {
        AuthMode::OAuth => Some(bearer_token(headers)?),
        AuthMode::SigV4 => None,
    };
    let mut fields = parse_body(body, config.max_request_bytes)?;

    // Moved out of the parsed body, not copied: the prompt is the bulk of a request, and
    // it is copied once more only when it is written into the agent payload.
    let prompt = match fields.remove("prompt") {
        None | Some(Value::Null) => return Err(ApiError::MissingPrompt),
        Some(Value::String(s)) if is_blank(&s) => return Err(ApiError::EmptyPrompt),
        Some(Value::String(s)) => s,
        Some(other) => return Err(ApiError::PromptNotString(json_type_name(&other))),
    };

    let header_session = headers.get(SESSION_HEADER).map(|v| {
        v.to_str().map_err(|_| {
            ApiError::InvalidSessionId("it may contain only letters, digits, '-', '_', '.' and ':'")
        })
    });
    let body_session = optional_string(
        &fields,
        "session_id",
        "must be a string of 33 to 256 characters",
    )?;
    let client_session = match (body_session, header_session) {
        // Two different sessions named: which one the client meant cannot be known, and a
        // proxy or log that reads the header would see another session than the agent.
        (Some(s), Some(Ok(h))) if s != h => {
            return Err(ApiError::InvalidSessionId(
                "the X-Session-Id header and the session_id field name different sessions: send one of them",
            ))
        }
        (Some(s), _) => Some(s),
        (None, Some(h)) => Some(h?),
        (None, None) => None,
    };
    let (session_id, session_generated) = SessionId::from_client(client_session)?;

    let content_type = media_type(&fields, "content_type")?
        .unwrap_or(DEFAULT_PAYLOAD_CONTENT_TYPE)
        .to_owned();
    let accept = media_type(&fields, "accept")?
        .unwrap_or(DEFAULT_ACCEPT)
        .to_owned();

    let payload = agent_payload(&prompt, &fields, &config.forward_fields)?;

    Ok(Invocation {
        prompt,
        runtime_session_id: session_id.clone(),
        runtime_user_id: None,
        caller_id: "anonymous".to_owned(),
        session_id,
        session_generated,
        content_type,
        accept,
        payload,
        custom_headers: forwarded_headers(headers, &config.forward_headers)?,
        trace: TraceHeaders::from_headers(headers),
        bearer_token,
    })
}

/// The agent payload, `{"prompt": ..., <allow-listed fields>}`, serialised straight from
/// the borrowed request fields (no intermediate `Value` tree to copy them into).
fn agent_payload(
    prompt: &str,
    fields: &Map<String, Value>,
    forward_fields: &[String],
) -> Result<Bytes, ApiError> {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        prompt: &'a str,
        #[serde(flatten)]
        forwarded: std::collections::BTreeMap<&'a str, &'a Value>,
    }
    let forwarded = forward_fields
        .iter()
        .filter_map(|name| Some((name.as_str(), fields.get(name)?)))
        .collect();
    serde_json::to_vec(&Payload { prompt, forwarded })
        .map(Bytes::from)
        // Our own document failing to serialise is our bug, not the client's bad JSON.
        .map_err(|e| ApiError::Internal(format!("serialising the agent payload: {e}")))
}

/// A missing `Content-Type` is accepted (curl and many SDKs omit it); one that is present
/// must be JSON, since the body is parsed as JSON.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    if crate::media::is_json(text) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

fn missing_bearer() -> ApiError {
    ApiError::MissingToken("Authorization".to_owned())
}

fn bearer_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing_bearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing_bearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing_bearer());
    }
    Ok(token.to_owned())
}

/// Size, UTF-8 and JSON-object checks on the raw body.
pub fn parse_body(body: &[u8], max_bytes: usize) -> Result<Map<String, Value>, ApiError> {
    if body.len() > max_bytes {
        return Err(ApiError::BodyTooLarge {
            size: body.len(),
            limit: max_bytes,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::EmptyBody);
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::InvalidEncoding)?;
    // RFC 8259 lets a parser ignore a byte order mark, and some editors and .NET clients
    // write one: it is not the client's error.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str::<TopLevel>(text) {
        Ok(TopLevel::Object(map)) => Ok(map),
        Ok(TopLevel::Other(type_name)) => Err(ApiError::NotAnObject(type_name)),
        // The one data error the visitor raises (the key itself is not echoed).
        Err(e) if e.is_data() => Err(ApiError::InvalidJson(format!(
            "a key appears twice, line {} column {}",
            e.line(),
            e.column()
        ))),
        Err(e) => Err(ApiError::InvalidJson(format!(
            "line {} column {}",
            e.line(),
            e.column()
        ))),
    }
}

/// Whether a prompt has nothing to ask: only white space, control characters (NUL
/// included) or invisible format characters (zero-width spaces and joiners, word joiner,
/// byte order mark), which `str::trim` keeps.
fn is_blank(prompt: &str) -> bool {
    prompt.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{180e}'
            )
    })
}

/// The request body's top level: an object whose keys are all different, or the type of
/// whatever else it is. A duplicate key is invalid JSON here: parsers disagree on which
/// copy wins (the first, the last, an error), so a WAF rule, an authorizer or a log that
/// reads one `prompt` could see another than the agent receives.
enum TopLevel {
    Object(Map<String, Value>),
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopLevel;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<TopLevel, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(TopLevel::Object(map))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<TopLevel, A::Error> {
                // Read to its end (it must still be valid JSON), keeping nothing.
                while access.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TopLevel::Other("an array"))
            }

            fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("a string"))
            }

            fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("a boolean"))
            }

            fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("a number"))
            }

            fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("a number"))
            }

            fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("a number"))
            }

            fn visit_unit<E>(self) -> Result<TopLevel, E> {
                Ok(TopLevel::Other("null"))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

fn optional_string<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
    reason: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::InvalidField { field, reason }),
    }
}

/// `content_type` and `accept` are passed to AgentCore as headers, so they must be short,
/// visible ASCII and shaped like media types (`type/subtype`, lists allowed for accept).
fn media_type<'a>(
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    const REASON: &str = "must be a media type such as application/json, at most 256 characters";
    let Some(value) = optional_string(fields, field, REASON)? else {
        return Ok(None);
    };
    let ok = !value.is_empty()
        && value.len() <= MAX_MEDIA_TYPE_LEN
        && value.contains('/')
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && HeaderValue::from_str(value).is_ok();
    if ok {
        Ok(Some(value))
    } else {
        Err(ApiError::InvalidField {
            field,
            reason: REASON,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_prompt_the_payload_and_the_token() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret-token-value"),
        );
        let inv = parse_parts(
            &Method::POST,
            &h,
            br#"{"prompt": "the secret prompt"}"#,
            &config(&[("AGENTCORE_AUTH_MODE", "oauth")]),
        )
        .expect("valid");
        let printed = format!("{inv:?}");
        assert!(
            !printed.contains("secret prompt") && !printed.contains("secret-token"),
            "{printed}"
        );
        assert!(printed.contains("redacted"), "{printed}");
    }
    use std::collections::HashMap;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert(
            "AGENT_RUNTIME_ARN".into(),
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-1".into(),
        );
        map.insert("MAX_REQUEST_BYTES".into(), "1000".into());
        for (k, v) in extra {
            map.insert((*k).into(), (*v).into());
        }
        Config::from_lookup(|k| map.get(k).cloned()).expect("config")
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    fn parse(body: &str) -> Result<Invocation, ApiError> {
        parse_parts(
            &Method::POST,
            &json_headers(),
            body.as_bytes(),
            &config(&[]),
        )
    }

    #[test]
    fn a_minimal_request_gets_defaults_and_a_new_session() {
        let inv = parse(r#"{"prompt": "Hello"}"#).expect("valid");
        assert_eq!(inv.prompt, "Hello");
        assert!(inv.session_generated);
        assert!(inv.session_id.as_str().starts_with("session-"));
        assert_eq!(inv.content_type, DEFAULT_PAYLOAD_CONTENT_TYPE);
        assert_eq!(inv.accept, DEFAULT_ACCEPT);
        assert_eq!(&inv.payload[..], br#"{"prompt":"Hello"}"#);
        assert!(inv.bearer_token.is_none());
    }

    #[test]
    fn client_fields_are_used() {
        let sid = "conversation-0123456789-0123456789-abc";
        let body = format!(
            r#"{{"prompt":"Hi","session_id":"{sid}","content_type":"application/json","accept":"text/event-stream"}}"#
        );
        let inv = parse(&body).expect("valid");
        assert_eq!(inv.session_id.as_str(), sid);
        assert!(!inv.session_generated);
        assert_eq!(inv.accept, "text/event-stream");
    }

    #[test]
    fn session_header_is_a_fallback_for_the_field() {
        let mut h = json_headers();
        h.insert(
            SESSION_HEADER,
            HeaderValue::from_static("header-session-0123456789-0123456789"),
        );
        let inv =
            parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &config(&[])).expect("valid");
        assert_eq!(
            inv.session_id.as_str(),
            "header-session-0123456789-0123456789"
        );
        let err = parse_parts(
            &Method::POST,
            &h,
            br#"{"prompt":"x","session_id":"field-session-0123456789-0123456789"}"#,
            &config(&[]),
        )
        .expect_err("two different sessions");
        assert_eq!(err.code(), "invalid_session_id");
        let inv = parse_parts(
            &Method::POST,
            &h,
            br#"{"prompt":"x","session_id":"header-session-0123456789-0123456789"}"#,
            &config(&[]),
        )
        .expect("the same session twice");
        assert_eq!(
            inv.session_id.as_str(),
            "header-session-0123456789-0123456789"
        );
    }

    #[test]
    fn duplicate_keys_are_invalid_json_and_other_values_name_their_type() {
        for body in [
            r#"{"prompt": "a", "prompt": "b"}"#,
            r#"{"prompt": "a", "session_id": null, "session_id": null}"#,
        ] {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code(), "invalid_json", "{body}");
            assert!(err.to_string().contains("a key appears twice"), "{err}");
        }
        // Nested duplicates are the agent payload's business: re-serialised, one copy.
        assert!(parse(r#"{"prompt": "a", "x": {"k": 1, "k": 2}}"#).is_ok());
        for (body, kind) in [
            ("[1, [2]]", "an array"),
            ("\"s\"", "a string"),
            ("true", "a boolean"),
            ("-1", "a number"),
            ("1.5", "a number"),
            ("null", "null"),
        ] {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code(), "invalid_json", "{body}");
            assert!(err.to_string().contains(kind), "{body}: {err}");
        }
        assert_eq!(parse("[1,").expect_err("bad").code(), "invalid_json");
    }

    #[test]
    fn a_byte_order_mark_is_ignored_and_invisible_prompts_are_empty() {
        let inv = parse("\u{feff}{\"prompt\": \"Hello\"}").expect("a BOM is ignored");
        assert_eq!(inv.prompt, "Hello");
        for prompt in [
            "\u{200b}\u{200d}",
            "\u{0}\u{0}",
            "\u{1}\u{7f} \t",
            "\u{feff}",
        ] {
            let body = serde_json::json!({ "prompt": prompt }).to_string();
            assert_eq!(parse(&body).expect_err(prompt).code(), "empty_prompt");
        }
        assert!(parse(r#"{"prompt": "a\u0000b"}"#).is_ok());
    }

    #[test]
    fn only_allow_listed_extra_fields_reach_the_agent() {
        let c = config(&[("FORWARD_FIELDS", "demo,metadata")]);
        let inv = parse_parts(
            &Method::POST,
            &json_headers(),
            br#"{"prompt":"x","demo":{"tokens":3},"secret":"no","metadata":[1]}"#,
            &c,
        )
        .expect("valid");
        let payload: Value = serde_json::from_slice(&inv.payload).expect("json");
        assert_eq!(
            payload,
            serde_json::json!({"prompt":"x","demo":{"tokens":3},"metadata":[1]})
        );
    }

    #[test]
    fn oauth_mode_takes_the_callers_bearer_token() {
        let c = config(&[("AGENTCORE_AUTH_MODE", "oauth")]);
        let mut h = json_headers();
        let err = parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &c).expect_err("no token");
        assert_eq!((err.status().as_u16(), err.code()), (401, "missing_token"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        let inv = parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &c).expect("valid");
        assert_eq!(inv.bearer_token.as_deref(), Some("abc.def"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &c)
                .expect_err("basic")
                .code(),
            "missing_token"
        );
    }

    #[test]
    fn the_session_is_checked_before_the_prompt_is_sent() {
        let err = parse(r#"{"prompt":"x","session_id":"short"}"#).expect_err("short");
        assert_eq!(err.code(), "invalid_session_id");
    }

    /// Each bad input, with the status and code it must produce.
    #[test]
    fn bad_inputs_are_rejected_with_status_and_code() {
        let long_session = "s".repeat(257);
        let cases: Vec<(String, u16, &str)> = vec![
            ("".into(), 400, "empty_body"),
            ("   \n".into(), 400, "empty_body"),
            ("{".into(), 400, "invalid_json"),
            ("{\"prompt\": \"x\",}".into(), 400, "invalid_json"),
            ("prompt=hello".into(), 400, "invalid_json"),
            ("{'prompt': 'x'}".into(), 400, "invalid_json"),
            ("[]".into(), 400, "invalid_json"),
            ("\"just a string\"".into(), 400, "invalid_json"),
            ("42".into(), 400, "invalid_json"),
            ("null".into(), 400, "invalid_json"),
            ("{}".into(), 400, "missing_prompt"),
            ("{\"Prompt\": \"x\"}".into(), 400, "missing_prompt"),
            ("{\"prompt\": null}".into(), 400, "missing_prompt"),
            ("{\"prompt\": \"\"}".into(), 400, "empty_prompt"),
            ("{\"prompt\": \"  \\n\\t \"}".into(), 400, "empty_prompt"),
            ("{\"prompt\": 42}".into(), 400, "invalid_prompt"),
            ("{\"prompt\": true}".into(), 400, "invalid_prompt"),
            ("{\"prompt\": [\"a\"]}".into(), 400, "invalid_prompt"),
            ("{\"prompt\": {\"text\": \"a\"}}".into(), 400, "invalid_prompt"),
            ("{\"prompt\": \"x\", \"session_id\": 123}".into(), 400, "invalid_field"),
            ("{\"prompt\": \"x\", \"session_id\": \"too-short\"}".into(), 400, "invalid_session_id"),
            (format!("{{\"prompt\": \"x\", \"session_id\": \"{long_session}\"}}"), 400, "invalid_session_id"),
            ("{\"prompt\": \"x\", \"session_id\": \"has spaces in it which are not allowed here\"}".into(), 400, "invalid_session_id"),
            ("{\"prompt\": \"x\", \"content_type\": 5}".into(), 400, "invalid_field"),
            ("{\"prompt\": \"x\", \"content_type\": \"json\"}".into(), 400, "invalid_field"),
            ("{\"prompt\": \"x\", \"accept\": \"text/event-stream\\r\\nX-Evil: 1\"}".into(), 400, "invalid_field"),
            (format!("{{\"prompt\": \"x\", \"accept\": \"a/{}\"}}", "b".repeat(300)), 400, "invalid_field"),
            (format!("{{\"prompt\": \"{}\"}}", "x".repeat(2000)), 413, "body_too_large"),
        ];
        assert!(cases.len() >= 25);
        for (body, status, code) in cases {
            let err = parse(&body).expect_err(&body);
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "body {body:?}: {err}"
            );
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = parse_parts(
            &Method::POST,
            &json_headers(),
            b"{\"prompt\": \"\xff\xfe\"}",
            &config(&[]),
        )
        .expect_err("bad utf8");
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "invalid_encoding")
        );
    }

    #[test]
    fn wrong_method_and_content_type_are_rejected() {
        for m in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
            let err = parse_parts(&m, &json_headers(), br#"{"prompt":"x"}"#, &config(&[]))
                .expect_err("method");
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (405, "method_not_allowed")
            );
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            let err =
                parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &config(&[])).expect_err(ct);
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (415, "unsupported_media_type"),
                "{ct}"
            );
        }
        for ct in [
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "Application/JSON",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).expect("ct"));
            assert!(
                parse_parts(&Method::POST, &h, br#"{"prompt":"x"}"#, &config(&[])).is_ok(),
                "{ct}"
            );
        }
        assert!(parse_parts(
            &Method::POST,
            &HeaderMap::new(),
            br#"{"prompt":"x"}"#,
            &config(&[])
        )
        .is_ok());
    }

    #[test]
    fn error_messages_tell_the_caller_what_to_send() {
        let err = parse("{}").expect_err("missing");
        assert!(err.to_string().contains("\"prompt\""), "{err}");
        let body = err.to_json();
        assert_eq!(body["error"]["code"], "missing_prompt");
    }
}

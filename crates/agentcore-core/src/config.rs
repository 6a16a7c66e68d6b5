//! Handler configuration, read once from the environment at cold start.
//!
//! Every setting is validated here so that a bad deployment fails at init with a
//! message naming the variable, instead of failing (or panicking) on a request.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::headers::{custom_header_name, MAX_CUSTOM_HEADERS};
use crate::identity::{IdentitySource, SessionScope};
use crate::jwt::JwtSettings;

/// Default largest request body accepted from a client (1 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Hard ceiling for `MAX_REQUEST_BYTES`: Lambda's synchronous invoke payload limit (6 MB).
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// Default largest buffered answer (option 1), below Lambda's 6 MB response limit so
/// that the JSON envelope still fits.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 6_000_000;
/// Default time option 1 waits for a whole answer: just under API Gateway's 29 s
/// integration timeout, so the caller gets our 504 instead of API Gateway's.
pub const DEFAULT_RESPONSE_DEADLINE: Duration = Duration::from_millis(28_000);

/// How the function authenticates to AgentCore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// The function's IAM role signs each call with SigV4 through the AWS SDK.
    SigV4,
    /// The caller's `Authorization: Bearer` token is forwarded over plain HTTPS;
    /// for runtimes configured with a JWT (OAuth) inbound authorizer, where the SDK
    /// cannot be used.
    OAuth,
}

/// What the function does with an agent's own error event (the `bedrock-agentcore` SDK's
/// `data: {"error": ..., "error_type": ...}`; the rule is [`crate::sse::agent_error`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentErrorEvents {
    /// Replace it with the function's own `agent_error` (a final `event: error` when
    /// streaming, `502` when buffered); the log gets its class and a fingerprint of its text.
    #[default]
    Translate,
    /// Pass the agent's events to the client unchanged.
    PassThrough,
}

/// A parsed and validated AgentCore runtime ARN:
/// `arn:<partition>:bedrock-agentcore:<region>:<account>:runtime/<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeArn {
    arn: String,
    region: String,
    account: String,
    runtime_id: String,
}

impl RuntimeArn {
    /// Parses `arn`, explaining in the error what part is wrong.
    pub fn parse(arn: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::InvalidRuntimeArn {
            reason: why.to_owned(),
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(bad("it must have the form arn:<partition>:bedrock-agentcore:<region>:<account>:runtime/<id>"));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !partition.starts_with("aws") {
            return Err(bad("the partition must be aws, aws-cn or aws-us-gov"));
        }
        if service != "bedrock-agentcore" {
            return Err(bad(
                "the service must be bedrock-agentcore (is this an Amazon Bedrock Agents ARN?)",
            ));
        }
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("the region is missing or malformed"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account id must be 12 digits"));
        }
        let Some(runtime_id) = resource.strip_prefix("runtime/") else {
            return Err(bad(
                "the resource must be runtime/<id> (not an endpoint or other resource)",
            ));
        };
        if runtime_id.is_empty()
            || runtime_id.len() > 100
            || !runtime_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad("the runtime id must be letters, digits, '_' or '-'"));
        }
        Ok(Self {
            arn: arn.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            runtime_id: runtime_id.to_owned(),
        })
    }

    /// The full ARN, as configured.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The AWS region that hosts the runtime; the client always calls this region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The 12-digit account id that owns the runtime.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The runtime id (the part after `runtime/`).
    pub fn runtime_id(&self) -> &str {
        &self.runtime_id
    }
}

/// Upstream time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP and TLS connect to AgentCore.
    pub connect: Duration,
    /// From sending the request to receiving the first body chunk.
    pub first_byte: Duration,
    /// Longest gap between two body chunks.
    pub idle: Duration,
    /// Option 1 only: the whole answer must be collected within this time.
    pub response_deadline: Duration,
}

/// The whole handler configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The runtime every request is sent to.
    pub runtime_arn: RuntimeArn,
    /// The runtime endpoint name (`qualifier`); `None` lets AgentCore use `DEFAULT`.
    pub qualifier: Option<String>,
    /// How the function authenticates to AgentCore.
    pub auth_mode: AuthMode,
    /// Largest accepted request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest buffered answer (option 1), in bytes.
    pub max_response_bytes: usize,
    /// Upstream time limits.
    pub timeouts: Timeouts,
    /// Attempts per request before giving up. Only failures that provably never reached
    /// the agent are retried (see [`crate::error::UpstreamError::retry_safe`]).
    pub max_attempts: u32,
    /// What to do with the agent's own error events.
    pub agent_error_events: AgentErrorEvents,
    /// Extra top-level request fields copied into the agent payload besides `prompt`.
    pub forward_fields: Vec<String>,
    /// Client headers forwarded to the agent: (client header, AgentCore custom header).
    pub forward_headers: Vec<(HeaderName, HeaderName)>,
    /// The origin echoed in `Access-Control-Allow-Origin`; `None` sends no CORS header.
    pub cors_allow_origin: Option<HeaderValue>,
    /// Endpoint override (`AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`, then `AWS_ENDPOINT_URL`),
    /// used by OAuth mode; the SDK reads the same variables itself in SigV4 mode.
    pub endpoint_url: Option<String>,
    /// Where the caller's identity comes from (`CALLER_IDENTITY`).
    pub identity: IdentitySource,
    /// Whose sessions a session id names (`SESSION_SCOPE`).
    pub session_scope: SessionScope,
    /// The JWT checks, when `identity` is [`IdentitySource::Jwt`].
    pub jwt: Option<JwtSettings>,
    /// Send the caller's id to AgentCore as `runtimeUserId` (`RUNTIME_USER_ID`).
    pub runtime_user_id: bool,
    /// Claims sent to the agent as custom headers (`FORWARD_CLAIMS`).
    pub forward_claims: Vec<String>,
    /// CloudWatch namespace of the request metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// A setting that is missing or malformed. The message names the variable and says
/// how to fix it; it is meant for the operator's logs, never for API clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `AGENT_RUNTIME_ARN` is not set.
    #[error("AGENT_RUNTIME_ARN is not set: set it to your AgentCore runtime ARN (arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>)")]
    MissingRuntimeArn,
    /// `AGENT_RUNTIME_ARN` does not parse.
    #[error("AGENT_RUNTIME_ARN is not a valid AgentCore runtime ARN: {reason}")]
    InvalidRuntimeArn {
        /// What is wrong with it.
        reason: String,
    },
    /// A variable has a value that cannot be used.
    #[error("{name} has an invalid value {value:?}: {expected}")]
    InvalidValue {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The HTTPS client for OAuth mode could not be built (TLS initialisation failed).
    #[error("the HTTPS client could not be initialised: {reason}")]
    ClientInit {
        /// The cause.
        reason: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let runtime_arn =
            RuntimeArn::parse(&get("AGENT_RUNTIME_ARN").ok_or(ConfigError::MissingRuntimeArn)?)?;

        let qualifier = get("AGENT_QUALIFIER");
        if let Some(q) = &qualifier {
            if q.len() > 64
                || !q
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    "AGENT_QUALIFIER",
                    q,
                    "an endpoint name of letters, digits, '_' or '-' (at most 64)",
                ));
            }
        }

        let auth_mode = match get("AGENTCORE_AUTH_MODE")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("sigv4") | Some("iam") => AuthMode::SigV4,
            Some("oauth") | Some("jwt") | Some("bearer") => AuthMode::OAuth,
            Some(other) => return Err(invalid("AGENTCORE_AUTH_MODE", other, "sigv4 or oauth")),
        };

        let max_request_bytes = parse_num(&get, "MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)?;
        if max_request_bytes == 0 || max_request_bytes > LAMBDA_PAYLOAD_LIMIT {
            return Err(invalid(
                "MAX_REQUEST_BYTES",
                &max_request_bytes.to_string(),
                "a byte count between 1 and 6291456 (Lambda's payload limit)",
            ));
        }
        let max_response_bytes = parse_num(&get, "MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)?;
        if max_response_bytes == 0 || max_response_bytes > LAMBDA_PAYLOAD_LIMIT {
            return Err(invalid(
                "MAX_RESPONSE_BYTES",
                &max_response_bytes.to_string(),
                "a byte count between 1 and 6291456 (Lambda's response limit)",
            ));
        }

        let timeouts = Timeouts {
            connect: parse_millis(&get, "UPSTREAM_CONNECT_TIMEOUT_MS", 3_000)?,
            first_byte: parse_millis(&get, "UPSTREAM_FIRST_BYTE_TIMEOUT_MS", 60_000)?,
            idle: parse_millis(&get, "UPSTREAM_IDLE_TIMEOUT_MS", 120_000)?,
            response_deadline: parse_millis(
                &get,
                "RESPONSE_DEADLINE_MS",
                DEFAULT_RESPONSE_DEADLINE.as_millis() as u64,
            )?,
        };

        let max_attempts: u32 = parse_num(&get, "AGENTCORE_MAX_ATTEMPTS", 2)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(invalid(
                "AGENTCORE_MAX_ATTEMPTS",
                &max_attempts.to_string(),
                "a number from 1 to 10",
            ));
        }

        let agent_error_events = match get("AGENT_ERROR_EVENTS")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("translate") => AgentErrorEvents::Translate,
            Some("pass_through") | Some("passthrough") => AgentErrorEvents::PassThrough,
            Some(other) => {
                return Err(invalid(
                    "AGENT_ERROR_EVENTS",
                    other,
                    "translate (default) or pass_through",
                ))
            }
        };

        let forward_fields = split_list(get("FORWARD_FIELDS"));
        for field in &forward_fields {
            if matches!(
                field.as_str(),
                "prompt" | "session_id" | "content_type" | "accept"
            ) {
                return Err(invalid("FORWARD_FIELDS", field, "extra field names only: prompt, session_id, content_type and accept are handled already"));
            }
        }

        let mut forward_headers = Vec::new();
        for name in split_list(get("FORWARD_HEADERS")) {
            let client = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                invalid(
                    "FORWARD_HEADERS",
                    &name,
                    "a comma-separated list of HTTP header names",
                )
            })?;
            let custom = custom_header_name(&name).ok_or_else(|| {
                invalid(
                    "FORWARD_HEADERS",
                    &name,
                    "a comma-separated list of HTTP header names",
                )
            })?;
            forward_headers.push((client, custom));
        }
        if forward_headers.len() > MAX_CUSTOM_HEADERS {
            return Err(invalid(
                "FORWARD_HEADERS",
                &forward_headers.len().to_string(),
                "at most 20 headers (AgentCore's limit for custom headers)",
            ));
        }

        let cors_allow_origin = match get("CORS_ALLOW_ORIGIN") {
            None => None,
            Some(origin) => Some(HeaderValue::from_str(&origin).map_err(|_| {
                invalid(
                    "CORS_ALLOW_ORIGIN",
                    &origin,
                    "one origin such as https://app.example.com",
                )
            })?),
        };

        let endpoint_url =
            get("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE").or_else(|| get("AWS_ENDPOINT_URL"));

        let identity = match get("CALLER_IDENTITY")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("anonymous") => IdentitySource::Anonymous,
            Some("iam") => IdentitySource::Iam,
            Some("authorizer") => IdentitySource::Authorizer,
            Some("jwt") => IdentitySource::Jwt,
            Some(other) => {
                return Err(invalid(
                    "CALLER_IDENTITY",
                    other,
                    "anonymous, iam, authorizer or jwt",
                ))
            }
        };
        let session_scope = match get("SESSION_SCOPE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("caller") => SessionScope::Caller,
            Some("shared") => SessionScope::Shared,
            Some(other) => return Err(invalid("SESSION_SCOPE", other, "caller or shared")),
        };
        let jwt = if identity == IdentitySource::Jwt {
            Some(jwt_settings(&get)?)
        } else {
            None
        };
        let runtime_user_id = match get("RUNTIME_USER_ID")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(invalid("RUNTIME_USER_ID", other, "true or false")),
        };
        let forward_claims = split_list(get("FORWARD_CLAIMS"));
        for claim in &forward_claims {
            if crate::identity::claim_header_name(claim).is_none() {
                return Err(invalid(
                    "FORWARD_CLAIMS",
                    claim,
                    "a comma-separated list of claim names",
                ));
            }
        }
        if forward_headers.len() + forward_claims.len() > MAX_CUSTOM_HEADERS {
            return Err(invalid(
                "FORWARD_CLAIMS",
                &forward_claims.join(","),
                "at most 20 custom headers with FORWARD_HEADERS (AgentCore's limit)",
            ));
        }

        Ok(Self {
            runtime_arn,
            qualifier,
            auth_mode,
            max_request_bytes,
            max_response_bytes,
            timeouts,
            max_attempts,
            agent_error_events,
            forward_fields,
            forward_headers,
            cors_allow_origin,
            endpoint_url,
            identity,
            session_scope,
            jwt,
            runtime_user_id,
            forward_claims,
            metrics_namespace: get("METRICS_NAMESPACE")
                .unwrap_or_else(|| crate::access::DEFAULT_METRICS_NAMESPACE.to_owned()),
        })
    }
}

/// The `JWT_*` settings; `JWT_ISSUER` and `JWT_AUDIENCE` are required.
fn jwt_settings(get: &impl Fn(&str) -> Option<String>) -> Result<JwtSettings, ConfigError> {
    let issuer = get("JWT_ISSUER").ok_or_else(|| {
        invalid(
            "JWT_ISSUER",
            "",
            "the token issuer's URL (required with CALLER_IDENTITY=jwt)",
        )
    })?;
    if !(issuer.starts_with("https://") || issuer.starts_with("http://127.0.0.1")) {
        return Err(invalid(
            "JWT_ISSUER",
            &issuer,
            "an https:// URL (http only on 127.0.0.1, for the local issuer)",
        ));
    }
    let audiences = split_list(get("JWT_AUDIENCE"));
    if audiences.is_empty() {
        return Err(invalid(
            "JWT_AUDIENCE",
            "",
            "the accepted audiences or app client ids (required with CALLER_IDENTITY=jwt)",
        ));
    }
    let token_use = match get("JWT_TOKEN_USE").map(|v| v.to_ascii_lowercase()) {
        None => None,
        Some(v) if v == "id" || v == "access" => Some(v),
        Some(other) => return Err(invalid("JWT_TOKEN_USE", &other, "id, access, or unset")),
    };
    let required_scopes = get("JWT_REQUIRED_SCOPES")
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut headers = Vec::new();
    for name in split_list(Some(
        get("JWT_HEADER").unwrap_or_else(|| "authorization".to_owned()),
    )) {
        headers.push(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("JWT_HEADER", &name, "HTTP header names, comma-separated"))?,
        );
    }
    Ok(JwtSettings {
        issuer: issuer.trim_end_matches('/').to_owned(),
        audiences,
        token_use,
        required_scopes,
        headers,
        jwks_url: get("JWT_JWKS_URL"),
        leeway_seconds: parse_num(get, "JWT_LEEWAY_SECONDS", 60)?,
    })
}

fn invalid(name: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        name,
        value: value.to_owned(),
        expected,
    }
}

fn parse_num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| invalid(name, &v, "a whole number")),
    }
}

fn parse_millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default_ms: u64,
) -> Result<Duration, ConfigError> {
    let ms: u64 = parse_num(get, name, default_ms)?;
    if ms == 0 || ms > 15 * 60 * 1000 {
        return Err(invalid(
            name,
            &ms.to_string(),
            "milliseconds between 1 and 900000 (Lambda's 15 minute limit)",
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn split_list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/my_agent-abc123";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_with_only_the_arn() {
        let c = config(&[("AGENT_RUNTIME_ARN", ARN)]).expect("valid");
        assert_eq!(c.runtime_arn.region(), "us-east-1");
        assert_eq!(c.runtime_arn.account(), "123456789012");
        assert_eq!(c.runtime_arn.runtime_id(), "my_agent-abc123");
        assert_eq!(c.auth_mode, AuthMode::SigV4);
        assert_eq!(c.qualifier, None);
        assert_eq!(c.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(c.timeouts.response_deadline, DEFAULT_RESPONSE_DEADLINE);
        assert_eq!(c.max_attempts, 2);
        assert_eq!(c.agent_error_events, AgentErrorEvents::Translate);
        assert!(c.forward_fields.is_empty() && c.forward_headers.is_empty());
        assert!(c.cors_allow_origin.is_none());
    }

    #[test]
    fn missing_arn_is_a_clear_error() {
        let err = config(&[]).expect_err("must fail");
        assert_eq!(err, ConfigError::MissingRuntimeArn);
        assert!(err.to_string().contains("AGENT_RUNTIME_ARN is not set"));
        assert_eq!(
            config(&[("AGENT_RUNTIME_ARN", "  ")]).expect_err("blank"),
            ConfigError::MissingRuntimeArn
        );
    }

    #[test]
    fn malformed_arns_are_rejected_with_a_reason() {
        for (arn, hint) in [
            ("not-an-arn", "form"),
            (
                "arn:aws:bedrock:us-east-1:123456789012:agent/ABC",
                "bedrock-agentcore",
            ),
            (
                "arn:aws:bedrock-agentcore:us-east-1:1234:runtime/x",
                "12 digits",
            ),
            (
                "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/",
                "runtime id",
            ),
            (
                "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a b",
                "runtime id",
            ),
            (
                "arn:aws:bedrock-agentcore:us-east-1:123456789012:endpoint/x",
                "runtime/<id>",
            ),
            (
                "arn:aws:bedrock-agentcore::123456789012:runtime/x",
                "region",
            ),
            (
                "arn:foo:bedrock-agentcore:us-east-1:123456789012:runtime/x",
                "partition",
            ),
        ] {
            let err = config(&[("AGENT_RUNTIME_ARN", arn)]).expect_err(arn);
            assert!(
                matches!(err, ConfigError::InvalidRuntimeArn { .. }),
                "{arn}"
            );
            assert!(err.to_string().contains(hint), "{arn}: {err}");
        }
    }

    #[test]
    fn other_partitions_parse() {
        let c = config(&[(
            "AGENT_RUNTIME_ARN",
            "arn:aws-us-gov:bedrock-agentcore:us-gov-west-1:123456789012:runtime/x",
        )])
        .expect("gov cloud ARN");
        assert_eq!(c.runtime_arn.region(), "us-gov-west-1");
    }

    #[test]
    fn all_settings_are_read() {
        let c = config(&[
            ("AGENT_RUNTIME_ARN", ARN),
            ("AGENT_QUALIFIER", "prod"),
            ("AGENTCORE_AUTH_MODE", "OAuth"),
            ("MAX_REQUEST_BYTES", "2048"),
            ("MAX_RESPONSE_BYTES", "4096"),
            ("UPSTREAM_CONNECT_TIMEOUT_MS", "100"),
            ("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "200"),
            ("UPSTREAM_IDLE_TIMEOUT_MS", "300"),
            ("RESPONSE_DEADLINE_MS", "400"),
            ("AGENTCORE_MAX_ATTEMPTS", "1"),
            ("AGENT_ERROR_EVENTS", "pass_through"),
            ("FORWARD_FIELDS", "demo, metadata"),
            (
                "FORWARD_HEADERS",
                "X-Tenant-Id,x-amzn-bedrock-agentcore-runtime-custom-locale",
            ),
            ("CORS_ALLOW_ORIGIN", "https://app.example.com"),
            (
                "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE",
                "http://127.0.0.1:8787",
            ),
        ])
        .expect("valid");
        assert_eq!(c.qualifier.as_deref(), Some("prod"));
        assert_eq!(c.auth_mode, AuthMode::OAuth);
        assert_eq!((c.max_request_bytes, c.max_response_bytes), (2048, 4096));
        assert_eq!(c.timeouts.connect, Duration::from_millis(100));
        assert_eq!(c.timeouts.first_byte, Duration::from_millis(200));
        assert_eq!(c.timeouts.idle, Duration::from_millis(300));
        assert_eq!(c.timeouts.response_deadline, Duration::from_millis(400));
        assert_eq!(c.max_attempts, 1);
        assert_eq!(c.agent_error_events, AgentErrorEvents::PassThrough);
        assert_eq!(c.forward_fields, vec!["demo", "metadata"]);
        assert_eq!(c.forward_headers[0].0.as_str(), "x-tenant-id");
        assert_eq!(
            c.forward_headers[0].1.as_str(),
            "x-amzn-bedrock-agentcore-runtime-custom-x-tenant-id"
        );
        assert_eq!(
            c.forward_headers[1].1.as_str(),
            "x-amzn-bedrock-agentcore-runtime-custom-locale"
        );
        assert_eq!(
            c.cors_allow_origin.as_ref().map(|v| v.as_bytes()),
            Some(&b"https://app.example.com"[..])
        );
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:8787"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("AGENTCORE_AUTH_MODE", "kerberos"),
            ("MAX_REQUEST_BYTES", "lots"),
            ("MAX_REQUEST_BYTES", "0"),
            ("MAX_REQUEST_BYTES", "7000000"),
            ("MAX_RESPONSE_BYTES", "9000000"),
            ("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "0"),
            ("UPSTREAM_IDLE_TIMEOUT_MS", "-5"),
            ("RESPONSE_DEADLINE_MS", "1000000"),
            ("AGENTCORE_MAX_ATTEMPTS", "0"),
            ("AGENT_ERROR_EVENTS", "hide"),
            ("AGENT_QUALIFIER", "bad qualifier"),
            ("FORWARD_FIELDS", "prompt"),
            ("FORWARD_HEADERS", "bad header"),
            ("CORS_ALLOW_ORIGIN", "https://a\nb"),
        ] {
            let err = config(&[("AGENT_RUNTIME_ARN", ARN), (name, value)]).expect_err(name);
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn more_than_twenty_forwarded_headers_is_refused() {
        let names: Vec<String> = (0..21).map(|i| format!("x-h{i}")).collect();
        let joined = names.join(",");
        let err = config(&[("AGENT_RUNTIME_ARN", ARN), ("FORWARD_HEADERS", &joined)])
            .expect_err("21 headers");
        assert!(err.to_string().contains("at most 20"));
        let ok: Vec<String> = (0..20).map(|i| format!("x-h{i}")).collect();
        assert!(config(&[
            ("AGENT_RUNTIME_ARN", ARN),
            ("FORWARD_HEADERS", &ok.join(","))
        ])
        .is_ok());
    }
}

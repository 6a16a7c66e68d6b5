//! Who is calling: one [`Caller`] per request, whatever the front door, and the AgentCore
//! session each caller owns.
//!
//! The operator picks where identity comes from with `CALLER_IDENTITY` ([`IdentitySource`]):
//!
//! - `anonymous`: nobody is identified; every caller shares one session namespace.
//! - `iam`: the IAM principal that signed the request: a Function URL with `AWS_IAM`
//!   (`requestContext.authorizer.iam`) or API Gateway IAM auth (`requestContext.identity`).
//! - `authorizer`: an API Gateway authorizer's output: a Cognito user pool authorizer's
//!   claims (`requestContext.authorizer.claims`) or a Lambda authorizer's `principalId`.
//! - `jwt`: a JWT the function verifies itself ([`crate::jwt`]).
//!
//! A session belongs to its caller: the `runtimeSessionId` sent to AgentCore is derived from
//! the caller and the client's session id ([`Caller::runtime_session_id`]), so a caller who
//! sends another caller's id lands in a session of their own. The client keeps seeing and
//! sending its own id.

use http::{HeaderName, HeaderValue};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::headers::CUSTOM_HEADER_PREFIX;
use crate::session::SessionId;

/// Where the caller's identity comes from (`CALLER_IDENTITY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdentitySource {
    /// No identity: one shared session namespace.
    #[default]
    Anonymous,
    /// The IAM principal of a signed request.
    Iam,
    /// An API Gateway authorizer (Cognito user pool claims or a Lambda authorizer).
    Authorizer,
    /// A JWT verified by the function.
    Jwt,
}

/// Whose sessions a session id names (`SESSION_SCOPE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionScope {
    /// Each caller's ids name that caller's sessions only.
    #[default]
    Caller,
    /// All callers share one namespace (for one trusted principal serving its own users).
    Shared,
}

/// The authenticated caller of one request.
#[derive(Clone, PartialEq)]
pub struct Caller {
    /// How the caller was identified.
    pub source: IdentitySource,
    /// The caller's stable id: the IAM principal's ARN, the claims' `sub`, a Lambda
    /// authorizer's `principalId`, or `anonymous`.
    pub id: String,
    /// The token issuer, when the identity comes from one (claims' `iss`).
    pub issuer: Option<String>,
    /// The verified claims (JWT or Cognito authorizer), for `FORWARD_CLAIMS`.
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for Caller {
    /// Claims are left out: they may hold personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("source", &self.source)
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// The caller of an `anonymous` deployment.
    pub fn anonymous() -> Self {
        Self {
            source: IdentitySource::Anonymous,
            id: "anonymous".to_owned(),
            issuer: None,
            claims: Map::new(),
        }
    }

    /// A caller identified by verified claims (`sub` is the id).
    pub fn from_claims(
        source: IdentitySource,
        claims: Map<String, Value>,
    ) -> Result<Self, ApiError> {
        let id = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::InvalidToken)?
            .to_owned();
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            source,
            id,
            issuer,
            claims,
        })
    }

    /// The `runtimeSessionId` for the client's session id `client`: the client's id itself
    /// where sessions are shared (anonymous, or `SESSION_SCOPE=shared`), otherwise
    /// `u-` and the SHA-256 of the caller's namespace and the client's id (66 characters,
    /// within AgentCore's 33 to 256).
    pub fn runtime_session_id(&self, scope: SessionScope, client: &SessionId) -> SessionId {
        if self.source == IdentitySource::Anonymous || scope == SessionScope::Shared {
            return client.clone();
        }
        let mut hash = Sha256::new();
        for part in [
            source_name(self.source),
            self.issuer.as_deref().unwrap_or(""),
            &self.id,
            client.as_str(),
        ] {
            // Length-prefixed, so that no two different tuples hash the same bytes.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        SessionId::derived(format!("u-{}", hex::encode(hash.finalize())))
    }

    /// The allow-listed claims as AgentCore custom headers
    /// (`X-Amzn-Bedrock-AgentCore-Runtime-Custom-Claim-<name>`). A list becomes its items
    /// joined by `,`; a value that is not visible ASCII is percent-encoded; one over
    /// AgentCore's 4 KB header limit is left out (and logged).
    pub fn claim_headers(&self, names: &[String]) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        for name in names {
            let Some(value) = self.claims.get(name) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let text = claim_text(value);
            let encoded: String =
                percent_encoding::utf8_percent_encode(&text, NOT_VISIBLE_ASCII).collect();
            if encoded.len() > crate::headers::MAX_CUSTOM_HEADER_BYTES {
                tracing::warn!(claim = %name, bytes = encoded.len(), "claim too large for a header; not forwarded");
                continue;
            }
            let (Some(header), Ok(value)) =
                (claim_header_name(name), HeaderValue::from_str(&encoded))
            else {
                continue;
            };
            out.push((header, value));
        }
        out
    }
}

/// A claim's value as text: a string as it is, a list as its items joined by `,`, anything
/// else as JSON (the form API Gateway gives an authorizer's claims in).
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Everything but visible ASCII (and `%`, which starts an escape) is percent-encoded.
const NOT_VISIBLE_ASCII: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'%').add(b' ');

/// `X-Amzn-Bedrock-AgentCore-Runtime-Custom-Claim-<name>`, the claim name lower-cased with
/// every character outside `a-z 0-9 -` replaced by `-` (`cognito:groups` becomes
/// `claim-cognito-groups`).
pub fn claim_header_name(claim: &str) -> Option<HeaderName> {
    let cleaned: String = claim
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    HeaderName::from_bytes(format!("{CUSTOM_HEADER_PREFIX}claim-{cleaned}").as_bytes()).ok()
}

fn source_name(source: IdentitySource) -> &'static str {
    match source {
        IdentitySource::Anonymous => "anonymous",
        IdentitySource::Iam => "iam",
        IdentitySource::Authorizer => "authorizer",
        IdentitySource::Jwt => "jwt",
    }
}

/// The IAM principal that signed the request (Function URL `AWS_IAM`, or API Gateway IAM
/// auth); `None` when the request carries none.
pub fn iam_caller(req: &Request) -> Option<Caller> {
    let (arn, id) = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            let iam = ctx.authorizer.as_ref()?.iam.as_ref()?;
            (
                iam.user_arn.clone(),
                iam.caller_id.clone().or(iam.user_id.clone()),
            )
        }
        RequestContext::ApiGatewayV1(ctx) => (
            ctx.identity.user_arn.clone(),
            ctx.identity.caller.clone().or(ctx.identity.user.clone()),
        ),
        _ => return None,
    };
    let id = arn.or(id).filter(|s| !s.is_empty())?;
    Some(Caller {
        source: IdentitySource::Iam,
        id,
        issuer: None,
        claims: Map::new(),
    })
}

/// The identity an API Gateway REST authorizer put in the event: a Cognito user pool
/// authorizer's `claims` (with their `sub`), or a Lambda authorizer's `principalId`.
pub fn authorizer_caller(req: &Request) -> Option<Caller> {
    let RequestContext::ApiGatewayV1(ctx) = req.request_context_ref()? else {
        return None;
    };
    let fields = &ctx.authorizer.fields;
    if let Some(Value::Object(claims)) = fields.get("claims") {
        return Caller::from_claims(IdentitySource::Authorizer, claims.clone()).ok();
    }
    let principal = fields.get("principalId")?.as_str()?.to_owned();
    if principal.is_empty() {
        return None;
    }
    // A Lambda authorizer's context values travel next to principalId.
    let claims: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| *k != "principalId" && *k != "integrationLatency")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Caller {
        source: IdentitySource::Authorizer,
        id: principal,
        issuer: None,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    fn jwt_caller(sub: &str) -> Caller {
        Caller::from_claims(
            IdentitySource::Jwt,
            claims(json!({"sub": sub, "iss": "https://issuer.example"})),
        )
        .expect("caller")
    }

    #[test]
    fn each_caller_owns_the_sessions_its_ids_name() {
        let client = SessionId::parse("session-00000000-0000-4000-8000-000000000001").expect("id");
        let alice = jwt_caller("alice").runtime_session_id(SessionScope::Caller, &client);
        let bob = jwt_caller("bob").runtime_session_id(SessionScope::Caller, &client);
        assert_ne!(alice, bob);
        assert_eq!(
            alice,
            jwt_caller("alice").runtime_session_id(SessionScope::Caller, &client)
        );
        assert!(alice.as_str().len() >= 33 && SessionId::parse(alice.as_str()).is_ok());
        // Shared scopes and anonymous callers use the client's id as it is.
        assert_eq!(
            jwt_caller("bob").runtime_session_id(SessionScope::Shared, &client),
            client
        );
        assert_eq!(
            Caller::anonymous().runtime_session_id(SessionScope::Caller, &client),
            client
        );
    }

    /// A lambda_http request from a raw event, as the runtime builds it.
    fn event(doc: Value) -> Request {
        lambda_http::request::from_str(&doc.to_string()).expect("an event lambda_http reads")
    }

    fn v1(request_context: Value) -> Request {
        event(json!({
            "resource": "/invoke", "path": "/invoke", "httpMethod": "POST", "headers": {},
            "multiValueHeaders": {}, "body": "{}", "isBase64Encoded": false,
            "requestContext": request_context,
        }))
    }

    #[test]
    fn the_iam_principal_of_a_function_url_and_of_api_gateway() {
        let url = event(json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {}, "body": "{}", "isBase64Encoded": false,
            "requestContext": {
                "accountId": "123456789012", "apiId": "x", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0,
                "authorizer": {"iam": {
                    "accessKey": "AKIA", "accountId": "123456789012", "callerId": "AROA:app",
                    "userArn": "arn:aws:sts::123456789012:assumed-role/app/app", "userId": "AROA:app"
                }}
            }
        }));
        let caller = iam_caller(&url).expect("an IAM caller");
        assert_eq!(caller.id, "arn:aws:sts::123456789012:assumed-role/app/app");
        let rest = v1(
            json!({"httpMethod": "POST", "identity": {"userArn": "arn:aws:iam::123456789012:user/u"}}),
        );
        assert_eq!(
            iam_caller(&rest).map(|c| c.id).as_deref(),
            Some("arn:aws:iam::123456789012:user/u")
        );
        assert!(iam_caller(&v1(json!({"httpMethod": "POST", "identity": {}}))).is_none());
    }

    #[test]
    fn a_cognito_authorizers_claims_and_a_lambda_authorizers_principal() {
        let cognito = v1(json!({"httpMethod": "POST", "authorizer": {"claims": {
            "sub": "u-1", "iss": "https://cognito-idp.us-east-1.amazonaws.com/pool", "email": "a@b.c"
        }}}));
        let caller = authorizer_caller(&cognito).expect("a caller");
        assert_eq!(
            (caller.id.as_str(), caller.source),
            ("u-1", IdentitySource::Authorizer)
        );
        assert_eq!(caller.claims["email"], "a@b.c");
        let lambda = v1(
            json!({"httpMethod": "POST", "authorizer": {"principalId": "tenant-7|user-3", "tenant": "7"}}),
        );
        let caller = authorizer_caller(&lambda).expect("a caller");
        assert_eq!(caller.id, "tenant-7|user-3");
        assert_eq!(caller.claims["tenant"], "7");
        assert!(authorizer_caller(&v1(json!({"httpMethod": "POST"}))).is_none());
        let no_sub =
            v1(json!({"httpMethod": "POST", "authorizer": {"claims": {"email": "a@b.c"}}}));
        assert!(authorizer_caller(&no_sub).is_none());
    }

    #[test]
    fn claims_without_sub_are_refused() {
        assert!(Caller::from_claims(IdentitySource::Jwt, claims(json!({"iss": "x"}))).is_err());
        assert!(Caller::from_claims(IdentitySource::Jwt, claims(json!({"sub": ""}))).is_err());
    }

    #[test]
    fn claims_become_custom_headers() {
        let caller = Caller::from_claims(
            IdentitySource::Jwt,
            claims(json!({
                "sub": "u1", "email": "zoë@example.com", "cognito:groups": ["admins", "staff"],
                "custom:tenant": "t-42", "big": "x".repeat(5000),
            })),
        )
        .expect("caller");
        let names: Vec<String> = ["email", "cognito:groups", "custom:tenant", "missing", "big"]
            .map(str::to_owned)
            .to_vec();
        let headers: Vec<(String, String)> = caller
            .claim_headers(&names)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let prefix = CUSTOM_HEADER_PREFIX;
        assert_eq!(
            headers,
            [
                (
                    format!("{prefix}claim-email"),
                    "zo%C3%AB@example.com".to_owned()
                ),
                (
                    format!("{prefix}claim-cognito-groups"),
                    "admins,staff".to_owned()
                ),
                (format!("{prefix}claim-custom-tenant"), "t-42".to_owned()),
            ]
        );
    }
}

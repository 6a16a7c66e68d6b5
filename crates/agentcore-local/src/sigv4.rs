//! SigV4 (`AWS4-HMAC-SHA256`) verification of incoming requests.
//!
//! Why this is written with `hmac`/`sha2` rather than `aws-sigv4`: `aws-sigv4` is a
//! *signer*. It decides by its own rules which headers to sign (it skips `user-agent`,
//! `x-amzn-trace-id`..., adds `host` and `x-amz-date` itself from its own clock and URI).
//! A verifier must instead recompute the signature over exactly the `SignedHeaders` the
//! client listed, with the client's `X-Amz-Date`, and compare in constant time. The
//! canonicalisation below follows the SigV4 specification as the AWS SDKs implement it
//! (non-S3: the canonical URI is the already percent-encoded request path, normalised and
//! encoded once more). The unit tests cross-check it against `aws-sigv4`, and the
//! integration tests against the real `aws-sdk-bedrockagentcore` client.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::error::{ApiError, ErrorType};

/// The SigV4 service name of the AgentCore data plane.
pub const SERVICE_NAME: &str = "bedrock-agentcore";

/// The only SigV4 algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

const AMZ_DATE_FORMAT: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`) is encoded: this is the set
/// smithy-rs uses for query strings (`aws_smithy_http::query::fmt_string`).
const QUERY_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b':')
    .add(b',')
    .add(b'?')
    .add(b'#')
    .add(b'[')
    .add(b']')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'@')
    .add(b'!')
    .add(b'$')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'^')
    .add(b'`')
    .add(b'\\');

/// The same set without `/`: the "greedy label" set used to re-encode paths.
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// What a request must be signed with.
#[derive(Clone, Debug)]
pub struct Verifier {
    /// The only accepted access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The region the credential scope must name.
    pub region: String,
    /// The service the credential scope must name (normally [`SERVICE_NAME`]).
    pub service: String,
    /// Largest accepted difference between `X-Amz-Date` and the server clock.
    pub max_clock_skew: Duration,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// Access key id from the credential scope.
    pub access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub date: String,
    /// Region from the credential scope.
    pub region: String,
    /// Service from the credential scope.
    pub service: String,
    /// Last element of the credential scope (must be `aws4_request`).
    pub terminator: String,
    /// Lower-case header names, in the client's order.
    pub signed_headers: Vec<String>,
    /// Hex signature as sent.
    pub signature: String,
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorType::IncompleteSignatureException, message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorType::InvalidSignatureException, message)
}

/// Parses an `Authorization` header value of the SigV4 form.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader, ApiError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires the '{ALGORITHM}' algorithm."
            ))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some((key, val)) = part.split_once('=') {
            match key.trim() {
                "Credential" => credential = Some(val.trim()),
                "SignedHeaders" => signed_headers = Some(val.trim()),
                "Signature" => signature = Some(val.trim()),
                _ => {}
            }
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed_headers.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(missing.join(" ")));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(format!(
            "Credential should be of the form ACCESS_KEY/DATE/REGION/SERVICE/aws4_request, got '{credential}'."
        )));
    };
    Ok(AuthorizationHeader {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        terminator: (*terminator).to_owned(),
        signed_headers: signed_headers
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: signature.to_owned(),
    })
}

/// Formats a time as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(AMZ_DATE_FORMAT)
        .unwrap_or_default()
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    PrimitiveDateTime::parse(s, AMZ_DATE_FORMAT)
        .ok()
        .map(|t| SystemTime::from(t.assume_utc()))
}

fn describe_skew(d: Duration) -> String {
    let secs = d.as_secs();
    if secs % 60 == 0 {
        format!("{} min.", secs / 60)
    } else {
        format!("{secs} s")
    }
}

impl Verifier {
    /// Verifies a SigV4-signed request, given the body exactly as received.
    ///
    /// `now` is the server clock (a parameter so tests can move it).
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let Some(authorization) = headers.get(http::header::AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorType::MissingAuthenticationTokenException,
                "Missing Authentication Token",
            ));
        };
        let authorization = authorization
            .to_str()
            .map_err(|_| incomplete("The Authorization header is not valid ASCII."))?;
        let auth = parse_authorization(authorization)?;

        if auth.access_key_id != self.access_key_id {
            return Err(ApiError::new(
                ErrorType::UnrecognizedClientException,
                "The security token included in the request is invalid.",
            ));
        }
        if auth.terminator != "aws4_request" {
            return Err(invalid(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                auth.terminator
            )));
        }
        if auth.region != self.region {
            return Err(invalid(format!(
                "Credential should be scoped to a valid region, not '{}'. Expected '{}'.",
                auth.region, self.region
            )));
        }
        if auth.service != self.service {
            return Err(invalid(format!(
                "Credential should be scoped to correct service: '{}'.",
                self.service
            )));
        }

        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
            })?;
        let request_time = parse_amz_date(amz_date).ok_or_else(|| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })?;
        if amz_date.get(..8) != Some(auth.date.as_str()) {
            return Err(invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                amz_date.get(..8).unwrap_or_default()
            )));
        }
        let skew = describe_skew(self.max_clock_skew);
        if request_time + self.max_clock_skew < now {
            let limit = now.checked_sub(self.max_clock_skew).unwrap_or(now);
            return Err(invalid(format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {skew})",
                format_amz_date(limit),
                format_amz_date(now)
            )));
        }
        if request_time > now + self.max_clock_skew {
            return Err(invalid(format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {skew})",
                format_amz_date(now + self.max_clock_skew),
                format_amz_date(now)
            )));
        }
        if !auth.signed_headers.iter().any(|h| h == "host") {
            return Err(invalid(
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }

        let body_hash = hex::encode(Sha256::digest(body));
        let payload_hash = match headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
        {
            Some(declared) if declared.len() == 64 => {
                if !declared.eq_ignore_ascii_case(&body_hash) {
                    return Err(invalid(
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ));
                }
                declared.to_owned()
            }
            // e.g. UNSIGNED-PAYLOAD: signed as declared.
            Some(declared) => declared.to_owned(),
            None => body_hash,
        };

        let canonical =
            canonical_request(method, uri, headers, &auth.signed_headers, &payload_hash);
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let expected = signature(
            &self.secret_access_key,
            &auth.date,
            &auth.region,
            &auth.service,
            &string_to_sign,
        )
        .ok_or_else(|| {
            ApiError::new(
                ErrorType::InternalServerException,
                "could not compute the signature",
            )
        })?;
        let provided = auth.signature.to_ascii_lowercase();
        if bool::from(expected.as_bytes().ct_eq(provided.as_bytes())) {
            Ok(())
        } else {
            Err(invalid(format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            )))
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().to_vec())
}

/// Computes a SigV4 signature (lower-case hex) for a string to sign.
pub fn signature(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> Option<String> {
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    )?;
    let k_region = hmac_sha256(&k_date, region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, service.as_bytes())?;
    let k_signing = hmac_sha256(&k_service, b"aws4_request")?;
    Some(hex::encode(hmac_sha256(
        &k_signing,
        string_to_sign.as_bytes(),
    )?))
}

/// Builds the SigV4 canonical request of a received request.
pub fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = String::new();
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(uri.query().unwrap_or_default()));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| trim_all(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The canonical URI of a path as received on the wire: dot segments removed, then
/// percent-encoded once more (so `%3A` becomes `%253A`), as every non-S3 service does.
pub fn canonical_uri(raw_path: &str) -> String {
    let path = normalize_path(raw_path);
    utf8_percent_encode(&path, PATH_SET).to_string()
}

fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if !(path.contains('.') || path.contains("//")) {
        return path;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut result = format!("/{}", segments.join("/"));
    let ends_with_slash = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|s| path.ends_with(s));
    if ends_with_slash && !result.ends_with('/') {
        result.push('/');
    }
    result
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub fn form_decode(s: &str) -> String {
    let replaced = s.replace('+', " ");
    percent_decode_str(&replaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a raw query string into decoded `(key, value)` pairs, in order.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

/// The canonical query string: pairs decoded, re-encoded, sorted, joined with `&`.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(query)
        .into_iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, QUERY_SET).to_string(),
                utf8_percent_encode(&v, QUERY_SET).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims spaces at both ends and collapses runs of spaces into one.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut previous_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if !previous_space {
                out.push(c);
            }
            previous_space = true;
        } else {
            out.push(c);
            previous_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;

    const AKID: &str = "AKIDTEST";
    const SECRET: &str = "test-secret";

    fn verifier() -> Verifier {
        Verifier {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            region: "us-east-1".into(),
            service: SERVICE_NAME.into(),
            max_clock_skew: Duration::from_secs(300),
        }
    }

    /// Signs with `aws-sigv4` (what the SDKs use) and returns the signed headers.
    fn sign_with_aws_sigv4(
        secret: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> HeaderMap {
        let identity =
            Credentials::new(AKID, secret, Some("session-token".into()), None, "t").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SERVICE_NAME)
            .time(time)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        for (k, v) in instructions.headers() {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        map
    }

    const URI: &str = "http://127.0.0.1:8787/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fdemo_agent-LOCAL0001/invocations?qualifier=DEFAULT&accountId=123%20456";

    fn check(secret: &str, body_signed: &[u8], body_sent: &[u8]) -> Result<(), ApiError> {
        let now = SystemTime::now();
        let headers = sign_with_aws_sigv4(
            secret,
            URI,
            &[
                ("host", "127.0.0.1:8787"),
                ("content-type", "application/json"),
                (
                    "x-amzn-bedrock-agentcore-runtime-session-id",
                    "  spaced   value ",
                ),
            ],
            body_signed,
            now,
        );
        let uri: Uri = URI.parse().expect("uri");
        verifier().verify(&Method::POST, &uri, &headers, body_sent, now)
    }

    #[test]
    fn aws_sigv4_signature_verifies() {
        assert_eq!(
            check(SECRET, b"{\"prompt\":\"hi\"}", b"{\"prompt\":\"hi\"}"),
            Ok(())
        );
    }

    #[test]
    fn wrong_secret_fails() {
        let err = check("other", b"{}", b"{}").expect_err("must fail");
        assert_eq!(err.kind, ErrorType::InvalidSignatureException);
        assert!(err.message.contains("does not match"));
    }

    #[test]
    fn tampered_body_fails() {
        let err = check(SECRET, b"{}", b"{ }").expect_err("must fail");
        assert_eq!(err.kind, ErrorType::InvalidSignatureException);
    }

    #[test]
    fn canonical_uri_double_encodes() {
        assert_eq!(
            canonical_uri("/runtimes/arn%3Aaws%2Fx/invocations"),
            "/runtimes/arn%253Aaws%252Fx/invocations"
        );
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query("b=2&a=x+y&c"), "a=x%20y&b=2&c=");
    }

    #[test]
    fn parses_authorization() {
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20240101/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("parse");
        assert_eq!(auth.access_key_id, "AK");
        assert_eq!(auth.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(auth.signature, "abc");
        assert!(parse_authorization("Bearer x").is_err());
    }

    #[test]
    fn amz_date_round_trip() {
        let t = parse_amz_date("20240102T030405Z").expect("parse");
        assert_eq!(format_amz_date(t), "20240102T030405Z");
    }
}

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
    /// Largest accepted difference between `X-Amz-Date` and the server clock. Any value
    /// is safe: a skew past what [`SystemTime`] can hold means "no limit" on that side.
    pub max_clock_skew: Duration,
    /// The session token of temporary credentials. When set, a request must carry it in a
    /// signed `X-Amz-Security-Token`; when unset, a token the client sends is not checked
    /// (local credentials are long-term ones, and an SDK that found `AWS_SESSION_TOKEN` in
    /// the developer's environment still signs correctly with the local key).
    pub session_token: Option<String>,
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
        // As sent: case, order, repeats and empty names are checked by the verifier.
        signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// Formats a time as `YYYYMMDDTHHMMSSZ`; an instant outside the years -9999 to 9999 (which
/// no `X-Amz-Date` can name) gives an empty string.
///
/// Not `OffsetDateTime::from(t)`: that conversion panics outside those years, and the
/// verifier formats instants moved by a configurable skew from a clock it is given (found
/// by the `sigv4_verifier` fuzz target, docs/FUZZING.md).
pub fn format_amz_date(t: SystemTime) -> String {
    let moved = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d)),
    };
    moved
        .and_then(|t| t.format(AMZ_DATE_FORMAT).ok())
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

/// A request whose headers passed every check: what is left is its body.
///
/// [`Verifier::verify_head`] returns it before the body is read. When the client declared
/// the body's hash (`X-Amz-Content-Sha256`) the signature is already verified, so a server
/// reads a large body only for a caller that holds the key; otherwise the payload hash is
/// part of what is signed and the signature can only be computed with the body
/// ([`PendingBody::verify_body`]).
#[derive(Debug)]
pub struct PendingBody {
    /// The canonical request up to, not including, the payload hash.
    canonical_head: String,
    /// `YYYYMMDDTHHMMSSZ`, as signed.
    amz_date: String,
    /// `date/region/service/aws4_request`.
    scope: String,
    /// The signing key (its derivation depends only on the scope).
    signing_key: Vec<u8>,
    /// The provided signature, lower case.
    provided: String,
    /// The declared payload hash, when the client sent one; the signature over it was
    /// verified already.
    declared_hash: Option<String>,
}

impl PendingBody {
    /// Whether the signature is already verified (the client declared the body's hash),
    /// so that reading the body is only needed to check that hash.
    pub fn signature_verified(&self) -> bool {
        self.declared_hash.is_some()
    }

    /// Finishes the verification with the body exactly as received.
    pub fn verify_body(self, body: &[u8]) -> Result<(), ApiError> {
        let body_hash = hex::encode(Sha256::digest(body));
        match &self.declared_hash {
            Some(declared) if declared.eq_ignore_ascii_case(&body_hash) => Ok(()),
            Some(_) => Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )),
            None => self.check_signature(&body_hash),
        }
    }

    fn check_signature(&self, payload_hash: &str) -> Result<(), ApiError> {
        let canonical = format!("{}{payload_hash}", self.canonical_head);
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let expected = hmac_sha256(&self.signing_key, string_to_sign.as_bytes())
            .map(hex::encode)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorType::InternalServerException,
                    "could not compute the signature",
                )
            })?;
        if bool::from(expected.as_bytes().ct_eq(self.provided.as_bytes())) {
            Ok(())
        } else {
            Err(invalid(format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            )))
        }
    }
}

/// The one value of a header that must not be repeated (a second `Authorization` or
/// `X-Amz-Date` would leave open which one was meant), as text.
fn single_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(incomplete(format!(
            "The request has more than one '{name}' header."
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| incomplete(format!("The '{name}' header is not valid ASCII.")))
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
        self.verify_head(method, uri, headers, now)?
            .verify_body(body)
    }

    /// Every check that needs no body: the credential and its scope, the date and the
    /// clock skew, the session token, the `SignedHeaders` rules, and the signature itself
    /// when the client declared the payload hash. The body is checked afterwards with
    /// [`PendingBody::verify_body`].
    ///
    /// The rules, as AWS applies them to a non-S3 service:
    /// - `SignedHeaders` is lower case, sorted and without repeats, names `host` and
    ///   `x-amz-date`, and every header it names is present in the request (a signature
    ///   over an absent header would sign the empty string in its place);
    /// - `X-Amz-Content-Sha256`, when sent, is the hex SHA-256 of the body. The literal
    ///   `UNSIGNED-PAYLOAD` (and the `STREAMING-*` values) are refused: AWS accepts them
    ///   only for S3 and for operations modelled `@unsignedPayload`, and
    ///   `InvokeAgentRuntime` is not one (the AWS SDKs sign its payload);
    /// - with a configured [`Verifier::session_token`], `X-Amz-Security-Token` is signed
    ///   and equal to it.
    pub fn verify_head(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<PendingBody, ApiError> {
        let Some(authorization) = single_value(headers, http::header::AUTHORIZATION.as_str())?
        else {
            return Err(ApiError::new(
                ErrorType::MissingAuthenticationTokenException,
                "Missing Authentication Token",
            ));
        };
        let auth = parse_authorization(authorization)?;

        if auth.access_key_id != self.access_key_id {
            return Err(unrecognized_client());
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

        let amz_date = single_value(headers, "x-amz-date")?.ok_or_else(|| {
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
        self.check_clock(amz_date, request_time, now)?;
        // The token before the header rules: a missing token is an unknown credential,
        // whatever the SignedHeaders list says.
        self.check_session_token(&auth.signed_headers, headers)?;
        check_signed_headers(&auth.signed_headers, headers)?;

        let declared_hash = match single_value(headers, "x-amz-content-sha256")? {
            None => None,
            Some(declared)
                if declared.len() == 64 && declared.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(declared.to_owned())
            }
            Some(declared) => {
                return Err(invalid(format!(
                    "x-amz-content-sha256 must be the hex SHA-256 of the payload; '{}' is not accepted by this service.",
                    declared.chars().take(64).collect::<String>()
                )))
            }
        };

        let canonical_head = canonical_request(method, uri, headers, &auth.signed_headers, "");
        let signing_key = signing_key(
            &self.secret_access_key,
            &auth.date,
            &auth.region,
            &auth.service,
        )
        .ok_or_else(|| {
            ApiError::new(
                ErrorType::InternalServerException,
                "could not compute the signing key",
            )
        })?;
        let pending = PendingBody {
            canonical_head,
            amz_date: amz_date.to_owned(),
            scope: format!(
                "{}/{}/{}/aws4_request",
                auth.date, auth.region, auth.service
            ),
            signing_key,
            provided: auth.signature.to_ascii_lowercase(),
            declared_hash,
        };
        if let Some(declared) = &pending.declared_hash {
            // The payload hash is known: the signature is verified now, before any body
            // byte is read.
            pending.check_signature(declared)?;
        }
        Ok(pending)
    }

    /// `X-Amz-Date` within [`Verifier::max_clock_skew`] of `now`, with checked arithmetic:
    /// a skew that overflows [`SystemTime`] leaves that side unbounded instead of panicking.
    fn check_clock(
        &self,
        amz_date: &str,
        request_time: SystemTime,
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let skew = describe_skew(self.max_clock_skew);
        let earliest = now.checked_sub(self.max_clock_skew);
        let latest = now.checked_add(self.max_clock_skew);
        if earliest.is_some_and(|earliest| request_time < earliest) {
            return Err(invalid(format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {skew})",
                earliest.map(format_amz_date).unwrap_or_default(),
                format_amz_date(now)
            )));
        }
        if latest.is_some_and(|latest| request_time > latest) {
            return Err(invalid(format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {skew})",
                latest.map(format_amz_date).unwrap_or_default(),
                format_amz_date(now)
            )));
        }
        Ok(())
    }

    fn check_session_token(
        &self,
        signed_headers: &[String],
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let Some(expected) = &self.session_token else {
            return Ok(());
        };
        let presented = single_value(headers, SECURITY_TOKEN_HEADER)?.unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(unrecognized_client());
        }
        if !signed_headers.iter().any(|h| h == SECURITY_TOKEN_HEADER) {
            return Err(invalid(
                "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        Ok(())
    }
}

/// Header carrying the session token of temporary credentials.
pub const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";

fn unrecognized_client() -> ApiError {
    ApiError::new(
        ErrorType::UnrecognizedClientException,
        "The security token included in the request is invalid.",
    )
}

/// The `SignedHeaders` rules of [`Verifier::verify_head`] (the order and uniqueness are
/// what make the canonical request unambiguous; the presence rule stops a signature from
/// covering headers that are not there).
fn check_signed_headers(signed: &[String], headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(bad) = signed
        .iter()
        .find(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(incomplete(format!(
            "SignedHeaders must be lower-case header names separated by ';', not '{bad}'."
        )));
    }
    if !signed.windows(2).all(|pair| pair[0] < pair[1]) {
        return Err(incomplete(
            "SignedHeaders must be sorted and name each header once.",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !signed.iter().any(|h| h == required) {
            let shown = if required == "host" {
                "Host"
            } else {
                "X-Amz-Date"
            };
            return Err(invalid(format!(
                "'{shown}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    if let Some(absent) = signed.iter().find(|h| !headers.contains_key(h.as_str())) {
        return Err(invalid(format!(
            "The header '{absent}' is listed in SignedHeaders but is not in the request."
        )));
    }
    Ok(())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().to_vec())
}

/// The SigV4 signing key of a credential scope.
fn signing_key(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Option<Vec<u8>> {
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    )?;
    let k_region = hmac_sha256(&k_date, region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, service.as_bytes())?;
    hmac_sha256(&k_service, b"aws4_request")
}

/// Computes a SigV4 signature (lower-case hex) for a string to sign.
pub fn signature(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> Option<String> {
    let k_signing = signing_key(secret_access_key, date, region, service)?;
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
            session_token: None,
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
        sign_aws(
            secret,
            |_| {},
            uri,
            headers,
            SignableBody::Bytes(body),
            time,
        )
    }

    /// [`sign_with_aws_sigv4`] with a choice of settings and of body (an unsigned payload).
    fn sign_aws(
        secret: &str,
        tweak: impl FnOnce(&mut SigningSettings),
        uri: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
        time: SystemTime,
    ) -> HeaderMap {
        let identity =
            Credentials::new(AKID, secret, Some("session-token".into()), None, "t").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        tweak(&mut settings);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SERVICE_NAME)
            .time(time)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let signable =
            SignableRequest::new("POST", uri, headers.iter().copied(), body).expect("signable");
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
    fn dates_past_year_9999_neither_format_nor_panic() {
        // Regression of the sigv4_verifier fuzz target's crash (docs/FUZZING.md): the
        // `time` crate's SystemTime conversion panicked past year 9999.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000_000);
        assert_eq!(format_amz_date(far), "");
        let long_ago = SystemTime::UNIX_EPOCH - Duration::from_secs(1_000_000_000_000);
        assert_eq!(format_amz_date(long_ago), "");
        assert_eq!(
            format_amz_date(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            "19691231T235959Z"
        );
        // A request checked against such a clock is refused with a message, not a panic.
        let headers = sign_by_hand(&["host", "x-amz-date"], &[], b"{}");
        for now in [far, long_ago] {
            let err = verifier()
                .verify(&Method::POST, &uri(), &headers, b"{}", now)
                .expect_err("out of the skew");
            assert_eq!(err.kind, ErrorType::InvalidSignatureException);
        }
    }

    #[test]
    fn amz_date_round_trip() {
        let t = parse_amz_date("20240102T030405Z").expect("parse");
        assert_eq!(format_amz_date(t), "20240102T030405Z");
    }

    fn uri() -> Uri {
        URI.parse().expect("uri")
    }

    /// The headers of a request signed by hand with this module's own canonicalisation,
    /// over exactly `signed` (as written, in that order): a signature a careless verifier
    /// would accept, to show that the `SignedHeaders` rules refuse it on their own.
    fn sign_by_hand(signed: &[&str], extra: &[(&str, &str)], body: &[u8]) -> HeaderMap {
        let now = SystemTime::now();
        let amz_date = format_amz_date(now);
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8787".parse().expect("value"));
        headers.insert("x-amz-date", amz_date.parse().expect("value"));
        for (k, v) in extra {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let signed: Vec<String> = signed.iter().map(|h| (*h).to_owned()).collect();
        let payload_hash = hex::encode(Sha256::digest(body));
        let canonical = canonical_request(&Method::POST, &uri(), &headers, &signed, &payload_hash);
        let date = &amz_date[..8];
        let scope = format!("{date}/us-east-1/{SERVICE_NAME}/aws4_request");
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let sig =
            signature(SECRET, date, "us-east-1", SERVICE_NAME, &string_to_sign).expect("signature");
        let authorization = format!(
            "{ALGORITHM} Credential={AKID}/{scope}, SignedHeaders={}, Signature={sig}",
            signed.join(";")
        );
        headers.insert(
            http::header::AUTHORIZATION,
            authorization.parse().expect("value"),
        );
        headers
    }

    fn verify_now(v: &Verifier, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        v.verify(&Method::POST, &uri(), headers, body, SystemTime::now())
    }

    #[test]
    fn a_request_signed_by_hand_by_the_rules_verifies() {
        // The control of the tests below: the hand signer itself is right.
        let headers = sign_by_hand(
            &["content-type", "host", "x-amz-date"],
            &[("content-type", "application/json")],
            b"{}",
        );
        assert_eq!(verify_now(&verifier(), &headers, b"{}"), Ok(()));
    }

    #[test]
    fn every_signed_header_must_be_present() {
        // Signed as if `x-tenant` were empty, sent without it.
        let headers = sign_by_hand(&["host", "x-amz-date", "x-tenant"], &[], b"{}");
        let err = verify_now(&verifier(), &headers, b"{}").expect_err("must fail");
        assert_eq!(err.kind, ErrorType::InvalidSignatureException);
        assert!(
            err.message
                .contains("'x-tenant' is listed in SignedHeaders"),
            "{err:?}"
        );
    }

    #[test]
    fn signed_headers_must_be_sorted_and_unique() {
        for signed in [
            &["x-amz-date", "host"][..],
            &["host", "host", "x-amz-date"][..],
            &["host", "", "x-amz-date"][..],
            &["Host", "x-amz-date"][..],
        ] {
            let headers = sign_by_hand(signed, &[], b"{}");
            let err = verify_now(&verifier(), &headers, b"{}").expect_err("must fail");
            assert_eq!(
                err.kind,
                ErrorType::IncompleteSignatureException,
                "{signed:?}"
            );
        }
    }

    #[test]
    fn host_and_x_amz_date_must_be_signed() {
        for (signed, missing) in [
            (&["x-amz-date"][..], "'Host' must be"),
            (&["host"][..], "'X-Amz-Date' must be"),
        ] {
            let headers = sign_by_hand(signed, &[], b"{}");
            let err = verify_now(&verifier(), &headers, b"{}").expect_err("must fail");
            assert_eq!(err.kind, ErrorType::InvalidSignatureException);
            assert!(err.message.contains(missing), "{err:?}");
        }
    }

    #[test]
    fn a_second_authorization_or_date_header_is_refused() {
        for name in ["authorization", "x-amz-date"] {
            let mut headers = sign_by_hand(&["host", "x-amz-date"], &[], b"{}");
            let first = headers.get(name).expect("present").clone();
            headers.append(name, first);
            let err = verify_now(&verifier(), &headers, b"{}").expect_err("must fail");
            assert_eq!(err.kind, ErrorType::IncompleteSignatureException, "{name}");
        }
    }

    const SIGNED_WITH_HASH: &[(&str, &str)] = &[("host", "127.0.0.1:8787")];

    fn with_payload_hash(settings: &mut SigningSettings) {
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    }

    #[test]
    fn a_declared_payload_hash_must_match_the_body() {
        let now = SystemTime::now();
        let headers = sign_aws(
            SECRET,
            with_payload_hash,
            URI,
            SIGNED_WITH_HASH,
            SignableBody::Bytes(b"{\"prompt\":\"a\"}"),
            now,
        );
        let v = verifier();
        assert_eq!(
            v.verify(&Method::POST, &uri(), &headers, b"{\"prompt\":\"a\"}", now),
            Ok(())
        );
        let err = v
            .verify(&Method::POST, &uri(), &headers, b"{\"prompt\":\"b\"}", now)
            .expect_err("must fail");
        assert!(err.message.contains("x-amz-content-sha256"), "{err:?}");
    }

    #[test]
    fn unsigned_payload_is_refused_by_this_service() {
        let now = SystemTime::now();
        let headers = sign_aws(
            SECRET,
            with_payload_hash,
            URI,
            SIGNED_WITH_HASH,
            SignableBody::UnsignedPayload,
            now,
        );
        assert_eq!(
            headers.get("x-amz-content-sha256").map(|v| v.as_bytes()),
            Some(&b"UNSIGNED-PAYLOAD"[..])
        );
        let err = verifier()
            .verify(&Method::POST, &uri(), &headers, b"anything", now)
            .expect_err("must fail");
        assert_eq!(err.kind, ErrorType::InvalidSignatureException);
        assert!(
            err.message.contains("not accepted by this service"),
            "{err:?}"
        );
    }

    #[test]
    fn with_a_declared_hash_the_signature_is_checked_before_the_body() {
        let now = SystemTime::now();
        let good = sign_aws(
            SECRET,
            with_payload_hash,
            URI,
            SIGNED_WITH_HASH,
            SignableBody::Bytes(b"{}"),
            now,
        );
        let pending = verifier()
            .verify_head(&Method::POST, &uri(), &good, now)
            .expect("head verifies");
        assert!(pending.signature_verified());
        let forged = sign_aws(
            "not-the-secret",
            with_payload_hash,
            URI,
            SIGNED_WITH_HASH,
            SignableBody::Bytes(b"{}"),
            now,
        );
        let err = verifier()
            .verify_head(&Method::POST, &uri(), &forged, now)
            .expect_err("refused with no body at all");
        assert!(err.message.contains("does not match"), "{err:?}");
        // Without a declared hash, the signature needs the body.
        let plain = sign_with_aws_sigv4(SECRET, URI, SIGNED_WITH_HASH, b"{}", now);
        let pending = verifier()
            .verify_head(&Method::POST, &uri(), &plain, now)
            .expect("head verifies");
        assert!(!pending.signature_verified());
        assert_eq!(pending.verify_body(b"{}"), Ok(()));
    }

    #[test]
    fn a_configured_session_token_is_required_signed_and_equal() {
        let now = SystemTime::now();
        // aws-sigv4 signs the token of the test credentials ("session-token").
        let signed = sign_with_aws_sigv4(SECRET, URI, SIGNED_WITH_HASH, b"{}", now);
        let auth = signed["authorization"].to_str().expect("ascii");
        assert!(auth.contains(SECURITY_TOKEN_HEADER), "{auth}");
        let v = |token: &str| Verifier {
            session_token: Some(token.to_owned()),
            ..verifier()
        };
        let check = |v: &Verifier, h: &HeaderMap| v.verify(&Method::POST, &uri(), h, b"{}", now);
        assert_eq!(check(&v("session-token"), &signed), Ok(()));
        let err = check(&v("another-token"), &signed).expect_err("wrong token");
        assert_eq!(err.kind, ErrorType::UnrecognizedClientException);
        let mut without = signed.clone();
        without.remove(SECURITY_TOKEN_HEADER);
        let err = check(&v("session-token"), &without).expect_err("no token");
        assert_eq!(err.kind, ErrorType::UnrecognizedClientException);
        // Present and right, but not covered by the signature.
        let unsigned = sign_by_hand(
            &["host", "x-amz-date"],
            &[(SECURITY_TOKEN_HEADER, "session-token")],
            b"{}",
        );
        let err = verify_now(&v("session-token"), &unsigned, b"{}").expect_err("unsigned token");
        assert!(
            err.message.contains("'X-Amz-Security-Token' must be"),
            "{err:?}"
        );
        // Not configured: the token is not checked.
        assert_eq!(verify_now(&verifier(), &unsigned, b"{}"), Ok(()));
    }

    #[test]
    fn no_clock_skew_setting_overflows() {
        let now = SystemTime::now();
        let headers = sign_with_aws_sigv4(SECRET, URI, SIGNED_WITH_HASH, b"{}", now);
        let at = |skew: Duration, clock: SystemTime| {
            Verifier {
                max_clock_skew: skew,
                ..verifier()
            }
            .verify(&Method::POST, &uri(), &headers, b"{}", clock)
        };
        // With the largest skew, any clock accepts: both bounds are past SystemTime's range.
        assert_eq!(at(Duration::MAX, now), Ok(()));
        assert_eq!(at(Duration::MAX, SystemTime::UNIX_EPOCH), Ok(()));
        let far_future = SystemTime::UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(at(Duration::MAX, far_future), Ok(()));
        // A skew of zero still accepts the signing instant and refuses a second later.
        let signed_at =
            parse_amz_date(headers["x-amz-date"].to_str().expect("ascii")).expect("date");
        assert_eq!(at(Duration::ZERO, signed_at), Ok(()));
        let err = at(Duration::ZERO, signed_at + Duration::from_secs(1)).expect_err("expired");
        assert!(err.message.contains("Signature expired"), "{err:?}");
        let err = at(Duration::ZERO, signed_at - Duration::from_secs(1)).expect_err("early");
        assert!(err.message.contains("not yet current"), "{err:?}");
    }
}

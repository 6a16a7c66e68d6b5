//! agentcore-local's SigV4 verifier on hostile requests: arbitrary method, path, query,
//! headers, body, `Authorization` (raw, or well-formed with arbitrary parts), dates and
//! clock-skew settings. It never panics; it never accepts a signature that was not made
//! with the secret (which is not in the input); and when the target signs the request
//! itself with the secret over an arbitrary `SignedHeaders` list, an accepted request
//! obeys the rules (`host` and `x-amz-date` signed, the list sorted and unique, every
//! listed header present, a configured session token signed).
#![no_main]

use std::time::{Duration, SystemTime};

use agentcore_local::sigv4::{self, Verifier, ALGORITHM, SERVICE_NAME};
use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

const AKID: &str = "AKIDFUZZ";
const SECRET: &str = "fuzz-secret-not-in-the-input";
const REGION: &str = "us-east-1";

/// A name in `SignedHeaders`: the ones the rules are about are likely, any other possible.
#[derive(Arbitrary, Debug)]
enum Listed {
    Host,
    Date,
    Token,
    ContentSha256,
    ContentType,
    Other(String),
}

impl Listed {
    fn name(&self) -> String {
        match self {
            Listed::Host => "host".into(),
            Listed::Date => "x-amz-date".into(),
            Listed::Token => "x-amz-security-token".into(),
            Listed::ContentSha256 => "x-amz-content-sha256".into(),
            Listed::ContentType => "content-type".into(),
            Listed::Other(name) => name.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Authorization {
    Raw(String),
    Parts {
        right_key: bool,
        right_region: bool,
        right_service: bool,
        right_terminator: bool,
        /// The scope's date: the request's own, or this text.
        other_date: Option<String>,
        signed_headers: Vec<Listed>,
        /// Sign with the secret (over `signed_headers`), or send this signature.
        signature: Option<String>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: String,
    path_and_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    authorization: Authorization,
    /// `X-Amz-Date`: now moved by this many seconds, or this text.
    date: Result<i32, String>,
    payload_hash: Option<String>,
    declare_body_hash: bool,
    now_secs: u64,
    skew_secs: u64,
    session_token: Option<String>,
}

fuzz_target!(|input: Input| {
    let Ok(method) = Method::from_bytes(input.method.as_bytes()) else {
        return;
    };
    let Ok(uri) = format!("http://127.0.0.1:8787{}", input.path_and_query).parse::<Uri>() else {
        return;
    };
    // Any instant, including ones near the ends of what SystemTime holds.
    let now = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(input.now_secs))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8787"));
    for (name, value) in input.headers.iter().take(32) {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let amz_date = match &input.date {
        Ok(offset) => {
            let moved = if *offset >= 0 {
                now.checked_add(Duration::from_secs(offset.unsigned_abs().into()))
            } else {
                now.checked_sub(Duration::from_secs(offset.unsigned_abs().into()))
            };
            moved.map(sigv4::format_amz_date).unwrap_or_default()
        }
        Err(text) => text.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    let body_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&input.body))
    };
    let declared = if input.declare_body_hash { Some(body_hash.clone()) } else { input.payload_hash.clone() };
    if let Some(Ok(v)) = declared.as_deref().map(HeaderValue::from_str) {
        headers.insert("x-amz-content-sha256", v);
    }

    let mut signed_by_us = false;
    let mut listed: Vec<String> = Vec::new();
    let authorization = match &input.authorization {
        Authorization::Raw(text) => text.clone(),
        Authorization::Parts {
            right_key,
            right_region,
            right_service,
            right_terminator,
            other_date,
            signed_headers,
            signature,
        } => {
            let date = other_date.clone().unwrap_or_else(|| amz_date.get(..8).unwrap_or_default().to_owned());
            let key = if *right_key { AKID } else { "AKIDOTHER" };
            let region = if *right_region { REGION } else { "eu-west-1" };
            let service = if *right_service { SERVICE_NAME } else { "s3" };
            let terminator = if *right_terminator { "aws4_request" } else { "aws4" };
            let scope = format!("{date}/{region}/{service}/{terminator}");
            listed = signed_headers.iter().map(Listed::name).collect();
            let signature = match signature {
                Some(s) => s.clone(),
                None => {
                    signed_by_us = true;
                    let payload = match headers.get("x-amz-content-sha256") {
                        Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        None => body_hash.clone(),
                    };
                    let canonical = sigv4::canonical_request(&method, &uri, &headers, &listed, &payload);
                    let string_to_sign = {
                        use sha2::Digest;
                        format!(
                            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
                            hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
                        )
                    };
                    sigv4::signature(SECRET, &date, region, service, &string_to_sign).unwrap_or_default()
                }
            };
            format!("{ALGORITHM} Credential={key}/{scope}, SignedHeaders={}, Signature={signature}", listed.join(";"))
        }
    };
    if let Ok(v) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, v);
    }

    let verifier = Verifier {
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        region: REGION.into(),
        service: SERVICE_NAME.into(),
        max_clock_skew: Duration::from_secs(input.skew_secs),
        session_token: input.session_token.clone(),
    };
    let verdict = verifier.verify(&method, &uri, &headers, &input.body, now);
    if verdict.is_ok() {
        assert!(signed_by_us, "accepted a signature made without the secret: {input:?}");
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "unsorted SignedHeaders: {listed:?}");
        for required in ["host", "x-amz-date"] {
            assert!(listed.iter().any(|h| h == required), "{required} not signed: {listed:?}");
        }
        for name in &listed {
            assert!(headers.contains_key(name.as_str()), "{name} signed but absent");
        }
        if input.session_token.is_some() {
            assert!(listed.iter().any(|h| h == "x-amz-security-token"));
        }
        if let Some(declared) = headers.get("x-amz-content-sha256") {
            assert!(declared.as_bytes().eq_ignore_ascii_case(body_hash.as_bytes()));
        }
    }
    let _ = sigv4::canonical_uri(uri.path());
    let _ = sigv4::canonical_query(uri.query().unwrap_or_default());
});

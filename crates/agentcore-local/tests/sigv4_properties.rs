//! Property tests of agentcore-local's SigV4 verifier against `aws-sigv4`, the signer the
//! AWS SDKs use: every request it signs is accepted, and every single change to what the
//! signature covers (method, path, query, a signed header, the body, the date, the
//! credential scope) is refused.

use std::time::{Duration, SystemTime};

use agentcore_local::sigv4::{Verifier, SERVICE_NAME};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

const AKID: &str = "AKIDPROPERTY";
const SECRET: &str = "property-secret";
const REGION: &str = "us-east-1";
const HOST: &str = "127.0.0.1:8787";

/// How the SDK encodes a path segment or a query component: all but the unreserved.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Strings of `min..=max` characters drawn from `set` (proptest runs without its `std`
/// feature here, so without regex strategies: see the root Cargo.toml).
fn string_of(set: &str, min: usize, max: usize) -> BoxedStrategy<String> {
    let chars: Vec<char> = set.chars().collect();
    prop::collection::vec(prop::sample::select(chars), min..=max)
        .prop_map(|c| c.into_iter().collect())
        .boxed()
}

const VISIBLE: &str = "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn verifier() -> Verifier {
    Verifier {
        access_key_id: AKID.into(),
        secret_access_key: SECRET.into(),
        region: REGION.into(),
        service: SERVICE_NAME.into(),
        max_clock_skew: Duration::from_secs(300),
        session_token: None,
    }
}

/// One request, before and after signing.
#[derive(Clone, Debug)]
struct Request {
    method: Method,
    /// Decoded path segments and query pairs (encoded when the URI is built).
    segments: Vec<String>,
    query: Vec<(String, String)>,
    /// Headers besides `host` (all of them signed by aws-sigv4).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    time: SystemTime,
    declare_payload_hash: bool,
}

impl Request {
    fn uri(&self) -> String {
        let path: Vec<String> = self
            .segments
            .iter()
            .map(|s| utf8_percent_encode(s, COMPONENT).to_string())
            .collect();
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, COMPONENT),
                    utf8_percent_encode(v, COMPONENT)
                )
            })
            .collect();
        let mut uri = format!("http://{HOST}/{}", path.join("/"));
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query.join("&"));
        }
        uri
    }

    /// The headers on the wire once `aws-sigv4` signed the request.
    fn sign(&self) -> HeaderMap {
        let identity = Credentials::new(AKID, SECRET, None, None, "property").into();
        let mut settings = SigningSettings::default();
        // What aws-sdk-bedrockagentcore sets for this service.
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        if self.declare_payload_hash {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(SERVICE_NAME)
            .time(self.time)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let mut headers: Vec<(&str, &str)> = vec![("host", HOST)];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let uri = self.uri();
        let signable = SignableRequest::new(
            self.method.as_str(),
            &uri,
            headers.iter().copied(),
            SignableBody::Bytes(&self.body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers.into_iter().chain(instructions.headers()) {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }
}

fn verify(method: &Method, uri: &str, headers: &HeaderMap, body: &[u8], now: SystemTime) -> bool {
    let uri: Uri = uri.parse().expect("uri");
    verifier().verify(method, &uri, headers, body, now).is_ok()
}

fn requests() -> impl Strategy<Value = Request> {
    (
        prop_oneof![Just(Method::POST), Just(Method::GET), Just(Method::PUT)],
        prop::collection::vec(
            prop_oneof![
                string_of(&format!("{ALNUM}_:/%. -é"), 1, 12),
                Just("runtimes".to_owned()),
                Just("invocations".to_owned()),
            ],
            1..4,
        ),
        prop::collection::vec(
            (
                string_of(&format!("{ALNUM}_:/%+= &-"), 1, 8),
                string_of(&format!("{ALNUM}_:/%+= &-"), 0, 8),
            ),
            0..3,
        ),
        prop::collection::vec(
            (
                prop_oneof![
                    string_of("abcdefghijklmnopqrstuvwxyz", 1, 6)
                        .prop_map(|n| format!("x-amzn-bedrock-agentcore-runtime-custom-{n}")),
                    Just("content-type".to_owned()),
                    Just("accept".to_owned()),
                    Just("traceparent".to_owned()),
                ],
                // Visible ASCII, spaces inside only (both sides trim the ends).
                (
                    string_of(VISIBLE, 1, 1),
                    string_of(&format!("{VISIBLE}  "), 0, 20),
                    string_of(VISIBLE, 1, 1),
                )
                    .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
            ),
            0..4,
        ),
        prop::collection::vec(any::<u8>(), 0..64),
        // Any second between 2001 and 2286, so the day changes under some dates.
        1_000_000_000u64..10_000_000_000,
        any::<bool>(),
    )
        .prop_map(|(method, segments, query, headers, body, secs, declare)| {
            // Path segments of "." or ".." would be normalised away (by both sides).
            let segments = segments
                .into_iter()
                .filter(|s| s != "." && s != "..")
                .collect();
            // One value per header name, as the SDK sends them.
            let mut unique: Vec<(String, String)> = Vec::new();
            for (k, v) in headers {
                if !unique.iter().any(|(n, _)| *n == k) {
                    unique.push((k, v));
                }
            }
            Request {
                method,
                segments,
                query,
                headers: unique,
                body,
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
                declare_payload_hash: declare,
            }
        })
}

/// One change to a signed request, applied after signing.
#[derive(Clone, Debug)]
enum Mutation {
    Method,
    Path,
    QueryValue,
    QueryAdded,
    Header,
    Body,
    Date(i64),
    ScopeRegion,
    ScopeService,
    ScopeDate,
}

fn mutations() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Method),
        Just(Mutation::Path),
        Just(Mutation::QueryValue),
        Just(Mutation::QueryAdded),
        Just(Mutation::Header),
        Just(Mutation::Body),
        prop_oneof![-200i64..=-1, 1i64..=200].prop_map(Mutation::Date),
        Just(Mutation::ScopeRegion),
        Just(Mutation::ScopeService),
        Just(Mutation::ScopeDate),
    ]
}

fn replace_header(headers: &mut HeaderMap, name: &str, value: String) {
    headers.insert(
        HeaderName::from_bytes(name.as_bytes()).expect("name"),
        HeaderValue::from_str(&value).expect("value"),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever aws-sigv4 signs, the verifier accepts (at the signing instant and within
    /// the allowed skew).
    #[test]
    fn every_request_aws_sigv4_signs_is_accepted(req in requests(), skew in -300i64..=300) {
        let headers = req.sign();
        let now = if skew >= 0 {
            req.time + Duration::from_secs(skew.unsigned_abs())
        } else {
            req.time - Duration::from_secs(skew.unsigned_abs())
        };
        let uri: Uri = req.uri().parse().expect("uri");
        let verdict = verifier().verify(&req.method, &uri, &headers, &req.body, now);
        prop_assert!(verdict.is_ok(), "{:?}\n{:?}\n{:?}", req, headers, verdict);
    }

    /// Every single change to what the signature covers is refused.
    #[test]
    fn every_single_mutation_is_refused(req in requests(), mutation in mutations()) {
        let mut headers = req.sign();
        let mut method = req.method.clone();
        let mut uri = req.uri();
        let mut body = req.body.clone();
        match &mutation {
            Mutation::Method => {
                method = if method == Method::POST { Method::PUT } else { Method::POST };
            }
            Mutation::Path => {
                let (path, query) = uri.split_once('?').map_or((uri.as_str(), None), |(p, q)| (p, Some(q)));
                uri = match query {
                    Some(q) => format!("{path}x?{q}"),
                    None => format!("{path}x"),
                };
            }
            Mutation::QueryValue => {
                if req.query.is_empty() {
                    uri.push_str("?a=1");
                } else {
                    uri.push('z');
                }
            }
            Mutation::QueryAdded => {
                uri.push(if req.query.is_empty() { '?' } else { '&' });
                uri.push_str("added=1");
            }
            Mutation::Header => match req.headers.first() {
                Some((name, value)) => replace_header(&mut headers, name, format!("{value}x")),
                None => replace_header(&mut headers, "host", "127.0.0.1:8788".to_owned()),
            },
            Mutation::Body => {
                if body.is_empty() {
                    body.push(b'x');
                } else {
                    body[0] ^= 1;
                }
            }
            Mutation::Date(secs) => {
                let moved = if *secs >= 0 {
                    req.time + Duration::from_secs(secs.unsigned_abs())
                } else {
                    req.time - Duration::from_secs(secs.unsigned_abs())
                };
                replace_header(&mut headers, "x-amz-date", agentcore_local::sigv4::format_amz_date(moved));
            }
            Mutation::ScopeRegion | Mutation::ScopeService | Mutation::ScopeDate => {
                let auth = headers["authorization"].to_str().expect("ascii").to_owned();
                let changed = match &mutation {
                    Mutation::ScopeRegion => auth.replacen("/us-east-1/", "/us-west-2/", 1),
                    Mutation::ScopeService => auth.replacen("/bedrock-agentcore/", "/bedrock/", 1),
                    _ => {
                        // The scope's date, one day later.
                        let (before, after) = auth.split_once("Credential=").expect("credential");
                        let (_, rest) = after.split_at(AKID.len() + 1 + 8);
                        let day = agentcore_local::sigv4::format_amz_date(req.time + Duration::from_secs(86_400));
                        format!("{before}Credential={AKID}/{}{rest}", &day[..8])
                    }
                };
                prop_assert_ne!(&changed, &auth);
                replace_header(&mut headers, "authorization", changed);
            }
        }
        prop_assert!(
            !verify(&method, &uri, &headers, &body, req.time),
            "accepted after {:?}: {:?}", mutation, req
        );
    }
}

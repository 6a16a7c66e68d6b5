//! Property tests of the parsers every request and every answer goes through (issue #14,
//! hostile input): the SSE decoder, the in-band error event, the request parser, session
//! ids and runtime ARNs. Case counts are small on purpose: `make test` runs them on every
//! change, and the fuzz targets (`make fuzz`, docs/FUZZING.md) search the same ground for
//! longer.

use agentcore_core::config::RuntimeArn;
use agentcore_core::request::{parse_lambda_request, parse_parts};
use agentcore_core::session::{MAX_SESSION_ID_LEN, MIN_SESSION_ID_LEN};
use agentcore_core::sse::{self, BoundaryTracker, Event};
use agentcore_core::{entry, ApiError, Config, SessionId, UpstreamError, UpstreamKind};
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use proptest::prelude::*;

/// Strings of `min..=max` characters drawn from `set` (proptest runs without its `std`
/// feature here, so without regex strategies: see the root Cargo.toml).
fn string_of(set: &str, min: usize, max: usize) -> BoxedStrategy<String> {
    let chars: Vec<char> = set.chars().collect();
    prop::collection::vec(prop::sample::select(chars), min..=max)
        .prop_map(|c| c.into_iter().collect())
        .boxed()
}

/// Strings of any characters (any Unicode scalar value).
fn any_string(max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(any::<char>(), 0..=max)
        .prop_map(|c| c.into_iter().collect())
        .boxed()
}

const PRINTABLE: &str = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
const SESSION_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
const RUNTIME_ID_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// The events of `chunks`, or the error that ended decoding (as text).
fn decode_chunks(chunks: Vec<Bytes>) -> Result<Vec<Event>, String> {
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    block_on(sse::decode(stream).collect::<Vec<_>>())
        .into_iter()
        .map(|item| item.map_err(|e| e.to_string()))
        .collect()
}

/// Cuts `bytes` at the given offsets (taken modulo the length, in any order, repeated
/// or not): empty chunks, one-byte chunks and cuts inside CRLF and UTF-8 all occur.
fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2)
        .map(|w| Bytes::copy_from_slice(&bytes[w[0]..w[1]]))
        .collect()
}

/// Text shaped like an event stream, with every line ending and field the parser knows,
/// JSON and non-ASCII data, and stray characters.
fn sse_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("data: ".to_owned()),
        Just("data:".to_owned()),
        Just("event: error".to_owned()),
        Just("event: message".to_owned()),
        Just("id: 7".to_owned()),
        Just("retry: 100".to_owned()),
        Just(": comment".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\"Hel\\nlo\"".to_owned()),
        Just(r#"{"error": "boom", "error_type": "ValueError"}"#.to_owned()),
        Just("é€😀".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n\n".to_owned()),
        string_of(PRINTABLE, 0, 12),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn error_kinds() -> impl Strategy<Value = ApiError> {
    prop_oneof![
        Just(UpstreamKind::Reset),
        Just(UpstreamKind::Timeout),
        Just(UpstreamKind::AgentFailed),
        Just(UpstreamKind::Internal),
        Just(UpstreamKind::Throttled),
    ]
    .prop_flat_map(|kind| {
        // The detail is internal (log only), but hostile text must not leak into the event.
        prop_oneof![any_string(40), string_of("ab \n\r:", 0, 40)]
            .prop_map(move |detail| ApiError::from(UpstreamError::new(kind, detail)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (a) Same bytes, same events, however the bytes are split into chunks.
    #[test]
    fn sse_decoding_does_not_depend_on_chunking(
        text in sse_text(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_chunks(vec![Bytes::from(text.clone())]);
        let split = decode_chunks(cut(text.as_bytes(), &cuts));
        prop_assert_eq!(whole, split);
    }

    /// (a) The same for arbitrary bytes, not only text: where the input is not UTF-8 both
    /// fail; where it is, the events are the same.
    #[test]
    fn sse_decoding_of_any_bytes_does_not_depend_on_chunking(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = decode_chunks(vec![Bytes::from(bytes.clone())]);
        let split = decode_chunks(cut(&bytes, &cuts));
        prop_assert_eq!(whole.is_ok(), split.is_ok());
        if let (Ok(whole), Ok(split)) = (whole, split) {
            prop_assert_eq!(whole, split);
        }
    }

    /// (b) After any prefix of an answer (cut anywhere that leaves valid UTF-8), the
    /// in-band error event parses as exactly one more event: the function's error, with
    /// its code, and nothing of the prefix changes meaning except that a half-written
    /// event is closed.
    #[test]
    fn the_error_event_is_one_event_after_any_prefix(
        answer in sse_text(),
        at in any::<usize>(),
        err in error_kinds(),
    ) {
        let mut at = at % (answer.len() + 1);
        while !answer.is_char_boundary(at) {
            at -= 1;
        }
        let prefix = &answer.as_bytes()[..at];
        let mut tracker = BoundaryTracker::default();
        tracker.observe(prefix);
        let needs_terminator = !tracker.at_boundary();
        let event = sse::error_event(&err, needs_terminator);

        let mut closed = prefix.to_vec();
        if needs_terminator {
            closed.extend_from_slice(b"\n\n");
        }
        let before = decode_chunks(vec![Bytes::from(closed)]).expect("text decodes");
        let mut sent = prefix.to_vec();
        sent.extend_from_slice(&event);
        let after = decode_chunks(vec![Bytes::from(sent)]).expect("text decodes");

        prop_assert_eq!(after.len(), before.len() + 1, "{:?} then {:?}", prefix, event);
        prop_assert_eq!(&after[..before.len()], &before[..]);
        let last = &after[before.len()];
        prop_assert!(sse::is_error_event(last));
        let data: serde_json::Value = serde_json::from_str(&last.data).expect("JSON data");
        prop_assert_eq!(&data, &err.to_json());
        prop_assert_eq!(data["error"]["code"].as_str(), Some(err.code()));
    }
}

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-1";

fn configs() -> Vec<Config> {
    let sets: [&[(&str, &str)]; 3] = [
        &[],
        &[
            ("AGENTCORE_AUTH_MODE", "oauth"),
            ("FORWARD_FIELDS", "demo,extra"),
            ("FORWARD_HEADERS", "x-tenant"),
        ],
        &[("MAX_REQUEST_BYTES", "64")],
    ];
    sets.iter()
        .map(|extra| {
            Config::from_lookup(|name| {
                if name == "AGENT_RUNTIME_ARN" {
                    return Some(ARN.to_owned());
                }
                extra
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
            .expect("a valid configuration")
        })
        .collect()
}

/// Headers a client could send: well-known names with hostile values, and arbitrary ones.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("content-type".to_owned()),
        Just("authorization".to_owned()),
        Just("x-session-id".to_owned()),
        Just("x-tenant".to_owned()),
        Just("traceparent".to_owned()),
        Just("x-amzn-trace-id".to_owned()),
        string_of("abcdefghijklmnopqrstuvwxyz-", 1, 12),
    ];
    let value = prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"Bearer abc.def".to_vec()),
        Just(b"session-00000000-0000-4000-8000-000000000000".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec((name, value), 0..6)
}

/// A body: JSON-ish text around the fields the parser reads, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(r#""prompt": "hi""#.to_owned()),
        Just(r#""prompt": " ""#.to_owned()),
        Just(r#""prompt": 3"#.to_owned()),
        Just(r#""session_id": "session-00000000-0000-4000-8000-000000000000""#.to_owned()),
        Just(r#""session_id": "short""#.to_owned()),
        Just(r#""content_type": "text/plain""#.to_owned()),
        Just(r#""accept": "x""#.to_owned()),
        Just(r#""demo": {"tokens": 1}"#.to_owned()),
        (
            string_of("abcdefghijklmnopqrstuvwxyz_", 1, 8),
            any_string(10)
        )
            .prop_map(|(k, v)| format!(
                "{}: {}",
                serde_json::Value::String(k),
                serde_json::Value::String(v)
            )),
    ];
    prop_oneof![
        prop::collection::vec(field, 0..5)
            .prop_map(|f| format!("{{{}}}", f.join(",")).into_bytes()),
        prop::collection::vec(any::<u8>(), 0..120),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (c) The request parser never panics, whatever the method, headers and body; what it
    /// accepts is a valid invocation.
    #[test]
    fn the_request_parser_never_panics(
        method in prop_oneof![Just(Method::POST), Just(Method::GET), Just(Method::OPTIONS)],
        headers in headers(),
        body in body(),
        config in 0usize..3,
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
                map.append(n, v);
            }
        }
        let config = &configs()[config];
        if let Ok(inv) = parse_parts(&method, &map, &body, config) {
            prop_assert_eq!(&method, &Method::POST);
            prop_assert!(body.len() <= config.max_request_bytes);
            prop_assert!(!inv.prompt.trim().is_empty());
            prop_assert!(SessionId::parse(inv.session_id.as_str()).is_ok());
            let payload: serde_json::Value = serde_json::from_slice(&inv.payload).expect("JSON");
            prop_assert_eq!(payload["prompt"].as_str(), Some(inv.prompt.as_str()));
        }
    }

    /// (c) The same through the Lambda entry: an API Gateway event (v1 or v2) with any
    /// body, sent base64-encoded or not, flagged base64 or not (a flagged body that does
    /// not decode made `lambda_http` panic before the handler ran; see entry.rs).
    #[test]
    fn a_lambda_event_with_any_body_and_base64_flag_never_panics(
        v2 in any::<bool>(),
        body in body(),
        encode in any::<bool>(),
        flagged in any::<bool>(),
        headers in headers(),
        config in 0usize..3,
    ) {
        let text = if encode {
            base64::engine::general_purpose::STANDARD.encode(&body)
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        let headers: serde_json::Map<String, serde_json::Value> = headers
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(String::from_utf8_lossy(&v).into_owned())))
            .collect();
        let doc = if v2 {
            serde_json::json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
                "headers": headers,
                "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1", "userAgent": "proptest"}, "stage": "$default"},
                "body": text, "isBase64Encoded": flagged,
            })
        } else {
            serde_json::json!({
                "resource": "/invoke", "path": "/invoke", "httpMethod": "POST",
                "headers": headers, "multiValueHeaders": {},
                "requestContext": {"httpMethod": "POST", "path": "/invoke", "stage": "x"},
                "body": text, "isBase64Encoded": flagged,
            })
        };
        // lambda_http refuses some header names (e.g. upper case in v2) while deserialising:
        // Lambda would never deliver that event to the handler.
        let Ok(payload) = serde_json::from_value::<LambdaRequest>(doc) else {
            return Ok(());
        };
        let event = entry::decodable_body(LambdaEvent::new(payload, Context::default()));
        let req: lambda_http::Request = event.payload.into();
        if let Ok(inv) = parse_lambda_request(&req, &configs()[config]) {
            prop_assert!(!inv.prompt.trim().is_empty());
            if flagged && encode {
                prop_assert_eq!(req.body().as_ref(), &body[..]);
            }
        }
    }

    /// (d) A session id is accepted exactly when it has 33 to 256 characters of the safe
    /// set, and then comes back unchanged.
    #[test]
    fn session_ids_round_trip_or_are_refused(
        id in prop_oneof![
            string_of(SESSION_CHARS, 0, 300),
            string_of(SESSION_CHARS, 30, 40),
            string_of(SESSION_CHARS, 250, 260),
            string_of("Aa0._:-/ é\n", 30, 60),
            any_string(300),
        ],
    ) {
        let valid = (MIN_SESSION_ID_LEN..=MAX_SESSION_ID_LEN).contains(&id.chars().count())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        match SessionId::parse(&id) {
            Ok(parsed) => {
                prop_assert!(valid, "accepted {:?}", id);
                prop_assert_eq!(parsed.as_str(), id.as_str());
                prop_assert_eq!(parsed.to_string(), id.clone());
                prop_assert!(HeaderValue::from_str(parsed.as_str()).is_ok());
                prop_assert_eq!(SessionId::from_client(Some(&id)).ok(), Some((parsed, false)));
            }
            Err(err) => {
                prop_assert!(!valid, "refused {:?}", id);
                prop_assert_eq!(err.code(), "invalid_session_id");
            }
        }
    }

    /// (d) A generated session id is always one the parser accepts.
    #[test]
    fn generated_session_ids_parse(_n in 0u8..8) {
        let (id, generated) = SessionId::from_client(None).expect("generated");
        prop_assert!(generated);
        prop_assert_eq!(SessionId::parse(id.as_str()).ok(), Some(id));
    }

    /// (d) A runtime ARN built from valid parts parses back into those parts.
    #[test]
    fn runtime_arns_round_trip(
        partition in prop_oneof![Just("aws"), Just("aws-cn"), Just("aws-us-gov")],
        region in (string_of(LOWER, 2, 2), prop::option::of(string_of(LOWER, 2, 9)), string_of(DIGITS, 1, 1))
            .prop_map(|(a, b, n)| match b { Some(b) => format!("{a}-{b}-{n}"), None => format!("{a}-{n}") }),
        account in string_of(DIGITS, 12, 12),
        id in string_of(RUNTIME_ID_CHARS, 1, 100),
    ) {
        let arn = format!("arn:{partition}:bedrock-agentcore:{region}:{account}:runtime/{id}");
        let parsed = RuntimeArn::parse(&arn).expect("valid parts");
        prop_assert_eq!(parsed.as_str(), arn.as_str());
        prop_assert_eq!(parsed.region(), region.as_str());
        prop_assert_eq!(parsed.account(), account.as_str());
        prop_assert_eq!(parsed.runtime_id(), id.as_str());
    }

    /// (d) One broken part is enough to refuse an ARN.
    #[test]
    fn runtime_arns_with_one_bad_part_are_refused(
        account in string_of(DIGITS, 12, 12),
        id in string_of(RUNTIME_ID_CHARS, 1, 100),
        which in 0usize..7,
        junk in any::<char>().prop_filter("outside the id set", |c| !RUNTIME_ID_CHARS.contains(*c)),
    ) {
        let mut parts = [
            "arn".to_owned(), "aws".to_owned(), "bedrock-agentcore".to_owned(),
            "us-east-1".to_owned(), account.clone(), format!("runtime/{id}"),
        ];
        match which {
            0 => parts[0] = "urn".to_owned(),
            1 => parts[1] = "gcp".to_owned(),
            2 => parts[2] = "bedrock".to_owned(),
            3 => parts[3] = "US-EAST-1".to_owned(),
            4 => parts[4] = account[..11].to_owned(),
            5 => parts[5] = format!("endpoint/{id}"),
            _ => parts[5] = format!("runtime/{id}{junk}"),
        }
        let arn = parts.join(":");
        prop_assert!(RuntimeArn::parse(&arn).is_err(), "accepted {}", arn);
    }

    /// (d) Any string: parsing never panics, and what is accepted has the documented form.
    #[test]
    fn runtime_arn_parsing_of_any_text(text in prop_oneof![any_string(200), string_of("arn:aws-bedrock-agentcore:us-east-1:123456789012:runtime/x", 0, 120)]) {
        if let Ok(parsed) = RuntimeArn::parse(&text) {
            let suffix = format!(
                ":bedrock-agentcore:{}:{}:runtime/{}",
                parsed.region(), parsed.account(), parsed.runtime_id()
            );
            prop_assert!(text.starts_with("arn:aws") && text.ends_with(&suffix), "{}", text);
        }
    }
}

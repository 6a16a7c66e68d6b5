//! End-to-end tests of the three options through the real path: the client's request goes
//! through `cargo lambda watch` (Function URL, `Invoke`, `InvokeWithResponseStream`) or the
//! API Gateway emulator, the handlers call `agentcore-local` through the AWS SDK, and the
//! demo agent answers with the knobs each test sends in its `"demo"` object.
//!
//! Every test binary shares one stack (see `common`), and each test holds the lock of the
//! function it calls (`cargo lambda watch` runs one instance per function).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Option 2: Function URL
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn option2_streams_a_paced_answer_as_it_is_produced() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    let prompt = "stream this answer to me please";
    let sid = session_id("paced-o2");
    let request = json!({
        "prompt": prompt,
        "session_id": sid,
        "demo": {"tokens": 50, "delay_ms": 20},
    });
    let sent = Instant::now();
    let resp = post_json(&client, &stack.urls().option2, request.to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    let (timed, err) = read_timed(resp, sent).await;
    assert_eq!(err, None, "the stream ends cleanly");

    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    assert_eq!(
        headers.get("x-session-id").and_then(|v| v.to_str().ok()),
        Some(sid.as_str()),
        "the client's session id is echoed"
    );

    // 50 events, 20 ms apart: the agent needs ~1 s to produce them all.
    let (first, last) = (timed.first(), timed.last());
    eprintln!(
        "option 2 paced: first chunk {first:?}, last {last:?}, {} chunks",
        timed.chunks.len()
    );
    assert!(
        first < Duration::from_millis(400),
        "first event after {first:?}: the answer was buffered"
    );
    assert!(
        last >= Duration::from_millis(950),
        "the whole answer arrived after {last:?}, faster than it can be produced"
    );
    assert!(
        timed.chunks.len() >= 10,
        "only {} chunks: the answer was not streamed event by event",
        timed.chunks.len()
    );

    let events = sse_events(&timed.bytes()).await;
    assert_eq!(events.len(), 50);
    assert!(events.iter().all(|(name, _)| name == "message"));
    assert_eq!(events_text(&events), demo_text(prompt, 50));

    // The agent saw the client's session id.
    let seen = stack.local().expect("local runtime").requests();
    assert!(
        seen.iter()
            .any(|r| r.session_id.as_deref() == Some(sid.as_str()) && r.status == 200),
        "agentcore-local did not see session {sid}"
    );
}

#[tokio::test]
async fn option2_generates_a_session_id_when_none_is_sent() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let answer = send(post_json(
        &http(),
        &stack.urls().option2,
        body("hello there", json!({"tokens": 5})),
    ))
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let sid = answer
        .header("x-session-id")
        .expect("x-session-id")
        .to_owned();
    assert!(
        sid.starts_with("session-") && sid.len() >= 33,
        "generated session id {sid:?}"
    );
    let events = sse_events(&answer.body).await;
    assert_eq!(events_text(&events), demo_text("hello there", 5));
    answer.assert_no_secrets("option 2 answer");
}

/// Checks a `total_bytes` SSE answer as it streams in: events `data: "<text>"\n\n` whose
/// texts continue the demo's filler text without a gap, for exactly `total` bytes.
struct FillerChecker {
    pending: Vec<u8>,
    cycle: Vec<u8>,
    text_pos: usize,
    bytes: u64,
    events: u64,
}

impl FillerChecker {
    fn new() -> Self {
        let filler = agentcore_local::demo::FILLER_TEXT.as_bytes();
        let mut cycle = Vec::new();
        while cycle.len() < 4096 + filler.len() {
            cycle.extend_from_slice(filler);
        }
        Self {
            pending: Vec::new(),
            cycle,
            text_pos: 0,
            bytes: 0,
            events: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.pending.extend_from_slice(chunk);
        let filler_len = agentcore_local::demo::FILLER_TEXT.len();
        let mut start = 0;
        while let Some(end) = self.pending[start..]
            .windows(3)
            .position(|w| w == b"\"\n\n")
            .map(|i| start + i)
        {
            let event = &self.pending[start..end];
            let text = event.strip_prefix(b"data: \"").unwrap_or_else(|| {
                panic!(
                    "event {} at byte {} is not `data: \"...\"`: {:?}",
                    self.events,
                    self.bytes,
                    String::from_utf8_lossy(&event[..event.len().min(40)])
                )
            });
            assert!(text.len() <= 4096, "event {} is too long", self.events);
            let offset = self.text_pos % filler_len;
            assert!(
                text == &self.cycle[offset..offset + text.len()],
                "event {} does not continue the filler text at text offset {}",
                self.events,
                self.text_pos
            );
            self.text_pos += text.len();
            self.events += 1;
            start = end + 3;
        }
        self.pending.drain(..start);
        assert!(
            self.pending.len() < 8192,
            "no event boundary in the last {} bytes",
            self.pending.len()
        );
    }
}

#[tokio::test]
async fn option2_streams_fifty_megabytes_byte_exact() {
    const TOTAL: u64 = 52_428_800;
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    let sent = Instant::now();
    let resp = post_json(
        &client,
        &stack.urls().option2,
        body("big", json!({"total_bytes": TOTAL})),
    )
    .send()
    .await
    .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut checker = FillerChecker::new();
    let mut stream = resp.bytes_stream();
    let mut first = None;
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.unwrap_or_else(|e| panic!("the stream broke after {} bytes: {e}", checker.bytes));
        first.get_or_insert_with(|| sent.elapsed());
        checker.push(&chunk);
    }
    let elapsed = sent.elapsed();
    eprintln!(
        "option 2: {} bytes in {} events, first chunk after {first:?}, all in {elapsed:?}",
        checker.bytes, checker.events
    );
    assert_eq!(checker.bytes, TOTAL, "byte count");
    assert!(
        checker.pending.is_empty(),
        "the answer ends inside an event (or with an in-band error): {:?}",
        String::from_utf8_lossy(&checker.pending[..checker.pending.len().min(300)])
    );
    assert!(checker.events >= TOTAL / 1024, "{} events", checker.events);
}

// ---------------------------------------------------------------------------------------
// Option 1: Invoke with a REST v1 proxy event, and the API Gateway emulator
// ---------------------------------------------------------------------------------------

fn expected_response_field(prompt: &str, tokens: u64) -> String {
    agentcore_local::demo_text(prompt, tokens)
        .iter()
        .map(|t| Value::String(t.clone()).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn option1_invoke_answers_with_a_v1_response_and_the_whole_text() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    let prompt = "what is the buffered answer";
    let sid = session_id("o1-invoke");
    let request = json!({"prompt": prompt, "session_id": sid, "demo": {"tokens": 20}});
    let (answer, doc) = invoke_option1(&v1_post(&request.to_string())).await;
    assert_eq!(answer.status, 200, "{doc}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("x-session-id"), Some(sid.as_str()));
    let body: Value = serde_json::from_slice(&answer.body).expect("body is JSON");
    assert_eq!(body["session_id"], json!(sid));
    assert_eq!(body["content_type"], json!("text/event-stream"));
    assert_eq!(body["text"], json!(demo_text(prompt, 20)));
    assert_eq!(body["response"], json!(expected_response_field(prompt, 20)));
    answer.assert_no_secrets("option 1 answer");
}

#[tokio::test]
async fn option1_refuses_an_answer_over_max_response_bytes() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    let request = body("big", json!({"total_bytes": MAX_RESPONSE_BYTES + 200_000}));
    let (answer, doc) = invoke_option1(&v1_post(&request)).await;
    answer.assert_error("oversized answer", 502, "response_too_large");
    assert!(doc["body"].as_str().is_some_and(|b| b.len() < 10_000));
}

#[tokio::test]
async fn option1_through_the_api_gateway_emulator() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    let prompt = "through the gateway";
    let answer = send(post_json(
        &http(),
        &stack.urls().option1,
        body(prompt, json!({"tokens": 7})),
    ))
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let sid = answer
        .header("x-session-id")
        .expect("x-session-id")
        .to_owned();
    let body: Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(body["session_id"], json!(sid));
    assert_eq!(body["text"], json!(demo_text(prompt, 7)));
    assert_eq!(body["response"], json!(expected_response_field(prompt, 7)));
    answer.assert_no_secrets("option 1 gateway answer");

    // An error through the gateway keeps the function's status and JSON error.
    let answer = send(post_json(&http(), &stack.urls().option1, "{}")).await;
    answer.assert_error("gateway missing prompt", 400, "missing_prompt");
}

#[tokio::test]
async fn option1_gives_up_at_its_response_deadline() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    // 100 tokens 100 ms apart: ~10 s, past the 5 s deadline.
    let request = body("slow", json!({"tokens": 100, "delay_ms": 100}));
    let started = Instant::now();
    let (answer, _) = invoke_option1(&v1_post(&request)).await;
    let elapsed = started.elapsed();
    answer.assert_error("deadline", 504, "upstream_timeout");
    let deadline = Duration::from_millis(RESPONSE_DEADLINE_MS);
    assert!(
        elapsed >= deadline - Duration::from_millis(300)
            && elapsed < deadline + Duration::from_secs(3),
        "answered after {elapsed:?}, deadline {deadline:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Option 3: InvokeWithResponseStream with a REST v1 event, and the API Gateway emulator
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn option3_invoke_with_response_stream_streams_prelude_then_body() {
    let _ = stack();
    let _guard = lock(OPTION3).await;
    let prompt = "stream through the sdk";
    let sid = session_id("o3-stream");
    let request = json!({
        "prompt": prompt,
        "session_id": sid,
        "demo": {"tokens": 50, "delay_ms": 20},
    });
    let streamed = invoke_option3_stream(&v1_post(&request.to_string())).await;
    assert_eq!(streamed.status, 200, "{}", streamed.answer().text());
    assert!(streamed.completed, "InvokeComplete arrived");
    assert_eq!(streamed.error_code, None);
    let answer = streamed.answer();
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    assert_eq!(answer.header("x-session-id"), Some(sid.as_str()));
    assert_eq!(answer.header("cache-control"), Some("no-cache"));

    let (first, last) = (streamed.body.first(), streamed.body.last());
    eprintln!(
        "option 3 stream: first chunk {first:?}, last {last:?}, {} chunks",
        streamed.body.chunks.len()
    );
    assert!(
        first < Duration::from_millis(400),
        "first payload chunk after {first:?}"
    );
    assert!(
        last >= Duration::from_millis(950),
        "last chunk after {last:?}"
    );
    assert!(streamed.body.chunks.len() >= 10);

    let events = sse_events(&answer.body).await;
    assert_eq!(events.len(), 50);
    assert_eq!(events_text(&events), demo_text(prompt, 50));
    answer.assert_no_secrets("option 3 answer");
}

#[tokio::test]
async fn option3_through_the_api_gateway_emulator_streams() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let prompt = "stream through the gateway";
    let client = http();
    let sent = Instant::now();
    let resp = post_json(
        &client,
        &stack.urls().option3,
        body(prompt, json!({"tokens": 50, "delay_ms": 20})),
    )
    .send()
    .await
    .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    let (timed, err) = read_timed(resp, sent).await;
    assert_eq!(err, None);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert!(headers.get("x-session-id").is_some());
    let (first, last) = (timed.first(), timed.last());
    eprintln!("option 3 gateway: first chunk {first:?}, last {last:?}");
    assert!(
        first < Duration::from_millis(400),
        "first chunk after {first:?}"
    );
    assert!(
        last >= Duration::from_millis(950),
        "last chunk after {last:?}"
    );
    let events = sse_events(&timed.bytes()).await;
    assert_eq!(events_text(&events), demo_text(prompt, 50));
}

// ---------------------------------------------------------------------------------------
// Bad input and injected faults, through each option
// ---------------------------------------------------------------------------------------

/// One bad request and the answer it must get.
struct Case {
    name: &'static str,
    method: &'static str,
    content_type: Option<&'static str>,
    session_header: Option<String>,
    body: String,
    status: u16,
    code: &'static str,
    retry_after: Option<&'static str>,
}

fn case(name: &'static str, body: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        content_type: Some("application/json"),
        session_header: None,
        body: body.into(),
        status,
        code,
        retry_after: None,
    }
}

fn bad_input_cases() -> Vec<Case> {
    let prompt = |sid: &str| json!({"prompt": "hi", "session_id": sid}).to_string();
    vec![
        case("malformed JSON", r#"{"prompt": "hi","#, 400, "invalid_json"),
        case("JSON array", r#"["prompt"]"#, 400, "invalid_json"),
        case(
            "missing prompt",
            r#"{"question": "hi"}"#,
            400,
            "missing_prompt",
        ),
        case("empty prompt", r#"{"prompt": "  "}"#, 400, "empty_prompt"),
        case("numeric prompt", r#"{"prompt": 42}"#, 400, "invalid_prompt"),
        case(
            "object prompt",
            r#"{"prompt": {"text": "hi"}}"#,
            400,
            "invalid_prompt",
        ),
        case(
            "body over MAX_REQUEST_BYTES",
            json!({"prompt": "x".repeat(MAX_REQUEST_BYTES + 10)}).to_string(),
            413,
            "body_too_large",
        ),
        case(
            "16-char session id",
            prompt(&"s".repeat(16)),
            400,
            "invalid_session_id",
        ),
        case(
            "300-char session id",
            prompt(&"s".repeat(300)),
            400,
            "invalid_session_id",
        ),
        case(
            "session id with bad characters",
            prompt("bad session id with spaces/and/slashes!!"),
            400,
            "invalid_session_id",
        ),
        Case {
            session_header: Some("too-short-header".into()),
            ..case(
                "16-char session id header",
                r#"{"prompt": "hi"}"#,
                400,
                "invalid_session_id",
            )
        },
        Case {
            method: "GET",
            content_type: None,
            ..case("GET", "", 405, "method_not_allowed")
        },
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain",
                r#"{"prompt": "hi"}"#,
                415,
                "unsupported_media_type",
            )
        },
    ]
}

fn fault_cases() -> Vec<Case> {
    [
        ("ValidationException", 400, "upstream_validation", None),
        ("AccessDeniedException", 502, "upstream_access_denied", None),
        ("ResourceNotFoundException", 502, "agent_not_found", None),
        ("RetryableConflictException", 409, "session_busy", Some("1")),
        ("RuntimeClientError", 502, "agent_error", None),
        ("ThrottlingException", 429, "throttled", Some("1")),
        (
            "ServiceQuotaExceededException",
            429,
            "quota_exceeded",
            Some("30"),
        ),
        ("InternalServerException", 502, "upstream_error", None),
    ]
    .into_iter()
    .map(|(fault, status, code, retry_after)| Case {
        retry_after,
        // The fault message names the runtime ARN and the key id: neither may reach the
        // client.
        ..case(
            fault,
            body(
                "hi",
                json!({
                    "fault": fault,
                    "fault_message": format!(
                        "{fault} for {} signed by {ACCESS_KEY_ID}",
                        agentcore_local::DEFAULT_RUNTIME_ARN
                    ),
                }),
            ),
            status,
            code,
        )
    })
    .collect()
}

/// Checks one answer against its case.
fn check_case(option: &str, c: &Case, answer: &Answer) {
    let what = format!("{option}: {}", c.name);
    answer.assert_error(&what, c.status, c.code);
    assert_eq!(
        answer.header("retry-after"),
        c.retry_after,
        "{what}: Retry-After"
    );
    if c.code == "method_not_allowed" {
        let allow = answer.header("allow").unwrap_or_default();
        assert!(allow.contains("POST"), "{what}: Allow {allow:?}");
    }
    if c.code.starts_with("upstream")
        || matches!(
            c.code,
            "agent_not_found" | "session_busy" | "agent_error" | "throttled" | "quota_exceeded"
        )
    {
        assert!(
            answer.header("x-session-id").is_some(),
            "{what}: an upstream error carries the session id"
        );
    }
}

fn http_request(client: &reqwest::Client, url: &str, c: &Case) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(sid) = &c.session_header {
        req = req.header("x-session-id", sid);
    }
    if !c.body.is_empty() {
        req = req.body(c.body.clone());
    }
    req
}

fn v1_case_event(c: &Case) -> Value {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(ct) = c.content_type {
        headers.push(("Content-Type", ct));
    }
    if let Some(sid) = &c.session_header {
        headers.push(("X-Session-Id", sid.as_str()));
    }
    let mut event = v1_event(
        c.method,
        &headers,
        (!c.body.is_empty()).then_some(c.body.as_str()),
    );
    if c.content_type.is_none() {
        for key in ["headers", "multiValueHeaders"] {
            if let Some(map) = event[key].as_object_mut() {
                map.retain(|k, _| !k.eq_ignore_ascii_case("content-type"));
            }
        }
    }
    event
}

#[tokio::test]
async fn option2_bad_inputs_and_faults() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    for c in bad_input_cases().iter().chain(fault_cases().iter()) {
        let answer = send(http_request(&client, &stack.urls().option2, c)).await;
        check_case("option 2 (Function URL)", c, &answer);
    }
}

#[tokio::test]
async fn option1_bad_inputs_and_faults() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    for c in bad_input_cases().iter().chain(fault_cases().iter()) {
        let (answer, _) = invoke_option1(&v1_case_event(c)).await;
        check_case("option 1 (Invoke)", c, &answer);
    }
}

#[tokio::test]
async fn option3_bad_inputs_and_faults() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let client = http();
    for c in bad_input_cases().iter().chain(fault_cases().iter()) {
        let answer = send(http_request(&client, &stack.urls().option3, c)).await;
        check_case("option 3 (API Gateway emulator)", c, &answer);
    }
    // And a few straight through InvokeWithResponseStream.
    for c in bad_input_cases()
        .iter()
        .chain(fault_cases().iter())
        .filter(|c| {
            matches!(
                c.code,
                "invalid_json" | "body_too_large" | "method_not_allowed" | "throttled"
            )
        })
    {
        let streamed = invoke_option3_stream(&v1_case_event(c)).await;
        assert!(streamed.completed && streamed.error_code.is_none());
        check_case("option 3 (InvokeWithResponseStream)", c, &streamed.answer());
    }
}

// ---------------------------------------------------------------------------------------
// A reset mid-stream and a slow first byte
// ---------------------------------------------------------------------------------------

const RESET_AFTER: u64 = 4;

/// A stream reset after `RESET_AFTER` events: the events before it, then one in-band
/// `event: error` with code `upstream_reset`, then the end.
async fn assert_reset_stream(what: &str, status: u16, headers: &Answer, body: &[u8], prompt: &str) {
    assert_eq!(status, 200, "{what}");
    assert_eq!(
        headers.header("content-type"),
        Some("text/event-stream"),
        "{what}"
    );
    let events = sse_events(body).await;
    let (last, before) = events.split_last().expect("events");
    assert_eq!(before.len() as u64, RESET_AFTER, "{what}: {events:?}");
    assert_eq!(
        events_text(before),
        demo_text(prompt, RESET_AFTER),
        "{what}"
    );
    assert_eq!(last.0, "error", "{what}: last event {last:?}");
    assert_eq!(error_code(last.1.as_bytes()), "upstream_reset", "{what}");
    assert_no_secrets(what, &String::from_utf8_lossy(body));
}

fn reset_body(prompt: &str) -> String {
    body(prompt, json!({"tokens": 10, "reset_after": RESET_AFTER}))
}

#[tokio::test]
async fn option2_reset_mid_stream_ends_with_an_error_event() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    let prompt = "reset me midway";
    let sent = Instant::now();
    let resp = post_json(&client, &stack.urls().option2, reset_body(prompt))
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let headers = Answer {
        status,
        headers: resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: Vec::new(),
    };
    let (timed, err) = read_timed(resp, sent).await;
    assert_eq!(err, None, "the stream ends cleanly after the error event");
    assert_reset_stream("option 2", status, &headers, &timed.bytes(), prompt).await;
}

#[tokio::test]
async fn option3_reset_mid_stream_ends_with_an_error_event() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let prompt = "reset me midway";
    let streamed = invoke_option3_stream(&v1_post(&reset_body(prompt))).await;
    assert!(streamed.completed, "InvokeComplete arrived");
    assert_eq!(streamed.error_code, None, "the function did not fail");
    let answer = streamed.answer();
    assert_reset_stream(
        "option 3 (InvokeWithResponseStream)",
        streamed.status,
        &answer,
        &answer.body,
        prompt,
    )
    .await;

    let answer = send(post_json(
        &http(),
        &stack.urls().option3,
        reset_body(prompt),
    ))
    .await;
    assert_reset_stream(
        "option 3 (API Gateway emulator)",
        answer.status,
        &answer,
        &answer.body,
        prompt,
    )
    .await;
}

#[tokio::test]
async fn option1_reset_mid_stream_is_a_502() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    let (answer, _) = invoke_option1(&v1_post(&reset_body("reset me"))).await;
    answer.assert_error("option 1 reset", 502, "upstream_reset");
}

fn slow_first_byte_body() -> String {
    body(
        "slow start",
        json!({"first_byte_delay_ms": 2 * FIRST_BYTE_TIMEOUT_MS}),
    )
}

fn assert_first_byte_timeout(what: &str, answer: &Answer, elapsed: Duration) {
    answer.assert_error(what, 504, "upstream_timeout");
    let limit = Duration::from_millis(FIRST_BYTE_TIMEOUT_MS);
    assert!(
        elapsed >= limit - Duration::from_millis(100)
            && elapsed < Duration::from_millis(2 * FIRST_BYTE_TIMEOUT_MS),
        "{what}: answered after {elapsed:?}, first-byte limit {limit:?}"
    );
}

#[tokio::test]
async fn option2_slow_first_byte_is_a_504() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let started = Instant::now();
    let answer = send(post_json(
        &http(),
        &stack.urls().option2,
        slow_first_byte_body(),
    ))
    .await;
    assert_first_byte_timeout("option 2", &answer, started.elapsed());
}

#[tokio::test]
async fn option1_slow_first_byte_is_a_504() {
    let _ = stack();
    let _guard = lock(OPTION1).await;
    let started = Instant::now();
    let (answer, _) = invoke_option1(&v1_post(&slow_first_byte_body())).await;
    assert_first_byte_timeout("option 1", &answer, started.elapsed());
}

#[tokio::test]
async fn option3_slow_first_byte_is_a_504() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let started = Instant::now();
    let streamed = invoke_option3_stream(&v1_post(&slow_first_byte_body())).await;
    assert_first_byte_timeout(
        "option 3 (InvokeWithResponseStream)",
        &streamed.answer(),
        started.elapsed(),
    );
    let started = Instant::now();
    let answer = send(post_json(
        &http(),
        &stack.urls().option3,
        slow_first_byte_body(),
    ))
    .await;
    assert_first_byte_timeout(
        "option 3 (API Gateway emulator)",
        &answer,
        started.elapsed(),
    );
}

// ---------------------------------------------------------------------------------------
// Client disconnect
// ---------------------------------------------------------------------------------------

/// What a client disconnect does here: `cargo lambda watch` closes the function's response
/// stream, the runtime drops the body, and the handler logs that the upstream read stopped.
/// The function's own log is the evidence that the abandoned answer was not read to its end:
/// under watch the function takes the next invocation while an earlier body is still
/// streaming, so the follow-up request's latency alone would prove nothing.
#[tokio::test]
async fn option2_client_disconnect_stops_the_upstream_read() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    let sid = session_id("disconnect");
    // 200 events 50 ms apart: ~10 s if nobody stops it.
    let request = json!({
        "prompt": "a long answer",
        "session_id": sid,
        "demo": {"tokens": 200, "delay_ms": 50},
    });
    let resp = post_json(&client, &stack.urls().option2, request.to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    let first = stream.next().await.expect("a first chunk").expect("chunk");
    assert!(first.starts_with(b"data: "), "{first:?}");
    let abandoned = Instant::now();
    drop(stream);
    drop(client);

    // The handler notices at its next write (one event later) and drops the upstream.
    let went_away = "client went away before the end of the stream";
    let line = loop {
        let log = watch_log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains(&sid) && (l.contains(went_away) || l.contains("stream complete")))
        {
            break line.to_owned();
        }
        assert!(
            abandoned.elapsed() < Duration::from_secs(3),
            "3 s after the client left, the function still streams session {sid}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "option 2 disconnect: after {:?}: {line}",
        abandoned.elapsed()
    );
    assert!(line.contains(went_away), "{line}");
    let doc: Value = serde_json::from_str(&line).expect("JSON log line");
    let chunks = doc["chunks"].as_u64().expect("chunks");
    assert!(chunks < 20, "{chunks} of 200 events were read upstream");

    // And the function still answers.
    let started = Instant::now();
    let answer = send(post_json(
        &http(),
        &stack.urls().option2,
        body("next please", json!({"tokens": 3})),
    ))
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        events_text(&sse_events(&answer.body).await),
        demo_text("next please", 3)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

//! End to end through the three options: answers as real agents give them. An empty turn,
//! the `bedrock-agentcore` SDK's error event, a JSON or text answer that breaks
//! mid-stream, an answer that fits Lambda's limit only before its last escaping, and an
//! event whose base64 body does not decode. The demo agent of `agentcore-local` produces
//! each of them with the knobs in the request's `"demo"` object.

mod common;

use agentcore_core::collect::ENVELOPE_OVERHEAD;
use agentcore_local::AGENT_EXCEPTION_TEXT;
use common::*;
use serde_json::{json, Value};

/// What no client may see of an agent's exception (its text, its class, its secrets).
fn assert_no_agent_internals(what: &str, text: &str) {
    for internal in [
        AGENT_EXCEPTION_TEXT,
        "OperationalError",
        "hunter2",
        "/app/agent.py",
    ] {
        assert!(
            !text.contains(internal),
            "{what} leaks {internal:?}: {text}"
        );
    }
    assert_no_secrets(what, text);
}

// ---------------------------------------------------------------------------------------
// An agent turn that yields nothing
// ---------------------------------------------------------------------------------------

fn empty_turn() -> String {
    body("use a tool and say nothing", json!({"tokens": 0}))
}

fn assert_empty_stream(what: &str, answer: &Answer) {
    assert_eq!(answer.status, 200, "{what}: {}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("text/event-stream"),
        "{what}"
    );
    assert!(answer.header("x-session-id").is_some(), "{what}");
    assert!(answer.body.is_empty(), "{what}: {:?}", answer.text());
}

#[tokio::test]
async fn option2_answers_an_empty_turn_with_an_empty_stream() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let answer = send(post_json(&http(), &stack.urls().option2, empty_turn())).await;
    assert_empty_stream("option 2", &answer);
    // The process is still there and serves the next request.
    let answer = send(post_json(
        &http(),
        &stack.urls().option2,
        body("next", json!({"tokens": 2})),
    ))
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        events_text(&sse_events(&answer.body).await),
        demo_text("next", 2)
    );
}

#[tokio::test]
async fn option3_answers_an_empty_turn_with_an_empty_stream() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let streamed = invoke_option3_stream(&v1_post(&empty_turn())).await;
    assert!(streamed.completed, "InvokeComplete arrived");
    assert_eq!(streamed.error_code, None, "no function error");
    assert_empty_stream("option 3 (InvokeWithResponseStream)", &streamed.answer());
    let answer = send(post_json(&http(), &stack.urls().option3, empty_turn())).await;
    assert_empty_stream("option 3 (API Gateway emulator)", &answer);
}

#[tokio::test]
async fn option1_answers_an_empty_turn_with_empty_response_and_text() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    let (invoked, _) = invoke_option1(&v1_post(&empty_turn())).await;
    let through_gateway = send(post_json(&http(), &stack.urls().option1, empty_turn())).await;
    for (what, answer) in [
        ("Invoke", invoked),
        ("API Gateway emulator", through_gateway),
    ] {
        assert_eq!(answer.status, 200, "{what}: {}", answer.text());
        let doc: Value = serde_json::from_slice(&answer.body).expect("JSON");
        assert_eq!(doc["response"], json!(""), "{what}: {doc}");
        assert_eq!(doc["text"], json!(""), "{what}: {doc}");
        assert_eq!(doc["content_type"], json!("text/event-stream"), "{what}");
        assert_eq!(doc["session_id"].as_str(), answer.header("x-session-id"));
    }
}

// ---------------------------------------------------------------------------------------
// The SDK's error event
// ---------------------------------------------------------------------------------------

const TOKENS_BEFORE_ERROR: u64 = 3;

fn failing_agent(prompt: &str) -> String {
    body(
        prompt,
        json!({"tokens": 10, "error_after": TOKENS_BEFORE_ERROR}),
    )
}

/// The tokens before the agent's error event, then the function's own `agent_error`.
async fn assert_agent_error_stream(what: &str, answer: &Answer, prompt: &str) {
    assert_eq!(answer.status, 200, "{what}");
    let events = sse_events(&answer.body).await;
    let (last, before) = events.split_last().expect("events");
    assert_eq!(
        before.len() as u64,
        TOKENS_BEFORE_ERROR,
        "{what}: {events:?}"
    );
    assert_eq!(
        events_text(before),
        demo_text(prompt, TOKENS_BEFORE_ERROR),
        "{what}"
    );
    assert_eq!(last.0, "error", "{what}: last event {last:?}");
    assert_eq!(error_code(last.1.as_bytes()), "agent_error", "{what}");
    assert_no_agent_internals(what, &answer.text());
}

/// The operator's log has the agent's error with the session it belongs to: its class and
/// the fingerprint of its text, by which the agent's own log finds it; never the text.
fn assert_logged(what: &str, session_id: &str) {
    use sha2::Digest;
    let fingerprint = hex::encode(&sha2::Sha256::digest(AGENT_EXCEPTION_TEXT.as_bytes())[..8]);
    let log = watch_log();
    assert!(
        log.lines()
            .any(|l| l.contains(session_id) && l.contains(&format!("sha256 {fingerprint}"))),
        "{what}: the agent's error for {session_id} is not in the log with its fingerprint"
    );
    assert!(
        !log.contains(AGENT_EXCEPTION_TEXT),
        "{what}: the agent's exception text reached the log"
    );
}

#[tokio::test]
async fn option2_replaces_the_agents_error_event_with_agent_error() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let prompt = "fail for me";
    let answer = send(post_json(
        &http(),
        &stack.urls().option2,
        failing_agent(prompt),
    ))
    .await;
    assert_agent_error_stream("option 2", &answer, prompt).await;
    assert_logged("option 2", answer.header("x-session-id").expect("session"));
}

#[tokio::test]
async fn option3_replaces_the_agents_error_event_with_agent_error() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    let prompt = "fail for me";
    let streamed = invoke_option3_stream(&v1_post(&failing_agent(prompt))).await;
    assert!(streamed.completed && streamed.error_code.is_none());
    let answer = streamed.answer();
    assert_agent_error_stream("option 3 (InvokeWithResponseStream)", &answer, prompt).await;
    let answer = send(post_json(
        &http(),
        &stack.urls().option3,
        failing_agent(prompt),
    ))
    .await;
    assert_agent_error_stream("option 3 (API Gateway emulator)", &answer, prompt).await;
    assert_logged("option 3", answer.header("x-session-id").expect("session"));
}

#[tokio::test]
async fn option1_answers_the_agents_error_event_with_502_agent_error() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    let (invoked, _) = invoke_option1(&v1_post(&failing_agent("fail"))).await;
    let through_gateway = send(post_json(
        &http(),
        &stack.urls().option1,
        failing_agent("fail"),
    ))
    .await;
    for (what, answer) in [
        ("Invoke", invoked),
        ("API Gateway emulator", through_gateway),
    ] {
        answer.assert_error(what, 502, "agent_error");
        assert_no_agent_internals(what, &answer.text());
        assert_logged(what, answer.header("x-session-id").expect("session"));
    }
}

// ---------------------------------------------------------------------------------------
// JSON and text answers that break mid-stream
// ---------------------------------------------------------------------------------------

fn breaking(format: &str) -> String {
    body(
        "break",
        json!({"format": format, "tokens": 10, "chunk_bytes": 1, "reset_after": 3}),
    )
}

/// What arrived before the abort is the start of the answer and nothing else.
fn assert_no_appended_text(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!bytes.is_empty(), "{what}: some of the answer arrived");
    for appended in ["event:", "error", "Lambda-Runtime"] {
        assert!(!text.contains(appended), "{what}: {appended:?} in {text:?}");
    }
}

#[tokio::test]
async fn option2_aborts_a_json_or_text_answer_that_breaks_mid_stream() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    for format in ["json", "text"] {
        let what = format!("option 2 {format}");
        let resp = post_json(&http(), &stack.urls().option2, breaking(format))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200, "{what}");
        let (timed, err) = read_timed(resp, std::time::Instant::now()).await;
        assert!(
            err.is_some(),
            "{what}: the client must see a failed transfer"
        );
        assert_no_appended_text(&what, &timed.bytes());
    }
}

#[tokio::test]
async fn option3_aborts_a_json_or_text_answer_that_breaks_mid_stream() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    for format in ["json", "text"] {
        let what = format!("option 3 {format} (InvokeWithResponseStream)");
        let streamed = invoke_option3_stream(&v1_post(&breaking(format))).await;
        assert!(streamed.completed, "{what}");
        assert!(
            streamed.error_code.is_some(),
            "{what}: InvokeComplete reports the failure"
        );
        assert_no_appended_text(&what, &streamed.body.bytes());

        let what = format!("option 3 {format} (API Gateway emulator)");
        let resp = post_json(&http(), &stack.urls().option3, breaking(format))
            .send()
            .await
            .expect("sent");
        let (timed, err) = read_timed(resp, std::time::Instant::now()).await;
        assert!(
            err.is_some(),
            "{what}: the client must see a failed transfer"
        );
        assert_no_appended_text(&what, &timed.bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Option 1's size limit, on the response Lambda returns
// ---------------------------------------------------------------------------------------

/// A plain-text answer of `bytes` quotes, backslashes and newlines: each byte takes two
/// in the JSON document (which holds the answer twice, as `response` and `text`), and
/// about four in the response Lambda returns, where the document is escaped again.
fn escaping_heavy(bytes: u64) -> String {
    body(
        "quotes",
        json!({"format": "text", "total_bytes": bytes, "filler": "\"\\\n"}),
    )
}

#[tokio::test]
async fn option1_refuses_an_answer_whose_escaped_response_is_over_lambdas_limit() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    // 1.4 MB: a 5.6 MB document (under MAX_RESPONSE_BYTES), but ~10 MB once escaped
    // into the response, which Lambda (here the local Lambda API) would refuse.
    let request = escaping_heavy(1_400_000);
    let (invoked, _) = invoke_option1(&v1_post(&request)).await;
    invoked.assert_error("Invoke", 502, "response_too_large");
    let through_gateway = send(post_json(&http(), &stack.urls().option1, request)).await;
    through_gateway.assert_error("API Gateway emulator", 502, "response_too_large");
}

#[tokio::test]
async fn option1_returns_an_escaping_heavy_answer_that_fits_and_its_envelope_overhead_is_bounded() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    // 0.7 MB: ~5.1 MB once escaped into the response.
    let request = escaping_heavy(700_000);
    let (answer, doc) = invoke_option1(&v1_post(&request)).await;
    assert_eq!(answer.status, 200);
    let body = doc["body"].as_str().expect("body");
    let envelope = serde_json::to_vec(&doc).expect("JSON").len();
    let escaped_body = serde_json::to_string(body).expect("JSON").len();
    assert!(
        envelope > 5_000_000 && envelope - escaped_body < ENVELOPE_OVERHEAD,
        "the response is {envelope} bytes, {} around the body",
        envelope - escaped_body
    );
    let text = |body: &[u8]| -> String {
        let doc: Value = serde_json::from_slice(body).expect("JSON");
        doc["text"].as_str().expect("text").to_owned()
    };
    let expected = "\"\\\n".repeat(700_000 / 3) + "\"";
    assert!(text(&answer.body) == expected, "option 1 changed the text");
    let through_gateway = send(post_json(&http(), &stack.urls().option1, request)).await;
    assert_eq!(through_gateway.status, 200);
    assert!(
        text(&through_gateway.body) == expected,
        "the gateway changed the text"
    );
}

// ---------------------------------------------------------------------------------------
// A body flagged base64 that does not decode
// ---------------------------------------------------------------------------------------

const NOT_BASE64: &str = "{\"prompt\": \"this is not base64\"}";

#[tokio::test]
async fn an_undecodable_base64_body_is_400_invalid_encoding_on_every_option() {
    let _ = stack();
    let mut v1 = v1_post(NOT_BASE64);
    v1["isBase64Encoded"] = json!(true);
    {
        let _guard = lock(OPTION1).await;
        let (answer, _) = invoke_option1(&v1).await;
        answer.assert_error("option 1", 400, "invalid_encoding");
    }
    for (function, event) in [(OPTION2, v2_post(NOT_BASE64, true)), (OPTION3, v1.clone())] {
        let _guard = lock(function).await;
        let streamed = invoke_stream(function, &event).await;
        assert!(
            streamed.completed && streamed.error_code.is_none(),
            "{function}"
        );
        streamed
            .answer()
            .assert_error(function, 400, "invalid_encoding");
        // And the same function then serves a valid base64 body.
        let valid = base64_body(r#"{"prompt": "hi", "demo": {"tokens": 2}}"#);
        let mut event = event.clone();
        event["body"] = json!(valid);
        let streamed = invoke_stream(function, &event).await;
        assert_eq!(streamed.status, 200, "{function}");
    }
}

fn base64_body(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

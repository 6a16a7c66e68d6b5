//! The request model over every Lambda event shape a handler receives, decoded by
//! `lambda_http` itself: API Gateway REST v1 (plain and base64 bodies), Function URL
//! (v2), and a direct `Invoke` with plain JSON.

use std::collections::HashMap;

use agentcore_core::request::parse_lambda_request;
use agentcore_core::Config;

fn config() -> Config {
    let env: HashMap<&str, &str> = HashMap::from([(
        "AGENT_RUNTIME_ARN",
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-1",
    )]);
    Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("config")
}

fn event(path: &str) -> lambda_http::Request {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} is not a Lambda HTTP event: {e}"))
}

#[test]
fn rest_v1_function_url_and_base64_bodies_give_the_same_prompt() {
    let config = config();
    let plain_v1 = parse_lambda_request(&event("option1-api-gateway/events/invoke.json"), &config)
        .expect("v1");
    let base64_v1 = parse_lambda_request(
        &event("option1-api-gateway/events/invoke-base64.json"),
        &config,
    )
    .expect("v1 base64");
    let v2 =
        parse_lambda_request(&event("option2-lambda-url/events/invoke.json"), &config).expect("v2");
    let base64_v2 = parse_lambda_request(
        &event("option2-lambda-url/events/invoke-base64.json"),
        &config,
    )
    .expect("v2 base64");
    assert!(!plain_v1.prompt.is_empty());
    for other in [&base64_v1, &v2, &base64_v2] {
        assert_eq!(other.prompt, plain_v1.prompt);
    }
    assert!(
        plain_v1.trace.trace_id.is_some(),
        "the X-Ray header is propagated"
    );
}

#[test]
fn the_session_event_keeps_its_session() {
    let config = config();
    let inv = parse_lambda_request(
        &event("option3-api-gateway-streaming/events/invoke-session-id.json"),
        &config,
    )
    .expect("valid");
    assert!(!inv.session_generated);
    assert!(inv.session_id.as_str().len() >= 33);
}

#[test]
fn the_malformed_events_are_400_invalid_json() {
    let config = config();
    for path in [
        "option1-api-gateway/events/invoke-malformed.json",
        "option2-lambda-url/events/invoke-malformed.json",
    ] {
        let err = parse_lambda_request(&event(path), &config).expect_err(path);
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (400, "invalid_json"),
            "{path}"
        );
    }
}

#[test]
fn a_direct_invoke_with_plain_json_is_a_post_with_that_body() {
    let config = config();
    let req = lambda_http::request::from_str(
        r#"{"prompt": "direct", "session_id": "direct-invoke-session-0123456789-abcdef"}"#,
    )
    .expect("pass-through event");
    let inv = parse_lambda_request(&req, &config).expect("valid");
    assert_eq!(inv.prompt, "direct");
    assert_eq!(
        inv.session_id.as_str(),
        "direct-invoke-session-0123456789-abcdef"
    );
    let req =
        lambda_http::request::from_str(r#"{"question": "no prompt"}"#).expect("pass-through event");
    assert_eq!(
        parse_lambda_request(&req, &config)
            .expect_err("no prompt")
            .code(),
        "missing_prompt"
    );
}

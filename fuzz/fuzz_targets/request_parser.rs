//! The request parser on hostile input: an API Gateway (v1 or v2) event with arbitrary
//! headers, body bytes and `isBase64Encoded` flag goes through the same path as in the
//! functions (`entry::decodable_body`, `lambda_http`'s conversion, `parse_lambda_request`)
//! under an arbitrary choice of configuration. Nothing may panic, and whatever is accepted
//! must be a valid invocation.
#![no_main]

use std::sync::OnceLock;

use agentcore_core::{entry, request, Config, SessionId};
use arbitrary::Arbitrary;
use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Request};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    v2: bool,
    method: u8,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send the body base64-encoded (valid base64 of `body`).
    encode: bool,
    /// Flag the body as base64 (whether or not it is).
    flag_base64: bool,
    config: u8,
}

const ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-1";

/// A few configurations, built once: the modes change which checks run.
fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let sets: [&[(&str, &str)]; 3] = [
            &[],
            &[
                ("AGENTCORE_AUTH_MODE", "oauth"),
                ("FORWARD_FIELDS", "demo,extra"),
                ("FORWARD_HEADERS", "x-tenant,x-request-id"),
            ],
            &[("MAX_REQUEST_BYTES", "64"), ("CALLER_IDENTITY", "anonymous")],
        ];
        sets.iter()
            .map(|extra| {
                Config::from_lookup(|name| {
                    if name == "AGENT_RUNTIME_ARN" {
                        return Some(ARN.to_owned());
                    }
                    extra.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
                })
                .expect("a valid configuration")
            })
            .collect()
    })
}

fuzz_target!(|input: Input| {
    let method = ["POST", "GET", "PUT", "DELETE", "OPTIONS", "post"][usize::from(input.method) % 6];
    let body = if input.encode {
        base64::engine::general_purpose::STANDARD.encode(&input.body)
    } else {
        String::from_utf8_lossy(&input.body).into_owned()
    };
    let headers: serde_json::Map<String, serde_json::Value> = input
        .headers
        .iter()
        .take(32)
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let doc = if input.v2 {
        serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": headers,
            "requestContext": {"http": {"method": method, "path": "/", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "fuzz"}, "stage": "$default"},
            "body": body, "isBase64Encoded": input.flag_base64,
        })
    } else {
        serde_json::json!({
            "resource": "/invoke", "path": "/invoke", "httpMethod": method,
            "headers": headers, "multiValueHeaders": {},
            "requestContext": {"httpMethod": method, "path": "/invoke", "stage": "x"},
            "body": body, "isBase64Encoded": input.flag_base64,
        })
    };
    // An event Lambda would not deliver (e.g. a header name lambda_http refuses) is not
    // this target's business.
    let Ok(payload) = serde_json::from_value::<LambdaRequest>(doc) else {
        return;
    };
    let event = entry::decodable_body(LambdaEvent::new(payload, Context::default()));
    let req: Request = event.payload.into();
    let config = &configs()[usize::from(input.config) % configs().len()];
    if let Ok(inv) = request::parse_lambda_request(&req, config) {
        assert!(!inv.prompt.trim().is_empty());
        assert!(SessionId::parse(inv.session_id.as_str()).is_ok());
        let payload: serde_json::Value =
            serde_json::from_slice(&inv.payload).expect("the agent payload is JSON");
        assert_eq!(payload["prompt"].as_str(), Some(inv.prompt.as_str()));
        assert!(req.body().len() <= config.max_request_bytes);
    }
});

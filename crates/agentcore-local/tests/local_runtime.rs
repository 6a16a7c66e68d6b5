//! End-to-end tests of the local AgentCore Runtime over real sockets, driven by the real
//! `aws-sdk-bedrockagentcore` client (and plain reqwest for OAuth and raw checks).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agentcore_local::{
    demo_text, AuthMode, LocalConfig, LocalServer, DEFAULT_ACCESS_KEY_ID, DEFAULT_BEARER_TOKEN,
    DEFAULT_REGION, DEFAULT_RUNTIME_ARN, DEFAULT_SECRET_ACCESS_KEY,
};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_bedrockagentcore::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::{
    InvokeAgentRuntimeError, InvokeAgentRuntimeOutput,
};
use aws_sdk_bedrockagentcore::Client;
use aws_smithy_async::time::StaticTimeSource;
use aws_smithy_types::Blob;
use serde_json::{json, Value};

const SESSION: &str = "test-session-0123456789abcdef0123456789";

fn local_config() -> LocalConfig {
    LocalConfig {
        listen: "127.0.0.1:0".parse().expect("listen address"),
        ..LocalConfig::default()
    }
}

async fn start(config: LocalConfig) -> LocalServer {
    LocalServer::start(config).await.expect("server starts")
}

async fn client(
    server: &LocalServer,
    akid: &str,
    secret: &str,
    time: Option<SystemTime>,
) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(server.endpoint_url())
        .region(Region::new(DEFAULT_REGION))
        .credentials_provider(Credentials::new(
            akid,
            secret,
            Some("a-session-token".to_owned()),
            None,
            "test",
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(1));
    if let Some(time) = time {
        loader = loader.time_source(StaticTimeSource::new(time));
    }
    Client::new(&loader.load().await)
}

async fn good_client(server: &LocalServer) -> Client {
    client(
        server,
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        None,
    )
    .await
}

type InvokeResult = Result<InvokeAgentRuntimeOutput, SdkError<InvokeAgentRuntimeError>>;

async fn invoke(client: &Client, payload: Value, session: Option<&str>) -> InvokeResult {
    client
        .invoke_agent_runtime()
        .agent_runtime_arn(DEFAULT_RUNTIME_ARN)
        .qualifier("DEFAULT")
        .set_runtime_session_id(session.map(str::to_owned))
        .content_type("application/json")
        .accept("text/event-stream, application/json")
        .payload(Blob::new(payload.to_string().into_bytes()))
        .send()
        .await
}

fn decode_sse(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").expect("SSE data line");
            serde_json::from_str::<String>(data).expect("JSON string token")
        })
        .collect()
}

fn variant(e: &InvokeAgentRuntimeError) -> &'static str {
    match e {
        InvokeAgentRuntimeError::ValidationException(_) => "ValidationException",
        InvokeAgentRuntimeError::AccessDeniedException(_) => "AccessDeniedException",
        InvokeAgentRuntimeError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        InvokeAgentRuntimeError::RetryableConflictException(_) => "RetryableConflictException",
        InvokeAgentRuntimeError::RuntimeClientError(_) => "RuntimeClientError",
        InvokeAgentRuntimeError::ThrottlingException(_) => "ThrottlingException",
        InvokeAgentRuntimeError::ServiceQuotaExceededException(_) => {
            "ServiceQuotaExceededException"
        }
        InvokeAgentRuntimeError::InternalServerException(_) => "InternalServerException",
        _ => "unhandled",
    }
}

fn encoded_arn() -> String {
    percent_encoding::utf8_percent_encode(DEFAULT_RUNTIME_ARN, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

#[tokio::test]
async fn sse_answer_streams_chunk_by_chunk_and_reads_as_demo_text() {
    let server = start(local_config()).await;
    let client = good_client(&server).await;
    let (tokens, delay_ms) = (8_u64, 150_u64);
    let started = Instant::now();
    let mut out = invoke(
        &client,
        json!({"prompt": "hello streaming world", "demo": {"tokens": tokens, "delay_ms": delay_ms}}),
        Some(SESSION),
    )
    .await
    .expect("invoke succeeds");
    assert_eq!(out.content_type(), "text/event-stream");
    assert_eq!(out.runtime_session_id(), Some(SESSION));

    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    while let Some(chunk) = out.response.next().await {
        let chunk = chunk.expect("body chunk");
        arrivals.push(started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let production = Duration::from_millis(delay_ms * (tokens - 1));
    let first = arrivals.first().copied().expect("at least one chunk");
    let last = arrivals.last().copied().expect("at least one chunk");
    assert!(
        arrivals.len() >= 4,
        "expected several chunks, got {arrivals:?}"
    );
    assert!(
        first < production / 2,
        "first chunk at {first:?} should come well before the last is produced ({production:?})"
    );
    assert!(
        last - first >= production * 7 / 10,
        "chunks should be spread over ~{production:?}: {arrivals:?}"
    );
    assert_eq!(
        decode_sse(&body),
        demo_text("hello streaming world", tokens)
    );

    let seen = server.requests();
    let recorded = seen.last().expect("request recorded");
    assert_eq!(recorded.status, 200);
    assert_eq!(recorded.session_id.as_deref(), Some(SESSION));
    assert!(recorded
        .path
        .starts_with("/runtimes/arn%3Aaws%3Abedrock-agentcore%3A"));
    assert!(recorded
        .header("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDAGENTCORELOCAL/")));
    server.shutdown().await;
}

#[tokio::test]
async fn json_and_text_formats_work() {
    let server = start(local_config()).await;
    let client = good_client(&server).await;

    let out = invoke(
        &client,
        json!({"prompt": "hi", "demo": {"format": "json", "tokens": 5}}),
        None,
    )
    .await
    .expect("json answer");
    // The SDK fills a missing session id itself (it is an idempotency token): echoed back.
    let session = out
        .runtime_session_id()
        .expect("session id echoed")
        .to_owned();
    assert!(session.len() >= 33, "{session}");
    let recorded = server.requests().last().cloned().expect("recorded");
    assert_eq!(
        recorded.header("x-amzn-bedrock-agentcore-runtime-session-id"),
        Some(session.as_str())
    );
    assert_eq!(out.content_type(), "application/json");
    let body = out.response.collect().await.expect("body").into_bytes();
    let doc: Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(doc["response"], demo_text("hi", 5).concat());

    let out = invoke(
        &client,
        json!({"prompt": "hi", "demo": {"format": "text", "tokens": 4}}),
        None,
    )
    .await
    .expect("text answer");
    assert!(out.content_type().starts_with("text/plain"));
    let body = out.response.collect().await.expect("body").into_bytes();
    assert_eq!(String::from_utf8_lossy(&body), "You said: hi This");
    server.shutdown().await;
}

#[tokio::test]
async fn every_fault_maps_to_the_sdk_typed_variant() {
    let server = start(local_config()).await;
    let client = good_client(&server).await;
    for fault in [
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "RetryableConflictException",
        "RuntimeClientError",
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "InternalServerException",
    ] {
        let err = invoke(
            &client,
            json!({"prompt": "x", "demo": {"fault": fault}}),
            Some(SESSION),
        )
        .await
        .expect_err("fault must fail");
        let service_error = err.into_service_error();
        assert_eq!(variant(&service_error), fault, "{service_error:?}");
        assert!(service_error
            .message()
            .is_some_and(|m| m.contains("injected")));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn signature_failures_are_rejected() {
    let server = start(local_config()).await;

    let wrong_secret = client(&server, DEFAULT_ACCESS_KEY_ID, "not-the-secret", None).await;
    let err = invoke(&wrong_secret, json!({"prompt": "x"}), Some(SESSION))
        .await
        .expect_err("wrong secret must fail");
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert!(err.message().is_some_and(|m| m.contains("does not match")));

    let stale_time = SystemTime::now() - Duration::from_secs(600);
    let stale = client(
        &server,
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        Some(stale_time),
    )
    .await;
    let err = invoke(&stale, json!({"prompt": "x"}), Some(SESSION))
        .await
        .expect_err("stale signature must fail");
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    assert!(
        err.message().is_some_and(|m| m.contains("expired")),
        "{err:?}"
    );

    let unknown_key = client(&server, "AKIDUNKNOWN", DEFAULT_SECRET_ACCESS_KEY, None).await;
    let err = invoke(&unknown_key, json!({"prompt": "x"}), Some(SESSION))
        .await
        .expect_err("unknown key must fail");
    assert_eq!(err.code(), Some("UnrecognizedClientException"));

    let http = reqwest::Client::new();
    let response = http
        .post(format!(
            "{}/runtimes/{}/invocations",
            server.endpoint_url(),
            encoded_arn()
        ))
        .body("{}")
        .send()
        .await
        .expect("unsigned request");
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("MissingAuthenticationTokenException")
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![403, 403, 403, 403]);
    server.shutdown().await;
}

#[tokio::test]
async fn validation_and_resource_errors() {
    let server = start(local_config()).await;
    let client = good_client(&server).await;

    let err = invoke(&client, json!({"prompt": "x"}), Some("sixteen-chars-id"))
        .await
        .expect_err("short session id");
    assert_eq!(variant(&err.into_service_error()), "ValidationException");

    let err = client
        .invoke_agent_runtime()
        .agent_runtime_arn(
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other_agent-XXXXXXXXXX",
        )
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .expect_err("unknown runtime");
    assert_eq!(
        variant(&err.into_service_error()),
        "ResourceNotFoundException"
    );

    let err = client
        .invoke_agent_runtime()
        .agent_runtime_arn(DEFAULT_RUNTIME_ARN)
        .qualifier("nope")
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .expect_err("unknown qualifier");
    assert_eq!(
        variant(&err.into_service_error()),
        "ResourceNotFoundException"
    );

    let too_many = |count: usize| {
        client
            .invoke_agent_runtime()
            .agent_runtime_arn(DEFAULT_RUNTIME_ARN)
            .payload(Blob::new(b"{\"prompt\":\"x\"}".to_vec()))
            .customize()
            .mutate_request(move |request| {
                for i in 0..count {
                    request.headers_mut().insert(
                        format!("X-Amzn-Bedrock-AgentCore-Runtime-Custom-H{i}"),
                        "v".to_owned(),
                    );
                }
            })
            .send()
    };
    let err = too_many(21).await.expect_err("21 custom headers");
    assert_eq!(variant(&err.into_service_error()), "ValidationException");
    too_many(20).await.expect("20 custom headers are fine");
    server.shutdown().await;
}

#[tokio::test]
async fn reset_error_event_first_byte_delay_and_large_bodies() {
    let server = start(local_config()).await;
    let client = good_client(&server).await;

    let mut out = invoke(
        &client,
        json!({"demo": {"tokens": 10, "reset_after": 3}}),
        Some(SESSION),
    )
    .await
    .expect("headers arrive");
    let mut body = Vec::new();
    let mut body_error = None;
    while let Some(chunk) = out.response.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(e) => {
                body_error = Some(e);
                break;
            }
        }
    }
    assert!(body_error.is_some(), "a reset must surface as a body error");
    assert_eq!(decode_sse(&body), demo_text("", 3));

    let out = invoke(
        &client,
        json!({"demo": {"tokens": 10, "error_after": 2}}),
        Some(SESSION),
    )
    .await
    .expect("error_after answer");
    let body = out
        .response
        .collect()
        .await
        .expect("clean end")
        .into_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.ends_with(&format!("data: {}\n\n", agentcore_local::ERROR_EVENT_JSON)),
        "{text}"
    );
    assert_eq!(text.matches("data: ").count(), 3);

    let started = Instant::now();
    let out = invoke(
        &client,
        json!({"demo": {"tokens": 1, "first_byte_delay_ms": 400}}),
        Some(SESSION),
    )
    .await
    .expect("slow first byte");
    assert!(started.elapsed() >= Duration::from_millis(400));
    drop(out);

    let total = 5_000_000_u64;
    let out = invoke(
        &client,
        json!({"demo": {"total_bytes": total}}),
        Some(SESSION),
    )
    .await
    .expect("large answer");
    let body = out
        .response
        .collect()
        .await
        .expect("large body")
        .into_bytes();
    assert_eq!(body.len() as u64, total);
    assert!(body.starts_with(b"data: \"") && body.ends_with(b"\"\n\n"));
    server.shutdown().await;
}

/// A tiny agent container: records the headers of each invocation, streams three events.
async fn start_test_agent() -> (String, Arc<Mutex<Vec<http::HeaderMap>>>) {
    use axum::body::Body;
    use axum::routing::{get, post};

    let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/invocations",
            post(move |headers: http::HeaderMap| {
                let record = record.clone();
                async move {
                    record.lock().expect("lock").push(headers);
                    let events = futures_util::stream::unfold(0_u32, |i| async move {
                        if i == 3 {
                            return None;
                        }
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Some((
                            Ok::<_, std::io::Error>(format!("data: \"agent-{i}\"\n\n")),
                            i + 1,
                        ))
                    });
                    (
                        [("content-type", "text/event-stream; charset=utf-8")],
                        Body::from_stream(events),
                    )
                }
            }),
        )
        .route("/ping", get(|| async { r#"{"status":"HealthyBusy"}"# }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("agent binds");
    let addr = listener.local_addr().expect("agent address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn proxy_mode_forwards_only_allowed_headers_and_streams_untouched() {
    let (agent_url, seen) = start_test_agent().await;
    let server = start(LocalConfig {
        agent_url: Some(agent_url),
        ..local_config()
    })
    .await;
    let client = good_client(&server).await;
    let out = client
        .invoke_agent_runtime()
        .agent_runtime_arn(DEFAULT_RUNTIME_ARN)
        .runtime_session_id(SESSION)
        .runtime_user_id("user-1")
        .trace_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .content_type("application/json")
        .payload(Blob::new(b"{\"prompt\":\"hi\"}".to_vec()))
        .customize()
        .mutate_request(|request| {
            request.headers_mut().insert(
                "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
                "tenant-42",
            );
        })
        .send()
        .await
        .expect("proxied invoke");
    assert_eq!(out.content_type(), "text/event-stream; charset=utf-8");
    let body = out.response.collect().await.expect("body").into_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "data: \"agent-0\"\n\ndata: \"agent-1\"\n\ndata: \"agent-2\"\n\n"
    );

    let headers = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("agent was called");
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        get("x-amzn-bedrock-agentcore-runtime-custom-tenant").as_deref(),
        Some("tenant-42")
    );
    assert_eq!(
        get("x-amzn-bedrock-agentcore-runtime-session-id").as_deref(),
        Some(SESSION)
    );
    assert_eq!(
        get("x-amzn-bedrock-agentcore-runtime-user-id").as_deref(),
        Some("user-1")
    );
    assert!(get("traceparent").is_some());
    assert_eq!(get("content-type").as_deref(), Some("application/json"));
    for forbidden in [
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-user-agent",
    ] {
        assert!(
            get(forbidden).is_none(),
            "{forbidden} must not reach the agent"
        );
    }

    let ping = reqwest::get(format!("{}/ping", server.endpoint_url()))
        .await
        .expect("ping")
        .text()
        .await
        .expect("ping body");
    assert_eq!(ping, r#"{"status":"HealthyBusy"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn proxy_to_a_dead_agent_is_runtime_client_error() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let server = start(LocalConfig {
        agent_url: Some(format!("http://{addr}")),
        ..local_config()
    })
    .await;
    let client = good_client(&server).await;
    let err = invoke(&client, json!({"prompt": "x"}), Some(SESSION))
        .await
        .expect_err("dead agent");
    assert_eq!(variant(&err.into_service_error()), "RuntimeClientError");
    let ping = reqwest::get(format!("{}/ping", server.endpoint_url()))
        .await
        .expect("ping answers");
    assert_eq!(ping.status().as_u16(), 503);
    server.shutdown().await;
}

#[tokio::test]
async fn oauth_mode_checks_the_bearer_token() {
    let server = start(LocalConfig {
        auth: AuthMode::OAuth {
            token: DEFAULT_BEARER_TOKEN.to_owned(),
        },
        ..local_config()
    })
    .await;
    let url = format!(
        "{}/runtimes/{}/invocations?qualifier=DEFAULT",
        server.endpoint_url(),
        encoded_arn()
    );
    let http = reqwest::Client::new();
    let call = |token: &'static str| {
        http.post(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(r#"{"prompt": "oauth", "demo": {"tokens": 3}}"#)
            .send()
    };
    let ok = call(DEFAULT_BEARER_TOKEN).await.expect("right token");
    assert_eq!(ok.status().as_u16(), 200);
    // No session id in the request: the runtime generates one and echoes it.
    let session = ok
        .headers()
        .get("x-amzn-bedrock-agentcore-runtime-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated session id")
        .to_owned();
    assert!(
        session.starts_with("session-") && session.len() >= 33,
        "{session}"
    );
    let body = ok.bytes().await.expect("body");
    assert_eq!(decode_sse(&body), demo_text("oauth", 3));

    let denied = call("wrong-token").await.expect("wrong token");
    assert_eq!(denied.status().as_u16(), 403);
    assert_eq!(
        denied
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("AccessDeniedException")
    );

    let ping = reqwest::get(format!("{}/ping", server.endpoint_url()))
        .await
        .expect("ping")
        .text()
        .await
        .expect("ping body");
    assert_eq!(ping, r#"{"status":"Healthy"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn the_published_credentials_are_served_on_loopback_only() {
    let refused = LocalServer::start(LocalConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        ..LocalConfig::default()
    })
    .await;
    let err = refused.expect_err("not on every interface with the default key");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("published default credentials"),
        "{err}"
    );
    let own = LocalServer::start(LocalConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        access_key_id: "AKIDMYOWNKEY".into(),
        secret_access_key: "my-own-secret".into(),
        ..LocalConfig::default()
    })
    .await
    .expect("credentials of one's own may listen anywhere");
    own.shutdown().await;
}

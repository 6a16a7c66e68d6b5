//! The core's AgentCore client against `agentcore-local` over real sockets on 127.0.0.1:
//! the production code path (AWS SDK, SigV4; or HTTPS-style bearer requests in OAuth mode),
//! with only the endpoint pointed at the local runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentcore_core::error::UpstreamKind;
use agentcore_core::invoke::map_sdk_error;
use agentcore_core::request::parse_parts;
use agentcore_core::{AgentCoreClient, ApiError, Config, Invocation};
use agentcore_local::{AuthMode as LocalAuth, LocalConfig, LocalServer};
use aws_sdk_bedrockagentcore::config::Credentials;
use aws_sdk_bedrockagentcore::error::ProvideErrorMetadata;
use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
use aws_sdk_bedrockagentcore::primitives::Blob;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method};

async fn local(config: LocalConfig) -> LocalServer {
    LocalServer::start(LocalConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..config
    })
    .await
    .expect("agentcore-local starts")
}

fn config(server: &LocalServer, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::from([
        (
            "AGENT_RUNTIME_ARN".into(),
            agentcore_local::DEFAULT_RUNTIME_ARN.into(),
        ),
        (
            "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE".into(),
            server.endpoint_url(),
        ),
        ("AGENTCORE_MAX_ATTEMPTS".into(), "1".into()),
        ("FORWARD_FIELDS".into(), "demo".into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| env.get(k).cloned()).expect("config")
}

/// A client with explicit credentials, as the Lambda environment would provide them.
async fn client(config: &Config, secret: &str) -> AgentCoreClient {
    AgentCoreClient::from_sdk_client(sdk_client(config, secret, None).await, config)
}

async fn sdk_client(
    config: &Config,
    secret: &str,
    clock_offset: Option<Duration>,
) -> aws_sdk_bedrockagentcore::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(config.endpoint_url.clone().expect("endpoint"))
        .credentials_provider(Credentials::new(
            agentcore_local::DEFAULT_ACCESS_KEY_ID,
            secret,
            None,
            None,
            "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(offset) = clock_offset {
        let past = std::time::SystemTime::now() - offset;
        loader = loader.time_source(aws_smithy_async::time::StaticTimeSource::new(past));
    }
    aws_sdk_bedrockagentcore::Client::new(&loader.load().await)
}

fn invocation(config: &Config, body: serde_json::Value, headers: HeaderMap) -> Invocation {
    parse_parts(&Method::POST, &headers, body.to_string().as_bytes(), config)
        .expect("valid request")
}

#[tokio::test]
async fn a_paced_answer_streams_chunk_by_chunk() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    let tokens = 20u64;
    let delay = 50u64;
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "stream me", "demo": {"tokens": tokens, "delay_ms": delay}}),
        HeaderMap::new(),
    );
    let started = Instant::now();
    let resp = client.invoke(&inv).await.expect("invocation starts");
    assert!(
        resp.content_type.starts_with("text/event-stream"),
        "{}",
        resp.content_type
    );
    assert_eq!(
        resp.session_id,
        inv.session_id.as_str(),
        "AgentCore echoes our session id"
    );
    let mut chunks = resp.into_chunks();
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        arrivals.push(started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let production = Duration::from_millis(delay * (tokens - 1));
    assert!(
        arrivals.len() >= tokens as usize / 2,
        "arrived in {} chunks",
        arrivals.len()
    );
    assert!(
        arrivals[0] < production / 3,
        "first chunk at {:?}, the agent needs {production:?} for all",
        arrivals[0]
    );
    assert!(
        *arrivals.last().expect("last") >= production,
        "the stream was not paced"
    );
    let events = agentcore_core::sse::decode_all(&body).await.expect("sse");
    let text: String = events
        .iter()
        .map(|e| agentcore_core::sse::event_text(&e.data).into_owned())
        .collect();
    assert_eq!(
        text,
        agentcore_local::demo_text("stream me", tokens).concat()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_a_typed_sdk_error_then_502_upstream_access_denied() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let sdk = sdk_client(&config, "not-the-secret", None).await;
    let err = sdk
        .invoke_agent_runtime()
        .agent_runtime_arn(agentcore_local::DEFAULT_RUNTIME_ARN)
        .runtime_session_id("session-0123456789-0123456789-0123456789")
        .payload(Blob::new(br#"{"prompt":"x"}"#.to_vec()))
        .send()
        .await
        .expect_err("bad signature");
    assert_eq!(
        err.as_service_error().and_then(|e| e.code()),
        Some("InvalidSignatureException")
    );
    let mapped = ApiError::from(map_sdk_error(err));
    assert_eq!(
        (mapped.status(), mapped.code()),
        (502, "upstream_access_denied")
    );
    assert!(!mapped.to_json().to_string().contains("arn:aws"));

    // The same through the core's client.
    let client = AgentCoreClient::from_sdk_client(sdk, &config);
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "x"}),
        HeaderMap::new(),
    );
    let err = client.invoke(&inv).await.expect_err("bad signature");
    assert_eq!(err.kind, UpstreamKind::AccessDenied);
    server.shutdown().await;
}

#[tokio::test]
async fn a_stale_signature_is_refused() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let sdk = sdk_client(
        &config,
        agentcore_local::DEFAULT_SECRET_ACCESS_KEY,
        Some(Duration::from_secs(600)),
    )
    .await;
    let err = sdk
        .invoke_agent_runtime()
        .agent_runtime_arn(agentcore_local::DEFAULT_RUNTIME_ARN)
        .payload(Blob::new(br#"{"prompt":"x"}"#.to_vec()))
        .send()
        .await
        .expect_err("stale signature");
    let service = err.as_service_error().expect("service error");
    assert_eq!(service.code(), Some("InvalidSignatureException"));
    assert!(
        service
            .message()
            .unwrap_or_default()
            .to_lowercase()
            .contains("expired"),
        "{:?}",
        service.message()
    );
    let mapped = ApiError::from(map_sdk_error(err));
    assert_eq!(
        (mapped.status(), mapped.code()),
        (502, "upstream_access_denied")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_16_character_session_id_is_a_validation_exception_then_400() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let sdk = sdk_client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY, None).await;
    let err = sdk
        .invoke_agent_runtime()
        .agent_runtime_arn(agentcore_local::DEFAULT_RUNTIME_ARN)
        .runtime_session_id("0123456789abcdef")
        .payload(Blob::new(br#"{"prompt":"x"}"#.to_vec()))
        .send()
        .await
        .expect_err("short session id");
    assert!(
        matches!(
            err.as_service_error(),
            Some(InvokeAgentRuntimeError::ValidationException(_))
        ),
        "{err:?}"
    );
    let mapped = ApiError::from(map_sdk_error(err));
    assert_eq!(
        (mapped.status(), mapped.code()),
        (400, "upstream_validation")
    );

    // The core refuses the same id before it reaches AgentCore, with its own code.
    let local_err = parse_parts(
        &Method::POST,
        &HeaderMap::new(),
        br#"{"prompt":"x","session_id":"0123456789abcdef"}"#,
        &config,
    )
    .expect_err("refused locally");
    assert_eq!(
        (local_err.status(), local_err.code()),
        (400, "invalid_session_id")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_injected_fault_maps_to_its_documented_status_and_code() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    for (fault, status, code) in [
        ("ValidationException", 400, "upstream_validation"),
        ("AccessDeniedException", 502, "upstream_access_denied"),
        ("ResourceNotFoundException", 502, "agent_not_found"),
        ("RetryableConflictException", 409, "session_busy"),
        ("RuntimeClientError", 502, "agent_error"),
        ("ThrottlingException", 429, "throttled"),
        ("ServiceQuotaExceededException", 429, "quota_exceeded"),
        ("InternalServerException", 502, "upstream_error"),
    ] {
        let inv = invocation(
            &config,
            serde_json::json!({"prompt": "x", "demo": {"fault": fault}}),
            HeaderMap::new(),
        );
        let err = ApiError::from(client.invoke(&inv).await.expect_err(fault));
        assert_eq!(
            (err.status(), err.code()),
            (status, code),
            "{fault}: {}",
            err.log_detail()
        );
        assert!(
            err.log_detail().contains(fault),
            "the log keeps the upstream type: {}",
            err.log_detail()
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_reset_mid_stream_ends_the_chunk_stream_with_upstream_reset() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "x", "demo": {"tokens": 10, "reset_after": 3}}),
        HeaderMap::new(),
    );
    let mut chunks = client.invoke(&inv).await.expect("starts").into_chunks();
    let mut received = Vec::new();
    let mut error = None;
    while let Some(item) = chunks.next().await {
        match item {
            Ok(b) => received.extend_from_slice(&b),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the stream must fail, not end cleanly");
    assert_eq!(error.kind, UpstreamKind::Reset);
    let events = agentcore_core::sse::decode_all(&received)
        .await
        .expect("sse");
    assert_eq!(events.len(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_first_byte_times_out() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "300")]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "x", "demo": {"first_byte_delay_ms": 2000}}),
        HeaderMap::new(),
    );
    let started = Instant::now();
    let err = ApiError::from(client.invoke(&inv).await.expect_err("timeout"));
    assert_eq!((err.status(), err.code()), (504, "upstream_timeout"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "gave up after {:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn allow_listed_headers_reach_the_runtime_signed_and_renamed() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[("FORWARD_HEADERS", "x-tenant-id")]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant-id", HeaderValue::from_static("acme"));
    headers.insert("x-not-forwarded", HeaderValue::from_static("nope"));
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    let inv = invocation(&config, serde_json::json!({"prompt": "x"}), headers);
    let resp = client
        .invoke(&inv)
        .await
        .expect("a signed request with custom headers is accepted");
    drop(resp);
    let seen = server.requests();
    let last = seen.last().expect("recorded");
    assert_eq!(
        last.header("x-amzn-bedrock-agentcore-runtime-custom-x-tenant-id"),
        Some("acme")
    );
    assert_eq!(last.header("x-not-forwarded"), None);
    assert!(last.header("traceparent").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn oauth_mode_sends_the_callers_bearer_token() {
    let server = local(LocalConfig {
        auth: LocalAuth::OAuth {
            token: "good-token".into(),
        },
        ..LocalConfig::default()
    })
    .await;
    let config = config(&server, &[("AGENTCORE_AUTH_MODE", "oauth")]);
    let client = AgentCoreClient::new(&config).await.expect("client");
    let with_token = |token: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    };
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "oauth", "demo": {"tokens": 3}}),
        with_token("good-token"),
    );
    let mut chunks = client
        .invoke(&inv)
        .await
        .expect("the right token is accepted")
        .into_chunks();
    let mut body = Vec::new();
    while let Some(c) = chunks.next().await {
        body.extend_from_slice(&c.expect("chunk"));
    }
    let events = agentcore_core::sse::decode_all(&body).await.expect("sse");
    assert_eq!(events.len(), 3);

    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "oauth"}),
        with_token("bad-token"),
    );
    let err = ApiError::from(client.invoke(&inv).await.expect_err("wrong token"));
    assert_eq!((err.status(), err.code()), (403, "token_rejected"));
    server.shutdown().await;
}

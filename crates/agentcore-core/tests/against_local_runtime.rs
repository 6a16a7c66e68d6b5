//! The core's AgentCore client against `agentcore-local` over real sockets on 127.0.0.1:
//! the production code path (AWS SDK, SigV4; or HTTPS-style bearer requests in OAuth mode),
//! with only the endpoint pointed at the local runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentcore_core::error::UpstreamKind;
use agentcore_core::invoke::map_sdk_error;
use agentcore_core::request::parse_parts;
use agentcore_core::{AgentCoreClient, ApiError, Config, Gateway, Invocation};
use agentcore_local::{AuthMode as LocalAuth, LocalConfig, LocalServer};
use aws_sdk_bedrockagentcore::config::Credentials;
use aws_sdk_bedrockagentcore::error::ProvideErrorMetadata;
use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
use aws_sdk_bedrockagentcore::primitives::Blob;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
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
    sdk_client_with_token(config, secret, None, clock_offset).await
}

/// [`sdk_client`] with temporary credentials' session token.
async fn sdk_client_with_token(
    config: &Config,
    secret: &str,
    session_token: Option<String>,
    clock_offset: Option<Duration>,
) -> aws_sdk_bedrockagentcore::Client {
    let mut loader = AgentCoreClient::sdk_config_loader(config)
        .endpoint_url(config.endpoint_url.clone().expect("endpoint"))
        .credentials_provider(Credentials::new(
            agentcore_local::DEFAULT_ACCESS_KEY_ID,
            secret,
            session_token,
            None,
            "test",
        ));
    if let Some(offset) = clock_offset {
        let past = std::time::SystemTime::now() - offset;
        loader = loader.time_source(aws_smithy_async::time::StaticTimeSource::new(past));
    }
    aws_sdk_bedrockagentcore::Client::new(&loader.load().await)
}

/// The bytes of an answer up to its end or its first error, and that error.
async fn read_until_error(
    mut chunks: agentcore_core::ChunkStream,
) -> (Vec<u8>, Option<agentcore_core::UpstreamError>) {
    let mut received = Vec::new();
    while let Some(item) = chunks.next().await {
        match item {
            Ok(b) => received.extend_from_slice(&b),
            Err(e) => return (received, Some(e)),
        }
    }
    (received, None)
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

/// Temporary credentials, as a Lambda role gives the function: the SDK signs the session
/// token, agentcore-local (configured with it) requires it; another token is refused.
#[tokio::test]
async fn temporary_credentials_sign_their_session_token() {
    let server = local(LocalConfig {
        session_token: Some("the-role-session-token".into()),
        ..LocalConfig::default()
    })
    .await;
    let config = config(&server, &[]);
    let with_token = |token: Option<&str>| {
        let token = token.map(str::to_owned);
        let config = &config;
        async move {
            let secret = agentcore_local::DEFAULT_SECRET_ACCESS_KEY;
            sdk_client_with_token(config, secret, token, None)
                .await
                .invoke_agent_runtime()
                .agent_runtime_arn(agentcore_local::DEFAULT_RUNTIME_ARN)
                .runtime_session_id("session-0123456789-0123456789-0123456789")
                .payload(Blob::new(br#"{"prompt":"x"}"#.to_vec()))
                .send()
                .await
        }
    };
    assert!(with_token(Some("the-role-session-token")).await.is_ok());
    for token in [None, Some("another-session-token")] {
        let err = with_token(token).await.expect_err("refused");
        let mapped = ApiError::from(map_sdk_error(err));
        assert_eq!(
            (mapped.status().as_u16(), mapped.code()),
            (502, "upstream_access_denied"),
            "{token:?}"
        );
    }
    // The recorded requests keep no token value.
    let recorded = format!("{:?}", server.requests());
    assert!(!recorded.contains("session-token"), "{recorded}");
    assert!(recorded.contains("x-amz-security-token"), "{recorded}");
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
        (mapped.status().as_u16(), mapped.code()),
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
        (mapped.status().as_u16(), mapped.code()),
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
        (mapped.status().as_u16(), mapped.code()),
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
        (local_err.status().as_u16(), local_err.code()),
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
            (err.status().as_u16(), err.code()),
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
    let chunks = client.invoke(&inv).await.expect("starts").into_chunks();
    let (received, error) = read_until_error(chunks).await;
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
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (504, "upstream_timeout")
    );
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
    assert_eq!((err.status().as_u16(), err.code()), (403, "token_rejected"));
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Retries: only what provably never reached the agent, in both auth modes
// ---------------------------------------------------------------------------------------

/// Requests `agentcore-local` received for one session.
fn received(server: &LocalServer, session: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.session_id.as_deref() == Some(session))
        .count()
}

/// Each fault with the number of requests the agent runtime must see with three attempts
/// allowed: refusals before the agent are retried, nothing else is.
const RETRY_CASES: [(&str, usize); 6] = [
    ("ThrottlingException", 3),
    ("RetryableConflictException", 3),
    ("InternalServerException", 1),
    ("RuntimeClientError", 1),
    ("ServiceQuotaExceededException", 1),
    ("ValidationException", 1),
];

async fn assert_retry_policy(
    server: &LocalServer,
    config: &Config,
    client: &AgentCoreClient,
    headers: HeaderMap,
) {
    for (fault, expected) in RETRY_CASES {
        let inv = invocation(
            config,
            serde_json::json!({"prompt": "x", "demo": {"fault": fault}}),
            headers.clone(),
        );
        let err = client.invoke(&inv).await.expect_err(fault);
        assert!(err.detail.contains(fault), "{fault}: {}", err.detail);
        assert_eq!(
            received(server, inv.session_id.as_str()),
            expected,
            "{fault}"
        );
    }
    // A failure after AgentCore accepted the request is never retried either. (A timeout
    // cannot be: the first-byte limit covers every attempt.)
    let inv = invocation(
        config,
        serde_json::json!({"prompt": "x", "demo": {"tokens": 10, "reset_after": 2}}),
        headers.clone(),
    );
    let mut chunks = client.invoke(&inv).await.expect("starts").into_chunks();
    while let Some(Ok(_)) = chunks.next().await {}
    assert_eq!(
        received(server, inv.session_id.as_str()),
        1,
        "reset mid-stream"
    );
}

#[tokio::test]
async fn sigv4_mode_retries_only_what_never_reached_the_agent() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[("AGENTCORE_MAX_ATTEMPTS", "3")]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    assert_retry_policy(&server, &config, &client, HeaderMap::new()).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oauth_mode_follows_the_same_retry_policy() {
    let server = local(LocalConfig {
        auth: LocalAuth::OAuth {
            token: "good-token".into(),
        },
        ..LocalConfig::default()
    })
    .await;
    let config = config(
        &server,
        &[
            ("AGENTCORE_AUTH_MODE", "oauth"),
            ("AGENTCORE_MAX_ATTEMPTS", "3"),
        ],
    );
    let client = AgentCoreClient::new(&config).await.expect("client");
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer good-token"),
    );
    assert_retry_policy(&server, &config, &client, headers).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_in_both_modes() {
    // A port nobody listens on: the connection is refused, so nothing was sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    for mode in ["sigv4", "oauth"] {
        let env: HashMap<String, String> = HashMap::from([
            (
                "AGENT_RUNTIME_ARN".into(),
                agentcore_local::DEFAULT_RUNTIME_ARN.into(),
            ),
            (
                "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE".into(),
                endpoint.clone(),
            ),
            ("AGENTCORE_MAX_ATTEMPTS".into(), "3".into()),
            ("AGENTCORE_AUTH_MODE".into(), mode.into()),
        ]);
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
        let client = match mode {
            "sigv4" => client(&config, "secret").await,
            _ => AgentCoreClient::new(&config).await.expect("client"),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t"),
        );
        let inv = invocation(&config, serde_json::json!({"prompt": "x"}), headers);
        let err = client.invoke(&inv).await.expect_err("nobody listens");
        assert_eq!(
            err.kind,
            UpstreamKind::Unavailable,
            "{mode}: {}",
            err.detail
        );
        assert!(err.not_sent, "{mode}: {}", err.detail);
        assert!(
            err.detail.ends_with("(attempt 3)"),
            "{mode}: {}",
            err.detail
        );
    }
}

// ---------------------------------------------------------------------------------------
// The gateway: a deadline already passed, the agent's error events passed through, panics
// ---------------------------------------------------------------------------------------

fn post(body: serde_json::Value) -> lambda_http::Request {
    http::Request::builder()
        .method(Method::POST)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(lambda_http::Body::from(body.to_string()))
        .expect("request")
}

async fn streamed_body(resp: lambda_http::Response<agentcore_core::StreamingBody>) -> Vec<u8> {
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("the body ends cleanly")
        .to_bytes()
        .to_vec()
}

#[tokio::test]
async fn a_deadline_that_has_passed_is_504_at_once_and_the_agent_never_sees_it() {
    use lambda_http::RequestExt;
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let gateway = Gateway::with_client(
        config.clone(),
        client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await,
    )
    .await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let mut context = lambda_http::Context::default();
    context.deadline = now_ms - 1_000;
    let request = || {
        post(serde_json::json!({"prompt": "too late", "demo": {"tokens": 3}}))
            .with_lambda_context(context.clone())
    };
    let started = Instant::now();
    let buffered = gateway.buffered(request()).await.expect("infallible");
    let streamed = gateway.streaming(request()).await.expect("infallible");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(buffered.status(), 504);
    assert_eq!(streamed.status(), 504);
    let body: serde_json::Value =
        serde_json::from_slice(&streamed_body(streamed).await).expect("JSON");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    server.shutdown().await;
}

#[tokio::test]
async fn pass_through_mode_gives_clients_the_agents_own_error_events() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[("AGENT_ERROR_EVENTS", "pass_through")]);
    let gateway = Gateway::with_client(
        config.clone(),
        client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await,
    )
    .await;
    let failing =
        || post(serde_json::json!({"prompt": "x", "demo": {"tokens": 5, "error_after": 2}}));
    let buffered = gateway.buffered(failing()).await.expect("infallible");
    assert_eq!(buffered.status(), 200);
    let text = String::from_utf8_lossy(buffered.body().as_ref()).into_owned();
    assert!(text.contains("OperationalError"), "{text}");
    let streamed = gateway.streaming(failing()).await.expect("infallible");
    let body = streamed_body(streamed).await;
    let events = agentcore_core::sse::decode_all(&body).await.expect("sse");
    assert_eq!(events.len(), 3);
    assert!(
        agentcore_core::sse::agent_error(&events[2]).is_some(),
        "{events:?}"
    );
    server.shutdown().await;
}

/// An SDK HTTP client that panics when the request body carries [`PANIC_MARK`], and
/// otherwise sends the request with the default client.
#[derive(Debug)]
struct PanicOnMark(SharedHttpClient);

#[derive(Debug)]
struct PanicOnMarkConnector(SharedHttpConnector);

const PANIC_MARK: &str = "PANIC_IN_THE_HTTP_CLIENT";

impl HttpClient for PanicOnMark {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PanicOnMarkConnector(
            self.0.http_connector(settings, components),
        ))
    }
}

impl HttpConnector for PanicOnMarkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let marked = request
            .body()
            .bytes()
            .is_some_and(|b| String::from_utf8_lossy(b).contains(PANIC_MARK));
        let sent = self.0.call(request);
        HttpConnectorFuture::new(async move {
            if marked {
                panic!("injected panic ({PANIC_MARK})");
            }
            sent.await
        })
    }
}

#[tokio::test]
async fn a_panic_in_the_handler_is_a_500_and_the_gateway_keeps_serving() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(config.endpoint_url.clone().expect("endpoint"))
        .credentials_provider(Credentials::new(
            agentcore_local::DEFAULT_ACCESS_KEY_ID,
            agentcore_local::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let http_client = aws_smithy_http_client::Builder::new().build_http();
    let sdk = aws_sdk_bedrockagentcore::Client::from_conf(
        aws_sdk_bedrockagentcore::config::Builder::from(&shared)
            .http_client(PanicOnMark(http_client))
            .build(),
    );
    let gateway = Gateway::with_client(
        config.clone(),
        AgentCoreClient::from_sdk_client(sdk, &config),
    )
    .await;
    let panicking = || post(serde_json::json!({"prompt": PANIC_MARK}));
    let healthy = || post(serde_json::json!({"prompt": "still there?", "demo": {"tokens": 3}}));
    for _ in 0..2 {
        let buffered = gateway.buffered(panicking()).await.expect("infallible");
        assert_eq!(buffered.status(), 500);
        let body = String::from_utf8_lossy(buffered.body().as_ref()).into_owned();
        assert!(body.contains("\"internal_error\""), "{body}");
        assert!(
            !body.contains(PANIC_MARK) && !body.contains("panic"),
            "{body}"
        );
        let streamed = gateway.streaming(panicking()).await.expect("infallible");
        assert_eq!(streamed.status(), 500);
        let body = String::from_utf8_lossy(&streamed_body(streamed).await).into_owned();
        assert!(
            body.contains("\"internal_error\"") && !body.contains(PANIC_MARK),
            "{body}"
        );

        let buffered = gateway.buffered(healthy()).await.expect("infallible");
        assert_eq!(buffered.status(), 200);
        let streamed = gateway.streaming(healthy()).await.expect("infallible");
        assert_eq!(streamed.status(), 200);
        let events = agentcore_core::sse::decode_all(&streamed_body(streamed).await)
            .await
            .expect("sse");
        assert_eq!(events.len(), 3);
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Callers identified by API Gateway (authorizer) and by IAM
// ---------------------------------------------------------------------------------------

/// A REST v1 event for `POST` with `body` and `request_context`, as lambda_http reads it.
fn v1_event(body: serde_json::Value, request_context: serde_json::Value) -> lambda_http::Request {
    let event = serde_json::json!({
        "resource": "/invoke", "path": "/invoke", "httpMethod": "POST",
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "body": body.to_string(), "isBase64Encoded": false,
        "requestContext": request_context,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a v1 event")
}

#[tokio::test]
async fn an_authorizers_caller_owns_its_session_and_a_missing_identity_is_401() {
    let server = local(LocalConfig::default()).await;
    let config = config(
        &server,
        &[
            ("CALLER_IDENTITY", "authorizer"),
            ("FORWARD_CLAIMS", "email"),
            ("RUNTIME_USER_ID", "true"),
        ],
    );
    let gateway = Gateway::with_client(
        config.clone(),
        client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await,
    )
    .await;
    let session = "session-00000000-0000-4000-8000-00000000abcd";
    let body = serde_json::json!({"prompt": "hi", "session_id": session, "demo": {"tokens": 2}});
    let context = serde_json::json!({"httpMethod": "POST", "authorizer": {"claims": {
        "sub": "cognito-user-1", "email": "one@example.com",
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
    }}});
    let resp = gateway
        .buffered(v1_event(body.clone(), context))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-session-id")
            .and_then(|v| v.to_str().ok()),
        Some(session),
        "the client keeps its own id"
    );
    let seen = server.requests();
    let request = seen.last().expect("AgentCore was called");
    let runtime_session = request.session_id.clone().unwrap_or_default();
    assert!(
        runtime_session.starts_with("u-") && runtime_session != session,
        "{runtime_session}"
    );
    assert_eq!(
        request.header("x-amzn-bedrock-agentcore-runtime-custom-claim-email"),
        Some("one@example.com")
    );
    assert_eq!(
        request.header("x-amzn-bedrock-agentcore-runtime-user-id"),
        Some("cognito-user-1")
    );

    let before = server.requests().len();
    let resp = gateway
        .buffered(v1_event(body, serde_json::json!({"httpMethod": "POST"})))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 401);
    let text = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
    assert!(text.contains("\"missing_identity\""), "{text}");
    assert_eq!(server.requests().len(), before, "AgentCore was not called");
    server.shutdown().await;
}

#[tokio::test]
async fn iam_callers_share_sessions_only_when_the_scope_is_shared() {
    let server = local(LocalConfig::default()).await;
    let body = serde_json::json!({"prompt": "hi", "session_id": "session-00000000-0000-4000-8000-00000000beef", "demo": {"tokens": 1}});
    let as_principal =
        |arn: &str| serde_json::json!({"httpMethod": "POST", "identity": {"userArn": arn}});
    for (scope, distinct) in [("caller", true), ("shared", false)] {
        let config = config(
            &server,
            &[("CALLER_IDENTITY", "iam"), ("SESSION_SCOPE", scope)],
        );
        let gateway = Gateway::with_client(
            config.clone(),
            client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await,
        )
        .await;
        let mut runtime_sessions = Vec::new();
        for arn in [
            "arn:aws:iam::123456789012:role/a",
            "arn:aws:iam::123456789012:role/b",
        ] {
            let resp = gateway
                .buffered(v1_event(body.clone(), as_principal(arn)))
                .await
                .expect("infallible");
            assert_eq!(resp.status(), 200, "{scope}");
            runtime_sessions.push(server.requests().last().and_then(|r| r.session_id.clone()));
        }
        assert_eq!(
            runtime_sessions[0] != runtime_sessions[1],
            distinct,
            "{scope}: {runtime_sessions:?}"
        );
    }
    server.shutdown().await;
}

/// A real agent goes quiet mid-answer while it calls a tool. The SDK's stalled-stream
/// protection (on by default) would end such a stream after 5 s without a byte; the idle
/// limit (`UPSTREAM_IDLE_TIMEOUT_MS`) is the only one that may.
#[tokio::test]
async fn a_pause_longer_than_the_sdks_stall_grace_period_is_not_an_error() {
    let server = local(LocalConfig::default()).await;
    let config = config(&server, &[]);
    let client = client(&config, agentcore_local::DEFAULT_SECRET_ACCESS_KEY).await;
    let inv = invocation(
        &config,
        serde_json::json!({"prompt": "x", "demo": {"tokens": 2, "delay_ms": 7000}}),
        HeaderMap::new(),
    );
    let resp = client.invoke(&inv).await.expect("the first token");
    let (received, error) = read_until_error(resp.into_chunks()).await;
    assert!(
        error.is_none(),
        "no stall error after a 7 s pause: {error:?}"
    );
    let events = agentcore_core::sse::decode_all(&received)
        .await
        .expect("sse");
    assert_eq!(events.len(), 2, "both tokens, either side of the pause");
    server.shutdown().await;
}

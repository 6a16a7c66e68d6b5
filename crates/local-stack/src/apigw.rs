//! A local API Gateway REST front for options 1 and 3.
//!
//! Each HTTP request becomes a REST v1 proxy event and is sent to the function the way API
//! Gateway sends it: `Invoke` for option 1 (`AWS_PROXY`, buffered), and
//! `InvokeWithResponseStream` for option 3 (`responseTransferMode: STREAM`), through the
//! AWS SDK for Lambda against `cargo lambda watch`. It applies API Gateway's limits that
//! shape the handlers: the 29 s integration timeout (option 1), the 10 MB payload limit,
//! and CORS preflight answered by the gateway itself (a MOCK integration in the
//! templates).
//!
//! With a [`PageConfig`] (`make run`) it also serves the browser page of `web/` on its own
//! address, a same-origin sign-in helper for the local issuer, and `/edge/option2/`: what
//! CloudFront with origin access control does in front of option 2's Function URL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayProxyResponse,
    ApiGatewayRequestIdentity,
};
use lambda_http::lambda_runtime::MetadataPrelude;
use lambda_http::Body as LambdaBody;
use serde_json::{json, Map, Value};

use agentcore_core::identity::claim_text;
use agentcore_core::jwt::{JwtSettings, JwtVerifier};

use crate::server::BackgroundServer;

/// API Gateway's REST payload limit.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;
/// API Gateway REST's default integration timeout for buffered integrations.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// Streaming integrations may run up to 15 minutes.
pub const STREAMING_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Regional streaming integrations end after 5 minutes without data.
pub const STREAMING_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How a route reaches its function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationMode {
    /// `Invoke`, buffered (option 1).
    Buffered,
    /// `InvokeWithResponseStream` (option 3).
    Streaming,
}

/// One API: `/{name}/invoke` is sent to `function`.
#[derive(Clone, Debug)]
pub struct Route {
    /// First path segment, e.g. `option1`.
    pub name: String,
    /// Lambda function name (the binary name under `cargo lambda watch`).
    pub function: String,
    /// How the function is invoked.
    pub mode: IntegrationMode,
}

/// The emulator's settings.
#[derive(Clone, Debug)]
pub struct ApiGatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The Lambda API endpoint for `Invoke` (`cargo lambda watch`), e.g. `http://127.0.0.1:9000`.
    pub lambda_endpoint: String,
    /// The Lambda API endpoint for `InvokeWithResponseStream` (see [`crate::lambda_shim`]).
    pub streaming_endpoint: String,
    /// The routes.
    pub routes: Vec<Route>,
    /// Origin answered to CORS preflight requests; `None` answers preflights without CORS
    /// headers (browsers then refuse), as a template deployed without an origin would.
    pub cors_allow_origin: Option<String>,
    /// Buffered integration timeout (29 s in API Gateway).
    pub integration_timeout: Duration,
    /// A Cognito user pool authorizer on every route, against this issuer (tokens for
    /// [`agentcore_local::issuer::AUDIENCE`]); `None`: no authorizer.
    pub cognito_issuer: Option<String>,
    /// The browser page, its sign-in helper and the edge in front of option 2; `None`:
    /// only the APIs.
    pub page: Option<PageConfig>,
}

impl ApiGatewayConfig {
    /// The standard routes: `/option1/invoke` (buffered) and `/option3/invoke` (streaming).
    pub fn standard(
        listen: SocketAddr,
        lambda_endpoint: String,
        streaming_endpoint: String,
    ) -> Self {
        Self {
            listen,
            lambda_endpoint,
            streaming_endpoint,
            routes: vec![
                Route {
                    name: "option1".into(),
                    function: "option1-api-gateway".into(),
                    mode: IntegrationMode::Buffered,
                },
                Route {
                    name: "option3".into(),
                    function: "option3-api-gateway-streaming".into(),
                    mode: IntegrationMode::Streaming,
                },
            ],
            cors_allow_origin: None,
            integration_timeout: INTEGRATION_TIMEOUT,
            cognito_issuer: None,
            page: None,
        }
    }
}

struct AppState {
    lambda: aws_sdk_lambda::Client,
    lambda_streaming: aws_sdk_lambda::Client,
    routes: HashMap<String, Route>,
    cors_allow_origin: Option<String>,
    integration_timeout: Duration,
    authorizer: Option<JwtVerifier>,
    page: Option<PageConfig>,
    /// The page's requests to other servers (the issuer, the edge's origin).
    http: reqwest::Client,
}

/// A running emulator.
pub struct ApiGateway {
    server: BackgroundServer,
}

impl ApiGateway {
    /// Binds and starts serving in the background.
    pub async fn start(config: ApiGatewayConfig) -> std::io::Result<Self> {
        let state = Arc::new(AppState {
            lambda: lambda_client(&config.lambda_endpoint).await,
            lambda_streaming: lambda_client(&config.streaming_endpoint).await,
            routes: config
                .routes
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
            cors_allow_origin: config.cors_allow_origin,
            integration_timeout: config.integration_timeout,
            authorizer: match config.cognito_issuer {
                Some(issuer) => Some(JwtVerifier::new(cognito_authorizer(issuer)).await),
                None => None,
            },
            http: reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            page: config.page,
        });
        let mut app = Router::new().route("/{api}/{*rest}", any(handle));
        if state.page.is_some() {
            app = page_routes(app);
        }
        let app = app.with_state(state);
        let server = BackgroundServer::start(config.listen, app, "API Gateway emulator").await?;
        Ok(Self { server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// An SDK client for the Lambda API at `endpoint` with local credentials and no retries
/// (API Gateway does not retry a failed integration either).
pub async fn lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDLOCALAPIGATEWAY",
            "local",
            None,
            None,
            "local-stack",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_lambda::Client::new(&shared)
}

async fn handle(
    State(state): State<Arc<AppState>>,
    Path((api, rest)): Path<(String, String)>,
    req: axum::extract::Request,
) -> Response {
    let Some(route) = state.routes.get(&api).cloned() else {
        return gateway_error(StatusCode::FORBIDDEN, "Missing Authentication Token");
    };
    if rest != "invoke" {
        return gateway_error(StatusCode::FORBIDDEN, "Missing Authentication Token");
    }
    if req.method() == Method::OPTIONS {
        return preflight(&state);
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await {
        Ok(b) => b,
        Err(_) => return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Too Long"),
    };
    let mut event = v1_event(&parts.method, &parts.uri, &parts.headers, &body);
    // The templates put the authorizer on POST and DELETE, the methods the API defines.
    let authorized_method = parts.method == Method::POST || parts.method == Method::DELETE;
    if let (Some(authorizer), true) = (&state.authorizer, authorized_method) {
        // What a Cognito user pool authorizer does: no valid ID token, no integration.
        match authorizer.verify(&parts.headers).await {
            Ok(caller) => {
                event["requestContext"]["authorizer"] =
                    json!({ "claims": claims_as_strings(&caller.claims) });
            }
            Err(_) => return gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized"),
        }
    }
    let payload = Blob::new(serde_json::to_vec(&event).unwrap_or_default());
    match route.mode {
        IntegrationMode::Buffered => invoke_buffered(&state, &route.function, payload).await,
        IntegrationMode::Streaming => invoke_streaming(&state, &route.function, payload).await,
    }
}

/// The checks of a Cognito user pool authorizer for the local issuer's app client: an ID
/// token in `Authorization`.
fn cognito_authorizer(issuer: String) -> JwtSettings {
    JwtSettings {
        issuer,
        audiences: vec![agentcore_local::issuer::AUDIENCE.to_owned()],
        token_use: Some("id".to_owned()),
        required_scopes: Vec::new(),
        headers: vec![http::header::AUTHORIZATION],
        jwks_url: None,
        leeway_seconds: 0,
    }
}

/// Claims as API Gateway hands them to the integration: every value a string (lists joined
/// by `,`).
fn claims_as_strings(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(claim_text(v))))
        .collect()
}

/// The REST v1 proxy event API Gateway sends for this request, built with the event types
/// `lambda_http` deserializes it with (`aws_lambda_events`), as JSON.
pub fn v1_event(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok("") => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some("127.0.0.1".to_owned());
    identity.user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut context = ApiGatewayProxyRequestContext::default();
    context.resource_id = Some("local".to_owned());
    context.resource_path = Some("/invoke".to_owned());
    context.http_method = method.clone();
    context.path = Some(uri.path().to_owned());
    context.stage = Some("local".to_owned());
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.account_id = Some("123456789012".to_owned());
    context.apiid = Some("local".to_owned());
    context.protocol = Some("HTTP/1.1".to_owned());
    context.request_time_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    context.identity = identity;
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some("/invoke".to_owned());
    event.path = Some("/invoke".to_owned());
    event.http_method = method.clone();
    // The event is JSON: a header value that is not UTF-8 arrives as text (U+FFFD for
    // each bad byte) rather than making the whole event unserialisable.
    let headers: HeaderMap = headers
        .iter()
        .map(|(name, value)| {
            let value = match std::str::from_utf8(value.as_bytes()) {
                Ok(_) => value.clone(),
                Err(_) => HeaderValue::from_str(&String::from_utf8_lossy(value.as_bytes()))
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
            };
            (name.clone(), value)
        })
        .collect();
    event.headers = headers.clone();
    event.multi_value_headers = headers;
    event.query_string_parameters = query.clone().into();
    event.multi_value_query_string_parameters = query.into();
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64;
    serde_json::to_value(&event).unwrap_or_default()
}

async fn invoke_buffered(state: &AppState, function: &str, payload: Blob) -> Response {
    let call = state
        .lambda
        .invoke()
        .function_name(function)
        .payload(payload)
        .send();
    let out = match tokio::time::timeout(state.integration_timeout, call).await {
        Err(_) => return gateway_error(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out"),
        Ok(Err(e)) => {
            tracing::warn!(function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "Invoke failed");
            return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
        }
        Ok(Ok(out)) => out,
    };
    if out.function_error().is_some() {
        return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
    }
    let payload = out.payload().map(|b| b.as_ref()).unwrap_or_default();
    match v1_response(payload) {
        Some(resp) => resp,
        None => gateway_error(StatusCode::BAD_GATEWAY, "Internal server error"),
    }
}

/// Turns a v1 proxy response document into an HTTP response; `None` when malformed (API
/// Gateway answers 502 then).
pub fn v1_response(payload: &[u8]) -> Option<Response> {
    // `statusCode` is required: the event type would default it to 0.
    let doc: Value = serde_json::from_slice(payload).ok()?;
    doc.get("statusCode")?;
    let doc: ApiGatewayProxyResponse = serde_json::from_value(doc).ok()?;
    let status = StatusCode::from_u16(u16::try_from(doc.status_code).ok()?).ok()?;
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        // As API Gateway merges them: a multi-value header replaces the single one.
        headers.extend(doc.headers);
        for name in doc.multi_value_headers.keys() {
            headers.remove(name);
        }
        for (name, value) in doc.multi_value_headers.iter() {
            headers.append(name.clone(), value.clone());
        }
    }
    let body = match doc.body {
        None | Some(LambdaBody::Empty) => Vec::new(),
        Some(LambdaBody::Binary(bytes)) => bytes,
        Some(LambdaBody::Text(text)) if doc.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?
        }
        Some(LambdaBody::Text(text)) => text.into_bytes(),
        Some(_) => return None,
    };
    builder.body(Body::from(body)).ok()
}

async fn invoke_streaming(state: &AppState, function: &str, payload: Blob) -> Response {
    let call = state
        .lambda_streaming
        .invoke_with_response_stream()
        .function_name(function)
        .payload(payload)
        .send();
    let out = match tokio::time::timeout(STREAMING_IDLE_TIMEOUT, call).await {
        Err(_) => return gateway_error(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out"),
        Ok(Err(e)) => {
            tracing::warn!(function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "InvokeWithResponseStream failed");
            return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
        }
        Ok(Ok(out)) => out,
    };
    let mut events = out.event_stream;
    // Read until the prelude is complete: it carries the status and headers.
    let mut prelude = PreludeDecoder::default();
    let head = loop {
        match tokio::time::timeout(STREAMING_IDLE_TIMEOUT, events.recv()).await {
            Ok(Ok(Some(InvokeWithResponseStreamResponseEvent::PayloadChunk(chunk)))) => {
                let bytes = chunk.payload().map(|b| b.as_ref()).unwrap_or_default();
                if let Some(head) = prelude.push(bytes) {
                    break head;
                }
            }
            Ok(Ok(Some(InvokeWithResponseStreamResponseEvent::InvokeComplete(_))))
            | Ok(Ok(None)) => {
                return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
            }
            Ok(Ok(Some(_))) => continue,
            Ok(Err(e)) => {
                tracing::warn!(function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "stream failed before the prelude");
                return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
            }
            Err(_) => {
                return gateway_error(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
            }
        }
    };
    let Some((status, headers, rest)) = head else {
        return gateway_error(StatusCode::BAD_GATEWAY, "Internal server error");
    };
    let function = function.to_owned();
    let started = tokio::time::Instant::now();
    let body = futures_util::stream::unfold(
        (Some(events), (!rest.is_empty()).then_some(rest)),
        move |(events, pending)| {
            let function = function.clone();
            async move {
                if let Some(bytes) = pending {
                    return Some((Ok::<Bytes, std::io::Error>(bytes), (events, None)));
                }
                let mut events = events?;
                loop {
                    let deadline = (started + STREAMING_TIMEOUT)
                        .min(tokio::time::Instant::now() + STREAMING_IDLE_TIMEOUT);
                    match tokio::time::timeout_at(deadline, events.recv()).await {
                        Ok(Ok(Some(InvokeWithResponseStreamResponseEvent::PayloadChunk(
                            chunk,
                        )))) => {
                            let bytes = chunk
                                .payload()
                                .map(|b| Bytes::copy_from_slice(b.as_ref()))
                                .unwrap_or_default();
                            if bytes.is_empty() {
                                continue;
                            }
                            return Some((Ok(bytes), (Some(events), None)));
                        }
                        Ok(Ok(Some(InvokeWithResponseStreamResponseEvent::InvokeComplete(
                            done,
                        )))) => {
                            if let Some(code) = done.error_code() {
                                tracing::warn!(function, code, "function failed mid-stream");
                                return Some((
                                    Err(std::io::Error::other("function failed mid-stream")),
                                    (None, None),
                                ));
                            }
                            return None;
                        }
                        Ok(Ok(Some(_))) => continue,
                        Ok(Ok(None)) => return None,
                        Ok(Err(e)) => {
                            tracing::warn!(function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "stream failed");
                            return Some((
                                Err(std::io::Error::other("stream failed")),
                                (None, None),
                            ));
                        }
                        Err(_) => {
                            return Some((
                                Err(std::io::Error::other("stream timed out")),
                                (None, None),
                            ));
                        }
                    }
                }
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Splits a streamed Lambda HTTP response into its JSON prelude (status, headers,
/// cookies) and the body, across chunk boundaries. The prelude ends at 8 NUL bytes.
#[derive(Default, Debug)]
pub struct PreludeDecoder {
    buf: BytesMut,
}

/// What a complete prelude decodes to: status, headers and the first body bytes; `None`
/// when the prelude is not valid JSON.
pub type PreludeHead = Option<(StatusCode, HeaderMap, Bytes)>;

impl PreludeDecoder {
    /// Feeds bytes; returns `Some` once the delimiter has been seen.
    pub fn push(&mut self, bytes: &[u8]) -> Option<PreludeHead> {
        self.buf.extend_from_slice(bytes);
        let pos = self.buf.windows(8).position(|w| w == [0u8; 8])?;
        let rest = self.buf.split_off(pos + 8).freeze();
        let json = &self.buf[..pos];
        // The prelude is lambda_runtime's own `MetadataPrelude`, read back with its type.
        let parsed = serde_json::from_slice::<MetadataPrelude>(json)
            .ok()
            .map(|prelude| {
                let mut headers = prelude.headers;
                for cookie in &prelude.cookies {
                    if let Ok(v) = HeaderValue::from_str(cookie) {
                        headers.append(http::header::SET_COOKIE, v);
                    }
                }
                (prelude.status_code, headers, rest)
            });
        Some(parsed)
    }
}

fn preflight(state: &AppState) -> Response {
    let mut builder = Response::builder().status(StatusCode::NO_CONTENT);
    if let Some(origin) = &state.cors_allow_origin {
        builder = builder
            .header("access-control-allow-origin", origin)
            .header("access-control-allow-methods", "POST, DELETE, OPTIONS")
            .header(
                "access-control-allow-headers",
                "content-type, authorization, x-session-id, x-amz-date, x-amz-security-token, x-amz-content-sha256",
            )
            .header("access-control-max-age", "600");
    }
    builder.body(Body::empty()).unwrap_or_default()
}

/// API Gateway's own error shape: `{"message": "..."}`.
fn gateway_error(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(json!({ "message": message }).to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let error_type = match status {
        StatusCode::UNAUTHORIZED => "UnauthorizedException",
        StatusCode::FORBIDDEN => "MissingAuthenticationTokenException",
        _ => "InternalServerErrorException",
    };
    resp.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    resp
}

/// The browser page (`web/`), its sign-in helper and the edge in front of option 2, served
/// by the emulator next to the APIs (`make run`): the page's origin is the gateway's.
#[derive(Clone, Debug)]
pub struct PageConfig {
    /// The folder the page's files are read from (the workspace's `web/`).
    pub dir: std::path::PathBuf,
    /// Option 2's Function URL: the page's default for option 2, and the origin behind
    /// `/edge/option2/`.
    pub option2_url: String,
    /// The local OIDC issuer that `GET /auth/token?user=NAME` asks for a token.
    pub issuer: Option<String>,
}

/// The routes of the page, added to the emulator's router when it serves one.
fn page_routes(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    router
        .route("/", get(page_index))
        .route("/web/config.json", get(page_config))
        .route("/web/{file}", get(page_file))
        .route("/auth/token", get(auth_token))
        .route("/edge/option2/", any(edge_option2))
        .route("/edge/option2/{*rest}", any(edge_option2))
}

/// Files of `web/` the page may load: one path segment, no dot files, known types only
/// (`node_modules/`, `tests/` and `package.json` are never served).
fn page_content_type(file: &str) -> Option<&'static str> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if !plain {
        return None;
    }
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => Some("text/html; charset=utf-8"),
        Some("js") => Some("text/javascript; charset=utf-8"),
        Some("css") => Some("text/css; charset=utf-8"),
        Some("svg") => Some("image/svg+xml"),
        Some("png") => Some("image/png"),
        _ => None,
    }
}

/// The page's Content-Security-Policy: its own files only, no inline script or style, and
/// requests to its own origin (options 1 and 3, the edge, the sign-in helper) and to option
/// 2's Function URL.
fn page_csp(page: &PageConfig) -> String {
    let option2_origin = url_origin(&page.option2_url);
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {option2_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host:port` of a URL.
fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

fn page_response(page: &PageConfig, content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(csp) = HeaderValue::from_str(&page_csp(page)) {
        h.insert(http::header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

async fn page_index(State(state): State<Arc<AppState>>) -> Response {
    page_file(State(state), Path("index.html".to_owned())).await
}

async fn page_file(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let Some(page) = &state.page else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(content_type) = page_content_type(&file) else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    match tokio::fs::read(page.dir.join(&file)).await {
        Ok(bytes) => page_response(page, content_type, Body::from(bytes)),
        Err(_) => gateway_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /web/config.json`: the URLs the page offers (editable there), on the address the
/// page was loaded from, and whether the local issuer signs users in.
async fn page_config(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(page) = &state.page else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let gw = format!("http://{host}");
    let doc = json!({
        "options": {
            "1": format!("{gw}/option1/invoke"),
            "2": page.option2_url,
            "3": format!("{gw}/option3/invoke"),
            "edge": format!("{gw}/edge/option2/"),
        },
        "sign_in": page.issuer.is_some(),
    });
    page_response(
        page,
        "application/json",
        Body::from(doc.to_string().into_bytes()),
    )
}

/// `GET /auth/token?user=NAME`: a token from the local issuer, same-origin for the page (a
/// stand-in for a sign-in page; the issuer lives on another port).
async fn auth_token(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let Some(issuer) = state.page.as_ref().and_then(|p| p.issuer.clone()) else {
        return gateway_error(StatusCode::NOT_FOUND, "Sign-in is off (--anonymous)");
    };
    let user = query.get("user").map(|u| u.trim()).unwrap_or_default();
    let plain = user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if user.is_empty() || user.len() > 64 || !plain {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "A user name is 1 to 64 letters, digits, '.', '_', '@' or '-'",
        );
    }
    let answer = state
        .http
        .get(format!("{issuer}/token?user={user}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let (status, body) = match answer {
        Ok(resp) => (resp.status(), resp.bytes().await.unwrap_or_default()),
        Err(_) => return gateway_error(StatusCode::BAD_GATEWAY, "The issuer did not answer"),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// What CloudFront with origin access control does in front of option 2's Function URL
/// for this path: a `POST` (or `PUT`) must carry `x-amz-content-sha256`, the hex SHA-256 of
/// its body, or the origin refuses the signature (403); the client's `Authorization` is
/// replaced (OAC puts its SigV4 signature there: here it is dropped, as the local Function
/// URL has no IAM auth), every other header travels on (`x-auth-token` with it), and the
/// answer streams back chunk by chunk.
async fn edge_option2(State(state): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let Some(page) = &state.page else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let (parts, body) = req.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix("/edge/option2/")
        .unwrap_or_default();
    let mut target = format!("{}{rest}", page.option2_url);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await {
        Ok(b) => b,
        Err(_) => return edge_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    if parts.method == Method::POST || parts.method == Method::PUT {
        let sent = parts
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if sent.as_deref() != Some(body_sha256(&body).as_str()) {
            // The Function URL's answer to a signature over another body.
            return edge_error(
                StatusCode::FORBIDDEN,
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            );
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let hop = [
            http::header::HOST,
            http::header::AUTHORIZATION,
            http::header::CONNECTION,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ];
        if !hop.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        http::header::VIA,
        HeaderValue::from_static("1.1 local.cloudfront.net (CloudFront)"),
    );
    let sent = state
        .http
        .request(parts.method.clone(), target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(resp) => resp,
        Err(_) => return edge_error(StatusCode::BAD_GATEWAY, "The origin did not answer"),
    };
    let mut builder = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if name != http::header::TRANSFER_ENCODING
            && name != http::header::CONNECTION
            && name != http::header::CONTENT_LENGTH
        {
            builder = builder.header(name, value);
        }
    }
    builder = builder
        .header(http::header::VIA, "1.1 local.cloudfront.net (CloudFront)")
        .header("x-cache", "Miss from cloudfront");
    // Each chunk goes on as it arrives; dropping this body (the browser went away) drops
    // the origin connection, as CloudFront does.
    builder
        .body(Body::from_stream(upstream.bytes_stream()))
        .unwrap_or_default()
}

/// An error as the edge gives it: the origin's `{"Message": ...}` and CloudFront's headers.
fn edge_error(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(json!({ "Message": message }).to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::FORBIDDEN {
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("InvalidSignatureException"),
        );
    }
    h.insert("x-cache", HeaderValue::from_static("Error from cloudfront"));
    h.insert(
        http::header::VIA,
        HeaderValue::from_static("1.1 local.cloudfront.net (CloudFront)"),
    );
    resp
}

/// The hex SHA-256 of a body, as a client sends it in `x-amz-content-sha256`.
pub fn body_sha256(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn the_body_hash_is_the_hex_sha256_clients_send() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn only_plain_page_files_are_served() {
        assert_eq!(
            page_content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert!(page_content_type("index.html").is_some());
        for bad in [
            "",
            ".env",
            "package.json",
            "..",
            "a/b.js",
            "x.mjs",
            "%2e%2e",
        ] {
            assert_eq!(page_content_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_page_may_connect_to_its_origin_and_option2_only() {
        let page = PageConfig {
            dir: "web".into(),
            option2_url: "http://127.0.0.1:9000/lambda-url/option2-lambda-url/".into(),
            issuer: None,
        };
        let csp = page_csp(&page);
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:9000;"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_split_across_chunks() {
        let mut d = PreludeDecoder::default();
        assert!(d.push(br#"{"statusCode":201,"headers":{"content-type":"text/event-stream","x-session-id":"s"},"#).is_none());
        assert!(d.push(b"\"cookies\":[\"a=b\"]}\0\0\0\0").is_none());
        let (status, headers, rest) = d
            .push(b"\0\0\0\0data: 1\n\n")
            .expect("complete")
            .expect("valid");
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        assert_eq!(
            headers.get("set-cookie").map(|v| v.as_bytes()),
            Some(&b"a=b"[..])
        );
        assert_eq!(&rest[..], b"data: 1\n\n");
    }

    #[test]
    fn v1_events_carry_method_headers_and_body() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let uri: http::Uri = "/option1/invoke?a=1&a=2".parse().expect("uri");
        let e = v1_event(&Method::POST, &uri, &h, br#"{"prompt":"x"}"#);
        assert_eq!(e["httpMethod"], "POST");
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert_eq!(e["multiValueQueryStringParameters"]["a"], json!(["1", "2"]));
        assert_eq!(e["body"], r#"{"prompt":"x"}"#);
        assert_eq!(e["isBase64Encoded"], false);
        h.insert(
            "x-latin1",
            HeaderValue::from_bytes(b"caf\xe9").expect("a header value"),
        );
        let e = v1_event(&Method::POST, &uri, &h, &[0xff, 0xfe]);
        assert_eq!(e["headers"]["x-latin1"], "caf\u{fffd}");
        assert_eq!(e["multiValueHeaders"]["x-latin1"], json!(["caf\u{fffd}"]));
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "//4=");
    }

    #[test]
    fn v1_responses_map_back_to_http() {
        let resp = v1_response(br#"{"statusCode":418,"headers":{"x-a":"1"},"multiValueHeaders":{"x-b":["2","3"]},"body":"aGk=","isBase64Encoded":true}"#)
            .expect("valid");
        assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(resp.headers().get_all("x-b").iter().count(), 2);
        assert!(v1_response(b"not json").is_none());
        assert!(v1_response(br#"{"body":"x"}"#).is_none());
    }
}

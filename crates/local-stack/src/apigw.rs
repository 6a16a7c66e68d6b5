//! A local API Gateway REST front for options 1 and 3.
//!
//! Each HTTP request becomes a REST v1 proxy event and is sent to the function the way API
//! Gateway sends it: `Invoke` for option 1 (`AWS_PROXY`, buffered), and
//! `InvokeWithResponseStream` for option 3 (`responseTransferMode: STREAM`), through the
//! AWS SDK for Lambda against `cargo lambda watch`. It applies API Gateway's limits that
//! shape the handlers: the 29 s integration timeout (option 1), the 10 MB payload limit,
//! and CORS preflight answered by the gateway itself (a MOCK integration in the
//! templates).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

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
        }
    }
}

struct AppState {
    lambda: aws_sdk_lambda::Client,
    lambda_streaming: aws_sdk_lambda::Client,
    routes: HashMap<String, Route>,
    cors_allow_origin: Option<String>,
    integration_timeout: Duration,
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
        });
        let app = Router::new()
            .route("/{api}/{*rest}", any(handle))
            .with_state(state);
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
    let event = v1_event(&parts.method, &parts.uri, &parts.headers, &body);
    let payload = Blob::new(serde_json::to_vec(&event).unwrap_or_default());
    match route.mode {
        IntegrationMode::Buffered => invoke_buffered(&state, &route.function, payload).await,
        IntegrationMode::Streaming => invoke_streaming(&state, &route.function, payload).await,
    }
}

/// The REST v1 proxy event API Gateway sends for this request.
pub fn v1_event(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_owned(), Value::String(v.clone()));
        match multi.get_mut(name.as_str()) {
            Some(Value::Array(list)) => list.push(Value::String(v)),
            _ => {
                multi.insert(name.as_str().to_owned(), json!([v]));
            }
        }
    }
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(k.to_owned(), Value::String(v.to_owned()));
        match multi_query.get_mut(k) {
            Some(Value::Array(list)) => list.push(Value::String(v.to_owned())),
            _ => {
                multi_query.insert(k.to_owned(), json!([v]));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "resource": "/invoke",
        "path": "/invoke",
        "httpMethod": method.as_str(),
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "multiValueQueryStringParameters": if multi_query.is_empty() { Value::Null } else { Value::Object(multi_query) },
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": "/invoke",
            "httpMethod": method.as_str(),
            "path": uri.path(),
            "stage": "local",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": now_ms,
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
            },
        },
        "body": if body.as_str() == Some("") { Value::Null } else { body },
        "isBase64Encoded": is_base64,
    })
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
    let doc: Value = serde_json::from_slice(payload).ok()?;
    let status =
        StatusCode::from_u16(u16::try_from(doc.get("statusCode")?.as_u64()?).ok()?).ok()?;
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        copy_headers(doc.get("headers"), headers);
        copy_headers(doc.get("multiValueHeaders"), headers);
    }
    let body = doc.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if doc
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?
    } else {
        body.as_bytes().to_vec()
    };
    builder.body(Body::from(body)).ok()
}

fn copy_headers(src: Option<&Value>, dst: &mut HeaderMap) {
    let Some(Value::Object(map)) = src else {
        return;
    };
    for (name, value) in map {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        dst.remove(&name);
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                dst.append(name.clone(), v);
            }
        }
    }
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
        let parsed = (|| {
            let doc: Value = serde_json::from_slice(json).ok()?;
            let status = doc
                .get("statusCode")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let mut headers = HeaderMap::new();
            copy_headers(doc.get("headers"), &mut headers);
            copy_headers(doc.get("multiValueHeaders"), &mut headers);
            if let Some(Value::Array(cookies)) = doc.get("cookies") {
                for c in cookies.iter().filter_map(Value::as_str) {
                    if let Ok(v) = HeaderValue::from_str(c) {
                        headers.append(http::header::SET_COOKIE, v);
                    }
                }
            }
            Some((status, headers, rest))
        })();
        Some(parsed)
    }
}

fn preflight(state: &AppState) -> Response {
    let mut builder = Response::builder().status(StatusCode::NO_CONTENT);
    if let Some(origin) = &state.cors_allow_origin {
        builder = builder
            .header("access-control-allow-origin", origin)
            .header("access-control-allow-methods", "POST, OPTIONS")
            .header(
                "access-control-allow-headers",
                "content-type, authorization, x-session-id, x-amz-date, x-amz-security-token",
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
    resp.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("InternalServerErrorException"),
    );
    resp
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
        let e = v1_event(&Method::POST, &uri, &h, &[0xff, 0xfe]);
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

//! The Lambda API of the local stack, in front of `cargo lambda watch`: `Invoke` with
//! Lambda's payload limits, and `InvokeWithResponseStream`.
//!
//! `cargo lambda watch` 1.9.2 does not enforce Lambda's 6 MB limit on a buffered
//! response. Lambda does: a larger response is not delivered; `Invoke` answers `200` with
//! `X-Amz-Function-Error: Unhandled` and a `Function.ResponseSizeTooLarge` error document,
//! and API Gateway turns that into its generic `502`. This shim's `Invoke` does the same,
//! so that option 1's own size check is tested against a real limit.
//!
//! `cargo lambda watch` 1.9.2 does not route the `InvokeWithResponseStream` API
//! (`POST /2021-11-15/functions/{name}/response-streaming-invocations` falls through to its
//! Function URL handler and answers 404). Its `Invoke` route, however, passes a streaming
//! function's answer through chunk by chunk, with the status and headers taken from the
//! function's prelude. This shim serves the real API on top of that: it re-creates the
//! prelude (JSON + 8 NUL bytes), wraps every chunk in an event-stream `PayloadChunk`
//! message as it arrives, and ends with `InvokeComplete`, so the AWS SDK for Lambda (and
//! our API Gateway emulator) consume it exactly as they would consume AWS.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue as EsHeaderValue, Message};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::server::BackgroundServer;

/// Headers that describe the hop between watch and us, not the function's answer.
const HOP_HEADERS: &[&str] = &[
    "transfer-encoding",
    "content-length",
    "connection",
    "date",
    "lambda-runtime-function-response-mode",
    "keep-alive",
];

type UpstreamBody =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Where the translated stream is: the prelude still to send, chunks, or done (after the
/// final `InvokeComplete`).
enum Phase {
    Prelude(Bytes, UpstreamBody),
    Streaming(UpstreamBody),
    Done,
}

struct ShimState {
    http: reqwest::Client,
    watch: String,
}

/// A running shim.
pub struct LambdaShim {
    server: BackgroundServer,
}

impl LambdaShim {
    /// Serves `Invoke` and `InvokeWithResponseStream` on `listen`, backed by watch at
    /// `watch_endpoint`.
    pub async fn start(listen: SocketAddr, watch_endpoint: String) -> std::io::Result<Self> {
        let state = Arc::new(ShimState {
            http: reqwest::Client::new(),
            watch: watch_endpoint,
        });
        let app = Router::new()
            .route(
                "/2021-11-15/functions/{name}/response-streaming-invocations",
                post(invoke_with_response_stream),
            )
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(state);
        let server = BackgroundServer::start(listen, app, "Lambda streaming shim").await?;
        Ok(Self { server })
    }

    /// The endpoint URL to give the SDK for Lambda (both APIs).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Lambda's limit on a synchronous invocation's payload and buffered response, in bytes,
/// as its own error message states it.
pub const PAYLOAD_LIMIT: usize = 6_291_556;

async fn invoke(
    State(state): State<Arc<ShimState>>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    payload: Bytes,
) -> Response {
    if payload.len() > PAYLOAD_LIMIT {
        return service_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!(
                "Request must be smaller than {PAYLOAD_LIMIT} bytes for the InvokeFunction operation"
            ),
        );
    }
    let url = format!("{}/2015-03-31/functions/{name}/invocations", state.watch);
    let mut request = state.http.post(url).body(payload);
    for name in [
        "x-amz-invocation-type",
        "x-amz-log-type",
        "x-amz-client-context",
    ] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v);
        }
    }
    let upstream = match to_watch(request).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let status = upstream.status();
    let mut answer = Response::builder().status(status);
    for (k, v) in upstream.headers() {
        if !HOP_HEADERS.contains(&k.as_str()) {
            answer = answer.header(k, v);
        }
    }
    // Read at most one byte past the limit: enough to know the response is too large.
    let mut body = BytesMut::new();
    let mut stream = upstream.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(e) => {
                return service_error(
                    StatusCode::BAD_GATEWAY,
                    "ServiceException",
                    &format!("the function's response broke: {e}"),
                )
            }
        }
        if body.len() > PAYLOAD_LIMIT {
            break;
        }
    }
    if status.is_success() && body.len() > PAYLOAD_LIMIT {
        tracing::warn!(function = %name, "response over Lambda's {PAYLOAD_LIMIT}-byte limit: answered as a function error");
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("x-amz-function-error", "Unhandled")
            .header("x-amz-executed-version", "$LATEST")
            .body(Body::from(
                json!({
                    "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({PAYLOAD_LIMIT} bytes)."),
                    "errorType": "Function.ResponseSizeTooLarge",
                })
                .to_string(),
            ))
            .unwrap_or_default();
    }
    answer.body(Body::from(body.freeze())).unwrap_or_default()
}

/// Sends a request to `cargo lambda watch`; no answer is Lambda's `ServiceException`.
async fn to_watch(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Response> {
    request.send().await.map_err(|e| {
        service_error(
            StatusCode::BAD_GATEWAY,
            "ServiceException",
            &format!("cargo lambda watch did not answer: {e}"),
        )
    })
}

async fn invoke_with_response_stream(
    State(state): State<Arc<ShimState>>,
    Path(name): Path<String>,
    payload: Bytes,
) -> Response {
    let url = format!("{}/2015-03-31/functions/{name}/invocations", state.watch);
    let upstream = match to_watch(state.http.post(url).body(payload)).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    // A streamed answer carries the function's own status (a 404 of its own included);
    // watch's "no such function" is a 404 without the streaming mode header.
    let streamed = upstream
        .headers()
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v == "streaming");
    if upstream.status() == StatusCode::NOT_FOUND && !streamed {
        return service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    }
    let mut headers = Map::new();
    for (k, v) in upstream.headers() {
        if HOP_HEADERS.contains(&k.as_str()) {
            continue;
        }
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    let prelude =
        json!({ "statusCode": upstream.status().as_u16(), "headers": headers, "cookies": [] });
    let mut first = BytesMut::new();
    first.extend_from_slice(prelude.to_string().as_bytes());
    first.extend_from_slice(&[0u8; 8]);
    let start = Phase::Prelude(first.freeze(), Box::pin(upstream.bytes_stream()));
    let body = futures_util::stream::unfold(start, |phase| async move {
        match phase {
            Phase::Prelude(prelude, rest) => Some((payload_chunk(prelude), Phase::Streaming(rest))),
            Phase::Streaming(mut rest) => match rest.next().await {
                Some(Ok(bytes)) => Some((payload_chunk(bytes), Phase::Streaming(rest))),
                Some(Err(e)) => Some((
                    invoke_complete(Some("Unhandled"), Some(&e.to_string())),
                    Phase::Done,
                )),
                None => Some((invoke_complete(None, None), Phase::Done)),
            },
            Phase::Done => None,
        }
    })
    .map(Ok::<Bytes, std::io::Error>);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amz-executed-version", "$LATEST")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

fn message(event_type: &'static str, content_type: &'static str, payload: Bytes) -> Bytes {
    let message = Message::new(payload)
        .add_header(Header::new(
            ":event-type",
            EsHeaderValue::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":message-type",
            EsHeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":content-type",
            EsHeaderValue::String(content_type.into()),
        ));
    let mut buf = BytesMut::new();
    // Encoding fails only for oversized headers; ours are fixed and small.
    let _ = write_message_to(&message, &mut buf);
    buf.freeze()
}

fn payload_chunk(bytes: Bytes) -> Bytes {
    message("PayloadChunk", "application/octet-stream", bytes)
}

fn invoke_complete(error_code: Option<&str>, details: Option<&str>) -> Bytes {
    let mut doc = Map::new();
    if let Some(code) = error_code {
        doc.insert("ErrorCode".into(), Value::String(code.into()));
    }
    if let Some(details) = details {
        doc.insert("ErrorDetails".into(), Value::String(details.into()));
    }
    message(
        "InvokeComplete",
        "application/json",
        Bytes::from(Value::Object(doc).to_string()),
    )
}

fn service_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", error_type)
        .body(Body::from(
            json!({ "Message": message, "Type": "User" }).to_string(),
        ))
        .unwrap_or_default()
}

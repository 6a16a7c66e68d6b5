//! Calling AgentCore: one client per process, SigV4 through the AWS SDK or an OAuth bearer
//! over plain HTTPS, with the answer exposed as a stream of chunks that yields each chunk
//! as soon as it arrives.
//!
//! Time limits are enforced here, not by the SDK: the SDK has no notion of "first body
//! byte" for a streaming output, and its read timeout does not bound the gap between two
//! chunks. [`AgentCoreClient::invoke`] waits for the first chunk (so that a failure before
//! any byte is still a plain HTTP error for the caller) and the returned stream enforces the
//! idle limit between chunks.

use std::pin::Pin;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockagentcore::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockagentcore::primitives::Blob;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::time::Instant;

use crate::config::{AuthMode, Config, ConfigError, Timeouts};
use crate::error::{UpstreamError, UpstreamKind};
use crate::request::Invocation;

/// The answer's body: chunks in arrival order; an error ends the stream.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Header that carries the session id to and from AgentCore.
pub const SESSION_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// Header that carries `runtimeUserId` (OAuth mode; the SDK sets it itself).
pub const USER_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";

/// RFC 3986 unreserved characters stay; everything else in a path segment is encoded,
/// which is how the SDK encodes the ARN (`:` and `/` included).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A client for AgentCore's `InvokeAgentRuntime`, built once per process.
#[derive(Clone, Debug)]
pub struct AgentCoreClient {
    backend: Backend,
    runtime_arn: String,
    qualifier: Option<String>,
    timeouts: Timeouts,
    max_attempts: u32,
}

#[derive(Clone, Debug)]
enum Backend {
    Sdk(aws_sdk_bedrockagentcore::Client),
    OAuth {
        http: reqwest::Client,
        base_url: String,
    },
}

/// A started answer: AgentCore accepted the request and the agent began to answer.
pub struct AgentResponse {
    /// The agent's `Content-Type` (`text/event-stream`, `application/json`, ...).
    pub content_type: String,
    /// The client's session id (AgentCore's echo is the runtime session, which may be the
    /// caller's derived one).
    pub session_id: String,
    /// Attempts it took to reach the agent.
    pub attempts: u32,
    first_chunk: Option<Bytes>,
    rest: ChunkStream,
}

impl std::fmt::Debug for AgentResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentResponse")
            .field("content_type", &self.content_type)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl AgentResponse {
    /// An answer made of `chunks` that did not come through [`AgentCoreClient::invoke`]:
    /// the property tests and fuzz targets feed the collector and the streaming body with
    /// it, with arbitrary bytes cut at arbitrary places.
    pub fn from_chunks(content_type: String, session_id: String, chunks: ChunkStream) -> Self {
        Self {
            content_type,
            session_id,
            attempts: 1,
            first_chunk: None,
            rest: chunks,
        }
    }

    /// The whole body as a stream, starting with the chunk already received.
    pub fn into_chunks(self) -> ChunkStream {
        match self.first_chunk {
            Some(first) => {
                Box::pin(futures_util::stream::once(async move { Ok(first) }).chain(self.rest))
            }
            None => self.rest,
        }
    }
}

impl AgentCoreClient {
    /// Builds the client for `config`: the AWS SDK (credentials from the default chain,
    /// region from the runtime ARN, endpoint from `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE` when
    /// set) in SigV4 mode, or an HTTPS client in OAuth mode.
    pub async fn new(config: &Config) -> Result<Self, ConfigError> {
        let backend = match config.auth_mode {
            AuthMode::SigV4 => {
                let shared = Self::sdk_config_loader(config).load().await;
                Backend::Sdk(aws_sdk_bedrockagentcore::Client::new(&shared))
            }
            AuthMode::OAuth => {
                let base_url = config
                    .endpoint_url
                    .clone()
                    .unwrap_or_else(|| default_endpoint(config.runtime_arn.region()));
                let http = reqwest::Client::builder()
                    .connect_timeout(config.timeouts.connect)
                    .build()
                    .map_err(|e| ConfigError::ClientInit {
                        reason: e.to_string(),
                    })?;
                Backend::OAuth {
                    http,
                    base_url: base_url.trim_end_matches('/').to_owned(),
                }
            }
        };
        Ok(Self {
            backend,
            runtime_arn: config.runtime_arn.as_str().to_owned(),
            qualifier: config.qualifier.clone(),
            timeouts: config.timeouts,
            max_attempts: config.max_attempts,
        })
    }

    /// The SDK settings of SigV4 mode: region from the runtime ARN, the connect timeout,
    /// one attempt per call, no stalled-stream protection. Credentials and the endpoint come
    /// from the default chain; tests add their own to this loader.
    pub fn sdk_config_loader(config: &Config) -> aws_config::ConfigLoader {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.runtime_arn.region().to_owned()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(config.timeouts.connect)
                    .build(),
            )
            // Retries are decided in `invoke` (see there): the SDK makes one attempt.
            .retry_config(RetryConfig::disabled())
            // Off: the SDK's stalled-stream protection ends a download after 5 s without a
            // byte, and an agent may go quiet for longer mid-answer (a tool call).
            // UPSTREAM_IDLE_TIMEOUT_MS (`with_idle_timeout`) is the one limit on a silent
            // agent. It also saves keeping a throughput log of every chunk.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
    }

    /// Wraps an SDK client built elsewhere (tests, custom credential providers). Give it
    /// a retry configuration of one attempt: retries are decided by [`Self::invoke`].
    pub fn from_sdk_client(client: aws_sdk_bedrockagentcore::Client, config: &Config) -> Self {
        Self {
            backend: Backend::Sdk(client),
            runtime_arn: config.runtime_arn.as_str().to_owned(),
            qualifier: config.qualifier.clone(),
            timeouts: config.timeouts,
            max_attempts: config.max_attempts,
        }
    }

    /// Sends `inv` and waits for the first chunk of the answer (within the first-byte
    /// limit). The returned response streams the rest as it arrives.
    ///
    /// A failed attempt is repeated (up to `AGENTCORE_MAX_ATTEMPTS` in all, within the
    /// first-byte limit) only when it provably did not reach the agent
    /// ([`UpstreamError::retry_safe`]): an agent must never run a prompt twice. This loop
    /// is ours rather than the SDK's retry strategy because the SDK's standard classifiers
    /// also retry 5xx answers and I/O errors after the request was written, and because
    /// OAuth mode, which does not use the SDK, must follow the same policy.
    pub async fn invoke(&self, inv: &Invocation) -> Result<AgentResponse, UpstreamError> {
        let deadline = Instant::now() + self.timeouts.first_byte;
        let first_byte_timeout = || {
            UpstreamError::new(
                UpstreamKind::Timeout,
                format!(
                    "no first byte within {} ms",
                    self.timeouts.first_byte.as_millis()
                ),
            )
        };
        let mut attempt = 1;
        let started = loop {
            // Boxed: the SDK's future is deeply nested, and keeping it inline pushes the
            // handler's future past the compiler's type-layout recursion limit.
            let sent = tokio::time::timeout_at(deadline, Box::pin(self.send(inv)))
                .await
                .map_err(|_| first_byte_timeout())?;
            match sent {
                Ok(started) => break started,
                Err(e) if attempt < self.max_attempts && e.retry_safe() => {
                    let pause = backoff(attempt);
                    tracing::warn!(
                        session_id = %inv.session_id,
                        attempt,
                        code = e.kind.code(),
                        detail = %e.detail,
                        pause_ms = pause.as_millis() as u64,
                        "AgentCore refused the request before the agent saw it; retrying"
                    );
                    if Instant::now() + pause >= deadline {
                        return Err(first_byte_timeout());
                    }
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(mut e) => {
                    if attempt > 1 {
                        e.detail = format!("{} (attempt {attempt})", e.detail);
                    }
                    e.attempts = attempt;
                    return Err(e);
                }
            }
        };
        // The client sees its own id; AgentCore's echo is the runtime (maybe derived) one.
        let (content_type, _runtime_session, mut body) = started;
        let first_chunk = tokio::time::timeout_at(deadline, next_non_empty(&mut body))
            .await
            .map_err(|_| first_byte_timeout())?
            .transpose()?;
        // An answer without a single byte is still an answer (an agent turn that yielded
        // nothing). Its stream has ended and must not be polled again.
        let rest = match first_chunk {
            Some(_) => with_idle_timeout(body, self.timeouts.idle),
            None => Box::pin(futures_util::stream::empty()),
        };
        Ok(AgentResponse {
            content_type,
            session_id: inv.session_id.to_string(),
            attempts: attempt,
            first_chunk,
            rest,
        })
    }

    async fn send(
        &self,
        inv: &Invocation,
    ) -> Result<(String, Option<String>, ChunkStream), UpstreamError> {
        match &self.backend {
            Backend::Sdk(client) => self.send_sdk(client, inv).await,
            Backend::OAuth { http, base_url } => self.send_oauth(http, base_url, inv).await,
        }
    }

    async fn send_sdk(
        &self,
        client: &aws_sdk_bedrockagentcore::Client,
        inv: &Invocation,
    ) -> Result<(String, Option<String>, ChunkStream), UpstreamError> {
        let op = client
            .invoke_agent_runtime()
            .agent_runtime_arn(&self.runtime_arn)
            .set_qualifier(self.qualifier.clone())
            .runtime_session_id(inv.runtime_session_id.as_str())
            .set_runtime_user_id(inv.runtime_user_id.clone())
            .content_type(&inv.content_type)
            .accept(&inv.accept)
            .payload(Blob::new(inv.payload.to_vec()))
            .set_trace_id(inv.trace.trace_id.clone())
            .set_trace_parent(inv.trace.traceparent.clone())
            .set_trace_state(inv.trace.tracestate.clone())
            .set_baggage(inv.trace.baggage.clone());
        let result = if inv.custom_headers.is_empty() {
            op.send().await
        } else {
            let headers: Vec<(String, String)> = inv
                .custom_headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            // Added before signing, so the custom headers are covered by the signature.
            op.customize()
                .mutate_request(move |req| {
                    for (k, v) in &headers {
                        req.headers_mut().insert(k.clone(), v.clone());
                    }
                })
                .send()
                .await
        };
        let out = result.map_err(map_sdk_error)?;
        let content_type = out.content_type.clone();
        let session_id = out.runtime_session_id.clone();
        let body = futures_util::stream::unfold(out.response, |mut body| async move {
            let item = body.next().await?;
            Some((
                item.map_err(|e| {
                    UpstreamError::new(
                        UpstreamKind::Reset,
                        format!("stream broke: {}", DisplayErrorContext(&e)),
                    )
                }),
                body,
            ))
        });
        Ok((content_type, session_id, Box::pin(body)))
    }

    /// `{base}/runtimes/{ARN}/{operation}?qualifier=Q`, as the SDK builds it.
    fn oauth_url(&self, base_url: &str, operation: &str) -> String {
        let mut url = format!(
            "{base_url}/runtimes/{}/{operation}",
            utf8_percent_encode(&self.runtime_arn, PATH_SEGMENT)
        );
        if let Some(q) = &self.qualifier {
            url.push_str("?qualifier=");
            url.extend(utf8_percent_encode(q, PATH_SEGMENT));
        }
        url
    }

    /// Ends the AgentCore session `runtime_session_id` (`StopRuntimeSession`). A session
    /// that does not exist is an [`UpstreamKind::NotFound`] error. `bearer` is the caller's
    /// token in OAuth mode.
    pub async fn stop_session(
        &self,
        runtime_session_id: &str,
        bearer: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let stop = async {
            match &self.backend {
                Backend::Sdk(client) => client
                    .stop_runtime_session()
                    .agent_runtime_arn(&self.runtime_arn)
                    .set_qualifier(self.qualifier.clone())
                    .runtime_session_id(runtime_session_id)
                    .send()
                    .await
                    .map(drop)
                    .map_err(map_sdk_error),
                Backend::OAuth { http, base_url } => {
                    let resp = http
                        .post(self.oauth_url(base_url, "stopruntimesession"))
                        .bearer_auth(bearer.unwrap_or_default())
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .header(SESSION_ID_HEADER, runtime_session_id)
                        .body("{}")
                        .send()
                        .await
                        .map_err(|e| request_failed(&e))?;
                    if resp.status().is_success() {
                        Ok(())
                    } else {
                        Err(oauth_error(resp).await)
                    }
                }
            }
        };
        tokio::time::timeout(self.timeouts.first_byte, Box::pin(stop))
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::new(
                    UpstreamKind::Timeout,
                    "StopRuntimeSession did not answer in time",
                ))
            })
    }

    async fn send_oauth(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        inv: &Invocation,
    ) -> Result<(String, Option<String>, ChunkStream), UpstreamError> {
        let url = self.oauth_url(base_url, "invocations");
        let token = inv.bearer_token.as_deref().unwrap_or_default();
        let mut req = http
            .post(&url)
            .bearer_auth(token)
            .header(http::header::CONTENT_TYPE, &inv.content_type)
            .header(http::header::ACCEPT, &inv.accept)
            .header(SESSION_ID_HEADER, inv.runtime_session_id.as_str())
            .body(inv.payload.clone());
        if let Some(user) = &inv.runtime_user_id {
            req = req.header(USER_ID_HEADER, user);
        }
        for (name, value) in [
            ("x-amzn-trace-id", &inv.trace.trace_id),
            ("traceparent", &inv.trace.traceparent),
            ("tracestate", &inv.trace.tracestate),
            ("baggage", &inv.trace.baggage),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        for (k, v) in &inv.custom_headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| request_failed(&e))?;
        if !resp.status().is_success() {
            return Err(oauth_error(resp).await);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type =
            header("content-type").unwrap_or_else(|| "application/octet-stream".to_owned());
        let session_id = header(SESSION_ID_HEADER);
        let body = resp.bytes_stream().map(|item| {
            item.map_err(|e| UpstreamError::new(UpstreamKind::Reset, format!("stream broke: {e}")))
        });
        Ok((content_type, session_id, Box::pin(body)))
    }
}

/// An OAuth-mode request that got no answer.
fn request_failed(e: &reqwest::Error) -> UpstreamError {
    let detail = format!("request failed: {}", error_chain(e));
    if e.is_connect() {
        // The connection was never established: nothing reached AgentCore.
        UpstreamError::not_sent(detail)
    } else if e.is_timeout() {
        UpstreamError::new(UpstreamKind::Timeout, detail)
    } else {
        UpstreamError::new(UpstreamKind::Unavailable, detail)
    }
}

/// An OAuth-mode error answer (restJson1: `X-Amzn-ErrorType` and a JSON `message`).
async fn oauth_error(resp: reqwest::Response) -> UpstreamError {
    let status = resp.status().as_u16();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Error bodies are small JSON documents; cap the read so a misbehaving endpoint
    // cannot make us buffer a large body.
    let body = read_capped(resp, 64 * 1024).await;
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let mut kind = UpstreamKind::from_error_type(&error_type, status);
    if kind == UpstreamKind::AccessDenied {
        // In OAuth mode the credential is the caller's token, not our role.
        kind = UpstreamKind::TokenRejected;
    }
    UpstreamError::new(kind, format!("{error_type} ({status}): {message}"))
}

/// `https://bedrock-agentcore.<region>.amazonaws.com` (`.com.cn` in China regions).
fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://bedrock-agentcore.{region}.{suffix}")
}

/// Pause before attempt `attempt + 1`: exponential from 50 ms, capped at 1 s, with full
/// jitter so that many functions throttled at once do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 50u64.saturating_mul(1 << attempt.min(5)).min(1_000);
    Duration::from_millis(fastrand::u64(ceiling / 2..=ceiling))
}

/// An error and its sources on one line, for the log.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether an error's sources include a refused TCP connection (nothing was sent).
fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = s.source();
    }
    false
}

async fn read_capped(resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

async fn next_non_empty(body: &mut ChunkStream) -> Option<Result<Bytes, UpstreamError>> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            other => return other,
        }
    }
}

/// Ends the stream with a timeout error when no chunk arrives for `idle`.
fn with_idle_timeout(body: ChunkStream, idle: Duration) -> ChunkStream {
    Box::pin(futures_util::stream::unfold(
        Some(body),
        move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(idle, next_non_empty(&mut body)).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(UpstreamError::new(
                        UpstreamKind::Timeout,
                        format!("no data for {} ms", idle.as_millis()),
                    )),
                    None,
                )),
            }
        },
    ))
}

/// Maps an SDK failure to an upstream error, keeping the full error chain for the log.
pub fn map_sdk_error<E>(err: SdkError<E, HttpResponse>) -> UpstreamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    let kind = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            UpstreamKind::from_error_type(code, status)
        }
        SdkError::TimeoutError(_) => UpstreamKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => UpstreamKind::Timeout,
        SdkError::DispatchFailure(_) if connection_refused(&err) => {
            return UpstreamError::not_sent(detail);
        }
        SdkError::DispatchFailure(_) => UpstreamKind::Unavailable,
        SdkError::ResponseError(_) => UpstreamKind::Internal,
        _ => UpstreamKind::Unknown,
    };
    UpstreamError::new(kind, detail)
}

//! The HTTP side: routing, authentication, validation, the demo agent and the proxy,
//! the request log and one access-log line per request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq;

use crate::demo::{answer_stream, DemoRequest};
use crate::error::{ApiError, ErrorType, ERROR_TYPE_HEADER};
use crate::issuer;
use crate::sigv4::{parse_query, PendingBody, Verifier, SERVICE_NAME};
use crate::{
    AuthMode, LocalConfig, RecordedRequest, CUSTOM_HEADER_PREFIX, MAX_CUSTOM_HEADERS,
    MAX_CUSTOM_HEADER_VALUE_BYTES, MAX_PAYLOAD_BYTES, MAX_SESSION_ID_LEN, MIN_SESSION_ID_LEN,
    REQUEST_ID_HEADER, SESSION_ID_HEADER, USER_ID_HEADER,
};

/// Headers AgentCore passes to the agent container besides the custom ones.
const FORWARDED_HEADERS: [&str; 7] = [
    "content-type",
    "accept",
    USER_ID_HEADER,
    "x-amzn-trace-id",
    "traceparent",
    "tracestate",
    "baggage",
];

/// Shared state of a running server.
pub(crate) struct AppState {
    pub(crate) config: LocalConfig,
    verifier: Verifier,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    /// Open sessions (opened by an invocation, ended by `StopRuntimeSession`) and the
    /// prompts each received, which the demo agent recalls.
    pub(crate) sessions: Mutex<HashMap<String, Vec<String>>>,
    http: reqwest::Client,
    agent_url: Option<String>,
}

impl AppState {
    pub(crate) fn new(config: LocalConfig) -> std::io::Result<AppState> {
        let agent_url = match &config.agent_url {
            Some(url) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("invalid agent URL `{url}`: {e}"),
                    )
                })?;
                Some(parsed.as_str().trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(std::io::Error::other)?;
        let verifier = Verifier {
            access_key_id: config.access_key_id.clone(),
            secret_access_key: config.secret_access_key.clone(),
            region: config.region.clone(),
            service: SERVICE_NAME.to_owned(),
            max_clock_skew: config.max_clock_skew,
            session_token: config.session_token.clone(),
        };
        Ok(AppState {
            config,
            verifier,
            requests: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            http,
            agent_url,
        })
    }
}

/// The router: everything goes through one handler so that every answer, including
/// "no such route", is a restJson1 error.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let start = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut session_id = header_str(req.headers(), SESSION_ID_HEADER).map(str::to_owned);

    let mut response = match route(&state, req, &mut session_id).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(error_type = %error.kind, message = %error.message, "request rejected");
            error.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    if let Ok(mut log) = state.requests.lock() {
        if log.len() >= MAX_RECORDED_REQUESTS {
            // Bounded: a long-running server forgets its oldest half.
            log.drain(..MAX_RECORDED_REQUESTS / 2);
        }
        let headers = headers
            .into_iter()
            .map(|(k, v)| {
                let v = if k == AUTHORIZATION.as_str() {
                    redact_authorization(&v)
                } else if k == "x-amz-security-token" {
                    // A credential like the signature: the record says it was there, no more.
                    "<redacted>".to_owned()
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        log.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query,
            headers,
            session_id: session_id.clone(),
            status,
            error_type: error_type.clone(),
        });
    }

    let (parts, body) = response.into_parts();
    let logged = LoggedBody {
        inner: body,
        bytes: 0,
        line: Some(AccessLine {
            method,
            path,
            session_id,
            status,
            error_type,
            request_id,
            start,
        }),
    };
    Response::from_parts(parts, Body::new(logged))
}

/// Requests kept for [`crate::LocalServer::requests`].
pub(crate) const MAX_RECORDED_REQUESTS: usize = 10_000;

/// An `Authorization` value as it is recorded: the scheme and, for SigV4, the credential
/// scope and signed headers, never a token or a signature.
pub(crate) fn redact_authorization(value: &str) -> String {
    if let Some((before, _)) = value.split_once("Signature=") {
        return format!("{before}Signature=<redacted>");
    }
    match value.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} <redacted>"),
        None => "<redacted>".to_owned(),
    }
}

async fn route(
    state: &AppState,
    req: Request,
    session_id: &mut Option<String>,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if path == "/ping" && (method == Method::GET || method == Method::HEAD) {
        return Ok(ping(state).await);
    }
    if method == Method::GET && path.starts_with(issuer::ISSUER_PATH) {
        return issuer_route(&req);
    }
    let runtime_operation = path.strip_prefix("/runtimes/").and_then(|rest| {
        let (arn, operation) = rest.split_once('/')?;
        (method == Method::POST && !arn.is_empty()).then(|| (arn.to_owned(), operation))
    });
    match runtime_operation {
        Some((arn, "invocations")) => return invoke(state, req, &arn, session_id).await,
        Some((arn, "stopruntimesession")) => {
            return stop_session(state, req, &arn, session_id).await
        }
        _ => {}
    }
    Err(ApiError::new(
        ErrorType::UnknownOperationException,
        format!("No operation matches {method} {path}"),
    ))
}

/// The local OIDC issuer ([`issuer`]); its URL is built from the `Host` the client used.
fn issuer_route(req: &Request) -> Result<Response, ApiError> {
    let host = header_str(req.headers(), "host").unwrap_or("127.0.0.1");
    let issuer = issuer::issuer_url(&format!("http://{host}"));
    let rest = &req.uri().path()[issuer::ISSUER_PATH.len()..];
    let doc = match rest {
        "/.well-known/openid-configuration" => issuer::discovery(&issuer),
        "/.well-known/jwks.json" => issuer::jwks(),
        "/token" => {
            let query = parse_query(req.uri().query().unwrap_or_default());
            let user = query
                .iter()
                .find(|(k, _)| k == "user")
                .map(|(_, v)| v.as_str())
                .filter(|u| {
                    !u.is_empty()
                        && u.len() <= 64
                        && u.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .ok_or_else(|| {
                    ApiError::validation(
                        "Name the user: /issuer/token?user=alice (letters, digits, '-', '_').",
                    )
                })?;
            let token = issuer::token_for(&issuer, user)
                .map_err(|e| ApiError::new(ErrorType::InternalServerException, e))?;
            serde_json::json!({"id_token": token, "token_type": "Bearer", "expires_in": issuer::TOKEN_LIFETIME_SECONDS})
        }
        _ => {
            return Err(ApiError::new(
                ErrorType::ResourceNotFoundException,
                format!("The local issuer has no {rest}."),
            ))
        }
    };
    Ok(json_response(StatusCode::OK, doc.to_string()))
}

/// `StopRuntimeSession`: ends an open session (its demo memory goes with it); a session
/// that is not open is a `ResourceNotFoundException`.
async fn stop_session(
    state: &AppState,
    req: Request,
    encoded_arn: &str,
    session_id: &mut Option<String>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let pending = authenticate_head(state, &parts)?;
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::validation("The request body is too large."))?;
    authenticated_arn(pending, &parts, &body, encoded_arn)?;
    let session = session_id
        .clone()
        .ok_or_else(|| ApiError::validation("The runtime session id header is required."))?;
    let removed = state
        .sessions
        .lock()
        .map(|mut sessions| sessions.remove(&session).is_some())
        .unwrap_or(false);
    if !removed {
        return Err(ApiError::new(
            ErrorType::ResourceNotFoundException,
            format!("No runtime session '{session}' is active."),
        ));
    }
    let mut response = json_response(StatusCode::OK, "{}".to_owned());
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_ID_HEADER, value);
    }
    Ok(response)
}

async fn ping(state: &AppState) -> Response {
    let Some(agent_url) = &state.agent_url else {
        return json_response(StatusCode::OK, r#"{"status":"Healthy"}"#.to_owned());
    };
    let result = state
        .http
        .get(format!("{agent_url}/ping"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    let unhealthy = |message: String| {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "Unhealthy", "message": message}).to_string(),
        )
    };
    match result {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(CONTENT_TYPE).cloned();
            match answer.bytes().await {
                Ok(body) => {
                    let mut response = Response::new(Body::from(body));
                    *response.status_mut() = status;
                    if let Some(ct) = content_type {
                        response.headers_mut().insert(CONTENT_TYPE, ct);
                    }
                    response
                }
                Err(e) => unhealthy(format!("the agent's /ping answer could not be read: {e}")),
            }
        }
        Err(e) => unhealthy(format!("the agent at {agent_url} is not reachable: {e}")),
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn invoke(
    state: &AppState,
    req: Request,
    encoded_arn: &str,
    session_id: &mut Option<String>,
) -> Result<Response, ApiError> {
    let too_large = || {
        ApiError::validation(format!(
            "The payload must be at most {MAX_PAYLOAD_BYTES} bytes (100 MB)."
        ))
    };
    let declared_len = header_str(req.headers(), CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared_len > MAX_PAYLOAD_BYTES as u64 {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    // The credential, the date and the signed headers are checked before the body is read
    // (and the signature too when the client declared the payload hash): a caller without
    // the key cannot make the server buffer 100 MB.
    let pending = authenticate_head(state, &parts)?;
    let body = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES)
        .await
        .map_err(|_| too_large())?;

    let arn = authenticated_arn(pending, &parts, &body, encoded_arn)?;
    let query = parse_query(parts.uri.query().unwrap_or_default());
    let qualifier = query
        .iter()
        .find(|(k, _)| k == "qualifier")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "DEFAULT".to_owned());
    let runtime_known =
        state.config.runtime_arns.is_empty() || state.config.runtime_arns.contains(&arn);
    if !runtime_known {
        return Err(ApiError::new(
            ErrorType::ResourceNotFoundException,
            format!("No agent runtime found with ARN '{arn}'."),
        ));
    }
    if !state.config.qualifiers.contains(&qualifier) {
        return Err(ApiError::new(
            ErrorType::ResourceNotFoundException,
            format!("No endpoint found with qualifier '{qualifier}' for agent runtime '{arn}'."),
        ));
    }

    let session = match session_id.clone() {
        Some(s) => s,
        None => {
            let generated = format!("session-{}", uuid::Uuid::new_v4());
            *session_id = Some(generated.clone());
            generated
        }
    };

    let mut response = match &state.agent_url {
        Some(agent_url) => {
            open_session(state, &session, None);
            proxy(state, agent_url, &parts.headers, &session, body).await?
        }
        None => demo(state, &session, &body).await?,
    };
    let session_value = HeaderValue::from_str(&session)
        .map_err(|_| ApiError::validation("The session id is not a valid header value."))?;
    response
        .headers_mut()
        .insert(SESSION_ID_HEADER, session_value);
    Ok(response)
}

/// The checks every runtime operation makes, in AgentCore's order: the credential
/// (finished here with the body, see [`authenticate_head`]), the header rules, then the
/// runtime ARN (returned decoded).
fn authenticated_arn(
    pending: Option<PendingBody>,
    parts: &http::request::Parts,
    body: &[u8],
    encoded_arn: &str,
) -> Result<String, ApiError> {
    if let Some(pending) = pending {
        pending.verify_body(body)?;
    }
    validate_headers(&parts.headers)?;
    let arn = percent_decode_str(encoded_arn)
        .decode_utf8()
        .map_err(|_| ApiError::validation("The agent runtime ARN is not valid UTF-8."))?
        .into_owned();
    validate_arn(&arn)?;
    Ok(arn)
}

/// Authenticates a request from its head, before its body is read. In SigV4 mode what
/// needs the body is returned, for [`authenticated_arn`]; OAuth needs nothing more.
fn authenticate_head(
    state: &AppState,
    parts: &http::request::Parts,
) -> Result<Option<PendingBody>, ApiError> {
    let headers = &parts.headers;
    let authorization = header_str(headers, AUTHORIZATION.as_str()).unwrap_or_default();
    let mismatch = || {
        ApiError::new(
            ErrorType::AccessDeniedException,
            "Authorization method mismatch. The agent is configured for a different authorization method than what was used in your request.",
        )
    };
    match &state.config.auth {
        AuthMode::SigV4 => {
            if bearer(authorization).is_some() {
                return Err(mismatch());
            }
            state
                .verifier
                .verify_head(&parts.method, &parts.uri, headers, SystemTime::now())
                .map(Some)
        }
        AuthMode::OAuth { token } => {
            if authorization.is_empty() {
                // A 403 rather than a 401, so that every client sees one typed error.
                return Err(ApiError::new(
                    ErrorType::AccessDeniedException,
                    "Missing bearer token: send `Authorization: Bearer <token>`.",
                ));
            }
            let Some(presented) = bearer(authorization) else {
                return Err(mismatch());
            };
            if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                Ok(None)
            } else {
                Err(ApiError::new(
                    ErrorType::AccessDeniedException,
                    "The bearer token is not valid.",
                ))
            }
        }
    }
}

fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn validate_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(value) = headers.get(SESSION_ID_HEADER) {
        let len = value.as_bytes().len();
        if len < MIN_SESSION_ID_LEN {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'runtimeSessionId' failed to satisfy constraint: Member must have length greater than or equal to {MIN_SESSION_ID_LEN}"
            )));
        }
        if len > MAX_SESSION_ID_LEN {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value at 'runtimeSessionId' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_ID_LEN}"
            )));
        }
        if value.to_str().is_err() {
            return Err(ApiError::validation(
                "The runtime session id must be printable ASCII.",
            ));
        }
    }
    let mut custom = 0usize;
    for (name, value) in headers {
        if name.as_str().starts_with(CUSTOM_HEADER_PREFIX) {
            custom += 1;
            if value.as_bytes().len() > MAX_CUSTOM_HEADER_VALUE_BYTES {
                return Err(ApiError::validation(format!(
                    "The value of header '{name}' is longer than {MAX_CUSTOM_HEADER_VALUE_BYTES} bytes."
                )));
            }
        }
    }
    if custom > MAX_CUSTOM_HEADERS {
        return Err(ApiError::validation(format!(
            "At most {MAX_CUSTOM_HEADERS} headers prefixed 'X-Amzn-Bedrock-AgentCore-Runtime-Custom-' are allowed; got {custom}."
        )));
    }
    Ok(())
}

/// `arn:<partition>:bedrock-agentcore:<region>:<12 digits>:runtime/<id>`.
fn validate_arn(arn: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        ["arn", partition, "bedrock-agentcore", region, account, resource] => {
            !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("runtime/")
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{arn}' at 'agentRuntimeArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(-[^:]+)?:bedrock-agentcore:[a-z0-9-]+:[0-9]{{12}}:runtime/[a-zA-Z][a-zA-Z0-9_]{{0,99}}-[a-zA-Z0-9]{{10}}"
        )))
    }
}

/// Marks `session` open, remembering `prompt`; returns the prompt before it, if any.
fn open_session(state: &AppState, session: &str, prompt: Option<&str>) -> Option<String> {
    let mut sessions = state.sessions.lock().ok()?;
    let prompts = sessions.entry(session.to_owned()).or_default();
    let previous = prompts.last().cloned();
    if let Some(prompt) = prompt {
        prompts.push(prompt.to_owned());
    }
    previous
}

async fn demo(state: &AppState, session: &str, payload: &[u8]) -> Result<Response, ApiError> {
    let mut request = DemoRequest::parse(payload)?;
    let previous = open_session(state, session, Some(&request.prompt));
    if request.knobs.recall == Some(true) {
        // The answer says what this session was told before (or that it is new).
        request.prompt = format!("earlier: {}", previous.as_deref().unwrap_or("nothing"));
    }
    let fault = request.fault()?;
    let delay = request.first_byte_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(fault) = fault {
        return Err(fault);
    }
    let body = Body::from_stream(answer_stream(&request, &state.config.demo)?);
    let mut response = Response::new(body);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(request.format().content_type()),
    );
    Ok(response)
}

/// The headers AgentCore passes to an agent container.
pub(crate) fn forwarded_headers(
    headers: &HeaderMap,
    oauth: bool,
) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            FORWARDED_HEADERS.contains(&name)
                || name.starts_with(CUSTOM_HEADER_PREFIX)
                || (oauth && name == AUTHORIZATION.as_str())
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

async fn proxy(
    state: &AppState,
    agent_url: &str,
    headers: &HeaderMap,
    session_id: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let oauth = matches!(state.config.auth, AuthMode::OAuth { .. });
    let mut request = state
        .http
        .post(format!("{agent_url}/invocations"))
        .body(body);
    for (name, value) in forwarded_headers(headers, oauth) {
        request = request.header(name, value);
    }
    if !headers.contains_key(ACCEPT) {
        request = request.header(ACCEPT, "*/*");
    }
    request = request.header(SESSION_ID_HEADER, session_id);
    let answer = request.send().await.map_err(|e| {
        ApiError::new(
            ErrorType::RuntimeClientError,
            format!("The agent container could not be reached: {e}"),
        )
    })?;
    let status = answer.status();
    if !status.is_success() {
        return Err(ApiError::new(
            ErrorType::RuntimeClientError,
            format!(
                "Received error ({}) from runtime. Please check your CloudWatch logs for more information.",
                status.as_u16()
            ),
        ));
    }
    let content_type = answer.headers().get(CONTENT_TYPE).cloned();
    let stream = answer.bytes_stream().map_err(axum::Error::new);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    Ok(response)
}

/// What the access log line of one request says.
struct AccessLine {
    method: Method,
    path: String,
    session_id: Option<String>,
    status: u16,
    error_type: Option<String>,
    request_id: String,
    start: Instant,
}

/// A response body that counts the bytes it sends and writes the access-log line when it
/// ends (completely, with an error, or because the client went away).
struct LoggedBody {
    inner: Body,
    bytes: u64,
    line: Option<AccessLine>,
}

impl LoggedBody {
    fn finish(&mut self, outcome: &str) {
        if let Some(line) = self.line.take() {
            let duration_ms = line.start.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                target: "agentcore_local::access",
                method = %line.method,
                path = %line.path,
                session_id = line.session_id.as_deref().unwrap_or("-"),
                status = line.status,
                error_type = line.error_type.as_deref().unwrap_or("-"),
                bytes_sent = self.bytes,
                duration_ms = (duration_ms * 10.0).round() / 10.0,
                outcome,
                request_id = %line.request_id,
                "request"
            );
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish("aborted"),
            Poll::Ready(None) => this.finish("complete"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.finish("complete");
        } else {
            self.finish("client gone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body that records whether anything read it.
    fn watched_body(read: Arc<std::sync::atomic::AtomicBool>) -> Body {
        Body::from_stream(futures_util::stream::once(async move {
            read.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from_static(b"{\"prompt\":\"hi\"}"))
        }))
    }

    #[tokio::test]
    async fn an_unknown_credential_is_refused_before_the_body_is_read() {
        let state = AppState::new(LocalConfig::default()).expect("state");
        let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let req = http::Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/runtimes/{}/invocations",
                crate::DEFAULT_RUNTIME_ARN.replace(':', "%3A").replace('/', "%2F")
            ))
            .header("host", "127.0.0.1:8787")
            .header("x-amz-date", "20260101T000000Z")
            .header(
                AUTHORIZATION,
                "AWS4-HMAC-SHA256 Credential=AKIDSOMEONEELSE/20260101/us-east-1/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            )
            .body(watched_body(read.clone()))
            .expect("request");
        let err = route(&state, req, &mut None).await.expect_err("refused");
        assert_eq!(err.kind, ErrorType::UnrecognizedClientException);
        assert!(
            !read.load(std::sync::atomic::Ordering::SeqCst),
            "the body was read before the credential was checked"
        );
    }

    #[test]
    fn recorded_authorization_values_keep_no_secret() {
        assert_eq!(
            redact_authorization("Bearer abc.def.ghi"),
            "Bearer <redacted>"
        );
        assert_eq!(
            redact_authorization(
                "AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=abcd"
            ),
            "AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=<redacted>"
        );
        assert_eq!(redact_authorization("token"), "<redacted>");
    }

    #[test]
    fn arn_shapes() {
        assert!(validate_arn(crate::DEFAULT_RUNTIME_ARN).is_ok());
        assert!(validate_arn("arn:aws:bedrock-agentcore:us-east-1:123:runtime/x").is_err());
        assert!(validate_arn("arn:aws:s3:us-east-1:123456789012:runtime/x").is_err());
        assert!(validate_arn("nope").is_err());
    }

    #[test]
    fn forwards_only_the_allow_list() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("authorization", "AWS4-HMAC-SHA256 ..."),
            ("x-amz-date", "20240101T000000Z"),
            ("x-amz-security-token", "secret"),
            ("host", "127.0.0.1"),
            ("x-amzn-bedrock-agentcore-runtime-custom-tenant", "t1"),
            ("traceparent", "00-abc-def-01"),
        ] {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let names = |oauth| -> Vec<String> {
            forwarded_headers(&headers, oauth)
                .into_iter()
                .map(|(k, _)| k.as_str().to_owned())
                .collect()
        };
        let sigv4 = names(false);
        assert!(sigv4.contains(&"x-amzn-bedrock-agentcore-runtime-custom-tenant".to_owned()));
        assert!(sigv4.contains(&"traceparent".to_owned()));
        assert!(!sigv4
            .iter()
            .any(|n| n == "authorization" || n.starts_with("x-amz-") || n == "host"));
        assert!(names(true).contains(&"authorization".to_owned()));
    }
}

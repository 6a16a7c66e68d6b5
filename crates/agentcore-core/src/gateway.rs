//! The per-request flow every handler shares: parse, validate, invoke, then collect
//! (option 1) or stream (options 2 and 3). A handler's `main` builds one [`Gateway`] at
//! cold start and hands one of its two methods to `lambda_http`.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::access::{AccessRecord, Outcome};
use crate::collect::{collect, is_event_stream, CollectLimits};
use crate::config::{AgentErrorEvents, AuthMode, Config, ConfigError};
use crate::error::{ApiError, UpstreamError, UpstreamKind};
use crate::identity::{authorizer_caller, iam_caller, Caller, IdentitySource};
use crate::invoke::AgentCoreClient;
use crate::jwt::JwtVerifier;
use crate::request::Invocation;
use crate::request::{parse_lambda_request, SESSION_HEADER};
use crate::session::SessionId;
use crate::stream::{full_body, panic_message, stream_body, StreamSettings, StreamingBody};

/// Time kept back from the Lambda deadline so that we, not Lambda, end a request that runs
/// out of time: enough to write the error and flush.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// The smallest `Lambda-Runtime-Deadline-Ms` read as a point in time (2001-09-09 in ms
/// since the epoch); smaller values are not deadlines at all.
const EARLIEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Configuration plus the AgentCore client, built once per process.
#[derive(Clone, Debug)]
pub struct Gateway {
    config: Config,
    client: AgentCoreClient,
    /// The JWT verifier, when `CALLER_IDENTITY=jwt`.
    jwt: Option<std::sync::Arc<JwtVerifier>>,
    /// Which option this function is (`option1`...), for access records and metrics.
    option: &'static str,
}

impl Gateway {
    /// Reads the configuration from the environment and builds the client. Fails with a
    /// message naming the bad variable; call it in `main`, before serving requests.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::new(Config::from_env()?).await
    }

    /// Builds the gateway for `config`.
    pub async fn new(config: Config) -> Result<Self, ConfigError> {
        let client = AgentCoreClient::new(&config).await?;
        Ok(Self::with_client(config, client).await)
    }

    /// A gateway over a client built elsewhere (tests, custom SDK set-ups).
    pub async fn with_client(config: Config, client: AgentCoreClient) -> Self {
        let jwt = match &config.jwt {
            Some(settings) => Some(std::sync::Arc::new(
                JwtVerifier::new(settings.clone()).await,
            )),
            None => None,
        };
        Self {
            config,
            client,
            jwt,
            option: "option",
        }
    }

    /// Names the option this gateway serves (`option1`, `option2`, `option3`): the
    /// `Option` dimension of its metrics and the `option` of its access records.
    pub fn named(mut self, option: &'static str) -> Self {
        self.option = option;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Option 1: answers with one JSON document
    /// `{"session_id", "response", "content_type", "text"}`, or a JSON error.
    ///
    /// A panic anywhere below is caught here and answered like any other failure
    /// (`500 internal_error`), so one bad request never costs the process.
    pub async fn buffered(&self, req: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let method = req.method().clone();
        let work = self.buffered_inner(req, started);
        Ok(self.guarded(work, &method, started, Body::Text).await)
    }

    /// Runs a request's work; a panic in it becomes a logged `500 internal_error`.
    async fn guarded<B>(
        &self,
        work: impl std::future::Future<Output = Response<B>>,
        method: &Method,
        started: Instant,
        body: impl FnOnce(String) -> B,
    ) -> Response<B> {
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(resp) => resp,
            Err(panic) => {
                let err = caught(&*panic);
                log_done(method, &err, None, started);
                let mut record = AccessRecord::start(
                    &self.config.metrics_namespace,
                    self.option,
                    String::new(),
                    None,
                );
                record.status = err.status().as_u16();
                record.code = Some(err.code());
                record.outcome = Outcome::Refused;
                record.finish();
                self.error_response(&err, None, body)
            }
        }
    }

    async fn buffered_inner(&self, req: Request, started: Instant) -> Response<Body> {
        if req.method() == Method::OPTIONS {
            return self.preflight(Body::Empty);
        }
        let mut record = self.record(&req);
        let budget = self.budget(&req, Some(self.config.timeouts.response_deadline));
        let inv = match self.caller_and_invocation(&req).await {
            Ok(Prepared::Invoke(inv)) => *inv,
            Ok(Prepared::EndSession(session)) => {
                return self
                    .end_session(&req, session, started, record, || Body::Empty, Body::Text)
                    .await
            }
            Err(err) => return self.refuse(&req, record, &err, None, started, Body::Text),
        };
        record.caller = inv.caller_id.clone();
        let limits = CollectLimits {
            max_bytes: self.config.max_response_bytes,
            translate_agent_errors: self.config.agent_error_events == AgentErrorEvents::Translate,
        };
        let work = async {
            let resp = self.client.invoke(&inv).await?;
            let (agent_first_byte, attempts) = (started.elapsed(), resp.attempts);
            let answer = collect(resp, limits).await?;
            Ok((answer, agent_first_byte, attempts))
        };
        let result = within(budget, work, || {
            format!(
                "no complete answer within {} ms",
                budget.unwrap_or_default().as_millis()
            )
        })
        .await;
        let session = inv.session_id.to_string();
        match result {
            Ok((answer, agent_first_byte, attempts)) => {
                let body = answer.to_json();
                record.session_id = Some(session);
                record.agent_first_byte_ms = Some(agent_first_byte.as_millis() as u64);
                record.client_first_byte_ms = Some(record.elapsed_ms());
                record.bytes_out = body.len() as u64;
                record.attempts = attempts;
                record.finish();
                let mut resp =
                    self.response(StatusCode::OK, Some(&answer.session_id), Body::Text(body));
                set_content_type(&mut resp, "application/json");
                resp
            }
            Err(e) => {
                record.attempts = e.attempts;
                let err = ApiError::Upstream(e);
                self.refuse(&req, record, &err, Some(&session), started, Body::Text)
            }
        }
    }

    /// A fresh access record for `req`.
    fn record(&self, req: &Request) -> AccessRecord {
        let ctx = req.lambda_context_ref();
        let trace_id = ctx.and_then(|c| c.xray_trace_id.clone()).or_else(|| {
            req.headers()
                .get("x-amzn-trace-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let mut record = AccessRecord::start(
            &self.config.metrics_namespace,
            self.option,
            ctx.map(|c| c.request_id.clone()).unwrap_or_default(),
            trace_id,
        );
        record.bytes_in = req.body().len();
        // Known before the body is parsed, so that a refused request still names its session.
        record.session_id = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|id| SessionId::parse(id).ok())
            .map(|id| id.to_string());
        record
    }

    /// Answers a failure before the first byte: logs it, finishes its access record, and
    /// returns its JSON error.
    fn refuse<B>(
        &self,
        req: &Request,
        mut record: AccessRecord,
        err: &ApiError,
        session: Option<&str>,
        started: Instant,
        body: impl FnOnce(String) -> B,
    ) -> Response<B> {
        log_done(req.method(), err, session, started);
        record.status = err.status().as_u16();
        record.code = Some(err.code());
        record.outcome = Outcome::Refused;
        if let Some(session) = session {
            record.session_id = Some(session.to_owned());
        }
        record.finish();
        self.error_response(err, session, body)
    }

    /// Options 2 and 3: streams the agent's answer with its content type, or answers with
    /// a JSON error when the failure comes before the first byte. Panics are caught as in
    /// [`Gateway::buffered`], and inside the body stream too (see [`crate::stream`]).
    pub async fn streaming(&self, req: Request) -> Result<Response<StreamingBody>, Infallible> {
        let started = Instant::now();
        let method = req.method().clone();
        let work = self.streaming_inner(req, started);
        Ok(self.guarded(work, &method, started, full_body).await)
    }

    async fn streaming_inner(&self, req: Request, started: Instant) -> Response<StreamingBody> {
        if req.method() == Method::OPTIONS {
            return self.preflight(full_body(Vec::new()));
        }
        let mut record = self.record(&req);
        let budget = self.budget(&req, None);
        let inv = match self.caller_and_invocation(&req).await {
            Ok(Prepared::Invoke(inv)) => *inv,
            Ok(Prepared::EndSession(session)) => {
                return self
                    .end_session(
                        &req,
                        session,
                        started,
                        record,
                        || full_body(Vec::new()),
                        full_body,
                    )
                    .await
            }
            Err(err) => return self.refuse(&req, record, &err, None, started, full_body),
        };
        record.caller = inv.caller_id.clone();
        let answer = within(budget, self.client.invoke(&inv), || {
            "the function's time limit is near".to_owned()
        })
        .await;
        match answer {
            Ok(answer) => {
                tracing::info!(
                    method = %req.method(),
                    status = 200,
                    session_id = %answer.session_id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "request accepted"
                );
                let session = answer.session_id.clone();
                let content_type = answer.content_type.clone();
                record.session_id = Some(session.clone());
                record.agent_first_byte_ms = Some(started.elapsed().as_millis() as u64);
                record.attempts = answer.attempts;
                let settings = StreamSettings {
                    access: Some(record),
                    session_id: session.clone(),
                    deadline: budget.map(|b| tokio::time::Instant::from_std(started + b)),
                    event_stream: is_event_stream(&content_type),
                    translate_agent_errors: self.config.agent_error_events
                        == AgentErrorEvents::Translate,
                };
                let body = stream_body(answer.into_chunks(), settings);
                let mut resp = self.response(StatusCode::OK, Some(&session), body);
                set_content_type(&mut resp, &content_type);
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                resp
            }
            Err(e) => {
                record.attempts = e.attempts;
                let err = ApiError::Upstream(e);
                let session = inv.session_id.to_string();
                self.refuse(&req, record, &err, Some(&session), started, full_body)
            }
        }
    }

    /// Identifies the caller, then reads what the request asks for: an invocation bound to
    /// the caller (`POST`), or the end of one of the caller's sessions (`DELETE`).
    async fn caller_and_invocation(&self, req: &Request) -> Result<Prepared, ApiError> {
        // The method first: a wrong one says nothing about the caller, and readiness probes
        // (`make run`) rely on an unauthenticated GET getting 405.
        if req.method() != Method::POST && req.method() != Method::DELETE {
            return Err(ApiError::MethodNotAllowed(req.method().to_string()));
        }
        let caller = self.caller(req).await?;
        if req.method() == Method::DELETE {
            let client_id = delete_session_id(req)?;
            return Ok(Prepared::EndSession(EndSession {
                runtime_session_id: caller
                    .runtime_session_id(self.config.session_scope, &client_id),
                client_id,
                caller_id: caller.id,
            }));
        }
        let mut inv = parse_lambda_request(req, &self.config)?;
        inv.bind(&caller, &self.config);
        tracing::debug!(caller = %caller.id, "caller identified");
        Ok(Prepared::Invoke(Box::new(inv)))
    }

    /// The request's caller, as `CALLER_IDENTITY` says to find it.
    async fn caller(&self, req: &Request) -> Result<Caller, ApiError> {
        match self.config.identity {
            IdentitySource::Anonymous => Ok(Caller::anonymous()),
            IdentitySource::Iam => iam_caller(req).ok_or(ApiError::MissingIdentity),
            IdentitySource::Authorizer => authorizer_caller(req).ok_or(ApiError::MissingIdentity),
            IdentitySource::Jwt => match &self.jwt {
                Some(verifier) => verifier.verify(req.headers()).await,
                None => Err(ApiError::Internal(
                    "CALLER_IDENTITY=jwt without a verifier".into(),
                )),
            },
        }
    }

    /// `DELETE`: ends the caller's session (`StopRuntimeSession`) and answers `204`; a
    /// session that is not open, or not the caller's, is `404 session_not_found`.
    async fn end_session<B>(
        &self,
        req: &Request,
        end: EndSession,
        started: Instant,
        mut record: AccessRecord,
        empty: impl FnOnce() -> B,
        body: impl FnOnce(String) -> B,
    ) -> Response<B> {
        record.caller = end.caller_id.clone();
        let bearer = match self.config.auth_mode {
            AuthMode::OAuth => req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' ').map(|(_, t)| t.trim().to_owned())),
            AuthMode::SigV4 => None,
        };
        let session = end.client_id.to_string();
        match self
            .client
            .stop_session(end.runtime_session_id.as_str(), bearer.as_deref())
            .await
        {
            Ok(()) => {
                tracing::info!(
                    method = %req.method(),
                    status = 204,
                    session_id = %session,
                    caller = %end.caller_id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "session ended"
                );
                record.status = 204;
                record.session_id = Some(session.clone());
                record.finish();
                self.response(StatusCode::NO_CONTENT, Some(&session), empty())
            }
            Err(e) => {
                let err = if e.kind == UpstreamKind::NotFound {
                    ApiError::SessionNotFound
                } else {
                    ApiError::Upstream(e)
                };
                self.refuse(req, record, &err, Some(&session), started, body)
            }
        }
    }

    /// Time this request may take: the configured limit, capped by what the Lambda
    /// invocation has left (less a margin). A deadline that has already passed leaves
    /// zero, not "no limit".
    fn budget(&self, req: &Request, configured: Option<Duration>) -> Option<Duration> {
        let lambda_left = req.lambda_context_ref().and_then(|ctx| {
            // Not an epoch timestamp: no deadline from the Runtime API (a context built by
            // hand is 0, and `cargo lambda watch` 1.9.2 sends its timeout, e.g. 600000).
            if ctx.deadline < EARLIEST_EPOCH_DEADLINE_MS {
                return None;
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as u64;
            if ctx.deadline <= now_ms {
                tracing::warn!(
                    deadline_ms = ctx.deadline,
                    now_ms,
                    "the invocation's deadline has already passed"
                );
            }
            let left = Duration::from_millis(ctx.deadline.saturating_sub(now_ms));
            Some(left.saturating_sub(DEADLINE_MARGIN))
        });
        match (configured, lambda_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn response<B>(&self, status: StatusCode, session: Option<&str>, body: B) -> Response<B> {
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
        if let Some(origin) = &self.config.cors_allow_origin {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-session-id"),
            );
            h.insert(header::VARY, HeaderValue::from_static("origin"));
        }
        resp
    }

    fn error_response<B>(
        &self,
        err: &ApiError,
        session: Option<&str>,
        body: impl FnOnce(String) -> B,
    ) -> Response<B> {
        let status = err.status();
        let mut resp = self.response(status, session, body(err.to_json().to_string()));
        set_content_type(&mut resp, "application/json");
        if let Some(secs) = err.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(err, ApiError::MethodNotAllowed(_)) {
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("POST, DELETE, OPTIONS"),
            );
        }
        resp
    }

    fn preflight<B>(&self, body: B) -> Response<B> {
        let mut resp = self.response(StatusCode::NO_CONTENT, None, body);
        if self.config.cors_allow_origin.is_some() {
            // `x-amz-content-sha256`: browsers behind CloudFront's origin access control send
            // the body's hash; the JWT headers: the token may travel outside `Authorization`.
            let mut allowed =
                String::from("content-type, authorization, x-session-id, x-amz-content-sha256");
            let jwt_headers = self.config.jwt.iter().flat_map(|j| j.headers.iter());
            for name in self
                .config
                .forward_headers
                .iter()
                .map(|(name, _)| name)
                .chain(jwt_headers)
            {
                if !allowed.split(", ").any(|a| a == name.as_str()) {
                    allowed.push_str(", ");
                    allowed.push_str(name.as_str());
                }
            }
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, DELETE, OPTIONS"),
            );
            if let Ok(v) = HeaderValue::from_str(&allowed) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        resp
    }
}

fn set_content_type<B>(resp: &mut Response<B>, content_type: &str) {
    let value = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut().insert(header::CONTENT_TYPE, value);
}

/// What a request asks for, once its caller is known.
enum Prepared {
    /// `POST`: an invocation bound to the caller (boxed: it is most of the enum's size).
    Invoke(Box<Invocation>),
    /// `DELETE`: the end of one of the caller's sessions.
    EndSession(EndSession),
}

/// A session to end.
struct EndSession {
    client_id: SessionId,
    runtime_session_id: SessionId,
    caller_id: String,
}

/// The session id of a `DELETE`: the `X-Session-Id` header, or `session_id` in a JSON body.
fn delete_session_id(req: &Request) -> Result<SessionId, ApiError> {
    if let Some(value) = req.headers().get(SESSION_HEADER) {
        let id = value.to_str().map_err(|_| {
            ApiError::InvalidSessionId("it may contain only letters, digits, '-', '_', '.' and ':'")
        })?;
        return SessionId::parse(id);
    }
    let body = req.body().as_ref();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingSessionId);
    }
    let fields = crate::request::parse_body(body, 64 * 1024)?;
    match fields.get("session_id") {
        Some(serde_json::Value::String(id)) => SessionId::parse(id),
        None | Some(serde_json::Value::Null) => Err(ApiError::MissingSessionId),
        Some(_) => Err(ApiError::InvalidField {
            field: "session_id",
            reason: "must be a string of 33 to 256 characters",
        }),
    }
}

/// Runs `work` within `budget`; past it (or with no budget left at all, without starting
/// the work) the request ends with an upstream timeout whose log detail is `why()`.
async fn within<T>(
    budget: Option<Duration>,
    work: impl std::future::Future<Output = Result<T, UpstreamError>>,
    why: impl FnOnce() -> String,
) -> Result<T, UpstreamError> {
    let timeout = |why: String| UpstreamError::new(UpstreamKind::Timeout, why);
    match budget {
        Some(b) if b.is_zero() => Err(timeout(format!("{}: no time left", why()))),
        Some(b) => tokio::time::timeout(b, work)
            .await
            .unwrap_or_else(|_| Err(timeout(why()))),
        None => work.await,
    }
}

/// The error for a caught panic; its message goes to the log only.
fn caught(panic: &(dyn std::any::Any + Send)) -> ApiError {
    ApiError::Internal(format!("the handler panicked: {}", panic_message(panic)))
}

/// The log line of a request that failed before any answer byte. Upstream detail goes
/// here (the operator's log), never to the caller; the prompt and tokens are never logged.
fn log_done(method: &Method, err: &ApiError, session: Option<&str>, started: Instant) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let status = err.status().as_u16();
    if status >= 500 {
        tracing::error!(%method, status, session_id = session, elapsed_ms, code = err.code(), detail = %err.log_detail(), "request failed");
    } else {
        tracing::warn!(%method, status, session_id = session, elapsed_ms, code = err.code(), detail = %err.log_detail(), "request refused");
    }
}

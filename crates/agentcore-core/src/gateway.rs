//! The per-request flow every handler shares: parse, validate, invoke, then collect
//! (option 1) or stream (options 2 and 3). A handler's `main` builds one [`Gateway`] at
//! cold start and hands one of its two methods to `lambda_http`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::collect::collect;
use crate::config::{Config, ConfigError};
use crate::error::{ApiError, UpstreamError, UpstreamKind};
use crate::invoke::{AgentCoreClient, AgentResponse};
use crate::request::{parse_lambda_request, Invocation, SESSION_HEADER};
use crate::stream::{full_body, stream_body, StreamingBody};

/// Time kept back from the Lambda deadline so that we, not Lambda, end a request that runs
/// out of time: enough to write the error and flush.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Configuration plus the AgentCore client, built once per process.
#[derive(Clone, Debug)]
pub struct Gateway {
    config: Config,
    client: AgentCoreClient,
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
        Ok(Self { config, client })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Option 1: answers with one JSON document
    /// `{"session_id", "response", "content_type", "text"}`, or a JSON error.
    pub async fn buffered(&self, req: Request) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        if req.method() == Method::OPTIONS {
            return Ok(self.preflight(Body::Empty));
        }
        let budget = self.budget(&req, Some(self.config.timeouts.response_deadline));
        let outcome = match parse_lambda_request(&req, &self.config) {
            Err(e) => Err((e, None)),
            Ok(inv) => {
                let session = inv.session_id.to_string();
                let work = async {
                    let resp = self.client.invoke(&inv).await?;
                    collect(resp, self.config.max_response_bytes).await
                };
                let result = match budget {
                    Some(budget) => tokio::time::timeout(budget, work)
                        .await
                        .unwrap_or_else(|_| {
                            Err(UpstreamError::new(
                                UpstreamKind::Timeout,
                                format!("no complete answer within {} ms", budget.as_millis()),
                            ))
                        }),
                    None => work.await,
                };
                result.map_err(|e| (ApiError::Upstream(e), Some(session)))
            }
        };
        let response = match outcome {
            Ok(answer) => {
                let body = answer.to_json();
                log_done(req.method(), 200, Some(&answer.session_id), started, None);
                let mut resp =
                    self.response(StatusCode::OK, Some(&answer.session_id), Body::Text(body));
                set_content_type(&mut resp, "application/json");
                resp
            }
            Err((err, session)) => {
                log_done(
                    req.method(),
                    err.status(),
                    session.as_deref(),
                    started,
                    Some(&err),
                );
                self.error_response(&err, session.as_deref(), Body::Text)
            }
        };
        Ok(response)
    }

    /// Options 2 and 3: streams the agent's answer with its content type, or answers with
    /// a JSON error when the failure comes before the first byte.
    pub async fn streaming(&self, req: Request) -> Result<Response<StreamingBody>, Infallible> {
        let started = Instant::now();
        if req.method() == Method::OPTIONS {
            return Ok(self.preflight(full_body(Vec::new())));
        }
        let budget = self.budget(&req, None);
        let inv = match parse_lambda_request(&req, &self.config) {
            Ok(inv) => inv,
            Err(err) => {
                log_done(req.method(), err.status(), None, started, Some(&err));
                return Ok(self.error_response(&err, None, full_body));
            }
        };
        match self.start(&inv, budget).await {
            Ok(answer) => {
                log_done(req.method(), 200, Some(&answer.session_id), started, None);
                let session = answer.session_id.clone();
                let content_type = answer.content_type.clone();
                let deadline = budget.map(|b| tokio::time::Instant::from_std(started + b));
                let body = stream_body(answer.into_chunks(), session.clone(), deadline);
                let mut resp = self.response(StatusCode::OK, Some(&session), body);
                set_content_type(&mut resp, &content_type);
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                Ok(resp)
            }
            Err(err) => {
                let session = inv.session_id.to_string();
                log_done(
                    req.method(),
                    err.status(),
                    Some(&session),
                    started,
                    Some(&err),
                );
                Ok(self.error_response(&err, Some(&session), full_body))
            }
        }
    }

    async fn start(
        &self,
        inv: &Invocation,
        budget: Option<Duration>,
    ) -> Result<AgentResponse, ApiError> {
        let invoke = self.client.invoke(inv);
        let resp = match budget {
            Some(b) => tokio::time::timeout(b, invoke).await.unwrap_or_else(|_| {
                Err(UpstreamError::new(
                    UpstreamKind::Timeout,
                    "the function's time limit is near",
                ))
            }),
            None => invoke.await,
        };
        Ok(resp?)
    }

    /// Time this request may take: the configured limit, capped by what the Lambda
    /// invocation has left (less a margin).
    fn budget(&self, req: &Request, configured: Option<Duration>) -> Option<Duration> {
        let lambda_left = req.lambda_context_ref().and_then(|ctx| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_millis() as u64;
            let left = Duration::from_millis(ctx.deadline.checked_sub(now_ms)?);
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
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = self.response(status, session, body(err.to_json().to_string()));
        set_content_type(&mut resp, "application/json");
        if let Some(secs) = err.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(err, ApiError::MethodNotAllowed(_)) {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        }
        resp
    }

    fn preflight<B>(&self, body: B) -> Response<B> {
        let mut resp = self.response(StatusCode::NO_CONTENT, None, body);
        if self.config.cors_allow_origin.is_some() {
            let mut allowed = String::from("content-type, authorization, x-session-id");
            for (name, _) in &self.config.forward_headers {
                allowed.push_str(", ");
                allowed.push_str(name.as_str());
            }
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
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

/// One log line per request. Upstream detail goes here (the operator's log), never to the
/// caller; the prompt and tokens are never logged.
fn log_done(
    method: &Method,
    status: u16,
    session: Option<&str>,
    started: Instant,
    err: Option<&ApiError>,
) {
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match err {
        None => {
            tracing::info!(%method, status, session_id = session, elapsed_ms, "request accepted")
        }
        Some(e) if status >= 500 => tracing::error!(
            %method, status, session_id = session, elapsed_ms, code = e.code(), detail = %e.log_detail(), "request failed"
        ),
        Some(e) => tracing::warn!(
            %method, status, session_id = session, elapsed_ms, code = e.code(), detail = %e.log_detail(), "request refused"
        ),
    }
}

//! A local stand-in for the Amazon Bedrock AgentCore Runtime data plane.
//!
//! `agentcore-local` speaks the same HTTP protocol as
//! `bedrock-agentcore.<region>.amazonaws.com` for `InvokeAgentRuntime`, so the Lambda
//! handlers of this workspace (and the unmodified `aws-sdk-bedrockagentcore` client) can
//! be run and tested on one machine, with no AWS account:
//!
//! - `POST /runtimes/{URL-encoded runtime ARN}/invocations?qualifier=Q` checks the SigV4
//!   signature against configured credentials (or a bearer token in OAuth mode), enforces
//!   AgentCore's rules (session id length, custom header count and size, payload size,
//!   known runtime ARN and qualifier), and answers with restJson1 errors
//!   (`X-Amzn-ErrorType` + `{"message": ...}`) the SDK turns into its typed variants;
//! - the answer comes from a built-in demo agent (see [`demo`]: paced tokens, large
//!   bodies, injected faults, all chosen per request by a `"demo"` object in the payload)
//!   or, with [`LocalConfig::agent_url`], from a real agent container reached over HTTP
//!   (`POST /invocations`, `GET /ping`) with only the headers AgentCore would pass;
//! - `GET /ping` answers `{"status":"Healthy"}` (readiness probe).
//!
//! # Use from a test
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use agentcore_local::{LocalConfig, LocalServer};
//!
//! let server = LocalServer::start(LocalConfig {
//!     listen: "127.0.0.1:0".parse().expect("address"),
//!     ..LocalConfig::default()
//! })
//! .await?;
//! // Point the SDK at it: endpoint_url(server.endpoint_url()), region "us-east-1",
//! // credentials DEFAULT_ACCESS_KEY_ID / DEFAULT_SECRET_ACCESS_KEY.
//! let url = server.endpoint_url();
//! # let _ = url;
//! let seen = server.requests(); // what the server received, for assertions
//! # let _ = seen;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Use from a shell
//!
//! `cargo run -p agentcore-local -- --listen 127.0.0.1:8787` (see `--help`; every flag can
//! also be set by an `AGENTCORE_LOCAL_*` environment variable), then point the handlers at
//! it with `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE=http://127.0.0.1:8787`.

pub mod demo;
pub mod error;
pub mod issuer;
mod server;
pub mod sigv4;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use demo::{
    demo_text, DemoDefaults, DemoFormat, DemoKnobs, AGENT_EXCEPTION_TEXT, ERROR_EVENT_JSON,
};
pub use error::{ApiError, ErrorType};

/// Default listen address of the binary.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default region (the SigV4 credential scope must name it).
pub const DEFAULT_REGION: &str = "us-east-1";
/// The runtime ARN known by default.
pub const DEFAULT_RUNTIME_ARN: &str =
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/demo_agent-LOCAL0001";
/// Default access key id accepted in SigV4 mode.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDAGENTCORELOCAL";
/// Default secret access key of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "agentcore-local-secret";
/// Default bearer token accepted in OAuth mode.
pub const DEFAULT_BEARER_TOKEN: &str = "agentcore-local-token";
/// The endpoint qualifier used when a request names none.
pub const DEFAULT_QUALIFIER: &str = "DEFAULT";
/// Default largest accepted difference between a request's `X-Amz-Date` and the clock.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Request and response header carrying the runtime session id.
pub const SESSION_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// Request header carrying the runtime user id.
pub const USER_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";
/// Prefix of the custom headers passed through to the agent (lower case).
pub const CUSTOM_HEADER_PREFIX: &str = "x-amzn-bedrock-agentcore-runtime-custom-";
/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";
/// Shortest accepted session id.
pub const MIN_SESSION_ID_LEN: usize = 33;
/// Longest accepted session id.
pub const MAX_SESSION_ID_LEN: usize = 256;
/// Most custom headers accepted on one request.
pub const MAX_CUSTOM_HEADERS: usize = 20;
/// Largest accepted custom header value, in bytes.
pub const MAX_CUSTOM_HEADER_VALUE_BYTES: usize = 4096;
/// Largest accepted payload (100 MB).
pub const MAX_PAYLOAD_BYTES: usize = 100 * 1024 * 1024;

/// How callers authenticate.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// IAM: requests are SigV4-signed with the configured access key (service
    /// `bedrock-agentcore`).
    SigV4,
    /// OAuth inbound auth: requests carry `Authorization: Bearer <token>`. A missing or
    /// wrong token is a 403 `AccessDeniedException` (never a 401), and a SigV4-signed
    /// request is an "Authorization method mismatch" `AccessDeniedException`.
    OAuth {
        /// The only accepted bearer token.
        token: String,
    },
}

/// Configuration of a [`LocalServer`].
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Region the SigV4 credential scope must name.
    pub region: String,
    /// Accepted access key id (SigV4 mode).
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// Known runtime ARNs; any other is a `ResourceNotFoundException`. An empty list
    /// accepts every well-formed runtime ARN.
    pub runtime_arns: Vec<String>,
    /// Known endpoint names (default `["DEFAULT"]`); a request without `qualifier` uses
    /// `DEFAULT`.
    pub qualifiers: Vec<String>,
    /// SigV4 or OAuth.
    pub auth: AuthMode,
    /// Proxy mode when set: forward invocations to `{agent_url}/invocations` and pings to
    /// `{agent_url}/ping` instead of running the demo agent.
    pub agent_url: Option<String>,
    /// Largest accepted difference between `X-Amz-Date` and the server clock.
    pub max_clock_skew: Duration,
    /// SigV4 mode: the session token of temporary credentials (what a Lambda role gives a
    /// function), which every request must carry, signed, in `X-Amz-Security-Token`.
    /// `None` (the default): long-term keys, and no token is checked.
    pub session_token: Option<String>,
    /// Server-wide defaults of the demo agent.
    pub demo: DemoDefaults,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            region: DEFAULT_REGION.to_owned(),
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            runtime_arns: vec![DEFAULT_RUNTIME_ARN.to_owned()],
            qualifiers: vec![DEFAULT_QUALIFIER.to_owned()],
            auth: AuthMode::SigV4,
            agent_url: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            session_token: None,
            demo: DemoDefaults::default(),
        }
    }
}

/// One request as the server saw it (for assertions in tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path as received (the ARN still percent-encoded).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Every request header, names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The session id: the request's, or the one generated for it.
    pub session_id: Option<String>,
    /// Status code of the answer.
    pub status: u16,
    /// `X-Amzn-ErrorType` of the answer, when it was an error.
    pub error_type: Option<String>,
}

impl RecordedRequest {
    /// The first value of a request header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running local runtime.
///
/// Dropping it stops accepting connections; [`LocalServer::shutdown`] also waits (up to a
/// few seconds) for the server task to end.
pub struct LocalServer {
    addr: SocketAddr,
    state: Arc<server::AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LocalServer {
    /// Binds `config.listen`, spawns the server on the current tokio runtime and returns
    /// at once.
    ///
    /// Refuses to listen on an address other than loopback while the credentials are the
    /// published defaults (anyone could use them), and also while the issuer's published
    /// signing key would be served there.
    pub async fn start(config: LocalConfig) -> std::io::Result<LocalServer> {
        let published = match &config.auth {
            AuthMode::SigV4 => {
                config.access_key_id == DEFAULT_ACCESS_KEY_ID
                    || config.secret_access_key == DEFAULT_SECRET_ACCESS_KEY
            }
            AuthMode::OAuth { token } => token == DEFAULT_BEARER_TOKEN,
        };
        if !config.listen.ip().is_loopback() && published {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "refusing to listen on {} with the published default credentials: listen on 127.0.0.1, or set credentials of your own",
                    config.listen
                ),
            ));
        }
        let state = Arc::new(server::AppState::new(config)?);
        let listener = tokio::net::TcpListener::bind(state.config.listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = server::router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "agentcore-local server failed");
            }
        });
        Ok(LocalServer {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give the SDK as endpoint override, e.g. `http://127.0.0.1:8787`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &LocalConfig {
        &self.state.config
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self.state.requests.lock() {
            Ok(log) => log.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Stops accepting connections, lets running answers finish for up to 5 seconds, then
    /// stops the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

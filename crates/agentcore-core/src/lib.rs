//! Everything the agentcore-lambda handlers share: the request model and its validation,
//! session ids, the AgentCore client (SigV4 through the AWS SDK, or an OAuth bearer over
//! HTTPS), streaming and buffering of the agent's answer, SSE decoding, and the mapping of
//! every failure to an HTTP status, a stable error code and a client-safe message.
//!
//! A handler is a few lines over this crate:
//!
//! ```no_run
//! use agentcore_core::Gateway;
//! use lambda_http::Error;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     agentcore_core::telemetry::init();
//!     let gateway: &'static Gateway = Box::leak(Box::new(Gateway::from_env().await?));
//!     agentcore_core::entry::run_streaming(gateway).await
//! }
//! ```
//!
//! Configuration is read from the environment once (see [`config`]); the variables are
//! listed in the README's Configuration table (`tests/docs_agree.rs` keeps the two equal).

pub mod access;
pub mod collect;
pub mod config;
pub mod entry;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod invoke;
pub mod jwt;
pub mod media;
pub mod request;
pub mod session;
pub mod sse;
pub mod start_order;
pub mod stream;
pub mod telemetry;

pub use collect::CollectedAnswer;
pub use config::{AgentErrorEvents, AuthMode, Config, ConfigError, RuntimeArn};
pub use error::{ApiError, UpstreamError, UpstreamKind};
pub use gateway::Gateway;
pub use invoke::{AgentCoreClient, AgentResponse, ChunkStream};
pub use request::Invocation;
pub use session::SessionId;
pub use stream::{StreamSettings, StreamingBody};

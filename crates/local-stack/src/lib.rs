//! The whole agentcore-lambda system on one machine, with no AWS account:
//!
//! - `agentcore-local` (the local AgentCore Runtime) with its demo agent, in process;
//! - the three functions under `cargo lambda watch`, reached through Function URLs,
//!   `Invoke` and `InvokeWithResponseStream` as AWS reaches them;
//! - [`apigw`], a local API Gateway REST front that turns HTTP requests into REST v1 proxy
//!   events for options 1 and 3.
//!
//! `make run` and `make demo` use the `local-stack` binary; the end-to-end tests and the
//! benchmark driver use [`Stack`] directly, so they exercise the same set-up a developer
//! sees.

pub mod access_log;
pub mod apigw;
pub mod function_env;
pub mod lambda_shim;
pub mod server;
pub mod stack;

pub use stack::{LogSink, Stack, StackError, StackOptions, Upstream, Urls, FUNCTIONS};

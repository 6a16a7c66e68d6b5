//! Option 1: API Gateway REST (`AWS_PROXY`) -> this function -> AgentCore, answering with
//! one JSON document `{"session_id", "response", "content_type", "text"}`.
//!
//! Configuration and the AgentCore client are built once at cold start; each request is
//! parsed, validated, sent to the agent and collected within the response deadline and
//! Lambda's 6 MB response limit.

use agentcore_core::Gateway;
use lambda_http::Error;

// One thread, also when AWS_LAMBDA_MAX_CONCURRENCY runs many invocations in this process:
// why is in agentcore_core::entry ("One thread").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    agentcore_core::telemetry::init();
    let gateway: &'static Gateway =
        Box::leak(Box::new(Gateway::from_env().await?.named("option1")));
    agentcore_core::entry::run_buffered(gateway).await
}

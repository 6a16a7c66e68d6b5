//! Option 2: Lambda Function URL (`InvokeMode: RESPONSE_STREAM`) -> this function ->
//! AgentCore, streaming the agent's answer to the caller chunk by chunk as it arrives.
//!
//! Configuration and the AgentCore client are built once at cold start. An error before
//! the first byte is a JSON error response; an error after it is a final SSE
//! `event: error` in the stream.

use agentcore_core::Gateway;
use lambda_http::Error;

// One thread, also when AWS_LAMBDA_MAX_CONCURRENCY runs many invocations in this process:
// why is in agentcore_core::entry ("One thread").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    agentcore_core::telemetry::init();
    let gateway: &'static Gateway =
        Box::leak(Box::new(Gateway::from_env().await?.named("option2")));
    agentcore_core::entry::run_streaming(gateway).await
}

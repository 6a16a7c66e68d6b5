//! Option 3: API Gateway REST with `responseTransferMode: STREAM` (integration URI
//! `.../response-streaming-invocations`) -> this function -> AgentCore, streaming the
//! answer chunk by chunk for REST v1 proxy events.
//!
//! The code path is option 2's: `lambda_http` decodes the v1 event and writes the
//! streaming prelude API Gateway expects; everything else lives in `agentcore-core`.

use agentcore_core::Gateway;
use lambda_http::Error;

// One thread, also when AWS_LAMBDA_MAX_CONCURRENCY runs many invocations in this process:
// why is in agentcore_core::entry ("One thread").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    agentcore_core::telemetry::init();
    let gateway: &'static Gateway =
        Box::leak(Box::new(Gateway::from_env().await?.named("option3")));
    agentcore_core::entry::run_streaming(gateway).await
}

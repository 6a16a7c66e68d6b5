//! Option 3: API Gateway REST with `responseTransferMode: STREAM` (integration URI
//! `.../response-streaming-invocations`) -> this function -> AgentCore, streaming the
//! answer chunk by chunk for REST v1 proxy events.
//!
//! The code path is option 2's: `lambda_http` decodes the v1 event and writes the
//! streaming prelude API Gateway expects; everything else lives in `agentcore-core`.

use agentcore_core::Gateway;
use lambda_http::Error;

// One thread: Lambda hands a function one event at a time, and below 1,769 MB it gets less
// than one vCPU. `make bench` measured less CPU per byte and a flatter peak RSS than with the
// multi-threaded runtime (BENCHMARKS.md, section 4).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    agentcore_core::telemetry::init();
    let gateway: &'static Gateway =
        Box::leak(Box::new(Gateway::from_env().await?.named("option3")));
    agentcore_core::entry::run_streaming(gateway).await
}

//! The option 1 collector on arbitrary answers: any content type, any bytes, any chunking,
//! any size limit, an upstream failure or not. It never panics, and an answer it accepts
//! fits the limit and serialises to exactly the length it announced.
#![no_main]

use agentcore_core::collect::{collect, CollectLimits};
use agentcore_core::invoke::{AgentResponse, ChunkStream};
use agentcore_core::{UpstreamError, UpstreamKind};
use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    content_type: u8,
    chunks: Vec<Vec<u8>>,
    fail_at_end: bool,
    max_bytes: u16,
    translate: bool,
}

const CONTENT_TYPES: [&str; 6] = [
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "application/json",
    "application/problem+json",
    "text/plain",
    "",
];

fuzz_target!(|input: Input| {
    let content_type = CONTENT_TYPES[usize::from(input.content_type) % CONTENT_TYPES.len()];
    let mut items: Vec<Result<Bytes, UpstreamError>> =
        input.chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
    if input.fail_at_end {
        items.push(Err(UpstreamError::new(UpstreamKind::Reset, "reset")));
    }
    let chunks: ChunkStream = Box::pin(futures_util::stream::iter(items));
    let resp = AgentResponse::from_chunks(
        content_type.to_owned(),
        "session-00000000-0000-4000-8000-000000000000".to_owned(),
        chunks,
    );
    // Small limits reach the size checks; the envelope overhead alone is 4096 bytes.
    let max_bytes = usize::from(input.max_bytes) * 4;
    let limits = CollectLimits {
        max_bytes,
        translate_agent_errors: input.translate,
    };
    match futures_executor::block_on(collect(resp, limits)) {
        Ok(answer) => {
            assert!(!input.fail_at_end, "a failed stream was collected");
            assert!(answer.envelope_len() <= max_bytes);
            let json = answer.to_json();
            assert_eq!(json.len(), answer.json_len());
            assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
        }
        Err(err) => {
            let _ = err.kind.code();
        }
    }
});

//! The SSE decoder on arbitrary bytes cut into arbitrary chunks: it never panics, yields
//! the same events (or fails the same way) however the bytes are split, and the event-end
//! scanner the streaming path uses counts as many event ends either way.
#![no_main]

use agentcore_core::sse::{self, EventBoundaries};
use arbitrary::Arbitrary;
use bytes::Bytes;
use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    bytes: Vec<u8>,
    /// Chunk lengths, used in turn (0 makes an empty chunk).
    cuts: Vec<u8>,
}

fn chunks(bytes: &[u8], cuts: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = cuts.get(i % cuts.len().max(1)).copied().map_or(rest.len(), usize::from);
        let n = n.min(rest.len());
        out.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
        i += 1;
        if cuts.is_empty() || i > 4096 {
            out.push(Bytes::copy_from_slice(rest));
            break;
        }
    }
    out
}

/// The events, or where decoding stopped and why (as text).
fn decode(parts: Vec<Bytes>) -> (Vec<sse::Event>, Option<String>) {
    let stream = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::convert::Infallible>));
    let items: Vec<_> = futures_executor::block_on(sse::decode(stream).collect::<Vec<_>>());
    let mut events = Vec::new();
    for item in items {
        match item {
            Ok(event) => {
                let _ = sse::event_text(&event.data);
                let _ = sse::agent_error(&event);
                events.push(event);
            }
            Err(e) => return (events, Some(e.to_string())),
        }
    }
    (events, None)
}

fn ends(parts: &[Bytes]) -> usize {
    let mut scanner = EventBoundaries::default();
    let mut n = 0;
    for part in parts {
        scanner.for_each_end(part, |_| n += 1);
    }
    n
}

fuzz_target!(|input: Input| {
    let whole = decode(vec![Bytes::copy_from_slice(&input.bytes)]);
    let parts = chunks(&input.bytes, &input.cuts);
    assert_eq!(ends(&parts), ends(&[Bytes::copy_from_slice(&input.bytes)]));
    let split = decode(parts);
    if whole.1.is_none() && split.1.is_none() {
        assert_eq!(whole.0, split.0);
    }
    // A UTF-8 error is found at different places depending on the cut, so only success
    // is compared event for event; both must agree that the input is or is not valid.
    assert_eq!(whole.1.is_some(), split.1.is_some(), "{whole:?} / {split:?}");
});

//! The streaming response body (options 2 and 3): each upstream chunk is written as it
//! arrives, nothing is buffered, and a failure after the first byte becomes a final
//! in-band SSE `event: error` (the status line has already gone out).

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;

use crate::error::{ApiError, UpstreamError, UpstreamKind};
use crate::invoke::ChunkStream;
use crate::sse::{error_event, BoundaryTracker};

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

/// Body type of streaming responses: a stream of data frames that never fails (failures
/// are written into the stream instead).
pub type StreamingBody = StreamBody<FrameStream>;

/// A body holding one buffer (error documents, preflight answers).
pub fn full_body(bytes: impl Into<Bytes>) -> StreamingBody {
    let bytes = bytes.into();
    StreamBody::new(Box::pin(futures_util::stream::once(async move {
        Ok(Frame::data(bytes))
    })))
}

/// Streams `chunks` to the client. On an upstream error, or when `deadline` passes (the
/// function's own time limit, less a margin), writes an in-band error event and ends the
/// stream cleanly. If the client goes away, the runtime drops this body and with it the
/// upstream connection, which stops the agent read.
pub fn stream_body(
    chunks: ChunkStream,
    session_id: String,
    deadline: Option<tokio::time::Instant>,
) -> StreamingBody {
    let state = StreamState {
        chunks: Some(chunks),
        tracker: BoundaryTracker::default(),
        session_id,
        started: Instant::now(),
        bytes: 0,
        chunk_count: 0,
        finished: false,
        deadline,
    };
    let frames = futures_util::stream::unfold(state, |mut state| async move {
        let chunks = state.chunks.as_mut()?;
        let next = match state.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, chunks.next()).await {
                Ok(next) => next,
                Err(_) => Some(Err(UpstreamError::new(
                    UpstreamKind::Timeout,
                    "the function's time limit is near: ending the stream",
                ))),
            },
            None => chunks.next().await,
        };
        match next {
            Some(Ok(chunk)) => {
                state.tracker.observe(&chunk);
                state.bytes += chunk.len() as u64;
                state.chunk_count += 1;
                Some((Ok(Frame::data(chunk)), state))
            }
            Some(Err(err)) => {
                tracing::warn!(
                    session_id = %state.session_id,
                    code = err.kind.code(),
                    detail = %err.detail,
                    bytes = state.bytes,
                    "upstream failed mid-stream; sending an in-band error event"
                );
                let event = error_event(&ApiError::Upstream(err), !state.tracker.at_boundary());
                state.chunks = None;
                state.finished = true;
                Some((Ok(Frame::data(event)), state))
            }
            None => {
                state.chunks = None;
                state.finished = true;
                tracing::info!(
                    session_id = %state.session_id,
                    bytes = state.bytes,
                    chunks = state.chunk_count,
                    duration_ms = state.started.elapsed().as_millis() as u64,
                    "stream complete"
                );
                None
            }
        }
    });
    StreamBody::new(Box::pin(frames))
}

struct StreamState {
    chunks: Option<ChunkStream>,
    tracker: BoundaryTracker,
    session_id: String,
    started: Instant,
    bytes: u64,
    chunk_count: u64,
    finished: bool,
    deadline: Option<tokio::time::Instant>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if !self.finished {
            tracing::info!(
                session_id = %self.session_id,
                bytes = self.bytes,
                chunks = self.chunk_count,
                duration_ms = self.started.elapsed().as_millis() as u64,
                "client went away before the end of the stream; upstream read stopped"
            );
        }
    }
}

//! The streaming response body (options 2 and 3): each upstream chunk is written as it
//! arrives and nothing is buffered beyond one incomplete event.
//!
//! A failure after the first byte cannot change the status line any more, so it ends
//! the body in the way the answer's content type allows:
//!
//! - `text/event-stream`: a final in-band `event: error` (see [`crate::sse::error_event`]),
//!   then a clean end.
//! - anything else (JSON, plain text): the body fails, so that the runtime aborts the
//!   response (`vendor/lambda_runtime/PATCHED.md`) and the client sees an aborted
//!   transfer, never SSE text appended to a JSON document.
//!
//! In an event stream, the agent's own error event (the `bedrock-agentcore` SDK's, see
//! [`crate::sse::agent_error`]) is replaced by the function's `agent_error` event unless
//! the operator chose to pass it through. Recognising it needs whole events, so the body
//! forwards complete events and holds back the incomplete tail of each chunk until its
//! blank line arrives. A client's SSE parser cannot act on an event before that blank
//! line either, so what a reader sees is not delayed.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use http_body::Frame;
use http_body_util::StreamBody;

use crate::access::{AccessRecord, Outcome};
use crate::error::{ApiError, UpstreamError, UpstreamKind};
use crate::invoke::ChunkStream;
use crate::sse::{agent_error, error_event, AgentError, BoundaryTracker, EventBoundaries};

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, BodyError>> + Send>>;

/// Body type of streaming responses: a stream of data frames. It fails only for answers
/// that are not event streams (an event stream reports failures in-band instead).
pub type StreamingBody = StreamBody<FrameStream>;

/// Why a non-SSE answer was cut short: the stable code and client-safe message of the
/// failure (the runtime aborts the response on it; the detail is in the log).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BodyError {
    /// The failure's stable code (`upstream_reset`, `upstream_timeout`, ...).
    pub code: &'static str,
    /// Its client-safe message.
    pub message: String,
}

/// Largest incomplete event held back while looking for the agent's error event. An
/// event that grows past it is forwarded as it is (an error event is a few hundred
/// bytes), so memory stays bounded whatever the agent sends.
pub const MAX_HELD_EVENT_BYTES: usize = 256 * 1024;

/// A body holding one buffer (error documents, preflight answers). An empty buffer is a
/// body of no frames at all: with one empty data frame, the function's next Runtime API
/// call after a `204` failed (`IncompleteMessage`) and the function exited, under
/// `cargo lambda watch` (an empty chunk reads as the end of a chunked body).
pub fn full_body(bytes: impl Into<Bytes>) -> StreamingBody {
    let bytes = bytes.into();
    if bytes.is_empty() {
        return StreamBody::new(Box::pin(futures_util::stream::empty()));
    }
    StreamBody::new(Box::pin(futures_util::stream::once(async move {
        Ok(Frame::data(bytes))
    })))
}

/// How [`stream_body`] treats one answer.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// The request's access record, finished when the stream is over.
    pub access: Option<AccessRecord>,
    /// The session id, for the log.
    pub session_id: String,
    /// The function's own time limit, less a margin.
    pub deadline: Option<tokio::time::Instant>,
    /// The answer is `text/event-stream`: failures are reported in-band.
    pub event_stream: bool,
    /// Replace the agent's error events (only for event streams).
    pub translate_agent_errors: bool,
}

/// Streams `chunks` to the client. On an upstream error, when `deadline` passes, or when
/// the upstream stream panics, the body ends as the module documentation describes. If
/// the client goes away, the runtime drops this body and with it the upstream
/// connection, which stops the agent read.
pub fn stream_body(chunks: ChunkStream, mut settings: StreamSettings) -> StreamingBody {
    let aligner =
        (settings.event_stream && settings.translate_agent_errors).then(EventAligner::default);
    let state = StreamState {
        access: settings.access.take(),
        counter: EventBoundaries::default(),
        chunks: Some(chunks),
        aligner,
        queue: VecDeque::new(),
        tracker: BoundaryTracker::default(),
        utf8_tail: None,
        settings,
        started: Instant::now(),
        bytes: 0,
        chunk_count: 0,
        finished: false,
    };
    let frames = futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next_frame().await?;
        Some((item, state))
    });
    StreamBody::new(Box::pin(frames))
}

struct StreamState {
    /// Finished (written) when the stream ends, fails or is dropped.
    access: Option<AccessRecord>,
    /// Counts the events sent (event streams without an aligner, which counts its own).
    counter: EventBoundaries,
    chunks: Option<ChunkStream>,
    aligner: Option<EventAligner>,
    /// Frames ready to go out, in order.
    queue: VecDeque<Result<Frame<Bytes>, BodyError>>,
    tracker: BoundaryTracker,
    /// The start of a character cut at the end of the last chunk (event streams only).
    utf8_tail: Option<Bytes>,
    settings: StreamSettings,
    started: Instant,
    bytes: u64,
    chunk_count: u64,
    finished: bool,
}

impl StreamState {
    async fn next_frame(&mut self) -> Option<Result<Frame<Bytes>, BodyError>> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some(frame);
            }
            let chunks = self.chunks.as_mut()?;
            let deadline = self.settings.deadline;
            // A panic in the upstream stream (the SDK, the HTTP client, our decoding)
            // ends this answer like any other failure; the process keeps serving.
            let next = AssertUnwindSafe(async move {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, chunks.next())
                        .await
                        .unwrap_or_else(|_| {
                            Some(Err(UpstreamError::new(
                                UpstreamKind::Timeout,
                                "the function's time limit is near: ending the stream",
                            )))
                        }),
                    None => chunks.next().await,
                }
            })
            .catch_unwind()
            .await;
            match next {
                Ok(Some(Ok(chunk))) => {
                    self.chunk_count += 1;
                    match &mut self.aligner {
                        Some(aligner) => {
                            let (pieces, agent_failure) = aligner.push(chunk);
                            let events = std::mem::take(&mut aligner.forwarded_ends);
                            if let Some(record) = &mut self.access {
                                record.events += events;
                            }
                            for piece in pieces {
                                self.send(piece);
                            }
                            if let Some(failure) = agent_failure {
                                self.fail_with_agent_error(failure);
                            }
                        }
                        None => self.send(chunk),
                    }
                }
                Ok(Some(Err(err))) => self.fail(ApiError::Upstream(err)),
                Ok(None) => self.complete(),
                Err(panic) => self.fail(ApiError::Internal(format!(
                    "the answer's stream panicked: {}",
                    panic_message(&*panic)
                ))),
            }
        }
    }

    fn send(&mut self, mut piece: Bytes) {
        if self.settings.event_stream {
            // A character cut between two chunks goes out with the next one: if the stream
            // breaks in between, the error event then follows whole characters, and a
            // decoder that checks UTF-8 (eventsource-stream, as stream-client uses it)
            // still reads it. At most 3 bytes wait, only when a chunk ends mid-character.
            if let Some(held) = self.utf8_tail.take() {
                self.send_now(held);
            }
            let cut = incomplete_utf8_suffix(&piece);
            if cut > 0 {
                self.utf8_tail = Some(piece.split_off(piece.len() - cut));
            }
        }
        self.send_now(piece);
    }

    fn send_now(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.tracker.observe(&piece);
        if let Some(record) = &mut self.access {
            if record.client_first_byte_ms.is_none() {
                record.client_first_byte_ms = Some(record.elapsed_ms());
            }
            // The aligner, when there is one, has counted these events already: it finds
            // every event end anyway, and a second scan cost CPU per byte.
            if self.settings.event_stream && self.aligner.is_none() {
                let mut events = 0;
                self.counter.for_each_end(&piece, |_| events += 1);
                record.events += events;
            }
        }
        self.bytes += piece.len() as u64;
        self.queue.push_back(Ok(Frame::data(piece)));
    }

    fn complete(&mut self) {
        if let Some(held) = self.utf8_tail.take() {
            // The answer ends mid-character: it is the agent's, sent as it is.
            self.send_now(held);
        }
        if let Some(rest) = self.aligner.as_mut().map(EventAligner::finish) {
            // An unterminated last event: clients drop it, so it is sent as it is.
            self.send(rest);
        }
        tracing::info!(
            session_id = %self.settings.session_id,
            bytes = self.bytes,
            chunks = self.chunk_count,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "stream complete"
        );
        self.end(Outcome::Complete, None, 0);
    }

    fn fail_with_agent_error(&mut self, failure: AgentError) {
        let detail = crate::sse::agent_error_log_detail(&failure);
        tracing::error!(
            session_id = %self.settings.session_id,
            agent_error = %detail,
            bytes = self.bytes,
            "the agent reported an error mid-stream; sending agent_error in its place"
        );
        let err = ApiError::Upstream(UpstreamError::new(UpstreamKind::AgentFailed, detail));
        let event = error_event(&err, !self.tracker.at_boundary());
        let event_len = event.len() as u64;
        self.queue.push_back(Ok(Frame::data(event)));
        self.end(Outcome::FailedMidStream, Some(err.code()), event_len);
    }

    fn fail(&mut self, err: ApiError) {
        let event_stream = self.settings.event_stream;
        let outcome = if event_stream {
            "sending an in-band error event"
        } else {
            "aborting the body"
        };
        if matches!(err, ApiError::Internal(_)) {
            tracing::error!(
                session_id = %self.settings.session_id,
                code = err.code(),
                detail = %err.log_detail(),
                bytes = self.bytes,
                "the answer's stream failed mid-stream; {outcome}"
            );
        } else {
            tracing::warn!(
                session_id = %self.settings.session_id,
                code = err.code(),
                detail = %err.log_detail(),
                bytes = self.bytes,
                "upstream failed mid-stream; {outcome}"
            );
        }
        let mut event_len = 0;
        if event_stream {
            // Whatever was held back is an incomplete event: the error event replaces it.
            let event = error_event(&err, !self.tracker.at_boundary());
            event_len = event.len() as u64;
            self.queue.push_back(Ok(Frame::data(event)));
        } else {
            self.queue.push_back(Err(BodyError {
                code: err.code(),
                message: err.to_string(),
            }));
        }
        self.end(Outcome::FailedMidStream, Some(err.code()), event_len);
    }

    /// The stream is over: stop reading upstream and write the access record. (Bytes still
    /// queued go out right after; the record counts them already.)
    fn end(&mut self, outcome: Outcome, code: Option<&'static str>, error_event_bytes: u64) {
        self.chunks = None;
        self.aligner = None;
        self.finished = true;
        if let Some(mut record) = self.access.take() {
            record.outcome = outcome;
            record.code = code;
            record.bytes_out = self.bytes + error_event_bytes;
            // The function's own error event is one more event the client receives.
            record.events += u64::from(error_event_bytes > 0);
            record.finish();
        }
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if !self.finished {
            tracing::info!(
                session_id = %self.settings.session_id,
                bytes = self.bytes,
                chunks = self.chunk_count,
                duration_ms = self.started.elapsed().as_millis() as u64,
                "client went away before the end of the stream; upstream read stopped"
            );
            if let Some(mut record) = self.access.take() {
                record.outcome = Outcome::ClientGone;
                record.bytes_out = self.bytes;
                record.finish();
            }
        }
    }
}

/// The text of a caught panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character that the next
/// bytes would complete (0 to 3). Bytes that are not UTF-8 at all are not held.
fn incomplete_utf8_suffix(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let width = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0, // ASCII, or not a lead byte
        };
        return if width > back { back } else { 0 };
    }
    0
}

/// Cuts an event stream at event ends, so that the agent's error event can be found whole,
/// while holding back as little as possible: an incomplete event is held only while its first
/// bytes could still start that error event (a first `data:` line whose value begins with
/// `{`). Token events (`data: "..."`) go out at once, so the common chunk is forwarded whole,
/// as one frame, without a copy.
#[derive(Debug, Default)]
struct EventAligner {
    /// The held-back start of an incomplete event.
    pending: BytesMut,
    boundaries: EventBoundaries,
    /// Event ends in the pieces `push` returned since the caller last took this count (the
    /// access record's event count).
    forwarded_ends: u64,
    /// The current incomplete event was already forwarded (it cannot be the error event, or
    /// it outgrew the limit): it is neither held nor examined when it completes.
    passing: bool,
}

impl EventAligner {
    /// Takes a chunk; returns the pieces to forward now and, when one of the completed
    /// events is the agent's error event, that error (the pieces then stop before it and
    /// the rest of the answer is dropped).
    fn push(&mut self, chunk: Bytes) -> (Vec<Bytes>, Option<AgentError>) {
        let boundaries_before = self.boundaries;
        let mut first_end = None;
        let mut last_end = None;
        let mut ends = 0;
        self.boundaries.for_each_end(&chunk, |end| {
            first_end.get_or_insert(end);
            last_end = Some(end);
            ends += 1;
        });
        let (Some(first_end), Some(last_end)) = (first_end, last_end) else {
            if self.passing {
                return (vec![chunk], None);
            }
            self.pending.extend_from_slice(&chunk);
            if self.pending.len() > MAX_HELD_EVENT_BYTES || cannot_be_agent_error(&self.pending) {
                self.passing = true;
                return (vec![self.pending.split().freeze()], None);
            }
            return (Vec::new(), None);
        };
        let skip_first = std::mem::take(&mut self.passing);
        let tail = &chunk[last_end..];
        let hold_tail = !tail.is_empty() && !cannot_be_agent_error(tail);
        let forward_end = if hold_tail { last_end } else { chunk.len() };

        // The first event: completed from what was held back (the one copy), or all in
        // this chunk.
        let (first, rest) = if self.pending.is_empty() {
            (None, chunk.slice(..forward_end))
        } else {
            self.pending.extend_from_slice(&chunk[..first_end]);
            (
                Some(self.pending.split().freeze()),
                chunk.slice(first_end..forward_end),
            )
        };
        if hold_tail {
            self.pending.extend_from_slice(tail);
        } else {
            // The incomplete event at the end went out with this chunk.
            self.passing = !tail.is_empty();
        }

        // Only whole events are examined: the first unless it was passing, then the rest
        // up to the last end.
        let examined_first_len = if first.is_some() { 0 } else { first_end };
        if let Some(first) = &first {
            if !skip_first {
                if let Some((at, failure)) = find_agent_error(first) {
                    // No event of this chunk goes out: the error event is its first.
                    self.pending.clear();
                    return (vec![first.slice(..at)], Some(failure));
                }
            }
        }
        let whole = last_end - if first.is_some() { first_end } else { 0 };
        let start = if skip_first && first.is_none() {
            examined_first_len
        } else {
            0
        };
        if let Some((at, failure)) = find_agent_error(&rest[start..whole]) {
            self.pending.clear();
            self.passing = false;
            let rest_start = if first.is_some() { first_end } else { 0 };
            let cut = rest_start + start + at;
            // The events of this chunk that end before the error event went out.
            let mut before = boundaries_before;
            before.for_each_end(&chunk[..cut], |_| self.forwarded_ends += 1);
            let mut out: Vec<Bytes> = first.into_iter().collect();
            out.push(rest.slice(..start + at));
            return (out, Some(failure));
        }
        // Every end of this chunk is in what goes out: a held tail has none.
        self.forwarded_ends += ends;
        (
            first.into_iter().chain(std::iter::once(rest)).collect(),
            None,
        )
    }

    /// What is left at the end of the answer.
    fn finish(&mut self) -> Bytes {
        self.pending.split().freeze()
    }
}

/// Whether an event that starts with `start` can no longer be the agent's error event: its
/// first line is `data:` and the value's first character is not `{` (nor white space, which
/// a JSON object could follow). Leading line ends (of a CRLF blank line cut in two) are
/// skipped; anything else (`event:`, a comment, too few bytes to tell) keeps it held.
fn cannot_be_agent_error(start: &[u8]) -> bool {
    let start = match start.iter().position(|&b| b != b'\r' && b != b'\n') {
        Some(i) => &start[i..],
        None => return false,
    };
    let Some(value) = start.strip_prefix(b"data:") else {
        return false;
    };
    let value = value.strip_prefix(b" ").unwrap_or(value);
    value
        .first()
        .is_some_and(|&b| !matches!(b, b'{' | b' ' | b'\t' | b'\r' | b'\n'))
}

/// In `events` (whole events), the offset where the agent's error event starts, and it.
fn find_agent_error(events: &[u8]) -> Option<(usize, AgentError)> {
    // Cheap pre-check: almost every region has no such event.
    memchr::memmem::find(events, b"error_type")?;
    let mut boundaries = EventBoundaries::default();
    let mut start = 0;
    let mut found = None;
    boundaries.for_each_end(events, |end| {
        if found.is_some() {
            return;
        }
        let one = &events[start..end];
        let parsed = crate::sse::decode_all(one)
            .now_or_never()
            .and_then(Result::ok);
        if let Some(failure) = parsed.iter().flatten().find_map(agent_error) {
            found = Some((start, failure));
        }
        start = end;
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDK_ERROR: &str = r#"data: {"error": "KeyError: 'api_key' in /app/agent.py", "error_type": "KeyError", "message": "An error occurred during streaming"}"#;

    /// The aligner's count of forwarded events (the access record's) equals a count over
    /// the bytes it forwards, however the answer is cut and wherever the agent's error is.
    #[test]
    fn the_aligner_counts_the_events_it_forwards() {
        let error_event = format!("{SDK_ERROR}\n\n");
        let cases: Vec<(Vec<String>, bool)> = vec![
            (vec!["data: \"a\"\n\ndata: \"b\"\n\n".into()], false),
            (
                vec![
                    "data: \"a\"\n".into(),
                    "\ndata: \"b\"\r\n\r\nda".into(),
                    "ta: \"c\"\n\n".into(),
                ],
                false,
            ),
            (
                vec![format!(
                    "data: \"a\"\n\ndata: \"b\"\n\n{error_event}data: \"c\"\n\n"
                )],
                true,
            ),
            (
                vec![
                    "data: \"a\"\n\nda".into(),
                    format!("ta: \"b\"\n\n{error_event}"),
                ],
                true,
            ),
            (
                vec![error_event[..10].to_owned(), error_event[10..].to_owned()],
                true,
            ),
        ];
        for (chunks, fails) in cases {
            let mut aligner = EventAligner::default();
            let mut forwarded = Vec::new();
            let mut failed = false;
            for c in &chunks {
                let (pieces, failure) = aligner.push(Bytes::copy_from_slice(c.as_bytes()));
                forwarded.extend(pieces.iter().flat_map(|p| p.to_vec()));
                if failure.is_some() {
                    failed = true;
                    break;
                }
            }
            assert_eq!(failed, fails, "{chunks:?}");
            let mut expected = 0;
            EventBoundaries::default().for_each_end(&forwarded, |_| expected += 1);
            assert_eq!(aligner.forwarded_ends, expected, "{chunks:?}");
        }
    }

    fn run(chunks: Vec<&[u8]>) -> (Vec<Bytes>, Option<AgentError>) {
        let mut aligner = EventAligner::default();
        let mut out = Vec::new();
        for c in chunks {
            let (pieces, failure) = aligner.push(Bytes::copy_from_slice(c));
            out.extend(pieces);
            if failure.is_some() {
                return (out, failure);
            }
        }
        out.push(aligner.finish());
        (out, None)
    }

    #[test]
    fn whole_events_pass_unchanged_however_they_are_split() {
        let doc = b"data: \"Hel\"\n\ndata: \"lo\"\r\n\r\n: comment\n\ndata: \"!\"\n\n";
        for split in 0..doc.len() {
            let (a, b) = doc.split_at(split);
            let (pieces, failure) = run(vec![a, b]);
            assert!(failure.is_none());
            assert_eq!(pieces.concat(), doc.to_vec(), "split at {split}");
        }
    }

    #[test]
    fn the_agent_error_event_is_cut_out_wherever_the_chunks_split() {
        let before = "data: \"partial answer\"\n\n";
        let doc = format!("{before}{SDK_ERROR}\n\ndata: \"never\"\n\n");
        for split in 0..doc.len() {
            let (a, b) = doc.as_bytes().split_at(split);
            let (pieces, failure) = run(vec![a, b]);
            let failure = failure.unwrap_or_else(|| panic!("not found at split {split}"));
            assert_eq!(failure.error_type, "KeyError");
            assert!(failure.error.contains("/app/agent.py"));
            assert_eq!(pieces.concat(), before.as_bytes(), "split at {split}");
        }
    }

    #[test]
    fn an_oversized_event_is_forwarded_rather_than_held() {
        let big = vec![b'x'; MAX_HELD_EVENT_BYTES + 1];
        let mut aligner = EventAligner::default();
        let (pieces, _) = aligner.push(Bytes::from(big.clone()));
        assert_eq!(pieces.concat(), big);
        assert!(aligner.pending.is_empty() && aligner.passing);
        // Its end is forwarded when it arrives, and later events are examined again.
        let tail = format!("y\n\n{SDK_ERROR}\n\n");
        let (pieces, failure) = aligner.push(Bytes::from(tail));
        assert_eq!(pieces.concat(), b"y\n\n");
        assert!(failure.is_some());
    }

    /// Two chunks, then a panic in the upstream stream.
    fn panicking_chunks() -> ChunkStream {
        let chunks = [&b"data: \"a\"\n\n"[..], b"data: \"b\"\n\n"]
            .map(|c| Ok::<_, UpstreamError>(Bytes::from_static(c)));
        Box::pin(
            futures_util::stream::iter(chunks).chain(futures_util::stream::poll_fn(|_| {
                panic!("injected panic in the upstream stream")
            })),
        )
    }

    async fn frames(body: StreamingBody) -> Vec<Result<Bytes, BodyError>> {
        use http_body_util::BodyExt;
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame.map(|f| f.into_data().unwrap_or_default()));
        }
        out
    }

    fn settings(event_stream: bool) -> StreamSettings {
        StreamSettings {
            access: None,
            session_id: "session-test".into(),
            deadline: None,
            event_stream,
            translate_agent_errors: true,
        }
    }

    #[tokio::test]
    async fn a_panic_mid_stream_ends_an_event_stream_with_internal_error() {
        let frames = frames(stream_body(panicking_chunks(), settings(true))).await;
        let bytes: Vec<u8> = frames
            .into_iter()
            .map(|f| f.expect("an event stream never fails"))
            .collect::<Vec<_>>()
            .concat();
        let events = crate::sse::decode_all(&bytes).await.expect("sse");
        assert_eq!(events.len(), 3);
        assert!(crate::sse::is_error_event(&events[2]));
        assert!(events[2].data.contains("\"internal_error\""));
        assert!(!events[2].data.contains("injected"));
    }

    #[test]
    fn only_the_start_of_a_cut_character_is_held() {
        assert_eq!(incomplete_utf8_suffix(b"data: x"), 0);
        assert_eq!(incomplete_utf8_suffix("é".as_bytes()), 0);
        assert_eq!(incomplete_utf8_suffix(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_utf8_suffix(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_utf8_suffix(&"😀".as_bytes()[..3]), 3);
        assert_eq!(incomplete_utf8_suffix("😀".as_bytes()), 0);
        assert_eq!(incomplete_utf8_suffix(b"\x80\x80\x80"), 0);
        assert_eq!(incomplete_utf8_suffix(b"\xff"), 0);
        assert_eq!(incomplete_utf8_suffix(b""), 0);
    }

    #[tokio::test]
    async fn a_reset_after_half_a_character_still_ends_with_a_readable_error_event() {
        for translate in [true, false] {
            let euro = "€".as_bytes();
            let mut first = b"data: \"ok\"\n\ndata: \"price ".to_vec();
            first.extend_from_slice(&euro[..2]);
            let chunks: ChunkStream = Box::pin(futures_util::stream::iter([
                Ok(Bytes::from(first)),
                Err(UpstreamError::new(UpstreamKind::Reset, "reset by peer")),
            ]));
            let mut settings = settings(true);
            settings.translate_agent_errors = translate;
            let bytes: Vec<u8> = frames(stream_body(chunks, settings))
                .await
                .into_iter()
                .map(|f| f.expect("an event stream never fails"))
                .collect::<Vec<_>>()
                .concat();
            let events = crate::sse::decode_all(&bytes).await.expect("UTF-8 SSE");
            let last = events.last().expect("events");
            assert!(crate::sse::is_error_event(last), "{events:?}");
            assert!(last.data.contains("\"upstream_reset\""));
        }
    }

    #[tokio::test]
    async fn a_character_cut_between_chunks_arrives_whole() {
        let text = "data: \"5 €\"\n\n".as_bytes();
        let cut = text.len() - 4; // inside the euro sign
        let chunks: ChunkStream = Box::pin(futures_util::stream::iter([
            Ok(Bytes::copy_from_slice(&text[..cut])),
            Ok(Bytes::copy_from_slice(&text[cut..])),
        ]));
        let bytes: Vec<u8> = frames(stream_body(chunks, settings(true)))
            .await
            .into_iter()
            .map(|f| f.expect("ok"))
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(bytes, text);
    }

    #[tokio::test]
    async fn a_panic_mid_stream_fails_any_other_body() {
        let frames = frames(stream_body(panicking_chunks(), settings(false))).await;
        assert_eq!(frames.len(), 3);
        assert!(frames[..2].iter().all(Result::is_ok));
        let err = frames[2].as_ref().expect_err("the body fails");
        assert_eq!(err.code, "internal_error");
    }

    #[test]
    fn a_chunk_of_token_events_goes_out_whole_in_one_frame() {
        let mut aligner = EventAligner::default();
        let chunk = Bytes::from_static(b"data: \"a\"\n\ndata: \"b\"\n\ndata: \"c is cut");
        let (pieces, failure) = aligner.push(chunk.clone());
        assert!(failure.is_none());
        assert_eq!(pieces, vec![chunk], "one frame, the chunk itself");
        let (pieces, _) = aligner.push(Bytes::from_static(b" here\"\n\ndata: \"d\"\n\n"));
        assert_eq!(pieces.len(), 1);
        // A tail that may be the error event is held back.
        let (pieces, _) = aligner.push(Bytes::from_static(b"data: \"e\"\n\ndata: {\"err"));
        assert_eq!(pieces.concat(), b"data: \"e\"\n\n");
        assert!(!aligner.pending.is_empty());
    }

    #[test]
    fn only_a_data_line_that_may_open_an_object_is_held() {
        for (start, ruled_out) in [
            (&b"data: \"x"[..], true),
            (b"data:x", true),
            (b"\ndata: 1", true),
            (b"data: {", false),
            (b"data:{", false),
            (b"data: ", false),
            (b"data:  {", false),
            (b"dat", false),
            (b"event: message\ndata: {", false),
            (b": comment", false),
        ] {
            assert_eq!(
                cannot_be_agent_error(start),
                ruled_out,
                "{:?}",
                String::from_utf8_lossy(start)
            );
        }
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_types() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 1)).expect_err("panics");
        assert_eq!(panic_message(&*caught), "boom 1");
        let caught = std::panic::catch_unwind(|| panic!("static")).expect_err("panics");
        assert_eq!(panic_message(&*caught), "static");
    }
}

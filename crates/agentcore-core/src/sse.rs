//! Server-sent events: decoding an agent's stream, and encoding our own in-band errors.
//!
//! Decoding uses the `eventsource-stream` crate, which implements the WHATWG parsing rules
//! (multi-line `data`, `event`, `id`, `retry`, comments, CR/LF/CRLF line ends, a BOM,
//! lines split across chunks). What is ours is the interpretation of `data`: agents built
//! with the bedrock-agentcore SDK send each token as a JSON string (`data: "Hel"`), which
//! [`event_text`] decodes.

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use eventsource_stream::Event;
use eventsource_stream::Eventsource;

use crate::error::ApiError;

/// The SSE event name of an in-band error.
pub const ERROR_EVENT: &str = "error";

/// Decodes a stream of byte chunks into SSE events as they complete. A chunk error
/// ends the stream with that error.
pub fn decode<S, E>(chunks: S) -> impl Stream<Item = Result<Event, DecodeError<E>>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    chunks.eventsource().map(|item| {
        item.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(t) => DecodeError::Transport(t),
            eventsource_stream::EventStreamError::Utf8(_) => DecodeError::Utf8,
            eventsource_stream::EventStreamError::Parser(p) => DecodeError::Parse(p.to_string()),
        })
    })
}

/// Decodes a complete SSE document (for tests and small buffered bodies).
pub async fn decode_all(body: &[u8]) -> Result<Vec<Event>, DecodeError<std::convert::Infallible>> {
    let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
        Bytes::copy_from_slice(body),
    )]);
    decode(chunks)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Why a stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError<E> {
    /// The byte stream itself failed.
    #[error("the stream failed: {0}")]
    Transport(E),
    /// The stream is not UTF-8.
    #[error("the stream is not valid UTF-8")]
    Utf8,
    /// The stream is not SSE.
    #[error("the stream is not valid server-sent events: {0}")]
    Parse(String),
}

/// The text a person reads from one event's `data`: a JSON string is decoded
/// (`"Hel\nlo"` becomes `Hel` newline `lo`), anything else is returned as it is.
pub fn event_text(data: &str) -> Cow<'_, str> {
    let trimmed = data.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        if let Ok(text) = serde_json::from_str::<String>(trimmed) {
            return Cow::Owned(text);
        }
    }
    Cow::Borrowed(data)
}

/// Whether an event is an in-band error (`event: error`).
pub fn is_error_event(event: &Event) -> bool {
    event.event == ERROR_EVENT
}

/// The bytes of an in-band error event:
/// `event: error` + `data: {"error": {"code": ..., "message": ...}}`.
///
/// `needs_terminator` is true when the bytes already sent did not end with a blank line,
/// i.e. an event may be half written: the leading newlines end it first (an incomplete
/// event without `data` is then simply dropped by the client's parser), so the error
/// event always parses on its own.
pub fn error_event(err: &ApiError, needs_terminator: bool) -> Bytes {
    let data = err.to_json().to_string();
    let prefix = if needs_terminator { "\n\n" } else { "" };
    Bytes::from(format!("{prefix}event: {ERROR_EVENT}\ndata: {data}\n\n"))
}

/// Tracks whether the bytes written so far end at an event boundary (a blank line).
#[derive(Clone, Copy, Debug, Default)]
pub struct BoundaryTracker {
    tail: [u8; 4],
    written: bool,
}

impl BoundaryTracker {
    /// Records a chunk that was sent.
    pub fn observe(&mut self, chunk: &[u8]) {
        for &b in &chunk[chunk.len().saturating_sub(4)..] {
            self.tail = [self.tail[1], self.tail[2], self.tail[3], b];
        }
        self.written |= !chunk.is_empty();
    }

    /// True when nothing was sent or the last bytes close an event (LF LF, CR CR or
    /// CRLF CRLF).
    pub fn at_boundary(&self) -> bool {
        let t = self.tail;
        !self.written || t[2..] == *b"\n\n" || t[2..] == *b"\r\r" || t == *b"\r\n\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{UpstreamError, UpstreamKind};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn multi_line_data_event_id_and_comments() {
        let doc = b": a comment\nevent: token\nid: 7\ndata: line one\ndata: line two\n\ndata: \"json\"\n\n";
        let events = block_on(decode_all(doc)).expect("decodes");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "token");
        assert_eq!(events[0].id, "7");
        assert_eq!(events[0].data, "line one\nline two");
        assert_eq!(events[1].data, "\"json\"");
        assert_eq!(event_text(&events[1].data), "json");
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        let events =
            block_on(decode_all(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n")).expect("decodes");
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b", "c"]);
    }

    #[test]
    fn lines_split_across_chunks_and_crlf_split_between_chunks() {
        let parts: Vec<Result<Bytes, std::convert::Infallible>> =
            ["da", "ta: \"Hel", "lo\"\r", "\n\r", "\ndata: \"!\"\n", "\n"]
                .into_iter()
                .map(|s| Ok(Bytes::from(s)))
                .collect();
        let events: Vec<Event> =
            block_on(decode(futures_util::stream::iter(parts)).collect::<Vec<_>>())
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("decodes");
        let text: String = events
            .iter()
            .map(|e| event_text(&e.data).into_owned())
            .collect();
        assert_eq!(text, "Hello!");
    }

    #[test]
    fn an_incomplete_last_event_is_not_dispatched() {
        let events = block_on(decode_all(b"data: done\n\ndata: partial")).expect("decodes");
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn event_text_decodes_json_strings_only() {
        assert_eq!(event_text("\"a\\nb \\u00e9\""), "a\nb é");
        assert_eq!(event_text("{\"x\": 1}"), "{\"x\": 1}");
        assert_eq!(event_text("plain words"), "plain words");
        assert_eq!(event_text("\"broken"), "\"broken");
        assert_eq!(event_text("\"\""), "");
    }

    #[test]
    fn error_events_parse_on_their_own_even_after_a_half_written_event() {
        let err = ApiError::from(UpstreamError::new(
            UpstreamKind::Reset,
            "connection reset by peer",
        ));
        let mut doc = b"data: \"ok\"\n\ndata: \"half".to_vec();
        doc.extend_from_slice(&error_event(&err, true));
        let events = block_on(decode_all(&doc)).expect("decodes");
        let last = events.last().expect("an event");
        assert!(is_error_event(last));
        let data: serde_json::Value = serde_json::from_str(&last.data).expect("json");
        assert_eq!(data["error"]["code"], "upstream_reset");
        assert!(!last.data.contains("connection reset by peer"));
        assert_eq!(event_text(&events[0].data), "ok");
    }

    #[test]
    fn boundary_tracking() {
        let mut t = BoundaryTracker::default();
        assert!(t.at_boundary());
        t.observe(b"data: x\n");
        assert!(!t.at_boundary());
        t.observe(b"\n");
        assert!(t.at_boundary());
        t.observe(b"{\"json\":1}");
        assert!(!t.at_boundary());
    }
}

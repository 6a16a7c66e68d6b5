//! Server-sent events as a client reads them: decoding a stream into events, the text of a
//! token event, and the two kinds of error event (ours, `event: error`; and an agent's own).
//!
//! Decoding uses the `eventsource-stream` crate, which implements the WHATWG parsing rules
//! (multi-line `data`, `event`, `id`, `retry`, comments, CR/LF/CRLF line ends, lines split
//! across chunks). What is ours is the interpretation of `data`: agents built with the
//! bedrock-agentcore SDK send each token as a JSON string (`data: "Hel"`), which
//! [`event_text`] decodes.

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use eventsource_stream::Event;
use eventsource_stream::Eventsource;

/// The SSE event name of an in-band error.
pub const ERROR_EVENT: &str = "error";

/// Decodes a stream of byte chunks into SSE events as they complete. A chunk error
/// ends the stream with that error.
pub fn decode<S, E>(chunks: S) -> impl Stream<Item = Result<Event, DecodeError<E>>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    without_bom(chunks).eventsource().map(|item| {
        item.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(t) => DecodeError::Transport(t),
            eventsource_stream::EventStreamError::Utf8(_) => DecodeError::Utf8,
            eventsource_stream::EventStreamError::Parser(p) => DecodeError::Parse(p.to_string()),
        })
    })
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A comment line: what the decoder crate sees first, so that it never looks for a BOM
/// itself (see [`without_bom`]). An SSE parser ignores comments.
const LEADING_COMMENT: &[u8] = b":\n";

/// Removes the one byte order mark an event stream may start with (WHATWG: "a single
/// leading U+FEFF is ignored"), even when it is split between chunks, and puts a comment
/// line in front.
///
/// Why not leave the BOM to `eventsource-stream` (0.2.3): it removes it with
/// `&string[1..]`, a byte index inside the 3-byte character, and panics. Any agent whose
/// answer starts with a BOM (or two) made option 1 and the client panic; the property
/// tests found it. With the comment first, the crate's check never sees a BOM.
fn without_bom<S, E>(chunks: S) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    // The stream's first bytes, held while they may still be the start of a BOM.
    let mut start: Option<Vec<u8>> = Some(Vec::new());
    let first = futures_util::stream::once(async { Ok(Bytes::from_static(LEADING_COMMENT)) });
    first.chain(chunks.map(move |item| {
        let chunk = item?;
        let Some(held) = start.as_mut() else {
            return Ok(chunk);
        };
        if held.is_empty() && chunk.len() >= BOM.len() {
            // The common case: the first chunk is long enough to tell, no copy.
            start = None;
            return Ok(if chunk.starts_with(BOM) {
                chunk.slice(BOM.len()..)
            } else {
                chunk
            });
        }
        held.extend_from_slice(&chunk);
        if held.len() < BOM.len() && BOM.starts_with(held) {
            return Ok(Bytes::new());
        }
        let held = start.take().unwrap_or_default();
        Ok(match held.strip_prefix(BOM) {
            Some(rest) => Bytes::copy_from_slice(rest),
            None => Bytes::from(held),
        })
    }))
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

/// An agent's own error event, as the `bedrock-agentcore` Python SDK writes it when a
/// streaming entrypoint raises: `data: {"error": "<str(exception)>", "error_type":
/// "<class name>", "message": "An error occurred during streaming"}`, after which it ends
/// the stream normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    /// The exception's class name (`error_type`).
    pub error_type: String,
    /// The exception text (`error`): internal detail, never sent to a client nor logged
    /// (the functions log a fingerprint of it).
    pub error: String,
}

/// Recognises an agent's error event. The rule: an event of the default type (`message`,
/// i.e. no `event:` line) whose `data` is a JSON object with a string member
/// `error_type` and a member `error` (its text is kept whatever its JSON type). Anything
/// else, including our own `event: error`, is not one.
pub fn agent_error(event: &Event) -> Option<AgentError> {
    if event.event != "message" {
        return None;
    }
    let data = event.data.trim_start();
    // Token events are JSON strings: skip the JSON parse unless the shape can match.
    if !data.starts_with('{') || !data.contains("error_type") {
        return None;
    }
    let serde_json::Value::Object(doc) = serde_json::from_str(data).ok()? else {
        return None;
    };
    let error_type = doc.get("error_type")?.as_str()?.to_owned();
    let error = match doc.get("error")? {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(AgentError { error_type, error })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_leading_byte_order_mark_is_ignored_once_and_never_panics() {
        // eventsource-stream 0.2.3 alone panics on each of these (a byte index inside the
        // BOM); found by the property tests.
        let data = |doc: &[u8]| -> Vec<String> {
            block_on(decode_all(doc))
                .expect("decodes")
                .into_iter()
                .map(|e| e.data)
                .collect()
        };
        assert_eq!(data(b"\xEF\xBB\xBFdata: a\n\n"), ["a"]);
        // A second BOM is part of the first line (a field name no parser knows).
        assert_eq!(
            data(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
            ["b"]
        );
        assert_eq!(data("\u{feff}é\n\ndata: c\n\n".as_bytes()), ["c"]);
        // Split between chunks, byte by byte.
        let doc = b"\xEF\xBB\xBFdata: a\n\n";
        let parts: Vec<Result<Bytes, std::convert::Infallible>> = doc
            .iter()
            .map(|b| Ok(Bytes::copy_from_slice(&[*b])))
            .collect();
        let events: Vec<Event> =
            block_on(decode(futures_util::stream::iter(parts)).collect::<Vec<_>>())
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("decodes");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "a");
        // Not a BOM: the held bytes are given back.
        assert_eq!(data(b"\xEF\xBB"), Vec::<String>::new());
        assert!(block_on(decode_all(b"\xEF\xBBdata: a\n\n")).is_err());
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

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: name.to_owned(),
            data: data.to_owned(),
            ..Event::default()
        }
    }

    #[test]
    fn the_sdk_error_event_is_recognised_and_nothing_else() {
        let sdk = r#"{"error": "db at /srv/x.py failed", "error_type": "ValueError", "message": "An error occurred during streaming"}"#;
        assert_eq!(
            agent_error(&event("message", sdk)),
            Some(AgentError {
                error_type: "ValueError".into(),
                error: "db at /srv/x.py failed".into(),
            })
        );
        assert!(agent_error(&event(
            "message",
            r#"{"error": {"code": 1}, "error_type": "E"}"#
        ))
        .is_some());
        for data in [
            r#""error_type""#,
            r#"{"error_type": "E"}"#,
            r#"{"error": "x"}"#,
            r#"{"error": "x", "error_type": 3}"#,
            r#"{"error": "x", "error_type": "E""#,
            r#"["error", "error_type"]"#,
        ] {
            assert_eq!(agent_error(&event("message", data)), None, "{data}");
        }
        assert_eq!(
            agent_error(&event("error", sdk)),
            None,
            "our own event: error"
        );
    }
}

//! Buffering a whole answer (option 1), within Lambda's response size limit.

use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::error::{UpstreamError, UpstreamKind};
use crate::invoke::AgentResponse;
use crate::sse;

/// A complete answer, in the JSON shape option 1 returns (compatible with the original
/// sample's clients, plus `text`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CollectedAnswer {
    /// The session id, to send back for the next turn.
    pub session_id: String,
    /// For SSE: the `data` payloads joined by newlines (as the original sample did);
    /// for JSON: the parsed document; otherwise the body as text.
    pub response: Value,
    /// The agent's content type.
    pub content_type: String,
    /// The answer as a person reads it: JSON-string events decoded and concatenated.
    pub text: String,
    /// Length of the JSON document, counted once by [`collect`] for its size check and
    /// reused as the buffer size of [`CollectedAnswer::to_json`].
    #[serde(skip)]
    json_len: usize,
    /// Length of the document once escaped as the `body` string of the response Lambda
    /// returns (each `"` and `\\` doubles), quotes included.
    #[serde(skip)]
    escaped_len: usize,
}

impl CollectedAnswer {
    /// An answer with its JSON length counted (the one place that sets `json_len`).
    fn new(session_id: String, response: Value, content_type: String, text: String) -> Self {
        let mut answer = Self {
            session_id,
            response,
            content_type,
            text,
            json_len: 0,
            escaped_len: 0,
        };
        let mut counter = ByteCounter::default();
        (answer.json_len, answer.escaped_len) = match serde_json::to_writer(&mut counter, &answer) {
            Ok(()) => (counter.bytes, counter.bytes + counter.escapes + 2),
            Err(_) => (usize::MAX, usize::MAX),
        };
        answer
    }

    /// Length of [`CollectedAnswer::to_json`].
    pub fn json_len(&self) -> usize {
        self.json_len
    }

    /// Upper bound of the size of the response Lambda returns for this answer: the
    /// proxy-integration envelope, in which the document is an escaped string.
    pub fn envelope_len(&self) -> usize {
        self.escaped_len.saturating_add(ENVELOPE_OVERHEAD)
    }

    /// The answer as the JSON document option 1 returns.
    ///
    /// Written into a buffer of exactly its size: the document can be megabytes, and a
    /// buffer grown by doubling would briefly hold both its old and its new copy, which
    /// made this the peak of option 1's memory (heaptrack; BENCHMARKS.md, section 5).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.json_len);
        if serde_json::to_writer(&mut out, self).is_err() {
            return String::new();
        }
        // serde_json writes UTF-8 only; the check costs one pass and keeps this safe.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Room for what `lambda_http` writes around the body in the response Lambda returns:
/// `statusCode`, our few headers twice (`headers` and `multiValueHeaders`),
/// `isBase64Encoded` and `cookies`. The end-to-end tests check the real envelope stays
/// under it.
pub const ENVELOPE_OVERHEAD: usize = 4096;

/// Limits and choices of [`collect`].
#[derive(Clone, Copy, Debug)]
pub struct CollectLimits {
    /// Largest response Lambda may return (`MAX_RESPONSE_BYTES`), envelope included.
    pub max_bytes: usize,
    /// Turn the agent's error event into an `agent_error` failure.
    pub translate_agent_errors: bool,
}

pub use crate::media::is_event_stream;
use crate::media::is_json;

/// Reads the whole answer, failing with [`UpstreamKind::ResponseTooLarge`] as soon as the
/// raw body or the document being built passes `max_bytes` (so memory stays bounded), and
/// again if the response Lambda returns would ([`CollectedAnswer::envelope_len`]: the
/// document is escaped once more inside it, so quotes and backslashes count twice).
///
/// The agent's error event ([`sse::agent_error`]) fails the answer with
/// [`UpstreamKind::AgentFailed`] when `limits.translate_agent_errors` is set; its text is
/// kept in the error's log detail.
///
/// An event stream is decoded chunk by chunk as it arrives: the raw body is never held
/// whole, and the SSE parser only ever sees one chunk's worth of unparsed input (fed one
/// multi-megabyte buffer, its per-line buffer copies made collection quadratic).
pub async fn collect(
    resp: AgentResponse,
    limits: CollectLimits,
) -> Result<CollectedAnswer, UpstreamError> {
    let max_bytes = limits.max_bytes;
    let content_type = resp.content_type.clone();
    let session_id = resp.session_id.clone();
    let mut received = 0usize;
    let chunks = resp.into_chunks().map(move |item| {
        let chunk = item?;
        received += chunk.len();
        if received > max_bytes {
            return Err(too_large(received, max_bytes));
        }
        Ok(chunk)
    });

    let (response, text) = if is_event_stream(&content_type) {
        // A lone CR is an SSE line end, but the decoder waits for a possible LF after it,
        // so a stream that ends with CR CR would lose its last event: an LF follows it.
        let ended_with_cr = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = ended_with_cr.clone();
        let chunks = chunks
            .inspect(move |item| {
                if let Some(&last) = item.as_ref().ok().and_then(|c| c.last()) {
                    seen.store(last == b'\r', std::sync::atomic::Ordering::Relaxed);
                }
            })
            .chain(futures_util::stream::once(async move {
                let cr = ended_with_cr.load(std::sync::atomic::Ordering::Relaxed);
                Ok(bytes::Bytes::from_static(if cr { b"\n" } else { b"" }))
            }));
        let mut events = std::pin::pin!(sse::decode(chunks));
        let mut joined = String::new();
        let mut text = String::new();
        let mut first = true;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                sse::DecodeError::Transport(upstream) => upstream,
                other => UpstreamError::new(
                    UpstreamKind::Internal,
                    format!("agent sent an invalid event stream: {other}"),
                ),
            })?;
            // An event too long to be the SDK's error event (a few hundred bytes) is not
            // examined, as the streaming path forwards it unexamined: recognising one means
            // parsing its JSON, and a few megabytes of it can take hundreds as a tree.
            let examine = event.data.len() <= crate::stream::MAX_HELD_EVENT_BYTES;
            if limits.translate_agent_errors && examine {
                if let Some(failure) = sse::agent_error(&event) {
                    return Err(UpstreamError::new(
                        UpstreamKind::AgentFailed,
                        format!(
                            "the agent sent an error event: {}",
                            sse::agent_error_log_detail(&failure)
                        ),
                    ));
                }
            }
            if !first {
                joined.push('\n');
            }
            first = false;
            joined.push_str(&event.data);
            text.push_str(&sse::event_text(&event.data));
            if joined.len() + text.len() > max_bytes {
                return Err(too_large(joined.len() + text.len(), max_bytes));
            }
        }
        (Value::String(joined), text)
    } else {
        let mut body = BytesMut::new();
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk?);
        }
        let body = body.freeze();
        if is_json(&content_type) {
            // The document is parsed into a tree, which can be many times its size (a
            // one-key object is a map node of hundreds of bytes): one that would not fit
            // the function's memory is refused before it is built.
            let tree = json_tree_bytes(&body);
            if tree > MAX_JSON_TREE_BYTES {
                return Err(UpstreamError::new(
                    UpstreamKind::ResponseTooLarge,
                    format!(
                        "the agent's {}-byte JSON answer would take about {tree} bytes parsed, over {MAX_JSON_TREE_BYTES}",
                        body.len()
                    ),
                ));
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::String(s)) => (Value::String(s.clone()), s),
                Ok(v) => {
                    let text = v.to_string();
                    (v, text)
                }
                Err(_) => {
                    let s = String::from_utf8_lossy(&body).into_owned();
                    (Value::String(s.clone()), s)
                }
            }
        } else {
            let s = String::from_utf8_lossy(&body).into_owned();
            (Value::String(s.clone()), s)
        }
    };

    let answer = CollectedAnswer::new(session_id, response, content_type, text);
    if answer.envelope_len() > max_bytes {
        return Err(too_large(answer.envelope_len(), max_bytes));
    }
    Ok(answer)
}

/// The most memory the parsed tree of a JSON answer may take ([`json_tree_bytes`]): with
/// the answer's text, the document option 1 writes and its escaped copy in the response,
/// it keeps a function of 128 MB (the templates' default) clear of its limit.
pub const MAX_JSON_TREE_BYTES: usize = 32 * 1024 * 1024;

/// An upper estimate of the memory `serde_json::Value` takes for the JSON text `body`,
/// counted without building it: the text itself (strings are copied), every value twice
/// (an array's `Vec` grows by doubling) and a map node per object (a `BTreeMap` leaf holds
/// eleven keys and values). Structure inside strings is skipped.
pub fn json_tree_bytes(body: &[u8]) -> usize {
    const VALUE: usize = 2 * std::mem::size_of::<Value>();
    const MAP_NODE: usize =
        11 * (std::mem::size_of::<String>() + std::mem::size_of::<Value>()) + 48;
    let (mut values, mut objects) = (1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b'[' => values += 1,
            b'{' => {
                values += 1;
                objects += 1;
            }
            _ => {}
        }
    }
    body.len()
        .saturating_add(values.saturating_mul(VALUE))
        .saturating_add(objects.saturating_mul(MAP_NODE))
}

/// Measures serialized size without holding the serialized bytes: the bytes, and how
/// many of them a second JSON escaping would double (`"` and `\\`; serde_json leaves no
/// raw control character to escape).
#[derive(Default)]
struct ByteCounter {
    bytes: usize,
    escapes: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        self.escapes += memchr::memchr2_iter(b'"', b'\\', buf).count();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large(size: usize, max: usize) -> UpstreamError {
    UpstreamError::new(
        UpstreamKind::ResponseTooLarge,
        format!("answer is at least {size} bytes, over the {max}-byte buffered limit"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_trees_size_is_bounded_above_without_building_it() {
        let tree_of = |text: &str| -> usize {
            // What the tree really allocates is beyond reach here; the estimate must at
            // least count every value and grow with the number of objects, not the text.
            json_tree_bytes(text.as_bytes())
        };
        let arrays = format!("[{}[]]", "[],".repeat(1000));
        let objects = format!("[{}{{}}]", r#"{"a":0},"#.repeat(1000));
        assert!(tree_of(&arrays) >= 1000 * 2 * std::mem::size_of::<Value>());
        assert!(tree_of(&objects) >= 1000 * 500, "{}", tree_of(&objects));
        // Structure inside strings is text, not values.
        let text = format!(r#"{{"response": "{}"}}"#, "[{,\\\"".repeat(1000));
        assert!(tree_of(&text) < text.len() + 1000, "{}", tree_of(&text));
        // A 5.7 MB answer of empty arrays and one of small objects are refused; a 3 MB
        // answer of prose is not.
        assert!(
            json_tree_bytes(format!("[{}[]]", "[],".repeat(1_900_000)).as_bytes())
                > MAX_JSON_TREE_BYTES
        );
        assert!(
            json_tree_bytes(format!("[{}{{}}]", r#"{"a":0},"#.repeat(100_000)).as_bytes())
                > MAX_JSON_TREE_BYTES
        );
        let prose = format!(r#"{{"response": "{}"}}"#, "words, words. ".repeat(200_000));
        assert!(json_tree_bytes(prose.as_bytes()) < MAX_JSON_TREE_BYTES);
    }

    #[test]
    fn content_type_classes() {
        assert!(is_event_stream("text/event-stream; charset=utf-8"));
        assert!(is_event_stream("Text/Event-Stream"));
        assert!(!is_event_stream("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn to_json_is_the_serialized_answer_at_its_exact_size() {
        let answer = CollectedAnswer::new(
            "session-00000000-0000-4000-8000-000000000000".into(),
            Value::String("\"a\"\n\"é\"".into()),
            "text/event-stream".into(),
            "aé\u{1}".into(),
        );
        let json = answer.to_json();
        assert_eq!(json.len(), answer.json_len);
        let expected = serde_json::to_string(&answer).expect("serializable");
        assert_eq!(json, expected);
        // Escaped once more, as the body string of Lambda's response.
        let escaped = serde_json::to_string(&json).expect("serializable");
        assert_eq!(escaped.len(), answer.escaped_len);
        let back: Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back["text"], "aé\u{1}");
        // Sorted keys (serde_json's map): no field beyond the four of the format.
        let fields: Vec<&str> = back
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["content_type", "response", "session_id", "text"]);
    }
}

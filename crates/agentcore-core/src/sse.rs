//! Server-sent events on the function's side: where events end in the bytes it forwards,
//! and our own in-band error event. Decoding, token text and the agent's error event are
//! `agentcore-wire`'s (re-exported here), shared with `stream-client`.

use bytes::Bytes;

pub use agentcore_wire::sse::*;

use crate::error::ApiError;

/// What the function logs of an agent's error event: its class, and the length and a
/// SHA-256 fingerprint of its text, never the text. The text may carry what the agent was
/// working on (a user's data, a prompt fragment, a path or a key); the agent's own log
/// (AgentCore's runtime logs) has it whole, and the fingerprint finds it there.
pub fn agent_error_log_detail(failure: &AgentError) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(failure.error.as_bytes());
    format!(
        "{} (text not logged: {} bytes, sha256 {})",
        failure.error_type,
        failure.error.len(),
        hex::encode(&digest[..8])
    )
}

/// Finds the ends of events (blank lines) in a byte stream fed in arbitrary chunks, with
/// the WHATWG line rules: a line ends at CRLF, LF or CR, and an empty line ends an event.
///
/// Written by hand because the decoder crate yields parsed events, not the byte offsets
/// at which they end, and the streaming path forwards bytes, not re-encoded events. It
/// jumps between CR and LF bytes with `memchr`, so it costs little per byte.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventBoundaries {
    /// The current line has content.
    in_line: bool,
    /// The last byte seen was a CR (an LF right after it belongs to the same line end).
    after_cr: bool,
}

impl EventBoundaries {
    /// Scans `chunk` (the bytes after everything scanned before) and returns the offset
    /// just past the last event end in it, if any.
    pub fn last_end(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut last = None;
        self.for_each_end(chunk, |end| last = Some(end));
        last
    }

    /// Calls `f` with the offset just past each event end in `chunk`.
    pub fn for_each_end(&mut self, chunk: &[u8], mut f: impl FnMut(usize)) {
        let mut pos = 0;
        while pos < chunk.len() {
            let Some(hit) = memchr::memchr2(b'\n', b'\r', &chunk[pos..]) else {
                self.in_line = true;
                self.after_cr = false;
                return;
            };
            let i = pos + hit;
            if hit > 0 {
                self.in_line = true;
                self.after_cr = false;
            }
            let is_cr = chunk[i] == b'\r';
            if !is_cr && self.after_cr {
                // The LF of a CRLF: the line already ended at the CR.
                self.after_cr = false;
            } else {
                if !self.in_line {
                    f(i + 1);
                }
                self.in_line = false;
                self.after_cr = is_cr;
            }
            pos = i + 1;
        }
    }
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
    fn the_agent_error_log_detail_names_the_class_and_never_the_text() {
        let failure = AgentError {
            error_type: "ValueError".into(),
            error: "card 4111-1111 for alice@example.com".into(),
        };
        let detail = agent_error_log_detail(&failure);
        assert!(
            detail.starts_with("ValueError (text not logged: 36 bytes, sha256 "),
            "{detail}"
        );
        assert!(
            !detail.contains("4111") && !detail.contains("alice"),
            "{detail}"
        );
        let other = AgentError {
            error: "another text".into(),
            ..failure.clone()
        };
        assert_ne!(agent_error_log_detail(&other), detail);
    }

    #[test]
    fn event_ends_with_every_line_ending_and_across_chunks() {
        let ends = |chunks: &[&[u8]]| {
            let mut b = EventBoundaries::default();
            let mut out = Vec::new();
            let mut offset = 0;
            for c in chunks {
                b.for_each_end(c, |e| out.push(offset + e));
                offset += c.len();
            }
            out
        };
        assert_eq!(ends(&[b"data: a\n\ndata: b\n\n"]), [9, 18]);
        // The end is the CR that makes the line empty; its LF starts the next region.
        assert_eq!(ends(&[b"data: a\r\n\r\n"]), [10]);
        assert_eq!(ends(&[b"data: a\r\rdata: b\n"]), [9]);
        assert_eq!(ends(&[b"data: a\r", b"\n", b"\r", b"\ndata"]), [10]);
        assert_eq!(ends(&[b"data: a\n", b"\n"]), [9]);
        assert_eq!(ends(&[b"data: a\ndata: b\n"]), Vec::<usize>::new());
        assert_eq!(ends(&[b"data", b": a\n\n"]), [9]);
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

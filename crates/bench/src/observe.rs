//! Watching an answer arrive: first body byte, end, size, and for `stamp` answers the
//! latency of every event (arrival wall clock minus the timestamp the agent wrote in it).

use std::time::Instant;

use anyhow::{bail, Context as _, Result};

/// Largest streaming prelude accepted before giving up on finding its end.
const MAX_PRELUDE: usize = 64 * 1024;

/// How the bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// The body itself (an HTTP response, or the SDK's view of AgentCore).
    Plain,
    /// A Lambda streaming response: JSON prelude, 8 NUL bytes, then the body.
    Prelude,
}

/// Collects timings of one answer.
#[derive(Debug)]
pub(crate) struct Observer {
    framing: Framing,
    in_prelude: bool,
    prelude_buf: Vec<u8>,
    /// The prelude JSON, when [`Framing::Prelude`].
    pub(crate) prelude: Option<serde_json::Value>,
    stamps: bool,
    sse_buf: Vec<u8>,
    keep: bool,
    /// The body, when asked to keep it.
    pub(crate) body: Vec<u8>,
    /// First chunk of any kind (the prelude's, when framed).
    pub(crate) first_chunk: Option<Instant>,
    /// First body byte (after any prelude).
    pub(crate) first_body: Option<Instant>,
    /// Body bytes seen (prelude excluded).
    pub(crate) body_bytes: u64,
    /// Per-event latencies in µs (stamp mode).
    pub(crate) latencies_us: Vec<i64>,
    /// Events that did not carry a timestamp (stamp mode).
    pub(crate) unparsed_events: u64,
}

impl Observer {
    /// A new observer. `stamps` parses SSE `stamp` events; `keep` keeps the body.
    pub(crate) fn new(framing: Framing, stamps: bool, keep: bool) -> Self {
        Self {
            framing,
            in_prelude: framing == Framing::Prelude,
            prelude_buf: Vec::new(),
            prelude: None,
            stamps,
            sse_buf: Vec::new(),
            keep,
            body: Vec::new(),
            first_chunk: None,
            first_body: None,
            body_bytes: 0,
            latencies_us: Vec::new(),
            unparsed_events: 0,
        }
    }

    /// Feeds one chunk received at `at` (monotonic) / `wall_us` (wall clock, µs).
    pub(crate) fn feed(&mut self, at: Instant, wall_us: u128, chunk: &[u8]) -> Result<()> {
        if self.first_chunk.is_none() && !chunk.is_empty() {
            self.first_chunk = Some(at);
        }
        let body: &[u8] = if self.in_prelude {
            self.prelude_buf.extend_from_slice(chunk);
            let Some(end) = self.prelude_buf.windows(8).position(|w| w == [0u8; 8]) else {
                if self.prelude_buf.len() > MAX_PRELUDE {
                    bail!("no end of the streaming prelude (8 NUL bytes) in the first 64 KiB",);
                }
                return Ok(());
            };
            self.in_prelude = false;
            let prelude: serde_json::Value = serde_json::from_slice(&self.prelude_buf[..end])
                .context("parsing the streaming prelude")?;
            self.prelude = Some(prelude);
            let rest = self.prelude_buf.split_off(end + 8);
            self.prelude_buf = rest;
            let rest = std::mem::take(&mut self.prelude_buf);
            return self.body_bytes_in(at, wall_us, &rest);
        } else {
            chunk
        };
        self.body_bytes_in(at, wall_us, body)
    }

    fn body_bytes_in(&mut self, at: Instant, wall_us: u128, body: &[u8]) -> Result<()> {
        if body.is_empty() {
            return Ok(());
        }
        if self.first_body.is_none() {
            self.first_body = Some(at);
        }
        self.body_bytes += body.len() as u64;
        if self.keep {
            self.body.extend_from_slice(body);
        }
        if self.stamps {
            self.sse_buf.extend_from_slice(body);
            while let Some(end) = find(&self.sse_buf, b"\n\n") {
                let event: Vec<u8> = self.sse_buf.drain(..end + 2).collect();
                match parse_stamp(&event[..end]) {
                    Some(stamp) => {
                        let latency = i64::try_from(wall_us).unwrap_or(i64::MAX)
                            - i64::try_from(stamp).unwrap_or(0);
                        self.latencies_us.push(latency);
                    }
                    None => self.unparsed_events += 1,
                }
            }
        }
        Ok(())
    }

    /// The status code of the prelude, when there was one.
    pub(crate) fn prelude_status(&self) -> Option<u64> {
        self.prelude
            .as_ref()
            .and_then(|p| p.get("statusCode"))
            .and_then(serde_json::Value::as_u64)
    }

    /// Fails unless the prelude said 200 (when framed) and the body is not empty.
    pub(crate) fn check_ok(&self, what: &str) -> Result<()> {
        if self.framing == Framing::Prelude {
            match self.prelude_status() {
                Some(200) => {}
                Some(s) => bail!("{what}: the function answered status {s}"),
                None => bail!("{what}: no streaming prelude in the answer"),
            }
        }
        if self.body_bytes == 0 {
            bail!("{what}: empty answer");
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data: "1733000000000000 "` -> the number.
fn parse_stamp(event: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data: "))?;
    let token: String = serde_json::from_str(data).ok()?;
    token.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_split_across_chunks_and_stamps() -> Result<()> {
        let mut o = Observer::new(Framing::Prelude, true, true);
        let t = Instant::now();
        o.feed(t, 1_000_100, br#"{"statusCode":200,"headers":{}}"#)?;
        o.feed(t, 1_000_100, &[0, 0, 0, 0])?;
        assert!(o.first_body.is_none());
        o.feed(t, 1_000_100, b"\0\0\0\0data: \"1000000 \"\n\ndata: \"10")?;
        o.feed(t, 1_000_300, b"00050 \"\n\n")?;
        o.check_ok("test")?;
        assert_eq!(o.latencies_us, vec![100, 250]);
        assert_eq!(o.prelude_status(), Some(200));
        assert_eq!(o.body_bytes, o.body.len() as u64);
        Ok(())
    }
}

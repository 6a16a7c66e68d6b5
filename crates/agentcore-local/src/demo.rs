//! The built-in demo agent: streams a readable answer, with knobs for pacing, size,
//! content type and injected faults.
//!
//! The payload is JSON `{"prompt": "...", "demo": {...}}`; every field of `demo` is
//! optional (see [`DemoKnobs`]). A payload that is not a JSON object is used as the prompt
//! text itself.
//!
//! # The answer text
//!
//! Token `i` (0-based) of the answer is word `i` of
//! `["You", "said:", <the prompt split on whitespace>..., <FILLER_WORDS repeated>...]`,
//! preceded by one space for every token but the first. So the concatenation of
//! [`demo_text`]`(prompt, n)` is the first `n` of those words joined by single spaces, e.g.
//! `demo_text("hello world", 5).concat() == "You said: hello world This"`.
//!
//! # Formats
//!
//! - `sse` (default, `text/event-stream`): one event per token, `data: "<JSON string>"\n\n`,
//!   like agents built with the `bedrock-agentcore` Python SDK.
//! - `json` (`application/json`): `{"response": "<full text>"}`, written in one piece unless
//!   `chunk_bytes` is set.
//! - `text` (`text/plain; charset=utf-8`): the tokens as raw text, one write per token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;

use crate::error::{ApiError, ErrorType};

/// Words that follow the echoed prompt, repeated as often as needed.
pub const FILLER_WORDS: [&str; 11] = [
    "This",
    "is",
    "a",
    "streamed",
    "answer",
    "from",
    "the",
    "local",
    "AgentCore",
    "demo",
    "agent.",
];

/// Text repeated to fill `total_bytes` answers (ASCII, nothing JSON would escape).
pub const FILLER_TEXT: &str = "This is a streamed answer from the local AgentCore demo agent. ";

/// The exception text in [`ERROR_EVENT_JSON`]: internal detail of the kind a real agent's
/// exception carries (a connection string, a file path), which must never reach a client.
pub const AGENT_EXCEPTION_TEXT: &str =
    "connection to postgres://agent:hunter2@db.internal:5432/memory refused (/app/agent.py, line 42)";

/// The error event written by `error_after`, in the exact shape the `bedrock-agentcore`
/// Python SDK writes when a streaming entrypoint raises (`json.dumps` of `error`,
/// `error_type` and `message`) before ending the stream normally. SSE form:
/// `data: <this>`; `text` writes it on its own line, `json` writes the object alone as the
/// document.
pub const ERROR_EVENT_JSON: &str = concat!(
    r#"{"error": "connection to postgres://agent:hunter2@db.internal:5432/memory refused (/app/agent.py, line 42)", "#,
    r#""error_type": "OperationalError", "message": "An error occurred during streaming"}"#
);

/// Largest SSE event written in `total_bytes` mode (bytes, framing included).
pub const TOTAL_BYTES_EVENT_SIZE: u64 = 1024;

/// Default write size in `total_bytes` mode when `chunk_bytes` is not given.
pub const TOTAL_BYTES_DEFAULT_CHUNK: usize = 64 * 1024;

/// Server-wide defaults of the demo agent (a request's `demo` knobs override them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoDefaults {
    /// Number of tokens (events) in an answer. Default 12.
    pub tokens: u64,
    /// Pause before each token after the first, in milliseconds. Default 0. Not applied to
    /// `total_bytes` answers.
    pub delay_ms: u64,
    /// Group output into writes of at least this many bytes. Default: one write per token.
    pub chunk_bytes: Option<usize>,
}

impl Default for DemoDefaults {
    fn default() -> Self {
        DemoDefaults {
            tokens: 12,
            delay_ms: 0,
            chunk_bytes: None,
        }
    }
}

/// Output format of the demo agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoFormat {
    /// Server-sent events, `text/event-stream` (default).
    #[default]
    Sse,
    /// One JSON document `{"response": "..."}`, `application/json`.
    Json,
    /// Plain text, `text/plain; charset=utf-8`.
    Text,
}

impl DemoFormat {
    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            DemoFormat::Sse => "text/event-stream",
            DemoFormat::Json => "application/json",
            DemoFormat::Text => "text/plain; charset=utf-8",
        }
    }
}

/// Per-request knobs: the optional `"demo"` object of the payload. Unknown fields are a
/// `ValidationException` (to catch typos).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoKnobs {
    /// Number of tokens (events). Ignored when `total_bytes` is set. `0` is an empty
    /// turn: `200` with an empty body, as the SDK answers when an entrypoint yields
    /// nothing.
    pub tokens: Option<u64>,
    /// Pause before each token after the first, in milliseconds (server default applies).
    /// With `total_bytes`: pause between writes, and only when given in the request.
    pub delay_ms: Option<u64>,
    /// Group output into writes of at least this many bytes.
    pub chunk_bytes: Option<usize>,
    /// Answer of exactly this many body bytes (at least 11 for `sse`, 16 for `json`),
    /// generated lazily; `tokens` and `stamp` are ignored.
    pub total_bytes: Option<u64>,
    /// Text repeated to fill a `total_bytes` answer instead of [`FILLER_TEXT`]. For `sse`
    /// and `json`, where it is written inside a JSON string, it must be printable ASCII
    /// without `"` or `\`; `text` takes any UTF-8 (it may be cut inside a character).
    pub filler: Option<String>,
    /// `sse` (default), `json` or `text`.
    pub format: Option<DemoFormat>,
    /// Each token is the microseconds since the UNIX epoch when it was produced, plus a space.
    pub stamp: Option<bool>,
    /// Answer with this restJson1 error type before any byte (e.g. `"ThrottlingException"`).
    pub fault: Option<String>,
    /// Message of the `fault` error (default: a description naming the demo agent).
    pub fault_message: Option<String>,
    /// After this many tokens, write [`ERROR_EVENT_JSON`] as an event and end the stream.
    pub error_after: Option<u64>,
    /// After this many tokens, abort the connection (the client sees a body error).
    pub reset_after: Option<u64>,
    /// Wait this long before sending the response headers.
    pub first_byte_delay_ms: Option<u64>,
    /// Answer with what this session was told before: the text is that of the prompt
    /// `earlier: <the session's previous prompt>` (`earlier: nothing` in a new or ended
    /// session). Shows which session a request reached.
    pub recall: Option<bool>,
    /// A silence in the middle of the answer: after `gap_after` tokens, wait `gap_ms`
    /// before the next one (once). Drives the handlers' idle limit between two chunks.
    pub gap_after: Option<u64>,
    /// Length of the `gap_after` silence, in milliseconds (default 0: no gap).
    pub gap_ms: Option<u64>,
    /// Answer with exactly these bytes instead of the demo text, with the content type of
    /// `format`: what no well-behaved agent sends (invalid UTF-8, a line of megabytes, a
    /// JSON document that is small as text and huge as a tree). See [`RawBody`].
    pub raw: Option<RawBody>,
}

/// A raw answer: `prefix`, then `unit` repeated `times` times, then `suffix`, written in
/// writes of `chunk_bytes` (64 KiB by default) paced by `delay_ms`. Each part is text in
/// which `\xHH` stands for the byte `HH` (so `"data: \\xff\n\n"` in the request's
/// JSON is an SSE event that is not UTF-8). `tokens`, `total_bytes`, `error_after` and
/// `reset_after` do not apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBody {
    /// Bytes written first.
    #[serde(default)]
    pub prefix: String,
    /// Bytes repeated `times` times after the prefix.
    #[serde(default)]
    pub unit: String,
    /// How many times `unit` is written (default 1).
    pub times: Option<u64>,
    /// Bytes written last.
    #[serde(default)]
    pub suffix: String,
}

/// Decodes the `\xHH` escapes of a [`RawBody`] part; every other character stands for its
/// UTF-8 bytes. A `\x` not followed by two hex digits is a `ValidationException`.
pub fn raw_bytes(text: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\\x") {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let hex = rest.get(i + 2..i + 4).unwrap_or_default();
        let byte = u8::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ApiError::validation("a `\\x` escape in the demo `raw` body needs two hex digits")
            })?;
        out.push(byte);
        rest = &rest[i + 4..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

/// A request to the demo agent: the prompt and the knobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoRequest {
    /// The `prompt` field (empty when absent).
    pub prompt: String,
    /// The `demo` object (all `None` when absent).
    pub knobs: DemoKnobs,
}

impl DemoRequest {
    /// Reads the payload: a JSON object with `prompt` and `demo`, or else raw prompt text.
    pub fn parse(payload: &[u8]) -> Result<DemoRequest, ApiError> {
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(serde_json::Value::Object(mut object)) => {
                let prompt = match object.get("prompt") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) if !other.is_null() => other.to_string(),
                    _ => String::new(),
                };
                let knobs = match object.remove("demo") {
                    None | Some(serde_json::Value::Null) => DemoKnobs::default(),
                    Some(value) => serde_json::from_value(value).map_err(|e| {
                        ApiError::validation(format!("invalid `demo` knobs in the payload: {e}"))
                    })?,
                };
                Ok(DemoRequest { prompt, knobs })
            }
            _ => Ok(DemoRequest {
                prompt: String::from_utf8_lossy(payload).into_owned(),
                knobs: DemoKnobs::default(),
            }),
        }
    }

    /// The injected fault, if any. An unknown type name is a `ValidationException`.
    pub fn fault(&self) -> Result<Option<ApiError>, ApiError> {
        let Some(name) = &self.knobs.fault else {
            return Ok(None);
        };
        let kind: ErrorType = name.parse().map_err(|_| {
            ApiError::validation(format!(
                "unknown demo fault `{name}`; use one of: {}",
                ErrorType::ALL.map(ErrorType::code).join(", ")
            ))
        })?;
        let message = self
            .knobs
            .fault_message
            .clone()
            .unwrap_or_else(|| format!("{kind} injected by the agentcore-local demo agent"));
        Ok(Some(ApiError::new(kind, message)))
    }

    /// The filler text of a `total_bytes` answer. A filler that the format cannot carry
    /// as it is (see [`DemoKnobs::filler`]) is a `ValidationException`.
    pub fn filler(&self) -> Result<Vec<u8>, ApiError> {
        let Some(text) = &self.knobs.filler else {
            return Ok(FILLER_TEXT.as_bytes().to_vec());
        };
        let raw_in_json = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
        if text.is_empty() || (self.format() != DemoFormat::Text && !text.bytes().all(raw_in_json))
        {
            return Err(ApiError::validation(
                "the demo `filler` must be non-empty, and printable ASCII without '\"' or '\\' for the sse and json formats",
            ));
        }
        Ok(text.as_bytes().to_vec())
    }

    /// The output format.
    pub fn format(&self) -> DemoFormat {
        self.knobs.format.unwrap_or_default()
    }

    /// Delay before the response headers.
    pub fn first_byte_delay(&self) -> Duration {
        Duration::from_millis(self.knobs.first_byte_delay_ms.unwrap_or(0))
    }
}

/// The words the answer is made of (see the module documentation).
fn word<S: AsRef<str>>(prompt_words: &[S], i: u64) -> String {
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    match i {
        0 => "You".to_owned(),
        1 => "said:".to_owned(),
        _ => {
            let i = i - 2;
            match prompt_words.get(i) {
                Some(w) => w.as_ref().to_owned(),
                None => FILLER_WORDS[(i - prompt_words.len()) % FILLER_WORDS.len()].to_owned(),
            }
        }
    }
}

/// Token `i` of the answer to `prompt` (a leading space for every token but the first).
pub fn demo_token(prompt: &str, i: u64) -> String {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    token_from_words(&words, i)
}

fn token_from_words<S: AsRef<str>>(words: &[S], i: u64) -> String {
    let w = word(words, i);
    if i == 0 {
        w
    } else {
        format!(" {w}")
    }
}

/// The `tokens` tokens of the answer to `prompt`; their concatenation is the full text.
pub fn demo_text(prompt: &str, tokens: u64) -> Vec<String> {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    (0..tokens).map(|i| token_from_words(&words, i)).collect()
}

/// Wraps one token in the framing of `format` (SSE event, JSON string content, raw text).
pub fn frame_token(format: DemoFormat, token: &str) -> Vec<u8> {
    let quoted = serde_json::Value::String(token.to_owned()).to_string();
    match format {
        DemoFormat::Sse => format!("data: {quoted}\n\n").into_bytes(),
        DemoFormat::Json => {
            // The JSON string without its quotes: the answer is streamed inside one document.
            let inner = quoted
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or_default();
            inner.as_bytes().to_vec()
        }
        DemoFormat::Text => token.as_bytes().to_vec(),
    }
}

/// The body stream aborted on purpose (`reset_after`).
#[derive(Debug, thiserror::Error)]
#[error("the demo agent reset the connection after {0} tokens (reset_after)")]
pub struct DemoReset(pub u64);

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}

/// Where the units (tokens or filler events) come from.
enum Source {
    Tokens {
        words: Vec<String>,
        next: u64,
        total: u64,
        stamp: bool,
    },
    Filler {
        /// Bytes of units still to write (prefix and suffix excluded).
        remaining: u64,
        /// The text repeated ([`FILLER_TEXT`] unless the request gave one).
        text: Vec<u8>,
        /// Position in `text`.
        pos: usize,
    },
    /// A [`RawBody`]'s repeated unit.
    Raw {
        unit: Vec<u8>,
        /// Repetitions still to write.
        remaining: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Units,
    ErrorEvent,
    Reset,
    Suffix,
    Done,
}

/// Lazily produces the body of a demo answer, one write at a time.
struct Writer {
    format: DemoFormat,
    source: Source,
    prefix: Option<Vec<u8>>,
    suffix: Option<Vec<u8>>,
    delay: Duration,
    /// `total_bytes` mode: the delay is between writes, not between units.
    delay_per_write: bool,
    chunk: usize,
    units: u64,
    writes: u64,
    error_after: Option<u64>,
    reset_after: Option<u64>,
    /// `gap_after` and `gap_ms`: one silence before this unit (taken once).
    gap: Option<(u64, Duration)>,
    phase: Phase,
}

fn filler(text: &[u8], pos: &mut usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(text.len() - *pos);
        out.extend_from_slice(&text[*pos..*pos + take]);
        *pos = (*pos + take) % text.len();
    }
    out
}

impl Writer {
    fn next_unit(&mut self) -> Option<Vec<u8>> {
        let format = self.format;
        match &mut self.source {
            Source::Tokens {
                words,
                next,
                total,
                stamp,
            } => {
                if *next >= *total {
                    return None;
                }
                let token = if *stamp {
                    format!("{} ", now_micros())
                } else {
                    token_from_words(words, *next)
                };
                *next += 1;
                Some(frame_token(format, &token))
            }
            Source::Filler {
                remaining,
                text,
                pos,
            } => {
                if *remaining == 0 {
                    return None;
                }
                match format {
                    DemoFormat::Sse => {
                        // Events of TOTAL_BYTES_EVENT_SIZE bytes; the last ones are sized so
                        // the total is exact (an event is at least 11 bytes: `data: "x"\n\n`).
                        let size = if *remaining > TOTAL_BYTES_EVENT_SIZE + 11 {
                            TOTAL_BYTES_EVENT_SIZE
                        } else if *remaining > TOTAL_BYTES_EVENT_SIZE {
                            *remaining - 11
                        } else {
                            *remaining
                        };
                        *remaining -= size;
                        let text_len = usize::try_from(size.saturating_sub(10)).unwrap_or(0);
                        let mut unit = Vec::with_capacity(text_len + 10);
                        unit.extend_from_slice(b"data: \"");
                        unit.extend_from_slice(&filler(text, pos, text_len));
                        unit.extend_from_slice(b"\"\n\n");
                        Some(unit)
                    }
                    DemoFormat::Json | DemoFormat::Text => {
                        let size = (*remaining).min(TOTAL_BYTES_EVENT_SIZE);
                        *remaining -= size;
                        Some(filler(text, pos, usize::try_from(size).unwrap_or(0)))
                    }
                }
            }
            Source::Raw { unit, remaining } => {
                if *remaining == 0 || unit.is_empty() {
                    return None;
                }
                // Several repetitions per call: a unit of a few bytes repeated millions of
                // times would otherwise cost one allocation each.
                let batch = (*remaining).min((4096 / unit.len()).max(1) as u64);
                *remaining -= batch;
                Some(unit.repeat(usize::try_from(batch).unwrap_or(1)))
            }
        }
    }

    fn error_unit(&self) -> Vec<u8> {
        match self.format {
            DemoFormat::Sse => format!("data: {ERROR_EVENT_JSON}\n\n").into_bytes(),
            DemoFormat::Text => format!("\n{ERROR_EVENT_JSON}\n").into_bytes(),
            DemoFormat::Json => ERROR_EVENT_JSON.as_bytes().to_vec(),
        }
    }

    async fn next_write(&mut self) -> Option<Result<Bytes, DemoReset>> {
        let mut buf = self.prefix.take().unwrap_or_default();
        loop {
            match self.phase {
                Phase::Units => {
                    if self.reset_after.is_some_and(|n| self.units >= n) {
                        self.phase = Phase::Reset;
                        continue;
                    }
                    if self.error_after.is_some_and(|n| self.units >= n) {
                        self.phase = Phase::ErrorEvent;
                        continue;
                    }
                    if let Some((_, gap)) = self.gap.filter(|(after, _)| self.units >= *after) {
                        if !buf.is_empty() {
                            // What came before the silence goes out before it.
                            self.writes += 1;
                            return Some(Ok(Bytes::from(buf)));
                        }
                        self.gap = None;
                        tokio::time::sleep(gap).await;
                    }
                    let pause = if self.delay_per_write {
                        self.writes > 0 && buf.is_empty()
                    } else {
                        self.units > 0
                    };
                    if pause && !self.delay.is_zero() {
                        tokio::time::sleep(self.delay).await;
                    }
                    match self.next_unit() {
                        Some(unit) => {
                            self.units += 1;
                            buf.extend_from_slice(&unit);
                            if buf.len() >= self.chunk {
                                self.writes += 1;
                                return Some(Ok(Bytes::from(buf)));
                            }
                        }
                        None => self.phase = Phase::Suffix,
                    }
                }
                Phase::ErrorEvent => {
                    if self.format == DemoFormat::Json {
                        // The document is replaced by the error object (whatever was not
                        // yet written is dropped).
                        buf.clear();
                    }
                    buf.extend_from_slice(&self.error_unit());
                    self.phase = Phase::Done;
                    return Some(Ok(Bytes::from(buf)));
                }
                Phase::Reset => {
                    if !buf.is_empty() {
                        return Some(Ok(Bytes::from(buf)));
                    }
                    // Let what was written reach the socket before the abort.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.phase = Phase::Done;
                    return Some(Err(DemoReset(self.units)));
                }
                Phase::Suffix => {
                    if let Some(suffix) = self.suffix.take() {
                        buf.extend_from_slice(&suffix);
                    }
                    self.phase = Phase::Done;
                }
                Phase::Done => {
                    return if buf.is_empty() {
                        None
                    } else {
                        Some(Ok(Bytes::from(buf)))
                    };
                }
            }
        }
    }
}

/// The body of the demo answer as a lazy stream of writes.
///
/// With `reset_after`, the stream ends with an error so that hyper aborts the chunked
/// response.
///
/// Fails (before any byte) when the request's `filler` cannot be used.
pub fn answer_stream(
    request: &DemoRequest,
    defaults: &DemoDefaults,
) -> Result<impl Stream<Item = Result<Bytes, DemoReset>> + Send + 'static, ApiError> {
    let knobs = &request.knobs;
    let format = request.format();
    let json_prefix = br#"{"response": ""#.to_vec();
    let json_suffix = br#""}"#.to_vec();
    let raw = match &knobs.raw {
        Some(raw) => Some((
            raw_bytes(&raw.prefix)?,
            raw_bytes(&raw.unit)?,
            raw.times.unwrap_or(1),
            raw_bytes(&raw.suffix)?,
        )),
        None => None,
    };
    let (source, prefix, suffix, default_chunk) = match (raw, knobs.total_bytes) {
        (Some((prefix, unit, times, suffix)), _) => (
            Source::Raw {
                unit,
                remaining: times,
            },
            Some(prefix),
            Some(suffix),
            TOTAL_BYTES_DEFAULT_CHUNK,
        ),
        (None, Some(total)) => {
            let (units_len, prefix, suffix) = match format {
                DemoFormat::Sse => (total.max(11), None, None),
                DemoFormat::Text => (total, None, None),
                DemoFormat::Json => (total.max(16) - 16, Some(json_prefix), Some(json_suffix)),
            };
            (
                Source::Filler {
                    remaining: units_len,
                    text: request.filler()?,
                    pos: 0,
                },
                prefix,
                suffix,
                TOTAL_BYTES_DEFAULT_CHUNK,
            )
        }
        (None, None) => {
            let source = Source::Tokens {
                words: request
                    .prompt
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                next: 0,
                total: knobs.tokens.unwrap_or(defaults.tokens),
                stamp: knobs.stamp.unwrap_or(false),
            };
            match format {
                DemoFormat::Json => (source, Some(json_prefix), Some(json_suffix), usize::MAX),
                DemoFormat::Sse | DemoFormat::Text => (source, None, None, 1),
            }
        }
    };
    let writer = Writer {
        format,
        source,
        prefix,
        suffix,
        // The server-wide default delay paces tokens only: a `total_bytes` answer is paced
        // (between writes) only when the request asks for it.
        delay: Duration::from_millis(match (&knobs.raw, knobs.total_bytes) {
            (None, None) => knobs.delay_ms.unwrap_or(defaults.delay_ms),
            _ => knobs.delay_ms.unwrap_or(0),
        }),
        delay_per_write: knobs.total_bytes.is_some() || knobs.raw.is_some(),
        chunk: knobs
            .chunk_bytes
            .or(defaults.chunk_bytes)
            .unwrap_or(default_chunk)
            .max(1),
        units: 0,
        writes: 0,
        // A raw body is written as it is: no fault of ours is mixed into it.
        error_after: knobs.error_after.filter(|_| knobs.raw.is_none()),
        reset_after: knobs.reset_after.filter(|_| knobs.raw.is_none()),
        gap: knobs
            .gap_after
            .zip(knobs.gap_ms)
            .filter(|(_, ms)| *ms > 0)
            .map(|(after, ms)| (after, Duration::from_millis(ms))),
        phase: Phase::Units,
    };
    Ok(futures_util::stream::unfold(
        writer,
        |mut writer| async move { writer.next_write().await.map(|item| (item, writer)) },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(payload: serde_json::Value) -> (Vec<Bytes>, bool) {
        let request = DemoRequest::parse(payload.to_string().as_bytes()).expect("parse");
        let stream = answer_stream(&request, &DemoDefaults::default()).expect("valid knobs");
        futures_util::pin_mut!(stream);
        let mut writes = Vec::new();
        let mut errored = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => writes.push(b),
                Err(_) => errored = true,
            }
        }
        (writes, errored)
    }

    fn decode_sse(body: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(body)
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").expect("data line");
                serde_json::from_str::<String>(data).expect("json string")
            })
            .collect()
    }

    #[test]
    fn text_reads_like_a_sentence() {
        assert_eq!(
            demo_text("hello world", 5).concat(),
            "You said: hello world This"
        );
        assert_eq!(demo_text("", 4).concat(), "You said: This is");
        assert_eq!(demo_text("x", 0), Vec::<String>::new());
    }

    #[tokio::test]
    async fn sse_tokens_one_write_each() {
        let (writes, errored) =
            collect(serde_json::json!({"prompt": "hi \"there\"", "demo": {"tokens": 6}})).await;
        assert!(!errored);
        assert_eq!(writes.len(), 6);
        let body: Vec<u8> = writes.concat();
        assert_eq!(decode_sse(&body), demo_text("hi \"there\"", 6));
    }

    #[tokio::test]
    async fn stamp_tokens_are_microsecond_timestamps() {
        let before = now_micros();
        let (writes, _) = collect(serde_json::json!({"demo": {"tokens": 3, "stamp": true}})).await;
        let tokens = decode_sse(&writes.concat());
        assert_eq!(tokens.len(), 3);
        for token in tokens {
            let micros: u128 = token
                .strip_suffix(' ')
                .and_then(|t| t.parse().ok())
                .expect("microseconds then a space");
            assert!(micros >= before && micros <= now_micros());
        }
    }

    #[tokio::test]
    async fn json_is_one_document() {
        let (writes, _) =
            collect(serde_json::json!({"prompt": "a b", "demo": {"format": "json", "tokens": 5}}))
                .await;
        assert_eq!(writes.len(), 1);
        let doc: serde_json::Value = serde_json::from_slice(&writes[0]).expect("json");
        assert_eq!(doc["response"], demo_text("a b", 5).concat());
    }

    #[tokio::test]
    async fn total_bytes_is_exact_in_every_format() {
        for format in ["sse", "json", "text"] {
            for total in [16_u64, 1024, 1034, 1035, 1036, 2047, 100_000, 1_000_001] {
                let (writes, _) = collect(serde_json::json!({
                    "demo": {"format": format, "total_bytes": total}
                }))
                .await;
                let body = writes.concat();
                assert_eq!(body.len() as u64, total, "{format} {total}");
                if format == "sse" {
                    assert!(decode_sse(&body).iter().all(|t| !t.is_empty()));
                }
                if format == "json" {
                    let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
                    assert!(doc["response"].is_string());
                }
            }
        }
    }

    #[tokio::test]
    async fn total_bytes_ignores_the_server_token_delay() {
        let request = DemoRequest::parse(br#"{"demo": {"total_bytes": 300000}}"#).expect("parse");
        let defaults = DemoDefaults {
            delay_ms: 1000,
            ..DemoDefaults::default()
        };
        let stream = answer_stream(&request, &defaults).expect("valid knobs");
        futures_util::pin_mut!(stream);
        let mut total = 0;
        let mut writes = 0;
        let collected = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(b)) = stream.next().await {
                total += b.len();
                writes += 1;
            }
        })
        .await;
        assert!(collected.is_ok(), "must not be paced by the server default");
        assert_eq!(total, 300_000);
        assert_eq!(writes, 5, "64 KiB writes");
    }

    #[test]
    fn the_error_event_is_the_sdk_shape_and_carries_the_exception_text() {
        let doc: serde_json::Value = serde_json::from_str(ERROR_EVENT_JSON).expect("json");
        assert_eq!(doc["error"], AGENT_EXCEPTION_TEXT);
        assert_eq!(doc["error_type"], "OperationalError");
        assert_eq!(doc["message"], "An error occurred during streaming");
        assert_eq!(doc.as_object().map(|o| o.len()), Some(3));
    }

    #[tokio::test]
    async fn zero_tokens_is_an_empty_body() {
        for format in ["sse", "text"] {
            let (writes, errored) =
                collect(serde_json::json!({"demo": {"tokens": 0, "format": format}})).await;
            assert!(!errored);
            assert!(writes.is_empty(), "{format}: {writes:?}");
        }
    }

    #[tokio::test]
    async fn error_after_and_reset_after() {
        let (writes, errored) =
            collect(serde_json::json!({"demo": {"tokens": 10, "error_after": 3}})).await;
        assert!(!errored);
        let body = String::from_utf8(writes.concat()).expect("utf8");
        assert_eq!(body.matches("data: ").count(), 4);
        assert!(body.ends_with(&format!("data: {ERROR_EVENT_JSON}\n\n")));

        let (writes, errored) =
            collect(serde_json::json!({"demo": {"tokens": 10, "reset_after": 2}})).await;
        assert!(errored);
        assert_eq!(writes.len(), 2);
    }

    #[tokio::test]
    async fn a_text_filler_is_repeated_exactly_and_json_fillers_must_need_no_escaping() {
        let (writes, _) = collect(serde_json::json!({
            "demo": {"format": "text", "total_bytes": 10, "filler": "\"\\\n"}
        }))
        .await;
        assert_eq!(writes.concat(), b"\"\\\n\"\\\n\"\\\n\"");
        for format in ["sse", "json"] {
            let req = DemoRequest::parse(
                serde_json::json!({"demo": {"format": format, "total_bytes": 100, "filler": "a\"b"}})
                    .to_string()
                    .as_bytes(),
            )
            .expect("parse");
            assert!(
                answer_stream(&req, &DemoDefaults::default()).is_err(),
                "{format}"
            );
        }
    }

    #[tokio::test]
    async fn a_raw_body_is_written_byte_for_byte() {
        let (writes, errored) = collect(serde_json::json!({"demo": {
            "raw": {"prefix": "data: \\xff", "unit": "ab", "times": 5000, "suffix": "\n\n"},
            "reset_after": 1,
        }}))
        .await;
        assert!(!errored, "reset_after does not apply to a raw body");
        let mut expected = b"data: \xff".to_vec();
        expected.extend_from_slice(&b"ab".repeat(5000));
        expected.extend_from_slice(b"\n\n");
        assert_eq!(writes.concat(), expected);
        assert!(writes
            .iter()
            .all(|w| w.len() <= TOTAL_BYTES_DEFAULT_CHUNK + 4096));
        assert_eq!(raw_bytes("a\\x00\\x7Fb").expect("valid"), b"a\x00\x7fb");
        assert!(raw_bytes("\\xg1").is_err());
        assert!(raw_bytes("tail\\x4").is_err());
    }

    #[tokio::test]
    async fn a_gap_is_one_silence_after_the_given_token() {
        let request = DemoRequest::parse(
            br#"{"prompt": "p", "demo": {"tokens": 4, "gap_after": 2, "gap_ms": 300}}"#,
        )
        .expect("parse");
        let stream = answer_stream(&request, &DemoDefaults::default()).expect("valid knobs");
        futures_util::pin_mut!(stream);
        let start = std::time::Instant::now();
        let mut arrivals = Vec::new();
        while let Some(Ok(_)) = stream.next().await {
            arrivals.push(start.elapsed());
        }
        assert_eq!(arrivals.len(), 4);
        assert!(arrivals[1] < Duration::from_millis(200), "{arrivals:?}");
        assert!(arrivals[2] >= Duration::from_millis(300), "{arrivals:?}");
        assert!(
            arrivals[3] - arrivals[2] < Duration::from_millis(200),
            "{arrivals:?}"
        );
    }

    #[test]
    fn bad_knobs_are_validation_errors() {
        let err = DemoRequest::parse(br#"{"demo": {"tokns": 3}}"#).expect_err("typo");
        assert_eq!(err.kind, ErrorType::ValidationException);
        let req = DemoRequest::parse(br#"{"demo": {"fault": "Nope"}}"#).expect("parse");
        assert!(req.fault().is_err());
        let req =
            DemoRequest::parse(br#"{"demo": {"fault": "ThrottlingException"}}"#).expect("parse");
        assert_eq!(
            req.fault().ok().flatten().map(|e| e.kind),
            Some(ErrorType::ThrottlingException)
        );
        let req = DemoRequest::parse(b"not json").expect("raw prompt");
        assert_eq!(req.prompt, "not json");
    }
}

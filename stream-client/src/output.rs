//! Writing the answer to stdout as it arrives (every write is flushed at once).

use std::io::{self, IsTerminal, Write};

use agentcore_wire::sse::{event_text, Event};
use serde_json::json;

use crate::spinner::Spinner;

/// Writes bytes to stdout and flushes them.
pub fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// The stdout side of a run: stops the spinner before the first write, and remembers
/// whether the output ends a line.
#[derive(Debug)]
pub struct Printer {
    spinner: Spinner,
    wrote: bool,
    ends_line: bool,
}

impl Printer {
    /// A printer that stops `spinner` before writing.
    pub fn new(spinner: Spinner) -> Self {
        Printer {
            spinner,
            wrote: false,
            ends_line: true,
        }
    }

    /// The spinner this printer stops.
    pub fn spinner(&self) -> Spinner {
        self.spinner.clone()
    }

    /// Writes raw bytes (flushed).
    pub fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.spinner.stop();
        write_stdout(bytes)?;
        self.wrote = true;
        self.ends_line = bytes.ends_with(b"\n");
        Ok(())
    }

    /// Writes text (flushed).
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        self.bytes(text.as_bytes())
    }

    /// Writes one SSE event as a JSON line: `{"event", "id", "data", "text"}`.
    pub fn event_json(&mut self, event: &Event) -> io::Result<()> {
        let line = json!({
            "event": event.event,
            "id": event.id,
            "data": event.data,
            "text": event_text(&event.data),
        });
        self.text(&format!("{line}\n"))
    }

    /// Writes a whole non-SSE body as one JSON line, as if it were one `message` event.
    pub fn body_json(&mut self, body: &str) -> io::Result<()> {
        let line = json!({ "event": "message", "id": "", "data": body, "text": body });
        self.text(&format!("{line}\n"))
    }

    /// Ends the line when stdout is a terminal and the text did not end with a newline,
    /// so the shell prompt starts on its own line. Piped output is left exactly as the
    /// agent sent it.
    pub fn finish_line(&mut self) -> io::Result<()> {
        if self.wrote && !self.ends_line && io::stdout().is_terminal() {
            self.bytes(b"\n")?;
        }
        Ok(())
    }
}

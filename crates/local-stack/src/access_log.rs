//! `make run`'s screen: one compact line per request, made from the functions' access
//! records (`agentcore_core::access`), while everything the watcher and the functions print
//! goes to a log file whole.
//!
//! The functions log JSON under `cargo lambda watch` (it sets `AWS_LAMBDA_FUNCTION_NAME`,
//! and JSON is then the default, as in Lambda), so an access record is one JSON object per
//! line with `"message": "access"`. Lines that are not access records (the watcher's own
//! output, other log records, the EMF metric documents) only go to the file.

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// The compact line for one log line, if it is an access record:
/// `option2  alice  200 complete  first byte 2 ms  total 249 ms  89 B`.
pub fn summary(line: &str) -> Option<String> {
    let record: Value = serde_json::from_str(line.trim()).ok()?;
    if record.get("message")?.as_str()? != "access" {
        return None;
    }
    let text = |key: &str| match record.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_owned(),
    };
    let ms = |key: &str| match record.get(key).and_then(Value::as_u64) {
        Some(ms) => format!("{ms} ms"),
        None => "-".to_owned(),
    };
    let code = match text("code").as_str() {
        "-" => String::new(),
        code => format!(" {code}"),
    };
    Some(format!(
        "{option:<8} {caller:<14} {status} {outcome}{code}  first byte {first}  total {total}  {bytes} B out",
        option = text("option"),
        caller = text("caller"),
        status = text("status"),
        outcome = text("outcome"),
        first = ms("client_first_byte_ms"),
        total = ms("duration_ms"),
        bytes = text("bytes_out"),
    ))
}

/// Copies the watcher's stdout and stderr, line by line, to `file`, and prints the
/// [`summary`] of each access record on this process's stdout. Ends when both streams end.
pub(crate) fn tee(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    stderr: impl AsyncRead + Unpin + Send + 'static,
    file: &Path,
) -> std::io::Result<()> {
    let mut file = std::fs::File::create(file)?;
    // One writer, so that lines of the two streams never interleave within a line.
    let (lines, mut rx) = mpsc::channel::<Vec<u8>>(256);
    for reader in [
        Box::new(stdout) as Box<dyn AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            loop {
                // Bytes, not `lines()`: a function may print something that is not UTF-8.
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if lines.send(line).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(lines);
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let _ = file.write_all(&line);
            if let Some(summary) = std::str::from_utf8(&line).ok().and_then(summary) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{summary}");
                let _ = out.flush();
            }
        }
        let _ = file.flush();
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_record_becomes_one_compact_line() {
        let record = r#"{"level":"INFO","message":"access","request_id":"r-1","option":"option2","caller":"jwt:alice","session_id":"session-x","status":200,"code":"-","outcome":"complete","agent_first_byte_ms":1,"client_first_byte_ms":2,"duration_ms":249,"bytes_in":30,"bytes_out":89,"events":12,"attempts":1,"cold_start":false,"trace_id":"-"}"#;
        assert_eq!(
            summary(record).as_deref(),
            Some("option2  jwt:alice      200 complete  first byte 2 ms  total 249 ms  89 B out")
        );
    }

    #[test]
    fn a_refusal_shows_its_code_and_no_first_byte() {
        let record = r#"{"message":"access","option":"option1","caller":"anonymous","status":401,"code":"unauthorized","outcome":"refused","duration_ms":0,"bytes_out":0}"#;
        let line = summary(record).unwrap_or_default();
        assert!(
            line.contains("401 refused unauthorized  first byte -  total 0 ms  0 B out"),
            "{line}"
        );
    }

    #[test]
    fn other_lines_are_not_summarised() {
        for line in [
            r#"{"level":"WARN","message":"request refused","status":405}"#,
            r#"{"BytesOut":89,"Option":"option2","_aws":{}}"#,
            "INFO cargo lambda watch started",
            "",
        ] {
            assert_eq!(summary(line), None, "{line}");
        }
    }
}

//! One access record per request, written when the request is really over (after the last
//! byte of a stream, a mid-stream failure, or the client going away), and the request's
//! CloudWatch metrics in Embedded Metric Format (EMF) beside it.
//!
//! The record is one `tracing` event (`message: "access"`) with the figures an operator
//! needs; never the prompt, a token or the agent's text. The metrics are one JSON line on
//! stdout, which Lambda sends to CloudWatch Logs, where EMF turns it into metrics: no API
//! call, no extension. The serializer is ours: the EMF crates on crates.io bring their own
//! logging set-up or an async client, and one `serde_json` document is all EMF is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The default CloudWatch namespace of the metrics (`METRICS_NAMESPACE`).
pub const DEFAULT_METRICS_NAMESPACE: &str = "AgentCoreLambda";

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole answer was sent (or a `204`).
    Complete,
    /// Refused or failed before the first byte (a 4xx or 5xx status).
    Refused,
    /// The answer had started and then failed (in-band error or aborted body).
    FailedMidStream,
    /// The client went away before the end of the answer.
    ClientGone,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Refused => "refused",
            Self::FailedMidStream => "failed_mid_stream",
            Self::ClientGone => "client_gone",
        }
    }
}

/// True for the first request of the process only.
static COLD: AtomicBool = AtomicBool::new(true);

/// The figures of one request, filled in as it goes.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    started: Instant,
    namespace: String,
    /// The Lambda request id.
    pub request_id: String,
    /// `option1`, `option2` or `option3`.
    pub option: &'static str,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function: String,
    /// The caller's id, or `anonymous`.
    pub caller: String,
    /// The client's session id.
    pub session_id: Option<String>,
    /// The HTTP status sent.
    pub status: u16,
    /// The stable error code, if the request failed.
    pub code: Option<&'static str>,
    /// How it ended.
    pub outcome: Outcome,
    /// Milliseconds until AgentCore's first byte.
    pub agent_first_byte_ms: Option<u64>,
    /// Milliseconds until the first byte went to the client.
    pub client_first_byte_ms: Option<u64>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// SSE events sent (event streams only).
    pub events: u64,
    /// Attempts made to reach AgentCore.
    pub attempts: u32,
    /// The first request of this process.
    pub cold_start: bool,
    /// The X-Ray trace id.
    pub trace_id: Option<String>,
}

impl AccessRecord {
    /// A record for a request that starts now.
    pub fn start(
        namespace: &str,
        option: &'static str,
        request_id: String,
        trace_id: Option<String>,
    ) -> Self {
        Self {
            started: Instant::now(),
            namespace: namespace.to_owned(),
            request_id,
            option,
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            caller: "anonymous".to_owned(),
            session_id: None,
            status: 200,
            code: None,
            outcome: Outcome::Complete,
            agent_first_byte_ms: None,
            client_first_byte_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            events: 0,
            attempts: 0,
            cold_start: COLD.swap(false, Ordering::Relaxed),
            trace_id,
        }
    }

    /// Milliseconds since the request started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Writes the access record and its metrics: the request is over.
    pub fn finish(self) {
        let duration_ms = self.elapsed_ms();
        tracing::info!(
            request_id = %self.request_id,
            option = self.option,
            caller = %self.caller,
            session_id = self.session_id.as_deref().unwrap_or("-"),
            status = self.status,
            code = self.code.unwrap_or("-"),
            outcome = self.outcome.as_str(),
            agent_first_byte_ms = self.agent_first_byte_ms,
            client_first_byte_ms = self.client_first_byte_ms,
            duration_ms,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            events = self.events,
            attempts = self.attempts,
            cold_start = self.cold_start,
            trace_id = self.trace_id.as_deref().unwrap_or("-"),
            "access"
        );
        let line = self.emf(duration_ms, SystemTime::now());
        use std::io::Write;
        // One write per line, so that concurrent lines never interleave.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// The request's metrics as one EMF document (dimensions: function and option).
    pub fn emf(&self, duration_ms: u64, now: SystemTime) -> Value {
        let namespace = &self.namespace;
        let class = |lo: u16, hi: u16| {
            u8::from(self.outcome == Outcome::Refused && (lo..=hi).contains(&self.status))
        };
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut doc = json!({
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function", "Option"]],
                    "Metrics": [
                        {"Name": "Requests", "Unit": "Count"},
                        {"Name": "Errors4xx", "Unit": "Count"},
                        {"Name": "Errors5xx", "Unit": "Count"},
                        {"Name": "ErrorsMidStream", "Unit": "Count"},
                        {"Name": "Duration", "Unit": "Milliseconds"},
                        {"Name": "BytesOut", "Unit": "Bytes"},
                        {"Name": "ColdStart", "Unit": "Count"},
                    ],
                }],
            },
            "Function": self.function,
            "Option": self.option,
            "Requests": 1,
            "Errors4xx": class(400, 499),
            "Errors5xx": class(500, 599),
            "ErrorsMidStream": u8::from(self.outcome == Outcome::FailedMidStream),
            "Duration": duration_ms,
            "BytesOut": self.bytes_out,
            "ColdStart": u8::from(self.cold_start),
            // Properties, not dimensions: searchable in Logs Insights, no metric cardinality.
            "RequestId": self.request_id,
            "Outcome": self.outcome.as_str(),
            "Status": self.status,
        });
        // Time to first byte exists only for answers that had one.
        if let Some(ttfb) = self.client_first_byte_ms {
            doc["TimeToFirstByte"] = json!(ttfb);
            if let Some(metrics) = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array_mut() {
                metrics.push(json!({"Name": "TimeToFirstByte", "Unit": "Milliseconds"}));
            }
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_count_the_request_in_its_class() {
        let mut record = AccessRecord::start("NS", "option2", "req-1".into(), None);
        record.status = 429;
        record.outcome = Outcome::Refused;
        let doc = record.emf(12, UNIX_EPOCH);
        assert_eq!(
            (
                doc["Errors4xx"].as_u64(),
                doc["Errors5xx"].as_u64(),
                doc["ErrorsMidStream"].as_u64()
            ),
            (Some(1), Some(0), Some(0))
        );
        assert!(doc.get("TimeToFirstByte").is_none());
        record.status = 200;
        record.outcome = Outcome::FailedMidStream;
        record.client_first_byte_ms = Some(5);
        let doc = record.emf(12, UNIX_EPOCH);
        assert_eq!(doc["ErrorsMidStream"], 1);
        assert_eq!(doc["TimeToFirstByte"], 5);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map(Vec::len),
            Some(8)
        );
    }
}

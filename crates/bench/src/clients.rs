//! The ways a request reaches the agent: straight to agentcore-local with the AWS SDK (the
//! baseline), through a function under the driver's Runtime API, and through the local
//! stack (Function URL, `InvokeWithResponseStream`, API Gateway emulator).

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_bedrockagentcore::error::DisplayErrorContext;
use aws_sdk_bedrockagentcore::primitives::Blob;
use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::harness::{wall_us, Answer, FunctionProcess};
use crate::observe::{Framing, Observer};
use anyhow::{anyhow, bail, Context as _, Result};

/// Option 2's sample Function URL event (API Gateway v2 payload).
const V2_EVENT: &str = include_str!("../../../option2-lambda-url/events/invoke.json");
/// Option 3's sample API Gateway REST event (v1 payload); option 1's has the same shape.
const V1_STREAM_EVENT: &str =
    include_str!("../../../option3-api-gateway-streaming/events/invoke.json");
/// Option 1's sample API Gateway REST event.
const V1_EVENT: &str = include_str!("../../../option1-api-gateway/events/invoke.json");

/// The three functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Function {
    /// Option 1, buffered, v1 events.
    Option1,
    /// Option 2, streaming, Function URL (v2) events.
    Option2,
    /// Option 3, streaming, v1 events.
    Option3,
}

impl Function {
    pub(crate) const ALL: [Function; 3] = [Function::Option1, Function::Option2, Function::Option3];

    /// Binary and function name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Option1 => "option1-api-gateway",
            Function::Option2 => "option2-lambda-url",
            Function::Option3 => "option3-api-gateway-streaming",
        }
    }

    /// Short label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Function::Option1 => "option 1",
            Function::Option2 => "option 2",
            Function::Option3 => "option 3",
        }
    }

    /// How its Runtime API response starts.
    pub(crate) fn framing(self) -> Framing {
        match self {
            Function::Option1 => Framing::Plain,
            Function::Option2 | Function::Option3 => Framing::Prelude,
        }
    }

    /// The Lambda event that carries `payload` as the HTTP request body.
    pub(crate) fn event(self, payload: &Value) -> Result<Bytes> {
        let template = match self {
            Function::Option1 => V1_EVENT,
            Function::Option2 => V2_EVENT,
            Function::Option3 => V1_STREAM_EVENT,
        };
        let mut event: Value = serde_json::from_str(template)
            .with_context(|| format!("parsing the sample event of {}", self.name()))?;
        let obj = event
            .as_object_mut()
            .with_context(|| format!("the sample event of {} is not an object", self.name()))?;
        obj.insert("body".into(), Value::String(payload.to_string()));
        obj.insert("isBase64Encoded".into(), Value::Bool(false));
        if self != Function::Option1 {
            // Ask for the event stream, as the streaming clients do.
            for key in ["headers"] {
                if let Some(h) = obj.get_mut(key).and_then(Value::as_object_mut) {
                    h.retain(|k, _| !k.eq_ignore_ascii_case("accept"));
                    h.insert("accept".into(), Value::String("text/event-stream".into()));
                }
            }
        }
        serde_json::to_vec(&event)
            .map(Bytes::from)
            .context("serialising an event")
    }
}

/// The request body the clients send: a prompt and the demo agent's knobs.
pub(crate) fn payload(demo: Value) -> Value {
    json!({ "prompt": "Benchmark prompt", "demo": demo })
}

/// Timings of one answer.
#[derive(Debug)]
pub(crate) struct Timed {
    /// When the request was sent (or, under the Runtime API, when `/next` served it).
    pub(crate) start: Instant,
    /// Everything seen.
    pub(crate) obs: Observer,
    /// End of the body.
    pub(crate) done: Instant,
}

impl Timed {
    /// Time to the first body byte, in ms.
    pub(crate) fn ttfb_ms(&self) -> Result<f64> {
        let first = self.obs.first_body.context("no body byte arrived")?;
        Ok(ms(first - self.start))
    }

    /// Time to the end of the body, in ms.
    pub(crate) fn total_ms(&self) -> f64 {
        ms(self.done - self.start)
    }

    /// Body throughput in MB/s (10^6 bytes).
    pub(crate) fn mb_per_s(&self) -> f64 {
        let s = (self.done - self.start).as_secs_f64();
        if s > 0.0 {
            self.obs.body_bytes as f64 / 1e6 / s
        } else {
            f64::INFINITY
        }
    }
}

/// Milliseconds of a duration.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The baseline: the AWS SDK straight to agentcore-local, as the handlers call it.
pub(crate) struct Direct {
    client: aws_sdk_bedrockagentcore::Client,
}

impl Direct {
    /// A client for agentcore-local at `endpoint`, with the handlers' SDK settings
    /// (`AgentCoreClient::sdk_config_loader`).
    pub(crate) async fn new(endpoint: &str) -> Self {
        let config = agentcore_core::Config::from_lookup(|name| {
            (name == "AGENT_RUNTIME_ARN").then(|| agentcore_local::DEFAULT_RUNTIME_ARN.to_owned())
        })
        .expect("the default runtime ARN is a valid configuration");
        let shared = agentcore_core::AgentCoreClient::sdk_config_loader(&config)
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_bedrockagentcore::config::Credentials::new(
                agentcore_local::DEFAULT_ACCESS_KEY_ID,
                agentcore_local::DEFAULT_SECRET_ACCESS_KEY,
                None,
                None,
                "bench",
            ))
            .load()
            .await;
        Self {
            client: aws_sdk_bedrockagentcore::Client::new(&shared),
        }
    }

    /// Sends `payload` and reads the whole answer.
    pub(crate) async fn invoke(&self, payload: &Value, stamps: bool) -> Result<Timed> {
        let body = serde_json::to_vec(payload).context("serialising a payload")?;
        let session = format!("bench-session-{}", uuid::Uuid::new_v4().simple());
        let mut obs = Observer::new(Framing::Plain, stamps, false);
        let start = Instant::now();
        let out = self
            .client
            .invoke_agent_runtime()
            .agent_runtime_arn(agentcore_local::DEFAULT_RUNTIME_ARN)
            .runtime_session_id(session)
            .content_type("application/json")
            .accept("text/event-stream")
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "direct InvokeAgentRuntime failed: {}",
                    DisplayErrorContext(&e)
                )
            })?;
        let mut stream = out.response;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("direct answer broke")?;
            obs.feed(Instant::now(), wall_us(), &chunk)?;
        }
        let done = Instant::now();
        obs.check_ok("direct")?;
        Ok(Timed { start, obs, done })
    }
}

/// Runs one invocation on a function under the driver's Runtime API.
pub(crate) async fn invoke_harness(
    process: &FunctionProcess,
    function: Function,
    payload: &Value,
    stamps: bool,
) -> Result<Timed> {
    let obs = harness_observer(function, stamps, false);
    let submitted = process.submit(function.event(payload)?, obs)?;
    read_harness(submitted, function, true).await
}

/// A fresh observer for an answer of `function` read from the Runtime API. `stamps` parses
/// the demo agent's timestamps; `keep` keeps the body (always kept for option 1, whose
/// buffered answer is checked as a whole).
pub(crate) fn harness_observer(function: Function, stamps: bool, keep: bool) -> Observer {
    Observer::new(
        function.framing(),
        stamps,
        keep || function == Function::Option1,
    )
}

/// Waits for an invocation's answer from the Runtime API; with `expect_ok`, an option 1
/// answer must also say 200.
pub(crate) async fn read_harness(
    submitted: crate::harness::Submitted,
    function: Function,
    expect_ok: bool,
) -> Result<Timed> {
    let start = tokio::time::timeout(Duration::from_secs(60), submitted.served)
        .await
        .with_context(|| format!("{} did not ask for the event within 60 s", function.name()))?
        .with_context(|| format!("the Runtime API of {} stopped", function.name()))?;
    let answer = tokio::time::timeout(Duration::from_secs(300), submitted.answer)
        .await
        .with_context(|| format!("{}: no complete answer within 300 s", function.name()))?
        .with_context(|| format!("{}: the answer was never posted", function.name()))?;
    let Answer { obs, done } = match answer {
        Ok(answer) => answer,
        Err(why) => bail!("{}: {why}", function.name()),
    };
    obs.check_ok(function.name())?;
    if function == Function::Option1 && expect_ok {
        check_buffered_ok(&obs.body, function.name())?;
    }
    Ok(Timed { start, obs, done })
}

/// The status code and error code of a buffered (v1) Lambda response.
pub(crate) fn buffered_status(body: &[u8]) -> (Option<u64>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let status = v.get("statusCode").and_then(Value::as_u64);
    let code = v
        .get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|b| {
            b.pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    (status, code)
}

/// Fails unless a buffered (v1) Lambda response says 200.
fn check_buffered_ok(body: &[u8], what: &str) -> Result<()> {
    let v: Value = serde_json::from_slice(body)
        .with_context(|| format!("{what}: the response is not JSON"))?;
    match v.get("statusCode").and_then(Value::as_u64) {
        Some(200) => Ok(()),
        other => {
            let text = String::from_utf8_lossy(body);
            let head: String = text.chars().take(300).collect();
            Err(anyhow!("{what}: status {other:?}: {head}"))
        }
    }
}

/// Requests through the stack that failed and were retried (see [`retry`]).
static STACK_RETRIES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The requests through the stack that failed and were retried so far, for the report.
pub(crate) fn stack_retries() -> Vec<String> {
    match STACK_RETRIES.lock() {
        Ok(log) => log.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Runs a request through the stack, retrying up to twice: a function under
/// `cargo lambda watch` occasionally dies on a dropped Runtime API connection
/// (`IncompleteMessage`) and watch starts a new one on the next request. Retries are
/// reported in the notes.
pub(crate) async fn retry<F, Fut>(what: &str, mut f: F) -> Result<Timed>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Timed>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Ok(t) => return Ok(t),
            Err(e) if attempt < 3 => {
                eprintln!("bench: {what} failed (attempt {attempt}), retrying: {e:#}");
                if let Ok(mut log) = STACK_RETRIES.lock() {
                    log.push(format!("{what}: {e:#}"));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// HTTP through the stack (Function URL of option 2, API Gateway emulator for option 1).
pub(crate) async fn invoke_http(
    http: &reqwest::Client,
    url: &str,
    payload: &Value,
    stamps: bool,
) -> Result<Timed> {
    let body = serde_json::to_vec(payload).context("serialising a payload")?;
    let mut obs = Observer::new(Framing::Plain, stamps, false);
    let start = Instant::now();
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("POST {url}: status {status}: {text}");
    }
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("the answer of {url} broke"))?;
        obs.feed(Instant::now(), wall_us(), &chunk)?;
    }
    let done = Instant::now();
    obs.check_ok(url)?;
    Ok(Timed { start, obs, done })
}

/// `InvokeWithResponseStream` (AWS SDK for Lambda) through the stack's Lambda endpoint.
pub(crate) async fn invoke_streaming_api(
    lambda: &aws_sdk_lambda::Client,
    function: Function,
    payload: &Value,
) -> Result<Timed> {
    let event = function.event(payload)?;
    let mut obs = Observer::new(Framing::Prelude, false, false);
    let start = Instant::now();
    let out = lambda
        .invoke_with_response_stream()
        .function_name(function.name())
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_vec()))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "InvokeWithResponseStream {} failed: {}",
                function.name(),
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
    let mut events = out.event_stream;
    loop {
        let ev = events.recv().await.map_err(|e| {
            anyhow!(
                "the event stream of {} broke: {}",
                function.name(),
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
        match ev {
            Some(InvokeWithResponseStreamResponseEvent::PayloadChunk(c)) => {
                if let Some(p) = c.payload() {
                    obs.feed(Instant::now(), wall_us(), p.as_ref())?;
                }
            }
            Some(InvokeWithResponseStreamResponseEvent::InvokeComplete(c)) => {
                if let Some(code) = c.error_code() {
                    bail!(
                        "{}: InvokeComplete with error {code}: {}",
                        function.name(),
                        c.error_details().unwrap_or_default()
                    );
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    let done = Instant::now();
    obs.check_ok(function.name())?;
    Ok(Timed { start, obs, done })
}

/// The AWS SDK for Lambda pointed at the stack's `InvokeWithResponseStream` endpoint.
pub(crate) async fn lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDLOCAL",
            "local-secret",
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    aws_sdk_lambda::Client::new(&shared)
}

//! Shared harness of the end-to-end tests: one stack for the whole test binary, per-function
//! locks, and clients for the three ways in (Function URL, `Invoke`,
//! `InvokeWithResponseStream`, and the API Gateway emulator).

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent;
use bytes::Bytes;
use futures_util::StreamExt;
use local_stack::apigw::PreludeDecoder;
use local_stack::{LogSink, Stack, StackOptions};
use serde_json::{json, Map, Value};

/// `MAX_REQUEST_BYTES` of the functions under test.
pub const MAX_REQUEST_BYTES: usize = 65_536;
/// `MAX_RESPONSE_BYTES` (option 1): the production default, so that option 1's size check
/// meets Lambda's own limit (enforced by the local Lambda API, see `lambda_shim`).
pub const MAX_RESPONSE_BYTES: usize = agentcore_core::config::DEFAULT_MAX_RESPONSE_BYTES;
/// `UPSTREAM_FIRST_BYTE_TIMEOUT_MS`.
pub const FIRST_BYTE_TIMEOUT_MS: u64 = 2_000;
/// `RESPONSE_DEADLINE_MS` (option 1).
pub const RESPONSE_DEADLINE_MS: u64 = 5_000;
/// The access key id the functions sign with (must never reach a client).
pub const ACCESS_KEY_ID: &str = agentcore_local::DEFAULT_ACCESS_KEY_ID;
/// The function names.
pub const OPTION1: &str = "option1-api-gateway";
/// Option 2.
pub const OPTION2: &str = "option2-lambda-url";
/// Option 3.
pub const OPTION3: &str = "option3-api-gateway-streaming";
/// Longest any single request may take before a test gives up on it.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(120);

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
static IDENTITY_STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

fn options() -> StackOptions {
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-watch.log");
    let env = [
        ("AGENTCORE_MAX_ATTEMPTS", "1".to_owned()),
        (
            "UPSTREAM_FIRST_BYTE_TIMEOUT_MS",
            FIRST_BYTE_TIMEOUT_MS.to_string(),
        ),
        ("RESPONSE_DEADLINE_MS", RESPONSE_DEADLINE_MS.to_string()),
        ("MAX_REQUEST_BYTES", MAX_REQUEST_BYTES.to_string()),
    ];
    StackOptions {
        local_port: 0,
        watch_port: 0,
        apigw_port: 0,
        log: LogSink::File(log),
        function_env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        integration_timeout: Duration::from_secs(60),
        ..StackOptions::default()
    }
}

/// The stack shared by every test of this binary, started on first use.
///
/// It runs on a dedicated thread that owns a multi-thread runtime for the life of the
/// process: each `#[tokio::test]` has its own runtime, and servers spawned on it would die
/// with the test. `cargo lambda watch` and the functions are ended by the stack's lifeline
/// when the test process exits.
pub fn stack() -> &'static Stack {
    start_once(&STACK, options)
}

/// A stack with end-user authentication: the functions verify JWTs from `agentcore-local`'s
/// issuer, and the API Gateway emulator runs a Cognito user pool authorizer (one per test
/// binary that uses it).
pub fn identity_stack() -> &'static Stack {
    start_once(&IDENTITY_STACK, || StackOptions {
        end_user_auth: true,
        ..options()
    })
}

static PAGE_STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

/// A stack as `make run` starts it for a browser: end-user authentication, the page and
/// the edge served on the gateway's address, CORS for that origin on every function, and the
/// token read from `authorization` or `x-auth-token` (behind the edge). Its functions' log
/// is [`page_watch_log_path`].
pub fn page_stack() -> &'static Stack {
    start_once(&PAGE_STACK, || {
        // The page's origin must be known before the functions start (CORS_ALLOW_ORIGIN).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut opts = options();
        opts.log = LogSink::File(page_watch_log_path());
        opts.apigw_port = port;
        opts.end_user_auth = true;
        opts.cors_allow_origin = Some(format!("http://127.0.0.1:{port}"));
        opts.web_dir = Some(local_stack::stack::workspace_root().join("web"));
        opts.function_env.push((
            "JWT_HEADER".to_owned(),
            "authorization,x-auth-token".to_owned(),
        ));
        opts
    })
}

/// Where [`page_stack`]'s functions log.
pub fn page_watch_log_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-watch.log")
}

fn start_once(
    cell: &'static OnceLock<Result<Stack, String>>,
    options: fn() -> StackOptions,
) -> &'static Stack {
    let started = cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("e2e-stack".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let t = Instant::now();
                    let result = Stack::start(options()).await.map_err(|e| e.to_string());
                    eprintln!("e2e: stack started in {:?}", t.elapsed());
                    let _ = tx.send(result);
                    std::future::pending::<()>().await;
                });
            });
        if let Err(e) = spawned {
            return Err(format!("could not spawn the stack thread: {e}"));
        }
        rx.recv()
            .unwrap_or_else(|_| Err("the stack thread ended before starting the stack".into()))
    });
    match started {
        Ok(stack) => stack,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

/// `cargo lambda watch` runs one instance per function: requests to one function queue.
/// Each test holds the lock of the function it calls, so timing assertions measure the
/// function, not a neighbour's request.
pub async fn lock(function: &str) -> tokio::sync::MutexGuard<'static, ()> {
    static LOCKS: [tokio::sync::Mutex<()>; 3] = [
        tokio::sync::Mutex::const_new(()),
        tokio::sync::Mutex::const_new(()),
        tokio::sync::Mutex::const_new(()),
    ];
    let i = match function {
        OPTION1 => 0,
        OPTION2 => 1,
        OPTION3 => 2,
        other => panic!("unknown function {other}"),
    };
    LOCKS[i].lock().await
}

/// A plain HTTP client (one per test: its connection pool belongs to the test's runtime).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_LIMIT)
        .build()
        .expect("reqwest client")
}

/// An AWS SDK for Lambda client against `endpoint`, with dummy credentials and no retries.
pub fn lambda(endpoint: &str) -> aws_sdk_lambda::Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDE2ETESTCLIENT",
            "e2e-test-secret",
            None,
            None,
            "e2e",
        ))
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// The demo agent's answer to `prompt` in `tokens` tokens, as one text.
pub fn demo_text(prompt: &str, tokens: u64) -> String {
    agentcore_local::demo_text(prompt, tokens).concat()
}

/// A request body `{"prompt": prompt, "demo": demo}` (no `demo` when it is null).
pub fn body(prompt: &str, demo: Value) -> String {
    let mut doc = json!({ "prompt": prompt });
    if !demo.is_null() {
        doc["demo"] = demo;
    }
    doc.to_string()
}

/// A session id AgentCore accepts (33 to 256 characters).
pub fn session_id(tag: &str) -> String {
    format!("e2e-{tag}-{}", uuid::Uuid::new_v4())
}

/// Decoded SSE events: `(event name, data)` in order.
pub async fn sse_events(body: &[u8]) -> Vec<(String, String)> {
    agentcore_core::sse::decode_all(body)
        .await
        .unwrap_or_else(|e| panic!("not SSE: {e}: {}", String::from_utf8_lossy(body)))
        .into_iter()
        .map(|e| (e.event, e.data))
        .collect()
}

/// The text a person reads from the `message` events (JSON-string data decoded).
pub fn events_text(events: &[(String, String)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "message")
        .map(|(_, data)| agentcore_core::sse::event_text(data).into_owned())
        .collect()
}

/// The `error.code` of a JSON error document.
pub fn error_code(body: &[u8]) -> String {
    let doc: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let code = doc["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {doc}"));
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no error.message in {doc}"
    );
    code.to_owned()
}

/// Client-facing text must not leak the runtime ARN or the access key id.
pub fn assert_no_secrets(what: &str, text: &str) {
    assert!(!text.contains("arn:aws"), "{what} leaks an ARN: {text}");
    assert!(
        !text.contains(ACCESS_KEY_ID),
        "{what} leaks the access key id: {text}"
    );
    assert!(
        !text.contains(agentcore_local::DEFAULT_SECRET_ACCESS_KEY),
        "{what} leaks the secret key: {text}"
    );
}

/// One HTTP answer, fully read.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an error answer: status, `error.code`, JSON content type and no secrets.
    pub fn assert_error(&self, what: &str, status: u16, code: &str) {
        assert_eq!(
            (self.status, error_code(&self.body).as_str()),
            (status, code),
            "{what}: {}",
            self.text()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        self.assert_no_secrets(what);
    }

    /// Neither the body nor any header leaks the ARN or credentials.
    pub fn assert_no_secrets(&self, what: &str) {
        assert_no_secrets(what, &self.text());
        for (k, v) in &self.headers {
            assert_no_secrets(&format!("{what}: header {k}"), v);
        }
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Sends an HTTP request and reads the whole answer.
pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = header_pairs(resp.headers());
    let body = resp.bytes().await.expect("body read").to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// A POST of `body` as JSON.
pub fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<String>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.into())
}

/// A body read chunk by chunk, with the arrival time of each chunk.
#[derive(Debug, Default)]
pub struct Timed {
    /// `(time since the request was sent, bytes)`.
    pub chunks: Vec<(Duration, Bytes)>,
}

impl Timed {
    /// All bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks
            .iter()
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }

    /// Arrival of the first non-empty chunk.
    pub fn first(&self) -> Duration {
        self.chunks
            .first()
            .map(|(t, _)| *t)
            .expect("at least one chunk")
    }

    /// Arrival of the last chunk.
    pub fn last(&self) -> Duration {
        self.chunks
            .last()
            .map(|(t, _)| *t)
            .expect("at least one chunk")
    }
}

/// Reads a reqwest body chunk by chunk, stamping each chunk's arrival relative to `sent`.
/// Returns the chunks and the transport error that ended the body, if any.
pub async fn read_timed(resp: reqwest::Response, sent: Instant) -> (Timed, Option<String>) {
    let mut timed = Timed::default();
    let mut stream = resp.bytes_stream();
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) if b.is_empty() => {}
            Ok(b) => timed.chunks.push((sent.elapsed(), b)),
            Err(e) => return (timed, Some(e.to_string())),
        }
    }
    (timed, None)
}

/// A REST v1 proxy event as API Gateway sends it, built from the option's sample event:
/// `headers` replace the sample's headers of the same name (case-insensitively), in both
/// `headers` and `multiValueHeaders`.
pub fn v1_event(method: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let path = local_stack::stack::workspace_root().join("option1-api-gateway/events/invoke.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).expect("sample event is JSON");
    event["httpMethod"] = json!(method);
    event["requestContext"]["httpMethod"] = json!(method);
    event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    for (name, value) in headers {
        for key in ["headers", "multiValueHeaders"] {
            let map: &mut Map<String, Value> = event[key].as_object_mut().expect("headers object");
            map.retain(|k, _| !k.eq_ignore_ascii_case(name));
            let v = if key == "headers" {
                json!(value)
            } else {
                json!([value])
            };
            map.insert((*name).to_owned(), v);
        }
    }
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event["isBase64Encoded"] = json!(false);
    event
}

/// A v1 POST event with a JSON body.
pub fn v1_post(body: &str) -> Value {
    v1_event("POST", &[], Some(body))
}

/// A Function URL (v2) POST event with `body`, from option 2's sample event.
pub fn v2_post(body: &str, base64: bool) -> Value {
    let path = local_stack::stack::workspace_root().join("option2-lambda-url/events/invoke.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).expect("sample event is JSON");
    event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(base64);
    event
}

/// The functions' log (`cargo lambda watch` output).
pub fn watch_log() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-watch.log"))
        .unwrap_or_default()
}

/// Option 1 through `Invoke`: returns the v1 response document's status, headers and body,
/// after checking the document's shape.
pub async fn invoke_option1(event: &Value) -> (Answer, Value) {
    invoke_option1_on(stack(), event).await
}

/// [`invoke_option1`] on the stack `on`.
pub async fn invoke_option1_on(on: &Stack, event: &Value) -> (Answer, Value) {
    let client = lambda(&on.urls().lambda);
    let call = client
        .invoke()
        .function_name(OPTION1)
        .payload(Blob::new(serde_json::to_vec(event).expect("event")))
        .send();
    let out = tokio::time::timeout(REQUEST_LIMIT, call)
        .await
        .expect("Invoke in time")
        .unwrap_or_else(|e| {
            panic!(
                "Invoke failed: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        });
    assert_eq!(out.status_code(), 200, "Invoke API status");
    assert_eq!(out.function_error(), None, "function error");
    let payload = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    let doc: Value = serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!(
            "v1 response is not JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    });
    let status = doc["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode in {doc}"));
    // lambda_http writes every header into `multiValueHeaders` (API Gateway merges both maps).
    let mut headers: Vec<(String, String)> = Vec::new();
    for key in ["headers", "multiValueHeaders"] {
        let map = doc[key]
            .as_object()
            .unwrap_or_else(|| panic!("no {key} object in {doc}"));
        for (name, value) in map {
            let values: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                other => panic!("header {name} is {other} in {doc}"),
            };
            let name = name.to_ascii_lowercase();
            if !headers.iter().any(|(k, _)| *k == name) {
                headers.extend(values.into_iter().map(|v| (name.clone(), v.to_owned())));
            }
        }
    }
    let body = doc["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no body string in {doc}"));
    assert_ne!(
        doc["isBase64Encoded"],
        json!(true),
        "JSON bodies are not base64"
    );
    let answer = Answer {
        status: u16::try_from(status).expect("status"),
        headers,
        body: body.as_bytes().to_vec(),
    };
    (answer, doc)
}

/// What `InvokeWithResponseStream` delivered: the prelude's status and headers, the body
/// chunks with arrival times (relative to the call), and the final `InvokeComplete`'s
/// error code.
#[derive(Debug)]
pub struct Streamed {
    /// Status from the prelude.
    pub status: u16,
    /// Headers from the prelude.
    pub headers: Vec<(String, String)>,
    /// Body chunks after the prelude.
    pub body: Timed,
    /// Whether `InvokeComplete` arrived.
    pub completed: bool,
    /// Its error code.
    pub error_code: Option<String>,
}

impl Streamed {
    /// As a plain answer.
    pub fn answer(&self) -> Answer {
        Answer {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.bytes(),
        }
    }
}

/// Option 3 through `InvokeWithResponseStream` with `event`, read to the end.
pub async fn invoke_option3_stream(event: &Value) -> Streamed {
    invoke_stream(OPTION3, event).await
}

/// A streaming function through `InvokeWithResponseStream` with `event`, read to the end.
pub async fn invoke_stream(function: &str, event: &Value) -> Streamed {
    invoke_stream_on(stack(), function, event).await
}

/// [`invoke_stream`] on the stack `on`.
pub async fn invoke_stream_on(on: &Stack, function: &str, event: &Value) -> Streamed {
    let client = lambda(&on.urls().lambda_streaming);
    let sent = Instant::now();
    let call = client
        .invoke_with_response_stream()
        .function_name(function)
        .payload(Blob::new(serde_json::to_vec(event).expect("event")))
        .send();
    let mut out = tokio::time::timeout(REQUEST_LIMIT, call)
        .await
        .expect("InvokeWithResponseStream in time")
        .unwrap_or_else(|e| {
            panic!(
                "InvokeWithResponseStream failed: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        });
    assert_eq!(
        out.status_code(),
        200,
        "InvokeWithResponseStream API status"
    );
    let mut prelude = PreludeDecoder::default();
    let mut head: Option<(u16, Vec<(String, String)>)> = None;
    let mut body = Timed::default();
    let mut completed = false;
    let mut error_code = None;
    loop {
        let event = tokio::time::timeout(REQUEST_LIMIT, out.event_stream.recv())
            .await
            .expect("event in time")
            .unwrap_or_else(|e| {
                panic!(
                    "event stream failed: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            });
        match event {
            Some(InvokeWithResponseStreamResponseEvent::PayloadChunk(chunk)) => {
                assert!(!completed, "PayloadChunk after InvokeComplete");
                let bytes = chunk.payload().map(|b| b.as_ref()).unwrap_or_default();
                if head.is_some() {
                    if !bytes.is_empty() {
                        body.chunks
                            .push((sent.elapsed(), Bytes::copy_from_slice(bytes)));
                    }
                } else if let Some(parsed) = prelude.push(bytes) {
                    let (status, headers, rest) =
                        parsed.expect("the prelude is JSON followed by 8 NUL bytes");
                    head = Some((status.as_u16(), header_pairs(&headers)));
                    if !rest.is_empty() {
                        body.chunks.push((sent.elapsed(), rest));
                    }
                }
            }
            Some(InvokeWithResponseStreamResponseEvent::InvokeComplete(done)) => {
                completed = true;
                error_code = done.error_code().map(str::to_owned);
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => break,
        }
    }
    let (status, headers) = head.expect("a complete prelude before the end of the stream");
    Streamed {
        status,
        headers,
        body,
        completed,
        error_code,
    }
}

// ---------------------------------------------------------------------------------------
// The bad-input corpus (tests/corpus.rs): its stacks and what must never leak
// ---------------------------------------------------------------------------------------

/// A session token the corpus stack's functions sign with (`AWS_SESSION_TOKEN`): it must
/// appear in no answer and no log line.
pub const SESSION_TOKEN_SENTINEL: &str = "IQoJb3JpZ2luX2VjECORPUSSESSIONTOKENSENTINEL";
/// `UPSTREAM_IDLE_TIMEOUT_MS` of the corpus stacks: short, so a silence mid-stream is
/// tested in seconds.
pub const CORPUS_IDLE_TIMEOUT_MS: u64 = 1_500;
/// The client headers the corpus stacks forward to the agent (`FORWARD_HEADERS`): the
/// 20 AgentCore allows.
pub fn corpus_forward_headers() -> Vec<String> {
    (1..=20).map(|i| format!("x-corpus-{i:02}")).collect()
}

static CORPUS_STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
static OAUTH_STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

/// Where [`corpus_stack`]'s functions log.
pub fn corpus_watch_log_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-watch.log")
}

/// Where [`oauth_stack`]'s functions log.
pub fn oauth_watch_log_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-oauth-watch.log")
}

fn corpus_options(log: std::path::PathBuf) -> StackOptions {
    let mut opts = options();
    opts.log = LogSink::File(log);
    opts.function_env.extend(
        [
            // The most verbose level the templates' LogLevel parameter offers (TRACE is
            // not offered), in the JSON format they set. Locally RUST_LOG wins over the
            // level (telemetry.rs), so it says the same.
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            // `cargo lambda watch` reads RUST_LOG too: its own crates stay at WARN, so
            // that the log is the functions' (which have none of those targets).
            (
                "RUST_LOG",
                "debug,cargo_lambda=warn,cargo_lambda_watch=warn,cargo_lambda_invoke=warn,\
                 watchexec=warn,watchexec_supervisor=warn,watchexec_events=warn,\
                 watchexec_signals=warn,ignore_files=warn,globset=warn,regex_automata=warn"
                    .to_owned(),
            ),
            (
                "UPSTREAM_IDLE_TIMEOUT_MS",
                CORPUS_IDLE_TIMEOUT_MS.to_string(),
            ),
            ("FORWARD_HEADERS", corpus_forward_headers().join(",")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    opts
}

/// The corpus stack: as [`stack`], with the functions logging at DEBUG (JSON) into
/// [`corpus_watch_log_path`], signing with a session token, forwarding 20 client headers
/// and a short idle limit.
pub fn corpus_stack() -> &'static Stack {
    start_once(&CORPUS_STACK, || {
        let mut opts = corpus_options(corpus_watch_log_path());
        opts.function_env.push((
            "AWS_SESSION_TOKEN".to_owned(),
            SESSION_TOKEN_SENTINEL.to_owned(),
        ));
        opts
    })
}

/// A stack in OAuth mode: `agentcore-local` accepts only the bearer token
/// [`agentcore_local::DEFAULT_BEARER_TOKEN`], and the functions forward the caller's
/// `Authorization` (`AGENTCORE_AUTH_MODE=oauth`). Logs at DEBUG into
/// [`oauth_watch_log_path`].
pub fn oauth_stack() -> &'static Stack {
    start_once(&OAUTH_STACK, || {
        let mut opts = corpus_options(oauth_watch_log_path());
        opts.local.auth = agentcore_local::AuthMode::OAuth {
            token: agentcore_local::DEFAULT_BEARER_TOKEN.to_owned(),
        };
        opts.function_env
            .push(("AGENTCORE_AUTH_MODE".to_owned(), "oauth".to_owned()));
        opts
    })
}

/// [`assert_no_secrets`], plus the session token, the OAuth bearer token and each of
/// `sentinels` (a prompt, a fault message, an exception text...).
pub fn assert_no_secrets_or(what: &str, text: &str, sentinels: &[&str]) {
    assert_no_secrets(what, text);
    for secret in [
        SESSION_TOKEN_SENTINEL,
        agentcore_local::DEFAULT_BEARER_TOKEN,
    ]
    .iter()
    .chain(sentinels)
    {
        assert!(
            !text.contains(secret),
            "{what} leaks {secret:?}: {}",
            text.chars().take(2000).collect::<String>()
        );
    }
}

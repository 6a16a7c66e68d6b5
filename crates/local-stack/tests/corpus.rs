//! The bad-input and fault corpus: every case of `tests/corpus/cases.json` sent end to end
//! through the three options, five ways in all:
//!
//! - `o1_gw`: option 1 through the API Gateway emulator (HTTP),
//! - `o1_invoke`: option 1 through `Invoke`, with the REST v1 event the emulator builds,
//! - `o2_url`: option 2 through its Function URL (HTTP),
//! - `o3_gw`: option 3 through the API Gateway emulator (HTTP, streamed),
//! - `o3_stream`: option 3 through `InvokeWithResponseStream`.
//!
//! Each answer is checked against the case's expectation for that way in (status and stable
//! error code; for the streaming options a failure after the first byte is a final
//! `event: error` with a code, or an aborted transfer for an answer that is not an event
//! stream), no byte a client sees carries an ARN, a key, a token, the prompt or upstream
//! text, and the same function then serves a normal request. The functions log at DEBUG,
//! the most verbose level the templates offer, and when the corpus is done no line of their
//! log may carry a credential, a token or the prompt.
//!
//! The cases are data: a new one is a new entry in `cases.json` (see `README` there), no
//! new code. The three options run side by side (one function per lane, each lane holding
//! its function's lock), so the corpus takes about as long as its slowest option.

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::*;
use futures_util::FutureExt;
use serde_json::{json, Value};

/// The word of every corpus prompt that must never come back in an error, nor reach the log.
const PROMPT_SENTINEL: &str = "PROMPTSENTINELq7x2";
/// The text of every injected fault's message (with the ARN and the key id beside it).
const FAULT_SENTINEL: &str = "FAULTSENTINELz9k4";
/// A bearer token the OAuth runtime refuses: it must not leak either.
const WRONG_TOKEN: &str = "WRONGTOKENSENTINELm3p8";
/// A prompt whose sentinel is its 6th word: the demo agent echoes the prompt after
/// `You said:`, so an answer cut before its 8th token never shows it.
const PROMPT: &str = "please answer this question about PROMPTSENTINELq7x2 now";

const ROUTES: [&str; 5] = ["o1_gw", "o1_invoke", "o2_url", "o3_gw", "o3_stream"];

// ---------------------------------------------------------------------------------------
// The corpus file
// ---------------------------------------------------------------------------------------

/// One case of the corpus file.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    class: String,
    /// `corpus` (default) or `oauth`.
    stack: Option<String>,
    method: String,
    /// Appended to the option's URL (a query string, more path).
    path: String,
    /// Request headers in order; a `content-type: application/json` is added unless the
    /// case names one or sets `no_content_type`.
    headers: Vec<(String, Value)>,
    no_content_type: bool,
    /// A string, or parts joined (see [`bytes_of`]).
    body: Option<Value>,
    /// Expectation for every route.
    expect: Expect,
    /// Refinements of `expect`, applied general first: `streaming` (options 2 and 3),
    /// `option1`/`option2`/`option3`, `gateway` (the two emulator routes), a route name.
    refine: BTreeMap<String, Expect>,
    /// Routes to skip, each with the reason.
    skip: BTreeMap<String, String>,
    /// A bound on option 1's peak resident memory while it handles the case (MiB).
    option1_peak_rss_mib: Option<u64>,
}

/// What an answer must be. Every field is optional; `status` defaults to 200.
#[derive(Clone, Debug, Default)]
struct Expect {
    status: Option<u16>,
    /// `error.code` of the JSON error.
    code: Option<String>,
    /// API Gateway's own error: `{"message": ...}`.
    gateway_message: Option<String>,
    /// `200`, then a final `event: error` with this code.
    in_band: Option<String>,
    /// `200`, then the transfer is aborted (an answer that is not an event stream).
    aborted: Option<bool>,
    /// `Retry-After`.
    retry_after: Option<String>,
    /// A `200` answer's text (option 1's `text`, the streamed events' text) contains this.
    contains: Option<String>,
    /// `[name, value]`: the agent received this header (AgentCore's record of the call).
    agent_header: Option<(String, String)>,
}

const CASE_FIELDS: [&str; 14] = [
    "name",
    "class",
    "why",
    "stack",
    "method",
    "path",
    "headers",
    "no_content_type",
    "body",
    "expect",
    "refine",
    "skip",
    "option1_peak_rss_mib",
    "note",
];
const EXPECT_FIELDS: [&str; 8] = [
    "status",
    "code",
    "gateway_message",
    "in_band",
    "aborted",
    "retry_after",
    "contains",
    "agent_header",
];

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

impl Expect {
    fn from_json(what: &str, v: &Value) -> Expect {
        let map = v
            .as_object()
            .unwrap_or_else(|| panic!("{what}: an expectation is an object"));
        for k in map.keys() {
            assert!(
                EXPECT_FIELDS.contains(&k.as_str()),
                "{what}: unknown field {k}"
            );
        }
        Expect {
            status: v["status"].as_u64().map(|s| s as u16),
            code: string(&v["code"]),
            gateway_message: string(&v["gateway_message"]),
            in_band: string(&v["in_band"]),
            aborted: v["aborted"].as_bool(),
            retry_after: string(&v["retry_after"]),
            contains: string(&v["contains"]),
            agent_header: v["agent_header"].as_array().map(|pair| {
                let text = |i: usize| string(&pair[i]).unwrap_or_default();
                (text(0), text(1))
            }),
        }
    }

    /// `over` applied to `self`: a refinement that names a status is a new outcome and
    /// replaces the expectation; one without only overrides the fields it names.
    fn merged(&self, over: &Expect) -> Expect {
        if over.status.is_some() {
            return over.clone();
        }
        Expect {
            status: self.status,
            code: over.code.clone().or_else(|| self.code.clone()),
            gateway_message: over
                .gateway_message
                .clone()
                .or_else(|| self.gateway_message.clone()),
            in_band: over.in_band.clone().or_else(|| self.in_band.clone()),
            aborted: over.aborted.or(self.aborted),
            retry_after: over
                .retry_after
                .clone()
                .or_else(|| self.retry_after.clone()),
            contains: over.contains.clone().or_else(|| self.contains.clone()),
            agent_header: over
                .agent_header
                .clone()
                .or_else(|| self.agent_header.clone()),
        }
    }
}

impl Case {
    fn from_json(v: &Value) -> Case {
        let name = string(&v["name"]).unwrap_or_else(|| panic!("a case without a name: {v}"));
        let map = v.as_object().expect("a case is an object");
        for k in map.keys() {
            assert!(
                CASE_FIELDS.contains(&k.as_str()),
                "{name}: unknown field {k}"
            );
        }
        let groups = |key: &str| -> BTreeMap<String, Value> {
            v[key]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        Case {
            class: string(&v["class"]).unwrap_or_else(|| panic!("{name}: no class")),
            stack: string(&v["stack"]),
            method: string(&v["method"]).unwrap_or_else(|| "POST".to_owned()),
            path: string(&v["path"]).unwrap_or_default(),
            headers: v["headers"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|pair| {
                            let name = pair[0]
                                .as_str()
                                .unwrap_or_else(|| panic!("{name}: a header is [name, value]"));
                            (name.to_owned(), pair[1].clone())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            no_content_type: v["no_content_type"].as_bool().unwrap_or(false),
            body: (!v["body"].is_null()).then(|| v["body"].clone()),
            expect: Expect::from_json(&name, &v["expect"]),
            refine: groups("refine")
                .iter()
                .map(|(k, e)| (k.clone(), Expect::from_json(&name, e)))
                .collect(),
            skip: groups("skip")
                .iter()
                .map(|(k, why)| (k.clone(), string(why).unwrap_or_default()))
                .collect(),
            option1_peak_rss_mib: v["option1_peak_rss_mib"].as_u64(),
            name,
        }
    }
}

fn load() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    doc["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no `cases` array", path.display()))
        .iter()
        .map(Case::from_json)
        .collect()
}

impl Case {
    /// The expectation on `route`: `expect`, refined by the keys that apply, general first.
    fn expect_on(&self, route: &str) -> Expect {
        let option = &route[..2];
        let mut keys = Vec::new();
        if option != "o1" {
            keys.push("streaming".to_owned());
        }
        keys.push(format!("option{}", &option[1..]));
        if route.ends_with("_gw") {
            keys.push("gateway".to_owned());
        }
        keys.push(route.to_owned());
        let mut e = self.expect.clone();
        for k in keys {
            if let Some(over) = self.refine.get(&k) {
                e = e.merged(over);
            }
        }
        e
    }

    fn stack(&self) -> &'static local_stack::Stack {
        match self.stack.as_deref() {
            None | Some("corpus") => corpus_stack(),
            Some("oauth") => oauth_stack(),
            Some(other) => panic!("{}: unknown stack {other}", self.name),
        }
    }
}

/// A case's request, with its placeholders filled in.
struct Request {
    method: http::Method,
    path: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Vec<u8>,
}

fn fill(text: &str, session: &str) -> String {
    text.replace("${prompt}", PROMPT)
        .replace("${session}", session)
        .replace(
            "${fault_message}",
            &format!(
                "{FAULT_SENTINEL}: {} signed by {ACCESS_KEY_ID}",
                agentcore_local::DEFAULT_RUNTIME_ARN
            ),
        )
        .replace("${token}", agentcore_local::DEFAULT_BEARER_TOKEN)
        .replace("${wrong_token}", WRONG_TOKEN)
}

/// The bytes of a body or header value: a string, or a list of parts joined: strings,
/// `{"repeat": TEXT, "times": N}`, `{"bytes": TEXT}` (TEXT with `\xHH` escapes for any
/// byte). Strings take the placeholders of [`fill`].
fn bytes_of(text: &Value, session: &str) -> Vec<u8> {
    let parts = match text {
        Value::String(s) => return fill(s, session).into_bytes(),
        Value::Array(parts) => parts,
        other => panic!("not a text: {other}"),
    };
    let mut out = Vec::new();
    for part in parts {
        match part {
            Value::String(s) => out.extend_from_slice(fill(s, session).as_bytes()),
            Value::Object(p) if p.contains_key("repeat") => {
                let unit = fill(p["repeat"].as_str().expect("repeat text"), session);
                let times = p["times"].as_u64().expect("times") as usize;
                out.extend_from_slice(unit.repeat(times).as_bytes());
            }
            Value::Object(p) if p.contains_key("bytes") => {
                let text = fill(p["bytes"].as_str().expect("bytes text"), session);
                out.extend(
                    agentcore_local::demo::raw_bytes(&text)
                        .unwrap_or_else(|e| panic!("bad bytes {text:?}: {}", e.message)),
                );
            }
            other => panic!("not a part: {other}"),
        }
    }
    out
}

impl Case {
    fn request(&self) -> Request {
        let session = session_id("corpus");
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("{}: header name {name}: {e}", self.name));
            let value = http::HeaderValue::from_bytes(&bytes_of(value, &session))
                .unwrap_or_else(|e| panic!("{}: header {name}: {e}", self.name));
            headers.push((name, value));
        }
        if !self.no_content_type && !headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE) {
            headers.push((
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ));
        }
        Request {
            method: http::Method::from_bytes(self.method.as_bytes()).expect("method"),
            path: self.path.clone(),
            headers,
            body: self
                .body
                .as_ref()
                .map(|b| bytes_of(b, &session))
                .unwrap_or_default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sending a case one way in
// ---------------------------------------------------------------------------------------

/// What came back, whatever the way in.
#[derive(Debug, Default)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The transfer failed after the head (HTTP), or `InvokeComplete` carried an error.
    aborted: bool,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn over_http(client: &reqwest::Client, url: &str, req: &Request) -> Got {
    let mut builder = client.request(req.method.clone(), format!("{url}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if !req.body.is_empty() {
        builder = builder.body(req.body.clone());
    }
    let resp = builder.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (timed, err) = read_timed(resp, Instant::now()).await;
    Got {
        status,
        headers,
        body: timed.bytes(),
        aborted: err.is_some(),
    }
}

/// The REST v1 event API Gateway would send for `req` (the emulator's own builder).
fn v1_event_of(req: &Request, api: &str) -> Value {
    let uri: http::Uri = format!("http://127.0.0.1/{api}/invoke{}", req.path)
        .parse()
        .expect("uri");
    let mut headers = http::HeaderMap::new();
    for (k, v) in &req.headers {
        headers.append(k.clone(), v.clone());
    }
    local_stack::apigw::v1_event(&req.method, &uri, &headers, &req.body)
}

async fn send_case(stack: &local_stack::Stack, route: &str, req: &Request) -> Got {
    let client = http();
    match route {
        "o1_gw" => over_http(&client, &stack.urls().option1, req).await,
        "o2_url" => over_http(&client, &stack.urls().option2, req).await,
        "o3_gw" => over_http(&client, &stack.urls().option3, req).await,
        "o1_invoke" => {
            let (answer, _) = invoke_option1_on(stack, &v1_event_of(req, "option1")).await;
            Got {
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
                aborted: false,
            }
        }
        "o3_stream" => {
            let streamed = invoke_stream_on(stack, OPTION3, &v1_event_of(req, "option3")).await;
            assert!(streamed.completed, "o3_stream: no InvokeComplete");
            Got {
                status: streamed.status,
                aborted: streamed.error_code.is_some(),
                headers: streamed.headers.clone(),
                body: streamed.body.bytes(),
            }
        }
        other => panic!("unknown route {other}"),
    }
}

/// Decodes an event stream as a client does when it ends: a last line ended by a lone CR
/// is complete (a decoder waits for a possible LF after it, and a live stream would send
/// more bytes).
async fn sse_of(body: &[u8]) -> Option<Vec<agentcore_core::sse::Event>> {
    let mut body = body.to_vec();
    if body.ends_with(b"\r") {
        body.push(b'\n');
    }
    agentcore_core::sse::decode_all(&body).await.ok()
}

/// The text of a `200` answer: option 1's `text`, or the streamed events' text.
async fn answer_text(route: &str, got: &Got) -> String {
    if route.starts_with("o1") {
        let doc: Value = serde_json::from_slice(&got.body).unwrap_or_else(|e| {
            panic!(
                "{route}: option 1's answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&got.body)
            )
        });
        return doc["text"].as_str().unwrap_or_default().to_owned();
    }
    if got.header("content-type") != Some("text/event-stream") {
        return String::from_utf8_lossy(&got.body).into_owned();
    }
    match sse_of(&got.body).await {
        Some(events) => events
            .iter()
            .filter(|e| e.event == "message")
            .map(|e| agentcore_core::sse::event_text(&e.data).into_owned())
            .collect(),
        None => String::from_utf8_lossy(&got.body).into_owned(),
    }
}

/// Checks one answer against its expectation; returns what was wrong, if anything.
async fn check(case: &Case, route: &str, expect: &Expect, got: &Got) -> Result<(), String> {
    let what = format!("{} via {route}", case.name);
    let text = String::from_utf8_lossy(&got.body).into_owned();
    let status = expect.status.unwrap_or(200);
    if got.status != status {
        return Err(format!(
            "{what}: status {} (expected {status}): {}",
            got.status,
            text.chars().take(200).collect::<String>().escape_debug()
        ));
    }
    // Nothing a client sees may carry a credential, upstream text or (in an error) the
    // prompt. A complete answer echoes the prompt: that is the demo agent's job.
    let answered = status == 200 && expect.in_band.is_none() && expect.aborted != Some(true);
    let mut sentinels = vec![
        FAULT_SENTINEL,
        WRONG_TOKEN,
        agentcore_local::AGENT_EXCEPTION_TEXT,
        "hunter2",
        "OperationalError",
    ];
    if !answered {
        sentinels.push(PROMPT_SENTINEL);
    }
    let leak = std::panic::catch_unwind(|| {
        assert_no_secrets_or(&what, &text, &sentinels);
        for (k, v) in &got.headers {
            assert_no_secrets_or(&format!("{what}: header {k}"), v, &sentinels);
        }
    });
    if let Err(panic) = leak {
        return Err(panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| format!("{what}: leak")));
    }
    let head_only = case.method == "HEAD" && matches!(route, "o1_gw" | "o2_url" | "o3_gw");
    if let Some(code) = &expect.code {
        if head_only {
            if !got.body.is_empty() {
                return Err(format!("{what}: a HEAD answer with a body"));
            }
        } else {
            let doc: Value = serde_json::from_slice(&got.body)
                .map_err(|e| format!("{what}: error body is not JSON ({e}): {text}"))?;
            let got_code = doc["error"]["code"].as_str().unwrap_or_default();
            if got_code != code {
                return Err(format!(
                    "{what}: code {got_code:?} (expected {code:?}): {text}"
                ));
            }
            if doc["error"]["message"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{what}: no error.message: {text}"));
            }
        }
        if got.header("content-type") != Some("application/json") {
            return Err(format!(
                "{what}: content-type {:?} on a JSON error",
                got.header("content-type")
            ));
        }
    }
    if let Some(message) = &expect.gateway_message {
        let doc: Value = serde_json::from_slice(&got.body)
            .map_err(|e| format!("{what}: gateway error is not JSON ({e}): {text}"))?;
        if doc["message"].as_str() != Some(message) {
            return Err(format!(
                "{what}: gateway said {text} (expected {message:?})"
            ));
        }
    }
    if expect.retry_after.as_deref() != got.header("retry-after") && status != 200 {
        return Err(format!(
            "{what}: Retry-After {:?} (expected {:?})",
            got.header("retry-after"),
            expect.retry_after
        ));
    }
    if let Some(code) = &expect.in_band {
        let events = agentcore_core::sse::decode_all(&got.body)
            .await
            .map_err(|e| format!("{what}: not SSE ({e}): {text}"))?;
        let last = events
            .last()
            .ok_or_else(|| format!("{what}: no event (expected a final error {code})"))?;
        let doc: Value = serde_json::from_str(&last.data).unwrap_or_default();
        if last.event != "error" || doc["error"]["code"].as_str() != Some(code) {
            return Err(format!(
                "{what}: last event {:?} {:?} (expected event: error {code})",
                last.event, last.data
            ));
        }
        let errors = events.iter().filter(|e| e.event == "error").count();
        if errors != 1 {
            return Err(format!("{what}: {errors} error events"));
        }
        if got.aborted {
            return Err(format!("{what}: aborted after its error event"));
        }
    }
    if expect.aborted == Some(true) {
        if !got.aborted {
            return Err(format!("{what}: the transfer was not aborted: {text}"));
        }
        if text.contains("event:") {
            return Err(format!("{what}: an SSE event appended to a non-SSE answer"));
        }
    } else if got.aborted {
        return Err(format!("{what}: the transfer was aborted"));
    }
    if answered && status == 200 && !head_only {
        if expect.in_band.is_none() && route != "o1_gw" && route != "o1_invoke" {
            let events = agentcore_core::sse::decode_all(&got.body).await;
            if let Ok(events) = events {
                if events.iter().any(|e| e.event == "error") {
                    return Err(format!("{what}: an error event in a good answer: {text}"));
                }
            }
        }
        if let Some(part) = &expect.contains {
            let answer = answer_text(route, got).await;
            if !answer.contains(part.as_str()) {
                return Err(format!(
                    "{what}: the answer does not contain {part:?}: {}",
                    answer.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    Ok(())
}

/// After each case the same function must serve a normal request.
async fn check_still_serves(case: &Case, route: &str) -> Result<(), String> {
    let mut headers = vec![("content-type".to_owned(), json!("application/json"))];
    if case.stack.as_deref() == Some("oauth") {
        headers.push(("authorization".to_owned(), json!("Bearer ${token}")));
    }
    let normal = Case {
        name: format!("normal request after {}", case.name),
        method: "POST".to_owned(),
        path: String::new(),
        headers,
        body: Some(json!(
            json!({"prompt": "still there?", "demo": {"tokens": 4}}).to_string()
        )),
        ..case.clone()
    };
    let got = send_case(case.stack(), route, &normal.request()).await;
    let expected = demo_text("still there?", 4);
    if got.status != 200 || answer_text(route, &got).await != expected || got.aborted {
        return Err(format!(
            "{route}: after {}, a normal request got {}: {}",
            case.name,
            got.status,
            String::from_utf8_lossy(&got.body)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Option 1's memory
// ---------------------------------------------------------------------------------------

/// The pid of `function`'s process in `stack`: the one whose environment points at this
/// stack's `agentcore-local` (other stacks of other test binaries run the same binaries).
fn function_pid(stack: &local_stack::Stack, function: &str) -> Option<u32> {
    let endpoint = format!(
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE={}",
        stack.urls().agentcore.as_deref()?
    );
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let exe = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if !String::from_utf8_lossy(exe).ends_with(&format!("/{function}")) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|kv| kv == endpoint.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets `VmHWM` to the current resident set (`clear_refs` 5).
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

// ---------------------------------------------------------------------------------------
// The lanes
// ---------------------------------------------------------------------------------------

/// Runs every case on `routes` (the routes of one function, in order), one after another.
async fn lane(cases: &[Case], function: &str, routes: &[&str]) -> (Vec<String>, usize) {
    let _guard = lock(function).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases {
        for route in routes {
            if case.skip.contains_key(*route) {
                continue;
            }
            let stack = case.stack();
            let expect = case.expect_on(route);
            let pid = case
                .option1_peak_rss_mib
                .filter(|_| function == OPTION1)
                .and_then(|_| function_pid(stack, OPTION1))
                .filter(|pid| reset_peak_rss(*pid));
            let started = Instant::now();
            // A panic in the harness (an answer of the wrong shape) is this case's failure,
            // not the end of the corpus.
            let sent = AssertUnwindSafe(tokio::time::timeout(
                Duration::from_secs(60),
                send_case(stack, route, &case.request()),
            ))
            .catch_unwind()
            .await;
            let elapsed = started.elapsed();
            checked += 1;
            match sent {
                Ok(Ok(got)) => {
                    if let Err(e) = check(case, route, &expect, &got).await {
                        failures.push(e);
                    }
                    if let Some((name, value)) = &expect.agent_header {
                        let session = got.header("x-session-id").unwrap_or_default();
                        let seen = stack
                            .local()
                            .expect("agentcore-local")
                            .requests()
                            .into_iter()
                            .rev()
                            .find(|r| r.session_id.as_deref() == Some(session))
                            .and_then(|r| r.header(name).map(str::to_owned));
                        if seen.as_deref() != Some(value.as_str()) {
                            failures.push(format!(
                                "{} via {route}: the agent got {name}: {seen:?} (expected {value:?})",
                                case.name
                            ));
                        }
                    }
                }
                Ok(Err(_)) => {
                    failures.push(format!("{} via {route}: no answer in 60 s", case.name))
                }
                Err(panic) => failures.push(format!(
                    "{} via {route}: {}",
                    case.name,
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("panicked")
                )),
            }
            if let (Some(pid), Some(bound)) = (pid, case.option1_peak_rss_mib) {
                let peak = peak_rss_kib(pid).unwrap_or_default() / 1024;
                eprintln!(
                    "corpus: {} via {route}: option 1 peak RSS {peak} MiB",
                    case.name
                );
                if peak > bound {
                    failures.push(format!(
                        "{} via {route}: option 1's peak RSS was {peak} MiB (bound {bound} MiB)",
                        case.name
                    ));
                }
            }
            if elapsed > Duration::from_secs(3) {
                eprintln!("corpus: {} via {route} took {elapsed:?}", case.name);
            }
            match AssertUnwindSafe(check_still_serves(case, route))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push(format!(
                    "{route}: after {}, a normal request panicked",
                    case.name
                )),
            }
        }
    }
    (failures, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_end_to_end_on_every_option_and_a_clean_debug_log() {
    // CORPUS_ONLY=<text> runs the cases whose name contains it (while working on one).
    let only = std::env::var("CORPUS_ONLY").unwrap_or_default();
    let cases: Vec<Case> = load()
        .into_iter()
        .filter(|c| c.name.contains(only.as_str()))
        .collect();
    assert!(!cases.is_empty(), "no case matches CORPUS_ONLY={only}");
    let started = Instant::now();
    // Both stacks first (their start is not a case's time).
    std::thread::scope(|s| {
        s.spawn(corpus_stack);
        s.spawn(oauth_stack);
    });
    eprintln!("corpus: stacks ready after {:?}", started.elapsed());
    let run = Instant::now();
    let ((f1, n1), (f2, n2), (f3, n3)) = tokio::join!(
        lane(&cases, OPTION1, &["o1_gw", "o1_invoke"]),
        lane(&cases, OPTION2, &["o2_url"]),
        lane(&cases, OPTION3, &["o3_gw", "o3_stream"]),
    );
    eprintln!(
        "corpus: {} cases, {} answers checked in {:?}",
        cases.len(),
        n1 + n2 + n3,
        run.elapsed()
    );
    let failures: Vec<String> = f1.into_iter().chain(f2).chain(f3).collect();
    assert!(
        failures.is_empty(),
        "{} of {} answers failed:\n{}",
        failures.len(),
        n1 + n2 + n3,
        failures.join("\n")
    );
    assert_clean_logs();
}

// ---------------------------------------------------------------------------------------
// Log hygiene
// ---------------------------------------------------------------------------------------

/// No line of the functions' DEBUG log carries a credential, a token, the prompt or the
/// agent's exception text.
fn assert_clean_logs() {
    for path in [corpus_watch_log_path(), oauth_watch_log_path()] {
        let log =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let what = path.display().to_string();
        let debug_lines = log.lines().filter(|l| l.contains("\"DEBUG\"")).count();
        assert!(
            debug_lines > 0,
            "{what}: no DEBUG line: the functions do not log at DEBUG, so this test proves nothing"
        );
        for (i, line) in log.lines().enumerate() {
            for secret in [
                agentcore_local::DEFAULT_SECRET_ACCESS_KEY,
                SESSION_TOKEN_SENTINEL,
                agentcore_local::DEFAULT_BEARER_TOKEN,
                WRONG_TOKEN,
                PROMPT_SENTINEL,
            ] {
                assert!(
                    !line.contains(secret),
                    "{what}:{}: a log line carries {secret:?}: {}",
                    i + 1,
                    line.chars().take(1000).collect::<String>()
                );
            }
            // The agent's exception text may carry a user's data: the functions log its
            // class and a fingerprint, never the text.
            assert!(
                !line.contains(agentcore_local::AGENT_EXCEPTION_TEXT),
                "{what}:{}: a log line carries the agent's exception text: {line}",
                i + 1
            );
        }
        eprintln!(
            "corpus: {what}: {} lines ({debug_lines} at DEBUG), none with a secret",
            log.lines().count()
        );
    }
}

/// `Debug` of a parsed request never shows the prompt or the token: every case the
/// request model accepts, printed as a log line would print it.
#[test]
fn debug_of_every_accepted_corpus_request_redacts_the_prompt_and_token() {
    let lookup = |oauth: bool| {
        move |k: &str| match k {
            "AGENT_RUNTIME_ARN" => Some(agentcore_local::DEFAULT_RUNTIME_ARN.to_owned()),
            "FORWARD_FIELDS" => Some("demo".to_owned()),
            "FORWARD_HEADERS" => Some(corpus_forward_headers().join(",")),
            "AGENTCORE_AUTH_MODE" if oauth => Some("oauth".to_owned()),
            _ => None,
        }
    };
    let mut accepted = 0;
    for case in load() {
        let oauth = case.stack.as_deref() == Some("oauth");
        let config = agentcore_core::Config::from_lookup(lookup(oauth)).expect("config");
        let req = case.request();
        let mut headers = http::HeaderMap::new();
        for (k, v) in &req.headers {
            headers.append(k.clone(), v.clone());
        }
        let Ok(inv) =
            agentcore_core::request::parse_parts(&req.method, &headers, &req.body, &config)
        else {
            continue;
        };
        accepted += 1;
        let printed = format!("{inv:?}");
        for secret in [
            PROMPT_SENTINEL,
            agentcore_local::DEFAULT_BEARER_TOKEN,
            WRONG_TOKEN,
        ] {
            assert!(
                !printed.contains(secret),
                "{}: Debug shows {secret:?}: {printed}",
                case.name
            );
        }
    }
    assert!(accepted >= 10, "only {accepted} corpus requests parse");
}

/// The corpus is what the issue asks for: at least 60 distinct cases, unique names, and
/// each class it names present.
#[test]
fn the_corpus_has_sixty_distinct_cases_in_every_class() {
    let cases = load();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names repeat");
    for class in [
        "input", "encoding", "header", "method", "fault", "stream", "oauth",
    ] {
        assert!(
            cases.iter().any(|c| c.class == class),
            "no case of class {class}"
        );
    }
    for case in &cases {
        for key in case.refine.keys().chain(case.skip.keys()) {
            assert!(
                ROUTES.contains(&key.as_str())
                    || ["gateway", "streaming", "option1", "option2", "option3"]
                        .contains(&key.as_str()),
                "{}: unknown route or group {key}",
                case.name
            );
        }
    }
}

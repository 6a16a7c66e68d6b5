//! Many requests in one function process (#16): the stack as `make run --max-concurrency 64`
//! starts it, so `cargo lambda watch` runs ONE process per function and each process serves
//! up to 64 invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY=64`, as Lambda Managed
//! Instances set it). 40 paced requests per option, each with its own caller (a JWT of its
//! own) and its own session, are in flight together; every answer, access record, log line
//! and upstream call must belong to its own request.
//!
//! Why through watch and not a hand-made Runtime API: watch 1.9.2's Runtime API hands one
//! process several invocations when it has several `GET /next` pending (its queue is shared
//! by every poller), so `make run` itself can run the functions concurrently; this test is
//! that mode. `local_stack::stack::max_concurrency_env` says how the variable gets past
//! watch, which forces it to 1.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use local_stack::{LogSink, Stack, StackOptions};
use serde_json::{json, Value};

/// Requests per option, all in flight at once.
const PER_OPTION: usize = 40;
/// `AWS_LAMBDA_MAX_CONCURRENCY` of the functions: more than `PER_OPTION`, so none queues.
const MAX_CONCURRENCY: u32 = 64;
/// The demo agent's pacing: each answer takes about `TOKENS * DELAY_MS` = 1.2 s.
const TOKENS: u64 = 12;
const DELAY_MS: u64 = 100;

const OPTIONS: [(&str, &str); 3] = [
    ("option1", "option1-api-gateway"),
    ("option2", "option2-lambda-url"),
    ("option3", "option3-api-gateway-streaming"),
];

/// One request of the test and what came back.
struct Outcome {
    option: &'static str,
    user: String,
    session: String,
    prompt: String,
    status: u16,
    session_header: Option<String>,
    /// The text the client read (option 1: the JSON answer's `text`).
    text: String,
    /// Since the burst started: the first body byte and the end of the body.
    first: Duration,
    end: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_function_serves_forty_requests_at_once_each_with_its_own_identity() {
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("concurrency-watch.log");
    let opts = StackOptions {
        local_port: 0,
        watch_port: 0,
        apigw_port: 0,
        log: LogSink::File(log.clone()),
        end_user_auth: true,
        max_concurrency: MAX_CONCURRENCY,
        integration_timeout: Duration::from_secs(60),
        function_env: vec![
            ("AGENTCORE_MAX_ATTEMPTS".into(), "1".into()),
            // The runtime says at debug level how many pollers it started.
            ("RUST_LOG".into(), "info,lambda_runtime=debug".into()),
        ],
        ..StackOptions::default()
    };
    let stack = Stack::start(opts).await.expect("the local stack starts");
    let issuer = stack.urls().issuer.clone().expect("end-user auth is on");
    let client = reqwest::Client::builder()
        // Each request its own connection, as separate browsers would have.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    let burst = Instant::now();
    let mut tasks = Vec::new();
    for (option, _) in OPTIONS {
        let url = match option {
            "option1" => stack.urls().option1.clone(),
            "option2" => stack.urls().option2.clone(),
            _ => stack.urls().option3.clone(),
        };
        for i in 0..PER_OPTION {
            let user = format!("{option}u{i}");
            let token = agentcore_local::issuer::token_for(&issuer, &user).expect("a token");
            let session = format!("conc-{option}-{i:02}-{}", uuid::Uuid::new_v4());
            let prompt = format!("prompt {option} {i}");
            let body = json!({
                "prompt": prompt,
                "session_id": session,
                "demo": {"tokens": TOKENS, "delay_ms": DELAY_MS},
            });
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {token}"))
                    .body(body.to_string())
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{option} {i}: {e}"));
                let status = resp.status().as_u16();
                let session_header = resp
                    .headers()
                    .get("x-session-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let mut bytes = Vec::new();
                let mut first = None;
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.unwrap_or_else(|e| panic!("{option} {i}: body: {e}"));
                    if !chunk.is_empty() {
                        first.get_or_insert_with(|| burst.elapsed());
                        bytes.extend_from_slice(&chunk);
                    }
                }
                let end = burst.elapsed();
                let text = if option == "option1" {
                    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    doc["text"].as_str().unwrap_or_default().to_owned()
                } else {
                    let events = agentcore_core::sse::decode_all(&bytes[..])
                        .await
                        .unwrap_or_default();
                    events
                        .iter()
                        .filter(|e| e.event == "message")
                        .map(|e| agentcore_core::sse::event_text(&e.data).into_owned())
                        .collect()
                };
                Outcome {
                    option,
                    user,
                    session,
                    prompt,
                    status,
                    session_header,
                    text,
                    first: first.unwrap_or(end),
                    end,
                }
            }));
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("request task"));
    }
    let wall = burst.elapsed();

    // Every answer is its own: its status, its session, the agent's answer to its prompt.
    for o in &outcomes {
        let what = format!("{} {}", o.option, o.session);
        assert_eq!(o.status, 200, "{what}: status");
        assert_eq!(o.session_header.as_deref(), Some(&o.session[..]), "{what}");
        let expected: String = agentcore_local::demo_text(&o.prompt, TOKENS).concat();
        assert_eq!(o.text, expected, "{what}: the answer to another prompt");
    }

    // They ran at the same time, in one process per function. Sequentially, 40 answers of
    // 1.2 s would take 48 s per function.
    let paced = Duration::from_millis(TOKENS * DELAY_MS);
    assert!(
        wall < paced * (PER_OPTION as u32) / 4,
        "120 requests took {wall:?}: they were not served concurrently"
    );
    for (option, _) in OPTIONS {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.option == option).collect();
        // The most streams of this option open at one moment (a first byte already read,
        // the end not yet): a process serving one at a time has at most one.
        let in_flight = mine
            .iter()
            .map(|a| {
                mine.iter()
                    .filter(|b| b.first <= a.first && a.first < b.end)
                    .count()
            })
            .max()
            .unwrap_or(0);
        if option != "option1" {
            assert!(
                in_flight >= PER_OPTION / 2,
                "{option}: at most {in_flight} streams were open at once"
            );
        }
    }

    let text = wait_for_access_records(&log, PER_OPTION * OPTIONS.len()).await;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    for (option, function) in OPTIONS {
        // One process per function: watch started one instance, and the runtime in it
        // started MAX_CONCURRENCY pollers.
        let started = text
            .lines()
            .filter(|l| {
                l.contains("spawning function instance")
                    && l.contains(&format!("function=\"{function}\""))
            })
            .count();
        assert_eq!(started, 1, "{function}: watch started {started} processes");
        let _ = option;
    }
    let pools = lines
        .iter()
        .filter(|l| l["event"] == "runtime_worker_pool_initializing")
        .filter(|l| l["worker_count"] == MAX_CONCURRENCY)
        .count();
    assert_eq!(pools, 3, "each function starts {MAX_CONCURRENCY} pollers");
    assert!(
        !text.contains("running sequentially"),
        "a function ran one invocation at a time"
    );

    // Every access record is its request's: caller and session agree with what that client
    // sent, its log span names the same request and trace, and no id is shared.
    let records: Vec<&Value> = lines.iter().filter(|l| l["message"] == "access").collect();
    let by_session: HashMap<&str, &Outcome> =
        outcomes.iter().map(|o| (o.session.as_str(), o)).collect();
    let mut request_ids = HashSet::new();
    let mut trace_ids = HashSet::new();
    let mut ours = 0;
    for r in &records {
        let request_id = r["request_id"].as_str().unwrap_or_default();
        let trace_id = r["trace_id"].as_str().unwrap_or_default();
        // A stream's record is written when its body ends, outside the invocation's span;
        // the others within it, and then the span must name the same request.
        if !r["span"].is_null() {
            assert_eq!(r["span"]["requestId"], request_id, "{r}");
            assert_eq!(r["span"]["xrayTraceId"], trace_id, "{r}");
        }
        assert!(request_ids.insert(request_id.to_owned()), "shared: {r}");
        assert!(trace_ids.insert(trace_id.to_owned()), "shared: {r}");
        let Some(o) = by_session.get(r["session_id"].as_str().unwrap_or_default()) else {
            continue;
        };
        ours += 1;
        assert_eq!(r["option"], o.option, "{r}");
        assert!(
            r["caller"]
                .as_str()
                .is_some_and(|c| c.contains(&format!("user-{}", o.user))),
            "{} sent by {} recorded as {}",
            o.session,
            o.user,
            r["caller"]
        );
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["outcome"], "complete", "{r}");
        assert_eq!(r["cold_start"], false, "{r}");
    }
    assert_eq!(ours, outcomes.len(), "one access record per request");
    // The process's first request (the stack's readiness probe) is its only cold start.
    for (option, _) in OPTIONS {
        let cold = records
            .iter()
            .filter(|r| r["option"] == option && r["cold_start"] == true)
            .count();
        assert_eq!(cold, 1, "{option}: {cold} cold starts in one process");
    }

    // Each line logged inside a request names the session of that request's access record.
    let session_of: HashMap<&str, &str> = records
        .iter()
        .filter_map(|r| Some((r["request_id"].as_str()?, r["session_id"].as_str()?)))
        .collect();
    let accepted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request accepted")
        .collect();
    assert!(
        accepted.len() >= 2 * PER_OPTION,
        "options 2 and 3 log each start"
    );
    for l in accepted {
        let request_id = l["span"]["requestId"].as_str().unwrap_or_default();
        assert_eq!(
            session_of.get(request_id).copied(),
            l["session_id"].as_str(),
            "{l}"
        );
    }

    // Upstream: each request reached AgentCore with its own trace id and its own caller.
    let upstream = stack.local().expect("agentcore-local runs").requests();
    for r in records
        .iter()
        .filter(|r| by_session.contains_key(r["session_id"].as_str().unwrap_or_default()))
    {
        let trace_id = r["trace_id"].as_str().unwrap_or_default();
        let calls: Vec<_> = upstream
            .iter()
            .filter(|u| u.header("x-amzn-trace-id") == Some(trace_id))
            .collect();
        assert_eq!(calls.len(), 1, "AgentCore calls with trace {trace_id}");
        let user_id = calls[0]
            .header("x-amzn-bedrock-agentcore-runtime-user-id")
            .unwrap_or_default();
        assert!(
            r["caller"].as_str().is_some_and(|c| c.contains(user_id)) && !user_id.is_empty(),
            "trace {trace_id}: AgentCore saw user {user_id:?}, the record says {}",
            r["caller"]
        );
    }

    stack.shutdown().await;
}

/// The watch log once it holds at least `n` access records of this test (records are
/// written after the last byte, so the last may land just after the client saw the end).
async fn wait_for_access_records(path: &std::path::Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let count = text
            .lines()
            .filter(|l| l.contains("\"message\":\"access\"") && l.contains("conc-option"))
            .count();
        if count >= n || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU time (user + system) of a process so far, in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A concurrent function whose Runtime API is gone (its watcher stopped, or Lambda tore the
/// environment down) must stop, not spin: lambda_runtime 1.5.0's concurrent workers retried
/// `/next` at once, forever, and such a process lived on at 40 % of a core (patched in
/// vendor/lambda_runtime, see its PATCHED.md).
#[tokio::test]
async fn a_concurrent_function_without_its_runtime_api_backs_off_and_exits() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let binary = local_stack::stack::workspace_root().join("target/debug/option2-lambda-url");
    assert!(
        binary.exists(),
        "{} is built first by `make test` (cargo build --bin ...)",
        binary.display()
    );
    let env = local_stack::function_env::local_agent(
        &agentcore_local::LocalConfig::default(),
        "http://127.0.0.1:9",
    );
    let mut child = tokio::process::Command::new(&binary)
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "16")
        .env("AWS_LAMBDA_FUNCTION_NAME", "option2-lambda-url")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the function starts");
    let pid = child.id().expect("a pid");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ticks = cpu_ticks(pid);
    let exit = tokio::time::timeout(Duration::from_secs(40), child.wait()).await;
    // 16 workers that retried at once burned a whole core in 5 s (~500 ticks); backing off,
    // they make a few dozen tries each.
    assert!(
        ticks.is_some_and(|t| t < 100),
        "CPU ticks in the first 5 s without a Runtime API: {ticks:?}"
    );
    let status = exit
        .expect("the function exits within 40 s of losing its Runtime API")
        .expect("an exit status");
    assert!(!status.success(), "it exits with an error: {status}");
}

//! Many paced streams in ONE function process (#16), measured: for each level (1, 16, 256,
//! 1,024 streams at once by default), a fresh function process with
//! `AWS_LAMBDA_MAX_CONCURRENCY` = the level is started under a minimal Lambda Runtime API
//! served here, gets that many Function URL events at once, and relays that many paced
//! streams from an in-process `agentcore-local` (its demo agent stamps each token with the
//! wall-clock microsecond it was written). Reported per level: the process's peak RSS
//! (`VmHWM`), the CPU it used (`/proc/PID/stat`) per stream-second and as a share of one
//! core, the p50/p99 time from the agent writing an event to the Runtime API receiving it
//! (what the function adds, plus one loopback hop), and streams or events that went missing.
//!
//! ```sh
//! cargo build --release --bin option2-lambda-url
//! cargo run --release -p local-stack --example concurrency -- --binary target/release/option2-lambda-url
//! ```
//!
//! A stand-alone program rather than a `make bench` section while crates/bench is being
//! restructured; it uses the same set-up as the bench's harness (the binary under a Runtime
//! API of our own, so that nothing else shares its process).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentcore_local::{LocalConfig, LocalServer};
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

/// Measures one function process serving many paced streams at once.
#[derive(Parser, Debug)]
struct Args {
    /// The function binary (a release build: `cargo build --release --bin option2-lambda-url`).
    #[arg(long, default_value = "target/release/option2-lambda-url")]
    binary: PathBuf,
    /// Streams at once, one level after the other, each in a fresh process.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256,1024")]
    levels: Vec<usize>,
    /// Tokens (SSE events) per stream.
    #[arg(long, default_value_t = 100)]
    tokens: u64,
    /// Pause between two tokens (ms): 100 tokens 100 ms apart is a 10 s answer.
    #[arg(long, default_value_t = 100)]
    delay_ms: u64,
    /// Where the function processes log (stderr and stdout).
    #[arg(long, default_value = "target/concurrency-function.log")]
    log: PathBuf,
    /// More environment for the function, `KEY=VALUE` (e.g. `MALLOC_ARENA_MAX=1`).
    #[arg(long = "env", value_parser = parse_env)]
    extra_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s}: not KEY=VALUE"))
}

/// What the Runtime API saw of one answer.
#[derive(Debug, Default)]
struct Seen {
    events: u64,
    bytes: u64,
    /// Microseconds from the agent's stamp to this side's receipt, one per event.
    latencies_us: Vec<u64>,
    first: Option<Instant>,
    done: Option<Instant>,
    error: Option<String>,
}

struct Pending {
    id: String,
    body: Bytes,
}

struct ApiState {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    answers: Mutex<HashMap<String, oneshot::Sender<Seen>>>,
    first_next: Mutex<Option<oneshot::Sender<()>>>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if !args.binary.is_file() {
        return Err(format!(
            "{} is not a file: build it first (cargo build --release --bin option2-lambda-url)",
            args.binary.display()
        ));
    }
    let local = LocalServer::start(LocalConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..LocalConfig::default()
    })
    .await
    .map_err(|e| format!("agentcore-local: {e}"))?;
    let tick_hz = clock_ticks();
    println!(
        "{} streams of {} events {} ms apart per level; binary {}; machine: {} CPUs, load {}",
        args.levels
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("/"),
        args.tokens,
        args.delay_ms,
        args.binary.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "| streams | peak RSS | idle RSS | CPU per stream-second | CPU busy (share of one core) | event p50 | event p99 | errors | lost events | open fds mid-stream |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &level in &args.levels {
        let row = measure(&args, &local, level, tick_hz).await?;
        println!("{row}");
    }
    local.shutdown().await;
    Ok(())
}

/// Runs one level in a fresh process and returns its table row.
async fn measure(
    args: &Args,
    local: &LocalServer,
    level: usize,
    tick_hz: f64,
) -> Result<String, String> {
    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let (first_tx, first_rx) = oneshot::channel();
    let state = Arc::new(ApiState {
        queue: tokio::sync::Mutex::new(queue_rx),
        answers: Mutex::new(HashMap::new()),
        first_next: Mutex::new(Some(first_tx)),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("Runtime API: {e}"))?;
    let api = listener
        .local_addr()
        .map_err(|e| format!("Runtime API: {e}"))?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("{}: {e}", args.log.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let config = local.config();
    let mut child = tokio::process::Command::new(&args.binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "option2-lambda-url")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_MAX_CONCURRENCY", level.to_string())
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "AGENT_RUNTIME_ARN",
            config
                .runtime_arns
                .first()
                .cloned()
                .unwrap_or_else(|| agentcore_local::DEFAULT_RUNTIME_ARN.to_owned()),
        )
        .env("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", local.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", &config.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &config.secret_access_key)
        .env("AWS_REGION", &config.region)
        .env("FORWARD_FIELDS", "demo")
        .envs(args.extra_env.iter().cloned())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", args.binary.display()))?;
    let pid = child.id().ok_or("the function exited at once")?;
    tokio::time::timeout(Duration::from_secs(30), first_rx)
        .await
        .map_err(|_| "the function never polled /next".to_owned())?
        .map_err(|_| "the Runtime API went away".to_owned())?;
    // Every poller of the process gets to its first /next.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = proc_status_kib(pid, "VmRSS:");

    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut waits = Vec::with_capacity(level);
    for i in 0..level {
        let id = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "prompt": format!("stream {i}"),
            "session_id": format!("concurrency-measure-{i:05}-{}", uuid::Uuid::new_v4()),
            "demo": {"tokens": args.tokens, "delay_ms": args.delay_ms, "stamp": true},
        });
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/",
            "rawQueryString": "",
            "headers": {"content-type": "application/json", "accept": "text/event-stream"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "measure",
                "domainName": "measure.lambda-url.us-east-1.on.aws",
                "domainPrefix": "measure",
                "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "measure"},
                "requestId": id,
                "routeKey": "$default",
                "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000",
                "timeEpoch": 1767225600000u64,
            },
            "body": body.to_string(),
            "isBase64Encoded": false,
        });
        let (tx, rx) = oneshot::channel();
        lock(&state.answers).insert(id.clone(), tx);
        queue_tx
            .send(Pending {
                id,
                body: Bytes::from(event.to_string()),
            })
            .map_err(|_| "the Runtime API queue closed".to_owned())?;
        waits.push(rx);
    }
    // Open sockets and files half-way through the answers (Lambda documents 1,024 file
    // descriptors per execution environment; each stream holds at least two sockets).
    tokio::time::sleep(Duration::from_millis(args.tokens * args.delay_ms / 2)).await;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let threads = proc_status_kib(pid, "Threads:");
    let mut seen = Vec::with_capacity(level);
    let limit = Duration::from_millis(args.tokens * args.delay_ms) * 4 + Duration::from_secs(60);
    for rx in waits {
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(s)) => seen.push(s),
            _ => seen.push(Seen {
                error: Some("no answer".into()),
                ..Seen::default()
            }),
        }
    }
    let wall = started.elapsed();
    let cpu_after = cpu_ticks(pid);
    let peak_rss = proc_status_kib(pid, "VmHWM:");
    let _ = child.kill().await;
    server.abort();

    let cpu_s = (cpu_after.saturating_sub(cpu_before)) as f64 / tick_hz;
    let stream_seconds: f64 = seen
        .iter()
        .filter_map(|s| Some((s.done? - s.first?).as_secs_f64()))
        .sum();
    let mut latencies: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    let errors = seen.iter().filter(|s| s.error.is_some()).count();
    let expected = level as u64 * args.tokens;
    let received: u64 = seen.iter().map(|s| s.events).sum();
    let bytes: u64 = seen.iter().map(|s| s.bytes).sum();
    if let Some(e) = seen.iter().find_map(|s| s.error.as_ref()) {
        eprintln!("level {level}: first error: {e}");
    }
    eprintln!(
        "level {level}: wall {:.1} s, CPU {cpu_s:.2} s, {stream_seconds:.0} stream-seconds, {bytes} body bytes, {received} events, {threads} threads mid-stream",
        wall.as_secs_f64()
    );
    Ok(format!(
        "| {level} | {:.1} MiB | {:.1} MiB | {:.3} ms | {:.1} % | {:.2} ms | {:.2} ms | {errors} | {} | {fds} |",
        peak_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
        if stream_seconds > 0.0 {
            cpu_s * 1000.0 / stream_seconds
        } else {
            f64::NAN
        },
        cpu_s * 100.0 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        expected.saturating_sub(received),
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    if let Some(tx) = lock(&state.first_next).take() {
        let _ = tx.send(());
    }
    let Some(p) = state.queue.lock().await.recv().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let deadline_ms = wall_us() / 1000 + 900_000;
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &p.id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:option2-lambda-url",
        )
        .header(
            "lambda-runtime-trace-id",
            format!(
                "Root=1-{:08x}-{};Sampled=0",
                wall_us() / 1_000_000,
                &p.id.replace('-', "")[..24]
            ),
        )
        .body(Body::from(p.body))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad event"))
}

/// Reads a streamed answer: the prelude (JSON, then 8 NUL bytes), then SSE events whose
/// data is the agent's stamp (`data: "1767225600123456 "`).
async fn response(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> Response {
    let mut seen = Seen::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut stream = body.into_data_stream();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                seen.error = Some(format!("the response body broke: {e}"));
                break;
            }
        };
        let now_us = wall_us();
        buf.extend_from_slice(&chunk);
        if !in_body {
            let Some(at) = buf.windows(8).position(|w| w == [0u8; 8]) else {
                continue;
            };
            buf.drain(..at + 8);
            in_body = true;
        }
        if !buf.is_empty() {
            seen.first.get_or_insert_with(Instant::now);
        }
        seen.bytes += chunk.len() as u64;
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let stamp = text
                .trim()
                .strip_prefix("data: \"")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|digits| digits.parse::<u64>().ok());
            match stamp {
                Some(stamp) => {
                    seen.events += 1;
                    seen.latencies_us.push(now_us.saturating_sub(stamp));
                }
                None => {
                    seen.error = Some(format!("not a stamped event: {text}"));
                }
            }
        }
    }
    seen.done = Some(Instant::now());
    if let Some(tx) = lock(&state.answers).remove(&id) {
        let _ = tx.send(seen);
    }
    plain(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn error(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    if let Some(tx) = lock(&state.answers).remove(&id) {
        let _ = tx.send(Seen {
            error: Some(format!(
                "the function reported an error: {}",
                String::from_utf8_lossy(&body)
            )),
            ..Seen::default()
        });
    }
    plain(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// utime + stime of `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // After ")", field 3 (state) is index 0: utime (14) is index 11, stime (15) index 12.
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// A `/proc/PID/status` line's number (`VmRSS:` and `VmHWM:` in KiB, `Threads:`).
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot be read).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

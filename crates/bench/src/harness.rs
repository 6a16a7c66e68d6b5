//! A minimal Lambda Runtime API, and a function binary run under it.
//!
//! This is the set-up that isolates a handler: the driver starts the release binary itself
//! (so it owns the PID and can read `/proc/PID/*`), serves `GET .../invocation/next` with an
//! event it chose, and timestamps every chunk of the `POST .../invocation/{id}/response`
//! body as it arrives. Nothing else (no `cargo lambda watch`, no `cargo run`) is in the
//! path.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clients::ms;
use crate::observe::Observer;
use anyhow::{bail, Context as _, Result};

/// An invocation's answer as the Runtime API saw it.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The observer, fed with every chunk of the `/response` body as it arrived.
    pub(crate) obs: Observer,
    /// When the body ended.
    pub(crate) done: Instant,
}

/// An event handed to the Runtime API, to be served on the next `/next`.
pub(crate) struct Submitted {
    /// When `/next` answered with the event.
    pub(crate) served: oneshot::Receiver<Instant>,
    /// The answer once its body has ended, or why there is none (the function reported an
    /// error, or the body broke).
    pub(crate) answer: oneshot::Receiver<std::result::Result<Answer, String>>,
}

impl Submitted {
    /// Waits until `deadline` for the event to be served and its answer posted: when `/next`
    /// served it and the answer (or the function's error), or why the stream hung.
    pub(crate) async fn wait(
        self,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<(Instant, std::result::Result<Answer, String>), &'static str> {
        let served = match tokio::time::timeout_at(deadline, self.served).await {
            Ok(Ok(at)) => at,
            Ok(Err(_)) => return Err("the Runtime API stopped before serving the event"),
            Err(_) => return Err("the event was never asked for"),
        };
        match tokio::time::timeout_at(deadline, self.answer).await {
            Ok(Ok(answer)) => Ok((served, answer)),
            Ok(Err(_)) => Err("the answer was never posted"),
            Err(_) => Err("no end within the limit"),
        }
    }
}

/// Where a `/response` body goes: observed inline by the handler that reads it. Handing
/// each chunk to another task instead would cost the driver a cross-thread wake-up per
/// chunk, on the CPU it shares with the agent in the isolated throughput runs.
struct Sink {
    obs: Observer,
    answer: oneshot::Sender<std::result::Result<Answer, String>>,
}

struct Pending {
    id: String,
    body: Bytes,
    served: oneshot::Sender<Instant>,
}

struct ApiState {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    first_next: watch::Sender<Option<Instant>>,
    sinks: Mutex<HashMap<String, Sink>>,
    function_arn: String,
}

/// A running Runtime API for one function process.
pub(crate) struct RuntimeApi {
    addr: std::net::SocketAddr,
    state: Arc<ApiState>,
    queue: mpsc::UnboundedSender<Pending>,
    first_next: watch::Receiver<Option<Instant>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) fn wall_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}

impl RuntimeApi {
    /// Serves the Runtime API on a free port of 127.0.0.1.
    pub(crate) async fn start(function_name: &str) -> Result<Self> {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = watch::channel(None);
        let state = Arc::new(ApiState {
            queue: tokio::sync::Mutex::new(queue_rx),
            first_next: first_tx,
            sinks: Mutex::new(HashMap::new()),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Runtime API on 127.0.0.1:0")?;
        let addr = listener
            .local_addr()
            .context("reading the Runtime API address")?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                eprintln!("bench: Runtime API stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            state,
            queue: queue_tx,
            first_next: first_rx,
            shutdown: Some(tx),
            task,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event (the Lambda event JSON); it is served on the next `/next`, and
    /// `obs` watches its answer.
    pub(crate) fn submit(&self, event: Bytes, obs: Observer) -> Result<Submitted> {
        let id = uuid::Uuid::new_v4().to_string();
        let (answer_tx, answer_rx) = oneshot::channel();
        let (served_tx, served_rx) = oneshot::channel();
        let sink = Sink {
            obs,
            answer: answer_tx,
        };
        match self.state.sinks.lock() {
            Ok(mut sinks) => sinks.insert(id.clone(), sink),
            Err(poisoned) => poisoned.into_inner().insert(id.clone(), sink),
        };
        self.queue
            .send(Pending {
                id,
                body: event,
                served: served_tx,
            })
            .ok()
            .context("the Runtime API queue is closed")?;
        Ok(Submitted {
            served: served_rx,
            answer: answer_rx,
        })
    }

    /// Waits for the first `GET /next` and returns when it arrived.
    async fn first_next(&mut self) -> Option<Instant> {
        let seen = self.first_next.wait_for(Option::is_some).await.ok()?;
        *seen
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Long-polling `/next` requests of a killed process never finish on their own.
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let now = Instant::now();
    state.first_next.send_if_modified(|v| {
        if v.is_none() {
            *v = Some(now);
            true
        } else {
            false
        }
    });
    let pending = state.queue.lock().await.recv().await;
    let Some(p) = pending else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 900_000)
        .unwrap_or_default();
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &p.id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", &state.function_arn)
        .header(
            "lambda-runtime-trace-id",
            "Root=1-67891233-abcdef012345678912345678;Parent=0123456789abcdef;Sampled=0",
        )
        .body(Body::from(p.body));
    let _ = p.served.send(Instant::now());
    response.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad event"))
}

fn take_sink(state: &ApiState, id: &str) -> Option<Sink> {
    match state.sinks.lock() {
        Ok(mut sinks) => sinks.remove(id),
        Err(poisoned) => poisoned.into_inner().remove(id),
    }
}

async fn response(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> Response {
    let mut sink = take_sink(&state, &id);
    let debug_chunks = std::env::var_os("BENCH_DEBUG_CHUNKS").is_some();
    let mut stream = body.into_data_stream();
    while let Some(item) = stream.next().await {
        let bytes = match item {
            Ok(bytes) => bytes,
            Err(e) => {
                if let Some(sink) = sink {
                    let _ = sink.answer.send(Err(format!("response body broke: {e}")));
                }
                return plain(StatusCode::BAD_REQUEST, "body error");
            }
        };
        let Some(s) = &mut sink else { continue };
        let at = Instant::now();
        if debug_chunks {
            let since = s.obs.first_chunk.map_or(0.0, |first| ms(at - first));
            eprintln!("bench: chunk +{since:.3} ms, {} bytes", bytes.len());
        }
        if let Err(e) = s.obs.feed(at, wall_us(), &bytes) {
            if let Some(s) = sink.take() {
                let _ = s.answer.send(Err(format!("{e:#}")));
            }
        }
    }
    if let Some(s) = sink {
        let _ = s.answer.send(Ok(Answer {
            obs: s.obs,
            done: Instant::now(),
        }));
    }
    plain(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn error(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    if let Some(sink) = take_sink(&state, &id) {
        let _ = sink.answer.send(Err(format!(
            "the function reported {kind}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    plain(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn init_error(body: Bytes) -> Response {
    eprintln!(
        "bench: the function reported an init error: {}",
        String::from_utf8_lossy(&body)
    );
    plain(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

async fn unknown(uri: axum::http::Uri) -> Response {
    eprintln!("bench: unexpected Runtime API call {uri}");
    plain(StatusCode::NOT_FOUND, "not found")
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r
}

/// A function binary running under its own [`RuntimeApi`].
pub(crate) struct FunctionProcess {
    child: Child,
    pid: u32,
    api: RuntimeApi,
    /// Just before `spawn`.
    pub(crate) spawned: Instant,
    /// The first `GET /next`.
    pub(crate) ready: Instant,
}

impl FunctionProcess {
    /// Starts `binary` with the Lambda environment plus `env`, optionally queues `first`
    /// (so it is served on the very first `/next`), and waits for the first `/next`.
    pub(crate) async fn spawn(
        binary: &Path,
        name: &str,
        env: &[(String, String)],
        log: &Path,
        first: Option<(Bytes, Observer)>,
    ) -> Result<(Self, Option<Submitted>)> {
        let mut api = RuntimeApi::start(name).await?;
        let submitted = match first {
            Some((event, obs)) => Some(api.submit(event, obs)?),
            None => None,
        };
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the function log {}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .with_context(|| format!("opening the function log {}", log.display()))?;
        // Diagnosis only: BENCH_FUNCTION_WRAPPER="strace -f -tt -o /tmp/trace" runs the
        // function under a wrapper (the PID, and so /proc readings, are then the wrapper's).
        let wrapper: Vec<String> = std::env::var("BENCH_FUNCTION_WRAPPER")
            .map(|w| w.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        // A clean environment, like Lambda's: nothing of the caller's AWS set-up leaks in.
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("AWS_LAMBDA_RUNTIME_API", api.host_port())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2025/01/01/[1]00000000000000000000000000000000",
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited before its PID was read"))?;
        let ready = tokio::select! {
            ready = api.first_next() => ready.context("the Runtime API stopped")?,
            status = child.wait() => {
                bail!(
                    "{name} exited before asking for an event ({}); see {}",
                    status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    log.display()
                );
            }
            () = tokio::time::sleep(Duration::from_secs(20)) => {
                let _ = child.kill().await;
                bail!("{name} did not ask for an event within 20 s; see {}", log.display());
            }
        };
        Ok((
            Self {
                child,
                pid,
                api,
                spawned,
                ready,
            },
            submitted,
        ))
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Queues an event; `obs` watches its answer.
    pub(crate) fn submit(&self, event: Bytes, obs: Observer) -> Result<Submitted> {
        self.api.submit(event, obs)
    }

    /// Kills the process (SIGKILL) and stops its Runtime API.
    pub(crate) async fn kill(mut self) {
        if std::env::var_os("BENCH_FUNCTION_WRAPPER").is_some() {
            // Let a wrapper (valgrind, strace) write its output: SIGTERM, then wait.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status();
            let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        }
        let _ = self.child.kill().await;
        self.api.shutdown().await;
    }
}

/// Peak resident set size (`VmHWM`) of a process, in bytes.
pub(crate) fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .with_context(|| format!("no VmHWM line in {path}"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("parsing {line:?} in {path}"))?;
    Ok(kb * 1024)
}

/// Sums a number read from `/proc/PID/task/*/FILE` over the live threads of a process.
/// A thread that ended since the directory was read is skipped (its share is gone).
fn sum_over_threads(pid: u32, file: &str, read: impl Fn(&str) -> Option<u64>) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry
            .with_context(|| format!("reading {dir}"))?
            .path()
            .join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += read(&text).with_context(|| format!("unexpected format of {}", path.display()))?;
    }
    Ok(total)
}

/// CPU time a process has spent on a CPU so far, summed over its live threads, to the
/// nanosecond (`schedstat`, first field). `/proc/PID/stat`'s utime and stime count 10 ms
/// clock ticks, too coarse for an answer that streams in ~50 ms.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let ns = sum_over_threads(pid, "schedstat", |stat| {
        stat.split_whitespace().next()?.parse().ok()
    })?;
    Ok(Duration::from_nanos(ns))
}

/// Times the threads of a process have given up their CPU so far (voluntary context
/// switches: blocking on a socket, a futex, epoll), summed over its live threads.
pub(crate) fn voluntary_switches(pid: u32) -> Result<u64> {
    sum_over_threads(pid, "status", |status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse()
            .ok()
    })
}

/// Restricts every thread of process `pid` to the CPUs in `cpus` (a `taskset` list such
/// as `0` or `0-1`). Threads it starts later inherit the mask.
pub(crate) fn pin(pid: u32, cpus: &str) -> Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin PID {pid} to CPUs {cpus}: {status}");
    }
    Ok(())
}

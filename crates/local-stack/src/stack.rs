//! Starting and stopping the whole local system: `agentcore-local` (in process),
//! `cargo lambda watch` serving the three functions (a child process group), and the
//! API Gateway REST emulator (in process).
//!
//! `cargo lambda watch` runs each function with `cargo run --bin F`, so the functions are
//! built here first, one `cargo build` for the three binaries, and its first invocation
//! does not stall on a compile. That build and each `cargo run --bin F` resolve the same
//! features as `make run`'s and `make test`'s builds, so none of them compiles a dependency
//! a second time (the root Cargo.toml says how the graph is kept that way). The child is
//! tied to this process by a lifeline: it reads our end of a pipe, and when this process
//! goes away, however it dies, the pipe closes and the whole process group is terminated,
//! so no function process is left behind.
//!
//! With [`StackOptions::progress`], starting prints one line per step on stderr
//! (`building functions`, `starting AgentCore local`, `starting functions`, `ready`) and,
//! on a terminal, a status line that moves while cargo compiles; nothing else, so the
//! watcher's own output belongs in a [`LogSink::File`].

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentcore_local::{LocalConfig, LocalServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::apigw::{ApiGateway, ApiGatewayConfig};
use crate::lambda_shim::LambdaShim;

/// The three functions, named as their binaries (and as `cargo lambda watch` serves them).
pub const FUNCTIONS: [&str; 3] = [
    "option1-api-gateway",
    "option2-lambda-url",
    "option3-api-gateway-streaming",
];

/// What the functions talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `agentcore-local` with its built-in demo agent.
    Demo,
    /// `agentcore-local` forwarding to an agent container at this URL.
    Proxy(String),
    /// A real AgentCore runtime: `AGENT_RUNTIME_ARN` and AWS credentials come from the
    /// environment, and no endpoint override is set.
    Real,
}

/// Where the output of `cargo lambda watch` (and so the functions' logs) goes.
#[derive(Clone, Debug)]
pub enum LogSink {
    /// This process's stdout and stderr.
    Inherit,
    /// A file (created or truncated).
    File(PathBuf),
    /// A file (created or truncated), and one compact line per request on this process's
    /// stdout, made from the functions' access records (`make run`; see [`crate::access_log`]).
    FileWithAccessLines(PathBuf),
}

/// How to start the stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// `agentcore-local` port (0 picks a free one).
    pub local_port: u16,
    /// `cargo lambda watch` port (0 picks a free one).
    pub watch_port: u16,
    /// API Gateway emulator port (0 picks a free one).
    pub apigw_port: u16,
    /// What the functions call.
    pub upstream: Upstream,
    /// Origin for CORS (handler responses and the gateway's preflight answers).
    pub cors_allow_origin: Option<String>,
    /// Extra environment for the functions (`KEY`, `VALUE`), after the stack's own.
    pub function_env: Vec<(String, String)>,
    /// Build and run the functions in release mode.
    pub release: bool,
    /// Where watch output goes.
    pub log: LogSink,
    /// Settings for the in-process `agentcore-local`.
    pub local: LocalConfig,
    /// Buffered integration timeout of the gateway emulator.
    pub integration_timeout: Duration,
    /// Print one line per step on stderr, and a moving status line on a terminal while the
    /// functions compile, in place of cargo's own messages (`make run`). Off, the function
    /// build is `cargo build --quiet` and nothing is printed (tests, benchmarks).
    pub progress: bool,
    /// End-user authentication against `agentcore-local`'s OIDC issuer: the functions
    /// verify JWTs (`CALLER_IDENTITY=jwt`, claims forwarded to the agent) and the API
    /// Gateway emulator runs a Cognito user pool authorizer. Off: anonymous callers.
    pub end_user_auth: bool,
    /// Serve the browser page from this folder (the workspace's `web/`) on the API Gateway
    /// emulator's address, with its sign-in helper and the edge in front of option 2.
    pub web_dir: Option<PathBuf>,
    /// How many invocations each function process serves at once
    /// (`AWS_LAMBDA_MAX_CONCURRENCY`, as Lambda Managed Instances set it). 1, the default, is
    /// on-demand Lambda's one at a time. See [`max_concurrency_env`] for how it reaches the
    /// functions under `cargo lambda watch`.
    pub max_concurrency: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            local_port: 8787,
            watch_port: 9000,
            apigw_port: 3000,
            upstream: Upstream::Demo,
            cors_allow_origin: None,
            function_env: Vec::new(),
            release: false,
            log: LogSink::Inherit,
            local: LocalConfig::default(),
            integration_timeout: crate::apigw::INTEGRATION_TIMEOUT,
            progress: false,
            end_user_auth: false,
            web_dir: None,
            max_concurrency: 1,
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// `cargo-lambda` is not installed where we look.
    #[error("cargo-lambda was not found on PATH or in .venv/bin: run `make setup` (it installs the pinned version into .venv)")]
    CargoLambdaMissing,
    /// Building the functions failed.
    #[error("building the functions failed ({0}): see the compiler output above")]
    BuildFailed(String),
    /// A port could not be bound.
    #[error("could not listen on {addr}: {source}. Is another `make run` still running? Pick other ports with --local-port/--watch-port/--apigw-port")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A child process could not be started.
    #[error("could not start {what}: {source}")]
    Spawn {
        /// The program.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The functions did not answer in time.
    #[error("{0} did not become ready in time: check the functions' log (the watch log named above, or the output above with --verbose; AGENT_RUNTIME_ARN and credentials when using a real runtime)")]
    NotReady(String),
    /// `AGENT_RUNTIME_ARN` is needed for a real runtime.
    #[error("AGENT_RUNTIME_ARN must be set to use a real AgentCore runtime")]
    MissingRuntimeArn,
}

/// The URLs of a running stack.
#[derive(Clone, Debug)]
pub struct Urls {
    /// `agentcore-local`, when it runs.
    pub agentcore: Option<String>,
    /// The Lambda `Invoke` API (the shim in front of `cargo lambda watch`, with Lambda's
    /// payload limits).
    pub lambda: String,
    /// The Lambda API endpoint that serves `InvokeWithResponseStream`.
    pub lambda_streaming: String,
    /// Option 1 through the local API Gateway.
    pub option1: String,
    /// Option 2's Function URL.
    pub option2: String,
    /// Option 3 through the local API Gateway.
    pub option3: String,
    /// The local OIDC issuer, when end-user authentication is on (`GET {issuer}/token?user=`
    /// mints a token).
    pub issuer: Option<String>,
    /// The browser page, when the stack serves it.
    pub page: Option<String>,
}

/// A running stack. Stop it with [`Stack::shutdown`]; dropping it also ends the child
/// process group (through the lifeline).
pub struct Stack {
    local: Option<LocalServer>,
    watch: WatchProcess,
    shim: LambdaShim,
    apigw: ApiGateway,
    urls: Urls,
}

impl Stack {
    /// Builds the functions, starts every part, and waits until each function has
    /// answered one request.
    pub async fn start(opts: StackOptions) -> Result<Self, StackError> {
        let started = Instant::now();
        let steps = Steps(opts.progress);
        let cargo_lambda = find_cargo_lambda().ok_or(StackError::CargoLambdaMissing)?;
        steps.line(1, "building functions");
        build_functions(opts.release, opts.progress).await?;

        let mut env: Vec<(String, String)> = vec![
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ];
        let local = match &opts.upstream {
            Upstream::Real => {
                steps.line(
                    2,
                    "starting AgentCore local: skipped, the functions call the real runtime in AGENT_RUNTIME_ARN",
                );
                let arn = std::env::var("AGENT_RUNTIME_ARN")
                    .map_err(|_| StackError::MissingRuntimeArn)?;
                env.push(("AGENT_RUNTIME_ARN".into(), arn));
                None
            }
            upstream => {
                let mut config = opts.local.clone();
                config.listen = SocketAddr::from(([127, 0, 0, 1], opts.local_port));
                if let Upstream::Proxy(url) = upstream {
                    config.agent_url = Some(url.clone());
                }
                steps.line(
                    2,
                    &match &config.agent_url {
                        Some(url) => format!("starting AgentCore local, forwarding to {url}"),
                        None => "starting AgentCore local with its demo agent".to_owned(),
                    },
                );
                let server = LocalServer::start(config.clone()).await.map_err(|source| {
                    StackError::Bind {
                        addr: format!("127.0.0.1:{}", opts.local_port),
                        source,
                    }
                })?;
                let arn = config
                    .runtime_arns
                    .first()
                    .cloned()
                    .unwrap_or_else(|| agentcore_local::DEFAULT_RUNTIME_ARN.to_owned());
                env.extend([
                    ("AGENT_RUNTIME_ARN".into(), arn),
                    (
                        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE".into(),
                        server.endpoint_url(),
                    ),
                    ("AWS_ACCESS_KEY_ID".into(), config.access_key_id.clone()),
                    (
                        "AWS_SECRET_ACCESS_KEY".into(),
                        config.secret_access_key.clone(),
                    ),
                    ("AWS_REGION".into(), config.region.clone()),
                    // The demo agent's knobs travel in the payload's `demo` field.
                    ("FORWARD_FIELDS".into(), "demo".into()),
                ]);
                if opts.end_user_auth {
                    env.extend([
                        ("CALLER_IDENTITY".into(), "jwt".into()),
                        (
                            "JWT_ISSUER".into(),
                            agentcore_local::issuer::issuer_url(&server.endpoint_url()),
                        ),
                        (
                            "JWT_AUDIENCE".into(),
                            agentcore_local::issuer::AUDIENCE.into(),
                        ),
                        (
                            "FORWARD_CLAIMS".into(),
                            "sub,email,cognito:groups,custom:tenant".into(),
                        ),
                        ("RUNTIME_USER_ID".into(), "true".into()),
                    ]);
                }
                Some(server)
            }
        };
        if let Some(origin) = &opts.cors_allow_origin {
            env.push(("CORS_ALLOW_ORIGIN".into(), origin.clone()));
        }
        env.extend(opts.function_env.iter().cloned());
        env.extend(max_concurrency_env(opts.max_concurrency));

        let watch_port = pick_port(opts.watch_port)?;
        steps.line(
            3,
            &match &opts.log {
                LogSink::Inherit => format!(
                    "starting functions: cargo lambda watch on 127.0.0.1:{watch_port} (its output follows)"
                ),
                LogSink::File(path) | LogSink::FileWithAccessLines(path) => format!(
                    "starting functions: cargo lambda watch on 127.0.0.1:{watch_port}, log in {}",
                    display_path(path)
                ),
            },
        );
        let watch = WatchProcess::spawn(&cargo_lambda, watch_port, &env, opts.release, &opts.log)?;
        let lambda = format!("http://127.0.0.1:{watch_port}");

        let shim = LambdaShim::start(SocketAddr::from(([127, 0, 0, 1], 0)), lambda.clone())
            .await
            .map_err(|source| StackError::Bind {
                addr: "127.0.0.1:0".into(),
                source,
            })?;
        // Both Lambda APIs go through the shim: it enforces Lambda's payload limits on
        // `Invoke` and serves `InvokeWithResponseStream` (see `lambda_shim`).
        let mut gw_config = ApiGatewayConfig::standard(
            SocketAddr::from(([127, 0, 0, 1], opts.apigw_port)),
            shim.endpoint_url(),
            shim.endpoint_url(),
        );
        gw_config.cors_allow_origin = opts.cors_allow_origin.clone();
        let issuer = match (&local, opts.end_user_auth) {
            (Some(server), true) => {
                Some(agentcore_local::issuer::issuer_url(&server.endpoint_url()))
            }
            _ => None,
        };
        gw_config.cognito_issuer = issuer.clone();
        gw_config.integration_timeout = opts.integration_timeout;
        gw_config.page = opts.web_dir.clone().map(|dir| crate::apigw::PageConfig {
            dir,
            option2_url: format!("{lambda}/lambda-url/option2-lambda-url/"),
            issuer: gw_config.cognito_issuer.clone(),
        });
        let apigw = ApiGateway::start(gw_config)
            .await
            .map_err(|source| StackError::Bind {
                addr: format!("127.0.0.1:{}", opts.apigw_port),
                source,
            })?;
        let gw = format!("http://{}", apigw.addr());
        let urls = Urls {
            agentcore: local.as_ref().map(LocalServer::endpoint_url),
            option1: format!("{gw}/option1/invoke"),
            option2: format!("{lambda}/lambda-url/option2-lambda-url/"),
            option3: format!("{gw}/option3/invoke"),
            lambda: shim.endpoint_url(),
            lambda_streaming: shim.endpoint_url(),
            issuer,
            page: opts.web_dir.as_ref().map(|_| format!("{gw}/")),
        };
        let stack = Self {
            local,
            watch,
            shim,
            apigw,
            urls,
        };
        stack.wait_ready(opts.progress).await?;
        steps.line(
            4,
            &format!(
                "ready: every function answered ({:.1} s)",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(stack)
    }

    /// The URLs.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The in-process `agentcore-local`, when it runs.
    pub fn local(&self) -> Option<&LocalServer> {
        self.local.as_ref()
    }

    /// Waits until `cargo lambda watch` accepts connections and every function has answered
    /// a request (a `GET`, which each handler refuses with 405 without calling the agent).
    async fn wait_ready(&self, progress: bool) -> Result<(), StackError> {
        let mut status_line = StatusLine::new();
        let result = self.wait_each(progress, &mut status_line).await;
        status_line.clear();
        result
    }

    async fn wait_each(
        &self,
        progress: bool,
        status_line: &mut StatusLine,
    ) -> Result<(), StackError> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        for (name, url) in [
            ("option2-lambda-url", self.urls.option2.as_str()),
            ("option1-api-gateway", self.urls.option1.as_str()),
            ("option3-api-gateway-streaming", self.urls.option3.as_str()),
        ] {
            if progress {
                status_line.show(&format!("waiting for {name} to answer"));
            }
            loop {
                if tokio::time::Instant::now() > deadline {
                    return Err(StackError::NotReady(name.to_owned()));
                }
                match client
                    .get(url)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                {
                    // The body is read to the end: a response dropped unread closes the
                    // connection early, and watch then cuts the function's Runtime API call,
                    // which makes the function exit (and watch does not restart it).
                    Ok(resp) if resp.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED => {
                        let _ = resp.bytes().await;
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        Ok(())
    }

    /// Stops everything this stack started and waits for the child processes to exit.
    pub async fn shutdown(self) {
        self.apigw.shutdown().await;
        self.shim.shutdown().await;
        self.watch.stop().await;
        if let Some(local) = self.local {
            local.shutdown().await;
        }
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pinned `cargo-lambda` in the project's `.venv/bin` (what `make` installs), or else the
/// first `cargo-lambda` on PATH.
///
/// Hand-written rather than the `which` crate: the pinned copy must win over PATH, which
/// `which` would not know, and the rest is a five-line PATH walk on the one OS this runs
/// on; the crate would add its own dependencies to every build of the stack for it. Both
/// the stack and the benchmark use this one function.
pub fn find_cargo_lambda() -> Option<PathBuf> {
    let venv = workspace_root().join(".venv/bin/cargo-lambda");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("cargo-lambda"))
            .find(|p| p.is_file())
    })
}

/// Builds the three function binaries exactly as `cargo lambda watch` will run them, so its
/// `cargo run` finds them fresh.
///
/// With `progress`, cargo's messages are read here rather than shown: on a terminal one
/// status line moves with them (`compiling tokio ...`), and they are printed in full only
/// if the build fails. Without it, the build is `--quiet`.
pub async fn build_functions(release: bool, progress: bool) -> Result<(), StackError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).arg("build");
    if release {
        cmd.arg("--release");
    }
    for f in FUNCTIONS {
        cmd.arg("--bin").arg(f);
    }
    let spawn_error = |source| StackError::Spawn {
        what: "cargo build",
        source,
    };
    if !progress {
        let status = cmd.arg("--quiet").status().await.map_err(spawn_error)?;
        return if status.success() {
            Ok(())
        } else {
            Err(StackError::BuildFailed(status.to_string()))
        };
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let mut status_line = StatusLine::new();
    let mut output = Vec::new();
    let mut compiled = 0usize;
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let text = line.trim();
            if let Some(what) = text.strip_prefix("Compiling ") {
                compiled += 1;
                // "tokio v1.54.1", without a workspace member's "(/path/to/it)".
                let what = what.split(" (").next().unwrap_or(what);
                status_line.show(&format!("compiling crate {compiled}: {what}"));
            } else if text.starts_with("Blocking") {
                // Another cargo holds the build directory (a second stack, an IDE, a test).
                status_line.show(text);
            }
            output.push(line);
        }
    }
    let status = child.wait().await.map_err(spawn_error)?;
    status_line.clear();
    if status.success() {
        Ok(())
    } else {
        let mut err = std::io::stderr().lock();
        for line in &output {
            let _ = writeln!(err, "{line}");
        }
        Err(StackError::BuildFailed(status.to_string()))
    }
}

/// The environment that makes the functions under `cargo lambda watch` serve `n`
/// invocations at once per process (nothing for 1).
///
/// `cargo lambda watch` 1.9.2 sets `AWS_LAMBDA_MAX_CONCURRENCY=1` on every function it
/// starts, after the environment it was given, so the variable cannot simply be passed
/// through (its `--concurrency` starts more processes instead, which is not what Managed
/// Instances do). Its Runtime API does serve one process several invocations at once: each
/// pending `GET /next` takes the next queued event. So the variable is set one step later:
/// watch starts a function with `cargo run --bin F`, and cargo runs the binary through the
/// host's `target.<triple>.runner`, here `env AWS_LAMBDA_MAX_CONCURRENCY=n`, given to cargo
/// as `CARGO_TARGET_<TRIPLE>_RUNNER`. A runner changes how the binary is started, not how it
/// is built: no crate is compiled again.
pub fn max_concurrency_env(n: u32) -> Vec<(String, String)> {
    if n <= 1 {
        return Vec::new();
    }
    let mut env = vec![("AWS_LAMBDA_MAX_CONCURRENCY".to_owned(), n.to_string())];
    if let Some(triple) = host_triple() {
        let var = format!(
            "CARGO_TARGET_{}_RUNNER",
            triple.to_ascii_uppercase().replace(['-', '.'], "_")
        );
        env.push((var, format!("env AWS_LAMBDA_MAX_CONCURRENCY={n}")));
    }
    env
}

/// The host's target triple, from `rustc -vV` (the toolchain cargo uses).
fn host_triple() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-vV").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|t| t.trim().to_owned())
}

/// The step lines of a start with progress.
struct Steps(bool);

impl Steps {
    fn line(&self, n: u8, text: &str) {
        if self.0 {
            eprintln!("[{n}/4] {text}");
        }
    }
}

/// One line on a terminal's stderr, rewritten in place; nothing when stderr is not a
/// terminal (a log file gets the step lines only).
struct StatusLine {
    tty: bool,
    shown: bool,
}

impl StatusLine {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, text: &str) {
        if !self.tty {
            return;
        }
        // Short enough for an 80-column terminal, so the line never wraps.
        let text: String = text.chars().take(72).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K      {text}");
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

/// `path` relative to the current directory when it is below it, as a person would type it.
pub fn display_path(path: &Path) -> String {
    // The file may not exist yet: resolve its folder (`..` in workspace_root() included).
    let path = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|dir| dir.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    };
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn pick_port(port: u16) -> Result<u16, StackError> {
    if port != 0 {
        return Ok(port);
    }
    // Bind and release: cargo lambda watch needs a concrete port number.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| StackError::Bind {
        addr: "127.0.0.1:0".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| StackError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })
}

/// `cargo lambda watch` in its own process group (so a terminal's Ctrl-C reaches only us,
/// and we stop it in order), under a lifeline shell.
struct WatchProcess {
    child: Child,
    lifeline: Option<ChildStdin>,
}

/// Runs the command given as arguments in the background, waits for stdin to close (our
/// process ended, however it ended, or asked for shutdown), then stops the command with
/// SIGTERM, and SIGKILL if it is still there after 5 s. SIGTERM, not a group kill:
/// `cargo lambda watch` starts each function in a process group of its own and stops them
/// itself when terminated.
const LIFELINE: &str = r#""$@" & child=$!
read -r _
kill -TERM "$child" 2>/dev/null
( sleep 5; kill -KILL "$child" 2>/dev/null ) &
wait "$child""#;

impl WatchProcess {
    fn spawn(
        cargo_lambda: &Path,
        port: u16,
        env: &[(String, String)],
        release: bool,
        log: &LogSink,
    ) -> Result<Self, StackError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(LIFELINE).arg("lifeline");
        cmd.arg(cargo_lambda).args([
            "lambda",
            "watch",
            "--ignore-changes",
            "--disable-cors",
            "--quiet",
        ]);
        cmd.args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ]);
        if release {
            cmd.arg("--release");
        }
        for (k, v) in env {
            // Passed as the child's environment rather than --env-var, whose comma syntax
            // would split values that contain commas.
            cmd.env(k, v);
        }
        cmd.current_dir(workspace_root())
            .stdin(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        match log {
            LogSink::Inherit => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            LogSink::File(path) => {
                let file = std::fs::File::create(path).map_err(|source| StackError::Spawn {
                    what: "the watch log file",
                    source,
                })?;
                let err = file.try_clone().map_err(|source| StackError::Spawn {
                    what: "the watch log file",
                    source,
                })?;
                cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
            }
            LogSink::FileWithAccessLines(_) => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().map_err(|source| StackError::Spawn {
            what: "cargo lambda watch",
            source,
        })?;
        if let LogSink::FileWithAccessLines(path) = log {
            if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
                crate::access_log::tee(out, err, path).map_err(|source| StackError::Spawn {
                    what: "the watch log file",
                    source,
                })?;
            }
        }
        let lifeline = child.stdin.take();
        Ok(Self { child, lifeline })
    }

    async fn stop(mut self) {
        // Closing the pipe makes the lifeline stop watch, which stops the functions.
        drop(self.lifeline.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

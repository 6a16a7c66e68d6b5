//! What the sections share (the plan of sizes and counts, agentcore-local, the local stack,
//! the clients, the functions' environment), how a run sets it up and tears it down, and
//! the report it writes at the end.

use std::path::PathBuf;
use std::time::Duration;

use agentcore_local::{LocalConfig, LocalServer};
use anyhow::{bail, Context as _, Result};
use local_stack::{LogSink, Stack, StackOptions};
use serde_json::Value;

use crate::clients::{self, invoke_harness, Direct, Function};
use crate::harness::{self, FunctionProcess};
use crate::machine::{self, read_trimmed, TcpCongestion};
use crate::observe::Observer;
use crate::report::{self, Figure, Meta};
use crate::sections::{self, Section};
use crate::Args;

/// The limit the functions run with in every set-up: above the 5 MB answers of the
/// option 1 section, below Lambda's 6 MB.
const MAX_RESPONSE_BYTES: &str = "6000000";

/// Sizes and counts of one run.
pub(crate) struct Plan {
    /// Repetitions of most figures.
    pub(crate) reps: usize,
    /// Repetitions of the cheap latency figures (TTFB, option 1's paced answer).
    pub(crate) latency_reps: usize,
    /// Events in the per-event latency answer.
    pub(crate) events: u64,
    /// The two answer sizes of the throughput section (bytes).
    pub(crate) sizes: [u64; 2],
    /// The large answer of the option 1 section (bytes).
    pub(crate) option1_bytes: u64,
    /// Concurrent streams per option in the soak section.
    pub(crate) soak_streams: usize,
    /// Access records timed in process by the access section, per repetition.
    pub(crate) access_records: u32,
    /// Smaller sizes (`--quick`).
    pub(crate) quick: bool,
}

impl Plan {
    fn new(quick: bool, reps: Option<usize>) -> Self {
        let reps = reps.unwrap_or(if quick { 2 } else { 5 }).max(1);
        if quick {
            Self {
                reps,
                latency_reps: reps * 2,
                events: 200,
                sizes: [2_000_000, 10_000_000],
                option1_bytes: 1_000_000,
                soak_streams: 40,
                access_records: 2_000,
                quick,
            }
        } else {
            Self {
                reps,
                latency_reps: reps * 4,
                events: 1_000,
                sizes: [10_000_000, 100_000_000],
                option1_bytes: 5_000_000,
                soak_streams: 200,
                access_records: 20_000,
                quick,
            }
        }
    }
}

/// What the sections share.
pub(crate) struct Ctx {
    /// Sizes and counts.
    pub(crate) plan: Plan,
    /// The workspace root.
    pub(crate) root: PathBuf,
    release_dir: PathBuf,
    /// `target/bench`: the functions' logs.
    pub(crate) log_dir: PathBuf,
    /// agentcore-local's endpoint (`http://127.0.0.1:PORT`).
    pub(crate) agent_url: String,
    fn_env: Vec<(String, String)>,
    /// The baseline client, straight to agentcore-local.
    pub(crate) direct: Direct,
    stack: Option<Stack>,
    /// A plain HTTP client for the stack's URLs.
    pub(crate) http: reqwest::Client,
    lambda: Option<aws_sdk_lambda::Client>,
}

impl Ctx {
    /// The release binary of `f`.
    pub(crate) fn binary(&self, f: Function) -> PathBuf {
        self.release_dir.join(f.name())
    }

    fn log(&self, f: Function) -> PathBuf {
        self.log_dir.join(format!("{}.log", f.name()))
    }

    /// Starts a fresh process of `f` under its own Runtime API; `first` is queued before
    /// the spawn, so that its first `/next` is answered at once.
    pub(crate) async fn spawn(
        &self,
        f: Function,
        first: Option<(bytes::Bytes, Observer)>,
    ) -> Result<(FunctionProcess, Option<harness::Submitted>)> {
        FunctionProcess::spawn(&self.binary(f), f.name(), &self.fn_env, &self.log(f), first).await
    }

    /// Like [`Ctx::spawn`], with variables added to the function's environment.
    pub(crate) async fn spawn_with_env(
        &self,
        f: Function,
        extra: &[(&str, &str)],
    ) -> Result<FunctionProcess> {
        let mut env = self.fn_env.clone();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let (p, _) =
            FunctionProcess::spawn(&self.binary(f), f.name(), &env, &self.log(f), None).await?;
        Ok(p)
    }

    /// A process of `f`, already past `n` invocations of `pl` (client connected).
    pub(crate) async fn warm(&self, f: Function, pl: &Value, n: usize) -> Result<FunctionProcess> {
        let (p, _) = self.spawn(f, None).await?;
        for _ in 0..n {
            invoke_harness(&p, f, pl, false).await?;
        }
        Ok(p)
    }

    /// The local stack (started when a selected section needs it).
    pub(crate) fn stack(&self) -> Result<&Stack> {
        self.stack
            .as_ref()
            .context("the local stack is not running")
    }

    /// The AWS SDK for Lambda on the stack's `InvokeWithResponseStream` endpoint.
    pub(crate) fn lambda(&self) -> Result<&aws_sdk_lambda::Client> {
        self.lambda
            .as_ref()
            .context("the Lambda client is not set up")
    }
}

/// Runs the selected sections and writes the report; `Ok(false)` when a target was missed.
pub(crate) async fn run(args: Args) -> Result<bool> {
    let sections: Vec<Section> = if args.sections.is_empty() {
        Section::in_report_order().to_vec()
    } else {
        // Report order, whatever order they were given in.
        Section::in_report_order()
            .iter()
            .copied()
            .filter(|s| args.sections.contains(s))
            .collect()
    };
    let plan = Plan::new(args.quick, args.reps);
    let root = local_stack::stack::workspace_root()
        .canonicalize()
        .context("finding the workspace root")?;
    let release_dir = root.join(&args.bin_dir);
    let log_dir = root.join("target/bench");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    for f in Function::ALL {
        let bin = release_dir.join(f.name());
        if !bin.is_file() {
            bail!(
                "{} is missing: build first with `cargo build --release --workspace --bins` (or run `make bench`)",
                bin.display()
            );
        }
    }
    let load_start = read_trimmed("/proc/loadavg");
    let tcp = TcpCongestion::set(args.tcp_congestion.as_deref())?;

    // The local stack, when a section needs it; its agentcore-local also serves the harness.
    let stack = if sections.iter().any(|s| s.needs_stack()) {
        eprintln!("bench: starting the local stack (release build, cargo lambda watch) ...");
        let opts = StackOptions {
            local_port: 0,
            watch_port: 0,
            apigw_port: 0,
            release: true,
            log: LogSink::File(log_dir.join("watch.log")),
            function_env: vec![("MAX_RESPONSE_BYTES".into(), MAX_RESPONSE_BYTES.into())],
            ..StackOptions::default()
        };
        Some(
            Stack::start(opts)
                .await
                .context("starting the local stack")?,
        )
    } else {
        None
    };
    let mut own_local: Option<LocalServer> = None;
    let local_config = LocalConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        ..LocalConfig::default()
    };
    let agent_url = match stack.as_ref().and_then(|s| s.urls().agentcore.clone()) {
        Some(url) => url,
        None => {
            let server = LocalServer::start(local_config.clone())
                .await
                .context("starting agentcore-local")?;
            let url = server.endpoint_url();
            own_local = Some(server);
            url
        }
    };
    let lambda = match &stack {
        Some(s) => Some(clients::lambda_client(&s.urls().lambda_streaming).await),
        None => None,
    };
    // The stack's own settings for a function that calls the local demo agent, plus what a
    // Lambda environment has and the stack's process does not pass on.
    let mut fn_env = local_stack::function_env::local_agent(&local_config, &agent_url);
    fn_env.extend(
        [
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("MAX_RESPONSE_BYTES", MAX_RESPONSE_BYTES),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let direct = Direct::new(&agent_url).await;
    let mut ctx = Ctx {
        plan,
        root,
        release_dir,
        log_dir,
        agent_url,
        fn_env,
        direct,
        stack,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .context("building the HTTP client")?,
        lambda,
    };

    let mut figures: Vec<Figure> = Vec::new();
    let mut how = Vec::new();
    let mut notes = Vec::new();
    let mut result = Ok(());
    for &section in &sections {
        eprintln!("bench: section {}", section.key());
        match sections::run(section, &mut ctx).await {
            Ok(measured) => {
                figures.extend(measured.figures.into_vec());
                how.push((section, measured.how));
                notes.extend(measured.notes);
            }
            Err(e) => {
                result = Err(e.context(format!("section {}", section.key())));
                break;
            }
        }
    }
    if let Some(stack) = ctx.stack.take() {
        stack.shutdown().await;
    }
    if let Some(local) = own_local.take() {
        local.shutdown().await;
    }
    result?;

    let retries = clients::stack_retries();
    if !retries.is_empty() {
        notes.push(format!(
            "{} request(s) through the local stack failed and were retried (not counted in the figures): {}",
            retries.len(),
            retries.join("; ")
        ));
    }
    let load_end = read_trimmed("/proc/loadavg");
    let meta = Meta {
        environment: environment(&ctx, &args, &load_start, &load_end, &tcp),
        how,
        notes,
    };
    let all_met = figures.iter().all(|f| f.met() != Some(false));
    let mut stdout = String::new();
    for &section in &sections {
        stdout.push_str(&format!("\n### {}\n\n", section.title()));
        stdout.push_str(&report::table(&figures, section));
    }
    println!("{stdout}");
    if let Some(path) = &args.write {
        let text = report::markdown(&figures, &meta, &sections);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(all_met)
}

/// The report's Environment lines: machine, versions, commit, command, date.
fn environment(
    ctx: &Ctx,
    args: &Args,
    load_start: &str,
    load_end: &str,
    tcp: &TcpCongestion,
) -> Vec<(String, String)> {
    use std::path::Path;
    let commit = machine::command_output(Path::new("git"), &["rev-parse", "HEAD"], &ctx.root);
    let dirty = !machine::command_output(Path::new("git"), &["status", "--porcelain"], &ctx.root)
        .is_empty();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into());
    let mut cmd = "make bench".to_owned();
    // The program as it was started (`target/release/bench`), then its flags.
    let flags: Vec<String> = std::env::args().collect();
    if args.quick
        || args.reps.is_some()
        || !args.sections.is_empty()
        || args.tcp_congestion.is_some()
    {
        cmd = flags.join(" ");
    }
    let cargo_lambda = local_stack::stack::find_cargo_lambda()
        .map(|cl| machine::command_output(&cl, &["lambda", "--version"], &ctx.root))
        .unwrap_or_else(|| "(not found on PATH or in .venv/bin)".into());
    vec![
        ("Machine".into(), machine::describe()),
        ("TCP (loopback)".into(), tcp.describe()),
        (
            "Load average (start → end)".into(),
            format!("{load_start} → {load_end}"),
        ),
        (
            "rustc".into(),
            machine::command_output(Path::new("rustc"), &["-V"], &ctx.root),
        ),
        ("cargo-lambda".into(), cargo_lambda),
        (
            "Commit".into(),
            format!(
                "{commit}{}",
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        ),
        ("Command".into(), format!("`{cmd}`")),
        ("Date".into(), date),
        (
            "Repetitions".into(),
            format!(
                "{} per figure ({} for the cheap latency figures){}",
                ctx.plan.reps,
                ctx.plan.latency_reps,
                if ctx.plan.quick { ", quick sizes" } else { "" }
            ),
        ),
    ]
}

//! `local-stack`: the whole system on one machine (`make run`, `make demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use local_stack::{LogSink, Stack, StackOptions, Upstream};

/// Runs agentcore-local, the three functions under `cargo lambda watch`, and a local API
/// Gateway REST front, all on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  local-stack run\n  AGENT_URL=http://127.0.0.1:8080 local-stack run     # forward to a local agent container\n  AGENT_RUNTIME_ARN=arn:aws:bedrock-agentcore:... local-stack run   # a real runtime, real credentials\n  local-stack demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    ports: Ports,
}

#[derive(clap::Args, Debug, Clone)]
struct Ports {
    /// Port of the local AgentCore Runtime.
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_PORT",
        default_value_t = 8787,
        global = true
    )]
    local_port: u16,
    /// Port of `cargo lambda watch` (Function URLs and the Lambda API).
    #[arg(long, env = "LAMBDA_PORT", default_value_t = 9000, global = true)]
    watch_port: u16,
    /// Port of the local API Gateway REST front.
    #[arg(long, env = "APIGW_PORT", default_value_t = 3000, global = true)]
    apigw_port: u16,
    /// Forward to an agent container implementing /invocations and /ping at this URL.
    #[arg(long, env = "AGENT_URL", global = true)]
    agent_url: Option<String>,
    /// CORS origin allowed by the handlers and the gateway's preflight answers.
    #[arg(long, env = "CORS_ALLOW_ORIGIN", global = true)]
    cors_origin: Option<String>,
    /// Build and run the functions in release mode.
    #[arg(long, global = true)]
    release: bool,
    /// Show the output of `cargo lambda watch` (the functions' logs) here, not in
    /// target/local-stack/watch.log.
    #[arg(short, long, env = "LOCAL_STACK_VERBOSE", global = true)]
    verbose: bool,
    /// Let anonymous callers in. By default the functions verify end-user JWTs from
    /// agentcore-local's OIDC issuer, and the local API Gateway runs a Cognito authorizer.
    #[arg(long, env = "LOCAL_STACK_ANONYMOUS", global = true)]
    anonymous: bool,
    /// Invocations each function process serves at once (AWS_LAMBDA_MAX_CONCURRENCY), as on
    /// Lambda Managed Instances. 1 is on-demand Lambda: one at a time.
    #[arg(long, env = "LOCAL_STACK_MAX_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    max_concurrency: u32,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the stack in the foreground until Ctrl-C (the default).
    Run,
    /// Start the stack, stream one prompt through each option with stream-client, stop.
    Demo,
}

/// Pause between the demo agent's tokens when a request does not choose one: slow enough
/// for a person to watch the answer stream in.
const DEMO_PACE_MS: u64 = 40;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let demo = matches!(cli.command, Some(Cmd::Demo));
    // `make demo` shows stream-client's output; the per-request logs are for `make run`.
    let default_filter = if demo { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let upstream = match (&cli.ports.agent_url, std::env::var_os("AGENT_RUNTIME_ARN")) {
        (Some(url), _) => Upstream::Proxy(url.clone()),
        (None, Some(_)) => Upstream::Real,
        (None, None) => Upstream::Demo,
    };
    // The watcher's output (its own INFO lines and the functions' logs) goes to a file the
    // banner names, so the screen shows the steps, the banner and then one line per request
    // (from the functions' access records); --verbose shows the raw output here instead.
    let log = if cli.ports.verbose {
        LogSink::Inherit
    } else {
        let dir = local_stack::stack::workspace_root().join("target/local-stack");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("watch.log");
        if demo {
            LogSink::File(path)
        } else {
            LogSink::FileWithAccessLines(path)
        }
    };
    let log_note = match &log {
        LogSink::File(path) => format!(
            "Function logs (cargo lambda watch): {} (or run with --verbose to see them here).",
            local_stack::stack::display_path(path)
        ),
        LogSink::FileWithAccessLines(path) => format!(
            "One line per request follows (option, caller, status, first byte, total, bytes out).\nFull function logs (cargo lambda watch): {} (or run with --verbose to see them here).",
            local_stack::stack::display_path(path)
        ),
        LogSink::Inherit => "Function logs (cargo lambda watch) are shown here (--verbose).".into(),
    };
    let mut local = agentcore_local::LocalConfig::default();
    local.demo.delay_ms = DEMO_PACE_MS;
    let opts = StackOptions {
        local,
        local_port: cli.ports.local_port,
        watch_port: cli.ports.watch_port,
        apigw_port: cli.ports.apigw_port,
        upstream: upstream.clone(),
        // The browser page is served on the gateway's address and calls option 2 there.
        cors_allow_origin: Some(
            cli.ports
                .cors_origin
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", cli.ports.apigw_port)),
        ),
        web_dir: Some(local_stack::stack::workspace_root().join("web")),
        // Through the page's edge (CloudFront in front of option 2) the token travels in
        // x-auth-token, as origin access control signs Authorization.
        function_env: vec![("JWT_HEADER".into(), "authorization,x-auth-token".into())],
        release: cli.ports.release,
        log,
        progress: true,
        end_user_auth: !cli.ports.anonymous && upstream != Upstream::Real,
        max_concurrency: cli.ports.max_concurrency,
        ..StackOptions::default()
    };
    let stack = match Stack::start(opts).await {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = if demo {
        run_demo(&stack, &log_note).await
    } else {
        print_banner(&stack, &upstream, &log_note);
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\nStopping...");
        ExitCode::SUCCESS
    };
    stack.shutdown().await;
    code
}

fn print_banner(stack: &Stack, upstream: &Upstream, log_note: &str) {
    let urls = stack.urls();
    // The client as built by `make run`: `cargo run -p stream-client` would resolve the
    // features of stream-client alone and recompile part of the tree first.
    let client = stream_client_path();
    let client = if client.is_file() {
        local_stack::stack::display_path(&client)
    } else {
        "cargo run -q -p stream-client --".to_owned()
    };
    let agent = match upstream {
        Upstream::Demo => format!(
            "agentcore-local demo agent at {}",
            urls.agentcore.as_deref().unwrap_or("?")
        ),
        Upstream::Proxy(url) => format!(
            "agentcore-local at {} forwarding to the agent container at {url}",
            urls.agentcore.as_deref().unwrap_or("?")
        ),
        Upstream::Real => "the real AgentCore runtime in AGENT_RUNTIME_ARN".to_owned(),
    };
    // With end-user auth, every call signs in as a user of the local issuer.
    let (as_alice, as_bob) = match &urls.issuer {
        // stream-client's default issuer is the default port's; name any other.
        Some(issuer) if issuer != "http://127.0.0.1:8787/issuer" => (
            format!(" --local-user alice --issuer {issuer}"),
            format!(" --local-user bob --issuer {issuer}"),
        ),
        Some(_) => (
            " --local-user alice".to_owned(),
            " --local-user bob".to_owned(),
        ),
        None => (String::new(), String::new()),
    };
    let auth_note = match &urls.issuer {
        Some(issuer) => format!(
            "End users sign in at the local OIDC issuer {issuer} (a token: curl -s '{issuer}/token?user=alice').\nEach user owns their sessions; DELETE with X-Session-Id ends one. Run with --anonymous to turn this off.\n\n"
        ),
        None => String::new(),
    };
    let curl_auth = match &urls.issuer {
        Some(issuer) => format!(
            " -H \"authorization: Bearer $(curl -s '{issuer}/token?user=alice' | sed 's/.*\"id_token\":\"\\([^\"]*\\)\".*/\\1/')\""
        ),
        None => String::new(),
    };
    let page_note = match &urls.page {
        Some(page) => {
            format!("Browser page: {page} (pick an option, sign in, watch the answer stream)\n\n")
        }
        None => String::new(),
    };
    println!(
        "\nReady. The functions call {agent}.\n\n  Option 1 (API Gateway REST, buffered):   {o1}\n  Option 2 (Function URL, streaming):      {o2}\n  Option 3 (API Gateway REST, streaming):  {o3}\n\n{page_note}{auth_note}Try (in another terminal):\n  {client}{as_alice} {o1} \"Tell me about Rust\"\n  {client}{as_alice} {o2} \"Tell me about Rust\"\n  {client}{as_bob} {o3} \"Tell me about Rust\"\n  curl -N {o2} -H 'content-type: application/json'{curl_auth} -d '{{\"prompt\": \"Hello\", \"demo\": {{\"tokens\": 40, \"delay_ms\": 50}}}}'\n\n{log_note}\nPress Ctrl-C to stop.",
        o1 = urls.option1,
        o2 = urls.option2,
        o3 = urls.option3,
    );
}

async fn run_demo(stack: &Stack, log_note: &str) -> ExitCode {
    let client = stream_client_path();
    let urls = stack.urls();
    let mut failed = 0;
    for (name, url) in [
        ("option 1", &urls.option1),
        ("option 2", &urls.option2),
        ("option 3", &urls.option3),
    ] {
        println!("\n=== {name}: {url}");
        let mut command = tokio::process::Command::new(&client);
        command.args([url.as_str(), "Hello from make demo", "--stats"]);
        if let Some(issuer) = &urls.issuer {
            command.args(["--local-user", "demo", "--issuer", issuer]);
        }
        let status = command.status().await;
        match status {
            Ok(s) if s.success() => println!("\n=== {name}: ok"),
            Ok(s) => {
                failed += 1;
                println!("\n=== {name}: FAILED ({s})");
            }
            Err(e) => {
                failed += 1;
                println!("\n=== {name}: could not run {}: {e}", client.display());
            }
        }
    }
    if failed == 0 {
        println!("\nAll three options streamed the demo answer.");
        ExitCode::SUCCESS
    } else {
        println!("\n{failed} option(s) failed. {log_note}");
        ExitCode::FAILURE
    }
}

/// `stream-client` next to this binary (both are built into the same target directory).
fn stream_client_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("stream-client"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("stream-client"))
}

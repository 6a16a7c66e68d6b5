//! `agentcore-local`: runs the local AgentCore Runtime data plane until Ctrl-C / SIGTERM.
//!
//! Every flag can also be set by the environment variable shown in `--help`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use agentcore_local::{
    AuthMode, DemoDefaults, LocalConfig, LocalServer, DEFAULT_ACCESS_KEY_ID, DEFAULT_BEARER_TOKEN,
    DEFAULT_LISTEN, DEFAULT_QUALIFIER, DEFAULT_REGION, DEFAULT_RUNTIME_ARN,
    DEFAULT_SECRET_ACCESS_KEY,
};
use clap::{Parser, ValueEnum};

/// How callers authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AuthArg {
    /// SigV4 with the configured access key (what the AWS SDK does).
    Sigv4,
    /// `Authorization: Bearer <token>` (AgentCore OAuth inbound auth).
    Oauth,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A local Amazon Bedrock AgentCore Runtime data plane (InvokeAgentRuntime + /ping).
#[derive(Debug, Parser)]
#[command(name = "agentcore-local", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "AGENTCORE_LOCAL_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Region the SigV4 credential scope must name.
    #[arg(long, env = "AGENTCORE_LOCAL_REGION", default_value = DEFAULT_REGION)]
    region: String,
    /// Accepted access key id (SigV4 mode).
    #[arg(long, env = "AGENTCORE_LOCAL_ACCESS_KEY_ID", default_value = DEFAULT_ACCESS_KEY_ID)]
    access_key_id: String,
    /// Secret of the accepted access key (SigV4 mode).
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_SECRET_ACCESS_KEY",
        default_value = DEFAULT_SECRET_ACCESS_KEY,
        hide_env_values = true
    )]
    secret_access_key: String,
    /// Session token every request must carry, signed (temporary credentials, as a Lambda
    /// role's). Unset: long-term keys, no token checked.
    #[arg(long, env = "AGENTCORE_LOCAL_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// Known runtime ARNs (repeat the flag or separate with commas).
    #[arg(
        long = "runtime-arn",
        env = "AGENTCORE_LOCAL_RUNTIME_ARNS",
        value_delimiter = ',',
        default_value = DEFAULT_RUNTIME_ARN
    )]
    runtime_arns: Vec<String>,
    /// Known endpoint qualifiers (repeat the flag or separate with commas).
    #[arg(
        long = "qualifier",
        env = "AGENTCORE_LOCAL_QUALIFIERS",
        value_delimiter = ',',
        default_value = DEFAULT_QUALIFIER
    )]
    qualifiers: Vec<String>,
    /// Inbound authentication.
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_AUTH",
        value_enum,
        default_value = "sigv4"
    )]
    auth: AuthArg,
    /// Accepted bearer token (OAuth mode).
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_BEARER_TOKEN",
        default_value = DEFAULT_BEARER_TOKEN,
        hide_env_values = true
    )]
    bearer_token: String,
    /// Proxy mode: forward to a real agent container at this URL (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "AGENTCORE_LOCAL_AGENT_URL")]
    agent_url: Option<String>,
    /// Largest accepted difference between X-Amz-Date and this machine's clock, in seconds.
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_MAX_CLOCK_SKEW_SECS",
        default_value_t = 300
    )]
    max_clock_skew_secs: u64,
    /// Demo agent: tokens per answer (a request's "demo" object overrides it).
    #[arg(long, env = "AGENTCORE_LOCAL_DEMO_TOKENS", default_value_t = 12)]
    demo_tokens: u64,
    /// Demo agent: pause between tokens in milliseconds (so streaming is visible).
    #[arg(long, env = "AGENTCORE_LOCAL_DEMO_DELAY_MS", default_value_t = 40)]
    demo_delay_ms: u64,
    /// Demo agent: group output into writes of at least this many bytes.
    #[arg(long, env = "AGENTCORE_LOCAL_DEMO_CHUNK_BYTES")]
    demo_chunk_bytes: Option<usize>,
    /// Log line format.
    #[arg(
        long,
        env = "AGENTCORE_LOCAL_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

impl Cli {
    fn into_config(self) -> LocalConfig {
        LocalConfig {
            listen: self.listen,
            region: self.region,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            runtime_arns: self
                .runtime_arns
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            qualifiers: self
                .qualifiers
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            auth: match self.auth {
                AuthArg::Sigv4 => AuthMode::SigV4,
                AuthArg::Oauth => AuthMode::OAuth {
                    token: self.bearer_token,
                },
            },
            agent_url: self.agent_url.filter(|u| !u.trim().is_empty()),
            max_clock_skew: Duration::from_secs(self.max_clock_skew_secs),
            session_token: self.session_token.filter(|t| !t.trim().is_empty()),
            demo: DemoDefaults {
                tokens: self.demo_tokens,
                delay_ms: self.demo_delay_ms,
                chunk_bytes: self.demo_chunk_bytes,
            },
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let config = cli.into_config();
    let mode = match &config.agent_url {
        Some(url) => format!("proxy to {url}"),
        None => "demo agent".to_owned(),
    };
    let auth = match &config.auth {
        AuthMode::SigV4 => "sigv4",
        AuthMode::OAuth { .. } => "oauth",
    };
    let server = match LocalServer::start(config.clone()).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, listen = %config.listen, "could not start agentcore-local");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        endpoint = %server.endpoint_url(),
        region = %config.region,
        auth,
        mode = %mode,
        runtime_arns = ?config.runtime_arns,
        qualifiers = ?config.qualifiers,
        "agentcore-local listening"
    );
    wait_for_stop().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

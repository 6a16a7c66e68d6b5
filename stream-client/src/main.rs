//! `stream-client [URL] PROMPT`: sends a prompt to an agentcore-lambda endpoint (option 1,
//! 2 or 3) and prints the agent's answer to stdout as it streams in. Errors, the session
//! id and statistics go to stderr; the exit code says what went wrong (see `--help`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    stream_client::load_dotenv();
    let cli = stream_client::cli::Cli::parse();
    ExitCode::from(stream_client::run(cli))
}

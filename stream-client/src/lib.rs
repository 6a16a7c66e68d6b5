//! `stream-client`: a terminal client for the agentcore-lambda endpoints that prints an
//! agent's answer as it streams in.
//!
//! - [`cli`]: arguments, and their resolution with the environment into [`cli::Settings`];
//! - [`client`]: the exchange (request, SigV4/bearer auth, streaming the answer);
//! - [`output`]: writing to stdout, flushed per event;
//! - [`sign`]: SigV4 with the default AWS credential chain;
//! - [`spinner`]: the stderr spinner shown until the first byte;
//! - [`error`]: failures and their exit codes.

pub mod cli;
pub mod client;
pub mod error;
pub mod output;
pub mod sign;
pub mod spinner;

use clap::CommandFactory;

use crate::cli::{Cli, Settings};
use crate::error::{ClientError, Report, EXIT_OUTPUT};

/// Loads `.env` from the current directory into the environment, if there is one.
/// Variables already set win. A malformed file is reported and otherwise ignored.
pub fn load_dotenv() {
    match dotenvy::from_path(".env") {
        Ok(()) => {}
        Err(e) if e.not_found() => {}
        Err(e) => eprintln!("warning: ignoring .env: {e}"),
    }
}

/// Runs the client for parsed arguments; returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let settings = match Settings::resolve(cli, |k| std::env::var(k).ok()) {
        Ok(settings) => settings,
        Err(ClientError::Usage(message)) => {
            let err = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
            let _ = err.print();
            return u8::try_from(err.exit_code()).unwrap_or(2);
        }
        Err(e) => {
            eprintln!("{}", Report(&e));
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return EXIT_OUTPUT;
        }
    };
    runtime.block_on(client::run(settings))
}

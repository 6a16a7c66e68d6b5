//! Benchmark driver of agentcore-lambda: cold start, first invocation, time to first byte,
//! per-event latency, throughput, memory, CPU and package size of the three functions,
//! each measured against the same request sent straight to agentcore-local in the same
//! run; the cost of the access records; a soak of concurrent streams with injected
//! faults; and many streams in one process (`AWS_LAMBDA_MAX_CONCURRENCY`). Prints a
//! Markdown table; `--write FILE` also writes the full report.
//!
//! Run it with `make bench` (release build first). Two set-ups are used:
//!
//! - **harness**: the release binary started by this driver under its own minimal Lambda
//!   Runtime API (see `harness.rs`): nothing else is in the path, and the PID is ours for
//!   `/proc` readings;
//! - **stack**: `local_stack::Stack` (`cargo lambda watch`, the `InvokeWithResponseStream`
//!   shim, the API Gateway emulator), i.e. what a developer runs with `make run`.
//!
//! This file only parses the command line and dispatches: [`context`] sets up and tears
//! down what the sections share, [`sections`] holds one module per section, [`report`]
//! writes the Markdown, [`machine`] reads the machine's facts.

mod clients;
mod context;
mod harness;
mod machine;
mod observe;
mod relay;
mod report;
mod sections;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use sections::Section;

/// Measures the functions and prints (or writes) BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "bench", about)]
pub(crate) struct Args {
    /// Also write the full Markdown report to this file (e.g. BENCHMARKS.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) write: Option<PathBuf>,
    /// Repetitions per figure (at least 5 for a real run; default 5, 2 with --quick).
    #[arg(long, value_name = "N")]
    pub(crate) reps: Option<usize>,
    /// Smaller sizes and fewer events, for a smoke run.
    #[arg(long)]
    pub(crate) quick: bool,
    /// The sections to run, comma-separated (default: all, in report order).
    #[arg(
        long = "section",
        alias = "only",
        value_enum,
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub(crate) sections: Vec<Section>,
    /// Where the function binaries are (relative to the workspace root). For profiling:
    /// `cargo build --profile profiling --bins` then `--bin-dir target/profiling`.
    #[arg(long, value_name = "DIR", default_value = "target/release")]
    pub(crate) bin_dir: PathBuf,
    /// Run with the kernel's TCP congestion control (`net.ipv4.tcp_congestion_control`) set
    /// to ALGO, e.g. `cubic`, and put the machine's back at the end. Needs root. For A/B
    /// runs: loopback streams depend on it (see the throughput notes).
    #[arg(long, value_name = "ALGO")]
    pub(crate) tcp_congestion: Option<String>,
    /// Internal: run as the bare TCP relay to HOST:PORT that the throughput section
    /// compares option 2 with (started by the driver itself).
    #[arg(long, value_name = "HOST:PORT", hide = true)]
    pub(crate) relay_to: Option<String>,
    /// Internal: time N access records in this process, as a function writes them, and
    /// print the figures on stderr (started by the access section, stdout to a log).
    #[arg(long, value_name = "N", hide = true)]
    pub(crate) access_cost: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(target) = &args.relay_to {
        // One thread, like the functions: the relay is a stand-in for a forwarding process.
        let relay = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the relay's runtime")
            .and_then(|rt| rt.block_on(relay::serve(target)));
        if let Err(e) = relay {
            eprintln!("bench relay: error: {e:#}");
        }
        return ExitCode::FAILURE;
    }
    if let Some(n) = args.access_cost {
        return match sections::access::measure_in_process(n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench access-cost: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")
        .and_then(|rt| rt.block_on(context::run(args)));
    match outcome {
        Ok(all_met) => {
            // Targets missed are findings, not failures of the driver: exit 0 either way.
            if !all_met {
                eprintln!("bench: some targets were missed (see the ✗ rows)");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

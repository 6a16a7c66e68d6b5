//! Section 7, access records and the first byte: what `agentcore_core::access` costs a request, in
//! process, against option 2's time to first byte; and that time with the function's
//! logging on and off.

use std::process::Stdio;
use std::time::Instant;

use agentcore_core::access::{AccessRecord, DEFAULT_METRICS_NAMESPACE};
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

use super::{Measured, Section};
use crate::clients::{invoke_harness, payload, Function};
use crate::context::Ctx;
use crate::report::{col, median, Figures, Target};

/// Where the `--access-cost` child writes its figures (JSON): its stdout and stderr are the
/// records themselves.
const RESULT_ENV: &str = "BENCH_ACCESS_RESULT";

/// One child process's timings (µs per request).
struct CostRep {
    start_p50: f64,
    start_p99: f64,
    finish_p50: f64,
    finish_p99: f64,
}

/// One repetition of the TTFB comparison (ms).
struct TtfbRep {
    logging_on: f64,
    logging_off: f64,
}

/// Measures the section.
pub(crate) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let (reps, n, records) = (
        ctx.plan.reps,
        ctx.plan.latency_reps,
        ctx.plan.access_records,
    );
    let mut costs = Vec::with_capacity(reps);
    for _ in 0..reps {
        costs.push(cost_in_child(ctx, records).await?);
    }

    let f = Function::Option2;
    let pl = payload(json!({"tokens": 3, "delay_ms": 10}));
    let on = ctx.warm(f, &pl, 2).await?;
    let off = match ctx.spawn_with_env(f, &[("RUST_LOG", "off")]).await {
        Ok(p) => p,
        Err(e) => {
            on.kill().await;
            return Err(e);
        }
    };
    let measured: Result<Vec<TtfbRep>> = async {
        for _ in 0..2 {
            invoke_harness(&off, f, &pl, false).await?;
        }
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            runs.push(TtfbRep {
                logging_on: invoke_harness(&on, f, &pl, false).await?.ttfb_ms()?,
                logging_off: invoke_harness(&off, f, &pl, false).await?.ttfb_ms()?,
            });
        }
        Ok(runs)
    }
    .await;
    on.kill().await;
    off.kill().await;
    let ttfb = measured?;

    let mut figs = Figures::new(Section::Access);
    figs.add(
        "AccessRecord::start per request, median (before the first byte)",
        "µs",
        col(&costs, |c| c.start_p50),
        Target::None,
    );
    figs.add(
        "AccessRecord::start per request, p99",
        "µs",
        col(&costs, |c| c.start_p99),
        Target::None,
    );
    figs.add(
        "access record + EMF line written (finish) per request, median (after the answer)",
        "µs",
        col(&costs, |c| c.finish_p50),
        Target::None,
    );
    figs.add(
        "access record + EMF line written (finish) per request, p99",
        "µs",
        col(&costs, |c| c.finish_p99),
        Target::None,
    );
    figs.add(
        "option 2 harness TTFB, logging as shipped (RUST_LOG=info)",
        "ms",
        col(&ttfb, |r| r.logging_on),
        Target::None,
    );
    figs.add(
        "option 2 harness TTFB, logging off (RUST_LOG=off; EMF line kept)",
        "ms",
        col(&ttfb, |r| r.logging_off),
        Target::None,
    );
    figs.add(
        "option 2 TTFB, logging on − off (same repetition)",
        "ms",
        col(&ttfb, |r| r.logging_on - r.logging_off),
        Target::None,
    );
    let ttfb_us = median(&col(&ttfb, |r| r.logging_on)) * 1e3;
    figs.add(
        "AccessRecord::start ÷ option 2 harness TTFB",
        "%",
        col(&costs, |c| 100.0 * c.start_p50 / ttfb_us),
        Target::AtMost(1.0),
    );
    Ok(Measured {
        figures: figs,
        how: Section::Access.how(&[
            ("records", records.to_string()),
            ("reps", reps.to_string()),
            ("n", n.to_string()),
        ])?,
        notes: Vec::new(),
    })
}

/// Runs `bench --access-cost N` in a fresh process with option 2's Lambda environment and
/// reads its figures.
async fn cost_in_child(ctx: &Ctx, records: u32) -> Result<CostRep> {
    let exe = crate::machine::own_exe()?;
    let log_path = ctx.log_dir.join("access-cost.log");
    let result_path = ctx.log_dir.join("access-cost.json");
    let _ = std::fs::remove_file(&result_path);
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("opening {}", log_path.display()))?;
    let status = tokio::process::Command::new(exe)
        .args(["--access-cost", &records.to_string()])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("AWS_LAMBDA_FUNCTION_NAME", Function::Option2.name())
        .env("RUST_LOG", "info")
        .env(RESULT_ENV, &result_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .status()
        .await
        .context("running bench --access-cost")?;
    if !status.success() {
        bail!(
            "bench --access-cost failed ({status}); see {}",
            log_path.display()
        );
    }
    let text = std::fs::read_to_string(&result_path)
        .with_context(|| format!("reading {}", result_path.display()))?;
    let v: Value = serde_json::from_str(&text).context("parsing the access-cost figures")?;
    let get = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("no {k} in {}", result_path.display()))
    };
    Ok(CostRep {
        start_p50: get("start_p50_us")?,
        start_p99: get("start_p99_us")?,
        finish_p50: get("finish_p50_us")?,
        finish_p99: get("finish_p99_us")?,
    })
}

/// The `--access-cost N` child: writes `n` access records as option 2 does, timing each
/// `start` and `finish`, and writes the figures to the file named by `BENCH_ACCESS_RESULT`.
pub(crate) fn measure_in_process(n: u32) -> Result<()> {
    let result_path = std::env::var_os(RESULT_ENV).context("BENCH_ACCESS_RESULT is not set")?;
    agentcore_core::telemetry::init();
    let n = n.max(1);
    let mut start_ns: Vec<i64> = Vec::with_capacity(n as usize);
    let mut finish_ns: Vec<i64> = Vec::with_capacity(n as usize);
    let ns = |a: Instant, b: Instant| i64::try_from((b - a).as_nanos()).unwrap_or(i64::MAX);
    for i in 0..n {
        // Ids of the lengths Lambda gives (a UUID, an X-Ray root), built outside the timing.
        let request_id = uuid::Uuid::new_v4().to_string();
        let trace_id = format!(
            "Root=1-67891233-{:024x};Parent=0123456789abcdef;Sampled=0",
            i
        );
        let session = format!("bench-session-{:020}", i);
        let t0 = Instant::now();
        let mut record = AccessRecord::start(
            DEFAULT_METRICS_NAMESPACE,
            "option2",
            request_id,
            Some(trace_id),
        );
        // What the gateway fills in before the first byte.
        record.bytes_in = 64;
        record.session_id = Some(session);
        let t1 = Instant::now();
        // What the stream fills in as it goes (not timed: plain field writes).
        record.agent_first_byte_ms = Some(1);
        record.client_first_byte_ms = Some(1);
        record.attempts = 1;
        record.bytes_out = 4_096;
        record.events = 12;
        let t2 = Instant::now();
        record.finish();
        let t3 = Instant::now();
        start_ns.push(ns(t0, t1));
        finish_ns.push(ns(t2, t3));
    }
    let us = |v: &[i64], p: f64| crate::report::percentile(v, p) / 1e3;
    let figures = json!({
        "records": n,
        "start_p50_us": us(&start_ns, 50.0),
        "start_p99_us": us(&start_ns, 99.0),
        "finish_p50_us": us(&finish_ns, 50.0),
        "finish_p99_us": us(&finish_ns, 99.0),
    });
    std::fs::write(&result_path, figures.to_string())
        .with_context(|| format!("writing {}", std::path::Path::new(&result_path).display()))?;
    Ok(())
}

//! Section 5, option 1 (buffered): a paced answer on each path, and the memory of a large answer.

use anyhow::Result;
use serde_json::{json, Value};

use super::throughput::size_label;
use super::{Measured, Section};
use crate::clients::{
    buffered_status, harness_observer, invoke_harness, invoke_http, payload, read_harness, retry,
    Function, Timed,
};
use crate::context::Ctx;
use crate::harness::peak_rss_bytes;
use crate::report::{col, Figures, Target};

/// The largest SSE answer option 1 returns under MAX_RESPONSE_BYTES=6000000 (its document
/// carries the answer twice).
const OPTION1_FITS: u64 = 2_900_000;

/// glibc with a fixed mmap threshold (128 KiB, its default starting value): large buffers
/// are mapped and unmapped on every allocation instead of reused from the heap.
const FIXED_MMAP_THRESHOLD: (&str, &str) = ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072");

/// One repetition of the paced answer: end of body on each path (ms).
struct PacedRep {
    direct: f64,
    harness: f64,
    stack: f64,
}

/// One repetition of the large answer.
struct BigRep {
    /// Peak RSS (MiB), glibc as shipped and with the fixed mmap threshold.
    rss_mib: f64,
    rss_fixed_threshold_mib: f64,
    /// `/next` answered → end of the buffered answer (ms).
    total: f64,
    /// Why option 1 refused the answer, if it did (status and error code).
    refused: Option<String>,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let reps = ctx.plan.reps;
    let n = ctx.plan.latency_reps;
    let f = Function::Option1;
    let pl = payload(json!({"tokens": 50, "delay_ms": 2}));
    let url1 = ctx.stack()?.urls().option1.clone();
    let stack1 = || {
        retry("option 1 API Gateway", || {
            invoke_http(&ctx.http, &url1, &pl, false)
        })
    };
    let p = ctx.warm(f, &pl, 2).await?;
    let measured: Result<Vec<PacedRep>> = async {
        ctx.direct.invoke(&pl, false).await?;
        stack1().await?;
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            runs.push(PacedRep {
                direct: ctx.direct.invoke(&pl, false).await?.total_ms(),
                harness: invoke_harness(&p, f, &pl, false).await?.total_ms(),
                stack: stack1().await?.total_ms(),
            });
        }
        Ok(runs)
    }
    .await;
    p.kill().await;
    let paced = measured?;
    let mut figs = Figures::new(Section::Option1);
    figs.add(
        "paced 50 events: direct (full answer)",
        "ms",
        col(&paced, |r| r.direct),
        Target::None,
    );
    figs.add(
        "paced 50 events: option 1 harness",
        "ms",
        col(&paced, |r| r.harness),
        Target::None,
    );
    figs.add(
        "paced 50 events: option 1 handler-added (harness − direct)",
        "ms",
        col(&paced, |r| r.harness - r.direct),
        Target::None,
    );
    figs.add(
        "paced 50 events: option 1 via stack (API Gateway emulator)",
        "ms",
        col(&paced, |r| r.stack),
        Target::None,
    );
    figs.add(
        "paced 50 events: option 1 stack-added (includes emulator + watch)",
        "ms",
        col(&paced, |r| r.stack - r.direct),
        Target::None,
    );

    let mut sizes = vec![ctx.plan.option1_bytes];
    if ctx.plan.option1_bytes > OPTION1_FITS {
        sizes.push(OPTION1_FITS);
    }
    for size in sizes {
        let big = payload(json!({"total_bytes": size}));
        let mut runs = Vec::with_capacity(reps);
        for _ in 0..reps {
            let (t, peak) = big_answer(ctx, &big, &[]).await?;
            let (_, peak_fixed) = big_answer(ctx, &big, &[FIXED_MMAP_THRESHOLD]).await?;
            runs.push(BigRep {
                rss_mib: peak as f64 / 1_048_576.0,
                rss_fixed_threshold_mib: peak_fixed as f64 / 1_048_576.0,
                total: t.total_ms(),
                refused: refusal(&t, size),
            });
        }
        let suffix = match runs.iter().find_map(|r| r.refused.as_ref()) {
            Some(why) => format!(" (refused: {why})"),
            None => String::new(),
        };
        let label = size_label_exact(size);
        figs.add(
            format!(
                "{label}: option 1 peak RSS with {}={}{suffix}",
                FIXED_MMAP_THRESHOLD.0, FIXED_MMAP_THRESHOLD.1
            ),
            "MiB",
            col(&runs, |r| r.rss_fixed_threshold_mib),
            Target::None,
        );
        figs.add(
            format!("{label}: option 1 harness, full answer{suffix}"),
            "ms",
            col(&runs, |r| r.total),
            Target::None,
        );
        figs.add(
            format!("{label}: option 1 peak RSS (VmHWM){suffix}"),
            "MiB",
            col(&runs, |r| r.rss_mib),
            Target::AtMost(24.0),
        );
    }
    Ok(Measured {
        figures: figs,
        how: Section::Option1.how(&[
            ("n", n.to_string()),
            ("reps", reps.to_string()),
            ("size", ctx.plan.option1_bytes.to_string()),
            ("fits", OPTION1_FITS.to_string()),
            (
                "tunable",
                format!("{}={}", FIXED_MMAP_THRESHOLD.0, FIXED_MMAP_THRESHOLD.1),
            ),
        ])?,
        notes: Vec::new(),
    })
}

/// One big answer collected by a fresh option 1 process: its timing and the process's
/// peak RSS (bytes).
async fn big_answer(ctx: &Ctx, big: &Value, env: &[(&str, &str)]) -> Result<(Timed, u64)> {
    let f = Function::Option1;
    let p = ctx.spawn_with_env(f, env).await?;
    let measured: Result<(Timed, u64)> = async {
        let submitted = p.submit(f.event(big)?, harness_observer(f, false, true))?;
        let t = read_harness(submitted, f, false).await?;
        Ok((t, peak_rss_bytes(p.pid())?))
    }
    .await;
    p.kill().await;
    measured
}

/// The status and error code of a buffered answer that is not a 200 of `size` bytes.
fn refusal(t: &Timed, size: u64) -> Option<String> {
    match buffered_status(&t.obs.body) {
        (Some(200), _) if t.obs.body_bytes >= size => None,
        (status, code) => Some(format!(
            "status {}, error code {}",
            status.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
            code.unwrap_or_else(|| "?".into())
        )),
    }
}

/// `5 MB`, or `2.9 MB` for a size that is not a whole number of MB.
fn size_label_exact(bytes: u64) -> String {
    if bytes % 1_000_000 == 0 {
        size_label(bytes)
    } else {
        format!("{} MB", bytes as f64 / 1e6)
    }
}

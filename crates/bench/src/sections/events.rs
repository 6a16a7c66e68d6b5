//! Section 3, per-event latency of option 2's stream: every event's arrival against the time the
//! agent wrote it.

use anyhow::{bail, Result};
use serde_json::json;

use super::{Measured, Section};
use crate::clients::{invoke_harness, invoke_http, payload, retry, Function, Timed};
use crate::context::Ctx;
use crate::harness::cpu_time;
use crate::report::{col, percentile, Figures, Target};

/// The event latencies of one answer (ms).
#[derive(Clone, Copy)]
struct Percentiles {
    p50: f64,
    p99: f64,
}

impl Percentiles {
    fn of(t: &Timed, expected: u64, what: &str) -> Result<Self> {
        let got = t.obs.latencies_us.len() as u64;
        if got != expected {
            bail!(
                "{what}: {got} stamped events of {expected} ({} unparsed)",
                t.obs.unparsed_events
            );
        }
        Ok(Self {
            p50: percentile(&t.obs.latencies_us, 50.0) / 1e3,
            p99: percentile(&t.obs.latencies_us, 99.0) / 1e3,
        })
    }
}

/// One repetition: the same answer on each path.
struct EventsRep {
    direct: Percentiles,
    harness: Percentiles,
    stack: Percentiles,
    /// The function's CPU time per 1,000 events (ms).
    cpu_per_1000: f64,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let reps = ctx.plan.reps;
    let n = ctx.plan.events;
    let pl = payload(json!({"tokens": n, "delay_ms": 2, "stamp": true}));
    let small = payload(json!({"tokens": 3}));
    let o2 = ctx.warm(Function::Option2, &small, 1).await?;
    let url2 = ctx.stack()?.urls().option2.clone();
    let measured: Result<Vec<EventsRep>> = async {
        retry("option 2 Function URL", || {
            invoke_http(&ctx.http, &url2, &small, false)
        })
        .await?;
        let mut runs = Vec::with_capacity(reps);
        for _ in 0..reps {
            let direct = Percentiles::of(&ctx.direct.invoke(&pl, true).await?, n, "direct")?;
            let c0 = cpu_time(o2.pid())?;
            let t = invoke_harness(&o2, Function::Option2, &pl, true).await?;
            let c1 = cpu_time(o2.pid())?;
            let harness = Percentiles::of(&t, n, "option 2 harness")?;
            let t = retry("option 2 Function URL", || {
                invoke_http(&ctx.http, &url2, &pl, true)
            })
            .await?;
            runs.push(EventsRep {
                direct,
                harness,
                stack: Percentiles::of(&t, n, "option 2 stack")?,
                cpu_per_1000: c1.saturating_sub(c0).as_secs_f64() * 1e3 * 1000.0 / n as f64,
            });
        }
        Ok(runs)
    }
    .await;
    o2.kill().await;
    let runs = measured?;
    let mut figs = Figures::new(Section::Events);
    figs.add(
        "direct p50 (agent write → SDK receive)",
        "ms",
        col(&runs, |r| r.direct.p50),
        Target::None,
    );
    figs.add(
        "direct p99",
        "ms",
        col(&runs, |r| r.direct.p99),
        Target::None,
    );
    figs.add(
        "option 2 harness p50",
        "ms",
        col(&runs, |r| r.harness.p50),
        Target::None,
    );
    figs.add(
        "option 2 harness p99",
        "ms",
        col(&runs, |r| r.harness.p99),
        Target::None,
    );
    figs.add(
        "option 2 handler-added p50 (harness − direct)",
        "ms",
        col(&runs, |r| r.harness.p50 - r.direct.p50),
        Target::None,
    );
    figs.add(
        "option 2 handler-added p99 (harness − direct)",
        "ms",
        col(&runs, |r| r.harness.p99 - r.direct.p99),
        Target::AtMost(2.0),
    );
    figs.add(
        "option 2 via stack p50 (Function URL)",
        "ms",
        col(&runs, |r| r.stack.p50),
        Target::None,
    );
    figs.add(
        "option 2 via stack p99",
        "ms",
        col(&runs, |r| r.stack.p99),
        Target::None,
    );
    figs.add(
        "option 2 stack-added p50 (includes watch)",
        "ms",
        col(&runs, |r| r.stack.p50 - r.direct.p50),
        Target::None,
    );
    figs.add(
        "option 2 stack-added p99 (includes watch)",
        "ms",
        col(&runs, |r| r.stack.p99 - r.direct.p99),
        Target::None,
    );
    figs.add(
        "option 2 CPU time per 1,000 events (harness)",
        "ms",
        col(&runs, |r| r.cpu_per_1000),
        Target::None,
    );
    Ok(Measured {
        figures: figs,
        how: Section::Events.how(&[("n", n.to_string()), ("reps", reps.to_string())])?,
        notes: Vec::new(),
    })
}

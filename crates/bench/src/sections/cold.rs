//! Section 1, cold start and first invocation: a fresh process per repetition, its first event
//! queued before the spawn.

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{Measured, Section};
use crate::clients::{harness_observer, ms, payload, read_harness, Function};
use crate::context::Ctx;
use crate::report::{col, median, Figures, Target};

/// One repetition of one function.
struct ColdRep {
    /// Spawn → first `/next` (ms).
    cold_start: f64,
    /// `/next` answered → end of the first answer (ms).
    first_total: f64,
    /// `/next` answered → first body byte (ms).
    first_byte: f64,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let reps = ctx.plan.reps;
    let pl = payload(json!({"tokens": 5, "delay_ms": 0}));
    for _ in 0..2 {
        ctx.direct.invoke(&pl, false).await?;
    }
    let mut agent = Vec::new();
    let mut per_fn: Vec<(Function, Vec<ColdRep>)> = Vec::new();
    for f in Function::ALL {
        let mut runs = Vec::new();
        for _ in 0..reps {
            let event = (f.event(&pl)?, harness_observer(f, false, false));
            let (p, submitted) = ctx.spawn(f, Some(event)).await?;
            let cold_start = ms(p.ready - p.spawned);
            let submitted = submitted.context("the first event was not queued")?;
            let t = read_harness(submitted, f, true).await;
            p.kill().await;
            let t = t?;
            runs.push(ColdRep {
                cold_start,
                first_total: t.total_ms(),
                first_byte: t.ttfb_ms()?,
            });
            agent.push(ctx.direct.invoke(&pl, false).await?.total_ms());
        }
        per_fn.push((f, runs));
    }
    let agent_ms = median(&agent);
    let mut figs = Figures::new(Section::Cold);
    figs.add(
        "agent's own time (direct, same request, warm SDK client)",
        "ms",
        agent,
        Target::None,
    );
    for (f, runs) in per_fn {
        let label = f.label();
        figs.add(
            format!("{label} cold start (spawn → first /next)"),
            "ms",
            col(&runs, |r| r.cold_start),
            Target::AtMost(15.0),
        );
        figs.add(
            format!("{label} first invocation, total"),
            "ms",
            col(&runs, |r| r.first_total),
            Target::None,
        );
        figs.add(
            format!("{label} first invocation, first body byte"),
            "ms",
            col(&runs, |r| r.first_byte),
            Target::None,
        );
        figs.add(
            format!("{label} first invocation over the agent's time"),
            "ms",
            col(&runs, |r| r.first_total - agent_ms),
            Target::AtMost(30.0),
        );
    }
    Ok(Measured {
        figures: figs,
        how: Section::Cold.how(&[("reps", reps.to_string())])?,
        notes: Vec::new(),
    })
}

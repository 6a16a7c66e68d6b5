//! Section 2, time to first byte of the streaming options: direct, harness and stack, interleaved.

use anyhow::Result;
use serde_json::json;

use super::{Measured, Section};
use crate::clients::{invoke_harness, invoke_http, invoke_streaming_api, payload, retry, Function};
use crate::context::Ctx;
use crate::report::{col, Figures, Target};

/// One repetition: the first byte of the same request on each path (ms).
struct TtfbRep {
    direct: f64,
    harness2: f64,
    harness3: f64,
    stack2: f64,
    stack3: f64,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let n = ctx.plan.latency_reps;
    let pl = payload(json!({"tokens": 3, "delay_ms": 10}));
    let o2 = ctx.warm(Function::Option2, &pl, 2).await?;
    let o3 = ctx.warm(Function::Option3, &pl, 2).await?;
    let url2 = ctx.stack()?.urls().option2.clone();
    let lambda = ctx.lambda()?;
    let stack2 = || {
        retry("option 2 Function URL", || {
            invoke_http(&ctx.http, &url2, &pl, false)
        })
    };
    let stack3 = || {
        retry("option 3 InvokeWithResponseStream", || {
            invoke_streaming_api(lambda, Function::Option3, &pl)
        })
    };
    let measured: Result<Vec<TtfbRep>> = async {
        for _ in 0..2 {
            ctx.direct.invoke(&pl, false).await?;
            stack2().await?;
            stack3().await?;
        }
        let mut reps = Vec::with_capacity(n);
        for _ in 0..n {
            reps.push(TtfbRep {
                direct: ctx.direct.invoke(&pl, false).await?.ttfb_ms()?,
                harness2: invoke_harness(&o2, Function::Option2, &pl, false)
                    .await?
                    .ttfb_ms()?,
                harness3: invoke_harness(&o3, Function::Option3, &pl, false)
                    .await?
                    .ttfb_ms()?,
                stack2: stack2().await?.ttfb_ms()?,
                stack3: stack3().await?.ttfb_ms()?,
            });
        }
        Ok(reps)
    }
    .await;
    o2.kill().await;
    o3.kill().await;
    let reps = measured?;
    let mut figs = Figures::new(Section::Ttfb);
    figs.add(
        "direct to agentcore-local (AWS SDK)",
        "ms",
        col(&reps, |r| r.direct),
        Target::None,
    );
    figs.add(
        "option 2, harness (Runtime API only)",
        "ms",
        col(&reps, |r| r.harness2),
        Target::None,
    );
    figs.add(
        "option 3, harness (Runtime API only)",
        "ms",
        col(&reps, |r| r.harness3),
        Target::None,
    );
    figs.add(
        "option 2 handler-added (harness − direct)",
        "ms",
        col(&reps, |r| r.harness2 - r.direct),
        Target::AtMost(3.0),
    );
    figs.add(
        "option 3 handler-added (harness − direct)",
        "ms",
        col(&reps, |r| r.harness3 - r.direct),
        Target::AtMost(3.0),
    );
    figs.add(
        "option 2 via stack (Function URL, cargo lambda watch)",
        "ms",
        col(&reps, |r| r.stack2),
        Target::None,
    );
    figs.add(
        "option 3 via stack (InvokeWithResponseStream, watch + shim)",
        "ms",
        col(&reps, |r| r.stack3),
        Target::None,
    );
    figs.add(
        "option 2 stack-added (stack − direct; includes watch)",
        "ms",
        col(&reps, |r| r.stack2 - r.direct),
        Target::None,
    );
    figs.add(
        "option 3 stack-added (stack − direct; includes watch + shim)",
        "ms",
        col(&reps, |r| r.stack3 - r.direct),
        Target::None,
    );
    Ok(Measured {
        figures: figs,
        how: Section::Ttfb.how(&[("n", n.to_string())])?,
        notes: Vec::new(),
    })
}

//! Section 4, option 2's throughput, memory and CPU against direct and a bare TCP relay, with
//! every process on every CPU (shared) and with the function alone on its own CPU
//! (isolated, as on Lambda).

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{Measured, Section};
use crate::clients::{invoke_harness, invoke_http, payload, retry, Direct, Function, Timed};
use crate::context::Ctx;
use crate::harness::{cpu_time, peak_rss_bytes, pin, voluntary_switches};
use crate::machine::{cpus, DriverPin};
use crate::relay::RelayProcess;
use crate::report::{col, Figures, Target};

/// MB (10^6 bytes) as the sizes are labelled.
pub(super) fn size_label(bytes: u64) -> String {
    format!("{} MB", bytes / 1_000_000)
}

/// One repetition with every process on every CPU.
struct SharedRep {
    /// MB/s of each path.
    direct: f64,
    harness: f64,
    stack: f64,
    relay: f64,
    /// The function's peak RSS (MiB).
    rss_mib: f64,
    /// The function's CPU time per 100 MB (ms).
    function_ms_per_100mb: f64,
    /// CPUs busy during direct (driver) and during the harness answer (driver + function).
    busy_direct: f64,
    busy_harness: f64,
    /// The harness path's CPU work spread over every CPU with no idle time, against the
    /// direct answer's wall time (% of direct).
    ceiling: f64,
}

/// Cores busy during the isolated answers.
struct IsolatedBusy {
    direct_cpu0: f64,
    harness_cpu0: f64,
    harness_cpu1: f64,
    relay_cpu0: f64,
    relay_cpu1: f64,
}

/// One repetition with the driver on CPU 0 and the function (or relay) on CPU 1.
struct IsolatedRep {
    /// MB/s of each path.
    direct: f64,
    harness: f64,
    relay: f64,
    busy: IsolatedBusy,
    /// Voluntary context switches per 100 MB.
    function_waits: f64,
    relay_waits: f64,
    /// Option 2 / direct if CPU 0 (driver) or CPU 1 (function) were fully busy (%).
    driver_ceiling: f64,
    function_ceiling: f64,
    /// The function's CPU time per 100 MB (ms).
    function_ms_per_100mb: f64,
}

/// A "CPU busy" figure of the isolated runs: its name and how to read it.
type BusyFigure = (&'static str, fn(&IsolatedRep) -> f64);

/// One repetition at one size.
struct ThroughputRep {
    shared: SharedRep,
    /// None on a machine with one CPU.
    isolated: Option<IsolatedRep>,
}

/// One measured answer through option 2 under the harness, in a fresh process.
struct HarnessRun {
    timed: Timed,
    peak_rss: u64,
    function_cpu: Duration,
    driver_cpu: Duration,
    /// Voluntary context switches of the function during the answer.
    function_waits: u64,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let (reps, sizes) = (ctx.plan.reps, ctx.plan.sizes);
    let ncpu = cpus();
    let agent_addr = ctx
        .agent_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let relay = RelayProcess::spawn(&agent_addr).await?;
    let via_relay = Direct::new(relay.url()).await;
    let mut figs = Figures::new(Section::Throughput);
    let measured = measure_sizes(ctx, ncpu, &relay, &via_relay, &mut figs).await;
    relay.kill().await;
    measured?;
    Ok(Measured {
        figures: figs,
        how: Section::Throughput.how(&[
            ("small", sizes[0].to_string()),
            ("large", sizes[1].to_string()),
            ("reps", reps.to_string()),
            ("ncpu", ncpu.to_string()),
        ])?,
        notes: Vec::new(),
    })
}

/// Every size in turn: the repetitions, then its figures.
async fn measure_sizes(
    ctx: &Ctx,
    ncpu: usize,
    relay: &RelayProcess,
    via_relay: &Direct,
    figs: &mut Figures,
) -> Result<()> {
    let sizes = ctx.plan.sizes;
    let mut rss_by_size: Vec<Vec<f64>> = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let pl = payload(json!({"total_bytes": size}));
        // Warm both clients' connections before the first timed answer.
        ctx.direct
            .invoke(&payload(json!({"tokens": 3})), false)
            .await?;
        via_relay
            .invoke(&payload(json!({"tokens": 3})), false)
            .await?;
        let mut reps = Vec::with_capacity(ctx.plan.reps);
        for _ in 0..ctx.plan.reps {
            let shared = shared_rep(ctx, &pl, size, via_relay, ncpu).await?;
            let isolated = if ncpu >= 2 {
                Some(isolated_rep(ctx, &pl, size, relay, via_relay, ncpu).await?)
            } else {
                None
            };
            reps.push(ThroughputRep { shared, isolated });
        }
        let last = i + 1 == sizes.len();
        add_figures(figs, &size_label(size), &reps, last, ncpu);
        rss_by_size.push(col(&reps, |r| r.shared.rss_mib));
    }
    if let [small, large] = rss_by_size.as_slice() {
        let growth: Vec<f64> = large
            .iter()
            .zip(small)
            .map(|(l, s)| 100.0 * (l / s - 1.0))
            .collect();
        figs.add(
            format!(
                "peak RSS growth {} vs {}",
                size_label(sizes[1]),
                size_label(sizes[0])
            ),
            "%",
            growth,
            Target::AtMost(10.0),
        );
    }
    Ok(())
}

/// Shared CPUs: the driver (agent, Runtime API, clients) and the function on all CPUs.
async fn shared_rep(
    ctx: &Ctx,
    pl: &Value,
    size: u64,
    via_relay: &Direct,
    ncpu: usize,
) -> Result<SharedRep> {
    let url2 = &ctx.stack()?.urls().option2;
    let (td, direct_cpu) = direct_run(ctx, pl, size, "direct").await?;
    let run = harness_run(ctx, pl, None).await?;
    check_size(&run.timed, size, "option 2 harness")?;
    let ts = retry("option 2 Function URL", || {
        invoke_http(&ctx.http, url2, pl, false)
    })
    .await?;
    check_size(&ts, size, "option 2 stack")?;
    let tr = via_relay.invoke(pl, false).await?;
    check_size(&tr, size, "bare relay")?;
    let th = &run.timed;
    let harness_cpu = run.driver_cpu + run.function_cpu;
    Ok(SharedRep {
        direct: td.mb_per_s(),
        harness: th.mb_per_s(),
        stack: ts.mb_per_s(),
        relay: tr.mb_per_s(),
        rss_mib: run.peak_rss as f64 / 1_048_576.0,
        function_ms_per_100mb: run.function_cpu.as_secs_f64() * 1e3 * 100_000_000.0 / size as f64,
        busy_direct: direct_cpu.as_secs_f64() / (td.total_ms() / 1e3),
        busy_harness: harness_cpu.as_secs_f64() / (th.total_ms() / 1e3),
        // The fastest the harness path could go here: all its CPU work spread over
        // every CPU with no idle time, against the direct answer's wall time.
        ceiling: 100.0 * (td.total_ms() / 1e3) * ncpu as f64 / harness_cpu.as_secs_f64(),
    })
}

/// Isolated CPUs: the driver on CPU 0, the function alone on CPU 1, as on Lambda, where
/// AgentCore and the client are other machines and the function has its own CPU. Direct
/// is measured on the same one CPU as the driver.
async fn isolated_rep(
    ctx: &Ctx,
    pl: &Value,
    size: u64,
    relay: &RelayProcess,
    via_relay: &Direct,
    ncpu: usize,
) -> Result<IsolatedRep> {
    let me = std::process::id();
    let pinned = DriverPin::to("0", ncpu)?;
    let before = direct_run(ctx, pl, size, "direct (CPU 0)").await?;
    let run = harness_run(ctx, pl, Some("1")).await?;
    check_size(&run.timed, size, "option 2 harness (CPU 1)")?;
    pin(relay.pid(), "1")?;
    let (m0, r0) = (cpu_time(me)?, cpu_time(relay.pid())?);
    let rw0 = voluntary_switches(relay.pid())?;
    let tr = via_relay.invoke(pl, false).await;
    let rw1 = voluntary_switches(relay.pid())?;
    let (m1, r1) = (cpu_time(me)?, cpu_time(relay.pid())?);
    pin(relay.pid(), &pinned.all)?;
    // Direct again after the others: the faster of the two bracketing runs is the
    // baseline, so that one slow direct answer cannot flatter the ratios.
    let after = direct_run(ctx, pl, size, "direct (CPU 0)").await;
    drop(pinned);
    let tr = tr?;
    check_size(&tr, size, "bare relay (CPU 1)")?;
    let after = after?;
    let (td, direct_cpu) = if after.0.mb_per_s() > before.0.mb_per_s() {
        after
    } else {
        before
    };
    let busy = |cpu: Duration, t: &Timed| cpu.as_secs_f64() / (t.total_ms() / 1e3);
    let per_100mb = |n: u64| n as f64 * 100_000_000.0 / size as f64;
    let mb = size as f64 / 1e6;
    Ok(IsolatedRep {
        direct: td.mb_per_s(),
        harness: run.timed.mb_per_s(),
        relay: tr.mb_per_s(),
        busy: IsolatedBusy {
            direct_cpu0: busy(direct_cpu, &td),
            harness_cpu0: busy(run.driver_cpu, &run.timed),
            harness_cpu1: busy(run.function_cpu, &run.timed),
            relay_cpu0: busy(m1.saturating_sub(m0), &tr),
            relay_cpu1: busy(r1.saturating_sub(r0), &tr),
        },
        function_waits: per_100mb(run.function_waits),
        relay_waits: per_100mb(rw1.saturating_sub(rw0)),
        driver_ceiling: 100.0 * (mb / run.driver_cpu.as_secs_f64()) / td.mb_per_s(),
        function_ceiling: 100.0 * (mb / run.function_cpu.as_secs_f64()) / td.mb_per_s(),
        function_ms_per_100mb: run.function_cpu.as_secs_f64() * 1e3 * 100_000_000.0 / size as f64,
    })
}

/// The figures of one size, in the order of earlier reports.
fn add_figures(figs: &mut Figures, label: &str, reps: &[ThroughputRep], last: bool, ncpu: usize) {
    let s = |f: fn(&SharedRep) -> f64| col(reps, |r| f(&r.shared));
    figs.add(
        format!("{label}: direct"),
        "MB/s",
        s(|r| r.direct),
        Target::None,
    );
    figs.add(
        format!("{label}: option 2 harness"),
        "MB/s",
        s(|r| r.harness),
        Target::None,
    );
    figs.add(
        format!("{label}: option 2 harness / direct (shared CPUs)"),
        "%",
        s(|r| 100.0 * r.harness / r.direct),
        Target::None,
    );
    figs.add(
        format!("{label}: bare relay (shared CPUs)"),
        "MB/s",
        s(|r| r.relay),
        Target::None,
    );
    figs.add(
        format!("{label}: bare relay / direct (shared CPUs)"),
        "%",
        s(|r| 100.0 * r.relay / r.direct),
        Target::None,
    );
    let iso: Vec<&IsolatedRep> = reps.iter().filter_map(|r| r.isolated.as_ref()).collect();
    if !iso.is_empty() {
        let i = |f: fn(&IsolatedRep) -> f64| col(&iso, |r| f(r));
        figs.add(
            format!("{label}: direct, driver alone on CPU 0"),
            "MB/s",
            i(|r| r.direct),
            Target::None,
        );
        figs.add(
            format!("{label}: option 2 harness, function alone on CPU 1"),
            "MB/s",
            i(|r| r.harness),
            Target::None,
        );
        figs.add(
            format!("{label}: option 2 harness / direct (isolated CPUs)"),
            "%",
            i(|r| 100.0 * r.harness / r.direct),
            if last {
                Target::AtLeast(90.0)
            } else {
                Target::None
            },
        );
        figs.add(
            format!("{label}: bare relay alone on CPU 1"),
            "MB/s",
            i(|r| r.relay),
            Target::None,
        );
        figs.add(
            format!("{label}: bare relay / direct (isolated CPUs)"),
            "%",
            i(|r| 100.0 * r.relay / r.direct),
            Target::None,
        );
        figs.add(
            format!("{label}: option 2 harness / bare relay (isolated CPUs)"),
            "%",
            i(|r| 100.0 * r.harness / r.relay),
            Target::None,
        );
        if last {
            let busy: [BusyFigure; 5] = [
                ("CPU 0 busy during direct (driver)", |r| r.busy.direct_cpu0),
                (
                    "CPU 0 busy during option 2 (driver: agent + Runtime API)",
                    |r| r.busy.harness_cpu0,
                ),
                ("CPU 1 busy during option 2 (function)", |r| {
                    r.busy.harness_cpu1
                }),
                (
                    "CPU 0 busy during bare relay (driver: agent + client)",
                    |r| r.busy.relay_cpu0,
                ),
                ("CPU 1 busy during bare relay (relay)", |r| {
                    r.busy.relay_cpu1
                }),
            ];
            for (name, value) in busy {
                figs.add(
                    format!("{label}, isolated: {name}"),
                    "cores",
                    i(value),
                    Target::None,
                );
            }
            figs.add(
                format!(
                    "{label}, isolated: option 2 / direct if CPU 0 were fully busy (driver's CPU per byte)"
                ),
                "%",
                i(|r| r.driver_ceiling),
                Target::None,
            );
            figs.add(
                format!(
                    "{label}, isolated: option 2 / direct if CPU 1 were fully busy (function's CPU per byte)"
                ),
                "%",
                i(|r| r.function_ceiling),
                Target::None,
            );
            figs.add(
                format!(
                    "{label}, isolated: function waits (voluntary context switches) per 100 MB"
                ),
                "",
                i(|r| r.function_waits),
                Target::None,
            );
            figs.add(
                format!(
                    "{label}, isolated: bare relay waits (voluntary context switches) per 100 MB"
                ),
                "",
                i(|r| r.relay_waits),
                Target::None,
            );
            figs.add(
                format!("{label}, isolated: option 2 CPU time per 100 MB (function process)"),
                "ms",
                i(|r| r.function_ms_per_100mb),
                Target::None,
            );
        }
    }
    figs.add(
        format!("{label}: option 2 via stack (Function URL, watch)"),
        "MB/s",
        s(|r| r.stack),
        Target::None,
    );
    figs.add(
        format!("{label}: option 2 via stack / direct"),
        "%",
        s(|r| 100.0 * r.stack / r.direct),
        Target::None,
    );
    figs.add(
        format!("{label}: option 2 peak RSS (VmHWM)"),
        "MiB",
        s(|r| r.rss_mib),
        Target::AtMost(24.0),
    );
    figs.add(
        format!("{label}: option 2 CPU time per 100 MB (function process)"),
        "ms",
        s(|r| r.function_ms_per_100mb),
        Target::None,
    );
    if last {
        figs.add(
            format!("{label}: CPUs busy during direct (driver: agent + client)"),
            "cores",
            s(|r| r.busy_direct),
            Target::None,
        );
        figs.add(
            format!("{label}: CPUs busy during option 2 harness (driver + function)"),
            "cores",
            s(|r| r.busy_harness),
            Target::None,
        );
        figs.add(
            format!("{label}: shared-CPU ceiling of harness / direct (CPU work ÷ {ncpu} CPUs)"),
            "%",
            s(|r| r.ceiling),
            Target::None,
        );
    }
}

/// Streams `pl` through a fresh option 2 process; with `cpu` set, the process is pinned
/// to that CPU list first.
async fn harness_run(ctx: &Ctx, pl: &Value, cpu: Option<&str>) -> Result<HarnessRun> {
    let me = std::process::id();
    let (p, _) = ctx.spawn(Function::Option2, None).await?;
    let measured: Result<HarnessRun> = async {
        if let Some(cpus) = cpu {
            pin(p.pid(), cpus)?;
        }
        let w0 = voluntary_switches(p.pid())?;
        let c0 = cpu_time(p.pid())?;
        let m0 = cpu_time(me)?;
        let timed = invoke_harness(&p, Function::Option2, pl, false).await?;
        let m1 = cpu_time(me)?;
        let c1 = cpu_time(p.pid())?;
        let w1 = voluntary_switches(p.pid())?;
        Ok(HarnessRun {
            timed,
            peak_rss: peak_rss_bytes(p.pid())?,
            function_cpu: c1.saturating_sub(c0),
            driver_cpu: m1.saturating_sub(m0),
            function_waits: w1.saturating_sub(w0),
        })
    }
    .await;
    p.kill().await;
    measured
}

/// A direct answer of `size` bytes, and the driver's CPU time for it.
async fn direct_run(ctx: &Ctx, pl: &Value, size: u64, what: &str) -> Result<(Timed, Duration)> {
    let me = std::process::id();
    let m0 = cpu_time(me)?;
    let td = ctx.direct.invoke(pl, false).await?;
    let cpu = cpu_time(me)?.saturating_sub(m0);
    check_size(&td, size, what)?;
    Ok((td, cpu))
}

/// Fails unless the answer had exactly `size` body bytes.
pub(super) fn check_size(t: &Timed, size: u64, what: &str) -> Result<()> {
    if t.obs.body_bytes != size {
        bail!("{what}: {} body bytes, expected {size}", t.obs.body_bytes);
    }
    Ok(())
}

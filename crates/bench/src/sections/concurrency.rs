//! Section 9, many streams in one process (#16, Lambda Managed Instances): one option 2
//! process with `AWS_LAMBDA_MAX_CONCURRENCY` = N relays N paced streams at once, for N = 1,
//! 16, 256 and 1,024. Per level: its memory with every poller waiting and at its peak, its
//! CPU, the latency of every event from the agent to the Runtime API against the same N
//! streams sent straight to agentcore-local, and whether every event arrived intact.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures_util::future::join_all;
use serde_json::{json, Value};

use super::{Measured, Section};
use crate::clients::{harness_observer, payload, Function};
use crate::context::Ctx;
use crate::harness::{peak_rss_bytes, FunctionProcess, Submitted};
use crate::report::{percentile, Figures, Target};

/// Streams at once in one process, one level after the other, each in a fresh process.
const LEVELS: [usize; 4] = [1, 16, 256, 1024];
/// Pause between two events of an answer (ms).
const DELAY_MS: u64 = 100;
/// Events per answer: 100 events 100 ms apart is a 10 s answer (20 with `--quick`).
const TOKENS: u64 = 100;
const QUICK_TOKENS: u64 = 20;
/// The targets of #16, at the largest level.
const TARGET_PEAK_MIB: f64 = 64.0;
const TARGET_BUSY_PERCENT: f64 = 100.0;
const TARGET_ADDED_P99_MS: f64 = 5.0;
/// How long to wait for every poller of a fresh process to reach its `/next`.
const POLLERS_LIMIT: Duration = Duration::from_secs(20);
/// The environment the process gets on top of the harness's: 2048 MB, as the Managed
/// Instances function of option 2's template (one vCPU per environment).
const MEMORY_MB: &str = "2048";

/// What one level measured.
struct Level {
    streams: usize,
    peak_rss_mib: f64,
    idle_rss_mib: f64,
    /// Every poller was at its `/next` when the idle RSS was read.
    pollers_ready: bool,
    /// utime + stime of the process across the burst (clock ticks, and seconds).
    cpu_ticks: u64,
    cpu_s: f64,
    /// Sum over the streams of first body byte → end of body (s).
    stream_seconds: f64,
    /// First event queued → last stream ended (s).
    wall_s: f64,
    harness_p50: f64,
    harness_p99: f64,
    direct_p50: f64,
    direct_p99: f64,
    /// The first event of each stream (the relay's part of its time to first byte while
    /// the other streams of the burst start), p50 and p99.
    first_p50: f64,
    first_p99: f64,
    /// p99 over every event but each stream's first, through the process and direct.
    steady_p99: f64,
    /// Event queued → first body byte at the Runtime API, p50 and p99 (ms).
    ttfb_p50: f64,
    ttfb_p99: f64,
    direct_steady_p99: f64,
    /// The function had a CPU of its own and the driver the others.
    pinned: bool,
    /// Direct answers that failed (the baseline's own errors).
    direct_failed: usize,
    /// Streams without a 200 and a complete answer, hung ones included.
    failed: usize,
    hung: usize,
    /// Events of the expected `streams × tokens` that did not arrive.
    lost_events: u64,
    /// Body bytes outside well-formed stamped events, or in events out of order.
    corrupt_bytes: u64,
    fds_mid: usize,
    threads_mid: u64,
    /// The first failure, for the notes.
    first_failure: Option<String>,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let tokens = if ctx.plan.quick { QUICK_TOKENS } else { TOKENS };
    let tick_hz = clock_ticks();
    // Diagnosis only: BENCH_CONCURRENCY_LEVELS=256 runs the given levels alone (with a
    // profiler in BENCH_FUNCTION_WRAPPER, one level is what fits in its time).
    let chosen: Vec<usize> = match std::env::var("BENCH_CONCURRENCY_LEVELS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .context("BENCH_CONCURRENCY_LEVELS: a list of numbers")
            })
            .collect::<Result<_>>()?,
        Err(_) => LEVELS.to_vec(),
    };
    let mut levels = Vec::with_capacity(chosen.len());
    for &n in &chosen {
        eprintln!("bench:   {} stream(s) in one process ...", thousands(n));
        levels.push(level(ctx, n, tokens, tick_hz).await?);
    }
    let largest = LEVELS[LEVELS.len() - 1];
    let target = |n: usize, t: Target| if n == largest { t } else { Target::None };
    let mut figs = Figures::new(Section::Concurrency);
    let mut notes = Vec::new();
    for l in &levels {
        let n = l.streams;
        let what = format!("{} stream{}", thousands(n), if n == 1 { "" } else { "s" });
        figs.add(
            format!("{what}: peak RSS (VmHWM)"),
            "MiB",
            vec![l.peak_rss_mib],
            target(n, Target::AtMost(TARGET_PEAK_MIB)),
        );
        figs.add(
            format!("{what}: RSS with every poller waiting, before the burst"),
            "MiB",
            vec![l.idle_rss_mib],
            Target::None,
        );
        figs.add(
            format!("{what}: CPU per stream-second (utime + stime)"),
            "ms",
            vec![if l.stream_seconds > 0.0 {
                l.cpu_s * 1e3 / l.stream_seconds
            } else {
                f64::NAN
            }],
            Target::None,
        );
        figs.add(
            format!("{what}: CPU busy (share of one core)"),
            "%",
            vec![if l.wall_s > 0.0 {
                l.cpu_s * 100.0 / l.wall_s
            } else {
                f64::NAN
            }],
            target(n, Target::AtMost(TARGET_BUSY_PERCENT)),
        );
        figs.add(
            format!("{what}: event p50, agent → Runtime API"),
            "ms",
            vec![l.harness_p50],
            Target::None,
        );
        // The target is checked on the whole of this p99, an upper bound of what the
        // function adds: at 1,024 the direct baseline below carries the driver's own burst
        // (its SDK calls start at once too) and came out above it, which would make
        // "harness − direct" negative and say nothing.
        figs.add(
            format!("{what}: event p99, agent → Runtime API (bounds the added p99)"),
            "ms",
            vec![l.harness_p99],
            target(n, Target::AtMost(TARGET_ADDED_P99_MS)),
        );
        figs.add(
            format!("{what}: event p50, direct (same N straight to the agent)"),
            "ms",
            vec![l.direct_p50],
            Target::None,
        );
        figs.add(
            format!("{what}: event p99, direct"),
            "ms",
            vec![l.direct_p99],
            Target::None,
        );
        figs.add(
            format!("{what}: added p50 (harness − direct)"),
            "ms",
            vec![l.harness_p50 - l.direct_p50],
            Target::None,
        );
        figs.add(
            format!("{what}: added p99 (harness − direct)"),
            "ms",
            vec![l.harness_p99 - l.direct_p99],
            Target::None,
        );
        figs.add(
            format!("{what}: first event of each stream, p50 (during the burst's start)"),
            "ms",
            vec![l.first_p50],
            Target::None,
        );
        figs.add(
            format!("{what}: first event of each stream, p99"),
            "ms",
            vec![l.first_p99],
            Target::None,
        );
        figs.add(
            format!("{what}: added p99 over the events after each stream's first"),
            "ms",
            vec![l.steady_p99 - l.direct_steady_p99],
            Target::None,
        );
        figs.add(
            format!("{what}: time to first byte, p50 (event queued → first body byte)"),
            "ms",
            vec![l.ttfb_p50],
            Target::None,
        );
        figs.add(
            format!("{what}: time to first byte, p99"),
            "ms",
            vec![l.ttfb_p99],
            Target::None,
        );
        figs.add(
            format!("{what}: failed streams (hung included)"),
            "",
            vec![l.failed as f64],
            Target::AtMost(0.0),
        );
        figs.add(
            format!(
                "{what}: events lost (of {})",
                thousands_u64(n as u64 * tokens)
            ),
            "",
            vec![l.lost_events as f64],
            Target::AtMost(0.0),
        );
        figs.add(
            format!("{what}: corrupted bytes (outside well-formed, ordered events)"),
            "",
            vec![l.corrupt_bytes as f64],
            Target::AtMost(0.0),
        );
        figs.add(
            format!("{what}: open file descriptors mid-stream"),
            "",
            vec![l.fds_mid as f64],
            Target::None,
        );
        notes.push(format!(
            "Concurrency, {what}: wall {:.1} s, CPU {} clock ticks ({:.2} s) over {:.0} \
             stream-seconds, {} thread(s) mid-stream, event p99 after each stream's first \
             {:.2} ms (direct {:.2} ms){}{}{}{}",
            l.wall_s,
            l.cpu_ticks,
            l.cpu_s,
            l.stream_seconds,
            l.threads_mid,
            l.steady_p99,
            l.direct_steady_p99,
            if l.pinned {
                ""
            } else {
                "; not pinned (one CPU, or taskset failed): function and driver shared the CPUs"
            },
            if l.pollers_ready {
                ""
            } else {
                "; not every poller had reached /next when the idle RSS was read"
            },
            if l.hung > 0 {
                format!("; {} stream(s) hung", l.hung)
            } else {
                String::new()
            },
            if l.direct_failed > 0 {
                format!(
                    "; {} direct answer(s) failed (baseline over the rest)",
                    l.direct_failed
                )
            } else {
                String::new()
            },
        ));
        if let Some(why) = &l.first_failure {
            notes.push(format!("Concurrency, {what}: first failure: {why}"));
        }
    }
    Ok(Measured {
        figures: figs,
        how: Section::Concurrency.how(&[
            (
                "levels",
                LEVELS
                    .iter()
                    .map(|n| thousands(*n))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("tokens", tokens.to_string()),
            ("delay", DELAY_MS.to_string()),
            (
                "seconds",
                format!("{}", Duration::from_millis(tokens * DELAY_MS).as_secs_f64()),
            ),
            ("memory", MEMORY_MB.to_owned()),
            ("largest", thousands(largest)),
            ("peak", format!("{TARGET_PEAK_MIB:.0}")),
            ("added", format!("{TARGET_ADDED_P99_MS:.0}")),
            ("limit", limit(tokens).as_secs().to_string()),
        ])?,
        notes,
    })
}

/// A stream with no end after this long has hung.
fn limit(tokens: u64) -> Duration {
    Duration::from_millis(tokens * DELAY_MS) * 4 + Duration::from_secs(60)
}

/// The request of stream `i`: its own prompt and session, a paced stamped answer.
fn stream_payload(i: usize, tokens: u64) -> Value {
    let mut p = payload(json!({"tokens": tokens, "delay_ms": DELAY_MS, "stamp": true}));
    p["prompt"] = json!(format!("concurrency stream {i}"));
    p["session_id"] = json!(format!(
        "bench-concurrency-{i:05}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    p
}

/// One level: a fresh process with `AWS_LAMBDA_MAX_CONCURRENCY` = `n`, `n` streams at once,
/// then the same `n` straight to the agent.
async fn level(ctx: &Ctx, n: usize, tokens: u64, tick_hz: f64) -> Result<Level> {
    let concurrency = n.to_string();
    let p = ctx
        .spawn_with_env(
            Function::Option2,
            &[
                ("AWS_LAMBDA_MAX_CONCURRENCY", concurrency.as_str()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB),
            ],
        )
        .await?;
    let pinned = pin_apart(p.pid());
    let measured = burst(&p, n, tokens, tick_hz).await;
    p.kill().await;
    let mut l = measured?;
    l.pinned = pinned.is_some();

    // The baseline: the same number of answers at once, straight to agentcore-local.
    let pl = payload(json!({"tokens": tokens, "delay_ms": DELAY_MS, "stamp": true}));
    let answers = join_all((0..n).map(|_| ctx.direct.invoke(&pl, true))).await;
    let mut direct = Vec::with_capacity(n * tokens as usize);
    let mut direct_steady = Vec::with_capacity(n * tokens as usize);
    for a in answers {
        match a {
            Ok(t) => {
                direct.extend_from_slice(&t.obs.latencies_us);
                direct_steady.extend(t.obs.latencies_us.iter().skip(1));
            }
            Err(_) => l.direct_failed += 1,
        }
    }
    if direct.is_empty() {
        bail!("{n} streams: every direct answer failed");
    }
    l.direct_p50 = ms_percentile(&direct, 50.0);
    l.direct_p99 = ms_percentile(&direct, 99.0);
    l.direct_steady_p99 = ms_percentile(&direct_steady, 99.0);
    Ok(l)
}

/// The `n` streams through process `p`, and the readings of `/proc` around them.
async fn burst(p: &FunctionProcess, n: usize, tokens: u64, tick_hz: f64) -> Result<Level> {
    let pid = p.pid();
    let pollers_ready = wait_for_pollers(pid, n).await;
    let idle_rss_mib = status_number(pid, "VmRSS:")? as f64 / 1024.0;

    let ticks_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let mut submitted = Vec::with_capacity(n);
    for i in 0..n {
        let event = Function::Option2.event(&stream_payload(i, tokens))?;
        let sub = p.submit(event, harness_observer(Function::Option2, true, true))?;
        submitted.push((Instant::now(), sub));
    }
    // Half-way through the answers: the sockets and threads of the process.
    let mid = async {
        tokio::time::sleep(Duration::from_millis(tokens * DELAY_MS / 2)).await;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        (fds, status_number(pid, "Threads:").unwrap_or(0))
    };
    let limit = limit(tokens);
    let (ended, (fds_mid, threads_mid)) = tokio::join!(
        join_all(
            submitted
                .into_iter()
                .map(|(queued, s)| read(s, queued, tokens, limit))
        ),
        mid
    );
    let wall_s = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid)?.saturating_sub(ticks_before);
    let peak_rss_mib = peak_rss_bytes(pid)? as f64 / (1024.0 * 1024.0);

    let mut latencies = Vec::with_capacity(n * tokens as usize);
    let mut firsts = Vec::with_capacity(n);
    let mut steady = Vec::with_capacity(n * tokens as usize);
    let mut ttfbs = Vec::with_capacity(n);
    let mut l = Level {
        streams: n,
        peak_rss_mib,
        idle_rss_mib,
        pollers_ready,
        cpu_ticks: ticks,
        cpu_s: ticks as f64 / tick_hz,
        stream_seconds: 0.0,
        wall_s,
        harness_p50: f64::NAN,
        harness_p99: f64::NAN,
        direct_p50: f64::NAN,
        direct_p99: f64::NAN,
        first_p50: f64::NAN,
        first_p99: f64::NAN,
        steady_p99: f64::NAN,
        ttfb_p50: f64::NAN,
        ttfb_p99: f64::NAN,
        direct_steady_p99: f64::NAN,
        pinned: false,
        direct_failed: 0,
        failed: 0,
        hung: 0,
        lost_events: 0,
        corrupt_bytes: 0,
        fds_mid,
        threads_mid,
        first_failure: None,
    };
    for (i, e) in ended.into_iter().enumerate() {
        l.stream_seconds += e.seconds;
        l.lost_events += tokens.saturating_sub(e.events);
        l.corrupt_bytes += e.corrupt_bytes;
        latencies.extend_from_slice(&e.latencies_us);
        ttfbs.extend(e.ttfb_us);
        if let Some((first, rest)) = e.latencies_us.split_first() {
            firsts.push(*first);
            steady.extend_from_slice(rest);
        }
        if let Some(why) = e.failure {
            l.failed += 1;
            l.hung += usize::from(e.hung);
            l.first_failure
                .get_or_insert_with(|| format!("stream {i}: {why}"));
        }
    }
    // `percentile` is NaN for no samples, which the report prints as such.
    l.harness_p50 = ms_percentile(&latencies, 50.0);
    l.harness_p99 = ms_percentile(&latencies, 99.0);
    l.first_p50 = ms_percentile(&firsts, 50.0);
    l.first_p99 = ms_percentile(&firsts, 99.0);
    l.steady_p99 = ms_percentile(&steady, 99.0);
    l.ttfb_p50 = ms_percentile(&ttfbs, 50.0);
    l.ttfb_p99 = ms_percentile(&ttfbs, 99.0);
    Ok(l)
}

/// Percentile `p` of samples in µs, in ms.
fn ms_percentile(us: &[i64], p: f64) -> f64 {
    percentile(us, p) / 1e3
}

/// How one stream ended.
#[derive(Default)]
struct Ended {
    /// Why it is not a complete 200 answer; `None` when it is.
    failure: Option<String>,
    hung: bool,
    /// Well-formed stamped events, in order.
    events: u64,
    corrupt_bytes: u64,
    latencies_us: Vec<i64>,
    /// Event queued → first body byte (µs).
    ttfb_us: Option<i64>,
    /// First body byte → end of body (s).
    seconds: f64,
}

/// Waits for one stream's answer (its event queued at `queued`), up to `limit`, and checks
/// its bytes.
async fn read(sub: Submitted, queued: Instant, tokens: u64, limit: Duration) -> Ended {
    let deadline = tokio::time::Instant::now() + limit;
    let hung = |why: &str| Ended {
        failure: Some(why.to_owned()),
        hung: true,
        ..Ended::default()
    };
    let answer = match sub.wait(deadline).await {
        Ok((_, answer)) => answer,
        Err(why) => return hung(why),
    };
    let a = match answer {
        Ok(a) => a,
        Err(why) => {
            return Ended {
                failure: Some(why),
                ..Ended::default()
            }
        }
    };
    let (events, corrupt_bytes) = check_events(&a.obs.body, tokens);
    let status = a.obs.prelude_status();
    let failure = if status != Some(200) {
        Some(format!("status {status:?}"))
    } else if events != tokens || corrupt_bytes != 0 {
        Some(format!(
            "{events} well-formed events of {tokens}, {corrupt_bytes} corrupted byte(s)"
        ))
    } else {
        None
    };
    Ended {
        failure,
        hung: false,
        events,
        corrupt_bytes,
        seconds: a
            .obs
            .first_body
            .map_or(0.0, |first| (a.done - first).as_secs_f64()),
        ttfb_us: a.obs.first_body.map(|first| {
            i64::try_from(first.saturating_duration_since(queued).as_micros()).unwrap_or(i64::MAX)
        }),
        latencies_us: a.obs.latencies_us,
    }
}

/// Splits a stamped answer into its events (`data: "<µs> "` and a blank line): the number
/// of well-formed events with non-decreasing stamps (at most `tokens`), and the bytes of
/// everything else (a malformed or out-of-order event, an event beyond `tokens`, a
/// truncated tail).
fn check_events(body: &[u8], tokens: u64) -> (u64, u64) {
    let mut rest = body;
    let mut events = 0u64;
    let mut corrupt = 0u64;
    let mut last = 0u64;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\n\n") else {
            corrupt += rest.len() as u64;
            break;
        };
        let (event, tail) = rest.split_at(end + 2);
        rest = tail;
        let stamp = event
            .strip_prefix(b"data: \"")
            .and_then(|e| e.strip_suffix(b" \"\n\n"))
            .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok());
        match stamp {
            Some(s) if s >= last && events < tokens => {
                last = s;
                events += 1;
            }
            _ => corrupt += event.len() as u64,
        }
    }
    (events, corrupt)
}

/// Gives process `pid` (the function) the last CPU and this driver the others, as a
/// Managed Instances environment of 2 GiB has one vCPU of its own: the function's latency
/// is then not the driver's (agentcore-local and the Runtime API, in this process). Returns
/// what gives the driver every CPU back when dropped, or `None` (one CPU, or `taskset`
/// failed).
fn pin_apart(pid: u32) -> Option<DriverCpus> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    if cpus < 2 {
        return None;
    }
    let all = format!("0-{}", cpus - 1);
    let others = if cpus == 2 {
        "0".to_owned()
    } else {
        format!("0-{}", cpus - 2)
    };
    (set_affinity(pid, &(cpus - 1).to_string()) && set_affinity(std::process::id(), &others))
        .then_some(DriverCpus(all))
}

/// The driver's whole CPU list, set again when the level ends, however it ends, so the
/// sections after this one run on every CPU.
struct DriverCpus(String);

impl Drop for DriverCpus {
    fn drop(&mut self) {
        set_affinity(std::process::id(), &self.0);
    }
}

/// `taskset` every thread of `pid` to the CPU `list`; `false` when it failed.
fn set_affinity(pid: u32, list: &str) -> bool {
    std::process::Command::new("taskset")
        .args(["-a", "-c", "-p", list, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until the process holds at least one socket per poller and its count of open
/// files has not changed for half a second (every poller at its `/next`); `false` when
/// that did not happen within [`POLLERS_LIMIT`].
async fn wait_for_pollers(pid: u32, n: usize) -> bool {
    let started = Instant::now();
    let mut last = 0;
    let mut stable_since = Instant::now();
    while started.elapsed() < POLLERS_LIMIT {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        if fds != last {
            last = fds;
            stable_since = Instant::now();
        } else if fds >= n && stable_since.elapsed() >= Duration::from_millis(500) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A number of a `/proc/PID/status` line (`VmRSS:` in KiB, `Threads:`).
fn status_number(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key} number in {path}"))
}

/// utime + stime of a process, dead threads included (`/proc/PID/stat` fields 14 and 15,
/// clock ticks).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("unexpected format of {path}"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count from its closing parenthesis, after
    // which field 3 (state) is index 0, utime (14) index 11 and stime (15) index 12.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(field(11)? + field(12)?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100, Linux's value, when it cannot be read).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn thousands(n: usize) -> String {
    thousands_u64(n as u64)
}

/// `1024` → `1,024`.
fn thousands_u64(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_events_are_counted_and_anything_else_is_corrupt() {
        let good = b"data: \"100 \"\n\ndata: \"200 \"\n\n";
        assert_eq!(check_events(good, 2), (2, 0));
        // One event too many.
        assert_eq!(check_events(good, 1), (1, 14));
        // A truncated tail.
        assert_eq!(check_events(b"data: \"100 \"\n\ndata: \"2", 2), (1, 8));
        // Out of order.
        assert_eq!(
            check_events(b"data: \"200 \"\n\ndata: \"100 \"\n\n", 2),
            (1, 14)
        );
        // Not a stamp.
        assert_eq!(check_events(b"data: \"hello \"\n\n", 1), (0, 16));
        assert_eq!(check_events(b"", 0), (0, 0));
    }

    #[test]
    fn cpu_ticks_and_numbers() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(16), "16");
        assert_eq!(thousands_u64(102_400), "102,400");
    }
}

//! Section 8, load with faults: many concurrent streams on options 2 and 3, one in ten hit by an
//! injected fault (a throttled agent, a connection reset mid-stream, the agent's own error
//! event mid-stream). Every healthy stream must arrive byte-exact, every faulty one must
//! end with its defined outcome, and none may hang.
//!
//! Two paths: the harness, where each stream has a function process of its own (as Lambda
//! gives each concurrent request its own instance), and a local stack of the section's own,
//! where the same burst goes through the Function URL (option 2) and the API Gateway
//! emulator (option 3) to `cargo lambda watch`, whose function processes each serve the
//! whole burst at once (`AWS_LAMBDA_MAX_CONCURRENCY` = the burst; see [`soak_stack`]).

use std::time::{Duration, Instant};

use agentcore_local::{demo_text, DemoFormat};
use anyhow::{Context as _, Result};
use futures_util::future::{join_all, try_join_all};
use futures_util::StreamExt;
use local_stack::{LogSink, Stack, StackOptions};
use serde_json::{json, Value};

use super::{Measured, Section};
use crate::clients::{harness_observer, ms, payload, Function};
use crate::context::Ctx;
use crate::harness::{FunctionProcess, Submitted};
use crate::report::{Figures, Target};

/// Tokens of every answer, and after how many a mid-stream fault strikes.
const TOKENS: u64 = 20;
const FAULT_AFTER: u64 = 4;
/// Pause between tokens (ms): long enough that the streams overlap.
const DELAY_MS: u64 = 5;
/// A stream with no end after this long has hung.
const HARNESS_LIMIT: Duration = Duration::from_secs(60);
/// Longer through the stack, where `cargo lambda watch` schedules the invocations.
const STACK_LIMIT: Duration = Duration::from_secs(180);
/// Wrong outcomes listed in the notes, at most.
const MAX_LISTED: usize = 5;

/// What a stream is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The whole answer.
    Healthy,
    /// The agent answers `ThrottlingException` on every attempt: the function retries,
    /// then answers 429 `throttled` before any byte of the stream.
    Throttled,
    /// The agent's connection is reset after `FAULT_AFTER` tokens: those tokens, then the
    /// function's in-band `event: error` with code `upstream_reset`, then a clean end.
    Reset,
    /// The agent writes its error event after `FAULT_AFTER` tokens: those tokens, then the
    /// function's own `event: error` with code `agent_error`, then a clean end.
    AgentError,
}

impl Kind {
    /// One stream in ten is faulty, the three faults in turn.
    fn of_stream(i: usize) -> Kind {
        if i % 10 != 9 {
            return Kind::Healthy;
        }
        match (i / 10) % 3 {
            0 => Kind::Throttled,
            1 => Kind::Reset,
            _ => Kind::AgentError,
        }
    }

    /// The demo agent's knobs for this kind.
    fn demo(self) -> Value {
        let mut demo = json!({"tokens": TOKENS, "delay_ms": DELAY_MS});
        match self {
            Kind::Healthy => {}
            Kind::Throttled => demo["fault"] = json!("ThrottlingException"),
            Kind::Reset => demo["reset_after"] = json!(FAULT_AFTER),
            Kind::AgentError => demo["error_after"] = json!(FAULT_AFTER),
        }
        demo
    }
}

/// One stream of a wave: what it was asked, and its own prompt, so that an answer that
/// belongs to another stream cannot pass.
struct Stream {
    kind: Kind,
    prompt: String,
}

impl Stream {
    fn new(option: Function, path: &str, i: usize) -> Self {
        Self {
            kind: Kind::of_stream(i),
            prompt: format!("soak {} {path} stream {i}", option.label()),
        }
    }

    fn payload(&self) -> Value {
        let mut p = payload(self.kind.demo());
        p["prompt"] = json!(self.prompt);
        p
    }

    /// The SSE bytes of the first `tokens` tokens of this stream's answer.
    fn events(&self, tokens: u64) -> Vec<u8> {
        demo_text(&self.prompt, tokens)
            .iter()
            .flat_map(|t| agentcore_local::demo::frame_token(DemoFormat::Sse, t))
            .collect()
    }

    /// `Ok` when `status` and `body` are this stream's defined outcome; else what differs.
    fn check(&self, status: Option<u64>, body: &[u8]) -> std::result::Result<(), String> {
        match self.kind {
            Kind::Healthy => {
                expect_status(status, 200)?;
                let want = self.events(TOKENS);
                if body != want.as_slice() {
                    return Err(format!(
                        "{} bytes, expected {} ({})",
                        body.len(),
                        want.len(),
                        first_difference(body, &want)
                    ));
                }
                Ok(())
            }
            Kind::Throttled => {
                expect_status(status, 429)?;
                expect_code(body, "throttled")
            }
            Kind::Reset | Kind::AgentError => {
                expect_status(status, 200)?;
                let want = self.events(FAULT_AFTER);
                let Some(rest) = body.strip_prefix(want.as_slice()) else {
                    return Err(format!(
                        "the {FAULT_AFTER} tokens before the fault differ ({})",
                        first_difference(body, &want)
                    ));
                };
                let Some(data) = rest
                    .strip_prefix(b"event: error\ndata: ")
                    .and_then(|d| d.strip_suffix(b"\n\n"))
                else {
                    let tail = String::from_utf8_lossy(rest);
                    return Err(format!(
                        "after the tokens: {:?}, expected one error event",
                        tail.chars().take(120).collect::<String>()
                    ));
                };
                let code = if self.kind == Kind::Reset {
                    "upstream_reset"
                } else {
                    "agent_error"
                };
                expect_code(data, code)
            }
        }
    }
}

fn expect_status(got: Option<u64>, want: u64) -> std::result::Result<(), String> {
    if got == Some(want) {
        Ok(())
    } else {
        Err(format!("status {got:?}, expected {want}"))
    }
}

/// The JSON error document `{"error": {"code": ...}}` must carry `code`.
fn expect_code(doc: &[u8], code: &str) -> std::result::Result<(), String> {
    let v: Value = serde_json::from_slice(doc).map_err(|e| {
        format!(
            "the error is not JSON ({e}): {}",
            String::from_utf8_lossy(doc)
        )
    })?;
    match v.pointer("/error/code").and_then(Value::as_str) {
        Some(c) if c == code => Ok(()),
        other => Err(format!("error code {other:?}, expected {code}")),
    }
}

fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let near = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.min(b.len())..(at + 40).min(b.len())]).into_owned()
    };
    format!(
        "first difference at byte {at}: {:?} vs {:?}",
        near(got),
        near(want)
    )
}

/// How one stream ended.
struct Ended {
    kind: Kind,
    /// `Ok` for its defined outcome; why not otherwise.
    verdict: std::result::Result<(), String>,
    /// No end within the limit.
    hung: bool,
    /// First body byte and end of the answer (ms since the request).
    first_byte: Option<f64>,
    total: f64,
}

/// One wave of concurrent streams on one option and path.
struct Wave {
    option: Function,
    path: &'static str,
    ended: Vec<Ended>,
    /// First request sent → last stream ended (s).
    wall_s: f64,
}

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let streams = ctx.plan.soak_streams;
    let stack = soak_stack(ctx, streams).await?;
    let mut waves = Vec::new();
    for option in [Function::Option2, Function::Option3] {
        waves.push(harness_wave(ctx, option, streams).await?);
        waves.push(stack_wave(ctx, &stack, option, streams).await?);
    }
    stack.shutdown().await;
    let mut figs = Figures::new(Section::Soak);
    let mut notes = Vec::new();
    for w in &waves {
        let what = format!("{} {}", w.option.label(), w.path);
        let healthy: Vec<&Ended> = w.ended.iter().filter(|e| e.kind == Kind::Healthy).collect();
        let faulty: Vec<&Ended> = w.ended.iter().filter(|e| e.kind != Kind::Healthy).collect();
        let ok = |v: &[&Ended]| v.iter().filter(|e| e.verdict.is_ok()).count() as f64;
        figs.add(
            format!("{what}: healthy streams byte-exact (of {})", healthy.len()),
            "",
            vec![ok(&healthy)],
            Target::AtLeast(healthy.len() as f64),
        );
        figs.add(
            format!(
                "{what}: faulty streams with their defined outcome (of {})",
                faulty.len()
            ),
            "",
            vec![ok(&faulty)],
            Target::AtLeast(faulty.len() as f64),
        );
        figs.add(
            format!("{what}: streams hung (no end within the limit)"),
            "",
            vec![w.ended.iter().filter(|e| e.hung).count() as f64],
            Target::AtMost(0.0),
        );
        figs.add(
            format!("{what}: wall time of the burst of {}", w.ended.len()),
            "s",
            vec![w.wall_s],
            Target::None,
        );
        // Times of the streams that ended: a hung one has no end to time.
        let ended: Vec<&&Ended> = healthy.iter().filter(|e| !e.hung).collect();
        let first_bytes: Vec<f64> = ended.iter().filter_map(|e| e.first_byte).collect();
        if !first_bytes.is_empty() {
            figs.add(
                format!("{what}: healthy stream, first body byte"),
                "ms",
                first_bytes,
                Target::None,
            );
            figs.add(
                format!("{what}: healthy stream, end of answer"),
                "ms",
                ended.iter().map(|e| e.total).collect(),
                Target::None,
            );
        }
        let wrong: Vec<String> = w
            .ended
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.verdict {
                Err(why) => Some(format!("stream {i} ({:?}): {why}", e.kind)),
                Ok(()) => None,
            })
            .collect();
        if !wrong.is_empty() {
            notes.push(format!(
                "Soak, {what}: {} stream(s) without their defined outcome; the first: {}",
                wrong.len(),
                wrong
                    .iter()
                    .take(MAX_LISTED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    let faulty = (0..streams)
        .filter(|i| Kind::of_stream(*i) != Kind::Healthy)
        .count();
    Ok(Measured {
        figures: figs,
        how: Section::Soak.how(&[
            ("streams", streams.to_string()),
            ("faulty", faulty.to_string()),
            ("tokens", TOKENS.to_string()),
            ("delay", DELAY_MS.to_string()),
            ("after", FAULT_AFTER.to_string()),
            ("harness_limit", HARNESS_LIMIT.as_secs().to_string()),
            ("stack_limit", STACK_LIMIT.as_secs().to_string()),
        ])?,
        notes,
    })
}

/// `streams` fresh processes of `option`, one stream each, all sent at once.
async fn harness_wave(ctx: &Ctx, option: Function, streams: usize) -> Result<Wave> {
    eprintln!(
        "bench:   {} harness: starting {streams} processes",
        option.label()
    );
    let spawned = try_join_all((0..streams).map(|_| ctx.spawn(option, None))).await;
    let procs: Vec<FunctionProcess> = match spawned {
        Ok(p) => p.into_iter().map(|(p, _)| p).collect(),
        // The processes already started are killed on drop (kill_on_drop).
        Err(e) => return Err(e.context(format!("starting {streams} processes"))),
    };
    let wave: Vec<Stream> = (0..streams)
        .map(|i| Stream::new(option, "harness", i))
        .collect();
    let measured: Result<(Vec<Ended>, f64)> = async {
        let started = Instant::now();
        let mut submitted = Vec::with_capacity(streams);
        for (p, s) in procs.iter().zip(&wave) {
            let obs = harness_observer(option, false, true);
            submitted.push(p.submit(option.event(&s.payload())?, obs)?);
        }
        let ended = join_all(
            submitted
                .into_iter()
                .zip(&wave)
                .map(|(sub, s)| read_harness_stream(sub, s)),
        )
        .await;
        Ok((ended, started.elapsed().as_secs_f64()))
    }
    .await;
    join_all(procs.into_iter().map(FunctionProcess::kill)).await;
    let (ended, wall_s) = measured?;
    Ok(Wave {
        option,
        path: "harness",
        ended,
        wall_s,
    })
}

/// Waits for one stream's answer from its function's Runtime API, up to the limit.
async fn read_harness_stream(sub: Submitted, stream: &Stream) -> Ended {
    let deadline = tokio::time::Instant::now() + HARNESS_LIMIT;
    let hung = |why: &str| Ended {
        kind: stream.kind,
        verdict: Err(why.to_owned()),
        hung: true,
        first_byte: None,
        total: ms(HARNESS_LIMIT),
    };
    let (served, answer) = match sub.wait(deadline).await {
        Ok(served_and_answer) => served_and_answer,
        Err(why) => return hung(why),
    };
    match answer {
        Ok(a) => Ended {
            kind: stream.kind,
            verdict: stream.check(a.obs.prelude_status(), &a.obs.body),
            hung: false,
            first_byte: a.obs.first_body.map(|t| ms(t - served)),
            total: ms(a.done - served),
        },
        Err(why) => Ended {
            kind: stream.kind,
            verdict: Err(why),
            hung: false,
            first_byte: None,
            total: ms(served.elapsed()),
        },
    }
}

/// A local stack whose function processes each serve `streams` invocations at once.
///
/// Not the run's shared stack (one invocation per process, as on-demand Lambda): cargo lambda
/// watch 1.9.2 deadlocks once more than 100 invocations of one function wait in its queue.
/// `RequestCache::upsert` holds the cache's write lock while it waits for room in the
/// function's 100-slot channel, and the function's `/next` needs the read lock to take one
/// out; a burst of 200 to a one-at-a-time function stalled with 199 streams unanswered.
/// With as many pollers as streams, the queue drains as it fills.
async fn soak_stack(ctx: &Ctx, streams: usize) -> Result<Stack> {
    eprintln!("bench:   starting a stack whose functions serve {streams} invocations per process");
    let opts = StackOptions {
        local_port: 0,
        watch_port: 0,
        apigw_port: 0,
        release: true,
        log: LogSink::File(ctx.log_dir.join("soak-watch.log")),
        max_concurrency: u32::try_from(streams).unwrap_or(u32::MAX),
        ..StackOptions::default()
    };
    Stack::start(opts)
        .await
        .context("starting the soak's local stack")
}

/// The same burst through the stack: option 2's Function URL, option 3's API Gateway.
async fn stack_wave(ctx: &Ctx, stack: &Stack, option: Function, streams: usize) -> Result<Wave> {
    let urls = stack.urls();
    let url = match option {
        Function::Option3 => urls.option3.clone(),
        _ => urls.option2.clone(),
    };
    let path = match option {
        Function::Option3 => "via stack (API Gateway emulator, watch)",
        _ => "via stack (Function URL, watch)",
    };
    eprintln!("bench:   {} {path}: {streams} streams", option.label());
    let wave: Vec<Stream> = (0..streams)
        .map(|i| Stream::new(option, "stack", i))
        .collect();
    let started = Instant::now();
    let ended = join_all(wave.iter().map(|s| read_http_stream(&ctx.http, &url, s))).await;
    Ok(Wave {
        option,
        path,
        ended,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Sends one stream's request over HTTP and reads the answer, up to the limit.
async fn read_http_stream(http: &reqwest::Client, url: &str, stream: &Stream) -> Ended {
    let sent = Instant::now();
    let mut first_byte = None;
    let read = async {
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(stream.payload().to_string())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = u64::from(resp.status().as_u16());
        let mut body = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.context("the answer broke")?;
            if first_byte.is_none() && !chunk.is_empty() {
                first_byte = Some(ms(sent.elapsed()));
            }
            body.extend_from_slice(&chunk);
        }
        anyhow::Ok((status, body))
    };
    let outcome = tokio::time::timeout(STACK_LIMIT, read).await;
    let total = ms(sent.elapsed());
    let (verdict, hung) = match outcome {
        Ok(Ok((status, body))) => (stream.check(Some(status), &body), false),
        Ok(Err(e)) => (Err(format!("{e:#}")), false),
        Err(_) => (Err("no end within the limit".to_owned()), true),
    };
    Ended {
        kind: stream.kind,
        verdict,
        hung,
        first_byte,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_in_ten_is_faulty_and_every_fault_is_used() {
        let kinds: Vec<Kind> = (0..200).map(Kind::of_stream).collect();
        let faulty = kinds.iter().filter(|k| **k != Kind::Healthy).count();
        assert_eq!(faulty, 20);
        for k in [Kind::Throttled, Kind::Reset, Kind::AgentError] {
            assert!(kinds.contains(&k), "{k:?}");
        }
    }

    #[test]
    fn the_checks_accept_the_defined_outcomes_only() {
        let s = Stream::new(Function::Option2, "test", 0);
        let body = s.events(TOKENS);
        assert_eq!(s.check(Some(200), &body), Ok(()));
        assert!(s.check(Some(200), &body[..body.len() - 1]).is_err());
        assert!(s.check(Some(502), &body).is_err());

        let reset = Stream::new(Function::Option2, "test", 19);
        assert_eq!(reset.kind, Kind::Reset);
        let mut body = reset.events(FAULT_AFTER);
        body.extend_from_slice(
            b"event: error\ndata: {\"error\":{\"code\":\"upstream_reset\"}}\n\n",
        );
        assert_eq!(reset.check(Some(200), &body), Ok(()));
        let mut wrong = reset.events(FAULT_AFTER + 1);
        wrong.extend_from_slice(
            b"event: error\ndata: {\"error\":{\"code\":\"upstream_reset\"}}\n\n",
        );
        assert!(reset.check(Some(200), &wrong).is_err());

        let throttled = Stream::new(Function::Option2, "test", 9);
        assert_eq!(throttled.kind, Kind::Throttled);
        let doc = br#"{"error":{"code":"throttled","message":"Too many requests"}}"#;
        assert_eq!(throttled.check(Some(429), doc), Ok(()));
        assert!(throttled.check(Some(200), doc).is_err());
    }
}

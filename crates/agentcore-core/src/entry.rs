//! The Lambda entry points of the handlers: `lambda_http`'s adapters around a
//! [`Gateway`], with one check of the raw event before `lambda_http` converts it.
//!
//! That conversion panics on a body flagged `isBase64Encoded` that is not valid base64
//! (`aws_lambda_events`' `Body::from_maybe_encoded`), before any handler code runs. The
//! check replaces such a body with one that decodes to bytes that are not UTF-8, so the
//! request parser answers it like any other undecodable body: `400 invalid_encoding`.
//!
//! # Many invocations per process
//!
//! Both entry points use `lambda_http`'s concurrent runners. When `AWS_LAMBDA_MAX_CONCURRENCY`
//! is above 1 (Lambda Managed Instances, `PerExecutionEnvironmentMaxConcurrency`), the
//! runtime polls `/next` from that many tasks and this process serves that many requests at
//! once; unset or 1 (on-demand Lambda), it runs the one-at-a-time loop of `run`, unchanged.
//! Nothing a request owns is process-wide: its session, caller, deadline, access record and
//! log span travel with the request, and its X-Ray trace id comes from its invocation
//! context (`lambda_http` writes it into the request's `X-Amzn-Trace-Id` header, which
//! [`crate::headers::TraceHeaders`] reads), never from `_X_AMZN_TRACE_ID`, which the runtime
//! leaves unset in concurrent mode. What the process shares on purpose is immutable or
//! guarded: the configuration, the AgentCore client and its connection pool, the JWT key
//! cache, and the cold-start flag that exactly one request takes.
//!
//! With many invocations at once, the streaming entry point runs the start of each (up to its
//! response's prelude) through a [`StartOrder`]: a burst of arrivals then starts oldest first
//! instead of every start queueing behind every other, and the streams already answering keep
//! their pace (`make bench` section 9: at 1,024 invocations arriving at once, the event p99
//! went from 139 ms to 2.3 ms). The buffered entry point is not ordered: its future is the
//! whole answer, so ordering it would order answers, not starts, and it was not measured.
//!
//! # One thread
//!
//! The option binaries run a current-thread tokio runtime, and that stays right with many
//! invocations per process. On-demand Lambda hands a process one event at a time and gives
//! less than one vCPU below 1,769 MB; `make bench` measured less CPU per byte and a flatter
//! peak RSS than with the multi-threaded runtime (BENCHMARKS.md, section 4). With many
//! invocations, each one is a relay of an I/O-bound stream that costs microseconds of CPU
//! per chunk: a single thread interleaves hundreds of them (the README's section on Managed
//! Instances has the measurement), and one thread keeps the per-chunk path free of
//! cross-thread wake-ups. A deployment that saturates
//! a core would run more execution environments (Managed Instances scale them per vCPU),
//! not more threads in one.

use std::convert::Infallible;

use base64::Engine;
use futures_util::future::Either;
use http_body_util::{BodyDataStream, BodyExt};
use lambda_http::lambda_runtime::{MetadataPrelude, StreamResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceBuilder;
use lambda_http::{service_fn, Adapter, Context, Error, LambdaEvent, Request, RequestExt};

use crate::start_order::StartOrder;
use crate::stream::StreamingBody;
use crate::Gateway;

/// Base64 of the single byte `0xFF`, which is never valid UTF-8.
const NOT_UTF8_BASE64: &str = "/w==";

/// Serves `gateway` as a buffered HTTP function (option 1) until the runtime stops,
/// `AWS_LAMBDA_MAX_CONCURRENCY` requests at a time (see the module documentation).
///
/// The gateway is `&'static` (the mains leak one `Box`, built once at init) rather than
/// lent for the length of `main`, as the runtime's one-at-a-time examples lend theirs:
/// `run_concurrent` spawns a task per poller, and a spawned task may only hold `'static`
/// data. The gateway lives as long as the process anyway.
pub async fn run_buffered(gateway: &'static Gateway) -> Result<(), Error> {
    let service = ServiceBuilder::new()
        .map_request(decodable_body)
        .service(Adapter::from(service_fn(move |req| gateway.buffered(req))));
    lambda_http::lambda_runtime::run_concurrent(service).await
}

/// Serves `gateway` as a streaming HTTP function (options 2 and 3) until the runtime
/// stops, `AWS_LAMBDA_MAX_CONCURRENCY` requests at a time (see the module documentation).
pub async fn run_streaming(gateway: &'static Gateway) -> Result<(), Error> {
    // Not `lambda_http::StreamAdapter`: it is `Send` only for a `Sync` body, and the answer's
    // body is a `Send` stream of the agent's chunks. `stream_invocation` does what it does.
    // Boxed, as the adapters box theirs: each of the runtime's AWS_LAMBDA_MAX_CONCURRENCY
    // pollers is a task whose size includes this future's, so unboxed every idle poller
    // would carry the space of a whole AgentCore call (the SDK's futures are large).
    // With many invocations at once, their starts take the CPU oldest first (StartOrder's
    // documentation has why); one at a time, there is nothing to order.
    let order = (max_concurrency() > 1).then(StartOrder::new);
    // `Ordered` boxes the start itself: one allocation either way.
    let service = service_fn(move |event| {
        let start = stream_invocation(gateway, event);
        match &order {
            Some(order) => Either::Left(order.run(start)),
            None => Either::Right(Box::pin(start)),
        }
    });
    lambda_http::lambda_runtime::run_concurrent(service).await
}

/// Invocations the runtime serves at once: `AWS_LAMBDA_MAX_CONCURRENCY` read as
/// `lambda_runtime` reads it (a number above 0; 1 when unset or not a number).
fn max_concurrency() -> u32 {
    std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(1)
}

/// One streamed invocation: the event checked and converted as `lambda_http`'s
/// `StreamAdapter` converts it, the gateway's answer turned into a prelude and a body.
async fn stream_invocation(
    gateway: &Gateway,
    event: LambdaEvent<LambdaRequest>,
) -> Result<StreamResponse<BodyDataStream<StreamingBody>>, Infallible> {
    let LambdaEvent { payload, context } = decodable_body(event);
    let mut req: Request = payload.into();
    trace_id_from_context(&mut req, &context);
    let resp = gateway.streaming(req.with_lambda_context(context)).await?;
    let (parts, body) = resp.into_parts();
    let mut headers = parts.headers;
    // The prelude carries cookies apart from the headers (as `StreamAdapter` does).
    let cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
        .collect();
    headers.remove(http::header::SET_COOKIE);
    Ok(StreamResponse {
        metadata_prelude: MetadataPrelude {
            status_code: parts.status,
            headers,
            cookies,
        },
        stream: body.into_data_stream(),
    })
}

/// Puts the invocation's X-Ray trace id (`Lambda-Runtime-Trace-Id`) into the request's
/// `X-Amzn-Trace-Id`, where the gateway reads it for the access record and sends it on to
/// AgentCore. This is the per-request source: with several invocations in the process, the
/// runtime does not set `_X_AMZN_TRACE_ID` (one variable cannot hold several requests' ids).
/// `lambda_http`'s adapters do the same; this keeps the streaming path equal to them.
fn trace_id_from_context(req: &mut Request, context: &Context) {
    if let Some(value) = context
        .xray_trace_id
        .as_deref()
        .and_then(|id| http::HeaderValue::from_str(id).ok())
    {
        req.headers_mut()
            .insert(http::HeaderName::from_static("x-amzn-trace-id"), value);
    }
}

/// Replaces a body flagged base64 that does not decode (see the module documentation).
pub fn decodable_body(mut event: LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest> {
    let (body, base64) = match &mut event.payload {
        LambdaRequest::ApiGatewayV1(req) => (&mut req.body, req.is_base64_encoded),
        LambdaRequest::ApiGatewayV2(req) => (&mut req.body, req.is_base64_encoded),
        _ => return event,
    };
    if let (true, Some(text)) = (base64, body.as_mut()) {
        if base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .is_err()
        {
            tracing::warn!(
                bytes = text.len(),
                "the event's body is flagged base64 but does not decode"
            );
            *text = NOT_UTF8_BASE64.to_owned();
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Request;

    fn v1(body: &str, base64: bool) -> LambdaEvent<LambdaRequest> {
        let doc = serde_json::json!({
            "resource": "/invoke", "path": "/invoke", "httpMethod": "POST",
            "headers": {"content-type": "application/json"}, "multiValueHeaders": {},
            "requestContext": {"httpMethod": "POST", "path": "/invoke", "stage": "x"},
            "body": body, "isBase64Encoded": base64,
        });
        let payload: LambdaRequest = serde_json::from_value(doc).expect("a v1 event");
        LambdaEvent::new(payload, lambda_http::Context::default())
    }

    fn body_after_check(body: &str, base64: bool) -> Vec<u8> {
        let req: Request = decodable_body(v1(body, base64)).payload.into();
        req.body().as_ref().to_vec()
    }

    #[test]
    fn undecodable_base64_becomes_bytes_the_parser_refuses_as_not_utf8() {
        assert_eq!(body_after_check("not base64!", true), [0xff]);
        assert!(crate::request::parse_body(&[0xff], 1024)
            .is_err_and(|e| e.code() == "invalid_encoding"));
    }

    #[test]
    fn the_trace_id_comes_from_the_invocation_context() {
        let mut context = lambda_http::Context::default();
        context.xray_trace_id = Some("Root=1-abc;Parent=def;Sampled=1".into());
        let mut req: Request = v1("{}", false).payload.into();
        req.headers_mut().insert(
            "x-amzn-trace-id",
            http::HeaderValue::from_static("Root=1-client"),
        );
        trace_id_from_context(&mut req, &context);
        assert_eq!(
            crate::headers::TraceHeaders::from_headers(req.headers()).trace_id,
            context.xray_trace_id
        );
        // No id in the context: the request's own header stays.
        let mut req: Request = v1("{}", false).payload.into();
        req.headers_mut().insert(
            "x-amzn-trace-id",
            http::HeaderValue::from_static("Root=1-client"),
        );
        trace_id_from_context(&mut req, &lambda_http::Context::default());
        assert_eq!(req.headers()["x-amzn-trace-id"], "Root=1-client");
    }

    #[test]
    fn valid_and_plain_bodies_are_untouched() {
        assert_eq!(
            body_after_check("eyJwcm9tcHQiOiJoaSJ9", true),
            br#"{"prompt":"hi"}"#
        );
        assert_eq!(body_after_check("not base64!", false), b"not base64!");
    }
}

//! End to end through the three options: one access record per request, written when the
//! request is over, and its CloudWatch Embedded Metric Format line, for a success, a 4xx, a
//! 5xx before the first byte, a failure mid-stream and a client that goes away.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The function log's JSON lines.
fn log_lines() -> Vec<Value> {
    watch_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// The access record of the request in session `session` (waiting for it: a stream's
/// record is written after its last byte), and the EMF line with its request id.
async fn records(what: &str, session: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = log_lines();
        let access = lines
            .iter()
            .find(|l| l["message"] == "access" && l["session_id"] == session)
            .cloned();
        if let Some(access) = access {
            let request_id = access["request_id"].clone();
            let emf = lines
                .iter()
                .find(|l| l.get("_aws").is_some() && l["RequestId"] == request_id)
                .cloned()
                .unwrap_or_else(|| panic!("{what}: no EMF line for {request_id}"));
            return (access, emf);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no access record for {session}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks an EMF document against the specification's rules.
fn assert_valid_emf(what: &str, doc: &Value) {
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].as_u64().is_some(),
        "{what}: Timestamp in ms"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics array");
    assert!(!directives.is_empty(), "{what}");
    for d in directives {
        let namespace = d["Namespace"].as_str().expect("Namespace");
        assert!(!namespace.is_empty() && namespace.len() <= 255, "{what}");
        let dimension_sets = d["Dimensions"].as_array().expect("Dimensions array");
        for set in dimension_sets {
            let keys = set.as_array().expect("a dimension set is an array");
            assert!(!keys.is_empty() && keys.len() <= 30, "{what}");
            for key in keys {
                let key = key.as_str().expect("dimension names are strings");
                assert!(
                    doc[key].is_string(),
                    "{what}: dimension {key} is a string at the root"
                );
            }
        }
        let metrics = d["Metrics"].as_array().expect("Metrics array");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{what}");
        for m in metrics {
            let name = m["Name"].as_str().expect("Name");
            assert!(
                doc[name].is_number(),
                "{what}: metric {name} is a number at the root"
            );
            let unit = m["Unit"].as_str().unwrap_or("None");
            assert!(
                ["Count", "Milliseconds", "Bytes", "Seconds", "None"].contains(&unit),
                "{what}: unit {unit}"
            );
        }
    }
}

fn check(what: &str, access: &Value, emf: &Value, status: u64, outcome: &str, option: &str) {
    assert_eq!(access["status"], status, "{what}: {access}");
    assert_eq!(access["outcome"], outcome, "{what}: {access}");
    assert_eq!(access["option"], option, "{what}");
    assert!(access["duration_ms"].is_u64(), "{what}: {access}");
    assert!(
        access["trace_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=")),
        "{what}: {access}"
    );
    assert!(access["cold_start"].is_boolean(), "{what}");
    assert!(access.get("prompt").is_none(), "{what}: never the prompt");
    assert_valid_emf(what, emf);
    assert_eq!(emf["Option"], option, "{what}");
    assert_eq!(emf["Requests"], 1, "{what}");
    let class = |lo: u64, hi: u64| u64::from(outcome == "refused" && (lo..=hi).contains(&status));
    assert_eq!(emf["Errors4xx"], class(400, 499), "{what}");
    assert_eq!(emf["Errors5xx"], class(500, 599), "{what}");
    assert_eq!(
        emf["ErrorsMidStream"],
        u64::from(outcome == "failed_mid_stream"),
        "{what}"
    );
    assert_eq!(emf["BytesOut"], access["bytes_out"], "{what}");
}

/// One request of each kind to `url` (an HTTP front), with the records it must leave.
async fn each_kind(option: &str, url: &str) {
    let client = http();
    let secret_prompt = "observability sentinel 4f1d";
    // A success.
    let sid = session_id("obs-ok");
    let answer = send(post_json(
        &client,
        url,
        json!({"prompt": secret_prompt, "session_id": sid, "demo": {"tokens": 5}}).to_string(),
    ))
    .await;
    assert_eq!(answer.status, 200);
    let (access, emf) = records(&format!("{option} ok"), &sid).await;
    check(
        &format!("{option} ok"),
        &access,
        &emf,
        200,
        "complete",
        option,
    );
    assert!(
        access["agent_first_byte_ms"].is_u64() && access["client_first_byte_ms"].is_u64(),
        "{access}"
    );
    assert!(emf["TimeToFirstByte"].is_number(), "{emf}");
    assert_eq!(access["attempts"], 1);
    assert!(
        access["bytes_out"]
            .as_u64()
            .is_some_and(|b| b == answer.body.len() as u64 || option == "option1"),
        "{access}"
    );
    assert!(
        !watch_log().contains(secret_prompt),
        "{option}: the prompt reached the log"
    );

    // A 4xx.
    let sid = session_id("obs-4xx");
    let answer =
        send(post_json(&client, url, r#"{"question": "no prompt"}"#).header("x-session-id", &sid))
            .await;
    assert_eq!(answer.status, 400);
    let (access, emf) = records(&format!("{option} 4xx"), &sid).await;
    check(
        &format!("{option} 4xx"),
        &access,
        &emf,
        400,
        "refused",
        option,
    );
    assert_eq!(access["code"], "missing_prompt");

    // A 5xx before the first byte.
    let sid = session_id("obs-5xx");
    let answer = send(post_json(
        &client,
        url,
        json!({"prompt": "x", "session_id": sid, "demo": {"fault": "InternalServerException"}})
            .to_string(),
    ))
    .await;
    assert_eq!(answer.status, 502);
    let (access, emf) = records(&format!("{option} 5xx"), &sid).await;
    check(
        &format!("{option} 5xx"),
        &access,
        &emf,
        502,
        "refused",
        option,
    );
    assert_eq!(access["code"], "upstream_error");
}

/// An answer reset by the agent after three tokens: its status, and the access record once
/// the request is over (checked against the status and outcome each option gives it).
async fn reset_after_three(option: &str, url: &str, status: u64, outcome: &str) -> Value {
    let what = format!("{option} reset mid-answer");
    let sid = session_id("obs-mid");
    let answer = send(post_json(
        &http(),
        url,
        json!({"prompt": "x", "session_id": sid, "demo": {"tokens": 8, "reset_after": 3}})
            .to_string(),
    ))
    .await;
    assert_eq!(u64::from(answer.status), status, "{what}");
    let (access, emf) = records(&what, &sid).await;
    check(&what, &access, &emf, status, outcome, option);
    access
}

#[tokio::test]
async fn option2_writes_one_record_per_request_when_it_is_over() {
    let stack = stack();
    let _guard = lock(OPTION2).await;
    let url = stack.urls().option2.clone();
    each_kind("option2", &url).await;

    // Mid-stream: the record comes after the in-band error.
    let access = reset_after_three("option2", &url, 200, "failed_mid_stream").await;
    assert_eq!(access["code"], "upstream_reset");
    assert_eq!(
        access["events"], 4,
        "three tokens and the error event: {access}"
    );

    // The client goes away.
    let sid = session_id("obs-gone");
    let resp = post_json(
        &http(),
        &url,
        json!({"prompt": "x", "session_id": sid, "demo": {"tokens": 100, "delay_ms": 50}})
            .to_string(),
    )
    .send()
    .await
    .expect("sent");
    let mut body = resp.bytes_stream();
    use futures_util::StreamExt;
    let _ = body.next().await;
    drop(body);
    let (access, emf) = records("option2 client gone", &sid).await;
    check(
        "option2 client gone",
        &access,
        &emf,
        200,
        "client_gone",
        "option2",
    );
}

#[tokio::test]
async fn option1_writes_one_record_per_request() {
    let stack = stack();
    let _guard = lock(OPTION1).await;
    each_kind("option1", &stack.urls().option1.clone()).await;
    // Option 1 has no first byte before the whole answer: a reset is a refusal.
    reset_after_three("option1", &stack.urls().option1, 502, "refused").await;
}

#[tokio::test]
async fn option3_writes_one_record_per_request() {
    let stack = stack();
    let _guard = lock(OPTION3).await;
    each_kind("option3", &stack.urls().option3.clone()).await;
    reset_after_three("option3", &stack.urls().option3, 200, "failed_mid_stream").await;
}

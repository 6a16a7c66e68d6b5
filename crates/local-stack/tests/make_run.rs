//! `make run`, as a user runs it: the `local-stack` binary reaches "Ready", prints the
//! three URLs, each URL streams the demo answer, and Ctrl-C (SIGINT) stops every process
//! the stack started.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Processes (other than ours) whose command line or environment mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
                if text.contains(needle) {
                    let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                    found.push(format!(
                        "{pid}: {}",
                        String::from_utf8_lossy(&cmd).replace('\0', " ")
                    ));
                    break;
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn make_run_serves_all_three_options_and_ctrl_c_leaves_nothing_behind() {
    let (local_port, watch_port, apigw_port) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .arg("run")
        .args(["--local-port", &local_port.to_string()])
        .args(["--watch-port", &watch_port.to_string()])
        .args(["--apigw-port", &apigw_port.to_string()])
        .env_remove("AGENT_RUNTIME_ARN")
        .env_remove("AGENT_URL")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("local-stack starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(600), async {
        while let Ok(Some(line)) = lines.next_line().await {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Press Ctrl-C to stop") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        ready,
        Ok(true),
        "the stack never printed its banner:\n{banner}"
    );
    // Keep draining (a full pipe would block the stack): after the banner come the
    // per-request lines.
    let (after_banner, mut request_lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = after_banner.send(line);
        }
    });

    let urls = [
        format!("http://127.0.0.1:{apigw_port}/option1/invoke"),
        format!("http://127.0.0.1:{watch_port}/lambda-url/option2-lambda-url/"),
        format!("http://127.0.0.1:{apigw_port}/option3/invoke"),
    ];
    for url in &urls {
        assert!(
            banner.contains(url.as_str()),
            "banner lacks {url}:\n{banner}"
        );
        // `target/debug/stream-client --local-user NAME --issuer ISSUER URL` (end users sign
        // in at agentcore-local's issuer, on a port other than the default here).
        let issuer = format!("http://127.0.0.1:{local_port}/issuer");
        assert!(
            banner
                .lines()
                .any(|l| l.contains("stream-client --local-user ")
                    && l.contains(&format!("--issuer {issuer} {url} "))),
            "banner lacks the stream-client command for {url}:\n{banner}"
        );
    }

    let http = reqwest::Client::new();
    // Signed in as a user of the local issuer, as the banner's commands are.
    let token_doc: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!(
                "http://127.0.0.1:{local_port}/issuer/token?user=tester"
            ))
            .send()
            .await
            .expect("the issuer answers")
            .bytes()
            .await
            .expect("a token document"),
    )
    .expect("JSON");
    let token = token_doc["id_token"].as_str().expect("id_token").to_owned();
    let expected = agentcore_local::demo_text("Hello from the make run test", 6).concat();
    for url in &urls {
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .bearer_auth(&token)
            .body(r#"{"prompt":"Hello from the make run test","demo":{"tokens":6}}"#)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{url}");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.bytes().await.expect("body");
        let text = if content_type.starts_with("application/json") {
            let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
            doc["text"].as_str().unwrap_or_default().to_owned()
        } else {
            let events = agentcore_core::sse::decode_all(&body).await.expect("sse");
            events
                .iter()
                .map(|e| agentcore_core::sse::event_text(&e.data).into_owned())
                .collect()
        };
        assert_eq!(text, expected, "{url}");
    }

    // One compact line per request, from the functions' access records (the access record
    // is written when the request is over, so give the last one a moment).
    let mut seen = Vec::new();
    let wanted = ["option1 ", "option2 ", "option3 "];
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = request_lines.recv().await {
            seen.push(line);
            if wanted.iter().all(|o| seen.iter().any(|l| l.starts_with(o))) {
                break;
            }
        }
    })
    .await;
    for option in wanted {
        let line = seen.iter().find(|l| l.starts_with(option));
        let line = line.unwrap_or_else(|| panic!("no request line for {option}in {seen:#?}"));
        for part in ["tester", " 200 complete", "first byte ", "total ", " B out"] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        assert!(
            !line.contains("Hello from the make run test"),
            "the prompt reached the screen: {line}"
        );
    }
    assert!(
        !seen.iter().any(|l| l.contains("\"_aws\"")),
        "raw watcher output reached the screen: {seen:#?}"
    );

    // Ctrl-C.
    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("local-stack exits after Ctrl-C")
        .expect("exit status");
    assert!(exit.success(), "local-stack exited with {exit}");

    // The lifeline may need a moment to reap the group after the pipe closes.
    // Functions carry the watch address in AWS_LAMBDA_RUNTIME_API; watch and the lifeline
    // carry the port in their command line.
    let markers = [
        format!("127.0.0.1:{watch_port}"),
        format!("--invoke-port {watch_port}"),
    ];
    let survivors = || {
        markers
            .iter()
            .flat_map(|m| processes_mentioning(m))
            .collect::<Vec<_>>()
    };
    let mut left = survivors();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = survivors();
    }
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    for port in [local_port, watch_port, apigw_port] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still in use"
        );
    }
}

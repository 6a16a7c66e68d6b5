//! End-to-end tests of the real `stream-client` binary against scripted local servers.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// An SSE answer exercising the parser: a comment, CRLF line ends, an `event:` field,
/// multi-line data, a non-JSON payload and a JSON string with escapes, split across
/// chunks in the middle of lines and of a CRLF pair.
fn tricky_sse() -> (Vec<Vec<u8>>, &'static str) {
    let doc = ": keep-alive comment\r\n\
               data: \"Hel\"\r\n\r\n\
               event: token\r\nid: 2\r\ndata: \"lo \"\r\n\r\n\
               data: line one\r\ndata: line two\r\n\r\n\
               data: \" w\\u00f6rld\\n\"\r\n\r\n";
    let bytes = doc.as_bytes();
    let cuts = [5, 30, 34, 60, 90, bytes.len()];
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(bytes[start..cut].to_vec());
        start = cut;
    }
    (chunks, "Hello line one\nline two wörld\n")
}

#[tokio::test]
async fn prints_the_decoded_text_of_an_sse_answer() {
    let (chunks, expected) = tricky_sse();
    let (url, server) = serve_chunks(200, SSE, chunks).await;
    let out = run(&[
        &format!("{url}/lambda-url/option2-lambda-url/"),
        "Hello there",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), expected);

    let req = server.await.expect("server");
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/lambda-url/option2-lambda-url/");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("accept"),
        Some("text/event-stream, application/json")
    );
    assert_eq!(req.json(), serde_json::json!({"prompt": "Hello there"}));
}

#[tokio::test]
async fn text_is_printed_before_the_stream_ends() {
    let (go_on, wait) = oneshot::channel::<()>();
    let (url, _server) = serve_once(move |_, mut conn| async move {
        conn.head(200, SSE).await;
        conn.chunk(b"data: \"first words\"\n\n").await;
        // Nothing more until the test has seen the first words on the child's stdout.
        let _ = wait.await;
        conn.chunk(b"data: \" and the rest\"\n\n").await;
        conn.end().await;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = command(dir.path(), &[&url, "hi"]).spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let first = read_until(&mut stdout, "first words").await;
    assert_eq!(first, "first words");
    go_on.send(()).expect("server waiting");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.expect("rest");
    let out = finish(child).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(rest, " and the rest");
}

#[tokio::test]
async fn plain_text_streams_are_printed_raw_as_they_arrive() {
    let (go_on, wait) = oneshot::channel::<()>();
    let (url, _server) = serve_once(move |_, mut conn| async move {
        conn.head(200, &[("Content-Type", "text/plain; charset=utf-8")])
            .await;
        conn.chunk(b"data: not sse, ").await;
        let _ = wait.await;
        conn.chunk(b"just text").await;
        conn.end().await;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = command(dir.path(), &[&url, "hi"]).spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    assert_eq!(read_until(&mut stdout, "sse, ").await, "data: not sse, ");
    go_on.send(()).expect("server waiting");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.expect("rest");
    assert_eq!(finish(child).await.code, Some(0));
    assert_eq!(rest, "just text");
}

#[tokio::test]
async fn raw_prints_the_exact_body_bytes() {
    let (chunks, _) = tricky_sse();
    let body: Vec<u8> = chunks.concat();
    let (url, _server) = serve_chunks(200, SSE, chunks).await;
    let out = run(&["--raw", &url, "hi"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, body);
}

#[tokio::test]
async fn json_prints_one_object_per_event() {
    let (chunks, _) = tricky_sse();
    let (url, _server) = serve_chunks(200, SSE, chunks).await;
    let out = run(&["--json", &url, "hi"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout());
    assert_eq!(
        lines[1],
        serde_json::json!({"event": "token", "id": "2", "data": "\"lo \"", "text": "lo "})
    );
    assert_eq!(lines[0]["event"], "message");
    assert_eq!(lines[2]["data"], "line one\nline two");
    assert_eq!(lines[2]["text"], "line one\nline two");
    assert_eq!(lines[3]["text"], " wörld\n");
}

#[tokio::test]
async fn stats_count_bytes_and_events() {
    let (chunks, _) = tricky_sse();
    let total: usize = chunks.iter().map(Vec::len).sum();
    let (url, _server) = serve_chunks(200, SSE, chunks).await;
    let out = run(&["--stats", &url, "hi"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.contains(&format!("bytes: {total}").as_str()),
        "{}",
        out.stderr
    );
    assert!(lines.contains(&"events: 4"), "{}", out.stderr);
    for key in ["ttfb_ms: ", "total_ms: "] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in {}", out.stderr));
        line[key.len()..]
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{line} is not a number of ms"));
    }
    // Stats go to stderr only.
    assert!(!out.stdout().contains("bytes:"));
}

#[tokio::test]
async fn a_buffered_json_answer_prints_its_text() {
    let body = serde_json::json!({
        "session_id": "session-0123456789abcdef0123456789abcdef",
        "response": "\"Hi\"\n\" there\"",
        "content_type": "text/event-stream",
        "text": "Hi there",
    })
    .to_string();
    let (url, _server) = serve_once(move |_, mut conn| async move {
        conn.full(
            200,
            &[
                ("Content-Type", "application/json"),
                ("X-Session-Id", "session-0123456789abcdef0123456789abcdef"),
            ],
            body.as_bytes(),
        )
        .await;
    })
    .await;
    let out = run(&[&format!("{url}/option1/invoke"), "hi"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "Hi there");
    assert!(
        out.stderr
            .contains("session: session-0123456789abcdef0123456789abcdef"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_session_id_goes_out_in_the_body_and_comes_back_on_stderr() {
    let (url, server) = serve_chunks(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("X-Session-Id", "session-from-the-server-0123456789abcdef"),
        ],
        vec![b"data: \"ok\"\n\n".to_vec()],
    )
    .await;
    let sid = "session-from-the-client-0123456789abcdef";
    let out = run(&[
        &url,
        "again",
        "--session-id",
        sid,
        "--accept",
        "application/json",
        "-H",
        "X-Trace: abc",
    ])
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "ok");
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "session: session-from-the-server-0123456789abcdef"),
        "{}",
        out.stderr
    );
    let req = server.await.expect("server");
    assert_eq!(
        req.json(),
        serde_json::json!({"prompt": "again", "session_id": sid, "accept": "application/json"})
    );
    assert_eq!(req.header("x-trace"), Some("abc"));

    // --quiet hides the session line.
    let (url, _server) = serve_chunks(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("X-Session-Id", "session-from-the-server-0123456789abcdef"),
        ],
        vec![b"data: \"ok\"\n\n".to_vec()],
    )
    .await;
    let out = run(&["-q", &url, "again"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn the_url_comes_from_a_dotenv_file_and_the_bearer_from_the_environment() {
    let (url, server) = serve_chunks(200, SSE, vec![b"data: \"from env\"\n\n".to_vec()]).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join(".env"),
        format!("AGENTCORE_STREAM_URL={url}/option3/invoke\n"),
    )
    .expect("write .env");
    let mut cmd = command(dir.path(), &["just the prompt"]);
    cmd.env("AGENTCORE_BEARER_TOKEN", "tok-123");
    let out = run_in(cmd).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "from env");
    let req = server.await.expect("server");
    assert_eq!(req.target, "/option3/invoke");
    assert_eq!(req.header("authorization"), Some("Bearer tok-123"));
}

#[tokio::test]
async fn an_http_error_shows_code_and_message_and_exits_3() {
    let (url, _server) = serve_once(|_, mut conn| async move {
        conn.full(
            400,
            &[("Content-Type", "application/json")],
            br#"{"error":{"code":"missing_prompt","message":"The field \"prompt\" is required"}}"#,
        )
        .await;
    })
    .await;
    let out = run(&[&url, "hi"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: missing_prompt: The field \"prompt\" is required (HTTP 400)"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout(), "");

    // Not our JSON shape: the raw body is shown.
    let (url, _server) = serve_once(|_, mut conn| async move {
        conn.full(
            502,
            &[("Content-Type", "text/html")],
            b"<h1>Bad gateway</h1>",
        )
        .await;
    })
    .await;
    let out = run(&[&url, "hi"]).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr.contains("<h1>Bad gateway</h1> (HTTP 502)"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_in_band_error_event_exits_4_after_the_text_before_it() {
    let (url, _server) = serve_chunks(
        200,
        SSE,
        vec![
            b"data: \"partial \"\n\n".to_vec(),
            b"data: \"answer\"\n\n".to_vec(),
            b"event: error\ndata: {\"error\":{\"code\":\"upstream_reset\",\"message\":\"The connection to the agent broke\"}}\n\n".to_vec(),
            b"data: \"never shown\"\n\n".to_vec(),
        ],
    )
    .await;
    let out = run(&[&url, "hi"]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout(), "partial answer");
    assert!(
        out.stderr
            .contains("error: upstream_reset: The connection to the agent broke"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_agent_error_event_passed_through_exits_4_with_its_text_on_stderr() {
    let sdk_event = format!("data: {}\n\n", agentcore_local::ERROR_EVENT_JSON);
    let (url, _server) = serve_chunks(
        200,
        SSE,
        vec![b"data: \"partial\"\n\n".to_vec(), sdk_event.into_bytes()],
    )
    .await;
    let out = run(&[&url, "hi"]).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout(), "partial");
    assert!(
        out.stderr
            .contains("error: agent_error: the agent failed (OperationalError)")
            && out.stderr.contains(agentcore_local::AGENT_EXCEPTION_TEXT),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn connection_refused_exits_5() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let out = run(&[&format!("http://{addr}/"), "hi"]).await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(out.stderr.contains("could not connect"), "{}", out.stderr);
}

#[tokio::test]
async fn a_body_cut_off_mid_chunk_exits_5_after_the_text_so_far() {
    let (url, _server) = serve_once(|_, mut conn| async move {
        conn.head(200, SSE).await;
        conn.chunk(b"data: \"so far\"\n\n").await;
        // A chunk that promises 0x40 bytes, then the connection closes.
        conn.write(b"40\r\ndata: \"cut").await;
    })
    .await;
    let out = run(&[&url, "hi"]).await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert_eq!(out.stdout(), "so far");
    assert!(out.stderr.contains("broke off"), "{}", out.stderr);
}

#[tokio::test]
async fn a_stalled_stream_times_out_with_exit_5() {
    let (url, _server) = serve_once(|_, mut conn| async move {
        conn.head(200, SSE).await;
        conn.chunk(b"data: \"hello\"\n\n").await;
        tokio::time::sleep(Duration::from_secs(8)).await;
    })
    .await;
    let out = run(&["--idle-timeout", "0.5", &url, "hi"]).await;
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert_eq!(out.stdout(), "hello");
    assert!(out.stderr.contains("in time"), "{}", out.stderr);
    // stderr is not a terminal here: no spinner was drawn while waiting.
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\r'),
        "{:?}",
        out.stderr
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = run(&["a prompt"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("AGENTCORE_STREAM_URL"),
        "{}",
        out.stderr
    );

    let out = run(&["--header", "no-colon-here", "http://127.0.0.1:9/", "hi"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("NAME:VALUE"), "{}", out.stderr);

    let out = run(&["--help"]).await;
    assert_eq!(out.code, Some(0));
    let help = out.stdout();
    for needle in [
        "http://127.0.0.1:9000/lambda-url/option2-lambda-url/",
        "http://127.0.0.1:3000/option3/invoke",
        "http://127.0.0.1:3000/option1/invoke",
        "130",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

#[tokio::test]
async fn ctrl_c_stops_cleanly_with_exit_130() {
    let (url, _server) = serve_once(|_, mut conn| async move {
        conn.head(200, SSE).await;
        conn.chunk(b"data: \"before ctrl-c\"\n\n").await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        conn.chunk(b"data: \"after\"\n\n").await;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let mut child = command(dir.path(), &[&url, "hi"]).spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    assert_eq!(read_until(&mut stdout, "ctrl-c").await, "before ctrl-c");
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .stdout(Stdio::null())
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("rest");
    let out = finish(child).await;
    assert_eq!(out.code, Some(130), "{}", out.stderr);
    assert!(rest.is_empty(), "printed after Ctrl-C: {rest:?}");
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
}

#[tokio::test]
async fn local_user_signs_in_at_the_local_issuer_and_sends_the_token() {
    let local = agentcore_local::LocalServer::start(agentcore_local::LocalConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..agentcore_local::LocalConfig::default()
    })
    .await
    .expect("agentcore-local");
    let issuer = agentcore_local::issuer::issuer_url(&local.endpoint_url());
    let (url, server) = serve_chunks(
        200,
        &[("Content-Type", "text/event-stream")],
        vec![b"data: \"hi alice\"\n\n".to_vec()],
    )
    .await;
    let out = run(&[&url, "hello", "--local-user", "alice", "--issuer", &issuer]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let req = server.await.expect("server");
    let token = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .expect("a bearer token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["iss"], serde_json::json!(issuer));

    let out = run(&[
        &url,
        "hello",
        "--local-user",
        "bad name",
        "--issuer",
        &issuer,
    ])
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    local.shutdown().await;
}

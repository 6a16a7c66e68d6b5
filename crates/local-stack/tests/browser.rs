//! The browser page (`web/`) on a stack started as `make run` starts it: the page, its
//! sign-in helper and the edge in front of option 2 on the gateway's address, CORS for that
//! origin, end-user authentication.
//!
//! `the_page_in_a_real_browser` runs `node --test` on `web/tests/` (Debian's Chromium driven
//! by `playwright-core`); the other tests check, without a browser, what the page relies
//! on: the preflights, the page's headers and the edge's streaming and hash check.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The headers the page sends, as a browser names them in a preflight.
const PAGE_HEADERS: &str =
    "authorization, content-type, x-session-id, x-auth-token, x-amz-content-sha256";

fn page_url() -> String {
    page_stack()
        .urls()
        .page
        .clone()
        .expect("the page stack serves the page")
}

fn origin() -> String {
    page_url().trim_end_matches('/').to_owned()
}

fn token(user: &str) -> String {
    let issuer = page_stack().urls().issuer.clone().expect("an issuer");
    agentcore_local::issuer::token_for(&issuer, user).expect("token")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Everything `make browser-deps` installs, or why the test cannot run.
fn browser_deps() -> Result<(), String> {
    let web = local_stack::stack::workspace_root().join("web");
    let chromium = chromium();
    if !chromium.is_file() {
        return Err(format!(
            "Chromium is missing ({}): run `make browser-deps` (apt-get install chromium chromium-driver; npm ci --prefix web)",
            chromium.display()
        ));
    }
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Err(
            "web/node_modules/playwright-core is missing: run `make browser-deps` (npm ci --prefix web)"
                .to_owned(),
        );
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(
            "node is missing: install Node.js 20 or later, then run `make browser-deps`".to_owned(),
        ),
    }
}

/// Fails (never skips) when the browser or its driver is missing, then runs the page's
/// browser tests against the page stack and asserts their exit code; their output is
/// printed on failure. The screenshot of a finished conversation lands in
/// `target/browser/conversation.png` (and `conversation-phone.png`).
#[test]
fn the_page_in_a_real_browser() {
    if let Err(why) = browser_deps() {
        panic!("{why}");
    }
    let stack = page_stack();
    // The browser tests time the functions: nobody else in this binary may use them meanwhile.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _guards = rt.block_on(async {
        (
            lock(OPTION1).await,
            lock(OPTION2).await,
            lock(OPTION3).await,
        )
    });

    let root = local_stack::stack::workspace_root();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| root.join("target"), Path::to_path_buf);
    let screenshots = target.join("browser");
    let issuer = stack.urls().issuer.clone().expect("an issuer");
    let mut expired = agentcore_local::issuer::claims_for(&issuer, "late");
    let now = agentcore_local::issuer::now();
    expired.insert("iat".into(), json!(now - 7200));
    expired.insert("exp".into(), json!(now - 3600));
    let expired = agentcore_local::issuer::sign(
        &expired,
        agentcore_local::issuer::KEY_PEM,
        agentcore_local::issuer::KEY_ID,
    )
    .expect("token");

    let started = Instant::now();
    let out = Command::new("node")
        .current_dir(&root)
        .args([
            "--test",
            "--test-reporter=spec",
            "web/tests/browser.test.mjs",
            "web/tests/sse.test.mjs",
        ])
        .env("PAGE_URL", page_url())
        .env("WATCH_LOG", page_watch_log_path())
        .env("SCREENSHOT_DIR", &screenshots)
        .env("CHROMIUM", chromium())
        .env("EXPIRED_TOKEN", expired)
        .env("EXPECT_HELLO", demo_text("Hello from the browser", 12))
        .env("EXPECT_STREAM", demo_text("Stream to the page", 30))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser tests failed ({}) after {:?}:\n{stdout}\n{stderr}\n--- the functions' log: {}",
        out.status,
        started.elapsed(),
        page_watch_log_path().display()
    );
    eprintln!("{stdout}");
    assert!(
        screenshots.join("conversation.png").is_file(),
        "no screenshot in {}",
        screenshots.display()
    );
}

/// The preflight a browser sends before the page's POST and DELETE succeeds on each option:
/// option 2 answers it itself through `cargo lambda watch`'s Function URL, the gateway
/// answers it for options 1 and 3 (a MOCK integration in the templates).
#[tokio::test]
async fn preflights_allow_the_page() {
    let stack = page_stack();
    let client = http();
    let origin = origin();
    let urls = stack.urls();
    for (name, url, headers) in [
        (
            "option 1",
            &urls.option1,
            "authorization, content-type, x-session-id",
        ),
        ("option 2", &urls.option2, PAGE_HEADERS),
        (
            "option 3",
            &urls.option3,
            "authorization, content-type, x-session-id",
        ),
    ] {
        for method in ["POST", "DELETE"] {
            let answer = send(
                client
                    .request(reqwest::Method::OPTIONS, url.as_str())
                    .header("origin", &origin)
                    .header("access-control-request-method", method)
                    .header("access-control-request-headers", headers),
            )
            .await;
            let what = format!("{name} preflight for {method}");
            assert!(
                (200..300).contains(&answer.status),
                "{what}: {} {}",
                answer.status,
                answer.text()
            );
            assert_eq!(
                answer.header("access-control-allow-origin"),
                Some(origin.as_str()),
                "{what}"
            );
            let methods = answer
                .header("access-control-allow-methods")
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                methods.contains(&method.to_ascii_lowercase()),
                "{what}: {methods}"
            );
            let allowed = answer
                .header("access-control-allow-headers")
                .unwrap_or_default()
                .to_ascii_lowercase();
            for h in headers.split(", ") {
                assert!(
                    allowed.split(',').any(|a| a.trim() == h),
                    "{what}: {h} not in {allowed}"
                );
            }
        }
    }
    // And the answer itself lets the page read the session id.
    let _guard = lock(OPTION2).await;
    let answer = send(
        post_json(&client, &urls.option2, body("cors", json!({"tokens": 1})))
            .header("origin", &origin)
            .header("authorization", format!("Bearer {}", token("cors"))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(
        answer.header("access-control-expose-headers"),
        Some("x-session-id")
    );
}

/// The page and its files carry the Content-Security-Policy; nothing else of `web/` is
/// served; the config names the stack's URLs; the sign-in helper returns a token.
#[tokio::test]
async fn the_page_and_its_helpers_are_served() {
    let stack = page_stack();
    let client = http();
    let page = page_url();
    for path in [
        "",
        "web/index.html",
        "web/app.js",
        "web/sse.js",
        "web/style.css",
    ] {
        let answer = send(client.get(format!("{page}{path}"))).await;
        assert_eq!(answer.status, 200, "/{path}");
        let csp = answer.header("content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'self';"), "/{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "/{path}: {csp}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    for path in [
        "web/package.json",
        "web/tests/browser.test.mjs",
        "web/node_modules/playwright-core/package.json",
        "web/..%2FCargo.toml",
        "web/.gitignore",
    ] {
        let answer = send(client.get(format!("{page}{path}"))).await;
        assert!(
            answer.status == 404 || answer.status == 403,
            "/{path}: {}",
            answer.status
        );
    }
    let config: Value = serde_json::from_slice(
        &send(client.get(format!("{page}web/config.json")))
            .await
            .body,
    )
    .expect("JSON");
    let urls = stack.urls();
    assert_eq!(config["options"]["1"], json!(urls.option1));
    assert_eq!(config["options"]["2"], json!(urls.option2));
    assert_eq!(config["options"]["3"], json!(urls.option3));
    assert_eq!(
        config["options"]["edge"],
        json!(format!("{page}edge/option2/"))
    );
    assert_eq!(config["sign_in"], json!(true));
    let answer = send(client.get(format!("{page}auth/token?user=alice"))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let doc: Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert!(doc["id_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    let answer = send(client.get(format!("{page}auth/token?user=a%20b"))).await;
    assert_eq!(answer.status, 400);
}

/// The edge in front of option 2: a POST without the body's hash, or with another body's,
/// is refused (403) before option 2 sees it; with it, the token in `x-auth-token` (the
/// client's `Authorization` is not forwarded) reaches the function and the answer streams
/// back chunk by chunk, not buffered.
#[tokio::test]
async fn the_edge_checks_the_body_hash_and_streams() {
    let _stack = page_stack();
    let _guard = lock(OPTION2).await;
    let client = http();
    let edge = format!("{}edge/option2/", page_url());
    let request = body("through the edge", json!({"tokens": 10, "delay_ms": 200}));
    let hash = local_stack::apigw::body_sha256(request.as_bytes());

    for (what, hash) in [
        ("no hash", None),
        (
            "another body's hash",
            Some(local_stack::apigw::body_sha256(b"{}")),
        ),
    ] {
        let mut req =
            post_json(&client, &edge, request.clone()).header("x-auth-token", token("edge"));
        if let Some(h) = hash {
            req = req.header("x-amz-content-sha256", h);
        }
        let answer = send(req).await;
        assert_eq!(answer.status, 403, "{what}: {}", answer.text());
        assert!(
            answer.text().contains("\"Message\""),
            "{what}: {}",
            answer.text()
        );
    }

    // The client's Authorization is replaced at the edge: a valid token there alone is not
    // enough.
    let answer = send(
        post_json(&client, &edge, request.clone())
            .header("x-amz-content-sha256", &hash)
            .header("authorization", format!("Bearer {}", token("edge"))),
    )
    .await;
    answer.assert_error("the token in Authorization only", 401, "missing_token");

    let sent = Instant::now();
    let resp = post_json(&client, &edge, request.clone())
        .header("x-amz-content-sha256", &hash)
        .header("x-auth-token", token("edge"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")));
    assert!(resp.headers().get("x-session-id").is_some());
    let (timed, err) = read_timed(resp, sent).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events_text(&sse_events(&timed.bytes()).await),
        demo_text("through the edge", 10)
    );
    // Ten events 200 ms apart: the first arrives long before the last.
    assert!(
        timed.last() - timed.first() >= Duration::from_millis(1200),
        "first chunk at {:?}, last at {:?}: buffered",
        timed.first(),
        timed.last()
    );
    assert!(timed.chunks.len() >= 5, "{} chunks", timed.chunks.len());

    // DELETE needs no hash (no body) and ends the caller's session through the edge.
    let sid = session_id("edge");
    let first = json!({"prompt": "hi", "session_id": sid, "demo": {"tokens": 1}}).to_string();
    let answer = send(
        post_json(&client, &edge, first.clone())
            .header(
                "x-amz-content-sha256",
                local_stack::apigw::body_sha256(first.as_bytes()),
            )
            .header("x-auth-token", token("edge")),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = send(
        client
            .delete(&edge)
            .header("x-session-id", &sid)
            .header("x-auth-token", token("edge")),
    )
    .await;
    assert_eq!(answer.status, 204, "{}", answer.text());
}

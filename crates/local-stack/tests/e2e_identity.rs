//! End to end with end-user authentication, through the three options: the functions verify
//! JWTs from `agentcore-local`'s OIDC issuer (`CALLER_IDENTITY=jwt`), and the API Gateway
//! emulator in front of options 1 and 3 runs a Cognito user pool authorizer. Hostile tokens,
//! sessions each caller owns, ending a session, and what the agent learns about the caller.

mod common;

use agentcore_local::issuer::{self, AUDIENCE, KEY_ID, KEY_PEM, OTHER_ISSUER_KEY_PEM};
use base64::Engine;
use common::*;
use serde_json::{json, Map, Value};

fn issuer_url() -> String {
    identity_stack()
        .urls()
        .issuer
        .clone()
        .expect("the identity stack has an issuer")
}

fn token(user: &str) -> String {
    issuer::token_for(&issuer_url(), user).expect("token")
}

fn claims(user: &str) -> Map<String, Value> {
    issuer::claims_for(&issuer_url(), user)
}

fn signed(claims: &Map<String, Value>) -> String {
    issuer::sign(claims, KEY_PEM, KEY_ID).expect("token")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The ways a token can be wrong, with the status and code each must get.
fn hostile_tokens() -> Vec<(&'static str, Option<String>, u16, &'static str)> {
    let now = issuer::now();
    let with = |changes: Value| {
        let mut c = claims("mallory");
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        signed(&c)
    };
    let valid = token("mallory");
    let parts: Vec<&str> = valid.split('.').collect();
    let mut tampered_claims = claims("mallory");
    tampered_claims.insert("sub".into(), json!("user-alice"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(Value::Object(tampered_claims.clone())
            .to_string()
            .as_bytes()),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(Value::Object(tampered_claims).to_string().as_bytes())
    );
    // HS256 "signed" with the issuer's public key set, as an attacker can fetch it.
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(KEY_ID.to_owned());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims("mallory"),
        &jsonwebtoken::EncodingKey::from_secret(issuer::jwks().to_string().as_bytes())
            .expect("an HMAC key"),
    )
    .expect("hs256");
    vec![
        ("no token", None, 401, "missing_token"),
        (
            "not a JWT",
            Some("not-a-jwt".to_owned()),
            401,
            "invalid_token",
        ),
        (
            "expired",
            Some(with(json!({"exp": now - 3600, "iat": now - 7200}))),
            401,
            "token_expired",
        ),
        (
            "nbf in the future",
            Some(with(json!({"nbf": now + 3600}))),
            401,
            "token_not_yet_valid",
        ),
        (
            "wrong iss",
            Some(with(json!({"iss": "https://issuer.example.com"}))),
            401,
            "invalid_token",
        ),
        (
            "wrong aud",
            Some(with(json!({"aud": "another-app"}))),
            403,
            "token_not_accepted",
        ),
        (
            "no sub",
            Some(with(json!({"sub": null}))),
            401,
            "invalid_token",
        ),
        ("alg none", Some(alg_none), 401, "invalid_token"),
        (
            "HS256 with the public key",
            Some(hs256),
            401,
            "invalid_token",
        ),
        (
            "unknown kid",
            Some(issuer::sign(&claims("mallory"), KEY_PEM, "rotated-away").expect("token")),
            401,
            "invalid_token",
        ),
        ("tampered payload", Some(tampered), 401, "invalid_token"),
        (
            "another issuer's key",
            Some(issuer::sign(&claims("mallory"), OTHER_ISSUER_KEY_PEM, KEY_ID).expect("token")),
            401,
            "invalid_token",
        ),
    ]
}

fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// A v1 event (options 1 and 3 invoked directly, as API Gateway would without an
/// authorizer) carrying `token` in `Authorization`.
fn v1_with_token(body: &str, token: Option<&str>) -> Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    v1_event("POST", &headers, Some(body))
}

/// Requests `agentcore-local` has received so far.
fn received() -> Vec<agentcore_local::RecordedRequest> {
    identity_stack()
        .local()
        .expect("agentcore-local")
        .requests()
}

#[tokio::test]
async fn hostile_tokens_are_refused_by_every_option_before_the_agent() {
    let stack = identity_stack();
    let request = body("let me in", json!({"tokens": 2}));
    // All three functions to ourselves, so that the count of invocations below is ours.
    let _guards = (
        lock(OPTION1).await,
        lock(OPTION2).await,
        lock(OPTION3).await,
    );
    let before = received().len();
    for (what, token, status, code) in hostile_tokens() {
        let token = token.as_deref();
        {
            let answer = send(with_token(
                post_json(&http(), &stack.urls().option2, request.clone()),
                token,
            ))
            .await;
            answer.assert_error(&format!("option 2, {what}"), status, code);
            let text = answer.text();
            assert!(
                !text.contains(AUDIENCE) && !text.contains(&issuer_url()),
                "{what}: {text}"
            );
        }
        {
            let (answer, _) = invoke_option1_on(stack, &v1_with_token(&request, token)).await;
            answer.assert_error(&format!("option 1 (Invoke), {what}"), status, code);
            // The gateway's authorizer refuses it before the function runs.
            let answer = send(with_token(
                post_json(&http(), &stack.urls().option1, request.clone()),
                token,
            ))
            .await;
            assert_eq!(
                answer.status,
                401,
                "option 1 gateway, {what}: {}",
                answer.text()
            );
        }
        {
            let streamed = invoke_stream_on(stack, OPTION3, &v1_with_token(&request, token)).await;
            streamed.answer().assert_error(
                &format!("option 3 (InvokeWithResponseStream), {what}"),
                status,
                code,
            );
            let answer = send(with_token(
                post_json(&http(), &stack.urls().option3, request.clone()),
                token,
            ))
            .await;
            assert_eq!(
                answer.status,
                401,
                "option 3 gateway, {what}: {}",
                answer.text()
            );
        }
    }
    let invocations = received()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/invocations"))
        .count();
    assert_eq!(invocations, 0, "no hostile token reached the agent");
}

/// What `user` is told when asking the agent, in session `session`, what it said before.
async fn recall(url: &str, user: &str, session: &str) -> String {
    let answer = send(
        post_json(
            &http(),
            url,
            json!({"prompt": "recall", "session_id": session, "demo": {"recall": true, "tokens": 3}})
                .to_string(),
        )
        .bearer_auth(token(user)),
    )
    .await;
    assert_eq!(answer.status, 200, "{user}: {}", answer.text());
    assert_eq!(
        answer.header("x-session-id"),
        Some(session),
        "the client keeps its own id"
    );
    answer_text(&answer).await
}

async fn answer_text(answer: &Answer) -> String {
    if answer.header("content-type") == Some("application/json") {
        let doc: Value = serde_json::from_slice(&answer.body).expect("JSON");
        return doc["text"].as_str().expect("text").to_owned();
    }
    events_text(&sse_events(&answer.body).await)
}

async fn say(url: &str, user: &str, session: &str, prompt: &str) {
    let answer = send(
        post_json(
            &http(),
            url,
            json!({"prompt": prompt, "session_id": session, "demo": {"tokens": 2}}).to_string(),
        )
        .bearer_auth(token(user)),
    )
    .await;
    assert_eq!(answer.status, 200, "{user}: {}", answer.text());
}

async fn end(url: &str, user: &str, session: &str) -> Answer {
    send(
        http()
            .delete(url)
            .header("x-session-id", session)
            .bearer_auth(token(user)),
    )
    .await
}

#[tokio::test]
async fn each_caller_owns_its_sessions_and_only_it_can_end_them() {
    let stack = identity_stack();
    let nothing = demo_text("earlier: nothing", 3);
    for (option, function, url) in [
        ("option 2", OPTION2, stack.urls().option2.clone()),
        ("option 1", OPTION1, stack.urls().option1.clone()),
        ("option 3", OPTION3, stack.urls().option3.clone()),
    ] {
        let _guard = lock(function).await;
        let session = session_id("owned");
        say(&url, "alice", &session, "alpha").await;
        assert_eq!(
            recall(&url, "alice", &session).await,
            demo_text("earlier: recall", 3),
            "{option}: alice's session remembers her last prompt"
        );
        // Bob names Alice's session id and lands in a session of his own.
        assert_eq!(recall(&url, "bob", &session).await, nothing, "{option}");
        // What agentcore-local saw: each caller's own derived session, never the client's id.
        let client_id = agentcore_core::SessionId::parse(&session).expect("session id");
        let runtime_id = |user: &str| {
            agentcore_core::identity::Caller::from_claims(
                agentcore_core::identity::IdentitySource::Jwt,
                claims(user),
            )
            .expect("caller")
            .runtime_session_id(agentcore_core::identity::SessionScope::Caller, &client_id)
            .to_string()
        };
        let (alice_id, bob_id) = (runtime_id("alice"), runtime_id("bob"));
        assert_ne!(alice_id, bob_id, "{option}");
        let seen: Vec<Option<String>> = received().into_iter().map(|r| r.session_id).collect();
        for id in [&alice_id, &bob_id] {
            assert!(
                seen.contains(&Some(id.clone())),
                "{option}: agentcore-local never saw {id}"
            );
        }
        assert!(
            !seen.contains(&Some(session.clone())),
            "{option}: the client's id reached AgentCore"
        );

        // Carol has no such session: 404. Bob ends his own; Alice's survives.
        end(&url, "carol", &session).await.assert_error(
            &format!("{option} carol's DELETE"),
            404,
            "session_not_found",
        );
        let ended = end(&url, "bob", &session).await;
        assert_eq!(ended.status, 204, "{option}: {}", ended.text());
        end(&url, "bob", &session).await.assert_error(
            &format!("{option} bob's second DELETE"),
            404,
            "session_not_found",
        );
        say(&url, "alice", &session, "beta").await;
        assert_eq!(
            recall(&url, "alice", &session).await,
            demo_text("earlier: beta", 3),
            "{option}: alice's session survived bob's DELETE"
        );
        // Alice ends hers: its memory is gone.
        assert_eq!(end(&url, "alice", &session).await.status, 204, "{option}");
        assert_eq!(recall(&url, "alice", &session).await, nothing, "{option}");
    }
}

#[tokio::test]
async fn the_agent_learns_who_the_caller_is_through_allow_listed_claims() {
    let stack = identity_stack();
    let _guard = lock(OPTION2).await;
    let session = session_id("claims");
    let answer = send(
        post_json(
            &http(),
            &stack.urls().option2,
            json!({"prompt": "who am I", "session_id": session, "demo": {"tokens": 2}}).to_string(),
        )
        .bearer_auth(token("dana")),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = received();
    let request = seen
        .iter()
        .rev()
        .find(|r| {
            r.path.ends_with("/invocations")
                && r.header("x-amzn-bedrock-agentcore-runtime-custom-claim-sub")
                    == Some("user-dana")
        })
        .expect("the agent received dana's request");
    let custom = "x-amzn-bedrock-agentcore-runtime-custom-claim-";
    assert_eq!(
        request.header(&format!("{custom}email")),
        Some("dana@example.com")
    );
    assert_eq!(
        request.header(&format!("{custom}cognito-groups")),
        Some("local-users")
    );
    assert_eq!(
        request.header(&format!("{custom}custom-tenant")),
        Some("local")
    );
    assert_eq!(
        request.header("x-amzn-bedrock-agentcore-runtime-user-id"),
        Some("user-dana"),
        "RUNTIME_USER_ID sends the caller as runtimeUserId"
    );
    // The raw token is not forwarded (the runtime does not use OAuth here).
    assert!(request
        .headers
        .iter()
        .all(|(k, v)| !v.contains(&token("dana")[..20]) || k == "authorization"));
    assert!(request
        .header("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
}

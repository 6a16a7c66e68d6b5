//! `--sigv4`: the signature the server receives is recomputed independently and must
//! match; and AgentCore's local stand-in (its own SigV4 verifier) accepts it.

mod common;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use common::*;
use sha2::{Digest, Sha256};

const KEY: &str = "AKIDSTREAMCLIENTTEST";
const SECRET: &str = "stream-client-test-secret";

/// The `Signature=` a request with these parts should carry.
fn expected_signature(
    time: SystemTime,
    region: &str,
    service: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let identity = Credentials::new(KEY, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let request = SignableRequest::new(
        "POST",
        uri,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    sign(request, &params).expect("sign").signature().to_owned()
}

fn parse_amz_date(s: &str) -> SystemTime {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, format)
        .expect("x-amz-date is YYYYMMDDTHHMMSSZ")
        .assume_utc()
        .into()
}

#[tokio::test]
async fn the_signature_is_valid_for_the_exact_request() {
    let (url, server) = serve_chunks(200, SSE, vec![b"data: \"signed\"\n\n".to_vec()]).await;
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = command(
        dir.path(),
        &[
            "--sigv4",
            "--service",
            "lambda",
            "-H",
            "X-Custom: one",
            &format!("{url}/lambda-url/option2-lambda-url/?mode=fast&a=b"),
            "sign me",
        ],
    );
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1");
    let out = run_in(cmd).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "signed");

    let req = server.await.expect("server");
    let auth = req.header("authorization").expect("authorization header");
    let amz_date = req.header("x-amz-date").expect("x-amz-date header");
    let date = &amz_date[..8];
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={KEY}/{date}/us-east-1/lambda/aws4_request, SignedHeaders="
    );
    assert!(auth.starts_with(&prefix), "{auth}");
    let (signed_headers, signature) = auth[prefix.len()..]
        .split_once(", Signature=")
        .expect("Signature=");
    let signed: Vec<&str> = signed_headers.split(';').collect();
    for name in [
        "host",
        "content-type",
        "accept",
        "x-custom",
        "x-amz-date",
        "x-amz-content-sha256",
    ] {
        assert!(
            signed.contains(&name),
            "{name} is not signed: {signed_headers}"
        );
    }
    assert_eq!(
        req.header("x-amz-content-sha256"),
        Some(hex::encode(Sha256::digest(&req.body)).as_str()),
        "the payload hash is the body's"
    );

    // Recompute from what arrived: the signed headers (less those the signer adds itself).
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(k, _)| signed.contains(&k.as_str()))
        .filter(|(k, _)| !matches!(k.as_str(), "x-amz-date" | "x-amz-content-sha256"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let host = req.header("host").expect("host");
    let uri = format!("http://{host}{}", req.target);
    let time = parse_amz_date(amz_date);
    let expected = expected_signature(time, "us-east-1", "lambda", &uri, &headers, &req.body);
    assert_eq!(signature, expected, "the signature verifies");

    // The check can fail: another body, region or service gives another signature.
    let mut tampered = req.body.clone();
    tampered.push(b' ');
    assert_ne!(
        signature,
        expected_signature(time, "us-east-1", "lambda", &uri, &headers, &tampered)
    );
    assert_ne!(
        signature,
        expected_signature(time, "us-west-2", "lambda", &uri, &headers, &req.body)
    );
    assert_ne!(
        signature,
        expected_signature(time, "us-east-1", "execute-api", &uri, &headers, &req.body)
    );
}

#[tokio::test]
async fn sigv4_without_credentials_is_a_configuration_error() {
    let out = run(&[
        "--sigv4",
        "--region",
        "us-east-1",
        "http://127.0.0.1:9/",
        "hi",
    ])
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("no AWS credentials"), "{}", out.stderr);
}

/// `agentcore-local` checks SigV4 with its own verifier: pointing the client straight at
/// its `InvokeAgentRuntime` path (service `bedrock-agentcore`) proves the signature is
/// accepted by an implementation other than aws-sigv4, double-encoded ARN path included.
#[tokio::test]
async fn agentcore_local_accepts_the_signature() {
    use agentcore_local::{
        LocalConfig, LocalServer, DEFAULT_ACCESS_KEY_ID, DEFAULT_RUNTIME_ARN,
        DEFAULT_SECRET_ACCESS_KEY,
    };
    let server = LocalServer::start(LocalConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        ..LocalConfig::default()
    })
    .await
    .expect("local runtime");
    let arn: String = DEFAULT_RUNTIME_ARN
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!("{}/runtimes/{arn}/invocations", server.endpoint_url());
    let dir = tempfile::tempdir().expect("dir");
    let args = [
        "--sigv4",
        "--service",
        "bedrock-agentcore",
        "--region",
        "us-east-1",
        url.as_str(),
        "hello local",
    ];

    let mut cmd = command(dir.path(), &args);
    cmd.env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_ACCESS_KEY);
    let out = run_in(cmd).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout().starts_with("You said: hello local"),
        "{}",
        out.stdout()
    );

    // A wrong secret is refused (403): the check is real.
    let mut cmd = command(dir.path(), &args);
    cmd.env("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = run_in(cmd).await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("(HTTP 403)"), "{}", out.stderr);
    server.shutdown().await;
}

//! Test helpers: a scripted one-connection HTTP/1.1 server, and a runner for the real
//! `stream-client` binary.

#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// A request as the test server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// The server side of the one connection: write the answer piece by piece.
pub struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    /// Status line and headers of a chunked response.
    pub async fn head(&mut self, status: u16, headers: &[(&str, &str)]) {
        let mut head = format!("HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.write(head.as_bytes()).await;
    }

    /// One chunk of a chunked body.
    pub async fn chunk(&mut self, data: &[u8]) {
        let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\r\n");
        self.write(&frame).await;
    }

    /// The last chunk.
    pub async fn end(&mut self) {
        self.write(b"0\r\n\r\n").await;
    }

    /// A whole response with Content-Length.
    pub async fn full(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        self.write(&all).await;
    }

    /// Raw bytes (e.g. a chunk header promising more than will come).
    pub async fn write(&mut self, bytes: &[u8]) {
        // The client may be gone already (e.g. interrupted): that is not the test's failure.
        let _ = self.stream.get_mut().write_all(bytes).await;
        let _ = self.stream.get_mut().flush().await;
    }
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> Request {
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("request line");
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.expect("header line");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header has a colon");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().expect("content-length"))
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.expect("body");
    Request {
        method,
        target,
        headers,
        body,
    }
}

/// Serves one connection with `handler`; returns the base URL (`http://127.0.0.1:PORT`)
/// and a handle that yields the request once the handler is done.
pub async fn serve_once<F, Fut>(handler: F) -> (String, JoinHandle<Request>)
where
    F: FnOnce(Request, Conn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut stream = BufReader::new(stream);
        let request = read_request(&mut stream).await;
        handler(request.clone(), Conn { stream }).await;
        request
    });
    (format!("http://{addr}"), task)
}

/// Answers with one chunked response: `status`, `headers`, then `chunks`.
pub async fn serve_chunks(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    chunks: Vec<Vec<u8>>,
) -> (String, JoinHandle<Request>) {
    serve_once(move |_, mut conn| async move {
        conn.head(status, headers).await;
        for chunk in chunks {
            conn.chunk(&chunk).await;
        }
        conn.end().await;
    })
    .await
}

pub const SSE: &[(&str, &str)] = &[("Content-Type", "text/event-stream")];

/// What the child printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }
}

/// The real binary, with a clean environment (no proxies, no AWS configuration, no
/// URL) and a fresh empty current directory.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stream-client"));
    cmd.args(args)
        .env_clear()
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs the binary to the end (10 s at most).
pub async fn run(args: &[&str]) -> Finished {
    let dir = tempfile::tempdir().expect("temp dir");
    run_in(command(dir.path(), args)).await
}

/// Runs a prepared command to the end (10 s at most).
pub async fn run_in(mut cmd: Command) -> Finished {
    let child = cmd.spawn().expect("spawn stream-client");
    finish(child).await
}

/// Waits for a spawned child and collects what is left of its output.
pub async fn finish(child: Child) -> Finished {
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("stream-client finished within 10 s")
        .expect("stream-client output");
    Finished {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Reads the child's stdout until it contains `needle` (5 s at most); returns what was read.
pub async fn read_until(stdout: &mut tokio::process::ChildStdout, needle: &str) -> String {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stdout.read(&mut buf).await.expect("read stdout");
            assert!(n > 0, "stdout ended before {needle:?} appeared");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("{needle:?} did not appear on stdout within 5 s"));
    String::from_utf8_lossy(&seen).into_owned()
}

//! One exchange: build and send the request, then print the answer as it arrives.

use std::io::{self, IsTerminal, Write};
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use agentcore_wire::sse::{agent_error, decode, event_text, is_error_event, DecodeError, Event};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};

use crate::cli::{Auth, Mode, Settings};
use crate::error::{excerpt, parse_error_body, ClientError, Report, EXIT_OK};
use crate::output::{write_stdout, Printer};
use crate::sign::Signer;
use crate::spinner::Spinner;

/// The `Accept` header sent unless `--header Accept:...` replaces it.
pub const DEFAULT_ACCEPT: &str = "text/event-stream, application/json";
/// The response header carrying the session id.
pub use agentcore_wire::SESSION_HEADER;
/// Most of an error body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What was observed during a run, for `session:` and `--stats`.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    headers: Option<Duration>,
    first_byte: Option<Duration>,
    bytes: u64,
    events: u64,
    session: Option<String>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            started: Instant::now(),
            headers: None,
            first_byte: None,
            bytes: 0,
            events: 0,
            session: None,
        }
    }

    fn stats_lines(&self) -> String {
        let ms =
            |d: Option<Duration>| d.map_or_else(|| "n/a".to_owned(), |d| d.as_millis().to_string());
        format!(
            "headers_ms: {}\nttfb_ms: {}\ntotal_ms: {}\nbytes: {}\nevents: {}",
            ms(self.headers),
            ms(self.first_byte),
            self.started.elapsed().as_millis(),
            self.bytes,
            self.events
        )
    }
}

fn lock(p: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the exchange described by `settings`, printing the answer to stdout and
/// everything else to stderr; returns the process exit code.
pub async fn run(settings: Settings) -> u8 {
    let progress = Mutex::new(Progress::new());
    let spinner = Spinner::start(
        !settings.quiet && io::stderr().is_terminal(),
        "waiting for the agent…",
    );
    let mut printer = Printer::new(spinner.clone());
    let result = tokio::select! {
        r = exchange(&settings, &progress, &mut printer) => r,
        () = interrupted() => Err(ClientError::Interrupted),
    };
    spinner.stop();

    let progress = lock(&progress);
    let mut err = io::stderr().lock();
    match &result {
        Err(ClientError::Interrupted) => {
            // Nothing more on stdout: only end the line on the terminal, via stderr.
            let _ = writeln!(err);
            let _ = writeln!(err, "{}", Report(&ClientError::Interrupted));
        }
        other => {
            let finished = printer.finish_line();
            match other {
                Ok(()) => {
                    if let Err(e) = finished {
                        return report_output(&mut err, &ClientError::Output(e));
                    }
                }
                Err(ClientError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    let _ = writeln!(err, "{}", Report(e));
                }
            }
        }
    }
    if !settings.quiet {
        if let Some(session) = &progress.session {
            let _ = writeln!(err, "session: {session}");
        }
    }
    if settings.stats {
        let _ = writeln!(err, "{}", progress.stats_lines());
    }
    let _ = err.flush();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => e.exit_code(),
    }
}

fn report_output(err: &mut impl Write, e: &ClientError) -> u8 {
    let _ = writeln!(err, "{}", Report(e));
    e.exit_code()
}

/// Resolves on Ctrl-C (never, if the handler cannot be installed).
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A chunk could not be received, or (in `--raw` mode) not be written.
#[derive(Debug)]
enum ChunkError {
    Net(reqwest::Error),
    Output(io::Error),
}

/// The JSON request body: `{"prompt", "session_id"?, "accept"?}`.
pub fn request_body(settings: &Settings) -> Vec<u8> {
    let mut body = json!({ "prompt": settings.prompt });
    if let Some(session) = &settings.session_id {
        body["session_id"] = json!(session);
    }
    if let Some(accept) = &settings.accept {
        body["accept"] = json!(accept);
    }
    body.to_string().into_bytes()
}

/// Request headers: the user's, then `Content-Type` and `Accept` unless the user set them.
pub fn request_headers(settings: &Settings) -> HeaderMap {
    let mut headers = settings.headers.clone();
    headers
        .entry(CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    headers
        .entry(ACCEPT)
        .or_insert(HeaderValue::from_static(DEFAULT_ACCEPT));
    headers
}

fn build_client(settings: &Settings) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("stream-client/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.idle_timeout);
    if let Some(max) = settings.max_time {
        builder = builder.timeout(max);
    }
    builder.build().map_err(|e| {
        ClientError::Transport(format!(
            "could not set up the HTTP client ({}): check the proxy settings (HTTPS_PROXY, NO_PROXY)",
            crate::error::error_chain(&e)
        ))
    })
}

/// An ID token for `user` from the local stack's issuer.
async fn local_token(
    client: &reqwest::Client,
    issuer: &str,
    user: &str,
) -> Result<String, ClientError> {
    if user.is_empty()
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ClientError::Usage(
            "--local-user takes a name of letters, digits, '-' and '_'".to_owned(),
        ));
    }
    let url = format!("{}/token?user={user}", issuer.trim_end_matches('/'));
    let failed = |why: String| {
        ClientError::Usage(format!(
            "could not sign in as {user} at {url}: {why} (is `make run` running?)"
        ))
    };
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    let doc: Value =
        serde_json::from_slice(&resp.bytes().await.map_err(|e| failed(e.to_string()))?)
            .map_err(|e| failed(e.to_string()))?;
    doc.get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| failed("no id_token in the answer".to_owned()))
}

async fn build_request(
    settings: &Settings,
    client: &reqwest::Client,
) -> Result<reqwest::Request, ClientError> {
    let body = request_body(settings);
    let mut request = client
        .post(settings.url.clone())
        .headers(request_headers(settings))
        .body(body.clone())
        .build()
        .map_err(|e| ClientError::Usage(format!("could not build the request: {e}")))?;
    let fetched;
    let bearer = match &settings.auth {
        Auth::Bearer(token) => Some(token.as_str()),
        Auth::LocalUser { issuer, user } => {
            fetched = local_token(client, issuer, user).await?;
            Some(fetched.as_str())
        }
        _ => None,
    };
    match &settings.auth {
        Auth::None => {}
        Auth::Bearer(_) | Auth::LocalUser { .. } => {
            let token = bearer.unwrap_or_default();
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ClientError::Usage("the bearer token cannot be sent in a header".to_owned())
            })?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        Auth::SigV4 { service, region } => {
            let signer = Signer::from_default_chain(service.clone(), region.clone()).await?;
            let url = request.url().as_str().to_owned();
            let signed: Vec<(&str, &str)> = request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v.as_bytes()).ok()?)))
                .collect();
            let added = signer.sign(SystemTime::now(), "POST", &url, &signed, &body)?;
            for (name, value) in added {
                request.headers_mut().insert(name, value);
            }
        }
    }
    Ok(request)
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

async fn exchange(
    settings: &Settings,
    progress: &Mutex<Progress>,
    printer: &mut Printer,
) -> Result<(), ClientError> {
    let client = build_client(settings)?;
    let request = build_request(settings, &client).await?;
    let url = settings.url.as_str();

    lock(progress).started = Instant::now();
    let response = client
        .execute(request)
        .await
        .map_err(|e| ClientError::transport(&e, url))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = media_type(&header(CONTENT_TYPE.as_str()).unwrap_or_default());
    let error_type = header("x-amzn-errortype");
    {
        let mut p = lock(progress);
        p.headers = Some(p.started.elapsed());
        p.session = header(SESSION_HEADER).filter(|s| !s.is_empty());
    }

    let raw = settings.mode == Mode::Raw;
    // The raw path writes from inside the stream, so it stops the spinner itself.
    let spinner = printer.spinner();
    let chunks = response.bytes_stream().map(move |item| {
        let bytes = item.map_err(ChunkError::Net)?;
        if !bytes.is_empty() {
            let mut p = lock(progress);
            if p.first_byte.is_none() {
                p.first_byte = Some(p.started.elapsed());
            }
            p.bytes += bytes.len() as u64;
        }
        if raw && status.is_success() {
            spinner.stop();
            write_stdout(&bytes).map_err(ChunkError::Output)?;
        }
        Ok::<Bytes, ChunkError>(bytes)
    });
    let mut chunks = pin!(chunks);

    if !status.is_success() {
        let body = read_error_body(&mut chunks).await;
        let (code, message) = match parse_error_body(&body) {
            Some((code, message)) => (code, message),
            None if body.trim().is_empty() => (
                None,
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned(),
            ),
            None => (None, excerpt(&body)),
        };
        let code = code
            .or(error_type.map(|t| t.split(':').next().unwrap_or_default().to_owned()))
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        return Err(ClientError::Http {
            status: status.as_u16(),
            code,
            message,
        });
    }

    let is_sse = content_type == "text/event-stream";
    let is_json = content_type == "application/json" || content_type.ends_with("+json");
    match (settings.mode, is_sse, is_json) {
        (_, true, _) => print_events(settings.mode, chunks, progress, printer, url).await,
        (Mode::Raw, false, _) => drain(&mut chunks, url).await,
        (Mode::Text, false, false) => {
            while let Some(chunk) = chunks.next().await {
                let bytes = chunk_result(chunk, url)?;
                printer.bytes(&bytes).map_err(ClientError::Output)?;
            }
            Ok(())
        }
        (mode, false, is_json) => {
            let body = read_all(&mut chunks, url).await?;
            let body = String::from_utf8_lossy(&body);
            if is_json {
                print_json_answer(mode, &body, progress, printer)
            } else {
                printer.body_json(&body).map_err(ClientError::Output)
            }
        }
    }
}

fn chunk_error(e: ChunkError, url: &str) -> ClientError {
    match e {
        ChunkError::Net(e) => ClientError::transport(&e, url),
        ChunkError::Output(e) => ClientError::Output(e),
    }
}

fn chunk_result(chunk: Result<Bytes, ChunkError>, url: &str) -> Result<Bytes, ClientError> {
    chunk.map_err(|e| chunk_error(e, url))
}

async fn drain(
    chunks: &mut (impl Stream<Item = Result<Bytes, ChunkError>> + Unpin),
    url: &str,
) -> Result<(), ClientError> {
    while let Some(chunk) = chunks.next().await {
        chunk_result(chunk, url)?;
    }
    Ok(())
}

async fn read_all(
    chunks: &mut (impl Stream<Item = Result<Bytes, ChunkError>> + Unpin),
    url: &str,
) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk_result(chunk, url)?);
    }
    Ok(body)
}

/// Reads an error body (up to [`MAX_ERROR_BODY`]); a broken body keeps what arrived.
async fn read_error_body(
    chunks: &mut (impl Stream<Item = Result<Bytes, ChunkError>> + Unpin),
) -> String {
    let mut body = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Decodes SSE and prints each event as it completes.
async fn print_events(
    mode: Mode,
    chunks: impl Stream<Item = Result<Bytes, ChunkError>>,
    progress: &Mutex<Progress>,
    printer: &mut Printer,
    url: &str,
) -> Result<(), ClientError> {
    let mut events = pin!(decode(chunks));
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(DecodeError::Transport(e)) => return Err(chunk_error(e, url)),
            Err(DecodeError::Utf8) => {
                return Err(ClientError::Decode(
                    "the event stream is not valid UTF-8: retry with --raw to see the bytes"
                        .to_owned(),
                ))
            }
            Err(DecodeError::Parse(e)) => {
                return Err(ClientError::Decode(format!(
                    "the event stream could not be parsed ({e}): retry with --raw to see the bytes"
                )))
            }
        };
        lock(progress).events += 1;
        if mode == Mode::Json {
            printer.event_json(&event).map_err(ClientError::Output)?;
        }
        if is_error_event(&event) {
            return Err(stream_error(&event));
        }
        // An agent's own error event that the function passed through (its operator
        // chose AGENT_ERROR_EVENTS=pass_through): a failed answer all the same.
        if let Some(failure) = agent_error(&event) {
            return Err(ClientError::Stream {
                code: "agent_error".to_owned(),
                message: format!(
                    "the agent failed ({}): {}",
                    failure.error_type, failure.error
                ),
            });
        }
        if mode == Mode::Text {
            printer
                .text(&event_text(&event.data))
                .map_err(ClientError::Output)?;
        }
    }
    Ok(())
}

fn stream_error(event: &Event) -> ClientError {
    match parse_error_body(&event.data) {
        Some((code, message)) => ClientError::Stream {
            code: code.unwrap_or_else(|| "stream_error".to_owned()),
            message,
        },
        None => ClientError::Stream {
            code: "stream_error".to_owned(),
            message: excerpt(&event.data),
        },
    }
}

/// Prints a buffered JSON answer (option 1): its `text` field in text mode, the document
/// on one line in JSON mode.
fn print_json_answer(
    mode: Mode,
    body: &str,
    progress: &Mutex<Progress>,
    printer: &mut Printer,
) -> Result<(), ClientError> {
    let value: Option<Value> = serde_json::from_str(body.trim()).ok();
    if let Some(session) = value
        .as_ref()
        .and_then(|v| v.get("session_id"))
        .and_then(Value::as_str)
    {
        let mut p = lock(progress);
        if p.session.is_none() {
            p.session = Some(session.to_owned());
        }
    }
    let out = match (mode, &value) {
        (Mode::Json, Some(v)) => format!("{v}\n"),
        (Mode::Json, None) => {
            return printer.body_json(body).map_err(ClientError::Output);
        }
        (_, Some(v)) => match v.get("text").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => body.to_owned(),
        },
        (_, None) => body.to_owned(),
    };
    printer.text(&out).map_err(ClientError::Output)
}

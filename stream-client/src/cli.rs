//! Command-line arguments, and their resolution (with the environment) into [`Settings`].

use std::time::Duration;

use clap::Parser;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use crate::error::ClientError;

/// Environment variable holding the default endpoint URL.
pub const URL_ENV: &str = "AGENTCORE_STREAM_URL";
/// Environment variable holding a default bearer token.
pub const BEARER_ENV: &str = "AGENTCORE_BEARER_TOKEN";

const HELP_TEMPLATE: &str = "\
{about-with-newline}
{usage-heading} {usage}

Arguments:
  [URL]     The endpoint: an option 1, 2 or 3 URL [default: $AGENTCORE_STREAM_URL]
  <PROMPT>  The question to ask the agent

{all-args}{after-help}";

const AFTER_HELP: &str = "\
Examples (local stack, `make run`):
  stream-client http://127.0.0.1:9000/lambda-url/option2-lambda-url/ \"Tell me a joke\"   # option 2, Function URL, streamed
  stream-client http://127.0.0.1:3000/option3/invoke \"Tell me a joke\"                   # option 3, API Gateway STREAM
  stream-client http://127.0.0.1:3000/option1/invoke \"Tell me a joke\"                   # option 1, buffered JSON
  export AGENTCORE_STREAM_URL=http://127.0.0.1:9000/lambda-url/option2-lambda-url/
  stream-client \"And another one\" --session-id <id printed by the last run>

Deployed:
  stream-client --sigv4 https://<id>.lambda-url.us-east-1.on.aws/ \"Hi\"                # Function URL, AuthType AWS_IAM
  stream-client --sigv4 https://<api>.execute-api.us-east-1.amazonaws.com/prod/invoke \"Hi\"
  stream-client --bearer \"$TOKEN\" https://<api>.execute-api.us-east-1.amazonaws.com/prod/invoke \"Hi\"

The URL defaults to AGENTCORE_STREAM_URL, from the environment or a .env file in the
current directory. The answer's text goes to stdout as it arrives; everything else
(spinner, `session: <id>`, errors, --stats) goes to stderr. A final newline is added
only when stdout is a terminal, so piped output is exactly the agent's text.

Exit codes:
  0    the answer was received completely
  1    the answer could not be written to stdout
  2    usage or configuration error (bad arguments, no URL, no AWS credentials/region for --sigv4)
  3    the server answered with an HTTP error status (its error code and message are on stderr)
  4    the stream reported an error in-band (`event: error`) or could not be decoded
  5    network failure: connection refused, reset mid-stream, or a timeout
  130  interrupted (Ctrl-C)";

/// `stream-client [URL] PROMPT`: send a prompt to an agentcore-lambda endpoint and show
/// the answer as it streams in.
#[derive(Debug, Parser)]
#[command(
    name = "stream-client",
    version,
    about = "Send a prompt to an agentcore-lambda endpoint and print the answer as it streams in",
    override_usage = "stream-client [OPTIONS] [URL] <PROMPT>",
    help_template = HELP_TEMPLATE,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// `[URL] PROMPT`: the endpoint URL (optional: defaults to AGENTCORE_STREAM_URL) and
    /// the prompt (described in the help template, as clap cannot show an optional
    /// positional before a required one).
    #[arg(value_names = ["URL", "PROMPT"], num_args = 0..=2, hide = true)]
    pub args: Vec<String>,

    /// Continue a session: the id a previous run printed as `session: <id>`.
    #[arg(long, value_name = "ID")]
    pub session_id: Option<String>,

    /// Ask the agent for this media type (sent as the `accept` field of the request).
    #[arg(long, value_name = "TYPE")]
    pub accept: Option<String>,

    /// Sign the request with SigV4, using the default AWS credential chain (Function URLs
    /// with AuthType AWS_IAM, or API Gateway with IAM authorization).
    #[arg(long)]
    pub sigv4: bool,

    /// SigV4 service name [default: execute-api for *.execute-api.* hosts, else lambda].
    #[arg(long, value_name = "NAME", requires = "sigv4")]
    pub service: Option<String>,

    /// SigV4 region [default: from the URL host, else AWS_REGION / AWS_DEFAULT_REGION,
    /// else the AWS profile].
    #[arg(long, value_name = "REGION", requires = "sigv4")]
    pub region: Option<String>,

    /// Send `Authorization: Bearer TOKEN` [env: AGENTCORE_BEARER_TOKEN].
    #[arg(long, value_name = "TOKEN", conflicts_with = "sigv4")]
    pub bearer: Option<String>,

    /// Sign in as NAME with the local stack's OIDC issuer (`make run`) and send that token.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["sigv4", "bearer"])]
    pub local_user: Option<String>,

    /// The local issuer for --local-user [env: LOCAL_ISSUER_URL; default:
    /// http://127.0.0.1:8787/issuer].
    #[arg(long, value_name = "URL", requires = "local_user")]
    pub issuer: Option<String>,

    /// Extra request header, `NAME:VALUE` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Print the response body bytes untouched (no SSE decoding).
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,

    /// Print one JSON object per SSE event, one per line: {"event", "id", "data", "text"}
    /// (error events included). A buffered JSON answer is printed as one line; any other
    /// body as one object for the whole body.
    #[arg(long)]
    pub json: bool,

    /// Print timings, bytes and event count to stderr at the end.
    #[arg(long)]
    pub stats: bool,

    /// Print no spinner and no `session: <id>` line (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Give up connecting after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub connect_timeout: Duration,

    /// Give up when no data arrives for this many seconds (also bounds the wait for the
    /// first byte).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub idle_timeout: Duration,

    /// Give up when the whole exchange takes longer than this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub max_time: Option<Duration>,
}

/// How the body is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The answer's text (SSE decoded, JSON `text`, or the raw body of other types).
    Text,
    /// The body bytes untouched.
    Raw,
    /// One JSON object per SSE event.
    Json,
}

/// How the request is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No authentication.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Bearer <token>` with a token fetched for `user` from the local stack's
    /// OIDC issuer (`GET {issuer}/token?user=NAME`).
    LocalUser {
        /// The issuer's URL.
        issuer: String,
        /// The user to sign in as.
        user: String,
    },
    /// SigV4 with the default credential chain.
    SigV4 {
        /// Service name in the credential scope.
        service: String,
        /// Region given or derived; `None` means "ask the AWS profile".
        region: Option<String>,
    },
}

/// Everything a run needs, resolved from the arguments and the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Endpoint.
    pub url: Url,
    /// The prompt.
    pub prompt: String,
    /// Session to continue.
    pub session_id: Option<String>,
    /// Requested media type.
    pub accept: Option<String>,
    /// Authentication.
    pub auth: Auth,
    /// Extra headers.
    pub headers: HeaderMap,
    /// Output mode.
    pub mode: Mode,
    /// Print statistics.
    pub stats: bool,
    /// No spinner, no session line.
    pub quiet: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle (read) timeout.
    pub idle_timeout: Duration,
    /// Overall timeout.
    pub max_time: Option<Duration>,
}

impl Settings {
    /// Resolves the arguments; `env` looks up environment variables (after `.env` was
    /// loaded).
    pub fn resolve(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        let mut args = cli.args.into_iter();
        let (url, prompt) = match (args.next(), args.next()) {
            (Some(url), Some(prompt)) => (url, prompt),
            (Some(prompt), None) => {
                if looks_like_url(&prompt) {
                    return Err(ClientError::Usage(format!(
                        "missing PROMPT after the URL {prompt}: run `stream-client {prompt} \"your question\"`"
                    )));
                }
                let url = env(URL_ENV).filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                    ClientError::Usage(format!(
                        "no URL: pass it before the prompt, or set {URL_ENV} (in the environment or a .env file), \
                         e.g. {URL_ENV}=http://127.0.0.1:9000/lambda-url/option2-lambda-url/"
                    ))
                })?;
                (url, prompt)
            }
            _ => {
                return Err(ClientError::Usage(
                    "missing PROMPT: run `stream-client [URL] \"your question\"`".to_owned(),
                ))
            }
        };
        let url = parse_url(url.trim())?;
        if prompt.trim().is_empty() {
            return Err(ClientError::Usage(
                "the prompt is empty: pass the question to ask the agent".to_owned(),
            ));
        }

        let auth = if cli.sigv4 {
            let host = url.host_str().unwrap_or_default();
            let service = cli
                .service
                .unwrap_or_else(|| default_service(host).to_owned());
            let region = cli
                .region
                .or_else(|| region_from_host(host))
                .or_else(|| env("AWS_REGION").filter(|r| !r.is_empty()))
                .or_else(|| env("AWS_DEFAULT_REGION").filter(|r| !r.is_empty()));
            Auth::SigV4 { service, region }
        } else if let Some(user) = cli.local_user {
            let issuer = cli
                .issuer
                .or_else(|| env("LOCAL_ISSUER_URL").filter(|u| !u.is_empty()))
                .unwrap_or_else(|| "http://127.0.0.1:8787/issuer".to_owned());
            Auth::LocalUser { issuer, user }
        } else if let Some(token) = cli
            .bearer
            .or_else(|| env(BEARER_ENV).filter(|t| !t.is_empty()))
        {
            Auth::Bearer(token)
        } else {
            Auth::None
        };
        if let Auth::Bearer(token) = &auth {
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ClientError::Usage(
                    "the bearer token contains characters a header cannot carry: pass the token alone, without quotes or new lines".to_owned(),
                )
            })?;
        }

        let mut headers = HeaderMap::new();
        for (name, value) in cli.headers {
            headers.append(name, value);
        }
        let mode = if cli.raw {
            Mode::Raw
        } else if cli.json {
            Mode::Json
        } else {
            Mode::Text
        };
        Ok(Settings {
            url,
            prompt,
            session_id: cli.session_id,
            accept: cli.accept,
            auth,
            headers,
            mode,
            stats: cli.stats,
            quiet: cli.quiet,
            connect_timeout: cli.connect_timeout,
            idle_timeout: cli.idle_timeout,
            max_time: cli.max_time,
        })
    }
}

fn looks_like_url(s: &str) -> bool {
    let s = s.trim_start().to_ascii_lowercase();
    (s.starts_with("http://") || s.starts_with("https://")) && !s.contains(char::is_whitespace)
}

fn parse_url(s: &str) -> Result<Url, ClientError> {
    let url = Url::parse(s).map_err(|e| {
        ClientError::Usage(format!(
            "the URL {s:?} is not valid ({e}): pass a full URL such as http://127.0.0.1:3000/option3/invoke"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ClientError::Usage(format!(
            "the URL {s:?} is not an http(s) URL: pass one such as https://<id>.lambda-url.<region>.on.aws/"
        )));
    }
    Ok(url)
}

/// The SigV4 service a host implies: `execute-api` for API Gateway hosts, else `lambda`.
pub fn default_service(host: &str) -> &'static str {
    if host.split('.').any(|label| label == "execute-api") {
        "execute-api"
    } else {
        "lambda"
    }
}

/// The region named in an AWS endpoint host: `<id>.lambda-url.<region>.on.aws` or
/// `<api>.execute-api.<region>.amazonaws.com`.
pub fn region_from_host(host: &str) -> Option<String> {
    let labels: Vec<&str> = host.split('.').collect();
    labels
        .windows(2)
        .find(|w| w[0] == "lambda-url" || w[0] == "execute-api")
        .map(|w| w[1])
        .filter(|r| {
            r.contains('-')
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(str::to_owned)
}

/// Parses `NAME:VALUE` (white space around the value is trimmed).
fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| {
        format!("expected NAME:VALUE, e.g. --header 'X-Trace-Id: abc', not {s:?}")
    })?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} contains characters a header cannot carry"))?;
    Ok((name, value))
}

/// Parses a number of seconds (fractions allowed).
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, not {s:?}"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("expected a positive number of seconds, not {s:?}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, ClientError> {
        let cli = Cli::try_parse_from(std::iter::once("stream-client").chain(args.iter().copied()))
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        Settings::resolve(cli, |k| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn url_and_prompt_or_prompt_alone_with_the_env_url() {
        let s = resolve(&["http://h/x", "hi"], &[]).expect("ok");
        assert_eq!((s.url.as_str(), s.prompt.as_str()), ("http://h/x", "hi"));
        let s = resolve(&["hi"], &[(URL_ENV, "http://e/")]).expect("ok");
        assert_eq!((s.url.as_str(), s.prompt.as_str()), ("http://e/", "hi"));
        assert!(matches!(resolve(&["hi"], &[]), Err(ClientError::Usage(_))));
        assert!(matches!(
            resolve(&["http://h/x"], &[(URL_ENV, "http://e/")]),
            Err(ClientError::Usage(_))
        ));
        assert!(matches!(
            resolve(&["ftp://h/x", "hi"], &[]),
            Err(ClientError::Usage(_))
        ));
    }

    #[test]
    fn regions_and_services_from_hosts() {
        assert_eq!(
            region_from_host("abc123.lambda-url.eu-west-1.on.aws").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_host("a1b2.execute-api.us-east-2.amazonaws.com").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region_from_host("127.0.0.1"), None);
        assert_eq!(
            default_service("a1b2.execute-api.us-east-2.amazonaws.com"),
            "execute-api"
        );
        assert_eq!(default_service("abc.lambda-url.eu-west-1.on.aws"), "lambda");
        let s = resolve(
            &["--sigv4", "https://abc.lambda-url.eu-west-1.on.aws/", "hi"],
            &[("AWS_REGION", "us-east-1")],
        )
        .expect("ok");
        assert_eq!(
            s.auth,
            Auth::SigV4 {
                service: "lambda".into(),
                region: Some("eu-west-1".into())
            }
        );
        let s = resolve(
            &[
                "--sigv4",
                "--region",
                "ap-south-1",
                "http://127.0.0.1/",
                "hi",
            ],
            &[("AWS_REGION", "us-east-1")],
        )
        .expect("ok");
        assert_eq!(
            s.auth,
            Auth::SigV4 {
                service: "lambda".into(),
                region: Some("ap-south-1".into())
            }
        );
    }

    #[test]
    fn headers_and_bearer() {
        let s = resolve(
            &["-H", "X-A: 1", "--header", "x-a:2", "http://h/", "hi"],
            &[(BEARER_ENV, "tok")],
        )
        .expect("ok");
        let values: Vec<_> = s.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(s.auth, Auth::Bearer("tok".into()));
        assert!(resolve(&["-H", "no-colon", "http://h/", "hi"], &[]).is_err());
        assert!(resolve(&["-H", "bad name: v", "http://h/", "hi"], &[]).is_err());
        // --sigv4 wins over a token from the environment; both explicitly is an error.
        let s = resolve(&["--sigv4", "http://h/", "hi"], &[(BEARER_ENV, "tok")]).expect("ok");
        assert!(matches!(s.auth, Auth::SigV4 { .. }));
        assert!(resolve(&["--sigv4", "--bearer", "t", "http://h/", "hi"], &[]).is_err());
    }
}

//! Which client headers reach the agent, and in what form.
//!
//! AgentCore passes only `Authorization` and `X-Amzn-Bedrock-AgentCore-Runtime-Custom-*`
//! headers to the agent container (at most 20, 4 KB each), so the operator's allow-list
//! of client headers is renamed into that prefix and checked against those limits here,
//! before AgentCore would refuse the call.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ApiError;

/// The prefix of headers AgentCore hands to the agent container.
pub const CUSTOM_HEADER_PREFIX: &str = "x-amzn-bedrock-agentcore-runtime-custom-";
/// AgentCore's limit on the number of custom headers per request.
pub const MAX_CUSTOM_HEADERS: usize = 20;
/// AgentCore's limit on the size of one custom header value.
pub const MAX_CUSTOM_HEADER_BYTES: usize = 4 * 1024;

/// The AgentCore custom header that carries client header `name`: the name itself when it
/// already has the prefix, otherwise the prefix plus the name. `None` if not a header name.
pub fn custom_header_name(name: &str) -> Option<HeaderName> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    let full = if lower.starts_with(CUSTOM_HEADER_PREFIX) {
        lower
    } else {
        format!("{CUSTOM_HEADER_PREFIX}{lower}")
    };
    HeaderName::from_bytes(full.as_bytes()).ok()
}

/// Bytes of a forwarded header value that are percent-encoded: everything but visible
/// ASCII, space and tab (what an HTTP/1.1 header carries as text).
const NOT_HEADER_TEXT: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(0x7f).remove(b'\t');

/// Picks the allow-listed headers out of a client request and renames them for AgentCore.
/// A header sent more than once is forwarded once (the first value), since AgentCore
/// counts each as a separate header. A value that is not ASCII text (UTF-8, say) is sent
/// with those bytes percent-encoded, as `FORWARD_CLAIMS` sends claims: the AWS SDK cannot
/// send it as it is, and dropping it would hide it from the agent without a word. A value
/// over 4 KB as sent is the client's error.
pub fn forwarded_headers(
    client_headers: &HeaderMap,
    allow_list: &[(HeaderName, HeaderName)],
) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    let mut out = Vec::new();
    for (client_name, custom_name) in allow_list {
        if let Some(value) = client_headers.get(client_name) {
            let encoded;
            let value = if value.to_str().is_ok() {
                value
            } else {
                let text: String =
                    percent_encoding::percent_encode(value.as_bytes(), NOT_HEADER_TEXT).collect();
                // Percent-encoded bytes are visible ASCII: always a valid header value.
                encoded = HeaderValue::from_str(&text).map_err(|_| ApiError::HeaderTooLarge {
                    name: client_name.as_str().to_owned(),
                    limit: MAX_CUSTOM_HEADER_BYTES,
                })?;
                &encoded
            };
            if value.len() > MAX_CUSTOM_HEADER_BYTES {
                return Err(ApiError::HeaderTooLarge {
                    name: client_name.as_str().to_owned(),
                    limit: MAX_CUSTOM_HEADER_BYTES,
                });
            }
            out.push((custom_name.clone(), value.clone()));
        }
    }
    // The allow-list is capped at 20 when the configuration loads; this keeps the
    // invariant local in case a caller builds a longer list by hand.
    out.truncate(MAX_CUSTOM_HEADERS);
    Ok(out)
}

/// Distributed-tracing context propagated to AgentCore, taken from the incoming request
/// (Lambda puts the X-Ray id into `X-Amzn-Trace-Id`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    /// `X-Amzn-Trace-Id`.
    pub trace_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// W3C `tracestate`.
    pub tracestate: Option<String>,
    /// W3C `baggage`.
    pub baggage: Option<String>,
}

impl TraceHeaders {
    /// Reads the trace headers from `headers`, ignoring values that are not visible ASCII
    /// or are unreasonably long (a trace header is never legitimately over 8 KB).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 8192)
                .map(str::to_owned)
        };
        Self {
            trace_id: get("x-amzn-trace-id"),
            traceparent: get("traceparent"),
            tracestate: get("tracestate"),
            baggage: get("baggage"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(names: &[&str]) -> Vec<(HeaderName, HeaderName)> {
        names
            .iter()
            .map(|n| {
                (
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    custom_header_name(n).expect("custom"),
                )
            })
            .collect()
    }

    #[test]
    fn names_get_the_agentcore_prefix_once() {
        assert_eq!(
            custom_header_name("X-Tenant")
                .map(|h| h.to_string())
                .as_deref(),
            Some("x-amzn-bedrock-agentcore-runtime-custom-x-tenant")
        );
        assert_eq!(
            custom_header_name("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo")
                .map(|h| h.to_string())
                .as_deref(),
            Some("x-amzn-bedrock-agentcore-runtime-custom-foo")
        );
        assert!(custom_header_name("").is_none());
        assert!(custom_header_name("bad name").is_none());
    }

    #[test]
    fn only_allow_listed_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_static("acme"));
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        let out = forwarded_headers(&h, &allow(&["x-tenant", "x-missing"])).expect("ok");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].0.as_str(),
            "x-amzn-bedrock-agentcore-runtime-custom-x-tenant"
        );
        assert_eq!(out[0].1, "acme");
    }

    #[test]
    fn a_value_over_four_kilobytes_is_refused_and_four_kilobytes_passes() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(4096)).expect("value"),
        );
        assert_eq!(
            forwarded_headers(&h, &allow(&["x-big"]))
                .expect("4096 fits")
                .len(),
            1
        );
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(4097)).expect("value"),
        );
        let err = forwarded_headers(&h, &allow(&["x-big"])).expect_err("too big");
        assert_eq!(err.status(), 400);
        assert_eq!(err.code(), "header_too_large");
        assert!(err.to_string().contains("x-big"));
    }

    #[test]
    fn a_value_that_is_not_ascii_is_percent_encoded_and_its_encoded_size_counts() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-name",
            HeaderValue::from_bytes("café €\tok".as_bytes()).expect("value"),
        );
        let out = forwarded_headers(&h, &allow(&["x-name"])).expect("forwarded");
        assert_eq!(out[0].1, "caf%C3%A9 %E2%82%AC\tok");
        h.insert(
            "x-name",
            HeaderValue::from_bytes(&"é".repeat(1500).into_bytes()).expect("value"),
        );
        let err = forwarded_headers(&h, &allow(&["x-name"])).expect_err("12 KB encoded");
        assert_eq!(err.code(), "header_too_large");
    }

    #[test]
    fn never_more_than_twenty_headers() {
        let names: Vec<String> = (0..25).map(|i| format!("x-h{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut h = HeaderMap::new();
        for n in &names {
            h.insert(
                HeaderName::from_bytes(n.as_bytes()).expect("n"),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(
            forwarded_headers(&h, &allow(&refs)).expect("ok").len(),
            MAX_CUSTOM_HEADERS
        );
    }

    #[test]
    fn trace_headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1-abc"));
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let t = TraceHeaders::from_headers(&h);
        assert_eq!(t.trace_id.as_deref(), Some("Root=1-abc"));
        assert!(t.traceparent.is_some());
        assert_eq!(t.tracestate, None);
        assert_eq!(t.baggage, None);
    }
}

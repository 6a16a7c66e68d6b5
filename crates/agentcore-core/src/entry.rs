//! The Lambda entry points of the handlers: `lambda_http`'s adapters around a
//! [`Gateway`], with one check of the raw event before `lambda_http` converts it.
//!
//! That conversion panics on a body flagged `isBase64Encoded` that is not valid base64
//! (`aws_lambda_events`' `Body::from_maybe_encoded`), before any handler code runs. The
//! check replaces such a body with one that decodes to bytes that are not UTF-8, so the
//! request parser answers it like any other undecodable body: `400 invalid_encoding`.

use base64::Engine;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceBuilder;
use lambda_http::{service_fn, Adapter, Error, LambdaEvent, StreamAdapter};

use crate::Gateway;

/// Base64 of the single byte `0xFF`, which is never valid UTF-8.
const NOT_UTF8_BASE64: &str = "/w==";

/// Serves `gateway` as a buffered HTTP function (option 1) until the runtime stops.
pub async fn run_buffered(gateway: &'static Gateway) -> Result<(), Error> {
    let service = ServiceBuilder::new()
        .map_request(decodable_body)
        .service(Adapter::from(service_fn(move |req| gateway.buffered(req))));
    lambda_http::lambda_runtime::run(service).await
}

/// Serves `gateway` as a streaming HTTP function (options 2 and 3) until the runtime
/// stops.
pub async fn run_streaming(gateway: &'static Gateway) -> Result<(), Error> {
    let service = ServiceBuilder::new()
        .map_request(decodable_body)
        .service(StreamAdapter::from(service_fn(move |req| {
            gateway.streaming(req)
        })));
    lambda_http::lambda_runtime::run(service).await
}

/// Replaces a body flagged base64 that does not decode (see the module documentation).
pub fn decodable_body(mut event: LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest> {
    let (body, base64) = match &mut event.payload {
        LambdaRequest::ApiGatewayV1(req) => (&mut req.body, req.is_base64_encoded),
        LambdaRequest::ApiGatewayV2(req) => (&mut req.body, req.is_base64_encoded),
        _ => return event,
    };
    if let (true, Some(text)) = (base64, body.as_mut()) {
        if base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .is_err()
        {
            tracing::warn!(
                bytes = text.len(),
                "the event's body is flagged base64 but does not decode"
            );
            *text = NOT_UTF8_BASE64.to_owned();
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Request;

    fn v1(body: &str, base64: bool) -> LambdaEvent<LambdaRequest> {
        let doc = serde_json::json!({
            "resource": "/invoke", "path": "/invoke", "httpMethod": "POST",
            "headers": {"content-type": "application/json"}, "multiValueHeaders": {},
            "requestContext": {"httpMethod": "POST", "path": "/invoke", "stage": "x"},
            "body": body, "isBase64Encoded": base64,
        });
        let payload: LambdaRequest = serde_json::from_value(doc).expect("a v1 event");
        LambdaEvent::new(payload, lambda_http::Context::default())
    }

    fn body_after_check(body: &str, base64: bool) -> Vec<u8> {
        let req: Request = decodable_body(v1(body, base64)).payload.into();
        req.body().as_ref().to_vec()
    }

    #[test]
    fn undecodable_base64_becomes_bytes_the_parser_refuses_as_not_utf8() {
        assert_eq!(body_after_check("not base64!", true), [0xff]);
        assert!(crate::request::parse_body(&[0xff], 1024)
            .is_err_and(|e| e.code() == "invalid_encoding"));
    }

    #[test]
    fn valid_and_plain_bodies_are_untouched() {
        assert_eq!(
            body_after_check("eyJwcm9tcHQiOiJoaSJ9", true),
            br#"{"prompt":"hi"}"#
        );
        assert_eq!(body_after_check("not base64!", false), b"not base64!");
    }
}

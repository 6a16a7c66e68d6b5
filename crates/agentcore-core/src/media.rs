//! Content types: the one parser (the `mime` crate) behind every decision on a media type,
//! the client's `Content-Type` and the agent's alike.

use mime::Mime;

/// The media type of a `Content-Type` value (type, subtype, suffix and parameters), or
/// `None` when it does not parse as one.
pub fn parse(content_type: &str) -> Option<Mime> {
    content_type.trim().parse().ok()
}

/// Whether a content type is JSON: `application/json` or any `+json` type.
pub fn is_json(content_type: &str) -> bool {
    parse(content_type).is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
}

/// Whether a content type is server-sent events (`text/event-stream`).
pub fn is_event_stream(content_type: &str) -> bool {
    parse(content_type)
        .is_some_and(|m| m.type_() == mime::TEXT && m.subtype() == mime::EVENT_STREAM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_event_streams_are_recognised_whatever_the_case_and_parameters() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            " application/vnd.api+json ",
        ] {
            assert!(is_json(json), "{json}");
        }
        for not_json in [
            "text/plain",
            "application/jsonx",
            "json",
            "",
            "application/json garbage",
        ] {
            assert!(!is_json(not_json), "{not_json}");
        }
        assert!(is_event_stream("text/event-stream; charset=utf-8"));
        assert!(is_event_stream("Text/Event-Stream"));
        assert!(!is_event_stream("application/json"));
        assert!(!is_event_stream("text/event-streams"));
    }
}

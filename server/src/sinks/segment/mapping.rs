//! Events (after their branch's processors) as messages of Segment's HTTP Tracking
//! API, built from the events' JSON text.

use std::borrow::Cow;

use event_model::processor::Rejection;
use event_model::processors::{event_type, TRACKING_LOG_TYPE};
use event_model::rules::json::{self as rules_json, Dialect, Rules};
use event_model::{Event, Fields, Json, Text};
use sha2::{Digest, Sha256};

fn non_empty<'a>(fields: &'a Fields, key: &str) -> Option<Cow<'a, str>> {
    fields.get_str(key).filter(|s| !s.is_empty())
}

/// The path of a URL (`https://h/a/b?q#f` → `/a/b`); a path is returned as it is.
pub fn url_path(url: &str) -> Option<String> {
    if url.starts_with('/') {
        let end = url.find(['?', '#']).unwrap_or(url.len());
        return Some(url[..end].to_owned());
    }
    let parsed = url::Url::parse(url).ok()?;
    Some(parsed.path().to_owned())
}

/// The first language tag of an `Accept-Language` header, as Segment's `locale`.
pub fn locale(accept_language: &str) -> Option<&str> {
    let first = accept_language.split(',').next()?.split(';').next()?.trim();
    (!first.is_empty() && first != "*").then_some(first)
}

/// Segment's `userId`: the context's `user_id`, which the server sets from a verified
/// credential only (a client-declared id is kept apart and never used here).
fn user_id(context: &Fields) -> Option<Json> {
    let value = context.get("user_id")?;
    match value.kind() {
        event_model::text::Kind::Number => Some(Json::str(&value.to_compact())),
        event_model::text::Kind::String if value.as_str().is_some_and(|s| !s.is_empty()) => Some(value.clone()),
        _ => None,
    }
}

/// The event id, or for an event without one a stable id derived from its content,
/// so a redelivery still de-duplicates.
fn message_id(event: &Event) -> Json {
    match event.id() {
        Some(id) => Json::str(&id),
        None => Json::str(&format!("tracking-{}", hex::encode(&Sha256::digest(event.to_compact().as_bytes())[..16]))),
    }
}

/// The `page` context of Segment. For browser events the page is the event's page
/// URL and the referrer the one the SDK sent (the ingest request's own `Referer` is
/// the page itself); for server events it is the request the service handled.
fn page_context(event: &Event) -> Fields {
    let top = event.fields();
    let context = event.context();
    let browser = context.get_str("event_source").as_deref() == Some("browser");
    let mut url = non_empty(context, "page").map(Cow::into_owned);
    let path;
    let referrer;
    if browser {
        path = url.as_deref().and_then(url_path);
        referrer = non_empty(top, "referrer").map(Cow::into_owned);
    } else {
        let request_path = non_empty(context, "path");
        if url.is_none() {
            if let (Some(host), Some(p)) = (non_empty(context, "host"), request_path.as_deref()) {
                url = Some(format!("https://{host}{p}"));
            }
        }
        path = request_path.map(Cow::into_owned).or_else(|| url.as_deref().and_then(url_path));
        referrer = non_empty(top, "referrer").or_else(|| non_empty(context, "referer")).map(Cow::into_owned);
    }
    let mut page = Fields::new();
    for (key, value) in [("path", path), ("referrer", referrer), ("url", url)] {
        if let Some(value) = value {
            page.insert(Text::from_static(key), Json::str(&value));
        }
    }
    page
}

/// The payload as an object for `properties` or `traits`: `data` (`event` in the
/// legacy shape) as it is when it is an object, else wrapped as `{"data": …}`;
/// Python's `NaN` and infinities (from `/event`) become `null`, which JSON can hold.
fn payload(event: &Event) -> Fields {
    let data = match event.data() {
        Some(Json::Text(text)) => {
            let rules = Rules { scrub: false, dialect: Dialect::Python, null_nonfinite: true, ..Rules::default() };
            match rules_json::rewrite(text, &rules) {
                Ok(Cow::Owned(clean)) => Json::from_checked(Text::from(clean)),
                _ => Json::Text(text.clone()),
            }
        }
        Some(other) => other.clone(),
        None => return Fields::new(),
    };
    match data.to_fields() {
        Some(fields) => fields,
        None if data.is_null() => Fields::new(),
        None => {
            let mut wrapped = Fields::new();
            wrapped.insert(Text::from_static("data"), data);
            wrapped
        }
    }
}

/// Maps an event to a message of Segment's HTTP Tracking API. Tracking-log and server
/// events become `track` calls named by the event name. Whether the message is
/// acceptable is [`check_message`]'s business.
pub fn to_message(event: &Event) -> Fields {
    let top = event.fields();
    let context = event.context();
    let kind = match event_type(event).as_ref() {
        TRACKING_LOG_TYPE => "track".to_owned(),
        other => other.to_owned(),
    };
    let mut m = Fields::with_capacity(10);
    m.insert(Text::from_static("type"), Json::str(&kind));
    m.insert(Text::from_static("messageId"), message_id(event));
    if let Some(ts) = non_empty(top, "client_timestamp").or_else(|| non_empty(top, "timestamp")) {
        m.insert(Text::from_static("timestamp"), Json::str(&ts));
    }
    if let Some(user_id) = user_id(context) {
        m.insert(Text::from_static("userId"), user_id);
    }
    let anonymous = non_empty(top, "anonymous_id").or_else(|| non_empty(context, "session")).or_else(|| non_empty(context, "client_id"));
    if let Some(anonymous) = anonymous {
        m.insert(Text::from_static("anonymousId"), Json::str(&anonymous));
    }

    let mut payload = payload(event);
    let page = page_context(event);
    if kind == "identify" {
        m.insert(Text::from_static("traits"), Json::Object(payload));
    } else {
        if kind == "page" {
            m.insert(Text::from_static("name"), Json::str(&event.name()));
            if let Some(category) = non_empty(top, "category") {
                m.insert(Text::from_static("category"), Json::str(&category));
            }
            // Segment's reserved page properties, as analytics.js fills them.
            for (key, value) in page.iter() {
                if !payload.contains_key(key) {
                    payload.insert(key.clone(), value.clone());
                }
            }
        } else {
            m.insert(Text::from_static("event"), Json::str(&event.name()));
            if let Some(category) = non_empty(top, "category") {
                if !payload.contains_key("category") {
                    payload.insert(Text::from_static("category"), Json::str(&category));
                }
            }
        }
        // The Google Analytics processor's fields.
        for key in ["label", "nonInteraction"] {
            if let Some(value) = top.get(key).filter(|v| !v.is_null()) {
                payload.insert(Text::from_static(key), value.clone());
            }
        }
        m.insert(Text::from_static("properties"), Json::Object(payload));
    }

    let mut segment_context = Fields::with_capacity(6);
    // Without an address Segment would locate the user at the ingest server; 0.0.0.0
    // tells it not to record one.
    let ip = non_empty(context, "ip").unwrap_or(Cow::Borrowed("0.0.0.0"));
    segment_context.insert(Text::from_static("ip"), Json::str(&ip));
    if let Some(agent) = non_empty(context, "agent") {
        segment_context.insert(Text::from_static("userAgent"), Json::str(&agent));
    }
    if let Some(accept_language) = non_empty(context, "accept_language") {
        if let Some(locale) = locale(&accept_language) {
            segment_context.insert(Text::from_static("locale"), Json::str(locale));
        }
    }
    if !page.is_empty() {
        segment_context.insert(Text::from_static("page"), Json::Object(page));
    }
    if let Some(client_id) = non_empty(context, "client_id") {
        let mut ga = Fields::new();
        ga.insert(Text::from_static("clientId"), Json::str(&client_id));
        segment_context.insert(Text::from_static("Google Analytics"), Json::Object(ga));
    }
    let mut library = Fields::new();
    library.insert(Text::from_static("name"), Json::str("tracking"));
    library.insert(Text::from_static("version"), Json::str(env!("CARGO_PKG_VERSION")));
    segment_context.insert(Text::from_static("library"), Json::Object(library));
    m.insert(Text::from_static("context"), Json::Object(segment_context));
    m
}

/// Why Segment would refuse a message, checked before it is sent.
pub fn check_message(message: &Fields, serialized_len: usize, max_event_bytes: usize) -> Option<Rejection> {
    if serialized_len > max_event_bytes {
        return Some(Rejection::new(
            "event_too_large",
            format!("message is {serialized_len} bytes serialized, over Segment's limit of {max_event_bytes}"),
        ));
    }
    if !message.contains_key("userId") && !message.contains_key("anonymousId") {
        return Some(Rejection::new(
            "no_identity",
            "no verified user id, anonymous id, session or client id: Segment requires a userId or an anonymousId",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;
    use event_model::Value;

    fn browser_event(kind: Option<&str>, extra: Value) -> Event {
        let context = json!({
            "user_id": 42, "username": "ada", "session": "0123456789abcdef0123456789abcdef", "ip": "203.0.113.7",
            "agent": "Mozilla/5.0", "host": "ingest.example.com", "path": "/v1/batch",
            "referer": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/",
            "accept_language": "fr-CA,fr;q=0.9", "client_id": "1234.5678", "course_id": "course-v1:edX+DemoX+Demo",
            "org_id": "edX", "event_source": "browser",
            "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/?x=1#top"
        });
        let mut e = Event::with_parts(
            "edx.ui.lms.link_clicked",
            "2026-11-22T10:01:02.200000+00:00",
            Json::parse(r#"{"target_url":"https://x"}"#).unwrap(),
            Fields::from_map(context.as_object().unwrap()),
            Some(uuid::Uuid::now_v7()),
        );
        if let Some(kind) = kind {
            e.fields_mut().insert("type", Json::str(kind));
        }
        for (k, v) in extra.as_object().unwrap() {
            e.fields_mut().insert(Text::from(k.as_str()), Json::from_value(v));
        }
        e
    }

    fn message(e: &Event) -> Value {
        Json::Object(to_message(e)).to_value()
    }

    #[test]
    fn track_mapping() {
        let e = browser_event(
            Some("track"),
            json!({"anonymous_id": "anon-1", "declared_user_id": "999", "client_timestamp": "2026-11-22T10:01:02.100000+00:00",
                   "referrer": "https://lms.example.com/dashboard", "label": "course-v1:edX+DemoX+Demo", "nonInteraction": 1}),
        );
        let m = message(&e);
        assert_eq!(m["type"], "track");
        assert_eq!(m["event"], "edx.ui.lms.link_clicked");
        assert_eq!(m["messageId"], e.id().unwrap().as_ref());
        assert_eq!(m["userId"], "42", "from the verified context, as a string; never the declared id");
        assert_eq!(m["anonymousId"], "anon-1");
        assert_eq!(m["timestamp"], "2026-11-22T10:01:02.100000+00:00", "the client's clock when it sent one");
        assert_eq!(m["properties"], json!({"target_url": "https://x", "label": "course-v1:edX+DemoX+Demo", "nonInteraction": 1}));
        let c = &m["context"];
        assert_eq!(c["ip"], "203.0.113.7");
        assert_eq!(c["userAgent"], "Mozilla/5.0");
        assert_eq!(c["locale"], "fr-CA");
        assert_eq!(
            c["page"],
            json!({"path": "/courses/course-v1:edX+DemoX+Demo/courseware/", "referrer": "https://lms.example.com/dashboard",
                   "url": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware/?x=1#top"})
        );
        assert_eq!(c["library"], json!({"name": "tracking", "version": env!("CARGO_PKG_VERSION")}));
        assert_eq!(c["Google Analytics"], json!({"clientId": "1234.5678"}));
        assert!(check_message(&to_message(&e), 100, 32_000).is_none());
    }

    #[test]
    fn page_identify_and_tracking_log_mapping() {
        let page = message(&browser_event(Some("page"), json!({"category": "learning"})));
        assert_eq!(page["type"], "page");
        assert_eq!(page["name"], "edx.ui.lms.link_clicked");
        assert_eq!(page["category"], "learning");
        assert_eq!(page["properties"]["path"], "/courses/course-v1:edX+DemoX+Demo/courseware/");
        assert!(page.get("event").is_none());

        let identify = message(&browser_event(Some("identify"), json!({})));
        assert_eq!(identify["traits"], json!({"target_url": "https://x"}));
        assert!(identify.get("properties").is_none());

        let m = message(&browser_event(None, json!({})));
        assert_eq!((m["type"].as_str(), m["event"].as_str()), (Some("track"), Some("edx.ui.lms.link_clicked")));
        assert_eq!(m["timestamp"], "2026-11-22T10:01:02.200000+00:00", "the event time without a client clock");
        assert_eq!(m["anonymousId"], "0123456789abcdef0123456789abcdef", "the session when there is no anonymous id");
    }

    #[test]
    fn server_events_and_identity() {
        let context = json!({"user_id": null, "host": "lms.example.com", "path": "/api/enroll", "referer": "https://lms.example.com/x",
                             "ip": "", "client_id": "", "session": ""});
        let e = Event::with_parts(
            "edx.course.enrollment.activated",
            "2026-11-22T10:01:02+00:00",
            Json::str("raw"),
            Fields::from_map(context.as_object().unwrap()),
            None,
        );
        let m = to_message(&e);
        let v = Json::Object(m.clone()).to_value();
        assert_eq!(
            v["context"]["page"],
            json!({"path": "/api/enroll", "referrer": "https://lms.example.com/x", "url": "https://lms.example.com/api/enroll"})
        );
        assert_eq!(v["context"]["ip"], "0.0.0.0");
        assert_eq!(v["properties"], json!({"data": "raw"}));
        assert!(v["messageId"].as_str().unwrap().starts_with("tracking-"));
        assert_eq!(v["messageId"], Json::Object(to_message(&e)).to_value()["messageId"], "stable without an event id");
        assert!(v.get("userId").is_none() && v.get("anonymousId").is_none());
        assert_eq!(check_message(&m, 100, 32_000).unwrap().reason, "no_identity");
        assert_eq!(check_message(&m, 40_000, 32_000).unwrap().reason, "event_too_large");
    }

    #[test]
    fn lone_surrogates_and_python_numbers() {
        let mut e = browser_event(Some("track"), json!({}));
        e.fields_mut().insert("data", Json::parse_dialect(r#"{"s":"\ud83d","n":NaN}"#, Dialect::Python).unwrap());
        let text = Json::Object(to_message(&e)).to_compact();
        assert!(text.contains(r#""properties":{"s":"\ud83d","n":null}"#), "{text}");
    }

    #[test]
    fn helpers() {
        assert_eq!(url_path("https://h.example/a/b?q=1#f").as_deref(), Some("/a/b"));
        assert_eq!(url_path("https://h.example").as_deref(), Some("/"));
        assert_eq!(url_path("https://h.example?q").as_deref(), Some("/"));
        assert_eq!(url_path("/courses/x").as_deref(), Some("/courses/x"));
        assert_eq!(url_path("nothing"), None);
        assert_eq!(locale("en-US,en;q=0.9"), Some("en-US"));
        assert_eq!(locale("*"), None);
    }
}

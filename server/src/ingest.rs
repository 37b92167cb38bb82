//! From request bodies to events: the `/v1/batch` schema, the legacy `/event`
//! fields, and the rules applied before an event is accepted.

use std::sync::Arc;

use event_model::processor::Rejection;
use event_model::processors::{NameMode, NameValidator, Scrubber, SizeLimit};
use event_model::routing::{Counters, Outcome, Router};
use event_model::rules::course::{course_from_url, parse_course_key};
use event_model::{timestamp, Event, Map, Value};
use uuid::Uuid;

/// Why a whole request body was refused (per-event problems are [`Rejection`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be a JSON object with an `events` array")]
    Shape,
    #[error("{count} events in one batch, more than the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("body is not valid UTF-8")]
    Utf8,
    #[error("missing field `{0}`")]
    Missing(&'static str),
}

impl BodyError {
    /// A stable code for replies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::Json(_) => "invalid_json",
            BodyError::Shape => "invalid_batch",
            BodyError::TooManyEvents { .. } => "too_many_events",
            BodyError::Utf8 => "invalid_utf8",
            BodyError::Missing(_) => "missing_field",
        }
    }
}

/// Reads a batch body: `{"sent_at": "...", "events": [ ... ]}`. Each event is
/// checked on its own later, so one bad event never costs the others.
pub fn parse_batch(body: &[u8], max_events: usize) -> Result<Vec<Value>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::Utf8)?;
    let value: Value = serde_json::from_str(text).map_err(|e| BodyError::Json(e.to_string()))?;
    let Value::Object(mut map) = value else { return Err(BodyError::Shape) };
    let Some(Value::Array(events)) = map.remove("events") else { return Err(BodyError::Shape) };
    if events.len() > max_events {
        return Err(BodyError::TooManyEvents { count: events.len(), limit: max_events });
    }
    Ok(events)
}

/// The API type of a batch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `sendTrackingLogEvent`: the research tracking log.
    TrackingLog,
    /// `sendTrackEvent`, `sendPageEvent`, identify: Segment.
    Track,
    Page,
    Identify,
}

impl EventKind {
    fn parse(value: Option<&Value>) -> Result<Self, Rejection> {
        match value {
            None | Some(Value::Null) => Ok(EventKind::TrackingLog),
            Some(Value::String(s)) => match s.as_str() {
                "tracking_log" => Ok(EventKind::TrackingLog),
                "track" => Ok(EventKind::Track),
                "page" => Ok(EventKind::Page),
                "identify" => Ok(EventKind::Identify),
                _ => Err(Rejection::new("invalid_type", "`type` must be tracking_log, track, page or identify")),
            },
            Some(_) => Err(Rejection::new("invalid_type", "`type` must be a string")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            EventKind::TrackingLog => "tracking_log",
            EventKind::Track => "track",
            EventKind::Page => "page",
            EventKind::Identify => "identify",
        }
    }
}

fn optional_string(item: &Map<String, Value>, field: &'static str) -> Result<Option<String>, Rejection> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::new("invalid_field", format!("`{field}` must be a string"))),
    }
}

/// The id a client gave an event, if it is a valid UUID (used in replies even when
/// the event is rejected for another reason).
pub fn client_id_of(item: &Value) -> Option<String> {
    item.get("id").and_then(Value::as_str).filter(|s| Uuid::parse_str(s).is_ok()).map(str::to_owned)
}

/// Sets `course_id` and `org_id` from a course run key, else from the page URL, else
/// to `""`, as the LMS does for browser events.
fn set_course(context: &mut Map<String, Value>, page: Option<&str>, courserun_key: Option<&str>) {
    let found = courserun_key.and_then(parse_course_key).or_else(|| page.and_then(course_from_url));
    let (course_id, org_id) = found.map(|c| (c.course_id, c.org_id)).unwrap_or_default();
    context.insert("course_id".into(), Value::String(course_id));
    context.insert("org_id".into(), Value::String(org_id));
}

/// Builds the event for one item of a batch, with the request's context; `received`
/// is the time the server received the batch (from [`timestamp::format`]), which the
/// tracking log records as the event time, as the LMS does.
pub fn event_from_batch_item(item: Value, request_context: &Map<String, Value>, received: &str) -> Result<Event, Rejection> {
    let Value::Object(mut item) = item else {
        return Err(Rejection::new("invalid_event", "each event must be a JSON object"));
    };
    let kind = EventKind::parse(item.get("type"))?;
    let id = match item.get("id") {
        None | Some(Value::Null) => Uuid::now_v7(),
        Some(Value::String(s)) => Uuid::parse_str(s).map_err(|_| Rejection::new("invalid_id", "`id` must be a UUID"))?,
        Some(_) => return Err(Rejection::new("invalid_id", "`id` must be a UUID string")),
    };
    let name = optional_string(&item, "name")?;
    let name = match (kind, name) {
        (_, Some(name)) if !name.is_empty() => name,
        (EventKind::TrackingLog | EventKind::Track, _) => return Err(Rejection::new("missing_name", "`name` is required")),
        (EventKind::Page, _) => "page".to_owned(),
        (EventKind::Identify, _) => "identify".to_owned(),
    };
    let data = match item.remove("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(data @ Value::Object(_)) => data,
        Some(_) => return Err(Rejection::new("invalid_data", "`data` must be a JSON object")),
    };
    // The client's clock only goes to Segment; tracking-log events use the server's.
    let client_timestamp = match optional_string(&item, "timestamp")? {
        Some(ts) if kind != EventKind::TrackingLog => {
            Some(timestamp::normalize(&ts).map_err(|_| Rejection::new("invalid_timestamp", "`timestamp` must be RFC 3339"))?)
        }
        _ => None,
    };
    let page = optional_string(&item, "page")?;
    let referrer = optional_string(&item, "referrer")?;
    let category = optional_string(&item, "category")?;
    let anonymous_id = scalar_string(&item, "anonymous_id")?;
    let declared_user_id = scalar_string(&item, "user_id")?;

    let mut context = request_context.clone();
    set_course(&mut context, page.as_deref(), None);
    context.insert("event_source".into(), Value::String("browser".into()));
    context.insert("page".into(), page.map(Value::String).unwrap_or(Value::Null));

    let mut event = Event::with_parts(name, received.to_owned(), data, context, Some(id));
    if kind != EventKind::TrackingLog {
        // Segment's fields; tracking-log events keep the legacy shape exactly.
        let map = event.as_map_mut();
        map.insert("type".into(), Value::String(kind.as_str().into()));
        let extras = [("category", category), ("referrer", referrer), ("anonymous_id", anonymous_id), ("declared_user_id", declared_user_id), ("client_timestamp", client_timestamp)];
        for (key, value) in extras {
            if let Some(value) = value {
                map.insert(key.into(), Value::String(value));
            }
        }
    }
    Ok(event)
}

/// A user or anonymous id: a string, or a number written as a string.
fn scalar_string(item: &Map<String, Value>, field: &'static str) -> Result<Option<String>, Rejection> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Rejection::new("invalid_field", format!("`{field}` must be a string or a number"))),
    }
}

/// The fields of the legacy `/event` endpoint.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LegacyFields {
    pub event_type: Option<String>,
    pub event: Option<String>,
    pub page: Option<String>,
    pub courserun_key: Option<String>,
}

/// Builds the event of a legacy `/event` request, as the LMS's `user_track` does:
/// `event` is decoded when it is JSON and kept as the raw string otherwise.
pub fn event_from_legacy(fields: LegacyFields, request_context: &Map<String, Value>) -> Result<Event, BodyError> {
    let name = fields.event_type.filter(|n| !n.is_empty()).ok_or(BodyError::Missing("event_type"))?;
    let data = match fields.event {
        None => Value::Object(Map::new()),
        Some(raw) if raw.is_empty() => Value::String(raw),
        Some(raw) => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
    };
    let mut context = request_context.clone();
    set_course(&mut context, fields.page.as_deref(), fields.courserun_key.as_deref());
    context.insert("event_source".into(), Value::String("browser".into()));
    context.insert("page".into(), fields.page.map(Value::String).unwrap_or(Value::Null));
    Ok(Event::with_parts(name, timestamp::format(timestamp::now()), data, context, Some(Uuid::now_v7())))
}

/// An event ready for the write-ahead log.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The event id, for de-duplication.
    pub id: Option<Uuid>,
    /// The event as stored: compact JSON.
    pub record: Vec<u8>,
}

/// The checks every incoming event passes before it is accepted: name validation
/// (legacy names accepted), scrubbing, and the size limit on the stored JSON (the
/// measure the browser SDK applies with `JSON.stringify`). Drops and warnings are
/// counted in the server's counters under the branch `ingest`.
pub struct IngestRules {
    router: Router,
    size: SizeLimit,
}

impl IngestRules {
    pub fn new(name_mode: NameMode, scrub_keys: Vec<String>, max_event_bytes: usize, counters: Arc<Counters>) -> Self {
        let router = Router::builder()
            .path("ingest")
            .counters(counters)
            .processor(NameValidator::new(name_mode, true))
            .processor(Scrubber::new(scrub_keys))
            .build();
        IngestRules { router, size: SizeLimit::new(max_event_bytes) }
    }

    /// The event as it will be stored, or why it is rejected.
    pub fn apply(&self, event: Event) -> Result<Accepted, Rejection> {
        let event = self.router.process(event)?;
        // An Event is a JSON object: serializing it into memory cannot fail.
        let record = serde_json::to_vec(&event).expect("events serialize");
        if let Some(why) = self.size.check_len(record.len()) {
            self.router.counters().record("ingest", "size_limit", Outcome::Dropped, why.reason);
            return Err(why);
        }
        let id = event.id().and_then(|id| Uuid::parse_str(id).ok());
        Ok(Accepted { id, record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;

    const NOW: &str = "2026-11-22T10:01:02+00:00";

    fn request_context() -> Map<String, Value> {
        json!({"user_id": 7, "username": "u", "path": "/v1/batch", "course_id": "", "org_id": ""}).as_object().unwrap().clone()
    }

    #[test]
    fn batch_shapes() {
        assert_eq!(parse_batch(br#"{"events": [{}, 1]}"#, 10).unwrap().len(), 2);
        assert_eq!(parse_batch(b"[]", 10), Err(BodyError::Shape));
        assert_eq!(parse_batch(br#"{"events": {}}"#, 10), Err(BodyError::Shape));
        assert!(matches!(parse_batch(b"{", 10), Err(BodyError::Json(_))));
        assert_eq!(parse_batch(b"\xff", 10), Err(BodyError::Utf8));
        assert_eq!(parse_batch(br#"{"events": [1, 2, 3]}"#, 2), Err(BodyError::TooManyEvents { count: 3, limit: 2 }));
    }

    #[test]
    fn tracking_log_item() {
        let id = "0192f3a0-7b1c-7d2e-8f3a-0123456789ab";
        let e = event_from_batch_item(
            json!({"id": id, "type": "tracking_log", "name": "edx.ui.lms.link_clicked", "data": {"a": 1},
                   "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware", "user_id": "999",
                   "timestamp": "2026-11-22T10:01:02.100Z"}),
            &request_context(),
            "2026-11-22T10:01:02.200000+00:00",
        )
        .unwrap();
        assert_eq!(e.id(), Some(id));
        assert_eq!(e.as_map()["timestamp"], json!("2026-11-22T10:01:02.200000+00:00"));
        let context = e.context();
        assert_eq!(context["course_id"], json!("course-v1:edX+DemoX+Demo"));
        assert_eq!(context["org_id"], json!("edX"));
        assert_eq!(context["event_source"], json!("browser"));
        assert_eq!(context["user_id"], json!(7), "the declared user id never replaces the verified one");
        assert!(!e.as_map().contains_key("declared_user_id"));
        assert!(!e.as_map().contains_key("type"));
    }

    #[test]
    fn segment_items_keep_their_fields() {
        let e = event_from_batch_item(json!({"type": "track", "name": "edx.bi.x.clicked", "user_id": 999, "anonymous_id": "anon", "timestamp": "2026-11-22T10:01:02.1Z"}), &request_context(), NOW).unwrap();
        assert_eq!(e.as_map()["client_timestamp"], json!("2026-11-22T10:01:02.100000+00:00"));
        assert_eq!(e.as_map()["type"], json!("track"));
        assert_eq!(e.as_map()["declared_user_id"], json!("999"));
        assert_eq!(e.context()["user_id"], json!(7));
        assert_eq!(Uuid::parse_str(e.id().unwrap()).unwrap().get_version_num(), 7, "minted when missing");
        let page = event_from_batch_item(json!({"type": "page", "category": "learning"}), &request_context(), NOW).unwrap();
        assert_eq!(page.name(), "page");
    }

    #[test]
    fn item_rejections() {
        let reason = |item: Value| event_from_batch_item(item, &request_context(), NOW).unwrap_err().reason;
        assert_eq!(reason(json!(3)), "invalid_event");
        assert_eq!(reason(json!({"type": "teleport", "name": "a.b.c"})), "invalid_type");
        assert_eq!(reason(json!({"name": "a.b.c", "id": "nope"})), "invalid_id");
        assert_eq!(reason(json!({"data": {}})), "missing_name");
        assert_eq!(reason(json!({"name": "a.b.c", "data": [1]})), "invalid_data");
        assert_eq!(reason(json!({"type": "track", "name": "a.b.c", "timestamp": "later"})), "invalid_timestamp");
        assert_eq!(reason(json!({"name": "a.b.c", "page": 5})), "invalid_field");
    }

    #[test]
    fn legacy_fields() {
        let e = event_from_legacy(
            LegacyFields { event_type: Some("seq_goto".into()), event: Some(r#"{"old": 1}"#.into()), page: Some("https://x/courses/course-v1:A+B+C/".into()), courserun_key: Some("course-v1:X+Y+Z".into()) },
            &request_context(),
        )
        .unwrap();
        assert_eq!(e.data(), Some(&json!({"old": 1})));
        assert_eq!(e.context()["course_id"], json!("course-v1:X+Y+Z"), "courserun_key wins over the page");
        let raw = event_from_legacy(LegacyFields { event_type: Some("x".into()), event: Some("not json".into()), ..Default::default() }, &request_context()).unwrap();
        assert_eq!(raw.data(), Some(&json!("not json")));
        assert_eq!(raw.context()["page"], Value::Null);
        assert_eq!(raw.context()["course_id"], json!(""));
        assert_eq!(event_from_legacy(LegacyFields::default(), &request_context()).unwrap_err(), BodyError::Missing("event_type"));
    }

    #[test]
    fn rules_reject_oversize_and_scrub() {
        let rules = IngestRules::new(NameMode::Reject, vec![], 300, Counters::new());
        let ok = Event::new("edx.a.b", json!({"password": "x"}), Map::new());
        let stored: Event = serde_json::from_slice(&rules.apply(ok).unwrap().record).unwrap();
        assert_eq!(stored.data(), Some(&json!({"password": "********"})));
        let big = Event::new("edx.a.b", json!({"t": "x".repeat(400)}), Map::new());
        assert_eq!(rules.apply(big).unwrap_err().reason, "size_limit");
        assert_eq!(rules.apply(Event::new("Bad Name", Value::Null, Map::new())).unwrap_err().reason, "name_bad_part");
        assert!(rules.apply(Event::new("seq_goto", Value::Null, Map::new())).is_ok(), "legacy names are accepted");
    }
}

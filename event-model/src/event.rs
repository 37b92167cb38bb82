//! The event: ordered members, as the Python original passes dicts around, whose
//! values stay JSON text until a processor needs more.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::rules::json::{is_plain_ascii, object_members, push_str_literal, Dialect};
use crate::text::{key_text, sub_text, Fields, Json, Text};
use crate::timestamp;

/// The name given to events emitted without one.
pub const UNKNOWN_EVENT_NAME: &str = "unknown";

/// An event in flight.
///
/// Its members are ordered so that processors can reshape it as the Python processors
/// do (the legacy mapping moves fields to the top level, the Google Analytics processor
/// adds `label`) and writers keep insertion order. A new event has the members `name`,
/// `timestamp`, `data`, `context` and `id`, in that order; `id` is a UUID v7 that
/// survives to every sink and de-duplicates retries. Values are [`Json`]: text that is
/// copied or transcoded, never parsed, unless a processor asks for its structure.
#[derive(Clone, PartialEq)]
pub struct Event(Fields);

/// Why a JSON value is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("an event must be a JSON object")]
    NotAnObject,
    #[error("`{field}` must be {expected}")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("`id` is not a UUID")]
    BadId,
    #[error("`timestamp` is not an RFC 3339 timestamp")]
    BadTimestamp,
}

impl Event {
    /// A new event, born now, with a fresh UUID v7.
    pub fn new(name: &str, data: impl Into<Json>, context: impl Into<Fields>) -> Event {
        Event::with_parts(name, &timestamp::format(timestamp::now()), data.into(), context.into(), Some(Uuid::now_v7()))
    }

    /// An event from its parts; `timestamp` must already be in the form of
    /// [`timestamp::format`]. `null` data becomes `{}` and an empty name `"unknown"`.
    pub fn with_parts(name: &str, timestamp: &str, data: Json, context: Fields, id: Option<Uuid>) -> Event {
        let name = if name.is_empty() { UNKNOWN_EVENT_NAME } else { name };
        let data = if data.is_null() { Json::Object(Fields::new()) } else { data };
        // The name, timestamp and id literals share one buffer: one allocation, where
        // one each (and a copy into its shared buffer) was a tenth of an emit.
        let mut literals = String::with_capacity(name.len() + timestamp.len() + 44);
        push_str_literal(&mut literals, name);
        let name_end = literals.len();
        push_str_literal(&mut literals, timestamp);
        let timestamp_end = literals.len();
        if let Some(id) = id {
            let mut buf = Uuid::encode_buffer();
            literals.push('"');
            literals.push_str(id.as_hyphenated().encode_lower(&mut buf));
            literals.push('"');
        }
        let end = literals.len();
        let literals: Arc<str> = Arc::from(literals);
        // Each literal is written as it is when its text is plain (a UUID always is).
        let literal = |a, b, plain: bool| Json::from_checked(Text::slice(&literals, a, b).verbatim_if(plain));
        let mut fields = Fields::with_capacity(5);
        fields.push_new(Text::verbatim_static("name"), literal(0, name_end, is_plain_ascii(name.as_bytes())));
        fields.push_new(Text::verbatim_static("timestamp"), literal(name_end, timestamp_end, is_plain_ascii(timestamp.as_bytes())));
        fields.push_new(Text::verbatim_static("data"), data);
        fields.push_new(Text::verbatim_static("context"), Json::Object(context));
        if id.is_some() {
            fields.push_new(Text::verbatim_static("id"), literal(timestamp_end, end, true));
        }
        Event(fields)
    }

    /// An event whose members are taken as they are (read back from storage this
    /// crate wrote), without the checks and normalization of [`Event::from_value`].
    pub fn from_fields(fields: Fields) -> Event {
        Event(fields)
    }

    /// Reads an event in the modern shape (`name`, `timestamp`, `data`, `context`,
    /// optional `id`), e.g. a line of an archive. Timestamps are normalized to the
    /// Python form; other top-level members are kept after the known ones.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let Value::Object(map) = value else { return Err(EventError::NotAnObject) };
        let fields = Fields::from_map(&map);
        Event::normalize(fields)
    }

    /// [`Event::from_value`] for JSON text, without building a tree.
    pub fn parse(text: &str) -> Result<Event, EventError> {
        let text = Text::from(text);
        let members = object_members(&text, Dialect::Python).map_err(|_| EventError::NotAnObject)?;
        let mut fields = Fields::with_capacity(members.len());
        for (key, (a, b)) in members {
            fields.insert(key_text(&text, key), Json::from_checked(sub_text(&text, a, b)));
        }
        Event::normalize(fields)
    }

    fn normalize(mut fields: Fields) -> Result<Event, EventError> {
        let name = match fields.remove("name") {
            None => UNKNOWN_EVENT_NAME.to_owned(),
            Some(v) if v.is_null() => UNKNOWN_EVENT_NAME.to_owned(),
            Some(v) => v.as_str().ok_or(EventError::WrongType { field: "name", expected: "a string" })?.into_owned(),
        };
        let timestamp = match fields.remove("timestamp") {
            None => timestamp::format(timestamp::now()),
            Some(v) if v.is_null() => timestamp::format(timestamp::now()),
            Some(v) => {
                let s = v.as_str().ok_or(EventError::WrongType { field: "timestamp", expected: "a string" })?;
                timestamp::normalize(&s).map_err(|_| EventError::BadTimestamp)?
            }
        };
        let data = fields.remove("data").unwrap_or(Json::NULL);
        let context = match fields.remove("context") {
            None => Fields::new(),
            Some(v) if v.is_null() => Fields::new(),
            Some(v) => v.to_fields().ok_or(EventError::WrongType { field: "context", expected: "an object" })?,
        };
        let id = match fields.remove("id") {
            None => None,
            Some(v) if v.is_null() => None,
            Some(v) => {
                let s = v.as_str().ok_or(EventError::WrongType { field: "id", expected: "a string" })?;
                Some(Uuid::parse_str(&s).map_err(|_| EventError::BadId)?)
            }
        };
        let mut event = Event::with_parts(&name, &timestamp, data, context, id);
        for (k, v) in fields.iter() {
            event.0.insert(k.clone(), v.clone());
        }
        Ok(event)
    }

    /// The event name (`unknown` if a processor removed it).
    pub fn name(&self) -> Cow<'_, str> {
        self.0.get("name").and_then(Json::as_str).unwrap_or(Cow::Borrowed(UNKNOWN_EVENT_NAME))
    }

    /// The event id as written (a UUID), if the event has one.
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.0.get("id").and_then(Json::as_str)
    }

    /// The payload (`data`, or `event` once the legacy mapping has run).
    pub fn data(&self) -> Option<&Json> {
        self.0.get("data").or_else(|| self.0.get("event"))
    }

    /// The payload, mutable (`data`, or `event` once the legacy mapping has run).
    pub fn data_mut(&mut self) -> Option<&mut Json> {
        if self.0.contains_key("data") {
            self.0.get_mut("data")
        } else {
            self.0.get_mut("event")
        }
    }

    /// A top-level member.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key)
    }

    /// The string value of a top-level member, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get_str(key)
    }

    /// The resolved context (empty if there is none).
    pub fn context(&self) -> &Fields {
        static EMPTY: Fields = Fields::EMPTY;
        match self.0.get("context") {
            Some(Json::Object(c)) => c,
            _ => &EMPTY,
        }
    }

    /// The context, mutable; created (or replaced if it is not an object) on demand.
    pub fn context_mut(&mut self) -> &mut Fields {
        if !matches!(self.0.get("context"), Some(Json::Object(_))) {
            let fields = self.0.get("context").and_then(Json::to_fields).unwrap_or_default();
            self.0.insert(Text::verbatim_static("context"), Json::Object(fields));
        }
        match self.0.get_mut("context") {
            Some(Json::Object(c)) => c,
            _ => unreachable!("just made an object"),
        }
    }

    /// All members, in order.
    pub fn fields(&self) -> &Fields {
        &self.0
    }

    /// All members, mutable: processors reshape events here.
    pub fn fields_mut(&mut self) -> &mut Fields {
        &mut self.0
    }

    /// The event as a tree (lone surrogates become U+FFFD).
    pub fn to_value(&self) -> Value {
        self.0.to_value()
    }

    /// Appends the event as compact JSON.
    pub fn write_compact(&self, out: &mut String) {
        self.0.write_compact(out)
    }

    /// The event as compact JSON.
    pub fn to_compact(&self) -> String {
        let mut out = String::with_capacity(512);
        self.0.write_compact(&mut out);
        out
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.to_compact()) {
            Ok(raw) => raw.serialize(serializer),
            // Python's `NaN`, which JSON cannot carry: through a tree.
            Err(_) => self.to_value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Event::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for Event {
    type Error = EventError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Event::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_event_has_modern_shape_and_v7_id() {
        let e = Event::new("edx.test.thing.happened", Json::NULL, Fields::new());
        let keys: Vec<_> = e.fields().keys().collect();
        assert_eq!(keys, ["name", "timestamp", "data", "context", "id"]);
        assert_eq!(e.data().unwrap(), &json!({}));
        assert_eq!(Uuid::parse_str(&e.id().unwrap()).unwrap().get_version_num(), 7);
        assert_ne!(e.id(), Event::new("x", Json::NULL, Fields::new()).id());
    }

    #[test]
    fn reads_modern_shape() {
        let e =
            Event::from_value(json!({"context": {"a": 1}, "name": "n.o.a", "extra": true, "timestamp": "2026-11-22T10:01:02.5Z"})).unwrap();
        assert_eq!(
            e.to_compact(),
            r#"{"name":"n.o.a","timestamp":"2026-11-22T10:01:02.500000+00:00","data":{},"context":{"a":1},"extra":true}"#
        );
        assert_eq!(Event::from_value(json!([])), Err(EventError::NotAnObject));
        assert_eq!(Event::from_value(json!({"id": "nope"})), Err(EventError::BadId));
        assert_eq!(Event::from_value(json!({"timestamp": "soon"})), Err(EventError::BadTimestamp));
        assert!(matches!(Event::from_value(json!({"name": 3})), Err(EventError::WrongType { field: "name", .. })));
        assert_eq!(Event::from_value(json!({})).unwrap().name(), UNKNOWN_EVENT_NAME);
    }

    #[test]
    fn parses_text_without_a_tree() {
        let text = r#"{"name":"a.b.c","data":{"s":"\ud83d"},"context":{"k":"v"},"id":"0192f3a0-7b1c-7d2e-8f3a-0123456789ab","timestamp":"2026-11-22T10:01:02Z"}"#;
        let e = Event::parse(text).unwrap();
        assert_eq!(e.data().unwrap().to_compact(), r#"{"s":"\ud83d"}"#, "the lone surrogate is kept");
        assert_eq!(e.context().get_str("k").unwrap(), "v");
        assert_eq!(e.id().unwrap(), "0192f3a0-7b1c-7d2e-8f3a-0123456789ab");
        assert_eq!(e.get_str("timestamp").unwrap(), "2026-11-22T10:01:02+00:00");
        assert!(Event::parse("[1]").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let e = Event::from_value(json!({"name": "a.b.c", "data": {"x": [1, 2]}, "timestamp": "2026-11-22T10:01:02Z"})).unwrap();
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }
}

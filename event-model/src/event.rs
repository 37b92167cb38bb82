//! The event: an ordered JSON object, as the Python original passes dicts around.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::timestamp;

/// The name given to events emitted without one.
pub const UNKNOWN_EVENT_NAME: &str = "unknown";

/// An event in flight.
///
/// It is an ordered JSON object so that processors can reshape it as the Python
/// processors do (the legacy mapping moves fields to the top level, the Google
/// Analytics processor adds `label`) and the serializer keeps insertion order.
/// A new event has the keys `name`, `timestamp`, `data`, `context` and `id`, in that
/// order; `id` is a UUID v7 that survives to every sink and de-duplicates retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Map<String, Value>")]
pub struct Event(Map<String, Value>);

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
    pub fn new(name: impl Into<String>, data: Value, context: Map<String, Value>) -> Event {
        Event::with_parts(name, timestamp::format(timestamp::now()), data, context, Some(Uuid::now_v7()))
    }

    /// An event from its parts; `timestamp` must already be in the form of
    /// [`timestamp::format`]. `Null` data becomes `{}` and an empty name `"unknown"`.
    pub fn with_parts(
        name: impl Into<String>,
        timestamp: String,
        data: Value,
        context: Map<String, Value>,
        id: Option<Uuid>,
    ) -> Event {
        let mut name = name.into();
        if name.is_empty() {
            name = UNKNOWN_EVENT_NAME.to_owned();
        }
        let data = if data.is_null() { Value::Object(Map::new()) } else { data };
        let mut map = Map::with_capacity(5);
        map.insert("name".into(), Value::String(name));
        map.insert("timestamp".into(), Value::String(timestamp));
        map.insert("data".into(), data);
        map.insert("context".into(), Value::Object(context));
        if let Some(id) = id {
            map.insert("id".into(), Value::String(id.to_string()));
        }
        Event(map)
    }

    /// Reads an event in the modern shape (`name`, `timestamp`, `data`, `context`,
    /// optional `id`), e.g. a line of an archive. Timestamps are normalized to the
    /// Python form; other top-level keys are kept after the known ones.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let Value::Object(mut map) = value else { return Err(EventError::NotAnObject) };
        let name = match map.shift_remove("name") {
            None | Some(Value::Null) => UNKNOWN_EVENT_NAME.to_owned(),
            Some(Value::String(s)) => s,
            Some(_) => return Err(EventError::WrongType { field: "name", expected: "a string" }),
        };
        let timestamp = match map.shift_remove("timestamp") {
            None | Some(Value::Null) => timestamp::format(timestamp::now()),
            Some(Value::String(s)) => timestamp::normalize(&s).map_err(|_| EventError::BadTimestamp)?,
            Some(_) => return Err(EventError::WrongType { field: "timestamp", expected: "a string" }),
        };
        let data = map.shift_remove("data").unwrap_or(Value::Null);
        let context = match map.shift_remove("context") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(c)) => c,
            Some(_) => return Err(EventError::WrongType { field: "context", expected: "an object" }),
        };
        let id = match map.shift_remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Uuid::parse_str(&s).map_err(|_| EventError::BadId)?),
            Some(_) => return Err(EventError::WrongType { field: "id", expected: "a string" }),
        };
        let mut event = Event::with_parts(name, timestamp, data, context, id);
        event.0.extend(map);
        Ok(event)
    }

    /// An event read back from storage this crate wrote (a write-ahead log record):
    /// the map is taken as it is, without the checks and normalization of
    /// [`Event::from_value`].
    pub fn from_stored(map: Map<String, Value>) -> Event {
        Event(map)
    }

    /// The event name (`unknown` if a processor removed it).
    pub fn name(&self) -> &str {
        self.0.get("name").and_then(Value::as_str).unwrap_or(UNKNOWN_EVENT_NAME)
    }

    /// The event id as written (a UUID), if the event has one.
    pub fn id(&self) -> Option<&str> {
        self.0.get("id").and_then(Value::as_str)
    }

    /// The payload (`data`, or `event` once the legacy mapping has run).
    pub fn data(&self) -> Option<&Value> {
        self.0.get("data").or_else(|| self.0.get("event"))
    }

    /// The payload, mutable (`data`, or `event` once the legacy mapping has run).
    pub fn data_mut(&mut self) -> Option<&mut Value> {
        if self.0.contains_key("data") {
            self.0.get_mut("data")
        } else {
            self.0.get_mut("event")
        }
    }

    /// The resolved context (empty if there is none).
    pub fn context(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.0.get("context") {
            Some(Value::Object(c)) => c,
            _ => EMPTY.get_or_init(Map::new),
        }
    }

    /// The context, mutable; created (or replaced if it is not an object) on demand.
    pub fn context_mut(&mut self) -> &mut Map<String, Value> {
        let slot = self.0.entry("context").or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(c) => c,
            _ => unreachable!("just made an object"),
        }
    }

    /// The whole event as an ordered map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The whole event as an ordered map, mutable: processors reshape events here.
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    /// The event as a JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

impl From<Event> for Map<String, Value> {
    fn from(event: Event) -> Self {
        event.0
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
        let e = Event::new("edx.test.thing.happened", Value::Null, Map::new());
        let keys: Vec<_> = e.as_map().keys().cloned().collect();
        assert_eq!(keys, ["name", "timestamp", "data", "context", "id"]);
        assert_eq!(e.data(), Some(&json!({})));
        assert_eq!(Uuid::parse_str(e.id().unwrap()).unwrap().get_version_num(), 7);
        assert_ne!(e.id(), Event::new("x", Value::Null, Map::new()).id());
    }

    #[test]
    fn reads_modern_shape() {
        let e = Event::from_value(json!({"context": {"a": 1}, "name": "n.o.a", "extra": true,
            "timestamp": "2026-11-22T10:01:02.5Z"}))
        .unwrap();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"n.o.a","timestamp":"2026-11-22T10:01:02.500000+00:00","data":{},"context":{"a":1},"extra":true}"#
        );
        assert_eq!(Event::from_value(json!([])), Err(EventError::NotAnObject));
        assert_eq!(Event::from_value(json!({"id": "nope"})), Err(EventError::BadId));
        assert_eq!(Event::from_value(json!({"timestamp": "soon"})), Err(EventError::BadTimestamp));
        assert!(matches!(Event::from_value(json!({"name": 3})), Err(EventError::WrongType { field: "name", .. })));
        assert_eq!(Event::from_value(json!({})).unwrap().name(), UNKNOWN_EVENT_NAME);
    }
}

//! The legacy field mapping (SPEC §2.3): reshapes an event as the research tracking
//! log has always held it.

use serde_json::Value;

use crate::legacy::dumps;
use crate::processor::{ProcessError, Processor, Verdict};
use crate::Event;

/// Context fields moved to the top level, in this order.
pub const CONTEXT_FIELDS_TO_INCLUDE: [&str; 7] = ["username", "session", "ip", "agent", "host", "referer", "accept_language"];

/// Open edX's `LegacyFieldMappingProcessor`: moves request fields from the context to
/// the top level, turns `data` into `event` (a JSON string for browser events), and
/// adds `time`, `event_type`, `event_source` and `page`. The event id, if any, moves
/// to the end of the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyFieldMapping;

impl LegacyFieldMapping {
    /// Reshapes `event` in place.
    pub fn map(event: &mut Event) {
        let map = event.as_map_mut();
        let id = map.shift_remove("id");
        let mut context = match map.get_mut("context") {
            Some(Value::Object(c)) => std::mem::take(c),
            _ => serde_json::Map::new(),
        };
        let has_context = map.contains_key("context");
        if has_context {
            for field in CONTEXT_FIELDS_TO_INCLUDE {
                let value = context.shift_remove(field).unwrap_or_else(|| Value::String(String::new()));
                map.insert(field.to_owned(), value);
            }
            context.shift_remove("client_id");
        }

        let payload = match map.shift_remove("data") {
            Some(Value::Object(data)) if context.get("event_source").and_then(Value::as_str) == Some("browser") => {
                Value::String(dumps(&data))
            }
            Some(data) => data,
            None => Value::Object(serde_json::Map::new()),
        };
        map.insert("event".to_owned(), payload);

        let event_timestamp = map.shift_remove("timestamp");
        match context.shift_remove("timestamp") {
            Some(time) => {
                map.insert("time".to_owned(), time);
            }
            None => {
                if let Some(time) = event_timestamp {
                    map.insert("time".to_owned(), time);
                }
            }
        }

        let name = map.get("name").cloned().unwrap_or_else(|| Value::String(String::new()));
        let event_type = context.shift_remove("event_type").unwrap_or(name);
        let event_source = context.shift_remove("event_source").unwrap_or_else(|| Value::String("server".into()));
        let page = context.shift_remove("page").unwrap_or(Value::Null);
        if let Some(Value::Object(c)) = map.get_mut("context") {
            *c = context;
        }
        map.insert("event_type".to_owned(), event_type);
        map.insert("event_source".to_owned(), event_source);
        map.insert("page".to_owned(), page);
        if let Some(id) = id {
            map.insert("id".to_owned(), id);
        }
    }
}

impl Processor for LegacyFieldMapping {
    fn name(&self) -> &str {
        "legacy_field_mapping"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Self::map(event);
        Ok(Verdict::Keep)
    }
}

//! The legacy field mapping (SPEC §2.3): reshapes an event as the research tracking
//! log has always held it.

use crate::processor::{ProcessError, Processor, Verdict};
use crate::text::{Fields, Json, Text};
use crate::Event;

/// Context fields moved to the top level, in this order.
pub const CONTEXT_FIELDS_TO_INCLUDE: [&str; 7] = ["username", "session", "ip", "agent", "host", "referer", "accept_language"];

/// Open edX's `LegacyFieldMappingProcessor`: moves request fields from the context to
/// the top level, turns `data` into `event` (for browser events the string Python's
/// `json.dumps` makes of an object), and adds `time`, `event_type`, `event_source` and
/// `page`. The event id, if any, moves to the end of the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyFieldMapping;

impl LegacyFieldMapping {
    /// Reshapes `event` in place.
    pub fn map(event: &mut Event) {
        let fields = event.fields_mut();
        let id = fields.remove("id");
        let has_context = fields.contains_key("context");
        let mut context = match fields.get_mut("context") {
            Some(c) => c.as_fields_mut().map(std::mem::take).unwrap_or_default(),
            None => Fields::new(),
        };
        if has_context {
            for field in CONTEXT_FIELDS_TO_INCLUDE {
                let value = context.remove(field).unwrap_or(Json::EMPTY_STRING);
                fields.insert(Text::from_static(field), value);
            }
            context.remove("client_id");
        }

        let browser = context.get_str("event_source").as_deref() == Some("browser");
        let payload = match fields.remove("data") {
            Some(data) if browser && data.is_object() => Json::Dumped(Box::new(data)),
            Some(data) => data,
            None => Json::Object(Fields::new()),
        };
        fields.insert(Text::from_static("event"), payload);

        let event_timestamp = fields.remove("timestamp");
        if let Some(time) = context.remove("timestamp").or(event_timestamp) {
            fields.insert(Text::from_static("time"), time);
        }

        let name = fields.get("name").cloned().unwrap_or(Json::EMPTY_STRING);
        let event_type = context.remove("event_type").unwrap_or(name);
        let event_source = context.remove("event_source").unwrap_or(Json::Text(Text::from_static("\"server\"")));
        let page = context.remove("page").unwrap_or(Json::NULL);
        if let Some(slot) = fields.get_mut("context") {
            *slot = Json::Object(context);
        }
        fields.insert(Text::from_static("event_type"), event_type);
        fields.insert(Text::from_static("event_source"), event_source);
        fields.insert(Text::from_static("page"), page);
        if let Some(id) = id {
            fields.insert(Text::from_static("id"), id);
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

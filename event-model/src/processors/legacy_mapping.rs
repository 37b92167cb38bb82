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
    /// Reshapes `event` in place: the members the LMS's processor keeps stay where they
    /// are (a key it sets that is already there is set in place, as a Python dict
    /// does); the ones it adds follow, in its order. One pass over the event and one
    /// over its context, where one `remove`/`insert` per key cost a scan each.
    pub fn map(event: &mut Event) {
        let fields = std::mem::take(event.fields_mut());
        // The event's members: `id`, `data` and `timestamp` leave; the others stay.
        let (mut id, mut data, mut timestamp, mut context, mut context_at) = (None, None, None, None, None);
        let mut out: Vec<(Text, Json)> = Vec::with_capacity(fields.len() + ADDED.len());
        let mut present = [None; ADDED.len()];
        for (key, value) in fields.into_members() {
            match key.as_str() {
                "id" => id = Some(value),
                "data" => data = Some(value),
                "timestamp" => timestamp = Some(value),
                "context" => {
                    context_at = Some(out.len());
                    context = Some(value);
                    out.push((key, Json::NULL));
                }
                other => {
                    if let Some(i) = added_index(other) {
                        present[i] = Some(out.len());
                    }
                    out.push((key, value));
                }
            }
        }
        // The context's members the mapping takes, in one pass.
        let mut taken: [Option<Json>; TAKEN.len()] = Default::default();
        let mut rest = Vec::new();
        let has_context = context.is_some();
        let context_fields = context.and_then(|mut c| c.as_fields_mut().map(std::mem::take)).unwrap_or_default();
        for (key, value) in context_fields.into_members() {
            match taken_index(key.as_str()) {
                Some(i) => taken[i] = Some(value),
                None => rest.push((key, value)),
            }
        }
        let name = out.iter().find(|(k, _)| k.as_str() == "name").map(|(_, v)| v.clone()).unwrap_or(Json::EMPTY_STRING);
        // Sets `ADDED[i]`.
        let mut set = |i: usize, value: Json| match present[i] {
            Some(at) => out[at].1 = value,
            None => {
                present[i] = Some(out.len());
                out.push((Text::from_static(ADDED[i]), value));
            }
        };
        if has_context {
            // The first members of TAKEN and of ADDED are CONTEXT_FIELDS_TO_INCLUDE.
            for (i, value) in taken.iter_mut().take(CONTEXT_FIELDS_TO_INCLUDE.len()).enumerate() {
                set(i, value.take().unwrap_or(Json::EMPTY_STRING));
            }
        }
        let [.., time, event_type, event_source, page] = &mut taken;
        let browser = event_source.as_ref().and_then(Json::as_str).as_deref() == Some("browser");
        let payload = match data {
            Some(data) if browser && data.is_object() => Json::Dumped(Box::new(data)),
            Some(data) => data,
            None => Json::Object(Fields::new()),
        };
        set(7, payload);
        if let Some(time) = time.take().or(timestamp) {
            set(8, time);
        }
        set(9, event_type.take().unwrap_or(name));
        set(10, event_source.take().unwrap_or(Json::Text(Text::from_static("\"server\""))));
        set(11, page.take().unwrap_or(Json::NULL));
        if let Some(id) = id {
            set(12, id);
        }
        if let Some(at) = context_at {
            out[at].1 = Json::Object(Fields::from_distinct(rest));
        }
        *event.fields_mut() = Fields::from_distinct(out);
    }
}

/// The members the mapping sets on the event, in its order.
#[rustfmt::skip]
const ADDED: [&str; 13] = [
    "username", "session", "ip", "agent", "host", "referer", "accept_language", "event", "time", "event_type", "event_source", "page", "id",
];

fn added_index(key: &str) -> Option<usize> {
    Some(match key {
        "username" => 0,
        "session" => 1,
        "ip" => 2,
        "agent" => 3,
        "host" => 4,
        "referer" => 5,
        "accept_language" => 6,
        "event" => 7,
        "time" => 8,
        "event_type" => 9,
        "event_source" => 10,
        "page" => 11,
        "id" => 12,
        _ => return None,
    })
}

fn taken_index(key: &str) -> Option<usize> {
    match key {
        "client_id" => Some(7),
        "timestamp" => Some(8),
        other => added_index(other).filter(|&i| i < CONTEXT_FIELDS_TO_INCLUDE.len() || (9..=11).contains(&i)),
    }
}

/// The context members the mapping takes: [`CONTEXT_FIELDS_TO_INCLUDE`], `client_id`,
/// then those that become `time`, `event_type`, `event_source` and `page`.
#[rustfmt::skip]
const TAKEN: [&str; 12] = [
    "username", "session", "ip", "agent", "host", "referer", "accept_language", "client_id", "timestamp", "event_type", "event_source", "page",
];

impl Processor for LegacyFieldMapping {
    fn name(&self) -> &str {
        "legacy_field_mapping"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Self::map(event);
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn key_tables_agree() {
        for (i, key) in ADDED.iter().enumerate() {
            assert_eq!(added_index(key), Some(i), "{key}");
        }
        for (i, key) in TAKEN.iter().enumerate() {
            assert_eq!(taken_index(key), Some(i), "{key}");
        }
        assert_eq!(CONTEXT_FIELDS_TO_INCLUDE, ADDED[..7]);
        assert_eq!(CONTEXT_FIELDS_TO_INCLUDE, TAKEN[..7]);
        for other in ["event", "time", "id", "course_id", "name"] {
            assert_eq!(taken_index(other), None, "{other} stays in the context");
        }
    }

    #[test]
    fn keys_already_there_are_set_in_place_and_the_rest_follow_in_order() {
        let context = json!({"user_id": 5, "username": "u", "client_id": "c", "event_source": "browser", "page": "p", "course_id": "x"});
        let mut event = Event::from_value(json!({
            "event": "old", "name": "a.b", "id": "0192f3a0-7b1c-7d2e-8f3a-0123456789ab", "timestamp": "2026-11-22T10:01:02+00:00", "data": {"k": 1}, "context": context, "host": "h0"
        }))
        .unwrap();
        LegacyFieldMapping::map(&mut event);
        let keys: Vec<&str> = event.fields().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "name",
                "context",
                "event",
                "host",
                "username",
                "session",
                "ip",
                "agent",
                "referer",
                "accept_language",
                "time",
                "event_type",
                "event_source",
                "page",
                "id"
            ]
        );
        assert_eq!(event.fields().get_str("host").as_deref(), Some(""), "set in place from the context (absent there: empty)");
        assert_eq!(event.fields().get("context").unwrap().to_compact(), r#"{"user_id":5,"course_id":"x"}"#);
        assert_eq!(event.fields().get_str("event").as_deref(), Some(r#"{"k": 1}"#), "a browser event's data as Python dumps it");
        assert_eq!(event.fields().get_str("event_type").as_deref(), Some("a.b"));
    }
}

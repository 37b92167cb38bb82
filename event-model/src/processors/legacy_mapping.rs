//! The legacy field mapping (SPEC §2.3): reshapes an event as the research tracking
//! log has always held it.

use std::borrow::Cow;

use crate::processor::{ProcessError, Processor, Verdict, ViewStep};
use crate::text::{Fields, Json, Text};
use crate::view::{EventView, ViewValue};
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
    /// does); the ones it adds follow, in its order.
    pub fn map(event: &mut Event) {
        let fields = std::mem::take(event.fields_mut());
        *event.fields_mut() = Fields::from_distinct(map_members(fields.into_members()));
    }

    /// [`LegacyFieldMapping::map`] on an event read in place from stored text.
    pub fn map_view(view: &mut EventView<'_>) {
        *view = EventView::from_distinct(map_members(std::mem::take(view).into_members()));
    }
}

/// What the mapping reads of a member value and the values it makes; implemented for
/// [`Json`] (events) and [`ViewValue`] (events read in place from stored text), so both
/// are mapped by the one function below.
pub trait Mappable: Sized + Clone {
    type Key: AsRef<str>;
    fn key(key: &'static str) -> Self::Key;
    /// Checked JSON text (`null`, `""`, `"server"`).
    fn text(text: &'static str) -> Self;
    fn is_object(&self) -> bool;
    fn is_str(&self, s: &str) -> bool;
    /// The string whose content is Python's `json.dumps` of this value.
    fn dumped(self) -> Self;
    fn into_members(self) -> Option<Vec<(Self::Key, Self)>>;
    /// An object of members whose keys are distinct.
    fn from_members(members: Vec<(Self::Key, Self)>) -> Self;
}

impl Mappable for Json {
    type Key = Text;
    fn key(key: &'static str) -> Text {
        Text::verbatim_static(key)
    }
    fn text(text: &'static str) -> Json {
        Json::Text(Text::verbatim_static(text))
    }
    fn is_object(&self) -> bool {
        Json::is_object(self)
    }
    fn is_str(&self, s: &str) -> bool {
        self.as_str().as_deref() == Some(s)
    }
    fn dumped(self) -> Json {
        Json::Dumped(Box::new(self))
    }
    fn into_members(mut self) -> Option<Vec<(Text, Json)>> {
        self.as_fields_mut().map(|fields| std::mem::take(fields).into_members())
    }
    fn from_members(members: Vec<(Text, Json)>) -> Json {
        Json::Object(Fields::from_distinct(members))
    }
}

impl<'a> Mappable for ViewValue<'a> {
    type Key = Cow<'a, str>;
    fn key(key: &'static str) -> Cow<'a, str> {
        Cow::Borrowed(key)
    }
    fn text(text: &'static str) -> ViewValue<'a> {
        ViewValue::Text(text)
    }
    fn is_object(&self) -> bool {
        ViewValue::is_object(self)
    }
    fn is_str(&self, s: &str) -> bool {
        self.as_str().as_deref() == Some(s)
    }
    fn dumped(self) -> ViewValue<'a> {
        ViewValue::Dumped(Box::new(self))
    }
    fn into_members(self) -> Option<Vec<(Cow<'a, str>, ViewValue<'a>)>> {
        ViewValue::into_members(self).map(EventView::into_members)
    }
    fn from_members(members: Vec<(Cow<'a, str>, ViewValue<'a>)>) -> ViewValue<'a> {
        ViewValue::Object(EventView::from_distinct(members))
    }
}

/// The mapping of an event's members (distinct keys), in one pass over the event and
/// one over its context, where one `remove`/`insert` per key cost a scan each.
fn map_members<V: Mappable>(fields: Vec<(V::Key, V)>) -> Vec<(V::Key, V)> {
    // The event's members: `id`, `data` and `timestamp` leave; the others stay.
    let (mut id, mut data, mut timestamp, mut context, mut context_at) = (None, None, None, None, None);
    let mut out: Vec<(V::Key, V)> = Vec::with_capacity(fields.len() + ADDED.len());
    let mut present = [None; ADDED.len()];
    for (key, value) in fields {
        match key.as_ref() {
            "id" => id = Some(value),
            "data" => data = Some(value),
            "timestamp" => timestamp = Some(value),
            "context" => {
                context_at = Some(out.len());
                context = Some(value);
                out.push((key, V::text("null")));
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
    let mut taken: [Option<V>; TAKEN.len()] = Default::default();
    let has_context = context.is_some();
    let members = context.and_then(V::into_members).unwrap_or_default();
    let mut rest = Vec::with_capacity(members.len());
    for (key, value) in members {
        match taken_index(key.as_ref()) {
            Some(i) => taken[i] = Some(value),
            None => rest.push((key, value)),
        }
    }
    let name = out.iter().find(|(k, _)| k.as_ref() == "name").map(|(_, v)| v.clone()).unwrap_or_else(|| V::text("\"\""));
    // Sets `ADDED[i]`.
    let mut set = |i: usize, value: V| match present[i] {
        Some(at) => out[at].1 = value,
        None => {
            present[i] = Some(out.len());
            out.push((V::key(ADDED[i]), value));
        }
    };
    if has_context {
        // The first members of TAKEN and of ADDED are CONTEXT_FIELDS_TO_INCLUDE.
        for (i, value) in taken.iter_mut().take(CONTEXT_FIELDS_TO_INCLUDE.len()).enumerate() {
            set(i, value.take().unwrap_or_else(|| V::text("\"\"")));
        }
    }
    let [.., time, event_type, event_source, page] = &mut taken;
    let browser = event_source.as_ref().is_some_and(|source| source.is_str("browser"));
    let payload = match data {
        Some(data) if browser && data.is_object() => data.dumped(),
        Some(data) => data,
        None => V::from_members(Vec::new()),
    };
    set(7, payload);
    if let Some(time) = time.take().or(timestamp) {
        set(8, time);
    }
    set(9, event_type.take().unwrap_or(name));
    set(10, event_source.take().unwrap_or_else(|| V::text("\"server\"")));
    set(11, page.take().unwrap_or_else(|| V::text("null")));
    if let Some(id) = id {
        set(12, id);
    }
    if let Some(at) = context_at {
        out[at].1 = V::from_members(rest);
    }
    out
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

    fn on_view(&self) -> Option<ViewStep<'_>> {
        Some(ViewStep::LegacyFieldMapping)
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

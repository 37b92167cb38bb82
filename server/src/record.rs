//! The write-ahead log record: one request's accepted events, with the request
//! context written once, as compact JSON:
//!
//! ```json
//! {"context":{"session":"…","user_id":42,…},
//!  "events":[{"name":"…","timestamp":"…","data":{…},"context":{"course_id":"…","page":"…"},"id":"…"}]}
//! ```
//!
//! An event's own `context` holds what differs per event; reading a record merges it
//! over the shared one (a Python `dict.update`: shared keys keep their place). The
//! JetStream sink publishes runs of a record's events in the same shape (the shared
//! context once per message), and the relay stores each message as a record. A record
//! written by an earlier version (one event in the modern shape) reads as that one event.

use std::borrow::Cow;
use std::sync::Arc;

use event_model::rules::json::{sub, Dialect, Invalid, Scanner};
use event_model::view::{EventView, ViewValue};
use event_model::{Event, Text};

/// A record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not UTF-8")]
    Utf8,
    #[error("the record is not JSON ({})", .0.code())]
    Json(Invalid),
    #[error("the record is not an object with `context` and `events`, nor an event")]
    Shape,
}

/// Builds a record: the shared context, then events pushed one by one.
pub struct RecordBuilder {
    buf: String,
    events: usize,
}

impl RecordBuilder {
    /// Starts a record whose events share `context` (a compact JSON object).
    pub fn new(context: &str, capacity: usize) -> RecordBuilder {
        let mut buf = String::with_capacity(context.len() + capacity + 24);
        buf.push_str("{\"context\":");
        buf.push_str(context);
        buf.push_str(",\"events\":[");
        RecordBuilder { buf, events: 0 }
    }

    /// Appends one event: a compact JSON object in the modern shape, whose `context`
    /// holds only what differs from the shared one.
    pub fn push(&mut self, event_json: &str) {
        if self.events > 0 {
            self.buf.push(',');
        }
        self.buf.push_str(event_json);
        self.events += 1;
    }

    /// Events pushed so far.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The record's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push_str("]}");
        self.buf.into_bytes()
    }
}

/// The events of a record, each with its full context, sharing the record's text.
pub fn decode(record: &[u8]) -> Result<Vec<Event>, RecordError> {
    let text = std::str::from_utf8(record).map_err(|_| RecordError::Utf8)?;
    let buf: Arc<str> = Arc::from(text);
    let whole = Text::slice(&buf, 0, buf.len());
    Ok(views_of_text(&buf, false)?.into_iter().map(|view| Event::from_fields(view.into_fields(&whole))).collect())
}

/// The events of a record read in place, each with its full context: one pass over
/// the text, nothing shared or counted (what the sinks write from when their
/// processors run on views). The record is one this server wrote into its log, from
/// events it checked: values are passed by their brackets, not checked again
/// ([`EventView::read_written_event`]); its structure still is.
pub fn views(record: &[u8]) -> Result<Vec<EventView<'_>>, RecordError> {
    views_of_text(std::str::from_utf8(record).map_err(|_| RecordError::Utf8)?, true)
}

/// The events of a record; `written`: a record of this server's log (see [`views`]).
fn views_of_text(text: &str, written: bool) -> Result<Vec<EventView<'_>>, RecordError> {
    let mut s = Scanner::containing(text, Dialect::Python);
    let mut shared: Option<EventView<'_>> = None;
    let mut events: Option<Vec<EventView<'_>>> = None;
    let mut single = EventView::default();
    s.object(0, &mut |s, key, depth| {
        let name = key.decode(s.src());
        match name.as_ref() {
            "context" if shared.is_none() && events.is_none() => {
                // Its members read in the pass that checks it: every event of the
                // record merges them.
                s.ws();
                let start = s.pos();
                shared = match s.peek() {
                    Some(b'{') if written => Some(EventView::read_written(s, depth + 1)?),
                    Some(b'{') => Some(EventView::read(s, depth + 1)?),
                    _ => {
                        s.value(depth)?;
                        None
                    }
                };
                single.insert(name, ViewValue::Text(sub(text, start, s.pos())));
                Ok(())
            }
            "events" => {
                let context = shared.clone().unwrap_or_default();
                let mut list = Vec::new();
                s.array(depth, &mut |s, depth| {
                    s.ws();
                    let event = if s.peek() != Some(b'{') {
                        s.value(depth)?;
                        EventView::default()
                    } else if written {
                        EventView::read_written_event(s, depth + 1)?
                    } else {
                        EventView::read_event(s, depth + 1)?
                    };
                    list.push(merged(event, &context));
                    Ok(())
                })?;
                events = Some(list);
                Ok(())
            }
            _ => {
                let (a, b) = s.value(depth)?;
                single.insert(name, ViewValue::Text(sub(text, a, b)));
                Ok(())
            }
        }
    })
    .map_err(RecordError::Json)?;
    if !s.at_end() {
        return Err(RecordError::Json(Invalid::Syntax { at: s.pos() }));
    }
    match events {
        Some(events) => Ok(events),
        None if single.get("name").is_some() || single.get("data").is_some() => {
            // An event as earlier versions stored it.
            if let Some(context) = single.get("context").cloned().and_then(ViewValue::into_members) {
                single.insert(Cow::Borrowed("context"), ViewValue::Object(context));
            }
            Ok(vec![single])
        }
        None => Err(RecordError::Shape),
    }
}

/// A record's top level, its values skipped: the text of `context`, the spans of the
/// (first) `events` array, whether other members are there, and whether `name` or
/// `data` is among them (an event as earlier versions stored it).
struct Shape<'a> {
    context: Option<&'a str>,
    events: Option<Vec<&'a str>>,
    other: bool,
    event_members: bool,
}

fn shape(record: &str) -> Result<Shape<'_>, RecordError> {
    let mut s = Scanner::containing(record, Dialect::Python);
    let mut shape = Shape { context: None, events: None, other: false, event_members: false };
    s.object(0, &mut |s, key, depth| {
        let key = key.decode(s.src());
        if key == "events" && shape.events.is_none() {
            let mut list = Vec::new();
            s.array(depth, &mut |s, depth| s.value(depth).map(|(a, b)| list.push(&record[a..b])))?;
            shape.events = Some(list);
            return Ok(());
        }
        let (a, b) = s.value(depth)?;
        match key.as_ref() {
            "context" => shape.context = Some(&record[a..b]),
            other => {
                shape.other = true;
                shape.event_members |= matches!(other, "name" | "data");
            }
        }
        Ok(())
    })
    .map_err(RecordError::Json)?;
    if !s.at_end() {
        return Err(RecordError::Json(Invalid::Syntax { at: s.pos() }));
    }
    Ok(shape)
}

/// A record's shared context and its events, as text spans of the record.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The shared context's text (`{}` when the record has none).
    pub context: &'a str,
    /// Each event's own text: its `context` holds what differs from the shared one.
    pub events: Vec<&'a str>,
}

/// The parts of a record (`{"context":…,"events":[…]}` and nothing else), without
/// reading the events; `None` for text of another shape (one event, as earlier
/// versions stored and published them).
pub fn parts(record: &str) -> Result<Option<Parts<'_>>, RecordError> {
    let shape = shape(record)?;
    Ok(match shape.events {
        Some(events) if !shape.other => Some(Parts { context: shape.context.unwrap_or("{}"), events }),
        _ => None,
    })
}

/// How many events a record holds, without reading them (a scan that skips values):
/// what the spill counts.
pub fn event_count(record: &[u8]) -> Result<u64, RecordError> {
    let shape = shape(std::str::from_utf8(record).map_err(|_| RecordError::Utf8)?)?;
    match shape.events {
        Some(events) => Ok(events.len() as u64),
        None if shape.event_members => Ok(1),
        None => Err(RecordError::Shape),
    }
}

/// An event of a record with the shared context merged under its own.
fn merged<'a>(mut event: EventView<'a>, shared: &EventView<'a>) -> EventView<'a> {
    let own = event.take("context").and_then(ViewValue::into_members).unwrap_or_default();
    // Records the relay stores share nothing: each event holds its whole context.
    let context = if shared.is_empty() { own } else { EventView::merged(shared, own) };
    event.insert(Cow::Borrowed("context"), ViewValue::Object(context));
    event
}

/// The ids of a record's events (those that have one).
pub fn event_ids(record: &[u8]) -> Result<Vec<uuid::Uuid>, RecordError> {
    Ok(views(record)?.iter().filter_map(|view| view.get_str("id").and_then(|id| uuid::Uuid::parse_str(&id).ok())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;

    #[test]
    fn round_trip_with_the_context_written_once() {
        let mut r = RecordBuilder::new(r#"{"session":"s","user_id":42,"course_id":"","page":"x"}"#, 256);
        r.push(r#"{"name":"a.b.c","timestamp":"t","data":{"k":"\ud83d"},"context":{"course_id":"c","event_source":"browser"},"id":"0192f3a0-7b1c-7d2e-8f3a-0123456789ab"}"#);
        r.push(r#"{"name":"d.e.f","timestamp":"t","data":{},"context":{},"type":"track"}"#);
        assert_eq!(r.len(), 2);
        let bytes = r.finish();
        let events = decode(&bytes).unwrap();
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!(first.context().keys().collect::<Vec<_>>(), ["session", "user_id", "course_id", "page", "event_source"]);
        assert_eq!(first.context()["course_id"], json!("c"), "the event's own value wins, in the shared key's place");
        assert_eq!(first.data().unwrap().to_compact(), r#"{"k":"\ud83d"}"#);
        assert_eq!(events[1].context()["user_id"], json!(42));
        assert_eq!(events[1].get_str("type").unwrap(), "track");
        assert_eq!(event_ids(&bytes).unwrap().len(), 1);
        assert_eq!(event_count(&bytes).unwrap(), 2);
    }

    #[test]
    fn records_of_earlier_versions_are_one_event() {
        let old = br#"{"name":"a.b.c","timestamp":"2026-11-22T10:01:02+00:00","data":{"x":1},"context":{"user_id":7},"id":"0192f3a0-7b1c-7d2e-8f3a-0123456789ab"}"#;
        let events = decode(old).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].context()["user_id"], json!(7));
        assert_eq!(events[0].name(), "a.b.c");
        assert_eq!(event_count(old).unwrap(), 1);
        let text = std::str::from_utf8(old).unwrap();
        assert_eq!(parts(text).unwrap(), None, "an event is not a record");
        let published = r#"{"context":{"u":1},"events":[{"name":"a","data":{"s":"\ud83d"}} , {"name":"b"}]}"#;
        let expected = Parts { context: r#"{"u":1}"#, events: vec![r#"{"name":"a","data":{"s":"\ud83d"}}"#, r#"{"name":"b"}"#] };
        assert_eq!(parts(published).unwrap(), Some(expected));
        assert_eq!(parts(r#"{"events":[]}"#).unwrap(), Some(Parts { context: "{}", events: vec![] }));
        assert_eq!(parts(r#"{"context":{},"events":[],"other":1}"#).unwrap(), None, "a record has nothing else");
        assert!(parts(r#"{"context":{},"events":[{"#).is_err());
        assert!(event_count(b"{\"x\":1}").is_err() && event_count(b"{\"events\":[1,").is_err());
    }

    #[test]
    fn unreadable_records() {
        assert_eq!(decode(b"\xff"), Err(RecordError::Utf8));
        assert!(matches!(decode(b"{"), Err(RecordError::Json(_))));
        assert_eq!(decode(b"{\"other\":1}"), Err(RecordError::Shape));
    }
}

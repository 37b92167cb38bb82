//! The research tracking log: an event's line byte for byte as the Python writer
//! makes it (`json.dumps` of the mapped event, see [`python`](crate::python)), and the
//! LMS's limit on a line.

use serde::Serialize;

pub use crate::python::{transcode, write_python_float, write_str};
use crate::text::{Fields, Json};
use crate::view::EventView;
use crate::Event;

/// The tracking-log line of an event (without the newline). Run the
/// [`LegacyFieldMapping`](crate::processors::LegacyFieldMapping) processor first to
/// get the legacy shape.
pub fn to_line(event: &Event) -> String {
    let mut out = String::with_capacity(1024);
    write_line(event, &mut out);
    out
}

/// Appends the tracking-log line of an event (without the newline).
pub fn write_line(event: &Event, out: &mut String) {
    write_fields(event.fields(), out);
}

/// The LMS's limit on a tracking-log line (`TRACK_MAX_EVENT`), in characters.
pub const MAX_LINE_CHARS: usize = 50_000;

/// [`write_line`] for a line of at most `max_chars` characters; a longer one (the LMS
/// drops it) appends nothing and is `Err` with its length. The line is ASCII
/// (`ensure_ascii`): its bytes are its characters.
pub fn write_line_within(event: &Event, max_chars: usize, out: &mut String) -> Result<(), usize> {
    within(max_chars, out, |out| write_line(event, out))
}

/// [`write_line_within`] for an event read in place from stored text (mapped with
/// [`LegacyFieldMapping::map_view`](crate::processors::LegacyFieldMapping::map_view)).
pub fn write_view_line_within(view: &EventView<'_>, max_chars: usize, out: &mut String) -> Result<(), usize> {
    within(max_chars, out, |out| write_view(view, out))
}

fn within(max_chars: usize, out: &mut String, write: impl FnOnce(&mut String)) -> Result<(), usize> {
    let start = out.len();
    write(out);
    let len = out.len() - start;
    if len > max_chars {
        out.truncate(start);
        return Err(len);
    }
    Ok(())
}

/// `json.dumps(value)` for a value of this crate.
pub fn dumps_json(value: &Json) -> String {
    let mut out = String::with_capacity(256);
    value.write_python(&mut out);
    out
}

/// Appends `json.dumps(value)`.
pub fn write_json(value: &Json, out: &mut String) {
    value.write_python(out);
}

/// Appends an object's members with Python's separators.
pub fn write_fields(fields: &Fields, out: &mut String) {
    fields.write_python(out);
}

/// Appends `json.dumps` of an event's members read in place.
pub fn write_view(view: &EventView<'_>, out: &mut String) {
    view.write_python(out);
}

/// `json.dumps(value)` of a serializable Rust value (through its JSON text).
pub fn dumps(value: &impl Serialize) -> String {
    // Serializing into memory cannot fail for the values this crate hands out.
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    transcode(&text, &mut out);
    out
}

/// The length in bytes (= characters: the output is ASCII) of the event serialized
/// as the tracking log writes it.
pub fn serialized_len(event: &Event) -> usize {
    to_line(event).len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dumped_strings_and_objects() {
        let data = Json::parse(r#"{"a":"é","b":[1,"\"q\""]}"#).unwrap();
        assert_eq!(dumps_json(&Json::Dumped(Box::new(data))), r#""{\"a\": \"\\u00e9\", \"b\": [1, \"\\\"q\\\"\"]}""#);
        let fields: Fields = [("k\u{e9}".into(), Json::int(1))].into_iter().collect();
        assert_eq!(dumps_json(&Json::Object(fields)), r#"{"k\u00e9": 1}"#);
        assert_eq!(dumps(&json!({"a": [1, 2.5]})), r#"{"a": [1, 2.5]}"#);
    }
}

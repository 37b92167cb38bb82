//! An event read in place from stored JSON text: its members as borrowed spans, for
//! the paths that write the tracking log straight from a log record without building
//! an [`Event`](crate::Event) (no shared buffers, no reference counts).

use std::borrow::Cow;

use crate::python;
use crate::rules::json::{push_str_literal, sub, Dialect, Invalid, Scanner};
use crate::text::{sub_text, Fields, Json, Text};

/// A member's value: checked JSON text, an object of members kept apart, or a string
/// whose content is Python's `json.dumps` of a value (the legacy `event` of a browser
/// event). The counterpart of [`Json`](crate::Json) over borrowed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewValue<'a> {
    Text(&'a str),
    /// A string literal without escapes, all printable ASCII: JSON text that Python's
    /// `json.dumps` writes as it is (most of an event's members), so the line writer
    /// copies it instead of reading it again.
    Ascii(&'a str),
    Object(EventView<'a>),
    Dumped(Box<ViewValue<'a>>),
}

impl<'a> ViewValue<'a> {
    /// The value as an object's members, reading text when it is an object.
    pub fn into_members(self) -> Option<EventView<'a>> {
        match self {
            ViewValue::Object(view) => Some(view),
            ViewValue::Text(text) if text.starts_with('{') => EventView::parse(text).ok(),
            _ => None,
        }
    }

    /// The string's value when this is JSON text of a string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            ViewValue::Text(text) => crate::text::string_value_of(text),
            ViewValue::Ascii(text) => text.get(1..text.len() - 1).map(Cow::Borrowed),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        match self {
            ViewValue::Object(_) => true,
            ViewValue::Text(text) => text.starts_with('{'),
            ViewValue::Ascii(_) | ViewValue::Dumped(_) => false,
        }
    }
}

/// An object's members in order, keys decoded, each key once (a repeated key keeps its
/// first place and its last value, as a Python dict does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventView<'a> {
    members: Vec<(Cow<'a, str>, ViewValue<'a>)>,
    /// A bit per key length (mod 64): most keys are new, and this says so without a scan.
    lengths: u64,
}

fn length_bit(key: &str) -> u64 {
    1 << (key.len() % 64)
}

impl<'a> EventView<'a> {
    /// The members of the checked JSON object `text`.
    pub fn parse(text: &'a str) -> Result<EventView<'a>, Invalid> {
        let mut s = Scanner::containing(text, Dialect::Python);
        let view = EventView::read(&mut s, 1)?;
        if !s.at_end() {
            return Err(Invalid::Syntax { at: s.pos() });
        }
        Ok(view)
    }

    /// Reads the object at the scanner's cursor (`depth` is its nesting): one pass that
    /// checks it and keeps its members' spans.
    pub fn read(s: &mut Scanner<'a>, depth: usize) -> Result<EventView<'a>, Invalid> {
        Self::read_opening(s, depth, None, false)
    }

    /// [`EventView::read`] for text this crate checked when it wrote it: values other
    /// than strings are passed by their brackets ([`Scanner::pass_value`]).
    pub fn read_written(s: &mut Scanner<'a>, depth: usize) -> Result<EventView<'a>, Invalid> {
        Self::read_opening(s, depth, None, true)
    }

    /// [`EventView::read`] for an event: its `context`, when an object, is read into
    /// members in the same pass.
    pub fn read_event(s: &mut Scanner<'a>, depth: usize) -> Result<EventView<'a>, Invalid> {
        Self::read_opening(s, depth, Some("context"), false)
    }

    /// [`EventView::read_event`] for text this crate checked when it wrote it (a log
    /// record): values other than strings are passed by their brackets
    /// ([`Scanner::pass_value`]), not checked again.
    pub fn read_written_event(s: &mut Scanner<'a>, depth: usize) -> Result<EventView<'a>, Invalid> {
        Self::read_opening(s, depth, Some("context"), true)
    }

    fn read_opening(s: &mut Scanner<'a>, depth: usize, open: Option<&str>, written: bool) -> Result<EventView<'a>, Invalid> {
        let src = s.src();
        let mut view = EventView { members: Vec::with_capacity(16), lengths: 0 };
        s.object(depth, &mut |s, key, depth| {
            s.ws();
            let key = key.decode(src);
            let value = match s.peek() {
                Some(b'"') => {
                    let (span, plain) = s.marked_string()?;
                    let text = sub(src, span.start, span.end);
                    if plain {
                        ViewValue::Ascii(text)
                    } else {
                        ViewValue::Text(text)
                    }
                }
                Some(b'{') if open.is_some_and(|open| key == open) => {
                    ViewValue::Object(EventView::read_opening(s, depth + 1, None, written)?)
                }
                _ => {
                    let (a, b) = if written { s.pass_value()? } else { s.value(depth)? };
                    ViewValue::Text(sub(src, a, b))
                }
            };
            view.insert(key, value);
            Ok(())
        })?;
        Ok(view)
    }

    /// Takes the value of `key` out, leaving `null` in its place.
    pub fn take(&mut self, key: &str) -> Option<ViewValue<'a>> {
        let at = self.position(key)?;
        Some(std::mem::replace(&mut self.members[at].1, ViewValue::Text("null")))
    }

    /// Members whose keys the caller knows are distinct.
    pub(crate) fn from_distinct(members: Vec<(Cow<'a, str>, ViewValue<'a>)>) -> EventView<'a> {
        let lengths = members.iter().fold(0, |bits, (k, _)| bits | length_bit(k));
        EventView { members, lengths }
    }

    pub(crate) fn into_members(self) -> Vec<(Cow<'a, str>, ViewValue<'a>)> {
        self.members
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        if self.lengths & length_bit(key) == 0 {
            return None;
        }
        self.members.iter().position(|(k, _)| k.len() == key.len() && k == key)
    }

    pub fn get(&self, key: &str) -> Option<&ViewValue<'a>> {
        self.position(key).map(|i| &self.members[i].1)
    }

    /// The string value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key)?.as_str()
    }

    /// Sets `key`: in place when it is there, else at the end.
    pub fn insert(&mut self, key: Cow<'a, str>, value: ViewValue<'a>) {
        match self.position(&key) {
            Some(i) => self.members[i].1 = value,
            None => {
                self.lengths |= length_bit(&key);
                self.members.push((key, value));
            }
        }
    }

    /// Sets every member of `other`, in its order (a Python `dict.update`).
    pub fn update(&mut self, other: EventView<'a>) {
        for (key, value) in other.members {
            self.insert(key, value);
        }
    }

    /// `{**base, **other}` in one pass: `base`'s members in order, each with `other`'s
    /// value where `other` has its key, then `other`'s other members in order (what a
    /// copy of `base` then a Python `dict.update(other)` makes).
    pub fn merged(base: &EventView<'a>, mut other: EventView<'a>) -> EventView<'a> {
        if other.members.len() > 64 {
            let mut merged = base.clone();
            merged.update(other);
            return merged;
        }
        let mut members = Vec::with_capacity(base.members.len() + other.members.len());
        // Bit i: `other`'s member i is in place of one of `base`'s.
        let mut placed = 0u64;
        for (key, value) in &base.members {
            let value = match other.position(key) {
                Some(i) => {
                    placed |= 1 << i;
                    std::mem::replace(&mut other.members[i].1, ViewValue::Text("null"))
                }
                None => value.clone(),
            };
            members.push((key.clone(), value));
        }
        for (i, member) in other.members.into_iter().enumerate() {
            if placed & 1 << i == 0 {
                members.push(member);
            }
        }
        EventView { members, lengths: base.lengths | other.lengths }
    }

    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ViewValue<'a>)> {
        self.members.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Appends Python's `json.dumps` of the members.
    pub fn write_python(&self, out: &mut String) {
        python::write_members(self.iter(), python::write_str, ViewValue::write_python, out);
    }

    /// Appends the members as compact JSON (the text of each value as it is).
    pub fn write_compact(&self, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str_literal(out, key);
            out.push(':');
            value.write_compact(out);
        }
        out.push('}');
    }

    /// The members as [`Fields`], sharing `source`'s buffer: `source` is the text the
    /// view was read from (spans outside it are copied).
    pub fn into_fields(self, source: &Text) -> Fields {
        Fields::from_distinct(self.members.into_iter().map(|(key, value)| (text_of_key(key, source), value.into_json(source))).collect())
    }
}

impl ViewValue<'_> {
    /// Appends Python's `json.dumps` of the value.
    pub fn write_python(&self, out: &mut String) {
        match self {
            ViewValue::Text(text) => python::transcode(text, out),
            // Python writes it as it is.
            ViewValue::Ascii(text) => out.push_str(text),
            ViewValue::Object(view) => view.write_python(out),
            ViewValue::Dumped(inner) => match &**inner {
                ViewValue::Text(text) => python::write_dumped_text(text, out),
                inner => python::write_dumped(out, |text| inner.write_python(text)),
            },
        }
    }

    /// Appends the value as compact JSON.
    pub fn write_compact(&self, out: &mut String) {
        match self {
            ViewValue::Text(text) | ViewValue::Ascii(text) => out.push_str(text),
            ViewValue::Object(view) => view.write_compact(out),
            ViewValue::Dumped(inner) => {
                let mut dumped = String::new();
                inner.write_python(&mut dumped);
                push_str_literal(out, &dumped);
            }
        }
    }

    fn into_json(self, source: &Text) -> Json {
        match self {
            ViewValue::Text(text) | ViewValue::Ascii(text) => Json::Text(text_within(text, source)),
            ViewValue::Object(view) => Json::Object(view.into_fields(source)),
            ViewValue::Dumped(inner) => Json::Dumped(Box::new(inner.into_json(source))),
        }
    }
}

fn text_of_key(key: Cow<'_, str>, source: &Text) -> Text {
    match key {
        Cow::Borrowed(key) => text_within(key, source),
        Cow::Owned(key) => Text::from(key),
    }
}

/// `part` as a slice of `source` when it lies within it, else a copy.
fn text_within(part: &str, source: &Text) -> Text {
    let base = source.as_str().as_ptr() as usize;
    let at = (part.as_ptr() as usize).wrapping_sub(base);
    if at <= source.byte_len() && part.len() <= source.byte_len() - at {
        sub_text(source, at, at + part.len())
    } else {
        Text::from(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_spans_and_a_repeated_key_keeps_its_place_with_its_last_value() {
        let view = EventView::parse(r#"{"a":1,"b":{"c":[2]},"a":"x","d\u0065":null}"#).unwrap();
        let members: Vec<(&str, &ViewValue)> = view.iter().collect();
        assert_eq!(members, [("a", &ViewValue::Ascii("\"x\"")), ("b", &ViewValue::Text(r#"{"c":[2]}"#)), ("de", &ViewValue::Text("null"))]);
        let strings = EventView::parse(r#"{"plain":"a b","escaped":"a\"b","accent":"é"}"#).unwrap();
        let kinds: Vec<bool> = strings.iter().map(|(_, v)| matches!(v, ViewValue::Ascii(_))).collect();
        assert_eq!(kinds, [true, false, false], "only what Python writes as it is");
        assert_eq!(strings.get_str("escaped").as_deref(), Some("a\"b"));
        assert_eq!(view.get_str("a").as_deref(), Some("x"));
        assert!(view.get("b").unwrap().is_object());
        assert!(EventView::parse(r#"{"a":1} x"#).is_err());
        assert!(EventView::parse("[1]").is_err());
    }

    #[test]
    fn into_fields_shares_the_source_and_copies_the_rest() {
        let buf: std::sync::Arc<str> = std::sync::Arc::from(r#"{"a":{"b":1},"c\u0064":"x"}"#);
        let source = Text::slice(&buf, 0, buf.len());
        let mut view = EventView::parse(&buf).unwrap();
        view.insert(Cow::Borrowed("page"), ViewValue::Text("null"));
        let fields = view.into_fields(&source);
        assert_eq!(Json::Object(fields).to_compact(), r#"{"a":{"b":1},"cd":"x","page":null}"#);
    }

    #[test]
    fn update_is_a_dict_update() {
        let mut shared = EventView::parse(r#"{"user_id":1,"course_id":"","page":"p"}"#).unwrap();
        shared.update(EventView::parse(r#"{"course_id":"c","extra":2}"#).unwrap());
        let keys: Vec<&str> = shared.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["user_id", "course_id", "page", "extra"]);
        assert_eq!(shared.get_str("course_id").as_deref(), Some("c"));
    }

    #[test]
    fn merged_is_a_copy_then_an_update() {
        let base = EventView::parse(r#"{"user_id":1,"course_id":"","page":"p","org_id":"o"}"#).unwrap();
        let wide = format!("{{{}}}", (0..70).map(|k| format!(r#""k{k}":{k}"#)).collect::<Vec<_>>().join(","));
        for other in [r#"{"course_id":"c","extra":2,"page":null}"#, "{}", r#"{"x":1}"#, r#"{"org_id":"p","user_id":2}"#, &wide] {
            let other = EventView::parse(other).unwrap();
            let mut updated = base.clone();
            updated.update(other.clone());
            let merged = EventView::merged(&base, other);
            assert_eq!(merged.iter().collect::<Vec<_>>(), updated.iter().collect::<Vec<_>>());
            assert!(updated.iter().all(|(k, v)| merged.get(k) == Some(v)), "every key found again");
        }
    }
}

//! JSON kept as text until something needs its structure.
//!
//! An event's values are [`Json`]: checked, compact JSON text ([`Json::Text`]), an
//! object whose members are addressed one by one ([`Json::Object`], e.g. the
//! context), or the string that Python's `json.dumps` of a value gives
//! ([`Json::Dumped`], the legacy mapping's `event` for browser events). Text is shared
//! ([`Text`] slices one buffer: a log record, a request body), so copying an event
//! for another routing branch copies no text, and writing an event copies or
//! transcodes its text without ever building a tree. A string with a lone surrogate
//! (`"\ud83d"`) stays as it was written all the way to the tracking log, as in Python.
//!
//! A tree ([`serde_json::Value`]) is made only on request ([`Json::to_value`]), for
//! code that wants one; there a lone surrogate becomes U+FFFD.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde_json::Value;

use crate::python;
use crate::rules::json::{self as rules_json, push_str_literal, Dialect, Invalid, StrSpan};

/// Shared, immutable text: a static string or a slice of a reference-counted buffer.
///
/// A text can be marked *verbatim* where it is made ([`Text::verbatim`]): the
/// tracking-log writer then copies it without looking at it. Contexts are entered
/// once and written into every event's line, and the event's own name, timestamp and
/// id are known to be plain when they are made, so most of a server-side line is
/// copied rather than checked byte by byte.
#[derive(Clone)]
pub struct Text {
    repr: Repr,
    verbatim: bool,
}

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared { buf: Arc<str>, start: u32, end: u32 },
}

impl Text {
    /// A slice `start..end` of `buf` (byte offsets on character boundaries).
    pub fn slice(buf: &Arc<str>, start: usize, end: usize) -> Text {
        debug_assert!(buf.is_char_boundary(start) && buf.is_char_boundary(end) && start <= end);
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) if buf.get(start as usize..end as usize).is_some() => {
                Text { repr: Repr::Shared { buf: buf.clone(), start, end }, verbatim: false }
            }
            _ => Text::from(buf.get(start..end).unwrap_or("")),
        }
    }

    /// The slice `a..b` of this text (byte offsets on character boundaries), sharing
    /// its buffer.
    pub fn sub(&self, a: usize, b: usize) -> Text {
        sub_text(self, a, b)
    }

    pub const fn from_static(s: &'static str) -> Text {
        Text { repr: Repr::Static(s), verbatim: false }
    }

    /// A static text marked verbatim (see [`Text::verbatim`]).
    pub const fn verbatim_static(s: &'static str) -> Text {
        Text { repr: Repr::Static(s), verbatim: true }
    }

    /// This text marked *verbatim*: Python's `json.dumps` writes it as it is. As a key
    /// that means printable ASCII without `"` or `\\` (written between quotes); as a
    /// value, JSON text that is its own `json.dumps` (a plain string, an integer other
    /// than `-0`, `true`, `false`, `null`). The caller vouches for it; the makers
    /// below check.
    pub fn verbatim(self) -> Text {
        self.verbatim_if(true)
    }

    /// This text, marked [verbatim](Text::verbatim) when `verbatim`.
    pub(crate) fn verbatim_if(self, verbatim: bool) -> Text {
        Text { verbatim: self.verbatim || verbatim, ..self }
    }

    /// Whether the text was marked [verbatim](Text::verbatim).
    pub fn is_verbatim(&self) -> bool {
        self.verbatim
    }

    /// A key, marked verbatim when it is plain.
    pub fn key(s: &str) -> Text {
        Text::from(s).verbatim_if(rules_json::is_plain_ascii(s.as_bytes()))
    }

    /// The length in bytes, without looking at the text.
    pub fn byte_len(&self) -> usize {
        match &self.repr {
            Repr::Static(s) => s.len(),
            Repr::Shared { start, end, .. } => (*end - *start) as usize,
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.repr {
            Repr::Static(s) => s,
            Repr::Shared { buf, start, end } => buf.get(*start as usize..*end as usize).unwrap_or(""),
        }
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        let end = s.len();
        let buf: Arc<str> = Arc::from(s);
        Text::slice(&buf, 0, end)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::from(s.to_owned())
    }
}

impl From<Cow<'_, str>> for Text {
    fn from(s: Cow<'_, str>) -> Text {
        Text::from(s.into_owned())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a JSON value, from its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// A JSON value: text, an object of addressable members, or a string made by
/// Python's `json.dumps` of a value.
#[derive(Clone)]
pub enum Json {
    /// One checked JSON value, compact (no whitespace outside strings).
    Text(Text),
    /// An object whose members are kept apart.
    Object(Fields),
    /// A JSON string whose content is `json.dumps(value)` in Python's format.
    Dumped(Box<Json>),
}

/// Text that is not one JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON value ({})", .0.code())]
pub struct NotJson(pub Invalid);

impl Json {
    pub const NULL: Json = Json::Text(Text::verbatim_static("null"));
    pub const TRUE: Json = Json::Text(Text::verbatim_static("true"));
    pub const FALSE: Json = Json::Text(Text::verbatim_static("false"));
    pub const EMPTY_STRING: Json = Json::Text(Text::verbatim_static("\"\""));

    /// Checks `text` (strict JSON, lone surrogates allowed) and keeps it, compacted.
    pub fn parse(text: &str) -> Result<Json, NotJson> {
        Json::parse_dialect(text, Dialect::Strict)
    }

    /// [`Json::parse`] in another dialect (Python's for the legacy `/event` endpoint).
    pub fn parse_dialect(text: &str, dialect: Dialect) -> Result<Json, NotJson> {
        rules_json::validate(text, dialect).map_err(NotJson)?;
        Ok(Json::Text(Text::from(rules_json::compact(text))))
    }

    /// Wraps text that is already one checked, compact JSON value (a span the caller
    /// checked, e.g. of a log record this crate wrote). Nothing is checked here.
    pub fn from_checked(text: Text) -> Json {
        Json::Text(text)
    }

    /// A JSON string (marked verbatim when it is plain).
    pub fn str(s: &str) -> Json {
        let mut lit = String::with_capacity(s.len() + 2);
        push_str_literal(&mut lit, s);
        Json::Text(Text::from(lit).verbatim_if(rules_json::is_plain_ascii(s.as_bytes())))
    }

    /// A whole number.
    pub fn int(n: i64) -> Json {
        Json::Text(Text::from(n.to_string()).verbatim())
    }

    /// The JSON of a tree (Rust code builds data with `json!`).
    pub fn from_value(value: &Value) -> Json {
        match value {
            Value::Null => Json::NULL,
            Value::Bool(true) => Json::TRUE,
            Value::Bool(false) => Json::FALSE,
            // Plain strings and integers are what Python writes; floats are not (`1e16`
            // is `1e+16` there), nor the separators of arrays and objects.
            // Serializing a tree into memory cannot fail.
            other => {
                let text = Text::from(serde_json::to_string(other).unwrap_or_else(|_| "null".into()));
                let verbatim = match other {
                    Value::String(s) => rules_json::is_plain_ascii(s.as_bytes()),
                    Value::Number(n) => n.is_i64() || n.is_u64(),
                    _ => false,
                };
                Json::Text(text.verbatim_if(verbatim))
            }
        }
    }

    /// The kind of this value.
    pub fn kind(&self) -> Kind {
        match self {
            Json::Object(_) => Kind::Object,
            Json::Dumped(_) => Kind::String,
            Json::Text(t) => match t.as_bytes().first() {
                Some(b'{') => Kind::Object,
                Some(b'[') => Kind::Array,
                Some(b'"') => Kind::String,
                Some(b't' | b'f') => Kind::Bool,
                Some(b'n') | None => Kind::Null,
                _ => Kind::Number,
            },
        }
    }

    pub fn is_null(&self) -> bool {
        self.kind() == Kind::Null
    }

    pub fn is_object(&self) -> bool {
        self.kind() == Kind::Object
    }

    /// The number, when this is a whole number that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_text().filter(|_| self.kind() == Kind::Number).and_then(|t| t.parse().ok())
    }

    /// The number, when this is a whole number that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_text().filter(|_| self.kind() == Kind::Number).and_then(|t| t.parse().ok())
    }

    /// The boolean, when this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.as_text().map(|t| t.as_str()) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        }
    }

    /// The text, when this value is text.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Json::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The string's value when this is a JSON string (a lone surrogate becomes U+FFFD).
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::Text(t) => string_value(t),
            Json::Dumped(inner) => Some(Cow::Owned(inner.to_python())),
            Json::Object(_) => None,
        }
    }

    /// Whether Python would take the value for true: not `null`, `false`, `0`, `0.0`,
    /// `""`, `[]` or `{}` (what `data or {}` looks at).
    pub fn is_truthy(&self) -> bool {
        match self {
            Json::Object(fields) => !fields.is_empty(),
            Json::Dumped(_) => true,
            Json::Text(t) => {
                let t = t.as_str();
                !(matches!(t, "null" | "false" | "\"\"" | "[]" | "{}") || is_zero_number(t))
            }
        }
    }

    /// The members of an object value (`None` for anything else).
    pub fn to_fields(&self) -> Option<Fields> {
        match self {
            Json::Object(fields) => Some(fields.clone()),
            Json::Text(t) if t.starts_with('{') => Fields::parse_text(t),
            _ => None,
        }
    }

    /// Makes this value an [`Json::Object`] if it is an object, and returns its members.
    pub fn as_fields_mut(&mut self) -> Option<&mut Fields> {
        if let Json::Text(_) = self {
            let fields = self.to_fields()?;
            *self = Json::Object(fields);
        }
        match self {
            Json::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// The value as a tree.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()),
            Json::Dumped(inner) => Value::String(inner.to_python()),
            Json::Text(t) => text_to_value(t),
        }
    }

    /// Appends the value as compact JSON.
    pub fn write_compact(&self, out: &mut String) {
        match self {
            Json::Text(t) => out.push_str(t),
            Json::Object(fields) => fields.write_compact(out),
            Json::Dumped(inner) => push_str_literal(out, &inner.to_python()),
        }
    }

    /// Appends Python's `json.dumps` of the value.
    pub fn write_python(&self, out: &mut String) {
        match self {
            Json::Text(text) if text.is_verbatim() => out.push_str(text),
            Json::Text(text) => python::transcode(text, out),
            Json::Object(fields) => fields.write_python(out),
            Json::Dumped(inner) => match &**inner {
                Json::Text(text) if !text.is_verbatim() => python::write_dumped_text(text, out),
                inner => python::write_dumped(out, |text| inner.write_python(text)),
            },
        }
    }

    /// Python's `json.dumps` of the value.
    pub fn to_python(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_python(&mut out);
        out
    }

    /// The value as compact JSON.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write_compact(&mut out);
        out
    }
}

fn is_zero_number(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    let mantissa = digits.split(['e', 'E']).next().unwrap_or("");
    !mantissa.is_empty() && mantissa.bytes().all(|b| b == b'0' || b == b'.') && mantissa.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// The value of a JSON string literal.
fn string_value(t: &Text) -> Option<Cow<'_, str>> {
    string_value_of(t.as_str())
}

/// The value of a JSON string's checked text (`None` for another kind of value).
pub(crate) fn string_value_of(t: &str) -> Option<Cow<'_, str>> {
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    Some(if inner.contains('\\') { Cow::Owned(rules_json::decode_lossy(inner)) } else { Cow::Borrowed(inner) })
}

/// A tree from checked JSON text; lone surrogates become U+FFFD, Python's `NaN` and
/// infinities become `null` (a tree cannot hold them).
fn text_to_value(t: &str) -> Value {
    if let Ok(v) = serde_json::from_str(t) {
        return v;
    }
    // A lone surrogate or a Python token: rebuild the text without them.
    let mut s = rules_json::Scanner::containing(t, Dialect::Python);
    value_lossy(&mut s).unwrap_or(Value::Null)
}

fn value_lossy(s: &mut rules_json::Scanner<'_>) -> Option<Value> {
    s.ws();
    let src = s.src();
    match s.peek()? {
        b'{' => {
            let mut map = serde_json::Map::new();
            let mut failed = false;
            let _ = s.object(1, &mut |s, key, _| {
                let k = key.decode(src).into_owned();
                match value_lossy(s) {
                    Some(v) => {
                        map.insert(k, v);
                        Ok(())
                    }
                    None => {
                        failed = true;
                        Err(Invalid::Syntax { at: s.pos() })
                    }
                }
            });
            (!failed).then_some(Value::Object(map))
        }
        b'[' => {
            let mut items = Vec::new();
            let mut failed = false;
            let _ = s.array(1, &mut |s, _| match value_lossy(s) {
                Some(v) => {
                    items.push(v);
                    Ok(())
                }
                None => {
                    failed = true;
                    Err(Invalid::Syntax { at: s.pos() })
                }
            });
            (!failed).then_some(Value::Array(items))
        }
        b'"' => {
            let span = s.string().ok()?;
            Some(Value::String(span.decode(src).into_owned()))
        }
        _ => {
            let (a, b) = s.value(0).ok()?;
            Some(serde_json::from_str(rules_json::sub(src, a, b)).unwrap_or(Value::Null))
        }
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        &self.to_value() == other
    }
}

// Comparisons with plain values, as `serde_json::Value` has them.
impl PartialEq<str> for Json {
    fn eq(&self, other: &str) -> bool {
        self.as_str().is_some_and(|s| s == other)
    }
}

impl PartialEq<&str> for Json {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for Json {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

macro_rules! eq_integer {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Json {
            fn eq(&self, other: &$t) -> bool {
                self.kind() == Kind::Number && self.to_value() == *other
            }
        }
    )*};
}
eq_integer!(i32, i64, u32, u64, usize);

impl PartialEq<bool> for Json {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl From<&Value> for Json {
    fn from(v: &Value) -> Json {
        Json::from_value(v)
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Json {
        Json::from_value(&v)
    }
}

impl From<serde_json::Map<String, Value>> for Fields {
    fn from(map: serde_json::Map<String, Value>) -> Fields {
        Fields::from_map(&map)
    }
}

impl From<Fields> for Json {
    fn from(f: Fields) -> Json {
        Json::Object(f)
    }
}

/// The members of an object, in order, keys unescaped. Setting a key that is already
/// there replaces its value in place, as a Python dict does.
#[derive(Clone, Default, PartialEq)]
pub struct Fields(Vec<(Text, Json)>);

impl Fields {
    /// No members.
    pub const EMPTY: Fields = Fields(Vec::new());

    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Fields {
        Fields(Vec::with_capacity(n))
    }

    /// The members of a map, each serialized on its own (contexts: the legacy mapping
    /// moves members one by one).
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Fields {
        map.iter().map(|(k, v)| (Text::key(k), Json::from_value(v))).collect()
    }

    /// The members of a checked JSON object's text, sharing its buffer.
    pub fn parse_text(text: &Text) -> Option<Fields> {
        let src = text.as_str();
        let members = rules_json::object_members(src, Dialect::Python).ok()?;
        let mut fields = Fields::with_capacity(members.len());
        for (key, (a, b)) in members {
            let value = Json::Text(sub_text(text, a, b));
            fields.insert(key_text(text, key), value);
        }
        Some(fields)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The members, for code that rebuilds an object in one pass.
    pub(crate) fn into_members(self) -> Vec<(Text, Json)> {
        self.0
    }

    /// Members whose keys the caller knows are distinct.
    pub(crate) fn from_distinct(members: Vec<(Text, Json)>) -> Fields {
        debug_assert!(members.iter().enumerate().all(|(i, (k, _))| members[..i].iter().all(|(o, _)| o.as_str() != k.as_str())));
        Fields(members)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        // Lengths first: most keys differ in length, and that needs no text.
        self.0.iter().position(|(k, _)| k.byte_len() == key.len() && k.as_str() == key)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.position(key).map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.position(key).map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The string value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)?.as_str()
    }

    /// Sets `key`: in place when it is there, else at the end. Returns the old value.
    pub fn insert(&mut self, key: impl Into<Text>, value: Json) -> Option<Json> {
        let key = key.into();
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Appends a member whose key the caller knows is not there yet.
    pub(crate) fn push_new(&mut self, key: Text, value: Json) {
        debug_assert!(self.position(&key).is_none());
        self.0.push((key, value));
    }

    /// Removes every member.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let at = self.position(key)?;
        Some(self.0.remove(at).1)
    }

    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Text, &Json)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Sets every member of `other`, in its order (a Python `dict.update`).
    pub fn update(&mut self, other: &Fields) {
        for (k, v) in other.iter() {
            self.insert(k.clone(), v.clone());
        }
    }

    /// Appends Python's `json.dumps` of the object.
    pub fn write_python(&self, out: &mut String) {
        python::write_members(self.iter(), write_key, Json::write_python, out);
    }

    /// Appends the object as compact JSON.
    pub fn write_compact(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str_literal(out, k);
            out.push(':');
            v.write_compact(out);
        }
        out.push('}');
    }

    /// The members as a tree.
    pub fn to_value(&self) -> Value {
        Json::Object(self.clone()).to_value()
    }
}

impl PartialEq<serde_json::Map<String, Value>> for Fields {
    fn eq(&self, other: &serde_json::Map<String, Value>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|((k, v), (ok, ov))| k.as_str() == ok && v == ov)
    }
}

impl FromIterator<(Text, Json)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Text, Json)>>(iter: I) -> Fields {
        let mut fields = Fields::new();
        for (k, v) in iter {
            fields.insert(k, v);
        }
        fields
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_compact(&mut out);
        f.write_str(&out)
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Json;
    fn index(&self, key: &str) -> &Json {
        static NULL: Json = Json::NULL;
        self.get(key).unwrap_or(&NULL)
    }
}

/// A key as a JSON string, copied when it is verbatim.
fn write_key(key: &Text, out: &mut String) {
    if key.is_verbatim() {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else {
        python::write_str(key, out);
    }
}

/// `text[a..b]` as shared text.
pub(crate) fn sub_text(text: &Text, a: usize, b: usize) -> Text {
    match &text.repr {
        Repr::Static(s) => Text::from_static(s.get(a..b).unwrap_or("")),
        Repr::Shared { buf, start, .. } => Text::slice(buf, *start as usize + a, *start as usize + b),
    }
}

/// The key of a member: a slice of the text when it has no escapes, else decoded.
pub(crate) fn key_text(text: &Text, key: StrSpan) -> Text {
    if key.escaped {
        Text::from(key.decode(text.as_str()))
    } else {
        sub_text(text, key.start + 1, key.end - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_shares_its_buffer() {
        let buf: Arc<str> = Arc::from("hello world");
        let t = Text::slice(&buf, 6, 11);
        assert_eq!(&*t, "world");
        assert_eq!(Arc::strong_count(&buf), 2);
        assert_eq!(Text::from_static("x"), Text::from("x"));
    }

    #[test]
    fn parse_compacts_and_keeps_lone_surrogates() {
        let j = Json::parse(" { \"a\" : [1, 2], \"s\": \"x y\\ud83d\" } ").unwrap();
        assert_eq!(j.to_compact(), r#"{"a":[1,2],"s":"x y\ud83d"}"#);
        assert!(Json::parse("{").is_err());
        assert!(Json::parse("NaN").is_err());
        assert_eq!(Json::parse_dialect("[NaN]", Dialect::Python).unwrap().to_compact(), "[NaN]");
    }

    #[test]
    fn kinds_and_strings() {
        assert_eq!(Json::str("a\"b").to_compact(), r#""a\"b""#);
        assert_eq!(Json::str("a\"b").as_str().unwrap(), "a\"b");
        assert_eq!(Json::parse("\"\\ud83d!\"").unwrap().as_str().unwrap(), "\u{FFFD}!");
        assert_eq!(Json::parse("[1]").unwrap().kind(), Kind::Array);
        assert_eq!(Json::parse("-1.5").unwrap().kind(), Kind::Number);
        assert!(Json::parse("1").unwrap().as_str().is_none());
    }

    #[test]
    fn python_truthiness() {
        for falsy in ["null", "false", "0", "-0", "0.0", "0e5", "\"\"", "[]", "{}"] {
            assert!(!Json::parse(falsy).unwrap().is_truthy(), "{falsy}");
        }
        for truthy in ["1", "0.1", "\"0\"", "[0]", "{\"a\":1}", "true", "-1e-9"] {
            assert!(Json::parse(truthy).unwrap().is_truthy(), "{truthy}");
        }
    }

    #[test]
    fn fields_keep_order_and_replace_in_place() {
        let text = Text::from(r#"{"b":1,"a\u0041":"x","c":{"d":null}}"#);
        let mut f = Fields::parse_text(&text).unwrap();
        assert_eq!(f.keys().collect::<Vec<_>>(), ["b", "aA", "c"]);
        f.insert("b", Json::int(2));
        f.insert("z", Json::TRUE);
        assert_eq!(f.remove("aA").unwrap().as_str().unwrap(), "x");
        let mut out = String::new();
        f.write_compact(&mut out);
        assert_eq!(out, r#"{"b":2,"c":{"d":null},"z":true}"#);
        assert_eq!(f["c"], json!({"d": null}));
        assert!(f["missing"].is_null());
    }

    #[test]
    fn trees_both_ways() {
        let v = json!({"a": [1, 2.5, "é"], "b": {"c": null}, "n": 12345678901234567890u64});
        let j = Json::from_value(&v);
        assert_eq!(j.to_value(), v);
        assert_eq!(Json::parse(&j.to_compact()).unwrap(), v);
        let lossy = Json::parse_dialect(r#"{"s":"\ud83d","n":NaN}"#, Dialect::Python).unwrap();
        assert_eq!(lossy.to_value(), json!({"s": "\u{FFFD}", "n": null}));
    }
}

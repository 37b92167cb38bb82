//! `POST /v1/batch` bodies: the envelope split into events without reading them, then
//! each event read on its own, so one event the server cannot take (not UTF-8, not
//! JSON, too deep, too large, badly typed) costs only itself.
//!
//! The envelope is `{"sent_at": "...", "events": [ ... ]}`. Splitting it only follows
//! strings and brackets; an event is then checked strictly, with the limits of
//! [`event_model::rules`], which the browser SDK applies before it queues an event.

use std::borrow::Cow;

use event_model::processor::Rejection;
use event_model::rules::event::{name_problem, size_problem, EventType};
use event_model::rules::json::{self, push_str_literal, Dialect, Scanner, StrSpan};
use uuid::Uuid;

use super::{EventText, IngestRules};

/// Why a whole request body was refused (per-event problems are [`Rejection`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON near byte {at}")]
    Json { at: usize },
    #[error("body must be a JSON object with an `events` array")]
    Shape,
    #[error("{count} events in one batch, more than the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
}

impl BodyError {
    /// A stable code for replies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::Json { .. } => "invalid_json",
            BodyError::Shape => "invalid_batch",
            BodyError::TooManyEvents { .. } => "too_many_events",
        }
    }
}

/// Splits a batch body into its events' byte spans. Only the envelope must be JSON:
/// an event that is not is found (and later refused) by its brackets and quotes.
pub fn split_envelope(body: &[u8], max_events: usize) -> Result<Vec<(usize, usize)>, BodyError> {
    let mut spans = Vec::new();
    walk_envelope(body, max_events, |p| {
        spans.push(p.skip_value()?);
        Some(())
    })?;
    Ok(spans)
}

/// Reads a batch body: what each of its events becomes, in order ([`read_event`]). An
/// event is read in the one strict pass that also finds its end; only one the strict
/// pass refuses is found by its brackets and quotes (as [`split_envelope`] finds them)
/// and read again on its own, so it costs only itself.
pub fn read_batch(
    body: &[u8],
    max_events: usize,
    rules: &IngestRules,
    received: &str,
    pages: &mut LastPage,
) -> Result<Vec<Result<EventText, Refused>>, BodyError> {
    let Ok(text) = std::str::from_utf8(body) else {
        // An event that is not UTF-8 costs only itself: each is read from its own bytes.
        let spans = split_envelope(body, max_events)?;
        return Ok(spans.into_iter().map(|span| read_event(body, span, rules, received, pages)).collect());
    };
    let mut outcomes = Vec::new();
    walk_envelope(body, max_events, |p| {
        let rest = json::tail(text, p.i);
        match rest.starts_with('{').then(|| members(rest, rules, false).ok()).flatten() {
            Some((m, len)) => {
                let item = json::sub(rest, 0, len);
                p.i += len;
                // Read in the pass that found its end, the event is measured only now.
                let early_id = sdk_id(item.as_bytes());
                outcomes.push(
                    check_size(item.as_bytes(), rules, early_id).and_then(|()| read_members(item, m, early_id, rules, received, pages)),
                );
            }
            None => {
                let span = p.skip_value()?;
                outcomes.push(read_event(body, span, rules, received, pages));
            }
        }
        Some(())
    })?;
    Ok(outcomes)
}

/// Walks the envelope, calling `item` with the cursor at each event of `events`; it
/// passes the event (`None`: it could not, the body is not JSON there).
fn walk_envelope(body: &[u8], max_events: usize, mut item: impl FnMut(&mut Lenient<'_>) -> Option<()>) -> Result<(), BodyError> {
    let mut p = Lenient { b: body, i: 0 };
    p.ws();
    if !p.eat(b'{') {
        // JSON, but not the envelope's object: the wrong shape, not bad JSON.
        let is_json = std::str::from_utf8(body).is_ok_and(|t| json::validate(t, Dialect::Strict).is_ok());
        return Err(if is_json { BodyError::Shape } else { p.json_error() });
    }
    let mut events = false;
    p.ws();
    if !p.eat(b'}') {
        loop {
            p.ws();
            let (ka, kb) = p.string().ok_or_else(|| p.json_error())?;
            p.ws();
            if !p.eat(b':') {
                return Err(p.json_error());
            }
            p.ws();
            if &body[ka..kb] == b"\"events\"" {
                if p.peek() != Some(b'[') {
                    return Err(BodyError::Shape);
                }
                p.items(max_events, &mut item)?;
                events = true;
            } else {
                p.skip_value().ok_or_else(|| p.json_error())?;
            }
            p.ws();
            if p.eat(b',') {
                continue;
            }
            if p.eat(b'}') {
                break;
            }
            return Err(p.json_error());
        }
    }
    p.ws();
    if p.i != body.len() {
        return Err(p.json_error());
    }
    if events {
        Ok(())
    } else {
        Err(BodyError::Shape)
    }
}

/// A scanner that follows only strings and brackets.
struct Lenient<'b> {
    b: &'b [u8],
    i: usize,
}

impl Lenient<'_> {
    fn json_error(&self) -> BodyError {
        BodyError::Json { at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A string's span, quotes included; escapes are skipped, not checked.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        if !self.eat(b'"') {
            return None;
        }
        loop {
            self.i = json::find_special(self.b, self.i);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some((start, self.i));
                }
                b'\\' => self.i += 2,
                // A raw control character: not this scanner's business.
                _ => self.i += 1,
            }
        }
    }

    /// Passes one value of any kind; returns its span.
    fn skip_value(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')) {
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some((start, self.i))
    }

    /// Calls `item` at each item of the array at the cursor (it passes the item).
    fn items(&mut self, max: usize, item: &mut impl FnMut(&mut Self) -> Option<()>) -> Result<(), BodyError> {
        self.eat(b'[');
        self.ws();
        if self.eat(b']') {
            return Ok(());
        }
        let mut count = 0;
        loop {
            self.ws();
            if count == max {
                self.skip_value().ok_or_else(|| self.json_error())?;
                return Err(BodyError::TooManyEvents { count: max + 1 + self.rest_count(), limit: max });
            }
            item(self).ok_or_else(|| self.json_error())?;
            count += 1;
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(());
            }
            return Err(self.json_error());
        }
    }

    /// How many more items follow (for the error message only).
    fn rest_count(&mut self) -> usize {
        let mut n = 0;
        loop {
            self.ws();
            if !self.eat(b',') {
                return n;
            }
            self.ws();
            if self.skip_value().is_none() {
                return n;
            }
            n += 1;
        }
    }
}

/// An event the server refused, with the id its client gave it when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: Option<Uuid>,
    pub why: Rejection,
}

fn refuse(id: Option<Uuid>, reason: &'static str, detail: impl Into<String>) -> Refused {
    Refused { id, why: Rejection::new(reason, detail) }
}

/// The members of a batch event that the server reads, as spans of its text, and
/// `data` as the data rules left it (checked where it was found).
#[derive(Default)]
struct Members<'t> {
    checked_data: Option<Result<Cow<'t, str>, Rejection>>,
    id: Option<(usize, usize)>,
    kind: Option<(usize, usize)>,
    name: Option<(usize, usize)>,
    timestamp: Option<(usize, usize)>,
    data: Option<(usize, usize)>,
    page: Option<(usize, usize)>,
    referrer: Option<(usize, usize)>,
    category: Option<(usize, usize)>,
    user_id: Option<(usize, usize)>,
    anonymous_id: Option<(usize, usize)>,
}

/// The course context of the page last read (the written `course_id`, `org_id` and
/// `enterprise_uuid` members): a batch's events usually share their page, and finding
/// the course key in its URL was 4% of ingest's CPU.
#[derive(Debug, Default)]
pub struct LastPage(Option<(Option<String>, String)>);

impl LastPage {
    /// Appends the course members for `page` (its JSON string literal, if any).
    fn write_course(&mut self, page: Option<&str>, out: &mut String) {
        let (_, course) = match &mut self.0 {
            Some(last) if last.0.as_deref() == page => last,
            slot => {
                let found = page.and_then(string_of).and_then(|p| event_model::course::course_from_url(&p));
                let mut course = String::new();
                write_course(&mut course, found.as_ref());
                slot.insert((page.map(str::to_owned), course))
            }
        };
        out.push_str(course);
    }
}

/// What one batch event becomes: its JSON for the log, or why it is refused. `pages`
/// carries the course found for the previous event's page.
pub fn read_event(
    body: &[u8],
    span: (usize, usize),
    rules: &IngestRules,
    received: &str,
    pages: &mut LastPage,
) -> Result<EventText, Refused> {
    let bytes = &body[span.0..span.1];
    // The SDK writes the id first: it is in the reply even when the rest is unreadable.
    let early_id = sdk_id(bytes);
    check_size(bytes, rules, early_id)?;
    let text = std::str::from_utf8(bytes).map_err(|_| refuse(early_id, "invalid_utf8", "event is not valid UTF-8"))?;
    if !text.starts_with('{') && json::validate(text, Dialect::Strict).is_ok() {
        return Err(refuse(early_id, "invalid_event", "each event must be a JSON object"));
    }
    let (m, _) = members(text, rules, true).map_err(|e| match e {
        json::Invalid::TooDeep => refuse(early_id, "too_deep", format!("event nests deeper than {}", json::MAX_DEPTH)),
        json::Invalid::Syntax { at } => refuse(early_id, e.code(), format!("event is not valid JSON near byte {at}")),
    })?;
    read_members(text, m, early_id, rules, received, pages)
}

fn check_size(bytes: &[u8], rules: &IngestRules, early_id: Option<Uuid>) -> Result<(), Refused> {
    match size_problem(bytes.len(), rules.max_event_bytes) {
        Some(too_large) => {
            Err(refuse(early_id, "size_limit", format!("event is {} bytes, over the limit of {}", too_large.len, too_large.max)))
        }
        None => Ok(()),
    }
}

/// [`read_event`] once the event's members are read: the checks of each in order, and
/// the event's JSON for the log.
fn read_members(
    text: &str,
    mut m: Members<'_>,
    early_id: Option<Uuid>,
    rules: &IngestRules,
    received: &str,
    pages: &mut LastPage,
) -> Result<EventText, Refused> {
    let value = |span: Option<(usize, usize)>| span.map(|(a, b)| json::sub(text, a, b)).filter(|v| *v != "null");
    let id = match value(m.id) {
        None => None,
        Some(v) => match string_of(v).and_then(|s| Uuid::parse_str(&s).ok()) {
            Some(id) => Some(id),
            None => return Err(refuse(early_id, "invalid_id", "`id` must be a UUID string")),
        },
    };
    let kind = match value(m.kind) {
        None => EventType::TrackingLog,
        Some(v) => match string_of(v).as_deref().and_then(EventType::parse) {
            Some(kind) => kind,
            None => return Err(refuse(id, "invalid_type", "`type` must be tracking_log, track, page or identify")),
        },
    };
    let name_literal = optional_string(value(m.name), "name").map_err(|why| Refused { id, why })?;
    let name = name_literal.and_then(string_of);
    let name_literal = match (kind, name.as_deref()) {
        (_, Some(n)) if !n.is_empty() => Cow::Borrowed(name_literal.unwrap_or("\"\"")),
        (EventType::TrackingLog | EventType::Track, _) => return Err(refuse(id, "missing_name", "`name` is required")),
        (EventType::Page, _) => Cow::Borrowed("\"page\""),
        (EventType::Identify, _) => Cow::Borrowed("\"identify\""),
    };
    if let Some(problem) = name_problem(kind, name.as_deref()) {
        if let Err(why) = rules.judge_name(problem) {
            return Err(Refused { id, why });
        }
    }
    let data = match value(m.data) {
        None => Cow::Borrowed("{}"),
        Some(v) if v.starts_with('{') => match m.checked_data.take() {
            Some(checked) => checked,
            None => rules.check_data(v, Dialect::Strict),
        }
        .map_err(|why| Refused { id, why })?,
        Some(_) => return Err(refuse(id, "invalid_data", "`data` must be a JSON object")),
    };
    let timestamp = optional_string(value(m.timestamp), "timestamp").map_err(|why| Refused { id, why })?;
    // The client's clock only goes to Segment; tracking-log events use the server's.
    let client_timestamp = match timestamp.and_then(string_of) {
        Some(ts) if kind != EventType::TrackingLog => {
            Some(event_model::timestamp::normalize(&ts).map_err(|_| refuse(id, "invalid_timestamp", "`timestamp` must be RFC 3339"))?)
        }
        _ => None,
    };
    let page = optional_string(value(m.page), "page").map_err(|why| Refused { id, why })?;
    let referrer = optional_string(value(m.referrer), "referrer").map_err(|why| Refused { id, why })?;
    let category = optional_string(value(m.category), "category").map_err(|why| Refused { id, why })?;
    let anonymous_id = scalar_string(value(m.anonymous_id), "anonymous_id").map_err(|why| Refused { id, why })?;
    let declared_user_id = scalar_string(value(m.user_id), "user_id").map_err(|why| Refused { id, why })?;

    let id_given = id.is_some();
    let id = id.unwrap_or_else(Uuid::now_v7);
    let mut out = String::with_capacity(text.len() + 200);
    out.push_str("{\"name\":");
    out.push_str(&name_literal);
    out.push_str(",\"timestamp\":\"");
    out.push_str(received);
    out.push_str("\",\"data\":");
    out.push_str(&data);
    out.push_str(",\"context\":{");
    pages.write_course(page, &mut out);
    out.push_str(",\"event_source\":\"browser\",\"page\":");
    out.push_str(page.unwrap_or("null"));
    out.push_str("},\"id\":\"");
    out.push_str(id.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    out.push('"');
    if kind != EventType::TrackingLog {
        // Segment's fields; tracking-log events keep the legacy shape exactly.
        out.push_str(",\"type\":\"");
        out.push_str(kind.as_str());
        out.push('"');
        for (key, literal) in [("category", category), ("referrer", referrer)] {
            if let Some(literal) = literal {
                out.push_str(",\"");
                out.push_str(key);
                out.push_str("\":");
                out.push_str(literal);
            }
        }
        for (key, value) in [("anonymous_id", anonymous_id), ("declared_user_id", declared_user_id)] {
            if let Some(value) = value {
                out.push_str(",\"");
                out.push_str(key);
                out.push_str("\":");
                out.push_str(&value);
            }
        }
        if let Some(ts) = client_timestamp {
            out.push_str(",\"client_timestamp\":");
            push_str_literal(&mut out, &ts);
        }
    }
    out.push('}');
    Ok(EventText { id: Some(id), id_given, json: out })
}

/// `"course_id":…,"org_id":…,"enterprise_uuid":…` for a course found in the page
/// (empty strings without one, as the LMS writes them).
pub(crate) fn write_course(out: &mut String, course: Option<&event_model::course::CourseRef>) {
    out.push_str("\"course_id\":");
    push_str_literal(out, course.map_or("", |c| c.course_id.as_str()));
    out.push_str(",\"org_id\":");
    match course.map_or(Some(""), |c| c.org_id.as_deref()) {
        Some(org) => push_str_literal(out, org),
        None => out.push_str("null"),
    }
    out.push_str(",\"enterprise_uuid\":\"\"");
}

/// The id of an event written as the SDK writes them: `{"id":"<uuid>",…`.
fn sdk_id(bytes: &[u8]) -> Option<Uuid> {
    let rest = bytes.strip_prefix(b"{\"id\":\"")?;
    Uuid::try_parse_ascii(rest.get(..36)?).ok()
}

/// The members of a batch event (an object), each value checked; `data` by
/// [`IngestRules::check_data_prefix`] (checked and scrubbed in the one pass that finds
/// its end), and when that refuses it, passed by its brackets so the rest is read.
/// With `whole`, `text` is the event; without, the event is at its start and the rest
/// follows. Returns the members and the event's length.
fn members<'t>(text: &'t str, rules: &IngestRules, whole: bool) -> Result<(Members<'t>, usize), json::Invalid> {
    let mut m = Members::default();
    let mut s = Scanner::containing(text, Dialect::Strict);
    s.object(1, &mut |s, key: StrSpan, depth| {
        let name = key.decode(s.src());
        if name == "data" {
            let mut lenient = Lenient { b: s.src().as_bytes(), i: s.pos() };
            lenient.ws();
            let start = lenient.i;
            if lenient.peek() == Some(b'{') {
                let checked = rules.check_data_prefix(json::tail(text, start), Dialect::Strict);
                let end = checked.as_ref().ok().map(|(_, len)| start + len);
                m.checked_data = Some(checked.map(|(data, _)| data));
                if let Some(end) = end {
                    s.skip_to(end);
                    m.data = Some((start, end));
                    return Ok(());
                }
            }
            let span = lenient.skip_value().ok_or(json::Invalid::Syntax { at: lenient.i })?;
            s.skip_to(span.1);
            m.data = Some(span);
            return Ok(());
        }
        let span = s.value(depth)?;
        let slot = match name.as_ref() {
            "id" => &mut m.id,
            "type" => &mut m.kind,
            "name" => &mut m.name,
            "timestamp" => &mut m.timestamp,
            "page" => &mut m.page,
            "referrer" => &mut m.referrer,
            "category" => &mut m.category,
            "user_id" => &mut m.user_id,
            "anonymous_id" => &mut m.anonymous_id,
            _ => return Ok(()),
        };
        *slot = Some(span);
        Ok(())
    })?;
    if !whole {
        Ok((m, s.pos()))
    } else if s.at_end() {
        Ok((m, text.len()))
    } else {
        Err(json::Invalid::Syntax { at: s.pos() })
    }
}

/// A checked string literal's value.
fn string_of(literal: &str) -> Option<Cow<'_, str>> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    Some(if inner.contains('\\') { Cow::Owned(json::decode_lossy(inner)) } else { Cow::Borrowed(inner) })
}

/// A member that must be a string (or absent): its literal.
fn optional_string<'t>(value: Option<&'t str>, field: &'static str) -> Result<Option<&'t str>, Rejection> {
    match value {
        None => Ok(None),
        Some(v) if v.starts_with('"') => Ok(Some(v)),
        Some(_) => Err(Rejection::new("invalid_field", format!("`{field}` must be a string"))),
    }
}

/// A user or anonymous id: a string literal, or a number written as a string.
fn scalar_string<'t>(value: Option<&'t str>, field: &'static str) -> Result<Option<Cow<'t, str>>, Rejection> {
    match value {
        None => Ok(None),
        Some(v) if v.starts_with('"') => Ok(Some(Cow::Borrowed(v))),
        Some(v) if v.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(Some(Cow::Owned(format!("\"{v}\"")))),
        Some(_) => Err(Rejection::new("invalid_field", format!("`{field}` must be a string or a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;
    use event_model::routing::Counters;

    const NOW: &str = "2026-11-22T10:01:02.200000+00:00";

    fn rules() -> IngestRules {
        IngestRules::new(event_model::processors::NameMode::Warn, vec![], 50_000, Counters::new())
    }

    fn split(body: &str) -> Result<Vec<String>, BodyError> {
        Ok(split_envelope(body.as_bytes(), 10)?.into_iter().map(|(a, b)| body[a..b].to_owned()).collect())
    }

    fn read(item: &str) -> Result<event_model::Value, Refused> {
        let e = read_event(item.as_bytes(), (0, item.len()), &rules(), NOW, &mut LastPage::default())?;
        Ok(serde_json::from_str(&e.json).unwrap_or(event_model::Value::String(e.json)))
    }

    fn reason(item: &str) -> &'static str {
        read(item).unwrap_err().why.reason
    }

    #[test]
    fn each_event_gets_the_course_of_its_own_page() {
        let mut pages = LastPage::default();
        let course_of = |page: Option<&str>, pages: &mut LastPage| {
            let mut out = String::new();
            pages.write_course(page, &mut out);
            out
        };
        let a = Some(r#""https://lms.example.com/courses/course-v1:edX+A+1/courseware""#);
        let b = Some(r#""https://lms.example.com/dashboard""#);
        let with_a = course_of(a, &mut pages);
        assert!(with_a.contains(r#""course_id":"course-v1:edX+A+1","org_id":"edX""#), "{with_a}");
        let without = course_of(b, &mut pages);
        assert!(without.contains(r#""course_id":"""#), "{without}");
        assert_eq!(course_of(a, &mut pages), with_a);
        assert_eq!(course_of(None, &mut pages), without);
        assert_eq!(course_of(a, &mut LastPage::default()), with_a);
    }

    #[test]
    fn envelopes() {
        assert_eq!(split(r#"{"sent_at":"x","events":[{}, 1 ,"a"]}"#).unwrap(), ["{}", "1", "\"a\""]);
        assert_eq!(split(r#" {"events":[]} "#).unwrap(), Vec::<String>::new());
        // Events that are not JSON are still found by their brackets.
        assert_eq!(
            split(r#"{"events":[{"data":{"s":"\ud83d"}},{"x":NaN,"y":[1,]}]}"#).unwrap(),
            [r#"{"data":{"s":"\ud83d"}}"#, r#"{"x":NaN,"y":[1,]}"#]
        );
        // Brackets that do not balance leave no envelope to read.
        assert!(matches!(split(r#"{"events":[{"y":[1,}]}"#), Err(BodyError::Json { .. })));
        assert_eq!(split("[]"), Err(BodyError::Shape));
        assert_eq!(split("x"), Err(BodyError::Json { at: 0 }));
        assert_eq!(split(r#"{"events":{}}"#), Err(BodyError::Shape));
        assert_eq!(split(r#"{"sent_at":1}"#), Err(BodyError::Shape));
        assert!(matches!(split(r#"{"events":[{]}"#), Err(BodyError::Json { .. })));
        assert!(matches!(split(r#"{"events":[1] "#), Err(BodyError::Json { .. })));
        assert!(matches!(split(r#"{"events":["unterminated]}"#), Err(BodyError::Json { .. })));
        let many = format!(r#"{{"events":[{}]}}"#, ["{}"; 12].join(","));
        assert_eq!(split(&many), Err(BodyError::TooManyEvents { count: 12, limit: 10 }));
    }

    #[test]
    fn tracking_log_event() {
        let id = "0192f3a0-7b1c-7d2e-8f3a-0123456789ab";
        let e = read(&format!(
            r#"{{"id":"{id}","type":"tracking_log","name":"edx.ui.lms.link_clicked","timestamp":"2026-11-22T10:01:02.100Z","data":{{"a":1,"password":"x"}},"page":"https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware","user_id":"999"}}"#
        ))
        .unwrap();
        assert_eq!(
            e,
            json!({"name": "edx.ui.lms.link_clicked", "timestamp": NOW, "data": {"a": 1, "password": "********"},
                   "context": {"course_id": "course-v1:edX+DemoX+Demo", "org_id": "edX", "enterprise_uuid": "", "event_source": "browser",
                               "page": "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/courseware"},
                   "id": id})
        );
    }

    #[test]
    fn segment_events_keep_their_fields() {
        let e = read(r#"{"type":"track","name":"edx.bi.x.clicked","user_id":999,"anonymous_id":"anon","timestamp":"2026-11-22T10:01:02.1Z","category":"c"}"#).unwrap();
        assert_eq!(e["client_timestamp"], json!("2026-11-22T10:01:02.100000+00:00"));
        assert_eq!(e["type"], json!("track"));
        assert_eq!(e["declared_user_id"], json!("999"));
        assert_eq!(e["category"], json!("c"));
        assert_eq!(Uuid::parse_str(e["id"].as_str().unwrap()).unwrap().get_version_num(), 7, "minted when missing");
        assert_eq!(read(r#"{"type":"page","category":"learning"}"#).unwrap()["name"], json!("page"));
    }

    #[test]
    fn lone_surrogates_pass_as_they_were_written() {
        let body = br#"{"name":"a.b.c","data":{"s":"\ud83d"}}"#;
        let e = read_event(body, (0, body.len()), &rules(), NOW, &mut LastPage::default()).unwrap();
        assert!(e.json.contains(r#""data":{"s":"\ud83d"}"#), "{}", e.json);
    }

    /// An outcome with a minted id (a fresh UUID each time) made comparable.
    fn without_minted_id(outcome: Result<EventText, Refused>) -> Result<EventText, Refused> {
        outcome.map(|mut e| {
            if let Some(id) = e.id.filter(|_| !e.id_given) {
                e.json = e.json.replace(&id.to_string(), "minted");
                e.id = None;
            }
            e
        })
    }

    /// Batch bodies with events good and bad in every way the readers tell apart;
    /// `\u{1}` stands for a byte that is not UTF-8.
    fn batch_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let item = prop::sample::select(vec![
            r#"{"id":"0192f3a0-7b1c-7d2e-8f3a-0123456789ab","type":"tracking_log","name":"a.b.c","data":{"password":"x","n":[1,2.5]},"page":"https://lms.example.com/courses/course-v1:edX+DemoX+Demo/x"}"#,
            r#"{"name":"a.b.c", "data" : { "k" : "v" } , "page" : "p" }"#,
            r#"{"type":"track","name":"edx.bi.x","user_id":7,"timestamp":"2026-11-22T10:01:02.1Z","data":{}}"#,
            r#"{"name":"a.b.c","data":{"x":NaN},"id":"nope"}"#,
            r#"{"name":"a.b.c","data":{"x":NaN}}"#,
            r#"{"name":"a.b.c","data":[1]}"#,
            r#"{"data":{}}"#,
            r#"{"name":"a.b.c","data":{"s":"\ud83d\u00e9","t":"café"}}"#,
            r#"{"name":"a.b.c","data":{"y":1},"data":{"x":NaN}}"#,
            r#"{"name":"a.b.c","page":5}"#,
            "{\"name\":\"a.b.c\",\"data\":{\"s\":\"tab\tin\"}}",
            r#"{"name":"a.b.c",}"#,
            r#"{"name":"a.b.c""#,
            "3",
            r#""x""#,
            "[1,{}]",
            "null",
            "{\"name\":\"a\u{1}\"}",
        ]);
        let deep = Just(format!(r#"{{"name":"a.b.c","data":{}1{}}}"#, "{\"a\":".repeat(65), "}".repeat(65)));
        let big = Just(format!(r#"{{"name":"a.b.c","data":{{"s":"{}"}}}}"#, "x".repeat(300)));
        let ws = prop::sample::select(vec!["", "", " ", "\n\t"]);
        let item = prop_oneof![8 => item.prop_map(str::to_owned), 1 => deep, 1 => big];
        (prop::collection::vec((ws.clone(), item, ws), 0..14), prop::bool::ANY).prop_map(|(items, sent_at_last)| {
            let events = items.iter().map(|(a, item, b)| format!("{a}{item}{b}")).collect::<Vec<_>>().join(",");
            let body = if sent_at_last {
                format!(r#"{{"events":[{events}],"sent_at":"x"}}"#)
            } else {
                format!(r#"{{"sent_at":"x","events":[{events}]}}"#)
            };
            body.into_bytes().into_iter().map(|b| if b == 1 { 0xff } else { b }).collect()
        })
    }

    proptest::proptest! {
        #[test]
        fn one_pass_reads_what_split_then_read_reads(body in batch_body()) {
            let mut rules = rules();
            rules.max_event_bytes = 300;
            let one_pass = read_batch(&body, 10, &rules, NOW, &mut LastPage::default())
                .map(|outcomes| outcomes.into_iter().map(without_minted_id).collect::<Vec<_>>());
            let split = split_envelope(&body, 10).map(|spans| {
                let mut pages = LastPage::default();
                spans.into_iter().map(|span| without_minted_id(read_event(&body, span, &rules, NOW, &mut pages))).collect::<Vec<_>>()
            });
            proptest::prop_assert_eq!(one_pass, split);
        }
    }

    #[test]
    fn data_is_checked_where_it_is_found() {
        let raw = |item: &str| read_event(item.as_bytes(), (0, item.len()), &rules(), NOW, &mut LastPage::default());
        // Spaced data between members: scrubbed and compacted, and what follows it read.
        let item = r#"{"name":"a.b.c", "data" : { "password" : "x", "n" : [1, 2] } , "page":"https://x.example/"}"#;
        assert!(raw(item).unwrap().json.contains(r#""data":{"password":"********","n":[1,2]},"#));
        assert_eq!(read(item).unwrap()["context"]["page"], json!("https://x.example/"));
        // Refused data costs its event, and the problems keep their order: an id that is
        // not a UUID is reported before it, though it comes after it.
        assert_eq!(reason(r#"{"name":"a.b.c","data":{"x":NaN},"id":"nope"}"#), "invalid_id");
        let refused = raw(r#"{"name":"a.b.c","data":{"x":NaN},"page":"p"}"#).unwrap_err();
        assert_eq!((refused.why.reason, refused.why.detail.as_str()), ("invalid_json", "`data` is not valid JSON near byte 5"));
        // A repeated `data` member: the last one counts, as before.
        assert_eq!(read(r#"{"name":"a.b.c","data":{"x":NaN},"data":{"y":1}}"#).unwrap()["data"], json!({"y": 1}));
        assert_eq!(reason(r#"{"name":"a.b.c","data":{"y":1},"data":{"x":NaN}}"#), "invalid_json");
        // Text after the event's object is still refused.
        assert_eq!(reason(r#"{"name":"a.b.c","data":{"y":1}} x"#), "invalid_json");
    }

    #[test]
    fn each_problem_has_its_reason() {
        assert_eq!(reason("3"), "invalid_event");
        assert_eq!(reason("[1,"), "invalid_json");
        assert_eq!(reason(r#"{"type":"teleport","name":"a.b.c"}"#), "invalid_type");
        assert_eq!(reason(r#"{"name":"a.b.c","id":"nope"}"#), "invalid_id");
        assert_eq!(reason(r#"{"data":{}}"#), "missing_name");
        assert_eq!(reason(r#"{"name":"a.b.c","data":[1]}"#), "invalid_data");
        assert_eq!(reason(r#"{"type":"track","name":"a.b.c","timestamp":"later"}"#), "invalid_timestamp");
        assert_eq!(reason(r#"{"name":"a.b.c","page":5}"#), "invalid_field");
        assert_eq!(reason(r#"{"name":"a.b.c","data":{"x":NaN}}"#), "invalid_json");
        assert_eq!(reason("{\"name\":\"a.b.c\",\"data\":{\"x\":\"\u{1}\"}}"), "invalid_json");
        let deep = format!(r#"{{"name":"a.b.c","data":{}1{}}}"#, "{\"a\":".repeat(65), "}".repeat(65));
        assert_eq!(reason(&deep), "too_deep");
        let at_limit = format!(r#"{{"name":"a.b.c","data":{}1{}}}"#, "{\"a\":".repeat(64), "}".repeat(64));
        assert!(read(&at_limit).is_ok());
        let big = format!(r#"{{"name":"a.b.c","data":{{"s":"{}"}}}}"#, "x".repeat(60_000));
        assert_eq!(reason(&big), "size_limit");
        let body = b"{\"id\":\"0192f3a0-7b1c-7d2e-8f3a-0123456789ab\",\"name\":\"a\xff\"}";
        let refused = read_event(body, (0, body.len()), &rules(), NOW, &mut LastPage::default()).unwrap_err();
        assert_eq!(
            (refused.why.reason, refused.id.map(|u| u.to_string())),
            ("invalid_utf8", Some("0192f3a0-7b1c-7d2e-8f3a-0123456789ab".into()))
        );
    }
}

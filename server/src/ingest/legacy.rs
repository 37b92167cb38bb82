//! `GET|POST /event`: the fields of the LMS's tracking endpoint made into an event as
//! its `user_track` view makes it.
//!
//! `event` is decoded as Python's `json.loads` decodes it (`NaN` and infinities
//! included; an integer of more than 4,300 digits, which Python refuses, keeps the whole
//! value a raw string) and kept as the raw string when it is not JSON; then Python's
//! `data or {}` applies (`""`, `0`, `false`, `[]`, `{}`, `null` and an absent field
//! all become `{}`). Where the LMS answers 500 (an `event` of `5` or `true`, which its
//! `'username' in data` cannot take), the request is refused with a reason instead.

use event_model::course::{course_from_url, parse_course_key, CourseRef};
use event_model::processor::Rejection;
use event_model::rules::json::{self, push_str_literal, Dialect};
use uuid::Uuid;

use super::{EventText, IngestRules};

/// Python refuses to read integers with more digits than this (`sys.int_info`).
pub const PYTHON_MAX_INT_DIGITS: usize = 4300;

/// The fields of the legacy `/event` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct LegacyFields {
    pub event_type: Option<String>,
    pub event: Option<String>,
    pub page: Option<String>,
    pub courserun_key: Option<String>,
}

impl LegacyFields {
    /// The fields the LMS's view reads, each the last value sent.
    pub fn from_form(form: &super::form::FormFields) -> Self {
        let field = |name: &str| form.last(name).map(str::to_owned);
        LegacyFields { event_type: field("event_type"), event: field("event"), page: field("page"), courserun_key: field("courserun_key") }
    }
}

/// The event of a legacy `/event` request; `received` is the server's time (the
/// event time in the tracking log, as in the LMS).
pub fn read_event(fields: &LegacyFields, rules: &IngestRules, received: &str) -> Result<EventText, Rejection> {
    let name = fields.event_type.as_deref().filter(|n| !n.is_empty()).unwrap_or(event_model::UNKNOWN_EVENT_NAME);
    if let Some(problem) = event_model::rules::event::name_problem(event_model::rules::event::EventType::TrackingLog, Some(name)) {
        rules.judge_name(problem)?;
    }
    let data = data_of(fields.event.as_deref())?;
    let data = match data {
        Data::Json(text) => rules.check_data(&text, Dialect::Python)?.into_owned(),
        Data::Raw(raw) => {
            let mut lit = String::with_capacity(raw.len() + 2);
            push_str_literal(&mut lit, raw);
            lit
        }
        Data::Empty => "{}".to_owned(),
    };
    // `courserun_key`, when given, decides alone (an invalid key gives no course, as in
    // the LMS); otherwise the page URL does.
    let page = fields.page.as_deref().unwrap_or("");
    let course: Option<CourseRef> = match fields.courserun_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => parse_course_key(key),
        None => course_from_url(page),
    };
    let id = Uuid::now_v7();
    let mut out = String::with_capacity(data.len() + page.len() + 200);
    out.push_str("{\"name\":");
    push_str_literal(&mut out, name);
    out.push_str(",\"timestamp\":\"");
    out.push_str(received);
    out.push_str("\",\"data\":");
    out.push_str(&data);
    out.push_str(",\"context\":{");
    super::batch::write_course(&mut out, course.as_ref());
    out.push_str(",\"event_source\":\"browser\",\"page\":");
    push_str_literal(&mut out, page);
    out.push_str("},\"id\":\"");
    out.push_str(id.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    out.push_str("\"}");
    // Minted here: not de-duplicated (see `EventText::id_given`).
    Ok(EventText { id: Some(id), id_given: false, json: out })
}

/// The length of the tracking-log line of an event stored with `context`: what the
/// LMS's writer measures against its limit (`TRACK_MAX_EVENT`).
pub fn line_len(context: &str, event: &str) -> usize {
    let mut record = crate::record::RecordBuilder::new(context, event.len());
    record.push(event);
    let record = record.finish();
    match crate::record::views(&record) {
        Ok(mut views) if views.len() == 1 => {
            let mut view = views.remove(0);
            event_model::processors::LegacyFieldMapping::map_view(&mut view);
            let mut line = String::with_capacity(2 * record.len());
            event_model::legacy::write_view(&view, &mut line);
            line.len()
        }
        _ => usize::MAX,
    }
}

/// The line's length when it is over `limit`, else `None`. Most events are far below
/// any limit, which [`LINE_GROWTH`] shows without writing the line.
pub fn line_over(context: &str, event: &str, limit: usize) -> Option<usize> {
    let bound = (context.len() + event.len()).saturating_mul(LINE_GROWTH).saturating_add(LINE_ADDED);
    if bound <= limit {
        return None;
    }
    Some(line_len(context, event)).filter(|&len| len > limit)
}

/// At most how many bytes of the line one byte of stored event or context becomes:
/// Python's escapes (`é` → `\u00e9`, 3×; in the `event` string of a browser event, 3.5×),
/// its floats (`1e15` → `1000000000000000.0`, 4.5×), and the name written twice (as
/// `name` and `event_type`).
const LINE_GROWTH: usize = 8;
/// The members the mapping adds (`username`, `session`, …, `event_source`) and their
/// empty values, with room to spare.
const LINE_ADDED: usize = 2048;

/// What `event` is once Python has read it.
#[derive(Debug, PartialEq, Eq)]
enum Data<'a> {
    /// JSON text that Python's `json.loads` reads, and that is not falsy.
    Json(std::borrow::Cow<'a, str>),
    /// Not JSON to Python: kept as the string it is.
    Raw(&'a str),
    /// Absent, or falsy once read: `{}`.
    Empty,
}

fn data_of(raw: Option<&str>) -> Result<Data<'_>, Rejection> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(Data::Empty) };
    match json::validate(raw, Dialect::Python) {
        // Python reads it (up to its recursion limit); this server keeps its limit.
        Err(json::Invalid::TooDeep) => {
            return Err(Rejection::new("too_deep", format!("`event` nests deeper than {}", json::MAX_DEPTH)));
        }
        Err(_) => return Ok(Data::Raw(raw)),
        Ok(()) if has_long_integer(raw) => return Ok(Data::Raw(raw)),
        Ok(()) => {}
    }
    let text = json::compact(raw);
    let value = event_model::Json::from_checked(event_model::Text::from(text.as_ref()));
    if !value.is_truthy() {
        return Ok(Data::Empty);
    }
    use event_model::text::Kind;
    match value.kind() {
        // The LMS's `'username' in data` raises TypeError on these: a 500 there.
        Kind::Number | Kind::Bool => Err(Rejection::new(
            "invalid_event",
            "`event` must be a JSON object, array or string (the LMS fails on a bare number or boolean)",
        )),
        Kind::String | Kind::Array if mentions_username(&value) => Err(Rejection::new(
            "invalid_event",
            "`event` that holds \"username\" without \"user_id\" must be an object (the LMS fails on it)",
        )),
        _ => Ok(Data::Json(text)),
    }
}

/// Whether the LMS's `_add_user_id_for_username` would call `.get` on a string or a
/// list (it does when `'username' in data and 'user_id' not in data`).
fn mentions_username(value: &event_model::Json) -> bool {
    match value.kind() {
        event_model::text::Kind::String => {
            let s = value.as_str().unwrap_or_default();
            s.contains("username") && !s.contains("user_id")
        }
        _ => {
            let items = value.to_value();
            let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
            let has = |word: &str| items.iter().any(|v| v.as_str() == Some(word));
            has("username") && !has("user_id")
        }
    }
}

/// Whether checked JSON text holds an integer Python refuses to read.
fn has_long_integer(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    i = json::find_special(bytes, i);
                    match bytes.get(i) {
                        Some(b'\\') => i += 2,
                        _ => break,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes.get(i).is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    i += 1;
                }
                let token = &bytes[start..i];
                let integer = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                if integer && token.iter().filter(|b| b.is_ascii_digit()).count() > PYTHON_MAX_INT_DIGITS {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_model::json;
    use event_model::routing::Counters;

    fn rules() -> IngestRules {
        IngestRules::new(event_model::processors::NameMode::Warn, vec![], 50_000, Counters::new())
    }

    fn event(event: Option<&str>) -> Result<event_model::Value, Rejection> {
        let fields = LegacyFields { event_type: Some("seq_goto".into()), event: event.map(str::to_owned), page: None, courserun_key: None };
        let e = read_event(&fields, &rules(), "2026-11-22T10:01:02+00:00")?;
        Ok(serde_json::from_str::<event_model::Value>(&e.json)
            .map(|v| v["data"].clone())
            .unwrap_or_else(|_| event_model::Value::String(e.json)))
    }

    #[test]
    fn the_line_never_outgrows_its_bound() {
        let context = r#"{"session":"","user_id":null,"username":"\u00e9\u00e9","ip":"1","host":"","agent":"","path":"/event","referer":"","accept_language":"","client_id":null,"course_id":"","org_id":"","enterprise_uuid":""}"#;
        let long_name = "\u{e9}".repeat(120);
        let names = ["x", "\u{e9}\u{e9}\u{e9}\u{e9}", "😀😀", "\u{7f}\u{7f}", &long_name];
        let floats = format!("[{}1]", "1e15,".repeat(3000));
        let accents = format!(r#"{{"{}":"{}"}}"#, "é".repeat(500), "😀".repeat(1000));
        let events = [
            "[1e15,9e15,1e9,1E5,-0,5e-324]",
            r#"{"é":"éé","q":"\"\\","😀":["😀"]}"#,
            "{\"a\":{\"b\":[{},{},[]]}}",
            "\"\\u0000\\u0001\"",
            &floats,
            &accents,
        ];
        let mut most_growth = 0.0f64;
        for name in names {
            for data in events {
                let fields =
                    LegacyFields { event_type: Some(name.into()), event: Some(data.into()), page: Some("é".into()), courserun_key: None };
                let event = read_event(&fields, &rules(), "2026-11-22T10:01:02+00:00").unwrap().json;
                let len = line_len(context, &event);
                assert!(len < usize::MAX);
                assert!(len <= (context.len() + event.len()) * LINE_GROWTH + LINE_ADDED, "{name} {data}: {len}");
                most_growth = most_growth.max(len as f64 / (context.len() + event.len()) as f64);
                assert_eq!(line_over(context, &event, len), None);
                assert_eq!(line_over(context, &event, len - 1), Some(len), "measured exactly near the limit");
            }
        }
        // The long inputs grow about half as much as the bound allows: it is not slack.
        assert!(most_growth > 3.5, "{most_growth}");
    }

    #[test]
    fn python_data_or_empty() {
        for falsy in [None, Some(""), Some("0"), Some("false"), Some("[]"), Some("{}"), Some("null"), Some(" 0.0 ")] {
            assert_eq!(event(falsy).unwrap(), json!({}), "{falsy:?}");
        }
        assert_eq!(event(Some(r#"{"old": 1}"#)).unwrap(), json!({"old": 1}));
        assert_eq!(event(Some("[1, 2]")).unwrap(), json!([1, 2]));
        assert_eq!(event(Some(r#""text""#)).unwrap(), json!("text"));
        assert_eq!(event(Some("not json {")).unwrap(), json!("not json {"));
    }

    #[test]
    fn what_the_lms_answers_500_for_is_refused() {
        for bad in ["5", "5.5", "true", r#""my username""#, r#"["username"]"#] {
            assert_eq!(event(Some(bad)).unwrap_err().reason, "invalid_event", "{bad}");
        }
        assert!(event(Some(r#"["username", "user_id"]"#)).is_ok());
        assert!(event(Some(r#"{"username": "bob"}"#)).is_ok());
    }

    #[test]
    fn python_numbers() {
        let fields = |e: &str| LegacyFields { event_type: Some("x".into()), event: Some(e.into()), ..Default::default() };
        let text = |e: &str| read_event(&fields(e), &rules(), "t").unwrap().json;
        assert!(text("[NaN, Infinity, -Infinity, 1e400]").contains(r#""data":[NaN,Infinity,-Infinity,1e400]"#));
        let long = format!("[{}]", "9".repeat(4301));
        assert!(text(&long).contains(&format!(r#""data":"[{}]""#, "9".repeat(4301))), "kept a raw string");
        let ok = format!("[{}]", "9".repeat(4300));
        assert!(text(&ok).contains(&format!(r#""data":[{}]"#, "9".repeat(4300))));
        assert!(!has_long_integer(&format!("[\"{}\", 1.{}]", "9".repeat(5000), "9".repeat(5000))));
    }
}

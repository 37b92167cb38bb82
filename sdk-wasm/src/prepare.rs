//! An event as the SDK queues it, or why it refuses to: the browser's half of the
//! limits in `event_model::rules` (name, data, size), on plain values — no browser
//! call — so the rules are tested natively and against the server.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use event_model::rules::event::{name_problem, size_problem};

use crate::config::NameMode;
use crate::event::{rfc3339_ms, to_json, Kind, Parts};
use crate::json::prepare_data;

/// One call's values, as the calling path captured them.
pub struct Draft<'a> {
    pub kind: Kind,
    pub name: Option<&'a str>,
    pub category: Option<&'a str>,
    /// `JSON.stringify(properties)`; `None` for `undefined`.
    pub data: Option<&'a str>,
    /// Snake-case the keys (tracking-log events from `sendTrackingLogEvent`).
    pub snake: bool,
    pub time_ms: u64,
    pub page: &'a str,
    pub referrer: &'a str,
    pub user_id: Option<&'a str>,
    pub anonymous_id: &'a str,
    /// The event id (UUID v7).
    pub id: &'a str,
}

/// The rules that depend on configuration.
pub struct Limits<'a> {
    pub name_mode: NameMode,
    pub sensitive_keys: &'a [String],
    pub max_event_bytes: usize,
}

/// Why an event is not queued (each is a counted drop reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A tracking-log or track event without a name, or a bad name in `reject` mode.
    InvalidName,
    /// Data the server would refuse: not JSON, nested deeper than the limit.
    InvalidData,
    /// Larger than `max_event_bytes` as sent.
    SizeLimit,
}

/// The prepared event: its JSON, and whether its name earned a warning.
pub struct Prepared {
    pub json: String,
    pub name_warning: bool,
}

/// Applies the shared rules to a call: the event's JSON as it is queued and sent.
pub fn prepare(d: &Draft<'_>, limits: &Limits<'_>, lower: &dyn Fn(&[u16]) -> Vec<u16>) -> Result<Prepared, Refused> {
    let name = d.name.filter(|n| !n.is_empty());
    let mut name_warning = false;
    if let Some(problem) = name_problem(d.kind, name) {
        // The server requires a name for these, whatever the validation mode.
        if name.is_none() && d.kind.needs_name() {
            return Err(Refused::InvalidName);
        }
        match limits.name_mode {
            NameMode::Off => {}
            NameMode::Warn => name_warning = true,
            NameMode::Reject => return Err(Refused::InvalidName),
        }
        let _ = problem;
    }
    // `data` is an object on the wire: none is `{}`, and anything else (an array,
    // the string a legacy page logs) is kept as `{"data": value}`.
    let raw: Cow<'_, str> = match d.data {
        None | Some("null") => Cow::Borrowed("{}"),
        Some(j) if !j.starts_with('{') => {
            let mut w = String::with_capacity(j.len() + 9);
            w.push_str("{\"data\":");
            w.push_str(j);
            w.push('}');
            Cow::Owned(w)
        }
        Some(j) => Cow::Borrowed(j),
    };
    let data = prepare_data(&raw, d.snake, limits.sensitive_keys, lower).map_err(|_| Refused::InvalidData)?;
    let timestamp = rfc3339_ms(d.time_ms);
    let json = to_json(&Parts {
        id: d.id,
        kind: d.kind,
        name: if d.kind == Kind::Identify { None } else { name },
        category: d.category,
        timestamp: &timestamp,
        data: &data,
        page: d.page,
        referrer: d.referrer,
        user_id: d.user_id,
        anonymous_id: d.anonymous_id,
    });
    if size_problem(json.len(), limits.max_event_bytes).is_some() {
        return Err(Refused::SizeLimit);
    }
    Ok(Prepared { json, name_warning })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn lower(w: &[u16]) -> Vec<u16> {
        String::from_utf16_lossy(w).to_lowercase().encode_utf16().collect()
    }

    fn draft<'a>(kind: Kind, name: Option<&'a str>, data: Option<&'a str>) -> Draft<'a> {
        Draft {
            kind,
            name,
            category: None,
            data,
            snake: kind == Kind::TrackingLog,
            time_ms: 1_795_341_662_123,
            page: "https://x/",
            referrer: "",
            user_id: None,
            anonymous_id: "a",
            id: "01901234-5678-7fff-bfff-ffffffffffff",
        }
    }

    const LIMITS: Limits<'static> = Limits { name_mode: NameMode::Warn, sensitive_keys: &[], max_event_bytes: 50_000 };

    #[test]
    fn names() {
        assert_eq!(prepare(&draft(Kind::Track, None, None), &LIMITS, &lower).err(), Some(Refused::InvalidName));
        assert!(prepare(&draft(Kind::Page, None, None), &LIMITS, &lower).is_ok());
        assert!(prepare(&draft(Kind::TrackingLog, Some("seq_goto"), None), &LIMITS, &lower).is_ok_and(|p| !p.name_warning));
        assert!(prepare(&draft(Kind::Track, Some("seq_goto"), None), &LIMITS, &lower).is_ok_and(|p| p.name_warning));
        let reject = Limits { name_mode: NameMode::Reject, ..LIMITS };
        assert_eq!(prepare(&draft(Kind::Track, Some("Bad Name"), None), &reject, &lower).err(), Some(Refused::InvalidName));
    }

    #[test]
    fn data_and_size() {
        let p = prepare(&draft(Kind::TrackingLog, Some("a.b.c"), Some(r#"{"myKey":"\ud83d"}"#)), &LIMITS, &lower).unwrap();
        assert!(p.json.contains(r#""data":{"my_key":"\ud83d"}"#), "{}", p.json);
        let wrapped = prepare(&draft(Kind::TrackingLog, Some("a.b.c"), Some("[1]")), &LIMITS, &lower).unwrap();
        assert!(wrapped.json.contains(r#""data":{"data":[1]}"#));
        let deep = "[".repeat(80) + &"]".repeat(80);
        assert_eq!(prepare(&draft(Kind::Track, Some("a.b.c"), Some(&deep)), &LIMITS, &lower).err(), Some(Refused::InvalidData));
        let big = "{\"s\":\"".to_string() + &"x".repeat(60_000) + "\"}";
        assert_eq!(prepare(&draft(Kind::Track, Some("a.b.c"), Some(&big)), &LIMITS, &lower).err(), Some(Refused::SizeLimit));
    }
}

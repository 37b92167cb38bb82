//! `assert_event_matches` with the four tolerances of the Open edX original.

use std::collections::BTreeSet;

use serde_json::Value;

/// Which differences between an expected and an actual event are tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerate {
    /// A string `event` / `data` payload is JSON-decoded before comparing, on both sides.
    pub string_payload: bool,
    /// Extra keys at the top level of the actual event.
    pub root_extra_fields: bool,
    /// Extra keys directly inside `context`.
    pub context_extra_fields: bool,
    /// Extra keys directly inside the payload (`event` or `data`).
    pub payload_extra_fields: bool,
}

impl Default for Tolerate {
    /// String payloads, root and context extras: what most tests want.
    fn default() -> Self {
        Tolerate { string_payload: true, root_extra_fields: true, context_extra_fields: true, payload_extra_fields: false }
    }
}

impl Tolerate {
    /// Every tolerance.
    pub fn lenient() -> Self {
        Tolerate { payload_extra_fields: true, ..Self::default() }
    }

    /// No tolerance: the events must be equal.
    pub fn strict() -> Self {
        Tolerate { string_payload: false, root_extra_fields: false, context_extra_fields: false, payload_extra_fields: false }
    }

    fn allows_extra(&self, path: &[String]) -> bool {
        match path {
            [] => self.root_extra_fields,
            [one] if one == "context" => self.context_extra_fields,
            [one] if one == "event" || one == "data" => self.payload_extra_fields,
            _ => false,
        }
    }

    fn names(&self) -> Vec<&'static str> {
        let flags = [
            (self.string_payload, "string_payload"),
            (self.root_extra_fields, "root_extra_fields"),
            (self.context_extra_fields, "context_extra_fields"),
            (self.payload_extra_fields, "payload_extra_fields"),
        ];
        flags.into_iter().filter(|(on, _)| *on).map(|(_, name)| name).collect()
    }
}

/// Decodes a string `event` (or else `data`) payload, as the original does.
fn parse_payload(event: &Value) -> Value {
    let Value::Object(map) = event else { return event.clone() };
    let key = if map.contains_key("event") { "event" } else { "data" };
    match map.get(key) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(parsed) => {
                let mut copy = map.clone();
                copy.insert(key.to_owned(), parsed);
                Value::Object(copy)
            }
            Err(_) => event.clone(),
        },
        _ => event.clone(),
    }
}

fn compare(expected: &Value, actual: &Value, tolerate: &Tolerate, path: &mut Vec<String>, out: &mut BTreeSet<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, e_value) in e {
                path.push(key.clone());
                match a.get(key) {
                    None => {
                        out.insert(format!("{}: not found in actual", path.join(".")));
                    }
                    Some(a_value) => compare(e_value, a_value, tolerate, path, out),
                }
                path.pop();
            }
            if !tolerate.allows_extra(path) {
                for key in a.keys().filter(|k| !e.contains_key(*k)) {
                    path.push(key.clone());
                    out.insert(format!("{}: only defined in actual", path.join(".")));
                    path.pop();
                }
            }
        }
        _ if expected != actual => {
            out.insert(format!("{}: {} != {} (expected != actual)", path.join("."), expected, actual));
        }
        _ => {}
    }
}

/// Every difference, as sorted lines with dotted paths, e.g.
/// `context.course_id: "a" != "b" (expected != actual)`.
pub fn event_differences(expected: &Value, actual: &Value, tolerate: Tolerate) -> Vec<String> {
    let (expected, actual) =
        if tolerate.string_payload { (parse_payload(expected), parse_payload(actual)) } else { (expected.clone(), actual.clone()) };
    let mut out = BTreeSet::new();
    compare(&expected, &actual, &tolerate, &mut Vec::new(), &mut out);
    out.into_iter().collect()
}

/// Whether `actual` matches `expected` under `tolerate`.
pub fn is_matching_event(expected: &Value, actual: &Value, tolerate: Tolerate) -> bool {
    event_differences(expected, actual, tolerate).is_empty()
}

fn indent(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Panics with every difference (sorted, one `* path: …` line each) and both events
/// when `actual` does not match `expected`. Lists are compared whole; only the level
/// a tolerance names may hold extra keys, deeper objects are strict.
#[track_caller]
pub fn assert_event_matches(expected: &Value, actual: &Value, tolerate: Tolerate) {
    let differences = event_differences(expected, actual, tolerate);
    if !differences.is_empty() {
        let mut message = String::from("Unexpected differences found in structs:\n\n");
        for d in &differences {
            message.push_str(&format!("* {d}\n"));
        }
        message.push_str(&format!(
            "\nExpected:\n{}\nActual:\n{}\nTolerating:\n{}",
            indent(expected),
            indent(actual),
            indent(&tolerate.names())
        ));
        panic!("{message}");
    }
}

//! The browser SDK's rules and the server's, fed the same awkward events: the SDK
//! (its own preparation code, built natively) queues exactly what the server accepts,
//! and refuses exactly what it would reject. Inputs are what `JSON.stringify` writes.

mod common;

use common::*;
use sdk_wasm::event::{to_json, Kind, Parts};
use sdk_wasm::prepare::{prepare, Draft, Limits, Refused};
use sdk_wasm::NameMode;
use serde_json::{json, Value};

fn lower(w: &[u16]) -> Vec<u16> {
    String::from_utf16_lossy(w).to_lowercase().encode_utf16().collect()
}

/// `n` levels of nesting in all, counting `data` itself.
fn nested(n: usize, array: bool) -> String {
    let (open, close) = if array { ("[", "]") } else { ("{\"d\":", "}") };
    format!("{{\"deep\":{}1{}}}", open.repeat(n - 1), close.repeat(n - 1))
}

/// A string member sized so the whole event is `total` bytes as the SDK writes it.
fn sized(total: usize) -> String {
    let base = to_json(&parts(&case_id(0), Kind::Track, Some("edx.test.size.checked"), "{\"s\":\"\"}")).len();
    format!("{{\"s\":\"{}\"}}", "x".repeat(total - base))
}

fn parts<'a>(id: &'a str, kind: Kind, name: Option<&'a str>, data: &'a str) -> Parts<'a> {
    Parts {
        id,
        kind,
        name,
        category: None,
        timestamp: "2026-11-22T10:01:02.123Z",
        data,
        page: "https://lms.example.com/x",
        referrer: "",
        user_id: None,
        anonymous_id: "anon",
    }
}

/// A distinct event id for each case (all ids have the same length).
fn case_id(n: usize) -> String {
    format!("01901234-5678-7fff-bfff-{n:012x}")
}

/// The corpus: (type, name, `JSON.stringify(properties)`).
fn corpus() -> Vec<(Kind, Option<String>, Option<String>)> {
    let tl = |data: &str| (Kind::TrackingLog, Some("edx.test.odd.sent".to_owned()), Some(data.to_owned()));
    let mut cases = vec![
        tl(r#"{"plain":1}"#),
        tl(r#"{"cut":"\ud83d"}"#),
        tl(r#"{"cut":"\ude00"}"#),
        tl(r#"{"swapped":"\ude00\ud83d","whole":"\ud83d\ude00"}"#),
        tl(r#"{"\ud800":"lone surrogate key"}"#),
        tl(r#"{"n":1e+308,"m":1.7976931348623157e+308,"big":123456789012345678901234567890,"z":-0,"tiny":5e-324}"#),
        tl("{\"c\":\"\\u0000\\u001f\\b\\f\\n\\r\\t\",\"del\":\"\u{7f}\",\"ls\":\"\u{2028}\"}"),
        tl(r#"{"":1,"__proto__":2,"a.b":3,"a\"b":4,"😀":5,"Mixed Case":6}"#),
        tl(&format!(r#"{{"{}":1}}"#, "k".repeat(1000))),
        tl(r#"{"a":1,"a":2}"#),
        tl(r#"{"password":"hunter2","card":"4111 1111 1111 1111"}"#),
        tl("[1,2]"),
        tl(r#""a string""#),
        tl("5"),
        tl("null"),
        tl("true"),
        (Kind::TrackingLog, Some("edx.test.odd.sent".into()), None),
    ];
    for n in [1, 2, 63, 64, 65, 100, 600] {
        cases.push(tl(&nested(n, false)));
        cases.push(tl(&nested(n, true)));
    }
    for total in [49_999, 50_000, 50_001, 60_000] {
        cases.push((Kind::Track, Some("edx.test.size.checked".into()), Some(sized(total))));
    }
    for name in [
        "",
        "seq_goto",
        "Bad Name",
        "edx.Video.played",
        "/courses/course-v1:a+b+c/xblock/x/handler/h",
        &"a.b.".repeat(100),
        "edx.test.\u{FFFD}.odd",
    ] {
        cases.push((Kind::TrackingLog, Some(name.to_owned()), Some("{}".into())));
        cases.push((Kind::Track, Some(name.to_owned()), Some("{}".into())));
    }
    cases.push((Kind::Track, None, Some("{}".into())));
    cases.push((Kind::Page, None, Some("{}".into())));
    cases.push((Kind::Identify, None, Some(r#"{"email":"a@example.com"}"#.into())));
    cases
}

/// What the SDK does with a case: the JSON it would send (its own, or for a refused
/// event the JSON it would have sent without its rules) and whether it refused.
fn sdk(id: &str, kind: Kind, name: Option<&str>, data: Option<&str>, mode: NameMode) -> (String, Option<Refused>) {
    let draft = Draft {
        kind,
        name,
        category: None,
        data,
        snake: kind == Kind::TrackingLog,
        time_ms: 1_795_341_662_123,
        page: "https://lms.example.com/x",
        referrer: "",
        user_id: None,
        anonymous_id: "anon",
        id,
    };
    let limits = Limits { name_mode: mode, sensitive_keys: &[], max_event_bytes: 50_000 };
    match prepare(&draft, &limits, &lower) {
        Ok(prepared) => (prepared.json, None),
        Err(refused) => {
            // Unprepared: the data as the page gave it (wrapped as the SDK wraps it).
            let raw = match data {
                None | Some("null") => "{}".to_owned(),
                Some(d) if !d.starts_with('{') => format!("{{\"data\":{d}}}"),
                Some(d) => d.to_owned(),
            };
            let name = name.filter(|n| !n.is_empty());
            (to_json(&parts(id, kind, if kind == Kind::Identify { None } else { name }, &raw)), Some(refused))
        }
    }
}

fn check_mode(mode: NameMode, server_mode: &str) {
    let server = Server::start(&format!("[ingest]\nname_validation = \"{server_mode}\"\n[limits]\nrate_per_second = 0"));
    let mut disagreements = Vec::new();
    let cases = corpus();
    for (n, (kind, name, data)) in cases.iter().enumerate() {
        let (json, refused) = sdk(&case_id(n + 1), *kind, name.as_deref(), data.as_deref(), mode);
        let body = format!(r#"{{"sent_at":"2026-11-22T10:01:02.200Z","events":[{json}]}}"#);
        let (status, reply) = reply(server.post("/v1/batch").set("Content-Type", "text/plain;charset=UTF-8").send_string(&body));
        let result = &reply["results"][0];
        let server_accepts = status == 200 && result["status"] == "accepted";
        if server_accepts == refused.is_some() {
            disagreements.push(format!(
                "{kind:?} {name:?} {}: the SDK {}, the server answered {status} {result}",
                data.as_deref().map(|d| &d[..d.len().min(80)]).unwrap_or("undefined"),
                match refused {
                    Some(r) => format!("refuses ({r:?})"),
                    None => "queues it".into(),
                },
            ));
        }
        // Refusals are the same kind of reason on both sides.
        if let Some(refused) = refused {
            let reason = result["reason"].as_str().unwrap_or("");
            let same = match refused {
                Refused::InvalidData => ["invalid_json", "too_deep", "invalid_data"].contains(&reason),
                Refused::SizeLimit => reason == "size_limit",
                Refused::InvalidName => reason == "missing_name" || reason.starts_with("name_"),
            };
            if !same {
                disagreements.push(format!("{kind:?} {name:?}: the SDK refuses for {refused:?}, the server for {reason}"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{} of {} cases disagree:\n{}", disagreements.len(), cases.len(), disagreements.join("\n"));
    // What the SDK queued is stored as the SDK wrote it (the server's scrubbing finds
    // nothing more to do): the lone surrogate case, for one.
    let lines = server.wait_for_lines(1);
    assert!(lines.iter().any(|l| l.contains(r#""event": "{\"cut\": \"\\ud83d\"}""#)), "{}", lines.join("\n"));
}

#[test]
fn the_sdk_queues_what_the_server_accepts_warn_mode() {
    check_mode(NameMode::Warn, "warn");
}

#[test]
fn the_sdk_queues_what_the_server_accepts_reject_mode() {
    check_mode(NameMode::Reject, "reject");
}

#[test]
fn the_corpus_covers_each_kind_of_refusal() {
    let refusals: Vec<Option<Refused>> =
        corpus().iter().map(|(k, n, d)| sdk(&case_id(1), *k, n.as_deref(), d.as_deref(), NameMode::Reject).1).collect();
    for kind in [Refused::InvalidData, Refused::SizeLimit, Refused::InvalidName] {
        assert!(refusals.contains(&Some(kind)), "{kind:?}");
    }
    assert!(refusals.iter().filter(|r| r.is_none()).count() > 20);
    let _ = json!(null) == Value::Null;
}

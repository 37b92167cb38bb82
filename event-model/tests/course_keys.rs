//! Course keys and course URLs read as the LMS reads them, compared with what the
//! Python libraries give (fixtures/course_keys.py writes the golden file).

use event_model::course::{course_from_url, parse_course_key};
use event_model::Value;

#[test]
fn keys_and_urls_match_opaque_keys() {
    let fixtures = include_str!("fixtures/course_keys.jsonl");
    let (mut keys, mut urls, mut found) = (0, 0, 0);
    let mut wrong = Vec::new();
    for line in fixtures.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let input = case["input"].as_str().unwrap();
        let got = match case["as"].as_str().unwrap() {
            "key" => {
                keys += 1;
                parse_course_key(input)
            }
            _ => {
                urls += 1;
                course_from_url(input)
            }
        };
        let got = got.map(|c| serde_json::json!({"course_id": c.course_id, "org_id": c.org_id}));
        found += usize::from(got.is_some());
        let want = (!case["course"].is_null()).then(|| case["course"].clone());
        if got != want {
            wrong.push(format!("{input:?} ({}): got {got:?}, Python {want:?}", case["as"]));
        }
    }
    assert!(wrong.is_empty(), "{} of {} differ:\n{}", wrong.len(), keys + urls, wrong.join("\n"));
    assert!(keys > 2000 && urls > 1500 && found > 500, "{keys} keys, {urls} urls, {found} with a course");
}

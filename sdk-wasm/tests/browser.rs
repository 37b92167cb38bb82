//! The queue in a real browser (headless Chromium through wasm-bindgen-test), against
//! the fake ingest server of `js/test/server.mjs`, whose URL `sdk-wasm/test.sh` passes
//! in `TRACKING_TEST_SERVER` at build time. Each test uses its own server scenario
//! (`/s/<name>/v1/batch`, scripted answers, a request log) and its own storage key.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Promise, Reflect, JSON};
use sdk_wasm::NameMode;
use sdk_wasm::{Call, Config, Kind, Tracker};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export async function control(url, script) {
  const r = await fetch(url, { method: 'POST', body: script });
  if (!r.ok) throw new Error('control ' + r.status);
}
export async function requests(url) {
  const r = await fetch(url);
  const { requests } = await r.json();
  return requests.map((q) => {
    let events = [];
    try { events = JSON.parse(q.body).events; } catch (e) {}
    return { t: q.t, contentType: q.contentType, encoding: q.contentEncoding, wire: q.wireBytes, bytes: new TextEncoder().encode(q.body).length, events };
  });
}
export function storageKeys(prefix) {
  return Object.keys(localStorage).filter((k) => k.startsWith(prefix)).sort();
}
export function storageValue(key) { return localStorage.getItem(key) || ''; }
export function storageText(prefix) {
  return Object.keys(localStorage).filter((k) => k.startsWith(prefix)).map((k) => localStorage.getItem(k)).join('\n');
}
export function clearStorage(prefix) {
  Object.keys(localStorage).filter((k) => k.startsWith(prefix)).forEach((k) => localStorage.removeItem(k));
}
export function setOnline(on) {
  Object.defineProperty(Navigator.prototype, 'onLine', { configurable: true, get: () => on });
}
export function fire(type) {
  const target = type === 'visibilitychange' ? document : window;
  target.dispatchEvent(new Event(type));
}
export function setHidden(hidden) {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
}
export function cyclic() { const o = { a: 1 }; o.self = o; return o; }
export function throwingGetter() { return { get boom() { throw new Error('boom'); } }; }
export function bigint() { return { n: BigInt(1) }; }
export function sum(list) { return list.reduce((a, b) => a + b, 0); }
let realWarn;
export function throwingConsoleWarn(on) {
  if (on) { realWarn = console.warn; console.warn = () => { throw new Error('a warning fails this page'); }; }
  else console.warn = realWarn;
}
"#)]
extern "C" {
    fn sleep(ms: u32) -> Promise;
    #[wasm_bindgen(catch)]
    fn control(url: &str, script: &str) -> Result<Promise, JsValue>;
    fn requests(url: &str) -> Promise;
    #[wasm_bindgen(js_name = storageKeys)]
    fn storage_keys(prefix: &str) -> Array;
    #[wasm_bindgen(js_name = storageText)]
    fn storage_text(prefix: &str) -> String;
    #[wasm_bindgen(js_name = storageValue)]
    fn storage_value(key: &str) -> String;
    #[wasm_bindgen(js_name = clearStorage)]
    fn clear_storage(prefix: &str);
    #[wasm_bindgen(js_name = setOnline)]
    fn set_online(on: bool);
    fn fire(kind: &str);
    #[wasm_bindgen(js_name = setHidden)]
    fn set_hidden(hidden: bool);
    fn cyclic() -> JsValue;
    #[wasm_bindgen(js_name = throwingGetter)]
    fn throwing_getter() -> JsValue;
    fn bigint() -> JsValue;
    #[wasm_bindgen(js_name = throwingConsoleWarn)]
    fn throwing_console_warn(on: bool);
}

fn server() -> &'static str {
    let url = option_env!("TRACKING_TEST_SERVER").unwrap_or("");
    assert!(!url.is_empty(), "run through sdk-wasm/test.sh (TRACKING_TEST_SERVER)");
    url
}

async fn wait(ms: u32) {
    JsFuture::from(sleep(ms)).await.unwrap();
}

/// One request the server saw.
struct Seen {
    t: f64,
    content_type: String,
    /// `Content-Encoding` and the bytes on the wire.
    encoding: String,
    wire: usize,
    bytes: usize,
    ids: Vec<String>,
    events: Vec<JsValue>,
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(k)).unwrap()
}

fn text(v: &JsValue, k: &str) -> String {
    get(v, k).as_string().unwrap_or_default()
}

/// A test's server scenario and tracker settings.
struct Scenario {
    name: &'static str,
}

impl Scenario {
    async fn new(name: &'static str) -> Scenario {
        clear_storage(&format!("t-{name}"));
        Scenario { name }
    }

    fn config(&self) -> Config {
        Config {
            endpoint: format!("{}/s/{}", server(), self.name),
            storage_key: Some(format!("t-{}", self.name)),
            flush_interval_ms: 50.0,
            persist_delay_ms: 10.0,
            retry_base_ms: 50.0,
            retry_max_ms: 2000.0,
            ..Config::default()
        }
    }

    /// Scripts the server's next answers, e.g. `[{"status": 503, "headers": {"Retry-After": "1"}}]`.
    async fn script(&self, responses: &str) {
        let url = format!("{}/control/{}", server(), self.name);
        JsFuture::from(control(&url, &format!("{{\"responses\":{responses}}}")).unwrap()).await.unwrap();
    }

    async fn seen(&self) -> Vec<Seen> {
        let url = format!("{}/control/{}", server(), self.name);
        let list: Array = JsFuture::from(requests(&url)).await.unwrap().into();
        list.iter()
            .map(|r| {
                let events: Vec<JsValue> = Array::from(&get(&r, "events")).iter().collect();
                Seen {
                    t: get(&r, "t").as_f64().unwrap(),
                    content_type: text(&r, "contentType"),
                    encoding: text(&r, "encoding"),
                    wire: get(&r, "wire").as_f64().unwrap() as usize,
                    bytes: get(&r, "bytes").as_f64().unwrap() as usize,
                    ids: events.iter().map(|e| text(e, "id")).collect(),
                    events,
                }
            })
            .collect()
    }

    /// Polls until the server has seen `n` requests (or `ms` pass).
    async fn until_requests(&self, n: usize, ms: u32) -> Vec<Seen> {
        let mut waited = 0;
        loop {
            let seen = self.seen().await;
            if seen.len() >= n || waited >= ms {
                return seen;
            }
            wait(20).await;
            waited += 20;
        }
    }

    fn storage_keys(&self) -> Vec<String> {
        storage_keys(&format!("t-{}.q.", self.name)).iter().filter_map(|k| k.as_string()).collect()
    }
}

fn stats(t: &Tracker) -> JsValue {
    t.stats()
}

fn stats_text(t: &Tracker) -> String {
    JSON::stringify(&t.stats()).unwrap().as_string().unwrap()
}

fn stat(t: &Tracker, path: &str) -> f64 {
    let mut v = stats(t);
    for part in path.split('.') {
        v = get(&v, part);
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn call(kind: Kind, name: &str, data: &str) -> Call {
    Call {
        kind,
        name: Some(name.to_owned()),
        category: None,
        data: Some(data.to_owned()),
        unserializable: false,
        snake: kind == Kind::TrackingLog,
        time: js_sys::Date::now(),
        page: "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/".to_owned(),
    }
}

fn track(t: &Tracker, i: usize) {
    t.record(call(Kind::Track, "edx.test.event.sent", &format!("{{\"i\":{i}}}")));
}

/// A promise of the `done` callback `flush` takes.
fn settled(flush: impl FnOnce(js_sys::Function)) -> Promise {
    let mut resolve = None;
    let promise = Promise::new(&mut |r, _| resolve = Some(r));
    flush(resolve.unwrap());
    promise
}

async fn flushed(t: &Tracker) {
    JsFuture::from(settled(|done| t.flush(done))).await.unwrap();
}

#[wasm_bindgen_test]
async fn batches_by_count_then_by_time() {
    let sc = Scenario::new("count").await;
    let t = Tracker::new(Config { batch_events: 5.0, flush_interval_ms: 300.0, ..sc.config() });
    for i in 0..12 {
        track(&t, i);
    }
    // Two full batches go at once; the last two wait for the flush interval.
    let seen = sc.until_requests(2, 2000).await;
    assert_eq!(seen.iter().map(|s| s.ids.len()).collect::<Vec<_>>(), vec![5, 5]);
    wait(100).await;
    assert_eq!(sc.seen().await.len(), 2, "a partial batch waits for flushInterval");
    let seen = sc.until_requests(3, 2000).await;
    assert_eq!(seen.iter().map(|s| s.ids.len()).collect::<Vec<_>>(), vec![5, 5, 2]);
    assert!(seen[2].t - seen[0].t >= 250.0, "the partial batch went after the interval");
    // Oldest first, each once, as text/plain (no CORS pre-flight).
    let ids: Vec<String> = seen.iter().flat_map(|s| s.ids.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 12);
    let order: Vec<f64> = seen.iter().flat_map(|s| s.events.iter().map(|e| get(&get(e, "data"), "i").as_f64().unwrap())).collect();
    assert_eq!(order, (0..12).map(|i| i as f64).collect::<Vec<_>>());
    assert!(seen.iter().all(|s| s.content_type.starts_with("text/plain")), "{}", seen[0].content_type);
    assert_eq!(stat(&t, "sent"), 12.0);
    assert_eq!(stat(&t, "enqueued"), 12.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn batches_go_gzipped_and_beacons_plain() {
    let sc = Scenario::new("gzip").await;
    let t = Tracker::new(Config { batch_events: 50.0, ..sc.config() });
    for i in 0..50 {
        track(&t, i);
    }
    flushed(&t).await;
    // One event alone is under the 1 KB threshold: it goes as it is.
    track(&t, 50);
    flushed(&t).await;
    let seen = sc.until_requests(2, 2000).await;
    assert_eq!((seen[0].encoding.as_str(), seen[0].ids.len()), ("gzip", 50));
    assert!(seen[0].wire * 4 < seen[0].bytes, "{} bytes on the wire for {}", seen[0].wire, seen[0].bytes);
    assert!(seen[0].content_type.starts_with("text/plain"));
    assert_eq!((seen[1].encoding.as_str(), seen[1].wire), ("", seen[1].bytes));
    // Off when asked.
    let plain = Tracker::new(Config { gzip: false, batch_events: 50.0, storage_key: None, ..sc.config() });
    for i in 0..50 {
        track(&plain, i);
    }
    flushed(&plain).await;
    let seen = sc.until_requests(3, 2000).await;
    assert_eq!(seen[2].encoding, "");
    // Beacons stay plain (a keepalive request cannot wait for compression).
    track(&t, 51);
    t.unload(true);
    let seen = sc.until_requests(4, 2000).await;
    assert_eq!(seen[3].encoding, "");
    t.shutdown();
    plain.shutdown();
}

#[wasm_bindgen_test]
async fn a_batch_refused_whole_is_sent_again_in_halves() {
    let sc = Scenario::new("split").await;
    let refused =
        r#"{"status": 400, "headers": {"Content-Type": "application/json"}, "body": "{\"error\":\"invalid_json\",\"detail\":\"x\"}"}"#;
    sc.script(&format!("[{refused}, {refused}]")).await;
    let t = Tracker::new(Config { batch_events: 8.0, ..sc.config() });
    for i in 0..8 {
        track(&t, i);
    }
    let seen = sc.until_requests(5, 3000).await;
    let sizes: Vec<usize> = seen.iter().map(|s| s.ids.len()).collect();
    assert_eq!(sizes, [8, 4, 2, 2, 4], "halves after each whole-batch refusal");
    assert_eq!(stat(&t, "sent"), 8.0);
    assert_eq!(stat(&t, "split"), 2.0);
    assert_eq!(stat(&t, "dropped.total"), 0.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn batches_by_bytes() {
    let sc = Scenario::new("bytes").await;
    let t = Tracker::new(Config { batch_bytes: 2000.0, flush_interval_ms: 20.0, ..sc.config() });
    let filler = "x".repeat(500);
    for i in 0..10 {
        t.record(call(Kind::Track, "edx.test.event.sent", &format!("{{\"i\":{i},\"filler\":\"{filler}\"}}")));
    }
    flushed(&t).await;
    let seen = sc.until_requests(1, 2000).await;
    let total: usize = seen.iter().map(|s| s.ids.len()).sum();
    assert_eq!(total, 10);
    assert!(seen.len() >= 4, "10 events of ~800 bytes need at least 4 batches of 2000 bytes, got {}", seen.len());
    for s in &seen {
        assert!(s.bytes <= 2000, "batch of {} bytes", s.bytes);
    }
    t.shutdown();
}

#[wasm_bindgen_test]
async fn persists_and_restores_across_a_reload() {
    let sc = Scenario::new("reload").await;
    // The first page cannot reach the server (503, long Retry-After), persists, and dies.
    sc.script(r#"[{"status": 503, "headers": {"Retry-After": "60"}}]"#).await;
    let first = Tracker::new(sc.config());
    for i in 0..3 {
        track(&first, i);
    }
    let ids = first.queued_ids();
    sc.until_requests(1, 2000).await;
    wait(100).await;
    assert_eq!(sc.seen().await.len(), 1, "Retry-After holds the queue");
    assert_eq!(stat(&first, "persisted"), 3.0);
    assert_eq!(sc.storage_keys().len(), 1, "one chunk, written off the calling path");
    let anonymous = first.anonymous_id();
    first.shutdown();

    // The next page restores the queue, oldest first, with the same ids, and sends it.
    let second = Tracker::new(sc.config());
    assert_eq!(second.queued_ids(), ids);
    assert_eq!(stat(&second, "restored"), 3.0);
    assert_eq!(second.anonymous_id(), anonymous, "the anonymous id persists");
    let seen = sc.until_requests(2, 2000).await;
    assert_eq!(seen[1].ids, ids, "retries reuse the ids");
    wait(50).await;
    assert!(sc.storage_keys().is_empty(), "delivered chunks are removed: {:?}", sc.storage_keys());
    assert_eq!(stat(&second, "sent"), 3.0);
    second.shutdown();
}

#[wasm_bindgen_test]
async fn storage_is_bounded_and_the_rest_stays_in_memory() {
    let sc = Scenario::new("bounded").await;
    sc.script(r#"[{"status": 503, "headers": {"Retry-After": "60"}}]"#).await;
    let t = Tracker::new(Config { max_storage_bytes: 3000.0, batch_events: 1000.0, flush_interval_ms: 10.0, ..sc.config() });
    let filler = "y".repeat(400);
    for round in 0..4 {
        for i in 0..2 {
            t.record(call(Kind::Track, "edx.test.event.sent", &format!("{{\"round\":{round},\"i\":{i},\"f\":\"{filler}\"}}")));
        }
        t.persist_now();
    }
    // 8 events of ~700 bytes in chunks of 2 (packed two bytes per character): the
    // oldest fit in 3000 bytes as the browser counts them, the newest stay in memory.
    let keys = storage_keys("t-bounded.q.");
    let units: usize = keys.iter().map(|k| k.as_string().unwrap().encode_utf16().count()).sum::<usize>()
        + storage_text("t-bounded.q.").encode_utf16().count();
    assert!(units * 2 <= 3000, "{units} code units stored");
    let stored: String = keys.iter().map(|k| sdk_wasm::codec::unpack(&storage_value(&k.as_string().unwrap())).unwrap()).collect();
    assert!(stored.contains("\"round\":0"), "the oldest are stored");
    assert!(!stored.contains("\"round\":3"), "the newest are not");
    assert!(stat(&t, "storageFull") >= 2.0);
    assert_eq!(stat(&t, "queued"), 8.0, "nothing is lost while the page lives");
    t.shutdown();
}

#[wasm_bindgen_test]
async fn honours_retry_after_seconds_and_keeps_ids() {
    let sc = Scenario::new("retry-after").await;
    sc.script(r#"[{"status": 503, "headers": {"Retry-After": "1"}}]"#).await;
    let t = Tracker::new(sc.config());
    for i in 0..3 {
        track(&t, i);
    }
    let seen = sc.until_requests(2, 4000).await;
    assert_eq!(seen.len(), 2);
    assert!(seen[1].t - seen[0].t >= 990.0, "retried after {} ms, Retry-After is 1 s", seen[1].t - seen[0].t);
    assert_eq!(seen[0].ids, seen[1].ids, "a retry reuses the event ids");
    assert_eq!(stat(&t, "retried"), 3.0);
    assert_eq!(stat(&t, "sent"), 3.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn honours_retry_after_http_date_on_429() {
    let sc = Scenario::new("retry-date").await;
    let at = js_sys::Date::new(&JsValue::from_f64(js_sys::Date::now() + 2500.0));
    let date = at.to_utc_string().as_string().unwrap();
    sc.script(&format!(r#"[{{"status": 429, "headers": {{"Retry-After": "{date}"}}}}]"#)).await;
    let t = Tracker::new(sc.config());
    track(&t, 0);
    let seen = sc.until_requests(2, 5000).await;
    assert_eq!(seen.len(), 2);
    // The date has one-second resolution: at least 1.5 s of the 2.5 s remain.
    assert!(seen[1].t - seen[0].t >= 1400.0, "retried after {} ms", seen[1].t - seen[0].t);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn backs_off_exponentially_on_5xx() {
    let sc = Scenario::new("backoff").await;
    sc.script(r#"[{"status": 500}, {"status": 502}, {"status": 504}]"#).await;
    let t = Tracker::new(Config { retry_base_ms: 200.0, ..sc.config() });
    track(&t, 0);
    let seen = sc.until_requests(4, 6000).await;
    assert_eq!(seen.len(), 4);
    let gaps: Vec<f64> = seen.windows(2).map(|w| w[1].t - w[0].t).collect();
    // Equal jitter: attempt n waits between half and all of 200 ms × 2^(n-1).
    for (n, gap) in gaps.iter().enumerate() {
        let step = 200.0 * f64::from(1 << n);
        assert!(*gap >= step / 2.0 - 15.0 && *gap <= step + 250.0, "gap {n} = {gap} ms, step {step}");
    }
    assert!(gaps[2] > gaps[0], "the delay grows: {gaps:?}");
    assert!(seen.iter().all(|s| s.ids == seen[0].ids));
    assert_eq!(stat(&t, "retried"), 3.0);
    assert_eq!(stat(&t, "sent"), 1.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn gives_up_after_max_retries_on_500() {
    let sc = Scenario::new("exhausted").await;
    sc.script(r#"[{"status": 500}, {"status": 500}, {"status": 500}]"#).await;
    let t = Tracker::new(Config { max_retries: 2.0, retry_base_ms: 20.0, ..sc.config() });
    track(&t, 0);
    track(&t, 1);
    sc.until_requests(3, 3000).await;
    wait(300).await;
    assert_eq!(sc.seen().await.len(), 3, "one attempt and two retries");
    assert_eq!(stat(&t, "dropped.retry_exhausted"), 2.0);
    assert_eq!(stat(&t, "queued"), 0.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn does_not_retry_400() {
    let sc = Scenario::new("no-retry").await;
    sc.script(r#"[{"status": 400}]"#).await;
    let t = Tracker::new(sc.config());
    for i in 0..4 {
        track(&t, i);
    }
    sc.until_requests(1, 2000).await;
    wait(600).await;
    assert_eq!(sc.seen().await.len(), 1, "a 400 is not retried");
    assert_eq!(stat(&t, "dropped.http_4xx"), 4.0);
    assert_eq!(stat(&t, "retried"), 0.0);
    assert_eq!(stat(&t, "sent"), 0.0);
    // The queue goes on with the next events.
    track(&t, 5);
    let seen = sc.until_requests(2, 2000).await;
    assert_eq!(seen[1].ids.len(), 1);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn counts_rejected_events() {
    let sc = Scenario::new("rejected").await;
    let t = Tracker::new(sc.config());
    track(&t, 0);
    t.record(call(Kind::Track, "edx.please.reject", "{}"));
    track(&t, 2);
    flushed(&t).await;
    assert_eq!(stat(&t, "dropped.rejected"), 1.0);
    assert_eq!(stat(&t, "sent"), 2.0);
    assert_eq!(sc.seen().await.len(), 1, "rejected events are not retried");
    t.shutdown();
}

#[wasm_bindgen_test]
async fn retries_network_errors_and_survives_offline() {
    // Nothing listens on port 9 of this host: a network error, retried without limit.
    let t = Tracker::new(Config {
        endpoint: "http://127.0.0.1:9".into(),
        storage_key: None,
        flush_interval_ms: 10.0,
        retry_base_ms: 30.0,
        retry_max_ms: 60.0,
        ..Config::default()
    });
    track(&t, 0);
    wait(600).await;
    assert!(stat(&t, "retried") >= 2.0, "network errors are retried: {}", stats_text(&t));
    assert_eq!(stat(&t, "dropped.total"), 0.0);
    t.shutdown();

    // Offline: nothing is sent until `online`.
    let sc = Scenario::new("offline").await;
    set_online(false);
    let t = Tracker::new(Config { retry_max_ms: 60_000.0, ..sc.config() });
    track(&t, 0);
    flushed(&t).await;
    wait(200).await;
    assert_eq!(sc.seen().await.len(), 0, "offline: no request");
    set_online(true);
    fire("online");
    let seen = sc.until_requests(1, 2000).await;
    assert_eq!(seen.len(), 1, "sent on `online`");
    t.shutdown();
}

#[wasm_bindgen_test]
async fn unload_beacons_within_the_keepalive_budget_and_persists_the_rest() {
    let sc = Scenario::new("unload").await;
    let t = Tracker::new(Config { flush_interval_ms: 60_000.0, persist_delay_ms: 60_000.0, ..sc.config() });
    let filler = "z".repeat(900);
    for i in 0..100 {
        t.record(call(Kind::Track, "edx.test.event.sent", &format!("{{\"i\":{i},\"f\":\"{filler}\"}}")));
    }
    // ~100 KB queued; the page goes away (and its timers with it).
    fire("pagehide");
    t.shutdown();
    let seen = sc.until_requests(1, 2000).await;
    wait(200).await;
    let seen_total: usize = sc.seen().await.iter().map(|s| s.bytes).sum();
    assert!(!seen.is_empty(), "the unload flush beacons");
    assert!(seen_total <= 64_000, "beacons stay in the keepalive budget: {seen_total} bytes");
    assert!(seen.iter().all(|s| s.content_type.starts_with("text/plain")));
    let beaconed = stat(&t, "beaconed");
    assert!(beaconed >= 50.0, "most of 64 KB went: {beaconed}");
    // The rest is in storage at once, for the next page.
    assert_eq!(stat(&t, "persisted") + beaconed, 100.0, "{}", stats_text(&t));
    assert!(!sc.storage_keys().is_empty());
    let next = Tracker::new(sc.config());
    assert_eq!(next.queued_ids().len() as f64, 100.0 - beaconed);
    flushed(&next).await;
    let ids: std::collections::HashSet<String> = sc.seen().await.into_iter().flat_map(|s| s.ids).collect();
    assert_eq!(ids.len(), 100, "every event arrives once");
    next.shutdown();
}

#[wasm_bindgen_test]
async fn visibility_hidden_flushes_too() {
    let sc = Scenario::new("hidden").await;
    let t = Tracker::new(Config { flush_interval_ms: 60_000.0, ..sc.config() });
    track(&t, 0);
    set_hidden(true);
    fire("visibilitychange");
    set_hidden(false);
    let seen = sc.until_requests(1, 2000).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(stat(&t, "beaconed"), 1.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn applies_the_server_rules_before_queueing() {
    let sc = Scenario::new("rules").await;
    let t = Tracker::new(Config { name_mode: NameMode::Reject, max_event_bytes: 2000.0, ..sc.config() });
    t.record(call(
        Kind::TrackingLog,
        "edx.test.form.submitted",
        r#"{"userName":"ada","newPassword":"hunter2","card":"4111 1111 1111 1111","nested":{"Password":"x","orderNo":"4111111111111112"}}"#,
    ));
    t.record(call(Kind::TrackingLog, "seq_goto", r#"{"old":1,"new":2}"#)); // a legacy name
    t.record(call(Kind::Track, "seq_goto", "{}")); // not for Segment events
    t.record(call(Kind::Track, "Not A Name", "{}"));
    t.record(call(Kind::Track, "edx.test.big.sent", &format!("{{\"f\":\"{}\"}}", "b".repeat(3000))));
    flushed(&t).await;
    let seen = sc.seen().await;
    let events: Vec<&JsValue> = seen.iter().flat_map(|s| s.events.iter()).collect();
    assert_eq!(events.len(), 2);
    let data = JSON::stringify(&get(events[0], "data")).unwrap().as_string().unwrap();
    assert_eq!(
        data,
        r#"{"user_name":"ada","new_password":"********","card":"********","nested":{"password":"********","order_no":"4111111111111112"}}"#
    );
    assert_eq!(text(events[0], "type"), "tracking_log");
    assert_eq!(text(events[1], "name"), "seq_goto");
    assert_eq!(stat(&t, "dropped.invalid_name"), 2.0);
    assert_eq!(stat(&t, "dropped.size_limit"), 1.0, "oversize events are dropped, never truncated");
    t.shutdown();
}

#[wasm_bindgen_test]
async fn event_shape_on_the_wire() {
    let sc = Scenario::new("shape").await;
    let t = Tracker::new(sc.config());
    assert!(t.identify(Some("42".into()), Some(r#"{"plan":"pro"}"#.into()), js_sys::Date::now(), "https://x/".into()));
    t.record(Call { category: Some("course".into()), ..call(Kind::Page, "Course Home", r#"{"tab":"home"}"#) });
    t.record(call(Kind::Track, "edx.test.event.sent", "[1,2]"));
    flushed(&t).await;
    let seen = sc.seen().await;
    let events: Vec<&JsValue> = seen.iter().flat_map(|s| s.events.iter()).collect();
    assert_eq!(events.len(), 3);
    let identify = events[0];
    assert_eq!(text(identify, "type"), "identify");
    assert!(get(identify, "name").is_undefined());
    assert_eq!(text(identify, "user_id"), "42");
    assert_eq!(text(&get(identify, "data"), "plan"), "pro");
    let page = events[1];
    assert_eq!(text(page, "type"), "page");
    assert_eq!(text(page, "name"), "Course Home");
    assert_eq!(text(page, "category"), "course");
    assert_eq!(text(page, "page"), "https://lms.example.com/courses/course-v1:edX+DemoX+Demo/");
    assert_eq!(text(page, "anonymous_id"), t.anonymous_id());
    let id = text(page, "id");
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "UUID v7");
    let ts = text(page, "timestamp");
    assert_eq!(ts.len(), 24);
    assert!(ts.ends_with('Z'));
    let parsed = js_sys::Date::parse(&ts);
    assert!((parsed - js_sys::Date::now()).abs() < 60_000.0);
    // `data` is always an object on the wire: other values are wrapped, not lost.
    assert_eq!(JSON::stringify(&get(events[2], "data")).unwrap().as_string().unwrap(), r#"{"data":[1,2]}"#);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn snake_case_matches_lodash_in_the_browser() {
    // The fixture was generated with lodash's snakeCase (js/test/gen-snake-fixture.mjs).
    let table = JSON::parse(include_str!("fixtures/snake_case.json")).unwrap();
    let table = Array::from(&table);
    assert!(table.length() >= 30);
    let mut failures = Vec::new();
    for row in table.iter() {
        let row = Array::from(&row);
        let key = js_sys::JsString::from(row.get(0));
        let want = js_sys::JsString::from(row.get(1));
        let units: Vec<u16> = key.iter().collect();
        // The SDK's own lower-casing, as `BrowserIo` does it.
        let got = sdk_wasm::snake::snake_case_utf16(&units, &sdk_wasm::browser::lower_case);
        if got != want.iter().collect::<Vec<u16>>() {
            failures.push(format!("{:?} -> {:?}, lodash {:?}", String::from(key), String::from_utf16_lossy(&got), String::from(want)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[wasm_bindgen_test]
async fn the_page_functions_never_throw_or_reject() {
    // The exported functions (the page's API) on the global tracker.
    clear_storage("t-global");
    let opts = JSON::parse(&format!(r#"{{"endpoint":"{}/s/global","storageKey":"t-global","flushInterval":20}}"#, server())).unwrap();
    sdk_wasm::configure(opts, JsValue::UNDEFINED);
    for bad in [cyclic(), throwing_getter(), bigint()] {
        sdk_wasm::send_tracking_log_event("edx.test.bad.sent".into(), bad.clone());
        sdk_wasm::send_track_event("edx.test.bad.sent".into(), bad.clone());
        sdk_wasm::send_page_event(JsValue::UNDEFINED, JsValue::UNDEFINED, bad);
    }
    for name in [JsValue::UNDEFINED, JsValue::NULL, JsValue::from_f64(3.0), JsValue::from_str("")] {
        sdk_wasm::send_tracking_log_event(name.clone(), JsValue::UNDEFINED);
        sdk_wasm::send_track_event(name, JsValue::NULL);
    }
    // Without a user id (the npm entry throws before it gets here): counted as lost.
    let lost = get(&sdk_wasm::get_stats(), "lost").as_f64().unwrap();
    sdk_wasm::identify_authenticated_user(JsValue::UNDEFINED, JsValue::UNDEFINED);
    assert_eq!(get(&sdk_wasm::get_stats(), "lost").as_f64(), Some(lost + 1.0));
    sdk_wasm::identify_authenticated_user(JsValue::from_f64(42.0), JsValue::UNDEFINED);
    // An id that is not text is lost too, and does not sign the user out.
    for unusable in [JsValue::from_f64(1.5), js_sys::Object::new().into()] {
        sdk_wasm::identify_authenticated_user(unusable, JsValue::UNDEFINED);
    }
    assert_eq!(get(&sdk_wasm::get_stats(), "lost").as_f64(), Some(lost + 3.0));
    sdk_wasm::send_track_event("edx.test.still.signed_in".into(), JsValue::UNDEFINED);
    sdk_wasm::identify_anonymous_user(JsValue::UNDEFINED);
    JsFuture::from(settled(sdk_wasm::flush)).await.unwrap();
    let s = sdk_wasm::get_stats();
    assert_eq!(get(&get(&s, "dropped"), "invalid_data").as_f64(), Some(9.0), "{:?}", JSON::stringify(&s));
    assert_eq!(get(&s, "configured").as_bool(), Some(true));
    let seen = Scenario { name: "global" }.seen().await;
    let events: Vec<JsValue> = seen.into_iter().flat_map(|s| s.events).collect();
    let user_ids: Vec<String> = events.iter().map(|e| text(e, "user_id")).collect();
    assert!(user_ids.contains(&"42".to_owned()), "the user id from a number: {user_ids:?}");
    let still = events.iter().find(|e| text(e, "name") == "edx.test.still.signed_in").expect("the track event");
    assert_eq!(text(still, "user_id"), "42");
    sdk_wasm::reset();
    wait(50).await;
}

/// A page call as `capture` takes it: the name and the properties object.
fn capture(t: &Tracker, name: &str, properties: &JsValue) -> bool {
    t.capture(Kind::Track, name.into(), JsValue::UNDEFINED, properties, false)
}

#[wasm_bindgen_test]
async fn captured_calls_are_recorded_in_later_tasks_without_another_call() {
    let sc = Scenario::new("captured").await;
    let t = Tracker::new(Config { batch_events: 100.0, flush_interval_ms: 60_000.0, ..sc.config() });
    for i in 0..1200 {
        assert!(capture(&t, "edx.test.captured.sent", &JSON::parse(&format!("{{\"i\":{i}}}")).unwrap()));
    }
    // Nothing else is asked of the tracker: its own tasks record the calls and the full
    // batches go (a partial one would wait a minute).
    let seen = sc.until_requests(12, 5000).await;
    let order: Vec<f64> = seen.iter().flat_map(|s| s.events.iter().map(|e| get(&get(e, "data"), "i").as_f64().unwrap())).collect();
    assert_eq!(order, (0..1200).map(f64::from).collect::<Vec<_>>(), "each once, in call order");
    assert_eq!(stat(&t, "enqueued"), 1200.0);
    t.shutdown();
}

#[wasm_bindgen_test]
async fn a_captured_call_keeps_its_snapshot_identity_and_place_and_leaves_with_the_page() {
    let sc = Scenario::new("captured-order").await;
    let t = Tracker::new(Config { flush_interval_ms: 60_000.0, persist_delay_ms: 60_000.0, ..sc.config() });
    let props = JSON::parse(r#"{"n":1}"#).unwrap();
    assert!(capture(&t, "edx.test.first.sent", &props));
    // Changed after the call, before the tracker records it: the call's snapshot is sent.
    Reflect::set(&props, &"n".into(), &JsValue::from(2)).unwrap();
    assert!(t.identify(Some("7".into()), None, js_sys::Date::now(), "https://x/".into()));
    assert!(capture(&t, "edx.test.second.sent", &props));
    // The page goes away before the tracker's own task has run: the unload flush records
    // what was captured and beacons it.
    fire("pagehide");
    t.shutdown();
    let seen = sc.until_requests(1, 2000).await;
    let events: Vec<&JsValue> = seen.iter().flat_map(|s| s.events.iter()).collect();
    let kinds: Vec<String> = events.iter().map(|e| format!("{}:{}", text(e, "type"), text(e, "name"))).collect();
    assert_eq!(kinds, ["track:edx.test.first.sent", "identify:", "track:edx.test.second.sent"]);
    assert_eq!(get(&get(events[0], "data"), "n").as_f64(), Some(1.0));
    assert!(get(events[0], "user_id").is_undefined(), "recorded with the identity of its call");
    assert_eq!(text(events[2], "user_id"), "7");
    assert_eq!(get(&get(events[2], "data"), "n").as_f64(), Some(2.0));
    assert_eq!(stat(&t, "beaconed"), 3.0);
}

#[wasm_bindgen_test]
async fn a_console_that_throws_costs_no_event() {
    let sc = Scenario::new("console").await;
    let t = Tracker::new(Config { batch_events: 2.0, ..sc.config() });
    throwing_console_warn(true);
    // Both are warned about (no identify yet; a name that is not namespace.object.action),
    // in the SDK's own recording task.
    assert!(capture(&t, "Not A Name", &JSON::parse(r#"{"n":1}"#).unwrap()));
    assert!(capture(&t, "edx.test.console.sent", &JSON::parse(r#"{"n":2}"#).unwrap()));
    let seen = sc.until_requests(1, 3000).await;
    throwing_console_warn(false);
    let names: Vec<String> = seen.iter().flat_map(|s| s.events.iter().map(|e| text(e, "name"))).collect();
    assert_eq!(names, ["Not A Name", "edx.test.console.sent"]);
    assert_eq!(stat(&t, "invalidNames"), 1.0);
    t.shutdown();
}

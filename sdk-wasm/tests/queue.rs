//! The queue without a browser: a simulated page (clock, network, storage, beacons)
//! drives the same `Recorder` the browser does. Unit tests for each behaviour, then
//! property tests: random calls, failures, reloads and unloads must end with every
//! event delivered once or counted as dropped — never both, never neither.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use sdk_wasm::io::{Drop, Io, Response, Timer};
use sdk_wasm::{Call, Config, Kind, Recorder};
use serde_json::{json, Value};

/// What the simulated server does with a request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    /// Answers this status without storing (500, 503, 429, 413, 401).
    Status(u16, Option<f64>),
    /// The request never reaches the server: a network error.
    Unreachable,
    /// The server stores the events, the response is lost: a network error.
    LostResponse,
    /// The server takes at most this many events per request (413 beyond).
    Limit(usize),
}

#[derive(Default)]
struct Server {
    delivered: HashMap<String, usize>,
    /// Events the server rejected in a beacon, which the page cannot hear: the
    /// server counts those (its rejection metrics), the page cannot.
    rejected_in_beacons: HashSet<String>,
    requests: usize,
    bodies: Vec<usize>,
}

impl Server {
    /// Stores a batch as the ingest server does: one bad event (`poison`) makes the
    /// batch JSON unreadable (400 for all); `reject` ones are refused on their own.
    fn receive(&mut self, body: &str, max_events: usize) -> Response {
        self.requests += 1;
        self.bodies.push(body.len());
        let batch: Value = serde_json::from_str(body).expect("the SDK sends JSON");
        let events = batch["events"].as_array().unwrap();
        if events.len() > max_events {
            return Response { status: 413, error: Some("too_many_events".into()), ..Response::default() };
        }
        if events.iter().any(|e| e["data"]["poison"] == true) {
            return Response { status: 400, error: Some("invalid_json".into()), ..Response::default() };
        }
        let mut rejected = Vec::new();
        for e in events {
            let id = e["id"].as_str().unwrap().to_owned();
            if e["data"]["reject"] == true {
                rejected.push(id);
            } else {
                *self.delivered.entry(id).or_default() += 1;
            }
        }
        Response { status: 200, rejected, ..Response::default() }
    }
}

/// The browser, simulated.
struct World {
    now: f64,
    rng: u64,
    online: bool,
    /// Requests sent and not answered yet: (page, token, body).
    pending: Vec<(u32, u32, String)>,
    storage: BTreeMap<String, String>,
    /// localStorage quota, UTF-16 code units of keys and values.
    quota: usize,
    timers: [Option<f64>; 3],
    settled: Vec<u32>,
    dropped: Vec<(String, Drop)>,
    unconfirmed: HashSet<String>,
    beacons_ok: bool,
    beacons: Vec<String>,
    page: u32,
}

impl World {
    fn new() -> World {
        World {
            now: 1_800_000_000_000.0,
            rng: 0x9E37_79B9_7F4A_7C15,
            online: true,
            pending: Vec::new(),
            storage: BTreeMap::new(),
            quota: 5 * 1024 * 1024,
            timers: [None; 3],
            settled: Vec::new(),
            dropped: Vec::new(),
            unconfirmed: HashSet::new(),
            beacons_ok: true,
            beacons: Vec::new(),
            page: 1,
        }
    }

    fn used(&self) -> usize {
        self.storage.iter().map(|(k, v)| k.encode_utf16().count() + v.encode_utf16().count()).sum()
    }
}

impl Io for World {
    fn now(&mut self) -> f64 {
        self.now
    }
    fn random_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            *b = self.rng as u8;
        }
    }
    fn online(&mut self) -> bool {
        self.online
    }
    fn send(&mut self, token: u32, body: &str) {
        self.pending.push((self.page, token, body.to_owned()));
    }
    fn beacon(&mut self, body: &str) -> bool {
        if self.beacons_ok {
            self.beacons.push(body.to_owned());
        }
        self.beacons_ok
    }
    fn load(&mut self, key: &str) -> Option<String> {
        self.storage.get(key).cloned()
    }
    fn store(&mut self, key: &str, value: &str) -> bool {
        let old = self.storage.get(key).map_or(0, |v| key.encode_utf16().count() + v.encode_utf16().count());
        if self.used() - old + key.encode_utf16().count() + value.encode_utf16().count() > self.quota {
            return false;
        }
        self.storage.insert(key.to_owned(), value.to_owned());
        true
    }
    fn unstore(&mut self, key: &str) {
        self.storage.remove(key);
    }
    fn keys(&mut self, prefix: &str) -> Vec<String> {
        self.storage.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
    }
    fn arm(&mut self, timer: Timer, ms: f64) {
        self.timers[timer as usize] = Some(self.now + ms);
    }
    fn disarm(&mut self, timer: Timer) {
        self.timers[timer as usize] = None;
    }
    fn settled(&mut self, waiter: u32) {
        self.settled.push(waiter);
    }
    fn warn(&mut self, _message: &str, _detail: &str) {}
    fn lower_case(&self, word: &[u16]) -> Vec<u16> {
        String::from_utf16_lossy(word).to_lowercase().encode_utf16().collect()
    }
    fn dropped(&mut self, event: &str, reason: Drop) {
        let id: Value = serde_json::from_str(event).unwrap();
        self.dropped.push((id["id"].as_str().unwrap().to_owned(), reason));
    }
    fn unconfirmed(&mut self, event: &str) {
        let id: Value = serde_json::from_str(event).unwrap();
        self.unconfirmed.insert(id["id"].as_str().unwrap().to_owned());
    }
}

/// A page with its tracker, and the server it talks to.
struct Sim {
    world: World,
    page: Recorder,
    server: Server,
    mode: Mode,
    cfg: Config,
    /// The ids of every event recorded, and the drops of earlier pages.
    recorded: Vec<String>,
    dropped_before: u64,
    max_events: usize,
}

impl Sim {
    fn new(cfg: Config) -> Sim {
        let mut world = World::new();
        let page = Recorder::start(cfg.clone(), String::new(), &mut world);
        Sim { world, page, server: Server::default(), mode: Mode::Healthy, cfg, recorded: Vec::new(), dropped_before: 0, max_events: 500 }
    }

    fn record(&mut self, data: Value) {
        let (len, newest, drops) = (self.page.queue.len(), self.page.queue.newest_id().map(str::to_owned), self.world.dropped.len());
        let call = Call {
            kind: Kind::Track,
            name: Some("edx.test.queue.recorded".into()),
            category: None,
            data: Some(data.to_string()),
            unserializable: false,
            snake: false,
            time: self.world.now,
            page: "https://lms.example.com/courses/x".into(),
        };
        self.page.record(call, &mut self.world);
        // The new event is the newest queued, or it was dropped at once (which the world saw).
        let queued = self.page.queue.newest_id().map(str::to_owned).filter(|id| Some(id) != newest.as_ref() || self.page.queue.len() > len);
        let new = queued.or_else(|| self.world.dropped.get(drops..).and_then(|d| d.last()).map(|d| d.0.clone()));
        self.recorded.push(new.expect("an event is queued or dropped"));
    }

    /// Answers the pending requests of the live page, delivers those of earlier pages.
    fn answer(&mut self) {
        let pending = std::mem::take(&mut self.world.pending);
        for (page, token, body) in pending {
            let response = match self.mode {
                Mode::Healthy => self.server.receive(&body, self.max_events),
                Mode::Limit(n) => self.server.receive(&body, n),
                Mode::Status(status, retry_after_ms) => Response { status, retry_after_ms, ..Response::default() },
                Mode::Unreachable => Response::default(),
                Mode::LostResponse => {
                    self.server.receive(&body, self.max_events);
                    Response::default()
                }
            };
            if page == self.world.page {
                self.page.on_response(token, &response, &mut self.world);
            }
        }
        for body in std::mem::take(&mut self.world.beacons) {
            let response = self.server.receive(&body, usize::MAX);
            self.server.rejected_in_beacons.extend(response.rejected);
        }
    }

    /// Moves the clock by `ms`, firing timers and answering requests on the way.
    fn advance(&mut self, ms: f64) {
        let end = self.world.now + ms;
        loop {
            self.answer();
            let next = self.world.timers.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t))).min_by(|a, b| a.1.total_cmp(&b.1));
            match next {
                Some((i, due)) if due <= end => {
                    self.world.now = self.world.now.max(due);
                    self.world.timers[i] = None;
                    let timer = [Timer::Flush, Timer::Persist, Timer::Retry][i];
                    self.page.on_timer(timer, &mut self.world);
                }
                _ => break,
            }
        }
        self.world.now = end;
        self.answer();
    }

    /// The page goes away (`pagehide`) and the next one starts on the same storage.
    fn reload(&mut self) {
        self.page.unload(true, &mut self.world);
        self.answer();
        self.dropped_before += self.page.queue.stats.dropped_total();
        self.world.page += 1;
        self.world.timers = [None; 3];
        self.page = Recorder::start(self.cfg.clone(), String::new(), &mut self.world);
    }

    /// Heals everything and runs until nothing is left to do.
    fn settle(&mut self) {
        self.mode = Mode::Healthy;
        self.world.online = true;
        self.world.beacons_ok = true;
        self.page.on_online(&mut self.world);
        for _ in 0..10_000 {
            self.advance(120_000.0);
            if self.page.queue.is_empty() && self.world.pending.is_empty() {
                break;
            }
        }
        assert!(self.page.queue.is_empty(), "{} events still queued", self.page.queue.len());
    }

    /// Every recorded event is delivered or dropped, never both, never neither; the
    /// drop counters agree with the events dropped.
    fn check(&self) {
        let dropped: HashMap<&str, Drop> = self.world.dropped.iter().map(|(id, r)| (id.as_str(), *r)).collect();
        assert_eq!(dropped.len(), self.world.dropped.len(), "an event dropped twice");
        let mut unconfirmed_lost = 0;
        for id in &self.recorded {
            let delivered = self.server.delivered.contains_key(id);
            let lost = dropped.get(id.as_str());
            if self.server.rejected_in_beacons.contains(id) && !delivered && lost.is_none() {
                unconfirmed_lost += 1;
                continue;
            }
            if self.world.unconfirmed.contains(id) {
                // In flight when its page died, and neither beaconed nor stored: the
                // server has it or not, and it is never counted as dropped.
                assert!(lost.is_none(), "event {id}: unconfirmed and dropped {lost:?}");
                unconfirmed_lost += usize::from(!delivered);
                continue;
            }
            assert!(delivered != lost.is_some(), "event {id}: delivered {delivered}, dropped {lost:?}");
        }
        let unique: HashSet<&String> = self.recorded.iter().collect();
        assert_eq!(unique.len(), self.recorded.len());
        let total = self.dropped_before + self.page.queue.stats.dropped_total();
        assert_eq!(total as usize, self.world.dropped.len(), "drop counters");
        assert_eq!(self.recorded.len(), self.server.delivered.len() + dropped.len() + unconfirmed_lost);
    }
}

fn small() -> Config {
    Config { batch_events: 10.0, flush_interval_ms: 1000.0, retry_base_ms: 100.0, retry_max_ms: 5000.0, ..Config::default() }
}

#[test]
fn batches_by_count_then_by_time() {
    let mut sim = Sim::new(small());
    for i in 0..25 {
        sim.record(json!({ "i": i }));
    }
    sim.advance(0.0);
    assert_eq!(sim.server.requests, 2, "two full batches go at once");
    sim.advance(999.0);
    assert_eq!(sim.server.requests, 2);
    sim.advance(2.0);
    assert_eq!(sim.server.requests, 3, "the partial batch after the flush interval");
    assert_eq!(sim.page.queue.stats.sent, 25);
    sim.check();
}

#[test]
fn retry_after_is_a_floor_and_ids_are_kept() {
    let mut sim = Sim::new(small());
    sim.mode = Mode::Status(503, Some(30_000.0));
    sim.record(json!({}));
    sim.advance(1000.0);
    let ids = sim.page.queue.ids();
    sim.mode = Mode::Healthy;
    sim.advance(28_000.0);
    assert_eq!(sim.server.delivered.len(), 0, "nothing before Retry-After");
    sim.advance(2_000.0);
    assert_eq!(sim.server.delivered.keys().cloned().collect::<Vec<_>>(), ids);
    sim.check();
}

#[test]
fn a_batch_refused_whole_is_split_down_to_the_event_that_caused_it() {
    let mut sim = Sim::new(Config { batch_events: 100.0, ..small() });
    for i in 0..99 {
        sim.record(json!({ "i": i }));
        if i == 37 {
            sim.record(json!({ "poison": true }));
        }
    }
    sim.settle();
    assert_eq!(sim.server.delivered.len(), 99, "every other event is stored");
    assert_eq!(sim.world.dropped.len(), 1);
    assert_eq!(sim.world.dropped[0].1, Drop::Rejected);
    let stats = &sim.page.queue.stats;
    assert!((5..=8).contains(&stats.split), "{} splits: about log2(100)", stats.split);
    assert!(sim.server.requests <= 20, "{} requests", sim.server.requests);
    sim.check();
}

#[test]
fn too_many_events_for_the_server_is_split_too() {
    let mut sim = Sim::new(Config { batch_events: 100.0, ..small() });
    sim.max_events = 30;
    for i in 0..100 {
        sim.record(json!({ "i": i }));
    }
    sim.settle();
    assert_eq!(sim.server.delivered.len(), 100);
    assert!(sim.world.dropped.is_empty());
    sim.check();
}

#[test]
fn other_4xx_drop_the_batch_and_count_it() {
    let mut sim = Sim::new(small());
    sim.mode = Mode::Status(401, None);
    for i in 0..5 {
        sim.record(json!({ "i": i }));
    }
    sim.advance(2000.0);
    assert_eq!(sim.page.queue.stats.dropped[Drop::Http4xx as usize], 5);
    sim.check();
}

#[test]
fn the_queue_is_bounded_by_bytes() {
    let cfg = Config { max_queue_bytes: 20_000.0, ..small() };
    let mut sim = Sim::new(cfg);
    sim.mode = Mode::Unreachable;
    let text = "x".repeat(900);
    for i in 0..100 {
        sim.record(json!({ "i": i, "t": text }));
    }
    let bytes: usize = 100 * 1100;
    assert!(sim.page.queue.len() < 25, "{} queued of {bytes} bytes", sim.page.queue.len());
    assert!(sim.page.queue.stats.dropped[Drop::QueueFull as usize] > 75);
    sim.settle();
    sim.check();
}

#[test]
fn a_burst_then_navigation_is_delivered_by_the_next_page() {
    // 10,000 events of a realistic size, the page left at once, the next page of the site.
    let mut sim = Sim::new(Config::default());
    let props = json!({"course_id": "course-v1:edX+DemoX+Demo_Course", "block_id": "block-v1:edX+DemoX+Demo_Course+type@problem+block@1", "label": "burst"});
    for i in 0..10_000 {
        let mut p = props.clone();
        p["i"] = json!(i);
        sim.record(p);
    }
    sim.reload();
    assert!(sim.world.used() <= 5_000_000 / 2, "{} code units stored", sim.world.used());
    assert_eq!(sim.page.queue.stats.restored as usize + sim.server.delivered.len(), 10_000, "every event beaconed or restored");
    sim.settle();
    assert_eq!(sim.server.delivered.len(), 10_000);
    assert!(sim.server.delivered.values().all(|n| *n == 1), "each once");
    sim.check();
}

#[test]
fn what_neither_a_beacon_nor_storage_takes_is_counted_at_pagehide() {
    let mut sim = Sim::new(Config { max_storage_bytes: 20_000.0, ..small() });
    sim.world.beacons_ok = false;
    let text = "y".repeat(400);
    for i in 0..200 {
        sim.record(json!({ "i": i, "t": text }));
    }
    sim.reload();
    let unsaved = sim.world.dropped.iter().filter(|d| d.1 == Drop::Unsaved).count();
    assert!(unsaved > 100, "{unsaved} unsaved");
    assert!(sim.world.used() * 2 <= 20_000);
    sim.settle();
    sim.check();
}

#[test]
fn a_reload_after_part_of_a_chunk_was_sent_restores_only_the_rest() {
    let mut sim = Sim::new(Config { batch_events: 5.0, persist_delay_ms: 0.0, ..small() });
    for i in 0..20 {
        sim.record(json!({ "i": i }));
    }
    // Stored as one chunk, then the first batches delivered.
    sim.advance(0.0);
    sim.mode = Mode::Unreachable;
    sim.world.beacons_ok = false;
    sim.reload();
    assert_eq!(sim.page.queue.stats.restored as usize + sim.server.delivered.len(), 20);
    sim.settle();
    assert!(sim.server.delivered.values().all(|n| *n == 1));
    sim.check();
}

#[test]
fn old_plain_chunks_are_restored() {
    let mut world = World::new();
    let line = r#"{"id":"01901234-5678-7fff-bfff-ffffffffffff","type":"track","name":"a.b.c","timestamp":"2026-11-22T10:01:02.123Z","data":{},"page":"x"}"#;
    world.storage.insert("orgtracking.q.1.1.1".into(), line.into());
    world.storage.insert("orgtracking.q.1.1.2".into(), "not an event".into());
    let page = Recorder::start(Config::default(), String::new(), &mut world);
    assert_eq!(page.queue.ids(), ["01901234-5678-7fff-bfff-ffffffffffff"]);
    assert_eq!(page.queue.stats.dropped[Drop::StorageCorrupt as usize], 1);
}

#[test]
fn flush_resolves_when_delivered_or_failed() {
    let mut sim = Sim::new(small());
    sim.record(json!({}));
    sim.page.flush(7, &mut sim.world);
    assert!(sim.world.settled.is_empty());
    sim.advance(0.0);
    assert_eq!(sim.world.settled, [7]);
    sim.mode = Mode::Status(500, None);
    sim.record(json!({}));
    sim.page.flush(8, &mut sim.world);
    sim.advance(0.0);
    assert_eq!(sim.world.settled, [7, 8], "a failed attempt settles too");
    sim.settle();
    sim.check();
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Op {
    Record(u8),
    Advance(u32),
    Mode(Mode),
    Offline(bool),
    Hidden,
    Reload,
    Flush,
    Beacons(bool),
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        3 => Just(Mode::Healthy),
        1 => Just(Mode::Status(500, None)),
        1 => Just(Mode::Status(503, Some(2000.0))),
        1 => Just(Mode::Status(429, None)),
        1 => Just(Mode::Status(502, None)),
        1 => Just(Mode::Unreachable),
        1 => Just(Mode::LostResponse),
        1 => Just(Mode::Limit(3)),
    ]
}

fn op(with_unloads: bool) -> impl Strategy<Value = Op> {
    let unload_weight = if with_unloads { 1 } else { 0 };
    prop_oneof![
        6 => (1u8..40).prop_map(Op::Record),
        4 => (0u32..5000).prop_map(Op::Advance),
        2 => mode().prop_map(Op::Mode),
        1 => any::<bool>().prop_map(Op::Offline),
        unload_weight => Just(Op::Hidden),
        unload_weight => Just(Op::Reload),
        1 => Just(Op::Flush),
        unload_weight => any::<bool>().prop_map(Op::Beacons),
    ]
}

fn run(ops: &[Op], cfg: Config, poison: bool) {
    let mut sim = Sim::new(cfg);
    let mut n = 0u32;
    for op in ops {
        match op {
            Op::Record(k) => {
                for _ in 0..*k {
                    n += 1;
                    let data = match n % 97 {
                        13 if poison => json!({ "poison": true }),
                        29 => json!({ "reject": true }),
                        _ => json!({ "n": n, "pad": "p".repeat((n % 7 * 150) as usize) }),
                    };
                    sim.record(data);
                }
            }
            Op::Advance(ms) => sim.advance(f64::from(*ms)),
            Op::Mode(m) => sim.mode = *m,
            Op::Offline(off) => {
                sim.world.online = !off;
                if !off {
                    sim.page.on_online(&mut sim.world);
                }
            }
            Op::Hidden => sim.page.unload(false, &mut sim.world),
            Op::Reload => sim.reload(),
            Op::Flush => sim.page.flush(1, &mut sim.world),
            Op::Beacons(ok) => sim.world.beacons_ok = *ok,
        }
    }
    sim.settle();
    sim.check();
}

fn tight() -> Config {
    Config {
        batch_events: 8.0,
        batch_bytes: 4000.0,
        max_queue_events: 120.0,
        max_queue_bytes: 60_000.0,
        max_storage_bytes: 30_000.0,
        max_retries: 3.0,
        unload_bytes: 3000.0,
        ..small()
    }
}

proptest! {
    // 200 cases each by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200), ..ProptestConfig::default() })]

    /// Network faults, server errors, offline spells, hidden pages, reloads, beacons
    /// refused: each event ends delivered once or counted dropped.
    #[test]
    fn every_event_is_delivered_or_counted(ops in proptest::collection::vec(op(true), 1..60)) {
        run(&ops, tight(), false);
    }

    /// The same with the defaults (room for everything): nothing is dropped but what the
    /// server rejects and what 5xx retries give up on.
    #[test]
    fn with_room_enough_only_refusals_are_dropped(ops in proptest::collection::vec(op(true), 1..60)) {
        run(&ops, small(), false);
    }

    /// Events the server cannot take in a batch, among the others: split batches cost
    /// only them. (A beacon cannot be split, so these runs keep the page open.)
    #[test]
    fn a_bad_event_costs_only_itself(ops in proptest::collection::vec(op(false), 1..60)) {
        run(&ops, tight(), true);
    }
}

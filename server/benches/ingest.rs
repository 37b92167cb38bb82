//! Ingest load test over loopback: batches of 50 realistic events from many
//! connections with durable commit on, at full and at half load; single-event `/event`
//! form posts; in the same run, the floor: parse + process + serialize + append of the
//! same events in one thread without HTTP; and the same load beside a Segment sink
//! that answers 401 and beside a healthy one (what a broken sink costs the others).
//!
//! Run with `make bench` or `cargo bench -p tracking-server --bench ingest`
//! (BENCH_SECONDS=N per phase, BENCH_CONNECTIONS=N).

/// mimalloc: events are many small allocations; glibc's malloc spent a third of the
/// ingest CPU in allocation and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::{batch_body, env_or, Process, EVENTS_PER_BATCH};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracking_server::ingest::batch::{read_batch, read_event, split_envelope, LastPage, Refused};
use tracking_server::ingest::EventText;
use tracking_server::ingest::IngestRules;
use tracking_server::record::RecordBuilder;
use tracking_server::sinks::tracking_log::{render_events, render_views, Rendered};
use tracking_server::wal::{CommitPolicy, Wal, WalConfig};

fn form_body(n: u64) -> String {
    format!(
        "event_type=edx.ui.lms.outline.selected&event=%7B%22target_name%22%3A%22Week+{n}%22%2C%22widget_placement%22%3A%22accordion%22%7D&page=https%3A%2F%2Flms.example.com%2Fcourses%2Fcourse-v1%3AedX%2BDemoX%2BDemo_Course%2Fcourse%2F"
    )
}

/// The server under test, on a port the system chooses, with its data in a
/// temporary directory.
struct ServerProcess {
    process: Process,
    url: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> Self {
        Self::start_with("", &[])
    }

    /// A server with `extra` appended to its configuration and `env` set.
    fn start_with(extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bench.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\n{extra}\n[limits]\nrate_per_second = 0\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let process = Process::start_with_env(&config, &[], env);
        let url = process.url.clone();
        ServerProcess { process, url, _dir: dir }
    }

    /// Lines of the tracking log, rotated files included.
    fn log_lines(&self) -> usize {
        let data = self._dir.path().join("data");
        let files = std::fs::read_dir(&data).into_iter().flatten().flatten();
        files
            .filter(|f| f.file_name().to_string_lossy().starts_with("tracking.log"))
            .map(|f| std::fs::read(f.path()).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0))
            .sum()
    }

    /// CPU seconds used by the server so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        self.process.cpu_seconds()
    }
}

struct Run {
    requests: u64,
    events: u64,
    seconds: f64,
    cpu: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }
}

/// Sends requests from `connections` threads for `seconds`. With `rate`, each thread
/// sends on a fixed schedule (open loop: latency counts from the scheduled time);
/// without, back to back.
fn drive(server: &ServerProcess, path: &str, connections: usize, seconds: f64, rate: Option<f64>, form: bool) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicU64::new(0));
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|t| {
            let (stop, latencies, requests) = (stop.clone(), latencies.clone(), requests.clone());
            let url = format!("{}{path}", server.url);
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
                let mut next = Instant::now() + Duration::from_millis(t as u64 % 10);
                let mut mine = Vec::new();
                let mut n = t as u64 * 1_000_000;
                // A learner's session cookie, as the browser sends it to the LMS origin.
                let session = format!("sessionid=bench{t:028x}");
                while !stop.load(Ordering::Relaxed) {
                    if interval.is_some() {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                    }
                    let scheduled = if interval.is_some() { next } else { Instant::now() };
                    n += 1;
                    let result = if form {
                        agent.post(&url).set("Content-Type", "application/x-www-form-urlencoded").send_string(&form_body(n))
                    } else {
                        agent.post(&url).set("Content-Type", "text/plain;charset=UTF-8").set("Cookie", &session).send_string(&batch_body(n))
                    };
                    match result {
                        Ok(response) => {
                            let _ = response.into_string();
                            mine.push(scheduled.elapsed());
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => eprintln!("request failed: {error}"),
                    }
                    if let Some(interval) = interval {
                        next += interval;
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    for t in threads {
        t.join().unwrap();
    }
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort();
    let requests = requests.load(Ordering::Relaxed);
    let per = if form { 1 } else { EVENTS_PER_BATCH as u64 };
    Run { requests, events: requests * per, seconds: elapsed, cpu, latencies }
}

/// The request context of the floor's records.
const FLOOR_CONTEXT: &str = r#"{"session":"","user_id":null,"username":"","ip":"127.0.0.1","host":"127.0.0.1","agent":"bench","path":"/v1/batch","referer":"","accept_language":"","client_id":null,"course_id":"","org_id":"","enterprise_uuid":""}"#;

/// How the floor reads a batch body.
type ReadFn = fn(&str, &IngestRules, &str, &mut LastPage) -> Vec<Result<EventText, Refused>>;

/// The server's way: each event read in the pass that finds its end.
fn read_in_one_pass(body: &str, rules: &IngestRules, received: &str, pages: &mut LastPage) -> Vec<Result<EventText, Refused>> {
    read_batch(body.as_bytes(), 500, rules, received, pages).unwrap()
}

/// The design before: the envelope split into events first, then each read.
fn split_then_read(body: &str, rules: &IngestRules, received: &str, pages: &mut LastPage) -> Vec<Result<EventText, Refused>> {
    let spans = split_envelope(body.as_bytes(), 500).unwrap();
    spans.into_iter().map(|span| read_event(body.as_bytes(), span, rules, received, pages)).collect()
}

/// How the floor's thread waits for its appends.
#[derive(Clone, Copy)]
enum Appends {
    /// Each append is awaited before the next batch is read.
    Awaited,
    /// The next batch is read while the log writes the last (one append in flight, as
    /// a worker serving concurrent requests has).
    Pipelined,
}

/// The same work without HTTP, in one thread: parse, build, process, serialize,
/// append with fsync per batch.
fn floor(seconds: f64, commit: CommitPolicy, read: ReadFn, appends: Appends) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig { dir: dir.path().join("wal"), commit, ..WalConfig::default() }).unwrap();
    let rules = IngestRules::new(event_model::processors::NameMode::Warn, Vec::new(), 50_000, event_model::routing::Counters::new());
    let context = FLOOR_CONTEXT;
    // Bodies are made before the clock starts: the floor is the server's work only.
    let bodies: Vec<String> = (0..200).map(batch_body).collect();
    let started = Instant::now();
    let mut events = 0u64;
    let mut n = 0usize;
    let mut in_flight = None;
    while started.elapsed().as_secs_f64() < seconds {
        n += 1;
        let body = &bodies[n % bodies.len()];
        let received = event_model::timestamp::format(event_model::timestamp::now());
        let mut record = RecordBuilder::new(context, body.len());
        let mut pages = LastPage::default();
        for outcome in read(body, &rules, &received, &mut pages) {
            record.push(&outcome.unwrap().json);
        }
        events += record.len() as u64;
        let appending = wal.submit_blocking(vec![record.finish()]).unwrap();
        let done = match appends {
            Appends::Awaited => Some(appending),
            Appends::Pipelined => in_flight.replace(appending),
        };
        let Some(done) = done else { continue };
        let appended = done.wait().unwrap();
        // Segments go as a consumer would let them, so the log never reaches its cap.
        if n.is_multiple_of(1024) {
            wal.remove_before(appended.end).unwrap();
        }
    }
    if let Some(last) = in_flight {
        last.wait().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    wal.shutdown();
    (events as f64 / secs, events)
}

/// The records the floor appends (the bench's batches read as the server reads them),
/// made before any clock starts.
fn floor_records(count: usize) -> Vec<Vec<u8>> {
    let rules = IngestRules::new(event_model::processors::NameMode::Warn, Vec::new(), 50_000, event_model::routing::Counters::new());
    let received = event_model::timestamp::format(event_model::timestamp::now());
    (0..count)
        .map(|n| {
            let body = batch_body(n as u64);
            let mut record = RecordBuilder::new(FLOOR_CONTEXT, body.len());
            let mut pages = LastPage::default();
            for outcome in read_batch(body.as_bytes(), 500, &rules, &received, &mut pages).unwrap() {
                record.push(&outcome.unwrap().json);
            }
            record.finish()
        })
        .collect()
}

/// The tracking-log sink's own work in one thread, without the file: stored records
/// → legacy lines through the default routing's chain, from the records read in place
/// and (the design before) through events built from them. Events per second each.
fn sink_floor(seconds: f64) -> (f64, f64) {
    let routing = event_model::config::RoutingConfig::from_toml(tracking_server::config::DEFAULT_ROUTING).unwrap();
    let (chain, options) = tracking_server::convert::tracking_log_pipeline(&routing).unwrap();
    assert!(chain.runs_on_views(), "the default routing runs on views");
    let records = floor_records(200);
    let mut lines = String::with_capacity(1 << 16);
    let mut rate = |render: RenderFn| {
        let started = Instant::now();
        let (mut events, mut n) = (0u64, 0usize);
        while started.elapsed().as_secs_f64() < seconds / 2.0 / ROUNDS as f64 {
            lines.clear();
            events += render(&records[n % records.len()], &chain, options.max_line_chars, &mut lines).unwrap().lines;
            n += 1;
            std::hint::black_box(&lines);
        }
        events as f64 / started.elapsed().as_secs_f64()
    };
    // Interleaved rounds, medians: this machine's speed drifts within seconds.
    const ROUNDS: usize = 8;
    let (mut views, mut events) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        views.push(rate(render_views));
        events.push(rate(render_events));
    }
    (median(views), median(events))
}

/// The floor without fsync (CPU only), beside the same with each append awaited and
/// with the reading of the design before, in interleaved rounds (this machine's speed
/// drifts within seconds).
fn report_cpu_floor(seconds: f64) {
    let (mut now, mut awaited, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..4 {
        now.push(floor(seconds / 12.0, CommitPolicy::None, read_in_one_pass, Appends::Pipelined).0);
        awaited.push(floor(seconds / 12.0, CommitPolicy::None, read_in_one_pass, Appends::Awaited).0);
        before.push(floor(seconds / 12.0, CommitPolicy::None, split_then_read, Appends::Pipelined).0);
    }
    let (now, awaited, before) = (median(now), median(awaited), median(before));
    println!(
        "  floor without fsync (CPU only), the next batch read while the log writes the last: {now:.0} events/s; \
         each append awaited before the next batch is read: {awaited:.0} events/s (ratio {:.2}); \
         split first, then read (the design before): {before:.0} events/s (ratio {:.2})",
        now / awaited,
        now / before
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

type RenderFn = fn(&[u8], &event_model::config::Chain, usize, &mut String) -> Result<Rendered, tracking_server::record::RecordError>;

fn report_sink_floor(seconds: f64) {
    let (views, events) = sink_floor(seconds);
    println!(
        "  tracking-log sink floor (records → lines, one thread, no file): {views:.0} events/s read in place, {events:.0} through built events (ratio {:.2})",
        views / events
    );
}

/// Single-event form posts driven by `wrk` (a lighter client than ours, so the server
/// gets more of the two cores); `None` when wrk is not installed.
fn wrk_form_posts(url: &str, cpu_seconds: &dyn Fn() -> f64, seconds: f64) -> Option<Run> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("form.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             done = function(summary, latency, requests)\n  for _, p in ipairs({{50, 99, 99.9}}) do io.write(string.format(\"percentile %g %d\\n\", p, latency:percentile(p))) end\nend\n",
            form_body(1)
        ),
    )
    .ok()?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let output = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{}s", seconds as u64), "-s"])
        .arg(&script)
        .arg(format!("{url}/event"))
        .output()
        .ok()?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    let requests: u64 = text.lines().find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))?;
    let micros =
        |p: &str| text.lines().find_map(|l| l.strip_prefix(&format!("percentile {p} "))).and_then(|v| v.trim().parse::<u64>().ok());
    // wrk reports percentiles; a three-point latency list reproduces them in `Run`.
    let (p50, p99, p999) = (micros("50")?, micros("99")?, micros("99.9")?);
    let mut latencies = vec![Duration::from_micros(p50); 600];
    latencies.extend(vec![Duration::from_micros(p99); 390]);
    latencies.extend(vec![Duration::from_micros(p999); 10]);
    Some(Run { requests, events: requests, seconds: elapsed.min(seconds + 1.0).max(seconds), cpu, latencies })
}

/// Waits until the tracking-log sink has caught up, so one phase's backlog does not
/// load the next.
fn settle(server: &ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if server.process.metric("tracking_sink_lag_records{sink=\"root/tracking_logs/logger\"}") == 0.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A stand-in for Segment's HTTP API that answers every batch with `status`.
fn fake_segment(status: u16) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = if status == 200 { r#"{"success": true}"# } else { r#"{"success": false}"# };
                    let response =
                        format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
                    if reader.get_mut().write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The same load beside a healthy Segment sink and beside one whose write key was
/// revoked (401 to everything), with a 64 MiB log: accepted events/s of each, and
/// how many of the acknowledged events are in the research tracking log.
fn segment_outage(connections: usize, seconds: f64) {
    println!("  a Segment sink that answers 401 beside the same load with a healthy one ([wal] max_bytes = 64 MiB):");
    let mut rates = Vec::new();
    println!("  (at full load the tracking log, whose policy is `block`, answers 503 when it falls 64 MiB behind: the first line shows that part)");
    for (label, status) in [("no Segment sink", 0), ("Segment healthy", 200), ("Segment answering 401", 401)] {
        let routing = tracking_server::config::default_routing_section();
        let extra = if status == 0 {
            format!("[wal]\nmax_bytes = 67108864\n{routing}")
        } else {
            format!(
            "[wal]\nmax_bytes = 67108864\n{routing}\n[routing.backends.segment]\nprocessors = [{{ type = \"segment_filter\", allowlist = [\"edx.ui.lms.sequence.next_selected\"] }}]\n[routing.backends.segment.backends.segment]\ntype = \"segment\"\nendpoint = \"{}\"\nmax_backoff_ms = 2000\n",
            fake_segment(status)
        )
        };
        let server = ServerProcess::start_with(&extra, &[("TRACKING_SEGMENT_WRITE_KEY", "bench-write-key")]);
        drive(&server, "/v1/batch", connections, 1.0, None, false); // warm-up
        let run = drive(&server, "/v1/batch", connections, seconds, None, false);
        report(label, &run);
        settle(&server);
        let accepted = server.process.metric("tracking_events_accepted_total");
        let lines = server.log_lines();
        let spilled = server.process.metric("tracking_sink_spilled_total{sink=\"root/segment/segment\"}");
        let unavailable = server.process.metric("tracking_requests_unavailable_total");
        println!(
            "    tracking.log: {lines} lines for {accepted:.0} acknowledged events ({:.2}%); 503 answers: {unavailable:.0}; Segment events spilled: {spilled:.0}",
            100.0 * lines as f64 / accepted.max(1.0)
        );
        rates.push(run.events as f64 / run.seconds);
    }
    println!(
        "  ratio accepted events/s, Segment answering 401 / healthy: {:.2} (target ≥ 0.9); healthy / no Segment sink: {:.2}",
        rates[2] / rates[1],
        rates[1] / rates[0]
    );
}

/// `/event` form posts with wrk, beside the framework's own floor: an actix-web
/// handler that answers /event doing nothing, in this process (its CPU is the
/// handler's: wrk is another process). `false` without wrk.
fn event_beside_bare(server: &ServerProcess, seconds: f64) -> bool {
    let Some(form) = wrk_form_posts(&server.url, &|| server.cpu_seconds(), seconds) else { return false };
    report("/event form posts (wrk)", &form);
    let bare_url = bare_handler();
    if let Some(bare) = wrk_form_posts(&bare_url, &|| common::cpu_seconds(std::process::id()), seconds) {
        report("bare actix-web /event (wrk)", &bare);
        let per_cpu = |r: &Run| r.requests as f64 / r.cpu.max(0.01);
        println!(
            "  /event / bare handler: {:.2} of its requests/s, {:.2} of its requests per CPU-second ({:.0} vs {:.0})",
            (form.requests as f64 / form.seconds) / (bare.requests as f64 / bare.seconds),
            per_cpu(&form) / per_cpu(&bare),
            per_cpu(&form),
            per_cpu(&bare)
        );
    }
    true
}

/// Starts an actix-web server whose `POST /event` takes the body (as any handler must,
/// for the connection to stay open) and answers 200 without looking at it.
fn bare_handler() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            use actix_web::{web, App, HttpResponse, HttpServer};
            let server =
                HttpServer::new(|| App::new().route("/event", web::post().to(|_body: web::Bytes| async { HttpResponse::Ok().finish() })))
                    .workers(2)
                    .bind("127.0.0.1:0")
                    .unwrap();
            tx.send(format!("http://{}", server.addrs()[0])).unwrap();
            server.run().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The server's own request-duration histogram for `route` (status 200): cumulative
/// counts by upper bound in seconds, as `/metrics` exports them.
fn server_histogram(server: &ServerProcess, route: &str) -> Vec<(f64, f64)> {
    let text = ureq::get(&format!("{}/metrics", server.url)).call().ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
    let prefix = format!("tracking_http_request_duration_seconds_bucket{{route=\"{route}\",status=\"200\",le=\"");
    text.lines()
        .filter_map(|line| {
            let (le, count) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, count.trim().parse().ok()?))
        })
        .collect()
}

/// What the server itself took (from the middleware's start to the answer, the
/// commit included) during a run: the bucket bounds its p50 and p99 fall under. The
/// difference to the client's figures is the load generator and the kernel.
fn report_server_side(before: &[(f64, f64)], after: &[(f64, f64)]) {
    let counts: Vec<(f64, f64)> = after.iter().map(|&(le, n)| (le, n - before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1))).collect();
    let Some(&(_, total)) = counts.last() else { return };
    let under = |p: f64| counts.iter().find(|&&(_, n)| n >= p * total).map_or(f64::INFINITY, |&(le, _)| le * 1e3);
    println!("  {:<28} server side (its histogram): p50 ≤ {} ms  p99 ≤ {} ms", "", under(0.5), under(0.99));
}

fn report(label: &str, run: &Run) {
    let per_second = run.events as f64 / run.seconds;
    let cores = run.cpu / run.seconds;
    println!(
        "  {label:<28} {:>9.0} events/s  {:>6.0} req/s  server CPU {:.2} cores → {:>9.0} events/s per core  latency p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms",
        per_second,
        run.requests as f64 / run.seconds,
        cores,
        per_second / cores.max(0.01),
        run.percentile(0.5).as_secs_f64() * 1e3,
        run.percentile(0.99).as_secs_f64() * 1e3,
        run.percentile(0.999).as_secs_f64() * 1e3,
    );
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 8) as f64;
    let connections = env_or("BENCH_CONNECTIONS", 32) as usize;
    println!("ingest over loopback, batches of {EVENTS_PER_BATCH} events, durable commit (fsync), {connections} connections, {seconds} s per phase");
    println!("  (the load generator runs on the same 2 cores as the server)");

    if std::env::var("BENCH_ONLY_SEGMENT").is_ok() {
        segment_outage(connections, seconds);
        return;
    }
    if std::env::var("BENCH_ONLY_FLOOR").is_ok() {
        report_cpu_floor(seconds);
        report_sink_floor(seconds);
        return;
    }
    let only_event = std::env::var("BENCH_ONLY_EVENT").is_ok();
    let server = ServerProcess::start();
    drive(&server, "/v1/batch", connections, 1.0, None, false); // warm-up
    if only_event {
        event_beside_bare(&server, seconds);
        return;
    }
    let before = server_histogram(&server, "/v1/batch");
    let full = drive(&server, "/v1/batch", connections, seconds, None, false);
    report("/v1/batch full load", &full);
    report_server_side(&before, &server_histogram(&server, "/v1/batch"));
    settle(&server);
    let half_rate = full.requests as f64 / full.seconds / 2.0;
    let before = server_histogram(&server, "/v1/batch");
    let half = drive(&server, "/v1/batch", connections, seconds, Some(half_rate), false);
    report("/v1/batch half load", &half);
    report_server_side(&before, &server_histogram(&server, "/v1/batch"));
    settle(&server);
    if std::env::var("BENCH_ONLY_BATCH").is_ok() {
        return;
    }
    if !event_beside_bare(&server, seconds) {
        let form = drive(&server, "/event", connections, seconds, None, true);
        report("/event form posts", &form);
    }
    drop(server);
    segment_outage(connections, seconds);

    let (floor_rate, _) = floor(seconds, CommitPolicy::Fsync, read_in_one_pass, Appends::Pipelined);
    report_cpu_floor(seconds);
    let full_rate = full.events as f64 / full.seconds;
    println!("  floor (one thread, no HTTP: parse + process + serialize + append, fsync per batch): {floor_rate:.0} events/s");
    println!("  ratio full-load HTTP / floor: {:.2}", full_rate / floor_rate);
    report_sink_floor(seconds);
    println!("  reproduce: cargo bench -p tracking-server --bench ingest   (BENCH_SECONDS, BENCH_CONNECTIONS)");
}

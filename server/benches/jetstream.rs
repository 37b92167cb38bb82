//! End-to-end throughput through JetStream: ingest → write-ahead log → `nats` sink →
//! stream → `relay` → the relay's log → its tracking log, beside the single-node
//! direct path (ingest → log → tracking log) measured in the same run with the same
//! load; then again with an ingest node that only publishes (the relay's tracking
//! log is the only one). A real `nats-server -js` on loopback, real server and relay
//! processes.
//!
//! Run with `make bench` or `cargo bench -p tracking-server --bench jetstream`
//! (BENCH_SECONDS=N of load per phase, BENCH_CONNECTIONS=N clients).

mod common;

use common::{batch_body, cpu_seconds, env_or, Process, EVENTS_PER_BATCH};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracking_server::config::default_routing_section;

const TRACKING_LOG_SINK: &str = "root/tracking_logs/logger";
const JETSTREAM_SINK: &str = "root/jetstream";

fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server is not installed (scripts/install-deps.sh test installs it; or set NATS_SERVER)")
}

struct Nats {
    child: Child,
    url: String,
}

impl Nats {
    fn start(dir: &std::path::Path) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("nats.log");
        let child = Command::new(nats_server_bin())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("jetstream"))
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("Server is ready") {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, url: format!("nats://127.0.0.1:{port}") }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream's message count and stored bytes.
fn stream_state(url: &str) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connecting to nats-server");
        let mut stream = async_nats::jetstream::new(client).get_stream("TRACKING").await.expect("the stream");
        let info = stream.info().await.expect("the stream's state");
        (info.state.messages, info.state.bytes)
    })
}

fn write_config(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndemo = false\n[limits]\nrate_per_second = 0\n{body}",
            dir.join(name).display()
        ),
    )
    .unwrap();
    path
}

/// Posts batches from `connections` threads for `seconds`; returns the events accepted.
fn load(url: &str, connections: usize, seconds: f64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..connections)
        .map(|t| {
            let (stop, accepted, url) = (stop.clone(), accepted.clone(), format!("{url}/v1/batch"));
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let mut n = t as u64 * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match agent.post(&url).set("Content-Type", "text/plain;charset=UTF-8").send_string(&batch_body(n)) {
                        Ok(response) => {
                            let text = response.into_string().unwrap_or_default();
                            accepted.fetch_add(text.matches("\"accepted\"").count() as u64, Ordering::Relaxed);
                        }
                        Err(error) => eprintln!("request failed: {error}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    accepted.load(Ordering::Relaxed)
}

/// What a phase measured.
struct Phase {
    accepted: u64,
    load_seconds: f64,
    /// From the start of the load until the last event is in the final tracking log.
    total_seconds: f64,
    /// Events still on their way when the load stopped.
    backlog_at_stop: f64,
    max_publish_lag: f64,
    max_relay_pending: f64,
    /// CPU seconds each process used from the start of the load until done.
    cpu: Vec<(&'static str, f64)>,
}

/// Drives the load while sampling lag, then waits until `done()` reaches the
/// accepted count.
fn phase(ingest: &Process, relay: Option<&Process>, processes: &[(&'static str, u32)], connections: usize, seconds: f64) -> Phase {
    let sampling = Arc::new(AtomicBool::new(true));
    let samples = {
        let (sampling, ingest_url, relay_url) = (sampling.clone(), ingest.url.clone(), relay.map(|r| r.url.clone()));
        std::thread::spawn(move || {
            let get = |url: &str, sample: &str| {
                let text = ureq::get(&format!("{url}/metrics")).call().ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
                text.lines()
                    .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            let (mut lag, mut pending) = (0f64, 0f64);
            while sampling.load(Ordering::Relaxed) {
                if let Some(relay_url) = &relay_url {
                    lag = lag.max(get(&ingest_url, &format!("tracking_sink_lag_records{{sink=\"{JETSTREAM_SINK}\"}}")));
                    pending = pending.max(get(relay_url, "tracking_relay_pending_messages"));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (lag, pending)
        })
    };
    let final_log = relay.unwrap_or(ingest);
    let before = final_log.delivered(TRACKING_LOG_SINK);
    let cpu_before: Vec<f64> = processes.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let started = Instant::now();
    let accepted = load(&ingest.url, connections, seconds);
    let load_seconds = started.elapsed().as_secs_f64();
    let backlog_at_stop = accepted as f64 - (final_log.delivered(TRACKING_LOG_SINK) - before);
    let deadline = Instant::now() + Duration::from_secs(600);
    while final_log.delivered(TRACKING_LOG_SINK) - before < accepted as f64 {
        assert!(
            Instant::now() < deadline,
            "the tracking log did not catch up (events spilled at ingest: {})",
            ingest.metric(&format!("tracking_sink_spilled_total{{sink=\"{JETSTREAM_SINK}\"}}"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let total_seconds = started.elapsed().as_secs_f64();
    let cpu = processes.iter().zip(cpu_before).map(|((name, pid), before)| (*name, cpu_seconds(*pid) - before)).collect();
    sampling.store(false, Ordering::Relaxed);
    let (max_publish_lag, max_relay_pending) = samples.join().unwrap();
    Phase { accepted, load_seconds, total_seconds, backlog_at_stop, max_publish_lag, max_relay_pending, cpu }
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 10) as f64;
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    println!("JetStream end to end vs single node: batches of {EVENTS_PER_BATCH} tracking-log events, durable commit (fsync), {connections} connections, {seconds} s of load per phase");
    println!("  (nats-server, the ingest node, the relay and the load generator share this machine's cores)");
    let dir = tempfile::tempdir().unwrap();

    // Single node, direct: ingest → log → tracking log.
    let direct = {
        let ingest = Process::start(&write_config(dir.path(), "direct", &default_routing_section()), &[]);
        load(&ingest.url, connections, 1.0); // warm-up
        phase(&ingest, None, &[("ingest", ingest.child.id())], connections, seconds)
    };

    // Through JetStream: ingest → log → stream → relay → its log → tracking log.
    let nats = Nats::start(dir.path());
    // `block`: a nats sink slower than ingest holds ingest back, so every accepted event
    // goes the whole way; with `spill` (the default) what it is behind by waits in its
    // spill files for `replay-spill`, outside the path measured.
    let nats_backend = format!("[routing.backends.jetstream]\ntype = \"nats\"\nurl = \"{}\"\nwhen_full = \"block\"\n", nats.url);
    let ingest_routing = format!("{}\n{nats_backend}", default_routing_section());
    let ingest = Process::start(&write_config(dir.path(), "ingest", &ingest_routing), &[]);
    let relay = Process::start(&write_config(dir.path(), "relay", &format!("[relay]\nurl = \"{}\"\n", nats.url)), &["relay"]);
    let through_phase = |ingest: &Process| {
        let stored_before = relay.metric("tracking_relay_messages_total{outcome=\"stored\"}");
        load(&ingest.url, connections, 1.0); // warm-up
        let deadline = Instant::now() + Duration::from_secs(120);
        while relay.metric("tracking_relay_pending_messages") > 0.0
            || relay.metric("tracking_relay_messages_total{outcome=\"stored\"}") - stored_before < ingest.delivered(JETSTREAM_SINK)
        {
            assert!(Instant::now() < deadline, "the warm-up did not drain");
            std::thread::sleep(Duration::from_millis(50));
        }
        phase(
            ingest,
            Some(&relay),
            &[("ingest", ingest.child.id()), ("nats-server", nats.child.id()), ("relay", relay.child.id())],
            connections,
            seconds,
        )
    };
    let through = through_phase(&ingest);
    let published = ingest.delivered(JETSTREAM_SINK);
    let (messages, bytes) = stream_state(&nats.url);
    drop(ingest);

    // The same, with an ingest node that only publishes (no tracking log of its own):
    // the topology of several ingest nodes whose research log is the relay's.
    let ingest = Process::start(&write_config(dir.path(), "ingest-publish-only", &nats_backend), &[]);
    let publishing = through_phase(&ingest);
    drop(ingest);

    let rate = |p: &Phase| p.accepted as f64 / p.load_seconds;
    let end_to_end = |p: &Phase| p.accepted as f64 / p.total_seconds;
    println!(
        "  single node, direct          ingest {:>8.0} events/s   end to end (into tracking.log) {:>8.0} events/s   backlog when the load stopped {:>7.0}, drained in {:.2} s",
        rate(&direct),
        end_to_end(&direct),
        direct.backlog_at_stop.max(0.0),
        direct.total_seconds - direct.load_seconds
    );
    println!(
        "  through JetStream + relay    ingest {:>8.0} events/s   end to end (into the relay's tracking.log) {:>8.0} events/s   backlog when the load stopped {:>7.0}, drained in {:.2} s",
        rate(&through),
        end_to_end(&through),
        through.backlog_at_stop.max(0.0),
        through.total_seconds - through.load_seconds
    );
    println!(
        "  ingest publishing only       ingest {:>8.0} events/s   end to end (into the relay's tracking.log) {:>8.0} events/s   backlog when the load stopped {:>7.0}, drained in {:.2} s",
        rate(&publishing),
        end_to_end(&publishing),
        publishing.backlog_at_stop.max(0.0),
        publishing.total_seconds - publishing.load_seconds
    );
    println!(
        "  lag during the load: JetStream sink max {:.0} events behind the ingest log; relay consumer max {:.0} messages pending",
        through.max_publish_lag, through.max_relay_pending
    );
    for (label, p) in [("single node", &direct), ("JetStream", &through), ("publishing only", &publishing)] {
        let cpu: Vec<String> = p.cpu.iter().map(|(name, s)| format!("{name} {:.2}", s / p.total_seconds)).collect();
        println!("  CPU cores used until done, {label}: {}", cpu.join(", "));
    }
    println!("  events published to the stream in this run (warm-up included): {published:.0}");
    println!(
        "  the stream: {messages} messages, {bytes} bytes stored: {:.1} events per message, {:.0} bytes per event",
        published / messages as f64,
        bytes as f64 / published
    );
    println!("  ratio end to end JetStream / direct: {:.2}", end_to_end(&through) / end_to_end(&direct));
    println!("  ratio end to end JetStream, ingest publishing only / direct: {:.2}", end_to_end(&publishing) / end_to_end(&direct));
    println!("  reproduce: cargo bench -p tracking-server --bench jetstream   (BENCH_SECONDS, BENCH_CONNECTIONS; NATS_SERVER=path)");
}

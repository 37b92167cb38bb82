//! Real `nats-server -js` processes on loopback ports chosen at run time (one node or
//! a three-node cluster), a JetStream client to read what a stream holds, `relay`
//! child processes, and a load generator that records acknowledged ids.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::common::{dies_with_the_test, read_lines};

/// `nats-server`: `$NATS_SERVER`, else on `PATH`, else Debian's `/usr/sbin`.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file());
    on_path.expect("nats-server is not installed (scripts/install-deps.sh test installs it; or set NATS_SERVER)")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `nats-server -js` process; its store directory outlives restarts.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    pub name: String,
    args: Vec<String>,
    pub store: PathBuf,
    log: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl Nats {
    /// A single JetStream server.
    pub fn start() -> Nats {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut nats = Nats::new("n1", free_port(), dir, Vec::new());
        nats.spawn();
        nats
    }

    /// A JetStream cluster of `n` servers routed to each other.
    pub fn cluster(n: usize) -> Vec<Nats> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes: Vec<Nats> = (0..n)
            .map(|i| {
                let routes: Vec<String> =
                    cluster_ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| format!("nats://127.0.0.1:{p}")).collect();
                let args = vec![
                    "--cluster_name".into(),
                    "tracking-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", cluster_ports[i]),
                    "--routes".into(),
                    routes.join(","),
                ];
                Nats::new(&format!("n{}", i + 1), free_port(), dir.clone(), args)
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        nodes
    }

    fn new(name: &str, port: u16, dir: Arc<tempfile::TempDir>, cluster_args: Vec<String>) -> Nats {
        let store = dir.path().join(format!("{name}-store"));
        let log = dir.path().join(format!("{name}.log"));
        let mut args: Vec<String> =
            ["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-n", name, "-sd"].iter().map(|s| s.to_string()).collect();
        args.push(store.display().to_string());
        args.push("-l".into());
        args.push(log.display().to_string());
        args.extend(cluster_args);
        Nats { child: None, port, name: name.into(), args, store, log, _dir: dir }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let from = std::fs::metadata(&self.log).map(|m| m.len() as usize).unwrap_or(0);
        let child = dies_with_the_test(&mut Command::new(nats_server_bin()))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.get(from..).is_some_and(|new| new.contains("Server is ready")) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nats-server {} exited ({status}):\n{}", self.name, log.get(from..).unwrap_or(""));
            }
            assert!(Instant::now() < deadline, "nats-server {} did not start:\n{}", self.name, log.get(from..).unwrap_or(""));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGTERM, and wait for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            child.wait().unwrap();
        }
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            child.wait().unwrap();
        }
    }

    /// Starts again on the same port and store.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The client URLs of the running nodes, comma-separated.
pub fn urls(nodes: &[Nats]) -> String {
    nodes.iter().filter(|n| n.is_running()).map(Nats::url).collect::<Vec<_>>().join(",")
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

async fn jetstream(urls: &str) -> jetstream::Context {
    let servers: Vec<&str> = urls.split(',').collect();
    let client =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5)).connect(servers).await.expect("connecting to NATS");
    jetstream::new(client)
}

/// Waits until JetStream answers API calls (a cluster has elected its meta leader).
pub fn wait_for_jetstream(urls: &str) {
    block_on(async {
        let js = jetstream(urls).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        // The API answers "stream not found" once the meta leader is elected.
        let ready = |r: Result<stream::Stream, jetstream::context::GetStreamError>| matches!(r.map(|_| ()).map_err(|e| e.kind()), Err(jetstream::context::GetStreamErrorKind::JetStream(e)) if e.code() == 404);
        while !ready(js.get_stream("NO_SUCH_STREAM").await) {
            assert!(Instant::now() < deadline, "JetStream did not become available");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The stream's information, if it exists.
pub fn stream_info(urls: &str, name: &str) -> Option<stream::Info> {
    block_on(async {
        let js = jetstream(urls).await;
        let mut stream = js.get_stream(name).await.ok()?;
        stream.info().await.ok().cloned()
    })
}

/// Creates a stream as an operator might have.
pub fn create_stream(urls: &str, config: stream::Config) {
    block_on(async { jetstream(urls).await.create_stream(config).await.expect("creating the stream") });
}

/// Deletes a stream.
pub fn delete_stream(urls: &str, name: &str) {
    block_on(async { jetstream(urls).await.delete_stream(name).await.expect("deleting the stream") });
}

/// An event as the stream holds it, with its message's sequence, subject and id (a
/// message holds a run of a request's events with one subject).
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub payload: Value,
    pub raw: Vec<u8>,
}

/// Every event of the stream, in order, read by sequence number from the stream
/// leader (no consumer: it works while a cluster node is down).
pub fn stream_messages(urls: &str, name: &str) -> Vec<StoredMessage> {
    block_on(async {
        let js = jetstream(urls).await;
        let mut stream = js.get_stream(name).await.expect("the stream exists");
        let state = stream.info().await.unwrap().state.clone();
        let stream = &stream;
        let fetched: Vec<_> = futures_util::stream::iter(state.first_sequence..=state.last_sequence)
            .map(|sequence| async move {
                for _ in 0..50 {
                    match stream.get_raw_message(sequence).await {
                        Ok(message) => return Some(message),
                        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => return None,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                panic!("cannot read message {sequence}");
            })
            .buffered(64)
            .collect()
            .await;
        fetched
            .into_iter()
            .flatten()
            .flat_map(|message| {
                let payload: Value = serde_json::from_slice(&message.payload).expect("the payload is JSON");
                let shared = payload["context"].as_object().expect("a message is a run of a record: {payload}").clone();
                let msg_id = message.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_owned());
                let events = payload["events"].as_array().expect("a message holds events").clone();
                // Each event whole, as a record reads: its own context over the shared one.
                let events = events.into_iter().map(move |mut event| {
                    let mut context = shared.clone();
                    if let Some(own) = event["context"].as_object() {
                        context.extend(own.clone());
                    }
                    event["context"] = Value::Object(context);
                    event
                });
                events.map(move |event| StoredMessage {
                    sequence: message.sequence,
                    subject: message.subject.to_string(),
                    msg_id: msg_id.clone(),
                    raw: serde_json::to_vec(&event).unwrap(),
                    payload: event,
                })
            })
            .collect()
    })
}

/// Waits until the stream holds at least `n` events, then returns them all.
pub fn wait_for_messages(urls: &str, name: &str, n: usize, timeout: Duration) -> Vec<StoredMessage> {
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    loop {
        let messages = stream_info(urls, name).map(|i| i.state.messages).unwrap_or(0);
        if messages > 0 && messages != seen {
            seen = messages;
            let events = stream_messages(urls, name);
            if events.len() >= n {
                return events;
            }
        }
        if Instant::now() > deadline {
            return if seen > 0 { stream_messages(urls, name) } else { Vec::new() };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one Prometheus sample (`name{labels}` exactly as exported), 0 if absent.
pub fn metric(base_url: &str, sample: &str) -> f64 {
    let text = ureq::get(&format!("{base_url}/metrics")).timeout(Duration::from_secs(10)).call().unwrap().into_string().unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// Waits until `sample` reaches `value` (the last value is returned either way).
pub fn wait_for_metric(base_url: &str, sample: &str, value: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let v = metric(base_url, sample);
        if v >= value || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The routing of an ingest node: the default tracking log, and every event to JetStream.
pub fn ingest_config(nats_urls: &str, nats_options: &str) -> String {
    let default_routing = tracking_server::config::default_routing_section();
    format!(
        r#"
[limits]
rate_per_second = 0
{default_routing}
[routing.backends.jetstream]
type = "nats"
url = "{nats_urls}"
{nats_options}
"#
    )
}

/// The sink label of the JetStream sink in [`ingest_config`].
pub const JETSTREAM_SINK: &str = "root/jetstream";

/// Runs `tracking-server` with a configuration until it exits; returns whether it
/// succeeded and its stderr.
pub fn run_to_exit(config: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{config}", dir.path().join("data").display())).unwrap();
    let mut child = dies_with_the_test(&mut Command::new(env!("CARGO_BIN_EXE_tracking-server")))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("TRACKING_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tracking-server did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `tracking-server relay` process and its data directory.
pub struct Relay {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// A relay on `nats_urls` with the default routing (the tracking log) and
    /// `extra` TOML in its `[relay]` section.
    pub fn start(nats_urls: &str, extra: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[relay]\nurl = \"{nats_urls}\"\n{extra}\n", data.display()),
        )
        .unwrap();
        let mut relay = Relay { child: None, url: String::new(), data, config, _dir: dir };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        let mut child = dies_with_the_test(&mut Command::new(env!("CARGO_BIN_EXE_tracking-server")))
            .arg("--config")
            .arg(&self.config)
            .arg("relay")
            .env("TRACKING_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tracking-server relay");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => panic!("the relay exited before listening"),
            }
        };
        std::thread::spawn(move || for _ in lines {});
        self.url = url;
        self.child = Some(child);
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    pub fn kill9(&mut self) {
        super::common::kill9(&mut self.child);
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        super::common::terminate(self.child.take().expect("running"), "the relay")
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.join("tracking.log")
    }

    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.log_path())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until the file at `path` has at least `n` lines.
pub fn wait_for_lines(path: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = read_lines(path);
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Clients posting batches of 20 tracking-log events to `url` until `stop`; the ids
/// the server acknowledged as accepted are recorded.
pub struct Load {
    pub acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, clients: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|t| {
                let (url, stop, acked) = (url.to_owned(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let events: Vec<Value> = (0..20)
                            .map(|i| json!({"id": uuid::Uuid::now_v7().to_string(), "name": "edx.test.load.sent", "data": {"client": t, "batch": n, "i": i}}))
                            .collect();
                        n += 1;
                        let result = agent.post(&format!("{url}/v1/batch")).set("Content-Type", "application/json").send_string(&json!({ "events": events }).to_string());
                        match result {
                            Ok(response) => {
                                let reply: Value = response.into_json().unwrap();
                                let mut acked = acked.lock().unwrap();
                                for r in reply["results"].as_array().unwrap() {
                                    if r["status"] == "accepted" {
                                        acked.push(r["id"].as_str().unwrap().to_owned());
                                    }
                                }
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(50)),
                        }
                    }
                })
            })
            .collect();
        Load { acked, stop, threads }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the clients; returns every acknowledged id.
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// How many times each event id occurs in the stream's payloads.
pub fn id_counts(messages: &[StoredMessage]) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for m in messages {
        *counts.entry(m.payload["id"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Asserts that every acknowledged id is in the stream exactly once.
pub fn assert_each_once(acked: &[String], messages: &[StoredMessage]) {
    let counts = id_counts(messages);
    let missing: Vec<&String> = acked.iter().filter(|id| !counts.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are not in the stream (first: {:?})",
        missing.len(),
        acked.len(),
        missing.first()
    );
    let doubled: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "{} events are in the stream more than once (e.g. {:?})", doubled.len(), doubled.first());
}

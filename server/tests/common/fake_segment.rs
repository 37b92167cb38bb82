//! A fake Segment HTTP Tracking API on a loopback port: it checks what Segment
//! documents for `POST /v1/batch` (Basic auth with the write key as the user name,
//! `Content-Type: application/json`, at most 500 KB a request and 32 KB a message,
//! `type`, `messageId`, a `userId` or `anonymousId`, `event` for `track`, RFC 3339
//! `timestamp` and `sentAt`), keeps what it accepted, and can be made to fail: any
//! status with an optional `Retry-After`, a slow answer, or no listener at all.
//!
//! Include it with `#[path = "common/fake_segment.rs"] mod fake_segment;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Segment's documented limits, as the sink's defaults count them.
pub const MAX_BATCH_BYTES: usize = 500_000;
pub const MAX_MESSAGE_BYTES: usize = 32_000;

/// How the fake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Checks and accepts (200), or answers 400 for a request Segment would refuse.
    Accept,
    /// Checks and accepts after a delay.
    Slow(Duration),
    /// Answers this status, with `Retry-After` if given, and this body; keeps nothing.
    Fail { status: u16, retry_after: Option<String>, body: String },
    /// Not listening: connections are refused.
    Down,
}

impl Mode {
    pub fn fail(status: u16) -> Mode {
        Mode::Fail { status, retry_after: None, body: format!("{{\"error\": \"fake failure {status}\"}}") }
    }
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub status: u16,
    pub messages: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    accepted: Vec<Value>,
    requests: Vec<Request>,
    violations: Vec<String>,
}

struct Shared {
    key: String,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn mode(&self) -> Mode {
        self.state.lock().unwrap().mode.clone().unwrap_or(Mode::Accept)
    }
}

/// The running fake.
pub struct FakeSegment {
    pub url: String,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSegment {
    /// Listens on 127.0.0.1 (a port chosen by the system) and expects `write_key`.
    pub fn start(write_key: &str) -> FakeSegment {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared { key: write_key.to_owned(), state: Mutex::default(), stop: AtomicBool::new(false) });
        let s = shared.clone();
        let thread = std::thread::spawn(move || accept_loop(listener, addr, s));
        FakeSegment { url: format!("http://{addr}"), shared, thread: Some(thread) }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.state.lock().unwrap().mode = Some(mode);
    }

    /// Every message accepted, in arrival order (duplicates included).
    pub fn accepted(&self) -> Vec<Value> {
        self.shared.state.lock().unwrap().accepted.clone()
    }

    /// Accepted messages by `messageId`.
    pub fn by_id(&self) -> HashMap<String, Vec<Value>> {
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        for m in self.accepted() {
            out.entry(m["messageId"].as_str().unwrap_or_default().to_owned()).or_default().push(m);
        }
        out
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// What Segment would have refused; a correct sink causes none.
    pub fn violations(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().violations.clone()
    }

    /// Waits until `done(accepted)` or the timeout; returns the accepted messages.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted();
            if done(&accepted) || Instant::now() > deadline {
                return accepted;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for FakeSegment {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections while the mode is not `Down`; closes the listener while it
/// is, and binds the same port again afterwards.
fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    while !shared.stop.load(Ordering::SeqCst) {
        let down = shared.mode() == Mode::Down;
        if down {
            listener = None;
        } else if listener.is_none() {
            match TcpListener::bind(addr) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        match listener.as_ref().map(|l| l.accept()) {
            Some(Ok((stream, _))) => {
                let s = shared.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &s);
                });
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, extra: &[(&str, &str)], body: &str) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// One request per connection (`Connection: close`).
fn handle(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers: HashMap<String, String> = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let mut stream = stream;

    let mode = shared.mode();
    let record = |status: u16, messages: usize| {
        shared.state.lock().unwrap().requests.push(Request { at: Instant::now(), status, messages, bytes: len });
    };
    match mode {
        Mode::Down => return Ok(()),
        Mode::Fail { status, retry_after, body: reply } => {
            record(status, 0);
            let extra: Vec<(&str, &str)> = retry_after.as_deref().map(|r| vec![("Retry-After", r)]).unwrap_or_default();
            return respond(&mut stream, status, &extra, &reply);
        }
        Mode::Slow(delay) => std::thread::sleep(delay),
        Mode::Accept => {}
    }
    match check(&request_line, &headers, &body, &shared.key) {
        Ok(messages) => {
            let n = messages.len();
            {
                let mut state = shared.state.lock().unwrap();
                state.accepted.extend(messages);
                state.requests.push(Request { at: Instant::now(), status: 200, messages: n, bytes: len });
            }
            respond(&mut stream, 200, &[], "{\"success\": true}")
        }
        Err(problems) => {
            record(400, 0);
            let text = problems.join("; ");
            shared.state.lock().unwrap().violations.extend(problems);
            respond(&mut stream, 400, &[], &serde_json::json!({ "error": text }).to_string())
        }
    }
}

fn rfc3339(value: &Value) -> bool {
    value.as_str().is_some_and(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok())
}

fn non_empty_string(value: Option<&Value>) -> bool {
    value.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// Segment's documented rules for a batch request.
fn check(request_line: &str, headers: &HashMap<String, String>, body: &[u8], key: &str) -> Result<Vec<Value>, Vec<String>> {
    let mut problems = Vec::new();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "POST" || path != "/v1/batch" {
        problems.push(format!("request to {method} {path}, not POST /v1/batch"));
    }
    match headers.get("authorization").and_then(|v| v.strip_prefix("Basic ")).and_then(base64_decode) {
        Some(credentials) if credentials == format!("{key}:") => {}
        Some(_) => problems.push("basic auth is not the write key with an empty password".into()),
        None => problems.push("no basic auth".into()),
    }
    if !headers.get("content-type").is_some_and(|v| v.starts_with("application/json")) {
        problems.push(format!("content-type is {:?}, not application/json", headers.get("content-type")));
    }
    if body.len() > MAX_BATCH_BYTES {
        problems.push(format!("batch of {} bytes, over {MAX_BATCH_BYTES}", body.len()));
    }
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("body is not JSON: {e}"));
            return Err(problems);
        }
    };
    if !rfc3339(&parsed["sentAt"]) {
        problems.push("sentAt is not RFC 3339".into());
    }
    let Some(batch) = parsed["batch"].as_array().filter(|b| !b.is_empty()) else {
        problems.push("no batch array".into());
        return Err(problems);
    };
    for m in batch {
        let id = m["messageId"].as_str().unwrap_or("?");
        let len = serde_json::to_string(m).unwrap().len();
        if len > MAX_MESSAGE_BYTES {
            problems.push(format!("{id}: message of {len} bytes, over {MAX_MESSAGE_BYTES}"));
        }
        if !matches!(m["type"].as_str(), Some("track" | "page" | "identify" | "screen" | "group" | "alias")) {
            problems.push(format!("{id}: bad type {}", m["type"]));
        }
        if !non_empty_string(m.get("messageId")) {
            problems.push("a message without messageId".into());
        }
        if !non_empty_string(m.get("userId")) && !non_empty_string(m.get("anonymousId")) {
            problems.push(format!("{id}: neither userId nor anonymousId"));
        }
        if m["type"] == "track" && !non_empty_string(m.get("event")) {
            problems.push(format!("{id}: track without event"));
        }
        if !rfc3339(&m["timestamp"]) {
            problems.push(format!("{id}: timestamp {} is not RFC 3339", m["timestamp"]));
        }
        for (field, kind) in [("properties", "track"), ("properties", "page"), ("traits", "identify")] {
            if m["type"] == kind && !m[field].is_object() {
                problems.push(format!("{id}: {field} is not an object"));
            }
        }
    }
    if problems.is_empty() {
        Ok(batch.clone())
    } else {
        Err(problems)
    }
}

fn base64_decode(text: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).ok()
}

//! What the benchmarks share: the batches they send, a `tracking-server` child
//! process, and CPU accounting.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// CPU seconds a process has used (user + system).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A child process that prints `listening on <url>`.
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    /// CPU seconds this process has used.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    pub fn start(config: &Path, args: &[&str]) -> Process {
        Self::start_with_env(config, args, &[])
    }

    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        // BENCH_SERVER: another build of the server, to compare two in one run.
        let server = std::env::var_os("BENCH_SERVER").unwrap_or_else(|| env!("CARGO_BIN_EXE_tracking-server").into());
        let mut child = Command::new(server)
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(env.iter().copied())
            .env("TRACKING_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("tracking-server exited").unwrap();
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Process { child, url }
    }

    pub fn metric(&self, sample: &str) -> f64 {
        let text = ureq::get(&format!("{}/metrics", self.url)).call().ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub fn delivered(&self, sink: &str) -> f64 {
        self.metric(&format!("tracking_sink_delivered_total{{sink=\"{sink}\"}}"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Batches carry this many events.
pub const EVENTS_PER_BATCH: usize = 50;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Unique ids, cheaply: a UUID v7 layout with a process-wide counter.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn write_id(out: &mut String) {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let _ = write!(out, "019a0000-0000-7000-8{:03x}-{:012x}", (n >> 48) & 0xfff, n & 0xffff_ffff_ffff);
}

/// A batch as the SDK sends it: tracking-log events from a course page, unique ids.
pub fn batch_body(n: u64) -> String {
    let mut body = String::with_capacity(24 * 1024);
    body.push_str(r#"{"sent_at":"2026-11-22T10:01:02.123Z","events":["#);
    for i in 0..EVENTS_PER_BATCH {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"id":""#);
        write_id(&mut body);
        let _ = write!(
            body,
            r#"","type":"tracking_log","name":"edx.ui.lms.sequence.next_selected","timestamp":"2026-11-22T10:01:02.{i:03}Z","data":{{"current_tab":{i},"tab_count":12,"target_tab":{},"widget_placement":"top","id":"block-v1:edX+DemoX+Demo_Course+type@sequential+block@{n:x}","course_id":"course-v1:edX+DemoX+Demo_Course","user_agent_hint":"Mozilla/5.0 (X11; Linux x86_64)"}},"page":"https://lms.example.com/courses/course-v1:edX+DemoX+Demo_Course/courseware/week_1/sequence_{n}/","referrer":"https://lms.example.com/dashboard"}}"#,
            i + 1
        );
    }
    body.push_str("]}");
    body
}

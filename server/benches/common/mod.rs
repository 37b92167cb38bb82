//! What the benchmarks share: a `tracking-server` child process and CPU accounting.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_tracking-server"))
            .arg("--config")
            .arg(config)
            .args(args)
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
        text.lines().find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' '))).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
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

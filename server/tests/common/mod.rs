//! A real `tracking-server` child process on a loopback port chosen at run time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const JWT_SECRET: &str = "test-only-jwt-secret-0123456789";
pub const SESSION_KEY: &str = "test-only-session-key";

/// A command whose process gets SIGKILL when the thread that started it ends, so a
/// test run that is killed leaves no server behind (a test's own `Drop` stops it
/// sooner). Processes are started from the test's own thread.
pub fn dies_with_the_test(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only `prctl` runs between fork and exec, and it is async-signal-safe.
    unsafe {
        command.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        })
    }
}

/// A server process and its data directory.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with `extra_config` (TOML) appended to a test configuration.
    pub fn start(extra_config: &str) -> Server {
        Self::start_with_env(extra_config, &[])
    }

    pub fn start_with_env(extra_config: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("server.toml");
        std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nworkers = 2\n{extra_config}\n", data.display()))
            .unwrap();
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (name, default) in [("TRACKING_JWT_SECRET", JWT_SECRET), ("TRACKING_SESSION_KEY", SESSION_KEY)] {
            if !env.iter().any(|(k, _)| k == name) {
                env.push((name.into(), default.into()));
            }
        }
        let mut server = Server { child: None, url: String::new(), data, config, env, _dir: dir };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = dies_with_the_test(&mut Command::new(env!("CARGO_BIN_EXE_tracking-server")))
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TRACKING_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tracking-server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            assert!(Instant::now() < deadline, "server did not start");
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => panic!("server exited before listening"),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.url = url;
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(self.child.take().expect("running"), "server")
    }

    /// Starts the same server again on the same data (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// The configuration file the server runs with (for commands beside it).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The resident memory of the server process, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.join("tracking.log")
    }

    /// The tracking log and the files rotated from it, sorted by name (the live file first).
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("tracking.log"))
            .collect();
        files.sort();
        files
    }

    /// The lines of the live tracking log.
    pub fn lines(&self) -> Vec<String> {
        read_lines(&self.log_path())
    }

    /// Waits until the tracking log has at least `n` lines.
    pub fn wait_for_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.lines();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn post(&self, path: &str) -> ureq::Request {
        ureq::post(&format!("{}{path}", self.url)).timeout(Duration::from_secs(30))
    }

    pub fn get(&self, path: &str) -> ureq::Request {
        ureq::get(&format!("{}{path}", self.url)).timeout(Duration::from_secs(30))
    }

    /// Posts a batch; returns status and JSON body.
    pub fn batch(&self, body: &Value) -> (u16, Value) {
        reply(self.post("/v1/batch").set("Content-Type", "text/plain;charset=UTF-8").send_string(&body.to_string()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SIGKILLs a child process, if there is one, and reaps it.
pub fn kill9(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
    }
}

/// Sends SIGTERM and waits (at most a minute) for `what` to exit.
pub fn terminate(mut child: Child, what: &str) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read_lines(path: &Path) -> Vec<String> {
    // Only whole lines: the sink may be writing one as the file is read (a line can
    // straddle two writes), as any reader following the file must allow for.
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n').filter_map(|line| line.strip_suffix('\n')).map(str::to_owned).collect()
}

/// Status and JSON (or `{"text": ...}`) of a response, error statuses included.
pub fn reply(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "text": text }));
    (status, body)
}

/// An HS256 token as the LMS issues it.
pub fn jwt(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Open edX's split JWT cookie pair for a token.
pub fn jwt_cookies(token: &str) -> String {
    let (header_payload, signature) = token.rsplit_once('.').unwrap();
    format!("edx-jwt-cookie-header-payload={header_payload}; edx-jwt-cookie-signature={signature}")
}

pub fn in_an_hour() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600
}

pub fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

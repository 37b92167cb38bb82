//! Server configuration: embedded defaults, a TOML file, environment overrides.
//! Secrets (JWT secret, session key, Segment write key) come only from the environment.

use std::path::{Path, PathBuf};

use event_model::config::RoutingConfig;
use event_model::processors::NameMode;
use serde::Deserialize;

use async_nats::ServerAddr;

/// The routing used when the configuration names none: tracking-log events and
/// server events in the legacy shape, internal `edx.bi.` events included, as the
/// LMS's `tracking_logs` backend writes them (they are filtered later, out of the
/// research data package; `{ type = "internal_events", mode = "exclude" }` before
/// the mapping keeps them out here).
pub const DEFAULT_ROUTING: &str = r#"
[backends.tracking_logs]
processors = [
  { type = "event_types", keep = ["tracking_log"] },
  { type = "legacy_field_mapping" },
]
[backends.tracking_logs.backends.logger]
type = "tracking_log"
path = "tracking.log"
"#;

/// [`DEFAULT_ROUTING`] as the `[routing]` part of a server configuration, for a
/// configuration that adds branches (Segment, JetStream) beside the default one.
pub fn default_routing_section() -> String {
    DEFAULT_ROUTING.replace("[backends.", "[routing.backends.")
}

/// Everything the server reads from its configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Where the write-ahead log, checkpoints and (by default) the tracking log live.
    pub data_dir: PathBuf,
    /// Serve the demo page at `/` (off by default: its recent-events view shows
    /// personal data; even when on, that view answers loopback clients only).
    /// `TRACKING_DEMO=1` turns it on.
    pub demo: bool,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    pub wal: WalSection,
    pub dedupe: DedupeSection,
    pub limits: LimitsSection,
    pub ingest: IngestSection,
    pub security: SecuritySection,
    /// The routing tree (event-model's TOML form); sinks: `tracking_log`, `segment`, `nats`.
    pub routing: Option<toml::Table>,
    /// `tracking-server relay`: the JetStream stream and consumer it reads.
    pub relay: RelayConfig,
    /// Secrets, from the environment only (never from the file): see [`Secrets`].
    #[serde(skip)]
    pub secrets: Secrets,
    /// Where the demo page's SDK files are (`TRACKING_SDK_DIR`; default `js/dist` of
    /// the source tree).
    #[serde(skip)]
    pub sdk_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: "data".into(),
            demo: false,
            workers: 0,
            wal: WalSection::default(),
            dedupe: DedupeSection::default(),
            limits: LimitsSection::default(),
            ingest: IngestSection::default(),
            security: SecuritySection::default(),
            routing: None,
            relay: RelayConfig::default(),
            secrets: Secrets::default(),
            sdk_dir: None,
        }
    }
}

/// The `[relay]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// NATS servers: a URL, a comma-separated list, or an array.
    pub url: Urls,
    /// The stream the ingest nodes' `nats` sinks publish to.
    pub stream: String,
    /// The durable consumer; relays sharing it share the work.
    pub consumer: String,
    /// Messages stored (one log append) and acknowledged together, at most.
    pub batch: usize,
    /// A message not acknowledged this long after delivery is delivered again.
    pub ack_wait_secs: u64,
    /// Messages delivered and not yet acknowledged, across the consumer's relays.
    pub max_ack_pending: i64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            url: Urls::default(),
            stream: default_stream(),
            consumer: "relay".into(),
            batch: 500,
            ack_wait_secs: 30,
            max_ack_pending: 10_000,
        }
    }
}

/// One server URL, or several: a comma-separated string or an array.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

impl Default for Urls {
    fn default() -> Self {
        Urls::One("nats://127.0.0.1:4222".into())
    }
}

impl Urls {
    /// The server addresses, checked.
    pub fn servers(&self) -> Result<Vec<ServerAddr>, String> {
        let list: Vec<&str> = match self {
            Urls::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
            Urls::Many(v) => v.iter().map(|s| s.trim()).collect(),
        };
        if list.is_empty() {
            return Err("`url` names no NATS server".into());
        }
        list.into_iter().map(|u| u.parse::<ServerAddr>().map_err(|e| format!("`url` {u:?}: {e}"))).collect()
    }
}

/// The JetStream stream the `nats` sinks publish to and the relay reads, by default.
pub fn default_stream() -> String {
    "TRACKING".into()
}

/// The server's secrets. They come from the environment, are read here and only here
/// ([`ServerConfig::apply_env`], [`secret_from_env`]), and never appear in `Debug`.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `TRACKING_SERVER_TOKEN`: the bearer token of `POST /v1/events` (unset: off).
    pub server_token: Option<String>,
    /// `TRACKING_JWT_SECRET`: the HS256 key of the JWTs that prove a user.
    pub jwt_secret: Option<String>,
    /// `TRACKING_SESSION_KEY`: the key of the session hash (the LMS's `SECRET_KEY`).
    pub session_key: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("server_token", &set(&self.server_token))
            .field("jwt_secret", &set(&self.jwt_secret))
            .field("session_key", &if self.session_key.is_empty() { "<unset>" } else { "<set>" })
            .finish()
    }
}

/// A secret named by the configuration (a Segment sink's `write_key_env`): the
/// variable's trimmed value, `None` when unset or blank.
pub fn secret_from_env(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// How appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitMode {
    /// fsync before acknowledging (the default).
    Fsync,
    /// Acknowledge after the write; fsync every `commit_interval_ms`.
    Interval,
    /// Leave flushing to the operating system.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalSection {
    pub commit: CommitMode,
    pub commit_interval_ms: u64,
    pub segment_bytes: u64,
    /// Past this many bytes of unconsumed log, requests get 503.
    pub max_bytes: u64,
    /// Pending append requests before 503.
    pub queue_capacity: usize,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection { commit: CommitMode::Fsync, commit_interval_ms: 10, segment_bytes: 64 << 20, max_bytes: 1 << 30, queue_capacity: 4096 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupeSection {
    /// How long an event id is remembered.
    pub window_secs: u64,
    /// At most this many ids are remembered (oldest forgotten first).
    pub max_ids: usize,
}

impl Default for DedupeSection {
    fn default() -> Self {
        DedupeSection { window_secs: 3600, max_ids: 1_000_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Request body, as sent (compressed or not).
    pub body_bytes: usize,
    /// A gzip body once inflated.
    pub inflated_bytes: usize,
    pub events_per_batch: usize,
    /// One event: bytes of its JSON as sent (the browser SDK's limit too).
    pub event_bytes: usize,
    /// The longest tracking-log line an `/event` request may make (the LMS's
    /// `TRACK_MAX_EVENT`; it drops longer lines silently, this server answers 400).
    pub line_chars: usize,
    /// Requests per second per client IP (0: no limit), and the burst allowed.
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// Clients the rate limiter tracks at once: a table of this many 32-byte slots,
    /// allocated at start (idle clients are forgotten; a flood of new addresses takes
    /// over the slots closest to idle).
    pub rate_clients: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            body_bytes: 1 << 20,
            inflated_bytes: 8 << 20,
            events_per_batch: 500,
            event_bytes: event_model::rules::event::MAX_EVENT_BYTES,
            line_chars: event_model::legacy::MAX_LINE_CHARS,
            rate_per_second: 200,
            rate_burst: 1000,
            rate_clients: 65_536,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Name validation of incoming events (legacy names are accepted).
    pub name_validation: NameMode,
    /// Keys masked by the scrubber besides the built-in password keys.
    pub scrub_keys: Vec<String>,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection { name_validation: NameMode::Warn, scrub_keys: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySection {
    /// Origins allowed by CORS and by the origin check of cookie-authenticated POSTs.
    pub allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Vec<String>,
    pub session_cookie: String,
    /// The Open edX JWT cookie pair (header.payload, signature).
    pub jwt_cookie_header_payload: String,
    pub jwt_cookie_signature: String,
    /// `HS256` (secret from `TRACKING_JWT_SECRET`) or `RS256` (public key file).
    pub jwt_algorithm: String,
    pub jwt_public_key_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            session_cookie: "sessionid".into(),
            jwt_cookie_header_payload: "edx-jwt-cookie-header-payload".into(),
            jwt_cookie_signature: "edx-jwt-cookie-signature".into(),
            jwt_algorithm: "HS256".into(),
            jwt_public_key_file: None,
            jwt_issuer: None,
            jwt_audience: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("routing: {0}")]
    Routing(#[from] event_model::config::ConfigError),
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
}

impl ServerConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    /// Applies the environment: `TRACKING_LISTEN`, `TRACKING_DATA_DIR`, `TRACKING_DEMO`,
    /// `TRACKING_ALLOWED_ORIGINS` (comma-separated origins added to `[security]
    /// allowed_origins`), `TRACKING_SDK_DIR`, and the [`Secrets`]. (`TRACKING_CONFIG`
    /// and `TRACKING_LOG` are the command line's.)
    pub fn apply_env(&mut self) {
        self.secrets = Secrets {
            server_token: secret_from_env("TRACKING_SERVER_TOKEN"),
            jwt_secret: secret_from_env("TRACKING_JWT_SECRET"),
            session_key: std::env::var("TRACKING_SESSION_KEY").unwrap_or_default(),
        };
        if let Ok(dir) = std::env::var("TRACKING_SDK_DIR") {
            self.sdk_dir = Some(dir.into());
        }
        if let Ok(origins) = std::env::var("TRACKING_ALLOWED_ORIGINS") {
            let more = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned);
            self.security.allowed_origins.extend(more);
        }
        if let Ok(listen) = std::env::var("TRACKING_LISTEN") {
            self.listen = listen;
        }
        if let Ok(dir) = std::env::var("TRACKING_DATA_DIR") {
            self.data_dir = dir.into();
        }
        if let Ok(demo) = std::env::var("TRACKING_DEMO") {
            self.demo = matches!(demo.as_str(), "1" | "true" | "yes" | "on");
        }
    }

    /// The routing tree: the configured one or [`DEFAULT_ROUTING`].
    pub fn routing(&self) -> Result<RoutingConfig, ConfigError> {
        match &self.routing {
            Some(table) => Ok(RoutingConfig::deserialize(table.clone()).map_err(event_model::config::ConfigError::from)?),
            None => Ok(RoutingConfig::from_toml(DEFAULT_ROUTING)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_file_overrides() {
        let config: ServerConfig = toml::from_str("listen = \"127.0.0.1:9\"\n[wal]\ncommit = \"interval\"").unwrap();
        assert_eq!(config.listen, "127.0.0.1:9");
        assert_eq!(config.wal.commit, CommitMode::Interval);
        assert_eq!(config.data_dir, PathBuf::from("data"));
        assert!(toml::from_str::<ServerConfig>("lisen = 1").is_err());
        let routing = ServerConfig::default().routing().unwrap();
        assert_eq!(routing.sinks()[0].kind, "tracking_log");
        let with_section: ServerConfig = toml::from_str(&default_routing_section()).unwrap();
        assert_eq!(with_section.routing().unwrap().sinks()[0].path, "root/tracking_logs/logger");
    }

    #[test]
    fn routing_from_the_file() {
        let config: ServerConfig = toml::from_str("[routing.backends.x]\ntype = \"tracking_log\"\npath = \"x.log\"").unwrap();
        assert_eq!(config.routing().unwrap().sinks()[0].path, "root/x");
        let bad: ServerConfig = toml::from_str("[routing]\nprocessors = [{ type = \"nope\" }]").unwrap();
        assert!(bad.routing().unwrap_err().to_string().contains("unknown variant `nope`"));
    }
}

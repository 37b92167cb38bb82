//! Assembling the server: the log, de-duplication, sinks, middleware, and the HTTP
//! server with graceful shutdown. Also embeddable in another actix-web service.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use event_model::routing::Counters;
use event_model::Tracker;

use crate::config::{CommitMode, ServerConfig};
use crate::context::{ContextConfig, JwtVerifier, RequestContextLayer};
use crate::dedupe::Dedupe;
use crate::emit::{request_tracker, LocalBackend};
use crate::ingest::{IngestRules, Store};
use crate::metrics::Metrics;
use crate::sinks::Sinks;
use crate::state::AppState;
use crate::wal::{Checkpoints, CommitPolicy, Wal, WalConfig};

/// A running ingest pipeline: the write-ahead log and its sinks, and the state the
/// handlers share. The server binary runs one; a Rust service can embed one to emit
/// events in-process.
pub struct Pipeline {
    pub state: web::Data<AppState>,
    pub context_config: Arc<ContextConfig>,
    /// A tracker whose events carry the request context and enter this pipeline.
    pub tracker: Arc<Tracker>,
    sinks: Sinks,
    wal: Wal,
}

impl Pipeline {
    /// Opens the log under `data_dir`, remembers the ids still in it, and starts the sinks.
    pub fn start(config: &ServerConfig) -> anyhow::Result<Pipeline> {
        let routing = config.routing()?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
        let commit = match config.wal.commit {
            CommitMode::Fsync => CommitPolicy::Fsync,
            CommitMode::Interval => CommitPolicy::Interval(Duration::from_millis(config.wal.commit_interval_ms)),
            CommitMode::None => CommitPolicy::None,
        };
        let wal = Wal::open(WalConfig {
            dir: config.data_dir.join("wal"),
            segment_bytes: config.wal.segment_bytes,
            max_bytes: config.wal.max_bytes,
            commit,
            queue_capacity: config.wal.queue_capacity,
        })
        .context("opening the write-ahead log")?;
        let checkpoints = Arc::new(Checkpoints::open(config.data_dir.join("checkpoints")).context("opening checkpoints")?);
        let metrics = Arc::new(Metrics::new());
        let counters = Counters::new();
        let dedupe = Dedupe::new(Duration::from_secs(config.dedupe.window_secs), config.dedupe.max_ids);
        remember_logged_ids(&wal, &dedupe)?;
        let sinks = Sinks::start(&routing, &config.data_dir, wal.clone(), config.wal.max_bytes, checkpoints, metrics.clone(), &counters)?;
        let rules =
            IngestRules::new(config.ingest.name_validation, config.ingest.scrub_keys.clone(), config.limits.event_bytes, counters.clone());
        let context_config = Arc::new(context_config(config)?);
        let store = Store { wal: wal.clone(), dedupe, metrics: metrics.clone(), recent: config.demo.then(Default::default) };
        let state = web::Data::new(AppState {
            store,
            rules,
            limits: config.limits.clone(),
            rate_limit: crate::ratelimit::RateLimit::new(AppState::client_limiter(&config.limits), context_config.trusted_proxies.clone()),
            metrics,
            counters,
            allowed_origins: config.security.allowed_origins.clone(),
            ready: true.into(),
            demo: config.demo,
            sdk_dir: config.sdk_dir.clone().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../js/dist").into()),
            server_token: config.secrets.server_token.clone(),
            sinks: sinks.status.clone(),
            limits_wal_max_bytes: config.wal.max_bytes,
        });
        let tracker = request_tracker(Arc::new(LocalBackend::new(state.clone().into_inner())));
        Ok(Pipeline { state, context_config, tracker, sinks, wal })
    }

    /// Stops taking events, lets the sinks write everything committed, syncs the log.
    pub fn shutdown(self) {
        self.state.ready.store(false, Ordering::SeqCst);
        self.sinks.drain_and_stop();
        self.wal.shutdown();
    }
}

/// Events still in the log were accepted recently: their ids stay de-duplicated
/// across a restart.
fn remember_logged_ids(wal: &Wal, dedupe: &Dedupe) -> anyhow::Result<()> {
    let mut reader = wal.reader(wal.first_seq())?;
    while reader.next_seq() < wal.committed_seq() {
        let batch = reader.read_batch_blocking(4096, Duration::from_millis(10))?;
        if batch.is_empty() {
            break;
        }
        for (_, record) in batch {
            for id in crate::record::event_ids(&record).unwrap_or_default() {
                dedupe.remember_stored(id);
            }
        }
    }
    Ok(())
}

/// The request-context settings, with the configuration's secrets.
fn context_config(config: &ServerConfig) -> anyhow::Result<ContextConfig> {
    let security = &config.security;
    let jwt = match security.jwt_algorithm.to_ascii_uppercase().as_str() {
        "HS256" => config.secrets.jwt_secret.as_ref().map(|s| JwtVerifier::hs256(s.as_bytes())),
        "RS256" => {
            let path: &PathBuf = security.jwt_public_key_file.as_ref().context("jwt_algorithm RS256 needs jwt_public_key_file")?;
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(JwtVerifier::rs256_pem(&pem)?)
        }
        other => anyhow::bail!("jwt_algorithm must be HS256 or RS256, not {other}"),
    };
    let jwt = jwt.map(|mut verifier| {
        if let Some(issuer) = &security.jwt_issuer {
            verifier = verifier.with_issuer(issuer.clone());
        }
        if let Some(audience) = &security.jwt_audience {
            verifier = verifier.with_audience(audience.clone());
        }
        verifier
    });
    let trusted_proxies = security
        .trusted_proxies
        .iter()
        .map(|p| p.parse::<ipnet::IpNet>().or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)))
        .collect::<Result<Vec<_>, _>>()
        .context("trusted_proxies must be IP addresses or CIDR ranges")?;
    Ok(ContextConfig {
        session_cookie: security.session_cookie.clone(),
        session_key: config.secrets.session_key.clone().into_bytes(),
        jwt,
        jwt_cookies: (security.jwt_cookie_header_payload.clone(), security.jwt_cookie_signature.clone()),
        jwt_cookie: None,
        trusted_proxies,
    })
}

/// CORS for the allowed origins, with credentials (the SDK sends cookies).
fn cors(allowed: &[String]) -> actix_cors::Cors {
    let allowed: Vec<String> = allowed.to_vec();
    actix_cors::Cors::default()
        .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|o| allowed.iter().any(|a| a == o)))
        .allowed_methods(["GET", "POST"])
        .allowed_headers(["content-type", "content-encoding", "authorization"])
        // The SDK on another origin must read Retry-After to honour it.
        .expose_headers(["retry-after"])
        .supports_credentials()
        .max_age(3600)
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the server until SIGTERM or SIGINT, then drains: in-flight requests finish,
/// sinks write everything acknowledged, the log is synced.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let ingest = Pipeline::start(&config)?;
    let state = ingest.state.clone();
    let context_config = ingest.context_config.clone();
    let tracker = ingest.tracker.clone();
    let origins = config.security.allowed_origins.clone();
    let body_limit = config.limits.body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .configure(crate::http::configure)
            .wrap(RequestContextLayer::new(context_config.clone(), tracker.clone()))
            // Before the body is read or a credential verified.
            .wrap(actix_web::middleware::from_fn(crate::http::rate_limited))
            .wrap(cors(&origins))
            .wrap(actix_web::middleware::from_fn(crate::http::timed))
    })
    .shutdown_timeout(30);
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    let server = server.disable_signals().bind(&config.listen).with_context(|| format!("binding {}", config.listen))?;
    for address in server.addrs() {
        // Tests and scripts read this line to find a port chosen by the system.
        println!("listening on http://{address}");
    }
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "tracking server started");
    let server = server.run();
    let handle = server.handle();
    let state = ingest.state.clone();
    actix_web::rt::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping: not ready, finishing requests in flight");
        // Load balancers see /readyz fail while requests in flight finish.
        state.ready.store(false, Ordering::SeqCst);
        handle.stop(true).await;
    });
    server.await?;
    tracing::info!("draining sinks");
    tokio::task::spawn_blocking(move || ingest.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

//! `tracking-server`: with no arguments, the ingest server on 127.0.0.1:8080 writing
//! `./data/`; `relay` for the JetStream relay; `convert --to legacy` for reprocessing
//! archives; `replay-spill` to deliver what a sink spilled.

/// mimalloc: events are many small allocations; glibc's malloc spent a third of the
/// ingest CPU in allocation and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, BufReader};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tracking_server::config::ServerConfig;

#[derive(Parser)]
#[command(name = "tracking-server", version, about = "The Tracking ingest server")]
struct Cli {
    /// A TOML configuration file (also TRACKING_CONFIG).
    #[arg(long, global = true, env = "TRACKING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingest server (the default).
    Serve,
    /// Consume the JetStream stream the ingest nodes publish to, into this node's
    /// log and sinks (the `[relay]` section).
    Relay,
    /// Convert modern events (JSON lines on stdin) to tracking-log lines on stdout.
    Convert {
        #[arg(long, value_enum)]
        to: Format,
    },
    /// Deliver what a sink spilled (its closed spill files, oldest first, each removed
    /// once delivered); it can run beside the server.
    ReplaySpill {
        /// The sink: its path in the routing (`root/segment/segment`) or its name.
        #[arg(long)]
        sink: String,
        /// How long to keep retrying a failing delivery before giving up, in seconds.
        #[arg(long, default_value_t = 600)]
        patience_secs: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Legacy,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<ServerConfig> {
    let mut config = match path {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    config.apply_env();
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRACKING_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(io::stderr)
        .init();
    let cli = Cli::parse();
    let config = load_config(cli.config.as_ref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => actix_web::rt::System::new().block_on(tracking_server::app::serve(config)),
        Command::Relay => actix_web::rt::System::new().block_on(tracking_server::relay::serve(config)),
        Command::ReplaySpill { sink, patience_secs } => {
            let routing = config.routing()?;
            let (path, target) = tracking_server::sinks::replay_target(&routing, &config.data_dir, config.wal.max_bytes, &sink)?;
            let metrics = std::sync::Arc::new(tracking_server::metrics::Metrics::new());
            let report = tracking_server::sinks::replay_spill(
                &path,
                target,
                &config.data_dir,
                metrics,
                std::time::Duration::from_secs(patience_secs),
            )
            .map_err(|failure| anyhow::anyhow!("replaying the spill of {path}: {}", failure.message))?;
            println!("replayed {} messages from {} spill files of {path}", report.messages, report.files);
            Ok(())
        }
        Command::Convert { to: Format::Legacy } => {
            let routing = config.routing()?;
            let (chain, options) = tracking_server::convert::tracking_log_pipeline(&routing)?;
            let report = tracking_server::convert::convert(
                BufReader::new(io::stdin().lock()),
                io::stdout().lock(),
                io::stderr().lock(),
                &chain,
                &options,
            )
            .context("converting")?;
            eprintln!("converted {} events, rejected {}", report.written, report.rejected);
            Ok(())
        }
    }
}

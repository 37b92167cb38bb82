//! The routing tree from TOML, shaped like Open edX's `EVENT_TRACKING_BACKENDS`:
//! each branch has `processors` and named `backends`; a backend is a nested branch or
//! a sink (a table with a `type`, built by the caller).
//!
//! ```toml
//! [backends.tracking_logs]
//! processors = [
//!   { type = "internal_events", mode = "exclude" },
//!   { type = "legacy_field_mapping" },
//! ]
//! [backends.tracking_logs.backends.logger]
//! type = "tracking_log"
//! path = "data/tracking.log"
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::processor::{Processor, Rejection};
use crate::processors::{
    CourseContextFromUrl, EventTypes, FilterMode, GoogleAnalytics, InternalEvents, InternalMode, LegacyFieldMapping, NameAllowlist,
    NameMode, NameValidator, RegexFilter, RegexFilterError, Scrubber, SegmentFilter, SizeLimit, DEFAULT_INTERNAL_PREFIX,
    DEFAULT_MAX_EVENT_BYTES,
};
use crate::routing::{Backend, Counters, Router};
use crate::view::EventView;
use crate::Event;

/// A routing configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("routing configuration is not valid TOML or has a wrong field: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("branch `{branch}`: {source}")]
    Regex {
        branch: String,
        #[source]
        source: RegexFilterError,
    },
    #[error("branch `{branch}`: unknown keys {keys:?} (a branch has `processors` and `backends`; a sink has a `type`)")]
    UnknownKeys { branch: String, keys: Vec<String> },
    #[error("backend `{branch}`: unknown sink type `{kind}`")]
    UnknownSink { branch: String, kind: String },
    #[error("backend `{branch}`: {message}")]
    Sink { branch: String, message: String },
}

/// The root of a routing tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
}

/// A backend: a nested branch (no `type`, or `type = "router"`) or a sink.
#[derive(Debug, Clone, Deserialize)]
pub struct BackendConfig {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// The sink's own options.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// A sink the caller must build: its branch path, name, type and options.
#[derive(Debug, Clone)]
pub struct SinkSpec<'a> {
    /// The path of the sink, e.g. `root/tracking_logs/logger`.
    pub path: String,
    pub name: &'a str,
    pub kind: &'a str,
    pub options: &'a toml::Table,
}

/// One processor of a branch, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessorConfig {
    NameValidator {
        #[serde(default)]
        mode: NameMode,
        #[serde(default)]
        accept_legacy: bool,
    },
    #[serde(alias = "name_whitelist")]
    NameAllowlist {
        names: Vec<String>,
    },
    RegexFilter {
        mode: FilterMode,
        patterns: Vec<String>,
    },
    SizeLimit {
        #[serde(default = "default_max_bytes")]
        max_bytes: usize,
    },
    Scrubber {
        #[serde(default)]
        extra_keys: Vec<String>,
    },
    LegacyFieldMapping,
    GoogleAnalytics,
    CourseContext {
        #[serde(default = "default_url_field")]
        url_field: String,
    },
    EventTypes {
        keep: Vec<String>,
    },
    /// Segment's `track`/`page`/`identify`, and tracking-log events named in `allowlist`.
    SegmentFilter {
        #[serde(default)]
        allowlist: Vec<String>,
    },
    InternalEvents {
        #[serde(default = "default_internal_prefix")]
        prefix: String,
        #[serde(default)]
        mode: InternalMode,
    },
}

fn default_max_bytes() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

fn default_url_field() -> String {
    "page".to_owned()
}

fn default_internal_prefix() -> String {
    DEFAULT_INTERNAL_PREFIX.to_owned()
}

impl ProcessorConfig {
    /// Builds the processor; regular expressions are compiled here.
    pub fn build(&self) -> Result<Box<dyn Processor>, RegexFilterError> {
        Ok(match self {
            ProcessorConfig::NameValidator { mode, accept_legacy } => Box::new(NameValidator::new(*mode, *accept_legacy)),
            ProcessorConfig::NameAllowlist { names } => Box::new(NameAllowlist::new(names.iter().cloned())),
            ProcessorConfig::RegexFilter { mode, patterns } => Box::new(RegexFilter::new(*mode, patterns)?),
            ProcessorConfig::SizeLimit { max_bytes } => Box::new(SizeLimit::new(*max_bytes)),
            ProcessorConfig::Scrubber { extra_keys } => Box::new(Scrubber::new(extra_keys.clone())),
            ProcessorConfig::LegacyFieldMapping => Box::new(LegacyFieldMapping),
            ProcessorConfig::GoogleAnalytics => Box::new(GoogleAnalytics),
            ProcessorConfig::CourseContext { url_field } => Box::new(CourseContextFromUrl { url_field: url_field.clone() }),
            ProcessorConfig::EventTypes { keep } => Box::new(EventTypes::new(keep.iter().cloned())),
            ProcessorConfig::SegmentFilter { allowlist } => Box::new(SegmentFilter::new(allowlist.iter().cloned())),
            ProcessorConfig::InternalEvents { prefix, mode } => Box::new(InternalEvents { prefix: prefix.clone(), mode: *mode }),
        })
    }
}

/// Builds the sink described by a [`SinkSpec`].
pub type SinkFactory<'f> = dyn FnMut(&SinkSpec<'_>) -> Result<Arc<dyn Backend>, ConfigError> + 'f;

impl RoutingConfig {
    /// Parses TOML; unknown processor types and fields are errors with their location.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Builds the tree. `make_sink` builds each sink; it is called in sorted order.
    pub fn build(&self, make_sink: &mut SinkFactory<'_>) -> Result<Router, ConfigError> {
        let counters = Counters::new();
        build_branch("root", &self.processors, &self.backends, &counters, make_sink)
    }

    /// One pipeline per sink: the processors of every branch from the root down to
    /// the sink, to run where the sink consumes events on its own (the server's sinks
    /// each read the write-ahead log at their own pace). Equivalent to routing through
    /// the tree, whose branches each work on their own copy.
    pub fn pipelines(&self, counters: &Arc<Counters>) -> Result<Vec<SinkPipeline<'_>>, ConfigError> {
        let mut out = Vec::new();
        let root = processors_only("root", &self.processors, counters)?;
        collect_pipelines("root", &self.backends, vec![root], counters, &mut out)?;
        Ok(out)
    }

    /// Every sink in the tree, depth first in sorted order.
    pub fn sinks(&self) -> Vec<SinkSpec<'_>> {
        let mut out = Vec::new();
        collect_sinks("root", &self.backends, &mut out);
        out
    }
}

/// A sink and the processors on its path from the root.
pub struct SinkPipeline<'a> {
    pub spec: SinkSpec<'a>,
    pub chain: Chain,
}

/// Branch processors applied one branch after another.
#[derive(Clone)]
pub struct Chain(Vec<Arc<Router>>);

impl Chain {
    /// A chain without processors.
    pub fn empty() -> Chain {
        Chain(Vec::new())
    }

    /// Runs every branch's processors in order; the first drop stops the event.
    pub fn process(&self, mut event: Event) -> Result<Event, Rejection> {
        for router in &self.0 {
            event = router.process(event)?;
        }
        Ok(event)
    }

    /// Whether every processor of the chain runs on an [`EventView`].
    pub fn runs_on_views(&self) -> bool {
        self.0.iter().all(|router| router.runs_on_views())
    }

    /// Whether every processor of the chain only keeps or drops: events leave it as
    /// they came, and filters read only top-level members (never the context).
    pub fn only_filters(&self) -> bool {
        self.0.iter().all(|router| router.only_filters())
    }

    /// [`Chain::process`] on an event read in place from stored text; check
    /// [`Chain::runs_on_views`] first.
    pub fn process_view(&self, view: &mut EventView<'_>) -> Result<(), Rejection> {
        self.0.iter().try_for_each(|router| router.process_view(view))
    }
}

fn processors_only(path: &str, processors: &[ProcessorConfig], counters: &Arc<Counters>) -> Result<Arc<Router>, ConfigError> {
    let mut builder = Router::builder().path(path).counters(counters.clone());
    for processor in processors {
        let built = processor.build().map_err(|source| ConfigError::Regex { branch: path.to_owned(), source })?;
        builder = builder.boxed_processor(built);
    }
    Ok(Arc::new(builder.build()))
}

fn collect_pipelines<'a>(
    path: &str,
    backends: &'a BTreeMap<String, BackendConfig>,
    chain: Vec<Arc<Router>>,
    counters: &Arc<Counters>,
    out: &mut Vec<SinkPipeline<'a>>,
) -> Result<(), ConfigError> {
    for (name, backend) in backends {
        let child_path = format!("{path}/{name}");
        match backend.kind.as_deref() {
            None | Some("router") => {
                let mut chain = chain.clone();
                chain.push(processors_only(&child_path, &backend.processors, counters)?);
                collect_pipelines(&child_path, &backend.backends, chain, counters, out)?;
            }
            Some(kind) => out.push(SinkPipeline {
                spec: SinkSpec { path: child_path, name, kind, options: &backend.options },
                chain: Chain(chain.clone()),
            }),
        }
    }
    Ok(())
}

fn collect_sinks<'a>(path: &str, backends: &'a BTreeMap<String, BackendConfig>, out: &mut Vec<SinkSpec<'a>>) {
    for (name, backend) in backends {
        let path = format!("{path}/{name}");
        match backend.kind.as_deref() {
            None | Some("router") => collect_sinks(&path, &backend.backends, out),
            Some(kind) => out.push(SinkSpec { path, name, kind, options: &backend.options }),
        }
    }
}

fn build_branch(
    path: &str,
    processors: &[ProcessorConfig],
    backends: &BTreeMap<String, BackendConfig>,
    counters: &Arc<Counters>,
    make_sink: &mut SinkFactory<'_>,
) -> Result<Router, ConfigError> {
    let mut builder = Router::builder().path(path).counters(counters.clone());
    for processor in processors {
        let built = processor.build().map_err(|source| ConfigError::Regex { branch: path.to_owned(), source })?;
        builder = builder.boxed_processor(built);
    }
    for (name, backend) in backends {
        let child_path = format!("{path}/{name}");
        let built: Arc<dyn Backend> = match backend.kind.as_deref() {
            None | Some("router") => {
                if !backend.options.is_empty() {
                    let keys = backend.options.keys().cloned().collect();
                    return Err(ConfigError::UnknownKeys { branch: child_path, keys });
                }
                Arc::new(build_branch(&child_path, &backend.processors, &backend.backends, counters, make_sink)?)
            }
            Some(kind) => {
                if !backend.processors.is_empty() || !backend.backends.is_empty() {
                    return Err(ConfigError::Sink {
                        branch: child_path,
                        message: "a sink has no `processors` or `backends`; put them on the branch above it".into(),
                    });
                }
                make_sink(&SinkSpec { path: child_path, name, kind, options: &backend.options })?
            }
        };
        builder = builder.shared_backend(name.clone(), built);
    }
    Ok(builder.build())
}

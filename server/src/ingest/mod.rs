//! From requests to stored events: reading bodies ([`batch`], [`legacy`]), the rules
//! every event passes ([`IngestRules`]), and durable acceptance ([`Store`]):
//! de-duplication by id, one log record per request, acknowledged once it is durable.

pub mod batch;
pub mod form;
pub mod legacy;

use std::borrow::Cow;
use std::sync::Arc;

use event_model::processor::Rejection;
use event_model::processors::NameMode;
use event_model::routing::{Counters, Outcome};
use event_model::rules::event::size_problem;
use event_model::rules::json::{self, Dialect, Rules};
use event_model::rules::name::NameProblem;
use event_model::Event;
use uuid::Uuid;

use crate::dedupe::{Dedupe, Seen};
use crate::metrics::Metrics;
use crate::record::RecordBuilder;
use crate::wal::Wal;

/// An event ready for the log: its id, whether that id came with it, and its compact
/// JSON (the modern shape; its `context` holds what differs from the request's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventText {
    pub id: Option<Uuid>,
    /// The id came with the event (a client's, a stream message's), so a retry can
    /// bring it again: only such ids are de-duplicated. An id the server has just
    /// minted cannot repeat, and remembering it would only push the clients' ids out
    /// of the window (`[dedupe] max_ids`) sooner.
    pub id_given: bool,
    pub json: String,
}

/// The checks every incoming event passes, with the limits of `event_model::rules`
/// (the browser SDK's): name validation, the data rules (JSON, depth, scrubbing), the
/// size limit. Warnings and refusals are counted under the branch `ingest`.
pub struct IngestRules {
    pub name_mode: NameMode,
    pub scrub_keys: Vec<String>,
    pub max_event_bytes: usize,
    counters: Arc<Counters>,
}

impl IngestRules {
    pub fn new(name_mode: NameMode, scrub_keys: Vec<String>, max_event_bytes: usize, counters: Arc<Counters>) -> Self {
        IngestRules { name_mode, scrub_keys, max_event_bytes, counters }
    }

    /// What the name-validation mode makes of a bad name: a counted warning, or a refusal.
    pub fn judge_name(&self, problem: NameProblem) -> Result<(), Rejection> {
        match self.name_mode {
            NameMode::Off => Ok(()),
            NameMode::Warn => {
                self.counters.record("ingest", "name_validator", Outcome::Warned, problem.code());
                Ok(())
            }
            NameMode::Reject => {
                self.counters.record("ingest", "name_validator", Outcome::Dropped, problem.code());
                Err(Rejection::new(problem.code(), problem.message()))
            }
        }
    }

    /// Checks `data` (JSON, depth) and masks what is sensitive, in one pass; returns the
    /// compact text, borrowed when nothing changed.
    pub fn check_data<'t>(&self, data: &'t str, dialect: Dialect) -> Result<Cow<'t, str>, Rejection> {
        json::rewrite_compact(data, &self.data_rules(dialect)).map_err(data_rejection)
    }

    /// [`IngestRules::check_data`] of the value at the start of `text`, where the rest
    /// of an event follows it: the checked data and where it ends in `text`.
    pub fn check_data_prefix<'t>(&self, text: &'t str, dialect: Dialect) -> Result<(Cow<'t, str>, usize), Rejection> {
        json::rewrite_compact_prefix(text, &self.data_rules(dialect)).map_err(data_rejection)
    }

    fn data_rules(&self, dialect: Dialect) -> Rules<'_> {
        Rules { scrub: true, extra_sensitive_keys: &self.scrub_keys, rename: None, dialect, null_nonfinite: false }
    }

    /// The rules for an event built in this process or sent by a trusted service (its
    /// context is its own): name, data, then the size of its JSON.
    pub fn apply(&self, mut event: Event) -> Result<EventText, Rejection> {
        if let Some(problem) = event_model::rules::name::check_name(&event.name()).err() {
            if !event_model::rules::name::is_legacy_name(&event.name()) {
                self.judge_name(problem)?;
            }
        }
        if let Some(data) = event.data_mut() {
            if let Some(text) = data.as_text().cloned() {
                let checked = self.check_data(&text, Dialect::Python)?;
                if let Cow::Owned(new) = checked {
                    *data = event_model::Json::from_checked(event_model::Text::from(new));
                }
            } else {
                event_model::processors::Scrubber::new(self.scrub_keys.clone()).scrub(data);
            }
        }
        let json = event.to_compact();
        if let Some(too_large) = size_problem(json.len(), self.max_event_bytes) {
            self.counters.record("ingest", "size_limit", Outcome::Dropped, "size_limit");
            return Err(Rejection::new("size_limit", format!("event is {} bytes, over the limit of {}", too_large.len, too_large.max)));
        }
        let id = event.id().and_then(|id| Uuid::parse_str(&id).ok());
        // A trusted service's client retries with the same ids.
        Ok(EventText { id, id_given: id.is_some(), json })
    }
}

fn data_rejection(invalid: json::Invalid) -> Rejection {
    match invalid {
        json::Invalid::TooDeep => Rejection::new("too_deep", format!("`data` nests deeper than {}", json::MAX_DEPTH)),
        json::Invalid::Syntax { at } => Rejection::new("invalid_json", format!("`data` is not valid JSON near byte {at}")),
    }
}

/// What became of an event handed to [`Store::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// Why nothing could be stored: the log is full or failing (the client retries).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Durable acceptance: de-duplication by id and the write-ahead log.
pub struct Store {
    pub wal: Wal,
    pub dedupe: Dedupe,
    pub metrics: Arc<Metrics>,
    /// With the demo page on: the last records accepted, shown by the page.
    pub recent: Option<std::sync::Mutex<std::collections::VecDeque<Vec<u8>>>>,
}

/// How many accepted records the demo page shows.
pub const RECENT_RECORDS: usize = 50;

impl Store {
    /// De-duplicates `events` by id and appends the new ones to the write-ahead log as
    /// one record sharing `context` (a compact JSON object); returns once they are
    /// durable. On failure nothing is stored and no id is remembered, so the client's
    /// retry is accepted.
    pub async fn accept(&self, context: &str, events: &[EventText]) -> Result<Vec<Stored>, Unavailable> {
        self.accept_records(&[(context, events)]).await
    }

    /// [`Store::accept`] for several records (each a shared context and its events)
    /// in one durable append: what the relay stores for a batch of stream messages.
    /// The outcomes are the events', in order.
    pub async fn accept_records(&self, records: &[(&str, &[EventText])]) -> Result<Vec<Stored>, Unavailable> {
        let mut appended = Vec::with_capacity(records.len());
        let mut reserved = Vec::new();
        let mut outcomes = Vec::new();
        for (context, events) in records {
            let (record, ids, stored) = self.prepare(context, events);
            appended.extend(record);
            reserved.extend(ids);
            outcomes.extend(stored);
        }
        if !appended.is_empty() {
            if let Err(error) = self.wal.append(appended).await {
                self.dedupe.release(&reserved);
                return Err(Unavailable(error.to_string()));
            }
            self.dedupe.confirm(&reserved);
        }
        self.count(&outcomes);
        Ok(outcomes)
    }

    /// [`Store::accept`] for a thread outside an async runtime.
    pub fn accept_blocking(&self, context: &str, events: &[EventText]) -> Result<Vec<Stored>, Unavailable> {
        let (record, reserved, outcomes) = self.prepare(context, events);
        if let Some(record) = record {
            if let Err(error) = self.wal.append_blocking(vec![record]) {
                self.dedupe.release(&reserved);
                return Err(Unavailable(error.to_string()));
            }
            self.dedupe.confirm(&reserved);
        }
        self.count(&outcomes);
        Ok(outcomes)
    }

    fn prepare(&self, context: &str, events: &[EventText]) -> (Option<Vec<u8>>, Vec<Uuid>, Vec<Stored>) {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut reserved = Vec::with_capacity(events.len());
        let capacity = events.iter().map(|e| e.json.len() + 1).sum();
        let mut record = RecordBuilder::new(context, capacity);
        let given = |e: &EventText| e.id.filter(|_| e.id_given);
        let mut seen = self.dedupe.reserve_all(events.iter().filter_map(given)).into_iter();
        for event in events {
            if let Some(id) = given(event) {
                if seen.next() == Some(Seen::Duplicate) {
                    outcomes.push(Stored::Duplicate);
                    continue;
                }
                reserved.push(id);
            }
            record.push(&event.json);
            outcomes.push(Stored::Accepted);
        }
        if record.is_empty() {
            return (None, reserved, outcomes);
        }
        let bytes = record.finish();
        if let Some(recent) = &self.recent {
            let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_RECORDS {
                recent.pop_front();
            }
            recent.push_back(bytes.clone());
        }
        (Some(bytes), reserved, outcomes)
    }

    fn count(&self, outcomes: &[Stored]) {
        let accepted = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as u64;
        self.metrics.accepted.inc_by(accepted);
        self.metrics.duplicate.inc_by(outcomes.len() as u64 - accepted);
    }
}

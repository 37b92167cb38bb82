//! Keep or drop events by name: an exact allowlist, and anchored regular expressions.

use std::collections::HashSet;

use regex::{Regex, RegexSet};

use crate::processor::{ProcessError, Processor, Rejection, Verdict};
use crate::Event;

/// Keeps only events whose name is listed (Open edX's `NameWhitelistProcessor`).
#[derive(Debug, Clone, Default)]
pub struct NameAllowlist {
    names: HashSet<String>,
}

impl NameAllowlist {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        NameAllowlist { names: names.into_iter().map(Into::into).collect() }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

impl Processor for NameAllowlist {
    fn name(&self) -> &str {
        "name_allowlist"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Ok(if self.allows(&event.name()) {
            Verdict::Keep
        } else {
            Verdict::Drop(Rejection::new("name_not_allowed", "event name is not on the allowlist"))
        })
    }
}

/// Whether matching names are kept or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMode {
    /// Keep only names that match.
    Allow,
    /// Drop names that match.
    Block,
}

/// A pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression `{pattern}`: {source}")]
pub struct RegexFilterError {
    pub pattern: String,
    #[source]
    pub source: regex::Error,
}

/// Keeps or drops events whose name matches one of the patterns, each anchored at the
/// start of the name as Python's `re.match` is (Open edX's `RegexFilter`).
#[derive(Debug, Clone)]
pub struct RegexFilter {
    mode: FilterMode,
    set: RegexSet,
}

impl RegexFilter {
    /// Compiles every pattern now, so a bad configuration fails at start-up.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(mode: FilterMode, patterns: I) -> Result<Self, RegexFilterError> {
        let mut anchored = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let wrapped = format!("^(?:{pattern})");
            Regex::new(&wrapped).map_err(|source| RegexFilterError { pattern: pattern.to_owned(), source })?;
            anchored.push(wrapped);
        }
        let set = RegexSet::new(&anchored).map_err(|source| RegexFilterError { pattern: anchored.join(" | "), source })?;
        Ok(RegexFilter { mode, set })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.set.is_match(name)
    }
}

impl Processor for RegexFilter {
    fn name(&self) -> &str {
        "regex_filter"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        let matched = self.matches(&event.name());
        Ok(match (self.mode, matched) {
            (FilterMode::Allow, true) | (FilterMode::Block, false) => Verdict::Keep,
            (FilterMode::Allow, false) => Verdict::Drop(Rejection::new("name_not_matched", "event name matches no allow pattern")),
            (FilterMode::Block, true) => Verdict::Drop(Rejection::new("name_blocked", "event name matches a block pattern")),
        })
    }
}

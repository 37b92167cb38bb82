//! Checks that names follow `namespace.object.action`.

use crate::processor::{ProcessError, Processor, Rejection, Verdict};
use crate::rules::name::{check_name, is_legacy_name};
use crate::Event;

/// What to do with a badly named event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameMode {
    /// Do not check.
    Off,
    /// Keep the event, count and log a warning.
    #[default]
    Warn,
    /// Drop the event with a reason.
    Reject,
}

/// Validates event names; legacy names (`seq_goto`, URL paths) pass when allowed.
#[derive(Debug, Clone, Default)]
pub struct NameValidator {
    pub mode: NameMode,
    pub accept_legacy: bool,
}

impl NameValidator {
    pub fn new(mode: NameMode, accept_legacy: bool) -> Self {
        NameValidator { mode, accept_legacy }
    }

    /// The rejection for `name`, if it is not acceptable.
    pub fn check(&self, name: &str) -> Option<Rejection> {
        let problem = check_name(name).err()?;
        if self.accept_legacy && is_legacy_name(name) {
            return None;
        }
        Some(Rejection::new(problem.code(), problem.message()))
    }
}

impl Processor for NameValidator {
    fn name(&self) -> &str {
        "name_validator"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        if self.mode == NameMode::Off {
            return Ok(Verdict::Keep);
        }
        Ok(match (self.check(&event.name()), self.mode) {
            (None, _) => Verdict::Keep,
            (Some(why), NameMode::Reject) => Verdict::Drop(why),
            (Some(why), _) => Verdict::Warn(why),
        })
    }
}

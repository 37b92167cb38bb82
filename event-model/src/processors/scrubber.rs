//! Masks passwords and payment card numbers anywhere in the payload.

use crate::processor::{ProcessError, Processor, Verdict};
use crate::rules::json::{rewrite, Dialect, Rules};
use crate::rules::sensitive::{is_sensitive_key, MASK};
use crate::text::{Json, Text};
use crate::Event;

/// Replaces the values of password-like keys, and card numbers that pass the Luhn
/// check, with `"********"` at every depth of `data` (or `event` in legacy shape), in
/// one pass over the JSON text ([`rules::json::rewrite`](crate::rules::json::rewrite),
/// which the browser SDK runs too). Text with nothing to mask is left as it is.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Keys masked in addition to the built-in password keys.
    pub extra_keys: Vec<String>,
}

impl Scrubber {
    pub fn new(extra_keys: Vec<String>) -> Self {
        Scrubber { extra_keys }
    }

    /// Masks sensitive values in `value`; returns whether anything changed.
    pub fn scrub(&self, value: &mut Json) -> bool {
        match value {
            Json::Text(text) => {
                let rules = Rules {
                    scrub: true,
                    extra_sensitive_keys: &self.extra_keys,
                    rename: None,
                    dialect: Dialect::Python,
                    null_nonfinite: false,
                };
                match rewrite(text, &rules) {
                    Ok(std::borrow::Cow::Owned(new)) => {
                        *value = Json::from_checked(Text::from(new));
                        true
                    }
                    _ => false,
                }
            }
            Json::Object(fields) => {
                let keys: Vec<Text> = fields.iter().map(|(k, _)| k.clone()).collect();
                let mut changed = false;
                for key in keys {
                    let Some(member) = fields.get_mut(&key) else { continue };
                    if is_sensitive_key(&key, &self.extra_keys) && !member.is_null() {
                        *member = Json::str(MASK);
                        changed = true;
                    } else {
                        changed |= self.scrub(member);
                    }
                }
                changed
            }
            Json::Dumped(inner) => self.scrub(inner),
        }
    }
}

impl Processor for Scrubber {
    fn name(&self) -> &str {
        "scrubber"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        if let Some(data) = event.data_mut() {
            self.scrub(data);
        }
        Ok(Verdict::Keep)
    }
}

//! Masks passwords and payment card numbers anywhere in the payload.

use serde_json::Value;

use crate::processor::{ProcessError, Processor, Verdict};
use crate::rules::sensitive::{is_card_number, is_sensitive_key, mask_card_numbers, MASK};
use crate::Event;

/// Replaces the values of password-like keys, and card numbers that pass the Luhn
/// check, with `"********"` at every depth of `data` (or `event` in legacy shape).
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Keys masked in addition to the built-in password keys.
    pub extra_keys: Vec<String>,
}

impl Scrubber {
    pub fn new(extra_keys: Vec<String>) -> Self {
        Scrubber { extra_keys }
    }

    /// Masks sensitive values in `value`; returns how many were masked.
    pub fn scrub(&self, value: &mut Value) -> usize {
        match value {
            Value::Object(map) => map
                .iter_mut()
                .map(|(key, v)| {
                    if is_sensitive_key(key, &self.extra_keys) && !v.is_null() {
                        *v = Value::String(MASK.to_owned());
                        1
                    } else {
                        self.scrub(v)
                    }
                })
                .sum(),
            Value::Array(items) => items.iter_mut().map(|v| self.scrub(v)).sum(),
            Value::String(s) => match mask_card_numbers(s) {
                Some(masked) => {
                    *s = masked;
                    1
                }
                None => 0,
            },
            Value::Number(n) => {
                // Card numbers have 13 to 19 digits; most numbers are far smaller.
                let Some(whole) = n.as_u64().filter(|v| *v >= 1_000_000_000_000) else { return 0 };
                if is_card_number(&whole.to_string()) {
                    *value = Value::String(MASK.to_owned());
                    1
                } else {
                    0
                }
            }
            Value::Null | Value::Bool(_) => 0,
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

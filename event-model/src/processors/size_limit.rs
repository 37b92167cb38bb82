//! Rejects events whose serialized form is too large; never truncates.

use crate::processor::{ProcessError, Processor, Rejection, Verdict};
use crate::Event;

/// The default limit, in bytes of the event serialized as the tracking log writes it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = crate::rules::event::MAX_EVENT_BYTES;

/// Drops events longer than `max_bytes` once serialized, with a reason.
#[derive(Debug, Clone)]
pub struct SizeLimit {
    pub max_bytes: usize,
}

impl Default for SizeLimit {
    fn default() -> Self {
        SizeLimit { max_bytes: DEFAULT_MAX_EVENT_BYTES }
    }
}

impl SizeLimit {
    pub fn new(max_bytes: usize) -> Self {
        SizeLimit { max_bytes }
    }

    /// The rejection for an event of `len` bytes, if over the limit.
    pub fn check_len(&self, len: usize) -> Option<Rejection> {
        (len > self.max_bytes)
            .then(|| Rejection::new("size_limit", format!("event is {len} bytes serialized, over the limit of {}", self.max_bytes)))
    }
}

impl Processor for SizeLimit {
    fn name(&self) -> &str {
        "size_limit"
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, ProcessError> {
        Ok(match self.check_len(crate::legacy::serialized_len(event)) {
            Some(why) => Verdict::Drop(why),
            None => Verdict::Keep,
        })
    }
}

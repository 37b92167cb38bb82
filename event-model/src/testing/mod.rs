//! Test helpers for the project and its users: event assertions with tolerances, an
//! in-memory backend, and a capture helper.

mod matches;
mod memory;

pub use matches::{assert_event_matches, event_differences, is_matching_event, Tolerate};
pub use memory::{Capture, InMemoryBackend};

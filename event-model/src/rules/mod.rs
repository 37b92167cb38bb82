//! Dependency-free rules shared by the browser SDK and the server: the limits of one
//! event, JSON text (checked, scrubbed, rewritten in one pass), event names, sensitive
//! data.
//!
//! Everything here works on plain `&str` without std, so the WebAssembly SDK applies
//! the same rules as the server without linking a JSON library.

pub mod event;
pub mod json;
pub mod name;
pub mod sensitive;

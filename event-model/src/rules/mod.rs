//! Dependency-free rules shared by the browser SDK and the server: event names,
//! sensitive data, course keys in page URLs.
//!
//! Everything here works on plain `&str`, so the WebAssembly SDK can apply the same
//! rules as the server without linking a JSON library.

pub mod course;
pub mod name;
pub mod sensitive;

//! The event model of Tracking: one crate for the browser SDK and the ingest server.
//!
//! An [`Event`] has a name, a timestamp, a `data` payload, a resolved `context` and an
//! id (UUID v7) minted where it is born. A [`Tracker`] builds events from the named
//! contexts entered on it ([`context`]) and hands them to a routing tree
//! ([`routing::Router`]) of [`processors`] and backends. The [`legacy`] module writes
//! the research tracking log byte for byte as the Python writer does, and [`testing`]
//! holds assertions for the project's and its users' tests.
//!
//! Without default features only [`rules`] is compiled: plain functions on `&str`
//! that the WebAssembly SDK uses to apply the server's rules in the browser.
//!
//! ```
//! use std::sync::Arc;
//! use event_model::{Tracker, json, routing::Router, testing::InMemoryBackend};
//! use event_model::processors::LegacyFieldMapping;
//!
//! let log = InMemoryBackend::new();
//! let router = Router::builder()
//!     .processor(LegacyFieldMapping)
//!     .backend("log", log.clone())
//!     .build();
//! let tracker = Tracker::new(Arc::new(router));
//! let _guard = tracker.context("request", json!({"username": "ada", "course_id": "course-v1:edX+DemoX+Demo"})).unwrap();
//! tracker.emit("edx.course.enrollment.activated", json!({"mode": "audit"})).unwrap();
//!
//! let line = event_model::legacy::to_line(&log.events()[0]);
//! assert!(line.starts_with(r#"{"name": "edx.course.enrollment.activated", "context": {"course_id": "#));
//! assert!(line.contains(r#""username": "ada""#));
//! ```

// Without `model`, only the dependency-free rules are built, without std, so the
// browser SDK can link them into a `no_std` WebAssembly build.
#![cfg_attr(not(feature = "model"), no_std)]

extern crate alloc;

pub mod rules;

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "model")]
pub mod context;
#[cfg(feature = "model")]
pub mod course;
#[cfg(feature = "model")]
mod event;
#[cfg(feature = "model")]
pub mod legacy;
#[cfg(feature = "model")]
pub mod processor;
#[cfg(feature = "model")]
pub mod processors;
#[cfg(feature = "model")]
pub mod python;
#[cfg(feature = "model")]
pub mod routing;
#[cfg(feature = "model")]
pub mod testing;
#[cfg(feature = "model")]
pub mod text;
#[cfg(feature = "model")]
pub mod timestamp;
#[cfg(feature = "model")]
mod tracker;
#[cfg(feature = "model")]
pub mod view;

#[cfg(feature = "model")]
pub use event::{Event, EventError, UNKNOWN_EVENT_NAME};
#[cfg(feature = "model")]
pub use serde_json::{json, Map, Value};
#[cfg(feature = "model")]
pub use text::{Fields, Json, Text};
#[cfg(feature = "model")]
pub use tracker::{default_tracker, emit, get_tracker, register_tracker, EmitError, Tracker, DEFAULT_TRACKER_NAME};

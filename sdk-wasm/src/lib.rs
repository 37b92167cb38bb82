//! The Tracking browser SDK: Open edX frontend-platform's analytics interface
//! (`sendTrackingLogEvent`, `sendTrackEvent`, `sendPageEvent`, `identify…`) on a
//! WebAssembly core that validates, scrubs and batches events to the ingest server's
//! `POST /v1/batch`.
//!
//! The layers, each in one place: [`prepare`] applies the server's own rules
//! (`event_model::rules`) to one call; [`queue`] batches, retries, splits, persists and
//! flushes; [`recorder`] ties calls to the queue; all three are plain Rust, tested
//! natively, and reach the world only through [`io::Io`]. [`browser`] is that world in
//! a browser (web-sys, js-sys); the functions below are the page's entry points.
//!
//! The SDK holds no JSON library: the browser's `JSON.stringify` takes the snapshot of
//! the properties and [`json`] rewrites its text in one pass. Nothing here throws into
//! the page. The npm package `@org/tracking` (in `js/`) wraps these exports: it queues
//! calls made before the module is ready, swallows a module that cannot load, and
//! throws for `identifyAuthenticatedUser` without a user id, as frontend-platform does.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::string::String;
use core::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[cfg(all(not(feature = "std"), target_arch = "wasm32"))]
mod wasm_rt;

pub mod browser;
pub mod codec;
pub mod config;
pub mod event;
mod fifo;
pub mod io;
pub mod json;
pub mod prepare;
pub mod queue;
pub mod recorder;
pub mod snake;

pub use browser::Tracker;
pub use config::{Config, NameMode};
pub use event::Kind;
pub use recorder::{Call, Recorder};

struct Global {
    tracker: Option<Tracker>,
    /// Calls lost outside the tracker: made before `configure`, re-entrant, or an
    /// `identifyAuthenticatedUser` without a user id it can use (a string or an integer).
    lost: u64,
}

/// The page's tracker. WebAssembly here is single-threaded (no `atomics`), so a plain
/// static is sound; it also keeps `thread_local!` (std only) out of the build.
struct PageGlobal(RefCell<Global>);

// SAFETY: wasm32-unknown-unknown without the `atomics` feature has one thread.
unsafe impl Sync for PageGlobal {}

static GLOBAL: PageGlobal = PageGlobal(RefCell::new(Global { tracker: None, lost: 0 }));

fn tracker() -> Option<Tracker> {
    GLOBAL.0.try_borrow().ok().and_then(|g| g.tracker.clone())
}

fn lose() {
    if let Ok(mut g) = GLOBAL.0.try_borrow_mut() {
        g.lost += 1;
    }
}

/// Captures a call on the calling path and hands it to the tracker.
fn capture(kind: Kind, name: JsValue, category: JsValue, properties: &JsValue, snake: bool) {
    if !tracker().is_some_and(|t| t.capture(kind, name, category, properties, snake)) {
        lose();
    }
}

fn dispatch(call: Call) {
    if !tracker().is_some_and(|t| t.record(call)) {
        lose();
    }
}

fn identify(user_id: Option<String>, traits: Option<String>, time: f64, page: String) {
    if !tracker().is_some_and(|t| t.identify(user_id, traits, time, page)) {
        lose();
    }
}

/// `identifyAuthenticatedUser`, live or replayed. An id that is not text (an object, a
/// fraction) is lost: read as none, it would sign the user out as an anonymous identify does.
fn identify_user(user_id: &JsValue, traits: Option<String>, time: f64, page: String) {
    match browser::text(user_id).filter(|id| !id.is_empty()) {
        Some(id) => identify(Some(id), traits, time, page),
        None => lose(),
    }
}

/// Sets the endpoint and the queue's limits (see the README for every option) and
/// starts the tracker. Calls made before it are dropped (counted in `lost`): the npm
/// entry holds them until `configure` and replays them. Calling it again changes the
/// settings, except `storageKey`. `guard`, from the npm entry, wraps the callback the
/// browser calls for timers, listeners and requests (see [`Tracker::guarded`]).
#[wasm_bindgen]
pub fn configure(options: JsValue, guard: JsValue) {
    if let Some(t) = tracker() {
        t.reconfigure(&options);
        return;
    }
    let t = Tracker::guarded(Tracker::config_of(&options), guard.is_function().then(|| guard.unchecked_ref()));
    if let Ok(mut g) = GLOBAL.0.try_borrow_mut() {
        g.tracker = Some(t);
    }
}

/// An event for the research tracking log; property keys are snake-cased at every
/// depth as frontend-platform does. (The npm entry returns frontend-platform's promise,
/// which resolves at once: the queue persists the event and flushes it on unload.)
#[wasm_bindgen(js_name = sendTrackingLogEvent)]
pub fn send_tracking_log_event(name: JsValue, properties: JsValue) {
    capture(Kind::TrackingLog, name, JsValue::UNDEFINED, &properties, true);
}

/// A Segment `track` event.
#[wasm_bindgen(js_name = sendTrackEvent)]
pub fn send_track_event(name: JsValue, properties: JsValue) {
    capture(Kind::Track, name, JsValue::UNDEFINED, &properties, false);
}

/// A Segment `page` event.
#[wasm_bindgen(js_name = sendPageEvent)]
pub fn send_page_event(category: JsValue, name: JsValue, properties: JsValue) {
    capture(Kind::Page, name, category, &properties, false);
}

/// Declares the signed-in user (the server trusts only its own credentials; this id
/// travels as `user_id` for Segment). The npm entry throws without a user id, as
/// frontend-platform does, before it calls this; here such a call is counted in `lost`
/// (a `Result` export would cost the module 0.5 KB for a check made twice).
#[wasm_bindgen(js_name = identifyAuthenticatedUser)]
pub fn identify_authenticated_user(user_id: JsValue, traits: JsValue) {
    let traits = browser::stringify(&traits).ok().flatten();
    identify_user(&user_id, traits, js_sys::Date::now(), browser::page_url());
}

/// Declares an anonymous visitor: forgets a signed-in user seen before (new anonymous
/// id) and, when traits are given, sends an `identify` event with them.
#[wasm_bindgen(js_name = identifyAnonymousUser)]
pub fn identify_anonymous_user(traits: JsValue) {
    let traits = browser::stringify(&traits).ok().flatten();
    identify(None, traits, js_sys::Date::now(), browser::page_url());
}

/// The legacy `Logger.log(event_type, data)`: a tracking-log event whose data is kept
/// as given (no snake-casing: legacy consumers read keys such as `currentTime`).
#[wasm_bindgen(js_name = logLegacy)]
pub fn log_legacy(event_type: JsValue, data: JsValue) {
    capture(Kind::TrackingLog, event_type, JsValue::UNDEFINED, &data, false);
}

/// Sends what is queued now and calls `done` when it is delivered or the attempt
/// failed (the events then wait for their retry); the npm entry makes it a promise.
#[wasm_bindgen]
pub fn flush(done: Function) {
    match tracker() {
        Some(t) => t.flush(done),
        None => browser::call_done(&done),
    }
}

/// Counters: `enqueued`, `sent`, `retried`, `dropped` by reason, and the queue's state.
#[wasm_bindgen(js_name = getStats)]
pub fn get_stats() -> JsValue {
    let lost = GLOBAL.0.try_borrow().map(|g| g.lost).unwrap_or(0);
    match tracker() {
        Some(t) => t.stats_with(lost),
        None => {
            // Nothing counted yet but calls made before `configure`.
            let o = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&o, &"configured".into(), &JsValue::FALSE);
            let _ = js_sys::Reflect::set(&o, &"lost".into(), &JsValue::from_f64(lost as f64));
            let _ = js_sys::Reflect::set(&o, &"dropped".into(), &js_sys::Object::new());
            o.into()
        }
    }
}

/// Forgets the user id and mints a new anonymous id (Segment's `reset`, for sign-out).
/// Queued events keep the identity they were recorded with.
#[wasm_bindgen]
pub fn reset() {
    if let Some(t) = tracker() {
        t.reset();
    }
}

/// Replays a call the JavaScript entry captured before the module was ready:
/// `code` 0 tracking log, 1 track, 2 page, 3 identify (user), 4 identify (anonymous),
/// 5 legacy `Logger.log`; `data` is the `JSON.stringify` text taken at the call,
/// `undefined` for none, `null` when it threw.
#[wasm_bindgen(js_name = __replay)]
pub fn replay(code: u8, name: JsValue, category: JsValue, data: JsValue, time: f64, page: JsValue) {
    let page = page.as_string().unwrap_or_default();
    let (data, unserializable) = (data.as_string(), data.is_null());
    let kind = match code {
        0 | 5 => Kind::TrackingLog,
        1 => Kind::Track,
        2 => Kind::Page,
        3 => return identify_user(&name, data, time, page),
        4 => return identify(None, data, time, page),
        _ => return,
    };
    dispatch(Call {
        kind,
        name: browser::text(&name),
        category: browser::text(&category),
        data,
        unserializable,
        snake: code == 0,
        time,
        page,
    });
}

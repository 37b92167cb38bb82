//! `/healthz`, `/readyz`, `/metrics`, and `/status`: each sink's state at a glance.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The server takes events: started, not shutting down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable().content_type("text/plain").body("not ready")
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.wal_bytes.set(state.store.wal.size_bytes() as i64);
    state.metrics.wal_committed.set(state.store.wal.committed_seq() as i64);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&state.counters))
}

/// One table per sink: state, lag, delivered per second, spilled, restarts; the same
/// as JSON with `?format=json` (or `Accept: application/json`).
pub async fn status(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let sinks: Vec<serde_json::Value> = state
        .sinks
        .iter()
        .map(|s| {
            json!({
                "sink": s.name, "type": s.kind, "state": s.state().as_str(),
                "lag_records": s.lag_records.load(Ordering::Relaxed), "lag_bytes": s.lag_bytes.load(Ordering::Relaxed),
                "delivered": s.delivered.load(Ordering::Relaxed), "delivered_per_second": (s.rate() * 10.0).round() / 10.0,
                "spilled": s.spilled.load(Ordering::Relaxed), "restarts": s.restarts.load(Ordering::Relaxed),
                "when_full": match s.policy.when_full { crate::sinks::driver::WhenFull::Block => "block", crate::sinks::driver::WhenFull::Spill => "spill" },
                "last_error": s.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            })
        })
        .collect();
    let wal = json!({"bytes": state.store.wal.size_bytes(), "max_bytes": state.limits_wal_max_bytes, "committed_seq": state.store.wal.committed_seq()});
    let wants_json = req.query_string().split('&').any(|p| p == "format=json")
        || req.headers().get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.starts_with("application/json"));
    if wants_json {
        return HttpResponse::Ok().json(json!({"ready": state.is_ready(), "wal": wal, "sinks": sinks}));
    }
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>Tracking status</title>\
         <style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}\
         td:first-child,th:first-child,td.s{text-align:left}.ok{color:#080}.bad{color:#b00}</style><h1>Tracking</h1>",
    );
    let _ = write!(
        html,
        "<p>{} · write-ahead log {} of {} bytes</p>",
        if state.is_ready() { "ready" } else { "not ready" },
        wal["bytes"],
        wal["max_bytes"]
    );
    html.push_str("<table><tr><th>sink</th><th>state</th><th>lag (records)</th><th>lag (bytes)</th><th>delivered/s</th><th>delivered</th><th>spilled</th><th>restarts</th><th>when full</th></tr>");
    for s in &sinks {
        let state_class = if s["state"] == "ok" { "ok" } else { "bad" };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"s {state_class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=s>{}</td></tr>",
            escape_html(s["sink"].as_str().unwrap_or("")),
            escape_html(s["state"].as_str().unwrap_or("")),
            s["lag_records"], s["lag_bytes"], s["delivered_per_second"], s["delivered"], s["spilled"], s["restarts"],
            s["when_full"].as_str().unwrap_or("")
        );
    }
    html.push_str("</table><p><a href=\"?format=json\">JSON</a> · <a href=\"/metrics\">metrics</a></p>");
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

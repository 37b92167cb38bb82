//! `/healthz`, `/readyz` and `/metrics`.

use actix_web::{web, HttpResponse};

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
    state.metrics.wal_bytes.set(state.wal.size_bytes() as i64);
    state.metrics.wal_committed.set(state.wal.committed_seq() as i64);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(&state.counters))
}

//! `POST /v1/events`: events emitted by trusted Rust services (the remote emit
//! backend), in the modern shape with their own context. Requires the shared token
//! `TRACKING_SERVER_TOKEN`; without one configured the endpoint is closed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use event_model::processor::Rejection;
use event_model::Event;

use super::reply::{read_items, store_items, Refusal};
use crate::state::AppState;

pub async fn post_events(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(reply) => reply,
        Err(refusal) => refusal.respond(&state),
    }
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<HttpResponse, Refusal> {
    let Some(token) = state.server_token.as_deref() else {
        return Err(Refusal::new(404, "not_enabled", "server events are not enabled (set TRACKING_SERVER_TOKEN)"));
    };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        return Err(Refusal::new(401, "unauthorized", "a valid server token is required"));
    }
    let items = read_items(req, body, state)?;
    store_items(state, items, |item| {
        let event = Event::from_value(item).map_err(|e| Rejection::new("invalid_event", e.to_string()))?;
        state.rules.apply(event)
    })
    .await
}

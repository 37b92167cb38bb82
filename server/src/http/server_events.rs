//! `POST /v1/events`: events emitted by trusted Rust services (the remote emit
//! backend), in the modern shape with their own context. Requires the shared token
//! `TRACKING_SERVER_TOKEN`; without one configured the endpoint is closed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use event_model::processor::Rejection;
use event_model::Event;

use super::reply::{decoded_body, store_and_reply, Refusal};
use crate::ingest::batch::{split_envelope, Refused};
use crate::state::AppState;

pub async fn post_events(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(reply) => reply,
        Err(refusal) => refusal.respond(&state),
    }
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<HttpResponse, Refusal> {
    let Some(token) = state.server_token.as_deref() else {
        return Err(Refusal::new(404, "not_enabled", "server events are not enabled (set TRACKING_SERVER_TOKEN)"));
    };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        return Err(Refusal::new(401, "unauthorized", "a valid server token is required"));
    }
    let body = decoded_body(req, body, state.limits.inflated_bytes)?;
    let spans = split_envelope(&body, state.limits.events_per_batch).map_err(|e| super::batch::envelope_refusal(e, &body))?;
    state.metrics.received.inc_by(spans.len() as u64);
    let outcomes = spans
        .into_iter()
        .map(|(a, b)| {
            let text = std::str::from_utf8(&body[a..b])
                .map_err(|_| Refused { id: None, why: Rejection::new("invalid_utf8", "event is not valid UTF-8") })?;
            let event = Event::parse(text).map_err(|e| Refused { id: None, why: Rejection::new("invalid_event", e.to_string()) })?;
            let id = event.id().and_then(|id| uuid::Uuid::parse_str(&id).ok());
            state.rules.apply(event).map_err(|why| Refused { id, why })
        })
        .collect();
    // These events carry their own context: the record shares none.
    store_and_reply(state, "{}", outcomes).await
}

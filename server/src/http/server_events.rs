//! `POST /v1/events`: events emitted by trusted Rust services (the remote emit
//! backend), in the modern shape with their own context. Requires the shared token
//! `TRACKING_SERVER_TOKEN`; without one configured the endpoint is closed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use event_model::Event;
use serde_json::{json, Value};

use super::reply::{decoded_body, Refusal};
use crate::ingest::{client_id_of, parse_batch, BodyError};
use crate::state::{AppState, Stored};

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
    let body = decoded_body(req, body, state.limits.inflated_bytes)?;
    let items = parse_batch(&body, state.limits.events_per_batch).map_err(|e| match e {
        BodyError::TooManyEvents { .. } => Refusal::new(413, e.code(), e.to_string()),
        _ => Refusal::new(400, e.code(), e.to_string()),
    })?;
    state.metrics.received.inc_by(items.len() as u64);
    let mut results: Vec<Result<usize, (&'static str, String)>> = Vec::new();
    let mut ids = Vec::new();
    let mut events = Vec::new();
    for item in items {
        ids.push(client_id_of(&item));
        let built = Event::from_value(item)
            .map_err(|e| event_model::processor::Rejection::new("invalid_event", e.to_string()))
            .and_then(|event| state.rules.apply(event));
        match built {
            Ok(event) => {
                results.push(Ok(events.len()));
                events.push(event);
            }
            Err(why) => {
                state.metrics.rejected.with_label_values(&[why.reason]).inc();
                results.push(Err((why.reason, why.detail)));
            }
        }
    }
    let stored = state
        .accept(events)
        .await
        .map_err(|_| Refusal::new(503, "unavailable", "events could not be stored now; retry later").retry_after(2))?;
    let results: Vec<Value> = results
        .into_iter()
        .zip(ids)
        .map(|(r, id)| match r {
            Ok(n) if stored[n] == Stored::Accepted => json!({"id": id, "status": "accepted"}),
            Ok(_) => json!({"id": id, "status": "duplicate"}),
            Err((reason, detail)) => json!({"id": id, "status": "rejected", "reason": reason, "detail": detail}),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

//! `POST /v1/batch`: the SDK's batches, with a result per event.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::reply::{decoded_body, origin_allowed, Refusal};
use crate::context::RequestContext;
use crate::ingest::{client_id_of, event_from_batch_item, parse_batch, BodyError};
use crate::state::{AppState, Stored};

/// One event's result in the reply.
enum ItemResult {
    Pending(usize),
    Rejected(&'static str, String),
}

pub async fn post_batch(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    match handle(&req, &body, &state, &context).await {
        Ok(reply) => reply,
        Err(refusal) => refusal.respond(&state),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState, context: &RequestContext) -> Result<HttpResponse, Refusal> {
    if !state.within_rate(&context.ip) {
        return Err(Refusal::new(429, "rate_limited", "too many requests from this client").retry_after(1));
    }
    if context.authenticated_by_cookie && !origin_allowed(req, &state.allowed_origins) {
        return Err(Refusal::new(403, "origin_not_allowed", "cookie-authenticated requests must come from an allowed origin"));
    }
    check_content_type(req)?;
    let body = decoded_body(req, body, state.limits.inflated_bytes)?;
    let items = parse_batch(&body, state.limits.events_per_batch).map_err(|e| match e {
        BodyError::TooManyEvents { .. } => Refusal::new(413, e.code(), e.to_string()),
        _ => Refusal::new(400, e.code(), e.to_string()),
    })?;
    state.metrics.received.inc_by(items.len() as u64);

    let request_context = context.to_context();
    let received = event_model::timestamp::format(event_model::timestamp::now());
    let mut ids = Vec::with_capacity(items.len());
    let mut results = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        ids.push(client_id_of(&item));
        let built = event_from_batch_item(item, &request_context, &received).and_then(|e| state.rules.apply(e));
        match built {
            Ok(event) => {
                if let Some(slot) = ids.last_mut() {
                    *slot = event.id.map(|id| id.to_string());
                }
                results.push(ItemResult::Pending(events.len()));
                events.push(event);
            }
            Err(why) => {
                state.metrics.rejected.with_label_values(&[why.reason]).inc();
                results.push(ItemResult::Rejected(why.reason, why.detail));
            }
        }
    }
    let stored = state.accept(events).await.map_err(|e| {
        tracing::error!(error = %e, "could not store a batch; the client will retry");
        Refusal::new(503, "unavailable", "events could not be stored now; retry later").retry_after(2)
    })?;
    let results: Vec<Value> = results
        .into_iter()
        .zip(ids)
        .map(|(result, id)| match result {
            ItemResult::Pending(n) => match stored[n] {
                Stored::Accepted => json!({"id": id, "status": "accepted"}),
                Stored::Duplicate => json!({"id": id, "status": "duplicate"}),
            },
            ItemResult::Rejected(reason, detail) => json!({"id": id, "status": "rejected", "reason": reason, "detail": detail}),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// JSON is accepted as `application/json`, or as `text/plain` (beacons and simple
/// requests avoid a CORS pre-flight), or without a type.
fn check_content_type(req: &HttpRequest) -> Result<(), Refusal> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let mime = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "text/plain" | "" => Ok(()),
        other => Err(Refusal::new(415, "unsupported_media_type", format!("Content-Type {other} is not accepted; send application/json or text/plain"))),
    }
}

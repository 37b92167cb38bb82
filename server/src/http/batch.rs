//! `POST /v1/batch`: the SDK's batches, with a result per event.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::reply::{origin_allowed, read_items, store_items, Refusal};
use crate::context::RequestContext;
use crate::ingest::event_from_batch_item;
use crate::state::AppState;

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
    let items = read_items(req, body, state)?;
    let request_context = context.to_context();
    let received = event_model::timestamp::format(event_model::timestamp::now());
    store_items(state, items, |item| event_from_batch_item(item, &request_context, &received).and_then(|e| state.rules.apply(e))).await
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

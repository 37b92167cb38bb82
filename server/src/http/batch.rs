//! `POST /v1/batch`: the SDK's batches, with a result per event.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::reply::{decoded_body, origin_allowed, store_and_reply, Refusal};
use crate::context::RequestContext;
use crate::ingest::batch::{read_batch, BodyError, LastPage};
use crate::state::AppState;

pub async fn post_batch(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    match handle(&req, &body, &state, &context).await {
        Ok(reply) => reply,
        Err(refusal) => refusal.respond(&state),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState, context: &RequestContext) -> Result<HttpResponse, Refusal> {
    if context.authenticated_by_cookie && !origin_allowed(req, &state.allowed_origins) {
        return Err(Refusal::new(403, "origin_not_allowed", "cookie-authenticated requests must come from an allowed origin"));
    }
    check_content_type(req)?;
    let body = decoded_body(req, body, state.limits.inflated_bytes)?;
    // One receive time for the request: the event time in the tracking log, as in the LMS.
    let received = event_model::timestamp::format(event_model::timestamp::now());
    let mut pages = LastPage::default();
    let outcomes =
        read_batch(&body, state.limits.events_per_batch, &state.rules, &received, &mut pages).map_err(|e| envelope_refusal(e, &body))?;
    state.metrics.received.inc_by(outcomes.len() as u64);
    store_and_reply(state, &context.to_json(), outcomes).await
}

/// The answer to a body whose envelope cannot be read.
pub(crate) fn envelope_refusal(error: BodyError, body: &[u8]) -> Refusal {
    match error {
        BodyError::TooManyEvents { .. } => Refusal::new(413, error.code(), error.to_string()),
        _ if std::str::from_utf8(body).is_err() => Refusal::new(400, "invalid_utf8", "body is not valid UTF-8"),
        _ => Refusal::new(400, error.code(), error.to_string()),
    }
}

/// JSON is accepted as `application/json`, or as `text/plain` (beacons and simple
/// requests avoid a CORS pre-flight), or without a type.
fn check_content_type(req: &HttpRequest) -> Result<(), Refusal> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else { return Ok(()) };
    let mime = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "text/plain" | "" => Ok(()),
        other => Err(Refusal::new(
            415,
            "unsupported_media_type",
            format!("Content-Type {other} is not accepted; send application/json or text/plain"),
        )),
    }
}

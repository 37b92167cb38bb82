//! `GET|POST /event`: the LMS's tracking endpoint, for existing clients
//! (frontend-platform's `sendTrackingLogEvent`, the legacy `Logger.log`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::reply::{origin_allowed, Refusal};
use crate::context::RequestContext;
use crate::ingest::legacy::{line_len, read_event, LegacyFields};
use crate::state::AppState;

pub async fn get_event(req: HttpRequest, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    let fields = web::Query::<LegacyFields>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| Refusal::new(400, "invalid_query", e.to_string()));
    respond(fields, &req, &state, &context).await
}

pub async fn post_event(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    let fields = form_fields(&req, &body);
    respond(fields, &req, &state, &context).await
}

/// Reads the form body (`application/x-www-form-urlencoded`, or a JSON object of
/// the same fields); the query string fills fields the body lacks.
fn form_fields(req: &HttpRequest, body: &[u8]) -> Result<LegacyFields, Refusal> {
    let mime = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let text = std::str::from_utf8(body).map_err(|_| Refusal::new(400, "invalid_utf8", "body is not valid UTF-8"))?;
    let mut fields: LegacyFields = if mime.starts_with("application/json") {
        serde_json::from_str(text).map_err(|e| Refusal::new(400, "invalid_json", e.to_string()))?
    } else {
        serde_urlencoded::from_str(text).map_err(|e| Refusal::new(400, "invalid_form", e.to_string()))?
    };
    if let Ok(query) = serde_urlencoded::from_str::<LegacyFields>(req.query_string()) {
        fields.event_type = fields.event_type.or(query.event_type);
        fields.event = fields.event.or(query.event);
        fields.page = fields.page.or(query.page);
        fields.courserun_key = fields.courserun_key.or(query.courserun_key);
    }
    Ok(fields)
}

async fn respond(fields: Result<LegacyFields, Refusal>, req: &HttpRequest, state: &AppState, context: &RequestContext) -> HttpResponse {
    match store(fields, req, state, context).await {
        // Exactly what the LMS answers.
        Ok(()) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body("success"),
        Err(refusal) => refusal.respond(state),
    }
}

async fn store(fields: Result<LegacyFields, Refusal>, req: &HttpRequest, state: &AppState, context: &RequestContext) -> Result<(), Refusal> {
    if req.method() == actix_web::http::Method::POST && context.authenticated_by_cookie && !origin_allowed(req, &state.allowed_origins) {
        return Err(Refusal::new(403, "origin_not_allowed", "cookie-authenticated requests must come from an allowed origin"));
    }
    let fields = fields?;
    state.metrics.received.inc();
    let received = event_model::timestamp::format(event_model::timestamp::now());
    let event = read_event(&fields, &state.rules, &received).map_err(|why| Refusal::new(400, why.reason, why.detail))?;
    let context = context.to_json();
    // The LMS drops a line over its limit without a word; this endpoint says so.
    let len = line_len(&context, &event.json);
    if len > state.limits.line_chars {
        return Err(Refusal::new(400, "line_too_long", format!("the tracking-log line would be {len} characters, over the limit of {}", state.limits.line_chars)));
    }
    state.store.accept(&context, vec![event]).await.map_err(|e| {
        tracing::error!(error = %e, "could not store an event; the client may retry");
        Refusal::new(503, "unavailable", "the event could not be stored now; retry later").retry_after(2)
    })?;
    Ok(())
}

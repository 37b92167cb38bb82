//! `GET|POST /event`: the LMS's tracking endpoint, for existing clients
//! (frontend-platform's `sendTrackingLogEvent`, the legacy `Logger.log`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::reply::{origin_allowed, Refusal};
use crate::context::{latin1, RequestContext};
use crate::ingest::form;
use crate::ingest::legacy::{line_over, read_event, LegacyFields};
use crate::state::AppState;

pub async fn get_event(req: HttpRequest, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    // A GET's fields are its query string only, as the LMS reads them.
    let fields = form::parse_urlencoded(req.query_string().as_bytes()).map(|f| LegacyFields::from_form(&f)).map_err(form_refusal);
    respond(fields, &req, &state, &context).await
}

pub async fn post_event(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>, context: RequestContext) -> HttpResponse {
    let fields = post_fields(&req, &body);
    respond(fields, &req, &state, &context).await
}

/// A POST's fields are its body only, read by its type as Django reads it:
/// `application/x-www-form-urlencoded` (UTF-8, else ISO-8859-1), `multipart/form-data`
/// (what `navigator.sendBeacon(url, formData)` sends), or, beyond the LMS, a JSON
/// object of the same fields. Another type is refused: the LMS would log an event
/// named `unknown` with no data, which loses the one it was sent.
fn post_fields(req: &HttpRequest, body: &[u8]) -> Result<LegacyFields, Refusal> {
    let raw_type = req.headers().get(header::CONTENT_TYPE).map(|v| latin1(v.as_bytes())).unwrap_or_default();
    let content_type = form::ContentType::parse(&raw_type);
    let fields = match content_type.mime.as_str() {
        "application/x-www-form-urlencoded" => {
            if let Some(charset) = content_type.param("charset").filter(|c| !c.eq_ignore_ascii_case("utf-8")) {
                return Err(form_refusal(form::FormError::NotUtf8Form(charset.to_owned())));
            }
            form::parse_urlencoded(body)
        }
        "multipart/form-data" => form::parse_multipart(body, &raw_type),
        "application/json" => {
            let text = std::str::from_utf8(body).map_err(|_| Refusal::new(400, "invalid_utf8", "a JSON body must be UTF-8"))?;
            return serde_json::from_str(text).map_err(|e| Refusal::new(400, "invalid_json", e.to_string()));
        }
        "" if body.is_empty() => Ok(form::FormFields::default()),
        _ => {
            return Err(Refusal::new(
                415,
                "unsupported_media_type",
                "send the fields as application/x-www-form-urlencoded, multipart/form-data or application/json",
            ))
        }
    };
    fields.map(|f| LegacyFields::from_form(&f)).map_err(form_refusal)
}

fn form_refusal(error: form::FormError) -> Refusal {
    let status = match error {
        form::FormError::UnsupportedCharset(_) => 415,
        _ => 400,
    };
    Refusal::new(status, "invalid_form", error.to_string())
}

async fn respond(fields: Result<LegacyFields, Refusal>, req: &HttpRequest, state: &AppState, context: &RequestContext) -> HttpResponse {
    match store(fields, req, state, context).await {
        // Exactly what the LMS answers.
        Ok(()) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body("success"),
        Err(refusal) => refusal.respond(state),
    }
}

async fn store(
    fields: Result<LegacyFields, Refusal>,
    req: &HttpRequest,
    state: &AppState,
    context: &RequestContext,
) -> Result<(), Refusal> {
    if req.method() == actix_web::http::Method::POST && context.authenticated_by_cookie && !origin_allowed(req, &state.allowed_origins) {
        return Err(Refusal::new(403, "origin_not_allowed", "cookie-authenticated requests must come from an allowed origin"));
    }
    let fields = fields?;
    state.metrics.received.inc();
    let received = event_model::timestamp::format(event_model::timestamp::now());
    let event = read_event(&fields, &state.rules, &received).map_err(|why| Refusal::new(400, why.reason, why.detail))?;
    let context = context.to_json();
    // The LMS drops a line over its limit without a word; this endpoint says so.
    if let Some(len) = line_over(&context, &event.json, state.limits.line_chars) {
        return Err(Refusal::new(
            400,
            "line_too_long",
            format!("the tracking-log line would be {len} characters, over the limit of {}", state.limits.line_chars),
        ));
    }
    state.store.accept(&context, std::slice::from_ref(&event)).await.map_err(|e| {
        tracing::error!(error = %e, "could not store an event; the client may retry");
        Refusal::new(503, "unavailable", "the event could not be stored now; retry later").retry_after(2)
    })?;
    Ok(())
}

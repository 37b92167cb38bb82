//! Error replies, the origin check, and body decoding shared by the ingest handlers.

use std::io::Read;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use event_model::processor::Rejection;
use event_model::rules::json::push_str_literal;
use uuid::Uuid;

use crate::ingest::batch::Refused;
use crate::ingest::{EventText, Stored};
use crate::state::AppState;

/// A refused request: status, stable code, and a sentence.
#[derive(Debug)]
pub struct Refusal {
    pub status: actix_web::http::StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub retry_after: Option<u32>,
}

impl Refusal {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            status: actix_web::http::StatusCode::from_u16(status).expect("a valid status"),
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON reply; counted as a rejection (or 429/503) in the metrics.
    pub fn respond(self, state: &AppState) -> HttpResponse {
        match self.status.as_u16() {
            429 => state.metrics.rate_limited.inc(),
            503 => state.metrics.unavailable.inc(),
            _ => state.metrics.rejected.with_label_values(&[self.code]).inc(),
        }
        let mut reply = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            reply.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        reply.json(json!({"error": self.code, "detail": self.detail}))
    }
}

/// `405` with `Allow` for an ingest endpoint asked with another method (`HEAD`, `PUT`,
/// ...): such a request logs nothing, where a 404 would say the endpoint is not here.
pub fn method_not_allowed(req: &HttpRequest, state: &AppState, allow: &'static str) -> HttpResponse {
    let detail = format!("{} is not accepted here; use {allow}", req.method());
    let mut reply = Refusal::new(405, "method_not_allowed", detail).respond(state);
    reply.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    reply
}

/// Whether a cookie-authenticated request comes from an allowed page: its `Origin`
/// (or else `Referer`) is this server's own origin or in the allowlist. Requests
/// with neither header (not from a browser) pass.
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = match (header(header::ORIGIN), header(header::REFERER)) {
        (Some(origin), _) => origin.to_owned(),
        (None, Some(referer)) => origin_of(referer),
        (None, None) => return true,
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    origin == own || allowed.iter().any(|a| a == &origin)
}

/// `https://host:port` of a URL.
fn origin_of(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return String::new() };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{host}")
}

/// The request body, inflated when `Content-Encoding: gzip`, within the limit.
pub fn decoded_body<'a>(req: &HttpRequest, body: &'a [u8], inflated_limit: usize) -> Result<std::borrow::Cow<'a, [u8]>, Refusal> {
    let encoding = req.headers().get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(std::borrow::Cow::Borrowed(body)),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(body).take(inflated_limit as u64 + 1);
            decoder.read_to_end(&mut out).map_err(|_| Refusal::new(400, "invalid_gzip", "body is not valid gzip"))?;
            if out.len() > inflated_limit {
                return Err(Refusal::new(413, "body_too_large", format!("inflated body is over {inflated_limit} bytes")));
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        other => Err(Refusal::new(415, "unsupported_encoding", format!("Content-Encoding {other} is not supported (use gzip)"))),
    }
}

/// The events of a batch, each read on its own: `Ok` to store, `Err` refused with a reason.
pub type Outcomes = Vec<Result<EventText, Refused>>;

/// Stores the readable events of a request as one record sharing `context`, and
/// answers with a result per event, in order: one bad event never costs the others.
pub async fn store_and_reply(state: &AppState, context: &str, outcomes: Outcomes) -> Result<HttpResponse, Refusal> {
    let mut ids: Vec<Option<Uuid>> = Vec::with_capacity(outcomes.len());
    let mut slots: Vec<Result<usize, Rejection>> = Vec::with_capacity(outcomes.len());
    let mut events = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok(event) => {
                ids.push(event.id);
                slots.push(Ok(events.len()));
                events.push(event);
            }
            Err(refused) => {
                state.metrics.rejected.with_label_values(&[refused.why.reason]).inc();
                ids.push(refused.id);
                slots.push(Err(refused.why));
            }
        }
    }
    let stored = if events.is_empty() {
        Vec::new()
    } else {
        state.store.accept(context, &events).await.map_err(|e| {
            tracing::error!(error = %e, "could not store a batch; the client will retry");
            Refusal::new(503, "unavailable", "events could not be stored now; retry later").retry_after(2)
        })?
    };
    let mut body = String::with_capacity(32 + ids.len() * 64);
    body.push_str("{\"results\":[");
    for (i, (slot, id)) in slots.into_iter().zip(ids).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"id\":");
        match id {
            Some(id) => {
                body.push('"');
                body.push_str(id.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()));
                body.push('"');
            }
            None => body.push_str("null"),
        }
        match slot {
            Ok(n) if stored[n] == Stored::Accepted => body.push_str(",\"status\":\"accepted\"}"),
            Ok(_) => body.push_str(",\"status\":\"duplicate\"}"),
            Err(why) => {
                body.push_str(",\"status\":\"rejected\",\"reason\":");
                push_str_literal(&mut body, why.reason);
                body.push_str(",\"detail\":");
                push_str_literal(&mut body, &why.detail);
                body.push('}');
            }
        }
    }
    body.push_str("]}");
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_urls() {
        assert_eq!(origin_of("https://lms.example.com:8000/courses/x?y"), "https://lms.example.com:8000");
        assert_eq!(origin_of("nonsense"), "");
    }
}

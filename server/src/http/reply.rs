//! Error replies, the origin check, and body decoding shared by the ingest handlers.

use std::io::Read;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::ingest::{client_id_of, parse_batch, Accepted, BodyError};
use crate::state::{AppState, Stored};
use event_model::processor::Rejection;
use serde_json::Value;

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

/// Reads a batch body (`{"events": [...]}`, gzip allowed) within the limits.
pub fn read_items(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<Vec<Value>, Refusal> {
    let body = decoded_body(req, body, state.limits.inflated_bytes)?;
    let items = parse_batch(&body, state.limits.events_per_batch).map_err(|e| match e {
        BodyError::TooManyEvents { .. } => Refusal::new(413, e.code(), e.to_string()),
        _ => Refusal::new(400, e.code(), e.to_string()),
    })?;
    state.metrics.received.inc_by(items.len() as u64);
    Ok(items)
}

/// Builds every item with `build`, stores the good ones durably, and answers with a
/// result per item, in order: one bad event never costs the others.
pub async fn store_items(
    state: &AppState,
    items: Vec<Value>,
    build: impl Fn(Value) -> Result<Accepted, Rejection>,
) -> Result<HttpResponse, Refusal> {
    let mut ids = Vec::with_capacity(items.len());
    let mut built = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        let client_id = client_id_of(&item);
        match build(item) {
            Ok(event) => {
                ids.push(event.id.map(|id| id.to_string()).or(client_id));
                built.push(Ok(events.len()));
                events.push(event);
            }
            Err(why) => {
                state.metrics.rejected.with_label_values(&[why.reason]).inc();
                ids.push(client_id);
                built.push(Err(why));
            }
        }
    }
    let stored = state.accept(events).await.map_err(|e| {
        tracing::error!(error = %e, "could not store a batch; the client will retry");
        Refusal::new(503, "unavailable", "events could not be stored now; retry later").retry_after(2)
    })?;
    let results: Vec<Value> = built
        .into_iter()
        .zip(ids)
        .map(|(result, id)| match result {
            Ok(n) if stored[n] == Stored::Accepted => json!({"id": id, "status": "accepted"}),
            Ok(_) => json!({"id": id, "status": "duplicate"}),
            Err(why) => json!({"id": id, "status": "rejected", "reason": why.reason, "detail": why.detail}),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
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

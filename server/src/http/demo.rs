//! The demo page at `/`, and the SDK files it loads.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

const INDEX: &str = include_str!("demo.html");
const SCRIPT: &str = include_str!("demo.js");
/// The legacy-page example, served under any course URL so its events carry a course.
const LEGACY_PAGE: &str = include_str!("../../../examples/legacy-page/index.html");

pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX)
}

pub async fn legacy_page(state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(LEGACY_PAGE)
}

pub async fn script(state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(SCRIPT)
}

/// The last events the server accepted, newest last (demo mode only: they hold
/// personal data, so a production configuration turns `demo` off).
pub async fn recent_events(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(recent) = &state.store.recent else { return HttpResponse::NotFound().finish() };
    // The peer itself, not a forwarded address: a proxy in front must not open it.
    if !req.peer_addr().is_some_and(|peer| peer.ip().to_canonical().is_loopback()) {
        return HttpResponse::Forbidden().body("the demo's recent events are shown to loopback clients only");
    }
    let events: Vec<serde_json::Value> = {
        let recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().flat_map(|r| crate::record::decode(r).unwrap_or_default()).map(|e| e.to_value()).collect()
    };
    let from = events.len().saturating_sub(crate::ingest::RECENT_RECORDS);
    HttpResponse::Ok().json(&events[from..])
}

/// Serves the built SDK (`js/dist`) for the demo page.
pub async fn sdk_file(path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return HttpResponse::NotFound().finish();
    }
    let name = path.into_inner();
    if name.contains("..") || name.starts_with('/') {
        return HttpResponse::NotFound().finish();
    }
    let file = state.sdk_dir.join(&name);
    match std::fs::read(&file) {
        Ok(bytes) => {
            let mime = match file.extension().and_then(|e| e.to_str()) {
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("wasm") => "application/wasm",
                Some("map" | "json") => "application/json",
                _ => "application/octet-stream",
            };
            HttpResponse::Ok().content_type(mime).body(bytes)
        }
        Err(_) => HttpResponse::NotFound().body("the SDK is not built: run `make run`"),
    }
}

//! The demo page at `/`, and the SDK files it loads.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

const INDEX: &str = include_str!("demo.html");

pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    if !state.demo {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX)
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
    let dir = std::env::var("TRACKING_SDK_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../js/dist").to_owned());
    let file = std::path::Path::new(&dir).join(&name);
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

//! HTTP handlers: `/v1/batch`, the legacy `/event`, health, metrics and the demo page.
//! Handlers are thin: the work is in `ingest` and `state`.

mod batch;
mod demo;
pub(crate) mod health;
mod legacy_event;
mod reply;
mod server_events;

use std::time::Instant;

use actix_web::{web, HttpRequest};

pub use reply::origin_allowed;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/batch").route(web::post().to(batch::post_batch)).default_service(only("POST")))
        .service(web::resource("/v1/events").route(web::post().to(server_events::post_events)).default_service(only("POST")))
        .service(
            web::resource("/event")
                .route(web::get().to(legacy_event::get_event))
                .route(web::post().to(legacy_event::post_event))
                .default_service(only("GET, POST")),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/status", web::get().to(health::status))
        .route("/", web::get().to(demo::index))
        .route("/demo.js", web::get().to(demo::script))
        .route("/examples/legacy-page/{tail:.*}", web::get().to(demo::legacy_page))
        .route("/demo/events", web::get().to(demo::recent_events))
        .route("/sdk/{file:.*}", web::get().to(demo::sdk_file));
}

/// A resource's answer to the methods it has no route for: 405 naming `allow`.
fn only(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest, state: web::Data<crate::state::AppState>| async move { reply::method_not_allowed(&req, &state, allow) })
}

/// Middleware: the per-client rate limit of the ingest endpoints, before anything
/// else is done with the request (body, credentials).
pub async fn rate_limited(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>, actix_web::Error> {
    let limited = matches!(req.path(), "/v1/batch" | "/v1/events" | "/event");
    if limited {
        if let Some(state) = req.app_data::<web::Data<crate::state::AppState>>().cloned() {
            if let Err(wait) = state.rate_limit.check(&req) {
                let reply =
                    reply::Refusal::new(429, "rate_limited", "too many requests from this client").retry_after(wait as u32).respond(&state);
                return Ok(req.into_response(reply).map_into_right_body());
            }
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Middleware: every request's latency lands in the histogram, by route and status.
pub async fn timed(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = match req.path() {
        p @ ("/v1/batch" | "/v1/events" | "/event" | "/healthz" | "/readyz" | "/metrics" | "/status" | "/") => p.to_owned(),
        p if p.starts_with("/sdk/") => "/sdk".to_owned(),
        _ => "other".to_owned(),
    };
    let metrics = req.app_data::<web::Data<crate::state::AppState>>().map(|s| s.metrics.clone());
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        metrics.request_seconds.with_label_values(&[&route, &status.to_string()]).observe(started.elapsed().as_secs_f64());
    }
    res
}

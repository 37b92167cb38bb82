//! An enrollment service that emits `edx.course.enrollment.activated` from its
//! handler. The request-context middleware gives the event its user (from a verified
//! JWT), session, IP, agent and course; the event then goes through the same rules
//! and sinks as browser events:
//!
//! - in-process (default): this service writes the tracking-log lines itself, as the
//!   LMS does, to `./data/tracking.log` (`TRACKING_LOG_FILE` to change it);
//! - remote: with `TRACKING_INGEST_URL` (and `TRACKING_SERVER_TOKEN`) set, events
//!   are batched over HTTP to that ingest server's `POST /v1/events`.
//!
//! `cargo run -p server-emit-example`, then
//! `curl -X POST localhost:8090/api/enrollment/v1/enrollment -H 'Content-Type: application/json'
//!   -d '{"course_id": "course-v1:edX+DemoX+Demo_Course", "mode": "audit"}'`

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use event_model::course::parse_course_key;
use event_model::{json, Tracker};
use serde::Deserialize;
use tracking_emit::context::{ContextConfig, JwtVerifier, RequestContextLayer};
use tracking_emit::{request_tracker, tracking_log, RemoteBackend, RemoteOptions};

#[derive(Deserialize)]
struct Enrollment {
    course_id: String,
    #[serde(default = "audit")]
    mode: String,
}

fn audit() -> String {
    "audit".to_owned()
}

/// The handler: business logic, then one line to emit the event.
async fn enroll(tracker: web::Data<Arc<Tracker>>, body: web::Json<Enrollment>) -> HttpResponse {
    let Some(course) = parse_course_key(&body.course_id) else {
        return HttpResponse::BadRequest().json(json!({"error": "course_id is not a course run key"}));
    };
    // The course context joins the request context for this event.
    let _course = tracker.context("edx.course", json!({"course_id": course.course_id, "org_id": course.org_id}));
    let emitted = tracker.emit("edx.course.enrollment.activated", json!({"course_id": body.course_id, "mode": body.mode}));
    match emitted {
        Ok(event) => HttpResponse::Ok().json(json!({"enrolled": true, "event_id": event.id()})),
        Err(error) => HttpResponse::InternalServerError().json(json!({"error": error.to_string()})),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRACKING_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());

    // The request context's secrets: the JWT key that proves the user, the key of the
    // session hash (the LMS's SECRET_KEY when the hashes must match its own).
    let jwt = std::env::var("TRACKING_JWT_SECRET").ok().map(|s| JwtVerifier::hs256(s.as_bytes()));
    let session_key = std::env::var("TRACKING_SESSION_KEY").unwrap_or_default().into_bytes();
    let context_config = Arc::new(ContextConfig { jwt, session_key, ..Default::default() });
    let tracker = match std::env::var("TRACKING_INGEST_URL") {
        Ok(url) => {
            let token = std::env::var("TRACKING_SERVER_TOKEN").unwrap_or_default();
            request_tracker(Arc::new(RemoteBackend::new(RemoteOptions::new(url, token))))
        }
        Err(_) => {
            let path = std::env::var("TRACKING_LOG_FILE").unwrap_or_else(|_| "data/tracking.log".into());
            request_tracker(tracking_log::in_process_backend(std::path::Path::new(&path))?)
        }
    };

    let server = HttpServer::new({
        let tracker = tracker.clone();
        move || {
            App::new()
                .app_data(web::Data::new(tracker.clone()))
                .route("/api/enrollment/v1/enrollment", web::post().to(enroll))
                .wrap(RequestContextLayer::new(context_config.clone(), tracker.clone()))
        }
    })
    .bind(&listen)?;
    for address in server.addrs() {
        println!("listening on http://{address}");
    }
    server.run().await?;
    // Dropping the tracker flushes the remote backend.
    drop(tracker);
    Ok(())
}

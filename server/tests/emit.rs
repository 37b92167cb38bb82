//! Server-side emit from an actix-web handler: in-process and to a remote server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{test, web, App, HttpResponse};
use common::*;
use event_model::testing::{assert_event_matches, Tolerate};
use event_model::{json, Tracker};
use tracking_server::app::Pipeline;
use tracking_server::config::ServerConfig;
use tracking_server::context::{ContextConfig, JwtVerifier, RequestContextLayer};
use tracking_server::emit::{request_tracker, RemoteBackend, RemoteOptions};

async fn enroll(tracker: web::Data<Arc<Tracker>>) -> HttpResponse {
    let _course = tracker.context("edx.course", json!({"course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX"})).unwrap();
    tracker.emit("edx.course.enrollment.activated", json!({"course_id": "course-v1:edX+DemoX+Demo_Course", "mode": "audit"})).unwrap();
    HttpResponse::Ok().finish()
}

fn expected_line(path: &str) -> serde_json::Value {
    json!({
        "name": "edx.course.enrollment.activated",
        "context": {"user_id": 5, "path": path, "course_id": "course-v1:edX+DemoX+Demo_Course", "org_id": "edX", "enterprise_uuid": ""},
        "username": "learner", "ip": "10.1.2.3", "agent": "svc-test",
        "event": {"course_id": "course-v1:edX+DemoX+Demo_Course", "mode": "audit"},
        "event_type": "edx.course.enrollment.activated", "event_source": "server", "page": null,
    })
}

fn token() -> String {
    jwt(&json!({"user_id": 5, "preferred_username": "learner", "exp": in_an_hour()}), JWT_SECRET)
}

#[actix_web::test]
async fn in_process_emit_carries_the_request_context() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { data_dir: dir.path().to_owned(), ..Default::default() };
    let ingest = Pipeline::start(&config).unwrap();
    let context_config =
        Arc::new(ContextConfig { jwt: Some(JwtVerifier::hs256(JWT_SECRET.as_bytes())), ..(*ingest.context_config).clone() });
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(ingest.tracker.clone()))
            .route("/api/enrollment", web::post().to(enroll))
            .wrap(RequestContextLayer::new(context_config, ingest.tracker.clone())),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/api/enrollment")
        .peer_addr("10.1.2.3:5555".parse().unwrap())
        .insert_header(("Authorization", format!("JWT {}", token())))
        .insert_header(("User-Agent", "svc-test"))
        .to_request();
    assert!(test::call_service(&app, request).await.status().is_success());
    let log = dir.path().join("tracking.log");
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = read_lines(&log);
        if !lines.is_empty() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(lines.len(), 1);
    assert_event_matches(&expected_line("/api/enrollment"), &parse(&lines[0]), Tolerate::default());
    // Outside a request there is no request context, and emit still works.
    let outside = ingest.tracker.emit("edx.course.catalog.refreshed", json!({})).unwrap();
    assert!(outside.context().is_empty());
    drop(app);
    actix_web::rt::task::spawn_blocking(move || ingest.shutdown()).await.unwrap();
    assert_eq!(read_lines(&log).len(), 2);
}

#[actix_web::test]
async fn remote_emit_batches_to_the_ingest_server() {
    let server = Server::start_with_env("", &[("TRACKING_SERVER_TOKEN", "s3rv3r-token")]);
    let remote = Arc::new(RemoteBackend::new(RemoteOptions {
        max_delay: Duration::from_millis(50),
        ..RemoteOptions::new(server.url.clone(), "s3rv3r-token")
    }));
    let tracker = request_tracker(remote.clone());
    let context_config = Arc::new(ContextConfig { jwt: Some(JwtVerifier::hs256(JWT_SECRET.as_bytes())), ..Default::default() });
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(tracker.clone()))
            .route("/api/enrollment", web::post().to(enroll))
            .wrap(RequestContextLayer::new(context_config, tracker.clone())),
    )
    .await;
    for _ in 0..3 {
        let request = test::TestRequest::post()
            .uri("/api/enrollment")
            .peer_addr("10.1.2.3:5555".parse().unwrap())
            .insert_header(("Authorization", format!("Bearer {}", token())))
            .insert_header(("User-Agent", "svc-test"))
            .to_request();
        assert!(test::call_service(&app, request).await.status().is_success());
    }
    let flushed = actix_web::rt::task::spawn_blocking(move || remote.flush(Duration::from_secs(20))).await.unwrap();
    assert!(flushed);
    let lines = server.wait_for_lines(3);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_event_matches(&expected_line("/api/enrollment"), &parse(line), Tolerate::default());
    }
    // The endpoint refuses callers without the token.
    let (status, body) = reply(server.post("/v1/events").send_string(r#"{"events": []}"#));
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
}

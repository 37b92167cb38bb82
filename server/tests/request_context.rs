//! The request-context middleware against an actix service (`actix_web::test`) and a
//! real HTTP server on a loopback socket, with real signed tokens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::test::{call_and_read_body_json, call_service, init_service, TestRequest};
use actix_web::{web, App, HttpResponse, HttpServer};
use event_model::context::TaskStore;
use event_model::testing::InMemoryBackend;
use event_model::{json, Tracker, Value};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use tracking_server::context::{session_hash, ContextConfig, JwtVerifier, RequestContext, RequestContextLayer, REQUEST_CONTEXT_NAME};

const SECRET: &[u8] = b"test-only-hs256-secret";
const RS_PRIVATE: &[u8] = include_bytes!("fixtures/test-only-rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("fixtures/test-only-rs256-public.pem");
const COURSE: &str = "course-v1:edX+DemoX+Demo";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn ada(exp: u64) -> Value {
    json!({"user_id": 42, "preferred_username": "ada", "sub": "c0ffee", "aud": "lms-key", "exp": exp, "iss": "https://lms.example.com/oauth2"})
}

fn hs_token(claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn rs_token(claims: &Value) -> String {
    encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap()).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: `{"alg":"none"}`.
fn none_token(claims: &Value) -> String {
    format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()))
}

fn config(jwt: Option<JwtVerifier>) -> ContextConfig {
    ContextConfig { session_key: b"test-session-key".to_vec(), jwt, ..ContextConfig::default() }
}

fn tracker() -> (Arc<Tracker>, InMemoryBackend) {
    let log = InMemoryBackend::new();
    (Arc::new(Tracker::with_store(Arc::new(log.clone()), Arc::new(TaskStore::new()))), log)
}

/// Replies with the context the extractor gives, plus `authenticated_by_cookie`.
async fn echo(ctx: RequestContext) -> HttpResponse {
    let mut map = ctx.to_context();
    map.insert("authenticated_by_cookie".into(), Value::Bool(ctx.authenticated_by_cookie));
    HttpResponse::Ok().json(Value::Object(map))
}

/// The context `config` gives the request built by `req`.
async fn context_of(config: ContextConfig, req: TestRequest) -> Value {
    let (tracker, _) = tracker();
    let app = init_service(App::new().wrap(RequestContextLayer::new(Arc::new(config), tracker)).default_service(web::to(echo))).await;
    call_and_read_body_json(&app, req.to_request()).await
}

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path).peer_addr("203.0.113.9:5555".parse().unwrap())
}

fn assert_anonymous(ctx: &Value, what: &str) {
    assert_eq!(ctx["user_id"], Value::Null, "{what}");
    assert_eq!(ctx["username"], "", "{what}");
}

#[actix_web::test]
async fn hs256_bearer_and_jwt_headers_identify_the_user() {
    let token = hs_token(&ada(now() + 300));
    for scheme in ["JWT", "Bearer"] {
        let req = get("/").insert_header(("Authorization", format!("{scheme} {token}")));
        let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET))), req).await;
        assert_eq!(ctx["user_id"], 42, "{scheme}");
        assert_eq!(ctx["username"], "ada", "{scheme}");
        assert_eq!(ctx["authenticated_by_cookie"], false, "{scheme}");
    }
}

#[actix_web::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let token = hs_token(&ada(now() + 300));
    let verifier = || JwtVerifier::hs256(SECRET).with_issuer("https://lms.example.com/oauth2");
    let req = || get("/").insert_header(("Authorization", format!("JWT {token}")));
    let ctx = context_of(config(Some(verifier().with_audience("lms-key"))), req()).await;
    assert_eq!(ctx["username"], "ada");
    let ctx = context_of(config(Some(verifier().with_audience("another-service"))), req()).await;
    assert_anonymous(&ctx, "wrong audience");
    let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET).with_issuer("https://evil.example"))), req()).await;
    assert_anonymous(&ctx, "wrong issuer");
}

#[actix_web::test]
async fn invalid_tokens_leave_the_request_anonymous() {
    let claims = ada(now() + 300);
    let valid = hs_token(&claims);
    let forged = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"guessed-secret")).unwrap();
    // A valid signature over other claims.
    let mut parts: Vec<&str> = valid.split('.').collect();
    let promoted = b64url(json!({"user_id": 1, "preferred_username": "admin", "exp": now() + 300}).to_string().as_bytes());
    parts[1] = &promoted;
    let tampered = parts.join(".");
    let expired = hs_token(&ada(now() - 3600));
    let unsigned = none_token(&claims);
    // The key-confusion attack: HS256 "signed" with the RS256 public key.
    let confused = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(RS_PUBLIC)).unwrap();

    let hs = || Some(JwtVerifier::hs256(SECRET));
    let rs = || Some(JwtVerifier::rs256_pem(RS_PUBLIC).unwrap());
    let cases: Vec<(&str, Option<JwtVerifier>, String)> = vec![
        ("forged signature", hs(), forged),
        ("tampered payload", hs(), tampered),
        ("expired", hs(), expired),
        ("alg none", hs(), unsigned.clone()),
        ("alg none, RS256 configured", rs(), unsigned),
        ("HS256 token, RS256 configured", rs(), valid.clone()),
        ("HS256 signed with the RS256 public key", rs(), confused),
        ("RS256 token, HS256 configured", hs(), rs_token(&claims)),
        ("valid token, no verifier configured", None, valid),
        ("garbage", hs(), "not.a.jwt".to_owned()),
    ];
    for (what, verifier, token) in cases {
        for scheme in ["Bearer", "JWT"] {
            let req = get("/").insert_header(("Authorization", format!("{scheme} {token}")));
            assert_anonymous(&context_of(config(verifier.clone()), req).await, what);
        }
        // And as the split cookie.
        let (hp, sig) = token.rsplit_once('.').unwrap();
        let req = get("/").insert_header(("Cookie", format!("edx-jwt-cookie-header-payload={hp}; edx-jwt-cookie-signature={sig}")));
        let ctx = context_of(config(verifier.clone()), req).await;
        assert_anonymous(&ctx, what);
        assert_eq!(ctx["authenticated_by_cookie"], true, "{what}");
    }
}

#[actix_web::test]
async fn rs256_with_a_key_pair() {
    let verifier = JwtVerifier::rs256_pem(RS_PUBLIC).unwrap().with_audience("lms-key");
    let req = get("/").insert_header(("Authorization", format!("Bearer {}", rs_token(&ada(now() + 300)))));
    let ctx = context_of(config(Some(verifier)), req).await;
    assert_eq!((ctx["user_id"].clone(), ctx["username"].clone()), (json!(42), json!("ada")));
    // A PEM that holds no RSA key is refused.
    assert!(JwtVerifier::rs256_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
}

#[actix_web::test]
async fn the_split_open_edx_cookie_pair_and_a_single_cookie() {
    let token = hs_token(&ada(now() + 300));
    let (header_payload, signature) = token.rsplit_once('.').unwrap();
    let pair = format!("edx-jwt-cookie-header-payload={header_payload}; edx-jwt-cookie-signature={signature}");
    let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET))), get("/").insert_header(("Cookie", pair))).await;
    assert_eq!((ctx["user_id"].clone(), ctx["username"].clone()), (json!(42), json!("ada")));
    assert_eq!(ctx["authenticated_by_cookie"], true);

    // Half the pair is not a credential (but is still a cookie).
    let half = format!("edx-jwt-cookie-header-payload={header_payload}");
    let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET))), get("/").insert_header(("Cookie", half))).await;
    assert_anonymous(&ctx, "half a pair");
    assert_eq!(ctx["authenticated_by_cookie"], true);

    let single = ContextConfig { jwt_cookie: Some("jwt".into()), ..config(Some(JwtVerifier::hs256(SECRET))) };
    let ctx = context_of(single, get("/").insert_header(("Cookie", format!("jwt={token}")))).await;
    assert_eq!(ctx["username"], "ada");
    assert_eq!(ctx["authenticated_by_cookie"], true);
    // A single cookie is read only when configured.
    let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET))), get("/").insert_header(("Cookie", format!("jwt={token}")))).await;
    assert_anonymous(&ctx, "unconfigured single cookie");
    assert_eq!(ctx["authenticated_by_cookie"], false);
}

#[actix_web::test]
async fn a_client_declared_user_id_never_becomes_user_id() {
    let req = get("/event?user_id=7&username=root")
        .insert_header(("X-User-Id", "7"))
        .insert_header(("Cookie", "user_id=7; username=root; edx-user-info=%7B%22username%22%3A%22root%22%7D"));
    let ctx = context_of(config(Some(JwtVerifier::hs256(SECRET))), req).await;
    assert_anonymous(&ctx, "declared");
}

#[actix_web::test]
async fn session_hash_is_keyed_and_stable() {
    let with_key = |key: &[u8]| ContextConfig { session_key: key.to_vec(), ..config(None) };
    let req = || get("/").insert_header(("Cookie", "csrftoken=x; sessionid=abc123session"));
    let first = context_of(with_key(b"key-one"), req()).await;
    let again = context_of(with_key(b"key-one"), req()).await;
    let other_key = context_of(with_key(b"key-two"), req()).await;
    let session = first["session"].as_str().unwrap();
    assert_eq!(session.len(), 32);
    assert!(session.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{session}");
    assert_eq!(first["session"], again["session"]);
    assert_ne!(first["session"], other_key["session"]);
    assert_eq!(first["authenticated_by_cookie"], true);
    // The LMS's id: hashlib.shake_128(b"key-one" + b"abc123session").hexdigest(16).
    assert_eq!(session, "7e10927d0eafdd425d0b00ce0169b876");
    assert_eq!(session, session_hash(b"key-one", "abc123session"));
    // The cookie value itself is nowhere in the context.
    assert!(!first.to_string().contains("abc123session"));

    // Another cookie differs; no cookie, or one Django does not take as a session key
    // (shorter than 8 characters), gives "".
    let other_cookie = context_of(with_key(b"key-one"), get("/").insert_header(("Cookie", "sessionid=zzzzzzzz"))).await;
    assert_ne!(first["session"], other_cookie["session"]);
    let short = context_of(with_key(b"key-one"), get("/").insert_header(("Cookie", "sessionid=1234567"))).await;
    assert_eq!(short["session"], "");
    let none = context_of(with_key(b"key-one"), get("/")).await;
    assert_eq!(none["session"], "");
    assert_eq!(none["authenticated_by_cookie"], false);

    // An empty key means a random per-process key: still 32 hex, stable in the process.
    let random = context_of(with_key(b""), req()).await;
    let random_again = context_of(with_key(b""), req()).await;
    assert_eq!(random["session"].as_str().unwrap().len(), 32);
    assert_eq!(random["session"], random_again["session"]);
    assert_ne!(random["session"], session_hash(b"", "abc123session"));
}

#[actix_web::test]
async fn forwarded_for_only_through_trusted_proxies() {
    let xff = "6.6.6.6, 198.51.100.7, 10.0.0.9";
    let from = |peer: &str| TestRequest::get().uri("/").peer_addr(peer.parse().unwrap()).insert_header(("X-Forwarded-For", xff));
    // No trusted proxies: the peer, whatever the header says.
    assert_eq!(context_of(config(None), from("203.0.113.9:1")).await["ip"], "203.0.113.9");
    let trusting = || ContextConfig { trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()], ..config(None) };
    // An untrusted peer's header is ignored.
    assert_eq!(context_of(trusting(), from("203.0.113.9:1")).await["ip"], "203.0.113.9");
    // Through trusted proxies: the first untrusted hop from the right.
    assert_eq!(context_of(trusting(), from("10.0.0.2:1")).await["ip"], "198.51.100.7");
    // No peer address at all.
    assert_eq!(context_of(config(None), TestRequest::get().uri("/")).await["ip"], "");
}

#[actix_web::test]
async fn headers_ga_cookie_and_course() {
    let req = get("/courses/course-v1:edX+DemoX+Demo/courseware/week1/?x=1")
        .insert_header(("Host", "lms.example.com"))
        .insert_header(("User-Agent", "Mozilla/5.0 (test)"))
        .insert_header(("Referer", "https://lms.example.com/dashboard"))
        .insert_header(("Accept-Language", "fr-CH, fr;q=0.9"))
        .insert_header(("Cookie", "_ga=GA1.2.1234.5678; other=1"));
    let ctx = context_of(config(None), req).await;
    let keys: Vec<&String> = ctx.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "session",
            "user_id",
            "username",
            "ip",
            "host",
            "agent",
            "path",
            "referer",
            "accept_language",
            "client_id",
            "course_id",
            "org_id",
            "enterprise_uuid",
            "authenticated_by_cookie"
        ],
        "the order of the LMS's TrackMiddleware"
    );
    assert_eq!(
        ctx,
        json!({
            "user_id": null, "username": "", "session": "", "ip": "203.0.113.9",
            "agent": "Mozilla/5.0 (test)", "host": "lms.example.com",
            "path": "/courses/course-v1:edX+DemoX+Demo/courseware/week1/",
            "referer": "https://lms.example.com/dashboard", "accept_language": "fr-CH, fr;q=0.9",
            "client_id": "1234.5678", "course_id": COURSE, "org_id": "edX", "enterprise_uuid": "",
            "authenticated_by_cookie": false,
        })
    );

    let ctx = context_of(config(None), get("/learning/course/course-v1:edX+DemoX+Demo/home")).await;
    assert_eq!((ctx["course_id"].clone(), ctx["org_id"].clone()), (json!(COURSE), json!("edX")));
    let ctx = context_of(config(None), get("/learning/course/course-v1%3AedX%2BDemoX%2BDemo/home")).await;
    assert_eq!(ctx["course_id"], COURSE);
    let ctx = context_of(config(None), get("/dashboard")).await;
    assert_eq!((ctx["course_id"].clone(), ctx["org_id"].clone()), (json!(""), json!("")));
}

#[actix_web::test]
async fn the_extractor_needs_the_middleware() {
    let app = init_service(App::new().default_service(web::to(echo))).await;
    let res = call_service(&app, get("/").to_request()).await;
    assert_eq!(res.status(), 500);
}

/// Emits `test.event` from inside a request, after waiting at `barrier` (so that two
/// requests are in flight at once), and replies with the username in its context.
async fn emit_handler(tracker: web::Data<Tracker>, barrier: web::Data<tokio::sync::Barrier>) -> HttpResponse {
    tokio::time::timeout(Duration::from_secs(10), barrier.wait()).await.expect("the other request never came");
    let event = tracker.emit("test.event", json!({"n": 1})).unwrap();
    let username = event.context()["username"].as_str().unwrap().into_owned();
    HttpResponse::Ok().body(username)
}

fn emit_app(
    config: Arc<ContextConfig>,
    tracker: Arc<Tracker>,
    barrier: Arc<tokio::sync::Barrier>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::from(tracker.clone()))
        .app_data(web::Data::from(barrier))
        .wrap(RequestContextLayer::new(config, tracker))
        .default_service(web::to(emit_handler))
}

fn bearer(username: &str, user_id: i64) -> String {
    let claims = json!({"user_id": user_id, "preferred_username": username, "exp": now() + 300});
    format!("Bearer {}", hs_token(&claims))
}

#[actix_web::test]
async fn emit_in_a_handler_carries_the_request_context() {
    let (tracker, log) = tracker();
    let config = Arc::new(config(Some(JwtVerifier::hs256(SECRET))));
    let app = init_service(emit_app(config.clone(), tracker.clone(), Arc::new(tokio::sync::Barrier::new(1)))).await;
    let req = || {
        get("/courses/course-v1:edX+DemoX+Demo/about")
            .insert_header(("Authorization", bearer("ada", 42)))
            .insert_header(("Cookie", "sessionid=session-1; _ga=GA1.2.11.22"))
    };
    let body = actix_web::test::call_and_read_body(&app, req().to_request()).await;
    assert_eq!(body, "ada");

    let events = log.events();
    assert_eq!(events.len(), 1);
    let expected = RequestContext::from_request(&req().to_http_request(), &config).to_context();
    assert_eq!(events[0].context(), &expected);
    assert_eq!(events[0].context()["user_id"], 42);
    assert_eq!(events[0].context()["course_id"], COURSE);
    assert_eq!(events[0].context()["client_id"], "11.22");
    assert_eq!(events[0].context()["session"], session_hash(b"test-session-key", "session-1"));

    // Outside a request the tracker has no request context.
    assert!(tracker.emit("background", Value::Null).unwrap().context().is_empty());
    assert_eq!(REQUEST_CONTEXT_NAME, "edx.request");
}

#[actix_web::test]
async fn concurrent_requests_in_one_task_keep_their_own_context() {
    let (tracker, log) = tracker();
    let config = Arc::new(config(Some(JwtVerifier::hs256(SECRET))));
    // Both handlers wait for each other before emitting: they interleave in this task.
    let app = init_service(emit_app(config, tracker, Arc::new(tokio::sync::Barrier::new(2)))).await;
    let a = get("/courses/course-v1:edX+A+1/x").insert_header(("Authorization", bearer("alice", 1))).to_request();
    let b = get("/courses/course-v1:edX+B+2/x").insert_header(("Authorization", bearer("bob", 2))).to_request();
    let (body_a, body_b) = tokio::join!(actix_web::test::call_and_read_body(&app, a), actix_web::test::call_and_read_body(&app, b));
    assert_eq!((body_a, body_b), ("alice".into(), "bob".into()));
    let mut seen: Vec<(Value, Value)> =
        log.events().iter().map(|e| (e.context()["user_id"].to_value(), e.context()["course_id"].to_value())).collect();
    seen.sort_by_key(|(id, _)| id.as_i64());
    assert_eq!(seen, [(json!(1), json!("course-v1:edX+A+1")), (json!(2), json!("course-v1:edX+B+2"))]);
}

/// A real server on a loopback port, one worker, in its own thread.
fn serve(config: ContextConfig, tracker: Arc<Tracker>) -> (SocketAddr, ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = Arc::new(config);
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || emit_app(config.clone(), tracker.clone(), barrier.clone()))
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            server.await
        })
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the server did not start")
}

/// One HTTP/1.1 request over a fresh connection; the response body.
fn request(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: tracking.test\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn stop(handle: ServerHandle) {
    actix_web::rt::System::new().block_on(handle.stop(true));
}

#[test]
fn real_server_two_concurrent_connections_and_forwarded_for() {
    let (tracker, log) = tracker();
    let config = ContextConfig { trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()], ..config(Some(JwtVerifier::hs256(SECRET))) };
    let (addr, handle) = serve(config, tracker);
    let client = |name: &'static str, id: i64, xff: &'static str| {
        std::thread::spawn(move || {
            request(
                addr,
                &format!("/learning/course/course-v1:edX+{name}+1/home"),
                &[
                    ("Authorization", bearer(name, id)),
                    ("X-Forwarded-For", xff.to_owned()),
                    ("Cookie", format!("sessionid=session-of-{name}")),
                ],
            )
        })
    };
    // Two connections, one worker thread: both requests are in flight together.
    let (a, b) = (client("alice", 1, "198.51.100.1"), client("bob", 2, "6.6.6.6, 198.51.100.2"));
    assert_eq!(a.join().unwrap(), "alice");
    assert_eq!(b.join().unwrap(), "bob");
    stop(handle);

    let mut events: Vec<_> = log.events().into_iter().map(|e| e.context().clone()).collect();
    events.sort_by_key(|c| c["user_id"].as_i64());
    assert_eq!(events.len(), 2);
    for (ctx, (name, id, ip)) in events.iter().zip([("alice", 1, "198.51.100.1"), ("bob", 2, "198.51.100.2")]) {
        assert_eq!(ctx["user_id"], id);
        assert_eq!(ctx["username"], name);
        assert_eq!(ctx["ip"], ip);
        assert_eq!(ctx["host"], "tracking.test");
        assert_eq!(ctx["course_id"], format!("course-v1:edX+{name}+1"));
        assert_eq!(ctx["session"], session_hash(b"test-session-key", &format!("session-of-{name}")));
    }
}

#[test]
fn real_server_ignores_a_spoofed_forwarded_for() {
    let (tracker, log) = tracker();
    let (addr, handle) = serve(config(None), tracker);
    let spoofing = |xff: &'static str| {
        std::thread::spawn(move || request(addr, "/", &[("X-Forwarded-For", xff.to_owned()), ("X-User-Id", "1".into())]))
    };
    let (a, b) = (spoofing("1.2.3.4"), spoofing("5.6.7.8"));
    assert_eq!((a.join().unwrap(), b.join().unwrap()), (String::new(), String::new()));
    stop(handle);
    let events = log.events();
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!(e.context()["ip"], "127.0.0.1");
        assert_eq!(e.context()["user_id"], Value::Null);
    }
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_invalid_credential_is_logged_without_the_token_or_cookies() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(move || writer.clone()).finish();
    let forged = encode(&Header::new(Algorithm::HS256), &ada(now() + 300), &EncodingKey::from_secret(b"guess")).unwrap();
    let expired = hs_token(&ada(now() - 3600));
    let (hp, sig) = expired.rsplit_once('.').unwrap();
    let req = get("/")
        .insert_header(("Authorization", format!("Bearer {forged}")))
        .insert_header(("Cookie", format!("sessionid=secret-session; edx-jwt-cookie-header-payload={hp}; edx-jwt-cookie-signature={sig}")))
        .to_http_request();
    let ctx =
        tracing::subscriber::with_default(subscriber, || RequestContext::from_request(&req, &config(Some(JwtVerifier::hs256(SECRET)))));
    assert_eq!((ctx.user_id, ctx.username.as_str()), (None, ""));
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(logged.matches("invalid credential").count(), 2, "{logged}");
    assert!(logged.contains("DEBUG"), "{logged}");
    assert!(logged.contains("bad signature") && logged.contains("expired"), "{logged}");
    for secret in [forged.as_str(), hp, sig, "secret-session", ctx.session.as_str()] {
        for part in secret.split('.') {
            assert!(!logged.contains(part), "a credential reached the log: {logged}");
        }
    }
}

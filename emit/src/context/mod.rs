//! The request context: who is asking (from a *verified* credential only), from
//! where, about which course, computed once per request by [`RequestContextLayer`]
//! and entered as the `edx.request` context on a tracker for the request's task.
//!
//! The middleware is public and works in any actix-web app:
//!
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{web, App, HttpResponse};
//! use event_model::{context::TaskStore, testing::InMemoryBackend, Tracker};
//! use tracking_emit::context::{ContextConfig, JwtVerifier, RequestContext, RequestContextLayer};
//!
//! let config = Arc::new(ContextConfig {
//!     session_key: std::env::var("TRACKING_SESSION_KEY").unwrap_or_default().into_bytes(),
//!     jwt: Some(JwtVerifier::hs256(std::env::var("TRACKING_JWT_SECRET").unwrap().as_bytes())),
//!     ..ContextConfig::default()
//! });
//! let tracker = Arc::new(Tracker::with_store(Arc::new(InMemoryBackend::new()), Arc::new(TaskStore::new())));
//! let app = App::new()
//!     .wrap(RequestContextLayer::new(config, tracker.clone()))
//!     .route("/enroll", web::post().to(move |ctx: RequestContext| {
//!         let tracker = tracker.clone();
//!         async move {
//!             // The event carries the request's context (user, session, ip, course, …).
//!             let _ = tracker.emit("edx.course.enrollment.activated", event_model::json!({"mode": "audit"}));
//!             HttpResponse::Ok().body(ctx.username)
//!         }
//!     }));
//! ```
//!
//! Nothing here logs a token, a cookie or a context value; a credential that fails
//! verification is logged at debug level as "invalid credential" with a coarse reason,
//! and the request continues anonymous.

mod cookies;
mod ip;
mod jwt;
mod middleware;
mod wsgi;

use std::fmt;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderMap};
use actix_web::HttpRequest;
use cookies::Cookies;
use event_model::rules::json::push_str_literal;
use event_model::{Fields, Json, Text};

pub use ip::client_ip;
pub use jwt::{Claims, JwtVerifier, Rejection};
pub use middleware::{RequestContextLayer, RequestContextMiddleware, REQUEST_CONTEXT_NAME};
pub use wsgi::{latin1, percent_decode, percent_decode_plus};

/// Why a credential or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// A verification key that cannot be used (e.g. a PEM that holds no RSA public key).
    #[error("invalid verification key: {0}")]
    InvalidKey(String),
    /// A token that failed verification. The reason is coarse on purpose: it never
    /// carries any part of the token.
    #[error("invalid credential ({0})")]
    InvalidCredential(Rejection),
}

/// How the request context is computed.
#[derive(Clone)]
pub struct ContextConfig {
    /// The session cookie (Django's `sessionid` by default).
    pub session_cookie: String,
    /// The key of the session hash (the caller reads it from `TRACKING_SESSION_KEY`);
    /// the LMS's `SECRET_KEY` gives the LMS's session ids. Empty means a random key for
    /// this process: ids are then stable only until restart and differ between processes.
    pub session_key: Vec<u8>,
    /// The JWT verifier; `None` makes every request anonymous.
    pub jwt: Option<JwtVerifier>,
    /// Open edX's split JWT cookie: header-and-payload and signature, joined with '.'.
    pub jwt_cookies: (String, String),
    /// A single cookie holding a whole JWT, if the deployment uses one.
    pub jwt_cookie: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed. Empty: the peer address is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            session_cookie: "sessionid".to_owned(),
            session_key: Vec::new(),
            jwt: None,
            jwt_cookies: ("edx-jwt-cookie-header-payload".to_owned(), "edx-jwt-cookie-signature".to_owned()),
            jwt_cookie: None,
            trusted_proxies: Vec::new(),
        }
    }
}

impl fmt::Debug for ContextConfig {
    // Keys are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextConfig")
            .field("session_cookie", &self.session_cookie)
            .field("session_key", &if self.session_key.is_empty() { "<random per process>" } else { "<redacted>" })
            .field("jwt", &self.jwt)
            .field("jwt_cookies", &self.jwt_cookies)
            .field("jwt_cookie", &self.jwt_cookie)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// The context of one request, each member as the LMS's `TrackMiddleware` computes
/// it from the same request bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// From a verified JWT only; `None` when anonymous.
    pub user_id: Option<i64>,
    /// From a verified JWT only; `""` when anonymous.
    pub username: String,
    /// The LMS's tracking session id: SHAKE-128 of the session key and the Django
    /// session key, 16 bytes in hex (32 characters). `""` without a session cookie or
    /// with one shorter than 8 characters, which Django does not take as a key.
    pub session: String,
    /// The client address, through trusted proxies only; `""` when the peer is unknown.
    pub ip: String,
    /// Header values, one character per byte as WSGI decodes them (ISO-8859-1).
    pub agent: String,
    pub host: String,
    /// The percent-decoded path, as Django's `PATH_INFO`.
    pub path: String,
    pub referer: String,
    pub accept_language: String,
    /// From the `_ga` cookie (`GA1.2.1234.5678` → `1234.5678`), else the
    /// `X-EDX-GA-CLIENT-ID` header; `None` (`null`) without either, as in the LMS.
    pub client_id: Option<String>,
    /// The course of the request URL (the LMS's `COURSE_REGEX` and course key rules).
    pub course_id: String,
    /// `None` (`null`) for a course key that names only a version.
    pub org_id: Option<String>,
    /// Always `""`: no course key of the request URL names an enterprise.
    pub enterprise_uuid: String,
    /// A session or JWT cookie was sent (the server applies its CSRF origin check).
    pub authenticated_by_cookie: bool,
}

impl Default for RequestContext {
    fn default() -> Self {
        RequestContext {
            user_id: None,
            username: String::new(),
            session: String::new(),
            ip: String::new(),
            agent: String::new(),
            host: String::new(),
            path: String::new(),
            referer: String::new(),
            accept_language: String::new(),
            client_id: None,
            course_id: String::new(),
            org_id: Some(String::new()),
            enterprise_uuid: String::new(),
            authenticated_by_cookie: false,
        }
    }
}

impl RequestContext {
    /// Computes the context of `req`.
    pub fn from_request(req: &HttpRequest, config: &ContextConfig) -> Self {
        let headers = req.headers();
        let mut ctx = RequestContext::default();

        let cookies = if headers.contains_key(header::COOKIE) { Cookies::of(headers) } else { Cookies::default() };
        let session_value = cookies.get(&config.session_cookie);
        let (hp_name, sig_name) = &config.jwt_cookies;
        let header_payload = cookies.get(hp_name);
        let signature = cookies.get(sig_name);
        let single = config.jwt_cookie.as_deref().and_then(|name| cookies.get(name));
        ctx.authenticated_by_cookie = session_value.is_some() || header_payload.is_some() || signature.is_some() || single.is_some();

        if let Some(key) = session_value.map(django_session_key).filter(|key| key.chars().count() >= 8) {
            ctx.session = session_hash(effective_session_key(&config.session_key), key);
        }

        if let Some(verifier) = &config.jwt {
            let pair = match (header_payload, signature) {
                (Some(hp), Some(sig)) if !hp.is_empty() && !sig.is_empty() => Some(format!("{hp}.{sig}")),
                _ => None,
            };
            let candidates = [
                (authorization_token(headers), "authorization header"),
                (pair.as_deref(), "cookie pair"),
                (single.filter(|t| !t.is_empty()), "cookie"),
            ];
            for (token, source) in candidates {
                let Some(token) = token else { continue };
                match verifier.verify(token) {
                    Ok(claims) => {
                        ctx.user_id = claims.user_id;
                        ctx.username = claims.username;
                        break;
                    }
                    Err(ContextError::InvalidCredential(reason)) => {
                        tracing::debug!(source, reason = %reason, "invalid credential");
                    }
                    Err(ContextError::InvalidKey(_)) => {
                        tracing::debug!(source, "invalid credential");
                    }
                }
            }
        }

        ctx.ip = req.peer_addr().map(|peer| ip::text(client_ip(peer.ip(), headers, &config.trusted_proxies))).unwrap_or_default();
        ctx.agent = header_text(headers, &header::USER_AGENT);
        ctx.host = match headers.get(header::HOST) {
            Some(host) => latin1(host.as_bytes()),
            None => req.uri().authority().map(|a| a.to_string()).unwrap_or_default(),
        };
        ctx.path = wsgi::path_info(req.path());
        ctx.referer = header_text(headers, &header::REFERER);
        ctx.accept_language = header_text(headers, &header::ACCEPT_LANGUAGE);
        ctx.client_id = match cookies.get("_ga") {
            Some(ga) => Some(client_id_from_ga(ga)),
            None => {
                let header = header::HeaderName::from_static("x-edx-ga-client-id");
                headers.contains_key(&header).then(|| header_text(headers, &header))
            }
        };
        let url = wsgi::request_url(&ctx.host, &ctx.path, req.query_string().as_bytes());
        if let Some(course) = event_model::course::course_from_url(&url) {
            ctx.course_id = course.course_id;
            ctx.org_id = course.org_id;
        }
        ctx
    }

    /// The members of the request context, in the order the LMS's `TrackMiddleware`
    /// enters them: `session`, `user_id` (`null` when anonymous), `username`, `ip`,
    /// `host`, `agent`, `path`, `referer`, `accept_language`, `client_id`, then the
    /// course of the request URL (`course_id`, `org_id`, `enterprise_uuid`).
    fn members(&self) -> [(&'static str, Member<'_>); 13] {
        [
            ("session", Member::Str(&self.session)),
            ("user_id", self.user_id.map_or(Member::Null, Member::Int)),
            ("username", Member::Str(&self.username)),
            ("ip", Member::Str(&self.ip)),
            ("host", Member::Str(&self.host)),
            ("agent", Member::Str(&self.agent)),
            ("path", Member::Str(&self.path)),
            ("referer", Member::Str(&self.referer)),
            ("accept_language", Member::Str(&self.accept_language)),
            ("client_id", self.client_id.as_deref().map_or(Member::Null, Member::Str)),
            ("course_id", Member::Str(&self.course_id)),
            ("org_id", self.org_id.as_deref().map_or(Member::Null, Member::Str)),
            ("enterprise_uuid", Member::Str(&self.enterprise_uuid)),
        ]
    }

    /// The members (see [`RequestContext::members`]) as fields, for entering the context.
    pub fn to_fields(&self) -> Fields {
        let mut fields = Fields::with_capacity(13);
        for (key, value) in self.members() {
            let value = match value {
                Member::Str(s) => Json::str(s),
                Member::Int(n) => Json::int(n),
                Member::Null => Json::NULL,
            };
            fields.insert(Text::from_static(key), value);
        }
        fields
    }

    /// [`RequestContext::to_fields`] as a tree.
    pub fn to_context(&self) -> serde_json::Map<String, serde_json::Value> {
        match self.to_fields().to_value() {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// [`RequestContext::to_fields`] as compact JSON: the shared context of the
    /// request's log record, written straight from the members.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push('{');
        for (i, (key, value)) in self.members().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // The keys are plain ASCII names: nothing to escape.
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            match value {
                Member::Str(s) => push_str_literal(&mut out, s),
                Member::Int(n) => {
                    use fmt::Write;
                    let _ = write!(out, "{n}");
                }
                Member::Null => out.push_str("null"),
            }
        }
        out.push('}');
        out
    }

    /// Whether a verified credential identified the user.
    pub fn is_authenticated(&self) -> bool {
        self.user_id.is_some() || !self.username.is_empty()
    }
}

/// A member's value in [`RequestContext::members`].
enum Member<'a> {
    Str(&'a str),
    Int(i64),
    Null,
}

/// The LMS's tracking session id (`TrackMiddleware.substitute_session_key`):
/// SHAKE-128 over `key` then the session key, 16 bytes as 32 lowercase hex characters.
/// With the LMS's `SECRET_KEY` as `key` the ids are the LMS's own.
pub fn session_hash(key: &[u8], session_key: &str) -> String {
    use sha3::digest::{ExtendableOutput, Update, XofReader};
    let mut hasher = sha3::Shake128::default();
    hasher.update(key);
    hasher.update(session_key.as_bytes());
    let mut out = [0u8; 16];
    hasher.finalize_xof().read(&mut out);
    hex::encode(out)
}

/// The Django session key in a session cookie. The LMS's safe-session cookie
/// (`1|<session key>|<salt>|<signature>`) carries it as its second field, which the
/// LMS's `SafeSessionMiddleware` hands to Django; a plain Django cookie is the key.
fn django_session_key(cookie: &str) -> &str {
    let mut fields = cookie.split('|');
    match (fields.next(), fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some("1"), Some(key), Some(_), Some(_), None) => key,
        _ => cookie,
    }
}

fn effective_session_key(configured: &[u8]) -> &[u8] {
    if !configured.is_empty() {
        return configured;
    }
    static RANDOM_KEY: OnceLock<[u8; 32]> = OnceLock::new();
    RANDOM_KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the operating system's random source is unavailable");
        key
    })
}

/// `_ga` cookie → client id: everything after the second dot, as the LMS takes it
/// (`'.'.join(value.split('.')[2:])`).
fn client_id_from_ga(value: &str) -> String {
    value.splitn(3, '.').nth(2).unwrap_or("").to_owned()
}

/// The token of `Authorization: JWT <t>` or `Authorization: Bearer <t>`.
fn authorization_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("jwt") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty()).then_some(token)
}

/// A header as the LMS reads it: ISO-8859-1, a repeated header's values joined with
/// commas (as its WSGI server joins them).
fn header_text(headers: &HeaderMap, name: &header::HeaderName) -> String {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else { return String::new() };
    let mut text = latin1(first.as_bytes());
    for more in values {
        text.push(',');
        text.push_str(&latin1(more.as_bytes()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_written_from_the_members_is_that_of_the_fields() {
        let odd = RequestContext {
            user_id: Some(-42),
            username: "ünïcode \"quoted\" \\ back".into(),
            session: "s".into(),
            ip: "127.0.0.1".into(),
            agent: "Mozilla/5.0 (X11)\u{1}\t".into(),
            host: "lms".into(),
            path: "/courses/course-v1:a+b+c/x\u{2028}".into(),
            referer: String::new(),
            accept_language: "fr-CA,fr;q=0.9".into(),
            client_id: Some("1.2".into()),
            course_id: "course-v1:a+b+c".into(),
            org_id: Some("a".into()),
            enterprise_uuid: String::new(),
            authenticated_by_cookie: false,
        };
        let anonymous = RequestContext { user_id: None, client_id: None, org_id: None, ..odd.clone() };
        for context in [odd, anonymous] {
            let mut from_fields = String::new();
            context.to_fields().write_compact(&mut from_fields);
            assert_eq!(context.to_json(), from_fields);
            assert!(serde_json::from_str::<serde_json::Value>(&from_fields).is_ok(), "{from_fields}");
        }
    }

    #[test]
    fn ga_client_id() {
        assert_eq!(client_id_from_ga("GA1.2.1234.5678"), "1234.5678");
        assert_eq!(client_id_from_ga("GA1.3.987654321.1700000000"), "987654321.1700000000");
        assert_eq!(client_id_from_ga("1234.5678"), "");
        assert_eq!(client_id_from_ga("GA1.2.."), ".");
        assert_eq!(client_id_from_ga(""), "");
    }

    #[test]
    fn session_hash_is_the_lms_one() {
        // hashlib.shake_128(b"key" + b"abcdefgh").hexdigest(16)
        assert_eq!(session_hash(b"key", "abcdefgh"), "fb0ada5ff9fac44c5d9454392dada258");
        assert_eq!(django_session_key("1|abcdefgh|salt|signature"), "abcdefgh");
        assert_eq!(django_session_key("abcdefgh"), "abcdefgh");
        assert_eq!(django_session_key("2|abcdefgh|salt|signature"), "2|abcdefgh|salt|signature");
        let h = session_hash(b"key", "abc");
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(h, session_hash(b"key", "abc"));
        assert_ne!(h, session_hash(b"other", "abc"));
        let random = effective_session_key(&[]);
        assert_eq!(random.len(), 32);
        assert_eq!(random, effective_session_key(&[]));
    }

    #[test]
    fn authorization_schemes() {
        let mut h = HeaderMap::new();
        for (value, want) in [
            ("JWT a.b.c", Some("a.b.c")),
            ("Bearer a.b.c", Some("a.b.c")),
            ("bearer  a.b.c ", Some("a.b.c")),
            ("Basic dXNlcjpwYXNz", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(authorization_token(&h), want, "{value}");
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let config = ContextConfig {
            session_key: b"very-secret-session-key".to_vec(),
            jwt: Some(JwtVerifier::hs256(b"very-secret-jwt-key")),
            ..ContextConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
    }
}

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
//! use tracking_server::context::{ContextConfig, JwtVerifier, RequestContext, RequestContextLayer};
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

use std::fmt;
use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderMap};
use actix_web::HttpRequest;
use hmac::{Hmac, Mac};
use event_model::{Fields, Json, Text};
use sha2::Sha256;

pub use ip::client_ip;
pub use jwt::{Claims, JwtVerifier, Rejection};
pub use middleware::{RequestContextLayer, RequestContextMiddleware, REQUEST_CONTEXT_NAME};

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
    /// HMAC key for the session hash (the caller reads it from `TRACKING_SESSION_KEY`).
    /// Empty means a random key for this process: hashes are then stable only until
    /// restart and differ between processes.
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

/// The context of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// From a verified JWT only; `None` when anonymous.
    pub user_id: Option<i64>,
    /// From a verified JWT only; `""` when anonymous.
    pub username: String,
    /// HMAC-SHA256 of the session cookie, first 16 bytes in hex (32 chars); `""` without one.
    pub session: String,
    /// The client address, through trusted proxies only; `""` when the peer is unknown.
    pub ip: String,
    pub agent: String,
    pub host: String,
    pub path: String,
    pub referer: String,
    pub accept_language: String,
    /// From the `_ga` cookie (`GA1.2.1234.5678` → `1234.5678`), else the
    /// `X-EDX-GA-CLIENT-ID` header; `None` (`null`) without either, as in the LMS.
    pub client_id: Option<String>,
    /// From the request path (`/courses/<key>/…`, `/learning/course/<key>/…`).
    pub course_id: String,
    pub org_id: String,
    /// Always `""`: no course key of the request URL names an enterprise.
    pub enterprise_uuid: String,
    /// A session or JWT cookie was sent (the server applies its CSRF origin check).
    pub authenticated_by_cookie: bool,
}

impl RequestContext {
    /// Computes the context of `req`.
    pub fn from_request(req: &HttpRequest, config: &ContextConfig) -> Self {
        let headers = req.headers();
        let mut ctx = RequestContext::default();

        let session_value = cookies::find(headers, &config.session_cookie);
        let (hp_name, sig_name) = &config.jwt_cookies;
        let header_payload = cookies::find(headers, hp_name);
        let signature = cookies::find(headers, sig_name);
        let single = config.jwt_cookie.as_deref().and_then(|name| cookies::find(headers, name));
        ctx.authenticated_by_cookie =
            session_value.is_some() || header_payload.is_some() || signature.is_some() || single.is_some();

        if let Some(value) = session_value.filter(|v| !v.is_empty()) {
            ctx.session = session_hash(effective_session_key(&config.session_key), value);
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

        ctx.ip = req
            .peer_addr()
            .map(|peer| client_ip(peer.ip(), headers, &config.trusted_proxies).to_string())
            .unwrap_or_default();
        ctx.agent = header_text(headers, &header::USER_AGENT);
        ctx.host = match headers.get(header::HOST) {
            Some(host) => String::from_utf8_lossy(host.as_bytes()).into_owned(),
            None => req.uri().authority().map(|a| a.to_string()).unwrap_or_default(),
        };
        ctx.path = req.path().to_owned();
        ctx.referer = header_text(headers, &header::REFERER);
        ctx.accept_language = header_text(headers, &header::ACCEPT_LANGUAGE);
        ctx.client_id = match cookies::find(headers, "_ga") {
            Some(ga) => Some(client_id_from_ga(ga)),
            None => headers.get("x-edx-ga-client-id").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        };
        if let Some(course) = event_model::rules::course::course_from_url(req.path()) {
            ctx.course_id = course.course_id;
            ctx.org_id = course.org_id;
        }
        ctx
    }

    /// The members of the request context, in the order the LMS's `TrackMiddleware`
    /// enters them: `session`, `user_id` (`null` when anonymous), `username`, `ip`,
    /// `host`, `agent`, `path`, `referer`, `accept_language`, `client_id`, then the
    /// course of the request URL (`course_id`, `org_id`, `enterprise_uuid`).
    pub fn to_fields(&self) -> Fields {
        let mut fields = Fields::with_capacity(13);
        fields.insert(Text::from_static("session"), Json::str(&self.session));
        fields.insert(Text::from_static("user_id"), self.user_id.map_or(Json::NULL, Json::int));
        for (key, value) in [
            ("username", &self.username),
            ("ip", &self.ip),
            ("host", &self.host),
            ("agent", &self.agent),
            ("path", &self.path),
            ("referer", &self.referer),
            ("accept_language", &self.accept_language),
        ] {
            fields.insert(Text::from_static(key), Json::str(value));
        }
        fields.insert(Text::from_static("client_id"), self.client_id.as_deref().map_or(Json::NULL, Json::str));
        for (key, value) in [("course_id", &self.course_id), ("org_id", &self.org_id), ("enterprise_uuid", &self.enterprise_uuid)] {
            fields.insert(Text::from_static(key), Json::str(value));
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
    /// request's log record.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512);
        self.to_fields().write_compact(&mut out);
        out
    }

    /// Whether a verified credential identified the user.
    pub fn is_authenticated(&self) -> bool {
        self.user_id.is_some() || !self.username.is_empty()
    }
}

/// The keyed session hash: HMAC-SHA256(`key`, `cookie_value`), first 16 bytes as
/// 32 lowercase hex characters. An empty key is used as is (see
/// [`ContextConfig::session_key`] for the per-process random key).
pub fn session_hash(key: &[u8], cookie_value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(cookie_value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
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

fn header_text(headers: &HeaderMap, name: &header::HeaderName) -> String {
    headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_client_id() {
        assert_eq!(client_id_from_ga("GA1.2.1234.5678"), "1234.5678");
        assert_eq!(client_id_from_ga("GA1.3.987654321.1700000000"), "987654321.1700000000");
        assert_eq!(client_id_from_ga("1234.5678"), "");
        assert_eq!(client_id_from_ga("GA1.2.."), ".");
        assert_eq!(client_id_from_ga(""), "");
    }

    #[test]
    fn session_hash_shape() {
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

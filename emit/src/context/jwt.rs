//! JWT verification: HS256 with a shared secret or RS256 with a PEM public key.
//!
//! `jsonwebtoken` checks the header algorithm against the one configured (so `alg:
//! none`, or an HS256 token signed with an RS256 public key, never pass) and the
//! signature. The registered claims are checked here, on the decoded JSON object:
//! `jsonwebtoken`'s own checks refuse every token carrying `aud` when no audience is
//! configured (Open edX tokens always carry one) and accept a token without `iss`
//! when an issuer is configured.

use std::collections::HashSet;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::ContextError;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 60;

/// Why a token was refused. Coarse on purpose: it never carries any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT (shape, base64, JSON), or an unknown algorithm such as `none`.
    Malformed,
    /// Signed with an algorithm other than the one configured.
    Algorithm,
    /// The signature does not match.
    Signature,
    /// No numeric `exp` claim.
    MissingExpiry,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    Issuer,
    /// `aud` is missing or names none of the configured audiences.
    Audience,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Malformed => "malformed",
            Rejection::Algorithm => "wrong algorithm",
            Rejection::Signature => "bad signature",
            Rejection::MissingExpiry => "no expiry",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not yet valid",
            Rejection::Issuer => "wrong issuer",
            Rejection::Audience => "wrong audience",
        })
    }
}

/// The identity a verified token carries, as Open edX issues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The `user_id` claim (an integer). Without `user_id` and `preferred_username`,
    /// `sub` when it is an integer.
    pub user_id: Option<i64>,
    /// The `preferred_username` claim. Without `user_id` and `preferred_username`,
    /// `sub` when it is not an integer. Otherwise `""`.
    pub username: String,
    /// The `sub` claim as given.
    pub subject: Option<String>,
    /// The `exp` claim, seconds since the epoch.
    pub expires_at: u64,
}

/// Verifies JWTs with one configured algorithm and key.
#[derive(Clone)]
pub struct JwtVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl fmt::Debug for JwtVerifier {
    // The key is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl JwtVerifier {
    /// HS256 with a shared secret (the caller reads it from `TRACKING_JWT_SECRET`).
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_key(Algorithm::HS256, DecodingKey::from_secret(secret))
    }

    /// RS256 with a PEM RSA public key (`-----BEGIN PUBLIC KEY-----` or
    /// `-----BEGIN RSA PUBLIC KEY-----`).
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, ContextError> {
        let key =
            DecodingKey::from_rsa_pem(pem).map_err(|e| ContextError::InvalidKey(format!("not an RSA public key in PEM form: {e}")))?;
        Ok(Self::with_key(Algorithm::RS256, key))
    }

    fn with_key(algorithm: Algorithm, key: DecodingKey) -> Self {
        JwtVerifier { algorithm, key, issuers: Vec::new(), audiences: Vec::new() }
    }

    /// Requires `iss` to be `issuer` (call again to accept several).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Requires `aud` to name `audience` (call again to accept several). Without an
    /// audience configured, `aud` is not checked.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Verifies `token`'s algorithm, signature, `exp` (required), `nbf`, and the
    /// configured issuer and audience, and returns its identity.
    pub fn verify(&self, token: &str) -> Result<Claims, ContextError> {
        self.verify_at(token, now())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, ContextError> {
        let reject = |r| ContextError::InvalidCredential(r);
        // Signature and algorithm only; claims are checked below.
        let mut validation = Validation::new(self.algorithm);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &validation).map_err(|e| {
            reject(match e.kind() {
                ErrorKind::InvalidSignature => Rejection::Signature,
                ErrorKind::InvalidAlgorithm => Rejection::Algorithm,
                _ => Rejection::Malformed,
            })
        })?;
        let claims = data.claims;

        let exp = claims.get("exp").and_then(seconds).ok_or(reject(Rejection::MissingExpiry))?;
        if exp.saturating_add(LEEWAY_SECONDS) < now {
            return Err(reject(Rejection::Expired));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = seconds(nbf).ok_or(reject(Rejection::Malformed))?;
            if nbf > now.saturating_add(LEEWAY_SECONDS) {
                return Err(reject(Rejection::NotYetValid));
            }
        }
        if !self.issuers.is_empty() {
            let ok = matches!(claims.get("iss"), Some(Value::String(iss)) if self.issuers.contains(iss));
            if !ok {
                return Err(reject(Rejection::Issuer));
            }
        }
        if !self.audiences.is_empty() {
            let named = |a: &Value| matches!(a, Value::String(a) if self.audiences.contains(a));
            let ok = match claims.get("aud") {
                Some(Value::Array(list)) => list.iter().any(named),
                Some(single) => named(single),
                None => false,
            };
            if !ok {
                return Err(reject(Rejection::Audience));
            }
        }

        Ok(identity(&claims, exp))
    }
}

fn identity(claims: &Map<String, Value>, expires_at: u64) -> Claims {
    let subject = match claims.get("sub") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let user_id = claims.get("user_id").and_then(Value::as_i64);
    let username = match claims.get("preferred_username") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let (user_id, username) = match (user_id, username) {
        (None, None) => match subject.as_deref() {
            Some(sub) => match sub.parse::<i64>() {
                Ok(id) => (Some(id), String::new()),
                Err(_) => (None, sub.to_owned()),
            },
            None => (None, String::new()),
        },
        (user_id, username) => (user_id, username.unwrap_or_default()),
    };
    Claims { user_id, username, subject, expires_at }
}

/// A NumericDate: a non-negative number of seconds (fractions allowed).
fn seconds(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret";

    fn token(claims: Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn verify(v: &JwtVerifier, claims: Value) -> Result<Claims, ContextError> {
        v.verify_at(&token(claims), 1_700_000_000)
    }

    fn rejected(r: Rejection) -> Result<Claims, ContextError> {
        Err(ContextError::InvalidCredential(r))
    }

    #[test]
    fn open_edx_claims() {
        let v = JwtVerifier::hs256(SECRET);
        let c = verify(&v, json!({"exp": 1_700_000_100u64, "user_id": 42, "preferred_username": "ada", "sub": "abc", "aud": "lms-key"}))
            .unwrap();
        assert_eq!((c.user_id, c.username.as_str(), c.subject.as_deref(), c.expires_at), (Some(42), "ada", Some("abc"), 1_700_000_100));
    }

    #[test]
    fn sub_fallback() {
        let v = JwtVerifier::hs256(SECRET);
        let c = verify(&v, json!({"exp": 1_700_000_100u64, "sub": "77"})).unwrap();
        assert_eq!((c.user_id, c.username.as_str()), (Some(77), ""));
        let c = verify(&v, json!({"exp": 1_700_000_100u64, "sub": "anon-hash"})).unwrap();
        assert_eq!((c.user_id, c.username.as_str()), (None, "anon-hash"));
        // With either claim present, `sub` is not used.
        let c = verify(&v, json!({"exp": 1_700_000_100u64, "sub": "77", "preferred_username": "ada"})).unwrap();
        assert_eq!((c.user_id, c.username.as_str()), (None, "ada"));
        // A string user_id is not an integer.
        let c = verify(&v, json!({"exp": 1_700_000_100u64, "user_id": "5", "preferred_username": "ada"})).unwrap();
        assert_eq!(c.user_id, None);
    }

    #[test]
    fn time_claims() {
        let v = JwtVerifier::hs256(SECRET);
        assert_eq!(verify(&v, json!({"user_id": 1})), rejected(Rejection::MissingExpiry));
        assert_eq!(verify(&v, json!({"exp": "soon"})), rejected(Rejection::MissingExpiry));
        assert_eq!(verify(&v, json!({"exp": 1_700_000_000u64 - 61})), rejected(Rejection::Expired));
        assert!(verify(&v, json!({"exp": 1_700_000_000u64 - 59})).is_ok());
        assert!(verify(&v, json!({"exp": 1_700_000_100.5})).is_ok());
        assert_eq!(verify(&v, json!({"exp": 1_700_009_999u64, "nbf": 1_700_000_061u64})), rejected(Rejection::NotYetValid));
        assert!(verify(&v, json!({"exp": 1_700_009_999u64, "nbf": 1_700_000_059u64})).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let v = JwtVerifier::hs256(SECRET).with_issuer("https://lms/oauth2").with_audience("lms-key").with_audience("other");
        let ok = json!({"exp": 1_700_000_100u64, "iss": "https://lms/oauth2", "aud": "lms-key", "user_id": 1});
        assert!(verify(&v, ok.clone()).is_ok());
        let mut list = ok.clone();
        list["aud"] = json!(["x", "other"]);
        assert!(verify(&v, list).is_ok());
        let mut bad = ok.clone();
        bad["iss"] = json!("https://evil");
        assert_eq!(verify(&v, bad), rejected(Rejection::Issuer));
        let mut none = ok.clone();
        none.as_object_mut().unwrap().remove("iss");
        assert_eq!(verify(&v, none), rejected(Rejection::Issuer));
        let mut bad = ok.clone();
        bad["aud"] = json!(["x"]);
        assert_eq!(verify(&v, bad), rejected(Rejection::Audience));
        let mut none = ok;
        none.as_object_mut().unwrap().remove("aud");
        assert_eq!(verify(&v, none), rejected(Rejection::Audience));
    }

    #[test]
    fn signature_and_shape() {
        let v = JwtVerifier::hs256(b"another secret");
        assert_eq!(verify(&v, json!({"exp": 1_700_000_100u64})), rejected(Rejection::Signature));
        for garbage in ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30"] {
            assert_eq!(v.verify_at(garbage, 0), rejected(Rejection::Malformed), "{garbage}");
        }
    }

    #[test]
    fn bad_pem() {
        assert!(matches!(JwtVerifier::rs256_pem(b"not a pem"), Err(ContextError::InvalidKey(_))));
    }
}

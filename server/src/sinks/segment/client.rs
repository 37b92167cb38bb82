//! Posting batches to Segment's HTTP Tracking API (`/v1/batch`, HTTP Basic auth with
//! the write key as the user name).

use std::io::{self, Read};
use std::time::Duration;

use base64::Engine as _;

/// At most this much of a refusal's response body goes to the dead-letter file.
const MAX_RESPONSE_BYTES: u64 = 4096;

/// A `Retry-After` longer than this is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The write key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct WriteKey(String);

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(<redacted>)")
    }
}

impl WriteKey {
    pub fn new(key: impl Into<String>) -> Self {
        WriteKey(key.into())
    }

    /// Reads the key from `var`; missing or empty is an error that names the variable.
    pub fn from_env(var: &str) -> Result<Self, String> {
        crate::config::secret_from_env(var)
            .map(WriteKey)
            .ok_or_else(|| format!("the Segment write key is missing: set the environment variable {var}"))
    }

    /// `Basic base64(key:)`: the key as the user name and an empty password.
    fn authorization(&self) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.0)))
    }
}

/// Why a post did not go through.
#[derive(Debug)]
pub enum PostError {
    /// Worth trying again: a 5xx, 429, 408, an unexpected status, or a network error.
    Retry { why: String, retry_after: Option<Duration> },
    /// 401 or 403: the write key is refused (revoked, wrong); retried, but nothing
    /// improves until someone changes the key.
    Credentials { status: u16, retry_after: Option<Duration> },
    /// Refused for good: another 4xx, with (the start of) the response body.
    Refused { status: u16, body: String },
}

/// Posts batch bodies to Segment.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl Client {
    pub fn new(url: String, key: &WriteKey, timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("tracking-server/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent, url, authorization: key.authorization() }
    }

    /// Posts one batch body.
    pub fn post(&self, body: &[u8]) -> Result<(), PostError> {
        let request = self.agent.post(&self.url).set("Content-Type", "application/json").set("Authorization", &self.authorization);
        match request.send_bytes(body) {
            Ok(response) if (200..300).contains(&response.status()) => {
                // Read the reply so the connection can be reused.
                let _ = io::copy(&mut response.into_reader().take(1 << 16), &mut io::sink());
                Ok(())
            }
            Ok(response) => Err(PostError::Retry { why: format!("unexpected status {}", response.status()), retry_after: None }),
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response.header("Retry-After").and_then(parse_retry_after);
                match status {
                    401 | 403 => Err(PostError::Credentials { status, retry_after }),
                    408 | 429 | 500.. => Err(PostError::Retry { why: format!("status {status}"), retry_after }),
                    _ => {
                        let mut body = String::new();
                        let _ = response.into_reader().take(MAX_RESPONSE_BYTES).read_to_string(&mut body);
                        Err(PostError::Refused { status, body })
                    }
                }
            }
            Err(ureq::Error::Transport(error)) => Err(PostError::Retry { why: format!("network: {}", error.kind()), retry_after: None }),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_and_redaction() {
        assert_eq!(WriteKey::new("abc").authorization(), "Basic YWJjOg==");
        assert_eq!(format!("{:?}", WriteKey::new("secret")), "WriteKey(<redacted>)");
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date in the past");
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        assert!(parse_retry_after(&soon).is_some_and(|d| d > Duration::from_secs(100) && d <= Duration::from_secs(120)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}

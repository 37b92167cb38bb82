//! The request's cookies as Django reads them (`django.http.parse_cookie`), without
//! the `cookies` feature of actix-web and without logging them.
//!
//! The header bytes are decoded as UTF-8 with replacement characters; pairs are split
//! on `;` and once on `=`, names and values stripped of whitespace, a quoted value
//! unquoted as `http.cookies` does (`\"` and octal `\ooo` escapes), and a name sent
//! twice keeps its last value.

use std::borrow::Cow;

use actix_web::http::header::{HeaderMap, COOKIE};

/// The cookies of one request.
#[derive(Debug, Default)]
pub(crate) struct Cookies {
    pairs: Vec<(String, String)>,
}

impl Cookies {
    /// Reads every `Cookie` header (HTTP/2 may split them; they are joined with `; `).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut cookies = Cookies::default();
        for value in headers.get_all(COOKIE) {
            cookies.read(&String::from_utf8_lossy(value.as_bytes()));
        }
        cookies
    }

    fn read(&mut self, line: &str) {
        for chunk in line.split(';') {
            let (name, value) = chunk.split_once('=').unwrap_or(("", chunk));
            let (name, value) = (python_strip(name), python_strip(value));
            if !name.is_empty() || !value.is_empty() {
                self.pairs.push((name.to_owned(), unquote(value).into_owned()));
            }
        }
    }

    /// The value of the cookie `name` (the last one sent).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `str.strip()`: Python's whitespace is Unicode's plus the separators U+001C–U+001F.
pub(crate) fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `http.cookies._unquote`: a value in double quotes loses them, and its `\"` (any
/// character after a backslash but a line break) and `\ooo` (octal, up to `\377`)
/// escapes are decoded.
fn unquote(value: &str) -> Cow<'_, str> {
    let inner = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.chars().count() >= 2 => inner,
        _ => return Cow::Borrowed(value),
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest: String = chars.clone().take(3).collect();
        let octal =
            rest.len() == 3 && matches!(rest.as_bytes()[0], b'0'..=b'3') && rest.as_bytes()[1..].iter().all(|b| matches!(b, b'0'..=b'7'));
        if octal {
            let code = u32::from_str_radix(&rest, 8).unwrap_or(0);
            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            chars.nth(2);
        } else {
            match chars.peek() {
                Some(&next) if next != '\n' => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push('\\'),
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(lines: &[&[u8]]) -> Cookies {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(COOKIE, actix_web::http::header::HeaderValue::from_bytes(line).unwrap());
        }
        Cookies::of(&h)
    }

    #[test]
    fn reads_cookies_as_django() {
        let c = cookies(&[b"a=1; sessionid=abc; _ga=GA1.2.3.4", b"b=\"q\"; empty=; noequals"]);
        assert_eq!(c.get("sessionid"), Some("abc"));
        assert_eq!(c.get("_ga"), Some("GA1.2.3.4"));
        assert_eq!(c.get("b"), Some("q"));
        assert_eq!(c.get("empty"), Some(""));
        // A chunk without `=` is a value with an empty name.
        assert_eq!(c.get(""), Some("noequals"));
        assert_eq!(c.get("session"), None);
    }

    #[test]
    fn last_wins_and_values_are_unquoted() {
        let c = cookies(&[b"x=first; x=second; q=\"a\\\"b\\101\\z\\\"; u=caf\xc3\xa9; bad=\xff"]);
        assert_eq!(c.get("x"), Some("second"));
        assert_eq!(c.get("q"), Some("a\"bAz\\"));
        assert_eq!(c.get("u"), Some("café"));
        assert_eq!(c.get("bad"), Some("\u{fffd}"));
        assert_eq!(unquote("\""), "\"");
        assert_eq!(unquote("\"\""), "");
        assert_eq!(python_strip("\u{1f} a \u{a0}"), "a");
    }
}

//! JSON text, without a JSON library: string escaping as `JSON.stringify` does it, and
//! one linear pass over `JSON.stringify` output that snake-cases keys and scrubs
//! sensitive values the way the server's scrubber does.
//!
//! The browser's own `JSON.stringify` takes the snapshot of the caller's properties
//! (`toJSON`, dates, dropped `undefined`s, cycle errors: all exactly as the page sees
//! them); this module only rewrites the text, and returns it untouched (no copy) when
//! nothing needs to change, which is the common case.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use event_model::rules::sensitive::{is_card_number, is_sensitive_key, mask_card_numbers, MASK};

use crate::snake::{is_plain_snake, snake_case_utf16};

/// How deep objects and arrays may nest before an event is refused.
pub const MAX_DEPTH: usize = 512;

const HEX: &[u8; 16] = b"0123456789abcdef";

// Slicing helpers that cannot panic: a failed bounds or char-boundary check would pull
// core's panic formatting (`Debug` for strings, Unicode tables) into the wasm build.

/// `&s[a..b]`, or `""` when out of range.
pub fn sub(s: &str, a: usize, b: usize) -> &str {
    s.get(a..b).unwrap_or("")
}

/// `&s[a..]`, or `""` when out of range.
pub fn tail(s: &str, a: usize) -> &str {
    s.get(a..).unwrap_or("")
}

/// `s.split(sep)` for an ASCII separator, without core's panicking searcher.
pub fn pieces(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    core::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == sep) {
            Some(i) => {
                rest = Some(tail(r, i + 1));
                Some(sub(r, 0, i))
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Appends `s` as a JSON string literal, escaped as `JSON.stringify` escapes it.
pub fn push_str_literal(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0..=0x1F => "",
            _ => continue,
        };
        out.push_str(sub(s, copied, i));
        if esc.is_empty() {
            push_u_escape(out, u16::from(b));
        } else {
            out.push_str(esc);
        }
        copied = i + 1;
    }
    out.push_str(tail(s, copied));
    out.push('"');
}

fn push_u_escape(out: &mut String, c: u16) {
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((c >> shift) & 0xF)]));
    }
}

fn hex_val(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

/// The UTF-16 code units of the inside of a JSON string literal.
pub(crate) fn unescape_utf16(inner: &str) -> Option<Vec<u16>> {
    let mut out = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(pos) = rest.bytes().position(|b| b == b'\\') {
        out.extend(sub(rest, 0, pos).encode_utf16());
        let b = rest.as_bytes();
        let unit = match b.get(pos + 1)? {
            b'"' => 0x22,
            b'\\' => 0x5C,
            b'/' => 0x2F,
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => 0x0A,
            b'r' => 0x0D,
            b't' => 0x09,
            b'u' => {
                let mut v = 0u16;
                for i in 0..4 {
                    v = (v << 4) | hex_val(*b.get(pos + 2 + i)?)?;
                }
                out.push(v);
                rest = tail(rest, pos + 6);
                continue;
            }
            _ => return None,
        };
        out.push(unit);
        rest = tail(rest, pos + 2);
    }
    out.extend(rest.encode_utf16());
    Some(out)
}

/// What [`rewrite`] does to the text.
pub struct Rules<'a> {
    /// Snake-case every key, at every depth (tracking-log events).
    pub snake_keys: bool,
    /// Password-like keys beyond the built-in ones.
    pub extra_sensitive_keys: &'a [String],
    /// Lower-cases a word with non-ASCII code units (the browser's `toLowerCase`).
    pub lower: &'a dyn Fn(&[u16]) -> Vec<u16>,
}

/// Why JSON text could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON (cannot happen with `JSON.stringify` output).
    Syntax,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

struct Rewriter<'t, 'r> {
    src: &'t str,
    pos: usize,
    out: Option<String>,
    copied: usize,
    /// Inside a value that is replaced whole: walk, do not rewrite.
    passive: bool,
    rules: &'r Rules<'r>,
}

/// Snake-cases keys (when asked) and masks sensitive values in `JSON.stringify`
/// output: the value of a password-like key becomes `"********"`, whatever it was; card
/// numbers inside strings are masked; a number that is itself a card number becomes
/// `"********"`. Returns the input itself when nothing changed.
pub fn rewrite<'t>(src: &'t str, rules: &Rules<'_>) -> Result<Cow<'t, str>, Invalid> {
    let mut w = Rewriter {
        src,
        pos: 0,
        out: None,
        copied: 0,
        passive: false,
        rules,
    };
    w.ws();
    w.value(0)?;
    w.ws();
    if w.pos != src.len() {
        return Err(Invalid::Syntax);
    }
    Ok(match w.out {
        None => Cow::Borrowed(src),
        Some(mut out) => {
            out.push_str(tail(src, w.copied));
            Cow::Owned(out)
        }
    })
}

impl Rewriter<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), Invalid> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid::Syntax)
        }
    }

    /// Replaces `src[start..end]` with `text` in the output.
    fn replace(&mut self, start: usize, end: usize, text: &str) {
        if self.passive {
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.src.len() + 16));
        out.push_str(sub(self.src, self.copied, start));
        out.push_str(text);
        self.copied = end;
    }

    /// A string literal starting at `pos`: its span (quotes included) and whether it
    /// holds escapes.
    fn string(&mut self) -> Result<(usize, usize, bool), Invalid> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        if bytes.get(start) != Some(&b'"') {
            return Err(Invalid::Syntax);
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match bytes.get(i) {
                None => return Err(Invalid::Syntax),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        Ok((start, i + 1, escaped))
    }

    fn value(&mut self, depth: usize) -> Result<(), Invalid> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => {
                let (start, end, escaped) = self.string()?;
                self.mask_string(start, end, escaped);
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                let token = sub(self.src, start, self.pos);
                if token.len() >= 13
                    && token.bytes().all(|b| b.is_ascii_digit())
                    && is_card_number(token)
                {
                    self.replace(start, self.pos, "\"********\"");
                }
                Ok(())
            }
            Some(b't' | b'f' | b'n') => {
                while self.peek().is_some_and(|b| b.is_ascii_lowercase()) {
                    self.pos += 1;
                }
                Ok(())
            }
            _ => Err(Invalid::Syntax),
        }
    }

    fn mask_string(&mut self, start: usize, end: usize, escaped: bool) {
        let inner = sub(self.src, start + 1, end - 1);
        if inner.bytes().filter(u8::is_ascii_digit).count() < 13 {
            return;
        }
        if !escaped {
            if let Some(masked) = mask_card_numbers(inner) {
                self.replace(start + 1, end - 1, &masked);
            }
            return;
        }
        let Some(units) = unescape_utf16(inner) else {
            return;
        };
        let text = String::from_utf16_lossy(&units);
        if let Some(masked) = mask_card_numbers(&text) {
            // `text` is lossy already (a lone surrogate became U+FFFD): plain escaping.
            let mut lit = String::with_capacity(masked.len() + 2);
            push_str_literal(&mut lit, &masked);
            self.replace(start, end, &lit);
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Invalid::Syntax),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let (start, end, escaped) = self.string()?;
            let sensitive = self.key(start, end, escaped);
            self.expect(b':')?;
            self.ws();
            let value_start = self.pos;
            if sensitive && !self.passive {
                // Walk the value without rewriting inside it, then replace it whole.
                self.passive = true;
                let walked = self.value(depth);
                self.passive = false;
                walked?;
                self.replace(value_start, self.pos, "\"********\"");
            } else {
                self.value(depth)?;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Invalid::Syntax),
            }
        }
    }

    /// Rewrites the key at `start..end` and says whether its value must be masked.
    fn key(&mut self, start: usize, end: usize, escaped: bool) -> bool {
        let inner = sub(self.src, start + 1, end - 1);
        let extra = self.rules.extra_sensitive_keys;
        if !self.rules.snake_keys || (!escaped && is_plain_snake(inner.as_bytes())) {
            if !escaped {
                return is_sensitive_key(inner, extra);
            }
            return unescape_utf16(inner)
                .is_some_and(|u| is_sensitive_key(&String::from_utf16_lossy(&u), extra));
        }
        let Some(units) = unescape_utf16(inner) else {
            return false;
        };
        let snake = snake_case_utf16(&units, self.rules.lower);
        let as_text = String::from_utf16_lossy(&snake);
        if snake != units {
            // lodash's words never hold a lone surrogate, so `as_text` is exact.
            let mut lit = String::with_capacity(as_text.len() + 2);
            push_str_literal(&mut lit, &as_text);
            self.replace(start, end, &lit);
        }
        is_sensitive_key(&as_text, extra)
    }
}

// The mask is what the server writes too.
const _: () = assert!(MASK.len() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(w: &[u16]) -> Vec<u16> {
        String::from_utf16_lossy(w)
            .to_lowercase()
            .encode_utf16()
            .collect()
    }

    fn run(src: &str, snake: bool) -> String {
        let extra = vec!["pin".to_owned()];
        let rules = Rules {
            snake_keys: snake,
            extra_sensitive_keys: &extra,
            lower: &lower,
        };
        rewrite(src, &rules).unwrap().into_owned()
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let rules = Rules {
            snake_keys: true,
            extra_sensitive_keys: &[],
            lower: &lower,
        };
        let src = r#"{"course_id":"course-v1:a+b+c","n":[1,2.5e3,{"x_1":null}],"t":true}"#;
        assert!(matches!(rewrite(src, &rules), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn snake_keys_at_every_depth() {
        assert_eq!(
            run(
                r#"{"testShallow":1,"deep":{"TestDeep":[{"innerKey":"camelValue"}]}}"#,
                true
            ),
            r#"{"test_shallow":1,"deep":{"test_deep":[{"inner_key":"camelValue"}]}}"#
        );
        assert_eq!(run(r#"{"testShallow":1}"#, false), r#"{"testShallow":1}"#);
        assert_eq!(
            run(r#"{"a\"B":1,"\u00c9t\u00e9":2}"#, true),
            r#"{"a_b":1,"ete":2}"#
        );
    }

    #[test]
    fn scrubbing() {
        assert_eq!(
            run(
                r#"{"password":"hunter2","user":{"newPassword":{"x":1},"PIN":1234},"card":"4111 1111 1111 1111","n":4111111111111111,"ts":1700000000006}"#,
                false
            ),
            r#"{"password":"********","user":{"newPassword":"********","PIN":"********"},"card":"********","n":"********","ts":1700000000006}"#
        );
        // After snake-casing, `newPassword` is `new_password`: masked as the server sees it.
        assert_eq!(
            run(r#"{"newPassword":"x","oldPassword":[1,2]}"#, true),
            r#"{"new_password":"********","old_password":"********"}"#
        );
        assert_eq!(
            run(r#"["a\n4111111111111111"]"#, false),
            r#"["a\n********"]"#
        );
    }

    #[test]
    fn escaping_matches_json_stringify() {
        let mut s = String::new();
        push_str_literal(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn bad_input() {
        let rules = Rules {
            snake_keys: false,
            extra_sensitive_keys: &[],
            lower: &lower,
        };
        assert_eq!(rewrite("{", &rules), Err(Invalid::Syntax));
        assert_eq!(rewrite(&"[".repeat(600), &rules), Err(Invalid::TooDeep));
    }
}

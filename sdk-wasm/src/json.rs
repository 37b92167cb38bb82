//! The SDK's use of the shared JSON rules: `event_model::rules::json` checks,
//! scrubs and rewrites `JSON.stringify` output in one pass (the server runs the same
//! code on what arrives), and this module plugs in lodash's snake_case for the keys of
//! tracking-log events.
//!
//! The browser's own `JSON.stringify` takes the snapshot of the caller's properties
//! (`toJSON`, dates, dropped `undefined`s, cycle errors: all exactly as the page sees
//! them); the rules only rewrite the text, and return it untouched (no copy) when
//! nothing needs to change, which is the common case.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use event_model::rules::json::{decode_utf16, rewrite, Dialect, KeyRename, Rules};
pub use event_model::rules::json::{push_str_literal, sub, tail, Invalid, MAX_DEPTH};

use crate::snake::{is_plain_snake, snake_case_utf16};

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

/// The UTF-16 code units of the inside of a JSON string literal.
#[cfg(test)]
pub(crate) fn unescape_utf16(inner: &str) -> Option<Vec<u16>> {
    Some(decode_utf16(inner))
}

/// lodash's `snakeCase` for keys, as frontend-platform applies it.
struct SnakeKeys<'a> {
    /// Lower-cases a word with non-ASCII code units (the browser's `toLowerCase`).
    lower: &'a dyn Fn(&[u16]) -> Vec<u16>,
}

impl KeyRename for SnakeKeys<'_> {
    fn rename(&self, inner: &str, escaped: bool) -> Option<String> {
        if !escaped && is_plain_snake(inner.as_bytes()) {
            return None;
        }
        let units = decode_utf16(inner);
        let snake = snake_case_utf16(&units, self.lower);
        // lodash's words never hold a lone surrogate, so the text is exact.
        (snake != units).then(|| {
            // `String::from_utf16_lossy` is a `collect`, whose growth path costs bytes.
            let mut key = String::with_capacity(snake.len());
            for c in char::decode_utf16(snake.iter().copied()) {
                key.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            key
        })
    }
}

/// Checks `JSON.stringify` output with the server's rules (depth, strings), masks
/// sensitive values, and snake-cases keys when `snake` (tracking-log events).
pub fn prepare_data<'t>(
    text: &'t str,
    snake: bool,
    extra_sensitive_keys: &[String],
    lower: &dyn Fn(&[u16]) -> Vec<u16>,
) -> Result<Cow<'t, str>, Invalid> {
    let keys = SnakeKeys { lower };
    let rules = Rules {
        scrub: true,
        extra_sensitive_keys,
        rename: if snake { Some(&keys) } else { None },
        dialect: Dialect::Strict,
        null_nonfinite: false,
    };
    rewrite(text, &rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;

    fn lower(w: &[u16]) -> Vec<u16> {
        String::from_utf16_lossy(w).to_lowercase().encode_utf16().collect()
    }

    fn run(src: &str, snake: bool) -> String {
        prepare_data(src, snake, &["pin".to_owned()], &lower).unwrap().into_owned()
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let src = r#"{"course_id":"course-v1:a+b+c","n":[1,2.5e3,{"x_1":null}],"t":true}"#;
        assert!(matches!(prepare_data(src, true, &[], &lower), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn snake_keys_at_every_depth() {
        assert_eq!(
            run(r#"{"testShallow":1,"deep":{"TestDeep":[{"innerKey":"camelValue"}]}}"#, true),
            r#"{"test_shallow":1,"deep":{"test_deep":[{"inner_key":"camelValue"}]}}"#
        );
        assert_eq!(run(r#"{"testShallow":1}"#, false), r#"{"testShallow":1}"#);
        assert_eq!(run(r#"{"a\"B":1,"\u00c9t\u00e9":2}"#, true), r#"{"a_b":1,"ete":2}"#);
        // Renamed keys with non-ASCII and astral characters come back as text exactly.
        assert_eq!(run(r#"{"fooБар":1,"\ud83d\ude00Key":2}"#, true), "{\"fooбар\":1,\"😀_key\":2}");
    }

    #[test]
    fn scrubbing_after_snake_casing() {
        assert_eq!(run(r#"{"newPassword":"x","oldPassword":[1,2]}"#, true), r#"{"new_password":"********","old_password":"********"}"#);
        assert_eq!(run(r#"["a\n4111111111111111"]"#, false), r#"["a\n********"]"#);
    }

    #[test]
    fn the_servers_limits() {
        let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(prepare_data(&deep(MAX_DEPTH), false, &[], &lower).is_ok());
        assert_eq!(prepare_data(&deep(MAX_DEPTH + 1), false, &[], &lower), Err(Invalid::TooDeep));
        // What `JSON.stringify` writes for a string cut in the middle of an emoji.
        assert_eq!(run(r#"{"s":"\ud83d"}"#, true), r#"{"s":"\ud83d"}"#);
    }
}

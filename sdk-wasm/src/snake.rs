//! lodash's `snakeCase`, code unit for code unit.
//!
//! frontend-platform 8.x snake-cases tracking-log property keys with
//! `lodash.snakecase` 4.1.1 (`snakeCaseObject`). This is a transcription of that
//! package's algorithm, not an approximation of it (lodash 4.17 and later also split
//! ordinals such as `1st` as one word, and deburr `ſ` to `s`; 4.1.1 does neither):
//!
//! 1. `deburr`: Latin-1 Supplement and Latin Extended-A letters become basic Latin
//!    (`Æ` → `Ae`), combining marks are removed;
//! 2. apostrophes (`'`, `’`) are removed;
//! 3. `words`: when the string has no case change, digit/letter boundary or
//!    character other than `[A-Za-z0-9 ]`, the ASCII splitter (`reAsciiWord`);
//!    otherwise the Unicode splitter (`reUnicodeWord`), whose six alternatives are
//!    matched here by hand with the same backtracking;
//! 4. the words are lower-cased (`String.prototype.toLowerCase`) and joined by `_`.
//!
//! Like JavaScript regular expressions without the `u` flag, everything works on
//! UTF-16 code units. Parity is tested against a table generated with
//! `lodash.snakecase` 4.1.1 itself (`tests/fixtures/snake_case.json`).

use alloc::string::String;
use alloc::vec::Vec;

/// Latin-1 Supplement (U+00C0–U+00FF) and Latin Extended-A (U+0100–U+017F) as lodash's
/// `deburr` maps them, two bytes per code point (a space pads one-letter entries,
/// `!!` marks the two code points `deburr` leaves alone: `×` and `÷`). Generated with
/// lodash's `deburr`, apostrophes removed (`ŉ` → `'n` → `n`).
const DEBURR: &[u8; 384] = b"A A A A A A AeC E E E E I I I I D N O O O O O !!O U U U U Y Thssa a a a a a aec e e e e i i i i d n o o o o o !!o u u u u y thy A a A a A a C c C c C c C c D d D d E e E e E e E e E e G g G g G g G g H h H h I i I i I i I i I i IJijJ j K k k L l L l L l L l L l N n N n N n n N n O o O o O o OeoeR r R r R r S s S s S s S s T t T t T t U u U u U u U u U u U u W w Y y Y Z z Z z Z z ss";

fn is_upper(c: u16) -> bool {
    matches!(c, 0x41..=0x5A | 0xC0..=0xD6 | 0xD8..=0xDE)
}

fn is_lower(c: u16) -> bool {
    matches!(c, 0x61..=0x7A | 0xDF..=0xF6 | 0xF8..=0xFF)
}

fn is_digit(c: u16) -> bool {
    matches!(c, 0x30..=0x39)
}

/// `rsBreakRange`: math operators, ASCII/Latin-1 non-letters, general punctuation, spaces.
fn is_break(c: u16) -> bool {
    matches!(
        c,
        0x00..=0x2F
            | 0x3A..=0x40
            | 0x5B..=0x60
            | 0x7B..=0xBF
            | 0xD7
            | 0xF7
            | 0x2000..=0x206F
            | 0xFEFF
            | 0x1680
            | 0x180E
            | 0x3000
    )
}

fn is_surrogate(c: u16) -> bool {
    matches!(c, 0xD800..=0xDFFF)
}

fn is_dingbat(c: u16) -> bool {
    matches!(c, 0x2700..=0x27BF)
}

/// `rsMisc`: anything that is not a surrogate, break, digit, dingbat or cased letter.
fn is_misc(c: u16) -> bool {
    !(is_surrogate(c) || is_break(c) || is_digit(c) || is_dingbat(c) || is_lower(c) || is_upper(c))
}

fn is_misc_lower(c: u16) -> bool {
    is_lower(c) || is_misc(c)
}

fn is_misc_upper(c: u16) -> bool {
    is_upper(c) || is_misc(c)
}

fn is_combo(c: u16) -> bool {
    matches!(c, 0x0300..=0x036F | 0xFE20..=0xFE23 | 0x20D0..=0x20F0)
}

fn at(s: &[u16], i: usize) -> Option<u16> {
    s.get(i).copied()
}

/// End of the run of code units from `i` that satisfy `f`.
fn run(s: &[u16], mut i: usize, f: fn(u16) -> bool) -> usize {
    while at(s, i).is_some_and(f) {
        i += 1;
    }
    i
}

/// `rsUpper? rsLower+ (?=rsBreak|rsUpper|$)`
fn word_lower(s: &[u16], p: usize) -> Option<usize> {
    let start = if at(s, p).is_some_and(is_upper) { p + 1 } else { p };
    let end = run(s, start, is_lower);
    (end > start && at(s, end).is_none_or(|c| is_break(c) || is_upper(c))).then_some(end)
}

/// `rsMiscUpper+ (?=rsBreak|rsUpper rsMiscLower|$)`, backtracking from the longest run.
fn word_upper(s: &[u16], p: usize) -> Option<usize> {
    let end = run(s, p, is_misc_upper);
    (p + 1..=end).rev().find(|&e| match at(s, e) {
        None => true,
        Some(c) => is_break(c) || (is_upper(c) && at(s, e + 1).is_some_and(is_misc_lower)),
    })
}

/// `rsUpper? rsMiscLower+`
fn word_misc_lower(s: &[u16], p: usize) -> Option<usize> {
    if at(s, p).is_some_and(is_upper) {
        let end = run(s, p + 1, is_misc_lower);
        if end > p + 1 {
            return Some(end);
        }
    }
    let end = run(s, p, is_misc_lower);
    (end > p).then_some(end)
}

/// `rsUpper+`
fn word_all_upper(s: &[u16], p: usize) -> Option<usize> {
    let end = run(s, p, is_upper);
    (end > p).then_some(end)
}

fn is_high(c: u16) -> bool {
    matches!(c, 0xD800..=0xDBFF)
}

fn is_low(c: u16) -> bool {
    matches!(c, 0xDC00..=0xDFFF)
}

/// `(?:\ud83c[\udde6-\uddff]){2}`
fn regional_pair(s: &[u16], i: usize) -> bool {
    let flag = |j: usize| at(s, j) == Some(0xD83C) && at(s, j + 1).is_some_and(|c| matches!(c, 0xDDE6..=0xDDFF));
    flag(i) && flag(i + 2)
}

fn surrogate_pair(s: &[u16], i: usize) -> bool {
    at(s, i).is_some_and(is_high) && at(s, i + 1).is_some_and(is_low)
}

/// `rsOptVar reOptMod`
fn opt_var_mod(s: &[u16], mut i: usize) -> usize {
    if matches!(at(s, i), Some(0xFE0E | 0xFE0F)) {
        i += 1;
    }
    if at(s, i).is_some_and(is_combo) {
        i += 1;
    } else if at(s, i) == Some(0xD83C) && at(s, i + 1).is_some_and(|c| matches!(c, 0xDFFB..=0xDFFF)) {
        i += 2;
    }
    i
}

/// `rsEmoji`: a dingbat, flag or astral symbol with its modifiers and ZWJ sequence.
fn word_emoji(s: &[u16], p: usize) -> Option<usize> {
    let mut i = if at(s, p).is_some_and(is_dingbat) {
        p + 1
    } else if regional_pair(s, p) {
        p + 4
    } else if surrogate_pair(s, p) {
        p + 2
    } else {
        return None;
    };
    i = opt_var_mod(s, i);
    while at(s, i) == Some(0x200D) {
        let k = i + 1;
        let k = match at(s, k) {
            Some(c) if !is_surrogate(c) => k + 1,
            Some(_) if regional_pair(s, k) => k + 4,
            Some(_) if surrogate_pair(s, k) => k + 2,
            _ => break,
        };
        i = opt_var_mod(s, k);
    }
    Some(i)
}

/// `reUnicodeWord`, alternatives in lodash's order.
fn unicode_word_at(s: &[u16], p: usize) -> Option<usize> {
    word_lower(s, p)
        .or_else(|| word_upper(s, p))
        .or_else(|| word_misc_lower(s, p))
        .or_else(|| word_all_upper(s, p))
        .or_else(|| {
            let end = run(s, p, is_digit);
            (end > p).then_some(end)
        })
        .or_else(|| word_emoji(s, p))
}

fn is_ascii_alpha(c: u16) -> bool {
    matches!(c, 0x41..=0x5A | 0x61..=0x7A)
}

/// `reHasUnicodeWord`: `/[a-z][A-Z]|[A-Z]{2}[a-z]|[0-9][a-zA-Z]|[a-zA-Z][0-9]|[^a-zA-Z0-9 ]/`
fn has_unicode_word(s: &[u16]) -> bool {
    let lower = |c: Option<u16>| matches!(c, Some(0x61..=0x7A));
    let upper = |c: Option<u16>| matches!(c, Some(0x41..=0x5A));
    (0..s.len()).any(|i| {
        let (a, b, c) = (at(s, i), at(s, i + 1), at(s, i + 2));
        (lower(a) && upper(b))
            || (upper(a) && upper(b) && lower(c))
            || (a.is_some_and(is_digit) && b.is_some_and(is_ascii_alpha))
            || (a.is_some_and(is_ascii_alpha) && b.is_some_and(is_digit))
            || a.is_some_and(|a| !(is_ascii_alpha(a) || is_digit(a) || a == 0x20))
    })
}

/// `deburr(string).replace(reApos, '')`
fn prepare(key: &[u16]) -> Vec<u16> {
    let mut out = Vec::with_capacity(key.len());
    for &c in key {
        match c {
            0xC0..=0x17F if c != 0xD7 && c != 0xF7 => {
                let i = usize::from(c - 0xC0) * 2;
                for b in [DEBURR.get(i), DEBURR.get(i + 1)].into_iter().flatten() {
                    if *b != b' ' {
                        out.push(u16::from(*b));
                    }
                }
            }
            0x27 | 0x2019 => {}
            _ if is_combo(c) => {}
            _ => out.push(c),
        }
    }
    out
}

/// The words lodash's `words` finds in an already deburred string, as ranges.
fn words(s: &[u16]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    if has_unicode_word(s) {
        let mut p = 0;
        while p < s.len() {
            match unicode_word_at(s, p) {
                Some(end) => {
                    found.push((p, end));
                    p = end;
                }
                None => p += 1,
            }
        }
    } else {
        // `reAsciiWord`: runs of anything but ASCII punctuation, symbols and controls.
        let word = |c: u16| !matches!(c, 0x00..=0x2F | 0x3A..=0x40 | 0x5B..=0x60 | 0x7B..=0x7F);
        let mut p = 0;
        while p < s.len() {
            let end = run(s, p, word);
            if end > p {
                found.push((p, end));
                p = end;
            } else {
                p += 1;
            }
        }
    }
    found
}

/// lodash's `snakeCase` over UTF-16 code units. `lower` lower-cases a word that holds
/// non-ASCII code units (in the browser: `String.prototype.toLowerCase`); ASCII words
/// are lower-cased here.
pub fn snake_case_utf16(key: &[u16], lower: &dyn Fn(&[u16]) -> Vec<u16>) -> Vec<u16> {
    let s = prepare(key);
    let mut out = Vec::with_capacity(s.len() + 4);
    for (i, (start, end)) in words(&s).into_iter().enumerate() {
        if i > 0 {
            out.push(u16::from(b'_'));
        }
        let word = s.get(start..end).unwrap_or(&[]);
        // Loops and `push`, not `extend`, whose specialised growth paths cost the module
        // bytes per use.
        if word.iter().all(|&c| c < 0x80) {
            for &c in word {
                out.push(if matches!(c, 0x41..=0x5A) { c + 32 } else { c });
            }
        } else {
            for c in lower(word) {
                out.push(c);
            }
        }
    }
    out
}

/// Whether an ASCII key is already its own snake case (`[a-z0-9]` words joined by
/// single `_`, no digit/letter boundary), so the common case allocates nothing.
pub fn is_plain_snake(key: &[u8]) -> bool {
    let mut prev: u8 = b'_';
    for (i, &b) in key.iter().enumerate() {
        let ok = match b {
            b'a'..=b'z' => !prev.is_ascii_digit(),
            b'0'..=b'9' => !prev.is_ascii_lowercase(),
            b'_' => i > 0 && prev != b'_',
            _ => false,
        };
        if !ok {
            return false;
        }
        prev = b;
    }
    !key.is_empty() && prev != b'_'
}

/// lodash's `snakeCase` on a Rust string; non-ASCII words are lower-cased with Rust's
/// Unicode tables (the browser build passes JavaScript's `toLowerCase` instead).
pub fn snake_case(key: &str) -> String {
    let units: Vec<u16> = key.encode_utf16().collect();
    let lower = |w: &[u16]| -> Vec<u16> { String::from_utf16_lossy(w).to_lowercase().encode_utf16().collect() };
    String::from_utf16_lossy(&snake_case_utf16(&units, &lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_platform_examples() {
        assert_eq!(snake_case("testShallow"), "test_shallow");
        assert_eq!(snake_case("TestDeep"), "test_deep");
        assert_eq!(snake_case("XMLHttpRequest"), "xml_http_request");
        assert_eq!(snake_case("foo-bar.baz qux"), "foo_bar_baz_qux");
        assert_eq!(snake_case("11th"), "11_th");
        // lodash.snakecase 4.1.1 has no ordinals (lodash 4.18 writes `21st`).
        assert_eq!(snake_case("21st"), "21_st");
        assert_eq!(snake_case("1stAttempt"), "1_st_attempt");
        assert_eq!(snake_case("ÀlaCarte"), "ala_carte");
        assert_eq!(snake_case("fooБар"), "fooбар");
        assert_eq!(snake_case("__"), "");
        assert_eq!(snake_case("don't"), "dont");
    }

    /// The `[key, expected]` pairs of `tests/fixtures/snake_case.json`, as UTF-16.
    pub(crate) fn fixture() -> Vec<(Vec<u16>, Vec<u16>)> {
        let text = include_str!("../tests/fixtures/snake_case.json");
        let mut pairs = Vec::new();
        for line in text.lines() {
            // Each line is `["key","expected"],` (the first starts with `[`, the last ends with `]`).
            let line = line.trim_start_matches('[').trim_end_matches(',').trim_end_matches(']');
            let strings = split_json_strings(line);
            assert_eq!(strings.len(), 2, "fixture line {line}");
            let unescape = |s: &str| crate::json::unescape_utf16(s).expect("fixture string");
            pairs.push((unescape(strings[0]), unescape(strings[1])));
        }
        assert!(pairs.len() >= 30);
        pairs
    }

    /// The insides of the JSON string literals in `line`.
    fn split_json_strings(line: &str) -> Vec<&str> {
        let b = line.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'"' {
                let start = i + 1;
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push(&line[start..i]);
            }
            i += 1;
        }
        out
    }

    #[test]
    fn lodash_parity_fixture() {
        let lower = |w: &[u16]| -> Vec<u16> { String::from_utf16_lossy(w).to_lowercase().encode_utf16().collect() };
        let mut failures = Vec::new();
        for (key, want) in fixture() {
            let got = snake_case_utf16(&key, &lower);
            if got != want {
                failures.push(format!(
                    "{:?}: want {:?}, got {:?}",
                    String::from_utf16_lossy(&key),
                    String::from_utf16_lossy(&want),
                    String::from_utf16_lossy(&got)
                ));
            }
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn plain_snake_fast_path() {
        for key in ["a", "course_id", "a_b_c", "x_1", "ab_12_cd"] {
            assert!(is_plain_snake(key.as_bytes()), "{key}");
            assert_eq!(snake_case(key), key);
        }
        for key in ["", "_a", "a_", "a__b", "A", "a1b", "1a", "a-b", "ab12cd", "x1"] {
            assert!(!is_plain_snake(key.as_bytes()), "{key}");
        }
        assert_eq!(snake_case("x1"), "x_1");
        assert_eq!(snake_case("ab12cd"), "ab_12_cd");
    }
}

//! Python's `json.dumps` on JSON text: `", "` and `": "` separators, ASCII-only
//! output with `\uXXXX` escapes, `repr`-style floats, insertion key order, done by
//! transcoding the text in one pass, without building a tree.
//!
//! What Python's `json.loads` then `json.dumps` does to JSON text is done here on the
//! text: whitespace is dropped, strings are re-escaped (`\u00E9` and `é` both become
//! `\u00e9`; a lone surrogate stays `\ud83d`), integers keep their digits (`-0`
//! becomes `0`), other numbers are written as `repr(float)` (`1E5` → `100000.0`,
//! `1e400` → `Infinity`), and an object with a repeated key keeps the key where it
//! first appeared with the value it last had. The models ([`Json`](crate::Json),
//! [`EventView`](crate::view::EventView)) write themselves with these; [`legacy`](crate::legacy)
//! makes tracking-log lines of them.

use std::fmt::Write as _;

use crate::rules::json::{
    find_not_plain, find_special, is_plain_ascii, is_printable_ascii, pieces, string_end, sub, tail, Dialect, Piece, Scanner, StrSpan, Unit,
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends an object's members with Python's separators, each key written by
/// `write_key` (`json.dumps` of a string) and each value by `write_value`.
pub(crate) fn write_members<'v, K: ?Sized + 'v, V: ?Sized + 'v>(
    members: impl Iterator<Item = (&'v K, &'v V)>,
    write_key: fn(&K, &mut String),
    write_value: fn(&V, &mut String),
    out: &mut String,
) {
    out.push('{');
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_key(key, out);
        out.push_str(": ");
        write_value(value, out);
    }
    out.push('}');
}

/// Appends a string whose content is what `write` writes (`json.dumps` of a value).
pub(crate) fn write_dumped(out: &mut String, write: impl FnOnce(&mut String)) {
    let mut text = String::with_capacity(256);
    write(&mut text);
    write_ascii_as_string(&text, out);
}

/// Appends `json.dumps(json.dumps(json.loads(text)))` for checked JSON text: the
/// string whose content is [`transcode`] of `text` (a browser event's legacy `event`).
/// An object or array is transcoded and escaped in the same pass, without the
/// intermediate text.
pub(crate) fn write_dumped_text(text: &str, out: &mut String) {
    let start = out.len();
    if matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
        out.push('"');
        if transcode_flat::<true>(text, out).is_some() {
            out.push('"');
            return;
        }
        out.truncate(start);
    }
    write_dumped(out, |dumped| transcode(text, dumped));
}

/// `json.dumps(s)` of a string that `json.dumps` wrote (ASCII, no control
/// characters): only `"` and `\` need escaping.
fn write_ascii_as_string(s: &str, out: &mut String) {
    out.reserve(s.len() + s.len() / 4 + 2);
    out.push('"');
    push_ascii_escaped(s, out);
    out.push('"');
}

/// [`write_ascii_as_string`] without the quotes.
fn push_ascii_escaped(s: &str, out: &mut String) {
    let bytes = s.as_bytes();
    let (mut copied, mut from) = (0, 0);
    loop {
        let at = find_special(bytes, from);
        let Some(&b) = bytes.get(at) else { break };
        // A `"` or `\\` goes out with the run after it, behind its backslash; anything
        // else (not written by `json.dumps`) is kept as it is.
        if b == b'"' || b == b'\\' {
            out.push_str(sub(s, copied, at));
            out.push('\\');
            copied = at;
        }
        from = at + 1;
    }
    out.push_str(tail(s, copied));
}

/// Appends `json.dumps(s)` for a Rust string.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    if is_plain_ascii(s.as_bytes()) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            push_char(c, out);
        }
    }
    out.push('"');
}

fn push_char(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        ' '..='~' => out.push(c),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_unit(*unit, out);
            }
        }
    }
}

fn push_unit(unit: u16, out: &mut String) {
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xF)]));
    }
}

/// Appends `json.dumps(json.loads(text))` for checked JSON text.
pub fn transcode(text: &str, out: &mut String) {
    let start = out.len();
    match text.as_bytes().first() {
        // Most values: a string, a number or a word, written on their own.
        Some(b'"') if is_plain_string(text) => return out.push_str(text),
        Some(b'"') => {
            if let Some(span) = string_span(text.as_bytes(), 0).filter(|span| span.end == text.len()) {
                return write_literal(text, span, out);
            }
        }
        Some(b'{' | b'[' | b' ' | b'\t' | b'\n' | b'\r') | None => {
            if transcode_flat::<false>(text, out).is_some() {
                return;
            }
        }
        Some(_) => return write_token(text, out),
    }
    out.truncate(start);
    let mut s = Scanner::containing(text, Dialect::Python);
    if transcode_value(&mut s, out).is_none() {
        // Checked text cannot fail; if it ever does, write it as a string rather than
        // leaving half a value.
        out.truncate(start);
        write_str(text, out);
    }
}

/// A string literal without escapes, all printable ASCII: `"` at both ends and none
/// between.
fn is_plain_string(text: &str) -> bool {
    matches!(text.as_bytes(), [b'"', inner @ .., b'"'] if is_plain_ascii(inner))
}

/// How deep [`transcode_flat`] follows containers, and how many keys of the open
/// objects it remembers; deeper or wider text takes the scanner's path.
const FLAT_DEPTH: u32 = u64::BITS;
const FLAT_KEYS: usize = 16;

/// [`transcode`] in one pass over checked text, without the scanner's recursion: the
/// separators widened, strings re-escaped, numbers rewritten, runs copied whole.
/// `None` when an object repeats a key (Python keeps the first place and the last
/// value: the scanner's path does that), or the text nests deeper than [`FLAT_DEPTH`]
/// or holds more than [`FLAT_KEYS`] keys in the open objects. `DUMPED`: written as the
/// content of a string literal (its `"` and `\\` escaped), for [`write_dumped_text`].
fn transcode_flat<const DUMPED: bool>(text: &str, out: &mut String) -> Option<()> {
    let bytes = text.as_bytes();
    // Bit d: the container open at depth d is an object.
    let (mut objects, mut depth) = (0u64, 0u32);
    let mut keys = [StrSpan { start: 0, end: 0, escaped: false }; FLAT_KEYS];
    // Where the keys of the object open at each depth start in `keys`.
    let mut first_key = [0u8; FLAT_DEPTH as usize];
    let (mut key_count, mut expect_key) = (0usize, false);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // Most strings are plain: one pass finds their end.
                let plain_end = find_not_plain(bytes, i + 1);
                let plain = bytes.get(plain_end) == Some(&b'"');
                let span = if plain { StrSpan { start: i, end: plain_end + 1, escaped: false } } else { string_span(bytes, i)? };
                if expect_key {
                    let open = usize::from(*first_key.get(depth.checked_sub(1)? as usize)?);
                    if keys.get(open..key_count)?.iter().any(|&k| same_key(text, k, span)) {
                        return None;
                    }
                    *keys.get_mut(key_count)? = span;
                    key_count += 1;
                    expect_key = false;
                }
                match (plain, DUMPED) {
                    (true, false) => out.push_str(sub(text, span.start, span.end)),
                    (false, false) => write_literal(text, span, out),
                    (true, true) => {
                        out.push_str("\\\"");
                        out.push_str(sub(text, span.start + 1, span.end - 1));
                        out.push_str("\\\"");
                    }
                    (false, true) => {
                        let mut literal = String::with_capacity(span.end - span.start + 8);
                        write_literal(text, span, &mut literal);
                        push_ascii_escaped(&literal, out);
                    }
                }
                i = span.end;
                continue;
            }
            b',' => {
                out.push_str(", ");
                expect_key = objects >> depth.checked_sub(1)? & 1 == 1;
            }
            b':' => out.push_str(": "),
            b'{' | b'[' => {
                if depth == FLAT_DEPTH {
                    return None;
                }
                if b == b'{' {
                    objects |= 1 << depth;
                    *first_key.get_mut(depth as usize)? = key_count as u8;
                } else {
                    objects &= !(1 << depth);
                }
                expect_key = b == b'{';
                depth += 1;
                out.push(char::from(b));
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if b == b'}' {
                    key_count = usize::from(*first_key.get(depth as usize)?);
                }
                expect_key = false;
                out.push(char::from(b));
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                // A number or a word (`true`, Python's `NaN`, `-Infinity`, ...).
                let end = bytes
                    .get(i..)?
                    .iter()
                    .position(|&c| matches!(c, b',' | b':' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                    .map_or(bytes.len(), |n| i + n);
                write_token(sub(text, i, end), out);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    (depth == 0).then_some(())
}

/// A number or a word (`true`, Python's `NaN`, `-Infinity`, ...).
fn write_token(token: &str, out: &mut String) {
    match token.as_bytes().first() {
        Some(b'0'..=b'9') => write_number(token, out),
        Some(b'-') if token != "-Infinity" => write_number(token, out),
        _ => out.push_str(token),
    }
}

/// The string literal whose opening quote is at `i` in checked text.
fn string_span(bytes: &[u8], i: usize) -> Option<StrSpan> {
    string_end(bytes, i).map(|(end, escaped)| StrSpan { start: i, end, escaped })
}

fn transcode_value(s: &mut Scanner<'_>, out: &mut String) -> Option<()> {
    s.ws();
    let src = s.src();
    match s.peek()? {
        b'{' => transcode_object(s, out),
        b'[' => {
            out.push('[');
            let mut first = true;
            let result = s.array(1, &mut |s, _| {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                nested(s, out)
            });
            out.push(']');
            result.ok()
        }
        b'"' => {
            let span = s.string().ok()?;
            write_literal(src, span, out);
            Some(())
        }
        b't' | b'f' | b'n' | b'N' | b'I' => {
            let (a, b) = s.value(0).ok()?;
            out.push_str(sub(src, a, b));
            Some(())
        }
        _ => {
            let (a, b) = s.value(0).ok()?;
            write_number(sub(src, a, b), out);
            Some(())
        }
    }
}

/// A value inside an array or object, for the scanner's callbacks: a failure stops
/// the container's scan.
fn nested(s: &mut Scanner<'_>, out: &mut String) -> Result<(), crate::rules::json::Invalid> {
    transcode_value(s, out).ok_or_else(|| crate::rules::json::Invalid::Syntax { at: s.pos() })
}

/// An object, keeping Python's dict semantics for repeated keys: written in one pass,
/// and only an object whose keys repeat (no browser sends one) is written again.
fn transcode_object(s: &mut Scanner<'_>, out: &mut String) -> Option<()> {
    let src = s.src();
    let (out_start, src_start) = (out.len(), s.pos());
    let mut keys: Vec<StrSpan> = Vec::new();
    out.push('{');
    let result = s.object(1, &mut |s, key, _| {
        if !keys.is_empty() {
            out.push_str(", ");
        }
        keys.push(key);
        write_literal(src, key, out);
        out.push_str(": ");
        nested(s, out)
    });
    out.push('}');
    result.ok()?;
    if !has_repeated_keys(src, &keys) {
        return Some(());
    }
    out.truncate(out_start);
    let mut again = Scanner::containing(sub(src, src_start, s.pos()), Dialect::Python);
    transcode_object_with_repeats(&mut again, out)
}

fn same_key(src: &str, a: StrSpan, b: StrSpan) -> bool {
    if !a.escaped && !b.escaped {
        // Most keys of an object differ in length or in their first or last byte.
        let bytes = src.as_bytes();
        if a.end - a.start != b.end - b.start
            || bytes.get(a.start + 1) != bytes.get(b.start + 1)
            || bytes.get(a.end - 2) != bytes.get(b.end - 2)
        {
            return false;
        }
        a.inner(src) == b.inner(src)
    } else {
        a.decode(src) == b.decode(src)
    }
}

fn has_repeated_keys(src: &str, keys: &[StrSpan]) -> bool {
    if keys.len() <= 16 {
        return keys.iter().enumerate().any(|(i, &a)| keys[..i].iter().any(|&b| same_key(src, a, b)));
    }
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    !keys.iter().all(|k| seen.insert(k.decode(src)))
}

fn transcode_object_with_repeats(s: &mut Scanner<'_>, out: &mut String) -> Option<()> {
    let src = s.src();
    let mut order: Vec<(StrSpan, (usize, usize))> = Vec::new();
    s.object(1, &mut |s, key, depth| {
        let span = s.value(depth)?;
        match order.iter_mut().find(|(k, _)| same_key(src, *k, key)) {
            Some(slot) => slot.1 = span,
            None => order.push((key, span)),
        }
        Ok(())
    })
    .ok()?;
    out.push('{');
    for (i, &(key, (a, b))) in order.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_literal(src, key, out);
        out.push_str(": ");
        let mut inner = Scanner::containing(sub(src, a, b), Dialect::Python);
        transcode_value(&mut inner, out)?;
    }
    out.push('}');
    Some(())
}

/// Writes a checked string literal as `json.dumps` would write its value.
fn write_literal(src: &str, span: StrSpan, out: &mut String) {
    let inner = span.inner(src);
    if !span.escaped && is_printable_ascii(inner.as_bytes()) {
        out.push_str(sub(src, span.start, span.end));
        return;
    }
    out.push('"');
    for piece in pieces(inner) {
        match piece {
            // Text between escapes holds no `"` or `\\`: printable ASCII goes as it is.
            Piece::Plain(run) if is_printable_ascii(run.as_bytes()) => out.push_str(run),
            Piece::Plain(run) => run.chars().for_each(|c| push_char(c, out)),
            Piece::Escape(Unit::Char(c)) => push_char(c, out),
            Piece::Escape(Unit::Lone(unit)) => push_unit(unit, out),
        }
    }
    out.push('"');
}

/// A JSON number as Python writes the value `json.loads` makes of it.
fn write_number(token: &str, out: &mut String) {
    let is_integer = token.strip_prefix('-').unwrap_or(token).bytes().all(|b| b.is_ascii_digit());
    if is_integer {
        out.push_str(if token == "-0" { "0" } else { token });
        return;
    }
    match token.parse::<f64>() {
        Ok(f) => write_python_float(f, out),
        Err(_) => out.push_str(token),
    }
}

/// Appends `value` as Python's `repr(float)`: the shortest digits that round-trip,
/// fixed notation for 1e-4 <= |x| < 1e16 (with `.0` on whole numbers), otherwise
/// `d.ddde+XX`; `Infinity`, `-Infinity` and `NaN` as `json.dumps` writes them.
pub fn write_python_float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(value.abs());
    let (mantissa, exponent) = match shortest.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (shortest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, without leading and trailing zeros.
    let mut digits_buf = [0u8; 40];
    let mut n = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        if n < digits_buf.len() {
            digits_buf[n] = b;
            n += 1;
        }
    }
    let all = &digits_buf[..n];
    let leading = all.iter().take_while(|&&b| b == b'0').count();
    let trimmed = &all[leading..];
    let trailing = trimmed.iter().rev().take_while(|&&b| b == b'0').count();
    let digits = std::str::from_utf8(&trimmed[..trimmed.len() - trailing]).unwrap_or("0");
    if digits.is_empty() {
        out.push_str("0.0");
        return;
    }
    // The value is 0.DIGITS × 10^decpt, as in Python's float formatting.
    let decpt = int_part.len() as i32 + exponent - leading as i32;
    let len = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let exp = decpt - 1;
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(digits);
    } else if decpt >= len {
        out.push_str(digits);
        for _ in 0..decpt - len {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str) -> String {
        let mut out = String::new();
        transcode(text, &mut out);
        out
    }

    #[test]
    fn separators_and_order() {
        assert_eq!(py(r#"{"b":1,"a":[1,2,{}],"c":{"z":null,"y":true}}"#), r#"{"b": 1, "a": [1, 2, {}], "c": {"z": null, "y": true}}"#);
        assert_eq!(py(" [ ] "), "[]");
        assert_eq!(py("{ }"), "{}");
    }

    #[test]
    fn unicode_is_escaped_like_ensure_ascii() {
        assert_eq!(py(r#""café""#), r#""caf\u00e9""#);
        assert_eq!(py(r#""caf\u00E9""#), r#""caf\u00e9""#);
        assert_eq!(py(r#""日本""#), r#""\u65e5\u672c""#);
        assert_eq!(py(r#""😀""#), r#""\ud83d\ude00""#);
        assert_eq!(py(r#""\uD83D\uDE00""#), r#""\ud83d\ude00""#);
        assert_eq!(py("\"a\u{7f}b\""), r#""a\u007fb""#);
        assert_eq!(py(r#"{"clé": "ü"}"#), r#"{"cl\u00e9": "\u00fc"}"#);
        assert_eq!(py(r#""a\/b""#), r#""a/b""#);
    }

    #[test]
    fn lone_surrogates_stay_as_python_keeps_them() {
        assert_eq!(py(r#""\ud83d""#), r#""\ud83d""#);
        assert_eq!(py(r#""x\uD800y""#), r#""x\ud800y""#);
        assert_eq!(py(r#"["\ude00\ud83d"]"#), r#"["\ude00\ud83d"]"#);
    }

    #[test]
    fn quotes_and_control_characters() {
        assert_eq!(py(r#""say \"hi\" \\ /""#), r#""say \"hi\" \\ /""#);
        assert_eq!(py(r#""\b\f\n\r\t\u0000\u001f""#), r#""\b\f\n\r\t\u0000\u001f""#);
    }

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            ("1.5", "1.5"),
            ("100.0", "100.0"),
            ("1e16", "1e+16"),
            ("1e15", "1000000000000000.0"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1.2345678901234567e17", "1.2345678901234566e+17"),
            ("123456789012345678.0", "1.2345678901234568e+17"),
            ("1e22", "1e+22"),
            ("-2.5e-7", "-2.5e-07"),
            ("0.1", "0.1"),
            ("0.0", "0.0"),
            ("-0.0", "-0.0"),
            ("1E5", "100000.0"),
            ("123456.789", "123456.789"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("3.0e2", "300.0"),
            ("1e400", "Infinity"),
            ("-1e400", "-Infinity"),
        ];
        for (input, want) in cases {
            assert_eq!(py(input), want, "{input}");
        }
        assert_eq!(py("[NaN, Infinity, -Infinity]"), "[NaN, Infinity, -Infinity]");
    }

    #[test]
    fn integers_of_any_size() {
        for n in ["0", "-1", "9007199254740993", "18446744073709551615", "-9223372036854775808", "123456789012345678901234567890"] {
            assert_eq!(py(n), n);
        }
        assert_eq!(py("-0"), "0");
    }

    /// The scanner's path, which the one-pass transcoder must match.
    fn py_scanned(text: &str) -> Option<String> {
        let mut out = String::new();
        transcode_value(&mut Scanner::containing(text, Dialect::Python), &mut out)?;
        Some(out)
    }

    /// JSON text in Python's dialect with the parts that make the writers differ:
    /// repeated and escaped keys, escapes, non-ASCII and lone surrogates, floats,
    /// `-0`, Python's words, and whitespace between tokens.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ws = prop::sample::select(vec!["", "", "", " ", "\n ", "\t"]);
        let string = prop::sample::select(vec![
            r#""a""#,
            r#""b""#,
            r#""\u0061""#,
            r#""""#,
            r#""caf\u00E9""#,
            r#""日本""#,
            r#""\ud83d""#,
            r#""q\"\\/""#,
            r#""\b\n\u001f""#,
            "\"a\u{7f}b\"",
            r#""long enough to take whole words at a time""#,
            r#""\/x""#,
        ]);
        let scalar = prop_oneof![
            string.clone().prop_map(str::to_owned),
            prop::sample::select(vec![
                "0",
                "-0",
                "12",
                "-7",
                "1.5",
                "1E5",
                "1e400",
                "-2.5e-7",
                "3.0e2",
                "true",
                "false",
                "null",
                "NaN",
                "Infinity",
                "-Infinity"
            ])
            .prop_map(str::to_owned),
        ];
        scalar.prop_recursive(6, 64, 6, move |inner| {
            let member =
                (string.clone(), ws.clone(), inner.clone(), ws.clone()).prop_map(|(k, w1, v, w2)| format!("{w1}{k}{w2}:{w1}{v}{w2}"));
            prop_oneof![
                prop::collection::vec(inner, 0..6).prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(member, 0..6).prop_map(|members| format!("{{{}}}", members.join(","))),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn one_pass_matches_the_scanner(text in json_text()) {
            let mut flat = String::new();
            match transcode_flat::<false>(&text, &mut flat) {
                Some(()) => proptest::prop_assert_eq!(Some(flat), py_scanned(&text)),
                // Only a repeated key, or more depth or keys than the tables hold, leaves it to the scanner.
                None => proptest::prop_assert!(py_scanned(&text).is_some()),
            }
            proptest::prop_assert_eq!(Some(py(&text)), py_scanned(&text));
        }
    }

    proptest::proptest! {
        #[test]
        fn dumped_in_one_pass_matches_dumped_text(text in json_text()) {
            let mut one_pass = String::from("x");
            write_dumped_text(&text, &mut one_pass);
            let mut two_steps = String::from("x");
            write_dumped(&mut two_steps, |dumped| transcode(&text, dumped));
            proptest::prop_assert_eq!(one_pass, two_steps);
        }
    }

    #[test]
    fn dumped_text_is_a_string_of_the_dumps() {
        let mut out = String::new();
        write_dumped_text(r#"{"a":"q\"x","b":[1,"\u00e9"]}"#, &mut out);
        assert_eq!(out, r#""{\"a\": \"q\\\"x\", \"b\": [1, \"\\u00e9\"]}""#);
    }

    #[test]
    fn the_one_pass_path_defers_only_what_it_cannot_write() {
        let mut out = String::new();
        assert!(
            transcode_flat::<false>(r#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#, &mut out).is_some(),
            "the same key in nested objects is no repeat"
        );
        assert!(transcode_flat::<false>(r#"{"a":1,"\u0061":2}"#, &mut String::new()).is_none());
        let wide = format!("{{{}}}", (0..FLAT_KEYS + 1).map(|k| format!(r#""k{k}":{k}"#)).collect::<Vec<_>>().join(","));
        assert!(transcode_flat::<false>(&wide, &mut String::new()).is_none());
        assert_eq!(py(&wide), py_scanned(&wide).unwrap());
        let deep = format!("{}{}", "[".repeat(FLAT_DEPTH as usize + 1), "]".repeat(FLAT_DEPTH as usize + 1));
        assert!(transcode_flat::<false>(&deep, &mut String::new()).is_none());
        assert_eq!(py(&deep), deep);
    }

    #[test]
    fn repeated_keys_as_a_python_dict() {
        assert_eq!(py(r#"{"a":1,"b":2,"a":3}"#), r#"{"a": 3, "b": 2}"#);
        assert_eq!(py(r#"{"a":1,"\u0061":{"x":1,"x":2}}"#), r#"{"a": {"x": 2}}"#);
    }
}

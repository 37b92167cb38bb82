//! The research tracking log: lines written byte for byte as Python's `json.dumps`
//! writes them (`", "` and `": "` separators, ASCII-only output with `\uXXXX`
//! escapes, `repr`-style floats, insertion key order).

use std::io::{self, Write};

use serde::Serialize;

use crate::Event;

/// A `serde_json` formatter that reproduces Python's `json.dumps` defaults
/// (`ensure_ascii=True`, separators `", "` and `": "`).
#[derive(Debug, Default, Clone, Copy)]
pub struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_python_float(w, value)
    }

    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        write_python_float(w, f64::from(value))
    }

    /// Numbers kept as written (serde_json's `arbitrary_precision`): integers of any
    /// size pass through as Python's `int` does; anything with a fraction or an
    /// exponent is a Python `float` and is written as `repr(float)` would.
    fn write_number_str<W: ?Sized + Write>(&mut self, w: &mut W, value: &str) -> io::Result<()> {
        let is_integer = value.strip_prefix('-').unwrap_or(value).bytes().all(|b| b.is_ascii_digit());
        match (is_integer, value) {
            (true, "-0") => w.write_all(b"0"),
            (true, _) => w.write_all(value.as_bytes()),
            (false, _) => match value.parse::<f64>() {
                Ok(f) => write_python_float(w, f),
                Err(_) => w.write_all(value.as_bytes()),
            },
        }
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        // Most text is printable ASCII: write it whole.
        if bytes.iter().all(|&b| (b' '..=b'~').contains(&b)) {
            return w.write_all(bytes);
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&bytes[start..])
    }
}

/// Writes `value` as Python's `repr(float)`: the shortest digits that round-trip,
/// fixed notation for 1e-4 <= |x| < 1e16 (with `.0` on whole numbers), otherwise
/// `d.ddde+XX`; `Infinity` and `-Infinity` as Python writes them.
fn write_python_float<W: ?Sized + Write>(w: &mut W, value: f64) -> io::Result<()> {
    if value.is_nan() {
        return w.write_all(b"NaN");
    }
    if value.is_infinite() {
        return w.write_all(if value > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    if value.is_sign_negative() {
        w.write_all(b"-")?;
    }
    let mut buffer = ryu::Buffer::new();
    let shortest = buffer.format_finite(value.abs());
    let (mantissa, exponent) = match shortest.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (shortest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = format!("{int_part}{frac_part}");
    let leading_zeros = all_digits.len() - all_digits.trim_start_matches('0').len();
    let digits = all_digits.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return w.write_all(b"0.0");
    }
    // The value is 0.DIGITS × 10^decpt, as in Python's float formatting.
    let decpt = int_part.len() as i32 + exponent - leading_zeros as i32;
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let exp = decpt - 1;
        let sign = if exp < 0 { '-' } else { '+' };
        if rest.is_empty() {
            write!(w, "{first}e{sign}{:02}", exp.abs())
        } else {
            write!(w, "{first}.{rest}e{sign}{:02}", exp.abs())
        }
    } else if decpt <= 0 {
        write!(w, "0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        write!(w, "{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        write!(w, "{int}.{frac}")
    }
}

/// Appends `value` as Python's `json.dumps(value)` would write it.
pub fn write<W: Write>(writer: W, value: &impl Serialize) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, PythonFormatter);
    value.serialize(&mut serializer)
}

/// `json.dumps(value)` as a string.
pub fn dumps(value: &impl Serialize) -> String {
    let mut out = Vec::with_capacity(256);
    // Writing a `Serialize` value made of maps, strings and numbers into a Vec cannot fail.
    write(&mut out, value).expect("serializing JSON values into memory does not fail");
    // The formatter only writes ASCII.
    String::from_utf8(out).expect("the Python formatter writes ASCII")
}

/// The tracking-log line of an event (without the newline). Run the
/// [`LegacyFieldMapping`](crate::processors::LegacyFieldMapping) processor first to
/// get the legacy shape.
pub fn to_line(event: &Event) -> String {
    dumps(event)
}

/// The length in bytes (= characters: the output is ASCII) of `json.dumps(value)`,
/// without building the string.
pub fn serialized_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = write(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn py(v: &Value) -> String {
        dumps(v)
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn separators_and_order() {
        assert_eq!(py(&parse(r#"{"b":1,"a":[1,2,{}],"c":{"z":null,"y":true}}"#)), r#"{"b": 1, "a": [1, 2, {}], "c": {"z": null, "y": true}}"#);
        assert_eq!(py(&json!([])), "[]");
    }

    #[test]
    fn unicode_is_escaped_like_ensure_ascii() {
        assert_eq!(py(&json!("café")), r#""caf\u00e9""#);
        assert_eq!(py(&json!("日本")), r#""\u65e5\u672c""#);
        assert_eq!(py(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(py(&json!("a\u{7f}b")), r#""a\u007fb""#);
        assert_eq!(py(&json!({"clé": "ü"})), r#"{"cl\u00e9": "\u00fc"}"#);
    }

    #[test]
    fn quotes_and_control_characters() {
        assert_eq!(py(&json!("say \"hi\" \\ /")), r#""say \"hi\" \\ /""#);
        assert_eq!(py(&json!("\u{8}\u{c}\n\r\t\u{0}\u{1f}")), r#""\b\f\n\r\t\u0000\u001f""#);
    }

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            ("1.5", "1.5"), ("100.0", "100.0"), ("1e16", "1e+16"), ("1e15", "1000000000000000.0"),
            ("0.0001", "0.0001"), ("0.00001", "1e-05"), ("1.2345678901234567e17", "1.2345678901234566e+17"), ("123456789012345678.0", "1.2345678901234568e+17"), ("1e22", "1e+22"),
            ("-2.5e-7", "-2.5e-07"), ("0.1", "0.1"), ("0.0", "0.0"), ("-0.0", "-0.0"), ("1E5", "100000.0"),
            ("123456.789", "123456.789"), ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("5e-324", "5e-324"), ("3.0e2", "300.0"),
        ];
        for (input, want) in cases {
            assert_eq!(py(&parse(input)), want, "{input}");
        }
        assert_eq!(dumps(&0.1f64), "0.1");
        // JSON input cannot hold NaN or infinities; a number too large for f64
        // becomes Infinity, as Python's float() makes it.
        assert_eq!(py(&parse("1e400")), "Infinity");
        assert_eq!(py(&parse("-1e400")), "-Infinity");
    }

    #[test]
    fn integers_of_any_size() {
        for n in ["0", "-1", "9007199254740993", "18446744073709551615", "-9223372036854775808", "123456789012345678901234567890"] {
            assert_eq!(py(&parse(n)), n);
        }
    }

    #[test]
    fn length_without_building() {
        let v = json!({"a": "é", "b": [1, 2.5]});
        assert_eq!(serialized_len(&v), py(&v).len());
    }
}

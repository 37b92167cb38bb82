//! How queued events are written to localStorage: two bytes of event JSON per
//! character.
//!
//! Browsers count localStorage in UTF-16 code units (5 Mi per origin in Chromium and
//! Firefox), whatever the characters. Event JSON is made ASCII (other characters become
//! JSON `\u` escapes, the same JSON), then each pair of ASCII bytes is one character in
//! U+0100–U+40FF, which is never a surrogate, so any browser stores it as is. A chunk
//! starts with U+0001 (`MARK`); a chunk that starts with `{` is plain JSON lines, as an
//! earlier version wrote them, and is read too.

use alloc::string::String;
use alloc::vec::Vec;

const MARK: char = '\u{1}';
const PAIR_BASE: u32 = 0x100;

/// Packs event JSON lines into one storage value.
pub fn pack<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut ascii: Vec<u8> = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            ascii.push(b'\n');
        }
        push_ascii(&mut ascii, line);
    }
    let mut out = String::with_capacity(1 + ascii.len() / 2 * 3 + 1);
    out.push(MARK);
    let mut pairs = ascii.chunks_exact(2);
    for pair in &mut pairs {
        let code = PAIR_BASE + (u32::from(pair[0]) << 7 | u32::from(pair[1]));
        out.push(char::from_u32(code).unwrap_or('?'));
    }
    if let [last] = pairs.remainder() {
        out.push(char::from(*last));
    }
    out
}

/// The event JSON lines of a stored value; `None` when it is neither format.
pub fn unpack(value: &str) -> Option<String> {
    if value.starts_with('{') {
        return Some(value.into());
    }
    let body = value.strip_prefix(MARK)?;
    // Every byte is ASCII, so each is pushed as a char (no UTF-8 validation to pay for).
    let mut text = String::with_capacity(body.len());
    for c in body.chars() {
        let code = u32::from(c);
        match code {
            0..=0x7F => text.push(c),
            _ if (PAIR_BASE..PAIR_BASE + 0x4000).contains(&code) => {
                let v = code - PAIR_BASE;
                text.push(char::from((v >> 7) as u8));
                text.push(char::from((v & 0x7F) as u8));
            }
            _ => return None,
        }
    }
    Some(text)
}

/// The length of a value in UTF-16 code units, as the browser's quota counts it: one
/// per UTF-8 lead byte, two for a four-byte sequence (a surrogate pair).
pub fn utf16_len(s: &str) -> usize {
    s.bytes().map(|b| usize::from(b & 0xC0 != 0x80) + usize::from(b >= 0xF0)).sum()
}

/// Appends `json` with every character outside ASCII written as a `\u` escape (only
/// string contents can hold one, so the JSON means the same).
fn push_ascii(out: &mut Vec<u8>, json: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if json.is_ascii() {
        out.extend_from_slice(json.as_bytes());
        return;
    }
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c as u8);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[usize::from(*unit >> shift & 0xF)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let lines = ["{\"id\":\"a\",\"t\":\"x\"}", "{\"id\":\"b\"}"];
        let packed = pack(lines);
        assert_eq!(utf16_len(&packed), 1 + (lines[0].len() + 1 + lines[1].len()).div_ceil(2));
        assert_eq!(unpack(&packed).unwrap(), lines.join("\n"));
        // Plain JSON lines of an earlier version are read as they are.
        assert_eq!(unpack("{\"id\":\"a\"}\n{\"id\":\"b\"}").unwrap(), "{\"id\":\"a\"}\n{\"id\":\"b\"}");
        assert_eq!(unpack("garbage"), None);
        assert_eq!(unpack("\u{1}\u{5000}"), None);
    }

    #[test]
    fn non_ascii_becomes_escapes_and_never_a_surrogate() {
        let packed = pack(["{\"t\":\"café 😀 中\"}"]);
        assert!(packed.chars().all(|c| !(0xD800..0xE000).contains(&u32::from(c)) && u32::from(c) < 0x4100));
        assert_eq!(unpack(&packed).unwrap(), "{\"t\":\"caf\\u00e9 \\ud83d\\ude00 \\u4e2d\"}");
        assert_eq!(pack([""]), "\u{1}");
        assert_eq!(unpack("\u{1}").unwrap(), "");
    }

    #[test]
    fn utf16_len_counts_code_units() {
        for s in ["", "abc", "café", "中文", "😀", "a😀b\u{10FFFF}\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}"] {
            assert_eq!(utf16_len(s), s.encode_utf16().count(), "{s:?}");
        }
    }
}

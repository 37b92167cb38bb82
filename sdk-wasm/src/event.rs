//! One event on the wire: its id (UUID v7), its RFC 3339 timestamp and its JSON.

use alloc::string::String;

use crate::json::push_str_literal;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The kinds of event, as the `type` field names them (the server's own type).
pub use event_model::rules::event::EventType as Kind;

/// A UUID v7 (RFC 9562): 48 bits of Unix milliseconds, version 7, 74 random bits.
pub fn uuid_v7(unix_ms: u64, random: &[u8; 10]) -> String {
    let mut b = [0u8; 16];
    let ms = unix_ms.to_be_bytes();
    for i in 0..16 {
        b[i] = if i < 6 { ms[i + 2] } else { random[i - 6] };
    }
    b[6] = 0x70 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    uuid_text(&b)
}

/// A random UUID v4, for anonymous ids.
pub fn uuid_v4(random: &[u8; 16]) -> String {
    let mut b = *random;
    b[6] = 0x40 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    uuid_text(&b)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0xF)]));
    }
    s
}

fn push_digits(out: &mut String, value: u64, width: u32) {
    for i in (0..width).rev() {
        let digit = (value / 10u64.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Appends a decimal number.
pub fn push_u64(out: &mut String, value: u64) {
    let mut width = 1;
    while width < 20 && value >= 10u64.pow(width) {
        width += 1;
    }
    push_digits(out, value, width);
}

/// `2026-11-22T10:01:02.123Z` for Unix milliseconds, as `Date.prototype.toISOString`
/// writes it (years 0 to 9999).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let days = unix_ms / 86_400_000;
    let ms_of_day = unix_ms % 86_400_000;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut s = String::with_capacity(24);
    push_digits(&mut s, year.min(9999), 4);
    s.push('-');
    push_digits(&mut s, month, 2);
    s.push('-');
    push_digits(&mut s, day, 2);
    s.push('T');
    push_digits(&mut s, ms_of_day / 3_600_000, 2);
    s.push(':');
    push_digits(&mut s, ms_of_day / 60_000 % 60, 2);
    s.push(':');
    push_digits(&mut s, ms_of_day / 1000 % 60, 2);
    s.push('.');
    push_digits(&mut s, ms_of_day % 1000, 3);
    s.push('Z');
    s
}

/// The parts of one event, in wire order.
pub struct Parts<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub name: Option<&'a str>,
    pub category: Option<&'a str>,
    pub timestamp: &'a str,
    /// JSON text of `data`.
    pub data: &'a str,
    pub page: &'a str,
    pub referrer: &'a str,
    pub user_id: Option<&'a str>,
    pub anonymous_id: &'a str,
}

/// The event's JSON object, keys in wire order, optional fields left out when absent.
pub fn to_json(p: &Parts<'_>) -> String {
    // Room for every part and key: a growth would copy the event and double its block.
    let texts = [p.name, p.category, p.user_id].iter().map(|t| t.map_or(0, str::len)).sum::<usize>();
    let mut s = String::with_capacity(p.data.len() + p.page.len() + p.referrer.len() + p.anonymous_id.len() + texts + 160);
    s.push_str("{\"id\":\"");
    s.push_str(p.id);
    s.push_str("\",\"type\":\"");
    s.push_str(p.kind.as_str());
    s.push('"');
    if let Some(name) = p.name {
        s.push_str(",\"name\":");
        push_str_literal(&mut s, name);
    }
    if let Some(category) = p.category {
        s.push_str(",\"category\":");
        push_str_literal(&mut s, category);
    }
    s.push_str(",\"timestamp\":\"");
    s.push_str(p.timestamp);
    s.push_str("\",\"data\":");
    s.push_str(p.data);
    s.push_str(",\"page\":");
    push_str_literal(&mut s, p.page);
    if !p.referrer.is_empty() {
        s.push_str(",\"referrer\":");
        push_str_literal(&mut s, p.referrer);
    }
    if let Some(user_id) = p.user_id {
        s.push_str(",\"user_id\":");
        push_str_literal(&mut s, user_id);
    }
    if !p.anonymous_id.is_empty() {
        s.push_str(",\"anonymous_id\":");
        push_str_literal(&mut s, p.anonymous_id);
    }
    s.push('}');
    s
}

/// The id of an event line this SDK wrote (`{"id":"<36 characters>",…`).
pub fn id_of_line(line: &str) -> Option<&str> {
    let id = line.strip_prefix("{\"id\":\"")?.get(..36)?;
    (line.as_bytes().get(43) == Some(&b'"') && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_layout() {
        let id = uuid_v7(0x0190_1234_5678, &[0xFF; 10]);
        assert_eq!(id, "01901234-5678-7fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4(&[0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_341_662_123), "2026-11-22T10:01:02.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        let mut s = String::new();
        push_u64(&mut s, 0);
        push_u64(&mut s, 1_234_567);
        assert_eq!(s, "01234567");
    }

    #[test]
    fn event_json() {
        let json = to_json(&Parts {
            id: "01901234-5678-7fff-bfff-ffffffffffff",
            kind: Kind::Page,
            name: Some("Course \"Home\""),
            category: None,
            timestamp: "2026-11-22T10:01:02.123Z",
            data: "{}",
            page: "https://x/",
            referrer: "",
            user_id: Some("42"),
            anonymous_id: "a",
        });
        assert_eq!(
            json,
            r#"{"id":"01901234-5678-7fff-bfff-ffffffffffff","type":"page","name":"Course \"Home\"","timestamp":"2026-11-22T10:01:02.123Z","data":{},"page":"https://x/","user_id":"42","anonymous_id":"a"}"#
        );
        assert_eq!(id_of_line(&json), Some("01901234-5678-7fff-bfff-ffffffffffff"));
        assert_eq!(id_of_line("{\"id\":\"x\"}"), None);
    }
}

//! Sensitive data: password-like keys and payment card numbers.

use alloc::string::String;

/// What sensitive values are replaced with.
pub const MASK: &str = "********";

/// Keys whose values are always masked (compared case-insensitively).
pub const PASSWORD_KEYS: &[&str] =
    &["password", "newpassword", "new_password", "oldpassword", "old_password", "new_password1", "new_password2"];

/// Whether `key` names a password-like field: one of [`PASSWORD_KEYS`] or of `extra`,
/// ignoring ASCII case.
pub fn is_sensitive_key(key: &str, extra: &[String]) -> bool {
    PASSWORD_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) || extra.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// The Luhn checksum over the ASCII digits of `digits` (other bytes are skipped).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0;
    for b in digits.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if count % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        count += 1;
    }
    count > 0 && sum.is_multiple_of(10)
}

/// Whether a run of digits looks like a payment card number: 13 to 19 digits, a
/// leading digit of a card network (2–6: Mastercard, Amex, Visa, Discover, …) and a
/// valid Luhn checksum. The leading-digit rule keeps millisecond timestamps, which
/// start with 1, from being masked.
pub fn is_card_number(digits: &str) -> bool {
    let n = digits.bytes().filter(u8::is_ascii_digit).count();
    (MIN_CARD_DIGITS..=19).contains(&n) && matches!(digits.bytes().find(u8::is_ascii_digit), Some(b'2'..=b'6')) && luhn_valid(digits)
}

/// The fewest digits a card number has.
pub const MIN_CARD_DIGITS: usize = 13;

/// Whether `text` holds at least [`MIN_CARD_DIGITS`] ASCII digits, the cheap test
/// before [`mask_card_numbers`] (most strings hold fewer): eight bytes at a time,
/// stopping once there are enough.
pub fn may_hold_card_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < MIN_CARD_DIGITS {
        return false;
    }
    let mut digits = 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        digits += <[u8; 8]>::try_from(word).map_or(0, |w| digits_in(u64::from_le_bytes(w)));
        if digits >= MIN_CARD_DIGITS {
            return true;
        }
    }
    digits + words.remainder().iter().filter(|b| b.is_ascii_digit()).count() >= MIN_CARD_DIGITS
}

/// How many bytes of `w` are ASCII digits. Each byte's low seven bits plus a constant
/// sets its high bit when they are at least `'0'` (and again past `'9'`); no sum
/// carries into the next byte.
fn digits_in(w: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let low = w & !HIGH;
    let from_zero = low + ONES * u64::from(0x80 - b'0');
    let past_nine = low + ONES * u64::from(0x80 - b'9' - 1);
    (from_zero & !past_nine & !w & HIGH).count_ones() as usize
}

/// Masks every card number inside `text`: runs of digits, optionally grouped by single
/// spaces or dashes, that pass [`is_card_number`]. Returns `None` when nothing changed.
pub fn mask_card_numbers(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let end = card_run_end(bytes, i);
        // `get` instead of indexing: the browser build links no panicking slicing
        // (the indices are always on ASCII digit boundaries).
        if is_card_number(text.get(i..end).unwrap_or("")) {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(text.get(copied..i).unwrap_or(""));
            buf.push_str(MASK);
            copied = end;
        }
        i = end.max(i + 1);
    }
    out.map(|mut buf| {
        buf.push_str(text.get(copied..).unwrap_or(""));
        buf
    })
}

/// End of a digit run starting at `start`, allowing single ` ` or `-` between digits.
fn card_run_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            i += 1;
            end = i;
        } else if matches!(bytes[i], b' ' | b'-') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
        } else {
            break;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_counted_a_word_at_a_time_as_one_by_one() {
        let naive = |text: &str| text.bytes().filter(u8::is_ascii_digit).count() >= MIN_CARD_DIGITS;
        // Every byte value beside digits, at every place of a word, around the threshold.
        let mut texts =
            vec![String::new(), "4111 1111 1111 1111".into(), "12-34-56-78-90-12".into(), "123456789012".into(), "1234567890123".into()];
        for c in (1u32..0x80).chain([0xb0, 0xb9, 0x660, 0xff10]).filter_map(char::from_u32) {
            for digits in [MIN_CARD_DIGITS - 1, MIN_CARD_DIGITS] {
                for at in 0..9 {
                    let mut text: String = "7".repeat(digits);
                    text.insert(at.min(text.len()), c);
                    texts.push(text);
                    texts.push(format!("{c}{c}{}", "5".repeat(digits - 1)));
                }
            }
        }
        for text in &texts {
            assert_eq!(may_hold_card_number(text), naive(text), "{text:?}");
        }
    }

    #[test]
    fn keys() {
        assert!(is_sensitive_key("password", &[]));
        assert!(is_sensitive_key("New_Password1", &[]));
        assert!(!is_sensitive_key("password_hint", &[]));
        assert!(is_sensitive_key("pin", &["PIN".to_owned()]));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn cards() {
        assert!(is_card_number("4111111111111111"));
        assert!(is_card_number("378282246310005"));
        assert!(is_card_number("5555-5555-5555-4444"));
        assert!(!is_card_number("4111111111111112"));
        assert!(!is_card_number("411111111111")); // 12 digits
                                                  // A millisecond timestamp that happens to pass Luhn is not a card.
        assert!(luhn_valid("1700000000004"));
        assert!(!is_card_number("1700000000004"));
    }

    #[test]
    fn masking_inside_text() {
        assert_eq!(mask_card_numbers("card 4111 1111 1111 1111 ok").as_deref(), Some("card ******** ok"));
        assert_eq!(mask_card_numbers("4111111111111111").as_deref(), Some(MASK));
        assert_eq!(mask_card_numbers("a4111-1111-1111-1111,5555555555554444").as_deref(), Some("a********,********"));
        assert_eq!(mask_card_numbers("order 4111111111111112"), None);
        assert_eq!(mask_card_numbers("no digits"), None);
        assert_eq!(mask_card_numbers("1 2 3"), None);
    }
}

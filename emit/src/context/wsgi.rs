//! Request bytes made into the strings the LMS's Python stack sees (a WSGI server
//! under Django): header values are ISO-8859-1, the path is percent-decoded then UTF-8
//! with broken bytes percent-encoded again, and the request URL the course is looked
//! for in is rebuilt as Django's `build_absolute_uri` builds it.

/// Header bytes as WSGI gives them to Python: one character per byte (ISO-8859-1).
pub fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if ascii.is_ascii() => ascii.to_owned(),
        _ => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// `PATH_INFO` as Django has it: percent-escapes decoded (a `%` not followed by two
/// hex digits stays), then UTF-8, where each invalid byte sequence is written back
/// percent-encoded (`repercent_broken_unicode`).
pub(crate) fn path_info(raw_path: &str) -> String {
    let decoded = percent_decode(raw_path.as_bytes());
    let mut out = String::with_capacity(decoded.len());
    let mut rest = decoded.as_slice();
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(after.len());
                for b in &after[..bad] {
                    push_escaped(&mut out, *b);
                }
                rest = &after[bad..];
            }
        }
    }
}

/// `urllib.parse.unquote_to_bytes`.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    decode_escapes(s, false)
}

/// `urllib.parse.unquote_to_bytes(s.replace('+', ' '))`: a form field's bytes.
pub fn percent_decode_plus(s: &[u8]) -> Vec<u8> {
    decode_escapes(s, true)
}

/// `%XX` decoded (a `%` not followed by two hex digits kept) and, with `plus`, `+`
/// written as a space; a byte at a time, as a form's escapes come every few bytes.
fn decode_escapes(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        let decoded = match b {
            b'+' if plus => b' ',
            b'%' => match (s.get(i + 1).and_then(hex), s.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            _ => b,
        };
        out.push(decoded);
        i += 1;
    }
    out
}

fn hex(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).map(|d| d as u8)
}

/// The URL the LMS looks for the request's course in: `http://<Host><path>[?<query>]`,
/// the path escaped as Django's `escape_uri_path` and the query as its `iri_to_uri`
/// escape them.
pub(crate) fn request_url(host: &str, path_info: &str, raw_query: &[u8]) -> String {
    let mut url = String::with_capacity(8 + host.len() + path_info.len() + raw_query.len());
    url.push_str("http://");
    url.push_str(host);
    quote_into(&mut url, path_info, b"/:@&+$,-_.!~*'()");
    if !raw_query.is_empty() {
        url.push('?');
        quote_into(&mut url, &latin1(raw_query), b"/#%[]=:;$&()+,!?*@'~");
    }
    url
}

/// `urllib.parse.quote(s, safe)`: UTF-8 bytes, each one outside the unreserved set
/// and `safe` percent-encoded.
fn quote_into(out: &mut String, s: &str, safe: &[u8]) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.contains(&b) {
            out.push(char::from(b));
        } else {
            push_escaped(out, b);
        }
    }
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_latin1() {
        assert_eq!(latin1(b"Mozilla/5.0"), "Mozilla/5.0");
        assert_eq!(latin1(b"caf\xc3\xa9 \xe9"), "caf\u{c3}\u{a9} \u{e9}");
    }

    #[test]
    fn path_is_decoded_as_django_decodes_it() {
        assert_eq!(path_info("/courses/course-v1%3AedX%2BDemoX%2BDemo/x"), "/courses/course-v1:edX+DemoX+Demo/x");
        assert_eq!(path_info("/caf%C3%A9/%zz/%4"), "/café/%zz/%4");
        // A byte that is not UTF-8 is written back percent-encoded; the valid rest stays.
        assert_eq!(path_info("/a%FFb%E2%82c%E2%82%AC"), "/a%FFb%E2%82c€");
    }

    #[test]
    fn request_url_is_escaped_as_django_escapes_it() {
        assert_eq!(request_url("lms.example.com", "/courses/a b/é", b""), "http://lms.example.com/courses/a%20b/%C3%A9");
        assert_eq!(request_url("h", "/event", b"page=/courses/x&y=\xe9"), "http://h/event?page=/courses/x&y=%C3%A9");
        assert_eq!(request_url("h", "/a%FF", b""), "http://h/a%25FF");
    }
}

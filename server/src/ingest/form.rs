//! Form fields read as Django reads them for the LMS's `/event` view: a query string
//! or `application/x-www-form-urlencoded` body (`QueryDict`), or a
//! `multipart/form-data` body (`MultiPartParser`, what `navigator.sendBeacon(url,
//! formData)` sends). A field sent twice keeps its last value, as `QueryDict.get` does.
//!
//! Written here rather than taken from `serde_urlencoded` or `multer` because the
//! point is Django's leniency, byte for byte: ISO-8859-1 when a body is not UTF-8,
//! replacement characters for undecodable escapes, parts Django skips skipped.

/// Django's `DATA_UPLOAD_MAX_NUMBER_FIELDS`: more fields than this is a 400.
pub const MAX_FIELDS: usize = 1000;

/// The fields of one request, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The last value sent for `name`.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Builds fields from pairs (for bodies read another way, e.g. JSON).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        FormFields(pairs.into_iter().collect())
    }
}

/// Why a form could not be read; each is a 400 in Django too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("more than {MAX_FIELDS} form fields")]
    TooManyFields,
    #[error("form bodies must be UTF-8 (charset {0:?} given)")]
    NotUtf8Form(String),
    #[error("invalid multipart body: {0}")]
    Multipart(&'static str),
    #[error("the charset {0:?} is not supported for multipart fields")]
    UnsupportedCharset(String),
}

/// A `Content-Type` value: the type in lower case and its parameters (names in lower
/// case, quoted values unquoted), as Django's `parse_header_parameters` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    pub fn parse(value: &str) -> Self {
        let mut parts = split_params(value).into_iter();
        let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| {
                let (name, value) = p.split_once('=')?;
                let name = name.trim().to_ascii_lowercase();
                (!name.is_empty()).then(|| (name, unquote_param(value.trim())))
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `QueryDict(bytes)`: UTF-8, or ISO-8859-1 for the whole string when it is not;
/// then `parse_qsl` with blank values kept (`&` separates, `+` is a space, escapes
/// decoded as UTF-8 with replacement characters).
pub fn parse_urlencoded(bytes: &[u8]) -> Result<FormFields, FormError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect::<String>()),
    };
    if text.is_empty() {
        return Ok(FormFields::default());
    }
    if 1 + text.bytes().filter(|&b| b == b'&').count() > MAX_FIELDS {
        return Err(FormError::TooManyFields);
    }
    let fields = text
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (unquote_plus(name), unquote_plus(value))
        })
        .collect();
    Ok(FormFields(fields))
}

/// `urllib.parse.unquote(s.replace('+', ' '))`: each run of ASCII characters has its
/// escapes decoded to bytes and then read as UTF-8 with replacement characters;
/// characters outside ASCII are kept as they are.
fn unquote_plus(s: &str) -> String {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    // What browsers send: all ASCII, one run.
    if s.is_ascii() {
        return utf8_lossy_owned(crate::context::percent_decode_plus(s.as_bytes()));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii = rest.bytes().take_while(u8::is_ascii).count();
        let (run, after) = rest.split_at(ascii);
        out.push_str(&String::from_utf8_lossy(&crate::context::percent_decode_plus(run.as_bytes())));
        let other = after.find(|c: char| c.is_ascii()).unwrap_or(after.len());
        out.push_str(&after[..other]);
        rest = &after[other..];
    }
    out
}

/// Bytes as UTF-8, each invalid sequence a replacement character; no copy when valid.
fn utf8_lossy_owned(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Django's `MultiPartParser` on a whole body. `raw_content_type` is the header as
/// sent (Django wants it to start with `multipart/` in lower case and be ASCII).
pub fn parse_multipart(body: &[u8], raw_content_type: &str) -> Result<FormFields, FormError> {
    if !raw_content_type.starts_with("multipart/") || !raw_content_type.is_ascii() {
        return Err(FormError::Multipart("the Content-Type must start with multipart/"));
    }
    let content_type = ContentType::parse(raw_content_type);
    let boundary = content_type.param("boundary").unwrap_or("");
    let printable = |b: &u8| (b' '..=b'~').contains(b);
    let valid_boundary = (1..=201).contains(&boundary.len())
        && boundary.bytes().all(|b| printable(&b))
        && boundary.bytes().last().is_some_and(|b| b != b' ');
    if !valid_boundary {
        return Err(FormError::Multipart("invalid boundary"));
    }
    let decode = field_decoder(content_type.param("charset"))?;
    if body.is_empty() {
        return Ok(FormFields::default());
    }
    let separator = [b"--", boundary.as_bytes()].concat();
    let mut fields = Vec::new();
    let pieces = split_on(body, &separator);
    let mut counted = 0;
    for piece in pieces {
        let part = Part::read(piece);
        // Django counts every piece that is not a file, skipped ones included.
        if !part.as_ref().is_some_and(|p| p.is_file) {
            counted += 1;
            if counted > MAX_FIELDS + 2 {
                return Err(FormError::TooManyFields);
            }
        }
        let Some(part) = part.filter(|p| !p.is_file) else { continue };
        let Some(name) = part.name else { continue };
        let data = match part.transfer_encoding.as_deref() {
            Some("base64") => base64_lenient(part.data).unwrap_or_else(|| part.data.to_vec()),
            _ => part.data.to_vec(),
        };
        fields.push((decode(name.trim_ascii()), decode(&data)));
    }
    Ok(FormFields(fields))
}

/// The pieces between separators, each without the line break before the separator
/// (`BoundaryIter`: an optional `\n`, then an optional `\r`).
fn split_on<'a>(body: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while let Some(found) = find(&body[start..], separator) {
        let mut end = start + found;
        if end > start && body[end - 1] == b'\n' {
            end -= 1;
        }
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
        pieces.push(&body[start..end]);
        start += found + separator.len();
    }
    // An empty rest is no piece: Django's stream is exhausted there.
    if start < body.len() {
        pieces.push(&body[start..]);
    }
    pieces
}

fn split_lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(block);
    std::iter::from_fn(move || {
        let block = rest?;
        match find(block, b"\r\n") {
            Some(at) => {
                rest = Some(&block[at + 2..]);
                Some(&block[..at])
            }
            None => rest.take(),
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One part, as `parse_boundary_stream` reads it.
struct Part<'a> {
    name: Option<Vec<u8>>,
    /// A file goes to Django's `request.FILES`, never to the fields the view reads.
    is_file: bool,
    transfer_encoding: Option<String>,
    data: &'a [u8],
}

impl<'a> Part<'a> {
    /// `None` for a piece without a header block or without `Content-Disposition`
    /// (Django's RAW items, which it skips).
    fn read(piece: &'a [u8]) -> Option<Self> {
        let header_end = find(piece, b"\r\n\r\n")?;
        let mut part = Part { name: None, is_file: false, transfer_encoding: None, data: &piece[header_end + 4..] };
        let mut disposition = false;
        for line in split_lines(&piece[..header_end]) {
            // Django decodes each header line as UTF-8 and skips one that is not.
            let Ok(line) = std::str::from_utf8(line) else { continue };
            let header = ContentType::parse(line);
            let Some((name, value)) = header.mime.split_once(':') else { continue };
            match name {
                "content-disposition" => {
                    disposition = true;
                    part.is_file = header.param("filename").is_some_and(|f| !f.is_empty());
                    part.name = header.param("name").map(|n| n.as_bytes().to_vec());
                }
                "content-transfer-encoding" => part.transfer_encoding = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        disposition.then_some(part)
    }
}

/// How field bytes become text: the request's charset (Django's `force_str(data,
/// encoding, errors="replace")`), UTF-8 when none is given.
fn field_decoder(charset: Option<&str>) -> Result<fn(&[u8]) -> String, FormError> {
    let Some(charset) = charset else { return Ok(utf8_lossy) };
    let normalized = charset.trim().to_ascii_lowercase().replace('_', "-");
    Ok(match normalized.as_str() {
        "utf-8" | "utf8" | "u8" | "utf" => utf8_lossy,
        "iso-8859-1" | "iso8859-1" | "8859" | "cp819" | "latin" | "latin-1" | "latin1" | "l1" | "iso-ir-100" | "ibm819" => {
            |b: &[u8]| b.iter().map(|&c| char::from(c)).collect()
        }
        "ascii" | "us-ascii" | "646" | "us" => {
            |b: &[u8]| b.iter().map(|&c| if c.is_ascii() { char::from(c) } else { '\u{fffd}' }).collect()
        }
        _ => return Err(FormError::UnsupportedCharset(charset.to_owned())),
    })
}

fn utf8_lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `base64.b64decode(data)`: characters outside the alphabet are dropped first;
/// `None` where Python raises (bad padding), in which case Django keeps the raw bytes.
fn base64_lenient(data: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let kept: Vec<u8> = data.iter().copied().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')).collect();
    base64::engine::general_purpose::STANDARD.decode(kept).ok()
}

/// Splits a header value on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// `email.utils.unquote`: surrounding double quotes removed, `\\` and `\"` unescaped.
fn unquote_param(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.len() >= 2 => inner.replace("\\\\", "\\").replace("\\\"", "\""),
        _ => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &[u8]) -> FormFields {
        parse_urlencoded(body).unwrap()
    }

    #[test]
    fn urlencoded_as_querydict() {
        let f = form(b"event_type=a&event=1&event=2&page=&flag&&x=a+b%20c%2B");
        assert_eq!(f.last("event"), Some("2"));
        assert_eq!(f.last("page"), Some(""));
        assert_eq!(f.last("flag"), Some(""));
        assert_eq!(f.last("x"), Some("a b c+"));
        assert_eq!(f.last("missing"), None);
        // A body that is not UTF-8 is ISO-8859-1 as a whole; escapes stay UTF-8.
        assert_eq!(form(b"event_type=a\xff&v=%C3%A9").last("event_type"), Some("a\u{ff}"));
        assert_eq!(form(b"v=%C3%A9").last("v"), Some("é"));
        assert_eq!(form(b"v=%FF%C3").last("v"), Some("\u{fffd}\u{fffd}"));
        // A non-ASCII character splits the runs decoded together.
        assert_eq!(form("v=%C3é%A9".as_bytes()).last("v"), Some("\u{fffd}é\u{fffd}"));
        assert_eq!(form(b"v=%zz%4").last("v"), Some("%zz%4"));
    }

    /// Python's `unquote_to_bytes`, a byte at a time.
    fn unquote_to_bytes_model(s: &[u8]) -> Vec<u8> {
        let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
        let (mut out, mut i) = (Vec::new(), 0);
        while i < s.len() {
            match (s[i], hex(s.get(i + 1)), hex(s.get(i + 2))) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    /// `unquote(s.replace('+', ' '))` as Python writes it: the plus replaced first,
    /// then each ASCII run decoded as UTF-8 with replacement.
    fn unquote_plus_model(s: &str) -> String {
        let s = s.replace('+', " ");
        let mut out = String::new();
        let mut run = String::new();
        for c in s.chars() {
            if c.is_ascii() {
                run.push(c);
                continue;
            }
            out.push_str(&String::from_utf8_lossy(&unquote_to_bytes_model(run.as_bytes())));
            run.clear();
            out.push(c);
        }
        out + &String::from_utf8_lossy(&unquote_to_bytes_model(run.as_bytes()))
    }

    proptest::proptest! {
        #[test]
        fn fields_unquote_as_python_does(s in "([%+a-fA-F0-9zé\x7f\x00 ]|%[0-9a-fA-F]{2}|%[cC][0-9a-fA-F]%[89abAB][0-9a-fA-F]){0,24}") {
            proptest::prop_assert_eq!(unquote_plus(&s), unquote_plus_model(&s));
            let plain = s.replace('+', "");
            proptest::prop_assert_eq!(crate::context::percent_decode(plain.as_bytes()), unquote_to_bytes_model(plain.as_bytes()));
        }
    }

    #[test]
    fn too_many_fields() {
        let ok = vec!["a=1"; MAX_FIELDS].join("&");
        assert!(parse_urlencoded(ok.as_bytes()).is_ok());
        let over = format!("{ok}&");
        assert_eq!(parse_urlencoded(over.as_bytes()), Err(FormError::TooManyFields));
    }

    #[test]
    fn content_type_parameters() {
        let ct = ContentType::parse("Multipart/Form-Data; Boundary=\"a;b\"; charset=UTF-8");
        assert_eq!(ct.mime, "multipart/form-data");
        assert_eq!(ct.param("boundary"), Some("a;b"));
        assert_eq!(ct.param("charset"), Some("UTF-8"));
        assert_eq!(ContentType::parse(" text/plain ").mime, "text/plain");
    }

    #[test]
    fn multipart_as_django() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"event_type\"\r\n\r\nedx.test\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\n{\"a\": 1}\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"event\"; filename=\"x.json\"\r\nContent-Type: application/json\r\n\r\n{\"file\": 1}\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\" page \"\r\nContent-Transfer-Encoding: base64\r\n\r\naHR0cHM6Ly94\r\n\
--XyZ\r\nX-No-Disposition: 1\r\n\r\nskipped\r\n--XyZ--\r\n";
        let f = parse_multipart(body, "multipart/form-data; boundary=XyZ").unwrap();
        assert_eq!(f.last("event_type"), Some("edx.test"));
        assert_eq!(f.last("event"), Some("{\"a\": 1}"), "a file part is not a field");
        assert_eq!(f.last("page"), Some("https://x"));
        assert_eq!(f.0.len(), 3);
        let latin = parse_multipart(
            b"--b\r\nContent-Disposition: form-data; name=v\r\n\r\n\xe9\r\n--b--",
            "multipart/form-data; boundary=b; charset=latin-1",
        )
        .unwrap();
        assert_eq!(latin.last("v"), Some("é"));
        let utf8 =
            parse_multipart(b"--b\r\nContent-Disposition: form-data; name=v\r\n\r\n\xe9\r\n--b--", "multipart/form-data; boundary=b")
                .unwrap();
        assert_eq!(utf8.last("v"), Some("\u{fffd}"));
    }

    #[test]
    fn multipart_errors() {
        assert!(parse_multipart(b"", "Multipart/form-data; boundary=b").is_err());
        assert!(parse_multipart(b"", "multipart/form-data").is_err());
        assert!(parse_multipart(b"x", "multipart/form-data; boundary=b; charset=koi8-r").is_err());
        assert_eq!(parse_multipart(b"", "multipart/form-data; boundary=b"), Ok(FormFields::default()));
    }
}

//! JSON text without a JSON library: one validating pass over an event's JSON that
//! can also rewrite it (mask sensitive values, rename keys), shared by the browser SDK
//! and the server so both accept and refuse exactly the same text.
//!
//! What is valid here is RFC 8259 JSON with two deliberate choices, both Python's:
//! a `\uD800`–`\uDFFF` escape without its pair (a *lone surrogate*, which
//! `JSON.stringify` writes for a string cut in the middle of an emoji) is accepted and
//! kept as written, and nesting deeper than [`MAX_DEPTH`] is refused. The legacy
//! `/event` endpoint also takes what Python's `json.loads` takes on top
//! ([`Dialect::Python`]: `NaN`, `Infinity`, `-Infinity`).
//!
//! Nothing here panics: bounds are checked with `get`, so the browser build links no
//! panic formatting.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use crate::rules::sensitive::{is_card_number, is_sensitive_key, mask_card_numbers, may_hold_card_number, MASK};

/// How deep arrays and objects may nest inside an event's `data` (`{}` is depth 1).
/// Deeper data is refused with [`Invalid::TooDeep`] by the browser and the server alike.
pub const MAX_DEPTH: usize = 64;

/// The nesting allowed in text that holds data (an event, a batch, a log record):
/// room for the containers around `data`.
pub const MAX_CONTAINER_DEPTH: usize = MAX_DEPTH + 8;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Which JSON is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// RFC 8259 (what `JSON.stringify` writes), lone surrogate escapes allowed.
    #[default]
    Strict,
    /// Python's `json.loads`: also `NaN`, `Infinity` and `-Infinity`.
    Python,
}

/// Why JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON at byte `at` (a raw control character in a string, a bad escape, a
    /// bad number, a missing bracket, trailing text, ...).
    Syntax { at: usize },
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl Invalid {
    /// A stable reason code for replies and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Invalid::Syntax { .. } => "invalid_json",
            Invalid::TooDeep => "too_deep",
        }
    }
}

/// A string literal found by the scanner: its span (quotes included) and whether it
/// holds escapes (when it does not, the text between the quotes is the string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrSpan {
    pub start: usize,
    pub end: usize,
    pub escaped: bool,
}

impl StrSpan {
    /// The text between the quotes, as written.
    pub fn inner<'t>(&self, src: &'t str) -> &'t str {
        sub(src, self.start + 1, self.end.saturating_sub(1))
    }

    /// The string's value; a lone surrogate becomes U+FFFD.
    pub fn decode<'t>(&self, src: &'t str) -> Cow<'t, str> {
        let inner = self.inner(src);
        if self.escaped {
            Cow::Owned(decode_lossy(inner))
        } else {
            Cow::Borrowed(inner)
        }
    }
}

// Slicing helpers that cannot panic (see the module documentation).

/// `&s[a..b]`, or `""` when out of range.
pub fn sub(s: &str, a: usize, b: usize) -> &str {
    s.get(a..b).unwrap_or("")
}

/// `&s[a..]`, or `""` when out of range.
pub fn tail(s: &str, a: usize) -> &str {
    s.get(a..).unwrap_or("")
}

/// A cursor over JSON text that checks what it passes.
pub struct Scanner<'t> {
    src: &'t str,
    pos: usize,
    dialect: Dialect,
    max_depth: usize,
    /// Whitespace outside strings was passed.
    spaced: bool,
}

impl<'t> Scanner<'t> {
    /// A scanner for data: nesting deeper than [`MAX_DEPTH`] is refused.
    pub fn new(src: &'t str, dialect: Dialect) -> Self {
        Scanner { src, pos: 0, dialect, max_depth: MAX_DEPTH, spaced: false }
    }

    /// A scanner for text that holds data ([`MAX_CONTAINER_DEPTH`]).
    pub fn containing(src: &'t str, dialect: Dialect) -> Self {
        Scanner { src, pos: 0, dialect, max_depth: MAX_CONTAINER_DEPTH, spaced: false }
    }

    /// The text being scanned.
    pub fn src(&self) -> &'t str {
        self.src
    }

    /// The byte offset of the cursor.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn bytes(&self) -> &'t [u8] {
        self.src.as_bytes()
    }

    /// Moves the cursor to `pos` (past a value the caller located itself).
    pub fn skip_to(&mut self, pos: usize) {
        self.pos = pos.min(self.src.len());
    }

    /// The byte at the cursor.
    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn error(&self) -> Invalid {
        Invalid::Syntax { at: self.pos }
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    pub fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
            self.spaced = true;
        }
    }

    /// Skips whitespace, then takes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips whitespace, then requires `b`.
    pub fn expect(&mut self, b: u8) -> Result<(), Invalid> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos >= self.src.len()
    }

    /// A string literal at the cursor (after whitespace), checked: no raw control
    /// character, only JSON's escapes, four hex digits after `\u`.
    pub fn string(&mut self) -> Result<StrSpan, Invalid> {
        let start = self.string_start()?;
        self.string_from(start, start + 1)
    }

    /// [`Scanner::string`], and whether the string is plain: no escapes and all
    /// printable ASCII, so JSON and Python's `ensure_ascii` both write it as it is.
    /// One pass either way.
    pub fn marked_string(&mut self) -> Result<(StrSpan, bool), Invalid> {
        let start = self.string_start()?;
        let bytes = self.bytes();
        let plain_end = find_not_plain(bytes, start + 1);
        if bytes.get(plain_end) == Some(&b'"') {
            self.pos = plain_end + 1;
            return Ok((StrSpan { start, end: plain_end + 1, escaped: false }, true));
        }
        Ok((self.string_from(start, plain_end)?, false))
    }

    /// Where the string literal at the cursor (after whitespace) opens (inlined: the
    /// browser build is smaller so).
    #[inline(always)]
    fn string_start(&mut self) -> Result<usize, Invalid> {
        self.ws();
        if self.bytes().get(self.pos) != Some(&b'"') {
            return Err(self.error());
        }
        Ok(self.pos)
    }

    /// The rest of the string literal opened at `start`, from `i`, where the text
    /// before `i` holds no quote, backslash or control character.
    fn string_from(&mut self, start: usize, mut i: usize) -> Result<StrSpan, Invalid> {
        let bytes = self.bytes();
        let mut escaped = false;
        loop {
            i = find_special(bytes, i);
            match bytes.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.error());
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = bytes.get(i + 2..i + 6).unwrap_or(&[]);
                            if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
                                self.pos = i;
                                return Err(self.error());
                            }
                            i += 6;
                        }
                        _ => {
                            self.pos = i;
                            return Err(self.error());
                        }
                    }
                }
                Some(&b) if b < 0x20 => {
                    self.pos = i;
                    return Err(self.error());
                }
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        Ok(StrSpan { start, end: i + 1, escaped })
    }

    /// A number at the cursor: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, and
    /// in [`Dialect::Python`] also `NaN`, `Infinity`, `-Infinity`. Returns its span.
    fn number(&mut self) -> Result<(usize, usize), Invalid> {
        let start = self.pos;
        let bytes = self.bytes();
        let mut i = start;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        if self.dialect == Dialect::Python && bytes.get(i..i + 8) == Some(b"Infinity") {
            self.pos = i + 8;
            return Ok((start, self.pos));
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => {
                self.pos = i;
                return Err(self.error());
            }
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error());
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                self.pos = i;
                return Err(self.error());
            }
        }
        self.pos = i;
        Ok((start, i))
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.bytes().get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// Checks and passes one value of any kind (after whitespace); `depth` is the
    /// nesting of the value's container (0 for a top-level value). Returns its span.
    pub fn value(&mut self, depth: usize) -> Result<(usize, usize), Invalid> {
        self.ws();
        let start = self.pos;
        match self.peek() {
            Some(b'{') => self.object(depth + 1, &mut |s, _, d| s.value(d).map(drop))?,
            Some(b'[') => self.array(depth + 1, &mut |s, d| s.value(d).map(drop))?,
            Some(b'"') => {
                self.string()?;
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => return self.word(),
        }
        Ok((start, self.pos))
    }

    /// Passes one value (after whitespace) by its quotes and brackets without checking
    /// what is between them: for text this crate checked when it wrote it (a log
    /// record), where checking again was most of reading it. Returns its span; text
    /// that ends inside the value, or a stray closing bracket, is an error.
    pub fn pass_value(&mut self) -> Result<(usize, usize), Invalid> {
        self.ws();
        let (start, bytes) = (self.pos, self.bytes());
        let (mut i, mut depth) = (start, 0usize);
        loop {
            match bytes.get(i) {
                Some(b'"') => {
                    let Some((end, _)) = string_end(bytes, i) else { break };
                    i = end;
                    if depth == 0 {
                        self.pos = i;
                        return Ok((start, i));
                    }
                    continue;
                }
                Some(b'{' | b'[') => depth += 1,
                Some(b'}' | b']') if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        return Ok((start, i + 1));
                    }
                }
                // A scalar ends where its container goes on.
                Some(b',' | b':' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') | None if depth == 0 => {
                    if i == start {
                        break;
                    }
                    self.pos = i;
                    return Ok((start, i));
                }
                None => break,
                Some(_) => {}
            }
            i += 1;
        }
        self.pos = i;
        Err(self.error())
    }

    /// Checks and passes `true`, `false`, `null` (and in Python's dialect `NaN` and
    /// `Infinity`) at the cursor; anything else is an error. Returns its span.
    pub fn word(&mut self) -> Result<(usize, usize), Invalid> {
        let start = self.pos;
        match self.peek() {
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'N') if self.dialect == Dialect::Python => self.literal(b"NaN")?,
            Some(b'I') if self.dialect == Dialect::Python => self.literal(b"Infinity")?,
            _ => return Err(self.error()),
        }
        Ok((start, self.pos))
    }

    /// Checks an object at the cursor (`depth` is its own nesting, 1 for a top-level
    /// object), calling `member` with each key and the scanner positioned on the value;
    /// `member` must pass the value (e.g. with [`Scanner::value`]).
    pub fn object(
        &mut self,
        depth: usize,
        member: &mut dyn FnMut(&mut Self, StrSpan, usize) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if depth > self.max_depth {
            return Err(Invalid::TooDeep);
        }
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key, depth)?;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}');
        }
    }

    /// Checks an array at the cursor, calling `item` with the scanner positioned on
    /// each item; `item` must pass the item.
    pub fn array(&mut self, depth: usize, item: &mut dyn FnMut(&mut Self, usize) -> Result<(), Invalid>) -> Result<(), Invalid> {
        if depth > self.max_depth {
            return Err(Invalid::TooDeep);
        }
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            item(self, depth)?;
            if self.eat(b',') {
                continue;
            }
            return self.expect(b']');
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight bytes at `i` as a word, if there are eight.
fn word(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk = bytes.get(i..i + 8)?;
    <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes)
}

/// The high bit of each byte of `w` that is below `n` (`n` ≤ 128); exact up to the
/// first such byte, which is all the callers look at.
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
}

/// The offset of the first byte at or after `i` that ends a run of plain string
/// characters: `"`, `\` or a control character (or the length). Eight bytes at a time.
pub fn find_special(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(bytes, i) {
        let found = below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) | below(w, 0x20);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string literal whose opening quote is at
/// `i`, and whether it holds escapes; escapes are passed, not checked. `None` when the
/// text ends first.
pub fn string_end(bytes: &[u8], i: usize) -> Option<(usize, bool)> {
    let (mut j, mut escaped) = (i + 1, false);
    loop {
        j = find_special(bytes, j);
        match bytes.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
}

/// The high bit of each byte of `w` that is `"`, `\\`, a control character or not
/// ASCII; exact up to the first such byte.
fn not_plain(w: u64) -> u64 {
    below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1) | below(w, 0x20) | ((w.wrapping_add(ONES) | w) & HIGH)
}

/// The offset of the first byte at or after `i` that is not printable ASCII or is `"`
/// or `\` (or the length): where a run that JSON and Python's `ensure_ascii` both
/// write as it is ends. Eight bytes at a time.
pub fn find_not_plain(bytes: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(bytes, i) {
        let found = not_plain(w);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if !matches!(b, b' '..=b'~') || b == b'"' || b == b'\\' {
            return i;
        }
        i += 1;
    }
    i
}

/// Whether every byte is printable ASCII other than `"` and `\`: a string that JSON and
/// Python's `ensure_ascii` both write as it is, between quotes. One pass, eight bytes
/// at a time (the last word overlapping the one before; a string shorter than a word
/// byte by byte).
pub fn is_plain_ascii(bytes: &[u8]) -> bool {
    let Some(last) = bytes.len().checked_sub(8).and_then(|at| word(bytes, at)) else {
        return bytes.iter().all(|&b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\');
    };
    let mut i = 0;
    while let Some(w) = word(bytes, i) {
        if not_plain(w) != 0 {
            return false;
        }
        i += 8;
    }
    not_plain(last) == 0
}

/// Whether every byte is printable ASCII (`' '` to `'~'`): text that Python's
/// `ensure_ascii` writes as it is.
pub fn is_printable_ascii(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(w) = word(bytes, i) {
        if below(w, 0x20) | ((w.wrapping_add(ONES) | w) & HIGH) != 0 {
            return false;
        }
        i += 8;
    }
    bytes.get(i..).unwrap_or(&[]).iter().all(|b| (b' '..=b'~').contains(b))
}

/// Checks that `text` is exactly one JSON value (whitespace around it allowed).
pub fn validate(text: &str, dialect: Dialect) -> Result<(), Invalid> {
    let mut s = Scanner::new(text, dialect);
    s.value(0)?;
    if s.at_end() {
        Ok(())
    } else {
        Err(Invalid::Syntax { at: s.pos() })
    }
}

/// An object member: its key, and its value's byte span.
pub type Member = (StrSpan, (usize, usize));

/// The members of the JSON object `text` (an event, a context: text that holds data,
/// so [`MAX_CONTAINER_DEPTH`] applies) as (key, value span) pairs, in order, without
/// looking inside the values beyond checking them.
pub fn object_members(text: &str, dialect: Dialect) -> Result<Vec<Member>, Invalid> {
    let mut s = Scanner::containing(text, dialect);
    let mut members = Vec::new();
    s.object(1, &mut |s, key, depth| {
        let span = s.value(depth)?;
        members.push((key, span));
        Ok(())
    })?;
    if !s.at_end() {
        return Err(Invalid::Syntax { at: s.pos() });
    }
    Ok(members)
}

/// `text` without whitespace outside strings; `text` must be checked JSON. Borrowed
/// when there was none (`JSON.stringify` output).
pub fn compact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t')) {
        return Cow::Borrowed(text);
    }
    // Whitespace inside strings is content (a user agent has spaces): the copy is made
    // only when whitespace outside them turns up.
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // Skip the whole literal: its whitespace is content.
                let mut j = i + 1;
                loop {
                    j = find_special(bytes, j);
                    match bytes.get(j) {
                        Some(b'\\') => j += 2,
                        Some(b'"') | None => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 1;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.get_or_insert_with(|| String::with_capacity(text.len())).push_str(sub(text, copied, i));
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(tail(text, copied));
            Cow::Owned(out)
        }
    }
}

/// Appends `s` as a JSON string literal, escaped as `JSON.stringify` escapes it:
/// `"`, `\` and control characters; everything else as it is.
pub fn push_str_literal(out: &mut String, s: &str) {
    out.push('"');
    push_str_escaped(out, s);
    out.push('"');
}

/// Appends the inside of a JSON string literal for `s` (see [`push_str_literal`]).
pub fn push_str_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    // Runs without anything to escape are found eight bytes at a time.
    loop {
        let at = find_special(bytes, copied);
        out.push_str(sub(s, copied, at));
        let Some(&b) = bytes.get(at) else { return };
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            _ => "",
        };
        if esc.is_empty() {
            push_u_escape(out, u16::from(b));
        } else {
            out.push_str(esc);
        }
        copied = at + 1;
    }
}

/// Appends `\uXXXX` (lowercase hex) for a UTF-16 code unit.
pub fn push_u_escape(out: &mut String, unit: u16) {
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xF)]));
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

/// One piece of a decoded JSON string: a character, or a UTF-16 surrogate without
/// its pair, which no Rust `char` can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Char(char),
    Lone(u16),
}

/// A run of the inside of a JSON string literal, as [`pieces`] splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'t> {
    /// Text without escapes, as it is.
    Plain(&'t str),
    /// One escape, decoded (a surrogate pair as one character).
    Escape(Unit),
}

/// The inside of a checked JSON string literal as runs of plain text and decoded
/// escapes (surrogate pairs joined; a lone surrogate as [`Unit::Lone`]); it stops at
/// an escape that is not JSON's. One decoder, whatever its
/// callers collect (the browser build had a copy of it per caller).
pub fn pieces(inner: &str) -> Pieces<'_> {
    Pieces { rest: inner }
}

/// The iterator of [`pieces`].
pub struct Pieces<'t> {
    rest: &'t str,
}

impl<'t> Iterator for Pieces<'t> {
    type Item = Piece<'t>;

    #[inline]
    fn next(&mut self) -> Option<Piece<'t>> {
        let rest = self.rest;
        let b = rest.as_bytes();
        match b.first() {
            None => return None,
            Some(b'\\') => {}
            Some(_) => {
                let pos = b.iter().position(|&b| b == b'\\').unwrap_or(b.len());
                self.rest = tail(rest, pos);
                return Some(Piece::Plain(sub(rest, 0, pos)));
            }
        }
        let simple = match b.get(1) {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            self.rest = tail(rest, 2);
            return Some(Piece::Escape(Unit::Char(c)));
        }
        // `\uXXXX` with its hex digits at `at`.
        let unit = |at: usize| -> Option<u16> {
            let h = b.get(at..at + 4)?;
            if b.get(at - 2) != Some(&b'\\') || b.get(at - 1) != Some(&b'u') {
                return None;
            }
            Some((hex_val(h[0])? << 12) | (hex_val(h[1])? << 8) | (hex_val(h[2])? << 4) | hex_val(h[3])?)
        };
        let Some(first) = unit(2) else {
            // Not a checked literal: stop rather than guess.
            self.rest = "";
            return None;
        };
        if (0xD800..0xDC00).contains(&first) {
            if let Some(second) = unit(8).filter(|u| (0xDC00..0xE000).contains(u)) {
                let c = 0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00);
                self.rest = tail(rest, 12);
                return Some(Piece::Escape(char::from_u32(c).map_or(Unit::Lone(first), Unit::Char)));
            }
        }
        self.rest = tail(rest, 6);
        Some(Piece::Escape(char::from_u32(u32::from(first)).map_or(Unit::Lone(first), Unit::Char)))
    }
}

/// The value of the inside of a checked JSON string literal; a lone surrogate becomes
/// U+FFFD (where a Rust string is needed: names to match, keys to compare).
pub fn decode_lossy(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    for piece in pieces(inner) {
        match piece {
            Piece::Plain(run) => out.push_str(run),
            Piece::Escape(Unit::Char(c)) => out.push(c),
            Piece::Escape(Unit::Lone(_)) => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// The UTF-16 code units of the inside of a checked JSON string literal.
pub fn decode_utf16(inner: &str) -> Vec<u16> {
    let mut out = Vec::with_capacity(inner.len());
    for piece in pieces(inner) {
        match piece {
            Piece::Plain(run) => run.encode_utf16().for_each(|u| out.push(u)),
            Piece::Escape(Unit::Char(c)) => out.extend_from_slice(c.encode_utf16(&mut [0; 2])),
            Piece::Escape(Unit::Lone(unit)) => out.push(unit),
        }
    }
    out
}

/// Renames keys while [`rewrite`] passes them (the browser SDK snake-cases the keys of
/// tracking-log events with it).
pub trait KeyRename {
    /// The new key for the key whose literal inside is `inner` (`escaped` when it holds
    /// escapes), or `None` to keep it.
    fn rename(&self, inner: &str, escaped: bool) -> Option<String>;
}

/// What [`rewrite`] does besides checking.
pub struct Rules<'a> {
    /// Mask sensitive values: password-like keys and card numbers.
    pub scrub: bool,
    /// Password-like keys beyond the built-in ones.
    pub extra_sensitive_keys: &'a [String],
    /// Renames every key, at every depth, before it is checked for sensitivity.
    pub rename: Option<&'a dyn KeyRename>,
    pub dialect: Dialect,
    /// Writes Python's `NaN`, `Infinity` and `-Infinity` as `null` (for destinations
    /// that take only JSON).
    pub null_nonfinite: bool,
}

impl Default for Rules<'_> {
    fn default() -> Self {
        Rules { scrub: true, extra_sensitive_keys: &[], rename: None, dialect: Dialect::Strict, null_nonfinite: false }
    }
}

/// Checks `src` as one JSON value (see the module documentation) and applies `rules`:
/// the value of a password-like key becomes `"********"` whatever it was, card numbers
/// inside strings are masked, a number that is itself a card number becomes
/// `"********"`, and keys are renamed. Returns the input itself when nothing changed,
/// which is the common case.
pub fn rewrite<'t>(src: &'t str, rules: &Rules<'_>) -> Result<Cow<'t, str>, Invalid> {
    rewrite_spaced(src, rules, true).map(|(text, _, _)| text)
}

/// [`rewrite`], then [`compact`] when the text has whitespace outside strings (the
/// rewrite's pass tells; `JSON.stringify` writes none).
pub fn rewrite_compact<'t>(src: &'t str, rules: &Rules<'_>) -> Result<Cow<'t, str>, Invalid> {
    rewrite_spaced(src, rules, true).map(compacted)
}

/// [`rewrite_compact`] of the one value at the start of `src`, where more text may
/// follow it (a member of an object being read): the value's text, and the offset in
/// `src` where the value ends.
pub fn rewrite_compact_prefix<'t>(src: &'t str, rules: &Rules<'_>) -> Result<(Cow<'t, str>, usize), Invalid> {
    let (text, spaced, end) = rewrite_spaced(src, rules, false)?;
    Ok((compacted((text, spaced, end)), end))
}

fn compacted<'t>((text, spaced, _): (Cow<'t, str>, bool, usize)) -> Cow<'t, str> {
    match (text, spaced) {
        (text, false) => text,
        (Cow::Borrowed(text), true) => compact(text),
        (Cow::Owned(text), true) => Cow::Owned(compact(&text).into_owned()),
    }
}

/// [`rewrite`] of the value at the start of `src` (all of `src` when `whole`), whether
/// whitespace outside strings was passed, and where the value ends.
fn rewrite_spaced<'t>(src: &'t str, rules: &Rules<'_>, whole: bool) -> Result<(Cow<'t, str>, bool, usize), Invalid> {
    let mut w = Rewriter { s: Scanner::new(src, rules.dialect), out: None, copied: 0, passive: false, rules };
    w.value(0)?;
    if whole && !w.s.at_end() {
        return Err(Invalid::Syntax { at: w.s.pos() });
    }
    let end = if whole { src.len() } else { w.s.pos() };
    let text = match w.out {
        None => Cow::Borrowed(sub(src, 0, end)),
        Some(mut out) => {
            out.push_str(sub(src, w.copied, end));
            Cow::Owned(out)
        }
    };
    Ok((text, w.s.spaced, end))
}

struct Rewriter<'t, 'r> {
    s: Scanner<'t>,
    out: Option<String>,
    copied: usize,
    /// Inside a value that is replaced whole: check, do not rewrite.
    passive: bool,
    rules: &'r Rules<'r>,
}

impl Rewriter<'_, '_> {
    /// Replaces `src[start..end]` with `text` in the output.
    fn replace(&mut self, start: usize, end: usize, text: &str) {
        if self.passive {
            return;
        }
        let src = self.s.src();
        let out = self.out.get_or_insert_with(|| String::with_capacity(src.len() + 16));
        out.push_str(sub(src, self.copied, start));
        out.push_str(text);
        self.copied = end;
    }

    fn value(&mut self, depth: usize) -> Result<(), Invalid> {
        self.s.ws();
        match self.s.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => {
                let span = self.s.string()?;
                if self.rules.scrub {
                    self.mask_string(span);
                }
                Ok(())
            }
            Some(b'N' | b'I') if self.rules.null_nonfinite => {
                let (start, end) = self.s.word()?;
                self.replace(start, end, "null");
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let (start, end) = self.s.number()?;
                let token = sub(self.s.src(), start, end);
                if self.rules.null_nonfinite && token.ends_with('y') {
                    self.replace(start, end, "null");
                    return Ok(());
                }
                if self.rules.scrub && token.len() >= 13 && token.bytes().all(|b| b.is_ascii_digit()) && is_card_number(token) {
                    self.replace(start, end, "\"********\"");
                }
                Ok(())
            }
            // The rest are words (the containers, strings and numbers are above).
            _ => self.s.word().map(drop),
        }
    }

    fn mask_string(&mut self, span: StrSpan) {
        let inner = span.inner(self.s.src());
        if !may_hold_card_number(inner) {
            return;
        }
        if !span.escaped {
            if let Some(masked) = mask_card_numbers(inner) {
                self.replace(span.start + 1, span.end - 1, &masked);
            }
            return;
        }
        let text = decode_lossy(inner);
        if let Some(masked) = mask_card_numbers(&text) {
            // Only strings with a card number are rebuilt; a lone surrogate in one
            // becomes U+FFFD.
            let mut lit = String::with_capacity(masked.len() + 2);
            push_str_literal(&mut lit, &masked);
            self.replace(span.start, span.end, &lit);
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        self.s.expect(b'[')?;
        if self.s.eat(b']') {
            return Ok(());
        }
        loop {
            self.value(depth)?;
            if self.s.eat(b',') {
                continue;
            }
            return self.s.expect(b']');
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid::TooDeep);
        }
        self.s.expect(b'{')?;
        if self.s.eat(b'}') {
            return Ok(());
        }
        loop {
            let key = self.s.string()?;
            let sensitive = self.key(key);
            self.s.expect(b':')?;
            self.s.ws();
            let value_start = self.s.pos();
            if sensitive && !self.passive {
                // Check the value without rewriting inside it, then replace it whole.
                self.passive = true;
                let checked = self.value(depth);
                self.passive = false;
                checked?;
                // `null` holds no secret: it stays, as the scrubber has always kept it.
                if sub(self.s.src(), value_start, self.s.pos()) != "null" {
                    self.replace(value_start, self.s.pos(), "\"********\"");
                }
            } else {
                self.value(depth)?;
            }
            if self.s.eat(b',') {
                continue;
            }
            return self.s.expect(b'}');
        }
    }

    /// Renames the key at `span` (when asked) and says whether its value is masked.
    fn key(&mut self, span: StrSpan) -> bool {
        let inner = span.inner(self.s.src());
        let renamed = self.rules.rename.and_then(|r| r.rename(inner, span.escaped));
        if !self.rules.scrub {
            if let Some(new) = renamed {
                let mut lit = String::with_capacity(new.len() + 2);
                push_str_literal(&mut lit, &new);
                self.replace(span.start, span.end, &lit);
            }
            return false;
        }
        let extra = self.rules.extra_sensitive_keys;
        match renamed {
            Some(new) => {
                let sensitive = is_sensitive_key(&new, extra);
                let mut lit = String::with_capacity(new.len() + 2);
                push_str_literal(&mut lit, &new);
                self.replace(span.start, span.end, &lit);
                sensitive
            }
            None if !span.escaped => is_sensitive_key(inner, extra),
            None => is_sensitive_key(&decode_lossy(inner), extra),
        }
    }
}

// The mask the rewriter writes is the scrubber's.
const _: () = assert!(MASK.len() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;
    use alloc::string::ToString;
    use alloc::vec;

    fn check(text: &str) -> Result<(), Invalid> {
        validate(text, Dialect::Strict)
    }

    #[test]
    fn strict_json() {
        for ok in [
            "{}",
            "[]",
            "0",
            "-0",
            "1.5e-3",
            "1E+5",
            "\"a\"",
            "true",
            "null",
            " {\"a\" : [1, {\"b\":null}] } ",
            "\"\\ud83d\"",
            "\"\\uDE00x\"",
            "\"\\u00e9\\n\\/\"",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "\"\u{1}\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a",
            "{} {}",
            "tru",
            "[1 2]",
            "{1:2}",
            "'a'",
        ] {
            assert!(matches!(check(bad), Err(Invalid::Syntax { .. })), "{bad:?}");
        }
    }

    #[test]
    fn python_dialect() {
        for ok in ["NaN", "Infinity", "-Infinity", "[NaN, -Infinity]"] {
            assert_eq!(validate(ok, Dialect::Python), Ok(()), "{ok}");
        }
        assert!(validate("-NaN", Dialect::Python).is_err());
        assert!(validate("infinity", Dialect::Python).is_err());
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(check(&nested(MAX_DEPTH + 1)), Err(Invalid::TooDeep));
        let objects = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
        assert_eq!(check(&objects(MAX_DEPTH)), Ok(()));
        assert_eq!(check(&objects(MAX_DEPTH + 1)), Err(Invalid::TooDeep));
        // A huge depth is refused without exhausting the stack.
        assert_eq!(check(&nested(100_000)), Err(Invalid::TooDeep));
    }

    #[test]
    fn members() {
        let text = r#" {"a": 1, "b\"c": {"x": [1, 2]}, "d": "\ud83d"} "#;
        let m = object_members(text, Dialect::Strict).unwrap();
        let keys: Vec<String> = m.iter().map(|(k, _)| k.decode(text).into_owned()).collect();
        assert_eq!(keys, ["a", "b\"c", "d"]);
        let values: Vec<&str> = m.iter().map(|(_, (a, b))| sub(text, *a, *b)).collect();
        assert_eq!(values, ["1", r#"{"x": [1, 2]}"#, r#""\ud83d""#]);
        assert!(object_members("[1]", Dialect::Strict).is_err());
    }

    #[test]
    fn decoding() {
        fn all(inner: &str) -> Vec<Piece<'_>> {
            pieces(inner).collect()
        }
        assert_eq!(all(r"a\u00e9"), [Piece::Plain("a"), Piece::Escape(Unit::Char('é'))]);
        assert_eq!(all(r"\ud83d\ude00"), [Piece::Escape(Unit::Char('😀'))]);
        assert_eq!(all(r"\ud83dx"), [Piece::Escape(Unit::Lone(0xD83D)), Piece::Plain("x")]);
        assert_eq!(all(r"\ude00\ud83d"), [Piece::Escape(Unit::Lone(0xDE00)), Piece::Escape(Unit::Lone(0xD83D))]);
        assert_eq!(
            all(r#"ab\"cd\\"#),
            [Piece::Plain("ab"), Piece::Escape(Unit::Char('"')), Piece::Plain("cd"), Piece::Escape(Unit::Char('\\'))]
        );
        // An escape that is not JSON's ends the pieces (the text was not checked).
        assert_eq!(all(r"a\qb"), [Piece::Plain("a")]);
        assert_eq!(all(""), []);
        assert_eq!(decode_lossy(r#"\"q\"\n\/"#), "\"q\"\n/");
        assert_eq!(decode_lossy(r"\ud83d!"), "\u{FFFD}!");
        assert_eq!(decode_utf16(r"\ud83d😀"), [0xD83D, 0xD83D, 0xDE00]);
    }

    fn run(src: &str, rename: Option<&dyn KeyRename>) -> String {
        let extra = vec!["pin".to_owned()];
        let rules = Rules { scrub: true, extra_sensitive_keys: &extra, rename, dialect: Dialect::Strict, null_nonfinite: false };
        rewrite(src, &rules).unwrap().into_owned()
    }

    struct Upper;
    impl KeyRename for Upper {
        fn rename(&self, inner: &str, _: bool) -> Option<String> {
            (inner.bytes().any(|b| b.is_ascii_lowercase())).then(|| inner.to_ascii_uppercase())
        }
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        let src = r#"{"course_id":"course-v1:a+b+c","n":[1,2.5e3,{"x_1":null}],"t":true,"s":"\ud83d"}"#;
        assert!(matches!(rewrite(src, &Rules::default()), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn scrubbing() {
        assert_eq!(
            run(
                r#"{"password":"hunter2","user":{"newPassword":{"x":1},"PIN":1234},"card":"4111 1111 1111 1111","n":4111111111111111,"ts":1700000000006}"#,
                None
            ),
            r#"{"password":"********","user":{"newPassword":"********","PIN":"********"},"card":"********","n":"********","ts":1700000000006}"#
        );
        assert_eq!(run(r#"["a\n4111111111111111"]"#, None), r#"["a\n********"]"#);
        assert_eq!(run(r#"{"pass\u0077ord": [1, 2]}"#, None), r#"{"pass\u0077ord": "********"}"#);
        assert_eq!(run(r#"{"password":null}"#, None), r#"{"password":null}"#);
        // Masking is idempotent: a scrubbed text passes unchanged.
        let once = run(r#"{"password":"x","c":"4111111111111111"}"#, None);
        assert_eq!(run(&once, None), once);
    }

    #[test]
    fn renaming_then_scrubbing() {
        assert_eq!(run(r#"{"a":{"b":1}}"#, Some(&Upper)), r#"{"A":{"B":1}}"#);
        assert_eq!(run(r#"{"password":"x"}"#, Some(&Upper)), r#"{"PASSWORD":"********"}"#);
    }

    #[test]
    fn nonfinite_numbers_to_null() {
        let rules = Rules { scrub: false, dialect: Dialect::Python, null_nonfinite: true, ..Rules::default() };
        assert_eq!(rewrite("[NaN,-Infinity,{\"a\":Infinity},1e5]", &rules).unwrap(), "[null,null,{\"a\":null},1e5]");
        assert!(matches!(rewrite("[1,2]", &rules), Ok(Cow::Borrowed(_))));
        // Compacted exactly when there is whitespace outside strings.
        let plain = Rules::default();
        assert!(matches!(rewrite_compact(r#"{"ua":"Mozilla/5.0 (X11; Linux)"}"#, &plain), Ok(Cow::Borrowed(_))));
        for (spaced, compacted) in [
            (" {\"a\": [1, 2]} ", r#"{"a":[1,2]}"#),
            ("{\"a\":1}\n", r#"{"a":1}"#),
            ("{\"password\" : \"x y\"}", r#"{"password":"********"}"#),
            ("{\"card\": \"4111 1111 1111 1111\", \"b\":\"c d\"}", r#"{"card":"********","b":"c d"}"#),
        ] {
            assert_eq!(rewrite_compact(spaced, &plain).unwrap(), compacted, "{spaced}");
            assert_eq!(rewrite_compact(spaced, &plain).unwrap(), compact(&rewrite(spaced, &plain).unwrap()));
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let rules = Rules::default();
        assert!(matches!(rewrite("{", &rules), Err(Invalid::Syntax { .. })));
        assert_eq!(rewrite(&"[".repeat(600), &rules), Err(Invalid::TooDeep));
        assert_eq!(rewrite("{\"a\":\"\u{7}\"}", &rules), Err(Invalid::Syntax { at: 6 }));
        assert_eq!(Invalid::TooDeep.code(), "too_deep");
        assert_eq!(Invalid::Syntax { at: 0 }.code().to_string(), "invalid_json");
    }

    #[test]
    fn compaction_keeps_string_content() {
        assert_eq!(compact(r#" { "a b" : [1 , "x\" y"] }	"#), r#"{"a b":[1,"x\" y"]}"#);
        assert!(matches!(compact(r#"{"a":"b c"}"#), Cow::Borrowed(_)), "a space inside a string needs a look, no copy");
        assert!(matches!(compact(r#"{"a":"b c", "d":1}"#), Cow::Owned(_)));
        assert_eq!(compact(r#"{"a":"b c", "d":"\" e"}"#), r#"{"a":"b c","d":"\" e"}"#);
        assert_eq!(compact(r#"{"a":"b c"}"#), r#"{"a":"b c"}"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn checked_text_is_passed_by_its_brackets() {
        for text in [r#"{"a":[1,"]}",{"b":"\"x"}],"c":null}"#, r#"[]"#, r#""s\\""#, "-1.5e3", "true", r#"{"k":"é\u00e9"}"#, "[[[]]]"] {
            let src = format!(r#"{{"v": {text} ,"w":1}}"#);
            let mut passed = Scanner::new(&src, Dialect::Python);
            let mut checked = Scanner::new(&src, Dialect::Python);
            passed.skip_to(5);
            checked.skip_to(5);
            assert_eq!(passed.pass_value(), checked.value(0), "{text}");
            assert_eq!(passed.pos(), checked.pos());
        }
        for bad in ["", "[1,2", r#""open"#, "]", "}", ","] {
            assert!(Scanner::new(bad, Dialect::Strict).pass_value().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_value_rewritten_where_more_text_follows() {
        let rules = Rules::default();
        let (text, end) = rewrite_compact_prefix(r#"{"a": 1, "password": "x"},"next":2}"#, &rules).unwrap();
        assert_eq!((text.as_ref(), end), (r#"{"a":1,"password":"********"}"#, 25));
        let (text, end) = rewrite_compact_prefix(r#"{"a":[1,2]} ,"next":2}"#, &rules).unwrap();
        assert!(matches!(text, Cow::Borrowed(r#"{"a":[1,2]}"#)), "{text}");
        assert_eq!(end, 11);
        assert_eq!(rewrite_compact_prefix(r#"{"a":NaN},"#, &rules), Err(Invalid::Syntax { at: 5 }));
        assert_eq!(rewrite_compact(r#"{"a":1} ,"#, &rules), Err(Invalid::Syntax { at: 8 }), "a whole value still ends the text");
    }

    #[test]
    fn word_at_a_time_scans() {
        let s = b"0123456789abcdef\"tail";
        assert_eq!(find_special(s, 0), 16);
        assert_eq!(find_special(b"abc\\d", 0), 3);
        assert_eq!(find_special(b"abcdefgh\x01", 0), 8);
        assert_eq!(find_special("héllo wörld, long enough\"".as_bytes(), 0), 26);
        assert_eq!(find_special(b"plain", 0), 5);
        assert_eq!(find_special(b"ab\"", 1), 2);
        for (text, plain) in [
            (&b"Hello, world! ~ 0123456789"[..], true),
            (b"", true),
            (b"short", true),
            (b"exactly8", true),
            (b"nine char", true),
            (b"1234567\"", false),
            (b"12345678\x01", false),
            (b"\x7f2345678", false),
            (b"1234\\", false),
            (b"quote\" in the tail", false),
            (b"a\\b", false),
            (b"0123456789abcdef\"", false),
            (b"del\x7f", false),
            (b"tab\there", false),
            ("w\u{f6}rld".as_bytes(), false),
        ] {
            assert_eq!(is_plain_ascii(text), plain, "{}", String::from_utf8_lossy(text));
            assert_eq!(is_plain_ascii(text), is_printable_ascii(text) && find_special(text, 0) == text.len());
            assert_eq!(find_not_plain(text, 0) == text.len(), plain);
            let first = text.iter().position(|&b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\').unwrap_or(text.len());
            assert_eq!(find_not_plain(text, 0), first, "{}", String::from_utf8_lossy(text));
        }
        assert_eq!(find_not_plain(b"\"plain run\"", 1), 10);
        assert!(is_printable_ascii(b"Hello, world! ~ 0123456789"));
        assert!(!is_printable_ascii(b"Hello, world!\x7f 0123456789"));
        assert!(!is_printable_ascii("Hello, wörld! 0123456789".as_bytes()));
        assert!(!is_printable_ascii(b"tab\there, and more text"));
        assert!(is_printable_ascii(b""));
    }

    #[test]
    fn a_marked_string_is_the_checked_string_and_whether_it_is_plain() {
        for text in [
            r#""plain, and long enough for words""#,
            r#""""#,
            r#""caf\u00e9 and more""#,
            "\"w\u{f6}rld, long enough to pass a word\"",
            "\"a\u{7f}b\"",
            r#""q\"x""#,
            "\"tab\there\"",
            r#""\x""#,
            r#""open"#,
            "\"w\u{f6}rld \\u12\"",
        ] {
            let (mut a, mut b) = (Scanner::new(text, Dialect::Strict), Scanner::new(text, Dialect::Strict));
            let plain = a.marked_string().map(|(span, plain)| (span, plain, a.pos()));
            let checked = b.string().map(|span| (span, b.pos()));
            assert_eq!(plain.map(|(span, _, pos)| (span, pos)), checked, "{text}");
            if let Ok((span, plain, _)) = plain {
                assert_eq!(plain, !span.escaped && is_printable_ascii(span.inner(text).as_bytes()), "{text}");
            }
        }
    }

    #[test]
    fn escaping_matches_json_stringify() {
        let mut s = String::new();
        push_str_literal(&mut s, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\u{7f}\"");
        // Runs longer than a word, specials on and across its edges.
        s.clear();
        push_str_literal(&mut s, "01234567\"89abcdef\\\u{1f}\t0123456789 long plain tail");
        assert_eq!(s, "\"01234567\\\"89abcdef\\\\\\u001f\\t0123456789 long plain tail\"");
    }
}

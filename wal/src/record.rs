//! On-disk record framing: `[len u32 LE][crc32 u32 LE][seq u64 LE][payload]`.
//!
//! `len` is the payload length; the CRC covers the 8 seq bytes followed by the
//! payload, so a record copied to the wrong position (wrong seq) is caught too.

use std::path::{Path, PathBuf};

/// Bytes before the payload: len + crc + seq.
pub(crate) const HEADER: usize = 16;

/// Largest payload accepted. Events are far smaller (the server caps them in the
/// tens of KiB); the cap also bounds what a corrupt `len` can make a reader allocate.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Segment file suffix; names are `{first_seq:020}.wal` so they sort by sequence.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(segment_name(first_seq))
}

/// A consumed segment kept to become the next one (see `Wal::remove_before`).
pub(crate) const SPARE_NAME: &str = "reuse.spare";

pub(crate) fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_NAME)
}

/// Parses a segment file name back into its first sequence number.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encoded size of a record with this payload length.
pub(crate) fn encoded_len(payload_len: usize) -> u64 {
    (HEADER + payload_len) as u64
}

pub(crate) fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `buf`.
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    buf.reserve(HEADER + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A decoded header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub len: usize,
    pub crc: u32,
    pub seq: u64,
}

pub(crate) fn decode_header(b: &[u8]) -> Header {
    Header {
        len: u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize,
        crc: u32::from_le_bytes(b[4..8].try_into().unwrap()),
        seq: u64::from_le_bytes(b[8..16].try_into().unwrap()),
    }
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes than the header announces: a torn write.
    Short,
    /// `len` above [`MAX_RECORD_BYTES`].
    TooLong,
    /// Sequence number is not the expected next one.
    WrongSeq,
    /// CRC mismatch.
    Crc,
}

impl Bad {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Bad::Short => "record cut short",
            Bad::TooLong => "record length out of range",
            Bad::WrongSeq => "unexpected sequence number",
            Bad::Crc => "checksum mismatch",
        }
    }
}

/// Checks the record at the start of `b` against `expected_seq`; returns its
/// total encoded length.
pub(crate) fn check(b: &[u8], expected_seq: u64) -> Result<(Header, usize), Bad> {
    if b.len() < HEADER {
        return Err(Bad::Short);
    }
    let h = decode_header(b);
    if h.len > MAX_RECORD_BYTES {
        return Err(Bad::TooLong);
    }
    let total = HEADER + h.len;
    if b.len() < total {
        return Err(Bad::Short);
    }
    if h.seq != expected_seq {
        return Err(Bad::WrongSeq);
    }
    if checksum(h.seq, &b[HEADER..total]) != h.crc {
        return Err(Bad::Crc);
    }
    Ok((h, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_check_round_trip_and_detects_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, b"hello");
        assert_eq!(buf.len() as u64, encoded_len(5));
        let (h, total) = check(&buf, 42).unwrap();
        assert_eq!((h.len, h.seq, total), (5, 42, buf.len()));
        assert_eq!(check(&buf, 41).unwrap_err(), Bad::WrongSeq);
        assert_eq!(check(&buf[..buf.len() - 1], 42).unwrap_err(), Bad::Short);
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        assert_eq!(check(&flipped, 42).unwrap_err(), Bad::Crc);
    }

    #[test]
    fn segment_names_sort_and_parse() {
        assert_eq!(segment_name(7), "00000000000000000007.wal");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("7.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.wal"), None);
    }
}

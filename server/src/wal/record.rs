//! The WAL record frame: `[u32 LE length][u32 LE crc32c(type byte + payload)][u8 type][payload]`,
//! and the scanner that splits one segment's bytes into records and classifies how it ends.
//!
//! Owns: the byte layout and the torn-tail versus corruption decision for one buffer.
//!
//! Must never: panic or index out of bounds on bytes read from disk, or call the disk itself.

/// Bytes in a record header: length (4), crc (4), type (1).
pub const HEADER_LEN: usize = 9;

/// Record types. `0` is never used, so an all-zero header marks the end of written data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Opaque bytes given at create (node id, cluster id); first record of every segment.
    Metadata = 1,
    /// A protobuf-encoded raft `Entry`.
    Entry = 2,
    /// A protobuf-encoded raft `HardState`.
    State = 3,
    /// A snapshot marker: `[u64 LE index][u64 LE term]`, as etcd's `walpb.Snapshot`.
    Snapshot = 4,
}

impl RecordType {
    /// The type for a type byte, if known.
    pub fn from_u8(b: u8) -> Option<RecordType> {
        match b {
            1 => Some(RecordType::Metadata),
            2 => Some(RecordType::Entry),
            3 => Some(RecordType::State),
            4 => Some(RecordType::Snapshot),
            _ => None,
        }
    }
}

/// The crc32c a record carries: over the type byte then the payload.
pub fn record_crc(rtype: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[rtype]), payload)
}

/// Appends one framed record to `out`. `payload` must be shorter than 4 GiB (checked).
pub fn encode(out: &mut Vec<u8>, rtype: RecordType, payload: &[u8]) -> Result<(), String> {
    let len = u32::try_from(payload.len())
        .map_err(|_| format!("record payload of {} bytes is too large", payload.len()))?;
    let t = rtype as u8;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(t, payload).to_le_bytes());
    out.push(t);
    out.extend_from_slice(payload);
    Ok(())
}

/// One good record found by [`scan`].
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// Byte offset of the record's header in the segment.
    pub offset: u64,
    /// Its type.
    pub rtype: RecordType,
    /// Its payload.
    pub payload: &'a [u8],
}

/// How a segment's good records end.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// The last good record ends the file exactly.
    Clean,
    /// All-zero bytes follow the last good record (preallocated or extended file).
    Zeros,
    /// The last record is incomplete or fails its crc, and nothing valid follows it:
    /// a write torn by a crash. `offset` is where that record starts.
    Torn {
        /// Offset of the torn record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// The result of scanning one segment: its good records, where they end, and how.
#[derive(Debug)]
pub struct Scan<'a> {
    /// Good records in file order.
    pub records: Vec<RawRecord<'a>>,
    /// Offset just past the last good record.
    pub good_end: u64,
    /// What follows `good_end`.
    pub tail: Tail,
}

/// Corruption found by [`scan`]: the offset of the bad record and why.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanError {
    /// Offset of the bad record's header.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

struct Header {
    len: u64,
    crc: u32,
    rtype: u8,
}

fn header_at(buf: &[u8], off: usize) -> Option<Header> {
    let h = buf.get(off..off.checked_add(HEADER_LEN)?)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    Some(Header {
        len: u64::from(len),
        crc,
        rtype: h[8],
    })
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Whether a complete record with a known type and a matching crc starts at `off`.
fn valid_record_at(buf: &[u8], off: usize) -> bool {
    let Some(h) = header_at(buf, off) else {
        return false;
    };
    if RecordType::from_u8(h.rtype).is_none() {
        return false;
    }
    let start = off + HEADER_LEN;
    let Some(end) = usize::try_from(h.len)
        .ok()
        .and_then(|l| start.checked_add(l))
    else {
        return false;
    };
    match buf.get(start..end) {
        Some(payload) => record_crc(h.rtype, payload) == h.crc,
        None => false,
    }
}

/// The first offset after `from` where a valid record starts, if any. Used to tell a torn last
/// record (nothing valid after it) from a damaged record in the middle (valid data follows it,
/// e.g. when a flipped bit in a length field makes a record look like it runs past the end).
fn find_valid_record(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(HEADER_LEN - 1)).find(|&y| valid_record_at(buf, y))
}

/// Splits a segment's bytes into records.
///
/// A bad record followed by any valid record, or by non-zero bytes when its own length is
/// intact, is corruption ([`ScanError`]); a bad record at the very end is [`Tail::Torn`]; the
/// caller decides whether a torn tail is acceptable (only in the last segment).
pub fn scan(buf: &[u8]) -> Result<Scan<'_>, ScanError> {
    let mut records = Vec::new();
    let mut off = 0usize;
    let done = |records, off: usize, tail| {
        Ok(Scan {
            records,
            good_end: off as u64,
            tail,
        })
    };
    loop {
        let rest = &buf[off..];
        if rest.is_empty() {
            return done(records, off, Tail::Clean);
        }
        let Some(h) = header_at(buf, off) else {
            // Fewer than HEADER_LEN bytes left.
            if all_zero(rest) {
                return done(records, off, Tail::Zeros);
            }
            let reason = format!(
                "incomplete record header: {} of {HEADER_LEN} bytes before end of file",
                rest.len()
            );
            return done(
                records,
                off,
                Tail::Torn {
                    offset: off as u64,
                    reason,
                },
            );
        };
        if h.len == 0 && h.crc == 0 && h.rtype == 0 {
            if all_zero(rest) {
                return done(records, off, Tail::Zeros);
            }
            let first = rest.iter().position(|&b| b != 0).unwrap_or(0) + off;
            return Err(ScanError {
                offset: off as u64,
                reason: format!("zero record header, but non-zero data follows at offset {first}"),
            });
        }
        let start = off + HEADER_LEN;
        let end = usize::try_from(h.len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= buf.len());
        let Some(end) = end else {
            if let Some(y) = find_valid_record(buf, off + 1) {
                return Err(ScanError {
                    offset: off as u64,
                    reason: format!(
                        "record length {} runs past the end of the file ({} bytes), \
                         but a valid record follows at offset {y}",
                        h.len,
                        buf.len()
                    ),
                });
            }
            let reason = format!(
                "incomplete record: length {} needs {} bytes, file has {}",
                h.len,
                h.len + HEADER_LEN as u64,
                rest.len()
            );
            return done(
                records,
                off,
                Tail::Torn {
                    offset: off as u64,
                    reason,
                },
            );
        };
        let payload = &buf[start..end];
        let crc = record_crc(h.rtype, payload);
        if crc != h.crc {
            let mismatch = format!("crc mismatch: stored {:#010x}, computed {crc:#010x}", h.crc);
            if let Some(y) = find_valid_record(buf, off + 1) {
                return Err(ScanError {
                    offset: off as u64,
                    reason: format!("{mismatch}; a valid record follows at offset {y}"),
                });
            }
            if !all_zero(&buf[end..]) {
                return Err(ScanError {
                    offset: off as u64,
                    reason: format!("{mismatch}; non-zero data follows at offset {end}"),
                });
            }
            return done(
                records,
                off,
                Tail::Torn {
                    offset: off as u64,
                    reason: mismatch,
                },
            );
        }
        let Some(rtype) = RecordType::from_u8(h.rtype) else {
            return Err(ScanError {
                offset: off as u64,
                reason: format!("unknown record type {}", h.rtype),
            });
        };
        records.push(RawRecord {
            offset: off as u64,
            rtype,
            payload,
        });
        off = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, Vec<usize>) {
        let mut b = Vec::new();
        let mut offs = Vec::new();
        for (t, p) in [
            (RecordType::Metadata, &b"meta"[..]),
            (RecordType::Entry, &b"entry-one"[..]),
            (RecordType::State, &b"st"[..]),
        ] {
            offs.push(b.len());
            encode(&mut b, t, p).unwrap();
        }
        (b, offs)
    }

    #[test]
    fn roundtrip_clean_and_zero_tail() {
        let (mut b, offs) = three();
        let s = scan(&b).unwrap();
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.records[1].payload, b"entry-one");
        assert_eq!(s.records[2].offset, offs[2] as u64);
        assert_eq!(s.tail, Tail::Clean);
        let end = b.len() as u64;
        b.extend_from_slice(&[0u8; 100]);
        let s = scan(&b).unwrap();
        assert_eq!((s.good_end, s.tail), (end, Tail::Zeros));
    }

    #[test]
    fn every_truncation_of_last_record_is_torn() {
        let (b, offs) = three();
        for cut in offs[2] + 1..b.len() {
            let s = scan(&b[..cut]).unwrap();
            assert_eq!(s.records.len(), 2, "cut at {cut}");
            assert_eq!(s.good_end, offs[2] as u64);
            assert!(matches!(s.tail, Tail::Torn { offset, .. } if offset == offs[2] as u64));
        }
    }

    #[test]
    fn any_flipped_byte_before_last_record_is_corruption_at_that_record() {
        let (b, offs) = three();
        for pos in 0..offs[2] {
            let mut c = b.clone();
            c[pos] ^= 0x40;
            let rec = if pos < offs[1] { offs[0] } else { offs[1] };
            let err = scan(&c).expect_err(&format!("flip at {pos}"));
            assert_eq!(err.offset, rec as u64, "flip at {pos}: {}", err.reason);
        }
    }
}

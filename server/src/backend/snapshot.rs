//! The backend's snapshot format: every bucket's entries, length-prefixed, with a CRC-32C.
//!
//! Used for raft snapshots sent to a lagging follower (etcd sends its whole bbolt file; we send
//! the logical content, which restores atomically in one redb transaction).

use super::buckets::Bucket;

const MAGIC: &[u8] = b"etcd-sim backend snapshot v1\n";
const END: u8 = 0xFF;

/// Builds a snapshot from `(bucket, key, value)` entries, in the order given.
#[derive(Debug)]
pub(crate) struct SnapshotWriter {
    buf: Vec<u8>,
    count: u64,
}

impl SnapshotWriter {
    pub(crate) fn new() -> Self {
        SnapshotWriter {
            buf: MAGIC.to_vec(),
            count: 0,
        }
    }

    pub(crate) fn entry(&mut self, bucket: Bucket, key: &[u8], value: &[u8]) {
        self.buf.push(bucket.id());
        push_bytes(&mut self.buf, key);
        push_bytes(&mut self.buf, value);
        self.count += 1;
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        self.buf.extend_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

fn push_bytes(buf: &mut Vec<u8>, data: &[u8]) {
    // Keys and values are bounded by the request size limit, far below 4 GiB.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(data);
}

/// One decoded entry.
pub(crate) type Entry<'a> = (Bucket, &'a [u8], &'a [u8]);

/// Decodes and fully verifies a snapshot (magic, structure, count, checksum).
pub(crate) fn decode(data: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    if data.len() < MAGIC.len() + 1 + 8 + 4 || !data.starts_with(MAGIC) {
        return Err("not an etcd-sim backend snapshot (bad magic or too short)".into());
    }
    let (body, crc_bytes) = data.split_at(data.len() - 4);
    let want = u32::from_be_bytes(crc_bytes.try_into().map_err(|_| "short checksum")?);
    let got = crc32c::crc32c(body);
    if want != got {
        return Err(format!(
            "checksum mismatch (stored {want:#010x}, computed {got:#010x})"
        ));
    }
    let mut pos = MAGIC.len();
    let mut entries = Vec::new();
    loop {
        let tag = *body.get(pos).ok_or("truncated entry tag")?;
        pos += 1;
        if tag == END {
            let count_bytes = body.get(pos..pos + 8).ok_or("truncated entry count")?;
            let count = u64::from_be_bytes(count_bytes.try_into().map_err(|_| "bad count")?);
            if pos + 8 != body.len() {
                return Err("trailing bytes after the end marker".into());
            }
            if count != entries.len() as u64 {
                return Err(format!(
                    "entry count mismatch (stored {count}, found {})",
                    entries.len()
                ));
            }
            return Ok(entries);
        }
        let bucket = Bucket::from_id(tag).ok_or_else(|| format!("unknown bucket id {tag}"))?;
        let (key, next) = take_bytes(body, pos)?;
        let (value, next) = take_bytes(body, next)?;
        pos = next;
        entries.push((bucket, key, value));
    }
}

fn take_bytes(body: &[u8], pos: usize) -> Result<(&[u8], usize), String> {
    let len_bytes = body.get(pos..pos + 4).ok_or("truncated length")?;
    let len = u32::from_be_bytes(len_bytes.try_into().map_err(|_| "bad length")?) as usize;
    let start = pos + 4;
    let data = body
        .get(start..start + len)
        .ok_or_else(|| format!("truncated data at offset {start}"))?;
    Ok((data, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detected() {
        let mut w = SnapshotWriter::new();
        w.entry(Bucket::Key, b"k1", b"v1");
        w.entry(Bucket::Meta, b"consistent_index", &7u64.to_be_bytes());
        w.entry(Bucket::Lease, b"", b"");
        let data = w.finish();
        let entries = decode(&data).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], (Bucket::Key, &b"k1"[..], &b"v1"[..]));
        assert_eq!(entries[2], (Bucket::Lease, &b""[..], &b""[..]));

        let mut bad = data.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        assert!(decode(&data[..data.len() - 1]).is_err());
        assert!(decode(b"garbage").is_err());
    }
}

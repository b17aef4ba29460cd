//! MVCC revisions and their on-disk form: etcd's 17-byte key of the `key` bucket
//! (8-byte big-endian main, `_`, 8-byte big-endian sub), plus a trailing `t` for tombstones.

/// A revision: `main` is the store revision of a write txn, `sub` the change's position in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The store revision (one per write transaction).
    pub main: i64,
    /// The change's index within its transaction.
    pub sub: i64,
}

/// Length of an encoded revision.
pub const REV_BYTES_LEN: usize = 8 + 1 + 8;
/// Length of an encoded revision with the tombstone mark.
pub const MARKED_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;
const TOMBSTONE_MARK: u8 = b't';

impl Revision {
    /// A revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// etcd's 17-byte encoding (sorts like the revision, for non-negative revisions).
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        b[8] = b'_';
        b[9..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    /// The key of this revision in the `key` bucket (with the tombstone mark if `tombstone`).
    pub fn to_key(self, tombstone: bool) -> Vec<u8> {
        let mut k = self.to_bytes().to_vec();
        if tombstone {
            k.push(TOMBSTONE_MARK);
        }
        k
    }

    /// Decodes a `key` bucket key (marked or not); `None` if it is not a revision.
    pub fn from_bytes(b: &[u8]) -> Option<Revision> {
        if !(b.len() == REV_BYTES_LEN || b.len() == MARKED_REV_BYTES_LEN) || b[8] != b'_' {
            return None;
        }
        let main = u64::from_be_bytes(b[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b[9..17].try_into().ok()?) as i64;
        Some(Revision { main, sub })
    }
}

/// Whether a `key` bucket key marks a tombstone (a deletion).
pub fn is_tombstone(key: &[u8]) -> bool {
    key.len() == MARKED_REV_BYTES_LEN && key[REV_BYTES_LEN] == TOMBSTONE_MARK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_etcd_and_sorts() {
        let r = Revision::new(0x0102, 3);
        let b = r.to_bytes();
        assert_eq!(&b[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(b[8], b'_');
        assert_eq!(&b[9..], &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(Revision::from_bytes(&b), Some(r));
        let t = r.to_key(true);
        assert!(is_tombstone(&t) && !is_tombstone(&b));
        assert_eq!(Revision::from_bytes(&t), Some(r));
        assert!(Revision::new(2, 9).to_bytes() < Revision::new(3, 0).to_bytes());
        assert_eq!(Revision::from_bytes(b"short"), None);
    }
}

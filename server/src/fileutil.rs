//! File-name helpers shared by the WAL and the snapshotter (etcd's `%016x-%016x.ext` names).
//!
//! Owns: formatting and parsing `<16 hex>-<16 hex>.<ext>` names.
//!
//! Must never: touch the disk.

/// `%016x-%016x.<ext>`.
pub fn hex_pair_name(a: u64, b: u64, ext: &str) -> String {
    format!("{a:016x}-{b:016x}.{ext}")
}

/// Parses `%016x-%016x.<ext>`; `None` for anything else.
pub fn parse_hex_pair_name(name: &str, ext: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let n = hex_pair_name(1, 0x2a, "wal");
        assert_eq!(n, "0000000000000001-000000000000002a.wal");
        assert_eq!(parse_hex_pair_name(&n, "wal"), Some((1, 42)));
        assert_eq!(parse_hex_pair_name(&n, "snap"), None);
        assert_eq!(parse_hex_pair_name("1-2.wal", "wal"), None);
        assert_eq!(
            parse_hex_pair_name("000000000000000g-0000000000000000.wal", "wal"),
            None
        );
    }
}

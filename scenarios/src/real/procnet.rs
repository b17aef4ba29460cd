//! Which local process owns one end of a loopback TCP connection, read from `/proc` (Linux).
//!
//! Owns: parsing the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`) and matching
//! a socket's inode against the `socket:[inode]` links in `/proc/<pid>/fd`. The real-mode
//! proxy uses it to name the initiator of a connection it accepted: a member process, or
//! (no owner among the members) the harness's own clients.
//!
//! Guarantees: best effort and infallible: a table, process or fd that cannot be read (it went
//! away, or permission) is skipped, and an owner not found is `None`. The answer is as fresh
//! as the read: a connection already closed has no owner. IPv4-mapped IPv6 addresses match
//! their IPv4 form, so a v4 peer is found whichever table holds the socket.
//!
//! Must never: write anything, signal or wait on a process, or read the fds of processes other
//! than the pids it is given.
// Real mode reads the host's /proc directly: there is no simulated seam on this side.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The TCP socket tables of this network namespace (`tcp6` may be absent).
const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// The pid among `pids` that owns the socket whose *local* address is `peer` (the initiator's
/// ephemeral address, as the accepting side sees it as its peer), or `None`.
///
/// Every socket bound to `peer` counts (Linux may reuse an ephemeral port for connections to
/// different destinations), so in that rare case the first of `pids` owning any of them wins.
pub(crate) fn socket_owner(peer: SocketAddr, pids: &[u32]) -> Option<u32> {
    let peer = canonical(peer);
    let inodes: BTreeSet<u64> = TABLES
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| parse_tcp_table(&text))
        // Inode 0: a TIME_WAIT or orphaned socket, owned by no process.
        .filter(|&(local, inode)| inode != 0 && canonical(local) == peer)
        .map(|(_, inode)| inode)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    pids.iter().copied().find(|&pid| owns_any(pid, &inodes))
}

/// Whether one of `pid`'s file descriptors is a socket with one of these inodes.
fn owns_any(pid: u32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|link| socket_inode(&link.to_string_lossy()))
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

/// The inode of an fd link's target `socket:[12345]`.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The (local address, inode) of every row of `/proc/net/tcp` or `/proc/net/tcp6` text; the
/// header and malformed rows are skipped.
pub(crate) fn parse_tcp_table(text: &str) -> Vec<(SocketAddr, u64)> {
    text.lines().filter_map(parse_row).collect()
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`
fn parse_row(line: &str) -> Option<(SocketAddr, u64)> {
    let mut fields = line.split_whitespace();
    if !fields.next()?.ends_with(':') {
        return None; // the header ("sl ...")
    }
    let local = parse_addr(fields.next()?)?;
    // After the local address: rem, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode.
    let inode = fields.nth(7)?.parse().ok()?;
    Some((local, inode))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:port` (IPv6). The kernel prints the address as
/// 32-bit words with `%08X` in host byte order and the port as a number (already host order).
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, out) in bytes.chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// One printed 32-bit word back to its bytes in memory (network) order.
fn word(hex: &str) -> Option<[u8; 4]> {
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

/// IPv4-mapped IPv6 as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rows as the kernel prints them; a `\` continuation splits each long row at a space.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
        retrnsmt   uid  timeout inode\n   \
        0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 \
        41235 1 0000000000000000 100 0 0 10 0\n   \
        1: 0100007F:D2F0 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000  1000        0 \
        41240 1 0000000000000000 20 4 30 10 -1\n   \
        2: 0100007F:0CEA 0100007F:D2F0 06 00000000:00000000 03:00001770 00000000     0        0 \
        0 3 0000000000000000\n   \
        3: garbage\n";

    const TCP6: &str = "  sl  local_address                         remote_address \
        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
        0: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A \
        00000000:00000000 00:00000000 00000000  1000        0 5555 \
        1 0000000000000000 100 0 0 10 0\n   \
        1: 0000000000000000FFFF00000100007F:D2F1 0000000000000000FFFF00000100007F:0CEA 01 \
        00000000:00000000 00:00000000 00000000  1000        0 5556 \
        1 0000000000000000 20 4 30 10 -1\n";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv4_rows() {
        assert_eq!(
            parse_tcp_table(TCP),
            vec![
                (addr("127.0.0.1:3306"), 41235),
                (addr("127.0.0.1:54000"), 41240),
                (addr("127.0.0.1:3306"), 0),
            ]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_ipv6_rows_and_mapped_addresses_match_ipv4() {
        let rows = parse_tcp_table(TCP6);
        assert_eq!(
            rows,
            vec![
                (addr("[::1]:3306"), 5555),
                (addr("[::ffff:127.0.0.1]:54001"), 5556),
            ]
        );
        assert_eq!(canonical(rows[1].0), addr("127.0.0.1:54001"));
    }

    #[test]
    fn reads_socket_links() {
        assert_eq!(socket_inode("socket:[41240]"), Some(41240));
        assert_eq!(socket_inode("pipe:[41240]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn finds_this_process_as_owner_of_the_client_side() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = std::process::id();
        assert_eq!(socket_owner(peer, &[u32::MAX, me]), Some(me));
        assert_eq!(socket_owner(peer, &[u32::MAX]), None);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert_eq!(socket_owner(closed, &[me]), None);
    }
}

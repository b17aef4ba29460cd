//! Free loopback ports for member processes, shared by real mode and the server's process tests
//! (`server/tests/common` includes this file).
//!
//! Owns: choosing a port a member can bind a moment later. A port taken from the kernel's
//! ephemeral range (bind to port 0, release) can be handed to any outgoing connection before the
//! member binds it, so ports come from below that range. Successive calls in one process never
//! return the same port, and processes start at different points (by pid).
//!
//! Must never: hold the port (the member binds it), or hand out a port below [`FIRST_PORT`].
#![allow(clippy::disallowed_methods)]

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out: below it are well-known and registered services' ports.
const FIRST_PORT: u16 = 10_000;

/// A loopback port free right now, below the kernel's ephemeral range.
pub(crate) fn free_loopback_port() -> io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let end = ephemeral_start().max(FIRST_PORT + 1);
    let span = u32::from(end - FIRST_PORT);
    let base = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST_PORT + (base.wrapping_add(n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("every loopback port from {FIRST_PORT} to {end} is taken"),
    ))
}

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

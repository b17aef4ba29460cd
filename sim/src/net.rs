//! `SimNetwork`: the server's `seam::Network` over turmoil's simulated TCP, plus the link faults
//! (partitions, pauses, loss) that act on it.
//!
//! Owns: binding (`mN:port` → turmoil's `0.0.0.0:port` on the host), connecting by `host:port`,
//! and [`LinkFaults`], the shared table of blocked and lossy directed links. Faults act at the
//! sending end of every connection, with TCP's semantics rather than turmoil's packet drops
//! (which leave a permanent gap in a turmoil TCP stream): bytes written on a blocked link wait
//! until it heals, as TCP retransmission would deliver them; a write on a lossy link is delayed
//! by one retransmission timeout with the link's loss probability; a connect waits until both
//! directions are open (callers' connect timeouts apply). Latency comes from turmoil's links.
//!
//! Must never: open a real socket, read the wall clock, or draw randomness from anything but the
//! `network` stream.

use async_trait::async_trait;
use etcd_server::seam::{BoxIo, NetListener, Network};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How often a writer or connector on a blocked link checks whether it healed.
const BLOCKED_POLL: Duration = Duration::from_millis(5);
/// Retransmission delay of a "lost" write (Linux's minimum RTO).
pub const DEFAULT_RTO: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct LinkState {
    blocked: BTreeSet<(String, String)>,
    isolated: BTreeSet<String>,
    paused: BTreeSet<String>,
    loss: BTreeMap<(String, String), f64>,
    rto: Duration,
    rng: ChaCha8Rng,
}

/// The link faults of one simulation, shared by every host's [`SimNetwork`]. Directed: a fault on
/// `a → b` affects bytes sent by `a` to `b`.
#[derive(Debug, Clone)]
pub struct LinkFaults {
    inner: Arc<Mutex<LinkState>>,
    /// Whether any block, isolation, pause or loss is set (fast path for the healthy case).
    active: Arc<AtomicBool>,
}

/// The locked state; on release, records whether any fault is set.
struct Guard<'a> {
    g: MutexGuard<'a, LinkState>,
    active: &'a AtomicBool,
}

impl std::ops::Deref for Guard<'_> {
    type Target = LinkState;
    fn deref(&self) -> &LinkState {
        &self.g
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut LinkState {
        &mut self.g
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let g = &self.g;
        let any = !(g.blocked.is_empty()
            && g.isolated.is_empty()
            && g.paused.is_empty()
            && g.loss.is_empty());
        self.active.store(any, Ordering::Relaxed);
    }
}

/// What a write on a link must do now.
enum Verdict {
    Go,
    Blocked,
    Lost(Duration),
}

impl LinkFaults {
    /// No faults; loss decisions drawn from `rng` (the `network` stream).
    pub fn new(rng: ChaCha8Rng) -> Self {
        LinkFaults {
            inner: Arc::new(Mutex::new(LinkState {
                blocked: BTreeSet::new(),
                isolated: BTreeSet::new(),
                paused: BTreeSet::new(),
                loss: BTreeMap::new(),
                rto: DEFAULT_RTO,
                rng,
            })),
            active: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> Guard<'_> {
        Guard {
            g: self.inner.lock().unwrap_or_else(|p| p.into_inner()),
            active: &self.active,
        }
    }

    /// Blocks `from → to`.
    pub fn block(&self, from: &str, to: &str) {
        if from != to {
            self.lock().blocked.insert((from.into(), to.into()));
        }
    }

    /// Unblocks `from → to`.
    pub fn unblock(&self, from: &str, to: &str) {
        self.lock()
            .blocked
            .remove(&(from.to_string(), to.to_string()));
    }

    /// Isolates a node: every link from or to it blocked until [`LinkFaults::heal_all`].
    pub fn isolate(&self, node: &str) {
        self.lock().isolated.insert(node.into());
    }

    /// Pauses a node's network: every link from or to it blocked until [`LinkFaults::resume`].
    pub fn pause(&self, node: &str) {
        self.lock().paused.insert(node.into());
    }

    /// Resumes a paused node's network.
    pub fn resume(&self, node: &str) {
        self.lock().paused.remove(node);
    }

    /// Sets the loss probability of `from → to` (0 removes it).
    pub fn set_loss(&self, from: &str, to: &str, p: f64) {
        let mut g = self.lock();
        let key = (from.to_string(), to.to_string());
        if p > 0.0 {
            g.loss.insert(key, p.min(1.0));
        } else {
            g.loss.remove(&key);
        }
    }

    /// Sets the retransmission delay of a lost write.
    pub fn set_rto(&self, rto: Duration) {
        self.lock().rto = rto;
    }

    /// Removes every block, isolation and loss (not pauses: see [`LinkFaults::resume`]).
    pub fn heal_all(&self) {
        let mut g = self.lock();
        g.blocked.clear();
        g.isolated.clear();
        g.loss.clear();
    }

    /// Whether bytes from `from` to `to` are held back now.
    pub fn is_blocked(&self, from: &str, to: &str) -> bool {
        if !self.active.load(Ordering::Relaxed) {
            return false;
        }
        let g = self.lock();
        Self::blocked_in(&g, from, to)
    }

    fn blocked_in(g: &LinkState, from: &str, to: &str) -> bool {
        g.paused.contains(from)
            || g.paused.contains(to)
            || g.isolated.contains(from)
            || g.isolated.contains(to)
            || g.blocked.contains(&(from.to_string(), to.to_string()))
    }

    fn verdict(&self, from: &str, to: &str, draw_loss: bool) -> Verdict {
        if !self.active.load(Ordering::Relaxed) {
            return Verdict::Go;
        }
        let mut g = self.lock();
        if Self::blocked_in(&g, from, to) {
            return Verdict::Blocked;
        }
        if draw_loss {
            if let Some(p) = g.loss.get(&(from.to_string(), to.to_string())).copied() {
                if g.rng.gen_bool(p) {
                    return Verdict::Lost(g.rto);
                }
            }
        }
        Verdict::Go
    }
}

/// The network of one simulated host (a member or a client).
#[derive(Debug, Clone)]
pub struct SimNetwork {
    local: Arc<str>,
    faults: LinkFaults,
}

impl SimNetwork {
    /// The network as seen from host `local` (its turmoil host name).
    pub fn new(local: &str, faults: LinkFaults) -> Self {
        SimNetwork {
            local: local.into(),
            faults,
        }
    }

    /// This host's name.
    pub fn local(&self) -> &str {
        &self.local
    }

    fn wrap(&self, inner: turmoil::net::TcpStream, remote: String) -> BoxIo {
        BoxIo(Box::new(SimStream {
            inner,
            local: self.local.clone(),
            remote: remote.into(),
            faults: self.faults.clone(),
            delay: None,
            retransmitted: false,
        }))
    }
}

fn split_host_port(addr: &str) -> io::Result<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("no port in {addr:?}"))
    })?;
    let port = port.parse().map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("bad port in {addr:?}"))
    })?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

struct SimListener {
    inner: turmoil::net::TcpListener,
    net: SimNetwork,
    port: u16,
}

#[async_trait]
impl NetListener for SimListener {
    async fn accept(&mut self) -> io::Result<BoxIo> {
        let (s, peer) = self.inner.accept().await?;
        let remote = turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string());
        Ok(self.net.wrap(s, remote))
    }

    fn local_addr(&self) -> String {
        format!("{}:{}", self.net.local, self.port)
    }
}

#[async_trait]
impl Network for SimNetwork {
    async fn bind(&self, addr: &str) -> io::Result<Box<dyn NetListener>> {
        let (host, port) = split_host_port(addr)?;
        let ours = host.is_empty()
            || host == &*self.local
            || matches!(host, "0.0.0.0" | "::" | "localhost" | "127.0.0.1");
        if !ours {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{addr}: host {:?} cannot bind {host:?}", &*self.local),
            ));
        }
        let inner = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        let port = inner.local_addr()?.port();
        Ok(Box::new(SimListener {
            inner,
            net: self.clone(),
            port,
        }))
    }

    async fn connect(&self, addr: &str) -> io::Result<BoxIo> {
        let (host, port) = split_host_port(addr)?;
        // A handshake needs both directions: wait for them (the caller's timeout applies).
        while self.faults.is_blocked(&self.local, host) || self.faults.is_blocked(host, &self.local)
        {
            tokio::time::sleep(BLOCKED_POLL).await;
        }
        let s = turmoil::net::TcpStream::connect((host, port)).await?;
        Ok(self.wrap(s, host.to_string()))
    }
}

/// One end of a connection; link faults act on its writes.
struct SimStream {
    inner: turmoil::net::TcpStream,
    local: Arc<str>,
    remote: Arc<str>,
    faults: LinkFaults,
    /// A pending wait: the link is blocked, or a "lost" write awaits retransmission.
    delay: Option<Pin<Box<Sleep>>>,
    /// The current write already paid its loss (do not draw again).
    retransmitted: bool,
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl SimStream {
    /// Ready when the current write may go on the wire.
    fn poll_link(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(d) = self.delay.as_mut() {
                ready!(d.as_mut().poll(cx));
                self.delay = None;
            }
            match self
                .faults
                .verdict(&self.local, &self.remote, !self.retransmitted)
            {
                Verdict::Go => return Poll::Ready(()),
                Verdict::Blocked => {
                    self.delay = Some(Box::pin(tokio::time::sleep(BLOCKED_POLL)));
                }
                Verdict::Lost(rto) => {
                    self.retransmitted = true;
                    self.delay = Some(Box::pin(tokio::time::sleep(rto)));
                }
            }
        }
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_link(cx));
        let r = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        self.retransmitted = false;
        Poll::Ready(r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_link(cx));
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! A loopback TCP proxy in front of one member port, with directed link rules between named
//! nodes: real mode's network faults.
//!
//! Owns: [`Links`], the rule table (`(from, to)` → [`Rule`]) shared by every proxy of a run,
//! and [`Proxy`], a listener that forwards each accepted connection to its target and pumps
//! the two directions under the rules (initiator, target) and (target, initiator). Node names
//! are member names (`m0`, ...) and `client` for the harness's own clients.
//!
//! Fault model (the simulator's `sim::net`, chunk by chunk, rules read at each chunk so they
//! act on open connections): a chunk on a blocked link is held and reading stops until the
//! link opens (TCP backpressure: nothing lost, as retransmission would deliver it after a
//! heal); on an open link a chunk is delivered after the link's latency, plus one [`RTO`] with
//! the link's loss probability, in order (a delayed chunk delays those behind it). EOF on one
//! side shuts down the write half of the other once the bytes before it are delivered; any
//! error closes both sides. A connect always succeeds at the proxy: a blocked link looks like a
//! silent peer, not a refused connect; a target that refuses gets the accepted connection
//! closed.
//!
//! Must never: drop, reorder or alter a byte, draw randomness from anything but the seed and
//! the connection's accept index, or outlive its [`Proxy`] (dropping it aborts every task).
// Real mode binds and dials real sockets: there is no simulated seam on this side.
#![allow(clippy::disallowed_methods)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Extra delay of a "lost" chunk: one retransmission timeout (Linux's minimum RTO, the
/// simulator's `DEFAULT_RTO`).
pub(crate) const RTO: Duration = Duration::from_millis(200);
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;
/// Chunks read but not yet written, per direction, before reading stops.
const IN_FLIGHT: usize = 256;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The faults of one directed link; the default is a healthy link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Rule {
    /// Bytes wait, and reading stops, until the link opens.
    pub blocked: bool,
    /// One-way delay of every chunk.
    pub latency: Duration,
    /// Chance in [0, 1] that a chunk is delayed by one more [`RTO`].
    pub loss: f64,
}

type Table = BTreeMap<(String, String), Rule>;

fn lookup(table: &Table, from: &str, to: &str) -> Rule {
    if table.is_empty() {
        return Rule::default();
    }
    table
        .get(&(from.to_string(), to.to_string()))
        .copied()
        .unwrap_or_default()
}

/// Directed link rules between node names, shared by every proxy of a run (cheap to clone);
/// every change wakes the connections waiting for a link to open.
#[derive(Clone)]
pub(crate) struct Links {
    table: Arc<watch::Sender<Table>>,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            table: Arc::new(watch::channel(Table::new()).0),
        }
    }
}

impl Links {
    fn modify(&self, f: impl FnOnce(&mut Table)) {
        self.table.send_modify(|t| {
            f(t);
            t.retain(|_, rule| *rule != Rule::default());
        });
    }

    /// Blocks `from → to` until [`Links::heal`] (a node's link to itself is never blocked).
    pub(crate) fn block(&self, from: &str, to: &str) {
        if from != to {
            self.modify(|t| t.entry((from.into(), to.into())).or_default().blocked = true);
        }
    }

    /// Sets the one-way latency between `a` and `b`, both directions.
    pub(crate) fn set_latency(&self, a: &str, b: &str, latency: Duration) {
        self.modify(|t| {
            t.entry((a.into(), b.into())).or_default().latency = latency;
            t.entry((b.into(), a.into())).or_default().latency = latency;
        });
    }

    /// Sets the loss probability of `from → to` (clamped to [0, 1]; 0 removes it).
    pub(crate) fn set_loss(&self, from: &str, to: &str, p: f64) {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.modify(|t| t.entry((from.into(), to.into())).or_default().loss = p);
    }

    /// Removes every block and loss; latencies stay (the simulator's `Heal`).
    pub(crate) fn heal(&self) {
        self.modify(|t| {
            for rule in t.values_mut() {
                rule.blocked = false;
                rule.loss = 0.0;
            }
        });
    }

    /// The current rule of `from → to`.
    pub(crate) fn rule(&self, from: &str, to: &str) -> Rule {
        lookup(&self.table.borrow(), from, to)
    }

    /// The rule of `from → to` once the link is open.
    async fn open(&self, from: &str, to: &str) -> Rule {
        let rule = self.rule(from, to);
        if !rule.blocked {
            return rule;
        }
        let mut rx = self.table.subscribe();
        let open = rx
            .wait_for(|t| !lookup(t, from, to).blocked)
            .await
            .map(|t| lookup(&t, from, to));
        match open {
            Ok(rule) => rule,
            // Unreachable (the sender lives in `self`); never let bytes through a block.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Names the initiator of an accepted connection from its peer address (`client` if unknown).
pub(crate) type Owners = Arc<dyn Fn(SocketAddr) -> String + Send + Sync>;

/// Why a proxy could not start, or why one proxied connection ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("proxy for {target}: reading the listener's address")]
    ListenAddr { target: String, source: io::Error },
    #[error("proxy for {target}: not inside a tokio runtime")]
    NoRuntime {
        target: String,
        source: tokio::runtime::TryCurrentError,
    },
    #[error("proxy dialing {target} at {addr} for {from}")]
    Dial {
        from: String,
        target: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("proxy pumping {from} -> {to}")]
    Pump {
        from: String,
        to: String,
        source: io::Error,
    },
}

struct Ctx {
    target: String,
    addr: SocketAddr,
    links: Links,
    owners: Owners,
    seed: u64,
}

/// One running proxy; dropping it (or [`Proxy::shutdown`]) stops it and closes its connections.
pub(crate) struct Proxy {
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Serves `listen` on the current tokio runtime, forwarding to `target_name` at
    /// `target_addr` under `links`; loss draws come from `seed` and each connection's accept
    /// index.
    pub(crate) fn start(
        listen: TcpListener,
        target_name: String,
        target_addr: SocketAddr,
        links: Links,
        owners: Owners,
        seed: u64,
    ) -> Result<Proxy, ProxyError> {
        let addr = listen
            .local_addr()
            .map_err(|source| ProxyError::ListenAddr {
                target: target_name.clone(),
                source,
            })?;
        let rt = tokio::runtime::Handle::try_current().map_err(|source| ProxyError::NoRuntime {
            target: target_name.clone(),
            source,
        })?;
        let ctx = Arc::new(Ctx {
            target: target_name,
            addr: target_addr,
            links,
            owners,
            seed,
        });
        let accept = rt.spawn(accept_loop(listen, ctx));
        Ok(Proxy {
            addr,
            accept: Some(accept),
        })
    }

    /// The address initiators connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
impl Proxy {
    /// Stops the proxy; returns once its listener is closed (its connections are cancelled
    /// with it). Dropping does the same without waiting.
    async fn shutdown(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

/// Accepts connections; owns their tasks, so aborting it aborts them all.
async fn accept_loop(listen: TcpListener, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    let mut index = 0u64;
    loop {
        tokio::select! {
            accepted = listen.accept() => match accepted {
                Ok((stream, peer)) => {
                    conns.spawn(serve(stream, peer, index, ctx.clone()));
                    index += 1;
                }
                Err(e) => {
                    tracing::debug!(node = %ctx.target, error = %e, "proxy accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::warn!(node = %ctx.target, error = %e, "proxy connection panicked");
                    }
                }
            }
        }
    }
}

async fn serve(inbound: TcpStream, peer: SocketAddr, index: u64, ctx: Arc<Ctx>) {
    let from = (ctx.owners)(peer);
    if let Err(e) = forward(inbound, &from, index, &ctx).await {
        let e = anyhow::Error::new(e);
        tracing::debug!("proxied connection closed: {e:#}");
    }
}

async fn forward(
    mut inbound: TcpStream,
    from: &str,
    index: u64,
    ctx: &Ctx,
) -> Result<(), ProxyError> {
    let to = ctx.target.as_str();
    let mut outbound = TcpStream::connect(ctx.addr)
        .await
        .map_err(|source| ProxyError::Dial {
            from: from.into(),
            target: to.into(),
            addr: ctx.addr,
            source,
        })?;
    // Best effort: without it, Nagle would add its own delays to small forwarded chunks.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let stream_rng = |stream: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        rng.set_stream(stream);
        rng
    };
    let (up_rng, down_rng) = (stream_rng(2 * index), stream_rng(2 * index + 1));
    let (in_read, in_write) = inbound.split();
    let (out_read, out_write) = outbound.split();
    let links = &ctx.links;
    tokio::try_join!(
        pump(in_read, out_write, from, to, links, up_rng),
        pump(out_read, in_write, to, from, links, down_rng),
    )?;
    Ok(())
}

/// Copies `src` to `dst` under the rule of `from → to`, then shuts down `dst`'s write half.
async fn pump<R, W>(
    mut src: R,
    mut dst: W,
    from: &str,
    to: &str,
    links: &Links,
    mut rng: ChaCha8Rng,
) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let err = |source: io::Error| ProxyError::Pump {
        from: from.into(),
        to: to.into(),
        source,
    };
    // Chunks with their delivery time, in order.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut last_due = Instant::now();
        loop {
            let n = src.read(&mut buf).await.map_err(err)?;
            if n == 0 {
                break; // EOF: dropping `tx` lets the writer drain and shut down.
            }
            let rule = links.open(from, to).await;
            let lost = rule.loss > 0.0 && rng.gen_bool(rule.loss);
            let rto = if lost { RTO } else { Duration::ZERO };
            let due = (Instant::now() + rule.latency + rto).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break; // The writer failed; its error ends the connection.
            }
        }
        Ok::<(), ProxyError>(())
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            links.open(from, to).await;
            dst.write_all(&chunk).await.map_err(err)?;
        }
        links.open(from, to).await;
        dst.shutdown().await.map_err(err)
    };
    tokio::try_join!(read, write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "t";
    const QUIET: Duration = Duration::from_millis(300);

    async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.unwrap()
    }

    /// A proxy whose initiators are all named `initiator`, in front of a listener to accept
    /// from in the test.
    async fn setup(links: &Links, initiator: &'static str) -> (Proxy, TcpListener) {
        let target = bind().await;
        let owners: Owners = Arc::new(move |_: SocketAddr| initiator.to_string());
        let addr = target.local_addr().unwrap();
        let proxy = Proxy::start(bind().await, T.into(), addr, links.clone(), owners, 7).unwrap();
        (proxy, target)
    }

    /// The initiator's and the target's ends of one proxied connection.
    async fn connect(proxy: &Proxy, target: &TcpListener) -> (TcpStream, TcpStream) {
        let initiator = TcpStream::connect(proxy.addr()).await.unwrap();
        let (accepted, _) = target.accept().await.unwrap();
        (initiator, accepted)
    }

    async fn silent_for(s: &mut TcpStream, d: Duration) -> bool {
        let mut b = [0u8; 1];
        tokio::time::timeout(d, s.read(&mut b)).await.is_err()
    }

    #[tokio::test]
    async fn bytes_pass_unchanged_both_ways() {
        let (proxy, target) = setup(&Links::default(), "client").await;
        let echo = tokio::spawn(async move {
            let (mut s, _) = target.accept().await.unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut r, mut w) = c.split();
        let mut got = Vec::new();
        let send = async {
            w.write_all(&data).await?;
            w.shutdown().await
        };
        let (sent, read) = tokio::join!(send, r.read_to_end(&mut got));
        sent.unwrap();
        read.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "echoed bytes differ");
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn blocked_direction_holds_bytes_until_heal() {
        let links = Links::default();
        let (proxy, target) = setup(&links, "client").await;
        let (mut c, mut t) = connect(&proxy, &target).await;
        links.block("client", T);
        let parts: [&[u8]; 3] = [b"one ", b"two ", b"three"];
        for part in parts {
            c.write_all(part).await.unwrap();
        }
        assert!(silent_for(&mut t, QUIET).await);
        t.write_all(b"pong").await.unwrap(); // the other direction flows
        let mut pong = [0u8; 4];
        c.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
        links.heal();
        let mut got = [0u8; 13];
        t.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two three");
    }

    #[tokio::test]
    async fn latency_delays_each_direction() {
        let links = Links::default();
        let lat = Duration::from_millis(100);
        links.set_latency("client", T, lat);
        let (proxy, target) = setup(&links, "client").await;
        let (mut c, mut t) = connect(&proxy, &target).await;
        let start = Instant::now();
        let mut b = [0u8; 4];
        c.write_all(b"ping").await.unwrap();
        t.read_exact(&mut b).await.unwrap();
        let one_way = start.elapsed();
        t.write_all(b"pong").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        let round_trip = start.elapsed();
        let slack = Duration::from_millis(10);
        assert!(one_way + slack >= lat, "one way {one_way:?}");
        assert!(round_trip + slack >= 2 * lat, "round trip {round_trip:?}");
        assert!(round_trip < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn loss_adds_an_rto_and_heal_keeps_latency() {
        let links = Links::default();
        let lat = Duration::from_millis(20);
        links.set_latency("client", T, lat);
        links.set_loss("client", T, 1.0);
        let (proxy, target) = setup(&links, "client").await;
        let (mut c, mut t) = connect(&proxy, &target).await;
        let start = Instant::now();
        c.write_all(b"x").await.unwrap();
        t.read_exact(&mut [0u8; 1]).await.unwrap();
        assert!(start.elapsed() + Duration::from_millis(10) >= lat + RTO);
        links.block(T, "client");
        links.heal();
        let healed = Rule {
            latency: lat,
            ..Rule::default()
        };
        assert_eq!(links.rule("client", T), healed);
        assert_eq!(links.rule(T, "client"), healed);
    }

    #[tokio::test]
    async fn initiator_name_picks_the_rule() {
        let links = Links::default();
        let (proxy, target) = setup(&links, "m1").await;
        let (mut c, mut t) = connect(&proxy, &target).await;
        links.block("client", T); // not this connection's initiator
        links.block(T, "m1");
        c.write_all(b"from m1").await.unwrap();
        let mut got = [0u8; 7];
        t.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from m1");
        t.write_all(b"reply").await.unwrap();
        assert!(silent_for(&mut c, QUIET).await);
        links.heal();
        let mut reply = [0u8; 5];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
    }

    #[tokio::test]
    async fn shutdown_closes_listener_and_connections() {
        let (proxy, target) = setup(&Links::default(), "client").await;
        let (mut c, _t) = connect(&proxy, &target).await;
        let addr = proxy.addr();
        proxy.shutdown().await;
        let mut b = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        assert!(TcpStream::connect(addr).await.is_err());
    }
}

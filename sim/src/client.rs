//! Clients on simulated hosts: real tonic gRPC clients (`etcd_api::client`) over turmoil TCP.
//!
//! Owns: [`ClientCtx`], what a client host's code gets (its name, its network, the members'
//! client addresses), and tonic channels whose connector goes through [`SimNetwork`], so the
//! gRPC/HTTP-2 wire protocol is exercised exactly as in real mode.
//!
//! Must never: connect around the host's network (the simulated one in a simulation).

use crate::net::SimNetwork;
use etcd_server::seam::Network;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Connect timeout of client channels (simulated time).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Per-request timeout of client channels (simulated time).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A tonic channel to `addr` (`host:port`) whose connections go through `net`. Lazy: it
/// connects on first use and reconnects after failures.
pub fn channel(net: Arc<dyn Network>, addr: &str) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true);
    let target = addr.to_string();
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri| {
            let net = net.clone();
            let target = target.clone();
            async move { net.connect(&target).await.map(TokioIo::new) }
        })),
    )
}

/// What the code of a client host gets: its identity and ways to reach the members. The same
/// host code runs in both worlds: in a simulation the network is the host's [`SimNetwork`]
/// and member `m0` answers at `m0:2379`; in real mode (`scenarios`' real cluster) the network
/// is the host's TCP and each member's client address is given.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    name: String,
    net: Arc<dyn Network>,
    members: Vec<String>,
    /// Client address of each member; members not listed answer at `<name>:2379`.
    addrs: Arc<BTreeMap<String, String>>,
}

impl ClientCtx {
    pub(crate) fn simulated(name: &str, net: SimNetwork, members: Vec<String>) -> Self {
        ClientCtx::new(name, Arc::new(net), members, BTreeMap::new())
    }

    /// A host `name` reaching `members` through `net`, each at its address in `addrs`.
    pub fn new(
        name: &str,
        net: Arc<dyn Network>,
        members: Vec<String>,
        addrs: BTreeMap<String, String>,
    ) -> Self {
        ClientCtx {
            name: name.to_string(),
            net,
            members,
            addrs: Arc::new(addrs),
        }
    }

    /// This client host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Member names (`m0`, `m1`, ...).
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// This host's network (for custom protocols).
    pub fn net(&self) -> &dyn Network {
        &*self.net
    }

    /// `member`'s client address (`m0:2379` in a simulation).
    fn client_addr(&self, member: &str) -> String {
        match self.addrs.get(member) {
            Some(addr) => addr.clone(),
            None => format!("{member}:{}", crate::CLIENT_PORT),
        }
    }

    /// A raw tonic channel to `member`'s client URL.
    pub fn channel(&self, member: &str) -> Result<tonic::transport::Channel, String> {
        channel(self.net.clone(), &self.client_addr(member))
    }

    /// An HTTP/1.1 GET of `path` (`/readyz?verbose`) on `member`'s client URL, as curl would
    /// send it; returns the status code and the body.
    pub async fn http_get(&self, member: &str, path: &str) -> Result<(u16, String), String> {
        let target = self.client_addr(member);
        let (code, body) = etcd_server::seam::http_get(&*self.net, &target, path).await?;
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    }

    /// An etcd v3 client talking to `member` only (lazy: it connects on first use).
    pub fn client(&self, member: &str) -> Result<etcd_api::client::Client, String> {
        self.channel(member)
            .map(etcd_api::client::Client::new)
            .map_err(|e| format!("etcd client for {member}: {e}"))
    }
}

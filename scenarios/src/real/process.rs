//! Starting and controlling member processes in real mode: our `etcd-server` binary or a real
//! etcd, one OS process per member on loopback.
//!
//! Owns: recognizing a binary by its `--version` output ([`Binary`], [`Flavor`]), free loopback
//! ports (from [`super::ports`]), a member's command line ([`flags`]: etcd's flag names in `--flag=value` form, later
//! flags replacing earlier ones of the same name), and each member's process ([`Member`]):
//! spawn with stdout and stderr appended to `<log_dir>/<name>.log` (one
//! `=== incarnation N: <cmd line> ===` line per start), SIGSTOP/SIGCONT, SIGKILL, restart on the
//! same data dir and ports, exit status, and the startup check ([`Member::wait_ready`]).
//!
//! Must never: signal a pid that is not its own live child (signals go to the current
//! incarnation while tokio still holds it unreaped, so the pid cannot have been reused), let a
//! member outlive its [`Member`] (kill_on_drop) or [`shutdown_all`], touch a member's data dir
//! (the member owns it), or read member output beyond quoting its last log line.
// Real mode runs real processes, files and ports on the wall clock: there is no simulated seam.
#![allow(clippy::disallowed_methods)]

use super::observe::http_get;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// `--initial-cluster-token` of every run.
pub(crate) const CLUSTER_TOKEN: &str = "etcd-sim";
/// A member exiting with [`BAD_FLAGS_EXIT`] this soon after its start refused its flags.
const EARLY_EXIT: Duration = Duration::from_secs(2);
/// Exit code of etcd (Go's flag package) and of ours (clap, `validate`) for unusable flags.
const BAD_FLAGS_EXIT: i32 = 2;
/// Longest `<bin> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness probes, and the longest one probe may take.
const PROBE_PAUSE: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Signals other than SIGKILL go through procps' kill (no libc here).
const KILL: &str = "/bin/kill";
/// Bytes read from the end of a log to find its last line, and the most of it quoted.
const LOG_TAIL: u64 = 16 * 1024;
const MAX_QUOTE: usize = 2000;

/// Why a member process could not be started, signalled or waited for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("running `{bin} --version`")]
    Version { bin: String, source: io::Error },
    #[error("`{bin} --version` did not finish within {after:?}")]
    VersionTimeout { bin: String, after: Duration },
    #[error("`{bin} --version` ({status}) is neither etcd's nor ours: {output:?}")]
    UnknownBinary {
        bin: String,
        status: String,
        output: String,
    },
    #[error("finding a free loopback port")]
    FreePort { source: io::Error },
    #[error("member {member}: writing its log {}", .path.display())]
    Log {
        member: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("member {member}: spawning {bin}")]
    Spawn {
        member: String,
        bin: String,
        source: io::Error,
    },
    #[error("member {member}: waiting for its process")]
    Wait { member: String, source: io::Error },
    #[error("member {member}: `{KILL} -{signal} {pid}` failed: {detail}")]
    Signal {
        member: String,
        signal: &'static str,
        pid: u32,
        detail: String,
    },
    #[error("member {member} is not running ({exit})")]
    NotRunning { member: String, exit: String },
    #[error("member {member} refused its flags (exit code 2 right after start): {last_line}")]
    RefusedFlags { member: String, last_line: String },
    #[error("member {member} exited before answering on client port {port}: {exit}")]
    Exited {
        member: String,
        port: u16,
        exit: String,
    },
    #[error(
        "member {member}: no answer to GET /health on port {port} in {waited:?}: {last_error}"
    )]
    NotReady {
        member: String,
        port: u16,
        waited: Duration,
        last_error: String,
    },
}

/// Whose server a binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Our `etcd-server` (clap: `etcd-server 0.1.0`).
    Ours,
    /// Real etcd (`etcd Version: 3.5.1`, then Git SHA, Go version, OS/arch).
    Etcd,
}

/// A member binary and what its `--version` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binary {
    pub path: PathBuf,
    pub flavor: Flavor,
    /// `3.5.1` for etcd, the crate version for ours.
    pub version: String,
}

impl Binary {
    /// Runs `<path> --version` and recognizes the output.
    pub(crate) async fn detect(path: impl Into<PathBuf>) -> Result<Binary, ProcessError> {
        let path = path.into();
        let bin = path.display().to_string();
        let run = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(VERSION_TIMEOUT, run)
            .await
            .map_err(|_| ProcessError::VersionTimeout {
                bin: bin.clone(),
                after: VERSION_TIMEOUT,
            })?
            .map_err(|source| ProcessError::Version {
                bin: bin.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match parse_version(&stdout) {
            Some((flavor, version)) if out.status.success() => Ok(Binary {
                path,
                flavor,
                version,
            }),
            _ => Err(ProcessError::UnknownBinary {
                bin,
                status: out.status.to_string(),
                output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
            }),
        }
    }
}

/// The flavor and version in a `--version` output (its first non-blank line).
pub(crate) fn parse_version(stdout: &str) -> Option<(Flavor, String)> {
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (flavor, version) = match first.strip_prefix("etcd Version:") {
        Some(v) => (Flavor::Etcd, v),
        None => (Flavor::Ours, first.strip_prefix("etcd-server ")?),
    };
    let version = version.trim();
    (!version.is_empty()).then(|| (flavor, version.to_string()))
}

/// A loopback port free right now (see [`super::ports`]).
pub(crate) fn free_port() -> Result<u16, ProcessError> {
    super::ports::free_loopback_port().map_err(|source| ProcessError::FreePort { source })
}

/// Where one member lives. The advertise ports are the proxies in front of the real ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSpec {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    pub advertise_client_port: u16,
    pub advertise_peer_port: u16,
}

/// A member's flags: its own, the initial cluster (`(name, advertised peer port)` of every
/// member), the cluster state, our token, then `extra` (`--flag=value` or bare `--flag`), each
/// replacing an earlier flag of the same name in place.
pub(crate) fn flags(
    spec: &MemberSpec,
    cluster: &[(String, u16)],
    state_new: bool,
    extra: &[String],
) -> Vec<String> {
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let initial: Vec<String> = cluster
        .iter()
        .map(|(name, port)| format!("{name}={}", url(*port)))
        .collect();
    let own = [
        format!("--name={}", spec.name),
        format!("--data-dir={}", spec.data_dir.display()),
        format!("--listen-client-urls={}", url(spec.client_port)),
        format!(
            "--advertise-client-urls={}",
            url(spec.advertise_client_port)
        ),
        format!("--listen-peer-urls={}", url(spec.peer_port)),
        format!(
            "--initial-advertise-peer-urls={}",
            url(spec.advertise_peer_port)
        ),
        format!("--initial-cluster={}", initial.join(",")),
        format!(
            "--initial-cluster-state={}",
            if state_new { "new" } else { "existing" }
        ),
        format!("--initial-cluster-token={CLUSTER_TOKEN}"),
    ];
    merge_flags(own.into_iter().chain(extra.iter().cloned()))
}

/// Flags in order of first appearance, each name holding its last value.
pub(crate) fn merge_flags(flags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for flag in flags {
        match out.iter_mut().find(|f| flag_name(f) == flag_name(&flag)) {
            Some(slot) => *slot = flag,
            None => out.push(flag),
        }
    }
    out
}

/// `--snapshot-count` of `--snapshot-count=100` (a bare flag is its own name).
fn flag_name(flag: &str) -> &str {
    flag.split_once('=').map_or(flag, |(name, _)| name)
}

/// One member's process, across restarts. Dropping it kills the current incarnation.
pub(crate) struct Member {
    bin: Binary,
    spec: MemberSpec,
    cluster: Vec<(String, u16)>,
    extra: Vec<String>,
    log_path: PathBuf,
    child: Child,
    incarnation: u32,
    started: Instant,
    stopped: bool,
    killed: bool,
}

impl Member {
    /// Starts incarnation 1 (`state_new`: bootstrapping a new cluster; false for a member
    /// added to a running one). Start every member of a new cluster before waiting for any:
    /// etcd serves clients only once it has joined through raft.
    pub(crate) async fn start(
        bin: &Binary,
        spec: MemberSpec,
        cluster: &[(String, u16)],
        state_new: bool,
        extra: &[String],
        log_dir: &Path,
    ) -> Result<Member, ProcessError> {
        let log_path = log_dir.join(format!("{}.log", spec.name));
        std::fs::create_dir_all(log_dir).map_err(|source| ProcessError::Log {
            member: spec.name.clone(),
            path: log_path.clone(),
            source,
        })?;
        let args = flags(&spec, cluster, state_new, extra);
        let child = spawn(&bin.path, &spec.name, &log_path, 1, &args)?;
        Ok(Member {
            bin: bin.clone(),
            spec,
            cluster: cluster.to_vec(),
            extra: extra.to_vec(),
            log_path,
            child,
            incarnation: 1,
            started: Instant::now(),
            stopped: false,
            killed: false,
        })
    }

    pub(crate) fn spec(&self) -> &MemberSpec {
        &self.spec
    }

    /// The current incarnation's pid until it is reaped (a zombie keeps its pid).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL and wait (nothing to do if it already exited).
    pub(crate) async fn kill(&mut self) -> Result<(), ProcessError> {
        self.stopped = false;
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        self.child
            .kill()
            .await
            .map_err(|source| ProcessError::Wait {
                member: self.spec.name.clone(),
                source,
            })?;
        self.killed = true;
        Ok(())
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub(crate) async fn stop(&mut self) -> Result<(), ProcessError> {
        self.signal("STOP").await?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT.
    pub(crate) async fn cont(&mut self) -> Result<(), ProcessError> {
        self.signal("CONT").await?;
        self.stopped = false;
        Ok(())
    }

    /// Kills the current incarnation if it runs, then starts the next one on the same data dir
    /// and ports with `--initial-cluster-state=existing`.
    pub(crate) async fn restart(&mut self) -> Result<(), ProcessError> {
        self.kill().await?;
        let args = flags(&self.spec, &self.cluster, false, &self.extra);
        let next = self.incarnation + 1;
        self.child = spawn(&self.bin.path, &self.spec.name, &self.log_path, next, &args)?;
        self.incarnation = next;
        self.started = Instant::now();
        self.killed = false;
        Ok(())
    }

    /// How the current incarnation ended (status, whether the harness killed it, last log
    /// line), or `None` while it runs.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.describe(status)),
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// How the current incarnation ended if it ended without the harness killing it.
    pub(crate) fn exited_on_its_own(&mut self) -> Option<String> {
        if self.killed {
            return None;
        }
        self.exited()
    }

    /// Polls `GET /health` on the real client port until it answers (any status: 503 means
    /// serving without a leader) and returns the status. Fails at once if the process exits:
    /// [`ProcessError::RefusedFlags`] for exit code 2 within 2 s of its start.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> Result<u16, ProcessError> {
        let start = Instant::now();
        let port = self.spec.client_port;
        loop {
            let budget = timeout.saturating_sub(start.elapsed()).min(PROBE_TIMEOUT);
            let probe = tokio::time::timeout(budget, http_get(port, "/health"));
            let last_error = tokio::select! {
                status = self.child.wait() => {
                    let status = status.map_err(|source| ProcessError::Wait {
                        member: self.spec.name.clone(),
                        source,
                    })?;
                    return Err(self.exit_error(status));
                }
                answer = probe => match answer {
                    Ok(Ok((code, _))) => return Ok(code),
                    Ok(Err(e)) => chain(&e),
                    Err(_) => format!("no answer within {budget:?}"),
                },
            };
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(ProcessError::NotReady {
                    member: self.spec.name.clone(),
                    port,
                    waited: timeout,
                    last_error,
                });
            }
            tokio::time::sleep(left.min(PROBE_PAUSE)).await;
        }
    }

    fn exit_error(&self, status: ExitStatus) -> ProcessError {
        let member = self.spec.name.clone();
        if status.code() == Some(BAD_FLAGS_EXIT) && self.started.elapsed() <= EARLY_EXIT {
            let last_line = last_log_line(&self.log_path);
            return ProcessError::RefusedFlags { member, last_line };
        }
        ProcessError::Exited {
            member,
            port: self.spec.client_port,
            exit: self.describe(status),
        }
    }

    fn describe(&self, status: ExitStatus) -> String {
        let who = if self.killed {
            "killed by the harness"
        } else {
            "on its own"
        };
        let line = last_log_line(&self.log_path);
        let n = self.incarnation;
        format!("incarnation {n} ended ({status}, {who}); last log line: {line}")
    }

    async fn signal(&mut self, signal: &'static str) -> Result<(), ProcessError> {
        let member = self.spec.name.clone();
        let exited = self.child.try_wait().map_err(|source| ProcessError::Wait {
            member: member.clone(),
            source,
        })?;
        let pid = match (exited, self.child.id()) {
            (None, Some(pid)) => pid,
            (Some(status), _) => {
                let exit = self.describe(status);
                return Err(ProcessError::NotRunning { member, exit });
            }
            (None, None) => {
                let exit = "already reaped".to_string();
                return Err(ProcessError::NotRunning { member, exit });
            }
        };
        let fail = |detail: String| ProcessError::Signal {
            member: member.clone(),
            signal,
            pid,
            detail,
        };
        let out = Command::new(KILL)
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(fail(format!("{}: {}", out.status, stderr.trim())));
        }
        Ok(())
    }
}

/// End of run: SIGCONT every member (a stopped one too), then SIGKILL and reap them all. Goes
/// through every member whatever fails and returns the first failure.
pub(crate) async fn shutdown_all(members: &mut [Member]) -> Result<(), ProcessError> {
    let mut first = None;
    for m in members.iter_mut() {
        match m.cont().await {
            Ok(()) | Err(ProcessError::NotRunning { .. }) => {}
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    for m in members.iter_mut() {
        if let Err(e) = m.kill().await {
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Appends the incarnation line to the log and spawns `bin args` writing to it.
fn spawn(
    bin: &Path,
    member: &str,
    log: &Path,
    incarnation: u32,
    args: &[String],
) -> Result<Child, ProcessError> {
    let log_err = |source: io::Error| ProcessError::Log {
        member: member.to_string(),
        path: log.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(log_err)?;
    let mut cmd_line = bin.display().to_string();
    for arg in args {
        cmd_line.push(' ');
        cmd_line.push_str(arg);
    }
    writeln!(file, "=== incarnation {incarnation}: {cmd_line} ===").map_err(log_err)?;
    let stderr = file.try_clone().map_err(log_err)?;
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            member: member.to_string(),
            bin: bin.display().to_string(),
            source,
        })
}

/// The last non-blank line of a log, `(no output)` if the last incarnation wrote nothing yet.
fn last_log_line(path: &Path) -> String {
    let tail = match read_tail(path) {
        Ok(tail) => tail,
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    };
    let text = String::from_utf8_lossy(&tail);
    match text.lines().map(str::trim).rfind(|l| !l.is_empty()) {
        None => "(no output)".to_string(),
        Some(l) if l.starts_with("=== incarnation ") => "(no output)".to_string(),
        Some(l) => l.chars().take(MAX_QUOTE).collect(),
    }
}

fn read_tail(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    Ok(tail)
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MemberSpec {
        MemberSpec {
            name: "m1".into(),
            data_dir: PathBuf::from("/tmp/run/m1"),
            client_port: 2001,
            peer_port: 2002,
            advertise_client_port: 3001,
            advertise_peer_port: 3002,
        }
    }

    #[test]
    fn flags_in_order_later_replacing_earlier() {
        let cluster = [("m0".to_string(), 3000), ("m1".to_string(), 3002)];
        let extra = [
            "--snapshot-count=10000",
            "--experimental-enable-lease-checkpoint",
            "--snapshot-count=100",
            "--initial-cluster-token=other",
        ]
        .map(String::from);
        let got = flags(&spec(), &cluster, false, &extra);
        let want = [
            "--name=m1",
            "--data-dir=/tmp/run/m1",
            "--listen-client-urls=http://127.0.0.1:2001",
            "--advertise-client-urls=http://127.0.0.1:3001",
            "--listen-peer-urls=http://127.0.0.1:2002",
            "--initial-advertise-peer-urls=http://127.0.0.1:3002",
            "--initial-cluster=m0=http://127.0.0.1:3000,m1=http://127.0.0.1:3002",
            "--initial-cluster-state=existing",
            "--initial-cluster-token=other",
            "--snapshot-count=100",
            "--experimental-enable-lease-checkpoint",
        ];
        assert_eq!(got, want);
        let new = flags(&spec(), &cluster, true, &[]);
        assert_eq!(new[7], "--initial-cluster-state=new");
    }

    #[test]
    fn bare_and_valued_flags_share_a_name() {
        let got = merge_flags(["--a", "--b=1", "--a=false"].map(String::from));
        assert_eq!(got, ["--a=false", "--b=1"]);
    }

    #[test]
    fn flavor_from_version_output() {
        let etcd = "etcd Version: 3.5.1\nGit SHA: e8732fb5f\nGo Version: go1.16.3\n\
                    Go OS/Arch: linux/amd64\n";
        assert_eq!(parse_version(etcd), Some((Flavor::Etcd, "3.5.1".into())));
        assert_eq!(
            parse_version("etcd-server 0.1.0\n"),
            Some((Flavor::Ours, "0.1.0".into()))
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("etcd Version:\n"), None);
        assert_eq!(
            parse_version("etcdctl version: 3.5.1\nAPI version: 3.5\n"),
            None
        );
    }
}

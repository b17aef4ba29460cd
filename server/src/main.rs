//! `etcd-server`: the real-mode binary (TCP, files with fdatasync, the wall clock).
//!
//! Owns: flag parsing into exit codes (2 for bad flags), logging setup, the tokio runtime, and
//! signal handling. Everything else is the library.
//!
//! Must never: be linked into the simulator (it picks a seed from the wall clock).

use clap::Parser;
use etcd_server::seam::World;
use etcd_server::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate();
    }
    let cfg = match Config::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Err(e) = cfg.validate() {
        eprintln!("etcd-server: {e}");
        return ExitCode::from(2);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etcd-server: {e}");
            ExitCode::from(1)
        }
    }
}

/// `etcd-server migrate --data-dir D --target-version X.Y [--force]` (etcdutl's migrate).
fn migrate() -> ExitCode {
    use etcd_server::etcdserver::version::{migrate, MigrateArgs};
    let args = match MigrateArgs::try_parse_from(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd-server migrate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let disk: std::sync::Arc<dyn etcd_server::seam::Disk> = World::real(0).disk;
    match rt.block_on(migrate(disk, &args)) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e @ etcd_server::etcdserver::version::MigrateError::Format(_))
        | Err(e @ etcd_server::etcdserver::version::MigrateError::Parse(_))
        | Err(e @ etcd_server::etcdserver::version::MigrateError::TooOld(_)) => {
            eprintln!("Error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: Config) -> Result<(), etcd_server::ServerError> {
    // Real mode: the seed for election timeouts and request ids comes from the wall clock.
    #[allow(clippy::disallowed_methods)]
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let name = cfg.name.clone();
    let mut handle = etcd_server::start(cfg, World::real(seed)).await?;
    tracing::info!(
        name = %name,
        member = %format!("{:x}", handle.server.member_id()),
        client = ?handle.client_addrs,
        peer = ?handle.peer_addrs,
        "ready to serve client requests"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| etcd_server::ServerError::Io {
            context: "install SIGTERM handler".into(),
            source,
        })?;
    tokio::select! {
        r = handle.wait() => r,
        _ = tokio::signal::ctrl_c() => { tracing::info!("received interrupt, stopping"); handle.stop().await }
        _ = term.recv() => { tracing::info!("received SIGTERM, stopping"); handle.stop().await }
    }
}

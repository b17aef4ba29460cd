//! `etcd-sim downgrade validate|enable <X.Y> | cancel --endpoints ...`: etcdctl 3.6's downgrade
//! commands (etcdctl 3.5.1 has none), against any etcd v3 endpoint, ours or real etcd.
//!
//! Owns: the request each action sends (`Maintenance.Downgrade`) and etcdctl's output
//! (`Downgrade enable success, cluster version 3.6`; `Error: <message>` and exit 1).
//!
//! Must never: retry an action on another endpoint after one answered: a refusal is the answer.

use clap::{Args, Subcommand};
use etcd_api::client::Client;
use etcd_api::etcdserverpb as pb;
use std::time::Duration;

/// The downgrade command's arguments.
#[derive(Args, Debug, Clone)]
pub struct DowngradeArgs {
    /// What to do.
    #[command(subcommand)]
    action: Action,
    /// Comma-separated client endpoints (host:port or http://host:port); the first one that
    /// can be reached is asked.
    #[arg(long, default_value = "127.0.0.1:2379", global = true)]
    endpoints: String,
    /// Per-request timeout in seconds (etcdctl's --command-timeout).
    #[arg(long, default_value_t = 5, global = true)]
    command_timeout: u64,
}

#[derive(Subcommand, Debug, Clone)]
enum Action {
    /// Check that the cluster can be downgraded to X.Y (its minor minus one).
    Validate {
        /// Target version, X.Y.
        version: String,
    },
    /// Start a downgrade to X.Y: the cluster version moves to it and members may then be
    /// restarted on the older release one by one.
    Enable {
        /// Target version, X.Y.
        version: String,
    },
    /// Cancel the downgrade job in flight.
    Cancel,
}

/// Runs the action; `Ok` is etcdctl's success line, `Err` its error line (without `Error: `).
pub async fn run(args: &DowngradeArgs) -> Result<String, String> {
    use pb::downgrade_request::DowngradeAction;
    let (action, version, verb) = match &args.action {
        Action::Validate { version } => (DowngradeAction::Validate, version.clone(), "validate"),
        Action::Enable { version } => (DowngradeAction::Enable, version.clone(), "enable"),
        Action::Cancel => (DowngradeAction::Cancel, String::new(), "cancel"),
    };
    let timeout = Duration::from_secs(args.command_timeout.max(1));
    let mut last = "no endpoint given".to_string();
    for ep in args
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let mut c = match tokio::time::timeout(timeout, Client::connect(ep)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                last = format!("{ep}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("{ep}: context deadline exceeded");
                continue;
            }
        };
        let req = pb::DowngradeRequest {
            action: action as i32,
            version: version.clone(),
        };
        return match tokio::time::timeout(timeout, c.maintenance.downgrade(req)).await {
            Ok(Ok(resp)) => Ok(format!(
                "Downgrade {verb} success, cluster version {}",
                resp.into_inner().version
            )),
            Ok(Err(status)) => Err(status.message().to_string()),
            Err(_) => Err("context deadline exceeded".to_string()),
        };
    }
    Err(last)
}

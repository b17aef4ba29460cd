//! Records the commit the binary is built from (`ETCD_SIM_GIT_COMMIT`), for `summary.json`:
//! a seed replays only with the same binary.
use std::process::Command;

fn main() {
    // A build without .git (a container image's build context) is told its commit.
    println!("cargo:rerun-if-env-changed=ETCD_SIM_GIT_COMMIT");
    let given = std::env::var("ETCD_SIM_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty() && s != "unknown");
    let commit = given
        .or_else(|| {
            Command::new("git")
                .args(["describe", "--always", "--dirty", "--abbrev=12"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ETCD_SIM_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
}

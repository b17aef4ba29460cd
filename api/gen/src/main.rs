//! Regenerates the checked-in protocol code from the proto files, or checks that it is what
//! regeneration gives:
//! - `api/src/generated/` (etcd-api: etcd's v3 API and our peer transport, prost + tonic) from
//!   `api/proto/`;
//! - `api/raft-proto/src/generated/` (raft-rs's eraftpb, rust-protobuf 2, as crates.io's
//!   raft-proto 0.7.0 generates it in its build script) from `api/raft-proto/proto/`.
//!
//! Owns: the proto file lists and the generators' settings. Both modes generate into a fresh
//! temporary directory first, so a check never touches the checked-in files and a failed
//! regeneration never leaves them half-written.
//!
//! Must never: run at build time (nothing depends on this crate), or write anywhere but the two
//! `generated/` directories.
//!
//! Usage: `cargo run -p etcd-api-gen -- [--check]` (or `bash ci/regen-api.sh [--check]`). Needs
//! `protoc` (Debian's `protobuf-compiler`, or `PROTOC=/path/to/protoc`).

#![allow(clippy::disallowed_methods)] // a developer tool on real files, never simulated

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One generated directory: where its protos are, what generates it, which files it keeps.
struct Target {
    /// Relative to the `api/` directory.
    generated_dir: &'static str,
    /// The files kept (a generator may write more: imports, module files, descriptors).
    keep: &'static [&'static str],
    generate: fn(&Path, &Path) -> Result<(), String>,
}

const TARGETS: &[Target] = &[
    Target {
        generated_dir: "src/generated",
        // The protos' imports (`google.api`, `grpc.gateway...options`: HTTP and OpenAPI
        // annotations for etcd's grpc-gateway) generate files too; nothing uses them.
        keep: &[
            "authpb.rs",
            "mvccpb.rs",
            "etcdserverpb.rs",
            "etcdsim.rafthttp.rs",
        ],
        generate: generate_etcd_api,
    },
    Target {
        generated_dir: "raft-proto/src/generated",
        keep: &["eraftpb.rs"],
        generate: generate_eraftpb,
    },
];

/// etcd's v3 API as etcd-client 0.21 ships it (gogoproto options stripped) and our peer
/// transport, relative to `api/proto/`.
const ETCD_PROTOS: &[&str] = &[
    "etcd/api/authpb/auth.proto",
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcdsim/rafthttp.proto",
];

fn api_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("api"))
}

fn generate_etcd_api(api: &Path, out: &Path) -> Result<(), String> {
    let proto_root = api.join("proto");
    let protos: Vec<PathBuf> = ETCD_PROTOS.iter().map(|p| proto_root.join(p)).collect();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .out_dir(out)
        .compile_protos(&protos, &[proto_root])
        .map_err(|e| format!("etcd API code generation failed (is protoc installed?): {e}"))
}

fn generate_eraftpb(api: &Path, out: &Path) -> Result<(), String> {
    let proto_dir = api.join("raft-proto").join("proto");
    let proto_dir = proto_dir.to_string_lossy().into_owned();
    // protobuf-build panics where a build script would fail; catch it to report it.
    std::panic::catch_unwind(|| {
        protobuf_build::Builder::new()
            .search_dir_for_protos(&proto_dir)
            .includes(std::slice::from_ref(&proto_dir))
            .include_google_protos()
            .out_dir(out.to_string_lossy().into_owned())
            .generate()
    })
    .map_err(|_| "eraftpb code generation failed (is protoc installed?)".to_string())
}

/// The files of `dir` named in `keep`, by name.
fn read_kept(dir: &Path, keep: &[&str]) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for name in keep {
        let path = dir.join(name);
        if path.exists() {
            files.insert(name.to_string(), std::fs::read(&path)?);
        }
    }
    Ok(files)
}

/// Generates `t` into `tmp`; returns the names that differ from the checked-in files, after
/// writing the fresh files over them unless `check`.
fn run_target(api: &Path, t: &Target, tmp: &Path, check: bool) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    (t.generate)(api, tmp)?;
    let fresh = read_kept(tmp, t.keep).map_err(|e| format!("read {}: {e}", tmp.display()))?;
    if fresh.len() != t.keep.len() {
        return Err(format!(
            "expected {} generated files ({}), got {:?}",
            t.keep.len(),
            t.keep.join(", "),
            fresh.keys().collect::<Vec<_>>()
        ));
    }
    let target = api.join(t.generated_dir);
    let current =
        read_kept(&target, t.keep).map_err(|e| format!("read {}: {e}", target.display()))?;
    let differing: Vec<String> = fresh
        .keys()
        .chain(current.keys())
        .filter(|name| fresh.get(*name) != current.get(*name))
        .map(|name| format!("api/{}/{name}", t.generated_dir))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !check {
        std::fs::create_dir_all(&target)
            .map_err(|e| format!("create {}: {e}", target.display()))?;
        for (name, bytes) in &fresh {
            std::fs::write(target.join(name), bytes).map_err(|e| format!("write {name}: {e}"))?;
        }
    }
    Ok(differing)
}

fn run(check: bool) -> Result<String, String> {
    let api = api_dir();
    let tmp = std::env::temp_dir().join(format!("etcd-api-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut differing = Vec::new();
    let mut files = 0;
    for (i, t) in TARGETS.iter().enumerate() {
        let result = run_target(&api, t, &tmp.join(i.to_string()), check);
        match result {
            Ok(d) => differing.extend(d),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        files += t.keep.len();
    }
    let _ = std::fs::remove_dir_all(&tmp);
    match (check, differing.is_empty()) {
        (true, true) => Ok(format!("generated code is up to date ({files} files)")),
        (true, false) => Err(format!(
            "checked-in generated code differs from what the protos generate: {}\n\
             regenerate with `bash ci/regen-api.sh` and commit the result \
             (never edit generated code by hand)",
            differing.join(", ")
        )),
        (false, _) => Ok(format!(
            "wrote {files} generated files ({} changed)",
            differing.len()
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args.as_slice() {
        [] => false,
        [a] if a == "--check" => true,
        _ => {
            eprintln!("usage: etcd-api-gen [--check]");
            return ExitCode::from(2);
        }
    };
    // protobuf-build's Builder::new reads OUT_DIR (a build script's variable); every output
    // directory is set explicitly, so any value does.
    if std::env::var_os("OUT_DIR").is_none() {
        std::env::set_var("OUT_DIR", std::env::temp_dir());
    }
    match run(check) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("etcd-api-gen: {msg}");
            ExitCode::FAILURE
        }
    }
}

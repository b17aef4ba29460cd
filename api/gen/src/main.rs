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
            DESCRIPTOR_SET,
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

/// The descriptors of the etcd API's protos and their imports (the `google.api.http` routes
/// of etcd's grpc-gateway among them), without source info: what the server's JSON gateway
/// reads its routes and message shapes from.
const DESCRIPTOR_SET: &str = "etcd_api.fds.bin";

fn generate_etcd_api(api: &Path, out: &Path) -> Result<(), String> {
    let proto_root = api.join("proto");
    let protos: Vec<PathBuf> = ETCD_PROTOS.iter().map(|p| proto_root.join(p)).collect();
    let descriptors = out.join(DESCRIPTOR_SET);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .file_descriptor_set_path(&descriptors)
        .out_dir(out)
        .compile_protos(&protos, &[proto_root])
        .map_err(|e| format!("etcd API code generation failed (is protoc installed?): {e}"))?;
    strip_source_info(&descriptors)
}

/// Rewrites a descriptor set without comments and source positions: smaller, and unchanged
/// by edits to a proto's comments or layout. Works on the wire format: decoding into
/// prost-types would drop the options' extensions (the `google.api.http` routes).
fn strip_source_info(path: &Path) -> Result<(), String> {
    /// `FileDescriptorSet.file` and `FileDescriptorProto.source_code_info`.
    const SET_FILE: u64 = 1;
    const FILE_SOURCE_CODE_INFO: u64 = 9;
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut out = Vec::with_capacity(bytes.len());
    for (tag, file) in fields(&bytes).map_err(|e| format!("{}: {e}", path.display()))? {
        if tag != SET_FILE {
            return Err(format!("{}: unexpected field {tag}", path.display()));
        }
        let mut kept = Vec::with_capacity(file.len());
        for (field, raw) in raw_fields(file).map_err(|e| format!("{}: {e}", path.display()))? {
            if field != FILE_SOURCE_CODE_INFO {
                kept.extend_from_slice(raw);
            }
        }
        prost::encoding::encode_key(
            SET_FILE as u32,
            prost::encoding::WireType::LengthDelimited,
            &mut out,
        );
        prost::encoding::encode_varint(kept.len() as u64, &mut out);
        out.extend_from_slice(&kept);
    }
    std::fs::write(path, out).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The length-delimited fields of a message: (field number, payload).
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).map_err(|e| e.to_string())?;
        if key & 7 != 2 {
            return Err(format!("field {} is not length-delimited", key >> 3));
        }
        let len = prost::encoding::decode_varint(&mut buf).map_err(|e| e.to_string())? as usize;
        if len > buf.len() {
            return Err("truncated".to_string());
        }
        out.push((key >> 3, &buf[..len]));
        buf = &buf[len..];
    }
    Ok(out)
}

/// Every field of a message as (field number, its whole encoding including the key).
fn raw_fields(msg: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut out = Vec::new();
    let mut rest = msg;
    while !rest.is_empty() {
        let start = msg.len() - rest.len();
        let key = prost::encoding::decode_varint(&mut rest).map_err(|e| e.to_string())?;
        let skip = match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut rest).map_err(|e| e.to_string())?;
                0
            }
            1 => 8,
            2 => prost::encoding::decode_varint(&mut rest).map_err(|e| e.to_string())? as usize,
            5 => 4,
            w => return Err(format!("unsupported wire type {w}")),
        };
        if skip > rest.len() {
            return Err("truncated".to_string());
        }
        rest = &rest[skip..];
        let end = msg.len() - rest.len();
        out.push((key >> 3, &msg[start..end]));
    }
    Ok(out)
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

//! The `etcd-server` binary rejects bad flags with a clear message and exit code 2, and refuses
//! a data dir it cannot trust, naming the file.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-server"))
        .args(args)
        .output()
        .expect("run etcd-server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_flags_exit_2_with_a_message_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (&["--heartbeat-interval", "abc"], "--heartbeat-interval"),
        (
            &["--name", "x"],
            "--initial-cluster has no entry for --name \"x\"",
        ),
        (&["--initial-cluster", "default"], "invalid entry"),
        (
            &["--listen-client-urls", "https://127.0.0.1:1"],
            "--listen-client-urls",
        ),
        (&["--election-timeout", "300"], "--election-timeout"),
        (
            &["--initial-cluster-state", "maybe"],
            "--initial-cluster-state",
        ),
    ];
    for (args, needle) in cases {
        let (code, text) = run(args);
        assert_eq!(code, 2, "{args:?} exited {code}: {text}");
        assert!(
            text.contains(needle),
            "{args:?}: message does not mention {needle:?}: {text}"
        );
    }
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(text.contains("--initial-advertise-peer-urls"), "{text}");
}

#[test]
fn corrupt_wal_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("m0.etcd");
    let (cp, pp) = (common::free_port(), common::free_port());
    let args: Vec<String> = vec![
        "--name=m0".into(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls=http://127.0.0.1:{cp}"),
        format!("--advertise-client-urls=http://127.0.0.1:{cp}"),
        format!("--listen-peer-urls=http://127.0.0.1:{pp}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{pp}"),
        format!("--initial-cluster=m0=http://127.0.0.1:{pp}"),
    ];
    // Run once so the WAL has a few records, then stop it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-server"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("kill");
    child.wait().expect("wait");
    let wal_dir = data.join("member").join("wal");
    let seg = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .expect("a wal segment");
    let mut bytes = std::fs::read(&seg).expect("read segment");
    let used = bytes
        .iter()
        .rposition(|b| *b != 0)
        .expect("non-empty segment");
    assert!(
        used > 64,
        "segment too short to corrupt in the middle: {used}"
    );
    // Flip a byte early in the file: inside a record that valid records follow.
    bytes[20] ^= 0xff;
    std::fs::write(&seg, &bytes).expect("write segment");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, text) = run(&argv);
    assert_ne!(code, 0, "started on a corrupt WAL: {text}");
    let name = seg
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        text.contains(&name),
        "error does not name the file {name}: {text}"
    );
    assert!(
        text.contains("offset"),
        "error does not give the offset: {text}"
    );
}

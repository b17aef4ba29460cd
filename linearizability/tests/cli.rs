//! The `check` / `bench-check` entry points: exit codes, format detection and parse errors.

use std::path::PathBuf;

use linearizability::cli::{
    bench_check_main, check_main, EXIT_LINEARIZABLE, EXIT_NOT_LINEARIZABLE, EXIT_UNKNOWN,
    EXIT_USAGE,
};

fn data(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/porcupine")
        .join(rel);
    assert!(p.exists(), "reference data missing: {}", p.display());
    p.to_string_lossy().into_owned()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn temp_file(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("linearizability-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("temp file");
    p.to_string_lossy().into_owned()
}

#[test]
fn verdict_exit_codes() {
    assert_eq!(
        check_main(&args(&[&data("etcd/etcd_002.log")])),
        EXIT_LINEARIZABLE
    );
    assert_eq!(
        check_main(&args(&[&data("etcd/etcd_000.log")])),
        EXIT_NOT_LINEARIZABLE
    );
    assert_eq!(
        check_main(&args(&[
            &data("kv/c01-ok.txt"),
            "--format",
            "porcupine-kv",
            "--no-partition"
        ])),
        EXIT_LINEARIZABLE
    );
    // The whole-map c10 search takes far longer than a millisecond.
    assert_eq!(
        check_main(&args(&[
            &data("kv/c10-ok.txt"),
            "--no-partition",
            "--timeout",
            "0.001"
        ])),
        EXIT_UNKNOWN
    );
}

#[test]
fn usage_and_parse_errors_exit_2() {
    assert_eq!(check_main(&args(&[])), EXIT_USAGE);
    assert_eq!(check_main(&args(&["x", "--format", "nope"])), EXIT_USAGE);
    assert_eq!(check_main(&args(&["/nonexistent/history.log"])), EXIT_USAGE);
    let bad = temp_file(
        "bad.log",
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\tbanana\n",
    );
    assert_eq!(check_main(&args(&[&bad])), EXIT_USAGE);
    let err = linearizability::cli::load(std::path::Path::new(&bad), None).expect_err("malformed");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn json_history_and_html_output() {
    let h = temp_file(
        "h.json",
        r#"{"model":"register","faults":[{"start":0,"end":5,"label":"crash n1"}],"operations":[
            {"client":0,"call":0,"ret":1,"input":{"write":3},"output":"write"},
            {"client":1,"call":2,"ret":3,"input":"read","output":{"read":3}}]}"#,
    );
    let out = h.replace("h.json", "h.html");
    assert_eq!(check_main(&args(&[&h, "--html", &out])), EXIT_LINEARIZABLE);
    let page = std::fs::read_to_string(&out).expect("html written");
    assert!(page.contains("crash n1") && page.contains("<svg"));
}

#[test]
fn bench_check_runs_a_directory() {
    assert_eq!(bench_check_main(&args(&[&data("kv")])), 0);
    assert_eq!(bench_check_main(&args(&["/nonexistent-dir"])), EXIT_USAGE);
}

#[test]
fn etcd_history_with_watches_checks_both() {
    let ok_run = r#"{"model":"etcd","operations":[
        {"client":0,"call":0,"ret":1,"input":{"put":{"key":"a","value":"1"}},
         "output":{"ok":{"revision":2,"result":{"put":{}}}}}
    ],"watches":[{"id":1,"key":"a","start_revision":1,"responses":[
        {"revision":2,"events":[{"type":"put","kv":{"key":"a","value":"1","create_revision":2,"mod_revision":2,"version":1}}]}
    ]}]}"#;
    let html = std::env::temp_dir().join(format!("lin-watch-{}.html", std::process::id()));
    let html = html.to_string_lossy().into_owned();
    assert_eq!(
        check_main(&args(&[
            &temp_file("watch-ok.json", ok_run),
            "--html",
            &html
        ])),
        EXIT_LINEARIZABLE
    );
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("every watch guarantee holds"));
    // The same event delivered twice: linearizable, but a watch guarantee is broken.
    let dup = ok_run.replace(
        r#"]}
    ]}]}"#,
        r#"]},
        {"revision":2,"events":[{"type":"put","kv":{"key":"a","value":"1","create_revision":2,"mod_revision":2,"version":1}}]}
    ]}]}"#,
    );
    assert_ne!(dup, ok_run);
    assert_eq!(
        check_main(&args(&[
            &temp_file("watch-dup.json", &dup),
            "--html",
            &html
        ])),
        EXIT_NOT_LINEARIZABLE
    );
    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.contains("<td>unique</td>"), "{page}");
}

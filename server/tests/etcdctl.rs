//! A 3-member cluster of the real `etcd-server` binary on loopback, driven by real etcdctl
//! 3.5.1 and by the `etcd-client` crate.
#![allow(clippy::disallowed_methods)]

mod common;

use common::{etcdctl, etcdctl_ok, http_get, Cluster, Kind};
use std::time::Duration;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn b64(s: &str) -> String {
    // etcdctl -w json prints keys and values base64-encoded.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_drives_a_three_member_cluster() {
    let c = Cluster::start(Kind::Ours, 3, &[]);
    c.wait_ready(Duration::from_secs(20)).await;
    let eps = c.endpoints();
    let one = c.endpoint(1);

    // put / get
    assert_eq!(etcdctl_ok(&eps, &["put", "foo", "bar"], None).trim(), "OK");
    assert_eq!(etcdctl_ok(&one, &["get", "foo"], None), "foo\nbar\n");
    let first = json(&etcdctl_ok(&eps, &["get", "foo", "-w", "json"], None));
    let bar_rev = first["kvs"][0]["mod_revision"]
        .as_i64()
        .expect("mod_revision");
    assert_eq!(first["kvs"][0]["key"], b64("foo"));
    assert_eq!(first["kvs"][0]["value"], b64("bar"));
    assert_eq!(first["kvs"][0]["version"], 1);
    assert_eq!(first["count"], 1);
    assert!(first["header"]["cluster_id"].as_u64().unwrap_or(0) != 0);
    assert!(first["header"]["member_id"].as_u64().unwrap_or(0) != 0);
    assert!(first["header"]["raft_term"].as_u64().unwrap_or(0) >= 1);
    etcdctl_ok(&eps, &["put", "foo", "baz"], None);
    assert_eq!(
        etcdctl_ok(&eps, &["get", "foo", "--rev", &bar_rev.to_string()], None),
        "foo\nbar\n"
    );
    assert_eq!(
        etcdctl_ok(&eps, &["get", "foo", "--print-value-only"], None),
        "baz\n"
    );

    // --prefix, --limit, -w json
    for (k, v) in [("a1", "v1"), ("a2", "v2"), ("a3", "v3"), ("b1", "x")] {
        etcdctl_ok(&eps, &["put", k, v], None);
    }
    assert_eq!(
        etcdctl_ok(&eps, &["get", "a", "--prefix"], None),
        "a1\nv1\na2\nv2\na3\nv3\n"
    );
    assert_eq!(
        etcdctl_ok(&eps, &["get", "a", "--prefix", "--limit", "2"], None),
        "a1\nv1\na2\nv2\n"
    );
    let j = json(&etcdctl_ok(
        &eps,
        &["get", "a", "--prefix", "--limit", "2", "-w", "json"],
        None,
    ));
    assert_eq!(j["count"], 3);
    assert_eq!(j["more"], true);
    assert_eq!(j["kvs"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        etcdctl_ok(
            &eps,
            &["get", "a", "--prefix", "--keys-only", "--order", "DESCEND"],
            None
        ),
        "a3\n\na2\n\na1\n\n"
    );
    assert!(etcdctl_ok(
        &eps,
        &["get", "a", "--prefix", "--count-only", "-w", "fields"],
        None
    )
    .contains("\"Count\" : 3"));

    // del
    assert_eq!(etcdctl_ok(&eps, &["del", "b1"], None), "1\n");
    assert_eq!(etcdctl_ok(&eps, &["del", "nothing"], None), "0\n");
    assert_eq!(etcdctl_ok(&eps, &["get", "b1"], None), "");

    // txn (interactive input)
    let out = etcdctl_ok(
        &eps,
        &["txn", "--interactive"],
        Some("value(\"a1\") = \"v1\"\n\nput a1 yes\nget a2\n\nput a1 no\n\n"),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(out.contains("a2\nv2"), "{out}");
    assert_eq!(
        etcdctl_ok(&eps, &["get", "a1", "--print-value-only"], None),
        "yes\n"
    );
    let out = etcdctl_ok(
        &eps,
        &["txn"],
        Some("value(\"a1\") = \"v1\"\n\nput a1 yes2\n\nput a1 no\n\n"),
    );
    assert!(out.contains("FAILURE"), "{out}");
    assert_eq!(
        etcdctl_ok(&eps, &["get", "a1", "--print-value-only"], None),
        "no\n"
    );

    // member list
    let ml = etcdctl_ok(&eps, &["member", "list"], None);
    assert_eq!(ml.lines().count(), 3, "{ml}");
    for n in ["m0", "m1", "m2"] {
        assert!(
            ml.contains(&format!(", started, {n}, http://127.0.0.1:")),
            "{ml}"
        );
    }

    // endpoint status -w json: all agree on one leader, version 3.6.0
    let st = json(&etcdctl_ok(
        &eps,
        &["endpoint", "status", "-w", "json"],
        None,
    ));
    let arr = st.as_array().expect("array");
    assert_eq!(arr.len(), 3);
    let leader = arr[0]["Status"]["leader"].as_u64().expect("leader");
    assert!(leader != 0);
    for s in arr {
        assert_eq!(s["Status"]["leader"].as_u64(), Some(leader));
        assert_eq!(s["Status"]["version"], "3.6.0");
        assert!(s["Status"]["dbSize"].as_i64().unwrap_or(0) > 0, "{s}");
    }

    // endpoint health
    let h = etcdctl(&eps, &["endpoint", "health"], None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&h.stdout),
        String::from_utf8_lossy(&h.stderr)
    );
    assert!(h.status.success(), "{text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");

    // compaction
    let cur = json(&etcdctl_ok(&eps, &["get", "foo", "-w", "json"], None))["header"]["revision"]
        .as_i64()
        .expect("rev");
    let out = etcdctl_ok(&eps, &["compaction", &(cur - 1).to_string()], None);
    assert_eq!(out.trim(), format!("compacted revision {}", cur - 1));
    let old = etcdctl(&eps, &["get", "foo", "--rev", &bar_rev.to_string()], None);
    assert!(!old.status.success());
    assert!(String::from_utf8_lossy(&old.stderr).contains("required revision has been compacted"));
    let fut = etcdctl(
        &eps,
        &["get", "foo", "--rev", &(cur + 100).to_string()],
        None,
    );
    assert!(String::from_utf8_lossy(&fut.stderr).contains("required revision is a future revision"));

    // HTTP endpoints
    let (code, body) = http_get(&c.endpoint(0), "/health");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["health"], "true");
    let (code, body) = http_get(&c.endpoint(1), "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("etcd_server_has_leader 1"), "{body}");
    assert!(
        body.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}"),
        "{body}"
    );
    assert!(
        body.contains("etcd_server_leader_changes_seen_total 1"),
        "{body}"
    );
    let (code, body) = http_get(&c.endpoint(2), "/version");
    assert_eq!(code, 200);
    assert_eq!(json(&body)["etcdserver"], "3.6.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_client_crate_and_request_errors() {
    use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
    let c = Cluster::start(Kind::Ours, 3, &["--max-request-bytes=4096"]);
    c.wait_ready(Duration::from_secs(20)).await;
    let mut cl = Client::connect([c.endpoint(0), c.endpoint(2)], None)
        .await
        .expect("connect");
    let r = cl.put("k", "v1", None).await.expect("put");
    let rev1 = r.header().expect("header").revision();
    let r = cl
        .put("k", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    assert_eq!(r.prev_key().map(|kv| kv.value()), Some(&b"v1"[..]));
    let g = cl
        .get("k", Some(GetOptions::new().with_revision(rev1)))
        .await
        .expect("get");
    assert_eq!(g.kvs()[0].value(), b"v1");
    let t = cl
        .txn(
            Txn::new()
                .when([Compare::value("k", CompareOp::Equal, "v2")])
                .and_then([TxnOp::put("k2", "x", None), TxnOp::get("k", None)]),
        )
        .await
        .expect("txn");
    assert!(t.succeeded());
    let g = cl
        .get("k2", Some(GetOptions::new().with_serializable()))
        .await
        .expect("get");
    assert_eq!(g.kvs().len(), 1);

    // Errors with etcd's codes and messages.
    let e = cl.put("", "v", None).await.expect_err("empty key");
    assert!(
        e.to_string().contains("etcdserver: key is not provided"),
        "{e}"
    );
    let e = cl
        .put("big", vec![b'x'; 8000], None)
        .await
        .expect_err("too large");
    assert!(
        e.to_string().contains("etcdserver: request is too large"),
        "{e}"
    );
    let e = cl
        .get("k", Some(GetOptions::new().with_revision(1_000_000)))
        .await
        .expect_err("future");
    assert!(
        e.to_string()
            .contains("required revision is a future revision"),
        "{e}"
    );
    let e = cl
        .put("k", "v", Some(PutOptions::new().with_lease(42)))
        .await
        .expect_err("lease");
    assert!(e.to_string().contains("requested lease not found"), "{e}");
    let ops: Vec<TxnOp> = (0..200)
        .map(|i| TxnOp::put(format!("t{i}"), "v", None))
        .collect();
    let e = cl
        .txn(Txn::new().and_then(ops))
        .await
        .expect_err("too many ops");
    assert!(
        e.to_string().contains("too many operations in txn request"),
        "{e}"
    );
    let e = cl
        .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
        .await
        .expect_err("dup");
    assert!(
        e.to_string().contains("duplicate key given in txn request"),
        "{e}"
    );
    // The cluster is still fine after bad requests.
    cl.put("after", "ok", None).await.expect("put after errors");
}

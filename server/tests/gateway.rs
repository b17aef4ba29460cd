//! The JSON gateway (`POST /v3/...`) against real etcd 3.5.1's: the same script of requests to
//! a one-member cluster of each, answered with the same HTTP status, the same JSON (member and
//! cluster ids and raft terms aside, which differ by nature) and etcd's error bodies; streams
//! (`/v3/watch`, `/v3/lease/keepalive`) as one `{"result":...}` line per message.
#![allow(clippy::disallowed_methods)]

mod common;

use bytes::Bytes;
use common::{Cluster, Kind};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::time::Duration;

/// One answer: the status, the content type, the body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn send(
    ep: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, hyper::body::Incoming) {
    let stream = tokio::net::TcpStream::connect(ep).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, ep)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status().as_u16(), content_type, resp.into_body())
}

async fn call(ep: &str, method: &str, path: &str, body: &str) -> Answer {
    let (status, content_type, incoming) = send(ep, method, path, body).await;
    let bytes = tokio::time::timeout(Duration::from_secs(10), incoming.collect())
        .await
        .expect("the answer within 10 s")
        .expect("read body")
        .to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The first `n` lines a streaming call answers (fewer if it ends or stalls for 5 s).
async fn stream_lines(ep: &str, path: &str, body: &str, n: usize) -> (u16, Vec<String>) {
    let (status, _, mut incoming) = send(ep, "POST", path, body).await;
    let mut text = String::new();
    while text.matches('\n').count() < n {
        match tokio::time::timeout(Duration::from_secs(5), incoming.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            _ => break,
        }
    }
    (status, text.lines().take(n).map(str::to_string).collect())
}

/// Drops what differs between any two clusters: ids and terms in headers and members.
fn normalize(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                let is_member = m.contains_key("peerURLs");
                for k in [
                    "cluster_id",
                    "member_id",
                    "raft_term",
                    "peerURLs",
                    "clientURLs",
                ] {
                    if m.contains_key(k) {
                        m.insert(k.to_string(), Value::String("*".into()));
                    }
                }
                if is_member {
                    m.insert("ID".to_string(), Value::String("*".into()));
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// What one step of the script checks.
#[derive(Clone, Copy)]
enum Compare {
    /// Status and normalized JSON equal.
    Exact,
    /// Status equal, and error code (bodies whose message is Go's or serde's JSON parser's).
    ErrorCode,
    /// Status equal; our object has every key real etcd's has (values vary: sizes, indexes).
    Keys,
    /// Status and the plain-text body equal (Go's http.Error).
    Text,
}

const SCRIPT: &[(&str, &str, &str, Compare)] = &[
    (
        "POST",
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmFy"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/put",
        r#"{"key":"Zm9vMg==","value":"eA==","prev_kv":true}"#,
        Compare::Exact,
    ),
    ("POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#, Compare::Exact),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","sort_order":"DESCEND","sort_target":"KEY"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","countOnly":true}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","keys_only":true,"limit":"1"}"#,
        Compare::Exact,
    ),
    ("POST", "/v3/kv/range", r#"{"key":"bm8="}"#, Compare::Exact),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":"100"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":100}"#,
        Compare::Exact,
    ),
    ("POST", "/v3/kv/range", r#"{"nope":1}"#, Compare::Exact),
    ("POST", "/v3/kv/range", "", Compare::Exact),
    ("POST", "/v3/kv/range", "{bad", Compare::ErrorCode),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","limit":"x"}"#,
        Compare::ErrorCode,
    ),
    ("POST", "/v3/kv/put", r#"{"key":"!!"}"#, Compare::ErrorCode),
    (
        "POST",
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"BOGUS"}]}"#,
        Compare::ErrorCode,
    ),
    ("GET", "/v3/kv/range", "", Compare::Text),
    ("POST", "/v3/no/such/path", "{}", Compare::Text),
    (
        "POST",
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"VALUE","result":"EQUAL","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],"failure":[{"request_range":{"key":"Zm9v"}}]}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"MOD","result":"LESS","mod_revision":"2"}],"success":[{"request_put":{"key":"Zm9v"}}],"failure":[{"request_range":{"key":"Zm9v"}},{"request_delete_range":{"key":"Zm9vMg==","prev_kv":true}}]}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/deleterange",
        r#"{"key":"Zm9v","prev_kv":true}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/compaction",
        r#"{"revision":"3"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/compaction",
        r#"{"revision":"2"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":"2"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/lease/grant",
        r#"{"TTL":"30","ID":"7"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/lease/grant",
        r#"{"TTL":30,"ID":7}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","value":"eQ==","lease":"7"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","lease":"99"}"#,
        Compare::Exact,
    ),
    (
        "POST",
        "/v3/lease/timetolive",
        r#"{"ID":"7","keys":true}"#,
        Compare::Keys,
    ),
    ("POST", "/v3/lease/leases", "{}", Compare::Exact),
    ("POST", "/v3/kv/lease/leases", "{}", Compare::Exact),
    ("POST", "/v3/lease/revoke", r#"{"ID":"7"}"#, Compare::Exact),
    ("POST", "/v3/lease/revoke", r#"{"ID":"7"}"#, Compare::Exact),
    (
        "POST",
        "/v3/kv/lease/revoke",
        r#"{"ID":"8"}"#,
        Compare::Exact,
    ),
    ("POST", "/v3/cluster/member/list", "{}", Compare::Exact),
    ("POST", "/v3/maintenance/status", "{}", Compare::Keys),
    ("POST", "/v3/maintenance/alarm", "{}", Compare::Exact),
    ("POST", "/v3/maintenance/defragment", "{}", Compare::Exact),
];

fn compare(step: &str, how: Compare, real: &Answer, ours: &Answer) {
    assert_eq!(
        real.status, ours.status,
        "{step}: status\nreal: {}\nours: {}",
        real.body, ours.body
    );
    match how {
        Compare::Exact => assert_eq!(
            normalize(real.json()),
            normalize(ours.json()),
            "{step}\nreal: {}\nours: {}",
            real.body,
            ours.body
        ),
        Compare::ErrorCode => {
            assert_eq!(real.json()["code"], ours.json()["code"], "{step}: code");
            for body in [real.json(), ours.json()] {
                assert_eq!(body["error"], body["message"], "{step}: {body}");
            }
        }
        Compare::Keys => {
            let (r, o) = (real.json(), ours.json());
            let (Some(r), Some(o)) = (r.as_object(), o.as_object()) else {
                panic!("{step}: not objects: {r} / {o}");
            };
            for k in r.keys() {
                assert!(o.contains_key(k), "{step}: ours lacks {k}: {}", ours.body);
            }
        }
        Compare::Text => assert_eq!(real.body, ours.body, "{step}: body"),
    }
    assert_eq!(real.content_type, ours.content_type, "{step}: content type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_as_real_etcd_3_5_1_does() {
    let real = Cluster::start(Kind::RealEtcd, 1, &[]);
    let ours = Cluster::start(Kind::Ours, 1, &["--emulate-release=3.5.20"]);
    real.wait_ready(Duration::from_secs(30)).await;
    ours.wait_ready(Duration::from_secs(30)).await;
    for (method, path, body, how) in SCRIPT {
        let step = format!("{method} {path} {body}");
        let r = call(&real.endpoint(0), method, path, body).await;
        let o = call(&ours.endpoint(0), method, path, body).await;
        compare(&step, *how, &r, &o);
    }

    // A watch from a compacted revision is created, then canceled with the compact revision.
    let compacted = r#"{"create_request":{"key":"Zm9v","start_revision":"1"}}"#;
    let (rs, r) = stream_lines(&real.endpoint(0), "/v3/watch", compacted, 2).await;
    let (os, o) = stream_lines(&ours.endpoint(0), "/v3/watch", compacted, 2).await;
    assert_eq!((rs, r.len()), (os, o.len()), "watch: {r:?} / {o:?}");
    for (r, o) in r.iter().zip(&o) {
        let (r, o): (Value, Value) = (
            serde_json::from_str(r).expect("real"),
            serde_json::from_str(o).expect("ours"),
        );
        assert_eq!(normalize(r), normalize(o));
    }

    // A watch stays open after the request body ends, and streams what is written next.
    for c in [&real, &ours] {
        let ep = c.endpoint(0);
        let watch = tokio::spawn({
            let ep = ep.clone();
            async move {
                stream_lines(
                    &ep,
                    "/v3/watch",
                    r#"{"create_request":{"key":"dw==","prev_kv":true}}"#,
                    2,
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        call(
            &ep,
            "POST",
            "/v3/kv/put",
            r#"{"key":"dw==","value":"MQ=="}"#,
        )
        .await;
        let (status, lines) = watch.await.expect("watch task");
        assert_eq!(status, 200);
        assert_eq!(lines.len(), 2, "{:?}: {lines:?}", c.kind);
        let event: Value = serde_json::from_str(&lines[1]).expect("event line");
        let kv = &event["result"]["events"][0]["kv"];
        assert_eq!(
            (kv["key"].as_str(), kv["value"].as_str()),
            (Some("dw=="), Some("MQ==")),
            "{:?}: {event}",
            c.kind
        );
    }

    // Keep-alive: one result per request; an unknown lease answers TTL 0 (omitted).
    for body in [r#"{"ID":"12345"}"#] {
        let (rs, r) = stream_lines(&real.endpoint(0), "/v3/lease/keepalive", body, 1).await;
        let (os, o) = stream_lines(&ours.endpoint(0), "/v3/lease/keepalive", body, 1).await;
        assert_eq!(rs, os);
        let (r, o): (Value, Value) = (
            serde_json::from_str(&r[0]).expect("real"),
            serde_json::from_str(&o[0]).expect("ours"),
        );
        assert_eq!(normalize(r), normalize(o));
    }
}

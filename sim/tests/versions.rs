//! Release lines in the simulator: a 3-member cluster on 3.5.20 rolled member by member to
//! 3.6.0 under writes keeps cluster version 3.5 until the last member runs 3.6, then moves to
//! 3.6 through raft, and every member's storage version follows; a member restarted on 3.5
//! after that refuses to start with etcd's error and starts fine on 3.6 again.

use etcd_server::etcdserver::version::Versions;
use sim::faults::Fault;
use sim::workload::{assert_no_acked_write_lost, start_writer};
use sim::{SimConfig, Simulation};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Time for the leader's monitor (every 4 s) to decide and the change to apply.
const SETTLE: Duration = Duration::from_secs(10);

fn versions(s: &Simulation) -> Vec<(String, Option<Versions>)> {
    s.member_names()
        .into_iter()
        .map(|m| {
            let v = s.server(&m).map(|srv| srv.versions());
            (m, v)
        })
        .collect()
}

/// One member's (server, cluster, storage) versions as `/version` answers them.
type Triple = (String, String, Option<String>);

/// Every member's (server, cluster, storage) versions.
fn triples(s: &Simulation) -> Vec<Triple> {
    versions(s)
        .into_iter()
        .map(|(m, v)| {
            let v = v.unwrap_or_else(|| panic!("{m} is not running: {:?}", s.exit_reason(&m)));
            (v.etcdserver, v.etcdcluster, v.storage)
        })
        .collect()
}

fn restart_as(s: &mut Simulation, node: &str, release: &str) {
    s.apply(Fault::RestartAs {
        node: node.to_string(),
        release: release.to_string(),
    })
    .unwrap();
}

/// The whole roll; returns the versions seen after each step and the trace hash.
fn rolling_upgrade(seed: u64) -> (Vec<Vec<Triple>>, String) {
    let cfg = SimConfig::new(seed, 3).flag("--emulate-release=3.5.20");
    let mut s = Simulation::new(cfg).unwrap();
    let leader = s.await_leader(Duration::from_secs(10)).unwrap();
    let stop = Rc::new(Cell::new(false));
    let members = s.member_names();
    let writes = start_writer(
        &mut s,
        "writer",
        members,
        Duration::from_millis(50),
        stop.clone(),
    )
    .unwrap();
    s.run_for(SETTLE).unwrap();
    let mut steps = vec![triples(&s)];
    // Followers first, the leader last, as an operator rolls a cluster.
    let mut order: Vec<String> = s
        .member_names()
        .into_iter()
        .filter(|m| *m != leader)
        .collect();
    order.push(leader);
    for m in &order {
        restart_as(&mut s, m, "3.6.0");
        s.run_for(SETTLE).unwrap();
        steps.push(triples(&s));
    }
    stop.set(true);
    s.run_clients(Duration::from_secs(20)).unwrap();
    assert_no_acked_write_lost(&mut s, &writes.borrow()).unwrap();
    (steps, s.trace_hash())
}

#[test]
fn a_rolling_upgrade_moves_the_cluster_version_only_after_the_last_member() {
    let (steps, hash) = rolling_upgrade(3);
    let t = |srv: &str, cl: &str, st: Option<&str>| {
        (srv.to_string(), cl.to_string(), st.map(str::to_string))
    };
    let on35 = t("3.5.20", "3.5.0", None);
    let on36_in_35 = t("3.6.0", "3.5.0", Some("unknown"));
    let done = t("3.6.0", "3.6.0", Some("3.6.0"));
    assert_eq!(steps[0], vec![on35.clone(), on35.clone(), on35.clone()]);
    let upgraded_count = |step: &Vec<Triple>| step.iter().filter(|v| **v == on36_in_35).count();
    assert_eq!(
        upgraded_count(&steps[1]),
        1,
        "after one member: {:?}",
        steps[1]
    );
    assert_eq!(
        upgraded_count(&steps[2]),
        2,
        "after two members: {:?}",
        steps[2]
    );
    assert!(
        steps[1].iter().chain(&steps[2]).all(|v| v.1 == "3.5.0"),
        "the cluster version moved before the last member: {steps:?}"
    );
    assert_eq!(
        steps[3],
        vec![done.clone(), done.clone(), done],
        "{steps:?}"
    );
    let (again, again_hash) = rolling_upgrade(3);
    assert_eq!(steps, again);
    assert_eq!(hash, again_hash, "same seed, different trace");
}

#[test]
fn a_3_5_member_refuses_data_of_a_3_6_cluster_and_starts_again_on_3_6() {
    let cfg = SimConfig::new(5, 3).flag("--emulate-release=3.6.0");
    let mut s = Simulation::new(cfg).unwrap();
    s.await_leader(Duration::from_secs(10)).unwrap();
    s.run_for(SETTLE).unwrap();
    assert!(
        triples(&s).iter().all(|v| v.1 == "3.6.0"),
        "{:?}",
        triples(&s)
    );
    restart_as(&mut s, "m1", "3.5.20");
    s.run_for(Duration::from_secs(3)).unwrap();
    assert!(s.server("m1").is_none(), "a 3.5 member started on 3.6 data");
    let reason = s.exit_reason("m1").unwrap_or_default();
    assert!(
        reason
            .contains("invalid downgrade; server version is lower than determined cluster version"),
        "{reason}"
    );
    restart_as(&mut s, "m1", "3.6.0");
    s.run_for(SETTLE).unwrap();
    assert!(
        triples(&s).iter().all(|v| v.1 == "3.6.0"),
        "{:?}",
        triples(&s)
    );
}

/// Sends downgrade requests to `member` one after another; each answer is the response's
/// version or the error message.
fn downgrade_calls(
    s: &mut Simulation,
    member: &str,
    calls: &[(i32, &str)],
) -> Vec<Result<String, String>> {
    let out: Rc<std::cell::RefCell<Vec<Result<String, String>>>> = Rc::default();
    let o = out.clone();
    let member = member.to_string();
    let calls: Vec<(i32, String)> = calls.iter().map(|(a, v)| (*a, v.to_string())).collect();
    let name = format!("operator-{}", s.elapsed().as_millis());
    s.client(&name, move |cx| async move {
        let Ok(mut c) = cx.client(&member) else {
            return;
        };
        for (action, version) in calls {
            let req = etcd_api::etcdserverpb::DowngradeRequest { action, version };
            let r = match c.maintenance.downgrade(req).await {
                Ok(resp) => Ok(resp.into_inner().version),
                Err(status) => Err(status.message().to_string()),
            };
            o.borrow_mut().push(r);
        }
    })
    .unwrap();
    s.run_until("downgrade calls", Duration::from_secs(60), |s| {
        s.client_done(&name)
    })
    .unwrap();
    let answers = out.borrow().clone();
    answers
}

const VALIDATE: i32 = 0;
const ENABLE: i32 = 1;
const CANCEL: i32 = 2;

#[test]
fn a_downgrade_lowers_the_cluster_version_and_ends_when_every_member_runs_3_5() {
    let mut s = Simulation::new(SimConfig::new(7, 3)).unwrap();
    s.await_leader(Duration::from_secs(10)).unwrap();
    s.run_for(SETTLE).unwrap();
    let on36 = (
        "3.6.0".to_string(),
        "3.6.0".to_string(),
        Some("3.6.0".to_string()),
    );
    assert_eq!(triples(&s), vec![on36.clone(), on36.clone(), on36]);
    let answers = downgrade_calls(
        &mut s,
        "m0",
        &[
            (VALIDATE, "3.4"),
            (VALIDATE, "three"),
            (VALIDATE, "3.5"),
            (ENABLE, "3.5"),
            (ENABLE, "3.5"),
        ],
    );
    let err = |m: &str| Err(m.to_string());
    assert_eq!(
        answers,
        vec![
            err("etcdserver: invalid downgrade target version"),
            err("etcdserver: wrong downgrade target version format"),
            Ok("3.6".to_string()),
            Ok("3.6".to_string()),
            err("etcdserver: cluster has a downgrade job in progress"),
        ]
    );
    // The leader adopts the target at once; the storage versions migrate down.
    s.run_for(SETTLE).unwrap();
    let ready = (
        "3.6.0".to_string(),
        "3.5.0".to_string(),
        Some("unknown".to_string()),
    );
    assert_eq!(triples(&s), vec![ready.clone(), ready.clone(), ready]);
    for m in s.member_names() {
        restart_as(&mut s, &m, "3.5.20");
        s.run_for(SETTLE).unwrap();
        assert!(
            s.server(&m).is_some(),
            "{m} did not start on 3.5.20: {:?}",
            s.exit_reason(&m)
        );
    }
    let done = ("3.5.20".to_string(), "3.5.0".to_string(), None);
    assert_eq!(triples(&s), vec![done.clone(), done.clone(), done]);
    for m in s.member_names() {
        let target = s.server(&m).and_then(|srv| srv.downgrade_target());
        assert_eq!(target, None, "{m} still has a downgrade job");
    }
    // 3.5 answers a cancel with no job in flight with an error (3.6 only logs it).
    let answers = downgrade_calls(&mut s, "m1", &[(CANCEL, "")]);
    assert_eq!(answers, vec![err("etcdserver: no inflight downgrade job")]);
}

#[test]
fn a_3_6_member_refuses_storage_written_by_3_7() {
    let cfg = SimConfig::new(9, 3).flag("--emulate-release=3.7.0");
    let mut s = Simulation::new(cfg).unwrap();
    s.await_leader(Duration::from_secs(10)).unwrap();
    s.run_for(SETTLE).unwrap();
    let on37 = (
        "3.7.0".to_string(),
        "3.7.0".to_string(),
        Some("3.7.0".to_string()),
    );
    assert_eq!(triples(&s), vec![on37.clone(), on37.clone(), on37]);
    restart_as(&mut s, "m2", "3.6.0");
    s.run_for(Duration::from_secs(3)).unwrap();
    let reason = s.exit_reason("m2").unwrap_or_default();
    assert!(
        s.server("m2").is_none() && reason.contains("version \"3.7.0\" is not supported"),
        "{reason}"
    );
    assert!(
        reason.contains("/var/lib/etcd/member/snap/db"),
        "names the file: {reason}"
    );
    restart_as(&mut s, "m2", "3.7.0");
    s.run_for(SETTLE).unwrap();
    assert!(s.server("m2").is_some(), "{:?}", s.exit_reason("m2"));
}

/// `/readyz` on a learner fails on non_learner (etcd's `not supported for learner`) while its
/// `/livez` and the other checks pass; a voter's `/readyz` passes.
#[test]
fn a_learners_readyz_fails_on_non_learner() {
    let mut s = Simulation::new(SimConfig::new(13, 3)).unwrap();
    s.await_leader(Duration::from_secs(10)).unwrap();
    let added: Rc<std::cell::RefCell<Option<Result<(), String>>>> = Rc::default();
    let a = added.clone();
    s.client("operator", move |cx| async move {
        let r = async {
            let mut c = cx.client("m0")?;
            let add = etcd_api::etcdserverpb::MemberAddRequest {
                peer_ur_ls: vec![format!("http://m3:{}", sim::PEER_PORT)],
                is_learner: true,
            };
            c.cluster
                .member_add(add)
                .await
                .map_err(|e| e.message().to_string())?;
            Ok(())
        }
        .await;
        *a.borrow_mut() = Some(r);
    })
    .unwrap();
    s.run_until("member add", Duration::from_secs(20), |s| {
        s.client_done("operator")
    })
    .unwrap();
    assert_eq!(added.borrow().clone(), Some(Ok(())));
    s.add_member("m3", &[]).unwrap();
    s.run_for(SETTLE).unwrap();
    assert!(
        s.server("m3").is_some_and(|srv| srv.is_learner()),
        "{:?}",
        s.exit_reason("m3")
    );
    let answers: Rc<std::cell::RefCell<Vec<(u16, String)>>> = Rc::default();
    let out = answers.clone();
    s.client("prober", move |cx| async move {
        for (member, path) in [
            ("m3", "/readyz?verbose"),
            ("m3", "/livez"),
            ("m0", "/readyz"),
        ] {
            let r = cx
                .http_get(member, path)
                .await
                .unwrap_or((0, String::new()));
            out.borrow_mut().push(r);
        }
    })
    .unwrap();
    s.run_until("probes", Duration::from_secs(30), |s| {
        s.client_done("prober")
    })
    .unwrap();
    let answers = answers.borrow().clone();
    assert_eq!(
        answers,
        vec![
            (
                503,
                "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[-]non_learner failed: not supported for learner\n\n"
                    .to_string()
            ),
            (200, "ok\n".to_string()),
            (200, "ok\n".to_string()),
        ]
    );
}

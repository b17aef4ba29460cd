//! etcd v3.6's `/livez` and `/readyz` HTTP endpoints (etcd's
//! `server/etcdserver/api/etcdhttp/health.go`, the `CheckRegistry`).
//!
//! Owns: the check lists (livez: `serializable_read`; readyz: `data_corruption`,
//! `serializable_read`, `linearizable_read`, `non_learner`), the root and per-check sub-paths,
//! the `exclude` and `verbose` query handling, etcd's plain-text bodies and status codes
//! (200 `ok\n`, 503 with every check line plus the newline Go's `http.Error` adds, 405 for a
//! method other than GET), and the `etcd_server_healthcheck` / `etcd_server_healthchecks_total`
//! metrics in a small registry ([`HealthMetrics`]) handed in by the caller (no globals).
//!
//! Must never: change server state (no proposals, no alarm changes), hold the store lock across
//! an await, block on raft longer than `linearizable_read`'s request timeout, or panic on
//! anything that comes from a request.

use crate::alarm::{alarm_name, CORRUPT};
use crate::etcdserver::EtcdServer;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use etcd_api::etcdserverpb as pb;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// etcd's `HealthStatusSuccess`.
pub(crate) const STATUS_SUCCESS: &str = "success";
/// etcd's `HealthStatusError`.
pub(crate) const STATUS_ERROR: &str = "error";

/// One named health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Fails while a CORRUPT alarm is active.
    DataCorruption,
    /// A local (serializable) keys-only range of limit 1 on this member's store.
    SerializableRead,
    /// A read index through raft, then the same local range.
    LinearizableRead,
    /// Fails on a learner.
    NonLearner,
}

impl Check {
    /// The name etcd registers the check under (also its sub-path and metric label).
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }
}

/// Which registry: `/livez` or `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Livez,
    Readyz,
}

/// livez checks, in registration order.
const LIVEZ_CHECKS: &[Check] = &[Check::SerializableRead];

/// readyz checks, in registration order.
const READYZ_CHECKS: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
];

impl Kind {
    /// etcd's `checkType`, the `type` metric label.
    fn type_name(self) -> &'static str {
        match self {
            Kind::Livez => "livez",
            Kind::Readyz => "readyz",
        }
    }

    /// The root path.
    fn root(self) -> &'static str {
        match self {
            Kind::Livez => "/livez",
            Kind::Readyz => "/readyz",
        }
    }

    /// The registered checks, in the order they run and are printed.
    ///
    /// etcd keeps its checks in a Go map, so its run order and verbose line order are random;
    /// we deliberately use the registration order instead so the output is deterministic.
    fn checks(self) -> &'static [Check] {
        match self {
            Kind::Livez => LIVEZ_CHECKS,
            Kind::Readyz => READYZ_CHECKS,
        }
    }
}

/// Per-series values: (gauge, success count, error count).
pub(crate) type Series = (i64, u64, u64);

/// The health check metrics: gauge `etcd_server_healthcheck{type,name}` (1 when the last run
/// succeeded, 0 when it failed) and counter `etcd_server_healthchecks_total{type,name,status}`.
///
/// Build one with `HealthMetrics::default()`, share it (`Arc`) with [`router`] and with the
/// `/metrics` collector, which reads [`HealthMetrics::series`].
#[derive(Debug, Default)]
pub struct HealthMetrics {
    /// Keyed by (type, name).
    series: Mutex<BTreeMap<(&'static str, &'static str), Series>>,
}

impl HealthMetrics {
    /// Records one run of check `name` of registry `check_type` (etcd's `recordMetrics`).
    pub(crate) fn record(&self, check_type: &'static str, name: &'static str, ok: bool) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry((check_type, name)).or_insert((0, 0, 0));
        if ok {
            s.0 = 1;
            s.1 += 1;
        } else {
            s.0 = 0;
            s.2 += 1;
        }
    }

    /// Every series recorded so far: ((type, name), (gauge, successes, errors)).
    pub(crate) fn series(&self) -> Vec<((&'static str, &'static str), Series)> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// What the handlers share.
#[derive(Clone)]
struct HealthState {
    server: EtcdServer,
    metrics: Arc<HealthMetrics>,
}

/// `/livez`, `/readyz` and their per-check sub-paths (`/livez/serializable_read`,
/// `/readyz/data_corruption`, `/readyz/serializable_read`, `/readyz/linearizable_read`,
/// `/readyz/non_learner`). Every check run is recorded in `metrics`.
pub fn router(server: EtcdServer, metrics: Arc<HealthMetrics>) -> axum::Router {
    let mut r: axum::Router<HealthState> = axum::Router::new();
    for kind in [Kind::Livez, Kind::Readyz] {
        r = r.route(
            kind.root(),
            any(
                move |State(st): State<HealthState>, method: Method, RawQuery(q): RawQuery| {
                    serve(st, kind, None, method, q)
                },
            ),
        );
        for &check in kind.checks() {
            r = r.route(
                &format!("{}/{}", kind.root(), check.name()),
                any(
                    move |State(st): State<HealthState>, method: Method, RawQuery(q): RawQuery| {
                        serve(st, kind, Some(check), method, q)
                    },
                ),
            );
        }
    }
    r.with_state(HealthState { server, metrics })
}

/// etcd's `newHealthHandler`: GET only, runs the selected checks, writes the answer.
async fn serve(
    st: HealthState,
    kind: Kind,
    only: Option<Check>,
    method: Method,
    raw_query: Option<String>,
) -> Response {
    let path = match only {
        None => kind.root().to_string(),
        Some(c) => format!("{}/{}", kind.root(), c.name()),
    };
    if method != Method::GET {
        tracing::warn!(path = %path, "status-code" = 405u16, "Health request error");
        return text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n".to_string(),
            true,
        );
    }
    let query = parse_query(raw_query.as_deref());
    let selection = select_checks(kind.checks(), only, &query.exclude);
    if !selection.missing.is_empty() {
        let quoted: Vec<String> = selection.missing.iter().map(|m| format!("{m:?}")).collect();
        tracing::warn!(
            "missing-health-checks" = %quoted.join(","),
            "some health checks cannot be excluded"
        );
    }
    let mut results: Vec<(&'static str, Result<(), String>)> =
        Vec::with_capacity(selection.run.len());
    for check in &selection.run {
        let result = run_check(&st.server, *check).await;
        st.metrics
            .record(kind.type_name(), check.name(), result.is_ok());
        results.push((check.name(), result));
    }
    let (code, body) = respond(&results, query.verbose);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(
            path = %path,
            reason = %body.trim_end(),
            "status-code" = code.as_u16(),
            "Health check error"
        );
    } else {
        tracing::debug!(path = %path, "status-code" = code.as_u16(), "Health check OK");
    }
    text_response(code, body, false)
}

/// A plain-text answer with the headers Go's `http.Error` sets (and etcd sets on success).
fn text_response(code: StatusCode, body: String, allow_get: bool) -> Response {
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if allow_get {
        h.insert(header::ALLOW, HeaderValue::from_static("GET"));
    }
    resp
}

/// Runs one check; `Err` holds the reason printed after `failed: `.
async fn run_check(server: &EtcdServer, check: Check) -> Result<(), String> {
    match check {
        Check::DataCorruption => {
            if server.alarms().list(CORRUPT).is_empty() {
                Ok(())
            } else {
                Err(format!("alarm activated: {}", alarm_name(CORRUPT)))
            }
        }
        Check::SerializableRead => local_read(server),
        Check::LinearizableRead => {
            server
                .linearizable_read()
                .await
                .map_err(|e| e.message().to_string())?;
            local_read(server)
        }
        Check::NonLearner => {
            if server.is_learner() {
                Err("not supported for learner".to_string())
            } else {
                Ok(())
            }
        }
    }
}

/// etcd's readCheck body: `Range{KeysOnly: true, Limit: 1}` served from the local store.
/// Synchronous on purpose: the store lock is released before any await.
fn local_read(server: &EtcdServer) -> Result<(), String> {
    let req = pb::RangeRequest {
        keys_only: true,
        limit: 1,
        serializable: true,
        ..Default::default()
    };
    let result = server.store().range(&req).map(|_| ());
    result.map_err(|e| e.to_string())
}

/// The query flags the health endpoints read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct HealthQuery {
    /// The key `verbose` is present (any value, or none).
    verbose: bool,
    /// Check names from every `exclude` value (repeatable, comma-separated too), deduplicated,
    /// empty names dropped, in query order.
    exclude: Vec<String>,
}

/// Parses a raw query string the way Go's `url.ParseQuery` does for our purposes: pairs split
/// on `&`, a pair containing `;` or with a bad `%` escape is skipped, `+` is a space.
fn parse_query(raw: Option<&str>) -> HealthQuery {
    let mut q = HealthQuery::default();
    for pair in raw.unwrap_or("").split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (unescape(k), unescape(v)) else {
            continue;
        };
        match k.as_str() {
            "verbose" => q.verbose = true,
            "exclude" => {
                for name in v.split(',') {
                    if !name.is_empty() && !q.exclude.iter().any(|e| e == name) {
                        q.exclude.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    q
}

/// Go's `url.QueryUnescape`: `%XX` escapes and `+` as space; `None` on a malformed escape.
fn unescape(s: &str) -> Option<String> {
    fn hex(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi << 4) | lo);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Which checks a request runs, and which excluded names matched nothing.
#[derive(Debug, PartialEq, Eq)]
struct Selection {
    run: Vec<Check>,
    missing: Vec<String>,
}

/// etcd's `filterCheckList` for a root path (`only == None`): the registered checks minus the
/// excluded ones, in registration order; unknown excluded names go to `missing`. A sub-path
/// (`only == Some`) runs just that check and ignores `exclude`.
fn select_checks(registered: &[Check], only: Option<Check>, exclude: &[String]) -> Selection {
    if let Some(check) = only {
        return Selection {
            run: vec![check],
            missing: Vec::new(),
        };
    }
    let run = registered
        .iter()
        .copied()
        .filter(|c| !exclude.iter().any(|e| e == c.name()))
        .collect();
    let missing = exclude
        .iter()
        .filter(|e| !registered.iter().any(|c| c.name() == e.as_str()))
        .cloned()
        .collect();
    Selection { run, missing }
}

/// The status code and body for the check results, in run order (etcd's `runHealthChecks` +
/// `newHealthHandler`): all ok gives 200 with `ok\n` (the lines first when `verbose`); any
/// failure gives 503 with every line plus the extra newline of Go's `http.Error`, and no `ok`.
fn respond(results: &[(&str, Result<(), String>)], verbose: bool) -> (StatusCode, String) {
    let mut lines = String::new();
    let mut failed = false;
    for (name, result) in results {
        match result {
            Ok(()) => {
                let _ = writeln!(lines, "[+]{name} ok");
            }
            Err(reason) => {
                failed = true;
                let _ = writeln!(lines, "[-]{name} failed: {reason}");
            }
        }
    }
    if failed {
        lines.push('\n');
        return (StatusCode::SERVICE_UNAVAILABLE, lines);
    }
    let mut body = if verbose { lines } else { String::new() };
    body.push_str("ok\n");
    (StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().map(|c| c.name()).collect()
    }

    /// Runs selection + response with canned results (a check not in `fails` succeeds).
    fn answer(
        kind: Kind,
        only: Option<Check>,
        raw: Option<&str>,
        fails: &[(Check, &str)],
    ) -> (StatusCode, String) {
        let q = parse_query(raw);
        let sel = select_checks(kind.checks(), only, &q.exclude);
        let results: Vec<(&str, Result<(), String>)> = sel
            .run
            .iter()
            .map(|c| {
                let r = match fails.iter().find(|(f, _)| f == c) {
                    Some((_, why)) => Err(why.to_string()),
                    None => Ok(()),
                };
                (c.name(), r)
            })
            .collect();
        respond(&results, q.verbose)
    }

    #[test]
    fn registration_order_is_fixed() {
        assert_eq!(names(Kind::Livez.checks()), vec!["serializable_read"]);
        assert_eq!(
            names(Kind::Readyz.checks()),
            vec![
                "data_corruption",
                "serializable_read",
                "linearizable_read",
                "non_learner"
            ]
        );
    }

    #[test]
    fn success_non_verbose_is_ok() {
        assert_eq!(
            answer(Kind::Readyz, None, None, &[]),
            (StatusCode::OK, "ok\n".to_string())
        );
        assert_eq!(
            answer(Kind::Livez, None, Some(""), &[]),
            (StatusCode::OK, "ok\n".to_string())
        );
    }

    #[test]
    fn verbose_lists_lines_then_ok() {
        let want = "[+]data_corruption ok\n[+]serializable_read ok\n\
                    [+]linearizable_read ok\n[+]non_learner ok\nok\n";
        for raw in ["verbose", "verbose=", "verbose=false", "exclude=&verbose=1"] {
            assert_eq!(
                answer(Kind::Readyz, None, Some(raw), &[]),
                (StatusCode::OK, want.to_string()),
                "query {raw:?}"
            );
        }
        // A key that only starts with "verbose" does not count.
        assert_eq!(answer(Kind::Livez, None, Some("verbosex"), &[]).1, "ok\n");
    }

    #[test]
    fn failure_is_503_with_all_lines_and_extra_newline() {
        let (code, body) = answer(
            Kind::Readyz,
            None,
            None,
            &[(Check::LinearizableRead, "etcdserver: request timed out")],
        );
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "[+]data_corruption ok\n[+]serializable_read ok\n\
             [-]linearizable_read failed: etcdserver: request timed out\n\
             [+]non_learner ok\n\n"
        );
        assert!(!body.contains("ok\nok"));
        // Verbose changes nothing on failure.
        assert_eq!(
            answer(
                Kind::Readyz,
                None,
                Some("verbose"),
                &[(Check::LinearizableRead, "etcdserver: request timed out")]
            ),
            (code, body)
        );
    }

    #[test]
    fn failure_reasons_for_alarm_and_learner() {
        let (code, body) = answer(
            Kind::Readyz,
            None,
            Some("exclude=serializable_read&exclude=linearizable_read"),
            &[
                (Check::DataCorruption, "alarm activated: CORRUPT"),
                (Check::NonLearner, "not supported for learner"),
            ],
        );
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "[-]data_corruption failed: alarm activated: CORRUPT\n\
             [-]non_learner failed: not supported for learner\n\n"
        );
    }

    #[test]
    fn exclude_known_name_removes_the_check() {
        let q = parse_query(Some("exclude=linearizable_read"));
        assert_eq!(q.exclude, vec!["linearizable_read".to_string()]);
        let sel = select_checks(Kind::Readyz.checks(), None, &q.exclude);
        assert_eq!(
            sel.run,
            vec![
                Check::DataCorruption,
                Check::SerializableRead,
                Check::NonLearner
            ]
        );
        assert!(sel.missing.is_empty());
        // The excluded check's failure no longer matters.
        assert_eq!(
            answer(
                Kind::Readyz,
                None,
                Some("exclude=linearizable_read&verbose"),
                &[(Check::LinearizableRead, "etcdserver: no leader")]
            ),
            (
                StatusCode::OK,
                "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n"
                    .to_string()
            )
        );
    }

    #[test]
    fn exclude_unknown_name_is_ignored_and_reported_missing() {
        let q = parse_query(Some("exclude=foo&exclude=non_learner&exclude=foo"));
        assert_eq!(
            q.exclude,
            vec!["foo".to_string(), "non_learner".to_string()]
        );
        let sel = select_checks(Kind::Readyz.checks(), None, &q.exclude);
        assert_eq!(
            sel.run,
            vec![
                Check::DataCorruption,
                Check::SerializableRead,
                Check::LinearizableRead
            ]
        );
        assert_eq!(sel.missing, vec!["foo".to_string()]);
        // An unknown name alone changes nothing.
        assert_eq!(
            answer(Kind::Livez, None, Some("exclude=bogus"), &[]),
            (StatusCode::OK, "ok\n".to_string())
        );
        // A readyz-only name is unknown on livez.
        let sel = select_checks(Kind::Livez.checks(), None, &["non_learner".to_string()]);
        assert_eq!(sel.run, vec![Check::SerializableRead]);
        assert_eq!(sel.missing, vec!["non_learner".to_string()]);
    }

    #[test]
    fn exclude_accepts_commas_and_escapes() {
        let q = parse_query(Some(
            "exclude=data_corruption,non_learner,&exclude=non%5Flearner",
        ));
        assert_eq!(
            q.exclude,
            vec!["data_corruption".to_string(), "non_learner".to_string()]
        );
        assert!(!q.verbose);
        let sel = select_checks(Kind::Readyz.checks(), None, &q.exclude);
        assert_eq!(
            sel.run,
            vec![Check::SerializableRead, Check::LinearizableRead]
        );
        assert!(sel.missing.is_empty());
        // Excluding everything runs nothing and is healthy.
        assert_eq!(
            answer(
                Kind::Livez,
                None,
                Some("exclude=serializable_read&verbose"),
                &[(Check::SerializableRead, "boom")]
            ),
            (StatusCode::OK, "ok\n".to_string())
        );
    }

    #[test]
    fn malformed_query_pairs_are_skipped() {
        let q = parse_query(Some("exclude=%zz&exclude=a;b&&=x&exclude=non_learner"));
        assert_eq!(q.exclude, vec!["non_learner".to_string()]);
        assert!(!q.verbose);
        assert_eq!(unescape("a+b%20c"), Some("a b c".to_string()));
        assert_eq!(unescape("%4"), None);
    }

    #[test]
    fn sub_path_runs_one_check_and_ignores_exclude() {
        let excl = vec!["linearizable_read".to_string(), "unknown".to_string()];
        let sel = select_checks(Kind::Readyz.checks(), Some(Check::LinearizableRead), &excl);
        assert_eq!(
            sel,
            Selection {
                run: vec![Check::LinearizableRead],
                missing: Vec::new()
            }
        );
        assert_eq!(
            answer(
                Kind::Readyz,
                Some(Check::LinearizableRead),
                Some("exclude=linearizable_read&verbose"),
                &[]
            ),
            (StatusCode::OK, "[+]linearizable_read ok\nok\n".to_string())
        );
        assert_eq!(
            answer(
                Kind::Readyz,
                Some(Check::LinearizableRead),
                Some("exclude=linearizable_read"),
                &[(Check::LinearizableRead, "etcdserver: no leader")]
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "[-]linearizable_read failed: etcdserver: no leader\n\n".to_string()
            )
        );
    }
}

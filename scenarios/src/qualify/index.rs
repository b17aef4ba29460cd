//! `index.html` of a qualification: one page a release manager reads first.
//!
//! Owns: the page: the verdict, speed, charts (seeds/min and fsync p99 per scenario, failures
//! by signature), the per-scenario table (runs, failures, leader changes, fsync p99, checker
//! time), failure signatures with their replay commands and links to the failing runs'
//! `history.html`, the defects, determinism and fault coverage. Must never: conclude anything
//! (it draws what `record::conclude` concluded).

use super::plan::ItemKind;
use super::record::{ItemResult, Qualification, Status};
use crate::plot::{self, escape, Scale};
use plotters::style::RGBColor;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Per-scenario numbers over its simulated runs.
#[derive(Default)]
struct ScenarioRow {
    runs: usize,
    failed: usize,
    not_run: usize,
    wall: f64,
    leader_changes: Vec<u64>,
    fsync_p99: Vec<f64>,
    checker: Vec<f64>,
}

fn rows(q: &Qualification) -> BTreeMap<&str, ScenarioRow> {
    let mut out: BTreeMap<&str, ScenarioRow> = BTreeMap::new();
    for r in q.results.iter().filter(|r| r.item.kind == ItemKind::Run) {
        let row = out.entry(r.item.scenario.as_str()).or_default();
        if r.status == Status::NotRun {
            row.not_run += 1;
            continue;
        }
        row.runs += 1;
        row.failed += usize::from(r.status == Status::Fail);
        row.wall += r.wall_seconds;
        row.leader_changes.push(r.leader_changes);
        row.fsync_p99.extend(r.wal_fsync_p99_ms);
        row.checker.push(r.checker_seconds);
    }
    out
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// A link to a kept report's `history.html`, or its replay command alone.
fn link(r: Option<&String>) -> String {
    match r {
        Some(dir) => format!(r#"<a href="{}/history.html">history.html</a>"#, escape(dir)),
        None => String::new(),
    }
}

/// The page.
pub fn page(q: &Qualification) -> String {
    let rows = rows(q);
    let mut h = String::new();
    let verdict_color = match q.verdict.as_str() {
        "pass" => "#1a7f37",
        "fail" => "#c62828",
        _ => "#ef6c00",
    };
    let runs: u64 = q.results.iter().map(|r| r.seeds_run).sum();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>etcd-sim qualification {verdict}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1100px}}table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}.fail{{color:#c62828}}code{{background:#f4f4f4;padding:1px 4px}}.charts svg{{display:block;margin:8px 0}}</style></head><body>
<h1>Qualification: <span style="color:{verdict_color}">{verdict}</span></h1>
<p>commit <code>{commit}</code> · plan <code>{fp}</code>: {seeds} seeds per scenario, {items} items{real} · {shards} shard(s) · {runs} runs · {spm:.1} seeds/min · {sphc:.0} seeds/hour/core</p>
<p>{counts}</p>
"#,
        verdict = q.verdict.to_uppercase(),
        commit = escape(&q.git_commit),
        fp = escape(&q.plan_fingerprint),
        seeds = q.plan.seeds,
        items = q.plan_items,
        real = if q.plan.real { ", real mode" } else { "" },
        shards = q.shards.len(),
        spm = q.seeds_per_minute,
        sphc = q.seeds_per_hour_per_core,
        counts = q
            .counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    failures_section(&mut h, q);
    let speed: Vec<(String, f64)> = rows
        .iter()
        .filter(|(_, r)| r.runs > 0)
        .map(|(n, r)| (n.to_string(), r.runs as f64 * 60.0 / r.wall.max(1e-9)))
        .collect();
    let fsync: Vec<(String, f64)> = rows
        .iter()
        .filter(|(_, r)| !r.fsync_p99.is_empty())
        .map(|(n, r)| (n.to_string(), max(&r.fsync_p99)))
        .collect();
    let sigs: Vec<(String, f64)> = q
        .signatures
        .iter()
        .map(|g| (g.signature.clone(), g.runs as f64))
        .collect();
    h.push_str(r#"<h2>Charts</h2><div class="charts">"#);
    let charts = [
        (
            "failures by signature",
            "failed runs",
            &sigs,
            Scale::Linear,
            RGBColor(198, 40, 40),
        ),
        (
            "speed per scenario (one core)",
            "seeds per minute",
            &speed,
            Scale::Linear,
            RGBColor(21, 101, 192),
        ),
        (
            "worst WAL fsync p99 per scenario",
            "ms",
            &fsync,
            Scale::Log,
            RGBColor(239, 108, 0),
        ),
    ];
    for (title, unit, data, scale, color) in charts {
        if !data.is_empty() {
            h.push_str(&plot::bars(title, unit, data, scale, color));
        }
    }
    h.push_str("</div>");
    scenario_table(&mut h, &rows);
    defects_section(&mut h, q);
    determinism_section(&mut h, q);
    coverage_section(&mut h, q);
    shards_section(&mut h, q);
    h.push_str("</body></html>\n");
    h
}

fn failures_section(h: &mut String, q: &Qualification) {
    if !q.signatures.is_empty() {
        h.push_str("<h2>Failures by signature</h2><table><tr><th>signature</th><th>runs</th><th>fastest</th><th>replay</th><th>report</th></tr>");
        for g in &q.signatures {
            let _ = write!(
                h,
                "<tr><td class=fail>{}</td><td>{}</td><td>{} seed {} ({:.1} s)</td><td><code>{}</code></td><td>{}</td></tr>",
                escape(&g.signature),
                g.runs,
                escape(&g.fastest),
                g.seed,
                g.wall_seconds,
                escape(&g.replay),
                link(g.report.as_ref())
            );
        }
        h.push_str("</table>");
    }
    let bad: Vec<&ItemResult> = q
        .results
        .iter()
        .filter(|r| matches!(r.status, Status::Fail | Status::NotRun))
        .collect();
    if bad.is_empty() {
        return;
    }
    h.push_str("<h2>Items that failed or did not run</h2><table><tr><th>item</th><th>status</th><th>why</th><th>replay</th><th>report</th></tr>");
    for r in bad.iter().take(500) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=fail>{:?}</td><td style=\"text-align:left\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&r.item.id),
            r.status,
            escape(&r.why.join("; ")),
            escape(&r.replay),
            link(r.report.as_ref())
        );
    }
    h.push_str("</table>");
    if bad.len() > 500 {
        let _ = write!(
            h,
            "<p>and {} more in qualification.json</p>",
            bad.len() - 500
        );
    }
}

fn scenario_table(h: &mut String, rows: &BTreeMap<&str, ScenarioRow>) {
    h.push_str("<h2>Scenarios</h2><table><tr><th>scenario</th><th>runs</th><th>failed</th><th>not run</th><th>leader changes (mean / max)</th><th>WAL fsync p99 ms (max)</th><th>checker s (mean / max)</th><th>seeds/min (one core)</th></tr>");
    for (name, r) in rows {
        let lc: Vec<f64> = r.leader_changes.iter().map(|v| *v as f64).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{:.1} / {:.0}</td><td>{:.0}</td><td>{:.2} / {:.2}</td><td>{:.1}</td></tr>",
            escape(name),
            r.runs,
            if r.failed > 0 { " class=fail" } else { "" },
            r.failed,
            r.not_run,
            mean(&lc),
            max(&lc),
            max(&r.fsync_p99),
            mean(&r.checker),
            max(&r.checker),
            r.runs as f64 * 60.0 / r.wall.max(1e-9)
        );
    }
    h.push_str("</table>");
}

fn defects_section(h: &mut String, q: &Qualification) {
    let defects: Vec<&ItemResult> = q
        .results
        .iter()
        .filter(|r| r.item.kind == ItemKind::Defect)
        .collect();
    if defects.is_empty() {
        return;
    }
    h.push_str("<h2>Known-bug defects</h2><table><tr><th>defect</th><th>scenario</th><th>caught</th><th>seed</th><th>seeds run</th><th>signature</th><th>report</th></tr>");
    for r in defects {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(r.item.defect.as_deref().unwrap_or("")),
            escape(&r.item.scenario),
            if r.status == Status::Pass { "" } else { " class=fail" },
            match r.status {
                Status::Pass => "yes",
                Status::NotRun => "not run",
                _ => "NO",
            },
            r.run_seed,
            r.seeds_run,
            escape(&r.signatures.join("; ")),
            link(r.report.as_ref())
        );
    }
    h.push_str("</table>");
}

fn determinism_section(h: &mut String, q: &Qualification) {
    let det: Vec<&ItemResult> = q
        .results
        .iter()
        .filter(|r| r.item.kind == ItemKind::Determinism)
        .collect();
    if det.is_empty() {
        return;
    }
    let same = det.iter().filter(|r| r.status == Status::Pass).count();
    let _ = write!(
        h,
        "<h2>Determinism</h2><p>{same} of {} re-runs gave their original's trace hash.</p>",
        det.len()
    );
    let odd: Vec<&&ItemResult> = det.iter().filter(|r| r.status != Status::Pass).collect();
    if !odd.is_empty() {
        h.push_str("<table><tr><th>re-run</th><th>status</th><th>why</th></tr>");
        for r in odd {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                escape(&r.item.id),
                r.status,
                escape(&r.why.join("; "))
            );
        }
        h.push_str("</table>");
    }
}

fn coverage_section(h: &mut String, q: &Qualification) {
    if q.fault_coverage.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Fault kinds applied</h2><table><tr><th>kind</th><th>times</th><th>runs</th></tr>",
    );
    for (k, c) in &q.fault_coverage {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(k),
            c.times,
            c.runs
        );
    }
    h.push_str("</table>");
}

fn shards_section(h: &mut String, q: &Qualification) {
    h.push_str("<h2>Shards</h2><table><tr><th>shard</th><th>items</th><th>threads</th><th>wall s</th></tr>");
    let mut shards = q.shards.clone();
    shards.sort_by_key(|s| s.shard.index);
    for s in &shards {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            s.shard, s.items, s.threads, s.wall_seconds
        );
    }
    h.push_str("</table>");
}

//! The HTML view of a check: one self-contained page (inline CSS, SVG and a little JS, no
//! external assets) with a row per client, operations as bars on the time axis, the (longest
//! partial) linearization, the first operation that cannot be placed with the model state at
//! that point, optional fault windows, and (for a combined etcd run check) the watch
//! violations.
//!
//! Owns: presentation only. Must never influence verdicts nor fetch anything at view time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::checker::{CheckReport, CheckResult, Verdict};
use crate::history::{FaultWindow, Operation};
use crate::model::Model;
use crate::models::etcd::{EtcdRequest, EtcdResponse};
use crate::run::{EtcdRunReport, TimelineSource};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 4px} .verdict{font-size:15px;font-weight:600;margin:6px 0 12px}
.ok{color:#1a7f37} .bad{color:#c62828} .unk{color:#8a6d00}
.scroll{overflow-x:auto;border:1px solid #ddd;background:#fff}
.legend span{display:inline-block;margin-right:14px} .sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px;border:1px solid #555}
table{border-collapse:collapse;margin-top:12px;background:#fff} td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
tr.failed td{background:#ffe3e3} tr.sel td{background:#fff3b0} .state{font-family:monospace;white-space:pre-wrap;max-width:60em}
.failbox{border:2px solid #c62828;background:#fff5f5;padding:8px;margin:10px 0}
.watch{margin:0 0 12px} table.violations{margin:4px 0 0}
rect.op{cursor:pointer} rect.op.sel{stroke:#000;stroke-width:2}
"#;

const SCRIPT: &str = r#"
function sel(i){document.querySelectorAll('.sel').forEach(function(e){e.classList.remove('sel')});
document.querySelectorAll('[data-op="'+i+'"]').forEach(function(e){e.classList.add('sel')});
var r=document.getElementById('row-'+i); if(r){r.scrollIntoView({block:'nearest'});}}
document.querySelectorAll('[data-op]').forEach(function(e){e.addEventListener('click',function(){sel(e.getAttribute('data-op'))})});
"#;

/// Renders the page. `title` is shown at the top (typically the file name).
pub fn render_html<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    report: &CheckReport<M::State>,
    faults: &[FaultWindow],
    title: &str,
) -> String {
    render_page(model, history, report, faults, title, "")
}

/// Renders the page for a combined etcd run check ([`crate::run::check_etcd_run`]): the
/// linearizability view plus a section listing the watch violations.
pub fn render_run_html(
    history: &[Operation<EtcdRequest, EtcdResponse>],
    run: &EtcdRunReport,
    faults: &[FaultWindow],
    title: &str,
) -> String {
    let w = &run.watch;
    let mut section = String::new();
    let (class, text) = if w.ok() {
        ("ok", "every watch guarantee holds".to_string())
    } else {
        let n = w.violations.len() + w.suppressed;
        (
            "bad",
            format!("{n} watch violation{}", if n == 1 { "" } else { "s" }),
        )
    };
    let _ = write!(
        section,
        r#"<div class="watch"><div class="verdict {class}">watch: {} &mdash; {} watchers, {} events, checked against the {} in {:.3} ms</div>"#,
        esc(&text),
        w.watchers,
        w.events,
        match run.timeline {
            TimelineSource::Linearization => "linearization's events",
            TimelineSource::WatchUnion => "union of the watchers' events",
        },
        run.watch_elapsed.as_secs_f64() * 1e3
    );
    if !w.violations.is_empty() {
        section.push_str(r#"<table class="violations"><tr><th>guarantee</th><th>watcher</th><th>response</th><th>revision</th><th>key</th><th>expected</th><th>got</th></tr>"#);
        for v in &w.violations {
            let _ = write!(
                section,
                r#"<tr class="failed"><td>{}</td><td>#{} (id {})</td><td>{}</td><td>{}</td><td>{}</td><td class="state">{}</td><td class="state">{}</td></tr>"#,
                v.guarantee,
                v.watcher,
                v.watcher_id,
                v.response.map_or(String::new(), |r| format!("#{r}")),
                v.revision,
                esc(v.key.as_deref().unwrap_or("")),
                esc(&v.expected),
                esc(&v.got)
            );
        }
        section.push_str("</table>");
        if w.suppressed > 0 {
            let _ = write!(section, "<p>&hellip; and {} more</p>", w.suppressed);
        }
    }
    section.push_str("</div>");
    render_page(
        &run.model,
        history,
        &run.linearizability,
        faults,
        title,
        &section,
    )
}

fn render_page<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    report: &CheckReport<M::State>,
    faults: &[FaultWindow],
    title: &str,
    extra: &str,
) -> String {
    // Position of each operation in its partition's linearization, and the state after it.
    let mut placed: HashMap<usize, (usize, usize, usize)> = HashMap::new(); // op -> (partition, step, index)
    for (pi, p) in report.partitions.iter().enumerate() {
        for (si, step) in p.linearization.iter().enumerate() {
            placed.insert(step.op, (pi, si, si));
        }
    }
    let failed_op = match &report.result {
        CheckResult::NotLinearizable(cx) => Some(cx.failed_op),
        _ => None,
    };

    let (verdict_class, verdict_text) = match &report.result {
        CheckResult::Linearizable => ("ok", "linearizable".to_string()),
        CheckResult::NotLinearizable(_) => ("bad", "not linearizable".to_string()),
        CheckResult::Unknown(u) => ("unk", format!("unknown: {u}")),
    };

    let mut clients: BTreeMap<u64, usize> = BTreeMap::new();
    for op in history {
        let n = clients.len();
        clients.entry(op.client).or_insert(n);
    }
    let mut rows: Vec<u64> = clients.keys().copied().collect();
    rows.sort_unstable();
    let row_of: HashMap<u64, usize> = rows.iter().enumerate().map(|(i, c)| (*c, i)).collect();

    let t0 = history
        .iter()
        .map(|o| o.call)
        .chain(faults.iter().map(|f| f.start))
        .min()
        .unwrap_or(0);
    let t1 = history
        .iter()
        .map(|o| o.ret.max(o.call))
        .chain(faults.iter().map(|f| f.end))
        .max()
        .unwrap_or(1)
        .max(t0 + 1);
    let span = (t1 - t0) as f64;
    let label_w = 70.0;
    let width = (history.len() as f64 * 14.0).clamp(900.0, 30000.0);
    let row_h = 26.0;
    let top = 24.0;
    let height = top + row_h * rows.len().max(1) as f64 + 10.0;
    let x = |t: u64| label_w + (t.saturating_sub(t0)) as f64 / span * (width - label_w - 40.0);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-size="10">"#
    );
    for (i, f) in faults.iter().enumerate() {
        let (a, b) = (x(f.start), x(f.end.max(f.start)));
        let _ = write!(
            svg,
            r##"<g class="fault"><rect x="{a:.1}" y="0" width="{:.1}" height="{height:.0}" fill="#ff9800" fill-opacity="0.15"/><text x="{:.1}" y="{}" fill="#b25d00">{}</text><title>{}</title></g>"##,
            (b - a).max(1.0),
            a + 2.0,
            10 + (i % 2) * 11,
            esc(&f.label),
            esc(&format!("{} [{}, {}]", f.label, f.start, f.end))
        );
    }
    for (r, c) in rows.iter().enumerate() {
        let y = top + r as f64 * row_h;
        let _ = write!(
            svg,
            r##"<text x="4" y="{:.1}" fill="#555">client {c}</text><line x1="{label_w}" x2="{width:.0}" y1="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            y + 15.0,
            y + row_h - 1.0,
            y + row_h - 1.0
        );
    }
    for (i, op) in history.iter().enumerate() {
        let r = row_of.get(&op.client).copied().unwrap_or(0);
        let y = top + r as f64 * row_h + 3.0;
        let a = x(op.call);
        let end = if op.output.is_none() {
            t1
        } else {
            op.ret.max(op.call)
        };
        let w = (x(end) - a).max(3.0);
        let (fill, extra) = if Some(i) == failed_op {
            ("#e53935", "")
        } else if placed.contains_key(&i) {
            ("#66bb6a", "")
        } else if op.output.is_none() {
            ("#cfd8dc", r#" stroke-dasharray="4 2""#)
        } else {
            ("#b0bec5", "")
        };
        let desc = model.describe_operation(&op.input, op.output.as_ref());
        let step = placed.get(&i).map_or(String::new(), |(p, s, _)| {
            format!("\nlinearized: partition {p}, step {}", s + 1)
        });
        let _ = write!(
            svg,
            r##"<g><rect class="op" data-op="{i}" x="{a:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" rx="3" fill="{fill}" stroke="#37474f"{extra}><title>{}</title></rect>"##,
            row_h - 8.0,
            esc(&format!(
                "#{i} client {} [{}, {}]{}\n{desc}{step}",
                op.client,
                op.call,
                if op.output.is_none() {
                    "?".to_string()
                } else {
                    op.ret.to_string()
                },
                if op.output.is_none() {
                    " (unknown outcome)"
                } else {
                    ""
                }
            ))
        );
        if w > 30.0 {
            let label: String = desc.chars().take((w / 6.0) as usize).collect();
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" pointer-events="none">{}</text>"##,
                a + 3.0,
                y + 12.0,
                esc(&label)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");

    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>{}</h1><div class="verdict {verdict_class}">{} &mdash; {} operations, {} partition(s), {:.3} ms</div>"#,
        esc(title),
        esc(&verdict_text),
        history.len(),
        report.partitions.len(),
        report.elapsed.as_secs_f64() * 1e3
    );
    body.push_str(extra);
    body.push_str(r##"<div class="legend"><span><i class="sw" style="background:#66bb6a"></i>linearized</span><span><i class="sw" style="background:#b0bec5"></i>not placed</span><span><i class="sw" style="background:#cfd8dc"></i>unknown outcome (may not have happened)</span><span><i class="sw" style="background:#e53935"></i>cannot be placed</span><span><i class="sw" style="background:#ffe0b2"></i>fault window</span></div>"##);
    let _ = write!(body, r#"<div class="scroll">{svg}</div>"#);

    if let CheckResult::NotLinearizable(cx) = &report.result {
        if let (Some(op), Some(reason)) = (history.get(cx.failed_op), &cx.reason) {
            let _ = write!(
                body,
                r#"<div class="failbox"><b>Operation that cannot be placed:</b> #{} (client {}, call {}, return {}) <code>{}</code><br><b>Why (found without search):</b> {}</div>"#,
                cx.failed_op,
                op.client,
                op.call,
                op.ret,
                esc(&model.describe_operation(&op.input, op.output.as_ref())),
                esc(reason)
            );
        } else if let Some(op) = history.get(cx.failed_op) {
            let _ = write!(
                body,
                r#"<div class="failbox"><b>First operation that cannot be placed:</b> #{} (client {}, call {}, return {}) <code>{}</code><br><b>Model state after the longest partial linearization ({} steps):</b><div class="state">{}</div></div>"#,
                cx.failed_op,
                op.client,
                op.call,
                op.ret,
                esc(&model.describe_operation(&op.input, op.output.as_ref())),
                cx.partial.len(),
                esc(&model.describe_state(&cx.state))
            );
        }
    }

    // The linearization table: the failed partition's, or every partition's.
    let shown: Vec<usize> = match &report.result {
        CheckResult::NotLinearizable(cx) => vec![cx.partition],
        _ => (0..report.partitions.len()).collect(),
    };
    for pi in shown {
        let Some(p) = report.partitions.get(pi) else {
            continue;
        };
        let what = match p.verdict {
            Verdict::Linearizable => "linearization",
            Verdict::NotLinearizable => "longest partial linearization",
            Verdict::Unknown => "partial linearization (search stopped)",
        };
        let _ = write!(
            body,
            r#"<h3>Partition {pi}: {what} ({} of {} operations)</h3><table><tr><th>step</th><th>op</th><th>client</th><th>call</th><th>return</th><th>operation</th><th>state after</th></tr><tr><td>0</td><td colspan="5">initial state</td><td class="state">{}</td></tr>"#,
            p.linearization.len(),
            p.ops.len(),
            esc(&model.describe_state(&p.init))
        );
        for (si, step) in p.linearization.iter().enumerate() {
            let Some(op) = history.get(step.op) else {
                continue;
            };
            let _ = write!(
                body,
                r#"<tr id="row-{}" data-op="{}"><td>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="state">{}</td></tr>"#,
                step.op,
                step.op,
                si + 1,
                step.op,
                op.client,
                op.call,
                if op.output.is_none() {
                    "?".to_string()
                } else {
                    op.ret.to_string()
                },
                esc(&model.describe_operation(&op.input, op.output.as_ref())),
                esc(&model.describe_state(&step.state))
            );
        }
        if p.verdict == Verdict::NotLinearizable {
            if let Some(op) = p.failed_op.and_then(|i| history.get(i).map(|o| (i, o))) {
                let _ = write!(
                    body,
                    r#"<tr class="failed" id="row-{}" data-op="{}"><td>&#10007;</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>cannot be placed</td></tr>"#,
                    op.0,
                    op.0,
                    op.0,
                    op.1.client,
                    op.1.call,
                    op.1.ret,
                    esc(&model.describe_operation(&op.1.input, op.1.output.as_ref()))
                );
            }
        }
        body.push_str("</table>");
    }

    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;
    use crate::models::register::{Register, RegisterInput, RegisterOutput};

    #[test]
    fn page_is_self_contained_and_highlights_the_failure() {
        let h = vec![
            Operation::new(0, 0, 1, RegisterInput::Write(1), RegisterOutput::Write),
            Operation::new(1, 2, 3, RegisterInput::Read, RegisterOutput::Read(None)),
        ];
        let report = check(&Register, &h);
        let faults = vec![FaultWindow {
            start: 1,
            end: 2,
            label: "partition <n1>".into(),
        }];
        let page = render_html(&Register, &h, &report, &faults, "t<1>");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(
            !page.contains("http://") || page.matches("http://").count() == 1,
            "only the SVG namespace"
        );
        assert!(!page.contains("src="), "no external assets");
        assert!(page.contains("cannot be placed"));
        assert!(page.contains("partition &lt;n1&gt;"));
        assert!(page.contains("t&lt;1&gt;"));
        assert!(page.contains("#e53935"), "failed op highlighted");
    }

    #[test]
    fn run_page_lists_watch_violations() {
        use crate::models::etcd::{KeyRange, KeyValue};
        use crate::watch::{WatchEvent, WatchResponse, WatcherHistory};
        let w = WatcherHistory {
            id: 4,
            range: KeyRange::key("a"),
            start_revision: 1,
            responses: vec![WatchResponse {
                revision: 2,
                events: vec![WatchEvent::put(
                    KeyValue {
                        key: "a".into(),
                        value: "<x>".into(),
                        create_revision: 2,
                        mod_revision: 2,
                        version: 1,
                        lease: 0,
                    },
                    None,
                )],
                ..WatchResponse::default()
            }],
            ..WatcherHistory::default()
        };
        let mut w2 = w.clone();
        w2.responses.push(w.responses[0].clone()); // delivered twice
        let run = crate::run::check_etcd_run(&[], &[w, w2], &crate::CheckOptions::default());
        let page = render_run_html(&[], &run, &[], "run");
        assert!(page.contains("1 watch violation"), "{page}");
        assert!(page.contains("<td>unique</td>"));
        assert!(page.contains("&lt;x&gt;"), "escaped");
    }
}

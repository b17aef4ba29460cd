//! Charts as SVG, drawn with `plotters`: the qualification index's bar charts and the
//! disk-latency sweep's plot.
//!
//! Owns: chart layout (axes with tick labels, axis titles, legends outside the plotting area).
//! Must never: compute what it draws (callers pass the numbers), or fail a run: a chart that
//! cannot be drawn becomes a short SVG saying so.

use crate::report::SweepRow;
use plotters::prelude::*;

/// A chart that could not be drawn.
fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="30"><text x="4" y="20">{what}: cannot draw ({})</text></svg>"#,
        escape(&e.to_string())
    )
}

/// Text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How a chart's value axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// From zero.
    Linear,
    /// Logarithmic from 1 (values spanning decades, such as fsync latencies).
    Log,
}

/// A horizontal bar chart: one bar per (label, value), top to bottom in the given order, the
/// value axis titled `unit`.
pub fn bars(
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
    scale: Scale,
    color: RGBColor,
) -> String {
    let mut svg = String::new();
    let longest = bars.iter().map(|(l, _)| l.len()).max().unwrap_or(4) as u32;
    let height = 80 + 20 * bars.len().max(1) as u32;
    let n = bars.len().max(1);
    // plotters counts rows from the bottom; the first bar goes on top.
    let row = |i: usize| n - 1 - i;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < n => {
            bars.get(row(*i)).map(|b| b.0.clone()).unwrap_or_default()
        }
        _ => String::new(),
    };
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max);
    let r = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size((longest * 7 + 12).min(340));
        let y = (0..n).into_segmented();
        match scale {
            Scale::Linear => {
                let mut chart = builder.build_cartesian_2d(0f64..(top * 1.1).max(1e-9), y)?;
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .light_line_style(WHITE)
                    .x_labels(8)
                    .y_labels(n)
                    .y_label_formatter(&label)
                    .x_label_formatter(&tick)
                    .x_desc(unit)
                    .label_style(("sans-serif", 12))
                    .draw()?;
                chart.draw_series(
                    bars.iter()
                        .enumerate()
                        .map(|(i, (_, v))| bar(row(i), 0.0, *v, color)),
                )?;
            }
            Scale::Log => {
                let range = (1f64..(top * 2.0).max(10.0)).log_scale();
                let mut chart = builder.build_cartesian_2d(range, y)?;
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .light_line_style(WHITE)
                    .y_labels(n)
                    .y_label_formatter(&label)
                    .x_label_formatter(&|v| format!("{v:.0}"))
                    .x_desc(format!("{unit} (log scale)"))
                    .label_style(("sans-serif", 12))
                    .draw()?;
                chart.draw_series(
                    bars.iter()
                        .enumerate()
                        .map(|(i, (_, v))| bar(row(i), 1.0, v.max(1.0), color)),
                )?;
            }
        }
        root.present()?;
        Ok(())
    })();
    match r {
        Ok(()) => svg,
        Err(e) => failed(title, e),
    }
}

/// A tick label: whole numbers without decimals.
fn tick(v: &f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One horizontal bar in row `i`, from `from` to `to`.
fn bar(i: usize, from: f64, to: f64, color: RGBColor) -> Rectangle<(f64, SegmentValue<usize>)> {
    let mut r = Rectangle::new(
        [
            (from, SegmentValue::Exact(i)),
            (to, SegmentValue::Exact(i + 1)),
        ],
        color.filled(),
    );
    r.set_margin(3, 3, 0, 0);
    r
}

/// The disk-latency sweep: x = fsync p99 (log), bars = leader changes per minute (left axis),
/// lines = write p99 (log, right axis), one colour pair per pass (all members slow, only the
/// leader slow), dashed guidance lines at 2 ms and 10 ms; the legend sits under the plot.
pub fn sweep(rows: &[SweepRow]) -> String {
    let mut svg = String::new();
    let r = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (820, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_vertically(430);
        let max_lc = rows
            .iter()
            .map(|r| r.leader_changes_per_min)
            .fold(1.0f64, f64::max)
            .ceil();
        let max_w = rows.iter().map(|r| r.write_p99_ms).fold(10.0f64, f64::max) * 1.5;
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "disk-latency-sweep: leader changes and write p99 vs fsync p99",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .right_y_label_area_size(60)
            .build_cartesian_2d((0.7f64..3000f64).log_scale(), 0f64..max_lc * 1.1)?
            .set_secondary_coord((0.7f64..3000f64).log_scale(), (1f64..max_w).log_scale());
        chart
            .configure_mesh()
            .x_desc("WAL fsync p99 (ms, log scale)")
            .y_desc("leader changes / simulated minute")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&tick)
            .label_style(("sans-serif", 12))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("write p99 (ms, log scale)")
            .label_style(("sans-serif", 12))
            .draw()?;
        for (g, text) in [(2.0, "2 ms: heavy load"), (10.0, "10 ms: etcd guidance")] {
            let green = RGBColor(26, 127, 55);
            chart.draw_series(DashedLineSeries::new(
                vec![(g, 0.0), (g, max_lc * 1.1)],
                5,
                4,
                green.stroke_width(1),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                text,
                (g * 1.08, max_lc * 1.05),
                ("sans-serif", 12).into_font().color(&green),
            )))?;
        }
        for pass in PASSES {
            let mine: Vec<&SweepRow> = rows.iter().filter(|r| r.slow == pass.slow).collect();
            chart.draw_series(mine.iter().map(|r| {
                let x = r.fsync_p99_ms.max(1) as f64;
                Rectangle::new(
                    [
                        (x * pass.bar.0, 0.0),
                        (x * pass.bar.1, r.leader_changes_per_min),
                    ],
                    pass.bar_color.mix(0.8).filled(),
                )
            }))?;
            let points: Vec<(f64, f64)> = mine
                .iter()
                .filter(|r| r.writes_ok > 0)
                .map(|r| (r.fsync_p99_ms.max(1) as f64, r.write_p99_ms.max(1.0)))
                .collect();
            chart.draw_secondary_series(LineSeries::new(
                points.clone(),
                pass.line_color.stroke_width(2),
            ))?;
            chart.draw_secondary_series(PointSeries::of_element(
                points,
                4,
                pass.line_color.filled(),
                &|c, s, st| Circle::new(c, s, st),
            ))?;
        }
        for (i, pass) in PASSES.iter().enumerate() {
            let y = 12 + 20 * i as i32;
            legend.draw(&Rectangle::new(
                [(70, y - 5), (82, y + 7)],
                pass.bar_color.filled(),
            ))?;
            legend.draw(&Text::new(
                format!("leader changes/min, slow {}", pass.slow),
                (88, y - 4),
                ("sans-serif", 12),
            ))?;
            legend.draw(&PathElement::new(
                vec![(380, y + 1), (410, y + 1)],
                pass.line_color.stroke_width(2),
            ))?;
            legend.draw(&Text::new(
                format!("write p99, slow {}", pass.slow),
                (416, y - 4),
                ("sans-serif", 12),
            ))?;
        }
        root.present()?;
        Ok(())
    })();
    match r {
        Ok(()) => svg,
        Err(e) => failed("disk-latency-sweep", e),
    }
}

/// One pass of the sweep as drawn: which members were slow, where its bar sits around the
/// step (as factors of x on the log axis) and its colours.
struct Pass {
    slow: &'static str,
    bar: (f64, f64),
    bar_color: RGBColor,
    line_color: RGBColor,
}

const PASSES: [Pass; 2] = [
    Pass {
        slow: "all members",
        bar: (0.86, 0.98),
        bar_color: RGBColor(198, 40, 40),
        line_color: RGBColor(21, 101, 192),
    },
    Pass {
        slow: "leader",
        bar: (1.02, 1.16),
        bar_color: RGBColor(239, 108, 0),
        line_color: RGBColor(106, 27, 154),
    },
];

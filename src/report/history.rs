//! What `agentsh-bench history` shows: each version's recent runs as tables (verdicts, then the
//! listed ops' latency), the trend chart (`history.svg` beside history.csv: failing tests and
//! each op's p50 run after run), and the gate's findings (`analyze::history`) with both values.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use plotters::coord::Shift;

use super::charts::{err, register_font};
use crate::analyze::history::VersionCheck;
use crate::results::history::HistoryRow;

/// Runs shown per version in the tables (the chart has them all).
pub const RECENT: usize = 10;

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// The date part of an RFC 3339 time, with the minutes: `2026-12-01 02:00`.
fn short_date(date: &str) -> String {
    date.get(..16).map_or_else(|| date.to_string(), |d| d.replace('T', " "))
}

/// Per version (in name order), its last [`RECENT`] runs.
pub fn print_tables(rows: &[&HistoryRow], ops: &[String]) {
    let mut per: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
    for r in rows {
        per.entry(r.agentsh_version.as_str()).or_default().push(r);
    }
    for (version, runs) in per {
        let recent = &runs[runs.len().saturating_sub(RECENT)..];
        println!("agentsh {version}: {} run(s), the last {} shown", runs.len(), recent.len());
        println!(
            "  {:<16} {:<22} {:>5} {:>4} {:>7} {:>5} {:>4} {:>5} {:>4} {:>4} {:>5} {:>5} {:>6} {:>5} {:>8}  faults",
            "date",
            "run",
            "ready",
            "it",
            "soak s",
            "held",
            "viol",
            "flaky",
            "inc",
            "skip",
            "integ",
            "wrong",
            "wedges",
            "leaks",
            "rss MB"
        );
        for r in recent {
            let faults: Vec<String> = r.faults.iter().map(ToString::to_string).collect();
            println!(
                "  {:<16} {:<22} {:>5} {:>4} {:>7} {:>5} {:>4} {:>5} {:>4} {:>4} {:>5} {:>5} {:>6} {:>5} {:>8}  {}{}",
                short_date(&r.date),
                r.run_id,
                format!("{}/{}", r.ready, r.targets),
                r.iterations,
                opt(r.soak_s, 0),
                r.held,
                r.violated,
                r.flaky,
                r.inconclusive,
                r.skipped,
                r.integrity_violated,
                r.wrong_decisions,
                r.wedges,
                r.leaks.map_or_else(|| "-".into(), |n| n.to_string()),
                opt(r.server_rss_kb_max.map(|kb| kb / 1024.0), 1),
                if faults.is_empty() { "-".to_string() } else { faults.join(";") },
                if r.interrupted { "  (interrupted)" } else { "" }
            );
        }
        let shown: Vec<&String> = ops
            .iter()
            .filter(|op| recent.iter().any(|r| r.latency.iter().any(|l| &&l.op == op && l.p50_ms.is_some())))
            .collect();
        if !shown.is_empty() {
            println!("  response p50/p99 ms:");
            let head: String = shown.iter().map(|op| format!(" {op:>17}")).collect();
            println!("  {:<22}{head}", "run");
            for r in recent {
                let cells: String = shown
                    .iter()
                    .map(|op| {
                        let l = r.latency.iter().find(|l| &&l.op == op);
                        let pair = format!("{}/{}", opt(l.and_then(|l| l.p50_ms), 1), opt(l.and_then(|l| l.p99_ms), 1));
                        format!(" {pair:>17}")
                    })
                    .collect();
                println!("  {:<22}{cells}", r.run_id);
            }
        }
        println!();
    }
}

/// The gate's findings; returns how many changes were flagged.
pub fn print_checks(checks: &[VersionCheck]) -> usize {
    let mut flagged = 0;
    for c in checks {
        let against = c
            .previous
            .as_deref()
            .map_or_else(|| "its first complete run: nothing to compare with".to_string(), |p| format!("against {p}"));
        let left_out =
            if c.interrupted > 0 { format!(" ({} interrupted run(s) left out)", c.interrupted) } else { String::new() };
        println!("agentsh {}: {} {against}{left_out}", c.version, c.newest);
        if c.flags.is_empty() {
            println!("  no change past a threshold");
        }
        for f in &c.flags {
            println!("  FLAGGED {}: {} → {} ({})", f.what, f.before, f.now, f.rule);
        }
        flagged += c.flags.len();
    }
    flagged
}

/// Strong, distinct colours (Tableau's 10): the palette's pale ones vanish on white.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A legend in its own area beside the chart, where it cannot cover a line.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, RGBColor, u32)]) -> Result<()> {
    for (i, (label, c, width)) in entries.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (34, y)], c.stroke_width(*width))).map_err(err)?;
        area.draw(&Text::new(label.clone(), (42, y - 7), ("sans-serif", 13))).map_err(err)?;
    }
    Ok(())
}

/// `history.svg`: above, violated and flaky tests per run and version; below, each listed op's
/// response p50 per run and version (log axis: ops differ by orders of magnitude). Runs are
/// placed in file order, the order they were appended.
pub fn chart(rows: &[&HistoryRow], ops: &[String], file: &Path) -> Result<()> {
    register_font();
    let area = SVGBackend::new(file, (1200, 800)).into_drawing_area();
    area.fill(&WHITE).map_err(err)?;
    let (plots, legends) = area.split_horizontally(930);
    let (upper, lower) = plots.split_vertically(320);
    let (upper_legend, lower_legend) = legends.split_vertically(320);
    let n = rows.len().max(2) as f64;
    let versions: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().map(|r| r.agentsh_version.as_str()).collect();
        v.sort();
        v.dedup();
        v
    };
    let dates: Vec<String> = rows.iter().map(|r| r.date.get(5..10).unwrap_or("").to_string()).collect();
    // One label per run, at its own place (the axis also asks for the points in between).
    let x_label = |x: &f64| {
        if (x - x.round()).abs() > 1e-6 || *x < 0.0 {
            return String::new();
        }
        dates.get(x.round() as usize).cloned().unwrap_or_default()
    };

    let y_max = rows.iter().map(|r| r.violated.max(r.flaky)).max().unwrap_or(0).max(1) as f64 * 1.2;
    let mut top = ChartBuilder::on(&upper)
        .caption("suite: violated and flaky tests per run", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n - 0.5), 0.0..y_max)
        .map_err(err)?;
    top.configure_mesh().x_label_formatter(&x_label).y_desc("tests").draw().map_err(err)?;
    let mut entries = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let c = colour(i);
        let pts = |f: fn(&HistoryRow) -> u32| -> Vec<(f64, f64)> {
            rows.iter()
                .enumerate()
                .filter(|(_, r)| r.agentsh_version == *v)
                .map(|(x, r)| (x as f64, f64::from(f(r))))
                .collect()
        };
        top.draw_series(LineSeries::new(pts(|r| r.violated), c.stroke_width(3)).point_size(4)).map_err(err)?;
        top.draw_series(LineSeries::new(pts(|r| r.flaky), c.mix(0.6).stroke_width(1)).point_size(2)).map_err(err)?;
        entries.push((format!("{v} violated"), c, 3));
        entries.push((format!("{v} flaky"), c, 1));
    }
    legend(&upper_legend, &entries)?;

    let values: Vec<f64> =
        rows.iter().flat_map(|r| r.latency.iter().filter(|l| ops.contains(&l.op)).filter_map(|l| l.p50_ms)).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min).clamp(0.001, 1.0);
    let hi = values.iter().copied().fold(0.0, f64::max).max(lo * 10.0) * 1.5;
    let mut bottom = ChartBuilder::on(&lower)
        .caption("workload: response p50 per run (ms, log)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(n - 0.5), (lo..hi).log_scale())
        .map_err(err)?;
    bottom.configure_mesh().x_label_formatter(&x_label).y_desc("ms").draw().map_err(err)?;
    let mut entries = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        // One colour per op; versions apart by width (the first version thickest).
        for (j, v) in versions.iter().enumerate() {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.agentsh_version == *v)
                .filter_map(|(x, r)| Some((x as f64, r.latency.iter().find(|l| &l.op == op)?.p50_ms?)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let (c, width) = (colour(k), if j == 0 { 3 } else { 1 });
            bottom.draw_series(LineSeries::new(pts, c.stroke_width(width)).point_size(width + 1)).map_err(err)?;
            entries.push((if versions.len() > 1 { format!("{op} ({v})") } else { op.clone() }, c, width));
        }
    }
    legend(&lower_legend, &entries)?;
    area.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::history::tests::{ops, row};

    #[test]
    fn the_chart_has_a_line_per_version_and_op() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = [row("r1", "0.16.9"), row("x1", "0.20.1"), row("r2", "0.16.9")];
        rows[2].violated = 5;
        rows[2].date = "2026-12-02T02:00:00Z".into();
        let refs: Vec<&HistoryRow> = rows.iter().collect();
        let file = dir.path().join("history.svg");
        chart(&refs, &ops(), &file).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        for label in ["0.16.9 violated", "0.20.1 flaky", "shim-allow (0.16.9)", "shim-allow (0.20.1)", "12-02"] {
            assert!(texts.contains(&label), "{label} missing from the chart");
        }
        assert!(!texts.contains(&"git (0.16.9)"), "git never ran: no line");
        assert_eq!(texts.iter().filter(|t| **t == "12-01").count(), 4, "one date per run, on both charts");
    }
}

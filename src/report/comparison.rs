//! The chart of a comparison (`comparison-<workload>.svg`, next to its CSV): per op, the p50
//! and p99 response-time ratios (run / base) as points, their bootstrap intervals as error bars,
//! on a log axis where 2× slower and 2× faster are the same distance from the line at 1.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::err;
use crate::analyze::stats::{OpComparison, QuantileRatio};

const P50: RGBColor = RGBColor(31, 119, 180);
const P99: RGBColor = RGBColor(214, 39, 40);

/// Draws `rows` (those with ratios; the others are left out) into an SVG at `path`.
pub fn render(rows: &[OpComparison], path: &Path, title: &str) -> Result<()> {
    super::charts::register_font();
    let rows: Vec<&OpComparison> = rows.iter().filter(|r| r.p50.is_some() || r.p99.is_some()).collect();
    if rows.is_empty() {
        return Err(anyhow!("no op has values on both sides: nothing to draw"));
    }
    let (width, height) = size(&rows);
    draw(SVGBackend::new(path, (width, height)).into_drawing_area(), &rows, title)
}

/// The y label of each op: its name and verdict.
fn labels(rows: &[&OpComparison]) -> Vec<String> {
    rows.iter().map(|r| format!("{} ({})", r.op, r.verdict)).collect()
}

fn label_width(rows: &[&OpComparison]) -> u32 {
    labels(rows).iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32 * 9 + 20
}

/// 1000 pixels of plot, beside the labels; 50 per op.
fn size(rows: &[&OpComparison]) -> (u32, u32) {
    (1000 + label_width(rows), (140 + 50 * rows.len() as u32).max(300))
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, rows: &[&OpComparison], title: &str) -> Result<()> {
    let quantiles = |r: &&OpComparison| [r.p50, r.p99].into_iter().flatten();
    let extent: Vec<f64> = rows
        .iter()
        .flat_map(quantiles)
        .flat_map(|q| [q.ratio, q.ci.map_or(q.ratio, |c| c.0), q.ci.map_or(q.ratio, |c| c.1)])
        .filter(|x| x.is_finite() && *x > 0.0)
        .chain([1.0])
        .collect();
    let lo = extent.iter().copied().fold(f64::INFINITY, f64::min) / 1.25;
    let hi = extent.iter().copied().fold(0.0, f64::max) * 1.25;
    let labels = labels(rows);
    let n = rows.len();
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(format!("{title}: response time, run / base"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(label_width(rows))
        // First op at the top.
        .build_cartesian_2d((lo..hi).log_scale().with_key_points(ticks(lo, hi)), (n as f64 - 0.5)..-0.5)
        .map_err(err)?;
    let label_of = |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n { labels[i as usize].clone() } else { String::new() }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&label_of)
        .x_desc("ratio, log scale (bars: 95% bootstrap interval over intervals)")
        .x_label_formatter(&|x| {
            let s = if *x >= 100.0 { format!("{x:.0}") } else { format!("{x:.3}") };
            let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
            format!("{s}×")
        })
        .draw()
        .map_err(err)?;
    chart.draw_series(LineSeries::new([(1.0, n as f64 - 0.5), (1.0, -0.5)], BLACK.stroke_width(1))).map_err(err)?;
    for (name, colour, offset, pick) in [
        ("p50", P50, -0.12, (|r: &OpComparison| r.p50) as fn(&OpComparison) -> Option<QuantileRatio>),
        ("p99", P99, 0.12, |r: &OpComparison| r.p99),
    ] {
        let points: Vec<(f64, QuantileRatio)> =
            rows.iter().enumerate().filter_map(|(i, r)| Some((i as f64 + offset, pick(r)?))).collect();
        chart
            .draw_series(points.iter().filter_map(|(y, q)| {
                let (low, high) = q.ci?;
                Some(ErrorBar::new_horizontal(*y, low, q.ratio, high, colour.stroke_width(2), 10))
            }))
            .map_err(err)?;
        chart
            .draw_series(points.iter().map(|(y, q)| Circle::new((q.ratio, *y), 5, colour.filled())))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
    }
    super::charts::legend_and_present(&mut chart, &area, SeriesLabelPosition::UpperRight)
}

/// Ticks at 1 and at round factors either side of it (×1.25 and ÷1.25, ×2 and ÷2, …), from 1
/// outwards, each at least a tenth of the axis from the last: plotters' own log ticks leave out
/// everything below 1.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    const FACTORS: [f64; 16] = [1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1e3, 1e4, 1e5, 1e6];
    let gap = (hi / lo).ln() / 10.0;
    let mut out = vec![1.0];
    let mut last = 1.0f64;
    for f in FACTORS {
        if f.ln() - last.ln() >= gap {
            out.extend([f, 1.0 / f]);
            last = f;
        }
    }
    out.retain(|x| (lo..=hi).contains(x));
    out.sort_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::stats::Verdict;

    fn row(op: &str, p50: f64, ci: Option<(f64, f64)>, verdict: Verdict) -> OpComparison {
        let q = |r: f64| QuantileRatio { base_us: 1000, run_us: (1000.0 * r) as u64, ratio: r, ci };
        OpComparison {
            op: op.into(),
            base_count: 100,
            run_count: 100,
            base_blocks: 10,
            run_blocks: 10,
            p50: Some(q(p50)),
            p99: Some(q(p50 * 1.5)),
            p_value: Some(0.01),
            verdict,
        }
    }

    #[test]
    fn draws_every_op_with_its_bars() {
        let dir = tempfile::tempdir().unwrap();
        for n in [1usize, 2, 3, 12] {
            let rows: Vec<OpComparison> = (0..n)
                .map(|i| row(&format!("op{i}"), 0.5 + i as f64 * 0.4, Some((0.4, 3.0)), Verdict::Slower))
                .chain([row("lonely", 1.0, None, Verdict::InsufficientData)])
                .collect();
            let path = dir.path().join(format!("c{n}.svg"));
            render(&rows, &path, "w").unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            let texts: Vec<&str> = svg.lines().map(str::trim).collect();
            for i in 0..n {
                assert!(texts.contains(&format!("op{i} (slower)").as_str()), "op{i} of {n} has no label");
            }
            assert!(texts.contains(&"lonely (insufficient data)"), "an op without interval is still drawn");
            assert!(texts.contains(&"p50") && texts.contains(&"p99"), "legend");
            assert!(texts.contains(&"1×"), "the axis marks 1");
            // Points: two per op and the legend's two; an error bar draws one more at its middle.
            assert_eq!(svg.matches("<circle").count(), 2 * (n + 1) + 2 + 2 * n, "{n}");
            if n == 3 {
                assert!(texts.contains(&"0.5×") && texts.contains(&"2×"), "ticks either side of 1");
                let rows: Vec<&OpComparison> = rows.iter().collect();
                let png = dir.path().join("c.png");
                let (w, h) = size(&rows);
                draw(BitMapBackend::new(&png, (w, h)).into_drawing_area(), &rows, "w").unwrap();
                assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG", "any backend draws it");
            }
        }
        assert_eq!(ticks(0.5, 2.0), [0.5, 1.0 / 1.5, 0.8, 1.0, 1.25, 1.5, 2.0]);
        assert_eq!(ticks(0.001, 1000.0), [0.001, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0, 100.0, 1000.0]);
        assert_eq!(ticks(0.999, 1.001), [1.0]);
        let none: Vec<OpComparison> = Vec::new();
        assert!(render(&none, &dir.path().join("none.svg"), "w").is_err());
    }
}

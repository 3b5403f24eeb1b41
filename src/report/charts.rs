//! Charts drawn from the recorded `.hlog` files (so they can be rebuilt from a run's results
//! alone, as Gatling rebuilds its report from a log): a percentile distribution on hdr-plot's
//! 1/(1−p) axis and latency over time, each as PNG and SVG. The font is embedded: no fontconfig.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

pub(super) fn register_font() {
    REGISTER.call_once(|| {
        // The bytes are a font compiled into the binary; a failure here is a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            tracing::error!("embedded font rejected; charts will have no text");
        }
    });
}

/// One tag's intervals: (start s, p50 ms, p99 ms, max ms), and all of them merged.
struct Series {
    timeline: Vec<(f64, f64, f64, f64)>,
    total: Histogram<u64>,
}

fn read(hlog: &Path) -> Result<BTreeMap<String, Series>> {
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for i in crate::results::hlog::read(hlog)? {
        let tag = i.tag.unwrap_or_else(|| "untagged".to_string());
        let h = i.histogram;
        let s =
            out.entry(tag).or_insert_with(|| Series { timeline: Vec::new(), total: crate::schema::new_histogram() });
        if !h.is_empty() {
            let ms = |v: u64| v as f64 / 1000.0;
            s.timeline.push((i.start_s, ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max())));
        }
        s.total.add(&h).map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(out)
}

/// The suite's heatmap (charts/suite/), as an exporter.
pub struct SuiteHeatmap;

impl super::Exporter for SuiteHeatmap {
    fn name(&self) -> &'static str {
        "suite heatmap"
    }

    fn required(&self) -> bool {
        false
    }

    fn export(&self, results: &super::Results<'_>, dir: &crate::results::RunDir) -> Result<()> {
        match results {
            super::Results::Suite { rows, .. } => heatmap(rows, &dir.suite_charts_dir()).map(drop),
            super::Results::Workload { .. } => Ok(()),
        }
    }
}

/// Each target's latency charts (charts/<workload>/) from its response-time hlog, as an
/// exporter. A target whose chart fails is reported and the others are still drawn.
pub struct LatencyCharts;

impl super::Exporter for LatencyCharts {
    fn name(&self) -> &'static str {
        "latency charts"
    }

    fn required(&self) -> bool {
        false
    }

    fn export(&self, results: &super::Results<'_>, dir: &crate::results::RunDir) -> Result<()> {
        let super::Results::Workload { name: workload, targets, .. } = results else { return Ok(()) };
        for target in *targets {
            let hlog = dir.hlog(workload, target, crate::results::HlogKind::Response);
            if hlog.is_file()
                && let Err(e) = render(&hlog, &dir.workload_charts_dir(workload), target, target)
            {
                eprintln!("warning: charts for {target}: {e:#}");
            }
        }
        Ok(())
    }
}

/// Draws `<stem>.percentiles.{png,svg}` and `<stem>.over-time.{png,svg}` into `dir`.
pub fn render(hlog: &Path, dir: &Path, stem: &str, title: &str) -> Result<Vec<PathBuf>> {
    register_font();
    let series = read(hlog)?;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for ext in ["png", "svg"] {
        let p = dir.join(format!("{stem}.percentiles.{ext}"));
        let o = dir.join(format!("{stem}.over-time.{ext}"));
        if ext == "png" {
            percentiles(BitMapBackend::new(&p, (1000, 600)).into_drawing_area(), &series, title)?;
            over_time(BitMapBackend::new(&o, (1000, 600)).into_drawing_area(), &series, title)?;
        } else {
            percentiles(SVGBackend::new(&p, (1000, 600)).into_drawing_area(), &series, title)?;
            over_time(SVGBackend::new(&o, (1000, 600)).into_drawing_area(), &series, title)?;
        }
        written.push(p);
        written.push(o);
    }
    Ok(written)
}

/// plotters' errors (not `std::error::Error` for every backend) as anyhow's.
pub(super) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e:?}")
}

/// The legend at `position`, then the file written: how the latency charts and the comparison
/// chart end.
pub(super) fn legend_and_present<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    area: &DrawingArea<DB, Shift>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

fn percentiles<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Series>,
    title: &str,
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    // x = 1/(1−p), from p = 0 to p = 99.999%.
    const X_MAX: f64 = 100_000.0;
    let y_max =
        series.values().filter(|s| !s.total.is_empty()).map(|s| s.total.max() as f64 / 1000.0).fold(0.001, f64::max)
            * 1.1;
    let mut chart = ChartBuilder::on(&area)
        .caption(format!("{title}: response time by percentile"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..X_MAX).log_scale(), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            let n = format!("{p:.3}");
            format!("{}%", n.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()
        .map_err(err)?;
    for (i, (tag, s)) in series.iter().enumerate().filter(|(_, (_, s))| !s.total.is_empty()) {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = (0..=250)
            .map(|k| {
                let x = 10f64.powf(f64::from(k) / 50.0);
                let q = 1.0 - 1.0 / x;
                (x, s.total.value_at_quantile(q) as f64 / 1000.0)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(crate::results::hlog::op_of(tag).to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend_and_present(&mut chart, &area, SeriesLabelPosition::UpperLeft)
}

fn over_time<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    series: &BTreeMap<String, Series>,
    title: &str,
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let t_max = series.values().flat_map(|s| s.timeline.iter().map(|p| p.0)).fold(1.0, f64::max) + 1.0;
    let y_max = series.values().flat_map(|s| s.timeline.iter().map(|p| p.2)).fold(0.001, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&area)
        .caption(format!("{title}: response time p50 (thin) and p99 (thick) per interval"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    chart.configure_mesh().x_desc("seconds since start").y_desc("ms").draw().map_err(err)?;
    for (i, (tag, s)) in series.iter().enumerate().filter(|(_, (_, s))| !s.timeline.is_empty()) {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.timeline.iter().map(|p| (p.0, p.1)), color.stroke_width(1)))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(s.timeline.iter().map(|p| (p.0, p.2)), color.stroke_width(3)))
            .map_err(err)?
            .label(crate::results::hlog::op_of(tag).to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    legend_and_present(&mut chart, &area, SeriesLabelPosition::UpperLeft)
}

/// The suite as a grid per target: tests down, iterations across, one cell per execution coloured
/// by verdict; a flaky protection shows as a row of mixed colours. `<dir>/<target>.heatmap.{png,svg}`.
pub fn heatmap(rows: &[crate::suite::run::Row], dir: &Path) -> Result<Vec<PathBuf>> {
    use crate::suite::verdict::Verdict;
    register_font();
    std::fs::create_dir_all(dir)?;
    let mut by_target: BTreeMap<&str, Vec<&crate::suite::run::Row>> = BTreeMap::new();
    // Tests only: the integrity row spans the whole run, not one iteration (it is in tests.csv
    // and summary.csv).
    for r in rows.iter().filter(|r| r.test_id.number().is_some()) {
        by_target.entry(r.target.as_str()).or_default().push(r);
    }
    let colour = |v: Verdict| match v {
        Verdict::Held => RGBColor(46, 160, 67),
        Verdict::Violated => RGBColor(207, 34, 46),
        Verdict::Inconclusive => RGBColor(191, 191, 191),
        Verdict::SkippedEnv => RGBColor(84, 174, 255),
        Verdict::Informational => RGBColor(240, 240, 240),
    };
    let mut written = Vec::new();
    for (target, rs) in by_target {
        let iterations = rs.iter().map(|r| r.iteration).max().unwrap_or(1);
        let max_id = rs.iter().filter_map(|r| r.test_id.number()).max().unwrap_or(1);
        let png = dir.join(format!("{target}.heatmap.png"));
        let svg = dir.join(format!("{target}.heatmap.svg"));
        draw_heatmap(
            BitMapBackend::new(&png, (900, 1400)).into_drawing_area(),
            target,
            &rs,
            iterations,
            max_id,
            &colour,
        )?;
        draw_heatmap(SVGBackend::new(&svg, (900, 1400)).into_drawing_area(), target, &rs, iterations, max_id, &colour)?;
        written.push(png);
        written.push(svg);
    }
    Ok(written)
}

fn draw_heatmap<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    target: &str,
    rows: &[&crate::suite::run::Row],
    iterations: u32,
    max_id: u32,
    colour: &dyn Fn(crate::suite::verdict::Verdict) -> RGBColor,
) -> Result<()> {
    use crate::suite::verdict::Verdict;
    area.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(format!("{target}: suite verdicts (test × iteration)"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..(f64::from(iterations) + 0.5), (f64::from(max_id) + 0.5)..0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("iteration")
        .y_desc("test")
        .x_labels(iterations.min(20) as usize)
        .y_labels(19)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(rows.iter().filter_map(|r| Some((r, r.test_id.number()?))).map(|(r, id)| {
            let (x, y) = (f64::from(r.iteration), f64::from(id));
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], colour(r.verdict).filled())
        }))
        .map_err(err)?;
    // Empty series, for the legend only.
    for v in [Verdict::Held, Verdict::Violated, Verdict::Inconclusive, Verdict::SkippedEnv, Verdict::Informational] {
        let c = colour(v);
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(err)?
            .label(v.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_draws_one_cell_per_execution() {
        use crate::suite::verdict::Verdict;
        let rows: Vec<crate::suite::run::Row> = (1..=90)
            .flat_map(|id| {
                (1..=3).map(move |it| crate::suite::run::Row {
                    target: "t0".into(),
                    agentsh_version: "none".into(),
                    iteration: it,
                    category: "c".into(),
                    test_id: crate::suite::run::TestId::Suite(id),
                    test: format!("t{id}"),
                    verdict: if id == 14 && it == 2 { Verdict::Violated } else { Verdict::Held },
                    expected: "enforced".into(),
                    evidence: String::new(),
                    duration_ms: 1,
                    detail: String::new(),
                    record: String::new(),
                })
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let files = heatmap(&rows, dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.path().join("t0.heatmap.svg")).unwrap();
        // 270 cells plus the legend swatches; one red cell.
        assert!(svg.matches("<rect").count() >= 270, "{}", svg.matches("<rect").count());
        assert_eq!(svg.matches("fill=\"#CF222E\"").count(), 2, "the violated cell and its legend swatch");
        assert!(svg.lines().any(|l| l.trim() == "violated"));
        assert_eq!(&std::fs::read(dir.path().join("t0.heatmap.png")).unwrap()[..4], b"\x89PNG");
    }

    #[test]
    fn charts_render_from_an_hlog() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.hlog");
        let mut w = crate::results::hlog::HlogWriter::create(&log, 1_764_190_000_000, "test").unwrap();
        for i in 0..5u64 {
            let mut h = crate::schema::new_histogram();
            for v in 1..=100u64 {
                h.record(v * 10 * (i + 1)).unwrap();
            }
            w.interval("t0/op", i * 1000, 1000, h.max(), &crate::schema::encode_histogram(&h).unwrap()).unwrap();
        }
        w.flush().unwrap();
        let files = render(&log, dir.path(), "t0", "t0").unwrap();
        assert_eq!(files.len(), 4);
        for f in &files {
            let len = std::fs::metadata(f).unwrap().len();
            assert!(len > 1000, "{} is only {len} bytes", f.display());
        }
        let svg = std::fs::read_to_string(dir.path().join("t0.percentiles.svg")).unwrap();
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"99.9%") && texts.contains(&"op"), "axis labels and legend expected");
        let png = std::fs::read(dir.path().join("t0.percentiles.png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
}

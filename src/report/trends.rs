//! `charts/trends.svg`: one small panel per series, one line per target, minutes since the run's
//! start across, the caller's windows (fault injections) shaded, and each panel's verdict in its
//! title, so that a leak and what the run did at the time are seen together.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::charts::{err, register_font};
use crate::analyze::trends::{Row, Samples, Verdict};

/// A stretch of the run to shade, in seconds on the samples' clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
}

impl Window {
    /// A fault's window: from applying it (`at_s`), on for `on_s`, to the end of its recovery
    /// (none timed when it did not recover). The trends chart and the soak's latency chart shade
    /// the same stretch.
    pub fn of_fault(at_s: f64, on_s: f64, recover_s: Option<f64>, label: String) -> Window {
        Window { start_s: at_s, end_s: at_s + on_s + recover_s.unwrap_or(0.0), label }
    }
}

const PANEL: (u32, u32) = (600, 280);
const COLUMNS: usize = 2;

/// Draws every series of [`crate::analyze::trends::SERIES`] that has samples into `path` (SVG).
pub fn render(samples: &Samples, rows: &[Row], windows: &[Window], path: &Path) -> Result<()> {
    register_font();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let series: Vec<(&str, &str)> = crate::analyze::trends::SERIES
        .iter()
        .copied()
        .filter(|(s, _)| samples.keys().any(|(_, name)| name == s))
        .collect();
    if series.is_empty() {
        anyhow::bail!("no samples to draw");
    }
    // One colour per target, the same in every panel.
    let targets: Vec<&str> = {
        let set: std::collections::BTreeSet<&str> = samples.keys().map(|(t, _)| t.as_str()).collect();
        set.into_iter().collect()
    };
    let t_max = samples.values().flat_map(|p| p.iter().map(|x| x.0)).fold(0.0, f64::max);
    let x_max = (windows.iter().map(|w| w.end_s).fold(t_max, f64::max) / 60.0).max(1.0 / 60.0) * 1.02;
    let rows_n = series.len().div_ceil(COLUMNS);
    let area = SVGBackend::new(path, (PANEL.0 * COLUMNS as u32, PANEL.1 * rows_n as u32)).into_drawing_area();
    area.fill(&WHITE).map_err(err)?;
    let panels = area.split_evenly((rows_n, COLUMNS));
    for (i, ((name, unit), panel)) in series.iter().zip(panels.iter()).enumerate() {
        let by_target: BTreeMap<&str, &Vec<(f64, f64)>> =
            targets.iter().filter_map(|t| samples.get(&(t.to_string(), name.to_string())).map(|p| (*t, p))).collect();
        let (lo, hi) = by_target
            .values()
            .flat_map(|p| p.iter().map(|x| x.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.02).max(1.0);
        // Counts and sizes are never negative: the axis stops at 0.
        let (y0, y1) = (if lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad }, hi + pad);
        let title = format!("{name} ({unit}): {}", verdict_title(rows, name));
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(62)
            .build_cartesian_2d(0.0..x_max, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("minutes since start")
            .x_labels(8)
            .y_labels(6)
            .max_light_lines(1)
            .x_label_formatter(&|m| if x_max > 5.0 { format!("{m:.0}") } else { format!("{m:.1}") })
            .y_label_formatter(&|v| si(*v))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, y0, y1)?;
        for (t, points) in &by_target {
            let colour = Palette99::pick(targets.iter().position(|x| x == t).unwrap_or(0)).to_rgba();
            for (k, run) in segments(points).into_iter().enumerate() {
                let at = run.iter().map(|(x, y)| (x / 60.0, *y));
                // A lone sample between gaps is a dot: a line of one point draws nothing.
                let line = if run.len() == 1 {
                    chart.draw_series(at.map(|p| Circle::new(p, 3, colour.filled()))).map_err(err)?
                } else {
                    chart.draw_series(LineSeries::new(at, colour.stroke_width(2))).map_err(err)?
                };
                if i == 0 && k == 0 {
                    line.label(t.to_string())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
                }
            }
        }
        if i == 0 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }
    }
    area.present().map_err(err)?;
    Ok(())
}

/// Each window shaded across the chart's height (x in minutes), its label at the top: how every
/// over-time chart of a soak shows when a fault was on.
pub(super) fn shade<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    windows: &[Window],
    y0: f64,
    y1: f64,
) -> Result<()> {
    let colour = RGBColor(207, 34, 46).mix(0.12);
    for w in windows {
        let (a, b) = (w.start_s / 60.0, w.end_s.max(w.start_s) / 60.0);
        chart.draw_series(std::iter::once(Rectangle::new([(a, y0), (b, y1)], colour.filled()))).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(w.label.clone(), (a, y1), ("sans-serif", 12).into_font())))
            .map_err(err)?;
    }
    Ok(())
}

/// The samples cut where some are missing (more than 2.5 median intervals apart: the target
/// unreachable, or the server not answering), so that a line does not pretend to know the gap.
pub(super) fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    let mut gaps: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let Some(&median) = gaps.get(gaps.len() / 2) else { return vec![points] };
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..points.len() {
        if points[i].0 - points[i - 1].0 > 2.5 * median {
            out.push(&points[start..i]);
            start = i;
        }
    }
    out.push(&points[start..]);
    out
}

/// A panel's verdict: the targets that leak, else flat or insufficient (with how many).
fn verdict_title(rows: &[Row], series: &str) -> String {
    let of: Vec<&Row> = rows.iter().filter(|r| r.series == series).collect();
    let leaking: Vec<&str> = of.iter().filter(|r| r.verdict == Verdict::Leak).map(|r| r.target.as_str()).collect();
    let short = of.iter().filter(|r| r.verdict == Verdict::Insufficient).count();
    if !leaking.is_empty() {
        format!("LEAK on {}", leaking.join(", "))
    } else if of.is_empty() {
        "not judged".into()
    } else if short == of.len() {
        "insufficient data".into()
    } else if short > 0 {
        format!("flat ({short} insufficient)")
    } else {
        "flat".into()
    }
}

/// A short axis label: 1.5k, 12M, 3G.
fn si(v: f64) -> String {
    let a = v.abs();
    let (d, s) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let n = format!("{:.1}", v / d);
    format!("{}{s}", n.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::trends::{Limit, Limits, analyze};

    #[test]
    fn panels_lines_windows_and_verdicts_are_drawn() {
        let mut samples = Samples::new();
        for (t, slope) in [("t-0", 0.0), ("t-1", 1.0)] {
            let pts: Vec<(f64, f64)> = (0..=120).map(|i| f64::from(i) * 30.0).map(|s| (s, 100.0 + slope * s)).collect();
            samples.insert((t.into(), "server_fds".into()), pts.clone());
            samples.insert((t.into(), "sessions".into()), pts[..3].to_vec());
        }
        let mut l = BTreeMap::new();
        for (name, _) in crate::analyze::trends::SERIES {
            let limit = Limit {
                max_per_hour: Some(10.0),
                max_relative_per_hour: None,
                min_span_s: 600.0,
                min_samples: 10,
                warmup_s: 0.0,
            };
            l.insert(name.to_string(), limit);
        }
        let rows = analyze(&samples, &Limits(l));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("charts").join("trends.svg");
        let windows = [Window { start_s: 600.0, end_s: 900.0, label: "kill-server t-0".into() }];
        render(&samples, &rows, &windows, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"server_fds (fds): LEAK on t-1"), "{svg}");
        assert!(texts.contains(&"sessions (sessions): insufficient data"));
        assert!(texts.contains(&"kill-server t-0") && texts.contains(&"t-1"), "window label and legend");
        let lines = svg.lines().filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\"")).count();
        assert_eq!(lines, 2 * 2 + 2, "a line per target and panel, and a legend line per target: {svg}");
        assert_eq!(svg.matches("opacity=\"0.12\" fill=\"#CF222E\"").count(), 2, "the window shaded in both panels");
        assert!(!texts.iter().any(|t| t.starts_with("server_rss_kb")), "no panel without samples");
    }

    #[test]
    fn lines_break_where_samples_are_missing() {
        let pts = [(0.0, 1.0), (30.0, 1.0), (60.0, 1.0), (300.0, 2.0), (330.0, 2.0)];
        let segs = segments(&pts);
        assert_eq!(segs, vec![&pts[..3], &pts[3..]]);
        assert_eq!(segments(&pts[..1]), vec![&pts[..1]]);
    }

    #[test]
    fn si_labels() {
        assert_eq!(si(1234.0), "1234");
        assert_eq!(si(51_200.0), "51.2k");
        assert_eq!(si(3_000_000.0), "3M");
        assert_eq!(si(2.5e9), "2.5G");
        assert_eq!(si(0.5), "0.5");
    }
}

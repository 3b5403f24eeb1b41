//! `charts/soak-latency.svg`: a soak's workload rounds on the run's clock, one panel per target,
//! each op's p99 per interval, and the faults on that target shaded, so that a latency step and
//! the fault (or the suite round, the gap between rounds) that caused it are seen together.
//! Each round's chart (`charts/<workload>-rN/`) has its own clock; this one puts them end to end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::charts::{err, register_font};
use super::trends::{Window, segments, shade};
use crate::results::{HlogKind, RunDir};

const PANEL: (u32, u32) = (1200, 300);
/// The key's column, right of the panels.
const KEY_WIDTH: u32 = 170;

/// One target's rounds: its response-time hlogs (in round order) and the faults it went through.
pub struct Panel {
    pub hlogs: Vec<PathBuf>,
    pub windows: Vec<Window>,
}

/// Draws `charts/soak-latency.svg` from a soak's folder alone: soak.json (its clock and rounds),
/// workload.json (the rounds' name), the rounds' response hlogs and faults.csv (the windows, from
/// applying each fault to the end of its recovery). None when the folder is not a soak's with a
/// workload. The soak calls it at its end, and `report` redraws with it.
pub fn redraw(dir: &RunDir) -> Result<Option<PathBuf>> {
    let d = crate::analyze::digest::Digest::load(&dir.path)?;
    let (Some(soak), Some(workload)) = (&d.soak, &d.workload) else { return Ok(None) };
    let Some(t0) = soak.t0_epoch_s else { return Ok(None) };
    let mut panels: BTreeMap<String, Panel> = BTreeMap::new();
    for r in 1..=soak.rounds {
        let folder = dir.workload_histograms_dir(&format!("{}-r{r}", workload.plan.name));
        // A round the soak's end cut before its workload has no folder.
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some((HlogKind::Response, target)) = HlogKind::parse_file_name(&name) {
                let panel =
                    panels.entry(target.to_string()).or_insert(Panel { hlogs: Vec::new(), windows: Vec::new() });
                panel.hlogs.push(f);
            }
        }
    }
    for f in d.faults.iter().filter(|f| f.recovery != "not applied") {
        if let (Some(panel), Some(at)) = (panels.get_mut(&f.target), f.at_s) {
            let on = f.duration_s.unwrap_or(0.0);
            panel.windows.push(Window::of_fault(at, on, f.recover_s, f.fault.clone()));
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let path = dir.soak_latency_svg();
    render(&panels, t0, &path)?;
    Ok(Some(path))
}

/// Each op's p99 per interval, in (seconds since `t0_epoch_s`, ms), from `hlogs`. A log without
/// a StartTime cannot be placed on the clock and is left out.
fn p99_by_op(hlogs: &[PathBuf], t0_epoch_s: f64) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for hlog in hlogs {
        let (Some(start), intervals) = crate::results::hlog::read_timed(hlog)? else {
            tracing::warn!(hlog = %hlog.display(), "no StartTime: left out of the soak's latency chart");
            continue;
        };
        for i in intervals.into_iter().filter(|i| !i.histogram.is_empty()) {
            let tag = i.tag.unwrap_or_else(|| "untagged".into());
            let op = crate::results::hlog::op_of(&tag).to_string();
            let ms = i.histogram.value_at_quantile(0.99) as f64 / 1000.0;
            out.entry(op).or_default().push((start + i.start_s - t0_epoch_s, ms));
        }
    }
    for points in out.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(out)
}

/// Draws `path` (SVG) from every target's panel. The y axis is log10(ms): ops a thousand times
/// apart (an echo through the shim, a FUSE rename) share a panel without flattening the fast ones.
pub fn render(panels: &BTreeMap<String, Panel>, t0_epoch_s: f64, path: &Path) -> Result<()> {
    register_font();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut data = Vec::new();
    for (target, panel) in panels {
        data.push((target, panel, p99_by_op(&panel.hlogs, t0_epoch_s)?));
    }
    data.retain(|(_, _, by_op)| !by_op.is_empty());
    if data.is_empty() {
        anyhow::bail!("no intervals to draw");
    }
    let ops: Vec<&String> = {
        let set: std::collections::BTreeSet<&String> = data.iter().flat_map(|(_, _, m)| m.keys()).collect();
        set.into_iter().collect()
    };
    let all = || data.iter().flat_map(|(_, _, m)| m.values().flatten());
    let t_max = all().map(|p| p.0).fold(0.0, f64::max);
    let w_max = data.iter().flat_map(|(_, p, _)| p.windows.iter().map(|w| w.end_s)).fold(t_max, f64::max);
    let x_max = (w_max / 60.0).max(1.0 / 60.0) * 1.02;
    let log = |ms: f64| ms.max(0.001).log10();
    let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(log(p.1)), hi.max(log(p.1))));
    let (y0, y1) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0) + 0.3);
    let area = SVGBackend::new(path, (PANEL.0, PANEL.1 * data.len() as u32)).into_drawing_area();
    area.fill(&WHITE).map_err(err)?;
    // The ops' key in a column of its own, so that it never hides a fault window or a line.
    let (plots, key) = area.split_horizontally(PANEL.0 - KEY_WIDTH);
    let colour = |op: &String| Palette99::pick(ops.iter().position(|o| *o == op).unwrap_or(0)).to_rgba();
    for (i, op) in ops.iter().enumerate() {
        let y = 40 + 18 * i as i32;
        key.draw(&PathElement::new(vec![(8, y), (28, y)], colour(op).stroke_width(2))).map_err(err)?;
        key.draw(&Text::new(op.to_string(), (34, y - 7), ("sans-serif", 13).into_font())).map_err(err)?;
    }
    for ((target, panel, by_op), part) in data.iter().zip(plots.split_evenly((data.len(), 1)).iter()) {
        let mut chart = ChartBuilder::on(part)
            .caption(format!("{target}: p99 per interval of each op, every round"), ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("minutes since the soak started")
            .y_desc("ms (log)")
            .x_labels(12)
            .y_labels(((y1 - y0).ceil() as usize + 1).max(2))
            .max_light_lines(1)
            .y_label_formatter(&|v| ms_label(10f64.powf(*v)))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        shade(&mut chart, &panel.windows, y0, y1)?;
        for (op, points) in by_op {
            let colour = colour(op);
            for run in segments(points) {
                let at = run.iter().map(|(x, ms)| (x / 60.0, log(*ms)));
                // A lone interval between gaps is a dot: a line of one point draws nothing.
                if run.len() == 1 {
                    chart.draw_series(at.map(|p| Circle::new(p, 2, colour.filled()))).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(at, colour.stroke_width(1))).map_err(err)?;
                }
            }
        }
    }
    area.present().map_err(err)?;
    Ok(())
}

/// 0.01, 0.1, 1, 10, 100, 1k ms.
fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.0}k", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        let n = format!("{ms:.3}");
        n.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::hlog::HlogWriter;

    /// Two rounds written a minute apart land a minute apart on the soak's clock, and the fault
    /// on the target is shaded in its panel only.
    #[test]
    fn rounds_are_placed_on_the_soak_clock_and_faults_shaded_on_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let t0_ms = 1_764_190_000_000u64;
        let mut h = crate::schema::new_histogram();
        h.record(2_000).unwrap();
        let enc = crate::schema::encode_histogram(&h).unwrap();
        let mut hlogs = Vec::new();
        for (r, start) in [(1, t0_ms + 5_000), (2, t0_ms + 65_000)] {
            let p = dir.path().join(format!("r{r}.hlog"));
            let mut w = HlogWriter::create(&p, start, "t").unwrap();
            for s in 0..3 {
                w.interval("t-0/shim-allow", s * 1000, 1000, h.max(), &enc).unwrap();
            }
            w.flush().unwrap();
            hlogs.push(p);
        }
        let by_op = p99_by_op(&hlogs, t0_ms as f64 / 1000.0).unwrap();
        let xs: Vec<f64> = by_op["shim-allow"].iter().map(|p| p.0.round()).collect();
        assert_eq!(xs, [5.0, 6.0, 7.0, 65.0, 66.0, 67.0]);
        assert!((by_op["shim-allow"][0].1 - 2.0).abs() < 0.01, "{:?}", by_op["shim-allow"][0]);

        let window = Window { start_s: 30.0, end_s: 50.0, label: "kill-server".into() };
        let panels = BTreeMap::from([
            ("t-0".to_string(), Panel { hlogs: hlogs.clone(), windows: vec![window] }),
            ("t-1".to_string(), Panel { hlogs, windows: vec![] }),
        ]);
        let path = dir.path().join("charts/soak-latency.svg");
        render(&panels, t0_ms as f64 / 1000.0, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("opacity=\"0.12\" fill=\"#CF222E\"").count(), 1, "shaded on t-0's panel only");
        assert!(svg.contains("kill-server") && svg.contains("shim-allow") && svg.contains("t-1: p99"));
    }

    /// From the folder alone: a soak's rounds and faults.csv give each target its panel and its
    /// windows; a folder that is not a soak's (or a soak written before its clock was) gives none.
    #[test]
    fn report_redraws_it_from_the_soaks_folder() {
        let dir = tempfile::tempdir().unwrap();
        crate::analyze::digest::tests::fixture(dir.path());
        let d = RunDir::at(dir.path());
        assert!(redraw(&d).unwrap().is_none(), "the fixture's soak.json has no clock");
        std::fs::create_dir_all(d.workload_histograms_dir("default-r2")).unwrap();
        for kind in HlogKind::ALL {
            std::fs::rename(d.hlog("default", "t-0", kind), d.hlog("default-r2", "t-0", kind)).unwrap();
        }
        std::fs::write(
            d.path.join("soak.json"),
            r#"{ "duration_s": 7200.0, "rounds": 3, "elapsed_s": 7210.5, "interrupted": false, "t0_epoch_s": 1764189990.0 }"#,
        )
        .unwrap();
        let path = redraw(&d).unwrap().expect("drawn");
        let svg = std::fs::read_to_string(path).unwrap();
        // t-0 only (t-1's hlog is not a round's); its kill-server and stall-server, not t-1's faults.
        assert!(svg.contains("t-0: p99") && !svg.contains("t-1: p99"));
        assert_eq!(svg.matches("opacity=\"0.12\" fill=\"#CF222E\"").count(), 2, "{svg}");
        assert!(svg.contains("kill-server") && svg.contains("stall-server") && !svg.contains("drop-ssh"), "{svg}");
    }

    #[test]
    fn axis_labels_read_as_milliseconds() {
        assert_eq!([0.01, 1.0, 100.0, 1000.0].map(ms_label), ["0.01", "1", "100", "1k"]);
    }
}

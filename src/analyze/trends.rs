//! Resource trends: per target and series, the slope of `trends-samples.csv` and whether it is a
//! leak against the thresholds of `scenarios/trends.toml`.
//!
//! Two slopes per series, both per hour: least squares (every sample counts, so one burst moves
//! it) and Theil–Sen (the median of the slopes between every pair of samples: up to 29% of the
//! samples can be outliers, a GC cycle or a burst of sessions, without moving it). A series is a
//! **leak** only when both exceed its threshold: the least-squares slope alone calls a single
//! spike a leak, Theil–Sen alone a step in a mostly flat series. It is **insufficient** when its
//! span or its sample count is under the file's minimum (after the warm-up): a slope per hour
//! extrapolated from two minutes is noise, and saying "flat" there would be a claim the data
//! cannot carry. Otherwise **flat**; a shrinking series is flat too (nothing is held).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::exit::usage;

/// The columns of `trends-samples.csv`.
pub const SAMPLE_COLUMNS: [&str; 4] = ["t_s", "target", "series", "value"];

/// The columns of `trends.csv`.
pub const COLUMNS: [&str; 13] = [
    "target",
    "series",
    "unit",
    "samples",
    "span_s",
    "first",
    "last",
    "min",
    "max",
    "slope_per_hour",
    "robust_slope_per_hour",
    "threshold_per_hour",
    "verdict",
];

/// Theil–Sen over more samples than this uses this many, evenly spread: the pairs grow with the
/// square (a day at 30 s is 2880 samples, 4 million pairs per series and target), and the median
/// slope of an even thinning is the same trend.
const THEIL_SEN_MAX: usize = 1000;

/// Every series judged, with its unit, in the order of the table and the chart's panels.
pub const SERIES: &[(&str, &str)] = &[
    ("server_rss_kb", "kB"),
    ("server_fds", "fds"),
    ("server_threads", "threads"),
    ("sessions", "sessions"),
    ("fuse_mounts", "mounts"),
    ("leftover_procs", "processes"),
    ("event_store_bytes", "bytes"),
    ("log_bytes", "bytes"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Leak,
    Insufficient,
    Flat,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Leak => "leak",
            Verdict::Insufficient => "insufficient",
            Verdict::Flat => "flat",
        }
    }
}

/// One series' limits, from `scenarios/trends.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The largest slope per hour that is not a leak, in the series' unit.
    pub max_per_hour: Option<f64>,
    /// The same as a fraction of the series' first value per hour.
    pub max_relative_per_hour: Option<f64>,
    pub min_span_s: f64,
    pub min_samples: usize,
    /// Samples in the first `warmup_s` of each target's series are left out.
    pub warmup_s: f64,
}

impl Limit {
    /// The threshold for a series that starts at `first`: the larger of the two limits given (the
    /// absolute one keeps a small series, 3 fds, from leaking by one more; the relative one keeps
    /// a large one from leaking by noise proportional to its size).
    pub fn threshold(&self, first: f64) -> f64 {
        let abs = self.max_per_hour.unwrap_or(0.0);
        let rel = self.max_relative_per_hour.map_or(0.0, |r| r * first.abs());
        abs.max(rel)
    }
}

/// Every judged series' limits.
#[derive(Debug, Clone)]
pub struct Limits(pub BTreeMap<String, Limit>);

pub fn default_path() -> PathBuf {
    crate::paths::scenarios_dir().join("trends.toml")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    defaults: Defaults,
    #[serde(default)]
    series: Vec<toml::Spanned<SeriesToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    min_span: String,
    min_samples: usize,
    #[serde(default)]
    warmup: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesToml {
    name: String,
    #[serde(default)]
    max_per_hour: Option<f64>,
    #[serde(default)]
    max_relative_per_hour: Option<f64>,
    #[serde(default)]
    min_span: Option<String>,
    #[serde(default)]
    min_samples: Option<usize>,
    #[serde(default)]
    warmup: Option<String>,
}

/// Loads the limits; refused with file and line (exit 3): a TOML error, an unknown or repeated
/// series, one without any threshold, a negative or non-finite threshold, a bad duration, fewer
/// than 3 samples as the minimum, a series of [`SERIES`] left out.
pub fn load(path: &Path) -> Result<Limits> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Limits> {
    let at = |offset: usize| format!("{}:{}", path.display(), crate::text::line_of(text, offset));
    let f: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or_else(|| path.display().to_string(), |s| at(s.start));
        usage(format!("{line}: {}", e.message().trim()))
    })?;
    // The defaults' own line: where `[defaults]` is.
    let defaults_at = at(text.find("[defaults]").unwrap_or(0));
    let dur = |where_: &str, what: &str, s: &str| -> Result<f64> {
        humantime::parse_duration(s)
            .map(|d| d.as_secs_f64())
            .map_err(|e| usage(format!("{where_}: {what} = {s:?}: {e}")))
    };
    let d_span = dur(&defaults_at, "min_span", &f.defaults.min_span)?;
    let d_warmup = f.defaults.warmup.as_deref().map(|w| dur(&defaults_at, "warmup", w)).transpose()?.unwrap_or(0.0);
    if f.defaults.min_samples < 3 {
        return Err(usage(format!(
            "{defaults_at}: min_samples must be at least 3 (a slope of two points is any line)"
        )));
    }
    let mut out = BTreeMap::new();
    for spanned in f.series {
        let where_ = format!("{}: series {:?}", at(spanned.span().start), spanned.get_ref().name);
        let s = spanned.into_inner();
        if !SERIES.iter().any(|(n, _)| *n == s.name) {
            let known: Vec<&str> = SERIES.iter().map(|(n, _)| *n).collect();
            return Err(usage(format!("{where_}: no such series (known: {})", known.join(", "))));
        }
        if s.max_per_hour.is_none() && s.max_relative_per_hour.is_none() {
            return Err(usage(format!("{where_}: needs max_per_hour or max_relative_per_hour (or both)")));
        }
        for (what, v) in [("max_per_hour", s.max_per_hour), ("max_relative_per_hour", s.max_relative_per_hour)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(usage(format!("{where_}: {what} = {v} must be a finite number, 0 or more")));
            }
        }
        let min_samples = s.min_samples.unwrap_or(f.defaults.min_samples);
        if min_samples < 3 {
            return Err(usage(format!("{where_}: min_samples must be at least 3 (a slope of two points is any line)")));
        }
        let limit = Limit {
            max_per_hour: s.max_per_hour,
            max_relative_per_hour: s.max_relative_per_hour,
            min_span_s: s.min_span.as_deref().map(|v| dur(&where_, "min_span", v)).transpose()?.unwrap_or(d_span),
            min_samples,
            warmup_s: s.warmup.as_deref().map(|v| dur(&where_, "warmup", v)).transpose()?.unwrap_or(d_warmup),
        };
        if out.insert(s.name.clone(), limit).is_some() {
            return Err(usage(format!("{where_}: listed twice")));
        }
    }
    if let Some((missing, _)) = SERIES.iter().find(|(n, _)| !out.contains_key(*n)) {
        return Err(usage(format!(
            "{}: series {missing:?} has no [[series]] entry: it could not be judged",
            path.display()
        )));
    }
    Ok(Limits(out))
}

/// Per (target, series), the samples in time order.
pub type Samples = BTreeMap<(String, String), Vec<(f64, f64)>>;

/// Reads `trends-samples.csv`. A last line without its newline is what a run killed in the middle
/// of a write leaves: it is left out (with a warning). Any other bad row is an error naming the
/// file and line.
pub fn read_samples(path: &Path) -> Result<Samples> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        let cut = text.rfind('\n').map_or(0, |i| i + 1);
        eprintln!("warning: {}: the last line is incomplete (a run cut off mid-write); left out", path.display());
        text.truncate(cut);
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let headers = reader.headers().with_context(|| format!("reading {}", path.display()))?.clone();
    if !text.is_empty() && headers.iter().ne(SAMPLE_COLUMNS) {
        bail!("{}:1: expected the columns {}", path.display(), SAMPLE_COLUMNS.join(","));
    }
    let mut out: Samples = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow::anyhow!("{}:{line}: {e}", path.display())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let number = |i: usize| -> Result<f64> {
            let field = record.get(i).unwrap_or_default();
            field.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                anyhow::anyhow!("{}:{line}: {} = {field:?} is not a number", path.display(), SAMPLE_COLUMNS[i])
            })
        };
        let (t, v) = (number(0)?, number(3)?);
        let key = (record.get(1).unwrap_or_default().to_string(), record.get(2).unwrap_or_default().to_string());
        out.entry(key).or_default().push((t, v));
    }
    for points in out.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(out)
}

/// One row of trends.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub target: String,
    pub series: String,
    pub unit: String,
    pub samples: usize,
    pub span_s: f64,
    pub first: f64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    pub slope_per_hour: Option<f64>,
    pub robust_slope_per_hour: Option<f64>,
    pub threshold_per_hour: f64,
    pub verdict: Verdict,
}

/// Every (target, series) with limits, in [`SERIES`] order per target; series
/// without limits (`server_up`) are not judged.
pub fn analyze(samples: &Samples, limits: &Limits) -> Vec<Row> {
    let mut rows = Vec::new();
    let targets: std::collections::BTreeSet<&str> = samples.keys().map(|(t, _)| t.as_str()).collect();
    for target in targets {
        for (series, unit) in SERIES {
            let (Some(points), Some(limit)) =
                (samples.get(&(target.to_string(), series.to_string())), limits.0.get(*series))
            else {
                continue;
            };
            if let Some(row) = judge(target, series, unit, points, limit) {
                rows.push(row);
            }
        }
    }
    rows
}

/// One series (None without samples). The figures are those of the samples after the warm-up;
/// a series that ends inside its warm-up is described whole, and is insufficient.
pub fn judge(target: &str, series: &str, unit: &str, points: &[(f64, f64)], limit: &Limit) -> Option<Row> {
    let start = points.first()?.0 + limit.warmup_s;
    let after: Vec<(f64, f64)> = points.iter().copied().filter(|(t, _)| *t >= start).collect();
    let warming = after.is_empty();
    let kept = if warming { points.to_vec() } else { after };
    let (first, last) = (kept.first()?, kept.last()?);
    let span_s = last.0 - first.0;
    let slope = least_squares(&kept).map(|s| s * 3600.0);
    let robust = theil_sen(&kept).map(|s| s * 3600.0);
    let threshold = limit.threshold(first.1);
    let verdict = if warming || kept.len() < limit.min_samples || span_s < limit.min_span_s {
        Verdict::Insufficient
    } else if slope.is_some_and(|s| s > threshold) && robust.is_some_and(|s| s > threshold) {
        Verdict::Leak
    } else {
        Verdict::Flat
    };
    Some(Row {
        target: target.to_string(),
        series: series.to_string(),
        unit: unit.to_string(),
        samples: kept.len(),
        span_s,
        first: first.1,
        last: last.1,
        min: kept.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        max: kept.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
        slope_per_hour: slope,
        robust_slope_per_hour: robust,
        threshold_per_hour: threshold,
        verdict,
    })
}

/// Least-squares slope (value per second); None with fewer than two distinct times.
pub fn least_squares(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
    let stt: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let stv: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum();
    (stt > 0.0).then(|| stv / stt)
}

/// Theil–Sen slope (value per second): the median of the slopes of every pair of samples at
/// distinct times (over at most [`THEIL_SEN_MAX`] samples, evenly spread); None without a pair.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let thinned: Vec<(f64, f64)> = if points.len() > THEIL_SEN_MAX {
        (0..THEIL_SEN_MAX).map(|i| points[i * (points.len() - 1) / (THEIL_SEN_MAX - 1)]).collect()
    } else {
        points.to_vec()
    };
    let mut slopes = Vec::with_capacity(thinned.len() * thinned.len().saturating_sub(1) / 2);
    for (i, a) in thinned.iter().enumerate() {
        for b in &thinned[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    median(&mut slopes)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, &mut upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if v.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + upper) / 2.0)
}

/// Leaks first, then insufficient, then flat; within each the analysis order.
fn ranked(rows: &[Row]) -> Vec<&Row> {
    let mut out: Vec<&Row> = rows.iter().collect();
    out.sort_by_key(|r| r.verdict);
    out
}

/// A number as trends.csv writes it: integers without decimals, others with 3 decimals, empty
/// for none.
fn num(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        // Within rounding of an integer (a fitted slope of exactly 100 comes out 99.99999999997).
        Some(v) if (v - v.round()).abs() < 1e-9 * v.abs().max(1.0) && v.abs() < 1e15 => {
            format!("{:.0}", v.round() + 0.0)
        }
        Some(v) => format!("{v:.3}"),
    }
}

pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(COLUMNS)?;
    for r in ranked(rows) {
        w.write_record([
            r.target.clone(),
            r.series.clone(),
            r.unit.clone(),
            r.samples.to_string(),
            format!("{:.1}", r.span_s),
            num(Some(r.first)),
            num(Some(r.last)),
            num(Some(r.min)),
            num(Some(r.max)),
            num(r.slope_per_hour),
            num(r.robust_slope_per_hour),
            num(Some(r.threshold_per_hour)),
            r.verdict.as_str().to_string(),
        ])?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The table, leaks first.
pub fn print(rows: &[Row]) {
    if rows.is_empty() {
        println!("resource trends: no samples");
        return;
    }
    let leaks = rows.iter().filter(|r| r.verdict == Verdict::Leak).count();
    let short = rows.iter().filter(|r| r.verdict == Verdict::Insufficient).count();
    println!("resource trends: {leaks} leak(s), {short} series with too little data, per hour:");
    let w = rows.iter().map(|r| r.target.len()).max().unwrap_or(0).max(6);
    println!(
        "{:<w$} {:<18} {:>7} {:>9} {:>12} {:>12} {:>12} {:>12} {:>12}  verdict",
        "target", "series", "samples", "span_min", "first", "last", "slope", "robust", "threshold"
    );
    // Enough digits to compare a slope with its threshold, no more.
    let g = |v: Option<f64>| match v {
        None => "-".to_string(),
        Some(v) if v.abs() >= 1000.0 || v == v.round() => format!("{:.0}", v + 0.0),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    };
    for r in ranked(rows) {
        println!(
            "{:<w$} {:<18} {:>7} {:>9.1} {:>12} {:>12} {:>12} {:>12} {:>12}  {}",
            r.target,
            r.series,
            r.samples,
            r.span_s / 60.0,
            g(Some(r.first)),
            g(Some(r.last)),
            g(r.slope_per_hour),
            g(r.robust_slope_per_hour),
            g(Some(r.threshold_per_hour)),
            r.verdict.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: f64) -> Limit {
        Limit {
            max_per_hour: Some(max),
            max_relative_per_hour: None,
            min_span_s: 600.0,
            min_samples: 10,
            warmup_s: 0.0,
        }
    }

    /// Samples every 30 s for `minutes`.
    fn series(minutes: u32, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..=minutes * 2).map(|i| f64::from(i) * 30.0).map(|t| (t, f(t))).collect()
    }

    #[test]
    fn a_known_line_gives_its_slope_both_ways() {
        // 100 units per hour from 5000.
        let pts = series(60, |t| 5000.0 + t / 36.0);
        let ls = least_squares(&pts).unwrap() * 3600.0;
        let ts = theil_sen(&pts).unwrap() * 3600.0;
        assert!((ls - 100.0).abs() < 1e-6, "{ls}");
        assert!((ts - 100.0).abs() < 1e-6, "{ts}");
    }

    #[test]
    fn a_noisy_flat_series_with_spikes_is_flat_and_theil_sen_ignores_the_spikes() {
        // Deterministic noise of ±50 around 1000, and three large spikes at the end.
        let mut pts = series(120, |t| 1000.0 + 50.0 * ((t * 0.37).sin()));
        let n = pts.len();
        for p in &mut pts[n - 3..] {
            p.1 += 5000.0;
        }
        let ls = least_squares(&pts).unwrap() * 3600.0;
        let ts = theil_sen(&pts).unwrap() * 3600.0;
        assert!(ls > 100.0, "the spikes pull least squares up: {ls}");
        assert!(ts.abs() < 20.0, "Theil–Sen stays near 0: {ts}");
        let row = judge("t", "server_fds", "fds", &pts, &limit(100.0)).unwrap();
        assert_eq!(row.verdict, Verdict::Flat, "one slope over the threshold is not a leak: {row:?}");
        assert_eq!((row.samples, row.span_s), (241, 7200.0));
        assert_eq!((row.first, row.min), (1000.0, pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min)));
    }

    #[test]
    fn a_steady_climb_over_the_threshold_is_a_leak_and_under_it_is_flat() {
        let pts = series(60, |t| 10.0 + t / 360.0 + if (t as u64 / 30).is_multiple_of(2) { 1.0 } else { 0.0 });
        let leak = judge("t", "server_fds", "fds", &pts, &limit(5.0)).unwrap();
        assert_eq!(leak.verdict, Verdict::Leak, "{leak:?}");
        assert!((leak.robust_slope_per_hour.unwrap() - 10.0).abs() < 0.5, "{leak:?}");
        let flat = judge("t", "server_fds", "fds", &pts, &limit(20.0)).unwrap();
        assert_eq!(flat.verdict, Verdict::Flat);
        let falling = series(60, |t| 1000.0 - t);
        assert_eq!(judge("t", "x", "", &falling, &limit(0.0)).unwrap().verdict, Verdict::Flat);
    }

    #[test]
    fn too_few_samples_or_too_short_a_span_is_insufficient() {
        // A steep climb over two minutes: insufficient, not a leak and not flat.
        let short = series(2, |t| t * 100.0);
        let row = judge("t", "x", "", &short, &limit(1.0)).unwrap();
        assert_eq!(row.verdict, Verdict::Insufficient);
        assert!(row.slope_per_hour.unwrap() > 1.0, "slopes are still given");
        // A long span with too few samples.
        let sparse = vec![(0.0, 1.0), (3600.0, 1.0), (7200.0, 1.0)];
        assert_eq!(judge("t", "x", "", &sparse, &limit(1.0)).unwrap().verdict, Verdict::Insufficient);
        // One sample: no slope at all.
        let one = judge("t", "x", "", &[(5.0, 7.0)], &limit(1.0)).unwrap();
        assert_eq!((one.slope_per_hour, one.robust_slope_per_hour, one.verdict), (None, None, Verdict::Insufficient));
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None, "no slope without two times");
    }

    #[test]
    fn warmup_is_left_out_and_a_series_inside_it_is_insufficient() {
        // A climb in the first 40 minutes, flat after.
        let pts = series(60, |t| t.min(2400.0));
        let mut l = limit(1.0);
        assert_eq!(judge("t", "x", "", &pts, &l).unwrap().verdict, Verdict::Leak);
        l.warmup_s = 2400.0;
        let row = judge("t", "x", "", &pts, &l).unwrap();
        assert_eq!((row.verdict, row.first, row.samples, row.span_s), (Verdict::Flat, 2400.0, 41, 1200.0));
        // Ending inside the warm-up: described whole, not judged.
        l.warmup_s = 99_999.0;
        let row = judge("t", "x", "", &pts, &l).unwrap();
        assert_eq!((row.verdict, row.first, row.samples), (Verdict::Insufficient, 0.0, 121));
        assert!(judge("t", "x", "", &[], &l).is_none());
    }

    #[test]
    fn the_threshold_is_the_larger_of_absolute_and_relative() {
        let l = Limit { max_per_hour: Some(100.0), max_relative_per_hour: Some(0.1), ..limit(0.0) };
        assert_eq!(l.threshold(500.0), 100.0);
        assert_eq!(l.threshold(5000.0), 500.0);
        let rel = Limit { max_per_hour: None, ..l };
        assert_eq!(rel.threshold(0.0), 0.0);
    }

    #[test]
    fn theil_sen_thins_long_series_and_keeps_the_slope() {
        let pts: Vec<(f64, f64)> = (0..5000).map(|i| (f64::from(i) * 30.0, 2.0 * f64::from(i) * 30.0)).collect();
        assert!((theil_sen(&pts).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    const GOOD: &str = "\
[defaults]
min_span = \"30m\"
min_samples = 20
warmup = \"5m\"
";

    fn full(extra: &str) -> String {
        let mut s = GOOD.to_string();
        for (name, _) in SERIES {
            s.push_str(&format!("\n[[series]]\nname = \"{name}\"\nmax_per_hour = 10\n"));
        }
        s.push_str(extra);
        s
    }

    fn err(text: &str) -> String {
        let e = parse(text, Path::new("trends.toml")).expect_err("refused");
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
        format!("{e:#}")
    }

    #[test]
    fn the_shipped_thresholds_load_and_cover_every_series() {
        let l = load(&default_path()).expect("scenarios/trends.toml");
        for (name, _) in SERIES {
            let limit = &l.0[*name];
            assert!(limit.min_samples >= 3 && limit.min_span_s >= 60.0, "{name}: {limit:?}");
        }
        // A 2-minute normal run cannot be judged.
        assert!(l.0.values().all(|x| x.min_span_s + x.warmup_s > 120.0));
    }

    #[test]
    fn a_good_file_loads_with_defaults_and_overrides() {
        let l = parse(&full(""), Path::new("t")).unwrap();
        let rss = &l.0["server_rss_kb"];
        assert_eq!((rss.min_span_s, rss.min_samples, rss.warmup_s, rss.max_per_hour), (1800.0, 20, 300.0, Some(10.0)));
        let text = full("").replacen(
            "name = \"server_fds\"\nmax_per_hour = 10\n",
            "name = \"server_fds\"\nmax_relative_per_hour = 0.5\nwarmup = \"0s\"\nmin_samples = 5\n",
            1,
        );
        let fds = &parse(&text, Path::new("t")).unwrap().0["server_fds"];
        assert_eq!(
            (fds.max_per_hour, fds.max_relative_per_hour, fds.warmup_s, fds.min_samples),
            (None, Some(0.5), 0.0, 5)
        );
    }

    #[test]
    fn bad_files_are_refused_with_file_and_line() {
        // The line of the offending [[series]] entry.
        let text = full("\n[[series]]\nname = \"server_fds\"\nmax_per_hour = 1\n");
        let line = text.lines().count() - 2;
        assert!(
            err(&text).contains(&format!("trends.toml:{line}: series \"server_fds\": listed twice")),
            "{}",
            err(&text)
        );
        let unknown = full("\n[[series]]\nname = \"rss\"\nmax_per_hour = 1\n");
        assert!(err(&unknown).contains("series \"rss\": no such series"), "{}", err(&unknown));
        let none = full("\n[[series]]\nname = \"log_bytes\"\n");
        assert!(err(&none).contains("needs max_per_hour or max_relative_per_hour"));
        let negative = full("").replacen("max_per_hour = 10", "max_per_hour = -1", 1);
        assert!(err(&negative).contains("max_per_hour = -1 must be a finite number"), "{}", err(&negative));
        let duration = full("").replacen("max_per_hour = 10\n", "max_per_hour = 10\nwarmup = \"soon\"\n", 1);
        assert!(err(&duration).contains("warmup = \"soon\""), "{}", err(&duration));
        let few = full("").replace("min_samples = 20", "min_samples = 2");
        assert!(err(&few).contains("trends.toml:1: min_samples must be at least 3"), "{}", err(&few));
        let missing = full("").replacen("name = \"log_bytes\"", "name = \"server_fds\"", 1);
        assert!(err(&missing).contains("listed twice") || err(&missing).contains("log_bytes"));
        // A TOML error: its own line, from toml's span.
        let typo = full("").replacen("max_per_hour = 10", "max_per_hour = ten", 1);
        let line = typo.lines().position(|l| l.contains("= ten")).unwrap() + 1;
        assert!(err(&typo).starts_with(&format!("trends.toml:{line}: ")), "{}", err(&typo));
        let unknown_key = full("").replacen("max_per_hour = 10", "max_per_hr = 10", 1);
        let line = unknown_key.lines().position(|l| l.contains("max_per_hr")).unwrap() + 1;
        assert!(err(&unknown_key).starts_with(&format!("trends.toml:{line}: ")), "{}", err(&unknown_key));
    }

    #[test]
    fn samples_read_back_sorted_and_a_cut_last_line_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trends-samples.csv");
        std::fs::write(
            &p,
            "t_s,target,series,value\n60.5,t-0,server_fds,12\n1.0,t-0,server_fds,10\n2.0,t-1,sessions,0\n3.0,t-1,sess",
        )
        .unwrap();
        let s = read_samples(&p).unwrap();
        assert_eq!(s[&("t-0".into(), "server_fds".into())], vec![(1.0, 10.0), (60.5, 12.0)]);
        assert_eq!(s[&("t-1".into(), "sessions".into())], vec![(2.0, 0.0)]);
        std::fs::write(&p, "t_s,target,series,value\n1.0,t-0,server_fds,10\n2.0,t-0,server_fds,many\n").unwrap();
        let e = format!("{:#}", read_samples(&p).unwrap_err());
        assert!(e.ends_with("trends-samples.csv:3: value = \"many\" is not a number"), "{e}");
        std::fs::write(&p, "time,value\n1,2\n").unwrap();
        assert!(format!("{:#}", read_samples(&p).unwrap_err()).contains("trends-samples.csv:1: expected the columns"));
    }

    #[test]
    fn trends_csv_has_the_agreed_columns_and_leaks_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut samples = Samples::new();
        samples.insert(("t-0".into(), "server_fds".into()), series(60, |t| 10.0 + t / 36.0));
        samples.insert(("t-0".into(), "server_rss_kb".into()), series(60, |_| 50_000.0));
        samples.insert(("t-1".into(), "sessions".into()), series(1, |_| 2.0));
        samples.insert(("t-1".into(), "server_up".into()), series(60, |_| 1.0));
        let mut l = BTreeMap::new();
        for (name, _) in SERIES {
            l.insert(name.to_string(), limit(10.0));
        }
        let rows = analyze(&samples, &Limits(l));
        assert_eq!(rows.len(), 3, "server_up is not judged");
        let p = dir.path().join("trends.csv");
        write_csv(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(lines[1], "t-0,server_fds,fds,121,3600.0,10,110,10,110,100,100,10,leak");
        assert!(lines[2].starts_with("t-1,sessions,sessions,3,60.0,2,2,2,2,0,0,10,insufficient"), "{}", lines[2]);
        assert!(lines[3].starts_with("t-0,server_rss_kb,kB,121,3600.0,50000,50000,") && lines[3].ends_with(",flat"));
    }
}

//! Comparing runs: latency op by op (here), suite verdicts against a baseline ([`regressions`]).
//!
//! Latency op by op: the overhead of agentsh against a `--agentsh none`
//! baseline, or of one version against another. Percentiles come from the merged `.hlog` data of
//! every target (not from averaging per-target percentiles, which has no meaning); whether a
//! ratio is more than noise is [`stats`]' question, answered from the unmerged intervals.

pub mod digest;
pub mod history;
pub mod regressions;
pub mod stats;
pub mod trends;
pub mod versions;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;

use crate::results::{HlogKind, RunDir};

/// Per op, all targets' response and service histograms of one workload, merged.
pub struct OpLatency {
    pub response: Histogram<u64>,
    pub service: Histogram<u64>,
}

/// Per op, every interval of every target read, unmerged: the blocks [`stats`] resamples.
pub struct Blocks {
    pub response: BTreeMap<String, Vec<Histogram<u64>>>,
    pub service: BTreeMap<String, Vec<Histogram<u64>>>,
}

impl Blocks {
    /// Per op, the blocks of each kind merged (an op seen in one kind only has an empty other).
    pub fn merged(&self) -> Result<BTreeMap<String, OpLatency>> {
        let mut ops: BTreeMap<String, OpLatency> = BTreeMap::new();
        for (blocks, response) in [(&self.response, true), (&self.service, false)] {
            for (op, hs) in blocks {
                let slot = ops.entry(op.clone()).or_insert_with(|| OpLatency {
                    response: crate::schema::new_histogram(),
                    service: crate::schema::new_histogram(),
                });
                let into = if response { &mut slot.response } else { &mut slot.service };
                for h in hs {
                    into.add(h).map_err(|e| anyhow!("{e:?}"))?;
                }
            }
        }
        Ok(ops)
    }
}

/// Reads `<run>/histograms/<workload>/<target>.{response,service}.hlog`, one block per interval
/// (tags are `target/op`; the op is what follows the last '/'). With `targets`, only those
/// targets' hlogs are read, so two groups of targets of the same run can be compared; a target
/// named there without an hlog is an error, not an empty side.
pub fn load_blocks(run: &Path, workload: &str, targets: Option<&BTreeSet<String>>) -> Result<Blocks> {
    let dir = RunDir::at(run).workload_histograms_dir(workload);
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (no workload {workload:?} in this run?)", dir.display()))?;
    let mut files = Vec::new();
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some((kind, target)) = HlogKind::parse_file_name(&name) else { continue };
        if targets.is_none_or(|t| t.contains(target)) {
            files.push((kind, target.to_string(), path));
        }
    }
    if let Some(wanted) = targets {
        let found: BTreeSet<&str> = files.iter().map(|(_, t, _)| t.as_str()).collect();
        let missing: Vec<&str> = wanted.iter().map(String::as_str).filter(|t| !found.contains(t)).collect();
        if !missing.is_empty() {
            return Err(anyhow!("{}: no hlog for target(s) {}", dir.display(), missing.join(", ")));
        }
    }
    // Name order: blocks come in the same order whatever order the directory lists them in.
    files.sort_by(|a, b| a.2.cmp(&b.2));
    let mut out = Blocks { response: BTreeMap::new(), service: BTreeMap::new() };
    for (kind, _, path) in &files {
        let into = if *kind == HlogKind::Response { &mut out.response } else { &mut out.service };
        for i in crate::results::hlog::read(path)? {
            let tag = i.tag.unwrap_or_default();
            let op = crate::results::hlog::op_of(&tag).to_string();
            into.entry(op).or_default().push(i.histogram);
        }
    }
    if out.response.is_empty() && out.service.is_empty() {
        return Err(anyhow!("{}: no interval data", dir.display()));
    }
    Ok(out)
}

pub struct Row {
    pub op: String,
    pub base_count: u64,
    pub run_count: u64,
    /// (quantile label, base µs, run µs) for response time, then service time.
    pub response: Vec<(&'static str, u64, u64)>,
    pub service: Vec<(&'static str, u64, u64)>,
}

/// p50, p90, p99 of [`crate::results::QUANTILES`]: the columns `comparison-<workload>.csv` has
/// always had ([`print`] reads p50 and p99 by position).
const COMPARED: &[(&str, f64)] = crate::results::QUANTILES.split_at(3).0;

/// Ops present in both runs, in name order; ops in only one are reported by the caller.
pub fn compare(base: &BTreeMap<String, OpLatency>, run: &BTreeMap<String, OpLatency>) -> Vec<Row> {
    let q = |a: &Histogram<u64>, b: &Histogram<u64>| -> Vec<(&'static str, u64, u64)> {
        COMPARED.iter().map(|(l, q)| (*l, a.value_at_quantile(*q), b.value_at_quantile(*q))).collect()
    };
    base.iter()
        .filter_map(|(op, b)| {
            let r = run.get(op)?;
            Some(Row {
                op: op.clone(),
                base_count: b.response.len(),
                run_count: r.response.len(),
                response: q(&b.response, &r.response),
                service: q(&b.service, &r.service),
            })
        })
        .collect()
}

use stats::ratio;

/// The columns [`write_csv`] appends from [`stats`], after those the file has always had: the
/// intervals per side, the bootstrap interval of the response p50 and p99 ratios (whose point
/// values are `response_p50_ratio` and `response_p99_ratio`), the rank test's p-value, the
/// verdict.
const STATS_COLUMNS: [&str; 8] = [
    "base_intervals",
    "run_intervals",
    "response_p50_ci_low",
    "response_p50_ci_high",
    "response_p99_ci_low",
    "response_p99_ci_high",
    "response_p_value",
    "verdict",
];

/// `rows`, each followed by the [`stats::OpComparison`] of the same op (empty cells without one).
pub fn write_csv(path: &Path, rows: &[Row], stats: &[stats::OpComparison]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let mut header = vec!["op".to_string(), "base_count".into(), "run_count".into()];
    for kind in ["response", "service"] {
        for (q, _) in COMPARED {
            header.extend([format!("{kind}_{q}_base_ms"), format!("{kind}_{q}_run_ms"), format!("{kind}_{q}_ratio")]);
        }
    }
    header.extend(STATS_COLUMNS.map(String::from));
    w.write_record(&header)?;
    for r in rows {
        let mut rec = vec![r.op.clone(), r.base_count.to_string(), r.run_count.to_string()];
        for (_, b, x) in r.response.iter().chain(&r.service) {
            rec.extend([
                format!("{:.3}", *b as f64 / 1000.0),
                format!("{:.3}", *x as f64 / 1000.0),
                format!("{:.3}", ratio(*b, *x)),
            ]);
        }
        rec.extend(stats_cells(stats.iter().find(|s| s.op == r.op)));
        w.write_record(&rec)?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

fn stats_cells(s: Option<&stats::OpComparison>) -> Vec<String> {
    let Some(s) = s else { return vec![String::new(); STATS_COLUMNS.len()] };
    let ci = |q: &Option<stats::QuantileRatio>| match q.and_then(|q| q.ci) {
        Some((l, h)) => [format!("{l:.3}"), format!("{h:.3}")],
        None => [String::new(), String::new()],
    };
    let mut out = vec![s.base_blocks.to_string(), s.run_blocks.to_string()];
    out.extend(ci(&s.p50));
    out.extend(ci(&s.p99));
    out.push(s.p_value.map(stats::format_p).unwrap_or_default());
    out.push(s.verdict.to_string());
    out
}

pub fn print(rows: &[Row]) {
    println!(
        "{:<14} {:>9} {:>9} {:>12} {:>12} {:>9} {:>12} {:>12} {:>9}",
        "op", "base n", "run n", "p50 base ms", "p50 run ms", "p50 ×", "p99 base ms", "p99 run ms", "p99 ×"
    );
    for r in rows {
        let (_, b50, r50) = r.response[0];
        let (_, b99, r99) = r.response[2];
        println!(
            "{:<14} {:>9} {:>9} {:>12.3} {:>12.3} {:>9.2} {:>12.3} {:>12.3} {:>9.2}",
            r.op,
            r.base_count,
            r.run_count,
            b50 as f64 / 1000.0,
            r50 as f64 / 1000.0,
            ratio(b50, r50),
            b99 as f64 / 1000.0,
            r99 as f64 / 1000.0,
            ratio(b99, r99)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::hlog::HlogWriter;

    fn run_dir(scale: u64, targets: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::at(d.path());
        std::fs::create_dir_all(run.workload_histograms_dir("w")).unwrap();
        for t in targets {
            for kind in HlogKind::ALL {
                let mut w = HlogWriter::create(&run.hlog("w", t, kind), 1_764_190_000_000, "t").unwrap();
                for (op, base) in [("true", 600u64), ("echo", 900)] {
                    let mut h = crate::schema::new_histogram();
                    for v in 1..=100u64 {
                        h.record((base + v) * scale).unwrap();
                    }
                    w.interval(&format!("{t}/{op}"), 0, 1000, h.max(), &crate::schema::encode_histogram(&h).unwrap())
                        .unwrap();
                }
                w.flush().unwrap();
            }
        }
        d
    }

    #[test]
    fn merges_targets_and_gives_ratios() {
        let load = |d: &Path| load_blocks(d, "w", None).unwrap();
        let (base_blocks, run_blocks) =
            (load(run_dir(1, &["a", "b"]).path()), load(run_dir(3, &["a", "b", "c"]).path()));
        let (base, run) = (base_blocks.merged().unwrap(), run_blocks.merged().unwrap());
        let rows = compare(&base, &run);
        assert_eq!(rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(), ["echo", "true"]);
        let t = &rows[1];
        assert_eq!((t.base_count, t.run_count), (200, 300), "targets are merged");
        let (_, b, r) = t.response[0];
        assert!((ratio(b, r) - 3.0).abs() < 0.05, "{b} {r}");
        let dir = tempfile::tempdir().unwrap();
        let stats = stats::compare_blocks(&base_blocks.response, &run_blocks.response);
        write_csv(&dir.path().join("c.csv"), &rows, &stats).unwrap();
        let text = std::fs::read_to_string(dir.path().join("c.csv")).unwrap();
        assert!(text.starts_with("op,base_count,run_count,response_p50_base_ms"), "{text}");
        // p50, p90, p99 only, for response then service: the columns this file has always had,
        // first; then the statistics.
        let header: Vec<&str> = text.lines().next().unwrap_or_default().split(',').collect();
        assert_eq!(header.len(), 3 + 2 * 3 * 3 + STATS_COLUMNS.len(), "{header:?}");
        assert_eq!(header[21..], STATS_COLUMNS, "{header:?}");
        assert_eq!(header[18..21], ["service_p99_base_ms", "service_p99_run_ms", "service_p99_ratio"]);
        // Each target's single interval is one block: two and three of them, every value ×3.
        let echo: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(echo[0], "echo");
        assert_eq!(echo[21..23], ["2", "3"], "{echo:?}");
        assert!(echo[23].parse::<f64>().unwrap() > 2.9, "p50 interval above 1: {echo:?}");
        assert_eq!(echo[28], "slower", "{echo:?}");
    }

    #[test]
    fn missing_workload_is_named() {
        let d = run_dir(1, &["a"]);
        let e = load_blocks(d.path(), "nope", None).err().unwrap();
        assert!(format!("{e:#}").contains("no workload \"nope\""), "{e:#}");
    }

    #[test]
    fn blocks_can_be_limited_to_some_targets() {
        let d = run_dir(1, &["a", "b", "c"]);
        let only = |ts: &[&str]| load_blocks(d.path(), "w", Some(&ts.iter().map(|t| t.to_string()).collect()));
        let ab = only(&["a", "c"]).unwrap();
        assert_eq!(ab.response["true"].len(), 2, "one interval per chosen target");
        assert_eq!(ab.service["echo"].len(), 2);
        assert_eq!(load_blocks(d.path(), "w", None).unwrap().response["true"].len(), 3);
        let e = only(&["a", "zz"]).err().unwrap();
        assert!(format!("{e:#}").contains("no hlog for target(s) zz"), "{e:#}");
    }
}

//! Comparing runs: latency op by op (here), suite verdicts against a baseline ([`regressions`]).
//!
//! Latency op by op: the overhead of agentsh against a `--agentsh none`
//! baseline, or of one version against another. Percentiles come from the merged `.hlog` data of
//! every target (not from averaging per-target percentiles, which has no meaning).

pub mod regressions;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;

use crate::results::{HlogKind, RunDir};

/// Per op, all targets' response and service histograms of one workload, merged.
pub struct OpLatency {
    pub response: Histogram<u64>,
    pub service: Histogram<u64>,
}

/// Reads `<run>/histograms/<workload>/*.{response,service}.hlog`; tags are `target/op`.
pub fn load(run: &Path, workload: &str) -> Result<BTreeMap<String, OpLatency>> {
    let dir = RunDir::at(run).workload_histograms_dir(workload);
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (no workload {workload:?} in this run?)", dir.display()))?;
    let mut ops: BTreeMap<String, OpLatency> = BTreeMap::new();
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some((kind, _)) = HlogKind::parse_file_name(&name) else { continue };
        let response = kind == HlogKind::Response;
        for i in crate::results::hlog::read(&path)? {
            let tag = i.tag.unwrap_or_default();
            let op = tag.rsplit('/').next().unwrap_or(&tag).to_string();
            let h = i.histogram;
            let slot = ops.entry(op).or_insert_with(|| OpLatency {
                response: crate::schema::new_histogram(),
                service: crate::schema::new_histogram(),
            });
            let into = if response { &mut slot.response } else { &mut slot.service };
            into.add(&h).map_err(|e| anyhow!("{e:?}"))?;
        }
    }
    if ops.is_empty() {
        return Err(anyhow!("{}: no interval data", dir.display()));
    }
    Ok(ops)
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

fn ratio(base: u64, run: u64) -> f64 {
    run as f64 / base.max(1) as f64
}

pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    let mut header = vec!["op".to_string(), "base_count".into(), "run_count".into()];
    for kind in ["response", "service"] {
        for (q, _) in COMPARED {
            header.extend([format!("{kind}_{q}_base_ms"), format!("{kind}_{q}_run_ms"), format!("{kind}_{q}_ratio")]);
        }
    }
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
        w.write_record(&rec)?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
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
        let base = load(run_dir(1, &["a", "b"]).path(), "w").unwrap();
        let run = load(run_dir(3, &["a", "b", "c"]).path(), "w").unwrap();
        let rows = compare(&base, &run);
        assert_eq!(rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(), ["echo", "true"]);
        let t = &rows[1];
        assert_eq!((t.base_count, t.run_count), (200, 300), "targets are merged");
        let (_, b, r) = t.response[0];
        assert!((ratio(b, r) - 3.0).abs() < 0.05, "{b} {r}");
        let dir = tempfile::tempdir().unwrap();
        write_csv(&dir.path().join("c.csv"), &rows).unwrap();
        let text = std::fs::read_to_string(dir.path().join("c.csv")).unwrap();
        assert!(text.starts_with("op,base_count,run_count,response_p50_base_ms"), "{text}");
        // p50, p90, p99 only, for response then service: the columns this file has always had.
        let header = text.lines().next().unwrap_or_default();
        assert_eq!(header.split(',').count(), 3 + 2 * 3 * 3, "{header}");
        assert!(header.ends_with("service_p99_base_ms,service_p99_run_ms,service_p99_ratio"), "{header}");
    }

    #[test]
    fn missing_workload_is_named() {
        let d = run_dir(1, &["a"]);
        let e = load(d.path(), "nope").err().unwrap();
        assert!(format!("{e:#}").contains("no workload \"nope\""), "{e:#}");
    }
}

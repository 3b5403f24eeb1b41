//! `latency.csv` and the latency table printed at the end of a workload: one row per target × op.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Exporter, Results};
use crate::results::{OpTotals, QUANTILES, RunDir};

/// latency.csv, as an exporter of a workload's results.
pub struct LatencyCsv;

impl Exporter for LatencyCsv {
    fn name(&self) -> &'static str {
        "latency.csv"
    }

    fn export(&self, results: &Results<'_>, dir: &RunDir) -> Result<()> {
        match results {
            Results::Workload { totals, append, .. } => write_latency_csv(&dir.latency_csv(), totals, *append),
            Results::Suite { .. } => Ok(()),
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// `latency.csv`: one row per target × op; latencies in milliseconds.
pub fn write_latency_csv(path: &Path, rows: &[OpTotals], append: bool) -> Result<()> {
    // A soak appends each round's rows (it keeps none of them, histograms and all, in memory).
    let append = append && path.is_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(file);
    let mut header: Vec<String> =
        ["target", "agentsh_version", "mode", "op", "count", "errors", "wrong_decisions", "ops_per_s"]
            .map(String::from)
            .to_vec();
    for kind in ["response", "service"] {
        for (q, _) in QUANTILES {
            header.push(format!("{kind}_{q}_ms"));
        }
        header.push(format!("{kind}_max_ms"));
    }
    header.push("late_starts".into());
    header.push("error_kinds".into());
    header.push("workload".into());
    if !append {
        w.write_record(&header)?;
    }
    for r in rows {
        let mut rec = vec![
            r.target.clone(),
            r.agentsh_version.clone(),
            r.mode.clone(),
            r.op.clone(),
            r.counts.count.to_string(),
            r.error_count().to_string(),
            r.counts.wrong.to_string(),
            format!("{:.2}", r.ops_per_s()),
        ];
        for h in [&r.counts.response, &r.counts.service] {
            for (_, q) in QUANTILES {
                rec.push(if h.is_empty() { String::new() } else { ms(h.value_at_quantile(q)) });
            }
            rec.push(if h.is_empty() { String::new() } else { ms(h.max()) });
        }
        rec.push(r.counts.late.to_string());
        rec.push(r.counts.errors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"));
        rec.push(r.workload.clone());
        w.write_record(&rec)?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

/// The terminal summary: one line per target × op.
pub fn print_summary(rows: &[OpTotals]) {
    println!(
        "{:<32} {:<12} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
        "target", "op", "count", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "err", "wrong", "late"
    );
    for r in rows {
        let q =
            |p: f64| if r.counts.response.is_empty() { "-".into() } else { ms(r.counts.response.value_at_quantile(p)) };
        println!(
            "{:<32} {:<12} {:>8} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
            r.target,
            r.op,
            r.counts.count,
            r.ops_per_s(),
            q(0.5),
            q(0.99),
            q(0.999),
            q(1.0),
            r.error_count(),
            r.counts.wrong,
            r.counts.late
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn appended_rounds_share_one_header_and_say_which_round_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("latency.csv");
        let round = |w: &str| {
            let mut t = OpTotals::new("t0", "0.16.9", "full", "shim-allow");
            t.workload = w.into();
            t
        };
        write_latency_csv(&p, &[round("default-r1")], true).expect("first round");
        write_latency_csv(&p, &[round("default-r2")], true).expect("second round");
        let mut r = csv::Reader::from_path(&p).expect("readable");
        assert_eq!(r.headers().expect("header").iter().next_back(), Some("workload"));
        let rounds: Vec<String> =
            r.records().map(|x| x.expect("row").iter().next_back().unwrap_or("").to_string()).collect();
        assert_eq!(rounds, ["default-r1", "default-r2"]);
        // Without append the file is rewritten.
        write_latency_csv(&p, &[round("default")], false).expect("rewritten");
        assert_eq!(csv::Reader::from_path(&p).expect("readable").records().count(), 1);
    }

    use super::*;

    #[test]
    fn csv_has_quantiles_in_ms() {
        let mut t = OpTotals::new("t0", "none", "baseline", "true");
        for v in 1..=1000u64 {
            t.counts.response.record(v * 1000).unwrap();
            t.counts.service.record(v * 100).unwrap();
        }
        t.counts.count = 1000;
        t.measured_ms = 10_000;
        t.counts.errors.insert("spawn".into(), 2);
        let dir = tempfile::tempdir().unwrap();
        let p = crate::results::RunDir::at(dir.path()).latency_csv();
        write_latency_csv(&p, &[t], false).unwrap();
        let mut r = csv::Reader::from_path(&p).unwrap();
        let h = r.headers().unwrap().clone();
        let row = r.records().next().unwrap().unwrap();
        let get = |k: &str| row.get(h.iter().position(|x| x == k).unwrap()).unwrap().to_string();
        assert_eq!(get("ops_per_s"), "100.00");
        assert_eq!(get("errors"), "2");
        let p50: f64 = get("response_p50_ms").parse().unwrap();
        assert!((p50 - 500.0).abs() < 1.0, "{p50}");
        let svc_max: f64 = get("service_max_ms").parse().unwrap();
        assert!((svc_max - 100.0).abs() < 0.1, "{svc_max}");
        assert_eq!(get("error_kinds"), "spawn=2");
    }
}

//! Output formats, one file each (hyperfine's `src/export/`): [`latency`] (latency.csv), the
//! suite's CSVs in [`verdicts`], charts in [`charts`]. Each is an [`Exporter`] of what a stage
//! produced ([`Results`], built on the types in `results/`), and [`export`] runs them all; the
//! `.hlog` interval logs are written and read in `results::hlog`. The one chart no stage
//! produces, [`comparison`]'s, is drawn by the `compare` command.
//!
//! tests.csv is not an exporter: it is streamed row by row while the suite runs, so that a crash
//! keeps every finished test.

pub mod charts;
pub mod comparison;
pub mod history;
pub mod html;
pub mod junit;
pub mod latency;
pub mod markdown;
pub mod overhead;
pub mod soak;
pub mod trends;
pub mod verdicts;

use anyhow::Result;

use crate::results::{OpTotals, RunDir};
use crate::suite::run::Row;

/// What a finished stage hands to the exporters.
pub enum Results<'a> {
    /// Every row of tests.csv, with their tallies per (test, target).
    Suite { rows: &'a [Row], tallies: &'a verdicts::Tallies },
    /// A workload's totals per target × op, and the targets whose hlogs are charted.
    /// With `append`, latency.csv gets these rows added to it (a soak's rounds).
    Workload { name: &'a str, totals: &'a [OpTotals], targets: &'a [String], append: bool },
}

/// One output format.
pub trait Exporter: Sync {
    /// The file or folder it writes, for messages.
    fn name(&self) -> &'static str;
    /// A chart that fails is reported, not fatal: what it would show is in the CSVs and hlogs.
    fn required(&self) -> bool {
        true
    }
    /// Writes its file(s) for `results` into `dir`; nothing for a stage it does not show.
    fn export(&self, results: &Results<'_>, dir: &RunDir) -> Result<()>;
}

/// Every format, in the order they are written.
const EXPORTERS: &[&dyn Exporter] =
    &[&verdicts::SummaryCsv, &charts::SuiteHeatmap, &latency::LatencyCsv, &charts::LatencyCharts];

/// Runs every exporter on a stage's results. Blocking work (charts): call it where blocking is
/// allowed.
pub fn export(results: &Results<'_>, dir: &RunDir) -> Result<()> {
    for e in EXPORTERS {
        match e.export(results, dir) {
            Err(err) if !e.required() => eprintln!("warning: {}: {err:#}", e.name()),
            r => r?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TestId;
    use crate::suite::verdict::Verdict;

    #[test]
    fn each_stage_gets_its_own_files_and_only_those() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::at(dir.path());
        let rows = vec![Row {
            target: "t-0".into(),
            agentsh_version: "0.16.9".into(),
            iteration: 1,
            category: "c".into(),
            test_id: TestId::Suite(14),
            test: "sudo whoami blocked".into(),
            verdict: Verdict::Held,
            expected: "enforced".into(),
            evidence: String::new(),
            duration_ms: 1,
            detail: String::new(),
            record: String::new(),
        }];
        let tallies = verdicts::tally(&rows);
        export(&Results::Suite { rows: &rows, tallies: &tallies }, &run).expect("suite exported");
        assert!(run.summary_csv().is_file() && run.suite_charts_dir().is_dir());
        assert!(!run.latency_csv().exists(), "a suite writes no latency.csv");

        let totals = vec![OpTotals::new("t-0", "0.16.9", "default", "true")];
        // No hlog for t-0: its chart is skipped, latency.csv is still written.
        let targets = vec!["t-0".to_string()];
        export(&Results::Workload { name: "w", totals: &totals, targets: &targets, append: false }, &run)
            .expect("exported");
        let csv = std::fs::read_to_string(run.latency_csv()).expect("latency.csv");
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(!run.workload_charts_dir("w").exists());
    }
}

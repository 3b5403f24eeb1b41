//! The results directory of a run: `results/<run-id>/` (or `--out DIR`), with `results/latest`
//! pointing at the newest. Files are written as the run goes, so a crash keeps what came before.
//!
//! This module owns the directory's layout: every file and folder of a run is named by one
//! method of [`RunDir`], so the writers (`commands`, `report`, `workload::remote`, `suite::run`)
//! and the readers (`analyze`, `compare`) cannot drift apart. `.ci/run` and the tests under
//! `tests/` read the same names from outside the crate.

pub mod history;
pub mod hlog;
pub mod manifest;
pub mod summary;
mod test_id;
mod totals;

pub use test_id::TestId;
pub use totals::OpTotals;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::provision::Outcome;

/// The latency percentiles reported, as (column label, quantile), in column order: one table for
/// every file. `latency.csv` has all of them; `comparison-<workload>.csv` the first three
/// (`analyze::COMPARED`), as it always had: adding p99.9 there would change its columns.
pub const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

pub struct RunDir {
    pub path: PathBuf,
}

/// The name a workload's results go under in one mode (`provision::modes`): its own name in
/// `full` (the default, so runs without `--mode` and `compare` keep their names), `NAME@MODE` in
/// any other: `histograms/default@ptrace/`, `charts/default@ptrace/`,
/// `targets/<t>/workload-default@ptrace/`. Modes of one run never overwrite each other.
pub fn workload_key(workload: &str, mode: &str) -> String {
    if mode == "full" { workload.to_string() } else { format!("{workload}@{mode}") }
}

/// The two histograms the driver records per op (see `schema::Interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlogKind {
    /// From the intended start: includes any wait for a worker (no coordinated omission).
    Response,
    /// From the actual start.
    Service,
}

impl HlogKind {
    pub const ALL: [HlogKind; 2] = [HlogKind::Response, HlogKind::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            HlogKind::Response => "response",
            HlogKind::Service => "service",
        }
    }

    /// `<target>.<kind>.hlog`.
    fn file_name(self, target: &str) -> String {
        format!("{target}.{}.hlog", self.as_str())
    }

    /// The kind and target of an hlog file name; None for any other file.
    pub fn parse_file_name(name: &str) -> Option<(HlogKind, &str)> {
        let stem = name.strip_suffix(".hlog")?;
        HlogKind::ALL.into_iter().find_map(|k| Some((k, stem.strip_suffix(&format!(".{}", k.as_str()))?)))
    }
}

impl RunDir {
    /// An existing run's directory (or one about to be written), without touching the disk.
    pub fn at(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    pub fn create(out: Option<&Path>, run: &str) -> Result<RunDir> {
        let path = match out {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from("results").join(run),
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating results directory {}", path.display()))?;
        if out.is_none() {
            let latest = PathBuf::from("results/latest");
            let _ = std::fs::remove_file(&latest);
            // A relative link survives moving the results folder.
            if let Err(e) = std::os::unix::fs::symlink(run, &latest) {
                tracing::warn!("cannot update results/latest: {e}");
            }
        }
        Ok(RunDir { path })
    }

    /// `targets.csv`: how provisioning ended, per target.
    pub fn targets_csv(&self) -> PathBuf {
        self.path.join("targets.csv")
    }

    /// `run.json`: what was provisioned, and how ([`manifest::Run`]).
    pub fn run_json(&self) -> PathBuf {
        self.path.join("run.json")
    }

    /// `suite.json`: what replaying the suite needs ([`manifest::Suite`]).
    pub fn suite_json(&self) -> PathBuf {
        self.path.join("suite.json")
    }

    /// `workload.json`: the plan and what each target's driver reported ([`manifest::Workload`]).
    pub fn workload_json(&self) -> PathBuf {
        self.path.join("workload.json")
    }

    /// `tests.csv`: one row per suite execution.
    pub fn tests_csv(&self) -> PathBuf {
        self.path.join("tests.csv")
    }

    /// `faults.csv`: one row per fault the soak's nemesis applied ([`crate::nemesis::FaultRow`]).
    pub fn faults_csv(&self) -> PathBuf {
        self.path.join("faults.csv")
    }

    /// `soak.json`: what a soak was asked and did ([`crate::job`]).
    pub fn soak_json(&self) -> PathBuf {
        self.path.join("soak.json")
    }

    /// `summary.csv`: one row per test × target.
    pub fn summary_csv(&self) -> PathBuf {
        self.path.join("summary.csv")
    }

    /// `regressions.csv`: the suite against `--baseline`.
    pub fn regressions_csv(&self) -> PathBuf {
        self.path.join("regressions.csv")
    }

    /// `expectations.csv`: the suite against `scenarios/expectations/`.
    pub fn expectations_csv(&self) -> PathBuf {
        self.path.join("expectations.csv")
    }

    /// `latency.csv`: one row per target × op of the workload (× mode, with `--mode`).
    pub fn latency_csv(&self) -> PathBuf {
        self.path.join("latency.csv")
    }

    /// `overhead.csv`: per op and mode, the latency over all targets and its ratio to `baseline`
    /// (written when the workload ran in more than one mode).
    pub fn overhead_csv(&self) -> PathBuf {
        self.path.join("overhead.csv")
    }

    /// `comparison-<workload>.csv`, written into the run that `compare` compared with a baseline.
    pub fn comparison_csv(&self, workload: &str) -> PathBuf {
        self.path.join(format!("comparison-{workload}.csv"))
    }

    /// `comparison-<workload>-sections.csv`: what `compare` found in every section (suite,
    /// integrity, latency, decisions), as the two-version job's `comparison-versions.csv` has it.
    pub fn comparison_sections_csv(&self, workload: &str) -> PathBuf {
        self.path.join(format!("comparison-{workload}-sections.csv"))
    }

    /// Every `comparison*.csv` in the run folder, in name order (`compare` writes one per workload;
    /// other comparisons may follow the same prefix); empty when the folder cannot be read.
    pub fn comparison_csvs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.path) else { return Vec::new() };
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("comparison") && n.ends_with(".csv"))
            })
            .collect();
        out.sort();
        out
    }

    /// `report.html`: the run as one self-contained page (`report::html`).
    pub fn report_html(&self) -> PathBuf {
        self.path.join("report.html")
    }

    /// `comparison-<workload>.svg`: the chart of the same comparison's ratios and intervals.
    pub fn comparison_svg(&self, workload: &str) -> PathBuf {
        self.path.join(format!("comparison-{workload}.svg"))
    }

    /// `histograms/`: one folder per workload.
    pub fn histograms_dir(&self) -> PathBuf {
        self.path.join("histograms")
    }

    /// `histograms/<workload>/`.
    pub fn workload_histograms_dir(&self, workload: &str) -> PathBuf {
        self.histograms_dir().join(workload)
    }

    /// `histograms/<workload>/<target>.<kind>.hlog`.
    pub fn hlog(&self, workload: &str, target: &str, kind: HlogKind) -> PathBuf {
        self.workload_histograms_dir(workload).join(kind.file_name(target))
    }

    /// `charts/`: `suite/` and one folder per workload.
    pub fn charts_dir(&self) -> PathBuf {
        self.path.join("charts")
    }

    /// `charts/<workload>/`.
    pub fn workload_charts_dir(&self, workload: &str) -> PathBuf {
        self.charts_dir().join(workload)
    }

    /// `charts/suite/`: the verdict heatmaps.
    pub fn suite_charts_dir(&self) -> PathBuf {
        self.charts_dir().join("suite")
    }

    /// `trends-samples.csv`: agentsh's resource series as sampled, one row per value (`trends`).
    pub fn trends_samples_csv(&self) -> PathBuf {
        self.path.join("trends-samples.csv")
    }

    /// `trends.csv`: per target × series, slopes and leak verdict (`analyze::trends`).
    pub fn trends_csv(&self) -> PathBuf {
        self.path.join("trends.csv")
    }

    /// `charts/soak-latency.svg`: a soak's rounds end to end, faults shaded (`report::soak`).
    pub fn soak_latency_svg(&self) -> PathBuf {
        self.charts_dir().join("soak-latency.svg")
    }

    /// `charts/trends.svg`: the series over time, one panel each (`report::trends`).
    pub fn trends_svg(&self) -> PathBuf {
        self.charts_dir().join("trends.svg")
    }

    /// `targets/<target>/`: a target's provisioning logs and evidence (wedges, integrity).
    pub fn target_dir(&self, target: &str) -> PathBuf {
        self.path.join("targets").join(target)
    }

    /// Pretty JSON with every object's keys sorted (through a `serde_json::Value`, whose maps are
    /// sorted without serde_json's `preserve_order`): the manifests were built with `json!` and
    /// so had sorted keys, and the typed ones in [`manifest`] keep the files as they were.
    pub fn write_json<T: serde::Serialize>(&self, file: &Path, value: &T) -> Result<()> {
        let value = serde_json::to_value(value).with_context(|| format!("serializing {}", file.display()))?;
        std::fs::write(file, serde_json::to_vec_pretty(&value)?).with_context(|| format!("writing {}", file.display()))
    }

    /// `targets.csv`: one row per target with how provisioning ended.
    pub fn write_targets(&self, outcomes: &[Outcome]) -> Result<()> {
        let file = self.targets_csv();
        let mut w = csv::Writer::from_path(&file).with_context(|| format!("writing {}", file.display()))?;
        w.write_record(["target", "provider", "status", "agentsh_version", "failed_step", "seconds", "detail"])?;
        for o in outcomes {
            match o {
                Ok(r) => w.write_record([
                    r.target.name.as_str(),
                    r.target.provider.as_str(),
                    "ready",
                    r.agentsh_version.as_deref().unwrap_or("none"),
                    "",
                    &format!("{:.2}", r.seconds),
                    "",
                ])?,
                Err(f) => w.write_record([
                    f.name.as_str(),
                    f.provider.as_str(),
                    "failed",
                    "",
                    f.step.as_str(),
                    &format!("{:.2}", f.seconds),
                    f.error.as_str(),
                ])?,
            }
        }
        // csv's Drop swallows errors: flush by hand so a full disk is reported.
        w.flush().with_context(|| format!("flushing {}", file.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `.ci/run`, the tests under `tests/` and earlier runs' readers rely on.
    #[test]
    fn layout_names_are_stable() {
        let d = RunDir::at("r");
        let rel = |p: PathBuf| p.strip_prefix("r").map(|p| p.display().to_string()).unwrap_or_default();
        assert_eq!(rel(d.run_json()), "run.json");
        assert_eq!(rel(d.suite_json()), "suite.json");
        assert_eq!(rel(d.workload_json()), "workload.json");
        assert_eq!(rel(d.targets_csv()), "targets.csv");
        assert_eq!(rel(d.tests_csv()), "tests.csv");
        assert_eq!(rel(d.summary_csv()), "summary.csv");
        assert_eq!(rel(d.regressions_csv()), "regressions.csv");
        assert_eq!(rel(d.expectations_csv()), "expectations.csv");
        assert_eq!(rel(d.latency_csv()), "latency.csv");
        assert_eq!(rel(d.overhead_csv()), "overhead.csv");
        assert_eq!(
            rel(d.hlog(&workload_key("w", "ptrace"), "t-0", HlogKind::Response)),
            "histograms/w@ptrace/t-0.response.hlog"
        );
        assert_eq!(
            rel(d.hlog(&workload_key("w", "full"), "t-0", HlogKind::Response)),
            "histograms/w/t-0.response.hlog"
        );
        assert_eq!(rel(d.comparison_csv("w")), "comparison-w.csv");
        assert_eq!(rel(d.comparison_sections_csv("w")), "comparison-w-sections.csv");
        assert_eq!(rel(d.report_html()), "report.html");
        assert_eq!(rel(d.comparison_svg("w")), "comparison-w.svg");
        assert_eq!(rel(d.hlog("w", "t-0", HlogKind::Response)), "histograms/w/t-0.response.hlog");
        assert_eq!(rel(d.hlog("w", "t-0", HlogKind::Service)), "histograms/w/t-0.service.hlog");
        assert_eq!(rel(d.workload_charts_dir("w")), "charts/w");
        assert_eq!(rel(d.suite_charts_dir()), "charts/suite");
        assert_eq!(rel(d.trends_samples_csv()), "trends-samples.csv");
        assert_eq!(rel(d.trends_csv()), "trends.csv");
        assert_eq!(rel(d.trends_svg()), "charts/trends.svg");
        assert_eq!(rel(d.target_dir("t-0")), "targets/t-0");
    }

    #[test]
    fn hlog_names_parse_back() {
        assert_eq!(HlogKind::parse_file_name("a.b-0.response.hlog"), Some((HlogKind::Response, "a.b-0")));
        assert_eq!(HlogKind::parse_file_name("t.service.hlog"), Some((HlogKind::Service, "t")));
        assert_eq!(HlogKind::parse_file_name("t.other.hlog"), None);
        assert_eq!(HlogKind::parse_file_name("t.response.hlog.tmp"), None);
    }
}

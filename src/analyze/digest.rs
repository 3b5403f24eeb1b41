//! A run folder read once for what other places say about the run: its line of history.csv
//! (`results::history`), its JUnit XML and its summary.md (`report::junit`, `report::markdown`).
//! One reader, so the three agree on what a run's verdicts, latency, trends and faults were.
//!
//! Every file is optional (a run without the suite, without a workload, without a soak): a
//! missing file is an empty part, a file that is there but cannot be read is an error naming it.
//! Suite counts come from summary.csv through [`regressions::state`] (the same per-test state a
//! `--baseline` compares); trends.csv and faults.csv (written by a soak) are read by column name,
//! as the other CSVs here, so a column added later does not break an older reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::regressions::{self, Counts, State};
use crate::results::history::{FaultOutcome, HistoryRow, OpLatency, Recovery};
use crate::results::manifest::{Run, RunTarget, Workload};
use crate::results::summary::SummaryRow;
use crate::results::{RunDir, TestId};

/// One row of tests.csv, its text as written (test ids other than a number or `integrity`, such
/// as a soak's `fault:<name>`, stay readable here).
#[derive(Debug, Clone, Deserialize)]
pub struct Execution {
    pub target: String,
    #[serde(default)]
    pub agentsh_version: String,
    pub iteration: u32,
    #[serde(default)]
    pub category: String,
    pub test_id: String,
    pub verdict: String,
    #[serde(default)]
    pub evidence: String,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub detail: String,
}

/// One row of latency.csv (the columns read here).
#[derive(Debug, Clone, Deserialize)]
pub struct LatencyRow {
    pub target: String,
    #[serde(default)]
    pub mode: String,
    pub op: String,
    pub count: u64,
    pub errors: u64,
    pub wrong_decisions: u64,
    pub response_p50_ms: Option<f64>,
    pub response_p99_ms: Option<f64>,
}

/// One row of trends.csv: a series of agentsh's resources on one target over the soak.
#[derive(Debug, Clone, Deserialize)]
pub struct TrendRow {
    pub target: String,
    pub series: String,
    #[serde(default)]
    pub unit: String,
    pub max: Option<f64>,
    pub slope_per_hour: Option<f64>,
    pub threshold_per_hour: Option<f64>,
    /// `leak`, `flat` or `insufficient`.
    pub verdict: String,
}

/// One row of faults.csv: a fault applied to one target, and how agentsh took it.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRow {
    pub fault: String,
    pub target: String,
    pub at_s: Option<f64>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// `held`, `violated`, `inconclusive`, `skipped`.
    pub fail_closed: String,
    /// `yes`, `no`, `dropped`.
    pub recovered: String,
    pub recover_s: Option<f64>,
    /// What the harness did; `not applied` when the fault never was.
    #[serde(default)]
    pub recovery: String,
    #[serde(default)]
    pub detail: String,
}

/// soak.json.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Soak {
    #[serde(default)]
    pub duration_s: f64,
    #[serde(default)]
    pub rounds: u32,
    #[serde(default)]
    pub elapsed_s: f64,
    #[serde(default)]
    pub interrupted: bool,
    /// The soak's clock zero, seconds since the epoch (soaks before it was written have none).
    #[serde(default)]
    pub t0_epoch_s: Option<f64>,
}

/// One suite test over all its targets.
#[derive(Debug, Clone)]
pub struct TestState {
    pub state: State,
    /// Executions that gave skipped-env, over all targets.
    pub skipped_env: u32,
}

/// The verdict counts of a run: suite tests by their state over all targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictCounts {
    pub held: u32,
    pub violated: u32,
    pub flaky: u32,
    pub inconclusive: u32,
    /// Tests that gave only skipped-env.
    pub skipped: u32,
}

pub struct Digest {
    pub dir: PathBuf,
    pub run: Option<Run>,
    pub summary: Vec<SummaryRow>,
    pub executions: Vec<Execution>,
    pub latency: Vec<LatencyRow>,
    pub workload: Option<Workload>,
    pub soak: Option<Soak>,
    pub trends: Vec<TrendRow>,
    pub faults: Vec<FaultRow>,
}

/// Where a soak writes its files (agreed with the soak's writers; see docs/nightly.md).
pub fn soak_json(dir: &RunDir) -> PathBuf {
    dir.path.join("soak.json")
}

pub fn trends_csv(dir: &RunDir) -> PathBuf {
    dir.path.join("trends.csv")
}

pub fn faults_csv(dir: &RunDir) -> PathBuf {
    dir.path.join("faults.csv")
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not what this harness writes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A CSV's rows by column name; empty when the file is absent. An error names file and line.
fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.with_context(|| format!("reading {}:{}", path.display(), i + 2))?);
    }
    Ok(out)
}

impl Digest {
    pub fn load(dir: &Path) -> Result<Digest> {
        let d = RunDir::at(dir);
        let summary_file = d.summary_csv();
        let summary = if summary_file.exists() { crate::results::summary::read(&summary_file)? } else { Vec::new() };
        Ok(Digest {
            dir: dir.to_path_buf(),
            run: read_json(&d.run_json())?,
            summary,
            executions: read_csv(&d.tests_csv())?,
            latency: read_csv(&d.latency_csv())?,
            workload: read_json(&d.workload_json())?,
            soak: read_json(&soak_json(&d))?,
            trends: read_csv(&trends_csv(&d))?,
            faults: read_csv(&faults_csv(&d))?,
        })
    }

    /// The run tag; the folder's name for a folder without run.json.
    pub fn run_id(&self) -> String {
        match &self.run {
            Some(r) => r.run.clone(),
            None => self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }

    /// The agentsh version the targets ran: read back from a ready target, else the artifact's,
    /// else tests.csv's; `none` for a run without agentsh.
    pub fn agentsh_version(&self) -> String {
        if let Some(run) = &self.run {
            let Some(artifact) = &run.artifact else { return "none".into() };
            let read_back = run.targets.iter().find_map(|t| match t {
                RunTarget::Ready { agentsh_version: Some(v), .. } => Some(v.clone()),
                _ => None,
            });
            return read_back.unwrap_or_else(|| artifact.version.clone());
        }
        self.executions.first().map_or_else(|| "none".into(), |e| e.agentsh_version.clone())
    }

    pub fn provider(&self) -> String {
        self.run
            .as_ref()
            .and_then(|r| serde_json::to_value(r.provider).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// (targets, ready) from run.json.
    pub fn targets(&self) -> (u32, u32) {
        let Some(run) = &self.run else { return (0, 0) };
        let ready = run.targets.iter().filter(|t| matches!(t, RunTarget::Ready { .. })).count();
        (run.targets.len() as u32, ready as u32)
    }

    /// The highest suite iteration in tests.csv: what ran, also when a soak ran more than asked.
    pub fn iterations(&self) -> u32 {
        self.executions.iter().filter(|e| e.test_id.parse::<u32>().is_ok()).map(|e| e.iteration).max().unwrap_or(0)
    }

    /// Ctrl-C ended the workload or the soak (the caller knows about the suite).
    pub fn interrupted(&self) -> bool {
        self.workload.as_ref().is_some_and(|w| w.interrupted) || self.soak.as_ref().is_some_and(|s| s.interrupted)
    }

    /// Each suite test's state over all its targets (integrity and fault rows left out).
    pub fn tests(&self) -> BTreeMap<TestId, TestState> {
        let mut per: BTreeMap<TestId, (Vec<Counts>, u32)> = BTreeMap::new();
        for r in self.summary.iter().filter(|r| r.test_id.number().is_some()) {
            let e = per.entry(r.test_id).or_default();
            e.0.push(Counts { held: r.held, violated: r.violated, inconclusive: r.inconclusive, flaky: r.flaky });
            e.1 += r.skipped_env;
        }
        per.into_iter()
            .map(|(id, (counts, skipped_env))| (id, TestState { state: regressions::state(&counts), skipped_env }))
            .collect()
    }

    pub fn verdict_counts(&self) -> VerdictCounts {
        let mut c = VerdictCounts::default();
        for t in self.tests().values() {
            match t.state {
                State::Held => c.held += 1,
                State::Violated => c.violated += 1,
                State::Flaky => c.flaky += 1,
                State::Inconclusive => c.inconclusive += 1,
                State::Other if t.skipped_env > 0 => c.skipped += 1,
                State::Other => {}
            }
        }
        c
    }

    /// Targets whose integrity row was violated.
    pub fn integrity_violated(&self) -> u32 {
        self.summary.iter().filter(|r| r.test_id == TestId::Integrity && r.violated > 0).count() as u32
    }

    pub fn wrong_decisions(&self) -> u64 {
        self.latency.iter().map(|r| r.wrong_decisions).sum()
    }

    pub fn wedges(&self) -> u32 {
        self.workload.as_ref().map_or(0, |w| w.targets.iter().map(|t| t.wedges.len() as u32).sum())
    }

    /// Response p50 and p99 (ms) per op over all targets: from the workload's hlogs merged (the
    /// default run's, `histograms/<workload>/`, or every round's of a soak,
    /// `histograms/<workload>-rN/`), else from latency.csv (the slowest target's figure, since
    /// percentiles of several targets cannot be merged without the histograms).
    pub fn op_latency(&self) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
        let ms = |us: u64| us as f64 / 1000.0;
        if let Some(merged) = self.blocks().and_then(|b| b.merged().ok()) {
            return merged
                .into_iter()
                .filter(|(_, l)| !l.response.is_empty())
                .map(|(op, l)| {
                    let q = |p: f64| Some(ms(l.response.value_at_quantile(p)));
                    (op, (q(0.5), q(0.99)))
                })
                .collect();
        }
        let mut out: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
        // Rows of the installed config only (another --mode measures something else), unless the
        // file has none of those (written before modes had these names).
        let installed = |r: &&LatencyRow| matches!(r.mode.as_str(), "full" | "none" | "");
        let any_installed = self.latency.iter().any(|r| installed(&r));
        for r in self.latency.iter().filter(|r| !any_installed || installed(r)) {
            let slot = out.entry(r.op.clone()).or_default();
            let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            *slot = (max(slot.0, r.response_p50_ms), max(slot.1, r.response_p99_ms));
        }
        out
    }

    /// Every interval of the workload's hlogs: the run's, or every round's of a soak (a round
    /// the soak's end cut before its workload has none). None when there are none.
    fn blocks(&self) -> Option<super::Blocks> {
        let name = &self.workload.as_ref()?.plan.name;
        let rounds = self.soak.as_ref().map_or(0, |s| s.rounds);
        let names = std::iter::once(name.clone()).chain((1..=rounds).map(|r| format!("{name}-r{r}")));
        let mut all = super::Blocks { response: BTreeMap::new(), service: BTreeMap::new() };
        for n in names {
            let Ok(b) = super::load_blocks(&self.dir, &n, None) else { continue };
            for (into, from) in [(&mut all.response, b.response), (&mut all.service, b.service)] {
                for (op, hs) in from {
                    into.entry(op).or_default().extend(hs);
                }
            }
        }
        (!all.response.is_empty() || !all.service.is_empty()).then_some(all)
    }

    /// The trend rows of one series.
    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TrendRow> {
        self.trends.iter().filter(move |t| t.series == name)
    }

    pub fn leaks(&self) -> Option<u32> {
        (!self.trends.is_empty()).then(|| self.trends.iter().filter(|t| t.verdict == "leak").count() as u32)
    }

    /// Per fault, in the order first applied: the worst fail-closed verdict over its applications
    /// (violated, then inconclusive, held, skipped) and the worst recovery (not recovered, then
    /// dropped, then the longest time).
    pub fn fault_outcomes(&self) -> Vec<FaultOutcome> {
        let rank = |v: &str| match v {
            "violated" => 3,
            "held" => 1,
            "skipped" => 0,
            _ => 2,
        };
        let mut out: Vec<FaultOutcome> = Vec::new();
        for f in &self.faults {
            let recovery = match (f.recovered.as_str(), f.recover_s) {
                ("yes", Some(s)) => Recovery::Seconds(s),
                (other, _) => Recovery::Other(other.to_string()),
            };
            let Some(o) = out.iter_mut().find(|o| o.fault == f.fault) else {
                out.push(FaultOutcome { fault: f.fault.clone(), fail_closed: f.fail_closed.clone(), recovery });
                continue;
            };
            if rank(&f.fail_closed) > rank(&o.fail_closed) {
                o.fail_closed = f.fail_closed.clone();
            }
            let worse = |r: &Recovery| match r {
                Recovery::Other(w) if w == "no" => 3.0e12,
                Recovery::Other(w) if w == "dropped" => 2.0e12,
                Recovery::Other(_) => 1.0e12,
                Recovery::Seconds(s) => *s,
            };
            if worse(&recovery) > worse(&o.recovery) {
                o.recovery = recovery;
            }
        }
        out
    }

    /// The run's history.csv line, with the p50/p99 of `ops` (in that order), dated `date`.
    /// `interrupted`: what the job knows (Ctrl-C during the suite leaves no other trace).
    pub fn history_row(&self, ops: &[String], date: &str, interrupted: bool) -> HistoryRow {
        let counts = self.verdict_counts();
        let (targets, ready) = self.targets();
        let latency = self.op_latency();
        let max_of = |it: &mut dyn Iterator<Item = Option<f64>>| it.flatten().reduce(f64::max);
        HistoryRow {
            run_id: self.run_id(),
            date: date.to_string(),
            agentsh_version: self.agentsh_version(),
            provider: self.provider(),
            targets,
            ready,
            iterations: self.iterations(),
            soak_s: self.soak.as_ref().map(|s| s.elapsed_s),
            interrupted: interrupted || self.interrupted(),
            held: counts.held,
            violated: counts.violated,
            flaky: counts.flaky,
            inconclusive: counts.inconclusive,
            skipped: counts.skipped,
            integrity_violated: self.integrity_violated(),
            wrong_decisions: self.wrong_decisions(),
            wedges: self.wedges(),
            latency: ops
                .iter()
                .map(|op| {
                    let (p50_ms, p99_ms) = latency.get(op).copied().unwrap_or_default();
                    OpLatency { op: op.clone(), p50_ms, p99_ms }
                })
                .collect(),
            server_rss_kb_max: max_of(&mut self.series("server_rss_kb").map(|t| t.max)),
            server_fds_slope_per_hour: max_of(&mut self.series("server_fds").map(|t| t.slope_per_hour)),
            leaks: self.leaks(),
            faults: self.fault_outcomes(),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A run folder as the crate's writers leave it: run.json, summary.csv, tests.csv,
    /// latency.csv, workload.json, hlogs for two targets, and a soak's soak.json, trends.csv and
    /// faults.csv. Test 14 is violated on one target, 20 flaky, 30 inconclusive, 48 skipped-env,
    /// the integrity of t-1 violated; `git` had 2 wrong decisions on t-1.
    pub(crate) fn fixture(dir: &Path) {
        use crate::results::manifest::{RunSeconds, WorkloadTarget};
        let d = RunDir::at(dir);
        std::fs::create_dir_all(dir).unwrap();
        let ready = |name: &str| RunTarget::Ready {
            name: name.into(),
            agentsh_version: Some("0.16.9".into()),
            seconds: 10.0,
            steps: Vec::new(),
            findings: Vec::new(),
            ssh: String::new(),
        };
        let run = Run {
            run: "20261201t020000-ab12".into(),
            harness_version: "0.1.0".into(),
            provider: crate::provider::ProviderKind::Local,
            vms: 3,
            agentsh_spec: "v0.16.9".into(),
            artifact: Some(crate::agentsh::Artifact {
                deb: "/c/a.deb".into(),
                version: "0.16.9".into(),
                source: "release".into(),
            }),
            config_source: "assets/config.yaml".into(),
            policy_source: "assets/policies/default.yaml".into(),
            seconds: RunSeconds { artifact: 1.0, prepare: 0.1, create_and_provision: 20.0 },
            targets: vec![
                ready("t-0"),
                ready("t-1"),
                RunTarget::Failed {
                    name: "t-2".into(),
                    step: "server".into(),
                    error: "no /health".into(),
                    findings: vec![],
                },
            ],
        };
        d.write_json(&d.run_json(), &run).unwrap();
        std::fs::write(
            d.summary_csv(),
            "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n\
             1,echo allowed,t-0,2,0,0,0,0,false\n\
             1,echo allowed,t-1,2,0,0,0,0,false\n\
             14,sudo <blocked> & \"quoted\",t-0,2,0,0,0,0,false\n\
             14,sudo <blocked> & \"quoted\",t-1,0,2,0,0,0,false\n\
             17,kill blocked,t-0,0,2,0,0,0,false\n\
             20,evil.com refused,t-0,1,0,1,0,0,true\n\
             30,landlock,t-0,0,0,2,0,0,false\n\
             48,cgroups,t-0,0,0,0,2,0,false\n\
             integrity,target file system intact,t-0,1,0,0,0,0,false\n\
             integrity,target file system intact,t-1,0,1,0,0,0,false\n",
        )
        .unwrap();
        let head = "run_id,target,agentsh_version,iteration,category,test_id,test,verdict,expected,evidence,duration_ms,detail,record\n";
        let mut tests = String::from(head);
        for (target, it, cat, id, test, verdict, evidence) in [
            ("t-0", 1, "shell", "1", "echo allowed", "held", "printed"),
            ("t-0", 2, "shell", "1", "echo allowed", "held", "printed"),
            ("t-1", 1, "shell", "1", "echo allowed", "held", "printed"),
            ("t-1", 2, "shell", "1", "echo allowed", "held", "printed"),
            ("t-0", 1, "shim", "14", "sudo <blocked> & \"quoted\"", "held", "126"),
            ("t-0", 2, "shim", "14", "sudo <blocked> & \"quoted\"", "held", "126"),
            ("t-1", 1, "shim", "14", "sudo <blocked> & \"quoted\"", "violated", "root printed <uid=0>"),
            ("t-1", 2, "shim", "14", "sudo <blocked> & \"quoted\"", "violated", "root printed <uid=0>"),
            ("t-0", 1, "shim", "17", "kill blocked", "violated", "kill ran"),
            ("t-0", 2, "shim", "17", "kill blocked", "violated", "kill ran"),
            ("t-0", 1, "network", "20", "evil.com refused", "held", "rule"),
            ("t-0", 2, "network", "20", "evil.com refused", "inconclusive", "no rule named"),
            ("t-0", 1, "file", "30", "landlock", "inconclusive", "exit 1"),
            ("t-0", 2, "file", "30", "landlock", "inconclusive", "exit 1"),
            ("t-0", 1, "cgroups", "48", "cgroups", "skipped-env", "no cgroup v2 controllers"),
            ("t-0", 2, "cgroups", "48", "cgroups", "skipped-env", "no cgroup v2 controllers"),
            ("t-0", 2, "integrity", "integrity", "target file system intact", "held", "13000 paths unchanged"),
            ("t-1", 2, "integrity", "integrity", "target file system intact", "violated", "/usr/bin/x changed"),
        ] {
            tests.push_str(&format!(
                "r,{target},0.16.9,{it},{cat},{id},\"{}\",{verdict},enforced,{evidence},5,d,\n",
                test.replace('"', "\"\"")
            ));
        }
        std::fs::write(d.tests_csv(), tests).unwrap();
        let mut rows = Vec::new();
        for (target, scale) in [("t-0", 1u64), ("t-1", 3)] {
            for (op, wrong) in [("shim-allow", 0u64), ("git", if target == "t-1" { 2 } else { 0 })] {
                let mut t = crate::results::OpTotals::new(target, "0.16.9", "full", op);
                for v in 1..=100u64 {
                    t.counts.response.record(v * 1000 * scale).unwrap();
                    t.counts.service.record(v * 500).unwrap();
                }
                t.counts.count = 100;
                t.counts.wrong = wrong;
                t.measured_ms = 10_000;
                rows.push(t);
            }
        }
        crate::report::latency::write_latency_csv(&d.latency_csv(), &rows, false).unwrap();
        // The same figures as hlogs, one interval per op: merged, t-0's 1..100 ms and t-1's
        // 3..300 ms.
        for (target, scale) in [("t-0", 1u64), ("t-1", 3)] {
            std::fs::create_dir_all(d.workload_histograms_dir("default")).unwrap();
            for kind in crate::results::HlogKind::ALL {
                let path = d.hlog("default", target, kind);
                let mut w = crate::results::hlog::HlogWriter::create(&path, 1_764_190_000_000, "test").unwrap();
                for op in ["shim-allow", "git"] {
                    let mut h = crate::schema::new_histogram();
                    for v in 1..=100u64 {
                        h.record(v * 1000 * scale).unwrap();
                    }
                    w.interval(
                        &format!("{target}/{op}"),
                        0,
                        1000,
                        h.max(),
                        &crate::schema::encode_histogram(&h).unwrap(),
                    )
                    .unwrap();
                }
                w.flush().unwrap();
            }
        }
        let finished = crate::schema::Finished {
            completed: 200,
            measured_ms: 10_000,
            rss_kb_first: 1,
            rss_kb_last: 1,
            samples: [("git".to_string(), vec!["wrong: refused <EACCES> & more".to_string()])].into(),
        };
        let wt = |target: &str, wedges: usize| WorkloadTarget {
            target: target.into(),
            mode: "full".into(),
            partial: false,
            driver_rss_kb_first_minute: 1,
            driver_rss_kb_last_minute: 1,
            finished: finished.clone(),
            wedges: (0..wedges)
                .map(|i| crate::results::manifest::Wedge {
                    at_s: i as f64,
                    recovery_s: 2.0,
                    why: "health".into(),
                    outcome: "recovered".into(),
                })
                .collect(),
        };
        let mut plan = crate::workload::load("default").unwrap();
        plan.name = "default".into();
        let w = Workload { plan, interrupted: false, targets: vec![wt("t-0", 1), wt("t-1", 0)], modes: Vec::new() };
        d.write_json(&d.workload_json(), &w).unwrap();
        std::fs::write(
            soak_json(&d),
            r#"{ "duration_s": 7200.0, "rounds": 12, "elapsed_s": 7210.5, "interrupted": false }"#,
        )
        .unwrap();
        std::fs::write(
            trends_csv(&d),
            "target,series,unit,samples,span_s,first,last,min,max,slope_per_hour,robust_slope_per_hour,threshold_per_hour,verdict\n\
             t-0,server_rss_kb,kB,100,7200,40000,52000,39000,52100,6000,5900,10000,flat\n\
             t-1,server_rss_kb,kB,100,7200,40000,90000,39000,90500,25000,24000,10000,leak\n\
             t-0,server_fds,fds,100,7200,20,22,20,23,1.0,1.0,50,flat\n\
             t-1,server_fds,fds,100,7200,20,30,20,31,5.0,5.0,50,flat\n\
             t-1,sessions,count,3,100,1,1,1,1,,,1,insufficient\n",
        )
        .unwrap();
        std::fs::write(
            faults_csv(&d),
            "fault,target,at_s,duration_s,fail_closed,probes,refused,ran_ungoverned,errors,recovery,recovered,recover_s,detail\n\
             kill-server,t-0,600,0,held,5,5,0,0,restart,yes,2.1,ok\n\
             kill-server,t-1,1200,0,held,5,5,0,0,restart,yes,3.4,ok\n\
             stall-server,t-0,1800,30,violated,5,3,2,0,resume,yes,0.5,2 probes ran <ungoverned>\n\
             drop-ssh,t-1,2400,10,held,5,5,0,0,reconnect,no,,ssh never came back\n",
        )
        .unwrap();
    }

    #[test]
    fn the_history_line_of_a_fixture_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("20261201t020000-ab12");
        fixture(&run);
        let d = Digest::load(&run).unwrap();
        let ops: Vec<String> = ["shim-allow", "git", "fuse-file"].map(String::from).to_vec();
        let row = d.history_row(&ops, "2026-12-01T04:00:00Z", false);
        assert_eq!(row.run_id, "20261201t020000-ab12");
        assert_eq!(row.agentsh_version, "0.16.9");
        assert_eq!((row.provider.as_str(), row.targets, row.ready, row.iterations), ("local", 3, 2, 2));
        assert_eq!(row.soak_s, Some(7210.5));
        assert!(!row.interrupted);
        // 1 held, 17 violated, 14 violated on t-1 and held on t-0 (flaky over the targets), 20
        // flaky, 30 inconclusive, 48 skipped.
        assert_eq!(
            (row.held, row.violated, row.flaky, row.inconclusive, row.skipped),
            (1, 1, 2, 1, 1),
            "per test over all targets"
        );
        assert_eq!((row.integrity_violated, row.wrong_decisions, row.wedges), (1, 2, 1));
        // Merged from the hlogs: 100 values 1..100 ms and 100 values 3..300 ms; the median is
        // ~75 ms, which neither target's own p50 (50, 150) is.
        let shim = &row.latency[0];
        let p50 = shim.p50_ms.unwrap();
        assert!((p50 - 75.0).abs() < 3.0, "merged p50 {p50}");
        assert!((shim.p99_ms.unwrap() - 294.0).abs() < 4.0, "{:?}", shim.p99_ms);
        assert_eq!(row.latency[2], OpLatency { op: "fuse-file".into(), p50_ms: None, p99_ms: None });
        assert_eq!(row.server_rss_kb_max, Some(90500.0));
        assert_eq!(row.server_fds_slope_per_hour, Some(5.0));
        assert_eq!(row.leaks, Some(1));
        let faults: Vec<String> = row.faults.iter().map(ToString::to_string).collect();
        assert_eq!(faults, ["kill-server:held/3.4s", "stall-server:violated/0.5s", "drop-ssh:held/no"]);

        // Written and read back as one line of the file beside the run folder.
        let file = crate::results::history::file_in(&crate::results::history::folder_of(&run));
        crate::results::history::append(&file, &ops, std::slice::from_ref(&row)).unwrap();
        assert_eq!(file, dir.path().join("history.csv"));
        let back = crate::results::history::read(&file).unwrap();
        assert_eq!(back.rows.len(), 1);
        assert_eq!(back.rows[0].faults, row.faults);
        assert_eq!(back.rows[0], row);
    }

    /// A soak's rounds each have their own hlogs (`histograms/default-rN/`): the history line
    /// merges them all, as it merges the targets.
    #[test]
    fn a_soaks_latency_merges_every_round() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let d = RunDir::at(dir.path());
        let before = Digest::load(dir.path()).unwrap().op_latency();
        // t-0's hlog in round 1, t-1's in round 3 (round 2 cut before its workload).
        for (target, round) in [("t-0", 1), ("t-1", 3)] {
            std::fs::create_dir_all(d.workload_histograms_dir(&format!("default-r{round}"))).unwrap();
            for kind in crate::results::HlogKind::ALL {
                std::fs::rename(d.hlog("default", target, kind), d.hlog(&format!("default-r{round}"), target, kind))
                    .unwrap();
            }
        }
        std::fs::remove_dir_all(d.workload_histograms_dir("default")).unwrap();
        let after = Digest::load(dir.path()).unwrap().op_latency();
        let p50 = after["shim-allow"].0.unwrap();
        assert!((p50 - 75.0).abs() < 3.0, "merged over the rounds: {p50}");
        assert_eq!(after, before);
    }

    #[test]
    fn without_hlogs_latency_comes_from_the_slowest_target_and_a_bare_folder_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        std::fs::remove_dir_all(RunDir::at(dir.path()).histograms_dir()).unwrap();
        let d = Digest::load(dir.path()).unwrap();
        let l = d.op_latency();
        let (p50, _) = l["git"];
        assert!((p50.unwrap() - 150.0).abs() < 1.0, "t-1's p50: {p50:?}");

        let empty = tempfile::tempdir().unwrap();
        let d = Digest::load(empty.path()).unwrap();
        let row = d.history_row(&["git".to_string()], "now", true);
        assert_eq!(row.agentsh_version, "none");
        assert_eq!((row.targets, row.held, row.wrong_decisions), (0, 0, 0));
        assert!(row.interrupted);
        assert_eq!((row.soak_s, row.leaks, row.server_rss_kb_max), (None, None, None));
        assert!(row.faults.is_empty());
    }

    #[test]
    fn a_file_that_is_there_but_unreadable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            trends_csv(&RunDir::at(dir.path())),
            "target,series,max,slope_per_hour,threshold_per_hour,verdict\nt,s,many,1,1,flat\n",
        )
        .unwrap();
        let e = format!("{:#}", Digest::load(dir.path()).err().expect("refused"));
        assert!(e.contains("trends.csv:2"), "{e}");
    }
}

//! The nightly gate: each agentsh version's newest run in history.csv (`results::history`)
//! against the run of the same version before it, judged by the thresholds of
//! `scenarios/history.toml` (each explained there). Versions are never compared with each other
//! here: that is what `--agentsh A --agentsh B` does, side by side on the same machine.
//!
//! A run stopped by Ctrl-C is left out of the comparison (its counts cover only what ran, so it
//! would show as fewer failures, or slower ops, than a whole run); it is still in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::exit::usage;
use crate::results::history::{HistoryRow, Recovery};

pub fn default_path() -> PathBuf {
    crate::paths::scenarios_dir().join("history.toml")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ops: Vec<toml::Spanned<String>>,
    thresholds: Thresholds,
}

/// What counts as a change for the worse between two runs of a version. A threshold left out
/// of the file is not checked.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Flagged when the newest run has more violated tests than the previous one plus this.
    pub violated_increase: Option<u32>,
    pub flaky_increase: Option<u32>,
    pub integrity_increase: Option<u32>,
    pub wrong_decisions_increase: Option<u64>,
    pub leaks_increase: Option<u32>,
    /// Flagged whenever the newest run has a fault agentsh did not fail closed on.
    #[serde(default)]
    pub fail_closed: bool,
    /// Flagged when a listed op's response p50 (p99) grew by more than this factor.
    pub p50_ratio: Option<toml::Spanned<f64>>,
    pub p99_ratio: Option<toml::Spanned<f64>>,
}

/// `scenarios/history.toml`: the ops whose latency history.csv keeps, and the thresholds.
#[derive(Debug, Clone)]
pub struct Config {
    pub ops: Vec<String>,
    pub thresholds: Thresholds,
}

/// Reads the config; a malformed file is a usage error naming file and line.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let at =
        |offset: usize, msg: &str| usage(format!("{}:{}: {msg}", path.display(), crate::text::line_of(text, offset)));
    let f: File = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => at(span.start, e.message()),
        None => usage(format!("{}: {}", path.display(), e.message())),
    })?;
    let known = workload_ops();
    let mut ops: Vec<String> = Vec::new();
    for op in &f.ops {
        let name = op.get_ref();
        if ops.contains(name) {
            return Err(at(op.span().start, &format!("op {name:?} listed twice")));
        }
        if !known.is_empty() && !known.contains(name) {
            return Err(at(
                op.span().start,
                &format!("op {name:?} is in no workload of scenarios/workloads/ (its columns would stay empty)"),
            ));
        }
        ops.push(name.clone());
    }
    for (name, r) in [("p50_ratio", &f.thresholds.p50_ratio), ("p99_ratio", &f.thresholds.p99_ratio)] {
        if let Some(r) = r
            && !(*r.get_ref() > 1.0 && r.get_ref().is_finite())
        {
            return Err(at(r.span().start, &format!("{name} must be a finite factor above 1 (now/before)")));
        }
    }
    Ok(Config { ops, thresholds: f.thresholds })
}

/// Every op name of the shipped workloads (empty when the folder cannot be read: then the
/// names are not checked).
fn workload_ops() -> Vec<String> {
    let dir = crate::paths::scenarios_dir().join("workloads");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut ops = Vec::new();
    for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")) {
        if let Ok(plan) =
            std::fs::read_to_string(&path).map_err(anyhow::Error::from).and_then(|t| crate::workload::parse(&t, &path))
        {
            ops.extend(plan.ops.into_iter().map(|o| o.name));
        }
    }
    ops
}

/// One change for the worse, with both values.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub what: String,
    pub before: String,
    pub now: String,
    /// The threshold it crossed, in words.
    pub rule: String,
}

/// One version's newest run against its previous one.
#[derive(Debug, Clone)]
pub struct VersionCheck {
    pub version: String,
    pub newest: String,
    /// None for the first complete run of a version (only absolute checks apply).
    pub previous: Option<String>,
    /// Runs of this version left out because Ctrl-C stopped them.
    pub interrupted: usize,
    pub flags: Vec<Flag>,
}

/// Every version in the file (or `only`), each newest complete run against the one before it.
/// `ops`: the latency columns to judge (the config's, as far as the file has them).
pub fn check(rows: &[HistoryRow], ops: &[String], t: &Thresholds, only: Option<&str>) -> Vec<VersionCheck> {
    let mut per: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| only.is_none_or(|v| same_version(v, &r.agentsh_version))) {
        per.entry(r.agentsh_version.trim_start_matches('v')).or_default().push(r);
    }
    per.into_iter()
        .filter_map(|(version, runs)| {
            let complete: Vec<&HistoryRow> = runs.iter().copied().filter(|r| !r.interrupted).collect();
            let newest = *complete.last()?;
            let previous = complete.len().checked_sub(2).map(|i| complete[i]);
            Some(VersionCheck {
                version: version.to_string(),
                newest: newest.run_id.clone(),
                previous: previous.map(|p| p.run_id.clone()),
                interrupted: runs.len() - complete.len(),
                flags: flags(previous, newest, ops, t),
            })
        })
        .collect()
}

/// `v0.16.9` and `0.16.9` are one version.
pub fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

fn flags(before: Option<&HistoryRow>, now: &HistoryRow, ops: &[String], t: &Thresholds) -> Vec<Flag> {
    let mut out = Vec::new();
    if t.fail_closed {
        for f in now.faults.iter().filter(|f| f.fail_closed == "violated") {
            let was = before.and_then(|b| b.faults.iter().find(|g| g.fault == f.fault));
            out.push(Flag {
                what: format!("fault {}: fail-closed", f.fault),
                before: was.map_or_else(|| "-".into(), |w| w.fail_closed.clone()),
                now: f.fail_closed.clone(),
                rule: "agentsh let a command run ungoverned under this fault".into(),
            });
        }
    }
    let Some(b) = before else { return out };
    let mut more = |what: &str, was: u64, is: u64, allowed: Option<u64>| {
        if let Some(n) = allowed
            && is > was + n
        {
            let rule = if n == 0 { "more than before".to_string() } else { format!("more than before + {n}") };
            out.push(Flag { what: what.into(), before: was.to_string(), now: is.to_string(), rule });
        }
    };
    let up = |n: Option<u32>| n.map(u64::from);
    more("violated tests", b.violated.into(), now.violated.into(), up(t.violated_increase));
    more("flaky tests", b.flaky.into(), now.flaky.into(), up(t.flaky_increase));
    more(
        "targets with integrity violated",
        b.integrity_violated.into(),
        now.integrity_violated.into(),
        up(t.integrity_increase),
    );
    more("wrong decisions under load", b.wrong_decisions, now.wrong_decisions, t.wrong_decisions_increase);
    if let Some(leaks) = now.leaks {
        more("leak verdicts", b.leaks.unwrap_or(0).into(), leaks.into(), up(t.leaks_increase));
    }
    for op in ops {
        let get = |r: &HistoryRow| r.latency.iter().find(|l| &l.op == op).cloned();
        let (Some(x), Some(y)) = (get(b), get(now)) else { continue };
        for (q, was, is, limit) in
            [("p50", x.p50_ms, y.p50_ms, &t.p50_ratio), ("p99", x.p99_ms, y.p99_ms, &t.p99_ratio)]
        {
            let (Some(was), Some(is), Some(limit)) = (was, is, limit) else { continue };
            let limit = *limit.get_ref();
            if was > 0.0 && is / was > limit {
                out.push(Flag {
                    what: format!("{op} response {q} ms"),
                    before: format!("{was:.3}"),
                    now: format!("{is:.3}"),
                    rule: format!("ratio {:.2} > {limit}", is / was),
                });
            }
        }
    }
    // A fault that recovered before and no longer does is worth the same attention.
    for f in &now.faults {
        let was = b.faults.iter().find(|g| g.fault == f.fault);
        if let (Some(was), Recovery::Other(no)) = (was, &f.recovery)
            && no == "no"
            && was.recovery != f.recovery
            && t.fail_closed
        {
            out.push(Flag {
                what: format!("fault {}: recovery", f.fault),
                before: was.to_string(),
                now: f.to_string(),
                rule: "recovered before, not now".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::history::tests::{ops, row};
    use crate::results::history::{FaultOutcome, OpLatency};

    fn shipped() -> Config {
        load(&default_path()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn the_shipped_file_loads_with_ops_of_the_default_workload() {
        let c = shipped();
        let default: Vec<String> = crate::workload::load("default").unwrap().ops.into_iter().map(|o| o.name).collect();
        assert!(!c.ops.is_empty() && c.ops.iter().all(|o| default.contains(o)), "{:?}", c.ops);
        assert_eq!(c.thresholds.p50_ratio.as_ref().map(|r| *r.get_ref()), Some(1.5));
        assert_eq!(c.thresholds.p99_ratio.as_ref().map(|r| *r.get_ref()), Some(2.0));
        assert!(c.thresholds.fail_closed);
    }

    #[test]
    fn a_clean_run_is_not_flagged_and_a_worse_one_is_with_both_values() {
        let t = shipped().thresholds;
        let ops = ops();
        let before = row("r1", "0.16.9");
        let mut same = row("r2", "0.16.9");
        // Noise within the thresholds: 1.4× on a p50, 1.9× on a p99, fewer flaky tests.
        same.latency[0].p50_ms = Some(12.5 * 1.4);
        same.latency[0].p99_ms = Some(40.0 * 1.9);
        same.flaky = 0;
        let checks = check(&[before.clone(), same], &ops, &t, None);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].previous.as_deref(), Some("r1"));
        assert!(checks[0].flags.is_empty(), "{:?}", checks[0].flags);

        let mut worse = row("r3", "0.16.9");
        worse.violated = 4;
        worse.latency[0] = OpLatency { op: "shim-allow".into(), p50_ms: Some(12.5), p99_ms: Some(100.0) };
        worse.leaks = Some(1);
        worse.faults[0].fail_closed = "violated".into();
        // Another version's run in between is not what r3 is compared with.
        let other = row("x1", "0.20.1");
        let checks = check(&[before, other, worse], &ops, &t, Some("v0.16.9"));
        assert_eq!(checks.len(), 1, "only the version asked for");
        let got: Vec<(&str, &str, &str)> =
            checks[0].flags.iter().map(|f| (f.what.as_str(), f.before.as_str(), f.now.as_str())).collect();
        assert_eq!(
            got,
            [
                ("fault kill-server: fail-closed", "held", "violated"),
                ("violated tests", "2", "4"),
                ("leak verdicts", "0", "1"),
                ("shim-allow response p99 ms", "40.000", "100.000"),
            ]
        );
        assert_eq!(checks[0].flags[3].rule, "ratio 2.50 > 2");
    }

    #[test]
    fn interrupted_runs_are_left_out_and_a_first_run_has_only_absolute_checks() {
        let t = shipped().thresholds;
        let mut stopped = row("r2", "0.16.9");
        stopped.interrupted = true;
        stopped.violated = 0;
        let mut first = row("r1", "0.16.9");
        first.faults = vec![FaultOutcome {
            fault: "fill-fs".into(),
            fail_closed: "violated".into(),
            recovery: crate::results::history::Recovery::Seconds(1.0),
        }];
        let checks = check(&[first, stopped], &ops(), &t, None);
        assert_eq!((checks[0].newest.as_str(), checks[0].previous.as_deref(), checks[0].interrupted), ("r1", None, 1));
        assert_eq!(checks[0].flags.len(), 1, "a fail-open fault needs no previous run: {:?}", checks[0].flags);
    }

    #[test]
    fn bad_threshold_files_name_file_and_line() {
        let p = Path::new("history.toml");
        let err = |text: &str| format!("{:#}", parse(text, p).unwrap_err());
        let e = err("ops = [\"git\"]\n[thresholds]\np50_ratio = \"fast\"\n");
        assert!(e.starts_with("history.toml:3: "), "{e}");
        let e = err("ops = [\"git\"]\n[thresholds]\np99_ratio = 0.5\n");
        assert!(e.starts_with("history.toml:3: p99_ratio must be"), "{e}");
        let e = err("ops = [\"git\",\n  \"no-such-op\"]\n[thresholds]\n");
        assert!(e.starts_with("history.toml:2: op \"no-such-op\""), "{e}");
        let e = err("ops = [\"git\", \"git\"]\n[thresholds]\n");
        assert!(e.contains("listed twice"), "{e}");
        let e = err("ops = []\n[thresholds]\nviolated = 1\n");
        assert!(e.starts_with("history.toml:3: ") && e.contains("violated"), "{e}");
        assert_eq!(crate::exit::code_for(&parse("ops = 1", p).unwrap_err()), crate::exit::USAGE);
    }
}

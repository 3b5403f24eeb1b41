//! Regressions against an earlier run's `summary.csv`: a test that held everywhere before and is
//! violated or flaky now. Compared per test across targets (target names carry run tags, so
//! they never match between runs).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::suite::run::TestId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Held,
    Violated,
    Flaky,
    Inconclusive,
    /// Only skipped-env or informational.
    Other,
}

/// Counts of one test on one target, as summary.csv has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub held: u32,
    pub violated: u32,
    pub inconclusive: u32,
    pub flaky: bool,
}

/// One state per test over all its targets: flaky beats violated beats held beats inconclusive.
pub fn state(per_target: &[Counts]) -> State {
    let sum = |f: fn(&Counts) -> u32| per_target.iter().map(f).sum::<u32>();
    let (held, violated, inconclusive) = (sum(|c| c.held), sum(|c| c.violated), sum(|c| c.inconclusive));
    if per_target.iter().any(|c| c.flaky) || (held > 0 && (violated > 0 || inconclusive > 0)) {
        State::Flaky
    } else if violated > 0 {
        State::Violated
    } else if held > 0 {
        State::Held
    } else if inconclusive > 0 {
        State::Inconclusive
    } else {
        State::Other
    }
}

/// Reads `<dir>/summary.csv` into (name, state) per test id.
pub fn load(dir: &Path) -> Result<BTreeMap<TestId, (String, State)>> {
    let path = crate::results::RunDir::at(dir).summary_csv();
    let rows = crate::results::summary::read(&path).context("reading the baseline")?;
    let mut per: BTreeMap<TestId, (String, Vec<Counts>)> = BTreeMap::new();
    for r in rows {
        let entry = per.entry(r.test_id).or_insert_with(|| (r.test.clone(), Vec::new()));
        entry.1.push(Counts { held: r.held, violated: r.violated, inconclusive: r.inconclusive, flaky: r.flaky });
    }
    Ok(per.into_iter().map(|(id, (name, counts))| (id, (name, state(&counts)))).collect())
}

/// How a test moved between the baseline and this run (which may be another agentsh version:
/// a v0.16.9 run as the baseline of a v0.20.1 run lists what the new version fixed and broke).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Held before, violated or flaky now: a regression.
    Broken,
    /// Not held before, held now.
    Fixed,
    /// Violated or flaky before and now.
    StillFailing,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Regression {
    pub test_id: TestId,
    pub test: String,
    pub before: State,
    pub now: State,
    pub change: Change,
}

/// Every test that broke, was fixed, or still fails, in test order.
pub fn find(before: &BTreeMap<TestId, (String, State)>, now: &BTreeMap<TestId, (String, State)>) -> Vec<Regression> {
    let failing = |s: State| matches!(s, State::Violated | State::Flaky);
    now.iter()
        .filter_map(|(id, (name, s))| {
            let (_, b) = before.get(id)?;
            let change = if *b == State::Held && failing(*s) {
                Change::Broken
            } else if *b != State::Held && *s == State::Held {
                Change::Fixed
            } else if failing(*b) && failing(*s) {
                Change::StillFailing
            } else {
                return None;
            };
            Some(Regression { test_id: *id, test: name.clone(), before: *b, now: *s, change })
        })
        .collect()
}

pub fn write_csv(path: &Path, regs: &[Regression]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["test_id", "test", "before", "now", "change"])?;
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    };
    for r in regs {
        let s = |s: State| name(serde_json::to_value(s));
        w.write_record([
            r.test_id.to_string(),
            r.test.clone(),
            s(r.before),
            s(r.now),
            name(serde_json::to_value(r.change)),
        ])?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(held: u32, violated: u32, inconclusive: u32) -> Counts {
        Counts { held, violated, inconclusive, flaky: false }
    }

    #[test]
    fn states_over_targets() {
        assert_eq!(state(&[c(2, 0, 0), c(2, 0, 0)]), State::Held);
        assert_eq!(state(&[c(2, 0, 0), c(0, 2, 0)]), State::Flaky, "held on one target, violated on another");
        assert_eq!(state(&[c(0, 2, 0), c(0, 0, 2)]), State::Violated);
        assert_eq!(state(&[c(0, 0, 2)]), State::Inconclusive);
        assert_eq!(state(&[c(0, 0, 0)]), State::Other);
    }

    #[test]
    fn held_then_violated_or_flaky_is_a_regression_and_nothing_else_is() {
        let m = |v: &[(u32, State)]| {
            v.iter().map(|(i, s)| (TestId::Suite(*i), (format!("t{i}"), *s))).collect::<BTreeMap<_, _>>()
        };
        let before =
            m(&[(1, State::Held), (2, State::Held), (3, State::Violated), (4, State::Held), (5, State::Inconclusive)]);
        let now =
            m(&[(1, State::Violated), (2, State::Flaky), (3, State::Violated), (4, State::Held), (5, State::Violated)]);
        let r = find(&before, &now);
        let broken: Vec<TestId> = r.iter().filter(|r| r.change == Change::Broken).map(|r| r.test_id).collect();
        assert_eq!(broken, [TestId::Suite(1), TestId::Suite(2)]);
        assert_eq!(r.iter().find(|r| r.test_id == TestId::Suite(3)).map(|r| r.change), Some(Change::StillFailing));
        assert!(
            r.iter().all(|r| r.test_id != TestId::Suite(4) && r.test_id != TestId::Suite(5)),
            "unchanged held, and inconclusive → violated, are neither"
        );
        let fixed = find(&now, &before);
        assert_eq!(
            fixed.iter().filter(|r| r.change == Change::Fixed).map(|r| r.test_id).collect::<Vec<_>>(),
            [TestId::Suite(1), TestId::Suite(2)]
        );
    }

    #[test]
    fn an_integrity_row_reads_back_and_can_regress() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            crate::results::RunDir::at(dir.path()).summary_csv(),
            "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n\
             14,shell: sudo blocked,a-0,1,0,0,0,0,false\n\
             integrity,target file system unchanged,a-0,1,0,0,0,0,false\n",
        )
        .unwrap();
        let before = load(dir.path()).unwrap();
        assert_eq!(before[&TestId::Integrity].1, State::Held);
        let now: BTreeMap<_, _> = [(TestId::Integrity, ("integrity".to_string(), State::Violated))].into();
        let r = find(&before, &now);
        assert_eq!(r.len(), 1);
        let out = crate::results::RunDir::at(dir.path()).regressions_csv();
        write_csv(&out, &r).unwrap();
        assert!(std::fs::read_to_string(&out).unwrap().contains("\nintegrity,integrity,held,violated,broken\n"));
        std::fs::write(
            crate::results::RunDir::at(dir.path()).summary_csv(),
            "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\nx,t,a,1,0,0,0,0,false\n",
        )
        .unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(e.contains("summary.csv:2: not a test id"), "{e}");
    }
}

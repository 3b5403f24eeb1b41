//! The suite's outputs: `tests.csv` (one row per execution, written as each test ends),
//! `summary.csv` (per test × target: counts by verdict, flaky when held and not held mix) and the
//! terminal summary with violated and flaky tests first.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::results::summary::SummaryRow;
use crate::suite::run::{Row, TestId};
use crate::suite::verdict::Verdict;

pub struct TestsCsv {
    w: csv::Writer<std::fs::File>,
}

impl TestsCsv {
    pub fn create(path: &Path) -> Result<TestsCsv> {
        let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
        w.write_record([
            "run_id",
            "target",
            "agentsh_version",
            "iteration",
            "category",
            "test_id",
            "test",
            "verdict",
            "expected",
            "evidence",
            "duration_ms",
            "detail",
            "record",
        ])?;
        w.flush()?;
        Ok(TestsCsv { w })
    }

    pub fn row(&mut self, run: &str, r: &Row) -> Result<()> {
        let verdict = r.verdict.as_str();
        self.w.write_record([
            run,
            &r.target,
            &r.agentsh_version,
            &r.iteration.to_string(),
            &r.category,
            &r.test_id.to_string(),
            &r.test,
            verdict,
            &r.expected,
            &r.evidence,
            &r.duration_ms.to_string(),
            &r.detail,
            &r.record,
        ])?;
        // Flushed per row: a crash loses at most the test in flight.
        self.w.flush().context("flushing tests.csv")?;
        Ok(())
    }
}

/// Counts per (test, target).
#[derive(Default, Clone)]
pub struct Tally {
    pub name: String,
    pub counts: BTreeMap<Verdict, u32>,
}

impl Tally {
    fn n(&self, v: Verdict) -> u32 {
        self.counts.get(&v).copied().unwrap_or(0)
    }

    /// Held sometimes and not at other times: the protection holds only sometimes.
    pub fn flaky(&self) -> bool {
        self.n(Verdict::Held) > 0 && (self.n(Verdict::Violated) > 0 || self.n(Verdict::Inconclusive) > 0)
    }
}

/// Counts per (test, target), in that order.
pub type Tallies = BTreeMap<(TestId, String), Tally>;

/// summary.csv, as an exporter of the suite's results.
pub struct SummaryCsv;

impl super::Exporter for SummaryCsv {
    fn name(&self) -> &'static str {
        "summary.csv"
    }

    fn export(&self, results: &super::Results<'_>, dir: &crate::results::RunDir) -> Result<()> {
        match results {
            super::Results::Suite { tallies, .. } => write_summary(&dir.summary_csv(), tallies),
            super::Results::Workload { .. } => Ok(()),
        }
    }
}

/// tests.csv read back (what [`TestsCsv`] wrote): how a soak tallies its rounds at the end
/// without holding every row while it runs. Errors name the file and the line.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<Row>().enumerate() {
        // Line 1 is the header.
        rows.push(row.with_context(|| format!("{}:{}: not a tests.csv row", path.display(), i + 2))?);
    }
    Ok(rows)
}

pub fn tally(rows: &[Row]) -> Tallies {
    let mut m: Tallies = BTreeMap::new();
    for r in rows {
        let t = m.entry((r.test_id, r.target.clone())).or_default();
        t.name = r.test.clone();
        *t.counts.entry(r.verdict).or_default() += 1;
    }
    m
}

/// Per test, the counts of every target, for [`crate::analyze::regressions::state`].
pub fn states(tallies: &Tallies) -> BTreeMap<TestId, (String, crate::analyze::regressions::State)> {
    use crate::analyze::regressions::{Counts, state};
    let mut per: BTreeMap<TestId, (String, Vec<Counts>)> = BTreeMap::new();
    for ((id, _), t) in tallies {
        let e = per.entry(*id).or_insert_with(|| (t.name.clone(), Vec::new()));
        e.1.push(Counts {
            held: t.n(Verdict::Held),
            violated: t.n(Verdict::Violated),
            inconclusive: t.n(Verdict::Inconclusive),
            flaky: t.flaky(),
        });
    }
    per.into_iter().map(|(id, (name, c))| (id, (name, state(&c)))).collect()
}

/// `summary.csv` (`results::summary`), in (test, target) order.
pub fn write_summary(path: &Path, tallies: &Tallies) -> Result<()> {
    crate::results::summary::write(path, &summary_rows(tallies))
}

/// The rows of summary.csv, in (test, target) order: one function, so that the HTML report's
/// table for a run without summary.csv (a crash before the end) counts and judges flakiness as
/// the file does.
pub fn summary_rows(tallies: &Tallies) -> Vec<SummaryRow> {
    tallies
        .iter()
        .map(|((id, target), t)| SummaryRow {
            test_id: *id,
            test: t.name.clone(),
            target: target.clone(),
            held: t.n(Verdict::Held),
            violated: t.n(Verdict::Violated),
            inconclusive: t.n(Verdict::Inconclusive),
            skipped_env: t.n(Verdict::SkippedEnv),
            informational: t.n(Verdict::Informational),
            flaky: t.flaky(),
        })
        .collect()
}

/// Violated and flaky first, then counts; returns how many test × target pairs were violated or
/// flaky, and how many only inconclusive.
pub fn print_summary(tallies: &Tallies) -> (usize, usize) {
    let bad: Vec<_> = tallies.iter().filter(|(_, t)| t.n(Verdict::Violated) > 0 || t.flaky()).collect();
    let unsure = tallies
        .values()
        .filter(|t| t.n(Verdict::Inconclusive) > 0 && t.n(Verdict::Violated) == 0 && !t.flaky())
        .count();
    if !bad.is_empty() {
        println!("VIOLATED or FLAKY ({}):", bad.len());
        for ((id, target), t) in &bad {
            println!(
                "  {id:>2} {:<50} {target}  held {} violated {} inconclusive {}{}",
                t.name,
                t.n(Verdict::Held),
                t.n(Verdict::Violated),
                t.n(Verdict::Inconclusive),
                if t.flaky() { "  FLAKY" } else { "" }
            );
        }
    }
    let mut totals: BTreeMap<Verdict, u32> = BTreeMap::new();
    for t in tallies.values() {
        for (k, v) in &t.counts {
            *totals.entry(*k).or_default() += v;
        }
    }
    println!(
        "suite: {} held, {} violated, {} inconclusive, {} skipped-env, {} informational ({} test × target pairs inconclusive only)",
        totals.get(&Verdict::Held).unwrap_or(&0),
        totals.get(&Verdict::Violated).unwrap_or(&0),
        totals.get(&Verdict::Inconclusive).unwrap_or(&0),
        totals.get(&Verdict::SkippedEnv).unwrap_or(&0),
        totals.get(&Verdict::Informational).unwrap_or(&0),
        unsure
    );
    (bad.len(), unsure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: TestId, target: &str, v: Verdict) -> Row {
        Row {
            target: target.into(),
            agentsh_version: "none".into(),
            iteration: 1,
            category: "c".into(),
            test_id: id,
            test: format!("t{id}"),
            verdict: v,
            expected: "enforced".into(),
            evidence: String::new(),
            duration_ms: 1,
            detail: String::new(),
            record: String::new(),
        }
    }

    #[test]
    fn mixed_held_and_violated_is_flaky() {
        let (one, two) = (TestId::Suite(1), TestId::Suite(2));
        let rows = [
            row(one, "a", Verdict::Held),
            row(one, "a", Verdict::Violated),
            row(two, "a", Verdict::Held),
            row(two, "a", Verdict::Held),
        ];
        let t = tally(&rows);
        assert!(t[&(one, "a".into())].flaky());
        assert!(!t[&(two, "a".into())].flaky());
        let dir = tempfile::tempdir().unwrap();
        write_summary(&dir.path().join("s.csv"), &t).unwrap();
        let s = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
        assert!(s.contains("1,t1,a,1,1,0,0,0,true"), "{s}");
    }

    #[test]
    fn a_violated_integrity_row_counts_like_a_violated_test() {
        let rows = [row(TestId::Suite(1), "a", Verdict::Held), row(TestId::Integrity, "a", Verdict::Violated)];
        let t = tally(&rows);
        assert_eq!(print_summary(&t), (1, 0), "one bad pair: the run exits 1");
        let dir = tempfile::tempdir().unwrap();
        write_summary(&dir.path().join("s.csv"), &t).unwrap();
        let s = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
        assert!(s.ends_with("1,t1,a,1,0,0,0,0,false\nintegrity,tintegrity,a,0,1,0,0,0,false\n"), "{s}");
    }
}

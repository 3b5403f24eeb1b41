//! `summary.md`: the run in a page of Markdown, for CI pages (`cat summary.md >>
//! $GITHUB_STEP_SUMMARY`) and chat: the run, agentsh's version, targets ready, the verdict
//! counts with the violated and flaky tests listed first, integrity, the workload's p50/p99 and
//! wrong decisions per op, the soak's trends (leaks first) and its faults (fail-closed, time to
//! recover). Written beside report.html, from the same files ([`Digest`]); report.html has the
//! rest.
//!
//! For the folder of a two-version run (`a-<A>/`, `b-<B>/` and comparison-versions.csv) it is
//! each side's summary one after the other, then the comparison's table.
//!
//! Text from files is escaped for Markdown tables and for the HTML that Markdown renderers pass
//! through: a test name holding `<script>` or `|` shows as text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::analyze::digest::Digest;
use crate::analyze::regressions::State;
use crate::results::RunDir;
use crate::results::manifest::RunTarget;

/// `summary.md` in a run folder.
pub fn path(dir: &RunDir) -> PathBuf {
    dir.path.join("summary.md")
}

/// At most this many rows in a table of failures: the rest is in report.html and the CSVs.
const MAX_ROWS: usize = 50;

/// Text for a table cell or a line: markup escaped, one line, at most 200 characters.
fn md(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(200) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '`' | '*' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(out, "|{}", headers.iter().map(|_| "---|").collect::<String>());
    for r in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(out, "\n…and {} more rows (see report.html).", rows.len() - MAX_ROWS);
    }
    out.push('\n');
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

/// One run's summary, its headings at `level` (1 for a run folder, 2 inside a comparison).
fn run(d: &Digest, level: usize) -> String {
    let h = "#".repeat(level);
    let mut out = String::new();
    let _ = writeln!(out, "{h} agentsh-bench run `{}`\n", md(&d.run_id()));
    let (targets, ready) = d.targets();
    let mut facts = vec![("agentsh", md(&d.agentsh_version()))];
    if let Some(r) = &d.run {
        facts.push(("--agentsh", md(&r.agentsh_spec)));
        facts.push(("provider", md(&d.provider())));
        let failed: Vec<String> = r
            .targets
            .iter()
            .filter_map(|t| match t {
                RunTarget::Failed { name, step, error, .. } => {
                    Some(format!("{} at {}: {}", md(name), md(step), md(error.lines().next().unwrap_or(""))))
                }
                RunTarget::Ready { .. } => None,
            })
            .collect();
        let mark = if ready == targets { "" } else { " ❌" };
        let mut line = format!("{ready} of {targets}{mark}");
        if !failed.is_empty() {
            line.push_str(&format!(" (failed: {})", failed.join("; ")));
        }
        facts.push(("targets ready", line));
    }
    if let Some(s) = &d.soak {
        facts.push((
            "soak",
            format!(
                "{:.0} s of {:.0} s, {} round(s){}",
                s.elapsed_s,
                s.duration_s,
                s.rounds,
                if s.interrupted { ", interrupted" } else { "" }
            ),
        ));
    }
    if d.interrupted() {
        facts.push(("interrupted", "yes: the figures cover what ran until Ctrl-C".into()));
    }
    let rows: Vec<Vec<String>> = facts.into_iter().map(|(k, v)| vec![k.to_string(), v]).collect();
    table(&mut out, &["", ""], &rows);
    suite(&mut out, d, &h);
    workload(&mut out, d, &h);
    trends(&mut out, d, &h);
    faults(&mut out, d, &h);
    out
}

fn suite(out: &mut String, d: &Digest, h: &str) {
    if d.summary.is_empty() {
        return;
    }
    let c = d.verdict_counts();
    let _ = writeln!(out, "{h}# Suite\n");
    let _ = writeln!(
        out,
        "{} iteration(s). Tests over all targets: **{} held**, **{} violated**, **{} flaky**, {} inconclusive, {} skipped-env.\n",
        d.iterations(),
        c.held,
        c.violated,
        c.flaky,
        c.inconclusive,
        c.skipped
    );
    // Violated and flaky first, then inconclusive; per test and target, as summary.csv counts.
    let mut bad: Vec<_> = d
        .summary
        .iter()
        .filter(|r| r.test_id.number().is_some())
        .filter(|r| r.violated > 0 || r.flaky || r.inconclusive > 0)
        .collect();
    bad.sort_by_key(|r| if r.violated > 0 || r.flaky { 0 } else { 1 });
    if !bad.is_empty() {
        let evidence = |id: String, target: &str| {
            d.executions
                .iter()
                .find(|e| {
                    e.test_id == id && e.target == target && !matches!(e.verdict.as_str(), "held" | "informational")
                })
                .map(|e| md(&e.evidence))
                .unwrap_or_default()
        };
        let rows: Vec<Vec<String>> = bad
            .iter()
            .map(|r| {
                let state = if r.flaky {
                    "**flaky**"
                } else if r.violated > 0 {
                    "**violated**"
                } else {
                    "inconclusive"
                };
                vec![
                    r.test_id.to_string(),
                    md(&r.test),
                    md(&r.target),
                    state.into(),
                    format!("{}/{}/{}", r.held, r.violated, r.inconclusive),
                    evidence(r.test_id.to_string(), &r.target),
                ]
            })
            .collect();
        table(out, &["test", "title", "target", "verdict", "held/violated/inconclusive", "evidence"], &rows);
    }
    let tests = d.tests();
    let failing = tests.values().filter(|t| matches!(t.state, State::Violated | State::Flaky)).count();
    if failing == 0 && bad.is_empty() {
        out.push_str("Every test held (or was skipped by the environment).\n\n");
    }
    let integrity: Vec<Vec<String>> = d
        .summary
        .iter()
        .filter(|r| r.test_id == crate::results::TestId::Integrity)
        .map(|r| {
            let verdict = if r.violated > 0 {
                "**violated**"
            } else if r.inconclusive > 0 {
                "inconclusive"
            } else {
                "held"
            };
            let evidence = d
                .executions
                .iter()
                .find(|e| e.test_id == "integrity" && e.target == r.target)
                .map(|e| md(&e.evidence))
                .unwrap_or_default();
            vec![md(&r.target), verdict.into(), evidence]
        })
        .collect();
    if !integrity.is_empty() {
        let _ = writeln!(out, "{h}# Integrity\n");
        table(out, &["target", "file system", "evidence"], &integrity);
    }
}

fn workload(out: &mut String, d: &Digest, h: &str) {
    if d.latency.is_empty() {
        return;
    }
    let name = d.workload.as_ref().map_or("workload", |w| w.plan.name.as_str());
    let _ = writeln!(out, "{h}# Workload `{}`\n", md(name));
    let merged = d.op_latency();
    let mut ops: Vec<String> = Vec::new();
    for r in &d.latency {
        if !ops.contains(&r.op) {
            ops.push(r.op.clone());
        }
    }
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            let these = d.latency.iter().filter(|r| &r.op == op);
            let (count, errors, wrong) =
                these.fold((0, 0, 0), |(c, e, w), r| (c + r.count, e + r.errors, w + r.wrong_decisions));
            let (p50, p99) = merged.get(op).copied().unwrap_or_default();
            let wrong = if wrong > 0 { format!("**{wrong}** ❌") } else { "0".into() };
            vec![md(op), count.to_string(), errors.to_string(), wrong, ms(p50), ms(p99)]
        })
        .collect();
    table(out, &["op", "ops", "errors", "wrong decisions", "p50 ms", "p99 ms"], &rows);
    let _ = writeln!(
        out,
        "Response time over all targets (from the intended start). Wrong decisions: {}; agentsh server wedges: {}.\n",
        d.wrong_decisions(),
        d.wedges()
    );
}

fn trends(out: &mut String, d: &Digest, h: &str) {
    if d.trends.is_empty() {
        return;
    }
    let leaks = d.leaks().unwrap_or(0);
    let _ = writeln!(out, "{h}# Trends\n");
    let _ = writeln!(
        out,
        "{} leak verdict(s) over {} series.{}\n",
        leaks,
        d.trends.len(),
        if leaks > 0 { " ❌" } else { "" }
    );
    let mut rows: Vec<_> = d.trends.iter().collect();
    rows.sort_by_key(|t| if t.verdict == "leak" { 0 } else { 1 });
    let f = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{v:.1}"));
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|t| {
            let verdict = if t.verdict == "leak" { "**leak**".to_string() } else { md(&t.verdict) };
            vec![
                md(&t.target),
                md(&t.series),
                format!("{} {}", f(t.max), md(&t.unit)),
                f(t.slope_per_hour),
                f(t.threshold_per_hour),
                verdict,
            ]
        })
        .collect();
    table(out, &["target", "series", "max", "slope/h", "threshold/h", "verdict"], &rows);
}

fn faults(out: &mut String, d: &Digest, h: &str) {
    if d.faults.is_empty() {
        return;
    }
    let _ = writeln!(out, "{h}# Faults\n");
    let open = d.faults.iter().filter(|f| f.fail_closed == "violated").count();
    let _ = writeln!(
        out,
        "{} fault(s) applied; agentsh failed open in {open}{}.\n",
        d.faults.len(),
        if open > 0 { " ❌" } else { "" }
    );
    let rows: Vec<Vec<String>> = d
        .faults
        .iter()
        .map(|f| {
            let closed = if f.fail_closed == "violated" { "**violated**".to_string() } else { md(&f.fail_closed) };
            vec![
                md(&f.fault),
                md(&f.target),
                f.at_s.map_or_else(String::new, |s| format!("{s:.0}")),
                closed,
                md(&f.recovered),
                f.recover_s.map_or_else(|| "–".into(), |s| format!("{s:.1}")),
                md(&f.detail),
            ]
        })
        .collect();
    table(out, &["fault", "target", "at s", "fail-closed", "recovered", "recover s", "detail"], &rows);
}

/// The page for a folder: a run folder, or a two-version comparison's folder (its sides and
/// comparison table).
pub fn render(dir: &Path) -> Result<String> {
    let d = RunDir::at(dir);
    if d.run_json().exists() || d.summary_csv().exists() || d.latency_csv().exists() {
        return Ok(run(&Digest::load(dir)?, 1));
    }
    let mut sides: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| RunDir::at(p).run_json().exists())
        .collect();
    sides.sort();
    let mut out = String::from("# agentsh-bench comparison\n\n");
    for side in &sides {
        out.push_str(&run(&Digest::load(side)?, 2));
    }
    for csv_file in d.comparison_csvs() {
        let mut r = csv::Reader::from_path(&csv_file).with_context(|| format!("reading {}", csv_file.display()))?;
        let headers: Vec<String> = r.headers()?.iter().map(md).collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("reading {}:{}", csv_file.display(), i + 2))?;
            rows.push(rec.iter().map(md).collect());
        }
        let name = csv_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(out, "## `{}`\n", md(&name));
        if rows.is_empty() {
            out.push_str("Nothing to compare (no suite or workload on both sides).\n\n");
            continue;
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        table(&mut out, &headers, &rows);
    }
    Ok(out)
}

/// Writes `summary.md` into the folder; returns its path.
pub fn write(dir: &RunDir) -> Result<PathBuf> {
    let file = path(dir);
    std::fs::write(&file, render(&dir.path)?).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_run_in_markdown() {
        let dir = tempfile::tempdir().unwrap();
        crate::analyze::digest::tests::fixture(dir.path());
        let file = write(&RunDir::at(dir.path())).unwrap();
        assert_eq!(file, dir.path().join("summary.md"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# agentsh-bench run `20261201t020000-ab12`\n"), "{text}");
        assert!(text.contains("| agentsh | 0.16.9 |"), "{text}");
        assert!(text.contains("| targets ready | 2 of 3 ❌ (failed: t-2 at server: no /health) |"), "{text}");
        assert!(text.contains("**1 held**, **1 violated**, **2 flaky**, 1 inconclusive, 1 skipped-env"), "{text}");
        // Violated and flaky before inconclusive; markup escaped.
        let row14 = text.find("| 14 | sudo &lt;blocked&gt; &amp; \"quoted\" | t-1 | **violated** |").expect(&text);
        let row17 = text.find("| 17 | kill blocked | t-0 | **violated** |").expect(&text);
        let row20 = text.find("| 20 | evil.com refused | t-0 | **flaky** |").expect(&text);
        let row30 = text.find("| 30 | landlock | t-0 | inconclusive |").expect(&text);
        assert!(row14.max(row17).max(row20) < row30, "{text}");
        assert!(text.contains("root printed &lt;uid=0&gt;"), "{text}");
        assert!(!text.contains("<uid=0>") && !text.contains("<blocked>"), "nothing from a file as markup");
        assert!(text.contains("| t-1 | **violated** | /usr/bin/x changed |"), "{text}");
        // Workload: git's wrong decisions and the merged p50 (~75 ms) of shim-allow.
        assert!(text.contains("| git | 200 | 0 | **2** ❌ |"), "{text}");
        assert!(text.contains("| shim-allow | 200 | 0 | 0 | 75."), "{text}");
        assert!(text.contains("agentsh server wedges: 1."), "{text}");
        // The leak first in trends; the fail-open fault marked.
        let leak = text.find("| t-1 | server_rss_kb | 90500.0 kB | 25000.0 | 10000.0 | **leak** |").expect(&text);
        assert!(leak < text.find("| t-0 | server_rss_kb |").unwrap());
        assert!(text.contains("4 fault(s) applied; agentsh failed open in 1 ❌."), "{text}");
        assert!(
            text.contains("| stall-server | t-0 | 1800 | **violated** | yes | 0.5 | 2 probes ran &lt;ungoverned&gt; |"),
            "{text}"
        );
        assert!(text.contains("| soak | 7210 s of 7200 s, 12 round(s) |"), "{text}");
    }

    #[test]
    fn a_comparison_folder_shows_both_sides_and_the_table() {
        let dir = tempfile::tempdir().unwrap();
        crate::analyze::digest::tests::fixture(&dir.path().join("a-v0.16.9"));
        crate::analyze::digest::tests::fixture(&dir.path().join("b-v0.20.1"));
        std::fs::write(
            dir.path().join("comparison-versions.csv"),
            "section,item,v0.16.9,v0.20.1,ratio_b_over_a,ci95_low,ci95_high,p_value,verdict\nsuite,14 a|b,held,violated,,,,,broken\n",
        )
        .unwrap();
        let text = render(dir.path()).unwrap();
        assert!(text.starts_with("# agentsh-bench comparison\n"), "{text}");
        assert_eq!(text.matches("## agentsh-bench run").count(), 2, "{text}");
        assert!(text.contains("| suite | 14 a\\|b | held | violated |"), "{text}");
    }

    #[test]
    fn an_empty_run_folder_still_gets_a_page() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            RunDir::at(dir.path()).summary_csv(),
            "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n",
        )
        .unwrap();
        let text = render(dir.path()).unwrap();
        assert!(text.contains("# agentsh-bench run"), "{text}");
    }
}

//! `--junit FILE`: the run's verdicts as JUnit XML, the format every CI shows as test results.
//! One `<testsuite>` per target; in it one `<testcase>` per suite test (summary.csv's tally of
//! that test on that target, the integrity row and a soak's `fault:<name>` rows included), one per
//! workload op (`decision:<op>`, failing when the op got a wrong decision) and one for the
//! target's readiness.
//!
//! Mapping: violated or flaky → `<failure>` with the executions that did not hold (evidence and
//! detail); only inconclusive → `<error>` (nothing proven either way, as exit 2 says); only
//! skipped-env → `<skipped>`; a target that never became ready → `<error>` on its readiness.
//! Everything from a file is escaped, and characters XML 1.0 cannot carry at all (agentsh's
//! output may hold terminal escapes) are written as `\u{..}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::analyze::digest::{Digest, Execution, LatencyRow};
use crate::results::manifest::RunTarget;
use crate::results::summary::SummaryRow;
use crate::schema::{Expected, OpKind};

/// At most this many executions are quoted in one failure (a soak may have hundreds); the
/// message says how many there were.
const MAX_QUOTED: usize = 5;

/// A double-quoted attribute value.
pub fn esc(s: &str) -> String {
    crate::text::escape_markup(s)
}

/// Element content: line breaks stay as they are (readable in the file), the rest as [`esc`].
fn esc_text(s: &str) -> String {
    crate::text::escape_markup_text(s)
}

/// A category as a classname part: CI views split classnames at dots into packages, and the
/// suite's categories are titles ("Server & Configuration" → `server-configuration`).
fn slug(category: &str) -> String {
    let mut out = String::new();
    for c in category.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "suite".into() } else { out }
}

/// How one testcase ended.
enum Outcome {
    Passed,
    Failure { kind: &'static str, message: String, body: String },
    Error { message: String, body: String },
    Skipped { message: String },
}

struct Case {
    classname: String,
    name: String,
    seconds: f64,
    outcome: Outcome,
}

impl Case {
    fn xml(&self, out: &mut String) {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&self.classname),
            esc(&self.name),
            self.seconds
        );
        match &self.outcome {
            Outcome::Passed => out.push_str("/>\n"),
            Outcome::Failure { kind, message, body } => {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>",
                    esc(message),
                    esc_text(body)
                );
            }
            Outcome::Error { message, body } => {
                let _ = writeln!(
                    out,
                    ">\n      <error type=\"inconclusive\" message=\"{}\">{}</error>\n    </testcase>",
                    esc(message),
                    esc_text(body)
                );
            }
            Outcome::Skipped { message } => {
                let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", esc(message));
            }
        }
    }
}

#[derive(Default)]
struct Suite {
    version: String,
    run: String,
    cases: Vec<Case>,
}

/// The executions of one (test, target) that did not hold, quoted.
fn quoted(execs: &[&Execution]) -> String {
    let bad: Vec<&&Execution> =
        execs.iter().filter(|e| !matches!(e.verdict.as_str(), "held" | "informational")).collect();
    let mut body = String::new();
    for e in bad.iter().take(MAX_QUOTED) {
        let _ = writeln!(body, "iteration {}: {}: {}", e.iteration, e.verdict, e.evidence);
        if !e.detail.is_empty() {
            let _ = writeln!(body, "{}", e.detail);
        }
    }
    if bad.len() > MAX_QUOTED {
        let _ = writeln!(body, "(and {} more in tests.csv)", bad.len() - MAX_QUOTED);
    }
    body
}

/// A suite row (a test, the integrity check or a fault on one target) as a testcase.
fn test_case(r: &SummaryRow, execs: &[&Execution]) -> Case {
    let category = execs.iter().map(|e| e.category.as_str()).find(|c| !c.is_empty()).unwrap_or("suite");
    let seconds = execs.iter().map(|e| e.duration_ms as f64 / 1000.0).sum();
    let first = |v: &str| execs.iter().find(|e| e.verdict == v).map(|e| e.evidence.as_str()).unwrap_or("");
    let counts = format!(
        "held {}, violated {}, inconclusive {}, skipped-env {}",
        r.held, r.violated, r.inconclusive, r.skipped_env
    );
    let outcome = if r.flaky {
        Outcome::Failure {
            kind: "flaky",
            message: format!("flaky: {counts}; {}", first(if r.violated > 0 { "violated" } else { "inconclusive" })),
            body: quoted(execs),
        }
    } else if r.violated > 0 {
        Outcome::Failure {
            kind: "violated",
            message: format!("violated: {counts}; {}", first("violated")),
            body: quoted(execs),
        }
    } else if r.inconclusive > 0 {
        Outcome::Error { message: format!("inconclusive: {counts}; {}", first("inconclusive")), body: quoted(execs) }
    } else if r.skipped_env > 0 && r.held == 0 {
        Outcome::Skipped { message: format!("skipped-env: {}", first("skipped-env")) }
    } else {
        Outcome::Passed
    };
    Case {
        classname: format!("agentsh-bench.{}", slug(category)),
        name: format!("{} {}", r.test_id, r.test),
        seconds,
        outcome,
    }
}

/// A workload op on one target: failing when agentsh decided it wrongly. In a `--mode` other
/// than full, a denied op that ran is what the mode took away (not counted against agentsh, as
/// the run's exit code does not): skipped, with why.
fn decision_case(d: &Digest, l: &LatencyRow) -> Case {
    let mode = l.mode.as_str();
    let layered = !matches!(mode, "full" | "none" | "");
    let name = if layered { format!("decision:{}@{mode}", l.op) } else { format!("decision:{}", l.op) };
    let denied = d.workload.as_ref().is_some_and(|w| {
        w.plan
            .ops
            .iter()
            .any(|o| o.name == l.op && matches!(&o.kind, OpKind::Governed { expected: Expected::Deny { .. }, .. }))
    });
    let samples: Vec<String> = d
        .workload
        .iter()
        .flat_map(|w| &w.targets)
        .filter(|t| t.target == l.target && (t.mode == mode || t.mode.is_empty()))
        .flat_map(|t| t.finished.samples.get(&l.op).into_iter().flatten().cloned())
        .collect();
    let figures = format!("{} ops, {} errors, {} wrong decisions", l.count, l.errors, l.wrong_decisions);
    let outcome = match l.wrong_decisions {
        0 => Outcome::Passed,
        n if layered && denied => Outcome::Skipped {
            message: format!("{n} denied op(s) ran in mode {mode}, whose layers are off: not a wrong decision"),
        },
        _ => Outcome::Failure { kind: "wrong-decision", message: figures.clone(), body: samples.join("\n") },
    };
    Case { classname: "agentsh-bench.decision".into(), name, seconds: 0.0, outcome }
}

fn readiness_case(t: &RunTarget) -> (String, Case) {
    let (name, outcome) = match t {
        RunTarget::Ready { name, .. } => (name, Outcome::Passed),
        RunTarget::Failed { name, step, error, .. } => {
            (name, Outcome::Error { message: format!("not ready: failed at step {step}"), body: error.clone() })
        }
    };
    let seconds = match t {
        RunTarget::Ready { seconds, .. } => *seconds,
        RunTarget::Failed { .. } => 0.0,
    };
    (name.clone(), Case { classname: "agentsh-bench.readiness".into(), name: "readiness".into(), seconds, outcome })
}

/// The suites of one run, per target in run.json's order (then any other target its files name).
fn suites(d: &Digest, out: &mut Vec<(String, Suite)>) {
    let version = d.agentsh_version();
    let run = d.run_id();
    let mut by_target: BTreeMap<String, usize> = BTreeMap::new();
    let mut slot = |target: &str, out: &mut Vec<(String, Suite)>| -> usize {
        *by_target.entry(target.to_string()).or_insert_with(|| {
            out.push((target.to_string(), Suite { version: version.clone(), run: run.clone(), cases: Vec::new() }));
            out.len() - 1
        })
    };
    for t in d.run.iter().flat_map(|r| &r.targets) {
        let (name, case) = readiness_case(t);
        let i = slot(&name, out);
        out[i].1.cases.push(case);
    }
    let mut execs: BTreeMap<(String, String), Vec<&Execution>> = BTreeMap::new();
    for e in &d.executions {
        execs.entry((e.test_id.clone(), e.target.clone())).or_default().push(e);
    }
    for r in &d.summary {
        let these = execs.get(&(r.test_id.to_string(), r.target.clone())).map_or(&[][..], Vec::as_slice);
        let i = slot(&r.target, out);
        out[i].1.cases.push(test_case(r, these));
    }
    for l in &d.latency {
        let i = slot(&l.target, out);
        out[i].1.cases.push(decision_case(d, l));
    }
}

/// The XML of one or more runs (the two sides of `--agentsh A --agentsh B` share one file: their
/// targets are apart).
pub fn render(runs: &[Digest]) -> String {
    let mut all = Vec::new();
    for d in runs {
        suites(d, &mut all);
    }
    let count = |cases: &[Case], f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let failures = |o: &Outcome| matches!(o, Outcome::Failure { .. });
    let errors = |o: &Outcome| matches!(o, Outcome::Error { .. });
    let skipped = |o: &Outcome| matches!(o, Outcome::Skipped { .. });
    let every: Vec<&Case> = all.iter().flat_map(|(_, s)| &s.cases).collect();
    let total = |f: fn(&Outcome) -> bool| every.iter().filter(|c| f(&c.outcome)).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"agentsh-bench\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        every.len(),
        total(failures),
        total(errors),
        total(skipped)
    );
    for (target, s) in &all {
        let seconds: f64 = s.cases.iter().map(|c| c.seconds).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{seconds:.3}\">",
            esc(target),
            s.cases.len(),
            count(&s.cases, failures),
            count(&s.cases, errors),
            count(&s.cases, skipped)
        );
        let _ = writeln!(
            x,
            "    <properties>\n      <property name=\"run\" value=\"{}\"/>\n      <property name=\"agentsh_version\" value=\"{}\"/>\n    </properties>",
            esc(&s.run),
            esc(&s.version)
        );
        for c in &s.cases {
            c.xml(&mut x);
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Reads each run folder and writes their JUnit XML to `file`.
pub fn write(run_folders: &[&Path], file: &Path) -> Result<()> {
    let runs = run_folders.iter().map(|d| Digest::load(d)).collect::<Result<Vec<_>>>()?;
    std::fs::write(file, render(&runs)).with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
        n.attribute(name).unwrap_or_else(|| panic!("no {name} on {n:?}"))
    }

    #[test]
    fn the_fixture_run_as_junit_parses_with_its_counts() {
        let dir = tempfile::tempdir().unwrap();
        crate::analyze::digest::tests::fixture(dir.path());
        let file = dir.path().join("junit.xml");
        write(&[dir.path()], &file).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
        let names: Vec<&str> = suites.iter().map(|s| attr(*s, "name")).collect();
        assert_eq!(names, ["t-0", "t-1", "t-2"], "one suite per target, in run.json's order");
        let case = |suite: usize, name: &str| {
            suites[suite]
                .children()
                .find(|c| c.has_tag_name("testcase") && c.attribute("name") == Some(name))
                .unwrap_or_else(|| panic!("no testcase {name} in {}", names[suite]))
        };
        let outcome =
            |c: roxmltree::Node| c.children().find(|n| n.is_element()).map(|n| n.tag_name().name().to_string());
        // t-1: test 14 violated there, with its evidence quoted as it was written (escaped in the
        // file, read back by the parser).
        let t14 = case(1, "14 sudo <blocked> & \"quoted\"");
        assert_eq!(attr(t14, "classname"), "agentsh-bench.shim");
        let failure = t14.children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(attr(failure, "type"), "violated");
        assert!(attr(failure, "message").contains("root printed <uid=0>"));
        assert!(
            failure.text().unwrap().contains("iteration 2: violated: root printed <uid=0>\nd"),
            "{:?}",
            failure.text()
        );
        assert_eq!(outcome(case(0, "14 sudo <blocked> & \"quoted\"")), None, "held on t-0");
        assert_eq!(outcome(case(0, "20 evil.com refused")).as_deref(), Some("failure"));
        assert_eq!(attr(case(0, "20 evil.com refused").first_element_child().unwrap(), "type"), "flaky");
        assert_eq!(outcome(case(0, "30 landlock")).as_deref(), Some("error"));
        assert_eq!(outcome(case(0, "48 cgroups")).as_deref(), Some("skipped"));
        assert_eq!(outcome(case(1, "integrity target file system intact")).as_deref(), Some("failure"));
        assert_eq!(attr(case(1, "integrity target file system intact"), "classname"), "agentsh-bench.integrity");
        // Decisions: git wrong on t-1 with the driver's sample as the body.
        let git = case(1, "decision:git");
        let f = git.first_element_child().unwrap();
        assert_eq!((f.tag_name().name(), attr(f, "type")), ("failure", "wrong-decision"));
        assert_eq!(f.text(), Some("wrong: refused <EACCES> & more"));
        assert_eq!(outcome(case(0, "decision:git")), None);
        assert_eq!(outcome(case(2, "readiness")).as_deref(), Some("error"));
        // Counts: t-0 has readiness, 1, 14, 17, 20, 30, 48, integrity, 2 decisions = 10 cases;
        // failures 17 and 20, error 30, skipped 48.
        let t0 = suites[0];
        assert_eq!(
            [attr(t0, "tests"), attr(t0, "failures"), attr(t0, "errors"), attr(t0, "skipped")],
            ["10", "2", "1", "1"]
        );
        let t1 = suites[1];
        assert_eq!([attr(t1, "tests"), attr(t1, "failures"), attr(t1, "errors")], ["6", "3", "0"]);
        let cases = root.descendants().filter(|n| n.has_tag_name("testcase")).count();
        assert_eq!(attr(root, "tests"), cases.to_string());
        assert_eq!(attr(root, "failures"), "5");
        assert_eq!(attr(root, "errors"), "2");
        let props: Vec<(&str, &str)> = t0
            .descendants()
            .filter(|n| n.has_tag_name("property"))
            .map(|p| (attr(p, "name"), attr(p, "value")))
            .collect();
        assert_eq!(props, [("run", "20261201t020000-ab12"), ("agentsh_version", "0.16.9")]);
    }

    #[test]
    fn control_characters_and_markup_cannot_break_the_document() {
        let nasty = "a\u{1b}[31mred\u{0} </failure><x a='1'> & \"q\"\nnext\tline";
        let xml = format!("<r a=\"{}\">{}</r>", esc(nasty), esc_text(nasty));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let r = doc.root_element();
        let expected = "a\\u{1b}[31mred\\u{0} </failure><x a='1'> & \"q\"\nnext\tline";
        assert_eq!(r.attribute("a"), Some(expected));
        assert_eq!(r.text(), Some(expected));
    }

    #[test]
    fn categories_become_classname_parts() {
        assert_eq!(slug("Server & Configuration"), "server-configuration");
        assert_eq!(slug("shim"), "shim");
        assert_eq!(slug(" -- "), "suite");
    }

    #[test]
    fn an_empty_folder_gives_an_empty_but_valid_document() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::load(dir.path()).unwrap();
        let xml = render(&[d]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("tests"), Some("0"));
    }
}

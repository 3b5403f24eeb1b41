//! What each agentsh version really gives, as data: `scenarios/expectations/v<version>.toml`
//! lists every test whose verdict on that version is not `held`, each with the reason (agentsh's
//! behaviour, the environment, or a test that cannot be decided), found on real targets. A run
//! compares its verdicts against the file of its version, so a change in agentsh (or in the
//! harness) shows as a difference with the reason it replaces, and a reader of a non-held verdict
//! finds why without rerunning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::verdict::Verdict;
use crate::exit::usage;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub id: u32,
    pub verdict: Verdict,
    pub reason: String,
    /// Held in some executions and `verdict` in others (agentsh behaves so only sometimes):
    /// either is what this version gives.
    #[serde(default)]
    pub flaky: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: String,
    #[serde(default)]
    test: Vec<toml::Spanned<Expected>>,
}

pub fn dir() -> PathBuf {
    crate::paths::scenarios_dir().join("expectations")
}

/// The expectations of `version` (`0.16.9`), or `None` when no file names it. Refused, naming
/// file and line: an unknown test id, a held entry (held is the default), an empty reason, an id
/// listed twice.
pub fn load(dir: &Path, version: &str, known_ids: &[u32]) -> Result<Option<BTreeMap<u32, Expected>>> {
    let path = dir.join(format!("v{}.toml", version.trim_start_matches('v')));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(usage(format!("{}: {e}", path.display()))),
    };
    let f: File = toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    if f.version.trim_start_matches('v') != version.trim_start_matches('v') {
        return Err(usage(format!("{}: says version {} but is the file of {version}", path.display(), f.version)));
    }
    let mut out = BTreeMap::new();
    for s in f.test {
        let line = crate::text::line_of(&text, s.span().start);
        let e = s.into_inner();
        let at = format!("{}:{line}: test {}", path.display(), e.id);
        if !known_ids.contains(&e.id) {
            return Err(usage(format!("{at}: no such test in the suite")));
        }
        if e.verdict == Verdict::Held {
            return Err(usage(format!(
                "{at}: held is what every test not listed is expected to give; list only the others"
            )));
        }
        if e.reason.trim().is_empty() {
            return Err(usage(format!("{at}: a verdict other than held needs its reason")));
        }
        if out.insert(e.id, e).is_some() {
            return Err(usage(format!("{at}: listed twice")));
        }
    }
    Ok(Some(out))
}

/// One test whose verdict differs from its version's expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub test_id: u32,
    pub expected: Verdict,
    pub got: Verdict,
    /// The reason the file gives for the expected verdict (empty when held was expected).
    pub reason: String,
}

/// Compares the verdicts a version gave (one per execution: test id, verdict) with its
/// expectations. A test differs when any execution gave something other than the expected verdict.
pub fn compare(expected: &BTreeMap<u32, Expected>, got: &[(u32, Verdict)]) -> Vec<Difference> {
    let mut seen: BTreeMap<u32, Difference> = BTreeMap::new();
    for &(id, v) in got {
        let (want, reason, flaky) =
            expected.get(&id).map_or((Verdict::Held, String::new(), false), |e| (e.verdict, e.reason.clone(), e.flaky));
        if v != want && !(flaky && v == Verdict::Held) {
            seen.entry(id).or_insert(Difference { test_id: id, expected: want, got: v, reason });
        }
    }
    seen.into_values().collect()
}

/// Writes the comparison as `expectations.csv`: one row per version and differing test.
pub fn write_csv(path: &Path, diffs: &[(String, Difference)]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["agentsh_version", "test_id", "expected", "got", "expected_because"])?;
    let name = |v: Verdict| serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    for (version, d) in diffs {
        w.write_record([version.as_str(), &d.test_id.to_string(), &name(d.expected), &name(d.got), &d.reason])?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("v1.2.3.toml"), text).unwrap();
        d
    }

    #[test]
    fn shipped_files_load_for_both_versions() {
        let ids: Vec<u32> = (1..=90).collect();
        for v in ["0.16.9", "0.20.1"] {
            let e = load(&dir(), v, &ids).unwrap_or_else(|e| panic!("{e:#}"));
            let e = e.unwrap_or_else(|| panic!("no expectations for {v}"));
            assert!(e.values().all(|x| !x.reason.trim().is_empty()));
        }
        assert!(load(&dir(), "9.9.9", &ids).unwrap().is_none());
    }

    #[test]
    fn bad_files_are_refused_with_file_and_line() {
        let ids = [1, 2];
        let d = write("version = \"1.2.3\"\n\n[[test]]\nid = 7\nverdict = \"violated\"\nreason = \"x\"\n");
        let e = format!("{:#}", load(d.path(), "1.2.3", &ids).unwrap_err());
        assert!(e.contains("v1.2.3.toml:3: test 7: no such test"), "{e}");
        let d = write("version = \"1.2.3\"\n[[test]]\nid = 1\nverdict = \"held\"\nreason = \"x\"\n");
        assert!(format!("{:#}", load(d.path(), "1.2.3", &ids).unwrap_err()).contains("list only the others"));
        let d = write("version = \"1.2.3\"\n[[test]]\nid = 1\nverdict = \"violated\"\nreason = \" \"\n");
        assert!(format!("{:#}", load(d.path(), "1.2.3", &ids).unwrap_err()).contains("needs its reason"));
        let d = write("version = \"1.2.3\"\n[[test]]\nid = 1\nverdict = \"broken\"\nreason = \"x\"\n");
        assert!(format!("{:#}", load(d.path(), "1.2.3", &ids).unwrap_err()).contains("v1.2.3.toml"));
    }

    #[test]
    fn differences_are_tests_whose_verdict_moved() {
        let ids = [1, 2, 3];
        let d = write("version = \"1.2.3\"\n[[test]]\nid = 2\nverdict = \"violated\"\nreason = \"approvals off\"\n");
        let e = load(d.path(), "1.2.3", &ids).unwrap().unwrap();
        let got = [(1, Verdict::Held), (2, Verdict::Violated), (3, Verdict::Held)];
        assert!(compare(&e, &got).is_empty());
        let got = [(1, Verdict::Inconclusive), (2, Verdict::Held), (3, Verdict::Held), (3, Verdict::Violated)];
        let diffs = compare(&e, &got);
        assert_eq!(
            diffs.iter().map(|d| (d.test_id, d.got)).collect::<Vec<_>>(),
            [(1, Verdict::Inconclusive), (2, Verdict::Held), (3, Verdict::Violated)]
        );
        assert_eq!(diffs[1].reason, "approvals off");
        let d = write(
            "version = \"1.2.3\"\n[[test]]\nid = 2\nverdict = \"inconclusive\"\nflaky = true\nreason = \"sometimes EACCES\"\n",
        );
        let e = load(d.path(), "1.2.3", &ids).unwrap().unwrap();
        assert!(
            compare(&e, &[(2, Verdict::Held), (2, Verdict::Inconclusive)]).is_empty(),
            "a flaky test may give either"
        );
        assert_eq!(compare(&e, &[(2, Verdict::Violated)]).len(), 1, "but not a third verdict");
    }
}

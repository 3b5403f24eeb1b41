//! The security suite as data: `scenarios/suite/*.toml` (one file per category), validated on
//! load with errors that name the file and line; the rule that turns what a test observed into a
//! verdict ([`verdict`]); running it on targets ([`run`]); the targets' file systems before and
//! after ([`integrity`]).

pub mod expectations;
pub mod integrity;
pub mod records;
pub mod run;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::exit::usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A command over SSH through the login shell: the shim, as an agent's commands arrive.
    Shim,
    /// An exec request to the agentsh session API.
    Api,
    /// An `agentsh` CLI command on the observation channel.
    Cli,
    /// The observation channel: facts about the target that agentsh does not govern.
    Observe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Enforced,
    Allowed,
    Present,
    Decides,
    Informational,
}

/// How an enforcement shows, which decides the evidence a `held` verdict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Refused before anything ran: exit 126, `denied by policy (rule=R)`.
    Precheck,
    /// Stopped while running (ptrace, seccomp, proxy): `blocked by policy (rule=R)`.
    Runtime,
    /// A file rule (named) or Landlock (EACCES, no event); the file must be absent afterwards.
    File,
}

/// The forbidden thing, checked after the run; exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    pub stdout_line: Option<String>,
    pub stdout_contains: Option<String>,
    pub stderr_contains: Option<String>,
    pub exit_zero: Option<bool>,
    pub file_exists: Option<String>,
    pub path_missing: Option<String>,
    pub fixture_hit: Option<String>,
    /// agentsh's own record shows it allowed the action (for addresses nothing may answer:
    /// the request cannot be seen arriving, but agentsh's decision to let it out can).
    pub record_allows: Option<bool>,
}

impl Violation {
    fn count(&self) -> usize {
        [
            self.stdout_line.is_some(),
            self.stdout_contains.is_some(),
            self.stderr_contains.is_some(),
            self.exit_zero == Some(true),
            self.file_exists.is_some(),
            self.path_missing.is_some(),
            self.fixture_hit.is_some(),
            self.record_allows == Some(true),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCheck {
    pub path: String,
    pub equals: toml::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub effective: Option<String>,
    pub raw: Option<String>,
    pub rule: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub id: u32,
    pub name: String,
    pub channel: Channel,
    pub command: Option<String>,
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub expect: Expect,
    pub rule: Option<String>,
    #[serde(default)]
    pub rules: Vec<String>,
    pub how: Option<How>,
    pub violated: Option<Violation>,
    pub output: Option<String>,
    pub json: Option<JsonCheck>,
    pub decision: Option<Decision>,
    pub control: Option<String>,
    /// Why an enforced test has no positive control (e.g. no route to the address at all).
    pub no_control: Option<String>,
    #[serde(default)]
    pub setup: Vec<String>,
    #[serde(default)]
    pub cleanup: Vec<String>,
    #[serde(default)]
    pub needs: Vec<String>,
    pub note: Option<String>,
    pub confirm: Option<String>,
    /// Where it was loaded from, for messages and reports.
    #[serde(skip)]
    pub category: String,
    #[serde(skip)]
    pub category_number: u32,
    /// In a chain (an `ordered` file), the test before this one: what it leaves behind is this
    /// test's precondition.
    #[serde(skip)]
    pub after: Option<u32>,
    #[serde(skip)]
    pub ordered: bool,
}

impl Test {
    /// The rules any of which a held verdict may name.
    pub fn accepted_rules(&self) -> Vec<&str> {
        self.rule.iter().map(String::as_str).chain(self.rules.iter().map(String::as_str)).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    category: String,
    number: u32,
    /// The tests form a chain (each needs the one before): `--shuffle` keeps their order.
    #[serde(default)]
    ordered: bool,
    test: Vec<toml::Spanned<Test>>,
}

/// Placeholders the runner fills per execution.
pub const PLACEHOLDERS: &[&str] = &["nonce", "version", "config_sha", "policy_sha", "workspace_mount", "proxy_url"];
/// Environment features a test may need (a provider's environment file lists what it lacks).
pub const FEATURES: &[&str] = &["fuse_workspace", "cgroups_v2"];

pub struct Suite {
    pub tests: Vec<Test>,
}

pub fn suite_dir() -> PathBuf {
    crate::paths::scenarios_dir().join("suite")
}

/// Loads every `*.toml` in `dir`, in file-name order, and validates each record and the whole.
pub fn load(dir: &Path) -> Result<Suite> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("reading the suite in {}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut tests = Vec::new();
    let mut seen_ids: BTreeMap<u32, String> = BTreeMap::new();
    let mut seen_categories = BTreeSet::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        let f: File = toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
        if !seen_categories.insert(f.number) {
            return Err(usage(format!("{}: category number {} used twice", path.display(), f.number)));
        }
        let mut previous: Option<u32> = None;
        for spanned in f.test {
            let line = crate::text::line_of(&text, spanned.span().start);
            let mut t = spanned.into_inner();
            let at = format!("{}:{line}: test {}", path.display(), t.id);
            validate(&t).map_err(|msg| usage(format!("{at}: {msg}")))?;
            if let Some(prev) = seen_ids.insert(t.id, at.clone()) {
                return Err(usage(format!("{at}: id already used at {prev}")));
            }
            t.category = f.category.clone();
            t.category_number = f.number;
            t.ordered = f.ordered;
            if f.ordered {
                t.after = previous;
                previous = Some(t.id);
            }
            tests.push(t);
        }
    }
    tests.sort_by_key(|t| t.id);
    // A fixture path another test also requests would read as a bypass whenever that test runs
    // first (test 49's allowed request once made 51 and 53 "violated": all three asked for /NONCE).
    for t in &tests {
        let Some(hit) = t.violated.as_ref().and_then(|v| v.fixture_hit.as_deref()) else { continue };
        if let Some(other) = tests.iter().find(|o| o.id != t.id && all_text(o).iter().any(|s| s.contains(hit))) {
            return Err(usage(format!(
                "{}: test {}: fixture_hit {hit:?} also appears in test {}; give each test a path of its own",
                dir.display(),
                t.id,
                other.id
            )));
        }
    }
    Ok(Suite { tests })
}

/// The rules every record obeys; each one exists so that a verdict can be trusted.
fn validate(t: &Test) -> std::result::Result<(), String> {
    check_channel(t)?;
    let v = t.violated.as_ref().map_or(0, Violation::count);
    if v > 1 {
        return Err("violated takes exactly one condition".into());
    }
    check_expectation(t, v)?;
    check_violation_support(t)?;
    check_names(t)
}

/// What a test runs is in the form its channel takes: argv (and env, cwd) for the API, a shell
/// command line for the others.
fn check_channel(t: &Test) -> std::result::Result<(), String> {
    match (t.channel, &t.command, &t.argv) {
        (Channel::Api, None, Some(argv)) if !argv.is_empty() && !argv[0].is_empty() => {}
        (Channel::Api, _, _) => return Err("an api test takes argv (a program and its arguments), not command".into()),
        (_, Some(c), None) if !c.trim().is_empty() => {}
        (_, _, _) => return Err("a shim, cli or observe test takes command (a shell command line), not argv".into()),
    }
    if t.channel != Channel::Api && (!t.env.is_empty() || t.cwd.is_some()) {
        return Err("env and cwd go with the api channel".into());
    }
    Ok(())
}

/// Each kind of expectation carries the evidence its verdict needs ([`verdict::judge`]), and
/// only enforced and decides tests name rules. `v` is how many violation conditions it has.
fn check_expectation(t: &Test, v: usize) -> std::result::Result<(), String> {
    match t.expect {
        Expect::Enforced => check_enforced(t, v)?,
        Expect::Allowed => {
            if t.output.as_deref().is_none_or(str::is_empty) {
                return Err("an allowed test asserts its output, not only the exit code".into());
            }
        }
        Expect::Present => {
            if t.output.as_deref().is_none_or(str::is_empty) && t.json.is_none() {
                return Err("a present test checks output or json".into());
            }
        }
        Expect::Decides => {
            if t.decision.is_none() || t.channel != Channel::Cli {
                return Err("a decides test is a cli policy query with a decision".into());
            }
        }
        Expect::Informational => {
            if t.note.is_none() {
                return Err("an informational test says in note why it cannot be a verdict".into());
            }
        }
    }
    if t.expect != Expect::Enforced
        && (t.how.is_some() || t.rule.is_some() || !t.rules.is_empty())
        && t.expect != Expect::Decides
    {
        return Err("rule and how go with expect = \"enforced\"".into());
    }
    Ok(())
}

/// An enforced test can be held (a rule to name, how it shows), can fail (a violation to look
/// for), and has a control so that a refusal is not mistaken for a broken action.
fn check_enforced(t: &Test, v: usize) -> std::result::Result<(), String> {
    if t.accepted_rules().is_empty() {
        return Err("an enforced test names the rule that must decide it (rule or rules)".into());
    }
    if t.how.is_none() {
        return Err("an enforced test says how the enforcement shows (how = precheck | runtime | file)".into());
    }
    if v == 0 {
        return Err(
            "an enforced test says what would show the protection failed (violated), or it could never fail".into()
        );
    }
    if t.control.is_none() && t.no_control.is_none() {
        return Err("an enforced test has a positive control (control: the action works ungoverned) or says why not (no_control)".into());
    }
    Ok(())
}

/// A violation check that needs help to mean something: a fixture shown to answer, a file
/// removed afterwards so that the next run does not see it.
fn check_violation_support(t: &Test) -> std::result::Result<(), String> {
    if let Some(viol) = &t.violated {
        if viol.fixture_hit.is_some() && t.control.is_none() {
            return Err("a fixture_hit test has a positive control (control) showing the fixture answers".into());
        }
        if viol.file_exists.is_some() && t.cleanup.is_empty() {
            return Err("a test that may leave a file behind removes it (cleanup)".into());
        }
    }
    Ok(())
}

/// The needs and placeholders a test names are ones the runner knows ([`FEATURES`],
/// [`PLACEHOLDERS`]): a typo would otherwise skip the test or run it with the text unfilled.
fn check_names(t: &Test) -> std::result::Result<(), String> {
    for need in &t.needs {
        if !FEATURES.contains(&need.as_str()) {
            return Err(format!("unknown need {need:?} (known: {})", FEATURES.join(", ")));
        }
    }
    for text in all_text(t) {
        for p in placeholders(text) {
            if !PLACEHOLDERS.contains(&p) {
                return Err(format!("unknown placeholder {{{p}}} (known: {})", PLACEHOLDERS.join(", ")));
            }
        }
    }
    Ok(())
}

pub(crate) fn all_text(t: &Test) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    v.extend(t.command.as_deref());
    v.extend(t.argv.iter().flatten().map(String::as_str));
    v.extend(t.env.values().map(String::as_str));
    v.extend(t.output.as_deref());
    v.extend(t.control.as_deref());
    v.extend(t.setup.iter().map(String::as_str));
    v.extend(t.cleanup.iter().map(String::as_str));
    if let Some(viol) = &t.violated {
        for s in [
            &viol.stdout_line,
            &viol.stdout_contains,
            &viol.stderr_contains,
            &viol.file_exists,
            &viol.path_missing,
            &viol.fixture_hit,
        ]
        .into_iter()
        .flatten()
        {
            v.push(s);
        }
    }
    v
}

/// `{name}` spans whose name is lowercase letters and underscores (so awk's `{print $2}` and
/// shell braces are left alone).
pub fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    out.push(name);
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

impl Suite {
    /// The order of one iteration: as loaded, or with `--shuffle SEED` the categories shuffled and
    /// the tests inside each category too, except categories whose tests form a chain. The same
    /// seed and iteration give the same order, so a failure can be replayed.
    pub fn order(&self, shuffle: Option<u64>, iteration: u32) -> Vec<&Test> {
        let Some(seed) = shuffle else { return self.tests.iter().collect() };
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ (u64::from(iteration) << 32));
        let mut cats: Vec<Vec<&Test>> = Vec::new();
        for t in &self.tests {
            match cats.last_mut() {
                Some(c) if c[0].category_number == t.category_number => c.push(t),
                _ => cats.push(vec![t]),
            }
        }
        cats.shuffle(&mut rng);
        for c in cats.iter_mut().filter(|c| !c[0].ordered) {
            c.shuffle(&mut rng);
        }
        cats.into_iter().flatten().collect()
    }
}

/// Fills placeholders; an unknown or unfilled one is left as it is (validation rules it out).
pub fn fill(s: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// What a provider's targets lack: `scenarios/environments/<provider>.toml`.
pub fn environment_gaps(provider: &str) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct Gap {
        reason: String,
    }
    #[derive(Deserialize)]
    struct Env {
        #[serde(default)]
        lacks: BTreeMap<String, Gap>,
    }
    let path = crate::paths::scenarios_dir().join("environments").join(format!("{provider}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let env: Env = toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    for k in env.lacks.keys() {
        if !FEATURES.contains(&k.as_str()) {
            return Err(usage(format!("{}: unknown feature {k:?} (known: {})", path.display(), FEATURES.join(", "))));
        }
    }
    Ok(env.lacks.into_iter().map(|(k, g)| (k, g.reason)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_suite_has_all_90_tests_in_13_categories() {
        let s = load(&suite_dir()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.tests.iter().map(|t| t.id).collect::<Vec<_>>(), (1..=90).collect::<Vec<_>>());
        let cats: BTreeSet<u32> = s.tests.iter().map(|t| t.category_number).collect();
        assert_eq!(cats, (1..=13).collect());
        // Per-category counts of the original TypeScript suite's 90 tests.
        let per: Vec<usize> = (1..=13).map(|c| s.tests.iter().filter(|t| t.category_number == c).count()).collect();
        assert_eq!(per, [2, 6, 4, 11, 10, 5, 2, 8, 5, 3, 17, 10, 7]);
        // The seed's vacuous secret reads now plant their secret first.
        for id in [54, 71, 72] {
            let t = &s.tests[id as usize - 1];
            assert!(!t.setup.is_empty() || !t.env.is_empty(), "test {id} plants nothing");
        }
        // Every expectation was checked on a real target: no `confirm` marker is left.
        let unconfirmed: Vec<u32> = s.tests.iter().filter(|t| t.confirm.is_some()).map(|t| t.id).collect();
        assert!(unconfirmed.is_empty(), "unconfirmed: {unconfirmed:?}");
        // No enforced test can pass without naming its rule, and every one can fail.
        for t in s.tests.iter().filter(|t| t.expect == Expect::Enforced) {
            assert!(!t.accepted_rules().is_empty() && t.violated.is_some(), "test {}", t.id);
        }
    }

    #[test]
    fn a_chain_links_each_test_to_the_one_before() {
        let s = load(&suite_dir()).unwrap();
        let after = |id: u32| s.tests.iter().find(|t| t.id == id).and_then(|t| t.after);
        assert_eq!((after(84), after(85), after(90)), (None, Some(84), Some(89)));
        assert!(s.tests.iter().filter(|t| !t.ordered).all(|t| t.after.is_none()));
    }

    #[test]
    fn shuffle_is_seeded_and_keeps_chains() {
        let s = load(&suite_dir()).unwrap();
        let a: Vec<u32> = s.order(Some(7), 1).iter().map(|t| t.id).collect();
        let b: Vec<u32> = s.order(Some(7), 1).iter().map(|t| t.id).collect();
        let c: Vec<u32> = s.order(Some(7), 2).iter().map(|t| t.id).collect();
        assert_eq!(a, b, "same seed and iteration, same order");
        assert_ne!(a, c, "another iteration, another order");
        assert_ne!(a, (1..=90).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=90).collect::<Vec<_>>(), "every test once");
        let chain: Vec<u32> = a.iter().copied().filter(|id| (84..=90).contains(id)).collect();
        assert_eq!(chain, [84, 85, 86, 87, 88, 89, 90], "the soft-delete chain keeps its order");
        assert_eq!(s.order(None, 1).iter().map(|t| t.id).collect::<Vec<_>>(), (1..=90).collect::<Vec<_>>());
    }

    #[test]
    fn environment_files_load() {
        let local = environment_gaps("local").unwrap();
        assert!(local.contains_key("cgroups_v2"));
        assert!(environment_gaps("exe").unwrap().is_empty());
    }

    fn one(record: &str) -> std::result::Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.toml"), format!("category = \"c\"\nnumber = 1\n\n[[test]]\n{record}"))
            .unwrap();
        load(dir.path()).map(|_| ()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn records_that_could_not_fail_are_refused_with_file_and_line() {
        let base = "id = 1\nname = \"n\"\nchannel = \"shim\"\ncommand = \"sudo whoami\"\nexpect = \"enforced\"\nrule = \"r\"\nhow = \"precheck\"\ncontrol = \"sudo -n whoami\"\n";
        assert!(one(&format!("{base}violated = {{ stdout_line = \"root\" }}\n")).is_ok());
        let e = one(&format!(
            "{}violated = {{ stdout_line = \"root\" }}\n",
            base.replace("control = \"sudo -n whoami\"\n", "")
        ))
        .unwrap_err();
        assert!(e.contains("positive control"), "{e}");
        let e = one(base).unwrap_err();
        assert!(e.contains("x.toml:4: test 1") && e.contains("could never fail"), "{e}");
        let e =
            one("id = 2\nname = \"n\"\nchannel = \"shim\"\ncommand = \"echo hi\"\nexpect = \"allowed\"\n").unwrap_err();
        assert!(e.contains("asserts its output"), "{e}");
        let e = one(
            "id = 3\nname = \"n\"\nchannel = \"api\"\ncommand = \"echo hi\"\nexpect = \"allowed\"\noutput = \"hi\"\n",
        )
        .unwrap_err();
        assert!(e.contains("takes argv"), "{e}");
        let no_control =
            base.replace("id = 1", "id = 4").replace("control = \"sudo -n whoami\"\n", "no_control = \"x\"\n");
        let e = one(&format!("{no_control}violated = {{ fixture_hit = \"{{nonce}}\" }}\n")).unwrap_err();
        assert!(e.contains("fixture_hit test has a positive control"), "{e}");
        let e = one("id = 5\nname = \"n\"\nchannel = \"shim\"\ncommand = \"echo {noncee}\"\nexpect = \"allowed\"\noutput = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown placeholder {noncee}"), "{e}");
    }

    #[test]
    fn a_fixture_path_another_test_requests_is_refused() {
        let enforced = "name = \"n\"\nchannel = \"shim\"\nexpect = \"enforced\"\nrule = \"r\"\nhow = \"runtime\"\ncontrol = \"curl http://evil.com/control-{nonce}\"\n";
        let allowed = "[[test]]\nid = 2\nname = \"a\"\nchannel = \"shim\"\ncommand = \"curl https://registry.npm.test/{nonce}\"\nexpect = \"allowed\"\noutput = \"x\"\n";
        let shared = format!(
            "id = 1\n{enforced}command = \"curl http://evil.com/{{nonce}}\"\nviolated = {{ fixture_hit = \"/{{nonce}}\" }}\n\n{allowed}"
        );
        let e = one(&shared).unwrap_err();
        assert!(e.contains("also appears in test 2"), "{e}");
        let own = format!(
            "id = 1\n{enforced}command = \"curl http://evil.com/t1-{{nonce}}\"\nviolated = {{ fixture_hit = \"/t1-{{nonce}}\" }}\n\n{allowed}"
        );
        assert!(one(&own).is_ok(), "{:?}", one(&own));
    }

    #[test]
    fn placeholders_skip_awk_and_shell_braces() {
        assert_eq!(placeholders("awk '$3 ~ /fuse/ {print $2}' x-{nonce} ${HOME} {version}"), ["nonce", "version"]);
        let mut v = BTreeMap::new();
        v.insert("nonce", "abc".to_string());
        assert_eq!(fill("f-{nonce}-{nonce} {print $2}", &v), "f-abc-abc {print $2}");
    }
}

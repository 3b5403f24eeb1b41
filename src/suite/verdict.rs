//! From what a test observed to a verdict. `held` needs the decision proven (the expected rule
//! named, exit 126 for a precheck, the output of an allowed action); `violated` needs the
//! forbidden thing seen (root printed, the file there, the fixture reached, the secret printed);
//! everything else is `inconclusive`, with the reason. A pure function, so every branch is tested
//! against the output formats agentsh v0.16.9 and v0.20.1 were seen to give (docs/findings.md).

use std::collections::BTreeMap;

use super::records::Record;
use super::{Expect, How, Test, Violation, fill};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Held,
    Violated,
    Inconclusive,
    SkippedEnv,
    Informational,
}

impl Verdict {
    /// The word tests.csv, summary.csv and the charts use (the same as serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Violated => "violated",
            Verdict::Inconclusive => "inconclusive",
            Verdict::SkippedEnv => "skipped-env",
            Verdict::Informational => "informational",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one execution of a test produced.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Rules agentsh named for this execution: from the exec response (`guidance.policy_rule`,
    /// `events.blocked_operations[].policy.rule`); rules in the CLI's stderr are read here too.
    pub rules: Vec<String>,
    /// The after-run check that needs the target (file_exists, path_missing, fixture_hit):
    /// `Some(true)` when the forbidden thing happened, `None` when it was not checked.
    pub target_check: Option<bool>,
    /// The positive control: `Some(false)` when it failed (the action does not work even when
    /// agentsh does not govern it, so a refusal proves nothing).
    pub control_ok: Option<bool>,
    /// The decisions agentsh logged in its event store while the test ran that concern what the
    /// test did ([`super::records`]); empty when not read.
    pub records: Vec<Record>,
    /// What the after-run check saw (the fixture's log line for the request).
    pub target_detail: String,
}

/// `rule=NAME)` in agentsh's messages: `command denied by policy (rule=R)`,
/// `blocked by policy (rule=R)`.
pub fn rules_in(text: &str) -> Vec<String> {
    text.match_indices("rule=")
        .filter_map(|(i, _)| {
            let rest = &text[i + 5..];
            let end = rest.find([')', ' ', '\n', ',']).unwrap_or(rest.len());
            let r = &rest[..end];
            (!r.is_empty()).then(|| r.to_string())
        })
        .collect()
}

pub use crate::text::meaningful;

fn excerpt(s: &str) -> String {
    crate::text::excerpt(s, 160)
}

/// The verdict on one execution: settled early when the test cannot or need not be judged, then
/// by the forbidden thing if it was seen, else by the evidence its kind of expectation needs.
pub fn judge(
    t: &Test,
    o: &Observed,
    values: &BTreeMap<&str, String>,
    gaps: &BTreeMap<String, String>,
) -> (Verdict, String) {
    if let Some(settled) = settled_before_evidence(t, o, gaps) {
        return settled;
    }
    // The forbidden thing first: if it happened, nothing else matters.
    if let Some(found) = t.violated.as_ref().and_then(|v| violation_seen(v, o, values)) {
        return found;
    }
    let mut named = o.rules.clone();
    named.extend(rules_in(&o.stderr));
    let exit = o.exit.map_or("none".to_string(), |c| c.to_string());
    match t.expect {
        Expect::Enforced => judge_enforced(t, o, &named, &exit),
        Expect::Allowed | Expect::Present => judge_output(t, o, &named, &exit, values),
        Expect::Decides => judge_decision(t, o),
        Expect::Informational => unreachable!("handled above"),
    }
}

/// Verdicts that need no evidence: a missing prerequisite, a test that only informs, or a failed
/// positive control (a refusal proves nothing when the action fails even ungoverned).
fn settled_before_evidence(t: &Test, o: &Observed, gaps: &BTreeMap<String, String>) -> Option<(Verdict, String)> {
    if let Some((need, why)) = t.needs.iter().find_map(|n| gaps.get(n).map(|w| (n, w))) {
        return Some((Verdict::SkippedEnv, format!("needs {need}: {why}")));
    }
    if t.expect == Expect::Informational {
        return Some((Verdict::Informational, t.note.clone().unwrap_or_default()));
    }
    if o.control_ok == Some(false) {
        return Some((
            Verdict::Inconclusive,
            "the positive control failed: the action does not work even ungoverned".into(),
        ));
    }
    None
}

/// `violated` when the forbidden thing was seen, `inconclusive` when the target check that would
/// show it did not run, `None` when it was looked for and not seen.
fn violation_seen(v: &Violation, o: &Observed, values: &BTreeMap<&str, String>) -> Option<(Verdict, String)> {
    let f = |s: &str| fill(s, values);
    let seen = if let Some(line) = &v.stdout_line {
        let line = f(line);
        o.stdout.lines().any(|l| l.trim() == line).then(|| format!("stdout has the line {line:?}"))
    } else if let Some(s) = &v.stdout_contains {
        let s = f(s);
        o.stdout.contains(&s).then(|| format!("stdout contains {s:?}"))
    } else if let Some(s) = &v.stderr_contains {
        let s = f(s);
        o.stderr.contains(&s).then(|| format!("stderr contains {s:?}"))
    } else if v.exit_zero == Some(true) {
        (o.exit == Some(0)).then(|| "it exited 0".to_string())
    } else if v.record_allows == Some(true) {
        o.records
            .iter()
            .find(|r| r.is_network() && r.effective == "allow")
            .map(|r| format!("agentsh recorded that it let it through: {}", r.summary()))
    } else {
        match o.target_check {
            Some(true) => Some(match (&v.file_exists, &v.path_missing, &v.fixture_hit) {
                (Some(p), _, _) => format!("{} exists", f(p)),
                (_, Some(p), _) => format!("{} is gone", f(p)),
                _ => format!("the request reached its fixture: {}", o.target_detail.trim()),
            }),
            Some(false) => None,
            None => return Some((Verdict::Inconclusive, "the violation check on the target did not run".into())),
        }
    };
    seen.map(|what| (Verdict::Violated, what))
}

/// `enforced`: held only when an accepted rule is shown deciding (and, for a precheck, the
/// exit says it was refused before it ran); otherwise say what was seen instead.
fn judge_enforced(t: &Test, o: &Observed, named: &[String], exit: &str) -> (Verdict, String) {
    let accepted = t.accepted_rules();
    let Some((r, source)) = accepted_rule_shown(o, named, &accepted) else {
        return not_shown_enforced(t, o, named, exit, &accepted);
    };
    // A precheck deny exits 126. A file rule on the binary (v0.16.9's
    // block-dangerous-binaries on /usr/bin/su) hides it instead: the shell exits 127,
    // and then agentsh's record is what proves the decision.
    let hidden = !source.is_empty() && matches!(o.exit, Some(c) if c != 0);
    match t.how {
        Some(How::Precheck) if o.exit != Some(126) && !hidden => {
            (Verdict::Inconclusive, format!("rule {r} named{source} but exit {exit}, a precheck deny exits 126"))
        }
        _ => (Verdict::Held, format!("rule {r}{source}, exit {exit}")),
    }
}

/// The accepted rule that decided, with where it was seen: the rule named in agentsh's answer,
/// else in its event store (v0.16.9 names no rule for a child exec it refuses under ptrace, nor
/// for a seccomp file denial). The second part is empty when the answer named it.
fn accepted_rule_shown(o: &Observed, named: &[String], accepted: &[&str]) -> Option<(String, String)> {
    let from_answer = named.iter().find(|r| accepted.contains(&r.as_str())).map(|r| (r.clone(), String::new()));
    let from_record = || {
        o.records
            .iter()
            .find(|r| r.denies() && accepted.contains(&r.rule.as_str()))
            .map(|r| (r.rule.clone(), format!(" (agentsh's record: {})", r.summary())))
    };
    from_answer.or_else(from_record)
}

/// `enforced` with no accepted rule shown: another rule decided, or Landlock refused (which
/// names no rule), or nothing shows a decision at all.
fn not_shown_enforced(t: &Test, o: &Observed, named: &[String], exit: &str, accepted: &[&str]) -> (Verdict, String) {
    if let Some(other) = named.first() {
        (Verdict::Inconclusive, format!("decided by rule {other}, expected {}", accepted.join(" or ")))
    } else if let Some(r) = o.records.iter().find(|r| r.denies()) {
        (
            Verdict::Inconclusive,
            format!("agentsh recorded a denial by another rule ({}), expected {}", r.summary(), accepted.join(" or ")),
        )
    } else if t.how == Some(How::File) && o.exit != Some(0) && o.stderr.contains("Permission denied") {
        // Landlock refuses with EACCES and reports no event (docs/findings.md 7); the
        // violation check above has shown the file is not there.
        (Verdict::Held, format!("EACCES with no rule event (Landlock), exit {exit}"))
    } else {
        (Verdict::Inconclusive, format!("no decision shown: exit {exit}; stderr: {}", excerpt(&o.stderr)))
    }
}

/// `allowed` and `present`: held when it exited 0 with the expected output (and JSON value);
/// otherwise whether it was refused, absent, or unclear.
fn judge_output(
    t: &Test,
    o: &Observed,
    named: &[String],
    exit: &str,
    values: &BTreeMap<&str, String>,
) -> (Verdict, String) {
    let want = t.output.as_deref().map(|s| fill(s, values)).unwrap_or_default();
    // A placeholder that came out empty (no session mount, no proxy) would make every
    // output "contain" it: a held verdict must never rest on an empty expectation.
    if t.output.as_deref().is_some_and(|o| !o.trim().is_empty()) && want.trim().is_empty() {
        return (
            Verdict::Inconclusive,
            format!("the expected output {:?} is empty on this target", t.output.as_deref().unwrap_or_default()),
        );
    }
    let json_ok = t.json.as_ref().map(|j| json_at(&o.stdout, &j.path) == toml_to_json(&j.equals));
    let ok = o.exit == Some(0) && o.stdout.contains(&want) && json_ok != Some(false);
    if ok { held_output(t, o, &want) } else { output_missing(t, o, named, exit, &want) }
}

/// The held verdict for `allowed`/`present`, quoting the JSON value checked or the output found.
fn held_output(t: &Test, o: &Observed, want: &str) -> (Verdict, String) {
    match &t.json {
        Some(j) => (
            Verdict::Held,
            format!("exit 0, {} = {}", j.path, json_at(&o.stdout, &j.path).map_or("?".into(), |v| v.to_string())),
        ),
        None => (Verdict::Held, format!("exit 0, output has {want:?}")),
    }
}

/// Why the expected output did not come: refused by a named or recorded rule (a violation of an
/// allowance), not present where it must be, or nothing to tell (inconclusive).
fn output_missing(t: &Test, o: &Observed, named: &[String], exit: &str, want: &str) -> (Verdict, String) {
    if let Some(r) = named.first() {
        (Verdict::Violated, format!("refused by rule {r} (exit {exit})"))
    } else if let (Some(r), true) = (o.records.iter().find(|r| r.denies()), o.exit != Some(0)) {
        (Verdict::Violated, format!("refused: agentsh recorded {} (exit {exit})", r.summary()))
    } else if t.expect == Expect::Present && o.exit.is_some_and(|c| c >= 0) {
        // Only a command that ended by itself can show something is not there: exit -1 is an
        // API exec ended by a signal with no output (agentsh's flake, scenarios/expectations/),
        // which shows nothing either way.
        let got = match &t.json {
            Some(j) => format!("{} = {:?}", j.path, json_at(&o.stdout, &j.path)),
            None => excerpt(&o.stdout),
        };
        (Verdict::Violated, format!("not present: exit {exit}, {got}"))
    } else {
        (
            Verdict::Inconclusive,
            format!(
                "exit {exit}, expected output {want:?}; stdout: {}; stderr: {}",
                excerpt(&o.stdout),
                excerpt(&o.stderr)
            ),
        )
    }
}

/// `decides`: the decision agentsh printed compared with the one expected; allowing what the
/// policy denies is a violation, any other mismatch is inconclusive.
fn judge_decision(t: &Test, o: &Observed) -> (Verdict, String) {
    let Some(d) = &t.decision else { return (Verdict::Inconclusive, "no decision to compare".into()) };
    let eff = json_at(&o.stdout, "decision");
    let raw = json_at(&o.stdout, "policy_decision");
    let rule = json_at(&o.stdout, "rule");
    let s = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.as_str().map(String::from));
    let matches = d.effective.as_ref().is_none_or(|e| s(&eff).as_ref() == Some(e))
        && d.raw.as_ref().is_none_or(|r| s(&raw).as_ref() == Some(r))
        && s(&rule).as_deref() == Some(d.rule.as_str());
    let got = format!("decision {:?}, policy_decision {:?}, rule {:?}", s(&eff), s(&raw), s(&rule));
    if matches {
        (Verdict::Held, got)
    } else if d.effective.as_deref() == Some("deny") && s(&eff).as_deref() == Some("allow") {
        (Verdict::Violated, format!("allowed where the policy denies: {got}"))
    } else {
        (Verdict::Inconclusive, got)
    }
}

/// The first JSON object in `text` (tools print log lines around it), then a dotted path in it.
fn json_at(text: &str, path: &str) -> Option<serde_json::Value> {
    let v = crate::text::first_json(text)?;
    path.split('.').try_fold(v, |v, k| v.get(k).cloned())
}

fn toml_to_json(v: &toml::Value) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{load, suite_dir};

    fn test(id: u32) -> Test {
        load(&suite_dir()).unwrap().tests.into_iter().find(|t| t.id == id).unwrap()
    }

    fn values() -> BTreeMap<&'static str, String> {
        [("nonce", "n1".to_string()), ("version", "0.16.9".to_string())].into_iter().collect()
    }

    fn judge_(id: u32, o: Observed) -> (Verdict, String) {
        judge(&test(id), &o, &values(), &BTreeMap::new())
    }

    const DENIED: &str = "agentsh: command denied by policy (rule=block-shell-escape)\n";

    #[test]
    fn a_precheck_deny_with_its_rule_and_126_holds() {
        let (v, why) = judge_(14, Observed { exit: Some(126), stderr: DENIED.into(), ..Default::default() });
        assert_eq!(v, Verdict::Held, "{why}");
        assert_eq!(why, "rule block-shell-escape, exit 126");
    }

    #[test]
    fn an_unprotected_target_is_violated_never_held() {
        // What `sudo whoami` does on a target without agentsh.
        let (v, why) = judge_(14, Observed { exit: Some(0), stdout: "root\n".into(), ..Default::default() });
        assert_eq!((v, why.as_str()), (Verdict::Violated, "stdout has the line \"root\""));
        // Root printed wins even if a rule is also named (a block that did not hold).
        let (v, _) = judge_(
            23,
            Observed { exit: Some(0), stdout: "root\n".into(), stderr: DENIED.into(), ..Default::default() },
        );
        assert_eq!(v, Verdict::Violated);
    }

    #[test]
    fn any_failure_is_not_a_pass() {
        // The seed passed these: sudo missing, a transport error, the wrong rule.
        let (v, why) = judge_(
            14,
            Observed { exit: Some(127), stderr: "bash: sudo: command not found".into(), ..Default::default() },
        );
        assert_eq!(v, Verdict::Inconclusive, "{why}");
        let (v, why) = judge_(
            14,
            Observed {
                exit: Some(126),
                stderr: "agentsh: command denied by policy (rule=shellc-opaque-script)".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            (v, why.as_str()),
            (
                Verdict::Inconclusive,
                "decided by rule shellc-opaque-script, expected block-shell-escape or block-dangerous-binaries"
            )
        );
        let (v, why) = judge_(14, Observed { exit: Some(1), stderr: DENIED.into(), ..Default::default() });
        assert!(v == Verdict::Inconclusive && why.contains("exits 126"), "{why}");
    }

    #[test]
    fn a_present_check_killed_by_a_signal_proves_nothing() {
        // Test 7 asks the session whether its workspace is FUSE; an API exec ended by a signal
        // (exit -1, no output) is no evidence that it is not.
        let o = Observed { exit: Some(-1), ..Default::default() };
        assert_eq!(judge_(7, o).0, Verdict::Inconclusive);
        let o = Observed { exit: Some(0), stdout: "overlayfs\n".into(), ..Default::default() };
        assert_eq!(judge_(7, o).0, Verdict::Violated, "a workspace that ran and is not FUSE is violated");
    }

    #[test]
    fn runtime_blocks_hold_on_the_rule_even_when_the_wrapper_exits_0() {
        // find exits 0 although its -exec child was refused (scenarios/suite/, test 76).
        let o = Observed { exit: Some(0), rules: vec!["block-shell-escape".into()], ..Default::default() };
        assert_eq!(judge_(76, o).0, Verdict::Held);
    }

    #[test]
    fn file_denials_need_the_file_absent() {
        let refused = Observed {
            exit: Some(1),
            stderr: "touch: cannot touch '/etc/shim-test-n1': Permission denied".into(),
            target_check: Some(false),
            ..Default::default()
        };
        let (v, why) = judge_(20, refused.clone());
        assert!(v == Verdict::Held && why.contains("Landlock"), "{why}");
        let (v, why) = judge_(20, Observed { target_check: Some(true), ..refused.clone() });
        assert_eq!((v, why.as_str()), (Verdict::Violated, "/etc/shim-test-n1 exists"));
        assert_eq!(judge_(20, Observed { target_check: None, ..refused }).0, Verdict::Inconclusive);
    }

    #[test]
    fn network_denials_need_the_fixture_untouched_and_a_working_control() {
        let blocked = Observed {
            exit: Some(56),
            rules: vec!["block-evil-domains".into()],
            target_check: Some(false),
            control_ok: Some(true),
            ..Default::default()
        };
        assert_eq!(judge_(22, blocked.clone()).0, Verdict::Held);
        assert_eq!(judge_(22, Observed { target_check: Some(true), ..blocked.clone() }).0, Verdict::Violated);
        assert_eq!(judge_(22, Observed { control_ok: Some(false), ..blocked.clone() }).0, Verdict::Inconclusive);
        // 10.0.0.1 unreachable with no rule named: not held.
        let (v, _) = judge_(52, Observed { exit: Some(7), ..Default::default() });
        assert_eq!(v, Verdict::Inconclusive);
    }

    #[test]
    fn allowed_actions_assert_output_and_a_refusal_is_violated() {
        assert_eq!(
            judge_(18, Observed { exit: Some(0), stdout: "shell-test-ok-n1\n".into(), ..Default::default() }).0,
            Verdict::Held
        );
        assert_eq!(
            judge_(18, Observed { exit: Some(0), stdout: "something else".into(), ..Default::default() }).0,
            Verdict::Inconclusive
        );
        let (v, why) = judge_(
            18,
            Observed {
                exit: Some(126),
                stderr: "agentsh: command denied by policy (rule=default-deny)".into(),
                ..Default::default()
            },
        );
        assert_eq!((v, why.as_str()), (Verdict::Violated, "refused by rule default-deny (exit 126)"));
        // A planted secret that comes through is violated although the control variable is there.
        let leaked = Observed {
            exit: Some(0),
            stdout: "AWS_SECRET_ACCESS_KEY=abench-secret-n1\nLANG=C.abench-n1\n".into(),
            ..Default::default()
        };
        assert_eq!(judge_(54, leaked).0, Verdict::Violated);
        let filtered = "AWS_SECRET_ACCESS_KEY=<unset>\nLANG=C.abench-n1\n";
        assert_eq!(
            judge_(54, Observed { exit: Some(0), stdout: filtered.into(), ..Default::default() }).0,
            Verdict::Held
        );
    }

    fn record(kind: &str, effective: &str, rule: &str, subject: &str) -> Record {
        Record {
            ts_ns: 0,
            kind: kind.into(),
            policy: effective.into(),
            effective: effective.into(),
            rule: rule.into(),
            subjects: vec![subject.into()],
        }
    }

    #[test]
    fn the_rule_may_come_from_agentshs_record() {
        // v0.16.9: `env sudo whoami` refused by ptrace with EACCES, no rule in the answer.
        let eacces =
            Observed { exit: Some(126), stderr: "env: 'sudo': Permission denied".into(), ..Default::default() };
        assert_eq!(judge_(23, eacces.clone()).0, Verdict::Inconclusive);
        let logged = Observed {
            records: vec![record("ptrace_execve", "deny", "block-shell-escape", "/usr/bin/sudo")],
            ..eacces.clone()
        };
        let (v, why) = judge_(23, logged);
        assert_eq!(v, Verdict::Held, "{why}");
        assert!(why.contains("agentsh's record: ptrace_execve deny rule=block-shell-escape"), "{why}");
        // A record of an allow, or of a denial by an unrelated rule, proves nothing.
        let allowed = Observed {
            records: vec![record("ptrace_execve", "allow", "block-shell-escape", "/usr/bin/sudo")],
            ..eacces.clone()
        };
        assert_eq!(judge_(23, allowed).0, Verdict::Inconclusive);
        let other = Observed {
            records: vec![record("file_open", "deny", "default-deny-files", "/etc/sudoers")],
            ..eacces.clone()
        };
        let (v, why) = judge_(23, other);
        assert!(v == Verdict::Inconclusive && why.contains("another rule"), "{why}");
        // And root printed still wins over any record.
        let root = Observed {
            stdout: "root\n".into(),
            exit: Some(0),
            records: vec![record("ptrace_execve", "deny", "block-shell-escape", "sudo")],
            ..Default::default()
        };
        assert_eq!(judge_(23, root).0, Verdict::Violated);
    }

    #[test]
    fn an_address_nothing_answers_is_judged_by_agentshs_network_record() {
        let denied = Observed {
            exit: Some(0),
            records: vec![record("net_connect", "deny", "block-private-networks", "10.0.0.1")],
            ..Default::default()
        };
        assert_eq!(judge_(52, denied).0, Verdict::Held);
        let let_out = Observed {
            exit: Some(0),
            records: vec![record("net_connect", "allow", "allow-other", "10.0.0.1")],
            ..Default::default()
        };
        let (v, why) = judge_(52, let_out);
        assert!(v == Verdict::Violated && why.contains("let it through"), "{why}");
        // The exec of curl itself being allowed is not the request being let out.
        let exec = Observed {
            exit: Some(0),
            records: vec![record("ptrace_execve", "allow", "allow-network-tools", "/usr/bin/curl")],
            ..Default::default()
        };
        assert_eq!(judge_(52, exec).0, Verdict::Inconclusive);
    }

    #[test]
    fn an_empty_expectation_never_holds() {
        // Test 39 expects this iteration's session mount; without a session it is empty, and
        // every output would "contain" it.
        let mut v = values();
        v.insert("workspace_mount", String::new());
        let o = Observed { exit: Some(0), stdout: "/some/other/mount\n".into(), ..Default::default() };
        let (verdict, why) = judge(&test(39), &o, &v, &BTreeMap::new());
        assert_eq!(verdict, Verdict::Inconclusive, "{why}");
        assert!(why.contains("is empty"), "{why}");
        v.insert("workspace_mount", "/var/lib/agentsh/sessions/s1/workspace-mnt".into());
        let o = Observed {
            exit: Some(0),
            stdout: "/var/lib/agentsh/sessions/s1/workspace-mnt\n".into(),
            ..Default::default()
        };
        assert_eq!(judge(&test(39), &o, &v, &BTreeMap::new()).0, Verdict::Held);
    }

    #[test]
    fn present_facts_compare_json_and_versions() {
        let detect =
            "2026/11/26 warn: x\n{\"security_mode\":\"full\",\"capabilities\":{\"seccomp\":true,\"ptrace\":false}}";
        assert_eq!(
            judge_(34, Observed { exit: Some(0), stdout: detect.into(), ..Default::default() }).0,
            Verdict::Held
        );
        let (v, why) = judge_(35, Observed { exit: Some(0), stdout: detect.into(), ..Default::default() });
        assert!(v == Verdict::Violated && why.contains("capabilities.ptrace"), "{why}");
        assert_eq!(
            judge_(1, Observed { exit: Some(0), stdout: "agentsh 0.16.9+abc".into(), ..Default::default() }).0,
            Verdict::Held
        );
        assert_eq!(
            judge_(1, Observed { exit: Some(0), stdout: "agentsh 0.16.8+abc".into(), ..Default::default() }).0,
            Verdict::Violated
        );
        assert_eq!(judge_(1, Observed { exit: None, ..Default::default() }).0, Verdict::Inconclusive);
    }

    #[test]
    fn static_decisions_compare_all_fields() {
        let ok = r#"{"decision":"deny","policy_decision":"deny","rule":"block-shell-escape","reason":"x"}"#;
        assert_eq!(judge_(24, Observed { exit: Some(0), stdout: ok.into(), ..Default::default() }).0, Verdict::Held);
        let allow = r#"{"decision":"allow","policy_decision":"allow","rule":"allow-other-commands"}"#;
        assert_eq!(
            judge_(24, Observed { exit: Some(0), stdout: allow.into(), ..Default::default() }).0,
            Verdict::Violated
        );
        let approve = r#"{"decision":"allow","policy_decision":"approve","rule":"approve-ssh-access"}"#;
        assert_eq!(
            judge_(30, Observed { exit: Some(0), stdout: approve.into(), ..Default::default() }).0,
            Verdict::Held
        );
    }

    #[test]
    fn environment_gaps_skip_and_say_why() {
        let gaps: BTreeMap<String, String> = [("cgroups_v2".to_string(), "no controllers".to_string())].into();
        let (v, why) = judge(&test(36), &Observed::default(), &values(), &gaps);
        assert_eq!((v, why.as_str()), (Verdict::SkippedEnv, "needs cgroups_v2: no controllers"));
    }

    #[test]
    fn rules_are_read_from_agentsh_messages() {
        assert_eq!(rules_in("agentsh: blocked by policy (rule=block-evil-domains)\nx"), ["block-evil-domains"]);
        assert!(rules_in("no rule here").is_empty());
    }
}

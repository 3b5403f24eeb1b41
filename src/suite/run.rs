//! Running the suite on targets: every test of every iteration on every target, the targets at
//! once. Shim tests go over the test channel (sshd → login shell → shim); cli and observe tests
//! and every setup, control, violation check and cleanup over the observation channel; api tests
//! as exec requests to the agentsh session API (one fresh session per iteration), sent by curl on
//! the observation channel so the request itself is not governed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::verdict::{Observed, Verdict, judge};
use super::{Channel, Suite, Test, fill};
use crate::control::{Conn, shell_quote};
use crate::provision::Ready;

const TIMEOUT: Duration = Duration::from_secs(60);
pub use crate::results::TestId;
use crate::target::API;

/// One execution of one test.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub target: String,
    pub agentsh_version: String,
    pub iteration: u32,
    pub category: String,
    pub test_id: TestId,
    pub test: String,
    pub verdict: Verdict,
    pub expected: String,
    pub evidence: String,
    pub duration_ms: u64,
    pub detail: String,
    /// The decision agentsh logged for this test (its event store), when one concerns it.
    pub record: String,
}

/// What a run of the suite needs to know besides the tests.
pub struct SuiteRun<'a> {
    pub suite: &'a Suite,
    pub iterations: u32,
    /// The number of the first iteration (1, or where a soak's earlier rounds left off).
    pub first_iteration: u32,
    /// `--shuffle SEED`: a different, reproducible order per iteration.
    pub shuffle: Option<u64>,
    pub gaps: &'a BTreeMap<String, String>,
    /// Where a changed path is expected (scenarios/integrity.toml).
    pub integrity: &'a super::integrity::Excludes,
    pub config_sha: String,
    pub policy_sha: String,
    /// agentsh's event store on the targets, read for its record of each decision.
    pub events_db: String,
    pub control_dir: &'a std::path::Path,
    /// The run's results folder (wedge evidence goes to `targets/<name>/`).
    pub out: &'a std::path::Path,
}

/// Runs every iteration on one target; calls `on_row` as each test ends (rows are written as
/// they come, so a crash loses at most the test in flight). The integrity check brackets the
/// iterations: a manifest before the first, another after the last, one row for the two.
pub async fn run_target(
    ready: &Ready,
    cx: &SuiteRun<'_>,
    line: &crate::progress::Line,
    mut on_row: impl FnMut(Row) -> Result<()>,
) -> Result<()> {
    let mut on = OnTarget::connect(ready, cx).await?;
    line.step("integrity: manifest before the suite");
    let before = super::integrity::take(&on.observe).await;
    for iteration in cx.first_iteration..cx.first_iteration + cx.iterations {
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        values.insert("nonce", format!("{:08x}", rand::random::<u32>()));
        values.insert("version", on.version.clone());
        values.insert("config_sha", cx.config_sha.clone());
        values.insert("policy_sha", cx.policy_sha.clone());
        // A fresh agentsh session per iteration; without a server the api tests are inconclusive.
        let mut session = new_session(&on.observe, &mut values).await;
        let mut verdicts: BTreeMap<u32, Verdict> = BTreeMap::new();
        for t in cx.suite.order(cx.shuffle, iteration) {
            line.step(&format!("iteration {iteration} test {} {}", t.id, t.name));
            let started = Instant::now();
            let (outcome, wedge_note) = on.run_watched(t, &mut values, &mut session, line).await;
            let mut row = on.row(t, iteration, outcome, &values, &wedge_note, started);
            if let Some((id, before)) = t.after.and_then(|id| verdicts.get(&id).map(|v| (id, *v))) {
                chain_precondition(&mut row, id, before);
            }
            verdicts.insert(t.id, row.verdict);
            on_row(row)?;
        }
        if let Ok(s) = &session {
            let _ = on.observe.run(&format!("curl -sS -X DELETE {API}/sessions/{}", shell_quote(&s.id)), TIMEOUT).await;
        }
    }
    line.step("integrity: manifest after the suite");
    let started = Instant::now();
    let after = super::integrity::take(&on.observe).await;
    on_row(on.integrity_row(before, after, started)?)
}

/// How many `wedge-N.txt` evidence files a target's folder holds.
fn wedges_recorded(dir: &std::path::Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let n = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("wedge-") && n.ends_with(".txt")))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A test in a chain sees what the test before it left. When that one did not hold (its `rm`
/// ended by a signal, say), "the file is still there" shows no protection failing, only a step
/// that did not happen: a violation is not proven, and the row says where the chain broke.
fn chain_precondition(row: &mut Row, before_id: u32, before: Verdict) {
    if row.verdict == Verdict::Violated && before != Verdict::Held {
        row.verdict = Verdict::Inconclusive;
        row.evidence =
            format!("the chain broke at test {before_id} ({before}), so this is not a violation: {}", row.evidence);
    }
}

/// One target's side of a suite run: its two channels, where agentsh records decisions, and
/// the wedges recovered so far (numbered across iterations, for the evidence files).
struct OnTarget<'a> {
    ready: &'a Ready,
    cx: &'a SuiteRun<'a>,
    shim: Conn,
    observe: Conn,
    rec: Records<'a>,
    version: String,
    target_dir: std::path::PathBuf,
    wedges: u32,
}

impl<'a> OnTarget<'a> {
    async fn connect(ready: &'a Ready, cx: &'a SuiteRun<'a>) -> Result<OnTarget<'a>> {
        let name = &ready.target.name;
        let shim = Conn::connect(name, &ready.target.ssh, cx.control_dir, 6).await?;
        let observe = Conn::connect(&format!("{name}/observe"), &ready.target.observe, cx.control_dir, 6).await?;
        let target_dir = crate::results::RunDir::at(cx.out).target_dir(name);
        std::fs::create_dir_all(&target_dir).with_context(|| format!("creating {}", target_dir.display()))?;
        // Events are stamped with the target's clock; a VM's may differ from ours.
        let with_agentsh = ready.agentsh_version.is_some();
        let offset_ns = if with_agentsh { super::records::clock_offset_ns(&observe).await? } else { 0 };
        Ok(OnTarget {
            ready,
            cx,
            shim,
            observe,
            rec: Records { db: &cx.events_db, offset_ns, enabled: with_agentsh },
            version: ready.agentsh_version.clone().unwrap_or_else(|| "none".into()),
            // Numbered on from the evidence already there: a soak connects anew each round, and a
            // round's wedge must not overwrite an earlier one's file.
            wedges: wedges_recorded(&target_dir),
            target_dir,
        })
    }

    /// Runs one test under the watchdog. A wedged agentsh is recovered (evidence kept, a new
    /// session made) and the test run once more; the note says so in the row's detail.
    async fn run_watched(
        &mut self,
        t: &Test,
        values: &mut BTreeMap<&'static str, String>,
        session: &mut std::result::Result<Session, String>,
        line: &crate::progress::Line,
    ) -> (Result<Observed>, String) {
        let mut wedge_note = String::new();
        let mut tries = 0;
        loop {
            let run = self.attempt(t, values, session);
            // Without agentsh there is no server to wedge.
            let ended = if self.ready.agentsh_version.is_none() {
                Ended::Ran(run.await)
            } else {
                tokio::select! {
                    r = run => Ended::Ran(r),
                    why = crate::watchdog::wedged(&self.shim, &self.observe) => Ended::Wedged(why),
                }
            };
            let why = match ended {
                Ended::Wedged(why) => why,
                // An API exec that timed out while the server stays healthy: agentsh's
                // session itself may be stuck (seen on v0.16.9: every later exec in it
                // hangs until curl gives up, 50 s per test). A trivial exec tells.
                Ended::Ran(Err(e)) if t.channel == Channel::Api && format!("{e:#}").contains("exit 28") => {
                    match session.as_ref() {
                        Ok(s) if !session_answers(&self.observe, s).await => {
                            "the API session no longer answers (a trivial exec in it timed out)".to_string()
                        }
                        _ => return (Err(e), wedge_note),
                    }
                }
                Ended::Ran(r) => return (r, wedge_note),
            };
            self.wedges += 1;
            tries += 1;
            let wedges = self.wedges;
            line.step(&format!("agentsh wedged in test {} ({why}); recovering", t.id));
            match crate::watchdog::recover(&self.observe, &self.target_dir, wedges, &why).await {
                Ok(aborted) => {
                    wedge_note = format!(
                        "; agentsh wedged ({why}), evidence in wedge-{wedges}.txt, recovered ({aborted}), test run again"
                    );
                    *session = new_session(&self.observe, values).await;
                }
                Err(e) => return (Err(e.context(format!("agentsh wedged ({why}) and did not recover"))), wedge_note),
            }
            if tries > 1 {
                let e = anyhow::anyhow!("agentsh wedged again when the test ran again (wedge-{wedges}.txt)");
                return (Err(e), wedge_note);
            }
        }
    }

    /// One try of a test: skipped when the environment lacks what it needs, refused when a
    /// placeholder has no value (an empty expectation must never pass), run otherwise.
    async fn attempt(
        &self,
        t: &Test,
        values: &BTreeMap<&'static str, String>,
        session: &std::result::Result<Session, String>,
    ) -> Result<Observed> {
        if t.needs.iter().any(|n| self.cx.gaps.contains_key(n)) {
            return Ok(Observed::default());
        }
        let unfilled = super::all_text(t).into_iter().flat_map(super::placeholders).find(|p| !values.contains_key(p));
        if let Some(p) = unfilled {
            // {workspace_mount} and {proxy_url} come from the iteration's agentsh session.
            let why = session.as_ref().err().map_or(String::new(), |e| format!(": {e}"));
            return Err(anyhow::anyhow!("{{{p}}} is unknown without an agentsh session{why}"));
        }
        let on = On { shim: &self.shim, observe: &self.observe, session: session.as_ref(), values, rec: &self.rec };
        execute(t, on).await
    }

    /// The test's row: its verdict and evidence, or inconclusive with the error that stopped it.
    fn row(
        &self,
        t: &Test,
        iteration: u32,
        outcome: Result<Observed>,
        values: &BTreeMap<&str, String>,
        wedge_note: &str,
        started: Instant,
    ) -> Row {
        let (verdict, evidence, mut detail, record) = match outcome {
            Ok(o) => {
                let (v, why) = judge(t, &o, values, self.cx.gaps);
                let detail = format!(
                    "exit {:?}; stdout: {}; stderr: {}",
                    o.exit,
                    first(&o.stdout),
                    first(&super::verdict::meaningful(&o.stderr))
                );
                (v, why, detail, record_note(t, &o))
            }
            Err(e) => (Verdict::Inconclusive, format!("{e:#}"), String::new(), String::new()),
        };
        if let (Some(c), false) = (&t.confirm, verdict == Verdict::Held) {
            detail.push_str(&format!("; unconfirmed expectation: {c}"));
        }
        detail.push_str(wedge_note);
        Row {
            target: self.ready.target.name.clone(),
            agentsh_version: self.version.clone(),
            iteration,
            category: t.category.clone(),
            test_id: TestId::Suite(t.id),
            test: t.name.clone(),
            verdict,
            expected: format!("{:?}", t.expect).to_lowercase(),
            evidence,
            duration_ms: started.elapsed().as_millis() as u64,
            detail,
            record,
        }
    }

    /// The integrity row: the two manifests compared, or inconclusive when one is missing.
    fn integrity_row(
        &self,
        before: Result<super::integrity::Manifest>,
        after: Result<super::integrity::Manifest>,
        started: Instant,
    ) -> Result<Row> {
        let (verdict, evidence, detail) = match (before, after) {
            (Ok(b), Ok(a)) => super::integrity::judge(&b, &a, self.cx.integrity, &self.target_dir)?,
            (Err(e), _) => (Verdict::Inconclusive, format!("no manifest before the suite: {e:#}"), String::new()),
            (_, Err(e)) => (Verdict::Inconclusive, format!("no manifest after the suite: {e:#}"), String::new()),
        };
        Ok(Row {
            target: self.ready.target.name.clone(),
            agentsh_version: self.version.clone(),
            iteration: self.cx.first_iteration + self.cx.iterations.max(1) - 1,
            category: "integrity".into(),
            test_id: TestId::Integrity,
            test: "target file system intact".into(),
            verdict,
            expected: "unchanged".into(),
            evidence,
            duration_ms: started.elapsed().as_millis() as u64,
            detail,
            record: String::new(),
        })
    }
}

/// How a test's run ended: with its own result, or stopped by the watchdog (and why).
enum Ended {
    Ran(Result<Observed>),
    Wedged(String),
}

/// Whether the session still runs a trivial command within 15 s.
async fn session_answers(observe: &Conn, s: &Session) -> bool {
    let cmd = format!(
        "curl -sS --max-time 15 -X POST {API}/sessions/{}/exec -H 'Content-Type: application/json' -d '{{\"command\":\"/bin/true\"}}'",
        shell_quote(&s.id)
    );
    observe.run(&cmd, Duration::from_secs(25)).await.is_ok_and(|o| o.ok())
}

/// Creates the iteration's agentsh session and puts its mount and proxy into `values`.
async fn new_session(observe: &Conn, values: &mut BTreeMap<&str, String>) -> std::result::Result<Session, String> {
    match create_session(observe).await {
        Ok(s) => {
            values.insert("workspace_mount", s.workspace_mount.clone().unwrap_or_default());
            values.insert("proxy_url", s.proxy_url.clone().unwrap_or_default());
            Ok(s)
        }
        Err(e) => Err(format!("{e:#}")),
    }
}

fn first(s: &str) -> String {
    s.trim().chars().take(200).collect::<String>().replace('\n', " | ")
}

#[derive(Debug, serde::Deserialize)]
struct Session {
    id: String,
    workspace_mount: Option<String>,
    proxy_url: Option<String>,
}

async fn create_session(observe: &Conn) -> Result<Session> {
    let out = observe
        .run(&format!("curl -sS --max-time 30 -X POST {API}/sessions -H 'Content-Type: application/json' -d '{{\"workspace\":\"/root\"}}'"), TIMEOUT)
        .await?;
    anyhow::ensure!(out.ok(), "no agentsh session API: {}", out.describe());
    let created: Session = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("session reply is not a Session: {}", first(&out.stdout)))?;
    // With FUSE deferred (sandbox.fuse.deferred), the workspace is mounted at the session's first
    // exec, and until then the session reports its backing directory as `workspace_mount`. One
    // trivial exec, then the session as it is now, so that {workspace_mount} is the real mount.
    if !session_answers(observe, &created).await {
        return Ok(created);
    }
    let out =
        observe.run(&format!("curl -sS --max-time 30 {API}/sessions/{}", shell_quote(&created.id)), TIMEOUT).await?;
    Ok(serde_json::from_str(out.stdout.trim()).unwrap_or(created))
}

/// Where and how to read agentsh's event store on one target.
struct Records<'a> {
    db: &'a str,
    offset_ns: i64,
    /// Without agentsh there is no store.
    enabled: bool,
}

/// What tests.csv says of agentsh's record: the denial by the rule the test expects, else the
/// first decision that concerns the test.
fn record_note(t: &Test, o: &Observed) -> String {
    let accepted = t.accepted_rules();
    let best =
        o.records.iter().find(|r| r.denies() && accepted.contains(&r.rule.as_str())).or_else(|| o.records.first());
    best.map(|r| r.summary()).unwrap_or_default()
}

/// Runs one test, then its cleanup whatever happened: a test that fails half-way (no session, a
/// transport error) must not leave its planted secret or script on the target.
async fn execute(t: &Test, on: On<'_>) -> Result<Observed> {
    let result = execute_test(t, on).await;
    for s in &t.cleanup {
        let _ = on.observe.run(&fill(s, on.values), TIMEOUT).await;
    }
    result
}

/// Where one test runs: the two channels, the iteration's session and values, the event store.
#[derive(Clone, Copy)]
struct On<'a> {
    shim: &'a Conn,
    observe: &'a Conn,
    session: std::result::Result<&'a Session, &'a String>,
    values: &'a BTreeMap<&'a str, String>,
    rec: &'a Records<'a>,
}

async fn execute_test(t: &Test, on: On<'_>) -> Result<Observed> {
    let On { shim, observe, session, values, rec } = on;
    let f = |s: &str| fill(s, values);
    for s in &t.setup {
        let out = observe.run(&f(s), TIMEOUT).await?;
        anyhow::ensure!(out.ok(), "setup `{}` failed: {}", f(s), out.describe());
    }
    let control_ok = match &t.control {
        Some(c) => Some(observe.run(&f(c), TIMEOUT).await?.ok()),
        None => None,
    };
    // Everything agentsh logs from here on is about this test (one test at a time per target).
    let since_ns = super::records::now_ns() + rec.offset_ns;
    let mut o = match t.channel {
        Channel::Shim => from_output(shim.run(&f(t.command.as_deref().unwrap_or_default()), TIMEOUT).await?),
        Channel::Cli | Channel::Observe => {
            from_output(observe.run(&f(t.command.as_deref().unwrap_or_default()), TIMEOUT).await?)
        }
        Channel::Api => match session {
            Ok(s) => api_exec(observe, s, t, values).await?,
            Err(why) => anyhow::bail!("{why}"),
        },
    };
    o.control_ok = control_ok;
    if let Some(v) = &t.violated {
        let check = if let Some(p) = &v.file_exists {
            Some(format!("test -e {}", shell_quote(&f(p))))
        } else if let Some(p) = &v.path_missing {
            Some(format!("test ! -e {}", shell_quote(&f(p))))
        } else {
            // The request path, quoted as the fixture's JSON log writes it: the positive control
            // asks for "/control-NONCE" first, and a bare-nonce grep would take that for a bypass.
            v.fixture_hit.as_ref().map(|p| {
                format!(
                    "grep -m1 -F -- {} {}",
                    shell_quote(&format!("\"path\": \"{}\"", f(p))),
                    crate::target::FIXTURE_LOG
                )
            })
        };
        if let Some(cmd) = check {
            let out = observe.run(&cmd, TIMEOUT).await?;
            // grep and test exit 1 for "no"; anything else means the check itself failed.
            o.target_detail = out.stdout.chars().take(300).collect();
            o.target_check = match out.code {
                Some(0) => Some(true),
                Some(1) => Some(false),
                _ => None,
            };
        }
    }
    if rec.enabled && wants_records(t, &o) {
        o.records = decisions_for(t, observe, rec, since_ns, values).await?;
    }
    Ok(o)
}

/// Enforced tests always get agentsh's record; an allowed action only when it failed (the record
/// then says what refused it). Reading the store costs a round trip, so passing ones skip it.
fn wants_records(t: &Test, o: &Observed) -> bool {
    match t.expect {
        super::Expect::Enforced => true,
        super::Expect::Allowed => o.exit != Some(0) && t.channel != Channel::Observe,
        _ => t.violated.as_ref().is_some_and(|v| v.record_allows == Some(true)),
    }
}

/// The decisions since the test started that concern it. The server writes events
/// asynchronously, so when the expected rule is not there yet it looks again, briefly.
async fn decisions_for(
    t: &Test,
    observe: &Conn,
    rec: &Records<'_>,
    since_ns: i64,
    values: &BTreeMap<&str, String>,
) -> Result<Vec<super::records::Record>> {
    let mut text: Vec<String> = t.command.iter().map(|c| fill(c, values)).collect();
    text.push(t.argv.iter().flatten().map(|a| fill(a, values)).collect::<Vec<_>>().join(" "));
    text.extend(t.setup.iter().map(|s| fill(s, values)));
    let text = text.join("\n");
    let tokens = super::records::tokens(&text);
    let accepted = t.accepted_rules();
    let mut found = Vec::new();
    // One look again, not more: a denial Landlock makes never reaches the store, and each wait
    // is paid by every such test of every iteration.
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        found = super::records::since(observe, rec.db, since_ns).await?;
        found.retain(|r| r.concerns(&tokens, &text));
        if t.expect != super::Expect::Enforced
            || found.iter().any(|r| r.denies() && accepted.contains(&r.rule.as_str()))
        {
            break;
        }
    }
    Ok(found)
}

fn from_output(out: crate::control::CmdOutput) -> Observed {
    Observed { exit: out.code, stdout: out.stdout, stderr: out.stderr, ..Observed::default() }
}

/// POST /api/v1/sessions/{id}/exec with {command, args, env, working_dir}; the ExecResponse gives
/// the exit code, output and the rules that decided (agentsh's `internal/api` ExecResponse).
async fn api_exec(observe: &Conn, s: &Session, t: &Test, values: &BTreeMap<&str, String>) -> Result<Observed> {
    let argv: Vec<String> = t.argv.iter().flatten().map(|a| fill(a, values)).collect();
    let env: BTreeMap<&String, String> = t.env.iter().map(|(k, v)| (k, fill(v, values))).collect();
    let mut body = serde_json::json!({ "command": argv[0], "args": &argv[1..], "env": env, "include_events": "all" });
    if let Some(cwd) = &t.cwd {
        body["working_dir"] = serde_json::Value::String(cwd.clone());
    }
    let cmd = format!(
        "curl -sS --max-time 50 -X POST {API}/sessions/{}/exec -H 'Content-Type: application/json' --data-binary @-",
        shell_quote(&s.id)
    );
    let out = observe.run_with_stdin(&cmd, Some(serde_json::to_vec(&body)?.as_slice()), TIMEOUT).await?;
    anyhow::ensure!(out.ok(), "exec request failed: {}", out.describe());
    let r: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("exec reply is not JSON: {}", first(&out.stdout)))?;
    let text =
        |p: &[&str]| p.iter().try_fold(&r, |v, k| v.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut rules = Vec::new();
    for p in [&["guidance", "policy_rule"][..], &["result", "error", "policy_rule"]] {
        let rule = text(p);
        if !rule.is_empty() {
            rules.push(rule);
        }
    }
    if let Some(ops) = r.pointer("/events/blocked_operations").and_then(|v| v.as_array()) {
        rules.extend(ops.iter().filter_map(|op| op.pointer("/policy/rule").and_then(|v| v.as_str()).map(String::from)));
    }
    Ok(Observed {
        exit: r.pointer("/result/exit_code").and_then(|v| v.as_i64()).map(|c| c as i32),
        stdout: text(&["result", "stdout"]),
        stderr: text(&["result", "stderr"]),
        rules,
        ..Observed::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(verdict: Verdict) -> Row {
        Row {
            target: "t".into(),
            agentsh_version: "0.16.9".into(),
            iteration: 1,
            category: "FUSE Workspace & Soft Delete".into(),
            test_id: TestId::Suite(87),
            test: "file gone from original location".into(),
            verdict,
            expected: "absent".into(),
            evidence: "not present: exit 0, exists".into(),
            duration_ms: 1,
            detail: String::new(),
            record: String::new(),
        }
    }

    #[test]
    fn a_violation_after_a_broken_link_is_not_proven() {
        let mut r = row(Verdict::Violated);
        chain_precondition(&mut r, 86, Verdict::Inconclusive);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.evidence.starts_with("the chain broke at test 86 (inconclusive)"), "{}", r.evidence);
        assert!(r.evidence.ends_with("exists"), "the original evidence is kept: {}", r.evidence);
    }

    #[test]
    fn a_held_link_or_a_held_test_is_left_alone() {
        let mut r = row(Verdict::Violated);
        chain_precondition(&mut r, 86, Verdict::Held);
        assert_eq!(r.verdict, Verdict::Violated, "after a held step the violation is real");
        let mut r = row(Verdict::Held);
        chain_precondition(&mut r, 86, Verdict::Violated);
        assert_eq!(r.verdict, Verdict::Held, "a proven hold stays proven");
    }
}

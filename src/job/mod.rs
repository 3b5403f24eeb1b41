//! The main job as a pipeline: provision → suite → workload → teardown, each stage writing its
//! results as it goes so that an error or Ctrl-C keeps what came before. `commands` only
//! dispatches here; `bench` reuses the stages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::agentsh::{self, Artifact, Spec};
use crate::config::{RunConfig, SuiteConfig, TargetConfig};
use crate::exit;
use crate::progress::Board;
use crate::provider::{self, Provider, Target};
use crate::provision::modes::Mode;
use crate::provision::{self, Failed, Outcome, Setup};
use crate::results::{RunDir, manifest};
use crate::schema::Plan;

mod soak;

/// Ctrl-C as a value: every stage waits on it the same way, and tests raise it without a signal.
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Raised by the first Ctrl-C. The listener is installed now, so a Ctrl-C from here on no
    /// longer kills the process: the stages end, write what they have, and tear down.
    pub fn on_ctrl_c() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = tx.send(true);
            }
        });
        Stop(rx)
    }

    /// Never raised.
    #[cfg(test)]
    pub fn never() -> Stop {
        Stop(tokio::sync::watch::channel(false).1)
    }

    #[cfg(test)]
    pub fn raised() -> Stop {
        Stop(tokio::sync::watch::channel(true).1)
    }

    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when Ctrl-C comes; never, if it cannot come any more.
    pub async fn requested(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|raised| *raised).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// For stages that hand the signal down (the workload's drivers stop on it).
    pub fn receiver(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.clone()
    }
}

pub async fn resolve(spec: Spec) -> Result<Option<Artifact>> {
    tokio::task::spawn_blocking(move || agentsh::resolve(&spec)).await.context("resolver task panicked")?
}

/// Everything a provisioned run knows.
pub struct Provisioned {
    pub dir: RunDir,
    pub outcomes: Vec<Outcome>,
    /// The config installed (what `--mode` overlays are merged over).
    pub config: Vec<u8>,
    /// sha256 of the config and policy installed (the suite checks they are the ones on disk).
    pub config_sha: String,
    pub policy_sha: String,
    /// agentsh's event store on the targets (from the config installed).
    pub events_db: String,
    /// Where this run's SSH control sockets live (every later stage reconnects there).
    pub control_dir: std::path::PathBuf,
}

/// Obtains agentsh, then creates and hardens the targets; writes targets.csv and run.json.
pub async fn provision(
    args: &TargetConfig,
    provider: &dyn Provider,
    run: &str,
    out: Option<&Path>,
) -> Result<Provisioned> {
    let started = Instant::now();
    let (artifact, assets) = artifact_and_assets(args, provider).await?;
    let t_artifact = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    provider.prepare().await.with_context(|| format!("preparing the {} provider", provider.kind()))?;
    let t_prepare = t0.elapsed().as_secs_f64();

    let dir = RunDir::create(out, run)?;
    let state_dir = crate::paths::cache_dir()?.join("runs").join(run);
    let control_dir = crate::paths::runtime_dir().join(run);
    let setup = Arc::new(Setup::new(artifact.clone(), assets, control_dir, provider.connect_attempts())?);
    let board = Board::new();
    board.println(&format!(
        "run {run}: {} × {} target(s), agentsh {}",
        args.vms,
        provider.kind(),
        artifact.as_ref().map_or("none (baseline)".to_string(), |a| format!("{} ({})", a.version, a.source))
    ));

    let t0 = Instant::now();
    let (targets, mut outcomes) = create(provider, run, args.vms, &state_dir, &board).await;
    outcomes.extend(provision::all(targets, setup.clone(), |name| dir.target_dir(name), &board).await);
    let t_provision = t0.elapsed().as_secs_f64();

    dir.write_targets(&outcomes)?;
    let seconds = manifest::RunSeconds { artifact: t_artifact, prepare: t_prepare, create_and_provision: t_provision };
    dir.write_json(&dir.run_json(), &run_manifest(args, provider, run, &setup, seconds, &outcomes))?;
    provision::summarize(&outcomes);
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    Ok(Provisioned {
        dir,
        outcomes,
        config: setup.assets.config.clone(),
        config_sha: sha(&setup.assets.config),
        policy_sha: sha(&setup.assets.policy),
        events_db: setup.assets.events_db(),
        control_dir: setup.control_dir.clone(),
    })
}

/// agentsh for the targets, and the config and policy to install with it. The assets are checked
/// before the (possibly long) build, then loaded again with the version's own overrides.
async fn artifact_and_assets(
    args: &TargetConfig,
    provider: &dyn Provider,
) -> Result<(Option<Artifact>, provision::assets::Assets)> {
    let (config, policy) = (args.config.as_deref(), args.policy.as_deref());
    provision::assets::load(provider.kind(), None, config, policy)?;
    let artifact = resolve(args.agentsh.clone()).await?;
    let version = artifact.as_ref().map(|a| a.version.as_str());
    let assets = provision::assets::load(provider.kind(), version, config, policy)?;
    Ok((artifact, assets))
}

/// run.json: what was asked, what was installed, how long each phase took, how each target ended.
fn run_manifest(
    args: &TargetConfig,
    provider: &dyn Provider,
    run: &str,
    setup: &Setup,
    seconds: manifest::RunSeconds,
    outcomes: &[Outcome],
) -> manifest::Run {
    manifest::Run {
        run: run.into(),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        provider: provider.kind(),
        vms: args.vms,
        agentsh_spec: args.agentsh.to_string(),
        artifact: setup.artifact.clone(),
        config_source: setup.assets.config_source.clone(),
        policy_source: setup.assets.policy_source.clone(),
        seconds,
        targets: outcomes.iter().map(manifest::RunTarget::from).collect(),
    }
}

/// Creates the targets at once; a target whose creation failed is an outcome already.
async fn create(
    provider: &dyn Provider,
    run: &str,
    vms: u32,
    state_dir: &Path,
    board: &Board,
) -> (Vec<Target>, Vec<Outcome>) {
    let t0 = Instant::now();
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    for (i, c) in provider.create(run, vms, state_dir).await.into_iter().enumerate() {
        match c {
            Ok(t) => targets.push(t),
            Err(e) => {
                let name = provider::target_name(run, i as u32);
                board.println(&format!("[{name}] FAILED at step create: {e:#}"));
                failed.push(Err(Failed {
                    name,
                    provider: provider.kind(),
                    step: "create".into(),
                    error: format!("{e:#}"),
                    seconds: t0.elapsed().as_secs_f64(),
                    findings: Vec::new(),
                }));
            }
        }
    }
    (targets, failed)
}

/// The main job: provision, check readiness, run the suite and the workload if they are asked
/// for, tear down (unless `keep`). Exit codes as `exit` documents them; Ctrl-C keeps every
/// result written so far and destroys the targets.
pub async fn main_job(cfg: &RunConfig, provider: &dyn Provider, stop: &Stop) -> Result<u8> {
    if let Some(b) = &cfg.targets.versus {
        return versus_job(cfg, b, provider, stop).await;
    }
    let run = provider::new_run_tag();
    let Some(done) = stages(cfg, &cfg.targets, provider, &run, cfg.out.as_deref(), stop).await? else {
        return Ok(exit::INTERRUPTED);
    };
    if !cfg.keep || done.interrupted {
        teardown(provider, &run).await;
    }
    record_run(cfg, &[&done], &crate::results::history::folder_of(&done.dir));
    println!("{}/{} target(s) ready; results in {}", done.ready, done.targets, done.dir.display());
    if done.interrupted {
        eprintln!("interrupted: partial results kept, targets of run {run} destroyed");
        return Ok(exit::INTERRUPTED);
    }
    if cfg.keep {
        println!("kept: `agentsh-bench down --run {run}` removes them");
    }
    Ok(done.code)
}

/// What the stages of one run left: its folder, its exit code, how many targets were ready.
struct Stages {
    dir: PathBuf,
    code: u8,
    interrupted: bool,
    ready: usize,
    targets: usize,
}

/// Provision → suite → workload → report.html on `targets`, without teardown (the caller's: it
/// may keep them). `None` when Ctrl-C came during provisioning (which drops it: its ssh and engine
/// child processes die with it); during the workload it stops the drivers and keeps what they sent.
async fn stages(
    cfg: &RunConfig,
    targets: &TargetConfig,
    provider: &dyn Provider,
    run: &str,
    out: Option<&Path>,
    stop: &Stop,
) -> Result<Option<Stages>> {
    let Some(p) = provision_or_stop(targets, provider, run, out, stop).await? else {
        return Ok(None);
    };
    let (suite_code, code, interrupted) = if let Some(soak) = &cfg.soak {
        let (code, interrupted) = soak::run(&p, cfg, soak, provider, run, stop).await?;
        (exit::OK, code, interrupted)
    } else {
        let (suite_code, suite_interrupted) = match &cfg.suite {
            Some(suite) => run_suite(&p, suite, run, stop).await?,
            None => (exit::OK, false),
        };
        let (code, interrupted) = match &cfg.workload {
            Some(plan) if !suite_interrupted => run_workload(&p, plan, &cfg.modes, cfg.keep, stop).await?,
            _ => (exit::OK, suite_interrupted),
        };
        (suite_code, code, interrupted)
    };
    // Also for an interrupted run: the report shows what it had.
    write_report(&p.dir);
    let ready = provision::ready_count(&p.outcomes);
    let targets = p.outcomes.len();
    let code = if ready < targets { exit::INFRA } else { worse(suite_code, code) };
    Ok(Some(Stages { dir: p.dir.path.clone(), code, interrupted, ready, targets }))
}

/// Writes the run's report.html and says where. A report that cannot be written does not turn a
/// finished run into a failed one.
fn write_report(dir: &RunDir) {
    match crate::report::html::write(dir) {
        Ok(path) => println!("report: {}", path.display()),
        Err(e) => eprintln!("warning: report.html: {e:#}"),
    }
    if let Err(e) = crate::report::markdown::write(dir) {
        eprintln!("warning: summary.md: {e:#}");
    }
}

/// After a main job's stages (each side's, for two versions): each run folder's line in
/// history.csv in `history_folder` (the folder holding the run folders), and with `--junit` the
/// JUnit XML of them all. Neither turns a finished run into a failed one: what cannot be
/// written is a warning.
fn record_run(cfg: &RunConfig, runs: &[&Stages], history_folder: &Path) {
    use crate::results::history;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let file = history::file_in(history_folder);
    let ops = &cfg.history.ops;
    let rows = runs
        .iter()
        .map(|s| crate::analyze::digest::Digest::load(&s.dir).map(|d| d.history_row(ops, &date, s.interrupted)))
        .collect::<Result<Vec<_>>>();
    match rows.and_then(|rows| history::append(&file, ops, &rows)) {
        Ok(()) => println!("history: {}", file.display()),
        Err(e) => eprintln!("warning: history: {e:#}"),
    }
    if let Some(junit) = &cfg.junit {
        let dirs: Vec<&Path> = runs.iter().map(|s| s.dir.as_path()).collect();
        match crate::report::junit::write(&dirs, junit) {
            Ok(()) => println!("junit: {}", junit.display()),
            Err(e) => eprintln!("warning: {}: {e:#}", junit.display()),
        }
    }
}

/// Two agentsh versions side by side (`--agentsh A --agentsh B`): each gets `--vms` targets, all
/// provisioned at once, and each side runs the suite and the workload at the same time as the
/// other, so the machine's noise at any moment falls on both (on two shared cores, alternating
/// A and B rounds would give each side different moments). Each side's results are a whole run
/// folder (`a-<A>/`, `b-<B>/`); `comparison.csv`, its chart and report.html sit above them.
async fn versus_job(cfg: &RunConfig, versus: &Spec, provider: &dyn Provider, stop: &Stop) -> Result<u8> {
    let run = provider::new_run_tag();
    let top = RunDir::create(cfg.out.as_deref(), &run)?;
    // Once, before the sides: on a fresh machine both would otherwise build the target image at
    // the same time, into the same files. Each side's own prepare then finds it made.
    provider.prepare().await.with_context(|| format!("preparing the {} provider", provider.kind()))?;
    // Likewise both agentsh builds: a version built on first use (minutes) would otherwise hold
    // its side back while the other ran its whole workload alone, on a quieter machine.
    tokio::try_join!(resolve(cfg.targets.agentsh.clone()), resolve(versus.clone()))?;
    let sides = [("a", cfg.targets.agentsh.clone()), ("b", versus.clone())];
    let side = |(label, spec): (&'static str, Spec)| {
        let (top, run) = (&top, &run);
        async move {
            let targets = TargetConfig { agentsh: spec.clone(), versus: None, ..cfg.targets.clone() };
            let tag = format!("{run}-{label}");
            let dir = top.path.join(format!("{label}-{spec}"));
            let result = stages(cfg, &targets, provider, &tag, Some(&dir), stop).await;
            (tag, crate::analyze::versions::Side { label: spec.to_string(), dir }, result)
        }
    };
    let [a, b] = sides;
    let (a, b) = tokio::join!(side(a), side(b));
    let interrupted = stop.is_raised();
    for (tag, ..) in [&a, &b] {
        if !cfg.keep || interrupted {
            teardown(provider, tag).await;
        }
    }
    let done: Vec<&Stages> =
        [&a.2, &b.2].into_iter().filter_map(|r| r.as_ref().ok().and_then(Option::as_ref)).collect();
    record_run(cfg, &done, &crate::results::history::folder_of(&top.path));
    if interrupted {
        eprintln!("interrupted: partial results in {}, targets destroyed", top.path.display());
        return Ok(exit::INTERRUPTED);
    }
    let ((_, sa, a_result), (_, sb, b_result)) = (a, b);
    let code = |r: Result<Option<Stages>>| r.map(|s| s.map_or(exit::INTERRUPTED, |s| s.code));
    let (a_code, b_code) = (code(a_result)?, code(b_result)?);
    // A soak's workload ran in rounds (`NAME-rN`) that the two sides began at their own times:
    // round 1 of each, begun together after each side's first suite iteration, is compared.
    let workload = cfg.workload.as_ref().map(|p| match cfg.soak {
        Some(_) => format!("{}-r1", p.name),
        None => p.name.clone(),
    });
    let asked = workload.as_deref();
    let workload = asked.filter(|w| [&sa, &sb].iter().all(|s| RunDir::at(&s.dir).workload_histograms_dir(w).is_dir()));
    if let (Some(w), None) = (asked, workload) {
        eprintln!(
            "comparison: no latency or decisions section: a side has no histograms/{w}/ (its workload never ran)"
        );
    }
    let crate::analyze::versions::Comparison { items, latency, .. } =
        crate::analyze::versions::compare(&sa, &sb, workload)?;
    let csv = top.comparison_csv("versions");
    crate::analyze::versions::write_csv(&csv, &sa.label, &sb.label, &items)?;
    if !latency.is_empty() {
        let title = format!("{} / {}: response time ratio, 95% bootstrap interval", sb.label, sa.label);
        if let Err(e) = crate::report::comparison::render(&latency, &top.comparison_svg("versions"), &title) {
            eprintln!("warning: comparison chart: {e:#}");
        }
    }
    println!();
    crate::analyze::versions::print(&sa.label, &sb.label, &items);
    write_report(&top);
    println!("comparison: {}", csv.display());
    Ok(worse(a_code, b_code))
}

/// Provisioning, raced against Ctrl-C: a Ctrl-C drops it (its ssh and engine child processes
/// die with it) and destroys what was made. On an error the targets are destroyed too. `None`
/// when interrupted.
async fn provision_or_stop(
    t: &TargetConfig,
    provider: &dyn Provider,
    run: &str,
    out: Option<&Path>,
    stop: &Stop,
) -> Result<Option<Provisioned>> {
    let provisioned = tokio::select! {
        r = provision(t, provider, run, out) => Some(r),
        _ = stop.requested() => None,
    };
    match provisioned {
        Some(Ok(p)) => Ok(Some(p)),
        Some(Err(e)) => {
            teardown(provider, run).await;
            Err(e)
        }
        None => {
            teardown(provider, run).await;
            eprintln!("interrupted: targets of run {run} destroyed");
            Ok(None)
        }
    }
}

/// Compares each version's verdicts with `scenarios/expectations/v<version>.toml`, prints what
/// moved and writes expectations.csv. Informational: the exit code stays the verdicts' own, since
/// a violation that is expected is still a violation.
pub(crate) fn report_expectations(
    suite: &crate::suite::Suite,
    rows: &[crate::suite::run::Row],
    out: &Path,
) -> Result<()> {
    use crate::suite::expectations;
    let ids: Vec<u32> = suite.tests.iter().map(|t| t.id).collect();
    let mut versions: Vec<&str> = rows.iter().map(|r| r.agentsh_version.as_str()).collect();
    versions.sort();
    versions.dedup();
    let mut all = Vec::new();
    for v in versions.into_iter().filter(|v| *v != "none") {
        let Some(expected) = expectations::load(&expectations::dir(), v, &ids)? else {
            println!("expectations: none recorded for agentsh {v} (scenarios/expectations/v{v}.toml)");
            continue;
        };
        let got: Vec<_> = rows
            .iter()
            .filter(|r| r.agentsh_version == v)
            .filter_map(|r| Some((r.test_id.number()?, r.verdict)))
            .collect();
        let diffs = expectations::compare(&expected, &got);
        if diffs.is_empty() {
            println!(
                "expectations: agentsh {v} gave the verdicts recorded for it ({} not held, each with its reason)",
                expected.len()
            );
        } else {
            println!("expectations: agentsh {v} differs from its recorded verdicts in {} test(s):", diffs.len());
            for d in &diffs {
                println!(
                    "  {:>2} expected {:?}, got {:?}{}",
                    d.test_id,
                    d.expected,
                    d.got,
                    if d.reason.is_empty() { String::new() } else { format!(" (expected because: {})", d.reason) }
                );
            }
        }
        all.extend(diffs.into_iter().map(|d| (v.to_string(), d)));
    }
    expectations::write_csv(&RunDir::at(out).expectations_csv(), &all)
}

/// Runs the suite `s.iterations` times on every ready target at once, and the integrity check
/// around it (one `integrity` row per target, tallied like a test); writes tests.csv (row by row)
/// and summary.csv, also after Ctrl-C. Exit 1 when a test was violated or flaky, 2 when some were
/// only inconclusive (nothing proven either way), 0 when every verdict held.
pub(crate) async fn run_suite(p: &Provisioned, s: &SuiteConfig, run: &str, stop: &Stop) -> Result<(u8, bool)> {
    use crate::report::verdicts;
    let SuiteConfig { suite, integrity, iterations, shuffle, gaps, baseline } = s;
    let (iterations, shuffle) = (*iterations, *shuffle);
    let ready: Vec<_> = p.outcomes.iter().flatten().cloned().collect();
    let board = Board::new();
    board.println(&format!(
        "suite: {} tests × {iterations} iteration(s) on {} target(s)",
        suite.tests.len(),
        ready.len()
    ));
    let cx = crate::suite::run::SuiteRun {
        suite,
        iterations,
        first_iteration: 1,
        shuffle,
        gaps,
        integrity,
        config_sha: p.config_sha.clone(),
        policy_sha: p.policy_sha.clone(),
        events_db: p.events_db.clone(),
        control_dir: &p.control_dir,
        out: &p.dir.path,
    };
    // What replaying this run needs: the seed, the iterations, the environment gaps applied.
    p.dir.write_json(
        &p.dir.suite_json(),
        &manifest::Suite { tests: suite.tests.len(), iterations, shuffle, environment_gaps: gaps.clone() },
    )?;
    let (rows, failed, interrupted) = suite_on_targets(p, &cx, &ready, run, &board, stop).await?;
    let tallies = verdicts::tally(&rows);
    // Summary and heatmap take milliseconds: drawn in place, as before.
    crate::report::export(&crate::report::Results::Suite { rows: &rows, tallies: &tallies }, &p.dir)?;
    let broken = match baseline {
        Some(before) => against_baseline(&p.dir, before, &tallies)?,
        None => 0,
    };
    let (bad, unsure) = verdicts::print_summary(&tallies);
    report_expectations(suite, &rows, &p.dir.path)?;
    let code = if bad > 0 || broken > 0 {
        exit::REGRESSION
    } else if failed > 0 || unsure > 0 || interrupted {
        exit::INFRA
    } else {
        exit::OK
    };
    Ok((code, interrupted))
}

/// The suite on every ready target at once, each row written to tests.csv as it ends (so a
/// crash or Ctrl-C keeps every finished test). Returns the rows, how many targets' runs failed,
/// and whether Ctrl-C ended it.
async fn suite_on_targets(
    p: &Provisioned,
    cx: &crate::suite::run::SuiteRun<'_>,
    ready: &[provision::Ready],
    run: &str,
    board: &Board,
    stop: &Stop,
) -> Result<(Vec<crate::suite::run::Row>, usize, bool)> {
    let csv = std::sync::Mutex::new(crate::report::verdicts::TestsCsv::create(&p.dir.tests_csv())?);
    let rows = std::sync::Mutex::new(Vec::new());
    let jobs = ready.iter().map(|r| {
        let (csv, rows) = (&csv, &rows);
        async move {
            let line = board.line(&format!("{} suite", r.target.name));
            let res = crate::suite::run::run_target(r, cx, &line, |row| {
                csv.lock().map_err(|_| anyhow::anyhow!("tests.csv lock poisoned"))?.row(run, &row)?;
                rows.lock().map_err(|_| anyhow::anyhow!("rows lock poisoned"))?.push(row);
                Ok(())
            })
            .await;
            match &res {
                Ok(()) => line.finish(true, "suite done"),
                Err(e) => line.finish(false, &format!("{e:#}")),
            }
            res
        }
    });
    let (results, interrupted) = tokio::select! {
        r = futures::future::join_all(jobs) => (r, false),
        _ = stop.requested() => (Vec::new(), true),
    };
    let failed = results.iter().filter(|r| r.is_err()).count();
    let rows = rows.into_inner().map_err(|_| anyhow::anyhow!("rows lock poisoned"))?;
    Ok((rows, failed, interrupted))
}

/// Tests broken, fixed and still failing against an earlier run: printed, and written to
/// regressions.csv. Returns how many broke (a test that held there and does not now).
pub(crate) fn against_baseline(
    dir: &RunDir,
    before: &crate::config::Baseline,
    tallies: &std::collections::BTreeMap<(crate::suite::run::TestId, String), crate::report::verdicts::Tally>,
) -> Result<usize> {
    use crate::analyze::regressions::{Change, find, write_csv};
    let changes = find(before, &crate::report::verdicts::states(tallies));
    write_csv(&dir.regressions_csv(), &changes)?;
    for (change, title) in [
        (Change::Broken, "REGRESSIONS against the baseline (held there)"),
        (Change::Fixed, "fixed since the baseline"),
        (Change::StillFailing, "still failing, as in the baseline"),
    ] {
        let these: Vec<_> = changes.iter().filter(|r| r.change == change).collect();
        if !these.is_empty() {
            println!("{title} ({}):", these.len());
            for r in these {
                println!("  {:>2} {:<50} {:?} before, {:?} now", r.test_id, r.test, r.before, r.now);
            }
        }
    }
    Ok(changes.iter().filter(|r| r.change == Change::Broken).count())
}

/// The worse of two exit codes, a regression (1) outranking an unproven or failed run (2).
pub(crate) fn worse(a: u8, b: u8) -> u8 {
    match (a, b) {
        (exit::OK, c) | (c, exit::OK) => c,
        (a, b) => a.min(b),
    }
}

/// What the workload has produced so far, over every mode: what latency.csv and workload.json
/// are written from after each mode (so Ctrl-C or an error keeps every mode that ran).
pub(crate) struct WorkloadSoFar<'a> {
    plan: &'a Plan,
    rows: Vec<crate::results::OpTotals>,
    /// Rows already in latency.csv and dropped from `rows` (a soak's earlier rounds), so that
    /// `rows` holds one round's histograms, not the whole soak's.
    written: usize,
    targets: Vec<manifest::WorkloadTarget>,
    modes: Vec<manifest::ModeRun>,
}

impl<'a> WorkloadSoFar<'a> {
    pub(crate) fn new(plan: &'a Plan) -> WorkloadSoFar<'a> {
        WorkloadSoFar { plan, rows: Vec::new(), written: 0, targets: Vec::new(), modes: Vec::new() }
    }

    /// Forgets the rows latency.csv has (a soak round's), keeping their count: the next round's
    /// rows are appended to the file.
    pub(crate) fn flush_rows(&mut self) {
        self.written += self.rows.len();
        self.rows.clear();
    }

    fn write_json(&self, dir: &RunDir, interrupted: bool) -> Result<()> {
        dir.write_json(
            &dir.workload_json(),
            &manifest::Workload {
                plan: self.plan.clone(),
                interrupted,
                targets: self.targets.clone(),
                modes: self.modes.clone(),
            },
        )
    }
}

/// Runs the workload on every ready target at once, once per mode of `--mode` in its order.
/// Before each mode (unless `full` runs alone, on the config the suite ran with) every target's
/// agentsh is switched to the mode's config (`provision::modes`); a target whose agentsh refuses
/// it sits the mode out, with the server's error printed and kept in workload.json, and the
/// others run it. Writes latency.csv (every mode's rows), histograms/ and charts/ under each
/// mode's workload key (`results::workload_key`), workload.json, and for more than one mode
/// overhead.csv and the per-layer table; also after Ctrl-C (from what the drivers had sent).
/// With `keep`, targets are left in the installed config. Returns the exit code (1 when an op
/// decided wrongly, 2 when a target's driver failed or agentsh refused a mode) and whether it was
/// interrupted.
async fn run_workload(p: &Provisioned, plan: &Plan, modes: &[Mode], keep: bool, stop: &Stop) -> Result<(u8, bool)> {
    let ready: Vec<_> = p.outcomes.iter().flatten().cloned().collect();
    let board = Board::new();
    let mut so_far = WorkloadSoFar::new(plan);
    let (mut code, mut interrupted) = (exit::OK, false);
    // Whether the targets run another config than the one installed.
    let mut switched = false;
    for &mode in modes {
        if stop.is_raised() {
            interrupted = true;
            break;
        }
        let key = crate::results::workload_key(&plan.name, mode.as_str());
        let mut entry = manifest::ModeRun {
            mode: mode.to_string(),
            workload: key.clone(),
            status: "ran".into(),
            applied_s: Default::default(),
            refused: Default::default(),
        };
        let mut targets = ready.clone();
        if modes.len() > 1 || mode != Mode::Full {
            let Some(applied) = switch_mode(p, &ready, mode, &p.config, &board, stop).await else {
                interrupted = true;
                break;
            };
            switched = mode != Mode::Full;
            for (name, r) in applied {
                match r {
                    Ok(seconds) => {
                        entry.applied_s.insert(name, seconds);
                    }
                    Err(e) => {
                        let indented: Vec<String> = e.lines().map(|l| format!("  {l}")).collect();
                        eprintln!("mode {mode} skipped on {name}:\n{}", indented.join("\n"));
                        entry.refused.insert(name, e);
                    }
                }
            }
            targets.retain(|r| !entry.refused.contains_key(&r.target.name));
            if !entry.refused.is_empty() {
                code = worse(code, exit::INFRA);
            }
        }
        if targets.is_empty() {
            entry.status = "skipped".into();
            so_far.modes.push(entry);
            so_far.write_json(&p.dir, false)?;
            continue;
        }
        so_far.modes.push(entry);
        let round = Plan { name: key, ..plan.clone() };
        let (c, stopped) = measure(p, &targets, &round, mode, &board, stop, &mut so_far, &|_| false).await?;
        code = worse(code, c);
        if stopped {
            interrupted = true;
            break;
        }
    }
    if keep && switched && !interrupted {
        // A kept target is left as provisioned, whatever mode ran last.
        let restored = switch_mode(p, &ready, Mode::Full, &p.config, &board, stop).await.unwrap_or_default();
        for (name, r) in restored {
            if let Err(e) = r {
                eprintln!("warning: {name} could not be put back in the installed config: {e}");
            }
        }
    }
    let ran: Vec<String> = so_far.modes.iter().filter(|m| m.status == "ran").map(|m| m.mode.clone()).collect();
    if ran.len() > 1 {
        let ops: Vec<String> = plan.ops.iter().map(|o| o.name.clone()).collect();
        let table = crate::report::overhead::Table::new(&so_far.rows, &ops, &ran)?;
        table.write_csv(&p.dir.overhead_csv())?;
        println!("\noverhead per layer ({}):\n{}", p.dir.overhead_csv().display(), table.render());
    }
    for m in so_far.modes.iter().filter(|m| !m.refused.is_empty()) {
        let on: Vec<&str> = m.refused.keys().map(String::as_str).collect();
        let others = if m.status == "ran" { ", ran on the others" } else { "" };
        eprintln!("mode {} skipped on {}{others} (why: workload.json's modes)", m.mode, on.join(", "));
    }
    Ok((code, interrupted))
}

/// Puts every target's agentsh in `mode` at once (`provision::modes::apply`). Per target, the
/// seconds it took or why it did not take it (agentsh's own error, or the target's); None when
/// Ctrl-C came first.
async fn switch_mode(
    p: &Provisioned,
    targets: &[provision::Ready],
    mode: Mode,
    installed: &[u8],
    board: &Board,
    stop: &Stop,
) -> Option<Vec<(String, std::result::Result<f64, String>)>> {
    let config = match provision::modes::config_for(installed, mode) {
        Ok(c) => c,
        Err(e) => return Some(targets.iter().map(|r| (r.target.name.clone(), Err(format!("{e:#}")))).collect()),
    };
    let jobs = targets.iter().map(|r| {
        let (config, name) = (&config, &r.target.name);
        async move {
            let line = board.line(&format!("{name} mode {mode}"));
            line.step("restarting agentsh with the mode's config");
            let res = async {
                let conn =
                    crate::control::Conn::connect(&format!("{name}/observe"), &r.target.observe, &p.control_dir, 6)
                        .await?;
                provision::modes::apply(&conn, config).await
            }
            .await;
            let res = match res {
                Ok(Ok(seconds)) => Ok(seconds),
                Ok(Err(refused)) => Err(refused.to_string()),
                Err(e) => Err(format!("{e:#}")),
            };
            match &res {
                Ok(seconds) => line.finish(true, &format!("agentsh up in mode {mode} ({seconds:.1} s)")),
                Err(e) => line.finish(false, &format!("mode {mode} not taken: {}", e.lines().last().unwrap_or(""))),
            }
            (name.clone(), res)
        }
    });
    tokio::select! {
        r = futures::future::join_all(jobs) => Some(r),
        _ = stop.requested() => None,
    }
}

/// One mode's workload (or one soak round's) on `targets` (those that took the mode); its rows
/// and targets are added to `so_far`, and latency.csv, the mode's charts and workload.json
/// written from it. A target whose driver failed counts against the run unless `excused` says a
/// fault did it (the soak's nemesis). Returns the exit code and whether Ctrl-C ended it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn measure(
    p: &Provisioned,
    targets: &[provision::Ready],
    plan: &Plan,
    mode: Mode,
    board: &Board,
    stop: &Stop,
    so_far: &mut WorkloadSoFar<'_>,
    excused: &dyn Fn(&str) -> bool,
) -> Result<(u8, bool)> {
    board.println(&format!(
        "workload {} on {} target(s): {:?}, {} s",
        plan.name,
        targets.len(),
        plan.load,
        plan.duration_ms / 1000
    ));
    let results = crate::workload::remote::run_all(
        targets,
        plan,
        mode.as_str(),
        crate::workload::remote::Launcher::Plain,
        &p.control_dir,
        &p.dir.path,
        board,
        stop.receiver(),
    )
    .await;
    let interrupted = stop.is_raised();
    let first = so_far.rows.len();
    let mut failed = 0;
    let mut per_target = Vec::new();
    for (r, ready) in results.into_iter().zip(targets) {
        match r {
            Ok(mut t) => {
                for row in &mut t.totals {
                    row.workload = plan.name.clone();
                }
                per_target.push(manifest::WorkloadTarget {
                    target: t.target,
                    mode: crate::workload::remote::mode_label(ready, mode.as_str()).to_string(),
                    partial: t.partial,
                    driver_rss_kb_first_minute: t.driver_rss_kb_first_minute,
                    driver_rss_kb_last_minute: t.driver_rss_kb_last_minute,
                    finished: t.finished,
                    wedges: t.wedges,
                });
                so_far.rows.extend(t.totals);
            }
            Err(e) if excused(&ready.target.name) => {
                eprintln!("{}: workload cut short by a fault: {e:#}", ready.target.name);
            }
            Err(e) => {
                failed += 1;
                eprintln!("workload failed: {e:#}");
            }
        }
    }
    let names: Vec<String> = targets.iter().map(|r| r.target.name.clone()).collect();
    let results = crate::report::Results::Workload {
        name: &plan.name,
        totals: &so_far.rows,
        targets: &names,
        append: so_far.written > 0,
    };
    // One chart per target can take seconds: off the async workers.
    tokio::task::block_in_place(|| crate::report::export(&results, &p.dir))?;
    so_far.targets.extend(per_target.iter().cloned());
    so_far.write_json(&p.dir, interrupted)?;
    let rows = &so_far.rows[first..];
    crate::report::latency::print_summary(rows);
    for t in &per_target {
        for w in &t.wedges {
            eprintln!(
                "{}: agentsh wedged {:.0} s into the workload ({}); {} after {:.1} s",
                t.target, w.at_s, w.why, w.outcome, w.recovery_s
            );
        }
    }
    let (wrong, let_through) = wrong_decisions(rows, plan, mode);
    if let_through > 0 {
        println!(
            "mode {mode}: {let_through} denied op(s) got through with the layers that deny them off \
             (not counted as wrong decisions: the mode turned those layers off)"
        );
    }
    let code = if failed > 0 {
        exit::INFRA
    } else if wrong > 0 {
        eprintln!("{wrong} wrong decision(s) under load in mode {mode} (see workload.json for samples)");
        exit::REGRESSION
    } else {
        exit::OK
    };
    Ok((code, interrupted))
}

/// Wrong decisions that count against agentsh, and those that do not: in any mode but `full`
/// some layers are off on purpose, so a denied op that got through there says what the mode
/// removed (an allowed op refused is wrong in every mode).
fn wrong_decisions(rows: &[crate::results::OpTotals], plan: &Plan, mode: Mode) -> (u64, u64) {
    use crate::schema::{Expected, OpKind};
    let denied = |op: &str| {
        plan.ops
            .iter()
            .any(|o| o.name == op && matches!(&o.kind, OpKind::Governed { expected: Expected::Deny { .. }, .. }))
    };
    let (mut wrong, mut let_through) = (0, 0);
    for r in rows {
        if mode != Mode::Full && denied(&r.op) {
            let_through += r.counts.wrong;
        } else {
            wrong += r.counts.wrong;
        }
    }
    (wrong, let_through)
}

/// `up`: provision and leave the targets running. An error leaves what was made for `down`.
pub async fn up(args: &TargetConfig, provider: &dyn Provider, out: Option<&Path>, stop: &Stop) -> Result<u8> {
    let run = provider::new_run_tag();
    let result = tokio::select! {
        r = provision(args, provider, &run, out) => Some(r),
        _ = stop.requested() => None,
    };
    let Some(result) = result else {
        teardown(provider, &run).await;
        eprintln!("interrupted: targets of run {run} destroyed");
        return Ok(exit::INTERRUPTED);
    };
    let p = result?;
    for o in p.outcomes.iter().flatten() {
        println!("{}\t{}", o.target.name, o.target.ssh.hint());
    }
    println!(
        "run {run}: {}/{} ready; `agentsh-bench down --run {run}` removes them",
        provision::ready_count(&p.outcomes),
        p.outcomes.len()
    );
    Ok(if provision::ready_count(&p.outcomes) == p.outcomes.len() { exit::OK } else { exit::INFRA })
}

pub async fn teardown(provider: &dyn Provider, run: &str) {
    match provider.destroy(Some(run)).await {
        Ok(names) => tracing::info!(count = names.len(), run, "targets destroyed"),
        Err(e) => eprintln!("warning: teardown of run {run} failed: {e:#}; run `agentsh-bench down --run {run}`"),
    }
    teardown_state(run);
}

/// The ssh configs and control sockets of a run; harmless to remove twice.
pub fn teardown_state(run: &str) {
    if let Ok(dir) = crate::paths::cache_dir() {
        let _ = std::fs::remove_dir_all(dir.join("runs").join(run));
    }
    let _ = std::fs::remove_dir_all(crate::paths::runtime_dir().join(run));
}

#[cfg(test)]
mod tests {
    //! The pipeline's own logic on a provider that makes no machine (see provider/fake.rs): what
    //! is torn down and when, what is written on the way, and the exit codes. The real-container
    //! tests (tests/) cover the same stages on podman targets.
    use super::*;
    use crate::provider::Engine;
    use crate::provider::fake::FakeProvider;

    fn config(out: &Path, vms: u32, with_suite: bool, keep: bool) -> RunConfig {
        let mut targets = TargetConfig::local("none", Engine::Podman).expect("a valid spec");
        targets.vms = vms;
        RunConfig {
            targets,
            suite: with_suite
                .then(|| SuiteConfig::load(provider::ProviderKind::Local, 1, None).expect("the suite loads")),
            workload: None,
            modes: vec![Mode::Full],
            soak: None,
            // A run folder inside the test's folder: history.csv goes beside it, not into /tmp.
            out: Some(out.join("run")),
            keep,
            junit: None,
            history: crate::analyze::history::load(&crate::analyze::history::default_path()).expect("history.toml"),
        }
    }

    fn destroyed(fake: &FakeProvider) -> Vec<String> {
        fake.calls().into_iter().filter(|c| c.starts_with("destroy ")).collect()
    }

    fn csv_rows(file: &Path) -> Vec<csv::StringRecord> {
        csv::Reader::from_path(file).expect("readable csv").records().map(|r| r.expect("a csv row")).collect()
    }

    #[tokio::test]
    async fn targets_that_never_became_ready_are_written_down_torn_down_and_exit_2() {
        let out = tempfile::tempdir().expect("tempdir");
        let fake = FakeProvider { fail_create: vec![1], ..Default::default() };
        let cfg = config(out.path(), 2, true, false).with_junit(Some(&out.path().join("junit.xml"))).expect("valid");
        let code = main_job(&cfg, &fake, &Stop::never()).await.expect("no error");
        assert_eq!(code, exit::INFRA);
        let calls = fake.calls();
        assert_eq!(calls[0], "prepare");
        assert!(calls[1].starts_with("create ") && calls[1].ends_with(" 2"), "{calls:?}");
        assert_eq!(destroyed(&fake).len(), 1, "torn down once: {calls:?}");
        // Each target's failure is named: target 0 at its first ssh connection, 1 at creation.
        let dir = RunDir::at(out.path().join("run"));
        let rows = csv_rows(&dir.targets_csv());
        let steps: Vec<(&str, &str)> = rows.iter().map(|r| (&r[2], &r[4])).collect();
        assert_eq!(steps, [("failed", "create"), ("failed", "connect")]);
        let run: manifest::Run =
            serde_json::from_slice(&std::fs::read(dir.run_json()).expect("run.json")).expect("a run manifest");
        assert_eq!(run.targets.len(), 2);
        assert!(run.targets.iter().all(|t| matches!(t, manifest::RunTarget::Failed { .. })), "{:?}", run.targets);
        // The suite ran on no target and still left its files, header only.
        assert!(csv_rows(&dir.tests_csv()).is_empty());
        assert!(dir.summary_csv().is_file());
        // The run's line in history.csv beside its folder, its summary.md, and --junit's file
        // with each target's readiness as an error.
        let history = crate::results::history::read(&out.path().join("history.csv")).expect("history.csv");
        assert_eq!(history.rows.len(), 1);
        let line = &history.rows[0];
        assert_eq!((line.targets, line.ready, line.agentsh_version.as_str()), (2, 0, "none"));
        assert!(std::fs::read_to_string(dir.path.join("summary.md")).expect("summary.md").contains("0 of 2"));
        let junit = std::fs::read_to_string(out.path().join("junit.xml")).expect("junit.xml");
        let doc = roxmltree::Document::parse(&junit).expect("valid XML");
        assert_eq!(doc.root_element().attribute("errors"), Some("2"), "{junit}");
    }

    #[tokio::test]
    async fn keep_leaves_the_targets_for_down() {
        let out = tempfile::tempdir().expect("tempdir");
        let fake = FakeProvider::default();
        let code = main_job(&config(out.path(), 1, false, true), &fake, &Stop::never()).await.expect("no error");
        assert_eq!(code, exit::INFRA);
        assert!(destroyed(&fake).is_empty(), "{:?}", fake.calls());
        let kept = fake.list().await.expect("list");
        assert_eq!(kept.len(), 1);
        // What `down` would remove: the run's ssh configs and sockets.
        teardown_state(&kept[0].run);
    }

    #[tokio::test]
    async fn an_error_while_provisioning_destroys_the_run_and_is_returned() {
        let out = tempfile::tempdir().expect("tempdir");
        let fake = FakeProvider { fail_prepare: true, ..Default::default() };
        let e = main_job(&config(out.path(), 2, true, false), &fake, &Stop::never()).await.expect_err("an error");
        assert!(format!("{e:#}").contains("told to fail preparing"), "{e:#}");
        assert_eq!(exit::code_for(&e), exit::INFRA);
        let calls = fake.calls();
        assert!(!calls.iter().any(|c| c.starts_with("create")), "{calls:?}");
        assert_eq!(destroyed(&fake).len(), 1, "{calls:?}");
    }

    #[tokio::test]
    async fn ctrl_c_while_provisioning_destroys_the_run_and_exits_130() {
        let out = tempfile::tempdir().expect("tempdir");
        let fake = FakeProvider::default();
        let code = main_job(&config(out.path(), 2, true, false), &fake, &Stop::raised()).await.expect("no error");
        assert_eq!(code, exit::INTERRUPTED);
        assert_eq!(destroyed(&fake).len(), 1, "{:?}", fake.calls());
        assert!(fake.list().await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn a_stop_is_seen_by_every_stage_that_waits_on_it() {
        let stop = Stop::raised();
        tokio::time::timeout(std::time::Duration::from_secs(1), stop.requested()).await.expect("resolves at once");
        assert!(stop.is_raised() && *stop.receiver().borrow());
        let never = Stop::never();
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), never.requested()).await.is_err());
    }
}

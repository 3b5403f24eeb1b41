//! What each subcommand does, in terms of the pipeline stages.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::agentsh::{self, Artifact, Spec};
use crate::cli::{BenchKind, Cli, Command, Engine, ProviderKind, TargetArgs, WorkloadArgs};
use crate::exit;
use crate::progress::Board;
use crate::provider::{self, Provider, ProviderOpts};
use crate::provision::{self, Failed, Outcome, Setup};
use crate::results::{HlogKind, RunDir, manifest};
use crate::schema::Plan;

pub async fn dispatch(cli: Cli) -> Result<u8> {
    match cli.command {
        None => main_job(&cli.targets, &cli.workload, cli.out.as_deref(), cli.keep).await,
        Some(Command::Driver) => unreachable!("the driver runs before the async runtime starts"),
        Some(Command::Manifest { config, alias, against }) => manifest(config, alias, against.as_deref()).await,
        Some(Command::Compare { base, run, workload }) => compare(&base, &run, workload.as_deref()),
        Some(Command::Up { targets, out }) => up(&targets, out.as_deref()).await,
        Some(Command::Down { run, provider, engine, exe_host, exe_ssh_config }) => {
            let p = control_only(provider, engine, &exe_host, exe_ssh_config.as_deref())?;
            down(p.as_ref(), run.as_deref()).await
        }
        Some(Command::Ls { provider, engine, exe_host, exe_ssh_config }) => {
            let p = control_only(provider, engine, &exe_host, exe_ssh_config.as_deref())?;
            ls(p.as_ref()).await
        }
        Some(Command::Image { engine, rebuild }) => {
            let tag = tokio::task::spawn_blocking(move || provider::image::ensure(engine, rebuild)).await??;
            println!("{tag}");
            Ok(exit::OK)
        }
        Some(Command::Fetch { spec }) => {
            let spec = Spec::parse(&spec)?;
            match resolve(spec).await? {
                Some(a) => println!("{} (agentsh {}, from {})", a.deb.display(), a.version, a.source),
                None => println!("none"),
            }
            Ok(exit::OK)
        }
        Some(Command::Bench { which: BenchKind::Provision { sizes, agentsh, engine, runs } }) => {
            crate::bench::provision(&sizes, &agentsh, engine, runs).await
        }
        Some(Command::Bench { which: BenchKind::Suite { sizes, agentsh, engine, iterations } }) => {
            crate::bench::suite(&sizes, &agentsh, engine, iterations).await
        }
        Some(Command::Bench { which: BenchKind::Driver { rates, duration, soak, engine } }) => {
            crate::bench::driver(&rates, duration, soak, engine).await
        }
    }
}

fn control_only(
    kind: ProviderKind,
    engine: Engine,
    exe_host: &str,
    exe_ssh_config: Option<&Path>,
) -> Result<Box<dyn Provider>> {
    if kind == ProviderKind::Ssh {
        return Err(exit::usage(
            "inventory hosts are not created or destroyed by the harness; nothing to list or remove",
        ));
    }
    provider::build(ProviderOpts { kind, engine, inventory: None, exe_host, exe_ssh_config })
}

pub fn provider_for(args: &TargetArgs) -> Result<Box<dyn Provider>> {
    provider::build(ProviderOpts {
        kind: args.provider,
        engine: args.engine,
        inventory: args.inventory.as_deref(),
        exe_host: &args.exe_host,
        exe_ssh_config: args.exe_ssh_config.as_deref(),
    })
}

async fn resolve(spec: Spec) -> Result<Option<Artifact>> {
    tokio::task::spawn_blocking(move || agentsh::resolve(&spec)).await.context("resolver task panicked")?
}

/// Everything a provisioned run knows.
pub struct Provisioned {
    pub dir: RunDir,
    pub outcomes: Vec<Outcome>,
    /// sha256 of the config and policy installed (the suite checks they are the ones on disk).
    pub config_sha: String,
    pub policy_sha: String,
    /// agentsh's event store on the targets (from the config installed).
    pub events_db: String,
    /// Where this run's SSH control sockets live (every later stage reconnects there).
    pub control_dir: std::path::PathBuf,
}

/// Checks the arguments before anything slow, obtains agentsh, then creates and hardens the targets.
pub async fn provision(
    args: &TargetArgs,
    provider: &dyn Provider,
    run: &str,
    out: Option<&Path>,
) -> Result<Provisioned> {
    args.validate()?;
    let spec = Spec::parse(&args.agentsh)?;
    // Checked before the (possibly long) build, then again with the version's own overrides.
    provision::assets::load(provider.kind(), None, args.config.as_deref(), args.policy.as_deref())?;

    let started = Instant::now();
    let artifact = resolve(spec).await?;
    let version = artifact.as_ref().map(|a| a.version.as_str());
    let assets = provision::assets::load(provider.kind(), version, args.config.as_deref(), args.policy.as_deref())?;
    let t_artifact = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    provider.prepare().await.with_context(|| format!("preparing the {} provider", provider.kind()))?;
    let t_prepare = t0.elapsed().as_secs_f64();

    let dir = RunDir::create(out, run)?;
    let state_dir = crate::paths::cache_dir()?.join("runs").join(run);
    let control_dir = crate::paths::runtime_dir().join(run);
    let setup = Arc::new(Setup::new(artifact.clone(), assets, control_dir)?);
    let board = Board::new();
    board.println(&format!(
        "run {run}: {} × {} target(s), agentsh {}",
        args.vms,
        provider.kind(),
        artifact.as_ref().map_or("none (baseline)".to_string(), |a| format!("{} ({})", a.version, a.source))
    ));

    let t0 = Instant::now();
    let created = provider.create(run, args.vms, &state_dir).await;
    let mut targets = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (i, c) in created.into_iter().enumerate() {
        match c {
            Ok(t) => targets.push(t),
            Err(e) => {
                let name = provider::target_name(run, i as u32);
                board.println(&format!("[{name}] FAILED at step create: {e:#}"));
                outcomes.push(Err(Failed {
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
    outcomes.extend(provision::all(targets, setup.clone(), &dir.path, &board).await);
    let t_provision = t0.elapsed().as_secs_f64();

    dir.write_targets(&outcomes)?;
    dir.write_json(
        &dir.run_json(),
        &manifest::Run {
            run: run.into(),
            harness_version: env!("CARGO_PKG_VERSION").into(),
            provider: provider.kind().into(),
            vms: args.vms,
            agentsh_spec: args.agentsh.clone(),
            artifact: artifact.clone(),
            config_source: setup.assets.config_source.clone(),
            policy_source: setup.assets.policy_source.clone(),
            seconds: manifest::RunSeconds {
                artifact: t_artifact,
                prepare: t_prepare,
                create_and_provision: t_provision,
            },
            targets: outcomes.iter().map(manifest::RunTarget::from).collect(),
        },
    )?;
    provision::summarize(&outcomes);
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    Ok(Provisioned {
        dir,
        outcomes,
        config_sha: sha(&setup.assets.config),
        policy_sha: sha(&setup.assets.policy),
        events_db: setup.assets.events_db(),
        control_dir: setup.control_dir.clone(),
    })
}

/// The workload plan of a run, loaded and checked before anything is provisioned.
pub fn workload_plan(w: &WorkloadArgs) -> Result<Option<Plan>> {
    if w.workload == "none" {
        if w.duration.is_some() || w.rate.is_some() {
            return Err(exit::usage("--duration and --rate go with --workload NAME"));
        }
        return Ok(None);
    }
    let plan = crate::workload::load(&w.workload)?;
    crate::workload::with_overrides(plan, w.duration, w.rate).map(Some)
}

/// The main job: provision, check readiness, run the workload if one is named, tear down.
/// (The security suite comes with the suite issue.)
async fn main_job(args: &TargetArgs, w: &WorkloadArgs, out: Option<&Path>, keep: bool) -> Result<u8> {
    let plan = workload_plan(w)?;
    // The suite, its integrity excludes and its environment file are checked before anything is
    // provisioned.
    let suite = if w.iterations > 0 {
        Some((
            crate::suite::load(&crate::suite::suite_dir())?,
            crate::suite::integrity::load(&crate::suite::integrity::default_path())?,
        ))
    } else {
        None
    };
    let baseline = match &w.baseline {
        Some(dir) if w.iterations > 0 => {
            Some(crate::analyze::regressions::load(dir).map_err(|e| exit::usage(format!("--baseline: {e:#}")))?)
        }
        Some(_) => return Err(exit::usage("--baseline compares suite verdicts: it needs --iterations of 1 or more")),
        None => None,
    };
    let gaps = crate::suite::environment_gaps(match args.provider {
        ProviderKind::Local => "local",
        ProviderKind::Exe => "exe",
        ProviderKind::Ssh => "ssh",
    })?;
    let provider = provider_for(args)?;
    let run = provider::new_run_tag();
    // Ctrl-C while provisioning drops the job (its ssh and engine child processes die with it);
    // during the workload it stops the drivers and keeps what they sent (see run_workload).
    let provisioned = tokio::select! {
        r = provision(args, provider.as_ref(), &run, out) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let p = match provisioned {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            teardown(provider.as_ref(), &run).await;
            return Err(e);
        }
        None => {
            teardown(provider.as_ref(), &run).await;
            eprintln!("interrupted: targets of run {run} destroyed");
            return Ok(exit::INTERRUPTED);
        }
    };
    let (suite_code, suite_interrupted) = match &suite {
        Some((suite, integrity)) => run_suite(&p, suite, integrity, w, &gaps, baseline.as_ref(), &run).await?,
        None => (exit::OK, false),
    };
    let (code, interrupted) = match &plan {
        Some(plan) if !suite_interrupted => run_workload(&p, plan).await?,
        _ => (exit::OK, suite_interrupted),
    };
    // The worse of the two, a regression (1) outranking an unproven or failed run (2).
    let code = match (suite_code, code) {
        (exit::OK, c) | (c, exit::OK) => c,
        (a, b) => a.min(b),
    };
    if !keep || interrupted {
        teardown(provider.as_ref(), &run).await;
    }
    let ready = provision::ready_count(&p.outcomes);
    println!("{ready}/{} target(s) ready; results in {}", p.outcomes.len(), p.dir.path.display());
    if interrupted {
        eprintln!("interrupted: partial results kept, targets of run {run} destroyed");
        return Ok(exit::INTERRUPTED);
    }
    if keep {
        println!("kept: `agentsh-bench down --run {run}` removes them");
    }
    Ok(if ready < p.outcomes.len() { exit::INFRA } else { code })
}

/// Compares each version's verdicts with `scenarios/expectations/v<version>.toml`, prints what
/// moved and writes expectations.csv. Informational: the exit code stays the verdicts' own, since
/// a violation that is expected is still a violation.
fn report_expectations(suite: &crate::suite::Suite, rows: &[crate::suite::run::Row], out: &Path) -> Result<()> {
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

/// Runs the suite `w.iterations` times on every ready target at once, and the integrity check
/// around it (one `integrity` row per target, tallied like a test); writes tests.csv (row by row)
/// and summary.csv, also after Ctrl-C. Exit 1 when a test was violated or flaky, 2 when some were
/// only inconclusive (nothing proven either way), 0 when every verdict held.
pub(crate) async fn run_suite(
    p: &Provisioned,
    suite: &crate::suite::Suite,
    integrity: &crate::suite::integrity::Excludes,
    w: &WorkloadArgs,
    gaps: &std::collections::BTreeMap<String, String>,
    baseline: Option<
        &std::collections::BTreeMap<crate::suite::run::TestId, (String, crate::analyze::regressions::State)>,
    >,
    run: &str,
) -> Result<(u8, bool)> {
    use crate::report::verdicts;
    let (iterations, shuffle) = (w.iterations, w.shuffle);
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
    let csv = std::sync::Mutex::new(verdicts::TestsCsv::create(&p.dir.tests_csv())?);
    let rows = std::sync::Mutex::new(Vec::new());
    let jobs = ready.iter().map(|r| {
        let (cx, csv, rows, board) = (&cx, &csv, &rows, &board);
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
        _ = tokio::signal::ctrl_c() => (Vec::new(), true),
    };
    let failed = results.iter().filter(|r| r.is_err()).count();
    let rows = rows.into_inner().map_err(|_| anyhow::anyhow!("rows lock poisoned"))?;
    let tallies = verdicts::tally(&rows);
    verdicts::write_summary(&p.dir.summary_csv(), &tallies)?;
    if let Err(e) = crate::report::charts::heatmap(&rows, &p.dir.suite_charts_dir()) {
        eprintln!("warning: suite heatmap: {e:#}");
    }
    let mut regressions = Vec::new();
    if let Some(before) = baseline {
        use crate::analyze::regressions::{Change, find, write_csv};
        let changes = find(before, &verdicts::states(&tallies));
        write_csv(&p.dir.regressions_csv(), &changes)?;
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
        regressions = changes.into_iter().filter(|r| r.change == Change::Broken).collect();
    }
    let (bad, unsure) = verdicts::print_summary(&tallies);
    report_expectations(suite, &rows, &p.dir.path)?;
    let code = if bad > 0 || !regressions.is_empty() {
        exit::REGRESSION
    } else if failed > 0 || unsure > 0 || interrupted {
        exit::INFRA
    } else {
        exit::OK
    };
    Ok((code, interrupted))
}

/// Runs the workload on every ready target at once; writes latency.csv, histograms/, charts/ and
/// workload.json, also after Ctrl-C (from what the drivers had sent). Returns the exit code (1
/// when an op decided wrongly, 2 when a target's driver failed) and whether it was interrupted.
async fn run_workload(p: &Provisioned, plan: &Plan) -> Result<(u8, bool)> {
    let ready: Vec<_> = p.outcomes.iter().flatten().cloned().collect();
    let board = Board::new();
    board.println(&format!(
        "workload {} on {} target(s): {:?}, {} s",
        plan.name,
        ready.len(),
        plan.load,
        plan.duration_ms / 1000
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let on_ctrl_c = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop_tx.send(true);
            }
        })
    };
    let results =
        crate::workload::remote::run_all(&ready, plan, "", &p.control_dir, &p.dir.path, &board, stop_rx).await;
    on_ctrl_c.abort();
    let interrupted = *stop_tx.borrow();
    let mut rows = Vec::new();
    let mut failed = 0;
    let mut per_target = Vec::new();
    for r in results {
        match r {
            Ok(t) => {
                per_target.push(manifest::WorkloadTarget {
                    target: t.target,
                    partial: t.partial,
                    driver_rss_kb_first_minute: t.driver_rss_kb_first_minute,
                    driver_rss_kb_last_minute: t.driver_rss_kb_last_minute,
                    finished: t.finished,
                });
                rows.extend(t.totals);
            }
            Err(e) => {
                failed += 1;
                eprintln!("workload failed: {e:#}");
            }
        }
    }
    crate::report::write_latency_csv(&p.dir.latency_csv(), &rows)?;
    render_charts(&p.dir, &plan.name, &ready).await;
    p.dir.write_json(
        &p.dir.workload_json(),
        &manifest::Workload { plan: plan.clone(), interrupted, targets: per_target },
    )?;
    crate::report::print_summary(&rows);
    let wrong: u64 = rows.iter().map(|r| r.wrong).sum();
    let code = if failed > 0 {
        exit::INFRA
    } else if wrong > 0 {
        eprintln!("{wrong} wrong decision(s) under load (see workload.json for samples)");
        exit::REGRESSION
    } else {
        exit::OK
    };
    Ok((code, interrupted))
}

async fn up(args: &TargetArgs, out: Option<&Path>) -> Result<u8> {
    let provider = provider_for(args)?;
    let run = provider::new_run_tag();
    let result = tokio::select! {
        r = provision(args, provider.as_ref(), &run, out) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(result) = result else {
        teardown(provider.as_ref(), &run).await;
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

/// Charts per target from its response-time hlog; a chart that fails is reported, not fatal
/// (the data it would show is in latency.csv and the hlog).
async fn render_charts(dir: &RunDir, workload: &str, ready: &[provision::Ready]) {
    let jobs: Vec<(std::path::PathBuf, std::path::PathBuf, String)> = ready
        .iter()
        .map(|r| {
            let name = r.target.name.clone();
            (dir.hlog(workload, &name, HlogKind::Response), dir.workload_charts_dir(workload), name)
        })
        .collect();
    let result = tokio::task::spawn_blocking(move || {
        for (hlog, out, name) in jobs {
            if hlog.is_file()
                && let Err(e) = crate::report::charts::render(&hlog, &out, &name, &name)
            {
                eprintln!("warning: charts for {name}: {e:#}");
            }
        }
    })
    .await;
    if let Err(e) = result {
        eprintln!("warning: chart rendering stopped: {e}");
    }
}

async fn teardown(provider: &dyn Provider, run: &str) {
    match provider.destroy(Some(run)).await {
        Ok(names) => tracing::info!(count = names.len(), run, "targets destroyed"),
        Err(e) => eprintln!("warning: teardown of run {run} failed: {e:#}; run `agentsh-bench down --run {run}`"),
    }
    teardown_state(run);
}

async fn down(provider: &dyn Provider, run: Option<&str>) -> Result<u8> {
    if let Some(r) = run {
        provider::validate_run_tag(r)?;
    }
    let names = provider.destroy(run).await?;
    for n in &names {
        println!("destroyed {n}");
    }
    let runs: std::collections::BTreeSet<String> = match run {
        Some(r) => [r.to_string()].into(),
        None => names.iter().filter_map(|n| provider::run_of(n).map(String::from)).collect(),
    };
    for r in runs {
        teardown_state(&r);
    }
    println!("{} target(s) destroyed", names.len());
    Ok(exit::OK)
}

/// The ssh configs and control sockets of a run; harmless to remove twice.
fn teardown_state(run: &str) {
    if let Ok(dir) = crate::paths::cache_dir() {
        let _ = std::fs::remove_dir_all(dir.join("runs").join(run));
    }
    let _ = std::fs::remove_dir_all(crate::paths::runtime_dir().join(run));
}

fn compare(base: &Path, run: &Path, workload: Option<&str>) -> Result<u8> {
    let workloads = |d: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(RunDir::at(d).histograms_dir())
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let workload = match workload {
        Some(w) => w.to_string(),
        None => {
            let both: Vec<String> = workloads(base).intersection(&workloads(run)).cloned().collect();
            match both.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(exit::usage(format!(
                        "{} and {} have no workload in common",
                        base.display(),
                        run.display()
                    )));
                }
                many => {
                    return Err(exit::usage(format!(
                        "both runs have several workloads ({}): pick one with --workload",
                        many.join(", ")
                    )));
                }
            }
        }
    };
    let b = crate::analyze::load(base, &workload).map_err(|e| exit::usage(format!("{e:#}")))?;
    let r = crate::analyze::load(run, &workload).map_err(|e| exit::usage(format!("{e:#}")))?;
    for op in b.keys().filter(|k| !r.contains_key(*k)) {
        eprintln!("note: op {op} is only in the baseline");
    }
    for op in r.keys().filter(|k| !b.contains_key(*k)) {
        eprintln!("note: op {op} is only in the run");
    }
    let rows = crate::analyze::compare(&b, &r);
    crate::analyze::print(&rows);
    let out = RunDir::at(run).comparison_csv(&workload);
    crate::analyze::write_csv(&out, &rows)?;
    println!("written: {}", out.display());
    Ok(exit::OK)
}

async fn manifest(config_file: std::path::PathBuf, alias: String, against: Option<&Path>) -> Result<u8> {
    use crate::suite::integrity;
    // Read before connecting: a bad file is bad usage, not a target's fault.
    let before = match against {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| exit::usage(format!("{}: {e}", p.display())))?;
            Some(integrity::parse(&text).map_err(|e| exit::usage(format!("{}: {e:#}", p.display())))?)
        }
        None => None,
    };
    let excludes = integrity::load(&integrity::default_path())?;
    let control_dir = crate::paths::runtime_dir().join(format!("manifest-{}", std::process::id()));
    let dest = crate::control::SshDest { config_file, alias };
    // In a block of its own: the connection ends before its control directory is removed.
    let taken =
        async { integrity::take(&crate::control::Conn::connect(&dest.alias, &dest, &control_dir, 3).await?).await }
            .await;
    let _ = std::fs::remove_dir_all(&control_dir);
    let now = taken?;
    let Some(before) = before else {
        print!("{}", now.to_jsonl()?);
        return Ok(exit::OK);
    };
    let changes = integrity::diff(&before, &now, &excludes);
    for c in &changes {
        println!("{c}");
    }
    Ok(if changes.is_empty() { exit::OK } else { exit::REGRESSION })
}

async fn ls(provider: &dyn Provider) -> Result<u8> {
    let list = provider.list().await?;
    for t in &list {
        println!("{}\t{}\t{}", t.name, t.run, t.state);
    }
    if list.is_empty() {
        eprintln!("no targets");
    }
    Ok(exit::OK)
}

//! The soak (`--soak DURATION`): the suite and the workload again and again on every target until
//! the time is up, with the nemesis's faults fired on their schedule meanwhile.
//!
//! A round is one suite iteration per target (`--iterations` of them), then one workload round of
//! `--duration` (cut to what time is left). A phase that started before the end runs to its own
//! end, so the last round may finish a little after the soak's time. Nothing grows in memory with
//! the soak's length but the workload's per-round totals (a few hundred bytes per op, target and
//! round): suite rows go to tests.csv as they end and are read back once at the end, faults go to
//! faults.csv, and every workload round has its own hlogs under `histograms/<workload>-rN/`. A soak
//! killed at any point leaves all of these readable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::{Provisioned, Stop, WorkloadSoFar, measure, worse};
use crate::config::{RunConfig, SoakConfig, SuiteConfig};
use crate::exit;
use crate::nemesis::{self, FailClosed};
use crate::progress::Board;
use crate::provider::Provider;
use crate::provision::Ready;
use crate::report::trends::Window;
use crate::results::manifest;
use crate::suite::run::{Row, SuiteRun, TestId};

/// soak.json: what the soak was asked and what it did.
#[derive(Debug, serde::Serialize)]
pub struct SoakJson {
    pub duration_s: f64,
    pub rounds: u32,
    pub elapsed_s: f64,
    pub interrupted: bool,
    pub faults_planned: Vec<String>,
    pub faults_applied: usize,
    /// The clock `faults.csv`'s and the trends' seconds count from, as seconds since the epoch:
    /// what puts the rounds' hlogs on one clock (`charts/soak-latency.svg`).
    pub t0_epoch_s: f64,
}

/// What the rounds and the nemesis share.
struct Shared {
    t0: Instant,
    /// `t0` as seconds since the epoch: what puts the rounds' hlogs on the run's clock.
    t0_epoch_s: f64,
    /// tests.csv, opened once for the whole soak.
    tests: Mutex<crate::report::verdicts::TestsCsv>,
    faults: Mutex<nemesis::FaultsCsv>,
    /// Targets a fault destroyed: out of every later round.
    dropped: Mutex<BTreeSet<String>>,
    /// When the last fault on each target started (seconds on `t0`): a round on that target that
    /// a fault cut short is the fault's doing, not the harness failing.
    last_fault: Mutex<BTreeMap<String, f64>>,
    /// Verdict counts so far, for the progress line.
    verdicts: Mutex<BTreeMap<&'static str, u64>>,
    fault_rows: Mutex<Vec<nemesis::FaultRow>>,
}

impl Shared {
    fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<std::sync::MutexGuard<'a, T>> {
        m.lock().map_err(|_| anyhow!("{what} lock poisoned"))
    }

    fn write_row(&self, run: &str, row: &Row) -> Result<()> {
        Self::lock(&self.tests, "tests.csv")?.row(run, row)?;
        *Self::lock(&self.verdicts, "verdicts")?.entry(row.verdict.as_str()).or_default() += 1;
        Ok(())
    }

    fn live(&self, ready: &[Ready]) -> Vec<Ready> {
        let dropped = self.dropped.lock().map(|d| d.clone()).unwrap_or_default();
        ready.iter().filter(|r| !dropped.contains(&r.target.name)).cloned().collect()
    }

    /// Whether a failure of `target` in a phase that started at `since` is a fault's doing.
    fn excused(&self, target: &str, since: f64) -> bool {
        self.dropped.lock().is_ok_and(|d| d.contains(target))
            || self.last_fault.lock().is_ok_and(|m| m.get(target).is_some_and(|at| *at >= since))
            || nemesis::under_fault(target)
    }

    fn progress(&self, soak: &SoakConfig, round: u32) -> String {
        let v = self.verdicts.lock().map(|v| v.clone()).unwrap_or_default();
        let n = |k: &str| v.get(k).copied().unwrap_or(0);
        // Counted under the lock: the progress line needs two numbers, not a copy of every row.
        let (applied, open) = self
            .fault_rows
            .lock()
            .map(|f| (f.len(), f.iter().filter(|f| f.fail_closed == FailClosed::Violated).count()))
            .unwrap_or_default();
        format!(
            "soak {}/{}: round {round}, {} verdicts ({} violated, {} inconclusive), {} fault(s) applied ({} failed open)",
            mmss(self.t0.elapsed()),
            mmss(soak.duration),
            v.values().sum::<u64>(),
            n("violated"),
            n("inconclusive"),
            applied,
            open
        )
    }
}

fn mmss(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 { format!("{}h{:02}m", s / 3600, s % 3600 / 60) } else { format!("{}m{:02}s", s / 60, s % 60) }
}

/// Runs the soak on the provisioned targets. Returns the exit code (1 for a violated or flaky
/// test, a wrong decision or a fault that failed open; 2 when something was only inconclusive or a
/// target failed other than by a fault) and whether Ctrl-C ended it.
pub async fn run(
    p: &Provisioned,
    cfg: &RunConfig,
    soak: &SoakConfig,
    provider: &dyn Provider,
    run: &str,
    stop: &Stop,
) -> Result<(u8, bool)> {
    let ready: Vec<Ready> = p.outcomes.iter().flatten().cloned().collect();
    let board = Board::new();
    let planned: Vec<String> =
        soak.faults.iter().map(|f| format!("{}@{}", f.fault, humantime::format_duration(f.at))).collect();
    board.println(&format!(
        "soak: {} on {} target(s){}",
        humantime::format_duration(soak.duration),
        ready.len(),
        if planned.is_empty() { String::new() } else { format!(", faults {}", planned.join(", ")) }
    ));
    let shared = Shared {
        t0: Instant::now(),
        t0_epoch_s: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        tests: Mutex::new(crate::report::verdicts::TestsCsv::create(&p.dir.tests_csv())?),
        faults: Mutex::new(nemesis::FaultsCsv::create(&p.dir.faults_csv())?),
        dropped: Mutex::default(),
        last_fault: Mutex::default(),
        verdicts: Mutex::default(),
        fault_rows: Mutex::default(),
    };
    // agentsh's resources on every target, all along (trends-samples.csv, then trends.csv).
    let sampling =
        crate::trends::Sampling::start(&ready, &p.control_dir, &p.events_db, soak.trend_every, &p.dir, shared.t0)?;
    let end = shared.t0 + soak.duration;
    let (over_tx, over) = tokio::sync::watch::channel(false);
    let rounds = async {
        let r = rounds(p, cfg, soak, &ready, &shared, end, run, &board, stop).await;
        let _ = over_tx.send(true);
        r
    };
    let nemesis = async {
        tokio::select! {
            () = faults(p, soak, provider, &ready, &shared, &sampling, run, &board, over) => {}
            () = stop.requested() => {}
        }
    };
    // The nemesis ends with the rounds, but a fault under way finishes first (its target is put
    // back as it would be mid-soak); one planned after the last round ended never fires.
    let ((rounds_result, rounds_done), ()) = tokio::join!(rounds, nemesis);
    let finished = sampling.finish().await;
    let (code, interrupted) = rounds_result?;
    let fault_rows = shared.fault_rows.lock().map(|f| f.clone()).unwrap_or_default();
    let trend_code = match finished {
        Ok(()) => conclude_trends(p, &fault_rows),
        Err(e) => {
            eprintln!("warning: trends: {e:#}");
            exit::INFRA
        }
    };
    p.dir.write_json(
        &p.dir.soak_json(),
        &SoakJson {
            duration_s: soak.duration.as_secs_f64(),
            rounds: rounds_done,
            elapsed_s: shared.t0.elapsed().as_secs_f64(),
            interrupted,
            faults_planned: planned,
            faults_applied: fault_rows.len(),
            t0_epoch_s: shared.t0_epoch_s,
        },
    )?;
    if cfg.workload.is_some()
        && let Err(e) = tokio::task::block_in_place(|| crate::report::soak::redraw(&p.dir))
    {
        eprintln!("warning: {}: {e:#}", p.dir.soak_latency_svg().display());
    }
    let suite_code = finish_suite(p, cfg.suite.as_ref(), &fault_rows)?;
    let fault_code = report_faults(&fault_rows, soak.faults.len());
    Ok((worse(worse(code, suite_code), worse(fault_code, trend_code)), interrupted))
}

/// The rounds, until the time is up or Ctrl-C. Returns (exit code, interrupted) and the number
/// of rounds begun.
#[allow(clippy::too_many_arguments)]
async fn rounds(
    p: &Provisioned,
    cfg: &RunConfig,
    soak: &SoakConfig,
    ready: &[Ready],
    shared: &Shared,
    end: Instant,
    run: &str,
    board: &Board,
    stop: &Stop,
) -> (Result<(u8, bool)>, u32) {
    let mut so_far = cfg.workload.as_ref().map(WorkloadSoFar::new);
    let (mut code, mut round) = (exit::OK, 0);
    let mut next_iteration = 1;
    let result = async {
        while Instant::now() < end && !stop.is_raised() {
            round += 1;
            board.println(&shared.progress(soak, round));
            let live = shared.live(ready);
            if live.is_empty() {
                board.println("soak: no target left");
                break;
            }
            if let Some(s) = &cfg.suite {
                let c = suite_round(p, s, &live, next_iteration, shared, run, board, stop).await?;
                next_iteration += s.iterations;
                code = worse(code, c);
                if stop.is_raised() {
                    return Ok((code, true));
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if let (Some(plan), Some(so_far)) = (&cfg.workload, so_far.as_mut())
                && left >= Duration::from_secs(2)
            {
                let live = shared.live(ready);
                let duration_ms = (plan.duration_ms).min(left.as_millis() as u64);
                let key = format!("{}-r{round}", plan.name);
                let round_plan = crate::schema::Plan { name: key, duration_ms, ..plan.clone() };
                let since = shared.t0.elapsed().as_secs_f64();
                let excused = |t: &str| shared.excused(t, since);
                let mode = crate::provision::modes::Mode::Full;
                let (c, stopped) = measure(p, &live, &round_plan, mode, board, stop, so_far, &excused).await?;
                // latency.csv has the round: its histograms need not stay in memory.
                so_far.flush_rows();
                code = worse(code, c);
                if stopped {
                    return Ok((code, true));
                }
            }
            if cfg.suite.is_none() && cfg.workload.is_none() {
                // Nothing to repeat: the soak is the nemesis and the trends alone.
                tokio::select! {
                    () = tokio::time::sleep_until(end.into()) => {}
                    () = stop.requested() => return Ok((code, true)),
                }
            }
        }
        Ok((code, stop.is_raised()))
    }
    .await;
    (result, round)
}

/// One suite round on the live targets at once: `s.iterations` iterations numbered on from
/// `first`, each row to tests.csv as it ends. A target that fails because a fault hit it is
/// excused; any other failure makes the round exit 2.
#[allow(clippy::too_many_arguments)]
async fn suite_round(
    p: &Provisioned,
    s: &SuiteConfig,
    live: &[Ready],
    first: u32,
    shared: &Shared,
    run: &str,
    board: &Board,
    stop: &Stop,
) -> Result<u8> {
    let cx = SuiteRun {
        suite: &s.suite,
        iterations: s.iterations,
        first_iteration: first,
        shuffle: s.shuffle,
        gaps: &s.gaps,
        integrity: &s.integrity,
        config_sha: p.config_sha.clone(),
        policy_sha: p.policy_sha.clone(),
        events_db: p.events_db.clone(),
        control_dir: &p.control_dir,
        out: &p.dir.path,
    };
    let since = shared.t0.elapsed().as_secs_f64();
    let jobs = live.iter().map(|r| {
        let cx = &cx;
        async move {
            let line = board.line(&format!("{} suite", r.target.name));
            let res = crate::suite::run::run_target(r, cx, &line, |row| shared.write_row(run, &row)).await;
            match &res {
                Ok(()) => line.finish(true, &format!("iteration {first} done")),
                Err(e) => line.finish(false, &format!("{e:#}")),
            }
            (r.target.name.clone(), res)
        }
    });
    let results = tokio::select! {
        r = futures::future::join_all(jobs) => r,
        () = stop.requested() => return Ok(exit::INFRA),
    };
    let mut code = exit::OK;
    for (name, r) in results {
        if let Err(e) = r {
            if shared.excused(&name, since) {
                eprintln!("{name}: suite round cut short by a fault: {e:#}");
            } else {
                eprintln!("{name}: suite round failed: {e:#}");
                code = exit::INFRA;
            }
        }
    }
    Ok(code)
}

/// The nemesis: each planned fault at its time, on the live targets in turn. Each fault's row
/// goes to faults.csv and its fail-closed verdict to tests.csv as soon as it is over. Returns
/// after the last fault, or when `over` says the rounds ended (never in the middle of a fault).
#[allow(clippy::too_many_arguments)]
async fn faults(
    p: &Provisioned,
    soak: &SoakConfig,
    provider: &dyn Provider,
    ready: &[Ready],
    shared: &Shared,
    sampling: &crate::trends::Sampling,
    run: &str,
    board: &Board,
    mut over: tokio::sync::watch::Receiver<bool>,
) {
    let cx =
        nemesis::apply::Ctx { provider, control_dir: &p.control_dir, out: &p.dir.path, hold: soak.hold, t0: shared.t0 };
    for (n, planned) in soak.faults.iter().enumerate() {
        // Biased: a fault whose time came before the rounds ended fires even if the faults before
        // it made it late (their recoveries are its queue); one planned after the end never does.
        tokio::select! {
            biased;
            () = tokio::time::sleep_until((shared.t0 + planned.at).into()) => {}
            _ = over.wait_for(|over| *over) => return,
        }
        let live = shared.live(ready);
        let Some(target) = live.get(n % live.len().max(1)) else {
            board.println(&format!("fault {}: no target left to apply it to", planned.fault));
            continue;
        };
        let line = board.line(&format!("{} fault {}", target.target.name, planned.fault));
        line.step("applying, probing, recovering");
        if let Ok(mut m) = shared.last_fault.lock() {
            m.insert(target.target.name.clone(), shared.t0.elapsed().as_secs_f64());
        }
        let row = nemesis::apply::apply(&cx, target, planned.fault, n as u32 + 1).await;
        if let Ok(mut m) = shared.last_fault.lock() {
            // A round that started while the fault was on is excused too.
            m.insert(target.target.name.clone(), shared.t0.elapsed().as_secs_f64());
        }
        if row.recovered == "dropped" {
            sampling.forget(&target.target.name);
            if let Ok(mut d) = shared.dropped.lock() {
                d.insert(target.target.name.clone());
            }
        }
        line.finish(
            row.fail_closed != FailClosed::Violated,
            &format!(
                "fail-closed {}; {} ({})",
                row.fail_closed.as_str(),
                row.recovery,
                row.recover_s.map_or("—".to_string(), |s| format!("{s:.1} s"))
            ),
        );
        let verdict_row = fault_verdict(target, &row);
        let written = Shared::lock(&shared.faults, "faults.csv")
            .and_then(|mut f| f.row(&row))
            .and_then(|()| shared.write_row(run, &verdict_row));
        if let Err(e) = written {
            eprintln!("warning: fault {} not written: {e:#}", row.fault);
        }
        if let Ok(mut rows) = shared.fault_rows.lock() {
            rows.push(row);
        }
    }
}

/// A fault's fail-closed verdict as a tests.csv row (`fault:NAME`), tallied like a test.
fn fault_verdict(ready: &Ready, f: &nemesis::FaultRow) -> Row {
    Row {
        target: f.target.clone(),
        agentsh_version: ready.agentsh_version.clone().unwrap_or_else(|| "none".into()),
        iteration: 0,
        category: "fault".into(),
        test_id: TestId::Fault(f.fault),
        test: format!("fails closed under {}", f.fault),
        verdict: f.fail_closed.verdict(),
        expected: "governed commands fail or are refused while agentsh is hurt; none runs ungoverned".into(),
        evidence: f.detail.clone(),
        duration_ms: (f.duration_s * 1000.0) as u64,
        detail: format!(
            "recovery: {}; recovered {}{}",
            f.recovery,
            f.recovered,
            f.recover_s.map_or(String::new(), |s| format!(" in {s:.1} s"))
        ),
        record: String::new(),
    }
}

/// trends.csv, its table and chart, each fault's window shaded (from applying it to the end of
/// its recovery). A leak is a finding: exit 1.
fn conclude_trends(p: &Provisioned, faults: &[nemesis::FaultRow]) -> u8 {
    let windows: Vec<Window> = faults
        .iter()
        .filter(|f| f.recovery != "not applied")
        .map(|f| Window::of_fault(f.at_s, f.duration_s, f.recover_s, format!("{} on {}", f.fault, f.target)))
        .collect();
    match tokio::task::block_in_place(|| crate::trends::conclude(&p.dir, &windows)) {
        Ok(rows) if rows.iter().any(|r| r.verdict == crate::analyze::trends::Verdict::Leak) => exit::REGRESSION,
        Ok(_) => exit::OK,
        Err(e) => {
            eprintln!("warning: trends: {e:#}");
            exit::INFRA
        }
    }
}

/// After the rounds: tests.csv read back once, tallied, summary.csv and the heatmap written,
/// verdicts printed; against the baseline and the expectations as a one-pass run is.
fn finish_suite(p: &Provisioned, suite: Option<&SuiteConfig>, faults: &[nemesis::FaultRow]) -> Result<u8> {
    use crate::report::verdicts;
    let rows = verdicts::read_rows(&p.dir.tests_csv())?;
    if rows.is_empty() && suite.is_none() && faults.is_empty() {
        return Ok(exit::OK);
    }
    let iterations = rows.iter().filter(|r| r.test_id.number().is_some()).map(|r| r.iteration).max().unwrap_or(0);
    if let Some(s) = suite {
        p.dir.write_json(
            &p.dir.suite_json(),
            &manifest::Suite {
                tests: s.suite.tests.len(),
                iterations,
                shuffle: s.shuffle,
                environment_gaps: s.gaps.clone(),
            },
        )?;
    }
    let tallies = verdicts::tally(&rows);
    tokio::task::block_in_place(|| {
        crate::report::export(&crate::report::Results::Suite { rows: &rows, tallies: &tallies }, &p.dir)
    })?;
    let broken = match suite.and_then(|s| s.baseline.as_ref()) {
        Some(before) => super::against_baseline(&p.dir, before, &tallies)?,
        None => 0,
    };
    let (bad, unsure) = verdicts::print_summary(&tallies);
    if let Some(s) = suite {
        super::report_expectations(&s.suite, &rows, &p.dir.path)?;
    }
    Ok(if bad > 0 || broken > 0 {
        exit::REGRESSION
    } else if unsure > 0 {
        exit::INFRA
    } else {
        exit::OK
    })
}

/// Prints each fault's outcome; 1 when one failed open, 2 when one proved nothing or a target
/// did not come back.
fn report_faults(rows: &[nemesis::FaultRow], planned: usize) -> u8 {
    if planned == 0 {
        return exit::OK;
    }
    println!("\nfaults ({} of {planned} applied; faults.csv):", rows.len());
    let mut code = exit::OK;
    for r in rows {
        println!(
            "  {:>7.0} s {:<15} {:<28} fail-closed {:<12} {} ({}, {})",
            r.at_s,
            r.fault.as_str(),
            r.target,
            r.fail_closed.as_str(),
            r.recovery,
            r.recovered,
            r.recover_s.map_or("—".to_string(), |s| format!("{s:.1} s to recover"))
        );
        code = worse(
            code,
            match (r.fail_closed, r.recovered) {
                (FailClosed::Violated, _) => exit::REGRESSION,
                (FailClosed::Inconclusive, _) | (_, "no") => exit::INFRA,
                _ => exit::OK,
            },
        );
    }
    if rows.len() < planned {
        println!("  {} planned fault(s) did not fire: the soak ended first", planned - rows.len());
    }
    code
}

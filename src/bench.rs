//! Benchmarks of the harness itself, each printing ratios measured side by side in one run (these
//! machines are noisy: a ratio from one run means more than an absolute figure from another day).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::TargetConfig;
use crate::exit;
use crate::provider::{Engine, Provider};
use crate::schema::{Load, Plan};
use crate::workload::remote::{Launcher, TargetResult};

/// Wall time to create and provision N local targets (agentsh artifact and image are obtained once
/// beforehand and excluded), median of `runs`, and the controller's peak RSS while doing it.
pub async fn provision(sizes: &[u32], agentsh: &str, engine: Engine, runs: u32) -> Result<u8> {
    if sizes.is_empty() || sizes.iter().any(|&s| s == 0 || s > crate::cli::MAX_VMS) || runs == 0 {
        return Err(exit::usage(format!("--sizes must be 1..={} and --runs at least 1", crate::cli::MAX_VMS)));
    }
    let mut base = TargetConfig::local(agentsh, engine)?;
    let provider = base.provider()?;
    let once = one_time_costs(&base, provider.as_ref()).await?;
    let scratch = tempfile::Builder::new().prefix("abench-bench").tempdir()?;
    let mut rows = Vec::new();
    for &size in sizes {
        base.vms = size;
        rows.push(provision_size(&base, provider.as_ref(), scratch.path(), runs).await?);
    }
    print_provision(&rows, runs, &once);
    Ok(exit::OK)
}

/// What every size would otherwise pay once, measured apart so that no wall time includes it.
struct OneTime {
    artifact: Option<crate::agentsh::Artifact>,
    t_artifact: Duration,
    t_image: Duration,
}

/// Obtains the agentsh artifact and the target image (checked or built) before any timing.
async fn one_time_costs(base: &TargetConfig, provider: &dyn Provider) -> Result<OneTime> {
    let t0 = Instant::now();
    let spec = base.agentsh.clone();
    let artifact = tokio::task::spawn_blocking(move || crate::agentsh::resolve(&spec)).await??;
    let t_artifact = t0.elapsed();
    let t0 = Instant::now();
    provider.prepare().await?;
    let t_image = t0.elapsed();
    Ok(OneTime { artifact, t_artifact, t_image })
}

/// One size's line of the provisioning table.
struct ProvisionRow {
    size: u32,
    /// The median run's wall time, and the machine's busy CPU-seconds and cores during it.
    wall: Duration,
    cpu: Option<(f64, usize)>,
    /// The controller's peak RSS over all the runs.
    peak_rss: u64,
    /// Readiness findings over all the runs.
    findings: usize,
}

/// Provisions `base.vms` targets `runs` times, each run torn down before the next; every target
/// must become ready, or the figure would not be a provisioning time.
async fn provision_size(
    base: &TargetConfig,
    provider: &dyn Provider,
    scratch: &Path,
    runs: u32,
) -> Result<ProvisionRow> {
    let size = base.vms;
    let mut walls = Vec::new();
    let mut findings = 0usize;
    let mut peak_rss = 0u64;
    for i in 0..runs {
        let run = crate::provider::new_run_tag();
        let rss = RssSampler::start();
        let cpu0 = crate::procstat::machine_busy_seconds();
        let t0 = Instant::now();
        let result = crate::job::provision(base, provider, &run, Some(&scratch.join(&run))).await;
        let wall = t0.elapsed();
        let cpu = cpu0.zip(crate::procstat::machine_busy_seconds()).map(|((a, cores), (b, _))| (b - a, cores));
        peak_rss = peak_rss.max(rss.stop());
        let destroyed = provider.destroy(Some(&run)).await;
        let p = result?;
        destroyed?;
        let ready = crate::provision::ready_count(&p.outcomes);
        anyhow::ensure!(ready == size as usize, "size {size} run {i}: only {ready} of {size} targets became ready");
        // Readiness findings (a failed try, a wedge recovered) explain an outlier wall time.
        findings += p.outcomes.iter().flatten().map(|r| r.findings.len()).sum::<usize>();
        eprintln!("bench: {size} target(s), run {}: {:.2} s", i + 1, wall.as_secs_f64());
        walls.push((wall, cpu));
    }
    walls.sort_by_key(|w| w.0);
    let (wall, cpu) = walls[walls.len() / 2];
    Ok(ProvisionRow { size, wall, cpu, peak_rss, findings })
}

/// The provisioning table, the one-time costs, and whether 8 targets take at most twice as long
/// as 1.
fn print_provision(rows: &[ProvisionRow], runs: u32, once: &OneTime) {
    let one = rows.iter().find(|r| r.size == 1).map(|r| r.wall);
    println!(
        "\nprovisioning wall time, local targets, agentsh {}, median of {runs}",
        once.artifact.as_ref().map_or("none", |a| a.version.as_str())
    );
    // CPU-s: the machine's busy time during the run (/proc/stat; targets' work included).
    // Efficiency = (CPU-s / cores) / wall: 1.0 when every core was busy all along.
    println!(
        "{:>8} {:>10} {:>10} {:>8} {:>11} {:>12} {:>16} {:>9}",
        "targets", "wall s", "vs 1", "CPU-s", "efficiency", "CPU-s/target", "controller RSS", "findings"
    );
    for ProvisionRow { size, wall, cpu, peak_rss: rss, findings } in rows {
        let ratio = one.map_or("-".to_string(), |o| format!("{:.2}×", wall.as_secs_f64() / o.as_secs_f64()));
        let (cpu_s, eff, per) = match cpu {
            Some((c, cores)) => (
                format!("{c:.1}"),
                format!("{:.2}", c / *cores as f64 / wall.as_secs_f64()),
                format!("{:.2}", c / *size as f64),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{size:>8} {:>10.2} {ratio:>10} {cpu_s:>8} {eff:>11} {per:>12} {:>12.1} MiB {findings:>9}",
            wall.as_secs_f64(),
            *rss as f64 / 1048576.0
        );
    }
    println!(
        "one-time: agentsh artifact {:.2} s, image check/build {:.2} s",
        once.t_artifact.as_secs_f64(),
        once.t_image.as_secs_f64()
    );
    if let (Some(one), Some(eight)) = (one, rows.iter().find(|r| r.size == 8)) {
        let ratio = eight.wall.as_secs_f64() / one.as_secs_f64();
        println!("target 8 ≤ 2 × 1: {:.2}× → {}", ratio, if ratio <= 2.0 { "met" } else { "NOT met" });
    }
}

/// The suite's wall time on 1 and N targets, side by side in one run: each size provisioned
/// (not timed), the suite run `iterations` times on every target at once (timed, with the
/// machine's busy CPU-seconds), torn down. The CPU-bound floor is CPU-s / cores: no schedule on
/// this machine can be faster, so it tells how close a wall time is to the limit.
pub async fn suite(sizes: &[u32], agentsh: &str, engine: Engine, iterations: u32) -> Result<u8> {
    if sizes.is_empty() || sizes.iter().any(|&s| s == 0 || s > crate::cli::MAX_VMS) || iterations == 0 {
        return Err(exit::usage(format!("--sizes must be 1..={} and --iterations at least 1", crate::cli::MAX_VMS)));
    }
    let mut base = TargetConfig::local(agentsh, engine)?;
    let provider = base.provider()?;
    let suite = crate::config::SuiteConfig::load(base.provider, iterations, None)?;
    // Ctrl-C ends the suite with what it has; the targets are destroyed below.
    let stop = crate::job::Stop::on_ctrl_c();
    let scratch = tempfile::Builder::new().prefix("abench-bench").tempdir()?;
    let mut rows = Vec::new();
    for &size in sizes {
        base.vms = size;
        rows.push(suite_on_size(&base, provider.as_ref(), &suite, &stop, scratch.path()).await?);
    }
    print_suite(&rows, agentsh, &suite);
    Ok(exit::OK)
}

/// One size's line of the suite table.
struct SuiteRow {
    size: u32,
    wall: Duration,
    /// The machine's busy CPU-seconds and cores while the suite ran.
    cpu: Option<(f64, usize)>,
    wedges: usize,
}

/// Provisions `base.vms` targets (not timed), runs the suite on them (timed), and tears them
/// down whatever happened; every target must have been ready for the time to mean anything.
async fn suite_on_size(
    base: &TargetConfig,
    provider: &dyn Provider,
    suite: &crate::config::SuiteConfig,
    stop: &crate::job::Stop,
    scratch: &Path,
) -> Result<SuiteRow> {
    let size = base.vms;
    let run = crate::provider::new_run_tag();
    let dir = scratch.join(&run);
    let p = match crate::job::provision(base, provider, &run, Some(&dir)).await {
        Ok(p) => p,
        Err(e) => {
            let _ = provider.destroy(Some(&run)).await;
            return Err(e);
        }
    };
    let ready = crate::provision::ready_count(&p.outcomes);
    let cpu0 = crate::procstat::machine_busy_seconds();
    let t0 = Instant::now();
    let result = crate::job::run_suite(&p, suite, &run, stop).await;
    let wall = t0.elapsed();
    let cpu = cpu0.zip(crate::procstat::machine_busy_seconds()).map(|((a, cores), (b, _))| (b - a, cores));
    let destroyed = provider.destroy(Some(&run)).await;
    result?;
    destroyed?;
    anyhow::ensure!(ready == size as usize, "size {size}: only {ready} of {size} targets became ready");
    let wedges = wedges_recovered(&dir);
    eprintln!("bench: {size} target(s) × {} iteration(s): {:.1} s", suite.iterations, wall.as_secs_f64());
    Ok(SuiteRow { size, wall, cpu, wedges })
}

/// A wedge recovered (agentsh's FUSE deadlock, docs/findings.md) costs tens of seconds;
/// counted (the `wedge-*` files in the run's target directories) so that an outlier is explained.
fn wedges_recovered(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("targets"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("wedge-"))
        .count()
}

/// The suite table, and whether one iteration on one target takes at most 10 s and N targets at
/// most 1.5 times one.
fn print_suite(rows: &[SuiteRow], agentsh: &str, suite: &crate::config::SuiteConfig) {
    let iterations = suite.iterations;
    let one = rows.iter().find(|r| r.size == 1).map(|r| r.wall);
    println!(
        "\nsuite wall time, local targets, agentsh {agentsh}, {iterations} iteration(s) of {} tests on every target",
        suite.suite.tests.len()
    );
    println!(
        "{:>8} {:>9} {:>7} {:>14} {:>8} {:>14} {:>11} {:>7}",
        "targets", "wall s", "vs 1", "s/iteration", "CPU-s", "CPU floor s", "efficiency", "wedges"
    );
    for SuiteRow { size, wall, cpu, wedges } in rows {
        let w = wall.as_secs_f64();
        let ratio = one.map_or("-".to_string(), |o| format!("{:.2}×", w / o.as_secs_f64()));
        let (cpu_s, floor, eff) = match cpu {
            Some((c, cores)) => {
                (format!("{c:.1}"), format!("{:.1}", c / *cores as f64), format!("{:.2}", c / *cores as f64 / w))
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{size:>8} {w:>9.1} {ratio:>7} {:>14.1} {cpu_s:>8} {floor:>14} {eff:>11} {wedges:>7}",
            w / f64::from(iterations)
        );
    }
    if let Some(one) = one {
        let per = one.as_secs_f64() / f64::from(iterations);
        println!("1 iteration on 1 target ≤ 10 s: {per:.1} s → {}", if per <= 10.0 { "met" } else { "NOT met" });
        for SuiteRow { size, wall, .. } in rows.iter().filter(|r| r.size > 1) {
            let ratio = wall.as_secs_f64() / one.as_secs_f64();
            println!("{size} targets ≤ 1.5 × 1 target: {ratio:.2}× → {}", if ratio <= 1.5 { "met" } else { "NOT met" });
        }
    }
}

/// The driver's own figures on one local target: no-op capacity on one core, scheduling overhead
/// against the `/bin/true` floor, the harness's `/bin/true` p50 against hyperfine's mean on the
/// same target, and optionally RSS over a soak. By default the target has no agentsh; with
/// `agentsh` a version, it is installed and its server runs (and the workload's wedge watch reads
/// its health, as in a real run): the driver runs on the observation channel, so its no-op ops
/// are not governed, and the figures show whether the harness's own overhead changes with agentsh
/// on the machine.
pub async fn driver(
    rates: &[f64],
    duration: Duration,
    soak: Option<Duration>,
    engine: Engine,
    agentsh: &str,
) -> Result<u8> {
    if rates.is_empty() || rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        return Err(exit::usage("--rates must be positive ops/s"));
    }
    let args = TargetConfig::local(agentsh, engine)?;
    let provider = args.provider()?;
    let run = crate::provider::new_run_tag();
    let result = driver_figures(&args, provider.as_ref(), &run, rates, duration, soak).await;
    if let Err(e) = provider.destroy(Some(&run)).await {
        eprintln!("warning: teardown of {run} failed: {e:#}");
    }
    result
}

/// Provisions the bench target, takes every measurement first, then prints the tables and the
/// targets met or not (so that printing cannot disturb a measurement).
async fn driver_figures(
    args: &TargetConfig,
    provider: &dyn crate::provider::Provider,
    run: &str,
    rates: &[f64],
    duration: Duration,
    soak: Option<Duration>,
) -> Result<u8> {
    let p = crate::job::provision(args, provider, run, None).await?;
    let ready: Vec<_> = p.outcomes.iter().flatten().cloned().collect();
    anyhow::ensure!(ready.len() == 1, "the bench target could not be provisioned");
    let bench = BenchTarget {
        ready,
        control_dir: p.control_dir.clone(),
        board: crate::progress::Board::new(),
        out: p.dir.path.clone(),
    };
    let dur_ms = duration.as_millis() as u64;

    let capacity = noop_capacity(&bench, rates, dur_ms).await?;
    let overhead_run = noop_overhead(&bench, dur_ms).await?;
    let conn = hyperfine_on_target(&bench).await?;
    let rounds = exec_floor_rounds(&bench, &conn, dur_ms).await?;

    let on_target = bench.ready[0].agentsh_version.as_deref();
    println!(
        "\nbench target: {}",
        on_target.map_or("no agentsh".to_string(), |v| format!("agentsh {v}, its server running"))
    );
    if on_target.is_some() {
        // The wedge watch ran beside every driver run: a wedge would have cost the driver nothing
        // (its ops are not governed) but is the server's finding.
        let wedges: usize = capacity.iter().map(|(_, t)| t).chain([&overhead_run]).map(|t| t.wedges.len()).sum();
        println!("agentsh server wedges during the no-op runs: {wedges}");
    }
    print_capacity(&capacity, duration);
    let true_p50 = print_exec_floor(&rounds);
    print_overhead(&overhead_run, &capacity, true_p50);
    if let Some(soak) = soak {
        soak_rss(&bench, soak).await?;
    }
    println!("results: {}", p.dir.path.display());
    Ok(exit::OK)
}

/// The one provisioned bench target, and where the plans run on it write their results.
struct BenchTarget {
    ready: Vec<crate::provision::Ready>,
    control_dir: std::path::PathBuf,
    board: crate::progress::Board,
    out: std::path::PathBuf,
}

impl BenchTarget {
    /// Runs one plan to the end (nothing stops it early) and returns the target's result.
    async fn run(&self, plan: Plan, launcher: Launcher) -> Result<TargetResult> {
        let never = tokio::sync::watch::channel(false).1;
        let mut r = crate::workload::remote::run_all(
            &self.ready,
            &plan,
            crate::provision::modes::Mode::Full.as_str(),
            launcher,
            &self.control_dir,
            &self.out,
            &self.board,
            never,
        )
        .await;
        r.pop().context("no result")?
    }
}

/// A quantile of a histogram of microseconds, as a float for the ratios printed.
fn us(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64
}

/// No-op capacity at each rate asked, the driver pinned to one core.
async fn noop_capacity(bench: &BenchTarget, rates: &[f64], dur_ms: u64) -> Result<Vec<(f64, TargetResult)>> {
    let mut capacity = Vec::new();
    for &rate in rates {
        let mut plan = crate::workload::load("noop")?;
        plan.name = format!("noop-{rate}");
        plan.load = Load::Rate { ops_per_s: rate, workers: 4 };
        plan.duration_ms = dur_ms;
        let t = bench.run(plan, Launcher::PinnedCore0).await?;
        capacity.push((rate, t));
    }
    Ok(capacity)
}

/// Scheduling overhead where exec workloads run (1000 ops/s, not pinned): a no-op's response
/// time is everything the driver adds to an operation.
async fn noop_overhead(bench: &BenchTarget, dur_ms: u64) -> Result<TargetResult> {
    let mut plan = crate::workload::load("noop")?;
    plan.name = "noop-1000".into();
    plan.load = Load::Rate { ops_per_s: 1000.0, workers: 4 };
    plan.duration_ms = dur_ms;
    bench.run(plan, Launcher::Plain).await
}

/// A connection to the bench target with hyperfine installed, to measure the exec floor the
/// harness's figures are compared with.
async fn hyperfine_on_target(bench: &BenchTarget) -> Result<crate::control::Conn> {
    let conn =
        crate::control::Conn::connect("bench/observe", &bench.ready[0].target.observe, &bench.control_dir, 6).await?;
    let hyperfine = std::fs::read("/usr/bin/hyperfine")
        .context("reading /usr/bin/hyperfine (scripts/setup-host.sh installs it)")?;
    conn.upload(&hyperfine, "/usr/local/bin/hyperfine", 0o755, Duration::from_secs(60)).await?;
    Ok(conn)
}

/// One round of the `/bin/true` floor: the harness's service times and hyperfine's on the same
/// target, in µs.
struct FloorRound {
    p50: f64,
    mean: f64,
    hf_mean: f64,
    hf_median: f64,
}

/// The exec floor, interleaved with hyperfine on the same target (benchstat's advice: never
/// A then B), both pinned to one core.
async fn exec_floor_rounds(bench: &BenchTarget, conn: &crate::control::Conn, dur_ms: u64) -> Result<Vec<FloorRound>> {
    let mut rounds = Vec::new();
    for round in 0..3 {
        let mut plan = crate::workload::load("true")?;
        plan.name = format!("true-{round}");
        plan.duration_ms = (dur_ms / 3).max(1000);
        let floor = bench.run(plan, Launcher::PinnedCore0).await?;
        let hf = conn
            .run(
                "taskset -c 0 hyperfine -N --style none --warmup 100 --runs 1500 --export-json /tmp/hf.json /bin/true >/dev/null && cat /tmp/hf.json",
                Duration::from_secs(300),
            )
            .await?;
        anyhow::ensure!(hf.ok(), "hyperfine failed on the target: {}", hf.describe());
        let hf: serde_json::Value = serde_json::from_str(&hf.stdout).context("hyperfine's JSON")?;
        let hf_mean = hf["results"][0]["mean"].as_f64().context("hyperfine mean")? * 1e6;
        let hf_median = hf["results"][0]["median"].as_f64().context("hyperfine median")? * 1e6;
        let svc = &floor.totals[0].counts.service;
        rounds.push(FloorRound { p50: us(svc, 0.5), mean: svc.mean(), hf_mean, hf_median });
    }
    Ok(rounds)
}

/// The capacity table: at each rate asked, what was achieved and how late and slow it ran.
fn print_capacity(capacity: &[(f64, TargetResult)], duration: Duration) {
    println!("\ndriver capacity (no-op ops, driver pinned to one core, 4 workers, {} s each)", duration.as_secs());
    println!(
        "{:>10} {:>12} {:>8} {:>12} {:>12} {:>12}",
        "asked/s", "achieved/s", "late %", "resp p50 µs", "resp p99 µs", "svc p50 µs"
    );
    for (rate, t) in capacity {
        let o = &t.totals[0];
        println!(
            "{:>10.0} {:>12.0} {:>8.2} {:>12.0} {:>12.0} {:>12.0}",
            rate,
            o.ops_per_s(),
            100.0 * o.counts.late as f64 / o.counts.count.max(1) as f64,
            us(&o.counts.response, 0.5),
            us(&o.counts.response, 0.99),
            us(&o.counts.service, 0.5)
        );
    }
}

/// The `/bin/true` rounds and whether the harness's p50 is within 10% of hyperfine's mean;
/// returns the median p50, the floor the overhead is measured against.
fn print_exec_floor(rounds: &[FloorRound]) -> f64 {
    println!(
        "\n/bin/true on the target, interleaved rounds (µs): harness p50, harness mean, hyperfine mean, hyperfine median, p50/hyperfine mean"
    );
    let mut ratios = Vec::new();
    for (i, FloorRound { p50, mean, hf_mean, hf_median }) in rounds.iter().enumerate() {
        ratios.push(p50 / hf_mean);
        println!("  round {}: {p50:>8.0} {mean:>8.0} {hf_mean:>8.0} {hf_median:>8.0} {:>8.3}×", i + 1, p50 / hf_mean);
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let mut p50s: Vec<f64> = rounds.iter().map(|r| r.p50).collect();
    p50s.sort_by(f64::total_cmp);
    let true_p50 = p50s[p50s.len() / 2];
    println!(
        "harness /bin/true p50 vs hyperfine mean, median of rounds: {ratio:.3}× → within 10%: {}",
        if (ratio - 1.0).abs() <= 0.10 { "met" } else { "NOT met" }
    );
    true_p50
}

/// The driver's overhead against the `/bin/true` floor (at 1000 ops/s, and at the first rate on
/// one core), and whether the no-op capacity reaches 20000 ops/s.
fn print_overhead(overhead_run: &TargetResult, capacity: &[(f64, TargetResult)], true_p50: f64) {
    let o = &overhead_run.totals[0];
    let overhead = us(&o.counts.response, 0.5) / true_p50;
    println!(
        "scheduling overhead at 1000 ops/s: no-op response p50 {:.0} µs (p99 {:.0} µs) = {:.2}% of the /bin/true p50 ({true_p50:.0} µs) → ≤ 2%: {}",
        us(&o.counts.response, 0.5),
        us(&o.counts.response, 0.99),
        overhead * 100.0,
        if overhead <= 0.02 { "met" } else { "NOT met" }
    );
    let (rate0, first) = (&capacity[0].0, &capacity[0].1.totals[0]);
    println!(
        "  at {rate0:.0} ops/s on one core: p50 {:.0} µs = {:.2}% of the floor",
        us(&first.counts.response, 0.5),
        100.0 * us(&first.counts.response, 0.5) / true_p50
    );
    let achieved = capacity.iter().map(|(_, t)| t.totals[0].ops_per_s()).fold(0.0, f64::max);
    println!(
        "no-op capacity: {achieved:.0} ops/s on one core → ≥ 20000: {}",
        if achieved >= 20000.0 { "met" } else { "NOT met" }
    );
}

/// The soak: exec-mix for `soak`, with the driver's and the controller's RSS early and late, to
/// show that neither grows with the length of a run.
async fn soak_rss(bench: &BenchTarget, soak: Duration) -> Result<()> {
    let mut plan = crate::workload::load("exec-mix")?;
    plan.duration_ms = soak.as_millis() as u64;
    let minute = Duration::from_secs(60).min(soak / 4);
    let sampler = RssTimeline::start(minute);
    let t = bench.run(plan, Launcher::Plain).await?;
    let (early, late) = sampler.stop();
    println!(
        "soak {} s exec-mix: driver RSS peak in the first minute {} kB, in the last minute {} kB (first interval {} kB, last {} kB); \
         controller RSS peak in the first {} s {:.1} MiB, in the last {:.1} MiB",
        soak.as_secs(),
        t.driver_rss_kb_first_minute,
        t.driver_rss_kb_last_minute,
        t.finished.rss_kb_first,
        t.finished.rss_kb_last,
        minute.as_secs(),
        early as f64 / 1048576.0,
        late as f64 / 1048576.0
    );
    Ok(())
}

/// Controller RSS peaks in the first and in the last `window` of a run (one sample a second).
struct RssTimeline {
    windows: Arc<std::sync::Mutex<crate::procstat::PeakWindows>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssTimeline {
    fn start(window: Duration) -> RssTimeline {
        let windows = Arc::new(std::sync::Mutex::new(crate::procstat::PeakWindows::new(window.as_millis() as u64)));
        let w = windows.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(mut w) = w.lock() {
                    w.add(started.elapsed().as_millis() as u64, crate::procstat::current_rss());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        RssTimeline { windows, task }
    }

    fn stop(self) -> (u64, u64) {
        self.task.abort();
        self.windows.lock().map(|w| w.peaks()).unwrap_or((0, 0))
    }
}

/// Samples this process's resident set every 50 ms; keeps the maximum.
struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicU64::new(crate::procstat::current_rss()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(crate::procstat::current_rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed).max(crate::procstat::current_rss())
    }
}

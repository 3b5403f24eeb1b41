//! The controller's side of a workload: starts the driver on every target over the observation
//! channel (the driver itself must not be governed; what it runs may be), streams its interval
//! records into `.hlog` files as they arrive, and sums them per op.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control::{CmdOutput, Conn};
use crate::progress::Board;
use crate::provision::Ready;
use crate::results::OpTotals;
use crate::results::hlog::HlogWriter;
use crate::results::{HlogKind, RunDir};
use crate::schema::{Finished, Interval, Plan, Record};

/// What one target's run produced.
pub struct TargetResult {
    pub target: String,
    pub totals: Vec<OpTotals>,
    pub finished: Finished,
    /// Stopped early (Ctrl-C): totals cover the intervals received until then.
    pub partial: bool,
    /// Peak driver RSS (kB) in the first and in the last minute of the measured run.
    pub driver_rss_kb_first_minute: u64,
    pub driver_rss_kb_last_minute: u64,
    pub wedges: Vec<crate::results::manifest::Wedge>,
}

/// How the driver is started on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// As any process: the scheduler places it.
    Plain,
    /// Pinned to core 0 (`taskset -c 0`), for figures that must not depend on placement.
    PinnedCore0,
}

impl Launcher {
    fn prefix(self) -> &'static str {
        match self {
            Launcher::Plain => "",
            Launcher::PinnedCore0 => "taskset -c 0 ",
        }
    }
}

/// latency.csv's `mode` and the hlog comments for a target: `none` without agentsh (its governed
/// ops run as their ungoverned twins), else the mode agentsh's config is in
/// (`provision::modes::Mode`, `full` unless `--mode` said otherwise).
pub fn mode_label<'a>(ready: &Ready, mode: &'a str) -> &'a str {
    if ready.agentsh_version.is_some() { mode } else { "none" }
}

/// When `stop` turns true every target stops reading and keeps what it has (partial results).
/// `mode` is what targets with agentsh are labelled with ([`mode_label`]).
#[allow(clippy::too_many_arguments)]
pub async fn run_all(
    targets: &[Ready],
    plan: &Plan,
    mode: &str,
    launcher: Launcher,
    control_dir: &Path,
    out: &Path,
    board: &Board,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Result<TargetResult>> {
    let jobs = targets.iter().map(|r| {
        let stop = stop.clone();
        async move {
            let line = board.line(&format!("{} {}", r.target.name, plan.name));
            let res = run_one(r, plan, mode_label(r, mode), launcher, control_dir, out, &line, stop).await;
            match &res {
                Ok(t) => line.finish(true, &format!("{} ops", t.totals.iter().map(|o| o.counts.count).sum::<u64>())),
                Err(e) => line.finish(false, &format!("{e:#}")),
            }
            res
        }
    });
    futures::future::join_all(jobs).await
}

/// Runs the driver on one target and turns its record stream into that target's result.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    ready: &Ready,
    plan: &Plan,
    mode: &str,
    launcher: Launcher,
    control_dir: &Path,
    out: &Path,
    line: &crate::progress::Line,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<TargetResult> {
    let name = &ready.target.name;
    let conn = Conn::connect(&format!("{name}/observe"), &ready.target.observe, control_dir, 6).await?;
    let version = ready.agentsh_version.clone().unwrap_or_else(|| "none".into());
    let run_dir = RunDir::at(out);
    let wedge_dir = run_dir.target_dir(name).join(format!("workload-{}", plan.name));
    let hist_dir = run_dir.workload_histograms_dir(&plan.name);
    std::fs::create_dir_all(&hist_dir).with_context(|| format!("creating {}", hist_dir.display()))?;
    let mut collector = Collector::new(name, version, mode, plan, run_dir, line);

    let plan_sent = Plan { ungoverned: ready.agentsh_version.is_none(), ..plan.clone() };
    let stdin = serde_json::to_vec(&plan_sent)?;
    let budget = Duration::from_millis(plan.warmup_ms + plan.duration_ms) + Duration::from_secs(120);
    let command = format!("{}{} driver", launcher.prefix(), crate::target::DRIVER_PATH);
    let wedges = std::cell::RefCell::new(Vec::new());
    let streamed = conn.stream(&command, &stdin, budget, stop, |text| collector.take_line(text));
    let (status, stopped) = if ready.agentsh_version.is_some() {
        tokio::select! {
            r = streamed => r?,
            never = watch_for_wedges(&conn, &wedge_dir, &wedges) => match never {},
        }
    } else {
        streamed.await?
    };
    let mut result = collector.finish(&status, stopped)?;
    result.wedges = wedges.into_inner();
    Ok(result)
}

/// How often the server's health is read during a workload, and how long it may take to answer.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Runs next to a governed workload until it ends: when agentsh's server stops answering its
/// health endpoint (the FUSE wedge, docs/findings.md 1, comes within seconds under load), keeps
/// the evidence, brings the server back as the suite's watchdog does, and records the wedge. The
/// driver's ops meanwhile time out and count as errors; its sessions are made again afterwards.
async fn watch_for_wedges(
    observe: &Conn,
    dir: &Path,
    wedges: &std::cell::RefCell<Vec<crate::results::manifest::Wedge>>,
) -> std::convert::Infallible {
    let start = std::time::Instant::now();
    loop {
        tokio::time::sleep(HEALTH_EVERY).await;
        let Some(why) = crate::watchdog::health(observe, Duration::from_secs(15)).await else { continue };
        let at = start.elapsed();
        let n = wedges.borrow().len() as u32 + 1;
        // On record before the recovery: when the driver ends first, this future is dropped
        // mid-recovery, and the wedge must still be in workload.json (its figures are the wedge's).
        wedges.borrow_mut().push(crate::results::manifest::Wedge {
            at_s: at.as_secs_f64(),
            recovery_s: 0.0,
            why: why.clone(),
            outcome: "not recovered: the workload ended during the recovery".into(),
        });
        let outcome = match std::fs::create_dir_all(dir) {
            Ok(()) => match crate::watchdog::recover(observe, dir, n, &why).await {
                Ok(aborted) => format!("recovered: {aborted}"),
                Err(e) => format!("not recovered: {e:#}"),
            },
            Err(e) => format!("not recovered: creating {}: {e}", dir.display()),
        };
        tracing::warn!("workload: agentsh wedged ({why}); {outcome}");
        let recovery_s = (start.elapsed() - at).as_secs_f64();
        let lost = outcome.starts_with("not recovered");
        if let Some(w) = wedges.borrow_mut().last_mut() {
            (w.recovery_s, w.outcome) = (recovery_s, outcome);
        }
        if lost {
            // Nothing more to try on this target; the driver ends on its own deadline.
            std::future::pending::<()>().await;
        }
    }
}

/// What one target's driver stream has built up so far: the per-op totals, the open `.hlog`
/// writers and how the driver ended, kept together so each record kind is handled on its own.
struct Collector<'a> {
    name: &'a str,
    version: String,
    mode: &'a str,
    plan: &'a Plan,
    run_dir: RunDir,
    line: &'a crate::progress::Line,
    /// Op name to its place in `plan.ops` and `totals`.
    index: BTreeMap<&'a str, usize>,
    totals: Vec<OpTotals>,
    /// Response and service logs, opened when the driver says it started (they need its epoch).
    logs: Option<(HlogWriter, HlogWriter)>,
    finished: Option<Finished>,
    fatal: Option<String>,
    /// Sum of the first op's interval lengths: the measured time received so far.
    measured_ms: u64,
    last_progress: std::time::Instant,
    rss: crate::procstat::PeakWindows,
}

impl<'a> Collector<'a> {
    /// Starts with zero totals for every op of the plan and no logs yet.
    fn new(
        name: &'a str,
        version: String,
        mode: &'a str,
        plan: &'a Plan,
        run_dir: RunDir,
        line: &'a crate::progress::Line,
    ) -> Collector<'a> {
        Collector {
            totals: plan.ops.iter().map(|o| OpTotals::new(name, &version, mode, &o.name)).collect(),
            index: plan.ops.iter().enumerate().map(|(i, o)| (o.name.as_str(), i)).collect(),
            name,
            version,
            mode,
            plan,
            run_dir,
            line,
            logs: None,
            finished: None,
            fatal: None,
            measured_ms: 0,
            last_progress: std::time::Instant::now(),
            rss: crate::procstat::PeakWindows::new(60_000),
        }
    }

    /// Handles one line of the driver's stdout; an error ends the stream.
    fn take_line(&mut self, text: &str) -> Result<()> {
        let rec: Record = serde_json::from_str(text)
            .with_context(|| format!("driver printed a line that is not a record: {text}"))?;
        match rec {
            Record::Started { epoch_ms, .. } => self.logs = Some(self.open_logs(epoch_ms)?),
            Record::Interval(iv) => self.take_interval(iv)?,
            Record::Finished(f) => self.finished = Some(f),
            Record::Fatal { message } => self.fatal = Some(message),
        }
        Ok(())
    }

    /// Creates the response and service `.hlog` files, stamped with the driver's time zero.
    fn open_logs(&self, epoch_ms: u64) -> Result<(HlogWriter, HlogWriter)> {
        let (name, version, mode, plan) = (self.name, &self.version, self.mode, self.plan);
        let comment = format!(
            "agentsh-bench {} target={name} agentsh={version} mode={mode} workload={}",
            env!("CARGO_PKG_VERSION"),
            plan.name
        );
        Ok((
            HlogWriter::create(
                &self.run_dir.hlog(&plan.name, name, HlogKind::Response),
                epoch_ms,
                &format!("{comment} response time"),
            )?,
            HlogWriter::create(
                &self.run_dir.hlog(&plan.name, name, HlogKind::Service),
                epoch_ms,
                &format!("{comment} service time"),
            )?,
        ))
    }

    /// Logs one interval as received and merges it into its op's totals.
    fn take_interval(&mut self, iv: Interval) -> Result<()> {
        let i =
            *self.index.get(iv.op.as_str()).with_context(|| format!("driver reported an unknown op {:?}", iv.op))?;
        let counts = iv.counts()?;
        let (r_log, s_log) = self.logs.as_mut().context("interval before start")?;
        let tag = format!("{}/{}", self.name, iv.op);
        r_log.interval(&tag, iv.start_ms, iv.length_ms, counts.response.max(), &iv.response)?;
        s_log.interval(&tag, iv.start_ms, iv.length_ms, counts.service.max(), &iv.service)?;
        self.totals[i].counts.merge(&counts)?;
        // Every op gets one record per interval, so the first op's alone counts time and RSS once.
        if i == 0 {
            self.measured_ms += iv.length_ms;
            self.rss.add(iv.start_ms, iv.driver_rss_kb);
        }
        self.show_progress()
    }

    /// At most about once a second: shows the measured time and ops so far, and flushes the logs
    /// so a run cut short still leaves readable `.hlog` files.
    fn show_progress(&mut self) -> Result<()> {
        if self.last_progress.elapsed() <= Duration::from_millis(900) {
            return Ok(());
        }
        self.last_progress = std::time::Instant::now();
        let done: u64 = self.totals.iter().map(|t| t.counts.count).sum();
        self.line.step(&format!("{:.0} s measured, {done} ops", self.measured_ms as f64 / 1000.0));
        if let Some((a, b)) = self.logs.as_mut() {
            a.flush()?;
            b.flush()?;
        }
        Ok(())
    }

    /// Flushes the logs and turns what arrived into the target's result, or into the error that
    /// says why there is none (a fatal record, or an end without a finish that was not a stop).
    fn finish(self, status: &CmdOutput, stopped: bool) -> Result<TargetResult> {
        let name = self.name;
        if let Some((mut a, mut b)) = self.logs {
            a.flush()?;
            b.flush()?;
        }
        if let Some(m) = self.fatal {
            bail!("the driver on {name} stopped: {m}");
        }
        let finished = match self.finished {
            Some(f) => f,
            None if stopped => Finished { measured_ms: self.measured_ms, ..Finished::default() },
            None => bail!("the driver on {name} ended without finishing ({})", status.describe()),
        };
        let mut totals = self.totals;
        for t in &mut totals {
            t.measured_ms = finished.measured_ms;
        }
        let (first, last) = self.rss.peaks();
        Ok(TargetResult {
            target: name.to_string(),
            totals,
            finished,
            partial: stopped,
            driver_rss_kb_first_minute: first,
            driver_rss_kb_last_minute: last,
            wedges: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{IntervalCounts, Load, OpKind, OpSpec};

    fn plan() -> Plan {
        let op = |name: &str| OpSpec { name: name.into(), weight: 1, kind: OpKind::Noop };
        Plan {
            name: "w".into(),
            ops: vec![op("a"), op("b")],
            load: Load::Concurrency { workers: 1 },
            duration_ms: 2000,
            warmup_ms: 0,
            interval_ms: 1000,
            late_after_us: 1000,
            workspace: "/tmp/w".into(),
            ungoverned: false,
        }
    }

    fn interval_line(op: &str, start_ms: u64, latency_us: u64, errors: u64) -> String {
        let mut c = IntervalCounts::default();
        c.response.record(latency_us).unwrap();
        c.service.record(latency_us / 2).unwrap();
        c.count = 1;
        c.late = 1;
        c.errors.insert("spawn".into(), errors);
        let iv = Interval::encode(op.into(), start_ms, 1000, c, 100 + start_ms).unwrap();
        serde_json::to_string(&Record::Interval(iv)).unwrap()
    }

    fn exited(code: i32) -> CmdOutput {
        CmdOutput { code: Some(code), stdout: String::new(), stderr: "gone".into(), elapsed: Duration::ZERO }
    }

    const STARTED: &str = r#"{"record":"started","epoch_ms":1700000000000,"ops":["a","b"],"workers":1}"#;

    #[test]
    fn collector_merges_intervals_per_op_and_logs_each_one() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, line) = (plan(), crate::progress::Board::new().line("t"));
        let run_dir = RunDir::at(dir.path());
        std::fs::create_dir_all(run_dir.workload_histograms_dir("w")).unwrap();
        let mut c = Collector::new("t-0", "none".into(), "none", &plan, RunDir::at(dir.path()), &line);
        let err = c.take_line(&interval_line("a", 0, 100, 0)).unwrap_err();
        assert_eq!(format!("{err:#}"), "interval before start");
        c.take_line(STARTED).unwrap();
        for l in [interval_line("a", 0, 100, 1), interval_line("b", 0, 300, 0), interval_line("a", 1000, 200, 2)] {
            c.take_line(&l).unwrap();
        }
        let err = c.take_line(&interval_line("zzz", 0, 100, 0)).unwrap_err();
        assert!(format!("{err:#}").contains("unknown op \"zzz\""), "{err:#}");
        c.take_line(
            r#"{"record":"finished","completed":3,"measured_ms":2000,"rss_kb_first":1,"rss_kb_last":2,"samples":{}}"#,
        )
        .unwrap();
        let r = c.finish(&exited(0), false).unwrap();
        let a = &r.totals[0];
        assert_eq!((a.op.as_str(), a.counts.count, a.counts.late, a.measured_ms), ("a", 2, 2, 2000));
        assert_eq!(a.counts.errors.get("spawn"), Some(&3));
        assert_eq!((a.counts.response.max(), r.totals[1].counts.count), (200, 1));
        assert_eq!((r.driver_rss_kb_first_minute, r.driver_rss_kb_last_minute, r.partial), (1100, 1100, false));
        let logged = crate::results::hlog::read(&run_dir.hlog("w", "t-0", HlogKind::Response)).unwrap();
        let tags: Vec<_> = logged.iter().filter_map(|i| i.tag.as_deref()).collect();
        assert_eq!(tags, ["t-0/a", "t-0/b", "t-0/a"]);
    }

    #[test]
    fn collector_without_a_finish_is_partial_only_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (plan, line) = (plan(), crate::progress::Board::new().line("t"));
        std::fs::create_dir_all(RunDir::at(dir.path()).workload_histograms_dir("w")).unwrap();
        let fill = |c: &mut Collector| {
            c.take_line(STARTED).unwrap();
            c.take_line(&interval_line("a", 0, 100, 0)).unwrap();
        };
        let mut c = Collector::new("t-0", "none".into(), "none", &plan, RunDir::at(dir.path()), &line);
        fill(&mut c);
        let r = c.finish(&exited(0), true).unwrap();
        assert!(r.partial);
        assert_eq!((r.finished.measured_ms, r.totals[0].measured_ms), (1000, 1000));
        let mut c = Collector::new("t-0", "none".into(), "none", &plan, RunDir::at(dir.path()), &line);
        fill(&mut c);
        let err = c.finish(&exited(3), false).err().unwrap();
        assert_eq!(format!("{err:#}"), "the driver on t-0 ended without finishing (exit 3; stderr: gone)");
        let mut c = Collector::new("t-0", "none".into(), "none", &plan, RunDir::at(dir.path()), &line);
        c.take_line(r#"{"record":"fatal","message":"boom"}"#).unwrap();
        let err = c.finish(&exited(1), false).err().unwrap();
        assert_eq!(format!("{err:#}"), "the driver on t-0 stopped: boom");
    }
}

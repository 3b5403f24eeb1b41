//! The controller's side of a workload: starts the driver on every target over the observation
//! channel (the driver itself must not be governed; what it runs may be), streams its interval
//! records into `.hlog` files as they arrive, and sums them per op.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control::Conn;
use crate::progress::Board;
use crate::provision::Ready;
use crate::report::OpTotals;
use crate::results::hlog::HlogWriter;
use crate::results::{HlogKind, RunDir};
use crate::schema::{Finished, Plan, Record};

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
}

/// Peak of a value over the first minute and over a sliding last minute, in bounded memory.
#[derive(Default)]
struct MinuteWindows {
    origin: Option<u64>,
    first: u64,
    last: std::collections::VecDeque<(u64, u64)>,
}

impl MinuteWindows {
    fn add(&mut self, at_ms: u64, value: u64) {
        let origin = *self.origin.get_or_insert(at_ms);
        if at_ms < origin + 60_000 {
            self.first = self.first.max(value);
        }
        self.last.push_back((at_ms, value));
        while self.last.front().is_some_and(|(t, _)| *t + 60_000 <= at_ms) {
            self.last.pop_front();
        }
    }

    fn peaks(&self) -> (u64, u64) {
        (self.first, self.last.iter().map(|x| x.1).max().unwrap_or(0))
    }
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

/// What a target runs the workload under (latency.csv's `mode`, the hlog comments). Only the
/// default config exists so far; targets without agentsh measure the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Baseline,
    Default,
}

impl Mode {
    pub fn of(ready: &Ready) -> Mode {
        if ready.agentsh_version.is_some() { Mode::Default } else { Mode::Baseline }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Default => "default",
        }
    }
}

/// When `stop` turns true every target stops reading and keeps what it has (partial results).
pub async fn run_all(
    targets: &[Ready],
    plan: &Plan,
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
            let res = run_one(r, plan, launcher, control_dir, out, &line, stop).await;
            match &res {
                Ok(t) => line.finish(true, &format!("{} ops", t.totals.iter().map(|o| o.counts.count).sum::<u64>())),
                Err(e) => line.finish(false, &format!("{e:#}")),
            }
            res
        }
    });
    futures::future::join_all(jobs).await
}

async fn run_one(
    ready: &Ready,
    plan: &Plan,
    launcher: Launcher,
    control_dir: &Path,
    out: &Path,
    line: &crate::progress::Line,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<TargetResult> {
    let name = &ready.target.name;
    let conn = Conn::connect(&format!("{name}/observe"), &ready.target.observe, control_dir, 6).await?;
    let version = ready.agentsh_version.clone().unwrap_or_else(|| "none".into());
    let mode = Mode::of(ready).as_str();
    let run_dir = RunDir::at(out);
    let hist_dir = run_dir.workload_histograms_dir(&plan.name);
    std::fs::create_dir_all(&hist_dir).with_context(|| format!("creating {}", hist_dir.display()))?;

    let mut totals: Vec<OpTotals> = plan.ops.iter().map(|o| OpTotals::new(name, &version, mode, &o.name)).collect();
    let index: BTreeMap<&str, usize> = plan.ops.iter().enumerate().map(|(i, o)| (o.name.as_str(), i)).collect();
    let mut logs: Option<(HlogWriter, HlogWriter)> = None;
    let mut finished = None;
    let mut fatal = None;
    let mut measured_ms = 0u64;
    let mut last_progress = std::time::Instant::now();
    let mut rss = MinuteWindows::default();

    let stdin = serde_json::to_vec(plan)?;
    let budget = Duration::from_millis(plan.warmup_ms + plan.duration_ms) + Duration::from_secs(120);
    let (status, stopped) = conn
        .stream(&format!("{}{} driver", launcher.prefix(), crate::target::DRIVER_PATH), &stdin, budget, stop, |text| {
            let rec: Record = serde_json::from_str(text)
                .with_context(|| format!("driver printed a line that is not a record: {text}"))?;
            match rec {
                Record::Started { epoch_ms, .. } => {
                    let comment = format!(
                        "agentsh-bench {} target={name} agentsh={version} mode={mode} workload={}",
                        env!("CARGO_PKG_VERSION"),
                        plan.name
                    );
                    logs = Some((
                        HlogWriter::create(
                            &run_dir.hlog(&plan.name, name, HlogKind::Response),
                            epoch_ms,
                            &format!("{comment} response time"),
                        )?,
                        HlogWriter::create(
                            &run_dir.hlog(&plan.name, name, HlogKind::Service),
                            epoch_ms,
                            &format!("{comment} service time"),
                        )?,
                    ));
                }
                Record::Interval(iv) => {
                    let i = *index
                        .get(iv.op.as_str())
                        .with_context(|| format!("driver reported an unknown op {:?}", iv.op))?;
                    let counts = iv.counts()?;
                    let (r_log, s_log) = logs.as_mut().context("interval before start")?;
                    let tag = format!("{name}/{}", iv.op);
                    r_log.interval(&tag, iv.start_ms, iv.length_ms, counts.response.max(), &iv.response)?;
                    s_log.interval(&tag, iv.start_ms, iv.length_ms, counts.service.max(), &iv.service)?;
                    totals[i].counts.merge(&counts)?;
                    if i == 0 {
                        measured_ms += iv.length_ms;
                        rss.add(iv.start_ms, iv.driver_rss_kb);
                    }
                    if last_progress.elapsed() > Duration::from_millis(900) {
                        last_progress = std::time::Instant::now();
                        let done: u64 = totals.iter().map(|t| t.counts.count).sum();
                        line.step(&format!("{:.0} s measured, {done} ops", measured_ms as f64 / 1000.0));
                        if let Some((a, b)) = logs.as_mut() {
                            a.flush()?;
                            b.flush()?;
                        }
                    }
                }
                Record::Finished(f) => finished = Some(f),
                Record::Fatal { message } => fatal = Some(message),
            }
            Ok(())
        })
        .await?;
    if let Some((mut a, mut b)) = logs {
        a.flush()?;
        b.flush()?;
    }
    if let Some(m) = fatal {
        bail!("the driver on {name} stopped: {m}");
    }
    let finished = match finished {
        Some(f) => f,
        None if stopped => Finished { measured_ms, ..Finished::default() },
        None => bail!("the driver on {name} ended without finishing ({})", status.describe()),
    };
    for t in &mut totals {
        t.measured_ms = finished.measured_ms;
    }
    let (first, last) = rss.peaks();
    Ok(TargetResult {
        target: name.clone(),
        totals,
        finished,
        partial: stopped,
        driver_rss_kb_first_minute: first,
        driver_rss_kb_last_minute: last,
    })
}

#[cfg(test)]
mod tests {
    use super::MinuteWindows;

    #[test]
    fn minute_windows_keep_first_and_sliding_last_peaks() {
        let mut w = MinuteWindows::default();
        for s in 0..600u64 {
            // 100 in the first minute (peak 150 at 30 s), 200 later, a 300 spike at 500 s.
            let v = match s {
                30 => 150,
                500 => 300,
                _ if s < 60 => 100,
                _ => 200,
            };
            w.add(2000 + s * 1000, v);
        }
        assert_eq!(w.peaks(), (150, 200), "the 500 s spike left the last-minute window");
        assert!(w.last.len() <= 61, "bounded: {}", w.last.len());
    }
}

//! The nemesis (Jepsen's word): faults injected into the targets while a soak runs, each
//! judged on two things. **Fail-closed**: while agentsh is hurt, governed commands must fail or
//! be denied, never run ungoverned (a shimmed `sudo whoami` must never print root). **Recovery**:
//! how the harness brought the target back, and how long it took.
//!
//! A fault is named on the command line (`--faults kill-server,stall-server@5m,...`) and fired
//! on a schedule ([`schedule`]); [`apply`] runs one on one target and [`probe`] judges what
//! governed commands saw meanwhile. Each fault applied is a row of faults.csv and a `fault:NAME`
//! verdict in tests.csv.

pub mod apply;
pub mod probe;

pub use crate::fault::{Fault, fault_guard, under_fault};

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::exit;

/// One fault to fire, `at` after the soak started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub fault: Fault,
    pub at: Duration,
}

/// The schedule of `--faults LIST` over a soak of `soak`: `NAME@TIME` fires at that time;
/// plain names are spread evenly over the soak, once each, or with `every` cycled through one
/// fault every `every` until the soak ends. Unknown names, times past the end and an empty item
/// are usage errors (exit 3).
pub fn schedule(list: &str, every: Option<Duration>, soak: Duration) -> Result<Vec<Planned>> {
    let mut timed = Vec::new();
    let mut plain = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(exit::usage(format!("--faults {list:?}: an empty fault name")));
        }
        let (name, at) = match item.split_once('@') {
            Some((name, at)) => {
                let at = humantime::parse_duration(at)
                    .map_err(|e| exit::usage(format!("--faults {item}: bad time {at:?}: {e}")))?;
                (name, Some(at))
            }
            None => (item, None),
        };
        let fault = Fault::from_str(name).map_err(|e| exit::usage(format!("--faults: {e}")))?;
        match at {
            Some(at) if at >= soak => {
                return Err(exit::usage(format!(
                    "--faults {item}: {} is not before the end of the soak ({})",
                    humantime::format_duration(at),
                    humantime::format_duration(soak)
                )));
            }
            Some(at) => timed.push(Planned { fault, at }),
            None => plain.push(fault),
        }
    }
    let mut planned = timed;
    match every {
        Some(every) if every.is_zero() => return Err(exit::usage("--fault-every must be more than 0")),
        Some(every) if !plain.is_empty() => {
            let mut at = every;
            let mut k = 0;
            while at < soak {
                planned.push(Planned { fault: plain[k % plain.len()], at });
                k += 1;
                at += every;
            }
        }
        _ => {
            let n = plain.len() as u32;
            for (i, fault) in plain.into_iter().enumerate() {
                planned.push(Planned { fault, at: soak * (i as u32 + 1) / (n + 1) });
            }
        }
    }
    planned.sort_by_key(|p| p.at);
    Ok(planned)
}

/// Whether fail-closed held while a fault was on: the word written to faults.csv and, as a
/// verdict, to tests.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailClosed {
    /// Probes ran during the fault and every one failed or was refused.
    Held,
    /// A governed command's effect was seen while agentsh was hurt: it ran ungoverned.
    Violated,
    /// No probe completed during the fault: nothing proven either way.
    Inconclusive,
    /// The fault was not applied (with the reason), or left nothing to govern.
    Skipped,
}

impl FailClosed {
    pub fn as_str(self) -> &'static str {
        match self {
            FailClosed::Held => "held",
            FailClosed::Violated => "violated",
            FailClosed::Inconclusive => "inconclusive",
            FailClosed::Skipped => "skipped",
        }
    }

    pub fn verdict(self) -> crate::suite::verdict::Verdict {
        use crate::suite::verdict::Verdict;
        match self {
            FailClosed::Held => Verdict::Held,
            FailClosed::Violated => Verdict::Violated,
            FailClosed::Inconclusive => Verdict::Inconclusive,
            FailClosed::Skipped => Verdict::SkippedEnv,
        }
    }
}

/// One fault applied to one target: a row of faults.csv.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRow {
    pub fault: Fault,
    pub target: String,
    /// When it was applied, in seconds since the run's clock started (the trends' clock).
    pub at_s: f64,
    /// How long the fault was on (from applying it to starting recovery).
    pub duration_s: f64,
    pub fail_closed: FailClosed,
    pub probes: u32,
    pub refused: u32,
    pub ran_ungoverned: u32,
    pub errors: u32,
    /// What the harness did to bring the target back.
    pub recovery: String,
    /// `yes`, `no`, or `dropped` (the target left the soak).
    pub recovered: &'static str,
    /// From the start of recovery until the server answered and a shimmed command ran.
    pub recover_s: Option<f64>,
    pub detail: String,
}

impl serde::Serialize for FailClosed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// faults.csv, written row by row (a soak killed mid-way keeps every fault that ended).
pub struct FaultsCsv {
    w: csv::Writer<std::fs::File>,
}

impl FaultsCsv {
    pub const HEADER: [&'static str; 13] = [
        "fault",
        "target",
        "at_s",
        "duration_s",
        "fail_closed",
        "probes",
        "refused",
        "ran_ungoverned",
        "errors",
        "recovery",
        "recovered",
        "recover_s",
        "detail",
    ];

    pub fn create(path: &Path) -> Result<FaultsCsv> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_path(path)
            .with_context(|| format!("writing {}", path.display()))?;
        w.write_record(Self::HEADER)?;
        w.flush()?;
        Ok(FaultsCsv { w })
    }

    pub fn row(&mut self, r: &FaultRow) -> Result<()> {
        self.w.serialize(r)?;
        self.w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn plain_faults_are_spread_over_the_soak_and_timed_ones_fire_when_told() {
        let s = schedule("kill-server,stall-server@5m,drop-ssh", None, 30 * MIN).expect("a schedule");
        let got: Vec<(Fault, u64)> = s.iter().map(|p| (p.fault, p.at.as_secs() / 60)).collect();
        assert_eq!(got, [(Fault::StallServer, 5), (Fault::KillServer, 10), (Fault::DropSsh, 20)]);
    }

    #[test]
    fn every_cycles_through_the_plain_faults_until_the_end() {
        let s = schedule("kill-server,fill-fs", Some(10 * MIN), 35 * MIN).expect("a schedule");
        let got: Vec<(Fault, u64)> = s.iter().map(|p| (p.fault, p.at.as_secs() / 60)).collect();
        assert_eq!(got, [(Fault::KillServer, 10), (Fault::FillFs, 20), (Fault::KillServer, 30)]);
    }

    #[test]
    fn bad_fault_lists_are_usage_errors() {
        for (list, every, want) in [
            ("kill-server,oops", None, "unknown fault \"oops\""),
            ("kill-server,", None, "empty fault name"),
            ("kill-server@40m", None, "not before the end"),
            ("kill-server@soon", None, "bad time"),
            ("kill-server", Some(Duration::ZERO), "more than 0"),
        ] {
            let e = schedule(list, every, 30 * MIN).expect_err(list);
            assert_eq!(exit::code_for(&e), exit::USAGE, "{list}: {e:#}");
            assert!(format!("{e:#}").contains(want), "{list}: {e:#}");
        }
    }

    #[test]
    fn a_guard_marks_its_target_and_its_observation_channel_until_dropped() {
        let g = fault_guard("abench-test-nemesis-0");
        assert!(under_fault("abench-test-nemesis-0"));
        assert!(under_fault("abench-test-nemesis-0/observe"));
        assert!(!under_fault("abench-test-nemesis-1"));
        drop(g);
        assert!(!under_fault("abench-test-nemesis-0/observe"));
    }

    #[test]
    fn a_watchdogs_recovery_is_marked_apart_from_faults() {
        let r = crate::fault::recovery_guard("abench-test-nemesis-2/observe");
        assert!(crate::fault::recovering("abench-test-nemesis-2"));
        assert!(!under_fault("abench-test-nemesis-2"), "a recovery is not a fault");
        drop(r);
        assert!(!crate::fault::recovering("abench-test-nemesis-2"));
    }

    #[test]
    fn faults_csv_has_the_agreed_header_and_one_line_per_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faults.csv");
        let mut csv = FaultsCsv::create(&path).expect("created");
        csv.row(&FaultRow {
            fault: Fault::KillServer,
            target: "t0".into(),
            at_s: 61.5,
            duration_s: 10.0,
            fail_closed: FailClosed::Held,
            probes: 4,
            refused: 3,
            ran_ungoverned: 0,
            errors: 1,
            recovery: "restarted".into(),
            recovered: "yes",
            recover_s: Some(1.25),
            detail: "x, \"y\"".into(),
        })
        .expect("a row");
        let mut r = csv::Reader::from_path(&path).expect("readable");
        assert_eq!(r.headers().expect("header").iter().collect::<Vec<_>>(), FaultsCsv::HEADER);
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][0], "kill-server");
        assert_eq!(&rows[0][4], "held");
        assert_eq!(&rows[0][11], "1.25");
        assert_eq!(&rows[0][12], "x, \"y\"");
    }
}

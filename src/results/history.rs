//! `history.csv`: one line per main-job run, appended in the folder that holds the run folders
//! (`results/history.csv` for the default `results/<run-id>/`), so that nightly runs of the same
//! agentsh version can be compared with each other (`agentsh-bench history`). This module owns
//! the file's columns, both ways: [`append`] checks the header of the file it appends to against
//! its own, [`read`] reads back what it wrote. What goes into a line is read from a run folder by
//! `analyze::digest`; what is judged on the lines is `analyze::history`'s.
//!
//! The columns are fixed but for the latency pairs, one per op that `scenarios/history.toml`
//! lists: a file written with another list (or by another harness version) is refused rather
//! than given lines whose columns do not match its header.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

/// The columns before the latency pairs, in order.
const HEAD: [&str; 17] = [
    "run_id",
    "date",
    "agentsh_version",
    "provider",
    "targets",
    "ready",
    "iterations",
    "soak_s",
    "interrupted",
    "held",
    "violated",
    "flaky",
    "inconclusive",
    "skipped",
    "integrity_violated",
    "wrong_decisions",
    "wedges",
];

/// The columns after the latency pairs, in order.
const TAIL: [&str; 4] = ["server_rss_kb_max", "server_fds_slope_per_hour", "leaks", "faults"];

/// The file a run folder's line goes to: `history.csv` in `folder`, the folder that holds the
/// run folder (`results/`), or the current folder for a run folder given as a bare name.
pub fn file_in(folder: &Path) -> PathBuf {
    if folder.as_os_str().is_empty() { PathBuf::from("history.csv") } else { folder.join("history.csv") }
}

/// The folder that holds `run_folder` (where its history.csv is).
pub fn folder_of(run_folder: &Path) -> PathBuf {
    match run_folder.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// One run. Counts of suite tests are per test over all targets (a test that held on one target
/// and was violated on another is flaky), so runs with different iteration counts (a soak runs as
/// many as fit) stay comparable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryRow {
    /// The run tag (`run.json`'s `run`).
    pub run_id: String,
    /// When the line was written (the run's end), UTC, RFC 3339.
    pub date: String,
    /// Read back from the targets; `none` for a run without agentsh.
    pub agentsh_version: String,
    pub provider: String,
    pub targets: u32,
    pub ready: u32,
    /// The highest suite iteration that ran (0 without the suite).
    pub iterations: u32,
    /// Seconds the soak ran (`soak.json`); None without a soak.
    pub soak_s: Option<f64>,
    /// Ctrl-C ended the run: its figures cover what ran until then.
    pub interrupted: bool,
    pub held: u32,
    pub violated: u32,
    pub flaky: u32,
    pub inconclusive: u32,
    /// Tests that only gave skipped-env.
    pub skipped: u32,
    /// Targets whose integrity check was violated.
    pub integrity_violated: u32,
    /// Summed over every row of latency.csv.
    pub wrong_decisions: u64,
    /// Times agentsh's server wedged under load (workload.json).
    pub wedges: u32,
    /// Per op of the history's list, in its order: response p50 and p99 in ms over all targets;
    /// None where the op did not run.
    pub latency: Vec<OpLatency>,
    /// The largest agentsh server RSS any target reached (trends.csv); None without trends.
    pub server_rss_kb_max: Option<f64>,
    /// The steepest growth of the server's open fds, per hour, over the targets.
    pub server_fds_slope_per_hour: Option<f64>,
    /// `leak` verdicts in trends.csv.
    pub leaks: Option<u32>,
    /// Per fault applied: how agentsh ended it ([`FaultOutcome`]); empty without faults.
    pub faults: Vec<FaultOutcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpLatency {
    pub op: String,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One fault of a run, over every time and target it was applied: the worst fail-closed verdict
/// and the worst recovery. Written compactly, `kill-server:held/2.1s` (recovered in 2.1 s at
/// worst), `fill-fs:violated/no` (not recovered), `destroy-target:held/dropped`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultOutcome {
    pub fault: String,
    /// `held`, `violated`, `inconclusive` or `skipped` (faults.csv's words).
    pub fail_closed: String,
    pub recovery: Recovery,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Recovered, in this many seconds at worst.
    Seconds(f64),
    /// `no`, `dropped`, or a recovered fault without a time.
    Other(String),
}

impl std::fmt::Display for FaultOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.recovery {
            Recovery::Seconds(s) => write!(f, "{}:{}/{s:.1}s", self.fault, self.fail_closed),
            Recovery::Other(o) => write!(f, "{}:{}/{o}", self.fault, self.fail_closed),
        }
    }
}

impl std::str::FromStr for FaultOutcome {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<FaultOutcome> {
        let bad = || anyhow!("not a fault outcome (fault:verdict/recovery): {s:?}");
        let (fault, rest) = s.split_once(':').ok_or_else(bad)?;
        let (fail_closed, recovery) = rest.split_once('/').ok_or_else(bad)?;
        let recovery = match recovery.strip_suffix('s').map(str::parse::<f64>) {
            Some(Ok(secs)) => Recovery::Seconds(secs),
            _ => Recovery::Other(recovery.to_string()),
        };
        Ok(FaultOutcome { fault: fault.into(), fail_closed: fail_closed.into(), recovery })
    }
}

/// The header for a history of `ops`.
pub fn columns(ops: &[String]) -> Vec<String> {
    let mut c: Vec<String> = HEAD.iter().map(|s| s.to_string()).collect();
    for op in ops {
        c.push(format!("{op}_p50_ms"));
        c.push(format!("{op}_p99_ms"));
    }
    c.extend(TAIL.iter().map(|s| s.to_string()));
    c
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.decimals$}"))
}

impl HistoryRow {
    /// The row's fields in [`columns`] order; latency for `ops` (an op the row lacks is empty).
    fn record(&self, ops: &[String]) -> Vec<String> {
        let mut r = vec![
            self.run_id.clone(),
            self.date.clone(),
            self.agentsh_version.clone(),
            self.provider.clone(),
            self.targets.to_string(),
            self.ready.to_string(),
            self.iterations.to_string(),
            opt(self.soak_s, 1),
            self.interrupted.to_string(),
            self.held.to_string(),
            self.violated.to_string(),
            self.flaky.to_string(),
            self.inconclusive.to_string(),
            self.skipped.to_string(),
            self.integrity_violated.to_string(),
            self.wrong_decisions.to_string(),
            self.wedges.to_string(),
        ];
        for op in ops {
            let l = self.latency.iter().find(|l| &l.op == op);
            r.push(opt(l.and_then(|l| l.p50_ms), 3));
            r.push(opt(l.and_then(|l| l.p99_ms), 3));
        }
        r.push(opt(self.server_rss_kb_max, 0));
        r.push(opt(self.server_fds_slope_per_hour, 3));
        r.push(self.leaks.map_or_else(String::new, |n| n.to_string()));
        r.push(self.faults.iter().map(ToString::to_string).collect::<Vec<_>>().join(";"));
        r
    }
}

/// Appends `rows` to `file` (created with its header when absent or empty). A file whose header
/// is not [`columns`]`(ops)` is refused, naming the file and what to do, before anything is
/// written to it.
pub fn append(file: &Path, ops: &[String], rows: &[HistoryRow]) -> Result<()> {
    let want = columns(ops);
    let existing = match std::fs::read(file) {
        Ok(bytes) => !bytes.is_empty(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if existing {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(file)
            .with_context(|| format!("reading {}", file.display()))?;
        let have: Vec<String> = match r.records().next() {
            Some(rec) => {
                rec.with_context(|| format!("reading {}:1", file.display()))?.iter().map(String::from).collect()
            }
            None => Vec::new(),
        };
        if have != want {
            bail!(
                "{}: its header is not the one this harness writes (it has {} columns, starting {:?}; \
                 expected {}). The ops in scenarios/history.toml or the harness changed since it was \
                 started: move it aside (e.g. to history-before.csv) and the next run starts a new \
                 one, or put scenarios/history.toml's ops back as they were",
                file.display(),
                have.len(),
                have.iter().take(3).collect::<Vec<_>>(),
                want.join(",")
            );
        }
    }
    // Every line built first and written with one call in append mode: two runs finishing at
    // once (both sides of a comparison, two jobs) do not interleave within a line.
    let mut w = csv::Writer::from_writer(Vec::new());
    if !existing {
        w.write_record(&want)?;
    }
    for row in rows {
        w.write_record(row.record(ops))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow!("{e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    f.write_all(&bytes).with_context(|| format!("appending to {}", file.display()))?;
    Ok(())
}

/// A history file read back: its ops (from its header) and its rows in file order (oldest
/// first: lines are only appended).
#[derive(Debug)]
pub struct History {
    pub ops: Vec<String>,
    pub rows: Vec<HistoryRow>,
}

/// Reads a history file; an error names the file and the line.
pub fn read(file: &Path) -> Result<History> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let mut records = r.records();
    let header: Vec<String> = match records.next() {
        Some(h) => h.with_context(|| format!("reading {}:1", file.display()))?.iter().map(String::from).collect(),
        None => bail!("{}: empty (not even a header)", file.display()),
    };
    let ops = ops_of(&header).ok_or_else(|| {
        anyhow!("{}:1: not a history.csv header (expected {} … {})", file.display(), HEAD.join(","), TAIL.join(","))
    })?;
    let mut rows = Vec::new();
    for (i, rec) in records.enumerate() {
        let at = i + 2;
        let rec = rec.with_context(|| format!("reading {}:{at}", file.display()))?;
        let fields: Vec<&str> = rec.iter().collect();
        let row = parse_row(&fields, &ops).map_err(|e| anyhow!("{}:{at}: {e}", file.display()))?;
        rows.push(row);
    }
    Ok(History { ops, rows })
}

/// The ops of a history header; None when it is not one.
fn ops_of(header: &[String]) -> Option<Vec<String>> {
    let n = header.len().checked_sub(HEAD.len() + TAIL.len())?;
    if n % 2 != 0 || header[..HEAD.len()] != HEAD || header[header.len() - TAIL.len()..] != TAIL {
        return None;
    }
    let pairs = &header[HEAD.len()..HEAD.len() + n];
    let mut ops = Vec::new();
    for pair in pairs.chunks(2) {
        let op = pair[0].strip_suffix("_p50_ms")?;
        if pair[1].strip_suffix("_p99_ms")? != op {
            return None;
        }
        ops.push(op.to_string());
    }
    Some(ops)
}

fn parse_row(f: &[&str], ops: &[String]) -> Result<HistoryRow> {
    let want = HEAD.len() + 2 * ops.len() + TAIL.len();
    if f.len() != want {
        bail!("{} fields, the header has {want}", f.len());
    }
    let count = |i: usize| -> Result<u32> { f[i].parse().map_err(|e| anyhow!("{}: not a count: {e}", HEAD[i])) };
    let float = |i: usize, name: &str| -> Result<Option<f64>> {
        if f[i].is_empty() {
            Ok(None)
        } else {
            f[i].parse().map(Some).map_err(|e| anyhow!("{name}: not a number: {e}"))
        }
    };
    let mut latency = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        let i = HEAD.len() + 2 * k;
        latency.push(OpLatency {
            op: op.clone(),
            p50_ms: float(i, &format!("{op}_p50_ms"))?,
            p99_ms: float(i + 1, &format!("{op}_p99_ms"))?,
        });
    }
    let t = HEAD.len() + 2 * ops.len();
    let faults = if f[t + 3].is_empty() {
        Vec::new()
    } else {
        f[t + 3].split(';').map(str::parse).collect::<Result<Vec<FaultOutcome>>>()?
    };
    Ok(HistoryRow {
        run_id: f[0].into(),
        date: f[1].into(),
        agentsh_version: f[2].into(),
        provider: f[3].into(),
        targets: count(4)?,
        ready: count(5)?,
        iterations: count(6)?,
        soak_s: float(7, "soak_s")?,
        interrupted: f[8].parse().map_err(|e| anyhow!("interrupted: not true or false: {e}"))?,
        held: count(9)?,
        violated: count(10)?,
        flaky: count(11)?,
        inconclusive: count(12)?,
        skipped: count(13)?,
        integrity_violated: count(14)?,
        wrong_decisions: f[15].parse().map_err(|e| anyhow!("wrong_decisions: not a count: {e}"))?,
        wedges: count(16)?,
        latency,
        server_rss_kb_max: float(t, TAIL[0])?,
        server_fds_slope_per_hour: float(t + 1, TAIL[1])?,
        leaks: if f[t + 2].is_empty() {
            None
        } else {
            Some(f[t + 2].parse().map_err(|e| anyhow!("leaks: not a count: {e}"))?)
        },
        faults,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub(crate) fn ops() -> Vec<String> {
        vec!["shim-allow".into(), "git".into()]
    }

    pub(crate) fn row(run: &str, version: &str) -> HistoryRow {
        HistoryRow {
            run_id: run.into(),
            date: "2026-12-01T02:00:00Z".into(),
            agentsh_version: version.into(),
            provider: "local".into(),
            targets: 3,
            ready: 3,
            iterations: 2,
            soak_s: Some(7200.0),
            interrupted: false,
            held: 80,
            violated: 2,
            flaky: 1,
            inconclusive: 3,
            skipped: 2,
            integrity_violated: 0,
            wrong_decisions: 0,
            wedges: 1,
            latency: vec![
                OpLatency { op: "shim-allow".into(), p50_ms: Some(12.5), p99_ms: Some(40.0) },
                OpLatency { op: "git".into(), p50_ms: None, p99_ms: None },
            ],
            server_rss_kb_max: Some(51234.0),
            server_fds_slope_per_hour: Some(0.25),
            leaks: Some(0),
            faults: vec![
                FaultOutcome {
                    fault: "kill-server".into(),
                    fail_closed: "held".into(),
                    recovery: Recovery::Seconds(2.1),
                },
                FaultOutcome {
                    fault: "drop-ssh".into(),
                    fail_closed: "held".into(),
                    recovery: Recovery::Other("no".into()),
                },
            ],
        }
    }

    #[test]
    fn lines_append_under_one_header_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(dir.path());
        append(&file, &ops(), &[row("r1", "0.16.9")]).unwrap();
        let mut second = row("r2", "none");
        second.soak_s = None;
        second.leaks = None;
        second.faults.clear();
        second.server_rss_kb_max = None;
        append(&file, &ops(), &[second.clone()]).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], columns(&ops()).join(","));
        assert!(
            lines[0].contains(",wedges,shim-allow_p50_ms,shim-allow_p99_ms,git_p50_ms,git_p99_ms,server_rss_kb_max,")
        );
        assert!(
            lines[1].ends_with(",12.500,40.000,,,51234,0.250,0,kill-server:held/2.1s;drop-ssh:held/no"),
            "{}",
            lines[1]
        );
        let back = read(&file).unwrap();
        assert_eq!(back.ops, ops());
        assert_eq!(back.rows, vec![row("r1", "0.16.9"), second]);
    }

    #[test]
    fn a_file_with_another_header_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(dir.path());
        append(&file, &["git".to_string()], &[row("r1", "0.16.9")]).unwrap();
        let before = std::fs::read(&file).unwrap();
        let e = format!("{:#}", append(&file, &ops(), &[row("r2", "0.16.9")]).unwrap_err());
        assert!(e.contains(&file.display().to_string()), "{e}");
        assert!(e.contains("move it aside"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "nothing appended");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(dir.path());
        append(&file, &ops(), &[row("r1", "0.16.9")]).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen(",80,2,1,", ",eighty,2,1,", 1)).unwrap();
        let e = format!("{:#}", read(&file).unwrap_err());
        assert!(e.contains("history.csv:2: held: not a count"), "{e}");
        std::fs::write(&file, "a,b\n").unwrap();
        assert!(format!("{:#}", read(&file).unwrap_err()).contains("history.csv:1: not a history.csv header"));
    }

    #[test]
    fn the_file_goes_beside_the_run_folder() {
        assert_eq!(folder_of(Path::new("results/20261201t020000-ab12")), PathBuf::from("results"));
        assert_eq!(folder_of(Path::new("run")), PathBuf::from("."));
        assert_eq!(file_in(Path::new("results")), PathBuf::from("results/history.csv"));
    }
}

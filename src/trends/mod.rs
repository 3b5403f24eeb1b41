//! Resource trends of agentsh over a long run: is the server leaking memory, file descriptors,
//! threads, sessions, FUSE mounts or processes, and how fast do its event store and logs grow?
//!
//! [`Sampling`] (in `sample`) reads every ready target's series every interval while the run goes
//! on, on the observation channel, and appends each value to `trends-samples.csv` as it comes
//! (`t_s,target,series,value`): a soak killed at any moment leaves a readable file, and the
//! controller holds nothing that grows with the run. [`conclude`] then fits each target × series
//! (`analyze::trends`: least-squares and Theil–Sen slopes per hour against the thresholds of
//! `scenarios/trends.toml`), writes `trends.csv`, prints the table (leaks first) and draws
//! `charts/trends.svg` (`report::trends`) with the caller's windows (fault injections) shaded.
//!
//! How the job uses it:
//!
//! ```text
//! let t0 = Instant::now();                       // the run's clock (faults use the same)
//! let ready: Vec<provision::Ready> = ...;        // the targets that are ready
//! let sampling = trends::Sampling::start(&ready, &p.control_dir, &p.events_db, every, &p.dir, t0)?;
//! ... run the soak; a fault that destroys a target: sampling.forget(&name);
//! sampling.finish().await?;                      // one last sample, file flushed
//! let rows = trends::conclude(&p.dir, &windows)?; // trends.csv, table, charts/trends.svg
//! ```
//!
//! ## The series
//!
//! [`SERIES`] lists them with their units. The server's are those of the oldest process matching
//! [`crate::watchdog::AGENTSH_SERVER`]; with no server there is no sample of them (a gap, not a
//! 0), and `server_up` (1 or 0, recorded but not judged) says which. `sessions` counts every
//! session the server's API lists, whatever its state. `event_store_bytes` is the SQLite event
//! store with its `-wal` and `-shm` files; `log_bytes` is `/var/log/agentsh`. `fuse_mounts` counts
//! FUSE mounts in the server's mount namespace (one per live session workspace).
//!
//! `leftover_procs` counts processes that a finished command left behind. A process counts when
//! all of these hold, each for a reason:
//! - its parent is PID 1, PID 0 or the server: a process whose parent exited is re-parented to
//!   init (or to a subreaper); PID 0 is what a container shows for processes the engine started
//!   (`podman exec`: sshd);
//! - it has run for at least [`MIN_AGE`]: commands in flight are not leftovers, and no command the
//!   harness runs may live that long (workload ops time out after 10 s, suite commands after 60 s);
//! - it started after the target was provisioned (after the observer shell was installed, step
//!   3): what a VM booted with (cron, journald...) is older;
//! - it is not one of the known long-lived processes ([`KNOWN`]): sshd, the agentsh server, the
//!   harness's fixtures and driver (the container's init is PID 1, its `sleep` older than the
//!   mark);
//! - it is not in a systemd `.service` cgroup: a daemon a VM's systemd starts later (timers) is
//!   not agentsh's doing.
//!
//! The sampling script's own shell is left out by its PID; its children (ps, awk) have it as
//! their parent.

mod sample;

pub use sample::Sampling;

use std::path::Path;

use anyhow::Result;

use crate::analyze::trends::{Row, Verdict};
use crate::report::trends::Window;
use crate::results::RunDir;

pub use crate::analyze::trends::SERIES;

/// Recorded (was the server there at all?) but not judged: a server that dies is the fault
/// scenarios' business, not a trend.
pub const SERVER_UP: &str = "server_up";

/// A process younger than this is not left over: it may be a command still running (the suite
/// gives its commands 60 s, `suite::run`).
pub const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(90);

/// Long-lived processes the harness or agentsh start on purpose (extended regular expressions
/// against the full command line, as `ps -o args` shows it; no backslashes: awk's `-v` would
/// read them as escapes).
pub const KNOWN: &[&str] = &[
    // sshd: the daemon, each connection's `sshd -i` (the local provider's ProxyCommand) and its
    // privilege-separated children (`sshd: root@notty`).
    "^(/usr/sbin/)?sshd([: ]|$)",
    crate::watchdog::AGENTSH_SERVER,
    // The loopback fixtures (provision::steps::fixtures).
    "^(/usr/bin/)?python3 /usr/local/libexec/agentsh-bench/fixtures[.]py( |$)",
    // The on-target driver (target::DRIVER_PATH).
    "^/usr/local/bin/agentsh-bench( |$)",
];

/// Fits every series of `dir/trends-samples.csv` against `scenarios/trends.toml`, writes
/// `trends.csv`, prints the table (leaks first) and draws `charts/trends.svg` with `windows`
/// shaded. A chart that cannot be drawn is a warning; the rows are returned either way.
pub fn conclude(dir: &RunDir, windows: &[Window]) -> Result<Vec<Row>> {
    use crate::analyze::trends;
    let limits = trends::load(&trends::default_path())?;
    let samples = trends::read_samples(&dir.trends_samples_csv())?;
    let rows = trends::analyze(&samples, &limits);
    trends::write_csv(&dir.trends_csv(), &rows)?;
    trends::print(&rows);
    let chart = dir.trends_svg();
    if let Err(e) = crate::report::trends::render(&samples, &rows, windows, &chart) {
        eprintln!("warning: {}: {e:#}", chart.display());
    }
    let leaks = rows.iter().filter(|r| r.verdict == Verdict::Leak).count();
    if leaks > 0 {
        tracing::warn!(leaks, "resource trends: series over their threshold (trends.csv)");
    }
    Ok(rows)
}

/// The hidden `trends` command: samples targets left up (their `-observe` aliases in an ssh
/// config, as `up` prints them) for `duration`, then concludes into `out`. For a kept target,
/// and for tests/trends.rs (the crate has no library to call the sampler from).
pub async fn command(
    config: &Path,
    aliases: &[String],
    every: std::time::Duration,
    duration: std::time::Duration,
    out: &Path,
    events_db: Option<&str>,
) -> Result<u8> {
    if aliases.is_empty() {
        return Err(crate::exit::usage("trends: name at least one target (its -observe alias)"));
    }
    if every.is_zero() {
        return Err(crate::exit::usage("trends: --every must be above zero"));
    }
    let dir = RunDir::create(Some(out), "trends")?;
    let events_db = match events_db {
        Some(p) => p.to_string(),
        None => crate::provision::assets::load(crate::provider::ProviderKind::Local, None, None, None)?.events_db(),
    };
    let probes: Vec<sample::Probe> = aliases
        .iter()
        .map(|alias| sample::Probe {
            name: alias.strip_suffix("-observe").unwrap_or(alias).to_string(),
            observe: crate::control::SshDest { config_file: config.to_path_buf(), alias: alias.clone() },
        })
        .collect();
    let control_dir = crate::paths::runtime_dir().join(format!("trends-{}", std::process::id()));
    let t0 = std::time::Instant::now();
    let sampling = Sampling::start_on(probes, &control_dir, &events_db, every, &dir.trends_samples_csv(), t0)?;
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: taking the last sample"),
    }
    let finished = sampling.finish().await;
    let _ = std::fs::remove_dir_all(&control_dir);
    finished?;
    conclude(&dir, &[])?;
    println!("written: {}", dir.trends_csv().display());
    Ok(crate::exit::OK)
}

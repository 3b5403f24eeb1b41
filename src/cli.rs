//! Command line. Without a subcommand the harness runs the main job: provision `--vms` targets,
//! check each is ready, then tear them down (unless `--keep`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::provider::{Engine, ProviderKind};

/// Upper bound on `--vms`: past this a 2-core controller spends its time in SSH, not measuring,
/// and a typo (`--vms 800`) should be a usage error, not an hour of provisioning.
pub const MAX_VMS: u32 = 64;

#[derive(Debug, Parser)]
#[command(name = "agentsh-bench", version, about = "Load and soak harness for agentsh on hardened targets")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Keep the targets after the run (tear them down later with `agentsh-bench down`).
    #[arg(long)]
    pub keep: bool,
    /// Results directory for this run (default: results/<run-id>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Also write the run's verdicts as JUnit XML to FILE: a testsuite per target, a testcase per
    /// suite test (violated and flaky fail, inconclusive is an error), per workload op
    /// (`decision:<op>`), integrity and fault.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Run the security suite this many times on every target (a fresh agentsh session each
    /// time); 0 skips it.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub iterations: u32,
    /// Run each iteration's tests in a random order from this seed (chained tests keep theirs).
    #[arg(long, value_name = "SEED")]
    pub shuffle: Option<u64>,
    /// An earlier run's results directory: a test that held there and is violated or flaky now
    /// is a regression (listed first, regressions.csv, exit 1).
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// Workload to run on every target after the suite: a name from scenarios/workloads/, a
    /// path to a .toml, or none. The default, auto, is `default` (every governed op with its
    /// expected decision) on targets with agentsh and none with `--agentsh none`.
    #[arg(long, default_value = "auto", value_name = "NAME")]
    pub workload: String,
    /// Override the workload's measured duration (e.g. 30s, 10m).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// Override the workload's rate (ops/s, open-loop workloads only).
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// agentsh's layers during the workload (the suite always runs with the installed config):
    /// full (the default: as installed), baseline (every layer off that the config can turn
    /// off), one layer alone on top of baseline (shim, seccomp, landlock, ptrace, fuse, network),
    /// all (each in turn, then a per-layer overhead table), or a comma-separated list.
    /// Overlays: assets/modes/<mode>.yaml.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// Soak: repeat suite iterations (--iterations per round) and workload rounds (--duration
    /// each) on every target until this much time has passed (e.g. 30m, 8h), sampling agentsh's
    /// resources all along (trends.csv).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub soak: Option<std::time::Duration>,
    /// Faults to inject during the soak, comma-separated: kill-server, stall-server, fill-fs,
    /// drop-ssh, destroy-target; NAME@TIME fires at that time (kill-server@5m), plain names are
    /// spread over the soak or, with --fault-every, cycled through. Each gets a fail-closed
    /// verdict and a time to recover (faults.csv).
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
    /// Fire one of --faults every DURATION, cycling through the list.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub fault_every: Option<std::time::Duration>,
    /// How long each fault stays on (probed meanwhile) before the harness recovers the target.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s", value_name = "DURATION")]
    pub fault_hold: std::time::Duration,
    /// How often a soak samples agentsh's resources on every target.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s", value_name = "DURATION")]
    pub trend_interval: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct Global {
    /// More logging (-v info, -vv debug). AGENTSH_BENCH_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Where targets come from and what is installed on them; shared by the main job and `up`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Number of targets, provisioned at once (1..=64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_VMS as i64))]
    pub vms: u32,
    /// agentsh to install: vX.Y.Z (cache, release .deb, source snapshot agentsh-vX.Y.Z.tar.gz from
    /// $AGENTSH_BENCH_SOURCES, Go module proxy), src:PATH (a source checkout or .tar.gz snapshot,
    /// built like the release), a path to a .deb, dir:PATH with dev-build binaries, or none.
    /// Given twice (main job only), both are provisioned at once, run side by side and compared
    /// (comparison.csv): e.g. --agentsh v0.16.9 --agentsh v0.20.1, or --agentsh none --agentsh v0.16.9.
    #[arg(long, default_value = crate::agentsh::DEFAULT_VERSION, value_name = "SPEC", action = clap::ArgAction::Append)]
    pub agentsh: Vec<String>,
    #[arg(long, value_enum, default_value_t = ProviderKind::Local)]
    pub provider: ProviderKind,
    /// Container engine of the local provider.
    #[arg(long, value_enum, default_value_t = Engine::Podman)]
    pub engine: Engine,
    /// TOML inventory of hosts for --provider ssh.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// How to reach exe.dev's control plane: an ssh destination (host alias from ~/.ssh/config).
    #[arg(long, default_value = "exe.dev", value_name = "DEST")]
    pub exe_host: String,
    /// Extra ssh config file for the exe provider (used to point it at a stand-in).
    #[arg(long, value_name = "FILE")]
    pub exe_ssh_config: Option<PathBuf>,
    /// agentsh server config to install (default: assets/config.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// agentsh policy to install as the default policy (default: assets/policies/default.yaml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision targets and leave them running; prints the run tag.
    Up {
        #[command(flatten)]
        targets: TargetArgs,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Destroy targets: those of one run (--run), or every target this harness created.
    Down {
        #[arg(long, value_name = "TAG")]
        run: Option<String>,
        #[arg(long, value_enum, default_value_t = ProviderKind::Local)]
        provider: ProviderKind,
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        #[arg(long, default_value = "exe.dev", value_name = "DEST")]
        exe_host: String,
        #[arg(long, value_name = "FILE")]
        exe_ssh_config: Option<PathBuf>,
    },
    /// List the targets this harness created, with their run tags.
    Ls {
        #[arg(long, value_enum, default_value_t = ProviderKind::Local)]
        provider: ProviderKind,
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        #[arg(long, default_value = "exe.dev", value_name = "DEST")]
        exe_host: String,
        #[arg(long, value_name = "FILE")]
        exe_ssh_config: Option<PathBuf>,
    },
    /// Build (or rebuild) the local target image; cached by its recipe.
    Image {
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        #[arg(long)]
        rebuild: bool,
    },
    /// Obtain an agentsh .deb for a spec (cache, release, Go module proxy build) and print its path.
    Fetch {
        #[arg(default_value = crate::agentsh::DEFAULT_VERSION)]
        spec: String,
    },
    /// Compare two runs' latency op by op (e.g. agentsh against an `--agentsh none` baseline):
    /// percentiles from the merged hlogs of every target, ratios run/base; writes
    /// RUN/comparison-<workload>.csv.
    Compare {
        /// Results directory of the baseline run.
        base: PathBuf,
        /// Results directory of the run to judge.
        run: PathBuf,
        /// Workload to compare (default: the only one both runs have).
        #[arg(long)]
        workload: Option<String>,
    },
    /// Write (or rewrite) RUN/report.html, a self-contained page of the run's results (no network
    /// needed to open it), and print its path.
    Report {
        /// Results directory of the run.
        run: PathBuf,
    },
    /// Each agentsh version's runs in history.csv (one line per main-job run, beside the run
    /// folders): a table of recent runs, history.svg beside the file, and the newest run of each
    /// version against the previous one with scenarios/history.toml's thresholds. Exit 1 when a
    /// change is flagged, 0 when none, 3 for a missing file or an unknown version.
    History {
        /// The history file.
        #[arg(long, default_value = "results/history.csv", value_name = "FILE")]
        file: PathBuf,
        /// Only this agentsh version (as history.csv's agentsh_version; a leading v is ignored).
        #[arg(long, value_name = "V")]
        version: Option<String>,
    },
    /// The on-target driver: reads a plan on stdin, streams records on stdout (run by the harness).
    #[command(hide = true)]
    Driver,
    /// A target's file-system manifest, taken as the suite's integrity check takes it (on the
    /// host `ssh -F CONFIG ALIAS` reaches: use a target's `-observe` alias): printed as JSON lines,
    /// or with --against an earlier one, the changes outside scenarios/integrity.toml (exit 1 if
    /// any). For a target left up, and for the tests.
    #[command(hide = true)]
    Manifest {
        #[arg(short = 'F', value_name = "CONFIG")]
        config: PathBuf,
        alias: String,
        #[arg(long, value_name = "FILE")]
        against: Option<PathBuf>,
    },
    /// agentsh's resource trends on targets left up (`up`): samples each `-observe` alias every
    /// --every for --duration, then writes trends-samples.csv, trends.csv (slopes, leak verdicts
    /// against scenarios/trends.toml) and charts/trends.svg into --out. For a kept target, and
    /// for the tests.
    #[command(hide = true)]
    Trends {
        #[arg(short = 'F', value_name = "CONFIG")]
        config: PathBuf,
        #[arg(required = true)]
        aliases: Vec<String>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        every: std::time::Duration,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        duration: std::time::Duration,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// agentsh's event store on the targets (default: the one assets/config.yaml names).
        #[arg(long, value_name = "PATH")]
        events_db: Option<String>,
    },
    /// Benchmarks that print ratios measured side by side in one run.
    Bench {
        #[command(subcommand)]
        which: BenchKind,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// The driver on one local target: no-op capacity on one core, scheduling overhead against the
    /// /bin/true floor, the harness's /bin/true p50 against hyperfine's mean, and RSS over a soak.
    Driver {
        /// No-op rates to try (ops/s).
        #[arg(long, value_delimiter = ',', default_value = "20000,40000")]
        rates: Vec<f64>,
        /// Length of each measurement.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: std::time::Duration,
        /// Also run exec-mix this long and compare driver and controller RSS early and late.
        #[arg(long, value_parser = humantime::parse_duration)]
        soak: Option<std::time::Duration>,
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        /// agentsh on the bench target (see --agentsh): with a version its server runs there, to
        /// show the driver's own figures do not change with it (the no-op ops are not governed).
        #[arg(long, default_value = "none")]
        agentsh: String,
    },
    /// Wall time of the security suite on 1 and N local targets side by side (provisioning
    /// excluded), the machine's CPU-seconds, and the CPU-bound floor on this machine's cores.
    Suite {
        /// Target counts to measure, in order.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        sizes: Vec<u32>,
        /// agentsh to install (see --agentsh).
        #[arg(long, default_value = crate::agentsh::DEFAULT_VERSION)]
        agentsh: String,
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        /// Suite iterations on every target.
        #[arg(long, default_value_t = 5)]
        iterations: u32,
    },
    /// Wall time to provision 1, 4 and 8 local targets (one-time builds excluded), controller RSS.
    Provision {
        /// Target counts to measure, in order.
        #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
        sizes: Vec<u32>,
        /// agentsh to install (see --agentsh).
        #[arg(long, default_value = crate::agentsh::DEFAULT_VERSION)]
        agentsh: String,
        #[arg(long, value_enum, default_value_t = Engine::Podman)]
        engine: Engine,
        /// Repetitions per size; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

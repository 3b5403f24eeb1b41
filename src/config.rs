//! The run's configuration, built once from the command line: every string the user typed is
//! turned into its type here (the agentsh spec, the provider, the suite, the workload plan, the
//! baseline) and every file named is read and checked, so that a mistake is a usage error before
//! anything slow starts and the stages after this never parse text again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::agentsh::Spec;
use crate::analyze::regressions::State;
use crate::cli::{TargetArgs, WorkloadArgs};
use crate::exit;
use crate::nemesis::Planned;
use crate::provider::{Engine, Provider, ProviderKind, ProviderOpts};
use crate::provision::modes::Mode;
use crate::schema::Plan;
use crate::suite::Suite;
use crate::suite::integrity::Excludes;
use crate::suite::run::TestId;

/// Where targets come from and what is installed on them (the main job, `up`, the benches).
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub vms: u32,
    pub agentsh: Spec,
    /// A second agentsh (`--agentsh` given twice): the main job compares the two.
    pub versus: Option<Spec>,
    pub provider: ProviderKind,
    pub engine: Engine,
    pub inventory: Option<PathBuf>,
    pub exe_host: String,
    pub exe_ssh_config: Option<PathBuf>,
    /// agentsh server config and policy to install instead of assets/'s.
    pub config: Option<PathBuf>,
    pub policy: Option<PathBuf>,
}

impl TargetConfig {
    /// The harness never aims traffic at anything but loopback or targets it made, so the only
    /// outside destination it accepts is an ssh alias the user configured themselves.
    pub fn from_args(a: &TargetArgs) -> Result<TargetConfig> {
        if a.provider == ProviderKind::Ssh && a.inventory.is_none() {
            return Err(exit::usage("--provider ssh needs --inventory FILE"));
        }
        for (flag, path) in [("--config", &a.config), ("--policy", &a.policy), ("--inventory", &a.inventory)] {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(exit::usage(format!("{flag} {}: no such file", p.display())));
            }
        }
        let (agentsh, versus) = match a.agentsh.as_slice() {
            [one] => (Spec::parse(one)?, None),
            [x, y] => {
                let (x, y) = (Spec::parse(x)?, Spec::parse(y)?);
                if x.to_string() == y.to_string() {
                    return Err(exit::usage(format!("--agentsh {x} given twice: compare two different versions")));
                }
                (x, Some(y))
            }
            _ => return Err(exit::usage("--agentsh: one version, or two to compare")),
        };
        Ok(TargetConfig {
            vms: a.vms,
            agentsh,
            versus,
            provider: a.provider,
            engine: a.engine,
            inventory: a.inventory.clone(),
            exe_host: a.exe_host.clone(),
            exe_ssh_config: a.exe_ssh_config.clone(),
            config: a.config.clone(),
            policy: a.policy.clone(),
        })
    }

    /// One local target with the default config and policy: what every bench provisions.
    pub fn local(agentsh: &str, engine: Engine) -> Result<TargetConfig> {
        Ok(TargetConfig {
            vms: 1,
            agentsh: Spec::parse(agentsh)?,
            versus: None,
            provider: ProviderKind::Local,
            engine,
            inventory: None,
            exe_host: String::new(),
            exe_ssh_config: None,
            config: None,
            policy: None,
        })
    }

    pub fn provider(&self) -> Result<Box<dyn Provider>> {
        crate::provider::build(ProviderOpts {
            kind: self.provider,
            engine: self.engine,
            inventory: self.inventory.as_deref(),
            exe_host: &self.exe_host,
            exe_ssh_config: self.exe_ssh_config.as_deref(),
        })
    }
}

/// An earlier run's verdicts per test: its tally state, and the test's title.
pub type Baseline = BTreeMap<TestId, (String, State)>;

/// The security suite as this run will run it.
pub struct SuiteConfig {
    pub suite: Suite,
    /// What the integrity check may see change (scenarios/integrity.toml).
    pub integrity: Excludes,
    pub iterations: u32,
    pub shuffle: Option<u64>,
    /// Features this provider's targets lack, with the reason (their tests are skipped-env).
    pub gaps: BTreeMap<String, String>,
    pub baseline: Option<Baseline>,
}

impl SuiteConfig {
    /// The suite from scenarios/, `iterations` times, on targets of `provider`.
    pub fn load(provider: ProviderKind, iterations: u32, shuffle: Option<u64>) -> Result<SuiteConfig> {
        Ok(SuiteConfig {
            suite: crate::suite::load(&crate::suite::suite_dir())?,
            integrity: crate::suite::integrity::load(&crate::suite::integrity::default_path())?,
            iterations,
            shuffle,
            gaps: crate::suite::environment_gaps(provider.as_str())?,
            baseline: None,
        })
    }
}

/// `--soak` and what goes with it, checked.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub duration: Duration,
    /// `--faults`, scheduled over the soak.
    pub faults: Vec<Planned>,
    /// How long each fault stays on before recovery (`--fault-hold`).
    pub hold: Duration,
    /// How often agentsh's resources are sampled on every target (`--trend-interval`).
    pub trend_every: Duration,
}

/// Everything the main job needs, checked.
pub struct RunConfig {
    pub targets: TargetConfig,
    /// None with `--iterations 0`.
    pub suite: Option<SuiteConfig>,
    /// None with `--workload none`.
    pub workload: Option<Plan>,
    /// The agentsh configs the workload runs under, in order (`--mode`; `[Full]` by default).
    pub modes: Vec<Mode>,
    /// `--soak`: the suite and the workload repeated until the time is up, with faults.
    pub soak: Option<SoakConfig>,
    pub out: Option<PathBuf>,
    pub keep: bool,
    /// `--junit FILE`: the verdicts as JUnit XML, written when the run ends.
    pub junit: Option<PathBuf>,
    /// What the run's line in history.csv holds (scenarios/history.toml), read before it starts.
    pub history: crate::analyze::history::Config,
}

impl RunConfig {
    pub fn from_cli(targets: &TargetArgs, w: &WorkloadArgs, out: Option<&Path>, keep: bool) -> Result<RunConfig> {
        let workload = workload_plan(w, targets.agentsh.iter().all(|s| s == "none"))?;
        let suite = match w.iterations {
            0 if w.baseline.is_some() => {
                return Err(exit::usage("--baseline compares suite verdicts: it needs --iterations of 1 or more"));
            }
            0 => None,
            n => {
                let mut s = SuiteConfig::load(targets.provider, n, w.shuffle)?;
                if let Some(dir) = &w.baseline {
                    let b = crate::analyze::regressions::load(dir)
                        .map_err(|e| exit::usage(format!("--baseline: {e:#}")))?;
                    s.baseline = Some(b);
                }
                Some(s)
            }
        };
        // A `none` side (also one side of a comparison) has no layers to set.
        let modes = modes(w, targets.agentsh.iter().any(|s| s == "none"), workload.is_some())?;
        let soak = soak(w)?;
        Ok(RunConfig {
            targets: TargetConfig::from_args(targets)?,
            suite,
            workload,
            modes,
            soak,
            out: out.map(Path::to_path_buf),
            keep,
            junit: None,
            history: crate::analyze::history::load(&crate::analyze::history::default_path())?,
        })
    }

    /// `--junit FILE`, checked now rather than when the run ends: its folder must exist.
    pub fn with_junit(mut self, file: Option<&Path>) -> Result<RunConfig> {
        if let Some(f) = file {
            let folder = f.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !folder.is_dir() || f.is_dir() {
                return Err(exit::usage(format!("--junit {}: not a file in an existing folder", f.display())));
            }
        }
        self.junit = file.map(Path::to_path_buf);
        Ok(self)
    }
}

/// `--soak` and its faults, checked: a soak needs a length, faults need a soak, and a soak runs
/// the installed config (a `--mode` switch mid-soak would change what the trends measure).
fn soak(w: &WorkloadArgs) -> Result<Option<SoakConfig>> {
    let Some(duration) = w.soak else {
        for (flag, given) in [("--faults", w.faults.is_some()), ("--fault-every", w.fault_every.is_some())] {
            if given {
                return Err(exit::usage(format!("{flag} applies to a soak: it needs --soak DURATION")));
            }
        }
        return Ok(None);
    };
    if duration.is_zero() {
        return Err(exit::usage("--soak 0: a soak needs a length (e.g. --soak 30m)"));
    }
    if w.mode.is_some() {
        return Err(exit::usage("--mode and --soak: a soak runs agentsh as installed (leave --mode out)"));
    }
    if w.fault_hold.is_zero() || w.trend_interval.is_zero() {
        return Err(exit::usage("--fault-hold and --trend-interval must be more than 0"));
    }
    let faults = match &w.faults {
        Some(list) => crate::nemesis::schedule(list, w.fault_every, duration)?,
        None => Vec::new(),
    };
    Ok(Some(SoakConfig { duration, faults, hold: w.fault_hold, trend_every: w.trend_interval }))
}

/// `--mode`, checked: its overlays must parse, and it needs agentsh and a workload to apply to.
/// With `--agentsh none` every mode is refused, `baseline` too: that mode is agentsh with its
/// layers off, a different measurement from no agentsh at all (latency.csv's mode `none`).
fn modes(w: &WorkloadArgs, without_agentsh: bool, with_workload: bool) -> Result<Vec<Mode>> {
    let Some(typed) = &w.mode else { return Ok(vec![Mode::Full]) };
    let modes = Mode::parse_list(typed)?;
    if without_agentsh {
        return Err(exit::usage(format!(
            "--mode {typed} configures agentsh's layers, and --agentsh none installs no agentsh (its workload's \
             mode is `none`; `baseline` is agentsh with its layers off)"
        )));
    }
    if !with_workload {
        return Err(exit::usage(format!("--mode {typed} applies to the workload: it needs one (--workload NAME)")));
    }
    for m in &modes {
        m.overlay()?;
    }
    Ok(modes)
}

/// The workload plan of a run, with `--duration` and `--rate` applied. `auto` is `default` with
/// agentsh and none without it: a baseline run measures the governed ops' ungoverned twins only
/// when asked (`--agentsh none --workload default`).
fn workload_plan(w: &WorkloadArgs, without_agentsh: bool) -> Result<Option<Plan>> {
    let name = match w.workload.as_str() {
        "auto" if without_agentsh => "none",
        "auto" => "default",
        n => n,
    };
    if name == "none" {
        if w.duration.is_some() || w.rate.is_some() {
            return Err(exit::usage(
                "--duration and --rate go with --workload NAME (without agentsh, none runs unless one is named)",
            ));
        }
        return Ok(None);
    }
    let plan = crate::workload::load(name)?;
    crate::workload::with_overrides(plan, w.duration, w.rate).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> crate::cli::Cli {
        crate::cli::Cli::try_parse_from(std::iter::once("agentsh-bench").chain(args.iter().copied())).expect("parses")
    }

    fn usage_error(args: &[&str]) -> String {
        let c = cli(args);
        let e = RunConfig::from_cli(&c.targets, &c.workload, None, false).err().expect("refused");
        assert_eq!(exit::code_for(&e), exit::USAGE, "{e:#}");
        format!("{e:#}")
    }

    #[test]
    fn a_soak_needs_a_length_and_faults_need_a_soak_and_known_names() {
        assert!(usage_error(&["--soak", "0s"]).contains("needs a length"));
        assert!(usage_error(&["--faults", "kill-server"]).contains("needs --soak"));
        assert!(usage_error(&["--soak", "10m", "--faults", "kill-server,unplug"]).contains("unknown fault \"unplug\""));
        assert!(usage_error(&["--soak", "10m", "--mode", "all"]).contains("--mode and --soak"));
        // Bad durations never get this far: clap refuses them, and main makes that exit 3 too.
        for bad in [["--soak", "-5m"], ["--soak", "soon"]] {
            let e = crate::cli::Cli::try_parse_from(std::iter::once("agentsh-bench").chain(bad)).expect_err("refused");
            assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        }
        let c = cli(&["--soak", "30m", "--faults", "kill-server,drop-ssh@1m"]);
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid");
        let soak = cfg.soak.expect("a soak");
        assert_eq!(soak.duration, std::time::Duration::from_secs(1800));
        let planned: Vec<String> = soak.faults.iter().map(|p| format!("{}@{}", p.fault, p.at.as_secs())).collect();
        assert_eq!(planned, ["drop-ssh@60", "kill-server@900"]);
    }

    #[test]
    fn the_defaults_give_the_suite_once_on_one_local_target_with_the_default_agentsh() {
        let c = cli(&[]);
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("the defaults are valid");
        assert_eq!(cfg.targets.vms, 1);
        assert_eq!(cfg.targets.provider, ProviderKind::Local);
        assert_eq!(cfg.targets.agentsh.to_string(), crate::agentsh::DEFAULT_VERSION);
        let suite = cfg.suite.expect("the suite runs by default");
        assert_eq!((suite.iterations, suite.suite.tests.len()), (1, 90));
        assert_eq!(cfg.workload.map(|p| p.name).as_deref(), Some("default"), "the governed mix runs by default");
        let c = cli(&["--agentsh", "none"]);
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid");
        assert!(cfg.workload.is_none(), "no governed ops to judge without agentsh");
    }

    #[test]
    fn bad_arguments_are_usage_errors_before_anything_runs() {
        assert!(usage_error(&["--iterations", "0", "--baseline", "/tmp"]).contains("--baseline"));
        assert!(usage_error(&["--agentsh", "none", "--duration", "5s"]).contains("--workload"));
        assert!(usage_error(&["--workload", "none", "--rate", "5"]).contains("--workload"));
        assert!(usage_error(&["--agentsh", "0.16"]).contains("--agentsh"));
        assert!(usage_error(&["--provider", "ssh"]).contains("--inventory"));
        assert!(usage_error(&["--policy", "/no/such/policy.yaml"]).contains("/no/such/policy.yaml"));
        assert!(usage_error(&["--workload", "no-such-workload"]).contains("no-such-workload"));
        assert!(usage_error(&["--mode", "ebpf"]).contains("unknown mode \"ebpf\""));
        assert!(usage_error(&["--mode", "ptrace,"]).contains("unknown mode \"\""));
        assert!(usage_error(&["--agentsh", "none", "--mode", "baseline"]).contains("--agentsh none"));
        assert!(usage_error(&["--agentsh", "none", "--mode", "full"]).contains("--agentsh none"));
        assert!(usage_error(&["--workload", "none", "--mode", "all"]).contains("needs one"));
        assert!(usage_error(&["--agentsh", "v0.16.9", "--agentsh", "v0.16.9"]).contains("given twice"));
        assert!(usage_error(&["--agentsh", "none", "--agentsh", "v0.16.9", "--agentsh", "v0.20.1"]).contains("two"));
    }

    #[test]
    fn junit_needs_an_existing_folder() {
        let c = cli(&["--junit", "/no/such/dir/junit.xml"]);
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid");
        let e = cfg.with_junit(c.junit.as_deref()).err().expect("refused");
        assert_eq!(exit::code_for(&e), exit::USAGE);
        assert!(format!("{e:#}").contains("/no/such/dir/junit.xml"), "{e:#}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("junit.xml");
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid");
        assert_eq!(cfg.with_junit(Some(&file)).expect("accepted").junit, Some(file));
    }

    #[test]
    fn two_versions_make_a_comparison_run_with_the_governed_workload() {
        let c = cli(&["--agentsh", "none", "--agentsh", "v0.20.1"]);
        let cfg = RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid");
        assert_eq!(cfg.targets.agentsh, Spec::None);
        assert_eq!(cfg.targets.versus.map(|s| s.to_string()).as_deref(), Some("v0.20.1"));
        // One side has agentsh, so the governed ops run (ungoverned on the `none` side).
        assert_eq!(cfg.workload.map(|p| p.name).as_deref(), Some("default"));
    }

    #[test]
    fn mode_defaults_to_full_and_takes_all_or_a_list() {
        let modes = |args: &[&str]| {
            let c = cli(args);
            RunConfig::from_cli(&c.targets, &c.workload, None, false).expect("valid").modes
        };
        assert_eq!(modes(&[]), [Mode::Full]);
        assert_eq!(modes(&["--agentsh", "none"]), [Mode::Full], "the default is no --mode");
        assert_eq!(modes(&["--mode", "all"]), Mode::ALL);
        assert_eq!(modes(&["--mode", "ptrace,baseline"]), [Mode::Ptrace, Mode::Baseline]);
    }

    #[test]
    fn a_spec_prints_as_it_is_typed() {
        for s in ["v0.20.1", "none"] {
            assert_eq!(Spec::parse(s).expect("valid").to_string(), s);
        }
    }
}

//! Hardening targets, all at once: each target runs its steps in order, each step idempotent and
//! logged to `results/<run>/targets/<name>/provision.log`. A target that fails is reported with its
//! step and the command's stderr while the others go on.

pub mod assets;
pub mod modes;
mod steps;
pub mod versions;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::agentsh::Artifact;
use crate::control::Conn;
use crate::progress::Board;
use crate::provider::Target;

/// What every target gets.
pub struct Setup {
    pub artifact: Option<Artifact>,
    /// The artifact's bytes (empty without one).
    pub deb: Vec<u8>,
    pub assets: assets::Assets,
    /// This binary, installed as the on-target driver, and its sha256 (to skip a re-upload).
    pub driver: Vec<u8>,
    pub driver_sha: String,
    pub control_dir: PathBuf,
    /// The provider's patience with a new target's sshd (`Provider::connect_attempts`).
    pub connect_attempts: u32,
}

impl Setup {
    pub fn new(
        artifact: Option<Artifact>,
        assets: assets::Assets,
        control_dir: PathBuf,
        connect_attempts: u32,
    ) -> Result<Setup> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let driver = std::fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
        let driver_sha = hex::encode(Sha256::digest(&driver));
        // Read once and shared by every target: each target reading its own copy cost 30 MiB of
        // controller memory per target (275 MiB at 8 targets).
        let deb = match &artifact {
            Some(a) => std::fs::read(&a.deb).with_context(|| format!("reading {}", a.deb.display()))?,
            None => Vec::new(),
        };
        Ok(Setup { artifact, deb, assets, driver, driver_sha, control_dir, connect_attempts })
    }
}

/// A hardened target, ready for the suite and the workloads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ready {
    pub target: Target,
    /// Read back from the target (`agentsh --version`), never assumed; None with `--agentsh none`.
    pub agentsh_version: Option<String>,
    pub seconds: f64,
    pub steps: Vec<(String, f64)>,
    /// What went wrong on the way without stopping the target (a try that failed, then worked).
    pub findings: Vec<Finding>,
}

/// Something agentsh did wrong that readiness saw, with the file in the target's folder holding
/// the evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Failed {
    pub name: String,
    pub provider: crate::provider::ProviderKind,
    pub step: String,
    pub error: String,
    pub seconds: f64,
    pub findings: Vec<Finding>,
}

pub type Outcome = std::result::Result<Ready, Failed>;

/// Provisions every target concurrently; each one's log goes to `target_dir(name)` (the results
/// directory's layout is not provisioning's business: `results::RunDir::target_dir`).
pub async fn all(
    targets: Vec<Target>,
    setup: Arc<Setup>,
    target_dir: impl Fn(&str) -> PathBuf,
    board: &Board,
) -> Vec<Outcome> {
    let jobs = targets.into_iter().map(|t| {
        let setup = setup.clone();
        let dir = target_dir(&t.name);
        let line = board.line(&t.name);
        async move {
            let outcome = one(t, &setup, &dir, &line).await;
            match &outcome {
                Ok(r) => line.finish(true, &ready_summary(r)),
                Err(f) => line.finish(false, &format!("at step {}: {}", f.step, first_line(&f.error))),
            }
            outcome
        }
    });
    futures::future::join_all(jobs).await
}

fn ready_summary(r: &Ready) -> String {
    match &r.agentsh_version {
        Some(v) => format!("ready: agentsh {v}, shim enforcing ({:.1} s)", r.seconds),
        None => format!("ready: no agentsh (baseline) ({:.1} s)", r.seconds),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Per-target context passed to every step.
pub struct Ctx<'a> {
    pub setup: &'a Setup,
    pub dir: &'a Path,
    pub log: std::sync::Mutex<std::fs::File>,
    pub findings: std::sync::Mutex<Vec<Finding>>,
}

impl Ctx<'_> {
    pub fn add_finding(&self, kind: &str, detail: &str) {
        if let Ok(mut f) = self.findings.lock() {
            f.push(Finding { kind: kind.to_string(), detail: detail.to_string() });
        }
    }

    fn take_findings(&self) -> Vec<Finding> {
        self.findings.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default()
    }

    pub fn log(&self, msg: &str) {
        use std::io::Write;
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{msg}");
        }
    }
}

async fn one(target: Target, setup: &Setup, dir: &Path, line: &crate::progress::Line) -> Outcome {
    let started = Instant::now();
    let fail = |step: &str, e: anyhow::Error, target: &Target, findings: Vec<Finding>| Failed {
        name: target.name.clone(),
        provider: target.provider,
        step: step.to_string(),
        error: format!("{e:#}"),
        seconds: started.elapsed().as_secs_f64(),
        findings,
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(fail("results", e.into(), &target, Vec::new()));
    }
    let log = match std::fs::File::create(dir.join("provision.log")) {
        Ok(f) => f,
        Err(e) => return Err(fail("results", e.into(), &target, Vec::new())),
    };
    let ctx = Ctx { setup, dir, log: std::sync::Mutex::new(log), findings: Default::default() };
    let mut timings = Vec::new();

    macro_rules! step {
        ($name:expr, $fut:expr) => {{
            line.step($name);
            let t0 = Instant::now();
            ctx.log(&format!("== {}", $name));
            match $fut.await {
                Ok(v) => {
                    let secs = t0.elapsed().as_secs_f64();
                    ctx.log(&format!("== {} ok ({secs:.2} s)", $name));
                    timings.push(($name.to_string(), secs));
                    v
                }
                Err(e) => {
                    ctx.log(&format!("== {} FAILED: {e:#}", $name));
                    return Err(fail($name, e, &target, ctx.take_findings()));
                }
            }
        }};
    }

    let conn: Conn =
        step!("connect", Conn::connect(&target.name, &target.ssh, &setup.control_dir, setup.connect_attempts));
    step!("packages", steps::packages(&ctx, &conn));
    step!("observer", steps::observer(&ctx, &conn));
    let observe: Conn = step!(
        "observer-connect",
        Conn::connect(&format!("{}/observe", target.name), &target.observe, &setup.control_dir, 6)
    );
    step!("driver", steps::driver(&ctx, &conn));
    step!("fixtures", steps::fixtures(&ctx, &observe));
    let agentsh_version = match &setup.artifact {
        None => {
            step!("readiness", steps::readiness_without_agentsh(&ctx, &conn, &observe));
            None
        }
        Some(artifact) => {
            step!("agentsh", steps::install_agentsh(&ctx, &conn, artifact));
            step!("assets", steps::assets(&ctx, &conn));
            step!("server", steps::server(&ctx, &conn));
            step!("shim", steps::shim(&ctx, &conn));
            Some(step!("readiness", steps::readiness_watched(&ctx, &conn, &observe, artifact)))
        }
    };
    let findings = ctx.take_findings();
    Ok(Ready { target, agentsh_version, seconds: started.elapsed().as_secs_f64(), steps: timings, findings })
}

/// Timeouts for the kinds of command a step runs.
pub const QUICK: Duration = Duration::from_secs(30);
pub const SLOW: Duration = Duration::from_secs(300);

pub fn ready_count(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| o.is_ok()).count()
}

pub fn summarize(outcomes: &[Outcome]) {
    for o in outcomes {
        if let Err(f) = o {
            eprintln!("{}: provisioning failed at step `{}`:\n  {}", f.name, f.step, f.error.replace('\n', "\n  "));
        }
    }
}

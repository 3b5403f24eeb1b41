//! Providers: where targets come from. One trait, one file per provider (hyperfine's exporters).
//! Every target carries its run tag in its name or labels, so `down` can find what a crashed run
//! left behind without any state file.

mod exe;
#[cfg(test)]
pub mod fake;
mod fusectl;
pub mod image;
mod inventory;
mod local;
mod sshconfig;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_trait::async_trait;

use crate::control::SshDest;

pub use exe::ExeProvider;
pub use inventory::InventoryProvider;
pub use local::LocalProvider;

/// Where targets come from (`--provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// One podman (or docker) container per target on this machine.
    Local,
    /// exe.dev VMs through its SSH command protocol.
    Exe,
    /// Hosts listed in a TOML inventory (--inventory).
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Podman,
    Docker,
}

impl Engine {
    pub fn program(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }
}

impl ProviderKind {
    /// The name users type after `--provider`, and the key of `scenarios/environment.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Exe => "exe",
            ProviderKind::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prefix of everything this harness creates; `down` without `--run` removes all of it.
const NAME_PREFIX: &str = "abench";

/// A target (VM or container) ready to be provisioned.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub run: String,
    pub provider: ProviderKind,
    /// The channel the tests use: root's login shell (the agentsh shim once installed).
    pub ssh: SshDest,
    /// The observation channel: a uid-0 user whose login shell is a copy of bash taken before the
    /// shim goes in, so agentsh never governs what the harness reads (/proc, logs, RSS).
    pub observe: SshDest,
}

/// What `ls` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub run: String,
    pub state: String,
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    /// How many times provisioning tries to reach a new target over ssh before giving up (with
    /// backoff, 0.2 s doubling to 5 s: 12 tries wait about 40 s for a slow sshd).
    fn connect_attempts(&self) -> u32 {
        12
    }
    /// One-time work before targets are created (image build, control-plane check). Its cost is
    /// reported apart from provisioning.
    async fn prepare(&self) -> Result<()>;
    /// Creates `count` targets at once. One result per target, so one failure does not stop the
    /// others; a target that failed is already destroyed (or named in its error).
    async fn create(&self, run: &str, count: u32, state_dir: &Path) -> Vec<Result<Target>>;
    /// Every target this harness created (of any run).
    async fn list(&self) -> Result<Vec<Listed>>;
    /// Destroys the targets of `run`, or of every run; returns the names destroyed.
    async fn destroy(&self, run: Option<&str>) -> Result<Vec<String>>;
    /// Destroys one target (the nemesis's `destroy-target` fault). Providers whose hosts the
    /// harness did not make (an ssh inventory) refuse, and the fault is reported as skipped.
    async fn destroy_target(&self, name: &str) -> Result<()> {
        anyhow::bail!("the {} provider does not destroy single targets ({name})", self.kind())
    }
}

pub struct ProviderOpts<'a> {
    pub kind: ProviderKind,
    pub engine: Engine,
    pub inventory: Option<&'a Path>,
    pub exe_host: &'a str,
    pub exe_ssh_config: Option<&'a Path>,
}

pub fn build(opts: ProviderOpts<'_>) -> Result<Box<dyn Provider>> {
    Ok(match opts.kind {
        ProviderKind::Local => Box::new(LocalProvider::new(opts.engine)?),
        ProviderKind::Exe => Box::new(ExeProvider::new(opts.exe_host, opts.exe_ssh_config)?),
        ProviderKind::Ssh => {
            let file = opts.inventory.ok_or_else(|| crate::exit::usage("--provider ssh needs --inventory FILE"))?;
            Box::new(InventoryProvider::load(file)?)
        }
    })
}

/// A fresh run tag: UTC time to the second plus 4 random hex digits, e.g. `20261126t203000-3fa9`.
/// Sortable, unique across concurrent runs, and short (container names and socket paths).
pub fn new_run_tag() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // Lower case: container and host names are compared case-sensitively by some engines.
    let stamp: String = now.chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect::<String>().to_lowercase();
    format!("{stamp}-{:04x}", rand::random::<u16>())
}

pub fn target_name(run: &str, index: u32) -> String {
    format!("{NAME_PREFIX}-{run}-{index}")
}

/// The inverse of [`target_name`]: `abench-<run>-<index>` → `<run>`; None for anything this
/// harness did not name.
pub fn run_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(NAME_PREFIX)?.strip_prefix('-')?;
    let (run, index) = rest.rsplit_once('-')?;
    index.parse::<u32>().ok()?;
    Some(run)
}

/// Run tags are user input for `down --run`: keep them to the characters we generate.
pub fn validate_run_tag(run: &str) -> Result<()> {
    if run.is_empty() || run.len() > 40 || !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(crate::exit::usage(format!("invalid run tag {run:?} (expected e.g. 20261126t203000-3fa9)")));
    }
    Ok(())
}

/// The harness's own SSH key, made once per machine. Targets get its public half at creation.
pub fn harness_key() -> Result<(PathBuf, String)> {
    let dir = crate::paths::cache_dir()?.join("ssh");
    let key = dir.join("id_ed25519");
    if !key.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "agentsh-bench", "-f"])
            .arg(&key)
            .status()
            .context("running ssh-keygen (install openssh-client)")?;
        anyhow::ensure!(status.success(), "ssh-keygen failed creating {}", key.display());
    }
    let public =
        std::fs::read_to_string(key.with_extension("pub")).with_context(|| format!("reading {}.pub", key.display()))?;
    Ok((key, public.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_tags_are_valid_and_distinct() {
        let a = new_run_tag();
        let b = new_run_tag();
        validate_run_tag(&a).unwrap();
        assert_eq!(a.len(), "20261126t203000-3fa9".len(), "{a}");
        // Same second, so only the random part can differ; 1/65536 chance of a false failure.
        assert_ne!(a, b);
    }

    #[test]
    fn run_is_recovered_from_the_name() {
        assert_eq!(run_of(&target_name("20261126t203000-3fa9", 7)), Some("20261126t203000-3fa9"));
        assert_eq!(run_of("abench-x-notanumber"), None);
        assert_eq!(run_of("other-x-1"), None);
    }

    #[test]
    fn bad_run_tags_are_usage_errors() {
        for bad in ["", "a b", "x;rm -rf /", &"x".repeat(41)] {
            let e = validate_run_tag(bad).unwrap_err();
            assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE, "{bad:?}");
        }
    }
}

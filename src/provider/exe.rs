//! exe.dev: VMs made and removed through its SSH command protocol
//! (`ssh exe.dev new --name=… --image=… --command=none --json`, `ls --json`, `rm NAME`).
//! Commands then go straight to the VM's `ssh_dest`, resolved through the user's ssh config
//! (`--exe-ssh-config`), which is also how the tests point this provider at a local stand-in.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::process::Command;

use super::sshconfig::{self, Route, Spec};
use super::{Listed, Provider, Target, run_of, target_name};

/// The image the seed suite uses; agentsh's exe.dev setup is written for it.
const IMAGE: &str = "ubuntu:22.04";

pub struct ExeProvider {
    host: String,
    ssh_config: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct NewVm {
    vm_name: String,
    ssh_dest: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LsReply {
    Wrapped { vms: Vec<LsVm> },
    Bare(Vec<LsVm>),
}

#[derive(Debug, Deserialize)]
struct LsVm {
    #[serde(alias = "name")]
    vm_name: String,
    #[serde(default)]
    status: Option<String>,
}

impl ExeProvider {
    pub fn new(host: &str, ssh_config: Option<&Path>) -> Result<Self> {
        if host.is_empty() || host.starts_with('-') {
            return Err(crate::exit::usage(format!("--exe-host {host:?} is not an ssh destination")));
        }
        Ok(ExeProvider { host: host.to_string(), ssh_config: ssh_config.map(Path::to_path_buf) })
    }

    /// Runs one control-plane command: `ssh [-F cfg] <host> <args…>`.
    async fn control(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ssh");
        c.kill_on_drop(true);
        if let Some(cfg) = &self.ssh_config {
            c.arg("-F").arg(cfg);
        }
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]);
        c.arg(&self.host).args(args);
        let out = tokio::time::timeout(std::time::Duration::from_secs(180), c.output())
            .await
            .with_context(|| format!("exe control `{}` timed out", args.join(" ")))?
            .context("running ssh (install openssh-client)")?;
        if !out.status.success() {
            bail!(
                "exe control `{}` failed (exit {:?}): {}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn create_one(&self, run: &str, index: u32, key: &Path, dir: &Path) -> Result<Target> {
        let name = target_name(run, index);
        let name_arg = format!("--name={name}");
        let image_arg = format!("--image={IMAGE}");
        let reply = self.control(&["new", &name_arg, &image_arg, "--command=none", "--json"]).await?;
        let vm: NewVm = serde_json::from_str(reply.trim())
            .with_context(|| format!("exe new {name}: reply is not the expected JSON: {}", reply.trim()))?;
        if vm.vm_name != name {
            let _ = self.control(&["rm", &vm.vm_name]).await;
            bail!("exe new {name}: got a VM named {:?} (removed)", vm.vm_name);
        }
        tracing::info!(vm = %vm.vm_name, dest = %vm.ssh_dest, status = ?vm.status, "exe VM created");
        let (user, host) = vm.ssh_dest.split_once('@').unwrap_or(("root", vm.ssh_dest.as_str()));
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().ok()),
            _ => (host, None),
        };
        sshconfig::write_target(
            dir,
            key,
            Spec {
                name: &name,
                run,
                provider: super::ProviderKind::Exe,
                route: Route::Host { hostname: host, port },
                user,
                include: self.ssh_config.as_deref(),
            },
        )
    }
}

#[async_trait]
impl Provider for ExeProvider {
    fn kind(&self) -> super::ProviderKind {
        super::ProviderKind::Exe
    }

    async fn prepare(&self) -> Result<()> {
        self.list().await.map(|_| ()).context("exe.dev control plane unreachable")
    }

    async fn create(&self, run: &str, count: u32, state_dir: &Path) -> Vec<Result<Target>> {
        let key = match super::harness_key() {
            Ok(k) => k.0,
            Err(e) => return (0..count).map(|_| Err(anyhow::anyhow!("{e:#}"))).collect(),
        };
        futures::future::join_all((0..count).map(|i| self.create_one(run, i, &key, state_dir))).await
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        let reply = self.control(&["ls", "--json"]).await?;
        let vms = match serde_json::from_str::<LsReply>(reply.trim())
            .with_context(|| format!("exe ls: reply is not the expected JSON: {}", reply.trim()))?
        {
            LsReply::Wrapped { vms } | LsReply::Bare(vms) => vms,
        };
        Ok(vms
            .into_iter()
            .filter_map(|vm| {
                let run = run_of(&vm.vm_name)?.to_string();
                Some(Listed { run, state: vm.status.unwrap_or_default(), name: vm.vm_name })
            })
            .collect())
    }

    async fn destroy(&self, run: Option<&str>) -> Result<Vec<String>> {
        let names: Vec<String> =
            self.list().await?.into_iter().filter(|t| run.is_none_or(|r| t.run == r)).map(|t| t.name).collect();
        let results =
            futures::future::join_all(names.iter().map(|n| async move { self.control(&["rm", n]).await })).await;
        for (n, r) in names.iter().zip(&results) {
            if let Err(e) = r {
                tracing::warn!(vm = %n, "exe rm failed: {e:#}");
            }
        }
        Ok(names.into_iter().zip(results).filter(|(_, r)| r.is_ok()).map(|(n, _)| n).collect())
    }

    async fn destroy_target(&self, name: &str) -> Result<()> {
        self.control(&["rm", name]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_accepts_both_documented_shapes() {
        let wrapped: LsReply =
            serde_json::from_str(r#"{"vms":[{"vm_name":"abench-r-0","status":"running"}]}"#).unwrap();
        let bare: LsReply = serde_json::from_str(r#"[{"name":"abench-r-1"}]"#).unwrap();
        assert!(matches!(wrapped, LsReply::Wrapped { ref vms } if vms[0].vm_name == "abench-r-0"));
        assert!(matches!(bare, LsReply::Bare(ref vms) if vms[0].vm_name == "abench-r-1"));
    }

    #[test]
    fn new_reply_parses() {
        let vm: NewVm = serde_json::from_str(
            r#"{"vm_name":"abench-r-0","ssh_dest":"abench-r-0.exe.test","https_url":"x","status":"running","region":"r"}"#,
        )
        .unwrap();
        assert_eq!(vm.ssh_dest, "abench-r-0.exe.test");
    }
}

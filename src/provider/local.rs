//! The embedded default: one podman (or docker) container per target on this machine.
//!
//! Containers get the privileges agentsh's own benchmark image uses (SYS_ADMIN for FUSE mounts,
//! SYS_PTRACE for the execve tracer, /dev/fuse, no seccomp profile of the engine's own) and **no
//! network**: `--network none` leaves only `lo`, so no route leads out and a probe of 10.0.0.1 or
//! 169.254.169.254 ends inside the target. SSH gets in through `sshd -i` run by the engine as the
//! ProxyCommand, so every command still takes the real path sshd → login shell → shim.

use std::path::Path;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::sshconfig::{self, Route, Spec};
use super::{Listed, Provider, Target, image, run_of, target_name};
use crate::provider::Engine;

const LABEL: &str = "agentsh-bench";
const RUN_LABEL: &str = "agentsh-bench.run";
/// PID 2 of every target (after the engine's init): authorizes the harness key, makes sshd's
/// privilege-separation directory (/run is a fresh tmpfs), then idles. (A public key: nothing
/// secret rides in the environment, and sshd passes none of its own on to sessions.)
const ENTRY: &str = "set -e; mkdir -p /run/sshd /root/.ssh; chmod 700 /root/.ssh; \
    printf '%s\\n' \"$ABENCH_AUTHORIZED_KEY\" > /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys; \
    unset ABENCH_AUTHORIZED_KEY; exec sleep infinity";

/// `--tmpfs` for /var/lib/agentsh: executable (agentsh runs helpers from its sessions' mounts),
/// 1 GiB at most, taken from memory only as it fills.
const AGENTSH_STATE_FS: &str = "/var/lib/agentsh:rw,exec,suid,dev,size=1g,mode=0755";

pub struct LocalProvider {
    engine: Engine,
}

impl LocalProvider {
    pub fn new(engine: Engine) -> Result<Self> {
        which(engine.program()).with_context(|| image::engine_missing(engine))?;
        Ok(LocalProvider { engine })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(self.engine.program());
        c.kill_on_drop(true);
        c
    }

    async fn engine(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
        let mut c = self.cmd();
        c.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
        let mut child = c.spawn().with_context(|| image::engine_missing(self.engine))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).await?;
            drop(pipe);
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "`{} {}` failed: {}",
                self.engine.program(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn create_one(
        &self,
        run: &str,
        index: u32,
        image: &str,
        key: &(std::path::PathBuf, String),
        dir: &Path,
    ) -> Result<Target> {
        let name = target_name(run, index);
        let run_label = format!("{RUN_LABEL}={run}");
        let mut args = vec![
            "run",
            "-d",
            "--init",
            "--name",
            &name,
            "--hostname",
            &name,
            "--label",
            LABEL,
            "--label",
            &run_label,
            "--network",
            "none",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "SYS_PTRACE",
            "--device",
            "/dev/fuse",
            "--security-opt",
            "seccomp=unconfined",
            // agentsh's state (event store, sessions) on a file system of its own, as on a VM
            // where it shares the root disk with nothing of ours: the nemesis's fill-fs fault
            // fills it, and on the container's overlay that would be this machine's disk.
            "--tmpfs",
            AGENTSH_STATE_FS,
        ];
        // Docker takes ulimits per container; podman reads them from containers.conf (setup-host).
        if self.engine == Engine::Docker {
            args.extend(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]);
        }
        // The key rides in the environment of the entry command rather than a separate
        // `podman exec`: each exec costs a runc invocation, the biggest share of a target's setup.
        let key_env = format!("ABENCH_AUTHORIZED_KEY={}", key.1);
        args.extend(["--env", &key_env, image, "sh", "-c", ENTRY]);
        self.engine(&args, None).await.with_context(|| format!("{name}: creating the container"))?;
        let proxy = format!("{} exec -i {name} /usr/sbin/sshd -i -e -o LogLevel=ERROR", self.engine.program());
        sshconfig::write_target(
            dir,
            &key.0,
            Spec {
                name: &name,
                run,
                provider: super::ProviderKind::Local,
                route: Route::Proxy(&proxy),
                user: "root",
                include: None,
            },
        )
    }

    /// Aborts the FUSE connections of container `name`'s processes, from the host (see
    /// `fusectl`): it works in any state the container is in, "Stopping" included.
    async fn abort_fuse(&self, name: &str) -> Result<Option<String>> {
        let id = self.engine(&["inspect", "--format", "{{.Id}}", name], None).await?;
        let id = id.trim().to_string();
        anyhow::ensure!(id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()), "{name}: unexpected id {id:?}");
        let aborted = tokio::task::spawn_blocking(move || super::fusectl::abort_container(&id)).await??;
        Ok((!aborted.is_empty()).then(|| format!("aborted FUSE connection(s) {aborted:?} before removal")))
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> super::ProviderKind {
        super::ProviderKind::Local
    }

    async fn prepare(&self) -> Result<()> {
        let engine = self.engine;
        tokio::task::spawn_blocking(move || image::ensure(engine, false)).await??;
        Ok(())
    }

    async fn create(&self, run: &str, count: u32, state_dir: &Path) -> Vec<Result<Target>> {
        let image = image::image_tag();
        let key = match super::harness_key() {
            Ok(k) => k,
            Err(e) => return (0..count).map(|_| Err(anyhow::anyhow!("{e:#}"))).collect(),
        };
        let creations = (0..count).map(|i| self.create_one(run, i, &image, &key, state_dir));
        futures::future::join_all(creations).await
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        let filter = format!("label={LABEL}");
        let out = self.engine(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}\t{{.State}}"], None).await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (name, state) = l.split_once('\t')?;
                Some(Listed { run: run_of(name)?.to_string(), name: name.to_string(), state: state.to_string() })
            })
            .collect())
    }

    async fn destroy(&self, run: Option<&str>) -> Result<Vec<String>> {
        let names: Vec<String> =
            self.list().await?.into_iter().filter(|t| run.is_none_or(|r| t.run == r)).map(|t| t.name).collect();
        self.remove(&names).await?;
        Ok(names)
    }

    async fn destroy_target(&self, name: &str) -> Result<()> {
        self.remove(&[name.to_string()]).await
    }
}

impl LocalProvider {
    /// Removes containers by name, their FUSE connections aborted first (see below).
    async fn remove(&self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rm", "-f"];
        if self.engine == Engine::Podman {
            args.extend(["-t", "0"]);
        }
        args.extend(names.iter().map(String::as_str));
        // A process stuck in a FUSE request that nobody will answer (agentsh's wedge: its server
        // hung, or its /dev/fuse descriptor kept alive by a stuck child) cannot be killed. The
        // engine then leaves the container "Stopping" ("given PIDs did not die within
        // timeout"), and a second `rm` removes the container but leaves that process behind on
        // the host, forever. So each container's own FUSE connections are aborted first: that
        // ends those requests, and removal is clean. Without FUSE mounts this costs one inspect.
        let aborts = names.iter().map(|n| self.abort_fuse(n));
        for (name, r) in names.iter().zip(futures::future::join_all(aborts).await) {
            match r {
                Ok(None) => {}
                // Every agentsh target has FUSE mounts: routine, so not on the console.
                Ok(Some(msg)) => tracing::info!(target = %name, "{msg}"),
                Err(e) => eprintln!("{name}: aborting FUSE connections failed: {e:#}"),
            }
        }
        self.engine(&args, None).await?;
        Ok(())
    }
}

fn which(program: &str) -> Result<()> {
    match crate::text::which(program, &[]) {
        Some(_) => Ok(()),
        None => bail!("{program} not found on PATH"),
    }
}

//! A provider that makes no machine, for fast tests of the pipeline's own logic (teardown on
//! error, Ctrl-C, partial results) without podman. Its targets exist only as ssh configs whose
//! route is `ProxyCommand false`: ssh to them fails at once, exactly as a target that died
//! right after creation would, so provisioning runs its real code up to the first connection.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Result, bail};
use async_trait::async_trait;

use super::sshconfig::{self, Route};
use super::{Listed, Provider, ProviderKind, Target};

#[derive(Default)]
pub struct FakeProvider {
    pub fail_prepare: bool,
    /// Indexes whose creation fails.
    pub fail_create: Vec<u32>,
    /// What the pipeline asked of it, in order: "prepare", "create RUN N", "destroy RUN".
    pub calls: Mutex<Vec<String>>,
    /// The targets it made and has not destroyed.
    pub created: Mutex<Vec<Listed>>,
}

impl FakeProvider {
    fn call(&self, what: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(what);
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        // Its targets take the local provider's config overrides.
        ProviderKind::Local
    }

    /// One try: its targets never answer, and the tests should not wait for backoff.
    fn connect_attempts(&self) -> u32 {
        1
    }

    async fn prepare(&self) -> Result<()> {
        self.call("prepare".into());
        if self.fail_prepare {
            bail!("the fake provider was told to fail preparing");
        }
        Ok(())
    }

    async fn create(&self, run: &str, count: u32, state_dir: &Path) -> Vec<Result<Target>> {
        self.call(format!("create {run} {count}"));
        (0..count)
            .map(|i| {
                if self.fail_create.contains(&i) {
                    bail!("the fake provider was told to fail creating target {i}");
                }
                let name = super::target_name(run, i);
                let t = sshconfig::write_target(
                    state_dir,
                    &state_dir.join("no-key"),
                    sshconfig::Spec {
                        name: &name,
                        run,
                        provider: ProviderKind::Local,
                        route: Route::Proxy("false"),
                        user: "root",
                        include: None,
                    },
                )?;
                if let Ok(mut c) = self.created.lock() {
                    c.push(Listed { name, run: run.to_string(), state: "fake".into() });
                }
                Ok(t)
            })
            .collect()
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        Ok(self.created.lock().map(|c| c.clone()).unwrap_or_default())
    }

    async fn destroy(&self, run: Option<&str>) -> Result<Vec<String>> {
        self.call(format!("destroy {}", run.unwrap_or("*")));
        let mut created = self.created.lock().map_err(|_| anyhow::anyhow!("fake provider lock poisoned"))?;
        let (gone, kept): (Vec<Listed>, Vec<Listed>) = created.drain(..).partition(|l| run.is_none_or(|r| l.run == r));
        *created = kept;
        Ok(gone.into_iter().map(|l| l.name).collect())
    }

    async fn destroy_target(&self, name: &str) -> Result<()> {
        self.call(format!("destroy-target {name}"));
        let mut created = self.created.lock().map_err(|_| anyhow::anyhow!("fake provider lock poisoned"))?;
        created.retain(|l| l.name != name);
        Ok(())
    }
}

//! Hosts the user already has, listed in a TOML inventory:
//!
//! ```toml
//! [[host]]
//! name = "box1"          # a label for reports
//! host = "box1.internal" # ssh host name or an alias from ~/.ssh/config
//! user = "root"          # optional, default root
//! port = 22              # optional
//! key = "/root/.ssh/id_ed25519"  # optional, default: the harness key
//! ```
//!
//! The harness never creates or destroys these hosts; `down` leaves them alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde::Deserialize;

use super::sshconfig::{self, Route, Spec};
use super::{Listed, Provider, Target};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inventory {
    host: Vec<Host>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Host {
    name: String,
    host: String,
    #[serde(default = "root")]
    user: String,
    port: Option<u16>,
    key: Option<PathBuf>,
}

fn root() -> String {
    "root".into()
}

#[derive(Debug)]
pub struct InventoryProvider {
    hosts: Vec<Host>,
}

impl InventoryProvider {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading inventory {}", path.display()))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        // toml's error carries the line and column; prefix the file so the user knows where.
        let inv: Inventory =
            toml::from_str(text).map_err(|e| crate::exit::usage(format!("{}: {e}", path.display())))?;
        if inv.host.is_empty() {
            return Err(crate::exit::usage(format!("{}: no [[host]] entries", path.display())));
        }
        Ok(InventoryProvider { hosts: inv.host })
    }
}

#[async_trait]
impl Provider for InventoryProvider {
    fn kind(&self) -> super::ProviderKind {
        super::ProviderKind::Ssh
    }

    async fn prepare(&self) -> Result<()> {
        Ok(())
    }

    async fn create(&self, run: &str, count: u32, state_dir: &Path) -> Vec<Result<Target>> {
        let harness_key = super::harness_key();
        let user_config =
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/config")).filter(|p| p.is_file());
        (0..count as usize)
            .map(|i| {
                let h = self.hosts.get(i).with_context(|| {
                    format!("--vms {count} but the inventory lists only {} hosts", self.hosts.len())
                })?;
                let key = match &h.key {
                    Some(k) => k.clone(),
                    None => harness_key.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?.0.clone(),
                };
                sshconfig::write_target(
                    state_dir,
                    &key,
                    Spec {
                        name: &h.name,
                        run,
                        provider: super::ProviderKind::Ssh,
                        route: Route::Host { hostname: &h.host, port: h.port },
                        user: &h.user,
                        include: user_config.as_deref(),
                    },
                )
            })
            .collect()
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        Ok(self
            .hosts
            .iter()
            .map(|h| Listed { name: h.name.clone(), run: "-".into(), state: "inventory".into() })
            .collect())
    }

    async fn destroy(&self, _run: Option<&str>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults_user() {
        let p = InventoryProvider::parse("[[host]]\nname='a'\nhost='a.test'\n", Path::new("inv.toml")).unwrap();
        assert_eq!(p.hosts[0].user, "root");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = InventoryProvider::parse("[[host]]\nname='a'\nhots='a.test'\n", Path::new("inv.toml")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("inv.toml") && msg.contains("line 3"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
    }
}

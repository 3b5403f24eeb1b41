//! Per-version facts from `scenarios/versions.toml`: how agentsh versions differ in what the
//! harness can observe, kept as data so that no check branches on a version number.

use std::sync::OnceLock;

use anyhow::{Context, Result};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub since: String,
    /// A shimmed command denied by a command rule prints `rule=NAME`.
    pub shim_denial_names_rule: bool,
}

#[derive(serde::Deserialize)]
struct File {
    version: Vec<Facts>,
}

fn path() -> std::path::PathBuf {
    crate::paths::scenarios_dir().join("versions.toml")
}

fn all() -> Result<&'static [Facts]> {
    static FACTS: OnceLock<std::result::Result<Vec<Facts>, String>> = OnceLock::new();
    FACTS
        .get_or_init(|| {
            let p = path();
            let text = std::fs::read_to_string(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            let f: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            for v in &f.version {
                key(&v.since).ok_or_else(|| format!("{}: since = {:?} is not X.Y.Z", p.display(), v.since))?;
            }
            Ok(f.version)
        })
        .as_deref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn key(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// The facts for `version` ("0.16.9").
pub fn facts(version: &str) -> Result<&'static Facts> {
    let k = key(version).with_context(|| format!("agentsh version {version:?} is not X.Y.Z"))?;
    all()?
        .iter()
        .filter(|f| key(&f.since).is_some_and(|s| s <= k))
        .max_by_key(|f| key(&f.since))
        .with_context(|| format!("{} has no entry for agentsh {version}", path().display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_takes_the_nearest_lower_entry() {
        assert!(!facts("0.16.9").unwrap().shim_denial_names_rule);
        assert!(!facts("0.18.1").unwrap().shim_denial_names_rule);
        assert!(facts("0.18.2").unwrap().shim_denial_names_rule);
        assert!(facts("0.20.1").unwrap().shim_denial_names_rule);
        assert!(facts("0.20.1+dev").unwrap().shim_denial_names_rule);
        assert!(facts("x.y").is_err());
    }
}

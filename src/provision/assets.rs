//! The agentsh config and policy a run installs: `assets/` (or `--config` / `--policy`), with the
//! provider's overrides from `assets/overrides/<provider>.yaml` merged on top.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_yaml::Value;

pub struct Assets {
    pub config: Vec<u8>,
    pub policy: Vec<u8>,
    pub config_source: PathBuf,
    pub policy_source: PathBuf,
}

pub fn load(provider: &str, config: Option<&Path>, policy: Option<&Path>) -> Result<Assets> {
    let dir = crate::paths::assets_dir();
    let config_source = config.map_or_else(|| dir.join("config.yaml"), Path::to_path_buf);
    let policy_source = policy.map_or_else(|| dir.join("policies/default.yaml"), Path::to_path_buf);
    let mut cfg = read_yaml(&config_source)?;
    let overrides = dir.join("overrides").join(format!("{provider}.yaml"));
    if overrides.is_file() {
        merge(&mut cfg, read_yaml(&overrides)?);
    }
    // The policy is installed byte for byte (a user's policy is theirs); it is only checked to parse.
    let policy_bytes =
        std::fs::read(&policy_source).with_context(|| format!("reading policy {}", policy_source.display()))?;
    read_yaml(&policy_source)?;
    let config = serde_yaml::to_string(&cfg).context("rendering config")?.into_bytes();
    Ok(Assets { config, policy: policy_bytes, config_source, policy_source })
}

fn read_yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // serde_yaml's message carries "at line L column C"; the file name makes it actionable.
    serde_yaml::from_str(&text).map_err(|e| crate::exit::usage(format!("{}: {e}", path.display())))
}

/// Deep merge: mappings merge key by key, anything else in `over` replaces what is in `base`.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_override_disables_cgroups_and_keeps_the_rest() {
        let a = load("local", None, None).unwrap();
        let cfg: Value = serde_yaml::from_slice(&a.config).unwrap();
        assert_eq!(cfg["sandbox"]["cgroups"]["enabled"], Value::Bool(false));
        assert_eq!(cfg["sandbox"]["ptrace"]["enabled"], Value::Bool(true));
        assert_eq!(cfg["server"]["http"]["addr"], Value::String("127.0.0.1:18080".into()));
        let exe: Value = serde_yaml::from_slice(&load("exe", None, None).unwrap().config).unwrap();
        assert_eq!(exe["sandbox"]["cgroups"]["enabled"], Value::Bool(true));
    }

    #[test]
    fn policy_is_installed_verbatim() {
        let a = load("local", None, None).unwrap();
        assert_eq!(a.policy, std::fs::read(crate::paths::assets_dir().join("policies/default.yaml")).unwrap());
        assert!(String::from_utf8_lossy(&a.policy).contains("registry.npm.test"), "registry hosts stay .test stand-ins");
    }

    #[test]
    fn broken_yaml_names_file_and_line() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "a: 1\nb: [unclosed\n").unwrap();
        let e = load("local", Some(f.path()), None).err().unwrap();
        let msg = format!("{e:#}");
        assert!(msg.contains(&f.path().display().to_string()) && msg.contains("line"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
    }
}

//! The agentsh config and policy a run installs: `assets/` (or `--config` / `--policy`), with the
//! provider's overrides from `assets/overrides/<provider>.yaml` and the version's from
//! `assets/overrides/agentsh-<version>.yaml` merged on top, and the harness's readiness probe rule
//! added to the policy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_yaml::Value;

pub struct Assets {
    pub config: Vec<u8>,
    pub policy: Vec<u8>,
    pub config_source: PathBuf,
    pub policy_source: PathBuf,
}

impl Assets {
    /// Where the installed config has agentsh keep its event store (audit.storage.sqlite_path).
    pub fn events_db(&self) -> String {
        serde_yaml::from_slice::<Value>(&self.config)
            .ok()
            .and_then(|c| c["audit"]["storage"]["sqlite_path"].as_str().map(String::from))
            .unwrap_or_else(|| "/var/lib/agentsh/events.db".to_string())
    }
}

/// The command the readiness check runs through the shim, expecting a denial by [`PROBE_RULE`]. It
/// is a harness-owned script (installed on every target) that nothing else runs, so readiness
/// proves the machinery denies whatever policy the run tests, a deliberately weak one included.
pub const PROBE_COMMAND: &str = "abench-denied-probe";
pub const PROBE_RULE: &str = "abench-readiness-probe";

/// `version` is the agentsh version being installed (`None` for `--agentsh none`): some versions
/// need their own overrides (see `assets/overrides/agentsh-*.yaml`).
pub fn load(
    provider: crate::provider::ProviderKind,
    version: Option<&str>,
    config: Option<&Path>,
    policy: Option<&Path>,
) -> Result<Assets> {
    let dir = crate::paths::assets_dir();
    let config_source = config.map_or_else(|| dir.join("config.yaml"), Path::to_path_buf);
    let policy_source = policy.map_or_else(|| dir.join("policies/default.yaml"), Path::to_path_buf);
    let mut cfg = read_yaml(&config_source)?;
    let mut layers = vec![dir.join("overrides").join(format!("{provider}.yaml"))];
    if let Some(v) = version {
        layers.push(dir.join("overrides").join(format!("agentsh-{v}.yaml")));
    }
    for overrides in layers.iter().filter(|p| p.is_file()) {
        merge(&mut cfg, read_yaml(overrides)?);
    }
    // The user's rules are kept as they are, in their order; only the probe rule goes first.
    let mut policy_doc = read_yaml(&policy_source)?;
    add_probe_rule(&mut policy_doc).map_err(|e| crate::exit::usage(format!("{}: {e}", policy_source.display())))?;
    let policy = serde_yaml::to_string(&policy_doc).context("rendering policy")?.into_bytes();
    let config = serde_yaml::to_string(&cfg).context("rendering config")?.into_bytes();
    Ok(Assets { config, policy, config_source, policy_source })
}

/// Puts the readiness probe's deny rule first among the policy's command rules (first match wins).
fn add_probe_rule(policy: &mut Value) -> std::result::Result<(), String> {
    let Value::Mapping(map) = policy else {
        return Err("the policy is not a YAML mapping".into());
    };
    let rules = map.entry(Value::String("command_rules".into())).or_insert_with(|| Value::Sequence(Vec::new()));
    let Value::Sequence(rules) = rules else {
        return Err("command_rules is not a list".into());
    };
    rules.retain(|r| r.get("name").and_then(Value::as_str) != Some(PROBE_RULE));
    let rule: Value = serde_yaml::from_str(&format!(
        "name: {PROBE_RULE}\ndescription: added by agentsh-bench; readiness runs {PROBE_COMMAND} and expects this denial\n\
         commands: [{PROBE_COMMAND}]\ndecision: deny\n"
    ))
    .map_err(|e| e.to_string())?;
    rules.insert(0, rule);
    Ok(())
}

pub(super) fn read_yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // serde_yaml's message carries "at line L column C"; the file name makes it actionable.
    serde_yaml::from_str(&text).map_err(|e| crate::exit::usage(format!("{}: {e}", path.display())))
}

/// Deep merge: mappings merge key by key, anything else in `over` replaces what is in `base`
/// (`null` included: how an overlay removes a value).
pub(super) fn merge(base: &mut Value, over: Value) {
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
    use crate::provider::ProviderKind;

    #[test]
    fn local_override_disables_cgroups_and_keeps_the_rest() {
        let a = load(ProviderKind::Local, None, None, None).unwrap();
        let cfg: Value = serde_yaml::from_slice(&a.config).unwrap();
        assert_eq!(cfg["sandbox"]["cgroups"]["enabled"], Value::Bool(false));
        assert_eq!(cfg["sandbox"]["ptrace"]["enabled"], Value::Bool(true));
        assert_eq!(cfg["server"]["http"]["addr"], Value::String("127.0.0.1:18080".into()));
        let exe: Value = serde_yaml::from_slice(&load(ProviderKind::Exe, None, None, None).unwrap().config).unwrap();
        assert_eq!(exe["sandbox"]["cgroups"]["enabled"], Value::Bool(true));
    }

    #[test]
    fn policy_keeps_its_rules_and_gets_the_probe_first() {
        let a = load(ProviderKind::Local, Some("0.16.9"), None, None).unwrap();
        let installed: Value = serde_yaml::from_slice(&a.policy).unwrap();
        let original = read_yaml(&crate::paths::assets_dir().join("policies/default.yaml")).unwrap();
        let names = |v: &Value| -> Vec<String> {
            v["command_rules"].as_sequence().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
        };
        let mut expected = vec![PROBE_RULE.to_string()];
        expected.extend(names(&original));
        assert_eq!(names(&installed), expected);
        assert_eq!(installed["command_rules"][0]["commands"][0], Value::String(PROBE_COMMAND.into()));
        assert_eq!(installed["command_rules"][0]["decision"], Value::String("deny".into()));
        assert_eq!(installed["file_rules"], original["file_rules"]);
        assert_eq!(installed["network_rules"], original["network_rules"]);
        assert!(
            String::from_utf8_lossy(&a.policy).contains("registry.npm.test"),
            "registry hosts stay .test stand-ins"
        );
        // Loading twice (a policy that already has the probe) does not add it twice.
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &a.policy).unwrap();
        let again: Value =
            serde_yaml::from_slice(&load(ProviderKind::Local, None, None, Some(f.path())).unwrap().policy).unwrap();
        assert_eq!(names(&again), expected);
    }

    #[test]
    fn a_policy_without_command_rules_gets_one() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "version: 1\nname: bare\n").unwrap();
        let p: Value =
            serde_yaml::from_slice(&load(ProviderKind::Local, None, None, Some(f.path())).unwrap().policy).unwrap();
        assert_eq!(p["command_rules"][0]["name"], Value::String(PROBE_RULE.into()));
        std::fs::write(f.path(), "command_rules: 3\n").unwrap();
        let e = load(ProviderKind::Local, None, None, Some(f.path())).err().unwrap();
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
    }

    #[test]
    fn merge_goes_key_by_key_and_replaces_leaves_lists_and_nulls() {
        let mut base: Value =
            serde_yaml::from_str("a: {b: 1, c: [1, 2], d: {e: x}}\nkeep: 1\nenv: {BASH_ENV: /x}\n").unwrap();
        let over: Value = serde_yaml::from_str("a: {b: 2, c: [3], d: {f: y}, new: true}\nenv: null\n").unwrap();
        merge(&mut base, over);
        let want: Value =
            serde_yaml::from_str("a: {b: 2, c: [3], d: {e: x, f: y}, new: true}\nkeep: 1\nenv: null\n").unwrap();
        assert_eq!(base, want);
        // An empty mapping changes nothing.
        merge(&mut base, serde_yaml::from_str("{}").unwrap());
        assert_eq!(base, want);
    }

    #[test]
    fn broken_yaml_names_file_and_line() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "a: 1\nb: [unclosed\n").unwrap();
        let e = load(ProviderKind::Local, None, Some(f.path()), None).err().unwrap();
        let msg = format!("{e:#}");
        assert!(msg.contains(&f.path().display().to_string()) && msg.contains("line"), "{msg}");
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
    }
}

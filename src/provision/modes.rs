//! Modes: the installed agentsh config with one enforcement layer at a time (`--mode`), to tell
//! what each layer costs. `assets/modes/<mode>.yaml` is merged over the config the run installed
//! (assets/config.yaml or `--config`, then the provider's and the version's overrides: see
//! [`super::assets`]); each file says which layer it isolates and why each key is set. `full` is
//! the installed config unchanged, `baseline` has every layer off that the config can turn off,
//! and each other mode is `baseline` with its one layer back.
//!
//! Applying a mode to a ready target writes the merged config to /etc/agentsh/config.yaml over
//! the observation channel and restarts the server the way the watchdog does (kill, then
//! `target::SERVER_START`, which waits for /health). agentsh validates its config only when it
//! starts: a mode it refuses leaves no server, and the end of server.log since the restart is the
//! reason, reported as such (the next mode's restart brings a server back).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_yaml::Value;

use crate::control::Conn;

/// One configuration of agentsh's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    Baseline,
    Shim,
    Seccomp,
    Landlock,
    Ptrace,
    Fuse,
    Network,
    Full,
}

impl Mode {
    /// `--mode all`, in the order they run: the baseline first, each layer alone, then all of
    /// them (which leaves the targets with the config they were provisioned with).
    pub const ALL: [Mode; 8] = [
        Mode::Baseline,
        Mode::Shim,
        Mode::Seccomp,
        Mode::Landlock,
        Mode::Ptrace,
        Mode::Fuse,
        Mode::Network,
        Mode::Full,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Shim => "shim",
            Mode::Seccomp => "seccomp",
            Mode::Landlock => "landlock",
            Mode::Ptrace => "ptrace",
            Mode::Fuse => "fuse",
            Mode::Network => "network",
            Mode::Full => "full",
        }
    }

    /// `assets/modes/<mode>.yaml`.
    pub fn overlay_path(self) -> PathBuf {
        crate::paths::assets_dir().join("modes").join(format!("{}.yaml", self.as_str()))
    }

    /// The overlay, parsed (a usage error naming the file when it is not YAML).
    pub fn overlay(self) -> Result<Value> {
        super::assets::read_yaml(&self.overlay_path())
    }

    /// `--mode` as typed: one mode, `all`, or a comma-separated list (run in the order given,
    /// each once). Anything else is a usage error listing the modes.
    pub fn parse_list(s: &str) -> Result<Vec<Mode>> {
        let mut out = Vec::new();
        for word in s.split(',').map(str::trim) {
            let modes: Vec<Mode> = match word {
                "all" => Mode::ALL.to_vec(),
                w => match Mode::ALL.into_iter().find(|m| m.as_str() == w) {
                    Some(m) => vec![m],
                    None => {
                        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
                        return Err(crate::exit::usage(format!(
                            "--mode {s}: unknown mode {w:?} (one of {}, all, or a comma-separated list)",
                            names.join(", ")
                        )));
                    }
                },
            };
            for m in modes {
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The installed config (as rendered at provisioning) with `mode`'s overlay merged over it.
pub fn config_for(installed: &[u8], mode: Mode) -> Result<Vec<u8>> {
    let mut cfg: Value = serde_yaml::from_slice(installed).context("reading back the installed config")?;
    super::assets::merge(&mut cfg, mode.overlay()?);
    Ok(serde_yaml::to_string(&cfg).context("rendering the config")?.into_bytes())
}

/// Why a target did not take a mode.
#[derive(Debug, Clone)]
pub enum Refused {
    /// agentsh would not start with the config: the end of server.log since the restart (its
    /// own error), or that /health never answered when it wrote nothing.
    ByAgentsh(String),
    /// The old server could not be stopped (a process stuck in the kernel outlived kill -9):
    /// starting another would have measured the old one, which keeps the port.
    OldServerLives(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::ByAgentsh(log) => write!(f, "agentsh did not start with the mode's config; server.log:\n{log}"),
            Refused::OldServerLives(ps) => write!(f, "the previous agentsh server outlived kill -9: {ps}"),
        }
    }
}

const SERVER_LOG: &str = "/var/log/agentsh/server.log";
const QUICK: Duration = Duration::from_secs(30);
/// The restart script's exit code when an old server is still there after the kills.
const SURVIVED: i32 = 3;

/// Writes `config` to the target, restarts the server on it and waits for /health. `Ok(Err)`
/// when the target did not take it ([`Refused`]); `Err` when the target could not be reached.
/// Returns the seconds the restart took.
pub async fn apply(observe: &Conn, config: &[u8]) -> Result<std::result::Result<f64, Refused>> {
    let t0 = Instant::now();
    // Where this start's lines will begin in server.log (appended to by every start).
    let size = observe.run(&format!("stat -c %s {SERVER_LOG} 2>/dev/null || echo 0"), QUICK).await?;
    let from = size.stdout.trim().parse::<u64>().unwrap_or(0) + 1;
    observe.upload(config, "/etc/agentsh/config.yaml", 0o644, QUICK).await?;
    // A server that outlived the kills would keep the port and answer /health for the new one,
    // so none may be left before the start. SERVER_START ends with `exit`: it comes last.
    let server = crate::watchdog::AGENTSH_SERVER;
    let restart = format!(
        "{}\nif pgrep -f '{server}' >/dev/null; then ps -o pid,stat,wchan:32,args -p \"$(pgrep -d, -f '{server}')\"; exit {SURVIVED}; fi\n{}",
        crate::watchdog::kill_server(),
        crate::target::SERVER_START
    );
    let out = observe.run(&restart, QUICK * 3).await.context("restarting the agentsh server")?;
    if out.ok() {
        return Ok(Ok(t0.elapsed().as_secs_f64()));
    }
    if out.code == Some(SURVIVED) {
        return Ok(Err(Refused::OldServerLives(out.stdout.trim().to_string())));
    }
    let log = observe.run(&format!("tail -c +{from} {SERVER_LOG} | tail -n 20"), QUICK).await?;
    let mut error = log.stdout.trim().to_string();
    if error.is_empty() {
        error = format!("(nothing) and {} never answered ({})", crate::target::HEALTH, out.describe());
    }
    Ok(Err(Refused::ByAgentsh(error)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderKind;

    #[test]
    fn modes_parse_one_all_or_a_list_and_refuse_anything_else() {
        assert_eq!(Mode::parse_list("full").unwrap(), [Mode::Full]);
        assert_eq!(Mode::parse_list("all").unwrap(), Mode::ALL);
        assert_eq!(Mode::parse_list("ptrace, baseline,ptrace").unwrap(), [Mode::Ptrace, Mode::Baseline]);
        for m in Mode::ALL {
            assert_eq!(Mode::parse_list(m.as_str()).unwrap(), [m]);
        }
        for bad in ["", "Full", "ebpf", "baseline,", "seccomp-notify"] {
            let e = Mode::parse_list(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE, "{bad:?}");
            assert!(format!("{e:#}").contains("baseline, shim, seccomp"), "{e:#}");
        }
    }

    fn installed(provider: ProviderKind, version: Option<&str>) -> Vec<u8> {
        super::super::assets::load(provider, version, None, None).unwrap().config
    }

    fn with(mode: Mode, base: &[u8]) -> Value {
        serde_yaml::from_slice(&config_for(base, mode).unwrap()).unwrap()
    }

    /// The enforcement switches of a config, in a fixed order.
    fn layers(c: &Value) -> Vec<(&'static str, Value)> {
        let s = &c["sandbox"];
        vec![
            ("fuse", s["fuse"]["enabled"].clone()),
            ("network", s["network"]["enabled"].clone()),
            ("cgroups", s["cgroups"]["enabled"].clone()),
            ("seccomp", s["seccomp"]["enabled"].clone()),
            ("seccomp.execve", s["seccomp"]["execve"]["enabled"].clone()),
            ("file_monitor", s["seccomp"]["file_monitor"]["enabled"].clone()),
            ("wrapper", s["unix_sockets"]["enabled"].clone()),
            ("ptrace", s["ptrace"]["enabled"].clone()),
            ("landlock", c["landlock"]["enabled"].clone()),
            ("bash_env", s["env_inject"]["BASH_ENV"].clone()),
        ]
    }

    fn on(c: &Value) -> Vec<&'static str> {
        layers(c)
            .into_iter()
            .filter(|(_, v)| match v {
                Value::Bool(b) => *b,
                Value::Null => false,
                _ => true,
            })
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn each_mode_turns_on_its_layer_alone_over_the_final_config() {
        let base = installed(ProviderKind::Exe, Some("0.20.1"));
        let full: Value = serde_yaml::from_slice(&base).unwrap();
        assert_eq!(with(Mode::Full, &base), full, "full is the installed config unchanged");
        assert!(on(&full).contains(&"cgroups"), "exe targets have cgroups in full");
        assert_eq!(on(&with(Mode::Baseline, &base)), Vec::<&str>::new());
        assert_eq!(on(&with(Mode::Shim, &base)), ["bash_env"]);
        assert_eq!(on(&with(Mode::Seccomp, &base)), ["seccomp", "file_monitor", "wrapper"]);
        // Landlock is applied by the seccomp wrapper, which runs with none of its notify rules.
        assert_eq!(on(&with(Mode::Landlock, &base)), ["wrapper", "landlock"]);
        assert_eq!(on(&with(Mode::Ptrace, &base)), ["ptrace"]);
        assert_eq!(on(&with(Mode::Fuse, &base)), ["fuse"]);
        assert_eq!(on(&with(Mode::Network, &base)), ["network"]);
        // What the mode does not name stays as installed: the version's override, the layer's
        // own settings, the rest of the config.
        let p = with(Mode::Ptrace, &base);
        assert_eq!(p["sandbox"]["ptrace"]["performance"]["seccomp_prefilter"], Value::Bool(false), "v0.20.1 override");
        assert_eq!(p["sandbox"]["ptrace"]["trace"], full["sandbox"]["ptrace"]["trace"]);
        assert_eq!(p["sandbox"]["fuse"]["deferred"], full["sandbox"]["fuse"]["deferred"]);
        assert_eq!(p["landlock"]["allow_write"], full["landlock"]["allow_write"]);
        assert_eq!(p["server"], full["server"]);
        assert_eq!(p["audit"], full["audit"]);
    }

    #[test]
    fn overlays_merge_over_a_user_config_too() {
        // A --config that turned a layer off gets it back in that layer's mode.
        let mut user: Value = serde_yaml::from_slice(&installed(ProviderKind::Local, Some("0.16.9"))).unwrap();
        user["sandbox"]["ptrace"]["enabled"] = Value::Bool(false);
        user["sandbox"]["ptrace"]["trace"]["file"] = Value::Bool(true);
        let base = serde_yaml::to_string(&user).unwrap().into_bytes();
        let p = with(Mode::Ptrace, &base);
        assert_eq!(p["sandbox"]["ptrace"]["enabled"], Value::Bool(true));
        assert_eq!(p["sandbox"]["ptrace"]["trace"]["file"], Value::Bool(true), "the user's own key stays");
        assert_eq!(p["sandbox"]["ptrace"]["performance"]["seccomp_prefilter"], Value::Bool(true));
    }

    /// Every key path of a YAML mapping, leaves only (a mapping's path is not listed itself).
    fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Mapping(m) = v {
            for (k, v) in m {
                let key = k.as_str().unwrap_or_else(|| panic!("a non-string key under {prefix:?}"));
                let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
                match v {
                    Value::Mapping(inner) if !inner.is_empty() => leaf_paths(v, &path, out),
                    _ => out.push(path),
                }
            }
        }
    }

    fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(v, |v, k| v.as_mapping()?.get(k))
    }

    /// agentsh ignores keys it does not know (yaml.Unmarshal without KnownFields), so a misspelt
    /// key would make a mode silently measure something else. Every key an overlay sets must be
    /// in assets/config.yaml, whose keys are agentsh's (checked against internal/config/*.go of
    /// v0.16.9 and v0.20.1), and each file must say which layer it isolates.
    #[test]
    fn every_shipped_overlay_parses_and_uses_only_known_keys() {
        let config: Value =
            serde_yaml::from_str(&std::fs::read_to_string(crate::paths::assets_dir().join("config.yaml")).unwrap())
                .unwrap();
        let dir = crate::paths::assets_dir().join("modes");
        let mut shipped: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        shipped.sort();
        let mut expected: Vec<String> = Mode::ALL.iter().map(|m| format!("{m}.yaml")).collect();
        expected.sort();
        assert_eq!(shipped, expected, "one overlay per mode, and no other file");
        for m in Mode::ALL {
            let text = std::fs::read_to_string(m.overlay_path()).unwrap();
            assert!(text.starts_with(&format!("# Mode `{m}`: ")), "{m}.yaml must open with the layer it isolates");
            let overlay = m.overlay().unwrap();
            assert!(overlay.is_mapping(), "{m}.yaml is not a mapping");
            let mut paths = Vec::new();
            leaf_paths(&overlay, "", &mut paths);
            assert_eq!(paths.is_empty(), m == Mode::Full, "{m}: only full leaves the config unchanged");
            for p in paths {
                let there =
                    lookup(&config, &p).unwrap_or_else(|| panic!("{m}.yaml sets {p}, not a key of config.yaml"));
                let set = lookup(&overlay, &p).unwrap();
                // The same type as in config.yaml, or null to remove the value.
                let same_kind = std::mem::discriminant(there) == std::mem::discriminant(set) || set.is_null();
                assert!(same_kind, "{m}.yaml sets {p} to {set:?}, config.yaml has {there:?}");
            }
        }
    }

    #[test]
    fn a_broken_overlay_is_a_usage_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("modes")).unwrap();
        std::fs::write(dir.path().join("modes/ptrace.yaml"), "sandbox: [unclosed\n").unwrap();
        let e = super::super::assets::read_yaml(&dir.path().join("modes/ptrace.yaml")).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
        assert!(format!("{e:#}").contains("ptrace.yaml"), "{e:#}");
    }
}

//! Writes the ssh config file that says how to reach one target on both channels. Every provider
//! ends here, so the SSH options that matter (no host-key prompts, our key only, quiet logs)
//! are set in one place.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::control::SshDest;
use crate::provider::Target;

/// How ssh reaches the target's sshd.
pub enum Route<'a> {
    /// Through a command that speaks SSH on stdin/stdout (`sshd -i` inside a container).
    Proxy(&'a str),
    /// A host name (resolved by the user's ssh config if `include` names one) and optional port.
    Host { hostname: &'a str, port: Option<u16> },
}

pub struct Spec<'a> {
    pub name: &'a str,
    pub run: &'a str,
    pub provider: crate::provider::ProviderKind,
    pub route: Route<'a>,
    pub user: &'a str,
    /// A user ssh config to include (exe.dev users keep their gateway settings there).
    pub include: Option<&'a Path>,
}

/// Writes `<dir>/<name>.ssh_config` and returns the target with both channels.
pub fn write_target(dir: &Path, key: &Path, spec: Spec<'_>) -> Result<Target> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{}.ssh_config", spec.name));
    let observe_alias = format!("{}-observe", spec.name);
    let mut text = String::from("# written by agentsh-bench; `ssh -F THIS_FILE ALIAS` reaches the target\n");
    for (alias, user) in [(spec.name, spec.user), (observe_alias.as_str(), crate::target::OBSERVER_USER)] {
        let _ = writeln!(text, "\nHost {alias}");
        match &spec.route {
            Route::Proxy(cmd) => {
                let _ = writeln!(text, "  HostName {}", spec.name);
                let _ = writeln!(text, "  ProxyCommand {cmd}");
            }
            Route::Host { hostname, port } => {
                let _ = writeln!(text, "  HostName {hostname}");
                if let Some(p) = port {
                    let _ = writeln!(text, "  Port {p}");
                }
            }
        }
        let _ = write!(
            text,
            "  User {user}\n  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n",
            key.display()
        );
    }
    // Last and under `Match all`, so our settings win and the user's `Match host PATTERN` blocks
    // see the HostName set above (a `Host` pattern would only see our alias).
    if let Some(inc) = spec.include {
        let _ = write!(text, "\nMatch all\nInclude {}\n", inc.display());
    }
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    Ok(Target {
        name: spec.name.to_string(),
        run: spec.run.to_string(),
        provider: spec.provider,
        ssh: SshDest { config_file: file.clone(), alias: spec.name.to_string() },
        observe: SshDest { config_file: file, alias: observe_alias },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_channels_share_route_but_not_user() {
        let dir = tempfile::tempdir().unwrap();
        let t = write_target(
            dir.path(),
            Path::new("/k/id"),
            Spec {
                name: "abench-x-0",
                run: "x",
                provider: crate::provider::ProviderKind::Local,
                route: Route::Proxy("podman exec -i abench-x-0 /usr/sbin/sshd -i"),
                user: "root",
                include: None,
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&t.ssh.config_file).unwrap();
        assert_eq!(text.matches("ProxyCommand podman exec -i abench-x-0").count(), 2);
        assert!(text.contains("Host abench-x-0\n") && text.contains("Host abench-x-0-observe\n"));
        assert!(text.contains("User root") && text.contains(&format!("User {}", crate::target::OBSERVER_USER)));
        assert_eq!(t.observe.alias, "abench-x-0-observe");
    }
}

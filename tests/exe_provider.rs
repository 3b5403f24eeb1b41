//! The exe provider against a local stand-in of exe.dev's SSH command protocol: a throwaway sshd
//! on 127.0.0.1 whose ForceCommand (tests/exe-standin/exe-standin.sh) implements new/ls/rm/ssh over
//! local containers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

struct StandIn {
    sshd: Child,
    dir: tempfile::TempDir,
    cache: PathBuf,
    label: String,
}

impl StandIn {
    fn start() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        // The harness key lives where the harness will look for it (AGENTSH_BENCH_CACHE/ssh).
        std::fs::create_dir_all(cache.join("ssh")).unwrap();
        let key = cache.join("ssh/id_ed25519");
        keygen(&key);
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key);
        let image = text(&bench(&["image"]).stdout).trim().to_string();
        assert!(image.starts_with("localhost/"), "no image: {image:?}");
        let label = format!("exe-standin={}", std::process::id());
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exe-standin/exe-standin.sh");
        let sshd_config = dir.path().join("sshd_config");
        std::fs::write(
            &sshd_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {k}.pub\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nLogLevel ERROR\nForceCommand {script}\n\
                 SetEnv ABENCH_STANDIN_IMAGE={image} ABENCH_STANDIN_PUBKEY={k}.pub ABENCH_STANDIN_LABEL={label} PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                hk = host_key.display(),
                d = dir.path().display(),
                k = key.display(),
                script = script.display(),
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new("/usr/sbin/sshd").arg("-D").arg("-f").arg(&sshd_config).spawn().expect("sshd");
        // What a user of exe.dev keeps in ~/.ssh/config, pointed at the stand-in.
        std::fs::write(
            dir.path().join("user_ssh_config"),
            format!(
                "Host exe.standin\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {k}\n  IdentitiesOnly yes\n\
                 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n\
                 Match host *.exe.standin\n  ProxyCommand sh -c 'exec podman exec -i \"${{0%%.exe.standin}}\" /usr/sbin/sshd -i -e -o LogLevel=ERROR' %h\n",
                k = key.display()
            ),
        )
        .unwrap();
        let s = StandIn { sshd, dir, cache, label };
        wait_listening(port);
        s
    }

    /// `agentsh-bench SUB --provider exe --exe-host exe.standin --exe-ssh-config CFG ARGS…`
    fn bench(&self, sub: &str, args: &[&str]) -> std::process::Output {
        let cfg = self.dir.path().join("user_ssh_config");
        Command::new(BIN)
            .arg(sub)
            .args(["--provider", "exe", "--exe-host", "exe.standin", "--exe-ssh-config"])
            .arg(&cfg)
            .args(args)
            .env("AGENTSH_BENCH_CACHE", &self.cache)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn vms(&self) -> Vec<String> {
        let o = Command::new("podman")
            .args(["ps", "-a", "--filter", &format!("label={}", self.label), "--format", "{{.Names}}"])
            .output()
            .unwrap();
        text(&o.stdout).lines().map(String::from).collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", "-t", "0"]).args(self.vms()).output();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

#[test]
fn exe_provider_creates_lists_and_removes_vms_through_the_protocol() {
    let _g = serial();
    let s = StandIn::start();

    let o = s.bench("up", &["--vms", "2", "--agentsh", "none"]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "up failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    assert_eq!(up.targets.len(), 2);
    assert_eq!(s.vms().len(), 2, "the stand-in should hold 2 VMs");

    for (name, config) in &up.targets {
        // Straight to ssh_dest through the user's config, on both channels.
        let (c, out, err) = ssh(config, name, "hostname");
        assert_eq!((c, out.trim()), (0, name.as_str()), "{err}");
        let (c, out, _) = ssh(config, &format!("{name}-observe"), "echo $USER");
        assert_eq!((c, out.trim()), (0, "abench-obs"));
        // And through the gateway form `ssh exe.dev ssh VM CMD`.
        let gw = s.dir.path().join("user_ssh_config");
        let o = Command::new("ssh")
            .arg("-F")
            .arg(&gw)
            .args(["exe.standin", "ssh", name, "cat /etc/hostname"])
            .output()
            .unwrap();
        assert_eq!(text(&o.stdout).trim(), name.as_str(), "{}", text(&o.stderr));
    }

    let o = s.bench("ls", &[]);
    let ls = format!("{}{}", text(&o.stdout), text(&o.stderr));
    for (name, _) in &up.targets {
        assert!(ls.contains(name.as_str()), "ls misses {name}:\n{ls}");
    }

    let o = s.bench("down", &["--run", &up.run]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(s.vms().is_empty(), "VMs left after down: {:?}", s.vms());
}

#[test]
fn exe_control_plane_errors_are_reported() {
    let _g = serial();
    let s = StandIn::start();
    let gw = s.dir.path().join("user_ssh_config");
    let o = Command::new("ssh").arg("-F").arg(&gw).args(["exe.standin", "frobnicate"]).output().unwrap();
    assert_ne!(code(&o), 0);
    assert!(text(&o.stderr).contains("unknown command"), "{}", text(&o.stderr));
    // An unreachable control plane fails the run as infrastructure (exit 2), naming the command.
    let o = Command::new(BIN)
        .args(["--provider", "exe", "--exe-host", "exe.standin.invalid", "--agentsh", "none"])
        .env("AGENTSH_BENCH_CACHE", &s.cache)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("exe.dev control plane unreachable"), "{}", text(&o.stderr));
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status().unwrap();
    assert!(st.success());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("stand-in sshd did not listen on 127.0.0.1:{port}");
}

//! Real local targets: podman containers reached over real sshd. Needs scripts/setup-host.sh.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Three targets provisioned at once are separate, reachable over both channels, cut off from
/// any network, leave the host's /bin/bash alone, and are gone after `down`.
#[test]
fn three_targets_concurrently_isolated_and_torn_down() {
    let _g = serial();
    let host_bash = sha256("/bin/bash");
    let out = tempfile::tempdir().unwrap();
    let o = bench(&["up", "--vms", "3", "--agentsh", "none", "--out", out.path().to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "up failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    let _cleanup = RunGuard(up.run.clone());
    assert_eq!(up.targets.len(), 3, "{stdout}");
    assert_eq!(containers_of(&up.run).len(), 3);

    let mut hostnames = Vec::new();
    for (name, config) in &up.targets {
        // Test channel: root through sshd and the login shell.
        let (c, hostname, err) = ssh(config, name, "id -un; hostname");
        assert_eq!(c, 0, "{name}: {err}");
        let mut lines = hostname.lines();
        assert_eq!(lines.next(), Some("root"));
        hostnames.push(lines.next().unwrap_or_default().to_string());

        // Observation channel: uid 0 under its own login name and shell, not /bin/bash.
        let (c, who, err) = ssh(config, &format!("{name}-observe"), "id -u; echo $USER; echo $SHELL");
        assert_eq!(c, 0, "{name} observe: {err}");
        let who: Vec<&str> = who.lines().collect();
        assert_eq!(who[..2], ["0", "abench-obs"], "{name}: {who:?}");
        assert_eq!(who[2], "/usr/local/libexec/agentsh-bench/bash", "{name}");

        // No route out: only lo, no default route, and probes of the private and metadata ranges
        // fail at once inside the target (curl exit 7: could not connect).
        let (_, links, _) = ssh(config, name, "ip -o link show | cut -d: -f2");
        assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"], "{name}");
        let (_, routes, _) =
            ssh(config, name, "ip route show; ip -6 route show | grep -v '^::1 ' | grep -v '^fe80' || true");
        assert!(!routes.contains("default"), "{name} has a default route: {routes}");
        for addr in ["10.0.0.1", "169.254.169.254"] {
            let (c, _, err) = ssh(config, name, &format!("curl -sS --max-time 5 http://{addr}/"));
            assert_eq!(c, 7, "{name}: probe of {addr} should fail with no route: {err}");
        }

        // Outside hosts resolve to loopback fixtures inside the target: the positive control of
        // every network test. A request reaches its fixture (HTTPS trusted, no -k) and is logged.
        let probe = format!("probe-{}", std::process::id());
        for (url, host) in [
            (format!("https://evil.com/{probe}"), "evil.com"),
            (format!("http://registry.npm.test/{probe}"), "registry.npm.test"),
            (format!("https://api.github.com/{probe}"), "api.github.com"),
        ] {
            let (c, body, err) = ssh(config, &format!("{name}-observe"), &format!("curl -sS --max-time 5 {url}"));
            assert_eq!((c, body.trim()), (0, format!("abench-fixture {host}").as_str()), "{name} {url}: {err}");
        }
        let (_, log, _) = ssh(config, &format!("{name}-observe"), "cat /var/log/agentsh-bench/fixtures.log");
        assert_eq!(log.lines().filter(|l| l.contains(&probe)).count(), 3, "{name}: fixture log: {log}");
        let (_, resolved, _) = ssh(config, name, "getent hosts evil.com api.github.com registry.npm.test");
        assert!(resolved.lines().all(|l| l.starts_with("127.")), "{name}: {resolved}");

        // The driver went in before anything else and runs.
        let (c, v, _) = ssh(config, name, "/usr/local/bin/agentsh-bench --version");
        assert_eq!((c, v.trim()), (0, format!("agentsh-bench {}", env!("CARGO_PKG_VERSION")).as_str()));
    }
    hostnames.sort();
    hostnames.dedup();
    assert_eq!(hostnames.len(), 3, "targets are not distinct: {hostnames:?}");

    // Results were written per target.
    let csv = std::fs::read_to_string(out.path().join("targets.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.contains(",ready,")).count(), 3, "{csv}");

    let ls = text(&bench(&["ls"]).stdout);
    assert_eq!(ls.lines().filter(|l| l.contains(&up.run)).count(), 3, "{ls}");

    let o = bench(&["down", "--run", &up.run]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(containers_of(&up.run).is_empty(), "containers left after down");
    assert!(!text(&bench(&["ls"]).stdout).contains(&up.run));
    assert_eq!(sha256("/bin/bash"), host_bash, "the host's /bin/bash changed");
    assert!(!std::path::Path::new("/bin/bash.real").exists(), "the host got a bash.real");
}

/// The main job tears its targets down by itself; `--keep` keeps them for `down`.
#[test]
fn main_job_tears_down_unless_kept() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&["--vms", "2", "--agentsh", "none", "--iterations", "0", "--out", out.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let run = run_from_results(out.path());
    assert!(containers_of(&run).is_empty(), "main job left containers of {run}");

    let o = bench(&[
        "--vms",
        "1",
        "--agentsh",
        "none",
        "--iterations",
        "0",
        "--keep",
        "--out",
        out.path().join("k").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let kept = run_from_results(&out.path().join("k"));
    let _cleanup = RunGuard(kept.clone());
    assert_eq!(containers_of(&kept).len(), 1);
    assert_eq!(code(&bench(&["down", "--run", &kept])), 0);
    assert!(containers_of(&kept).is_empty());
}

/// Ctrl-C in the middle of provisioning leaves nothing behind and exits 130.
#[test]
fn ctrl_c_leaves_no_target() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let (mut child, run) = start_main_job(out.path());
    let _cleanup = RunGuard(run.clone());
    wait_for(|| containers_of(&run).len() == 2, "both containers to exist");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(containers_of(&run).is_empty(), "Ctrl-C left containers of {run}");
}

/// A target that dies while being provisioned is reported with its step, the other one still
/// becomes ready, everything is cleaned up, and the run exits 2.
#[test]
fn target_dying_mid_provisioning_is_reported_and_cleaned() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let (mut child, run) = start_main_job(out.path());
    let _cleanup = RunGuard(run.clone());
    let victim = format!("abench-{run}-1");
    wait_for(|| containers_of(&run).contains(&victim), "the victim container");
    let killed = Command::new("podman").args(["kill", &victim]).output().unwrap();
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "a failed target must fail the run");
    let csv = std::fs::read_to_string(out.path().join("targets.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with(&victim)).unwrap_or_else(|| panic!("{csv}"));
    assert!(row.contains(",failed,"), "{row}");
    assert!(csv.lines().any(|l| l.starts_with(&format!("abench-{run}-0,")) && l.contains(",ready,")), "{csv}");
    assert!(containers_of(&run).is_empty(), "containers left behind");
}

#[test]
fn bad_usage_exits_3() {
    for args in [
        &["--vms", "0"][..],
        &["--vms", "-1"],
        &["--vms", "65"],
        &["--vms", "many"],
        &["--agentsh", "vfoo"],
        &["--agentsh", "/no/such.deb"],
        &["--policy", "/no/such.yaml", "--agentsh", "none"],
        &["--provider", "ssh", "--agentsh", "none"],
        &["down", "--run", "x;y"],
    ] {
        let o = bench(args);
        assert_eq!(code(&o), 3, "{args:?}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).trim().is_empty(), "{args:?}: no message");
    }
}

/// When no source yields agentsh, one error lists every try, the directories searched for a
/// snapshot included, and the run exits 2 without creating anything.
#[test]
fn unobtainable_version_lists_every_try() {
    let sources = tempfile::tempdir().unwrap();
    let o =
        Command::new(BIN).args(["fetch", "v99.99.99"]).env("AGENTSH_BENCH_SOURCES", sources.path()).output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    let searched = format!("no agentsh-v99.99.99.tar.gz in {}", sources.path().display());
    for want in [
        "cannot obtain agentsh v99.99.99",
        "1. cache:",
        "2. release .deb:",
        "3. source snapshot:",
        &searched,
        "4. Go module proxy build:",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// A snapshot that is not a gzip tarball is named in the error, and nothing is cached from it.
#[test]
fn a_corrupt_snapshot_is_named() {
    let sources = tempfile::tempdir().unwrap();
    let tarball = sources.path().join("agentsh-v99.99.98.tar.gz");
    std::fs::write(&tarball, b"not a tarball").unwrap();
    let o =
        Command::new(BIN).args(["fetch", "v99.99.98"]).env("AGENTSH_BENCH_SOURCES", sources.path()).output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains(&tarball.display().to_string()) && err.contains("not in gzip format"), "{err}");
}

/// A missing engine is named with the package that provides it.
#[test]
fn missing_engine_names_the_package() {
    let o = Command::new(BIN).args(["--agentsh", "none"]).env("PATH", "/nonexistent").output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("apt-get install podman"), "{err}");
}

/// Starts the main job on 2 baseline targets in the background; returns it and its run tag.
fn start_main_job(out: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["--vms", "2", "--agentsh", "none", "--iterations", "0", "--out", out.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = read_run_tag(child.stderr.take().unwrap());
    (child, run)
}

fn run_from_results(dir: &std::path::Path) -> String {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).expect("run.json")).unwrap();
    manifest["run"].as_str().unwrap().to_string()
}

/// Reads stderr until the `run <tag>:` line, then keeps draining it in the background.
fn read_run_tag(stderr: std::process::ChildStderr) -> String {
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        line.clear();
        assert!(Instant::now() < deadline, "no run line");
        assert!(reader.read_line(&mut line).unwrap() > 0, "stderr closed before the run line");
        if let Some(rest) = line.strip_prefix("run ") {
            let tag = rest.split(':').next().unwrap().to_string();
            std::thread::spawn(move || for _ in reader.lines() {});
            return tag;
        }
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A target with a process stuck in a FUSE request (tests/data/fuse_hang.py, the shape of
/// agentsh's wedge) cannot be removed by the engine alone; `down` aborts that container's FUSE
/// connections and removes it, and leaves no container behind in any state.
#[test]
fn down_removes_a_target_with_a_hung_fuse_mount() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&["up", "--vms", "1", "--agentsh", "none", "--out", out.path().to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "up failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    let _cleanup = RunGuard(up.run.clone());
    let (name, config) = &up.targets[0];
    // A script name of this test's own, to find its process on the host afterwards.
    let script_path = format!("/tmp/fuse_hang_{}.py", std::process::id());
    let script = include_str!("data/fuse_hang.py");
    let (c, _, err) =
        ssh(config, name, &format!("cat > {script_path} <<'PYEOF'\n{script}PYEOF\ntimeout 20 python3 {script_path}"));
    assert_eq!(c, 0, "{name}: fuse_hang.py: {err}");
    let stuck = || -> Vec<String> {
        let o = Command::new("ps").args(["-eo", "pid,stat,wchan:32,args"]).output().unwrap();
        text(&o.stdout).lines().filter(|l| l.contains(&script_path)).map(String::from).collect()
    };
    let before = stuck();
    assert!(before.iter().any(|l| l.contains("request_wait_answer")), "no process stuck in a FUSE request: {before:?}");

    // The premise: SIGKILL does not end it (otherwise the engine alone would cope and this test
    // would prove nothing).
    let pid = before[0].split_whitespace().next().unwrap().to_string();
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!stuck().is_empty(), "the stuck process died of SIGKILL; the test's premise is gone");

    let started = Instant::now();
    let o = bench(&["-v", "down", "--run", &up.run]);
    assert_eq!(code(&o), 0, "down failed:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("aborted FUSE connection"), "{}", text(&o.stderr));
    assert!(containers_of(&up.run).is_empty(), "containers left: {:?}", containers_of(&up.run));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stuck(), Vec::<String>::new(), "a process of the removed target lives on");
    assert!(started.elapsed() < Duration::from_secs(120), "down took {:?}", started.elapsed());
}

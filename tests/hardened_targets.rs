//! Real agentsh on real local targets, both versions the harness knows: v0.16.9 (the seed's) and
//! v0.20.1 (the newest that builds here), each built from its source snapshot (found through
//! AGENTSH_BENCH_SOURCES, default ../shared/agentsh) and cached, so only the first run pays for
//! the builds. `AGENTSH_BENCH_TEST_AGENTSH=SPEC` tests one other spec instead.

mod common;

use common::*;

fn specs() -> Vec<String> {
    match std::env::var("AGENTSH_BENCH_TEST_AGENTSH") {
        Ok(s) => vec![s],
        Err(_) => vec!["v0.16.9".into(), "v0.20.1".into()],
    }
}

#[test]
fn three_hardened_targets_per_version_enforce_and_report_the_requested_version() {
    let _g = serial();
    for spec in specs() {
        three_hardened_targets(&spec);
    }
}

/// Runs a governed command on the test channel. agentsh (both versions) can wedge at a session's
/// FUSE mount (docs/findings.md, finding 1: upstream #369, fixed after v0.20.1); then every
/// governed command fails closed and nothing about the rule under test can be seen. As the
/// harness's watchdog does, a wedge (health down on the observation channel) is recovered with
/// the same scripts (abort this target's FUSE connections, restart the server) and the command
/// runs once more; the wedge is reported. Anything else is the command's real result.
/// [`governed`], tried again when agentsh fails the command with exit 255 and only "agentsh:
/// command failed": a known agentsh flake (docs/findings.md 2, ptrace injection) that readiness
/// also retries. Each retry is printed; any other result, or a third 255, is returned as it is.
fn governed_past_flake(config: &std::path::Path, name: &str, cmd: &str) -> (i32, String, String) {
    let mut tries = 1;
    loop {
        let (c, out, err) = governed(config, name, cmd);
        if c != 255 || !err.contains("agentsh: command failed") || tries == 3 {
            return (c, out, err);
        }
        eprintln!("{name}: `{cmd}` exited 255 (agentsh: command failed), try {tries}; trying again");
        tries += 1;
    }
}

fn governed(config: &std::path::Path, name: &str, cmd: &str) -> (i32, String, String) {
    let first = ssh(config, name, cmd);
    let observe = format!("{name}-observe");
    let (health, _, _) = ssh(config, &observe, "curl -sf --max-time 5 http://127.0.0.1:18080/health");
    if health == 0 {
        return first;
    }
    let recover = format!(
        "{}\npkill -9 -f '^agentsh' ; sleep 0.5\n{}",
        include_str!("../assets/scripts/abort-fuse.sh"),
        include_str!("../assets/scripts/start-server.sh")
    );
    let (c, out, err) = ssh(config, &observe, &recover);
    assert_eq!(c, 0, "{name}: agentsh wedged during `{cmd}` and did not recover: {out} {err}");
    eprintln!("{name}: agentsh wedged during `{cmd}` (finding 1); recovered: {}", out.trim());
    ssh(config, name, cmd)
}

fn three_hardened_targets(spec: &str) {
    let fetched = bench(&["fetch", spec]);
    assert_eq!(code(&fetched), 0, "cannot obtain agentsh {spec}: {}", text(&fetched.stderr));
    let want_version = text(&fetched.stdout)
        .split("(agentsh ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("fetch prints the version: {}", text(&fetched.stdout)))
        .to_string();
    let host_bash = sha256("/bin/bash");

    let results = tempfile::tempdir().unwrap();
    let o = bench(&["up", "--vms", "3", "--agentsh", spec, "--out", results.path().to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "{spec}: up failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    let _cleanup = RunGuard(up.run.clone());
    assert_eq!(up.targets.len(), 3);

    for (name, config) in &up.targets {
        let observe = format!("{name}-observe");
        let dir = results.path().join("targets").join(name);
        // /bin/bash on the target is the shim, and the real bash was kept.
        let (c, _, err) = ssh(config, &observe, "cmp /bin/bash /usr/bin/agentsh-shell-shim && test -x /bin/bash.real");
        assert_eq!(c, 0, "{name}: /bin/bash is not the shim: {err}");
        // The version asked for is the version running.
        let (_, v, _) = ssh(config, &observe, "agentsh --version");
        assert!(v.starts_with(&format!("agentsh {want_version}")), "{name}: {v}");
        // Readiness kept agentsh's own record of the probe's denial by the harness's rule.
        let events = std::fs::read_to_string(dir.join("probe-events.json")).expect("probe-events.json");
        assert!(events.contains("abench-readiness-probe") && events.contains("deny"), "{name}: {events}");
        // The probe, again: denied with exit 126 and never run (it would print its marker).
        let (c, out, err) = governed_past_flake(config, name, "abench-denied-probe");
        assert_eq!(c, 126, "{name}: the probe was not denied: out={out} err={err}");
        assert!(!out.contains("abench-probe-ran"), "{name}: the probe ran");
        // The seed policy's own rule: a shimmed sudo is denied with 126 and never prints root.
        let (c, out, err) = governed_past_flake(config, name, "sudo whoami");
        assert_eq!(c, 126, "{name}: sudo was not denied: out={out} err={err}");
        assert!(!out.lines().any(|l| l.trim() == "root"), "{name}: sudo printed root");
        // Positive control: the same channel runs an allowed command with its output.
        let (c, out, err) = governed_past_flake(config, name, "echo shim-allows-echo");
        assert_eq!((c, out.trim()), (0, "shim-allows-echo"), "{name}: {err}");
        // `agentsh detect -o json` was recorded.
        let detect = std::fs::read(dir.join("detect.json")).expect("detect.json");
        let detect: serde_json::Value = serde_json::from_slice(&detect).unwrap();
        assert!(detect.get("security_mode").is_some(), "{name}: {detect}");
    }
    assert_eq!(sha256("/bin/bash"), host_bash, "the host's /bin/bash changed");

    assert_eq!(code(&bench(&["down", "--run", &up.run])), 0);
    assert!(containers_of(&up.run).is_empty());
}

/// A deliberately weakened policy (the seed's without the rule that denies sudo) still gives
/// ready targets: readiness rests on the harness's probe rule, not on the policy under test, so
/// the suite can then show the weakness.
#[test]
fn a_weakened_policy_still_gives_ready_targets() {
    let _g = serial();
    let seed = std::fs::read_to_string(format!("{}/assets/policies/default.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let start = seed.find("  - name: block-shell-escape").expect("the seed policy has block-shell-escape");
    let end = start + seed[start..].find("decision: deny").unwrap() + "decision: deny".len();
    let weak = format!("{}{}", &seed[..start], &seed[end..]);
    assert!(!weak.contains("block-shell-escape"));
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), weak).unwrap();

    let spec = specs().pop().unwrap();
    let results = tempfile::tempdir().unwrap();
    let o = bench(&[
        "up",
        "--vms",
        "1",
        "--agentsh",
        &spec,
        "--policy",
        policy.path().to_str().unwrap(),
        "--out",
        results.path().to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "{spec}: up with a weakened policy failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    let _cleanup = RunGuard(up.run.clone());
    let (name, config) = &up.targets[0];
    // The weakness is real on the target: no command rule denies sudo any more.
    let (_, installed, _) = ssh(config, &format!("{name}-observe"), "cat /etc/agentsh/policies/default.yaml");
    assert!(installed.contains("abench-readiness-probe") && !installed.contains("block-shell-escape"), "{installed}");
    assert_eq!(code(&bench(&["down", "--run", &up.run])), 0);
}

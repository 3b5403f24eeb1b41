//! The security suite on a real target without agentsh: it must come out violated where the
//! protection would be needed, never held; proof that the verdicts can fail.

mod common;

use std::process::Command;

use common::*;

#[test]
fn an_unprotected_target_is_violated_and_never_held() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&["--vms", "1", "--agentsh", "none", "--iterations", "2", "--out", out.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "violations must fail the run:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("VIOLATED or FLAKY"), "violated tests are listed first");

    let rows = common::rows(&out.path().join("tests.csv"));
    assert_eq!(rows.len(), 181, "90 tests × 2 iterations and the integrity check");
    for r in &rows {
        if r["expected"] == "enforced" {
            assert_ne!(r["verdict"], "held", "an enforced test held without agentsh: {r:?}");
        }
    }
    let verdict = |id: &str, iteration: &str| {
        rows.iter()
            .find(|r| r["test_id"] == id && r["iteration"] == iteration)
            .map(|r| (r["verdict"].clone(), r["evidence"].clone()))
            .unwrap()
    };
    for iteration in ["1", "2"] {
        // sudo printed root; su ran; ssh ran; kill succeeded; the /etc file was written; the
        // request reached the evil.com fixture; env sudo printed root.
        for (id, evidence) in [
            ("14", "stdout has the line \"root\""),
            ("16", "stderr contains \"ssh: connect to host\""),
            ("17", "it exited 0"),
            ("22", "the request reached its fixture"),
            ("23", "stdout has the line \"root\""),
        ] {
            let (v, e) = verdict(id, iteration);
            assert!(v == "violated" && e.starts_with(evidence), "test {id}: {v} {e}");
        }
        let (v, e) = verdict("20", iteration);
        assert!(v == "violated" && e.starts_with("/etc/shim-test-") && e.ends_with(" exists"), "{v} {e}");
        // Without an agentsh server, session-API tests prove nothing either way.
        let (v, e) = verdict("41", iteration);
        assert!(v == "inconclusive" && e.contains("no agentsh session API"), "{v} {e}");
        // Allowed actions run; the shim test that needs an agentsh session does not hold.
        assert_eq!(verdict("18", iteration).0, "held");
        assert_eq!(verdict("11", iteration).0, "inconclusive");
    }
    // Local containers have no cgroup v2 controllers (scenarios/environments/local.toml).
    let (v, e) = verdict("36", "1");
    assert!(v == "skipped-env" && e.starts_with("needs cgroups_v2:"), "{v} {e}");
    // Each iteration uses its own nonce: the two /etc files differ.
    assert_ne!(verdict("20", "1").1, verdict("20", "2").1);

    let charts: Vec<_> = std::fs::read_dir(out.path().join("charts/suite"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        charts.iter().any(|c| c.ends_with(".heatmap.png")) && charts.iter().any(|c| c.ends_with(".heatmap.svg")),
        "{charts:?}"
    );

    // Without agentsh nothing outside scenarios/integrity.toml changes: the tests clean up.
    let integrity = rows.iter().find(|r| r["test_id"] == "integrity").unwrap();
    assert_eq!((integrity["verdict"].as_str(), integrity["iteration"].as_str()), ("held", "2"), "{integrity:?}");
    assert!(integrity["evidence"].ends_with(" paths unchanged"), "{integrity:?}");

    let summary = common::rows(&out.path().join("summary.csv"));
    assert_eq!(summary.len(), 91);
    let s14 = summary.iter().find(|r| r["test_id"] == "14").unwrap();
    assert_eq!((s14["violated"].as_str(), s14["held"].as_str(), s14["flaky"].as_str()), ("2", "0", "false"));
}

#[test]
fn a_broken_suite_record_is_refused_before_provisioning() {
    let (_dir, scenarios) = scenarios_copy();
    let file = scenarios.join("suite/04-shim-enforcement.toml");
    let record = std::fs::read_to_string(&file).unwrap();
    // Test 14 without its violation condition could never fail.
    std::fs::write(&file, record.replacen("violated = { stdout_line = \"root\" }\n", "", 1)).unwrap();
    let err = refused_with(&scenarios);
    assert!(
        err.contains("04-shim-enforcement.toml:") && err.contains("test 14") && err.contains("could never fail"),
        "{err}"
    );
}

/// A test that held in the baseline run and is violated now is a regression, listed first;
/// one that held before and holds now is not.
#[test]
fn held_before_violated_now_is_a_regression() {
    let _g = serial();
    let base = tempfile::tempdir().unwrap();
    std::fs::write(
        base.path().join("summary.csv"),
        "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n\
         14,shell: sudo blocked,old-0,3,0,0,0,0,false\n\
         18,shell: echo allowed,old-0,3,0,0,0,0,false\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&[
        "--vms",
        "1",
        "--agentsh",
        "none",
        "--baseline",
        base.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 1, "{stdout}");
    assert!(
        stdout.starts_with("REGRESSIONS against the baseline (held there) (1):"),
        "regressions come first:\n{stdout}"
    );
    let regs = common::rows(&out.path().join("regressions.csv"));
    assert_eq!(regs.len(), 1);
    assert_eq!(
        (regs[0]["test_id"].as_str(), regs[0]["before"].as_str(), regs[0]["now"].as_str(), regs[0]["change"].as_str()),
        ("14", "held", "violated", "broken")
    );

    // A baseline without a summary is refused before anything is provisioned.
    let o = bench(&["--agentsh", "none", "--baseline", out.path().join("nope").to_str().unwrap()]);
    assert_eq!(code(&o), 3, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("summary.csv"), "{}", text(&o.stderr));
}

/// The policy's `- name: R` blocks for `rules` removed (each up to the next rule or section).
fn without_rules(policy: &str, rules: &[&str]) -> String {
    let mut out = policy.to_string();
    for r in rules {
        let start = out.find(&format!("\n  - name: {r}\n")).unwrap_or_else(|| panic!("the policy has no rule {r}")) + 1;
        let rest = &out[start + 1..];
        let end = [rest.find("\n  - name: "), rest.find("\n# "), rest.find("\n\n# ")]
            .into_iter()
            .flatten()
            .min()
            .map_or(out.len(), |e| start + 1 + e + 1);
        out.replace_range(start..end, "");
        assert!(!out.contains(&format!("name: {r}\n")), "{r} still there");
    }
    out
}

/// Test ids whose verdict rests on one of `rules` (the rules they accept, or the rule a policy
/// query must name).
fn guarded_by(rules: &[&str]) -> std::collections::BTreeSet<String> {
    let dir = format!("{}/scenarios/suite", env!("CARGO_MANIFEST_DIR"));
    let mut ids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for t in v["test"].as_array().unwrap() {
            let mut named: Vec<&str> =
                t.get("rules").and_then(|r| r.as_array()).into_iter().flatten().filter_map(|r| r.as_str()).collect();
            named.extend(t.get("rule").and_then(|r| r.as_str()));
            named.extend(t.get("decision").and_then(|d| d.get("rule")).and_then(|r| r.as_str()));
            if named.iter().any(|n| rules.contains(n)) {
                ids.insert(t["id"].as_integer().unwrap().to_string());
            }
        }
    }
    ids
}

/// The suite must be able to fail: with a protection taken out of the policy (or the config),
/// the tests that guard it turn violated, and nothing else does beyond what the version's
/// expectations already list as violated. Readiness does not stop a weakened run (it rests on the
/// harness's own rule). Two weakenings that leave an effect to see: taking out the rule that stops
/// `kill`, and making /etc writable (a policy rule and Landlock both). Taking out the sudo rules
/// or block-rm-recursive shows nothing: the file rules still refuse /etc/sudoers and `stat /`,
/// so sudo and rm -rf fail anyway (defence in depth, seen on v0.16.9).
#[test]
fn weakened_policies_turn_exactly_their_guarded_tests_violated() {
    let _g = serial();
    let root = env!("CARGO_MANIFEST_DIR");
    let seed = std::fs::read_to_string(format!("{root}/assets/policies/default.yaml")).unwrap();
    let config = std::fs::read_to_string(format!("{root}/assets/config.yaml")).unwrap();
    let expected: toml::Value =
        toml::from_str(&std::fs::read_to_string(format!("{root}/scenarios/expectations/v0.16.9.toml")).unwrap())
            .unwrap();
    let known_violated: std::collections::BTreeSet<String> = expected["test"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["verdict"].as_str() == Some("violated"))
        .map(|t| t["id"].as_integer().unwrap().to_string())
        .collect();
    let etc_writable_policy = seed.replacen(
        "file_rules:\n",
        "file_rules:\n  - name: weakened-etc-writable\n    paths: [\"/etc\", \"/etc/**\"]\n    operations: [\"*\"]\n    decision: allow\n",
        1,
    );
    assert_ne!(etc_writable_policy, seed);
    let etc_writable_config = config.replacen("  allow_write:\n", "  allow_write:\n    - /etc\n", 1);
    assert_ne!(etc_writable_config, config);
    // (what, policy, config, tests that must read violated, the rules whose tests may change)
    let cases = [
        (
            "without block-system-commands",
            without_rules(&seed, &["block-system-commands"]),
            config.clone(),
            vec!["17"],
            vec!["block-system-commands"],
        ),
        ("with /etc writable", etc_writable_policy, etc_writable_config, vec!["20"], vec!["default-deny-files"]),
    ];
    for (what, policy_text, config_text, must, rules) in cases {
        let policy = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(policy.path(), policy_text).unwrap();
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), config_text).unwrap();
        let out = tempfile::tempdir().unwrap();
        let o = bench(&[
            "--vms",
            "1",
            "--agentsh",
            "v0.16.9",
            "--iterations",
            "1",
            // The suite's verdicts alone: the default workload's wrong decisions would also make
            // the run exit 1, and the exit code checked below must come from the suite.
            "--workload",
            "none",
            "--policy",
            policy.path().to_str().unwrap(),
            "--config",
            config.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let stdout = text(&o.stdout);
        assert_eq!(code(&o), 1, "{what}, the run must fail:\n{stdout}\n{}", text(&o.stderr));
        assert!(stdout.contains("1/1 target(s) ready"), "readiness must not stop a weakened run:\n{stdout}");
        let rows = common::rows(&out.path().join("tests.csv"));
        let violated: std::collections::BTreeSet<String> =
            rows.iter().filter(|r| r["verdict"] == "violated").map(|r| r["test_id"].clone()).collect();
        for id in &must {
            assert!(
                violated.contains(*id),
                "{what}, test {id} must read violated: {:?}",
                rows.iter().find(|r| r["test_id"] == *id)
            );
        }
        let guarded = guarded_by(&rules);
        let collateral: Vec<&String> = violated
            .iter()
            .filter(|id| !guarded.contains(*id) && !known_violated.contains(*id) && *id != "integrity")
            .collect();
        assert!(collateral.is_empty(), "{what}, tests that do not rest on it turned violated: {collateral:?}");
    }
}

/// The integrity check's manifest on a real target: between two manifests, a file in /usr/share
/// changed in place (same size, mtime put back: only its digest tells) and another deleted are
/// exactly what the diff reports; what tests may write (/tmp, new files in /root) is not.
#[test]
fn a_manifest_diff_reports_exactly_the_damaged_paths() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&["up", "--vms", "1", "--agentsh", "none", "--out", out.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "up failed:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    let up = parse_up(&text(&o.stdout));
    let _cleanup = RunGuard(up.run.clone());
    let (name, config) = &up.targets[0];
    let config = config.to_str().unwrap();
    let observe = format!("{name}-observe");

    let o = bench(&["manifest", "-F", config, &observe]);
    let manifest = text(&o.stdout);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(manifest.lines().count() > 5000, "a whole file system: {} paths", manifest.lines().count());
    let line =
        |path: &str| manifest.lines().find(|l| l.starts_with(&format!("{{\"path\":\"{path}\","))).unwrap_or_default();
    assert!(
        line("/proc").contains("\"type\":\"m\"") && line("/proc").contains("\"fstype\":\"proc\""),
        "/proc recorded as a mount: {}",
        line("/proc")
    );
    assert_eq!(manifest.lines().filter(|l| l.starts_with("{\"path\":\"/proc/")).count(), 0, "and not walked");
    assert!(line("/usr/share/common-licenses/GPL-3").contains("\"sha256\":\""), "GPL-3 hashed");
    let before = out.path().join("before.jsonl");
    std::fs::write(&before, &manifest).unwrap();

    let damage = "f=/usr/share/common-licenses/GPL-3; cp -p $f /tmp/orig && printf X | dd of=$f bs=1 seek=100 conv=notrunc status=none \
                  && touch -r /tmp/orig $f && rm /usr/share/common-licenses/Apache-2.0 && echo x > /root/abench-new-file";
    let (c, _, err) = ssh(std::path::Path::new(config), &observe, damage);
    assert_eq!(c, 0, "{err}");

    let o = bench(&["manifest", "-F", config, &observe, "--against", before.to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 1, "changes exit 1:\n{stdout}\n{}", text(&o.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "disappeared /usr/share/common-licenses/Apache-2.0");
    assert!(
        lines[1].starts_with("changed /usr/share/common-licenses/GPL-3 (sha256 ")
            && !lines[1].contains("size")
            && !lines[1].contains("mtime"),
        "{}",
        lines[1]
    );
}

#[test]
fn a_bad_integrity_exclude_is_refused_before_provisioning() {
    let (_dir, scenarios) = scenarios_copy();
    let file = scenarios.join("integrity.toml");
    let body = std::fs::read_to_string(&file).unwrap();
    let line = body.lines().count() + 2;
    // Excluding all of /etc would hide the very damage the suite checks for.
    std::fs::write(&file, format!("{body}\n[[exclude]]\nprefix = \"/etc\"\nreason = \"too wide\"\n")).unwrap();
    let err = refused_with(&scenarios);
    assert!(
        err.contains(&format!("integrity.toml:{line}: exclude \"/etc\"")) && err.contains("covers all of /etc"),
        "{err}"
    );
}

/// Runs the main job with spoiled scenarios: it must be refused as bad usage (exit 3) before
/// anything is provisioned; returns stderr.
fn refused_with(scenarios: &std::path::Path) -> String {
    let o = Command::new(BIN).args(["--agentsh", "none"]).env("AGENTSH_BENCH_SCENARIOS", scenarios).output().unwrap();
    let err = text(&o.stderr);
    assert_eq!(code(&o), 3, "{err}");
    assert!(!err.contains("run "), "nothing may be provisioned: {err}");
    err
}

/// A target lost in the middle of the suite: its rows say so, and the other target's rows are
/// complete.
#[test]
fn a_target_lost_mid_suite_has_rows_that_say_so_and_the_other_is_complete() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_path_buf();
    let child = std::process::Command::new(BIN)
        .args(["--vms", "2", "--agentsh", "none", "--iterations", "3", "--out", dir.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second target has finished some tests, then remove its container.
    let csv = dir.join("tests.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let victim = loop {
        assert!(std::time::Instant::now() < deadline, "the suite never started");
        if csv.exists() {
            let rows = common::rows(&csv);
            if let Some(r) = rows.iter().find(|r| r["target"].ends_with("-1"))
                && rows.iter().filter(|x| x["target"] == r["target"]).count() >= 10
            {
                break r["target"].clone();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let rm = std::process::Command::new("podman").args(["rm", "-f", "-t", "0", &victim]).output().unwrap();
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let o = child.wait_with_output().unwrap();
    let stdout = text(&o.stdout);
    assert!(matches!(code(&o), 1 | 2), "{stdout}\n{}", text(&o.stderr));
    let rows = common::rows(&csv);
    let survivor: Vec<_> = rows.iter().filter(|r| r["target"] != victim).collect();
    assert_eq!(survivor.len(), 90 * 3 + 1, "the other target's rows are complete");
    let lost: Vec<_> = rows.iter().filter(|r| r["target"] == victim).collect();
    assert!(!lost.is_empty());
    // Every test after the loss is there, inconclusive, saying the transport failed.
    let last = lost.last().unwrap();
    assert_eq!(last["verdict"], "inconclusive", "{last:?}");
    let after: Vec<_> =
        lost.iter().filter(|r| r["verdict"] == "inconclusive" && r["evidence"].contains(&victim)).collect();
    assert!(
        !after.is_empty(),
        "rows after the loss name the target and its failure: {:?}",
        lost.iter().rev().take(3).collect::<Vec<_>>()
    );
}

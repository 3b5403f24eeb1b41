//! A short soak on two real targets with agentsh, every fault fired once at a chosen time: what
//! each fault left in faults.csv and tests.csv, how the soak carried on without the destroyed
//! target, and what a soak writes that a one-pass run does not.

mod common;

use common::*;

#[test]
fn every_fault_gets_a_fail_closed_verdict_and_a_recovery_and_the_soak_goes_on() {
    let _g = serial();
    // Kept when the test fails (the evidence of what went wrong), removed when it passes.
    let out = tempfile::Builder::new().prefix("abench-soak-test-").tempdir().unwrap().keep();
    println!("results in {}", out.display());
    let o = bench(&[
        "--vms",
        "2",
        "--iterations",
        "0",
        "--soak",
        "200s",
        "--duration",
        "12s",
        "--faults",
        "destroy-target@5s,kill-server@15s,stall-server@35s,fill-fs@55s,drop-ssh@75s",
        "--fault-hold",
        "4s",
        "--trend-interval",
        "10s",
        "--out",
        out.as_path().to_str().unwrap(),
    ]);
    let log = format!("{}\n{}", text(&o.stdout), text(&o.stderr));
    // 1 when a protection failed open (a finding), 2 when something proved nothing; never a usage
    // error or a crash.
    assert!(matches!(code(&o), 0..=2), "exit {}\n{log}", code(&o));

    let faults = rows(&out.as_path().join("faults.csv"));
    let names: Vec<&str> = faults.iter().map(|r| r["fault"].as_str()).collect();
    assert_eq!(names, ["destroy-target", "kill-server", "stall-server", "fill-fs", "drop-ssh"], "{log}");
    // The first fault destroyed one target; every later one went to the other, the only one left.
    let destroyed = &faults[0];
    assert_eq!(
        (destroyed["recovered"].as_str(), destroyed["fail_closed"].as_str()),
        ("dropped", "skipped"),
        "{destroyed:?}\n{log}"
    );
    for f in &faults[1..] {
        assert_ne!(f["target"], destroyed["target"], "{f:?}");
        // Probes reached the target and were judged on what they showed: fail-closed is proven
        // either way, and a violation names the probe that ran ungoverned.
        assert!(matches!(f["fail_closed"].as_str(), "held" | "violated"), "{f:?}");
        assert!(f["probes"].parse::<u32>().unwrap() >= 3, "{f:?}");
        // Each probe's effect was first seen on the ungoverned channel (the positive control),
        // so "held" is a check that could have failed.
        assert!(
            f["detail"].contains("controls (effect seen ungoverned before the fault): sudo, shadow, evil.test"),
            "{f:?}"
        );
        if f["fail_closed"] == "violated" {
            assert!(f["detail"].contains("RAN UNGOVERNED"), "{f:?}");
        }
        // Whether agentsh came back is agentsh's business (a finding if not); that the harness
        // timed it when it did is this test's.
        match f["recovered"].as_str() {
            "yes" => {
                let s: f64 = f["recover_s"].parse().unwrap_or_else(|_| panic!("a time to recover: {f:?}"));
                assert!((0.0..120.0).contains(&s), "{f:?}");
            }
            "no" => assert!(f["recover_s"].is_empty(), "{f:?}"),
            other => panic!("recovered {other:?}: {f:?}"),
        }
        assert!(!f["recovery"].is_empty() && f["recovery"] != "not applied", "{f:?}");
        let evidence = out.as_path().join("targets").join(&f["target"]).join(format!(
            "fault-{}-{}.txt",
            names.iter().position(|n| *n == f["fault"]).unwrap() + 1,
            f["fault"]
        ));
        assert!(evidence.is_file(), "{}", evidence.display());
    }

    // Each fault is also a verdict next to the suite's.
    let tests = rows(&out.as_path().join("tests.csv"));
    let verdicts: Vec<(&str, &str)> = tests
        .iter()
        .filter(|r| r["test_id"].starts_with("fault:"))
        .map(|r| (r["test_id"].as_str(), r["verdict"].as_str()))
        .collect();
    assert_eq!(verdicts.len(), 5, "{verdicts:?}");
    assert_eq!(verdicts[0], ("fault:destroy-target", "skipped-env"));
    let summary = rows(&out.as_path().join("summary.csv"));
    assert_eq!(summary.iter().filter(|r| r["test_id"].starts_with("fault:")).count(), 5, "{summary:?}");

    // Workload rounds went on, each under its own name; after the destroy only one target ran.
    let soak: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.as_path().join("soak.json")).unwrap()).unwrap();
    let rounds = soak["rounds"].as_u64().unwrap();
    assert!(rounds >= 3, "{soak}");
    assert_eq!(soak["faults_applied"], 5);
    let latency = rows(&out.as_path().join("latency.csv"));
    // Every round after the first began after the destroy (5 s into a 12 s round): the destroyed
    // target is in none of them, and the other ran some. (Not necessarily the last: a round that
    // began just before the end has no workload, and one a fault cut short is excused, no rows.)
    let after: Vec<(&str, &str)> = latency
        .iter()
        .filter(|r| r["workload"] != "default-r1")
        .map(|r| (r["workload"].as_str(), r["target"].as_str()))
        .collect();
    assert!(!after.is_empty(), "no round after the first in latency.csv ({rounds} begun)");
    assert!(after.iter().all(|(_, t)| *t != destroyed["target"]), "{after:?}");
    assert!(latency.iter().any(|r| r["workload"] == "default-r1"), "round 1 in latency.csv");

    // Every round's latency on the soak's clock, the surviving target's faults shaded in its panel.
    assert!(soak["t0_epoch_s"].as_f64().is_some_and(|t| t > 1.7e9), "{soak}");
    let chart = std::fs::read_to_string(out.as_path().join("charts/soak-latency.svg")).expect("soak-latency.svg");
    for f in &faults[1..] {
        assert!(chart.contains(f["fault"].as_str()), "{} shaded: {chart:.300}", f["fault"]);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

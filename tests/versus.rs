//! The two-version job on real local targets: `--agentsh none --agentsh v0.16.9` with the default
//! workload, as short as it can be (no suite, 5 s of load). Built agentsh: v0.16.9 (cached after
//! the first build), or `AGENTSH_BENCH_TEST_AGENTSH=SPEC`.

mod common;

use std::path::Path;

use common::*;

/// The default workload's op names, from the file the run used.
fn default_ops() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/workloads/default.toml");
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ops = v["op"].as_array().unwrap();
    assert!(ops.iter().all(|o| o.get("decision").is_some()), "every op of default.toml is governed");
    ops.iter().map(|o| o["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn none_against_a_version_compares_latency_and_decisions_of_every_op() {
    let _g = serial();
    let spec = std::env::var("AGENTSH_BENCH_TEST_AGENTSH").unwrap_or_else(|_| "v0.16.9".into());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = bench(&[
        "--agentsh",
        "none",
        "--agentsh",
        &spec,
        "--vms",
        "1",
        "--iterations",
        "0",
        "--workload",
        "default",
        "--duration",
        "5s",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (a, b) = (out.join("a-none"), out.join(format!("b-{spec}")));
    // Each side tears its targets down; should the job have died first, the guards do.
    let _guards: Vec<RunGuard> = [&a, &b]
        .iter()
        .filter_map(|d| std::fs::read(d.join("run.json")).ok())
        .filter_map(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
        .filter_map(|v| v["run"].as_str().map(|r| RunGuard(r.to_string())))
        .collect();
    let all = format!("{}\n{}", text(&o.stdout), text(&o.stderr));
    // A wrong decision (1) or an inconclusive target (2) is agentsh's finding; usage (3), an
    // interruption or a crash are the harness failing.
    assert!([0, 1, 2].contains(&code(&o)), "exit {}:\n{all}", code(&o));

    let ops = default_ops();
    for side in [&a, &b] {
        let csv = side.join("latency.csv");
        assert!(csv.is_file(), "no {}:\n{all}", csv.display());
        let latency = rows(&csv);
        let mut seen: Vec<&str> = latency.iter().map(|r| r["op"].as_str()).collect();
        seen.sort();
        let mut want: Vec<&str> = ops.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(seen, want, "{}: one row per op on its one target", side.display());
    }

    assert!(out.join("comparison-versions.csv").is_file(), "no comparison:\n{all}");
    let cmp = rows(&out.join("comparison-versions.csv"));
    let section = |s: &str| cmp.iter().filter(|r| r["section"] == s).collect::<Vec<_>>();
    let latency = section("latency");
    for op in &ops {
        for q in ["p50", "p99"] {
            let item = format!("{op} {q} ms");
            let r = latency.iter().find(|r| r["item"] == item).unwrap_or_else(|| panic!("no {item}:\n{cmp:#?}"));
            let ratio: f64 = r["ratio_b_over_a"].parse().unwrap_or_else(|_| panic!("ratio of {item}: {r:?}"));
            assert!(ratio.is_finite() && ratio > 0.0, "{r:?}");
            for side in ["none", spec.as_str()] {
                assert!(r[side].parse::<f64>().is_ok_and(|ms| ms > 0.0), "{side}'s {item}: {r:?}");
            }
            assert!(!r["verdict"].is_empty(), "{r:?}");
        }
    }
    let decisions = section("decisions");
    for op in &ops {
        let item = format!("{op} wrong decisions");
        let r = decisions.iter().find(|r| r["item"] == item).unwrap_or_else(|| panic!("no {item}:\n{cmp:#?}"));
        assert!(r["none"].parse::<u64>().is_ok() && r[spec.as_str()].parse::<u64>().is_ok(), "{r:?}");
    }
    let wedges = decisions.iter().find(|r| r["item"] == "server wedges under load").expect("the wedges row");
    assert_eq!(wedges["none"], "0", "no agentsh, no wedge: {wedges:?}");
    // The table printed is the file's.
    assert!(all.contains("server wedges under load"), "{all}");
}

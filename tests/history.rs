//! `agentsh-bench history` as a nightly job calls it, on history.csv files written here as runs
//! append them (the file's columns are an interface: scripts and spreadsheets read it too).
//! Exit 0 when the newest run of each version is no worse than the one before, 1 when a change
//! is flagged (printed with both values), 3 for a missing file, an unknown version or a
//! malformed thresholds file. No containers.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, code, text};

/// scenarios/history.toml's ops, in its order (the header's latency columns).
const OPS: [&str; 7] = ["shim-allow", "api-allow", "ptrace-allow", "fuse-file", "seccomp-allow", "proxy-allow", "git"];

fn header() -> String {
    let mut h = String::from(
        "run_id,date,agentsh_version,provider,targets,ready,iterations,soak_s,interrupted,held,violated,flaky,\
         inconclusive,skipped,integrity_violated,wrong_decisions,wedges",
    );
    for op in OPS {
        h.push_str(&format!(",{op}_p50_ms,{op}_p99_ms"));
    }
    h.push_str(",server_rss_kb_max,server_fds_slope_per_hour,leaks,faults\n");
    h
}

/// One line: `violated` tests, git's p99 in ms, the faults cell.
fn line(run: &str, version: &str, violated: u32, git_p99: f64, faults: &str) -> String {
    let mut l = format!("{run},2026-12-01T02:00:00Z,{version},local,3,3,40,7200.0,false,80,{violated},1,3,3,0,0,0");
    for op in OPS {
        if op == "git" {
            l.push_str(&format!(",50.000,{git_p99:.3}"));
        } else {
            l.push_str(",10.000,30.000");
        }
    }
    l.push_str(&format!(",51200,0.100,0,{faults}\n"));
    l
}

fn history(file: &Path, extra: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN)
        .arg("history")
        .arg("--file")
        .arg(file)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running agentsh-bench");
    (code(&o), text(&o.stdout), text(&o.stderr))
}

#[test]
fn history_exits_0_when_clean_1_when_flagged_3_on_bad_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("history.csv");

    let (c, _, err) = history(&file, &[]);
    assert_eq!(c, 3, "a missing file is bad usage: {err}");
    assert!(err.contains("history.csv: no such file"), "{err}");

    // Two nightly runs of each version, the newest no worse (git's p99 1.5× is within 2×).
    std::fs::write(
        &file,
        header()
            + &line("r1", "0.16.9", 2, 100.0, "kill-server:held/2.1s")
            + &line("x1", "0.20.1", 5, 80.0, "")
            + &line("r2", "0.16.9", 2, 150.0, "kill-server:held/1.9s")
            + &line("x2", "0.20.1", 4, 80.0, ""),
    )
    .expect("writing history.csv");
    let (c, out, err) = history(&file, &[]);
    assert_eq!(c, 0, "{out}{err}");
    assert!(out.contains("agentsh 0.16.9: r2 against r1"), "{out}");
    assert!(out.contains("agentsh 0.20.1: x2 against x1"), "{out}");
    assert_eq!(out.matches("no change past a threshold").count(), 2, "{out}");
    let svg = std::fs::read_to_string(dir.path().join("history.svg")).expect("the chart beside history.csv");
    assert!(svg.contains("0.16.9 violated"), "the chart has a line per version");

    // A third 0.16.9 run: one more violated test, git's p99 2.5×, a fault that failed open.
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).expect("opening history.csv");
    std::io::Write::write_all(&mut f, line("r3", "0.16.9", 3, 375.0, "kill-server:violated/2.0s").as_bytes())
        .expect("appending");
    let (c, out, err) = history(&file, &[]);
    assert_eq!(c, 1, "{out}{err}");
    assert!(out.contains("agentsh 0.16.9: r3 against r2"), "{out}");
    assert!(out.contains("FLAGGED violated tests: 2 → 3"), "{out}");
    assert!(out.contains("FLAGGED git response p99 ms: 150.000 → 375.000 (ratio 2.50 > 2)"), "{out}");
    assert!(out.contains("FLAGGED fault kill-server: fail-closed: held → violated"), "{out}");
    let (c, out, _) = history(&file, &["--version", "v0.16.9"]);
    assert_eq!(c, 1, "v0.16.9 and 0.16.9 are one version: {out}");
    // The other version alone is still clean.
    let (c, out, _) = history(&file, &["--version", "0.20.1"]);
    assert_eq!(c, 0, "{out}");
    assert!(!out.contains("0.16.9"), "only the version asked for: {out}");

    let (c, _, err) = history(&file, &["--version", "9.9.9"]);
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("no run of agentsh 9.9.9") && err.contains("0.20.1"), "{err}");
}

#[test]
fn a_malformed_thresholds_file_is_bad_usage_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("scenarios folder");
    std::fs::write(scenarios.join("history.toml"), "ops = [\"git\"]\n\n[thresholds]\np99_ratio = 0.9\n")
        .expect("writing history.toml");
    let file = dir.path().join("history.csv");
    std::fs::write(&file, header() + &line("r1", "0.16.9", 0, 1.0, "")).expect("writing history.csv");
    let o = Command::new(BIN)
        .args(["history", "--file"])
        .arg(&file)
        .env("AGENTSH_BENCH_SCENARIOS", &scenarios)
        .stdin(Stdio::null())
        .output()
        .expect("running agentsh-bench");
    let err = text(&o.stderr);
    assert_eq!(code(&o), 3, "{err}");
    assert!(err.contains("history.toml:4: p99_ratio must be"), "{err}");
}

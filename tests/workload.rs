//! Workloads on real local targets (no agentsh: these check the measuring machinery itself).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn write_workload(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

/// The main job on one baseline target with a workload written from `body`; results in DIR/out.
fn run_inline_workload(name: &str, body: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let w = write_workload(dir.path(), name, body);
    let out = dir.path().join("out");
    let o = bench(&[
        "--vms",
        "1",
        "--agentsh",
        "none",
        "--iterations",
        "0",
        "--workload",
        w.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    (dir, o)
}

fn python() -> PathBuf {
    let cache = std::env::var_os("AGENTSH_BENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/agentsh-bench"));
    cache.join("venv/bin/python")
}

/// exec-mix on two targets: every op ran and was right, and the .hlog files open in an independent
/// HdrHistogram implementation (the Python package) with the same counts as latency.csv.
#[test]
fn exec_mix_measures_every_op_and_hlogs_open_elsewhere() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let o = bench(&[
        "--vms",
        "2",
        "--agentsh",
        "none",
        "--iterations",
        "0",
        "--workload",
        "exec-mix",
        "--duration",
        "4s",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", text(&o.stdout), text(&o.stderr));
    let rows = rows(&out.path().join("latency.csv"));
    assert_eq!(rows.len(), 12, "2 targets × 6 ops");
    for r in &rows {
        assert!(r["count"].parse::<u64>().unwrap() > 0, "{r:?}");
        assert_eq!((r["errors"].as_str(), r["wrong_decisions"].as_str()), ("0", "0"), "{r:?}");
        let p50: f64 = r["response_p50_ms"].parse().unwrap();
        let max: f64 = r["response_max_ms"].parse().unwrap();
        assert!(p50 > 0.0 && max >= p50, "{r:?}");
    }
    // ~100 ops/s for 4 s per target.
    let total: u64 = rows.iter().map(|r| r["count"].parse::<u64>().unwrap()).sum();
    assert!((700..=900).contains(&total), "{total} ops over 2 targets × 4 s × 100/s");

    let targets: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["target"].as_str()).collect();
    for t in &targets {
        for chart in ["percentiles", "over-time"] {
            let png = std::fs::read(out.path().join(format!("charts/exec-mix/{t}.{chart}.png"))).expect("chart png");
            assert_eq!(&png[..4], b"\x89PNG");
            let svg = std::fs::read_to_string(out.path().join(format!("charts/exec-mix/{t}.{chart}.svg")))
                .expect("chart svg");
            assert!(svg.lines().any(|l| l.trim() == "wide-tree"), "legend names the ops");
        }
    }
    for t in targets {
        let want: u64 = rows.iter().filter(|r| r["target"] == t).map(|r| r["count"].parse::<u64>().unwrap()).sum();
        for kind in ["response", "service"] {
            let hlog = out.path().join(format!("histograms/exec-mix/{t}.{kind}.hlog"));
            let script = "import sys\nfrom hdrh.log import HistogramLogReader\nfrom hdrh.histogram import HdrHistogram\n\
                          ref = HdrHistogram(1, 3600000000, 3)\nr = HistogramLogReader(sys.argv[1], ref)\nn = 0\n\
                          while True:\n    h = r.get_next_interval_histogram()\n    if h is None: break\n    n += h.get_total_count()\nprint(n)\n";
            let py = Command::new(python())
                .arg("-c")
                .arg(script)
                .arg(&hlog)
                .output()
                .expect("python venv (scripts/setup-host.sh)");
            assert!(py.status.success(), "hdrh could not read {}: {}", hlog.display(), text(&py.stderr));
            assert_eq!(text(&py.stdout).trim().parse::<u64>().unwrap(), want, "{}", hlog.display());
        }
    }
}

/// Response time counts from the intended start: when each op takes 100 ms but one is due every
/// 20 ms on a single worker, the queue grows and response time must grow with it while service time
/// stays ~100 ms (a closed-loop tool would report 100 ms throughout: coordinated omission).
#[test]
fn a_stall_shows_in_response_time_not_hidden() {
    let _g = serial();
    let (dir, o) = run_inline_workload(
        "stall",
        "name = \"stall\"\nduration = \"2s\"\n[load]\nrate = 50\nworkers = 1\n[[op]]\nname = \"sleep\"\nexec = [\"/bin/sleep\", \"0.1\"]\n",
    );
    let out = dir.path().join("out");
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let r = &rows(&out.join("latency.csv"))[0];
    let resp_max: f64 = r["response_max_ms"].parse().unwrap();
    let svc_p99: f64 = r["service_p99_ms"].parse().unwrap();
    let count: u64 = r["count"].parse().unwrap();
    let late: u64 = r["late_starts"].parse().unwrap();
    assert_eq!(count, 100, "every intended op runs, however late");
    assert!((100.0..200.0).contains(&svc_p99), "service time is the sleep: {svc_p99}");
    // The last op was due at ~2 s and started after 99 sleeps of 100 ms: ~8 s late.
    assert!(resp_max > 5000.0, "response time must include the queueing: {resp_max} ms");
    assert!(late >= 90, "almost every op started late: {late}");
}

/// An allowed op that fails is a wrong decision (exit 1); one that cannot run is an error by kind.
#[test]
fn wrong_decisions_and_errors_are_counted_apart() {
    let _g = serial();
    let (dir, o) = run_inline_workload(
        "bad",
        "name = \"bad\"\nduration = \"2s\"\n[load]\nrate = 20\nworkers = 2\n\
         [[op]]\nname = \"false\"\nexec = [\"/bin/false\"]\n\
         [[op]]\nname = \"missing\"\nexec = [\"/no/such/binary\"]\n\
         [[op]]\nname = \"echo\"\nexec = [\"/bin/echo\", \"hi\"]\nexpect = { exit = 0, stdout_contains = \"bye\" }\n",
    );
    let out = dir.path().join("out");
    assert_eq!(code(&o), 1, "wrong decisions must fail the run: {}", text(&o.stderr));
    let rows = rows(&out.join("latency.csv"));
    let by = |op: &str| rows.iter().find(|r| r["op"] == op).unwrap().clone();
    let f = by("false");
    assert!(f["wrong_decisions"].parse::<u64>().unwrap() > 0 && f["errors"] == "0", "{f:?}");
    let m = by("missing");
    assert!(m["errors"].parse::<u64>().unwrap() > 0 && m["wrong_decisions"] == "0", "{m:?}");
    assert!(m["error_kinds"].starts_with("spawn="), "{m:?}");
    let e = by("echo");
    assert_eq!(e["wrong_decisions"], e["count"], "{e:?}");
    let samples = std::fs::read_to_string(out.join("workload.json")).unwrap();
    assert!(samples.contains("stdout lacks \\\"bye\\\""), "{samples}");
}

/// A broken workload file is a usage error naming file and line, before any target exists.
#[test]
fn broken_workload_is_refused_before_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_workload(
        dir.path(),
        "broken",
        "name = \"x\"\nduration = \"1s\"\n[load]\nrate = 10\n[[op]]\nname = \"a\"\nweight = 0\nnoop = true\n",
    );
    let o = bench(&["--agentsh", "none", "--workload", w.to_str().unwrap()]);
    assert_eq!(code(&o), 3);
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{}:5: op \"a\": weight must be at least 1", w.display())), "{err}");
    assert!(!err.contains("run "), "nothing should have been provisioned: {err}");
    assert_eq!(code(&bench(&["--agentsh", "none", "--workload", "no-such-workload"])), 3);
}

/// Ctrl-C during a workload keeps what the drivers had sent: latency.csv and the hlogs are
/// written from the intervals received, workload.json says it was interrupted, no target is left.
#[test]
fn ctrl_c_during_a_workload_keeps_partial_results() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--vms",
            "1",
            "--agentsh",
            "none",
            "--iterations",
            "0",
            "--workload",
            "exec-mix",
            "--duration",
            "60s",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hist = out.path().join("histograms/exec-mix");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Wait until a few intervals have been written (6 ops per interval, after the 5 header lines).
    loop {
        let lines = std::fs::read_dir(&hist)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().lines().count())
            .unwrap_or(0);
        if lines > 5 + 6 * 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no intervals recorded");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("run.json")).unwrap()).unwrap();
    let run = run["run"].as_str().unwrap().to_string();
    let _cleanup = RunGuard(run.clone());
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let rows = rows(&out.path().join("latency.csv"));
    assert_eq!(rows.len(), 6);
    let total: u64 = rows.iter().map(|r| r["count"].parse::<u64>().unwrap()).sum();
    assert!(total >= 200, "the intervals received before Ctrl-C are kept: {total}");
    let w: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("workload.json")).unwrap()).unwrap();
    assert_eq!(w["interrupted"], true);
    assert_eq!(w["targets"][0]["partial"], true);
    assert!(containers_of(&run).is_empty(), "Ctrl-C left containers of {run}");
}

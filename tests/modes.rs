//! `--mode` on one real hardened target: modes applied in turn after provisioning, one of them an
//! overlay agentsh refuses (skipped with agentsh's own error, never faked), results per mode kept
//! apart, the overhead table written. Built agentsh: v0.16.9 (cached after the first build), or
//! `AGENTSH_BENCH_TEST_AGENTSH=SPEC`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// What agentsh's server refuses at start-up (internal/config SandboxConfig.Validate, v0.16.9
/// and v0.20.1): ptrace with seccomp's execve trap.
const REFUSED: &str = "# Mode `shim`: spoilt by tests/modes.rs, an overlay agentsh refuses to start with.\n\
sandbox:\n  ptrace:\n    enabled: true\n  seccomp:\n    execve:\n      enabled: true\n";

/// The default workload's ops that must be denied: with layers off they may get through.
const DENIED: &[&str] = &["shim-deny", "api-deny", "ptrace-deny", "seccomp-deny", "proxy-deny"];

#[test]
fn modes_run_in_turn_a_refused_one_is_skipped_with_agentshs_error() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    assert!(Command::new("cp").arg("-r").arg(&src).arg(&assets).status().unwrap().success());
    std::fs::write(assets.join("modes/shim.yaml"), REFUSED).unwrap();
    let out = dir.path().join("out");
    let spec = std::env::var("AGENTSH_BENCH_TEST_AGENTSH").unwrap_or_else(|_| "v0.16.9".into());
    let o = Command::new(BIN)
        .args(["--vms", "1", "--agentsh", &spec, "--iterations", "0", "--mode", "baseline,shim,full"])
        .args(["--duration", "2s", "--out", out.to_str().unwrap()])
        .env("AGENTSH_BENCH_ASSETS", &assets)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    let all = format!("{stdout}\n{stderr}");
    // The progress board's first line, on stderr without a terminal: "run TAG: …".
    let run = stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(':').next()))
        .unwrap_or_else(|| panic!("no run tag in:\n{all}"))
        .to_string();
    let _guard = RunGuard(run.clone());

    // The refused mode: skipped, with agentsh's own reason, printed and in workload.json.
    assert!(stderr.contains("mode shim skipped on") && stderr.contains("mutually exclusive"), "{all}");
    let w: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("workload.json")).unwrap()).unwrap();
    let modes = w["modes"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = modes
        .iter()
        .map(|m| (m["mode"].as_str().unwrap(), m["status"].as_str().unwrap(), m["workload"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("baseline", "ran", "default@baseline"), ("shim", "skipped", "default@shim"), ("full", "ran", "default")],
        "{all}"
    );
    let refused = modes[1]["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 1);
    assert!(refused.values().next().unwrap().as_str().unwrap().contains("mutually exclusive"), "{refused:?}");
    assert!(
        modes[0]["applied_s"].as_object().unwrap().len() == 1 && modes[0]["refused"].as_object().unwrap().is_empty()
    );
    // The next mode's restart brought a server back: full ran after the refused one.
    let target_modes: Vec<&str> =
        w["targets"].as_array().unwrap().iter().map(|t| t["mode"].as_str().unwrap()).collect();
    assert_eq!(target_modes, ["baseline", "full"]);

    // latency.csv: every op in each mode that ran, labelled with it; nothing for the refused one.
    let latency = rows(&out.join("latency.csv"));
    let ops = 13;
    for mode in ["baseline", "full"] {
        let these: Vec<_> = latency.iter().filter(|r| r["mode"] == mode).collect();
        assert_eq!(these.len(), ops, "{mode}: {latency:?}");
        assert!(these.iter().map(|r| r["count"].parse::<u64>().unwrap()).sum::<u64>() > 0, "{mode}");
    }
    assert_eq!(latency.len(), 2 * ops);
    // Results apart per mode; the hlog comment names the mode.
    let hist = out.join("histograms");
    assert!(!hist.join("default@shim").exists());
    for (key, mode) in [("default@baseline", "baseline"), ("default", "full")] {
        let hlog = std::fs::read_dir(hist.join(key)).unwrap().next().unwrap().unwrap().path();
        let head = String::from_utf8_lossy(&std::fs::read(&hlog).unwrap()[..200]).into_owned();
        assert!(head.contains(&format!("mode={mode} workload={key}")), "{head}");
        assert!(out.join("charts").join(key).is_dir(), "charts for {key}");
    }
    // The overhead table over the modes that ran.
    assert!(stdout.contains("overhead per layer") && stdout.contains("baseline") && stdout.contains("×"), "{all}");
    let overhead = rows(&out.join("overhead.csv"));
    assert_eq!(overhead.len(), 2 * ops);
    let full_ratio = overhead.iter().find(|r| r["op"] == "api-allow" && r["mode"] == "full").unwrap();
    assert!(full_ratio["p50_vs_baseline"].parse::<f64>().unwrap() > 0.0, "{full_ratio:?}");

    // Exit: 2 for the refused mode, unless a wrong decision counts (1): in full any, in baseline
    // only an allowed op refused (a denied op getting through is what baseline removed).
    let counted = latency
        .iter()
        .any(|r| r["wrong_decisions"] != "0" && (r["mode"] == "full" || !DENIED.contains(&r["op"].as_str())));
    assert_eq!(code(&o), if counted { 1 } else { 2 }, "{all}");
    assert!(containers_of(&run).is_empty(), "the run's targets are gone");
}

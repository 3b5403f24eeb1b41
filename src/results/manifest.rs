//! The JSON manifests of a run: `run.json`, `suite.json`, `workload.json`. Typed both ways, so
//! what is written and what is read back (tests, a later `compare`) is one definition; `.ci/run`
//! reads `run.json`'s `targets[].status`, `agentsh_version`, `findings` and `suite.json`'s `tests`
//! and `iterations` with Python, so those names are an interface.
//!
//! Written through [`super::RunDir::write_json`], which sorts object keys: the manifests used to
//! be built with `serde_json::json!`, whose objects (serde_json without `preserve_order`) are
//! sorted maps, and sorting keeps the files byte for byte what they were.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::agentsh::Artifact;
use crate::provision::Outcome;
use crate::schema::{Finished, Plan};

/// `run.json`: what was provisioned, from what, and how each target ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub run: String,
    pub harness_version: String,
    pub provider: crate::provider::ProviderKind,
    pub vms: u32,
    /// `--agentsh` as given.
    pub agentsh_spec: String,
    /// None with `--agentsh none`.
    pub artifact: Option<Artifact>,
    pub config_source: PathBuf,
    pub policy_source: PathBuf,
    pub seconds: RunSeconds,
    pub targets: Vec<RunTarget>,
}

/// Wall time of the stages before the targets are used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSeconds {
    pub artifact: f64,
    pub prepare: f64,
    pub create_and_provision: f64,
}

/// One target of `run.json`, by how provisioning ended (`"status": "ready"` or `"failed"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RunTarget {
    Ready {
        name: String,
        /// Read back from the target; null with `--agentsh none`.
        agentsh_version: Option<String>,
        seconds: f64,
        /// (step, seconds) in the order they ran.
        steps: Vec<(String, f64)>,
        findings: Vec<Finding>,
        /// How to reach the target by hand (`control::SshDest::hint`).
        ssh: String,
    },
    Failed {
        name: String,
        step: String,
        error: String,
        findings: Vec<Finding>,
    },
}

/// `provision::Finding` as recorded: a manifest of its own so that reading a run back does not
/// depend on the provisioning types.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: String,
    pub detail: String,
}

impl From<&crate::provision::Finding> for Finding {
    fn from(f: &crate::provision::Finding) -> Finding {
        Finding { kind: f.kind.clone(), detail: f.detail.clone() }
    }
}

impl From<&Outcome> for RunTarget {
    fn from(o: &Outcome) -> RunTarget {
        match o {
            Ok(r) => RunTarget::Ready {
                name: r.target.name.clone(),
                agentsh_version: r.agentsh_version.clone(),
                seconds: r.seconds,
                steps: r.steps.clone(),
                findings: r.findings.iter().map(Finding::from).collect(),
                ssh: r.target.ssh.hint(),
            },
            Err(f) => RunTarget::Failed {
                name: f.name.clone(),
                step: f.step.clone(),
                error: f.error.clone(),
                findings: f.findings.iter().map(Finding::from).collect(),
            },
        }
    }
}

/// `suite.json`: what replaying the suite needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suite {
    /// Tests in the suite (`tests.csv` has tests × iterations × targets rows, plus one integrity
    /// row per target).
    pub tests: usize,
    pub iterations: u32,
    /// `--shuffle SEED`, null when the order was the file order.
    pub shuffle: Option<u64>,
    /// Tests not applicable on this provider, with why (`scenarios/environment.toml`).
    pub environment_gaps: BTreeMap<String, String>,
}

/// `workload.json`: the plan as run and what each target's driver reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub plan: Plan,
    /// Stopped by Ctrl-C: the figures cover the intervals received until then.
    pub interrupted: bool,
    /// One entry per target and mode that ran, in the order they ran.
    pub targets: Vec<WorkloadTarget>,
    /// Each `--mode` asked for, in order, with how applying it went (one `full` entry for a run
    /// without `--mode`); a mode is never left out: one agentsh refused is listed with its error.
    #[serde(default)]
    pub modes: Vec<ModeRun>,
}

/// One mode of the workload (`provision::modes`): where its results are, and whether agentsh
/// took its config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModeRun {
    pub mode: String,
    /// Its folder under histograms/ and charts/ ([`super::workload_key`]).
    pub workload: String,
    /// `ran` (on at least one target) or `skipped` (on none: refused everywhere, or every
    /// target's config could not be written).
    pub status: String,
    /// Seconds each target took to take the mode's config (write it, restart the server, /health
    /// answering); empty when the targets were already in it (`full` run alone).
    pub applied_s: BTreeMap<String, f64>,
    /// Targets that did not run the mode, with why: agentsh's own error from server.log when it
    /// would not start with the config.
    pub refused: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadTarget {
    pub target: String,
    /// The mode the target's agentsh was in (`none` without agentsh); absent before `--mode`.
    #[serde(default)]
    pub mode: String,
    pub partial: bool,
    pub driver_rss_kb_first_minute: u64,
    pub driver_rss_kb_last_minute: u64,
    pub finished: Finished,
    /// Times the agentsh server wedged under this load and was brought back (docs/findings.md 1).
    #[serde(default)]
    pub wedges: Vec<Wedge>,
}

/// One wedge of the agentsh server during a workload, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Wedge {
    /// Seconds after the workload started on this target.
    pub at_s: f64,
    /// From detection to a server answering again (or to the failed attempt).
    pub recovery_s: f64,
    pub why: String,
    /// What the recovery did, or why it failed.
    pub outcome: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Plan {
        crate::workload::load("exec-mix").unwrap()
    }

    /// What `commands::provision` built with `json!` before these types existed, for one ready and
    /// one failed target: the typed manifest writes the same bytes.
    #[test]
    fn run_json_is_what_json_macro_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let d = super::super::RunDir::at(dir.path());
        let artifact =
            Some(Artifact { deb: "/c/agentsh_0.20.1.deb".into(), version: "0.20.1".into(), source: "release".into() });
        let findings = vec![Finding { kind: "retry".into(), detail: "step x".into() }];
        let typed = Run {
            run: "r1".into(),
            harness_version: "0.1.0".into(),
            provider: crate::provider::ProviderKind::Local,
            vms: 2,
            agentsh_spec: "0.20.1".into(),
            artifact: artifact.clone(),
            config_source: "a/config.yaml".into(),
            policy_source: "a/policies/default.yaml".into(),
            seconds: RunSeconds { artifact: 1.5, prepare: 0.25, create_and_provision: 30.125 },
            targets: vec![
                RunTarget::Ready {
                    name: "t-0".into(),
                    agentsh_version: None,
                    seconds: 12.5,
                    steps: vec![("create".into(), 1.0), ("install".into(), 2.5)],
                    findings: findings.clone(),
                    ssh: "ssh -F x t-0".into(),
                },
                RunTarget::Failed {
                    name: "t-1".into(),
                    step: "install".into(),
                    error: "boom".into(),
                    findings: Vec::new(),
                },
            ],
        };
        let steps: Vec<(String, f64)> = vec![("create".into(), 1.0), ("install".into(), 2.5)];
        let none: Option<String> = None;
        let old = json!({
            "run": "r1",
            "harness_version": "0.1.0",
            "provider": "local",
            "vms": 2u32,
            "agentsh_spec": "0.20.1",
            "artifact": artifact,
            "config_source": PathBuf::from("a/config.yaml"),
            "policy_source": PathBuf::from("a/policies/default.yaml"),
            "seconds": { "artifact": 1.5, "prepare": 0.25, "create_and_provision": 30.125 },
            "targets": [
                {"name": "t-0", "status": "ready", "agentsh_version": none, "seconds": 12.5, "steps": steps, "findings": [{"kind": "retry", "detail": "step x"}], "ssh": "ssh -F x t-0"},
                {"name": "t-1", "status": "failed", "step": "install", "error": "boom", "findings": []},
            ],
        });
        d.write_json(&d.run_json(), &typed).unwrap();
        let written = std::fs::read(d.run_json()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&serde_json::to_vec_pretty(&old).unwrap())
        );
        let back: Run = serde_json::from_slice(&written).unwrap();
        assert!(
            matches!(&back.targets[0], RunTarget::Ready { agentsh_version: None, findings, .. } if findings.len() == 1)
        );
        assert!(matches!(&back.targets[1], RunTarget::Failed { step, .. } if step == "install"));
    }

    #[test]
    fn suite_and_workload_json_are_what_json_macro_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let d = super::super::RunDir::at(dir.path());
        let gaps: BTreeMap<String, String> = [("48".to_string(), "no /dev/fuse".to_string())].into();
        let suite = Suite { tests: 90, iterations: 3, shuffle: Some(7), environment_gaps: gaps.clone() };
        d.write_json(&d.suite_json(), &suite).unwrap();
        let old = json!({"tests": 90usize, "iterations": 3u32, "shuffle": Some(7u64), "environment_gaps": gaps});
        assert_eq!(std::fs::read(d.suite_json()).unwrap(), serde_json::to_vec_pretty(&old).unwrap());
        let back: Suite = serde_json::from_slice(&std::fs::read(d.suite_json()).unwrap()).unwrap();
        assert_eq!((back.tests, back.iterations, back.shuffle), (90, 3, Some(7)));

        let finished = Finished {
            completed: 10,
            measured_ms: 1000,
            rss_kb_first: 5,
            rss_kb_last: 6,
            samples: [("echo".to_string(), vec!["wrong: x".to_string()])].into(),
        };
        let w = Workload {
            plan: plan(),
            interrupted: true,
            targets: vec![WorkloadTarget {
                target: "t-0".into(),
                mode: "ptrace".into(),
                partial: true,
                driver_rss_kb_first_minute: 5,
                driver_rss_kb_last_minute: 6,
                finished: finished.clone(),
                wedges: vec![Wedge { at_s: 10.0, recovery_s: 1.2, why: "health".into(), outcome: "recovered".into() }],
            }],
            modes: vec![ModeRun {
                mode: "ptrace".into(),
                workload: "exec-mix@ptrace".into(),
                status: "ran".into(),
                applied_s: [("t-0".to_string(), 2.5)].into(),
                refused: [("t-1".to_string(), "mutually exclusive".to_string())].into(),
            }],
        };
        d.write_json(&d.workload_json(), &w).unwrap();
        let per_target = vec![json!({
            "target": "t-0",
            "mode": "ptrace",
            "partial": true,
            "driver_rss_kb_first_minute": 5u64,
            "driver_rss_kb_last_minute": 6u64,
            "finished": finished,
            "wedges": [{"at_s": 10.0, "recovery_s": 1.2, "why": "health", "outcome": "recovered"}],
        })];
        let modes = json!([{"mode": "ptrace", "workload": "exec-mix@ptrace", "status": "ran",
            "applied_s": {"t-0": 2.5}, "refused": {"t-1": "mutually exclusive"}}]);
        let now = json!({"plan": plan(), "interrupted": true, "targets": per_target, "modes": modes});
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(d.workload_json()).unwrap()),
            String::from_utf8_lossy(&serde_json::to_vec_pretty(&now).unwrap())
        );
        let back: Workload = serde_json::from_slice(&std::fs::read(d.workload_json()).unwrap()).unwrap();
        assert!(back.interrupted && back.targets[0].partial);
        assert_eq!(back.modes, w.modes);
        // A workload.json from before --mode (no mode, no modes) still reads.
        let mut before = now.clone();
        before.as_object_mut().unwrap().remove("modes");
        before["targets"][0].as_object_mut().unwrap().remove("mode");
        let back: Workload = serde_json::from_value(before).unwrap();
        assert!(back.modes.is_empty() && back.targets[0].mode.is_empty());
    }
}

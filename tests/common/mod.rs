//! Helpers shared by the integration tests: they drive the real binary against real containers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentsh-bench");

/// Provisioning tests share a 2-core machine: one at a time keeps them from starving each other.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn bench(args: &[&str]) -> Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("running agentsh-bench")
}

/// A CSV file's rows as column → value maps (the header names the columns).
pub fn rows(csv_path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(csv_path).unwrap_or_else(|e| panic!("{}: {e}", csv_path.display()));
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| h.iter().zip(rec.unwrap().iter()).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `ssh -F config alias cmd` exactly as a person would type it; returns (exit, stdout, stderr).
pub fn ssh(config: &Path, alias: &str, cmd: &str) -> (i32, String, String) {
    let o = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .arg(alias)
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("running ssh");
    (code(&o), text(&o.stdout), text(&o.stderr))
}

/// The containers of a run that the engine still knows, running or not.
pub fn containers_of(run: &str) -> Vec<String> {
    let o = Command::new("podman")
        .args(["ps", "-a", "--filter", &format!("label=agentsh-bench.run={run}"), "--format", "{{.Names}}"])
        .output()
        .expect("running podman");
    assert!(o.status.success(), "podman ps failed: {}", text(&o.stderr));
    text(&o.stdout).lines().map(String::from).collect()
}

/// Targets printed by `up`: lines `<name>\tssh -F <config> <alias>`; and the run tag.
pub struct Up {
    pub run: String,
    pub targets: Vec<(String, PathBuf)>,
}

pub fn parse_up(stdout: &str) -> Up {
    let mut targets = Vec::new();
    let mut run = None;
    for line in stdout.lines() {
        if let Some((name, hint)) = line.split_once('\t') {
            let config = hint.split_whitespace().nth(2).expect("ssh -F CONFIG ALIAS");
            targets.push((name.to_string(), PathBuf::from(config)));
        } else if let Some(rest) = line.strip_prefix("run ") {
            run = rest.split(':').next().map(String::from);
        }
    }
    Up { run: run.unwrap_or_else(|| panic!("no run tag in:\n{stdout}")), targets }
}

pub fn sha256(path: &str) -> String {
    let o = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    text(&o.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Destroys a run's targets when a test ends, passed or not, so a failed assertion leaves no
/// container behind.
pub struct RunGuard(pub String);

impl Drop for RunGuard {
    fn drop(&mut self) {
        let _ = bench(&["down", "--run", &self.0]);
    }
}

/// A copy of the repository's scenarios/ to spoil in a test; run the binary with
/// `AGENTSH_BENCH_SCENARIOS` set to the returned path.
pub fn scenarios_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let status = Command::new("cp").arg("-r").arg(&src).arg(dir.path()).status().unwrap();
    assert!(status.success());
    let copy = dir.path().join("scenarios");
    (dir, copy)
}

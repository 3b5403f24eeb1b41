//! The modules form floors, each importing only from the floors below it: no import loops, and
//! nothing reaches back up the pipeline (a provider never imports the command line, the suite
//! never imports the job that runs it). The floors read as the pipeline does: foundations, the
//! system under test and the targets, provisioning, the suite and the workloads, the results and
//! what reads them, then the command line, the job and the dispatcher.
//!
//! This reads the sources rather than compiling anything: it is about the shape of the code.
//! Test modules (`mod tests` to the end of a file) may import anything.

use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first. A module may import itself and any module listed before it.
const FLOORS: &[&str] = &[
    // foundations: no knowledge of agentsh or targets
    "exit",
    "paths",
    "text",
    "procstat",
    "progress",
    "schema",
    "control",
    "target",
    // what a fault is and which targets one is on (the results and the watchdogs name them)
    "fault",
    // the system under test, where targets come from, the on-target driver
    "agentsh",
    "provider",
    "driver",
    // hardening a target, and keeping agentsh alive on it
    "watchdog",
    "provision",
    // the run directory: every stage writes it, every reader reads it
    "results",
    // what runs on a hardened target
    "suite",
    "workload",
    // faults injected into running targets, judged fail-closed
    "nemesis",
    // reading and presenting results
    "analyze",
    "report",
    // agentsh's resources sampled on the targets over a soak
    "trends",
    // the command line, turned into a configuration, run as a job
    "cli",
    "config",
    "job",
    "bench",
    "commands",
    "main",
];

/// `src/a/b.rs` → `a`, `src/x.rs` → `x`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` in a file's non-test, non-comment code, with the line it is on.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("mod tests") || code.starts_with("pub mod tests") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_goes_down_the_floors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let floor: BTreeMap<&str, usize> = FLOORS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(&mine) = floor.get(module.as_str()) else {
            wrong.push(format!("{}: module `{module}` has no floor in tests/layers.rs", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for (line, name) in imports(&text) {
            match floor.get(name.as_str()) {
                Some(&theirs) if theirs <= mine => {}
                Some(_) => {
                    wrong.push(format!("{}:{line}: `{module}` imports `{name}`, a floor above it", file.display()))
                }
                None => wrong.push(format!("{}:{line}: `crate::{name}` is not a module with a floor", file.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run up the floors:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_import_that_runs_up() {
    // The scanner itself: an upward import in code is found, one in a comment or a test is not.
    let text = "use crate::job::Stop;\n// crate::commands in a comment\nmod tests {\n    use crate::main;\n}\n";
    assert_eq!(imports(text), [(1, "job".to_string())]);
}

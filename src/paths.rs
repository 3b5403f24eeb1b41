//! Where the harness keeps things: heavy artifacts in ~/.cache/agentsh-bench (keyed by version or
//! recipe hash, never in git), repository data (assets/, scenarios/) next to the binary's sources.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `$AGENTSH_BENCH_CACHE`, else `$XDG_CACHE_HOME/agentsh-bench`, else `~/.cache/agentsh-bench`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTSH_BENCH_CACHE") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(p).join("agentsh-bench"));
    }
    let home = std::env::var_os("HOME").context("neither AGENTSH_BENCH_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("agentsh-bench"))
}

/// The repository's `assets/` folder: `$AGENTSH_BENCH_ASSETS`, else `./assets`, else the one this
/// binary was built from (so `cargo run` from anywhere in the checkout finds it).
pub fn assets_dir() -> PathBuf {
    repo_dir("AGENTSH_BENCH_ASSETS", "assets")
}

/// The repository's `scenarios/` folder, found the same way (`$AGENTSH_BENCH_SCENARIOS`).
pub fn scenarios_dir() -> PathBuf {
    repo_dir("AGENTSH_BENCH_SCENARIOS", "scenarios")
}

fn repo_dir(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let here = PathBuf::from(name);
    if here.is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Short runtime directory for SSH control sockets: a unix socket path must stay under 108 bytes.
pub fn runtime_dir() -> PathBuf {
    std::env::var_os("AGENTSH_BENCH_RUNTIME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/abench"))
}

//! The local target image: a Debian bookworm rootfs made by mmdebstrap from this machine's own apt
//! sources, imported into the engine. Built once and cached by a hash of its recipe, so changing the
//! package list makes a new image instead of silently reusing an old one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::provider::Engine;
use crate::target::PACKAGES;

const SUITE: &str = "bookworm";
/// Bump when the build steps change in a way the package list does not show.
const RECIPE_VERSION: u32 = 1;

pub fn recipe_hash() -> String {
    let mut h = Sha256::new();
    h.update(format!("v{RECIPE_VERSION} {SUITE} minbase {}", PACKAGES.join(",")));
    hex::encode(h.finalize())[..12].to_string()
}

pub fn image_tag() -> String {
    format!("localhost/abench-target:{}", recipe_hash())
}

pub fn exists(engine: Engine, tag: &str) -> Result<bool> {
    let out = Command::new(engine.program())
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .with_context(|| engine_missing(engine))?;
    Ok(out.status.success())
}

pub fn engine_missing(engine: Engine) -> String {
    match engine {
        Engine::Podman => {
            "cannot run `podman`: install it with `apt-get install podman runc` (or run scripts/setup-host.sh)".into()
        }
        Engine::Docker => {
            "cannot run `docker`: install the docker engine (Debian package docker.io) and start it".into()
        }
    }
}

/// Makes sure the image exists; builds it when missing or when `rebuild` is set.
pub fn ensure(engine: Engine, rebuild: bool) -> Result<String> {
    let tag = image_tag();
    if !rebuild && exists(engine, &tag)? {
        return Ok(tag);
    }
    let tarball = rootfs_tarball(rebuild)?;
    let started = Instant::now();
    let out = Command::new(engine.program())
        .arg("import")
        .arg(&tarball)
        .arg(&tag)
        .output()
        .with_context(|| engine_missing(engine))?;
    if !out.status.success() {
        bail!(
            "{} import {} failed: {}",
            engine.program(),
            tarball.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    tracing::info!(tag, secs = started.elapsed().as_secs_f64(), "image imported");
    eprintln!("image: imported {tag} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(tag)
}

/// The rootfs tarball, cached under ~/.cache/agentsh-bench/image/<hash>/.
fn rootfs_tarball(rebuild: bool) -> Result<PathBuf> {
    let dir = crate::paths::cache_dir()?.join("image").join(recipe_hash());
    let tarball = dir.join("rootfs.tar");
    if tarball.exists() && !rebuild {
        return Ok(tarball);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sources = apt_sources()?;
    let partial = dir.join("rootfs.tar.partial");
    eprintln!("image: building a {SUITE} rootfs with mmdebstrap (one time, ~1 min)…");
    let started = Instant::now();
    let out = Command::new("mmdebstrap")
        .args(["--variant=minbase", "--quiet"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg("--format=tar")
        .arg(SUITE)
        .arg(&partial)
        .arg(&sources)
        .output()
        .context(
            "cannot run `mmdebstrap`: install it with `apt-get install mmdebstrap` (or run scripts/setup-host.sh)",
        )?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("mmdebstrap failed (sources {}): {}", sources.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::rename(&partial, &tarball).with_context(|| format!("moving rootfs into {}", tarball.display()))?;
    eprintln!("image: rootfs built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(tarball)
}

/// This machine's own apt sources for the suite (mmdebstrap reads a sources file given as its
/// mirror argument), so the image comes from the same registry the machine already reaches.
fn apt_sources() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AGENTSH_BENCH_APT_SOURCES") {
        return Ok(PathBuf::from(p));
    }
    let candidates = [Path::new("/etc/apt/sources.list.d/debian.sources"), Path::new("/etc/apt/sources.list")];
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(c)
            && text.contains(SUITE)
        {
            return Ok(c.to_path_buf());
        }
    }
    bail!("no apt sources for {SUITE} found in /etc/apt (set AGENTSH_BENCH_APT_SOURCES to a sources file)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_follows_recipe() {
        assert!(image_tag().starts_with("localhost/abench-target:"));
        assert_eq!(recipe_hash().len(), 12);
        assert_eq!(recipe_hash(), recipe_hash());
    }
}

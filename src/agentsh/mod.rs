//! Obtaining the system under test. Every source ends as a `.deb` with the release layout, so
//! installation on a target is the same `dpkg -i` whatever the artifact came from.
//!
//! `--agentsh` takes `vX.Y.Z` (cache → release .deb → source snapshot build → build from the Go
//! module proxy), `src:PATH` (a source checkout or snapshot tarball, built like the release), a
//! path to a `.deb`, `dir:PATH` holding dev-build binaries, or `none` (targets without agentsh:
//! the baseline).

mod build;
mod goreleaser;
mod package;
mod source;

use std::path::PathBuf;

use anyhow::{Context, Result};

pub const DEFAULT_VERSION: &str = "v0.16.9";
pub const MODULE: &str = "github.com/agentsh/agentsh";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A release version, without the leading `v` ("0.16.9").
    Version(String),
    Deb(PathBuf),
    Dir(PathBuf),
    /// A source checkout directory or a `git archive` snapshot (.tar.gz) to build.
    Src(PathBuf),
    None,
}

/// The artifact to install, with where it came from (for the run manifest).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Artifact {
    pub deb: PathBuf,
    /// The version the artifact claims; the installed version is read back from the target.
    pub version: String,
    pub source: String,
}

impl Spec {
    pub fn parse(s: &str) -> Result<Spec> {
        let s = s.trim();
        if s == "none" {
            return Ok(Spec::None);
        }
        if let Some(dir) = s.strip_prefix("dir:") {
            let p = PathBuf::from(dir);
            if !p.is_dir() {
                return Err(crate::exit::usage(format!("--agentsh dir:{dir}: no such directory")));
            }
            return Ok(Spec::Dir(p));
        }
        if let Some(path) = s.strip_prefix("src:") {
            let p = PathBuf::from(path);
            if !(p.is_dir() || (p.is_file() && (path.ends_with(".tar.gz") || path.ends_with(".tgz")))) {
                return Err(crate::exit::usage(format!(
                    "--agentsh src:{path}: no such source directory or .tar.gz snapshot"
                )));
            }
            // A directory must look like agentsh's tree before anything is copied or built (a
            // tarball is checked when it is unpacked: reading it here would cost seconds).
            if p.is_dir() && !(p.join(".goreleaser.yml").is_file() && p.join("cmd/agentsh").is_dir()) {
                return Err(crate::exit::usage(format!(
                    "--agentsh src:{path}: not an agentsh source tree (no .goreleaser.yml and cmd/agentsh/)"
                )));
            }
            return Ok(Spec::Src(p));
        }
        if s.ends_with(".deb") {
            let p = PathBuf::from(s);
            if !p.is_file() {
                return Err(crate::exit::usage(format!("--agentsh {s}: no such file")));
            }
            return Ok(Spec::Deb(p));
        }
        if let Some(v) = s.strip_prefix('v')
            && is_semver(v)
        {
            return Ok(Spec::Version(v.to_string()));
        }
        Err(crate::exit::usage(format!(
            "--agentsh {s:?}: expected vX.Y.Z (e.g. {DEFAULT_VERSION}), a path to a .deb, dir:PATH, src:PATH, or none"
        )))
    }
}

/// The spec as a user would type it again (run.json keeps it; `Spec::parse` reads it back).
impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Version(v) => write!(f, "v{v}"),
            Spec::Deb(p) => write!(f, "{}", p.display()),
            Spec::Dir(p) => write!(f, "dir:{}", p.display()),
            Spec::Src(p) => write!(f, "src:{}", p.display()),
            Spec::None => f.write_str("none"),
        }
    }
}

/// `1.2.3` with an optional `-pre` suffix of safe characters.
fn is_semver(v: &str) -> bool {
    let (core, pre) = v.split_once('-').unwrap_or((v, ""));
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// Host architecture in Debian's words; targets share it (containers) or are asked for it (exe).
pub fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

pub fn cache_dir_for(version: &str) -> Result<PathBuf> {
    Ok(crate::paths::cache_dir()?.join("agentsh").join(format!("v{version}")))
}

pub fn deb_name(version: &str) -> String {
    format!("agentsh_{version}_linux_{}.deb", deb_arch())
}

/// Resolves a spec to a .deb on this machine; `None` for `--agentsh none`. Blocking work (downloads,
/// builds): call from `spawn_blocking`.
pub fn resolve(spec: &Spec) -> Result<Option<Artifact>> {
    match spec {
        Spec::None => Ok(None),
        Spec::Deb(p) => {
            let version = package::deb_version(p)?;
            Ok(Some(Artifact { deb: p.clone(), version, source: format!("local .deb {}", p.display()) }))
        }
        Spec::Dir(d) => {
            let version = package::binary_version(&d.join("agentsh")).unwrap_or_else(|| "0.0.0+dev".to_string());
            // Packed once per content of the folder and cached: repacking cost ~9 s a run and
            // left an 18 MB .deb in the temp directory each time.
            let out = crate::paths::cache_dir()?.join("agentsh").join("dev").join(source::dir_digest(d)?);
            let cached = out.join(deb_name(&version));
            let deb = if cached.is_file() {
                cached
            } else {
                package::build_deb(&package::Layout::from_flat_dir(d)?, &version, &out)?
            };
            Ok(Some(Artifact { deb, version, source: format!("dev build {}", d.display()) }))
        }
        Spec::Src(p) => source::resolve(p).map(Some),
        Spec::Version(v) => resolve_version(v).map(Some),
    }
}

/// Cache → release .deb → source snapshot build → Go module proxy build. When all fail, one error
/// lists every try.
fn resolve_version(version: &str) -> Result<Artifact> {
    let dir = cache_dir_for(version)?;
    let cached = dir.join(deb_name(version));
    if cached.is_file() {
        return Ok(Artifact { deb: cached, version: version.to_string(), source: "cache".into() });
    }
    // A snapshot's earlier build counts as cache: found by digest without starting a process, so
    // a repeated run does not wait for the release host to fail first.
    let snapshot = source::find_snapshot(version).and_then(|p| source::Source::inspect(&p));
    if let Ok(src) = &snapshot
        && let Some(a) = source::cached(src)?
    {
        return Ok(a);
    }
    let mut tried = Vec::new();
    let also = if snapshot.is_ok() { " (nor a build of its source snapshot)" } else { "" };
    tried.push(format!("cache: {} not present{also}", cached.display()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    match build::download_release(version, &cached) {
        Ok(()) => {
            return Ok(Artifact { deb: cached, version: version.to_string(), source: "release .deb".into() });
        }
        Err(e) => tried.push(format!("release .deb: {e:#}")),
    }
    match snapshot.and_then(|src| source::built(&src)) {
        Ok(a) => return Ok(a),
        Err(e) => tried.push(format!("source snapshot: {e:#}")),
    }
    match build::from_module_proxy(version, &dir) {
        Ok(bin_dir) => {
            let layout = package::Layout::from_flat_dir(&bin_dir)?;
            let deb = package::build_deb(&layout, version, &dir)
                .with_context(|| format!("packaging the build in {}", bin_dir.display()))?;
            return Ok(Artifact { deb, version: version.to_string(), source: "Go module proxy build".into() });
        }
        Err(e) => tried.push(format!("Go module proxy build: {e:#}")),
    }
    let list: String = tried.iter().enumerate().map(|(i, t)| format!("\n  {}. {t}", i + 1)).collect();
    anyhow::bail!("cannot obtain agentsh v{version}; tried:{list}")
}

/// Reads the version `agentsh --version` prints (`agentsh 0.16.9+abc123` → `0.16.9`).
pub fn parse_version_output(out: &str) -> Option<String> {
    let word = out.split_whitespace().skip_while(|w| *w != "agentsh").nth(1)?;
    let v = word.trim_start_matches('v');
    let v = v.split('+').next()?;
    is_semver(v).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(Spec::parse("v0.16.9").unwrap(), Spec::Version("0.16.9".into()));
        assert_eq!(Spec::parse("v0.20.5").unwrap(), Spec::Version("0.20.5".into()));
        assert_eq!(Spec::parse("none").unwrap(), Spec::None);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Spec::parse(&format!("dir:{}", d.path().display())).unwrap(), Spec::Dir(d.path().into()));
        std::fs::create_dir_all(d.path().join("cmd/agentsh")).unwrap();
        std::fs::write(d.path().join(".goreleaser.yml"), b"version: 2\n").unwrap();
        assert_eq!(Spec::parse(&format!("src:{}", d.path().display())).unwrap(), Spec::Src(d.path().into()));
        let tar = d.path().join("agentsh-v0.16.9.tar.gz");
        std::fs::write(&tar, b"").unwrap();
        assert_eq!(Spec::parse(&format!("src:{}", tar.display())).unwrap(), Spec::Src(tar));
    }

    #[test]
    fn src_spec_needs_a_dir_or_tarball() {
        let d = tempfile::tempdir().unwrap();
        let other = d.path().join("notes.txt");
        std::fs::write(&other, b"").unwrap();
        for bad in [
            "src:/no/such/dir".to_string(),
            "src:".to_string(),
            format!("src:{}", other.display()),
            // a directory that is not agentsh's tree
            format!("src:{}", d.path().display()),
        ] {
            let e = Spec::parse(&bad).unwrap_err();
            assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE, "{bad}");
        }
    }

    #[test]
    fn bad_specs_are_usage_errors() {
        for bad in ["0.16.9", "vfoo", "v1.2", "v1.2.3;rm", "/no/such.deb", "dir:/no/such/dir", ""] {
            let e = Spec::parse(bad).unwrap_err();
            assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE, "{bad}");
        }
    }

    #[test]
    fn version_output_parses() {
        assert_eq!(parse_version_output("agentsh 0.16.9+1a2b3c\n").as_deref(), Some("0.16.9"));
        assert_eq!(parse_version_output("agentsh v0.20.5").as_deref(), Some("0.20.5"));
        assert_eq!(parse_version_output("bash: agentsh: command not found"), None);
    }
}

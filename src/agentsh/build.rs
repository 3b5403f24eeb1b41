//! The two remote sources of a version: the release .deb, and a build from the Go module proxy
//! with this machine's Go (`go install MODULE/cmd/<name>@vX.Y.Z`, plus the LD_PRELOAD libraries
//! compiled from the module's own C sources).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::MODULE;

/// Release downloads; `AGENTSH_BENCH_RELEASE_BASE` points elsewhere (a mirror, a local server).
const RELEASE_BASE: &str = "https://github.com/canyonroad/agentsh/releases/download";

pub fn download_release(version: &str, dest: &Path) -> Result<()> {
    let base = std::env::var("AGENTSH_BENCH_RELEASE_BASE").unwrap_or_else(|_| RELEASE_BASE.to_string());
    let url = format!("{base}/v{version}/{}", super::deb_name(version));
    let partial = dest.with_extension("deb.partial");
    let out = Command::new("curl")
        .args(["-fsSL", "--connect-timeout", "10", "--max-time", "300", "-o"])
        .arg(&partial)
        .arg(&url)
        .output()
        .context("running curl")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("{url}: curl exit {}: {}", out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).trim());
    }
    super::package::deb_version(&partial).with_context(|| format!("{url} is not a .deb"))?;
    std::fs::rename(&partial, dest)?;
    Ok(())
}

/// The binaries of the release and how each is built (the release builds the shim and the stub
/// statically, the server and the seccomp wrapper with cgo against libseccomp).
const BINARIES: &[(&str, bool)] =
    &[("agentsh", true), ("agentsh-unixwrap", true), ("agentsh-shell-shim", false), ("agentsh-stub", false)];

/// Builds every binary into `<cache>/build/usr-bin/` and the .so files next to them; returns that
/// folder (the layout `package::build_deb` takes).
pub fn from_module_proxy(version: &str, cache: &Path) -> Result<PathBuf> {
    let go = which_go()?;
    let out_dir = cache.join("build");
    std::fs::create_dir_all(&out_dir)?;
    for (name, cgo) in BINARIES {
        let target = format!("{MODULE}/cmd/{name}@v{version}");
        eprintln!("agentsh: go install {target} (CGO_ENABLED={})…", u8::from(*cgo));
        let out = Command::new(&go)
            .args(["install", "-trimpath", "-ldflags=-s -w", &target])
            .env("GOBIN", &out_dir)
            .env("CGO_ENABLED", if *cgo { "1" } else { "0" })
            .env("GOFLAGS", "-buildvcs=false")
            .output()
            .context("running go")?;
        if !out.status.success() {
            bail!("go install {target}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    build_preload_libraries(&go, version, &out_dir)?;
    Ok(out_dir)
}

/// `go install` builds binaries only; the two LD_PRELOAD libraries come from C sources inside the
/// module, which `go mod download` places in the module cache.
fn build_preload_libraries(go: &Path, version: &str, out_dir: &Path) -> Result<()> {
    let out = Command::new(go)
        .args(["mod", "download", "-json", &format!("{MODULE}@v{version}")])
        .output()
        .context("running go mod download")?;
    #[derive(serde::Deserialize)]
    struct Download {
        #[serde(rename = "Dir")]
        dir: Option<PathBuf>,
        #[serde(rename = "Error")]
        error: Option<String>,
    }
    let d: Download = serde_json::from_slice(&out.stdout).context("go mod download -json: unexpected output")?;
    if let Some(e) = d.error {
        bail!("go mod download {MODULE}@v{version}: {e}");
    }
    let src = d.dir.context("go mod download gave no Dir")?;
    for (lib, needle) in [("libagentsh-ptracer.so", "ptracer"), ("libenvshim.so", "envshim")] {
        let Some(c_file) = find_c_source(&src, needle) else {
            eprintln!("agentsh: no C source for {lib} in the module; the .deb will lack it");
            continue;
        };
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(out_dir.join(lib))
            .arg(&c_file)
            .arg("-ldl")
            .status()
            .context("running gcc")?;
        if !status.success() {
            bail!("gcc {} failed", c_file.display());
        }
    }
    Ok(())
}

fn find_c_source(root: &Path, needle: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "c")
                && p.file_name().is_some_and(|n| n.to_string_lossy().contains(needle))
            {
                return Some(p);
            }
        }
    }
    None
}

pub(super) fn which_go() -> Result<PathBuf> {
    match crate::text::which("go", &["/usr/local/go/bin"]) {
        Some(go) => Ok(go),
        None => bail!("go not found on PATH (agentsh needs Go >= 1.25 to build)"),
    }
}

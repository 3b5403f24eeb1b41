//! Packs binaries into a .deb with the release layout (`dpkg-deb --build`), and reads .debs back.
//! Release layout: /usr/bin/{agentsh,agentsh-unixwrap,agentsh-shell-shim,agentsh-stub},
//! /usr/lib/agentsh/{libenvshim.so,libagentsh-ptracer.so}; no dependencies, no postinst.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const REQUIRED: &[&str] = &["agentsh", "agentsh-shell-shim"];
const OPTIONAL_BIN: &[&str] = &["agentsh-unixwrap", "agentsh-stub"];
const LIBS: &[&str] = &["libenvshim.so", "libagentsh-ptracer.so", "bash_startup.sh"];

/// Builds `<out>/agentsh_<version>_linux_<arch>.deb` from the files in `bin_dir`.
pub fn build_deb(bin_dir: &Path, version: &str, out: &Path) -> Result<PathBuf> {
    for name in REQUIRED {
        if !bin_dir.join(name).is_file() {
            bail!("{}: {name} is missing (a dev build needs at least {})", bin_dir.display(), REQUIRED.join(" and "));
        }
    }
    let stage = tempfile::Builder::new().prefix("abench-deb").tempdir()?;
    let usr_bin = stage.path().join("usr/bin");
    let usr_lib = stage.path().join("usr/lib/agentsh");
    let debian = stage.path().join("DEBIAN");
    for d in [&usr_bin, &usr_lib, &debian] {
        std::fs::create_dir_all(d)?;
    }
    for name in REQUIRED.iter().chain(OPTIONAL_BIN) {
        let src = bin_dir.join(name);
        if src.is_file() {
            copy_mode(&src, &usr_bin.join(name), 0o755)?;
        } else {
            eprintln!("agentsh: {} has no {name}; the server may degrade without it", bin_dir.display());
        }
    }
    for name in LIBS {
        let src = bin_dir.join(name);
        if src.is_file() {
            copy_mode(&src, &usr_lib.join(name), 0o644)?;
        }
    }
    let control = format!(
        "Package: agentsh\nVersion: {version}\nArchitecture: {}\nMaintainer: agentsh-bench <noreply@agentsh-bench.invalid>\n\
         Description: agentsh packed by agentsh-bench from {}\n",
        super::deb_arch(),
        bin_dir.display()
    );
    std::fs::write(debian.join("control"), control)?;
    std::fs::create_dir_all(out)?;
    let deb = out.join(super::deb_name(version));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(stage.path())
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running dpkg-deb (install dpkg-dev)")?;
    if !status.success() {
        bail!("dpkg-deb --build failed for {}", bin_dir.display());
    }
    Ok(deb)
}

fn copy_mode(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The Version field of a .deb; fails if the file is not a .deb.
pub fn deb_version(deb: &Path) -> Result<String> {
    let out = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(deb)
        .arg("Version")
        .output()
        .context("running dpkg-deb")?;
    if !out.status.success() {
        bail!("{}: not a .deb ({})", deb.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Asks a dev-build binary for its version; `None` if it cannot run here.
pub fn binary_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    super::parse_version_output(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the packer's layout only: the files are placeholders, never installed or run.
    #[test]
    fn deb_has_release_layout() {
        let bins = tempfile::tempdir().unwrap();
        for f in ["agentsh", "agentsh-shell-shim", "agentsh-unixwrap", "libagentsh-ptracer.so"] {
            std::fs::write(bins.path().join(f), b"placeholder").unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let deb = build_deb(bins.path(), "0.16.9", out.path()).unwrap();
        assert_eq!(deb_version(&deb).unwrap(), "0.16.9");
        let listing = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        for path in ["./usr/bin/agentsh", "./usr/bin/agentsh-shell-shim", "./usr/bin/agentsh-unixwrap", "./usr/lib/agentsh/libagentsh-ptracer.so"] {
            let line = listing.lines().find(|l| l.ends_with(path)).unwrap_or_else(|| panic!("{path} missing:\n{listing}"));
            assert!(line.contains("root/root"), "{line}");
        }
        assert!(listing.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("./usr/bin/agentsh")), "{listing}");
    }

    #[test]
    fn missing_server_binary_is_refused() {
        let bins = tempfile::tempdir().unwrap();
        std::fs::write(bins.path().join("agentsh-shell-shim"), b"x").unwrap();
        let e = build_deb(bins.path(), "0.0.0", bins.path()).unwrap_err();
        assert!(format!("{e}").contains("agentsh is missing"), "{e}");
    }

    #[test]
    fn not_a_deb_is_reported() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(deb_version(f.path()).is_err());
    }
}

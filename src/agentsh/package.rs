//! Packs files into a .deb (`dpkg-deb --build`), and reads .debs back.
//!
//! A [`Layout`] says what goes where: a source build fills it from the `nfpms` section of the tag's
//! `.goreleaser.yml` (binaries, LD_PRELOAD libraries, conffiles), a `dir:` dev build from a flat
//! folder of binaries ([`Layout::from_flat_dir`]). Release layout: /usr/bin/{agentsh,
//! agentsh-unixwrap,agentsh-shell-shim,agentsh-stub}, /usr/lib/agentsh/{libenvshim.so,
//! libagentsh-ptracer.so,bash_startup.sh}, /etc/agentsh/{config.yaml,policies/*.yaml} as
//! conffiles; no dependencies, no postinst.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const REQUIRED: &[&str] = &["agentsh", "agentsh-shell-shim"];
const OPTIONAL_BIN: &[&str] = &["agentsh-unixwrap", "agentsh-stub"];
const LIBS: &[(&str, u32)] = &[("libenvshim.so", 0o644), ("libagentsh-ptracer.so", 0o644), ("bash_startup.sh", 0o755)];

/// Without the server binary the package is useless: every layout must carry it.
const SERVER: &str = "/usr/bin/agentsh";

/// The contents of a package.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    pub files: Vec<FileEntry>,
    /// Directories created even when empty (`type: dir` in nfpm), with their mode.
    pub dirs: Vec<(String, u32)>,
    /// Where the files came from, for the package description.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The file on this machine.
    pub src: PathBuf,
    /// Absolute path inside the package ("/usr/bin/agentsh").
    pub dst: String,
    pub mode: u32,
    /// Listed in DEBIAN/conffiles: dpkg keeps a locally edited copy on upgrade instead of
    /// overwriting it, as the release package does for /etc/agentsh.
    pub conffile: bool,
}

impl Layout {
    /// The release layout from a folder of dev-build binaries (and optionally the .so files and
    /// bash_startup.sh next to them).
    pub fn from_flat_dir(bin_dir: &Path) -> Result<Layout> {
        for name in REQUIRED {
            if !bin_dir.join(name).is_file() {
                bail!(
                    "{}: {name} is missing (a dev build needs at least {})",
                    bin_dir.display(),
                    REQUIRED.join(" and ")
                );
            }
        }
        let mut layout = Layout { origin: bin_dir.display().to_string(), ..Layout::default() };
        for name in REQUIRED.iter().chain(OPTIONAL_BIN) {
            let src = bin_dir.join(name);
            if src.is_file() {
                layout.add(src, format!("/usr/bin/{name}"), 0o755, false);
            } else {
                eprintln!("agentsh: {} has no {name}; the server may degrade without it", bin_dir.display());
            }
        }
        for (name, mode) in LIBS {
            let src = bin_dir.join(name);
            if src.is_file() {
                layout.add(src, format!("/usr/lib/agentsh/{name}"), *mode, false);
            }
        }
        Ok(layout)
    }

    pub fn add(&mut self, src: PathBuf, dst: String, mode: u32, conffile: bool) {
        self.files.push(FileEntry { src, dst, mode, conffile });
    }

    /// Refuses what dpkg would mishandle or what would escape the staging folder.
    fn check(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for dst in self.files.iter().map(|f| &f.dst).chain(self.dirs.iter().map(|(d, _)| d)) {
            let p = Path::new(dst);
            if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                bail!("package path {dst:?} must be absolute and without '..'");
            }
        }
        for f in &self.files {
            if !seen.insert(f.dst.as_str()) {
                bail!("two files go to {} in the package", f.dst);
            }
        }
        if !seen.contains(SERVER) {
            bail!("the package would have no {SERVER}");
        }
        Ok(())
    }
}

/// Builds `<out>/agentsh_<version>_linux_<arch>.deb` from a layout. The .deb appears under its
/// final name only once complete (built as a .partial, then renamed), so an interrupted build
/// never leaves a truncated package where a cache lookup would take it.
pub fn build_deb(layout: &Layout, version: &str, out: &Path) -> Result<PathBuf> {
    layout.check()?;
    let stage = tempfile::Builder::new().prefix("abench-deb").tempdir()?;
    let root = stage.path();
    for (dir, _) in &layout.dirs {
        let d = staged(root, dir);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    for f in &layout.files {
        let dst = staged(root, &f.dst);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        copy_mode(&f.src, &dst, f.mode)?;
    }
    // The staging folder is a 0700 temp dir and the umask may be strict: every directory the
    // package creates on the target gets 0755 unless the layout says otherwise.
    normalize_dir_modes(root)?;
    for (dir, mode) in &layout.dirs {
        set_mode(&staged(root, dir), *mode)?;
    }
    write_control(root, layout, version)?;

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let deb = out.join(super::deb_name(version));
    let partial = out.join(format!(".{}.partial-{}", super::deb_name(version), std::process::id()));
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(root)
        .arg(&partial)
        .output()
        .context("running dpkg-deb (install dpkg-dev)")?;
    if !built.status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!("dpkg-deb --build failed for {}: {}", layout.origin, String::from_utf8_lossy(&built.stderr).trim());
    }
    std::fs::rename(&partial, &deb).with_context(|| format!("renaming {} to {}", partial.display(), deb.display()))?;
    Ok(deb)
}

fn staged(root: &Path, dst: &str) -> PathBuf {
    root.join(dst.trim_start_matches('/'))
}

fn write_control(root: &Path, layout: &Layout, version: &str) -> Result<()> {
    let debian = root.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    set_mode(&debian, 0o755)?;
    let control = format!(
        "Package: agentsh\nVersion: {version}\nArchitecture: {}\nMaintainer: agentsh-bench <noreply@agentsh-bench.invalid>\n\
         Description: agentsh packed by agentsh-bench from {}\n",
        super::deb_arch(),
        layout.origin
    );
    std::fs::write(debian.join("control"), control)?;
    let conffiles: String = layout.files.iter().filter(|f| f.conffile).map(|f| format!("{}\n", f.dst)).collect();
    if !conffiles.is_empty() {
        std::fs::write(debian.join("conffiles"), conffiles)?;
    }
    Ok(())
}

fn normalize_dir_modes(dir: &Path) -> Result<()> {
    set_mode(dir, 0o755)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            normalize_dir_modes(&entry.path())?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

fn copy_mode(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    set_mode(dst, mode)
}

/// The Version field of a .deb; fails if the file is not a .deb.
pub fn deb_version(deb: &Path) -> Result<String> {
    let out =
        Command::new("dpkg-deb").args(["--field"]).arg(deb).arg("Version").output().context("running dpkg-deb")?;
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

    fn listing(deb: &Path) -> String {
        let out = Command::new("dpkg-deb").arg("-c").arg(deb).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Checks the packer's layout only: the files are placeholders, never installed or run.
    #[test]
    fn deb_has_release_layout() {
        let bins = tempfile::tempdir().unwrap();
        for f in ["agentsh", "agentsh-shell-shim", "agentsh-unixwrap", "libagentsh-ptracer.so"] {
            std::fs::write(bins.path().join(f), b"placeholder").unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let layout = Layout::from_flat_dir(bins.path()).unwrap();
        let deb = build_deb(&layout, "0.16.9", out.path()).unwrap();
        assert_eq!(deb_version(&deb).unwrap(), "0.16.9");
        let listing = listing(&deb);
        for path in [
            "./usr/bin/agentsh",
            "./usr/bin/agentsh-shell-shim",
            "./usr/bin/agentsh-unixwrap",
            "./usr/lib/agentsh/libagentsh-ptracer.so",
        ] {
            let line =
                listing.lines().find(|l| l.ends_with(path)).unwrap_or_else(|| panic!("{path} missing:\n{listing}"));
            assert!(line.contains("root/root"), "{line}");
        }
        assert!(listing.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("./usr/bin/agentsh")), "{listing}");
        assert!(listing.lines().any(|l| l.starts_with("drwxr-xr-x") && l.ends_with("./usr/lib/agentsh/")), "{listing}");
        // Only the final name: no .partial left beside it.
        let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn conffiles_and_dirs_are_declared() {
        let src = tempfile::tempdir().unwrap();
        for f in ["agentsh", "config.yaml"] {
            std::fs::write(src.path().join(f), b"placeholder").unwrap();
        }
        let mut layout = Layout { origin: "test".into(), ..Layout::default() };
        layout.add(src.path().join("agentsh"), "/usr/bin/agentsh".into(), 0o755, false);
        layout.add(src.path().join("config.yaml"), "/etc/agentsh/config.yaml".into(), 0o644, true);
        layout.dirs.push(("/etc/agentsh/policies".into(), 0o755));
        let out = tempfile::tempdir().unwrap();
        let deb = build_deb(&layout, "0.20.1", out.path()).unwrap();
        let conffiles = Command::new("dpkg-deb").arg("-I").arg(&deb).arg("conffiles").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&conffiles.stdout), "/etc/agentsh/config.yaml\n");
        let listing = listing(&deb);
        assert!(
            listing.lines().any(|l| l.starts_with("-rw-r--r--") && l.ends_with("./etc/agentsh/config.yaml")),
            "{listing}"
        );
        assert!(listing.lines().any(|l| l.ends_with("./etc/agentsh/policies/")), "{listing}");
    }

    #[test]
    fn bad_layouts_are_refused() {
        let out = tempfile::tempdir().unwrap();
        let f = out.path().join("x");
        std::fs::write(&f, b"x").unwrap();
        let mut no_server = Layout::default();
        no_server.add(f.clone(), "/usr/bin/agentsh-stub".into(), 0o755, false);
        assert!(
            format!("{:#}", build_deb(&no_server, "0.0.0", out.path()).unwrap_err()).contains("no /usr/bin/agentsh")
        );
        let mut escape = Layout::default();
        escape.add(f.clone(), "/usr/bin/agentsh".into(), 0o755, false);
        escape.add(f, "/usr/../../etc/passwd".into(), 0o644, false);
        assert!(build_deb(&escape, "0.0.0", out.path()).is_err());
    }

    #[test]
    fn missing_server_binary_is_refused() {
        let bins = tempfile::tempdir().unwrap();
        std::fs::write(bins.path().join("agentsh-shell-shim"), b"x").unwrap();
        let e = Layout::from_flat_dir(bins.path()).unwrap_err();
        assert!(format!("{e}").contains("agentsh is missing"), "{e}");
    }

    #[test]
    fn not_a_deb_is_reported() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(deb_version(f.path()).is_err());
    }
}

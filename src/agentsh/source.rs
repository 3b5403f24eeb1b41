//! Building agentsh from its source: a `git archive` snapshot (`agentsh-vX.Y.Z.tar.gz`) or a
//! checkout, built the way the tag's release is (`.goreleaser.yml`, see goreleaser.rs) and packed
//! into a .deb with the release layout.
//!
//! Builds are cached by content, `<cache>/agentsh/v<ver>/src-<digest16>/`, with the full build
//! log beside the .deb. The build itself runs in a temp dir: the snapshot is unpacked there and a
//! checkout is copied there, so the user's tree never gets build outputs.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::goreleaser::{Config, GoBuild, HookCmd, Vars};
use super::{Artifact, build, deb_arch, deb_name, is_semver, package, parse_version_output};

/// Version of a source tree that names none (no `agentsh-X.Y.Z` name, no tag).
const DEV_VERSION: &str = "0.0.0+dev";
/// Lines of a failed command's output quoted in the error; the rest is in build.log.
const TAIL_LINES: usize = 20;

/// Directories searched for `agentsh-vX.Y.Z.tar.gz`: `$AGENTSH_BENCH_SOURCES` (colon-separated),
/// else the `shared/agentsh` folder beside this checkout when it exists.
pub fn snapshot_dirs() -> Vec<PathBuf> {
    match std::env::var_os("AGENTSH_BENCH_SOURCES") {
        Some(v) => std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect(),
        None => {
            let d = default_snapshot_dir();
            if d.is_dir() { vec![d] } else { Vec::new() }
        }
    }
}

fn default_snapshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/agentsh");
    d.canonicalize().unwrap_or(d)
}

/// The snapshot of `version` ("0.16.9") in [`snapshot_dirs`].
pub fn find_snapshot(version: &str) -> Result<PathBuf> {
    let names = [format!("agentsh-v{version}.tar.gz"), format!("agentsh-{version}.tar.gz")];
    let dirs = snapshot_dirs();
    if dirs.is_empty() {
        bail!("AGENTSH_BENCH_SOURCES is unset and {} does not exist", default_snapshot_dir().display());
    }
    dirs.iter().flat_map(|d| names.iter().map(move |n| d.join(n))).find(|p| p.is_file()).with_context(|| {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("no {} in {}", names[0], list.join(", "))
    })
}

/// `src:PATH`: the cached .deb of the same content, else a build.
pub fn resolve(path: &Path) -> Result<Artifact> {
    let src = Source::inspect(path)?;
    match cached(&src)? {
        Some(a) => Ok(a),
        None => built(&src),
    }
}

/// The .deb an earlier build of the same content left; starts no process.
pub fn cached(src: &Source) -> Result<Option<Artifact>> {
    Ok(src.cached_deb()?.map(|deb| src.artifact(deb, true)))
}

/// Builds (no cache lookup) and returns the .deb.
pub fn built(src: &Source) -> Result<Artifact> {
    let deb = src.build()?;
    Ok(src.artifact(deb, false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tarball,
    GitCheckout,
    /// A directory that is not a git work tree: nothing identifies its content cheaply, so it is
    /// rebuilt every time.
    PlainDir,
}

#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    kind: Kind,
    pub version: String,
    /// First 16 hex digits of the content digest; `None` when the content has no cheap identity.
    key: Option<String>,
}

impl Source {
    pub fn inspect(path: &Path) -> Result<Source> {
        let path = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
        let kind = if path.is_file() {
            if !is_tarball_name(&path) {
                bail!("{}: expected a .tar.gz snapshot or a source directory", path.display());
            }
            Kind::Tarball
        } else if path.is_dir() {
            if is_git_checkout(&path) { Kind::GitCheckout } else { Kind::PlainDir }
        } else {
            bail!("{}: no such file or directory", path.display());
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let version = version_from_name(&name)
            .or_else(|| (kind == Kind::GitCheckout).then(|| describe_version(&path)).flatten())
            .unwrap_or_else(|| DEV_VERSION.to_string());
        let key = match kind {
            Kind::Tarball => Some(file_digest(&path)?),
            Kind::GitCheckout => Some(checkout_digest(&path)?),
            Kind::PlainDir => None,
        };
        Ok(Source { path, kind, version, key })
    }

    fn label(&self) -> String {
        format!("source build of {}", self.path.display())
    }

    fn artifact(&self, deb: PathBuf, cached: bool) -> Artifact {
        let source = if cached { format!("cache ({})", self.label()) } else { self.label() };
        Artifact { deb, version: self.version.clone(), source }
    }

    fn cache_dir(&self) -> Result<Option<PathBuf>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        Ok(Some(super::cache_dir_for(&self.version)?.join(format!("src-{key}"))))
    }

    fn cached_deb(&self) -> Result<Option<PathBuf>> {
        Ok(self.cache_dir()?.map(|d| d.join(deb_name(&self.version))).filter(|p| p.is_file()))
    }

    /// Builds and packs; returns the .deb (in the cache, or a temp dir for a plain directory).
    fn build(&self) -> Result<PathBuf> {
        let out_dir = match self.cache_dir()? {
            Some(d) => d,
            None => tempfile::Builder::new().prefix("abench-agentsh-src-deb").tempdir()?.keep(),
        };
        std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        let mut run = Runner::new(&out_dir.join("build.log"), format!("agentsh v{}", self.version))?;
        eprintln!("agentsh v{}: building from {} (log: {})", self.version, self.path.display(), run.log_path.display());
        let t = Instant::now();
        let result = self.build_logged(&mut run, &out_dir);
        match &result {
            Ok(deb) => run.note(&format!("built {} in {:.0} s", deb.display(), t.elapsed().as_secs_f64())),
            Err(e) => run.note(&format!("error: {e:#}")),
        }
        result.with_context(|| self.label())
    }

    fn build_logged(&self, run: &mut Runner, out_dir: &Path) -> Result<PathBuf> {
        let work = tempfile::Builder::new().prefix("abench-agentsh-src").tempdir()?;
        let root = self.prepare_tree(run, work.path())?;
        let cfg = Config::load(&root)?;
        let (short_commit, full_commit) = self.commit();
        run.note(&format!("version {}, commit {full_commit}", self.version));
        let vars = Vars { version: self.version.clone(), short_commit, full_commit, arch: deb_arch().to_string() };
        let builds = cfg.deb_builds(&vars)?;
        let hooks: Vec<HookCmd> = cfg.hooks().into_iter().filter(|h| !skipped_hook(run, h)).collect();
        let go = build::which_go()?;
        let env = step_env(&go)?;
        let bin_dir = work.path().join("out");
        std::fs::create_dir_all(&bin_dir)?;

        let total = builds.len() + hooks.len();
        for (i, b) in builds.iter().enumerate() {
            let mut cmd = go_build(&go, b, &root, &bin_dir, &vars.arch);
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            run.step(&format!("go build {}", b.main), Some((i + 1, total)), &mut cmd)?;
        }
        for (i, h) in hooks.iter().enumerate() {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&h.cmd).current_dir(h.dir.as_ref().map_or(root.clone(), |d| root.join(d)));
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            run.step(&h.cmd, Some((builds.len() + i + 1, total)), &mut cmd)?;
        }
        let printed = run.timed("agentsh --version", || check_version(&bin_dir.join("agentsh"), &self.version))?;
        run.note(&format!("agentsh --version printed {printed:?}"));
        let (mut layout, warnings) = cfg.deb_layout(&builds, &root, &bin_dir, &vars)?;
        for w in warnings {
            eprintln!("agentsh v{}: {w}", self.version);
            run.note(&w);
        }
        layout.origin = self.path.display().to_string();
        let listing: String = layout
            .files
            .iter()
            .map(|f| {
                let conf = if f.conffile { " (conffile)" } else { "" };
                format!("\n  {:04o} {}{conf}", f.mode, f.dst)
            })
            .collect();
        run.note(&format!("package contents:{listing}"));
        run.timed("dpkg-deb --build", || package::build_deb(&layout, &self.version, out_dir))
    }

    /// Puts the source into `work` and returns its root (the folder holding .goreleaser.yml).
    fn prepare_tree(&self, run: &mut Runner, work: &Path) -> Result<PathBuf> {
        let dest = work.join("src");
        std::fs::create_dir_all(&dest)?;
        match self.kind {
            Kind::Tarball => {
                let mut tar = Command::new("tar");
                tar.arg("xzf").arg(&self.path).arg("-C").arg(&dest);
                run.step(&format!("unpacking {}", file_name(&self.path)), None, &mut tar)?;
                single_subdir(&dest)
            }
            Kind::GitCheckout | Kind::PlainDir => {
                run.timed(&format!("copying {}", self.path.display()), || copy_tree(&self.path, &dest))?;
                Ok(dest)
            }
        }
    }

    /// goreleaser's `.ShortCommit` and `.Commit`; "unknown" when the source does not say.
    fn commit(&self) -> (String, String) {
        let full = match self.kind {
            Kind::Tarball => tar_commit_id(&self.path),
            Kind::GitCheckout => git(&self.path, &["rev-parse", "HEAD"]).ok(),
            Kind::PlainDir => None,
        };
        match full {
            Some(c) if c.len() >= 7 && c.chars().all(|c| c.is_ascii_hexdigit()) => (c[..7].to_string(), c),
            _ => ("unknown".to_string(), "unknown".to_string()),
        }
    }
}

/// `go mod download` only warms the module cache; `go build` fetches what it needs itself, so one
/// network step (and its failure mode) fewer.
fn skipped_hook(run: &mut Runner, h: &HookCmd) -> bool {
    let skip = h.cmd.split_whitespace().collect::<Vec<_>>() == ["go", "mod", "download"];
    if skip {
        run.note(&format!("skipped hook `{}`: go build downloads what it needs", h.cmd));
    }
    skip
}

fn go_build(go: &Path, b: &GoBuild, root: &Path, bin_dir: &Path, arch: &str) -> Command {
    let mut cmd = Command::new(go);
    cmd.current_dir(root).arg("build").arg("-trimpath");
    cmd.args(b.flags.iter().filter(|f| *f != "-trimpath"));
    cmd.arg("-ldflags").arg(&b.ldflags).arg("-o").arg(bin_dir.join(&b.binary)).arg(&b.main);
    cmd.env("GOOS", "linux").env("GOARCH", arch);
    cmd.envs(b.env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Environment of every step: go on PATH (it may live only in /usr/local/go/bin, and hooks call
/// it too), and no VCS stamping (a snapshot has no .git; the commit comes from ldflags).
fn step_env(go: &Path) -> Result<Vec<(String, String)>> {
    let go_dir = go.parent().context("go binary without a directory")?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let joined = std::env::join_paths(std::iter::once(go_dir).chain(std::env::split_paths(&path)))
        .context("building PATH for go")?;
    // The user's GOFLAGS stay, except a -buildvcs=true, which fails without a .git.
    let goflags: Vec<String> = std::env::var("GOFLAGS")
        .unwrap_or_default()
        .split_whitespace()
        .filter(|f| !f.starts_with("-buildvcs"))
        .map(str::to_string)
        .chain(["-buildvcs=false".to_string()])
        .collect();
    let goflags = goflags.join(" ");
    Ok(vec![("PATH".into(), joined.to_string_lossy().into_owned()), ("GOFLAGS".into(), goflags)])
}

/// The built server must report the version it is packaged as (the ldflags did their job).
/// Returns what it printed.
fn check_version(bin: &Path, version: &str) -> Result<String> {
    let out =
        Command::new(bin).arg("--version").output().with_context(|| format!("running {} --version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = version.split('+').next().unwrap_or(version);
    match parse_version_output(&text) {
        Some(got) if got == want => Ok(text.trim().to_string()),
        _ => bail!(
            "{} --version printed {:?} (stderr {:?}); expected agentsh {want}",
            bin.display(),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// `agentsh-v0.16.9.tar.gz`, `agentsh-0.16.9` → `0.16.9`.
pub fn version_from_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".tar.gz").or_else(|| name.strip_suffix(".tgz")).unwrap_or(name);
    let v = stem.strip_prefix("agentsh-")?;
    let v = v.strip_prefix('v').unwrap_or(v);
    is_semver(v).then(|| v.to_string())
}

/// `git describe --tags`: `v0.16.9` → `0.16.9`; `v0.16.9-3-g1a2b3c4` (3 commits past the tag) →
/// `0.16.9+3.g1a2b3c4`, a Debian version above the tag's.
fn describe_version(dir: &Path) -> Option<String> {
    describe_to_version(&git(dir, &["describe", "--tags"]).ok()?)
}

fn describe_to_version(described: &str) -> Option<String> {
    let d = described.trim().strip_prefix('v').unwrap_or(described.trim());
    if is_semver(d) {
        return Some(d.to_string());
    }
    let mut parts = d.rsplitn(3, '-');
    let (hash, count, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = is_semver(tag)
        && !count.is_empty()
        && count.chars().all(|c| c.is_ascii_digit())
        && hash.strip_prefix('g').is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| format!("{tag}+{count}.{hash}"))
}

fn is_tarball_name(p: &Path) -> bool {
    let n = file_name(p);
    n.ends_with(".tar.gz") || n.ends_with(".tgz")
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A git work tree rooted at `dir` itself (not a folder inside some other repository).
fn is_git_checkout(dir: &Path) -> bool {
    let Ok(top) = git(dir, &["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    match (Path::new(&top).canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).stdin(Stdio::null()).output().context("running git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The commit `git archive` recorded in the tarball's pax header.
fn tar_commit_id(tarball: &Path) -> Option<String> {
    let mut gzip =
        Command::new("gzip").arg("-dc").arg(tarball).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let stdout = gzip.stdout.take()?;
    let out = Command::new("git").arg("get-tar-commit-id").stdin(stdout).output();
    // get-tar-commit-id reads only the first block: gzip then dies of SIGPIPE, which is expected.
    let _ = gzip.kill();
    let _ = gzip.wait();
    let out = out.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn file_digest(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex16(h))
}

/// Identity of a checkout: HEAD and `git status --porcelain`, plus the content of what status only
/// names (the diff against HEAD, untracked files), so editing an already-modified file rebuilds.
fn checkout_digest(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let status = git(dir, &["status", "--porcelain"])?;
    for part in [git(dir, &["rev-parse", "HEAD"])?, status.clone()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    if !status.is_empty() {
        h.update(git(dir, &["diff", "HEAD", "--binary"])?.as_bytes());
        for name in
            git(dir, &["ls-files", "--others", "--exclude-standard", "-z"])?.split('\0').filter(|n| !n.is_empty())
        {
            h.update(name.as_bytes());
            h.update([0]);
            let p = dir.join(name);
            if p.is_file() {
                h.update(file_digest(&p)?.as_bytes());
            }
        }
    }
    Ok(hex16(h))
}

/// Identity of a dev build's flat folder: the names and content digests of its files (not its
/// subfolders), in name order.
pub(super) fn dir_digest(dir: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(file_name(&f).as_bytes());
        h.update([0]);
        h.update(file_digest(&f)?.as_bytes());
    }
    Ok(hex16(h))
}

fn hex16(h: Sha256) -> String {
    let mut s = hex::encode(h.finalize());
    s.truncate(16);
    s
}

/// A `git archive` tarball unpacks to one `agentsh-X.Y.Z/` folder; anything else is its own root.
fn single_subdir(dir: &Path) -> Result<PathBuf> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    match entries.as_slice() {
        [only] if only.is_dir() => Ok(only.clone()),
        _ => Ok(dir.to_path_buf()),
    }
}

/// Copies a source tree, without `.git` (large, and the build does not read it).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        if entry.file_name() == ".git" {
            continue;
        }
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&from)?;
            std::os::unix::fs::symlink(&target, &to).with_context(|| format!("linking {}", to.display()))?;
        } else if ty.is_file() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(())
}

/// Runs build steps with their output in build.log, and one progress line per step on stderr.
struct Runner {
    log: File,
    log_path: PathBuf,
    prefix: String,
}

impl Runner {
    fn new(log_path: &Path, prefix: String) -> Result<Runner> {
        let log = File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        Ok(Runner { log, log_path: log_path.to_path_buf(), prefix })
    }

    /// A line in the log only; a log that cannot be written must not fail the build.
    fn note(&mut self, msg: &str) {
        let _ = writeln!(self.log, "--- {msg}");
    }

    fn start(&mut self, label: &str, n: Option<(usize, usize)>) -> String {
        let counter = n.map(|(i, t)| format!(" ({i}/{t})")).unwrap_or_default();
        eprint!("{}: {label}{counter}… ", self.prefix);
        let _ = std::io::stderr().flush();
        format!("{label}{counter}")
    }

    /// Runs `cmd` with stdout and stderr into the log; on failure the error names the exact
    /// command line and quotes the end of its output.
    fn step(&mut self, label: &str, n: Option<(usize, usize)>, cmd: &mut Command) -> Result<()> {
        let title = self.start(label, n);
        let shown = show(cmd);
        let dir = cmd.get_current_dir().map(|d| format!(" (in {})", d.display())).unwrap_or_default();
        writeln!(self.log, "\n==> {title}\n$ {shown}{dir}")?;
        self.log.flush()?;
        let from = self.log.metadata()?.len();
        let t = Instant::now();
        let status = cmd.stdin(Stdio::null()).stdout(self.log.try_clone()?).stderr(self.log.try_clone()?).status();
        let secs = t.elapsed().as_secs_f64();
        eprintln!("{secs:.0} s");
        let status = status.with_context(|| format!("starting `{shown}`"))?;
        let tail = (!status.success()).then(|| self.tail(from));
        writeln!(self.log, "==> {status} after {secs:.1} s")?;
        if let Some(tail) = tail {
            bail!(
                "`{shown}`{dir} failed ({status}); last lines of its output:\n{tail}\nfull log: {}",
                self.log_path.display()
            );
        }
        Ok(())
    }

    /// A step done in-process, timed like the others.
    fn timed<T>(&mut self, label: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let title = self.start(label, None);
        let _ = writeln!(self.log, "\n==> {title}");
        let t = Instant::now();
        let r = f();
        eprintln!("{:.0} s", t.elapsed().as_secs_f64());
        r.with_context(|| format!("{label} (log: {})", self.log_path.display()))
    }

    fn tail(&self, from: u64) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(from).unwrap_or(0).min(text.len());
        let text = String::from_utf8_lossy(&text[start..]);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The command as a shell line one can paste: the variables it sets (PATH aside), then argv.
fn show(cmd: &Command) -> String {
    let esc = |s: &std::ffi::OsStr| shell_escape::escape(s.to_string_lossy()).into_owned();
    let env = cmd
        .get_envs()
        .filter(|(k, _)| *k != "PATH")
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), esc(v?))));
    let argv = std::iter::once(esc(cmd.get_program())).chain(cmd.get_args().map(esc));
    env.chain(argv).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_names() {
        assert_eq!(version_from_name("agentsh-v0.16.9.tar.gz").as_deref(), Some("0.16.9"));
        assert_eq!(version_from_name("agentsh-0.20.1").as_deref(), Some("0.20.1"));
        assert_eq!(version_from_name("agentsh-v0.21.0-rc1.tgz").as_deref(), Some("0.21.0-rc1"));
        assert_eq!(version_from_name("agentsh"), None);
        assert_eq!(version_from_name("agentsh-main.tar.gz"), None);
        assert_eq!(version_from_name("other-v1.2.3.tar.gz"), None);
    }

    #[test]
    fn describe_output_becomes_a_version() {
        assert_eq!(describe_to_version("v0.16.9\n").as_deref(), Some("0.16.9"));
        assert_eq!(describe_to_version("v0.16.9-3-g1a2b3c4").as_deref(), Some("0.16.9+3.g1a2b3c4"));
        assert_eq!(describe_to_version("nightly-3-g1a2b3c4"), None);
        assert_eq!(describe_to_version("v0.16.9-x-g1a2b3c4"), None);
    }

    #[test]
    fn plain_dir_is_dev_and_uncached() {
        let d = tempfile::tempdir().unwrap();
        let src = Source::inspect(d.path()).unwrap();
        assert_eq!(src.version, DEV_VERSION);
        assert_eq!(src.kind, Kind::PlainDir);
        assert!(src.cached_deb().unwrap().is_none());
        let named = d.path().join("agentsh-0.20.1");
        std::fs::create_dir(&named).unwrap();
        assert_eq!(Source::inspect(&named).unwrap().version, "0.20.1");
    }

    #[test]
    fn tarball_key_is_its_digest() {
        let d = tempfile::tempdir().unwrap();
        let tar = d.path().join("agentsh-v0.16.9.tar.gz");
        std::fs::write(&tar, b"abc").unwrap();
        let src = Source::inspect(&tar).unwrap();
        // sha256("abc") = ba7816bf8f01cfea…
        assert_eq!(src.key.as_deref(), Some("ba7816bf8f01cfea"));
        assert_eq!(src.version, "0.16.9");
        assert!(Source::inspect(&d.path().join("notes.txt")).is_err());
    }

    #[test]
    fn shown_commands_can_be_pasted() {
        let mut cmd = Command::new("go");
        cmd.args(["build", "-ldflags", "-s -w -X main.version=0.16.9", "./cmd/agentsh"])
            .env("CGO_ENABLED", "1")
            .env("PATH", "/x");
        assert_eq!(show(&cmd), "CGO_ENABLED=1 go build -ldflags '-s -w -X main.version=0.16.9' ./cmd/agentsh");
    }

    #[test]
    fn failed_step_names_command_and_quotes_output() {
        let d = tempfile::tempdir().unwrap();
        let mut run = Runner::new(&d.path().join("build.log"), "test".into()).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "for i in $(seq 1 30); do echo line$i; done; exit 3"]);
        let e = format!("{:#}", run.step("fail", Some((1, 1)), &mut cmd).unwrap_err());
        assert!(e.contains("`sh -c 'for i in"), "{e}");
        assert!(e.contains("line30") && e.contains("line11") && !e.contains("line10\n"), "{e}");
        assert!(e.contains("build.log"), "{e}");
    }
}

//! The parts of a tag's `.goreleaser.yml` a source build needs: which `go build` commands make the
//! Linux binaries for this architecture, which `before.hooks` produce the LD_PRELOAD libraries,
//! and where the `nfpms` section puts every file in the .deb. Following the file (rather than a
//! list written here) keeps a build of any tag identical in layout to that tag's release.
//!
//! Only what agentsh's own files use is understood; anything else (another content `type`, a
//! template function) is an error rather than a silently different package.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::package::Layout;

#[derive(Debug, Deserialize)]
pub struct Config {
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    before: Before,
    #[serde(default)]
    builds: Vec<Build>,
    #[serde(default)]
    nfpms: Vec<Nfpm>,
}

#[derive(Debug, Default, Deserialize)]
struct Before {
    #[serde(default)]
    hooks: Vec<Hook>,
}

/// A hook is a command line, or `{cmd, dir}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Hook {
    Line(String),
    Full {
        cmd: String,
        #[serde(default)]
        dir: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
pub struct Build {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    main: Option<String>,
    #[serde(default)]
    binary: Option<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    goos: Vec<String>,
    #[serde(default)]
    goarch: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    ldflags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "one_or_many")]
    flags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Nfpm {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(default)]
    bindir: Option<String>,
    #[serde(default)]
    contents: Vec<Content>,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    src: Option<String>,
    dst: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    file_info: Option<FileInfo>,
}

#[derive(Debug, Deserialize)]
struct FileInfo {
    #[serde(default, deserialize_with = "octal_mode")]
    mode: Option<u32>,
}

/// The values `{{ .Name }}` templates expand to.
#[derive(Debug, Clone)]
pub struct Vars {
    /// Without the leading `v`, as goreleaser's `.Version`.
    pub version: String,
    pub short_commit: String,
    pub full_commit: String,
    pub arch: String,
}

/// One `go build` of the release: what to build, the binary's name and its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    pub id: Option<String>,
    pub main: String,
    pub binary: String,
    /// `KEY=VALUE` pairs from the build's `env`, templates expanded.
    pub env: Vec<(String, String)>,
    /// Extra `go build` flags (`flags:`), besides the `-trimpath` every build gets.
    pub flags: Vec<String>,
    /// The `-ldflags` argument, templates expanded.
    pub ldflags: String,
}

/// A `before.hooks` entry: a shell command line run in `dir` (relative to the source root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCmd {
    pub cmd: String,
    pub dir: Option<String>,
}

/// goreleaser's defaults when a build names no targets or no ldflags.
const DEFAULT_GOOS: &[&str] = &["darwin", "linux", "windows"];
const DEFAULT_GOARCH: &[&str] = &["386", "amd64", "arm64"];
const DEFAULT_LDFLAGS: &str =
    "-s -w -X main.version={{.Version}} -X main.commit={{.Commit}} -X main.date={{.Date}} -X main.builtBy=goreleaser";

impl Config {
    pub fn parse(text: &str) -> Result<Config> {
        serde_yaml::from_str(text).context("parsing .goreleaser.yml")
    }

    pub fn load(root: &Path) -> Result<Config> {
        for name in [".goreleaser.yml", ".goreleaser.yaml"] {
            let p = root.join(name);
            if p.is_file() {
                let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
                return Config::parse(&text).with_context(|| p.display().to_string());
            }
        }
        bail!("{}: no .goreleaser.yml (a source build follows it)", root.display())
    }

    fn project(&self) -> &str {
        self.project_name.as_deref().unwrap_or("agentsh")
    }

    /// The builds targeting linux on `vars.arch`, in file order, one per binary name.
    pub fn linux_builds(&self, vars: &Vars) -> Result<Vec<GoBuild>> {
        let mut out: Vec<GoBuild> = Vec::new();
        for b in &self.builds {
            let goos = targets(&b.goos, DEFAULT_GOOS);
            let goarch = targets(&b.goarch, DEFAULT_GOARCH);
            if !goos.contains(&"linux") || !goarch.contains(&vars.arch.as_str()) {
                continue;
            }
            let binary = b.binary.clone().unwrap_or_else(|| self.project().to_string());
            if out.iter().any(|o| o.binary == binary) {
                bail!("two linux/{} builds make {binary}", vars.arch);
            }
            let ldflags = match &b.ldflags {
                Some(l) => l.join(" "),
                None => DEFAULT_LDFLAGS.to_string(),
            };
            let mut env = Vec::new();
            for kv in &b.env {
                let (k, v) =
                    kv.split_once('=').with_context(|| format!("build {binary}: env entry {kv:?} is not KEY=VALUE"))?;
                env.push((k.to_string(), render(v, vars, self.project())?));
            }
            let flags = b
                .flags
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|f| render(f, vars, self.project()))
                .collect::<Result<_>>()?;
            out.push(GoBuild {
                id: b.id.clone(),
                main: b.main.clone().unwrap_or_else(|| ".".to_string()),
                ldflags: render(&ldflags, vars, self.project()).with_context(|| format!("build {binary}: ldflags"))?,
                binary,
                env,
                flags,
            });
        }
        if out.is_empty() {
            bail!(".goreleaser.yml has no build for linux/{}", vars.arch);
        }
        Ok(out)
    }

    /// The linux builds the deb packs (its `ids`; all when it lists none): building the others
    /// would only cost time.
    pub fn deb_builds(&self, vars: &Vars) -> Result<Vec<GoBuild>> {
        let nfpm = self.deb_nfpm()?;
        Ok(self.linux_builds(vars)?.into_iter().filter(|b| nfpm.packs(b)).collect())
    }

    fn deb_nfpm(&self) -> Result<&Nfpm> {
        self.nfpms
            .iter()
            .find(|n| n.formats.is_empty() || n.formats.iter().any(|f| f == "deb"))
            .context(".goreleaser.yml has no nfpms entry for deb")
    }

    pub fn hooks(&self) -> Vec<HookCmd> {
        self.before
            .hooks
            .iter()
            .map(|h| match h {
                Hook::Line(cmd) => HookCmd { cmd: cmd.clone(), dir: None },
                Hook::Full { cmd, dir } => HookCmd { cmd: cmd.clone(), dir: dir.clone() },
            })
            .collect()
    }

    /// The .deb contents: the binaries of `builds` (found in `bin_dir`) under `bindir`, and the
    /// `nfpms` contents taken from the source tree at `root`.
    pub fn deb_layout(
        &self,
        builds: &[GoBuild],
        root: &Path,
        bin_dir: &Path,
        vars: &Vars,
    ) -> Result<(Layout, Vec<String>)> {
        let nfpm = self.deb_nfpm()?;
        let mut layout = Layout { origin: root.display().to_string(), ..Layout::default() };
        let mut warnings = Vec::new();
        let bindir = nfpm.bindir.as_deref().unwrap_or("/usr/bin").trim_end_matches('/');
        for b in builds.iter().filter(|b| nfpm.packs(b)) {
            layout.add(bin_dir.join(&b.binary), format!("{bindir}/{}", b.binary), 0o755, false);
        }
        for c in &nfpm.contents {
            add_content(&mut layout, &mut warnings, c, root, vars, self.project())?;
        }
        Ok((layout, warnings))
    }
}

impl Nfpm {
    /// nfpm packs only the builds it lists (all of them when it lists none).
    fn packs(&self, b: &GoBuild) -> bool {
        self.ids.is_empty() || b.id.as_ref().is_some_and(|id| self.ids.contains(id))
    }
}

fn add_content(
    layout: &mut Layout,
    warnings: &mut Vec<String>,
    c: &Content,
    root: &Path,
    vars: &Vars,
    project: &str,
) -> Result<()> {
    let dst = render(&c.dst, vars, project)?;
    let mode = c.file_info.as_ref().and_then(|f| f.mode);
    let conffile = match c.kind.as_deref().unwrap_or("") {
        "dir" => {
            layout.dirs.push((dst.trim_end_matches('/').to_string(), mode.unwrap_or(0o755)));
            return Ok(());
        }
        "" => false,
        "config" | "config|noreplace" => true,
        other => bail!("nfpms contents {dst}: type {other:?} is not supported by agentsh-bench"),
    };
    let src = c.src.as_deref().with_context(|| format!("nfpms contents {dst}: no src"))?;
    let src = render(src, vars, project)?;
    let is_glob = src.contains(['*', '?', '[']);
    let files = if is_glob { expand_glob(root, &src)? } else { vec![root.join(&src)] };
    if files.is_empty() {
        // nfpm skips a glob that matches nothing (the release file relies on it for optional
        // libraries); say so, since a missing .so is worth knowing about.
        warnings.push(format!("nfpms contents: {src} matched no file; {dst} stays empty"));
    }
    for f in files {
        if !f.is_file() {
            bail!("nfpms contents: {} does not exist in the source tree", f.display());
        }
        let name = f.file_name().context("source file without a name")?.to_string_lossy().into_owned();
        // A glob, or a dst ending in '/', names a directory; otherwise dst is the file itself.
        let target =
            if is_glob || dst.ends_with('/') { format!("{}/{name}", dst.trim_end_matches('/')) } else { dst.clone() };
        let mode = match mode {
            Some(m) => m,
            None => file_mode(&f)?,
        };
        layout.add(f, target, mode, conffile);
    }
    Ok(())
}

fn file_mode(p: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?.permissions().mode() & 0o7777)
}

fn targets<'a>(listed: &'a [String], default: &'a [&'a str]) -> Vec<&'a str> {
    if listed.is_empty() { default.to_vec() } else { listed.iter().map(String::as_str).collect() }
}

/// Expands `{{ .Field }}` (spaces optional). Unknown fields and template functions are errors:
/// passing `{{...}}` through to `go build` would give a binary with a wrong version silently.
pub fn render(s: &str, vars: &Vars, project: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").with_context(|| format!("unclosed {{{{ in {s:?}"))?;
        let inner = after[..end].trim();
        out.push_str(&field(inner, vars, project).with_context(|| format!("template {s:?}"))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn field(inner: &str, vars: &Vars, project: &str) -> Result<String> {
    if let Some(var) = inner.strip_prefix(".Env.") {
        return std::env::var(var).with_context(|| format!("environment variable {var} is not set"));
    }
    Ok(match inner {
        ".Version" => vars.version.clone(),
        ".Tag" => format!("v{}", vars.version),
        ".ShortCommit" => vars.short_commit.clone(),
        ".Commit" | ".FullCommit" => vars.full_commit.clone(),
        ".Os" => "linux".to_string(),
        ".Arch" => vars.arch.clone(),
        ".ProjectName" => project.to_string(),
        ".Date" => humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        other => bail!("unsupported template {{{{ {other} }}}}"),
    })
}

/// Files matching `pattern` (relative to `root`), sorted. Wildcards (`*`, `?`) are allowed in the
/// last path component only, which is all the release files use.
fn expand_glob(root: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if dir.contains(['*', '?', '[']) || name.contains('[') {
        bail!("glob {pattern:?}: only * and ? in the last component are supported");
    }
    let dir = root.join(dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() && wildcard(name.as_bytes(), entry.file_name().as_encoded_bytes()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&pat[1..], name) || (!name.is_empty() && wildcard(pat, &name[1..])),
        (Some(b'?'), Some(_)) => wildcard(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pat[1..], &name[1..]),
        _ => false,
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// `mode: 0644`: YAML 1.2 (serde_yaml) reads a leading-zero number as a string, goreleaser (Go's
/// YAML) as octal; both forms and `0o644` end as the same permission bits.
fn octal_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_yaml::Value>::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(serde_yaml::Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("bad mode {n}"))),
        Some(serde_yaml::Value::String(s)) => {
            let digits = s.trim_start_matches("0o");
            u32::from_str_radix(digits, 8).map(Some).map_err(|_| D::Error::custom(format!("bad mode {s:?}")))
        }
        Some(other) => Err(D::Error::custom(format!("bad mode {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YML: &str = r#"
version: 2
project_name: agentsh
before:
  hooks:
    - go mod download
    - ./scripts/build-envshim.sh
    - cmd: make lib
      dir: shim
builds:
  - id: agentsh-linux-amd64
    main: ./cmd/agentsh
    binary: agentsh
    env:
      - CGO_ENABLED=1
    goos: [linux]
    goarch: [amd64]
    ldflags:
      - -s -w -X main.version={{.Version}} -X main.commit={{ .ShortCommit }}
  - id: agentsh-linux-arm64
    main: ./cmd/agentsh
    binary: agentsh
    env: [CGO_ENABLED=1, CC=aarch64-linux-gnu-gcc]
    goos: [linux]
    goarch: [arm64]
  - id: agentsh-darwin
    main: ./cmd/agentsh
    binary: agentsh
    goos: [darwin]
    goarch: [amd64, arm64]
  - id: shim-linux
    main: ./cmd/agentsh-shell-shim
    binary: agentsh-shell-shim
    env: [CGO_ENABLED=0]
    goos: [linux]
    goarch: [amd64, arm64]
    ldflags: -s -w
  - id: not-packaged
    main: ./cmd/tool
    binary: tool
    goos: [linux]
    goarch: [amd64]
    ldflags: [-s]
nfpms:
  - id: agentsh
    ids: [agentsh-linux-amd64, agentsh-linux-arm64, shim-linux]
    formats: [deb, rpm]
    bindir: /usr/bin
    contents:
      - src: packaging/config.yaml
        dst: /etc/agentsh/config.yaml
        type: config|noreplace
        file_info:
          mode: 0644
      - src: build/envshim/linux_{{ .Arch }}/*.so
        dst: /usr/lib/agentsh/
      - src: build/missing/linux_{{ .Arch }}/*.so
        dst: /usr/lib/agentsh/
      - src: packaging/bash_startup.sh
        dst: /usr/lib/agentsh/bash_startup.sh
        file_info:
          mode: 0o755
      - src: configs/policies/*.yaml
        dst: /etc/agentsh/policies/
        type: config
        file_info:
          mode: 0644
      - dst: /etc/agentsh/policies
        type: dir
        file_info:
          mode: 0755
"#;

    fn vars() -> Vars {
        Vars {
            version: "0.16.9".into(),
            short_commit: "6e3cfb5".into(),
            full_commit: "6e3cfb5b18".into(),
            arch: "amd64".into(),
        }
    }

    #[test]
    fn linux_builds_for_the_host_arch_with_ldflags_expanded() {
        let cfg = Config::parse(YML).unwrap();
        let builds = cfg.linux_builds(&vars()).unwrap();
        let names: Vec<&str> = builds.iter().map(|b| b.binary.as_str()).collect();
        assert_eq!(names, ["agentsh", "agentsh-shell-shim", "tool"]);
        let packed: Vec<String> = cfg.deb_builds(&vars()).unwrap().into_iter().map(|b| b.binary).collect();
        assert_eq!(packed, ["agentsh", "agentsh-shell-shim"], "tool is not in the nfpm's ids");
        assert_eq!(builds[0].main, "./cmd/agentsh");
        assert_eq!(builds[0].ldflags, "-s -w -X main.version=0.16.9 -X main.commit=6e3cfb5");
        assert_eq!(builds[0].env, [("CGO_ENABLED".to_string(), "1".to_string())]);
        assert_eq!(builds[1].ldflags, "-s -w");
        assert_eq!(builds[1].env, [("CGO_ENABLED".to_string(), "0".to_string())]);
        // arm64 picks the arm64 build (and its cross compiler), not the amd64 one.
        let arm = cfg.linux_builds(&Vars { arch: "arm64".into(), ..vars() }).unwrap();
        assert!(arm[0].env.iter().any(|(k, v)| k == "CC" && v == "aarch64-linux-gnu-gcc"));
        assert!(arm[0].ldflags.contains("main.version=0.16.9"), "goreleaser's default ldflags");
        assert!(cfg.linux_builds(&Vars { arch: "riscv64".into(), ..vars() }).is_err());
    }

    #[test]
    fn hooks_keep_order_and_dir() {
        let hooks = Config::parse(YML).unwrap().hooks();
        assert_eq!(hooks[1], HookCmd { cmd: "./scripts/build-envshim.sh".into(), dir: None });
        assert_eq!(hooks[2], HookCmd { cmd: "make lib".into(), dir: Some("shim".into()) });
    }

    #[test]
    fn templates_expand_or_fail() {
        let v = vars();
        assert_eq!(
            render("{{.Version}}-{{ .ShortCommit }}_{{.Os}}_{{ .Arch }}", &v, "agentsh").unwrap(),
            "0.16.9-6e3cfb5_linux_amd64"
        );
        assert_eq!(render("no template", &v, "agentsh").unwrap(), "no template");
        assert!(render("{{ index .Env \"X\" }}", &v, "agentsh").is_err());
        assert!(render("{{ .Version", &v, "agentsh").is_err());
    }

    #[test]
    fn nfpm_contents_map_to_the_deb_layout() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for f in [
            "packaging/config.yaml",
            "packaging/bash_startup.sh",
            "build/envshim/linux_amd64/libenvshim.so",
            "build/envshim/linux_arm64/libenvshim.so",
            "configs/policies/default.yaml",
            "configs/policies/strict.yaml",
            "configs/policies/README.md",
        ] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), b"x").unwrap();
        }
        let cfg = Config::parse(YML).unwrap();
        let builds = cfg.linux_builds(&vars()).unwrap();
        let (layout, warnings) = cfg.deb_layout(&builds, r, Path::new("/out"), &vars()).unwrap();
        let got: Vec<(&str, u32, bool)> = layout.files.iter().map(|f| (f.dst.as_str(), f.mode, f.conffile)).collect();
        assert_eq!(
            got,
            [
                ("/usr/bin/agentsh", 0o755, false),
                ("/usr/bin/agentsh-shell-shim", 0o755, false),
                ("/etc/agentsh/config.yaml", 0o644, true),
                ("/usr/lib/agentsh/libenvshim.so", 0o644, false),
                ("/usr/lib/agentsh/bash_startup.sh", 0o755, false),
                ("/etc/agentsh/policies/default.yaml", 0o644, true),
                ("/etc/agentsh/policies/strict.yaml", 0o644, true),
            ]
        );
        assert_eq!(layout.files[0].src, Path::new("/out/agentsh"));
        assert_eq!(layout.files[3].src, r.join("build/envshim/linux_amd64/libenvshim.so"));
        assert_eq!(layout.dirs, [("/etc/agentsh/policies".to_string(), 0o755)]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("build/missing/linux_amd64/*.so"), "{warnings:?}");
    }

    #[test]
    fn missing_literal_src_and_unknown_types_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let cfg = Config::parse(YML).unwrap();
        let builds = cfg.linux_builds(&vars()).unwrap();
        let e = cfg.deb_layout(&builds, root.path(), Path::new("/out"), &vars()).unwrap_err();
        assert!(format!("{e:#}").contains("packaging/config.yaml"), "{e:#}");
        let odd = "nfpms:\n  - contents:\n      - src: a\n        dst: /b\n        type: symlink\n";
        let cfg = Config::parse(odd).unwrap();
        assert!(
            format!("{:#}", cfg.deb_layout(&[], root.path(), root.path(), &vars()).unwrap_err()).contains("symlink")
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.so", b"libenvshim.so"));
        assert!(wildcard(b"lib?nvshim.*", b"libenvshim.so"));
        assert!(!wildcard(b"*.so", b"libenvshim.so.1"));
        assert!(wildcard(b"*", b""));
    }
}

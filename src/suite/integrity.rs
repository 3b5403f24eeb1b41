//! Target integrity: a manifest of the target's file system before the first iteration and after
//! the last, taken on the observation channel (so agentsh governs neither the walk nor what it
//! reads), and compared. A path that disappeared or changed, or appeared, outside the places tests
//! and agentsh are expected to write (`scenarios/integrity.toml`) is a finding: a security layer
//! that damages the host it protects is a regression users must see, whichever test did it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::verdict::Verdict;
use crate::control::Conn;
use crate::exit::usage;

/// The walker (Python: python3 is on every target). Its header says what it records and why it
/// never enters other mounts.
const SCRIPT: &str = include_str!("../../assets/scripts/manifest.py");
/// ~1 s for the ~13 000 paths of the local image; generous for a full VM on a slow disk.
const TIMEOUT: Duration = Duration::from_secs(300);
/// How many changes the evidence column names; integrity.txt has them all.
const EVIDENCE_PATHS: usize = 5;
/// Trees the suite checks writes to are blocked: damage there must always be caught, so no
/// exclude may cover them whole.
const PROTECTED: &[&str] =
    &["/etc", "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/local/bin", "/bin", "/sbin", "/lib"];

/// One path as the walker saw it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// f file, d directory, l symlink, c/b device, p FIFO, s socket, m another mount (not
    /// walked), e unreadable.
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime_ns: Option<i64>,
    /// Regular files of at most 64 KiB.
    pub sha256: Option<String>,
    pub link: Option<String>,
    pub fstype: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub entries: BTreeMap<String, Entry>,
    /// The walk's own time on the target (without ssh and Python's start).
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Disappeared,
    Appeared,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: Kind,
    /// What differs, each as `field before → after` (empty unless Changed).
    pub fields: Vec<String>,
}

/// One excluded prefix of `scenarios/integrity.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    pub prefix: String,
    #[serde(default)]
    pub allow: Allow,
    pub reason: String,
}

/// Which changes an exclude expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Allow {
    /// Anything under the prefix may appear, change or disappear.
    #[default]
    Any,
    /// New paths may appear; what was there before must stay as it was (a workspace that tests
    /// write in, but whose dotfiles and ~/.ssh/authorized_keys are the host's).
    New,
}

#[derive(Debug, Clone, Default)]
pub struct Excludes(pub Vec<Exclude>);

impl Excludes {
    /// The exclude under which a change is expected: its path is the prefix or under it
    /// (`/var/log` covers `/var/log/x`, not `/var/logs`), and the exclude allows its kind.
    pub fn expecting(&self, c: &Change) -> Option<&Exclude> {
        self.0.iter().find(|e| under(&c.path, &e.prefix) && (e.allow == Allow::Any || c.kind == Kind::Appeared))
    }

    /// Whether nothing about `path` is checked (it is under an `allow = "any"` exclude).
    fn ignores(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.allow == Allow::Any && under(path, &e.prefix))
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn default_path() -> PathBuf {
    crate::paths::scenarios_dir().join("integrity.toml")
}

/// Loads and checks the excludes; a bad record is refused with its file and line (exit 3),
/// before anything is provisioned.
pub fn load(path: &Path) -> Result<Excludes> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        exclude: Vec<toml::Spanned<Exclude>>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let f: File = toml::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let mut out: Vec<Exclude> = Vec::new();
    for spanned in f.exclude {
        let line = crate::text::line_of(&text, spanned.span().start);
        let e = spanned.into_inner();
        let at = format!("{}:{line}: exclude {:?}", path.display(), e.prefix);
        check(&e, &out).map_err(|msg| usage(format!("{at}: {msg}")))?;
        out.push(e);
    }
    Ok(Excludes(out))
}

fn check(e: &Exclude, earlier: &[Exclude]) -> std::result::Result<(), String> {
    let p = &e.prefix;
    if !p.starts_with('/')
        || p == "/"
        || p.ends_with('/')
        || p.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("prefix is an absolute path below / without //, . or .. and without a trailing /".into());
    }
    if let Some(t) = PROTECTED.iter().find(|t| under(t, p)) {
        return Err(format!(
            "covers all of {t}: the suite checks writes there are blocked, so damage there must be caught; exclude narrower paths"
        ));
    }
    if e.reason.trim().is_empty() {
        return Err("an exclude says why the path may change (reason)".into());
    }
    if let Some(prev) = earlier.iter().find(|x| under(p, &x.prefix) || under(&x.prefix, p)) {
        return Err(format!("overlaps the exclude {:?}", prev.prefix));
    }
    Ok(())
}

/// Runs the walker on the observation channel and reads its JSON lines.
pub async fn take(observe: &Conn) -> Result<Manifest> {
    let out = observe
        .run_with_stdin("python3 -B -I -", Some(SCRIPT.as_bytes()), TIMEOUT)
        .await
        .context("taking a manifest")?;
    anyhow::ensure!(out.ok(), "the manifest script failed: {}", out.describe());
    parse(&out.stdout)
}

/// Reads the walker's output; refuses one without its end line (a cut-off stream would look like
/// files that disappeared) or whose count disagrees.
pub fn parse(text: &str) -> Result<Manifest> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct End {
        end: bool,
        count: usize,
        seconds: f64,
    }
    #[derive(Deserialize)]
    struct Line {
        path: String,
        #[serde(flatten)]
        entry: Entry,
    }
    let mut m = Manifest::default();
    let mut lines = 0;
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("{\"end\":") {
            let end: End = serde_json::from_str(l).with_context(|| format!("manifest line {}: {l}", i + 1))?;
            anyhow::ensure!(
                end.end && end.count == lines,
                "the manifest ends after {lines} paths but says {}",
                end.count
            );
            m.seconds = end.seconds;
            return Ok(m);
        }
        let line: Line = serde_json::from_str(l).with_context(|| format!("manifest line {}: {l}", i + 1))?;
        lines += 1;
        m.entries.insert(line.path, line.entry);
    }
    anyhow::bail!("the manifest stopped after {lines} paths without its end line")
}

impl Manifest {
    /// The manifest in the walker's own format, so that [`parse`] reads it back.
    pub fn to_jsonl(&self) -> Result<String> {
        let mut out = String::new();
        for (path, e) in &self.entries {
            let mut v = serde_json::to_value(e)?;
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, x| !x.is_null());
            }
            // The path first, as the walker writes it (a manifest is read by people too); the
            // entry always has its type, so its object is never empty.
            let fields = serde_json::to_string(&v)?;
            out.push_str(&format!(
                "{{\"path\":{},{}\n",
                serde_json::to_string(path)?,
                fields.strip_prefix('{').unwrap_or(&fields)
            ));
        }
        // The end line as the walker writes it, "end" first: that is how parse tells it apart.
        out.push_str(&format!("{{\"end\":true,\"count\":{},\"seconds\":{}}}\n", self.entries.len(), self.seconds));
        Ok(out)
    }
}

/// Every difference between two manifests, in path order.
fn changes(before: &Manifest, after: &Manifest) -> Vec<Change> {
    let mut out = Vec::new();
    for (path, b) in &before.entries {
        match after.entries.get(path) {
            None => out.push(Change { path: path.clone(), kind: Kind::Disappeared, fields: Vec::new() }),
            Some(a) => {
                let fields = differences(b, a);
                if !fields.is_empty() {
                    out.push(Change { path: path.clone(), kind: Kind::Changed, fields });
                }
            }
        }
    }
    for path in after.entries.keys().filter(|p| !before.entries.contains_key(*p)) {
        out.push(Change { path: path.clone(), kind: Kind::Appeared, fields: Vec::new() });
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

fn differences(b: &Entry, a: &Entry) -> Vec<String> {
    fn field<T: PartialEq + std::fmt::Debug>(
        out: &mut Vec<String>,
        name: &str,
        b: &Option<T>,
        a: &Option<T>,
        show: fn(&T) -> String,
    ) {
        if b != a {
            let s = |v: &Option<T>| v.as_ref().map_or("-".to_string(), show);
            out.push(format!("{name} {} → {}", s(b), s(a)));
        }
    }
    let mut out = Vec::new();
    if b.kind != a.kind {
        out.push(format!("type {} → {}", b.kind, a.kind));
    }
    field(&mut out, "mode", &b.mode, &a.mode, |m| format!("{m:04o}"));
    field(&mut out, "uid", &b.uid, &a.uid, u32::to_string);
    field(&mut out, "gid", &b.gid, &a.gid, u32::to_string);
    // A directory's size and mtime change whenever an entry is added or removed, even one that is
    // gone again (a test's file, cleaned up): what lasts shows as the entry itself.
    if !(b.kind == "d" && a.kind == "d") {
        field(&mut out, "size", &b.size, &a.size, u64::to_string);
        field(&mut out, "mtime_ns", &b.mtime_ns, &a.mtime_ns, i64::to_string);
    }
    field(&mut out, "sha256", &b.sha256, &a.sha256, |h| h.chars().take(12).collect());
    field(&mut out, "link", &b.link, &a.link, String::clone);
    field(&mut out, "fstype", &b.fstype, &a.fstype, String::clone);
    field(&mut out, "error", &b.error, &a.error, String::clone);
    out
}

/// What changed outside the excluded prefixes.
pub fn diff(before: &Manifest, after: &Manifest, excludes: &Excludes) -> Vec<Change> {
    changes(before, after).into_iter().filter(|c| excludes.expecting(c).is_none()).collect()
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Disappeared => write!(f, "disappeared {}", self.path),
            Kind::Appeared => write!(f, "appeared {}", self.path),
            Kind::Changed => write!(f, "changed {} ({})", self.path, self.fields.join(", ")),
        }
    }
}

/// The changes with everything under a directory that appeared or disappeared folded into it:
/// `/usr/share/doc` gone is one finding, not a thousand.
fn folded(changes: &[Change]) -> Vec<(&Change, usize)> {
    let mut out: Vec<(&Change, usize)> = Vec::new();
    for c in changes {
        match out.last_mut() {
            Some((top, n)) if top.kind == c.kind && c.kind != Kind::Changed && under(&c.path, &top.path) => *n += 1,
            _ => out.push((c, 0)),
        }
    }
    out
}

/// The integrity verdict of one target, its evidence and detail; writes `integrity.txt` (every
/// unexpected change, and how many changes each exclude absorbed) into `target_dir`.
pub fn judge(
    before: &Manifest,
    after: &Manifest,
    excludes: &Excludes,
    target_dir: &Path,
) -> Result<(Verdict, String, String)> {
    let all = changes(before, after);
    let unexpected = diff(before, after, excludes);
    let unchanged = before
        .entries
        .iter()
        .filter(|(p, b)| !excludes.ignores(p) && after.entries.get(*p).is_some_and(|a| differences(b, a).is_empty()))
        .count();
    let detail = format!(
        "manifest before: {} paths in {:.2} s, after: {} paths in {:.2} s; {} changes under excluded prefixes (scenarios/integrity.toml)",
        before.entries.len(),
        before.seconds,
        after.entries.len(),
        after.seconds,
        all.len() - unexpected.len()
    );
    let path = target_dir.join("integrity.txt");
    std::fs::write(&path, report(before, after, excludes, all, &unexpected, &detail))
        .with_context(|| format!("writing {}", path.display()))?;
    if unexpected.is_empty() {
        return Ok((Verdict::Held, format!("{unchanged} paths unchanged"), detail));
    }
    Ok((Verdict::Violated, evidence(&unexpected), detail))
}

/// integrity.txt: every unexpected change (with both entries when a file changed in place), what
/// each exclude absorbed, and the expected changes folded by directory.
fn report(
    before: &Manifest,
    after: &Manifest,
    excludes: &Excludes,
    all: Vec<Change>,
    unexpected: &[Change],
    detail: &str,
) -> String {
    let mut absorbed: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &all {
        if let Some(e) = excludes.expecting(c) {
            *absorbed.entry(e.prefix.as_str()).or_default() += 1;
        }
    }
    let mut report = format!("# target integrity: {} unexpected changes\n# {detail}\n", unexpected.len());
    for c in unexpected {
        report.push_str(&format!("{c}\n"));
        if c.kind == Kind::Changed {
            report.push_str(&format!(
                "    before: {}\n    after:  {}\n",
                json(before.entries.get(&c.path)),
                json(after.entries.get(&c.path))
            ));
        }
    }
    // What the excludes let through, to keep them honest: one that absorbs nothing run after run
    // is a candidate for removal, one that absorbs the unexpected is too wide.
    report.push_str("\n# changes absorbed by each exclude\n");
    for e in &excludes.0 {
        report.push_str(&format!("{:>6}  {}\n", absorbed.get(e.prefix.as_str()).copied().unwrap_or(0), e.prefix));
    }
    let expected: Vec<Change> = all.into_iter().filter(|c| excludes.expecting(c).is_some()).collect();
    report.push_str("\n# the expected changes (under an exclude)\n");
    for (c, n) in folded(&expected) {
        report.push_str(&if n > 0 { format!("{c} (and {n} paths under it)\n") } else { format!("{c}\n") });
    }
    report
}

/// The row's evidence: the first few unexpected changes, folded by directory.
fn evidence(unexpected: &[Change]) -> String {
    let f = folded(unexpected);
    let mut evidence = format!("{} unexpected changes: ", unexpected.len());
    let shown: Vec<String> = f
        .iter()
        .take(EVIDENCE_PATHS)
        .map(|(c, n)| if *n > 0 { format!("{c} (and {n} paths under it)") } else { c.to_string() })
        .collect();
    evidence.push_str(&shown.join("; "));
    if f.len() > EVIDENCE_PATHS {
        evidence.push_str(&format!("; … {} more", f.len() - EVIDENCE_PATHS));
    }
    evidence.push_str(" (all in integrity.txt)");
    evidence
}

fn json(e: Option<&Entry>) -> String {
    e.and_then(|e| serde_json::to_string(e).ok()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sha: &str) -> Entry {
        Entry {
            kind: "f".into(),
            mode: Some(0o644),
            uid: Some(0),
            gid: Some(0),
            size: Some(3),
            mtime_ns: Some(1),
            sha256: Some(sha.into()),
            link: None,
            fstype: None,
            error: None,
        }
    }

    fn dir() -> Entry {
        Entry { kind: "d".into(), sha256: None, size: Some(4096), ..file("") }
    }

    fn manifest(entries: &[(&str, Entry)]) -> Manifest {
        Manifest { entries: entries.iter().map(|(p, e)| (p.to_string(), e.clone())).collect(), seconds: 0.0 }
    }

    fn excludes(prefixes: &[&str]) -> Excludes {
        Excludes(
            prefixes.iter().map(|p| Exclude { prefix: p.to_string(), allow: Allow::Any, reason: "r".into() }).collect(),
        )
    }

    #[test]
    fn disappeared_changed_and_appeared_are_reported_in_path_order() {
        let before = manifest(&[
            ("/etc", dir()),
            ("/etc/passwd", file("aa")),
            ("/usr/share/x", file("bb")),
            ("/usr/share/y", file("cc")),
        ]);
        let mut changed = file("cc");
        changed.sha256 = Some("dd".into());
        changed.mode = Some(0o4755);
        let after = manifest(&[
            ("/etc", dir()),
            ("/etc/passwd", file("aa")),
            ("/usr/share/y", changed),
            ("/usr/bin/evil", file("ee")),
        ]);
        let d = diff(&before, &after, &Excludes::default());
        let got: Vec<(&str, Kind)> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            got,
            [("/usr/bin/evil", Kind::Appeared), ("/usr/share/x", Kind::Disappeared), ("/usr/share/y", Kind::Changed)]
        );
        assert_eq!(d[2].fields, ["mode 0644 → 4755", "sha256 cc → dd"]);
        assert!(diff(&before, &before, &Excludes::default()).is_empty());
    }

    #[test]
    fn excluded_prefixes_are_honoured_and_only_whole_components_match() {
        let before = manifest(&[
            ("/var/log", dir()),
            ("/var/log/a", file("1")),
            ("/var/logs", file("1")),
            ("/tmp/x", file("1")),
        ]);
        let after = manifest(&[
            ("/var/log", dir()),
            ("/var/log/a", file("2")),
            ("/var/log/b", file("2")),
            ("/var/logs", file("2")),
        ]);
        let d = diff(&before, &after, &excludes(&["/var/log", "/tmp"]));
        assert_eq!(
            d.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
            ["/var/logs"],
            "/var/logs is not under /var/log"
        );
        assert_eq!(diff(&before, &after, &Excludes::default()).len(), 4);
    }

    #[test]
    fn an_allow_new_exclude_takes_new_paths_but_guards_what_was_there() {
        let mut x = excludes(&["/root"]);
        x.0[0].allow = Allow::New;
        let before = manifest(&[("/root/.ssh/authorized_keys", file("k")), ("/root/.bashrc", file("b"))]);
        let after = manifest(&[("/root/.ssh/authorized_keys", file("evil")), ("/root/test-123.txt", file("t"))]);
        let d = diff(&before, &after, &x);
        let got: Vec<(&str, Kind)> = d.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(got, [("/root/.bashrc", Kind::Disappeared), ("/root/.ssh/authorized_keys", Kind::Changed)]);
    }

    #[test]
    fn a_directory_whose_entries_came_and_went_is_unchanged_but_its_owner_is_not() {
        let mut d2 = dir();
        d2.mtime_ns = Some(99);
        d2.size = Some(8192);
        assert!(
            diff(&manifest(&[("/etc", dir())]), &manifest(&[("/etc", d2.clone())]), &Excludes::default()).is_empty()
        );
        d2.uid = Some(1000);
        assert_eq!(
            diff(&manifest(&[("/etc", dir())]), &manifest(&[("/etc", d2)]), &Excludes::default())[0].fields,
            ["uid 0 → 1000"]
        );
        // A file that became a directory is a change of type.
        let d = diff(&manifest(&[("/etc/x", file("a"))]), &manifest(&[("/etc/x", dir())]), &Excludes::default());
        assert!(d[0].fields.iter().any(|f| f == "type f → d"), "{:?}", d[0].fields);
    }

    #[test]
    fn parse_refuses_a_cut_off_manifest() {
        let ok = "{\"path\":\"/\",\"type\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,\"size\":4096,\"mtime_ns\":5}\n\
                  {\"path\":\"/proc\",\"type\":\"m\",\"fstype\":\"proc\"}\n{\"end\":true,\"count\":2,\"seconds\":0.5}\n";
        let m = parse(ok).unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.entries["/proc"].fstype.as_deref(), Some("proc"));
        let cut = ok.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(format!("{:#}", parse(&cut).unwrap_err()).contains("without its end line"));
        let wrong = ok.replace("\"count\":2", "\"count\":3");
        assert!(parse(&wrong).is_err());
        let again = parse(&m.to_jsonl().unwrap()).unwrap();
        assert_eq!((again.entries, again.seconds), (m.entries, m.seconds), "what to_jsonl writes, parse reads back");
    }

    #[test]
    fn judge_writes_every_change_and_names_the_first_few() {
        let mut before = vec![("/usr/share/doc".to_string(), dir())];
        before.extend((0..20).map(|i| (format!("/usr/share/doc/f{i:02}"), file("a"))));
        before.push(("/var/log/x".into(), file("a")));
        let before = Manifest { entries: before.into_iter().collect(), seconds: 0.1 };
        let after = manifest(&[("/var/log/x", file("b")), ("/etc/evil", file("c"))]);
        let dir = tempfile::tempdir().unwrap();
        let (v, evidence, detail) = judge(&before, &after, &excludes(&["/var/log"]), dir.path()).unwrap();
        assert_eq!(v, Verdict::Violated);
        assert_eq!(
            evidence,
            "22 unexpected changes: appeared /etc/evil; disappeared /usr/share/doc (and 20 paths under it) (all in integrity.txt)"
        );
        assert!(detail.contains("1 changes under excluded prefixes"), "{detail}");
        let txt = std::fs::read_to_string(dir.path().join("integrity.txt")).unwrap();
        assert!(txt.contains("disappeared /usr/share/doc/f19\n") && txt.contains("     1  /var/log\n"), "{txt}");

        let (v, evidence, _) = judge(&after, &after, &excludes(&["/var/log"]), dir.path()).unwrap();
        assert_eq!((v, evidence.as_str()), (Verdict::Held, "1 paths unchanged"));
    }

    fn load_str(body: &str) -> std::result::Result<Excludes, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("integrity.toml");
        std::fs::write(&p, body).unwrap();
        load(&p).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn bad_excludes_are_refused_with_file_and_line() {
        let good = "[[exclude]]\nprefix = \"/var/log\"\nreason = \"logs\"\n";
        assert_eq!(load_str(good).unwrap().0.len(), 1);
        let e = load_str(&format!("{good}\n[[exclude]]\nprefix = \"/etc\"\nreason = \"x\"\n")).unwrap_err();
        assert!(e.contains("integrity.toml:5: exclude \"/etc\"") && e.contains("covers all of /etc"), "{e}");
        let e = load_str(&format!("{good}[[exclude]]\nprefix = \"/var/log/apt\"\nreason = \"x\"\n")).unwrap_err();
        assert!(e.contains("integrity.toml:4:") && e.contains("overlaps"), "{e}");
        let e = load_str("[[exclude]]\nprefix = \"/tmp/\"\nreason = \"x\"\n").unwrap_err();
        assert!(e.contains(":1:") && e.contains("trailing"), "{e}");
        let e = load_str("[[exclude]]\nprefix = \"/tmp\"\nreason = \" \"\n").unwrap_err();
        assert!(e.contains("reason"), "{e}");
        let e = load_str("[[exclude]]\nprefix = \"/tmp\"\nwhy = \"x\"\n").unwrap_err();
        assert!(e.contains("integrity.toml") && e.contains("line 3") && e.contains("unknown field `why`"), "{e}");
        let e = load_str("[[exclude]]\nprefix = \"/usr\"\nreason = \"x\"\n").unwrap_err();
        assert!(e.contains("covers all of /usr"), "{e}");
        let e = load_str("[[exclude]]\nprefix = \"/\"\nreason = \"x\"\n").unwrap_err();
        assert!(e.contains("below /"), "{e}");
    }

    #[test]
    fn the_shipped_excludes_load() {
        let x = load(&default_path()).unwrap_or_else(|e| panic!("{e:#}"));
        let c = |path: &str, kind| Change { path: path.into(), kind, fields: Vec::new() };
        assert!(x.expecting(&c("/var/lib/agentsh/sessions/s/workspace-mnt", Kind::Appeared)).is_some());
        assert!(x.expecting(&c("/root/soft_del-1.txt", Kind::Appeared)).is_some());
        for kept in
            ["/etc/passwd", "/usr/bin/sudo", "/usr/share/doc", "/root/.ssh/authorized_keys", "/var/lib/dpkg/status"]
        {
            assert!(x.expecting(&c(kept, Kind::Changed)).is_none(), "{kept} must be checked");
        }
    }
}

//! Workloads as data: `scenarios/workloads/<name>.toml`, validated on load into a driver
//! [`Plan`]. Errors name the file and the line. `remote` runs a plan on targets.

pub mod remote;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::exit::usage;
use crate::schema::{Expect, Expected, Load, OpKind, OpSpec, Plan, Via};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[allow(dead_code)] // for people reading the file; shown by `--workload help` later
    description: Option<String>,
    duration: String,
    #[serde(default)]
    warmup: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    late_after_us: Option<u64>,
    #[serde(default)]
    workspace: Option<String>,
    load: toml::Spanned<LoadToml>,
    op: Vec<toml::Spanned<OpToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadToml {
    rate: Option<f64>,
    concurrency: Option<usize>,
    workers: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpToml {
    name: String,
    #[serde(default = "one")]
    weight: u32,
    exec: Option<Vec<String>>,
    expect: Option<Expect>,
    timeout: Option<String>,
    file_cycle: Option<FileCycle>,
    http_get: Option<HttpGet>,
    #[serde(default)]
    noop: bool,
    /// Governed kinds: a command through the shell shim, an exec through the session API, a GET
    /// through the session's proxy. Each needs a `decision`.
    shim: Option<String>,
    session_exec: Option<Vec<String>>,
    proxy_get: Option<String>,
    /// `"allow"` or `"deny"`: what agentsh must decide about a governed op.
    decision: Option<String>,
    /// For a denied op: output only an op that ran can produce.
    effect: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCycle {
    bytes: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpGet {
    path: String,
    #[serde(default = "ok_status")]
    expect_status: u16,
}

fn one() -> u32 {
    1
}

fn ok_status() -> u16 {
    200
}

/// `NAME` → `scenarios/workloads/NAME.toml`; a path is taken as it is.
pub fn path_for(name: &str) -> PathBuf {
    if name.ends_with(".toml") || name.contains('/') {
        PathBuf::from(name)
    } else {
        crate::paths::scenarios_dir().join("workloads").join(format!("{name}.toml"))
    }
}

pub fn load(name: &str) -> Result<Plan> {
    let path = path_for(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| usage(format!("workload {name:?}: cannot read {}: {e}", path.display())))?;
    parse(&text, &path)
}

/// A workload file's text as a [`Plan`], or a usage error that names the file and the line.
pub fn parse(text: &str, path: &Path) -> Result<Plan> {
    // toml's own errors already say "line L, column C".
    let f: File = toml::from_str(text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let src = Source { text, path };
    let load = parse_load(&src, &f.load)?;
    let ops = parse_ops(&src, &f.op)?;
    let duration_ms = src.dur("duration", &f.duration)?;
    if duration_ms == 0 {
        return Err(usage(format!("{}: duration must be above zero", path.display())));
    }
    Ok(Plan {
        name: f.name,
        ops,
        load,
        duration_ms,
        warmup_ms: f.warmup.as_deref().map(|w| src.dur("warmup", w)).transpose()?.unwrap_or(0),
        interval_ms: f.interval.as_deref().map(|w| src.dur("interval", w)).transpose()?.unwrap_or(1000).max(10),
        late_after_us: f.late_after_us.unwrap_or(1000),
        workspace: f.workspace.unwrap_or_else(|| "/root/abench-workspace".into()),
        ungoverned: false,
    })
}

/// The file being parsed, so that every error can name it (and the line, where toml gave a span).
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    /// A usage error at the line where `span` starts.
    fn at(&self, span: std::ops::Range<usize>, msg: String) -> anyhow::Error {
        usage(format!("{}:{}: {msg}", self.path.display(), crate::text::line_of(self.text, span.start)))
    }

    /// A duration field (`"30s"`, `"2m"`) in milliseconds.
    fn dur(&self, what: &str, s: &str) -> Result<u64> {
        humantime::parse_duration(s)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| usage(format!("{}: {what} = {s:?}: {e}", self.path.display())))
    }
}

/// `[load]`: an open-loop rate or a closed-loop concurrency, never both, with a sane number of
/// workers.
fn parse_load(src: &Source, spanned: &toml::Spanned<LoadToml>) -> Result<Load> {
    let l = spanned.get_ref();
    let load = match (l.rate, l.concurrency) {
        (Some(rate), None) if rate > 0.0 && rate <= 1_000_000.0 => {
            Load::Rate { ops_per_s: rate, workers: l.workers.unwrap_or(16) }
        }
        (None, Some(c)) if c > 0 => Load::Concurrency { workers: c },
        _ => {
            return Err(src.at(
                spanned.span(),
                "[load] needs exactly one of rate (0 < ops/s <= 1e6) or concurrency (> 0)".into(),
            ));
        }
    };
    if load.workers() == 0 || load.workers() > 1024 {
        return Err(src.at(spanned.span(), "[load] workers must be 1..=1024".into()));
    }
    Ok(load)
}

/// Every `[[op]]`, in file order; at least one.
fn parse_ops(src: &Source, spanned: &[toml::Spanned<OpToml>]) -> Result<Vec<OpSpec>> {
    if spanned.is_empty() {
        return Err(usage(format!("{}: no [[op]]", src.path.display())));
    }
    let mut ops = Vec::new();
    for s in spanned {
        let op = parse_op(src, s, &ops)?;
        ops.push(op);
    }
    Ok(ops)
}

/// One `[[op]]`: a weight, a name unique among the ops `before` it and usable as an hlog tag, and
/// exactly one kind.
fn parse_op(src: &Source, spanned: &toml::Spanned<OpToml>, before: &[OpSpec]) -> Result<OpSpec> {
    let o = spanned.get_ref();
    let err = |msg: String| src.at(spanned.span(), format!("op {:?}: {msg}", o.name));
    if o.weight == 0 {
        return Err(err("weight must be at least 1".into()));
    }
    if before.iter().any(|p| p.name == o.name) {
        return Err(err("name used twice".into()));
    }
    if o.name.is_empty() || o.name.contains([',', ' ', '/', '\n']) {
        return Err(err("name must be non-empty without ',', ' ' or '/' (it becomes an hlog tag)".into()));
    }
    let governed = o.shim.is_some() || o.session_exec.is_some() || o.proxy_get.is_some();
    let kinds = usize::from(o.exec.is_some())
        + usize::from(o.file_cycle.is_some())
        + usize::from(o.http_get.is_some())
        + usize::from(o.noop)
        + usize::from(o.shim.is_some())
        + usize::from(o.session_exec.is_some())
        + usize::from(o.proxy_get.is_some());
    if kinds != 1 {
        return Err(err("needs exactly one of exec, file_cycle, http_get, noop, shim, session_exec, proxy_get".into()));
    }
    if o.exec.is_none() && !governed && (o.expect.is_some() || o.timeout.is_some()) {
        return Err(err("expect and timeout go with exec and the governed kinds".into()));
    }
    if !governed && (o.decision.is_some() || o.effect.is_some()) {
        return Err(err("decision and effect go with the governed kinds (shim, session_exec, proxy_get)".into()));
    }
    let kind = if governed { governed_kind(src, o, &err)? } else { op_kind(src, o, &err)? };
    Ok(OpSpec { name: o.name.clone(), weight: o.weight, kind })
}

/// The one kind an op has (checked by [`parse_op`]), with its own fields checked; `err` puts the
/// op's name and line on a message.
fn op_kind(src: &Source, o: &OpToml, err: &dyn Fn(String) -> anyhow::Error) -> Result<OpKind> {
    Ok(if let Some(argv) = &o.exec {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(err("exec needs a program".into()));
        }
        let timeout_ms = match &o.timeout {
            Some(t) => src.dur("timeout", t)?,
            None => 30_000,
        };
        OpKind::Exec { argv: argv.clone(), expect: o.expect.clone().unwrap_or_default(), timeout_ms }
    } else if let Some(fc) = &o.file_cycle {
        if fc.bytes == 0 || fc.bytes > 64 << 20 {
            return Err(err("file_cycle bytes must be 1..=64 MiB".into()));
        }
        OpKind::FileCycle { bytes: fc.bytes }
    } else if let Some(h) = &o.http_get {
        if !h.path.starts_with('/') {
            return Err(err("http_get path must start with /".into()));
        }
        OpKind::HttpGet { path: h.path.clone(), expect_status: h.expect_status }
    } else {
        OpKind::Noop
    })
}

/// A governed op: how it reaches agentsh and the decision it must get, both required.
fn governed_kind(src: &Source, o: &OpToml, err: &dyn Fn(String) -> anyhow::Error) -> Result<OpKind> {
    let (via, allow_default) = if let Some(command) = &o.shim {
        if command.trim().is_empty() {
            return Err(err("shim needs a command".into()));
        }
        (Via::Shim { command: command.clone() }, 0)
    } else if let Some(argv) = &o.session_exec {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(err("session_exec needs a program".into()));
        }
        (Via::Session { argv: argv.clone() }, 0)
    } else if let Some(url) = &o.proxy_get {
        if !url.starts_with("http://") || url["http://".len()..].split('/').next().unwrap_or("").is_empty() {
            return Err(err("proxy_get needs an http://HOST/PATH url".into()));
        }
        proxy_target_ok(url).map_err(err)?;
        (Via::Proxy { url: url.clone() }, 200)
    } else {
        return Err(err("not a governed kind".into()));
    };
    let expected = match o.decision.as_deref() {
        None => return Err(err("a governed op needs decision = \"allow\" or \"deny\"".into())),
        Some("allow") => {
            if o.effect.is_some() {
                return Err(err("effect goes with decision = \"deny\"".into()));
            }
            Expected::Allow(o.expect.clone().unwrap_or(Expect { exit: allow_default, ..Expect::default() }))
        }
        Some("deny") => match (&o.effect, &o.expect) {
            (_, Some(_)) => return Err(err("a denied op has an effect, not an expect".into())),
            (Some(effect), None) if !effect.is_empty() => Expected::Deny { effect: effect.clone() },
            _ => return Err(err("decision = \"deny\" needs effect: output only an op that ran can produce".into())),
        },
        Some(other) => return Err(err(format!("unknown decision {other:?} (allow or deny)"))),
    };
    // A governed op normally takes well under a second; one that takes 10 s has met a wedged
    // server, and the worker had better try again with a new session.
    let timeout_ms = match &o.timeout {
        Some(t) => src.dur("timeout", t)?,
        None => 10_000,
    };
    Ok(OpKind::Governed { via, expected, timeout_ms })
}

/// The network rule for `proxy_get`: traffic goes only to loopback or to the harness's own
/// fixtures. Without agentsh the GET is sent straight to the host (`driver::governed::direct_get`),
/// and with agentsh an allowed one goes out through its proxy, so a URL naming any other host
/// would send a workload's load off the target. Its host must be loopback (`127.0.0.0/8`,
/// `localhost`) or a name the target maps to a loopback fixture ([`crate::target::FIXTURE_HOSTS`]);
/// its port, if any, a number or `{fixture}` (the driver's own fixture's port).
fn proxy_target_ok(url: &str) -> std::result::Result<(), String> {
    let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port
        && p != "{fixture}"
        && !p.parse::<u16>().is_ok_and(|n| n > 0)
    {
        return Err(format!("proxy_get {url:?}: port {p:?} is neither a number nor {{fixture}}"));
    }
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback());
    let fixture =
        crate::target::FIXTURE_HOSTS.iter().any(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(host)));
    if loopback || fixture {
        return Ok(());
    }
    let names: Vec<&str> = crate::target::FIXTURE_HOSTS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    Err(format!(
        "proxy_get {url:?}: host {host:?} is not loopback (127.0.0.0/8, localhost) or a fixture host ({}): \
         a workload's traffic stays on the target",
        names.join(", ")
    ))
}

/// `--duration` and `--rate` on the command line override the file (benches and quick looks).
pub fn with_overrides(mut plan: Plan, duration: Option<Duration>, rate: Option<f64>) -> Result<Plan> {
    if let Some(d) = duration {
        plan.duration_ms = d.as_millis().max(1) as u64;
    }
    if let Some(r) = rate {
        match &mut plan.load {
            Load::Rate { ops_per_s, .. } if r > 0.0 => *ops_per_s = r,
            _ => return Err(usage("--rate applies to a rate workload, and must be above zero")),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Plan> {
        parse(s, Path::new("w.toml"))
    }

    const GOOD: &str = r#"
name = "t"
duration = "2s"
warmup = "500ms"
[load]
rate = 100
workers = 4
[[op]]
name = "true"
weight = 3
exec = ["/bin/true"]
[[op]]
name = "file"
file_cycle = { bytes = 4096 }
"#;

    #[test]
    fn good_file_becomes_a_plan() {
        let p = parse_str(GOOD).unwrap();
        assert_eq!(p.duration_ms, 2000);
        assert_eq!(p.warmup_ms, 500);
        assert_eq!(p.load, Load::Rate { ops_per_s: 100.0, workers: 4 });
        assert_eq!(p.ops[0].weight, 3);
        assert!(matches!(p.ops[0].kind, OpKind::Exec { ref argv, .. } if argv == &["/bin/true"]));
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = GOOD.replace("weight = 3", "weight = 0");
        let e = parse_str(&bad).unwrap_err();
        // The line of the op's [[op]] header.
        assert_eq!(format!("{e}"), "w.toml:8: op \"true\": weight must be at least 1");
        assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);

        let two = GOOD.replace("file_cycle = { bytes = 4096 }", "file_cycle = { bytes = 4096 }\nnoop = true");
        assert!(format!("{}", parse_str(&two).unwrap_err()).starts_with("w.toml:12: op \"file\": needs exactly one"));

        let typo = GOOD.replace("workers = 4", "wrokers = 4");
        let msg = format!("{}", parse_str(&typo).unwrap_err());
        assert!(msg.contains("w.toml") && msg.contains("line 7"), "{msg}");

        let no_load = GOOD.replace("rate = 100", "");
        assert!(format!("{}", parse_str(&no_load).unwrap_err()).starts_with("w.toml:5: [load] needs exactly one"));
    }

    #[test]
    fn a_governed_op_needs_a_known_decision_named_at_its_line() {
        let base = "name = \"g\"\nduration = \"1s\"\n[load]\nrate = 1\n[[op]]\nname = \"api\"\nsession_exec = [\"/bin/echo\"]\n";
        let missing = parse_str(base).unwrap_err();
        assert_eq!(format!("{missing}"), "w.toml:5: op \"api\": a governed op needs decision = \"allow\" or \"deny\"");
        assert_eq!(crate::exit::code_for(&missing), crate::exit::USAGE);
        let unknown = parse_str(&format!("{base}decision = \"maybe\"\n")).unwrap_err();
        assert_eq!(format!("{unknown}"), "w.toml:5: op \"api\": unknown decision \"maybe\" (allow or deny)");
        let no_effect = parse_str(&format!("{base}decision = \"deny\"\n")).unwrap_err();
        assert!(format!("{no_effect}").contains("needs effect"), "{no_effect}");
        let ungoverned = GOOD.replace("weight = 3", "weight = 3\ndecision = \"allow\"");
        assert!(format!("{}", parse_str(&ungoverned).unwrap_err()).contains("go with the governed kinds"));
        let p = parse_str(&format!("{base}decision = \"deny\"\neffect = \"root\"\n")).unwrap();
        assert_eq!(
            p.ops[0].kind,
            OpKind::Governed {
                via: Via::Session { argv: vec!["/bin/echo".into()] },
                expected: Expected::Deny { effect: "root".into() },
                timeout_ms: 10_000
            }
        );
    }

    #[test]
    fn proxy_get_reaches_only_loopback_and_fixture_hosts() {
        let op = |url: &str| {
            parse_str(&format!(
                "name = \"p\"\nduration = \"1s\"\n[load]\nrate = 1\n[[op]]\nname = \"get\"\nproxy_get = \"{url}\"\n\
                 decision = \"allow\"\n"
            ))
        };
        for good in [
            "http://127.0.0.1:{fixture}/abench-allowed",
            "http://127.9.8.7/x",
            "http://localhost:8080/x",
            "http://evil.test/abench-denied",
            "http://registry.npm.test/pkg",
            "http://API.GITHUB.COM/",
        ] {
            let p = op(good).unwrap_or_else(|e| panic!("{good}: {e:#}"));
            assert!(matches!(&p.ops[0].kind, OpKind::Governed { via: Via::Proxy { url }, .. } if url == good));
        }
        for (bad, why) in [
            ("http://10.0.0.1/x", "is not loopback"),
            ("http://example.org/x", "is not loopback"),
            ("http://128.0.0.1/x", "is not loopback"),
            ("http://evil.test.example/x", "is not loopback"),
            ("http://localhost.attacker/x", "is not loopback"),
            ("http://evil.test@example.org/x", "is not loopback"),
            ("http://127.0.0.1:{port}/x", "neither a number nor {fixture}"),
            ("http://127.0.0.1:99999/x", "neither a number nor {fixture}"),
        ] {
            let e = op(bad).unwrap_err();
            let msg = format!("{e}");
            assert!(msg.starts_with("w.toml:5: op \"get\": proxy_get"), "{bad}: {msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
            assert_eq!(crate::exit::code_for(&e), crate::exit::USAGE);
        }
    }

    #[test]
    fn shipped_workloads_load() {
        let dir = crate::paths::scenarios_dir().join("workloads");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            parse(&std::fs::read_to_string(&p).unwrap(), &p).unwrap_or_else(|e| panic!("{e:#}"));
            n += 1;
        }
        assert!(n >= 2, "expected shipped workloads in {}", dir.display());
    }
}

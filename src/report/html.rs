//! `report.html`: a run as one page: run metadata and each target's readiness (run.json), the
//! suite (suite.json, summary.csv, the executions of tests.csv that did not hold, regressions.csv,
//! expectations.csv), the workload (latency.csv, workload.json), resource trends (trends.csv and
//! charts/trends.svg), comparisons (comparison*.csv) and every other chart under charts/.
//!
//! Self-contained on purpose: runs are looked at on machines without network (this one has none),
//! mailed and archived, so the page fetches nothing. CSS and the small table-sorting script are
//! inline, SVG charts are inlined, PNGs are data: URIs, and a Content-Security-Policy forbids the
//! page any request at all, so a slip would show as a console error rather than a silent fetch.
//!
//! It is rebuilt from the files alone (`agentsh-bench report RUN`), like the charts from the
//! hlogs: any file may be missing (a suite-only run, a run stopped early) and each section shows
//! what exists. A file that cannot be read becomes an error where its part would be, and a
//! warning on stderr: one bad file must not cost the report of a whole run. Everything taken from
//! a file is HTML-escaped: test names, evidence and agentsh's output are arbitrary text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::de::DeserializeOwned;

use crate::report::verdicts::{Tallies, summary_rows};
use crate::results::manifest::{Run, RunTarget, Suite, Workload};
use crate::results::summary::SummaryRow;
use crate::results::{RunDir, TestId};
use crate::suite::verdict::Verdict;

/// Writes `<run>/report.html` from what the run folder holds and returns its path. Fails only
/// when the folder is not there or the page cannot be written; unreadable files are shown as
/// errors in the page.
pub fn write(run: &RunDir) -> Result<PathBuf> {
    if !run.path.is_dir() {
        bail!("{}: no such run folder", run.path.display());
    }
    let html = render(run);
    let out = run.report_html();
    // Through a temporary file: a browser reloading the page never sees half of it.
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// The whole page.
fn render(run: &RunDir) -> String {
    let manifest = read_json::<Run>(&run.run_json());
    let id = match &manifest {
        Ok(Some(m)) => m.run.clone(),
        _ => folder_name(run),
    };
    let sections = [
        ("run", "Run", run_section(run, manifest)),
        ("suite", "Security suite", suite_section(run)),
        ("workload", "Workload", workload_section(run)),
        ("soak", "Soak and faults", soak_section(run)),
        ("trends", "Resource trends", trends_section(run)),
        ("comparisons", "Comparisons", comparisons_section(run)),
        ("charts", "Charts", charts_section(run)),
    ];
    let shown: Vec<_> = sections.into_iter().filter_map(|(id, title, body)| Some((id, title, body?))).collect();
    let nav: String = shown.iter().map(|(id, title, _)| format!("<a href=\"#{id}\">{title}</a>")).collect();
    let body: String = shown
        .iter()
        .map(|(id, title, body)| format!("<section id=\"{id}\"><h2>{title}</h2>\n{body}</section>\n"))
        .collect();
    let empty = if shown.is_empty() { "<p>This run folder holds none of the files a report shows.</p>" } else { "" };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>agentsh-bench run {title}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n<header><h1>agentsh-bench run {title}</h1>\
         <nav>{nav}</nav></header>\n<main>\n{empty}{body}</main>\n\
         <footer>Written {now} by agentsh-bench {version} from {folder}. Click a column heading to sort.</footer>\n\
         <script>{JS}</script>\n</body>\n</html>\n",
        title = esc(&id),
        version = env!("CARGO_PKG_VERSION"),
        folder = esc(&run.path.display().to_string()),
    )
}

/// No request of any kind: styles and scripts inline, images only as data: URIs (the favicon
/// too, or the browser would ask for /favicon.ico).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

const CSS: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
header{position:sticky;top:0;background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:.5em 1em;z-index:1}
h1{font-size:1.3em;margin:0 0 .3em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{margin-top:1.5em}
nav a{margin-right:1.2em}main{padding:0 1em 2em}footer{color:#656d76;padding:1em;border-top:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}.scroll{overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:2px 6px;vertical-align:top;text-align:left}
th{background:#f6f8fa;cursor:pointer;user-select:none;position:relative}
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}
table.kv th{cursor:default}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.violated td{background:#ffebe9}tr.flaky td{background:#fff1c2}tr.inconclusive td{background:#f3f4f6}
tr.held td{background:#e6ffec}td.sig{font-weight:bold}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;margin-right:.5em;color:#fff;font-weight:600}
.b-held{background:#2da44e}.b-violated{background:#cf222e}.b-flaky{background:#bf8700}
.b-inconclusive{background:#8c959f}.b-skipped-env{background:#54aeff}.b-informational{background:#d0d7de;color:#1f2328}
.long{white-space:pre-wrap;max-height:12em;overflow:auto;max-width:60em;font-family:ui-monospace,monospace;font-size:12px}
.error{color:#cf222e;font-weight:600;white-space:pre-wrap}
figure{margin:1em 0}figure svg,figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
figcaption{color:#656d76;font-size:12px}
";

/// Sorts a table by the column whose heading is clicked (numbers as numbers), toggling the order.
const JS: &str = "
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('thead th');
  heads.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      if (!body) { return; }
      var up = th.getAttribute('aria-sort') !== 'ascending';
      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var text = function (row) { return row.cells[col] ? row.cells[col].textContent.trim() : ''; };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = text(a), y = text(b);
        var nx = Number(x), ny = Number(y);
        var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
";

// ---- reading -------------------------------------------------------------------------------

/// A file's text; None when it does not exist (every file of a run is optional here).
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A manifest, typed as `results::manifest` writes it, so the page and the writer agree.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    let value =
        serde_json::from_str(&text).with_context(|| format!("{}: not what this harness writes", path.display()))?;
    Ok(Some(value))
}

/// A CSV file as text: read loosely (any columns, invalid UTF-8 replaced), because the report
/// shows runs of other harness versions too and a column it does not know is still worth showing.
struct Csv {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Result<Option<Csv>> {
        if !path.exists() {
            return Ok(None);
        }
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let text = |rec: &csv::ByteRecord| rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        let headers = text(r.byte_headers().with_context(|| format!("reading {}", path.display()))?);
        let mut rows = Vec::new();
        for (i, rec) in r.byte_records().enumerate() {
            let rec = rec.with_context(|| format!("reading {}:{}", path.display(), i + 2))?;
            rows.push(text(&rec));
        }
        Ok(Some(Csv { headers, rows }))
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// A row's field by column name; empty when the column (or the field) is absent.
    fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        self.col(name).and_then(|i| row.get(i)).map_or("", String::as_str)
    }
}

/// The columns of tests.csv the report counts by (serde matches them by name).
#[derive(serde::Deserialize)]
struct Execution {
    target: String,
    test_id: TestId,
    test: String,
    verdict: Verdict,
}

/// summary.csv's rows, or, for a run that ended before writing it (a crash), the same rows
/// counted from tests.csv by the function that writes summary.csv. None when neither exists.
fn summary(run: &RunDir) -> Result<Option<(Vec<SummaryRow>, &'static str)>> {
    let file = run.summary_csv();
    if file.exists() {
        return Ok(Some((crate::results::summary::read(&file)?, "summary.csv")));
    }
    let file = run.tests_csv();
    if !file.exists() {
        return Ok(None);
    }
    let mut r = csv::Reader::from_path(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut tallies = Tallies::new();
    for (i, row) in r.deserialize::<Execution>().enumerate() {
        let row = row.with_context(|| format!("reading {}:{}", file.display(), i + 2))?;
        let t = tallies.entry((row.test_id, row.target)).or_default();
        t.name = row.test;
        *t.counts.entry(row.verdict).or_default() += 1;
    }
    Ok(Some((summary_rows(&tallies), "tests.csv (no summary.csv)")))
}

// ---- HTML pieces ---------------------------------------------------------------------------

/// HTML-escapes text for element content and quoted attribute values (HTML keeps line feeds in
/// both, so they stay as they are: `<div class="long">` text relies on it).
fn esc(s: &str) -> String {
    crate::text::escape_markup_text(s)
}

/// A part of a section: its HTML, nothing when its file is absent, and a file that cannot be
/// read as an error in its place (and on stderr), so the rest of the page is still written.
fn shown(part: Result<Option<String>>) -> Option<String> {
    match part {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warning: report.html: {e:#}");
            Some(format!("<p class=\"error\">{}</p>\n", esc(&format!("{e:#}"))))
        }
    }
}

/// A section's parts joined; None when none of them had anything to show.
fn joined(parts: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    if parts.is_empty() { None } else { Some(parts.concat()) }
}

/// A cell's content: long or multi-line text (evidence, agentsh's output) in a scrolling box,
/// so that one row does not push the table off the screen.
fn cell_text(s: &str) -> String {
    if s.len() > 120 || s.contains('\n') { format!("<div class=\"long\">{}</div>", esc(s)) } else { esc(s) }
}

/// A p-value column of a comparison (`p_value`, `response_p99_pvalue`, ...).
fn is_p_value(header: &str) -> bool {
    let h = header.to_ascii_lowercase();
    h == "p" || h.contains("p_value") || h.contains("pvalue")
}

/// One `<td>`: numbers right-aligned, a p-value below 0.05 in bold.
fn td(header: &str, value: &str) -> String {
    let number = value.trim().parse::<f64>().ok();
    let class = match number {
        Some(p) if is_p_value(header) && p < 0.05 => " class=\"num sig\"",
        Some(_) => " class=\"num\"",
        None => "",
    };
    format!("<td{class}>{}</td>", cell_text(value))
}

/// A sortable table; each row with its class (violated, flaky, ...) so the eye finds the rows
/// that matter.
fn table(headers: &[String], rows: &[(Option<&str>, Vec<String>)]) -> String {
    // In a scrolling box: latency.csv and the comparisons are wider than a screen.
    let mut h = String::from("<div class=\"scroll\"><table class=\"sortable\"><thead><tr>");
    for name in headers {
        h.push_str(&format!("<th>{}</th>", esc(name)));
    }
    h.push_str("</tr></thead><tbody>\n");
    for (class, row) in rows {
        match class {
            Some(c) => h.push_str(&format!("<tr class=\"{c}\">")),
            None => h.push_str("<tr>"),
        }
        for (i, value) in row.iter().enumerate() {
            h.push_str(&td(headers.get(i).map_or("", String::as_str), value));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
    h
}

/// A two-column table of facts (key, value as HTML already escaped).
fn facts(rows: &[(&str, String)]) -> String {
    let mut h = String::from("<table class=\"kv\"><tbody>\n");
    for (k, v) in rows {
        h.push_str(&format!("<tr><th>{}</th><td>{v}</td></tr>\n", esc(k)));
    }
    h.push_str("</tbody></table>\n");
    h
}

/// A whole CSV file as a table, each row classed by `class_of`; None when the file is absent.
fn csv_table(path: &Path, class_of: impl Fn(&Csv, &[String]) -> Option<&'static str>) -> Result<Option<String>> {
    let Some(csv) = Csv::read(path)? else { return Ok(None) };
    let rows: Vec<_> = csv.rows.iter().map(|r| (class_of(&csv, r), r.clone())).collect();
    let mut h = format!("<p>{} row(s) of <code>{}</code>.</p>\n", rows.len(), esc(&file_name(path)));
    h.push_str(&table(&csv.headers, &rows));
    Ok(Some(h))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A verdict as a coloured badge with its count.
fn badge(class: &str, label: &str, n: u64) -> String {
    format!("<span class=\"badge b-{class}\">{n} {}</span>", esc(label))
}

// ---- run -----------------------------------------------------------------------------------

/// `<date>t<time>-<random>` (`provider::new_run_tag`) → when the run started, in UTC.
fn started(run_id: &str) -> Option<String> {
    let stamp = run_id.split('-').next()?;
    let (date, time) = stamp.split_once('t')?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) || !digits(time, 6) {
        return None;
    }
    Some(format!("{}-{}-{} {}:{}:{} UTC", &date[..4], &date[4..6], &date[6..], &time[..2], &time[2..4], &time[4..]))
}

/// The run folder's own name, which is its run tag unless `--out` named it: through symlinks
/// (`results/latest`) and relative names (`.`).
fn folder_name(run: &RunDir) -> String {
    let path = run.path.canonicalize().unwrap_or_else(|_| run.path.clone());
    file_name(&path)
}

/// When a file was last written: run.json is written when provisioning ends.
fn modified(path: &Path) -> Option<String> {
    let t = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

fn run_section(run: &RunDir, manifest: Result<Option<Run>>) -> Option<String> {
    let targets_csv = || csv_table(&run.targets_csv(), |c, r| (c.get(r, "status") == "failed").then_some("violated"));
    match manifest {
        Ok(Some(m)) => Some(run_facts(run, &m) + &run_targets(&m.targets)),
        // Without run.json (a run that failed before provisioning ended), targets.csv is what says
        // how each target ended.
        Ok(None) => joined([started(&folder_name(run)).map(|s| facts(&[("started", esc(&s))])), shown(targets_csv())]),
        Err(e) => joined([shown(Err(e)), shown(targets_csv())]),
    }
}

/// The run's identity: what was tested, where, from what, when.
fn run_facts(run: &RunDir, m: &Run) -> String {
    let read_back: BTreeSet<&str> = m
        .targets
        .iter()
        .filter_map(|t| match t {
            RunTarget::Ready { agentsh_version, .. } => Some(agentsh_version.as_deref().unwrap_or("none")),
            RunTarget::Failed { .. } => None,
        })
        .collect();
    let ready = m.targets.iter().filter(|t| matches!(t, RunTarget::Ready { .. })).count();
    let provider = serde_json::to_value(m.provider).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let mut rows = vec![("run", esc(&m.run))];
    if let Some(s) = started(&m.run) {
        rows.push(("started", esc(&s)));
    }
    if let Some(s) = modified(&run.run_json()) {
        rows.push(("run.json written", esc(&s)));
    }
    rows.push(("harness version", esc(&m.harness_version)));
    rows.push(("provider", esc(&provider)));
    let class = if ready == m.targets.len() { "held" } else { "violated" };
    rows.push((
        "targets ready",
        format!("{} of {} (--vms {})", badge(class, "ready", ready as u64), m.targets.len(), m.vms),
    ));
    rows.push(("--agentsh", esc(&m.agentsh_spec)));
    match &m.artifact {
        Some(a) => rows.push((
            "artifact",
            format!(
                "agentsh {} from {} (<code>{}</code>)",
                esc(&a.version),
                esc(&a.source),
                esc(&a.deb.display().to_string())
            ),
        )),
        None => rows.push(("artifact", "none (targets without agentsh)".into())),
    }
    let versions: Vec<&str> = read_back.into_iter().collect();
    rows.push(("agentsh read back", esc(&versions.join(", "))));
    rows.push(("config", format!("<code>{}</code>", esc(&m.config_source.display().to_string()))));
    rows.push(("policy", format!("<code>{}</code>", esc(&m.policy_source.display().to_string()))));
    rows.push((
        "seconds",
        format!(
            "artifact {:.1}, prepare {:.1}, create and provision {:.1}",
            m.seconds.artifact, m.seconds.prepare, m.seconds.create_and_provision
        ),
    ));
    facts(&rows)
}

/// Per target: how readiness ended, its steps, and the findings kept on the way.
fn run_targets(targets: &[RunTarget]) -> String {
    let mut h = String::from(
        "<h3>Targets</h3>\n<div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>target</th><th>status</th><th>agentsh</th>\
         <th>seconds</th><th>failed step</th><th>error</th><th>steps</th><th>findings</th></tr></thead><tbody>\n",
    );
    for t in targets {
        let (class, name, status, version, seconds, step, error, steps, findings) = match t {
            RunTarget::Ready { name, agentsh_version, seconds, steps, findings, .. } => {
                let steps: Vec<String> = steps.iter().map(|(s, secs)| format!("{s} {secs:.1}s")).collect();
                let version = agentsh_version.as_deref().unwrap_or("none");
                ("held", name, "ready", version, format!("{seconds:.1}"), "", "", steps.join(", "), findings)
            }
            RunTarget::Failed { name, step, error, findings } => {
                ("violated", name, "failed", "", String::new(), step.as_str(), error.as_str(), String::new(), findings)
            }
        };
        h.push_str(&format!(
            "<tr class=\"{class}\"><td>{}</td><td>{status}</td><td>{}</td><td class=\"num\">{seconds}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(name),
            esc(version),
            esc(step),
            cell_text(error),
            cell_text(&steps),
            findings_list(findings),
        ));
    }
    h.push_str("</tbody></table></div>\n");
    h
}

/// Findings (retries, failed probes) folded: each one's detail is a probe's whole output.
fn findings_list(findings: &[crate::results::manifest::Finding]) -> String {
    if findings.is_empty() {
        return "0".into();
    }
    let items: String =
        findings.iter().map(|f| format!("<li><b>{}</b> {}</li>", esc(&f.kind), cell_text(&f.detail))).collect();
    format!("<details><summary>{}</summary><ul>{items}</ul></details>", findings.len())
}

// ---- suite ---------------------------------------------------------------------------------

fn suite_section(run: &RunDir) -> Option<String> {
    // broken, still-failing (violated or flaky now) or fixed (`analyze::regressions::Change`).
    let regressions = |c: &Csv, r: &[String]| match (c.get(r, "change"), c.get(r, "now")) {
        ("fixed", _) => Some("held"),
        (_, "flaky") => Some("flaky"),
        _ => Some("violated"),
    };
    let expectations = |c: &Csv, r: &[String]| match c.get(r, "got") {
        "violated" => Some("violated"),
        "held" => Some("held"),
        _ => Some("inconclusive"),
    };
    joined([
        shown(suite_facts(run)),
        shown(verdicts_part(run)),
        shown(
            csv_table(&run.regressions_csv(), regressions)
                .map(|t| t.map(|t| format!("<h3>Against the baseline (--baseline)</h3>\n{t}"))),
        ),
        shown(
            csv_table(&run.expectations_csv(), expectations)
                .map(|t| t.map(|t| format!("<h3>Differences from the version's expectations</h3>\n{t}"))),
        ),
        shown(executions_part(run)),
    ])
}

/// suite.json: size, iterations, shuffle seed, the tests the environment cannot run.
fn suite_facts(run: &RunDir) -> Result<Option<String>> {
    let Some(s) = read_json::<Suite>(&run.suite_json())? else { return Ok(None) };
    let mut rows = vec![
        ("tests", s.tests.to_string()),
        ("iterations", s.iterations.to_string()),
        ("shuffle seed", s.shuffle.map_or_else(|| "none (file order)".into(), |n| n.to_string())),
    ];
    if !s.environment_gaps.is_empty() {
        let gaps: String =
            s.environment_gaps.iter().map(|(id, why)| format!("<li>{}: {}</li>", esc(id), esc(why))).collect();
        rows.push(("not applicable here", format!("<ul>{gaps}</ul>")));
    }
    Ok(Some(facts(&rows)))
}

/// Totals by verdict, then every test × target with its counts, violated and flaky first (as
/// the terminal summary lists them).
fn verdicts_part(run: &RunDir) -> Result<Option<String>> {
    let Some((mut rows, source)) = summary(run)? else { return Ok(None) };
    let sum = |f: fn(&SummaryRow) -> u32| rows.iter().map(|r| u64::from(f(r))).sum::<u64>();
    let mut h = String::from("<p>");
    h.push_str(&badge("held", "held", sum(|r| r.held)));
    h.push_str(&badge("violated", "violated", sum(|r| r.violated)));
    h.push_str(&badge("inconclusive", "inconclusive", sum(|r| r.inconclusive)));
    h.push_str(&badge("skipped-env", "skipped-env", sum(|r| r.skipped_env)));
    h.push_str(&badge("informational", "informational", sum(|r| r.informational)));
    h.push_str(&badge("flaky", "flaky test × target", rows.iter().filter(|r| r.flaky).count() as u64));
    h.push_str(&format!("</p>\n<h3>Verdicts per test and target</h3>\n<p>From <code>{source}</code>.</p>\n"));
    let class = |r: &SummaryRow| {
        if r.flaky {
            Some("flaky")
        } else if r.violated > 0 {
            Some("violated")
        } else if r.inconclusive > 0 {
            Some("inconclusive")
        } else {
            None
        }
    };
    // Stable: within a rank, the file's (test, target) order.
    rows.sort_by_key(|r| match class(r) {
        Some("violated") | Some("flaky") => 0,
        Some(_) => 1,
        None => 2,
    });
    let headers: Vec<String> =
        ["test_id", "test", "target", "held", "violated", "inconclusive", "skipped_env", "informational", "flaky"]
            .map(String::from)
            .to_vec();
    let cells: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                class(r),
                vec![
                    r.test_id.to_string(),
                    r.test.clone(),
                    r.target.clone(),
                    r.held.to_string(),
                    r.violated.to_string(),
                    r.inconclusive.to_string(),
                    r.skipped_env.to_string(),
                    r.informational.to_string(),
                    r.flaky.to_string(),
                ],
            )
        })
        .collect();
    h.push_str(&table(&headers, &cells));
    Ok(Some(h))
}

/// At most this many executions are listed: a long soak can have thousands, and tests.csv has
/// them all.
const MAX_EXECUTIONS: usize = 2000;

/// The executions of tests.csv that did not hold, with their evidence: why each verdict is what
/// it is. Held and informational rows are left out (they are most of the file).
fn executions_part(run: &RunDir) -> Result<Option<String>> {
    let Some(csv) = Csv::read(&run.tests_csv())? else { return Ok(None) };
    let shown_columns = [
        "target",
        "iteration",
        "test_id",
        "test",
        "verdict",
        "expected",
        "evidence",
        "detail",
        "record",
        "duration_ms",
    ];
    let columns: Vec<&str> = shown_columns.into_iter().filter(|c| csv.col(c).is_some()).collect();
    let not_held: Vec<&Vec<String>> =
        csv.rows.iter().filter(|r| !matches!(csv.get(r, "verdict"), "held" | "informational")).collect();
    let rows: Vec<_> = not_held
        .iter()
        .take(MAX_EXECUTIONS)
        .map(|r| {
            let class = match csv.get(r, "verdict") {
                "violated" => Some("violated"),
                "inconclusive" => Some("inconclusive"),
                _ => None,
            };
            (class, columns.iter().map(|c| csv.get(r, c).to_string()).collect())
        })
        .collect();
    let mut h = format!(
        "<h3>Executions that did not hold</h3>\n<p>{} of the {} row(s) of <code>tests.csv</code>{}.</p>\n",
        not_held.len(),
        csv.rows.len(),
        if not_held.len() > MAX_EXECUTIONS {
            format!("; the first {MAX_EXECUTIONS} are listed")
        } else {
            String::new()
        }
    );
    if !rows.is_empty() {
        let headers: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        h.push_str(&table(&headers, &rows));
    }
    Ok(Some(h))
}

// ---- workload ------------------------------------------------------------------------------

fn workload_section(run: &RunDir) -> Option<String> {
    let latency = |c: &Csv, r: &[String]| {
        let n = |col: &str| c.get(r, col).parse::<u64>().unwrap_or(0);
        if n("wrong_decisions") > 0 {
            Some("violated")
        } else if n("errors") > 0 {
            Some("flaky")
        } else {
            None
        }
    };
    joined([shown(workload_facts(run)), shown(overhead_part(run)), shown(latency_part(run, latency))])
}

/// overhead.csv (a workload run in several `--mode`s): each op's latency per mode and its ratio
/// to baseline; a row whose op had errors or wrong decisions is marked.
/// A soak's length and rounds (soak.json) and each fault the nemesis applied (faults.csv), a
/// fault that failed open marked as a violation, one that proved nothing or did not recover as
/// flaky.
fn soak_section(run: &RunDir) -> Option<String> {
    let facts = || -> Result<Option<String>> {
        let Some(s) = read_json::<serde_json::Value>(&run.soak_json())? else { return Ok(None) };
        let num = |k: &str| s.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        Ok(Some(facts(&[
            ("asked", format!("{:.0} s", num("duration_s"))),
            ("ran", format!("{:.0} s", num("elapsed_s"))),
            ("rounds", format!("{:.0}", num("rounds"))),
            ("faults applied", format!("{:.0}", num("faults_applied"))),
            ("interrupted", s.get("interrupted").map(ToString::to_string).unwrap_or_default()),
        ])))
    };
    let faults = || {
        let class = |c: &Csv, r: &[String]| match (c.get(r, "fail_closed"), c.get(r, "recovered")) {
            ("violated", _) => Some("violated"),
            ("inconclusive", _) | (_, "no") => Some("flaky"),
            _ => None,
        };
        Ok(csv_table(&run.faults_csv(), class)?.map(|t| {
            format!(
                "<h3>Faults</h3>\n<p>Fail-closed: while the fault was on, denied commands sent through the \
                 shim (sudo, /etc/shadow, evil.test) had to fail or be refused; <em>violated</em> means one \
                 ran. Recovery is timed from the end of the fault until the server answered and a shimmed \
                 command ran.</p>\n{t}"
            )
        }))
    };
    joined([shown(facts()), shown(faults())])
}

fn overhead_part(run: &RunDir) -> Result<Option<String>> {
    let class = |c: &Csv, r: &[String]| {
        let n = |col: &str| c.get(r, col).parse::<u64>().unwrap_or(0);
        (n("errors") > 0 || n("wrong_decisions") > 0).then_some("flaky")
    };
    Ok(csv_table(&run.overhead_csv(), class)?.map(|t| {
        format!(
            "<h3>Overhead per layer</h3>\n<p>Response time over all targets per mode (<code>--mode</code>, \
             assets/modes/), and its ratio to <code>baseline</code>: agentsh with its layers off. A marked \
             row had errors or wrong decisions: a denied op whose layer is off runs to the end, an op \
             that needs an absent layer fails, so its figure is not that layer's cost.</p>\n{t}"
        )
    }))
}

/// latency.csv with the wrong decisions counted first: a wrong decision under load is a failure.
fn latency_part(run: &RunDir, class_of: impl Fn(&Csv, &[String]) -> Option<&'static str>) -> Result<Option<String>> {
    let file = run.latency_csv();
    let Some(csv) = Csv::read(&file)? else { return Ok(None) };
    let total = |col: &str| csv.rows.iter().map(|r| csv.get(r, col).parse::<u64>().unwrap_or(0)).sum::<u64>();
    let mut h = String::from("<h3>Latency per target and op</h3>\n<p>");
    h.push_str(&badge(
        if total("wrong_decisions") > 0 { "violated" } else { "held" },
        "wrong decisions",
        total("wrong_decisions"),
    ));
    h.push_str(&badge(if total("errors") > 0 { "flaky" } else { "held" }, "errors", total("errors")));
    h.push_str("Times in ms; response time counts from the intended start, service time from the actual one.</p>\n");
    let rows: Vec<_> = csv.rows.iter().map(|r| (class_of(&csv, r), r.clone())).collect();
    h.push_str(&table(&csv.headers, &rows));
    Ok(Some(h))
}

/// workload.json: the plan as run, and what each target's driver reported (RSS, samples of
/// wrong decisions and errors).
fn workload_facts(run: &RunDir) -> Result<Option<String>> {
    let Some(w) = read_json::<Workload>(&run.workload_json())? else { return Ok(None) };
    let load = serde_json::to_string(&w.plan.load).unwrap_or_default();
    let ops: Vec<&str> = w.plan.ops.iter().map(|o| o.name.as_str()).collect();
    let mut h = facts(&[
        ("workload", esc(&w.plan.name)),
        (
            "measured",
            format!(
                "{:.1} s after {:.1} s warm-up",
                w.plan.duration_ms as f64 / 1000.0,
                w.plan.warmup_ms as f64 / 1000.0
            ),
        ),
        ("load", format!("<code>{}</code>", esc(&load))),
        ("ops", esc(&ops.join(", "))),
        ("interrupted", if w.interrupted { "yes: figures cover the intervals received".into() } else { "no".into() }),
    ]);
    if !w.modes.is_empty() {
        let modes: Vec<String> = w
            .modes
            .iter()
            .map(|m| {
                let refused: Vec<String> = m
                    .refused
                    .iter()
                    .map(|(t, e)| format!("refused on {t}: {}", e.lines().last().unwrap_or_default()))
                    .collect();
                let mut line = format!("{} ({}, results under {})", m.mode, m.status, m.workload);
                if !refused.is_empty() {
                    line.push_str(&format!(": {}", refused.join("; ")));
                }
                esc(&line)
            })
            .collect();
        h.push_str(&facts(&[("modes", modes.join("<br>"))]));
    }
    let headers: Vec<String> = [
        "target",
        "mode",
        "partial",
        "completed",
        "measured_ms",
        "driver_rss_kb_first_minute",
        "driver_rss_kb_last_minute",
        "wedges",
        "samples",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<_> = w
        .targets
        .iter()
        .map(|t| {
            let samples: Vec<String> =
                t.finished.samples.iter().flat_map(|(op, s)| s.iter().map(move |s| format!("{op}: {s}"))).collect();
            let class = if samples.is_empty() && t.wedges.is_empty() { None } else { Some("flaky") };
            let wedges: Vec<String> = t
                .wedges
                .iter()
                .map(|w| format!("{:.0} s: {}; {} after {:.1} s", w.at_s, w.why, w.outcome, w.recovery_s))
                .collect();
            (
                class,
                vec![
                    t.target.clone(),
                    t.mode.clone(),
                    t.partial.to_string(),
                    t.finished.completed.to_string(),
                    t.finished.measured_ms.to_string(),
                    t.driver_rss_kb_first_minute.to_string(),
                    t.driver_rss_kb_last_minute.to_string(),
                    wedges.join("\n"),
                    samples.join("\n"),
                ],
            )
        })
        .collect();
    h.push_str(&table(&headers, &rows));
    Ok(Some(h))
}

// ---- trends --------------------------------------------------------------------------------

/// trends.csv (leaks first, as written) and charts/trends.svg beside it; nothing without
/// trends.csv (a run that did not sample).
fn trends_section(run: &RunDir) -> Option<String> {
    let class = |c: &Csv, r: &[String]| match c.get(r, "verdict") {
        "leak" => Some("violated"),
        "insufficient" => Some("inconclusive"),
        _ => None,
    };
    let part = match Csv::read(&run.trends_csv()) {
        Ok(None) => return None,
        Ok(Some(csv)) => {
            let count = |v: &str| csv.rows.iter().filter(|r| csv.get(r, "verdict") == v).count() as u64;
            let mut h = String::from("<p>");
            h.push_str(&badge(if count("leak") > 0 { "violated" } else { "held" }, "leaks", count("leak")));
            h.push_str(&badge("held", "flat", count("flat")));
            h.push_str(&badge("inconclusive", "insufficient data", count("insufficient")));
            h.push_str(
                "Slopes per hour (least squares and Theil–Sen); a leak is both above the threshold of \
                 <code>scenarios/trends.toml</code>. Samples: <code>trends-samples.csv</code>.</p>\n",
            );
            let rows: Vec<_> = csv.rows.iter().map(|r| (class(&csv, r), r.clone())).collect();
            h.push_str(&table(&csv.headers, &rows));
            Ok(Some(h))
        }
        Err(e) => Err(e),
    };
    let chart = run.trends_svg();
    let figure = if chart.is_file() { figure(&chart).map(Some) } else { Ok(None) };
    joined([shown(part), shown(figure)])
}

// ---- comparisons ---------------------------------------------------------------------------

/// Every comparison*.csv as a table, whatever its columns (confidence intervals and p-values
/// included; a p-value below 0.05 is bold).
fn comparisons_section(run: &RunDir) -> Option<String> {
    joined(run.comparison_csvs().into_iter().map(|file| {
        shown(csv_table(&file, |_, _| None).map(|t| t.map(|t| format!("<h3>{}</h3>\n{t}", esc(&file_name(&file))))))
    }))
}

// ---- charts --------------------------------------------------------------------------------

/// Every file under `dir`, in path order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// One chart's files: plotters draws each as both.
#[derive(Default)]
struct Chart {
    svg: Option<PathBuf>,
    png: Option<PathBuf>,
}

/// The charts, one group per folder of charts/ (suite heatmaps, one folder per workload). Each
/// chart is drawn as SVG and PNG: the SVG is shown (sharp at any size, and smaller), the PNG
/// only when it has no SVG twin.
fn charts_section(run: &RunDir) -> Option<String> {
    let dir = run.charts_dir();
    if !dir.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    if let Err(e) = files_under(&dir, &mut files) {
        return shown(Err(e));
    }
    // Keyed (not the suite's, folder, stem): the heatmaps first, then each workload's charts.
    let mut charts: BTreeMap<(bool, String, String), Chart> = BTreeMap::new();
    // The trends chart is shown in its own section.
    let trends = run.trends_svg();
    for f in files.into_iter().filter(|f| *f != trends) {
        let folder =
            f.parent().and_then(|p| p.strip_prefix(&dir).ok()).map(|p| p.display().to_string()).unwrap_or_default();
        let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let slot = charts.entry((folder != "suite", folder, stem)).or_default();
        match f.extension().and_then(|e| e.to_str()) {
            Some("svg") => slot.svg = Some(f),
            Some("png") => slot.png = Some(f),
            _ => {}
        }
    }
    let mut h = String::new();
    let mut folder_shown = None;
    for ((_, folder, _), chart) in charts {
        let Some(file) = chart.svg.or(chart.png) else { continue };
        if folder_shown.as_ref() != Some(&folder) {
            let title = if folder.is_empty() { "charts/".to_string() } else { format!("charts/{folder}/") };
            h.push_str(&format!("<h3>{}</h3>\n", esc(&title)));
            folder_shown = Some(folder);
        }
        h.push_str(&shown(figure(&file).map(Some)).unwrap_or_default());
    }
    joined([(!h.is_empty()).then_some(h)])
}

/// One chart with its file name as caption.
fn figure(file: &Path) -> Result<String> {
    let name = esc(&file_name(file));
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let is_svg = file.extension().is_some_and(|e| e == "svg");
    let inline = if is_svg { inline_svg(&String::from_utf8_lossy(&bytes)) } else { None };
    let picture = match inline {
        Some(svg) => svg,
        None => {
            let mime = if is_svg { "image/svg+xml" } else { "image/png" };
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            format!("<img alt=\"{name}\" src=\"data:{mime};base64,{data}\">")
        }
    };
    Ok(format!("<figure>{picture}<figcaption>{name}</figcaption></figure>\n"))
}

/// An SVG file as markup for the page: from its `<svg` on (an XML prolog or doctype does not
/// belong inside HTML), without the namespace attributes (HTML puts `<svg>` in its namespace by
/// itself, and the page then names no URL at all). None when the file holds anything active or
/// external (script, event handlers, links, foreign content): plotters writes none of that, so
/// such a file is shown as an image instead, where browsers run and fetch nothing.
fn inline_svg(text: &str) -> Option<String> {
    let svg = &text[text.find("<svg")?..];
    let svg = svg
        .replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    let lower = svg.to_ascii_lowercase();
    let risky = ["<script", "javascript:", "href", "<foreignobject", "<iframe", "http:", "https:", "url(", "<!"];
    if risky.iter().any(|r| lower.contains(r)) || has_event_handler(&lower) {
        return None;
    }
    Some(svg)
}

/// An `on...=` attribute (onload, onclick, ...) anywhere in lower-cased markup.
fn has_event_handler(lower: &str) -> bool {
    lower.match_indices("on").any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let name: String = lower[at..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let after = lower[at + name.len()..].trim_start().starts_with('=');
        before.is_some_and(|c| c.is_whitespace() || c == '/') && name.len() > 2 && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::OpTotals;
    use crate::results::manifest::{Finding, RunSeconds};
    use crate::suite::run::Row;

    const HOSTILE: &str = "<script>alert(1)</script> sudo blocked";

    fn row(id: u32, target: &str, iteration: u32, test: &str, verdict: Verdict) -> Row {
        Row {
            target: target.into(),
            agentsh_version: "0.16.9".into(),
            iteration,
            category: "shell".into(),
            test_id: TestId::Suite(id),
            test: test.into(),
            verdict,
            expected: "enforced".into(),
            evidence: format!("evidence of {id}"),
            duration_ms: 12,
            detail: "exit 0\nroot".into(),
            record: String::new(),
        }
    }

    fn manifest() -> Run {
        Run {
            run: "20261201t120000-ab12".into(),
            harness_version: "0.1.0".into(),
            provider: crate::provider::ProviderKind::Local,
            vms: 2,
            agentsh_spec: "v0.16.9".into(),
            artifact: Some(crate::agentsh::Artifact {
                deb: "/c/agentsh_0.16.9.deb".into(),
                version: "0.16.9".into(),
                source: "source snapshot".into(),
            }),
            config_source: "assets/config.yaml".into(),
            policy_source: "assets/policies/default.yaml".into(),
            seconds: RunSeconds { artifact: 1.0, prepare: 0.5, create_and_provision: 30.0 },
            targets: vec![
                RunTarget::Ready {
                    name: "t-0".into(),
                    agentsh_version: Some("0.16.9".into()),
                    seconds: 20.0,
                    steps: vec![("connect".into(), 1.0)],
                    findings: vec![Finding { kind: "readiness-retry".into(), detail: "probe <b>1</b> failed".into() }],
                    ssh: "ssh -F x t-0".into(),
                },
                RunTarget::Failed {
                    name: "t-1".into(),
                    step: "server".into(),
                    error: "no /health".into(),
                    findings: Vec::new(),
                },
            ],
        }
    }

    /// A run folder as the job leaves it, written by the crate's own writers, plus a PNG chart
    /// without an SVG twin and a comparison with a p-value column.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::at(dir.path());
        run.write_json(&run.run_json(), &manifest()).expect("run.json");
        let suite = Suite { tests: 3, iterations: 2, shuffle: Some(7), environment_gaps: BTreeMap::new() };
        run.write_json(&run.suite_json(), &suite).expect("suite.json");
        let rows = vec![
            row(1, "t-0", 1, "echo allowed", Verdict::Held),
            row(1, "t-0", 2, "echo allowed", Verdict::Held),
            row(14, "t-0", 1, HOSTILE, Verdict::Violated),
            row(14, "t-0", 2, HOSTILE, Verdict::Violated),
            row(20, "t-0", 1, "curl https://evil.com refused", Verdict::Held),
            row(20, "t-0", 2, "curl https://evil.com refused", Verdict::Inconclusive),
        ];
        let mut tests = crate::report::verdicts::TestsCsv::create(&run.tests_csv()).expect("tests.csv");
        for r in &rows {
            tests.row("20261201t120000-ab12", r).expect("a tests.csv row");
        }
        let tallies = crate::report::verdicts::tally(&rows);
        crate::report::export(&crate::report::Results::Suite { rows: &rows, tallies: &tallies }, &run)
            .expect("summary.csv and heatmap");
        let regression = crate::analyze::regressions::Regression {
            test_id: TestId::Suite(14),
            test: HOSTILE.into(),
            before: crate::analyze::regressions::State::Held,
            now: crate::analyze::regressions::State::Violated,
            change: crate::analyze::regressions::Change::Broken,
        };
        crate::analyze::regressions::write_csv(&run.regressions_csv(), &[regression]).expect("regressions.csv");
        let difference = crate::suite::expectations::Difference {
            test_id: 14,
            expected: Verdict::Held,
            got: Verdict::Violated,
            reason: String::new(),
        };
        crate::suite::expectations::write_csv(&run.expectations_csv(), &[("0.16.9".into(), difference)])
            .expect("expectations.csv");
        let mut echo = OpTotals::new("t-0", "0.16.9", "default", "echo");
        for v in 1..=100u64 {
            echo.counts.response.record(v * 1000).expect("a value in range");
            echo.counts.service.record(v * 500).expect("a value in range");
        }
        echo.counts.count = 100;
        echo.counts.wrong = 3;
        echo.measured_ms = 1000;
        crate::report::latency::write_latency_csv(&run.latency_csv(), &[echo], false).expect("latency.csv");
        let finished = crate::schema::Finished {
            completed: 100,
            measured_ms: 1000,
            rss_kb_first: 9000,
            rss_kb_last: 9100,
            samples: [("echo".to_string(), vec!["wrong: exit 126 <denied>".to_string()])].into(),
        };
        let workload = Workload {
            plan: crate::workload::load("exec-mix").expect("the shipped exec-mix"),
            interrupted: false,
            targets: vec![crate::results::manifest::WorkloadTarget {
                target: "t-0".into(),
                mode: "full".into(),
                partial: false,
                driver_rss_kb_first_minute: 9000,
                driver_rss_kb_last_minute: 9100,
                finished,
                wedges: Vec::new(),
            }],
            modes: vec![
                crate::results::manifest::ModeRun {
                    mode: "full".into(),
                    workload: "exec-mix".into(),
                    status: "ran".into(),
                    applied_s: Default::default(),
                    refused: Default::default(),
                },
                crate::results::manifest::ModeRun {
                    mode: "shim".into(),
                    workload: "exec-mix@shim".into(),
                    status: "skipped".into(),
                    applied_s: Default::default(),
                    refused: [("t-0".to_string(), "starting\nconfig: <invalid> key".to_string())].into(),
                },
            ],
        };
        run.write_json(&run.workload_json(), &workload).expect("workload.json");
        std::fs::write(
            run.overhead_csv(),
            "op,mode,count,errors,wrong_decisions,response_p50_ms,response_p99_ms,p50_vs_baseline,p99_vs_baseline\n\
             echo,baseline,10,0,0,1.000,2.000,1.000,1.000\n\
             echo,ptrace,10,1,0,3.000,6.000,3.000,3.000\n",
        )
        .expect("overhead.csv");
        std::fs::write(
            run.comparison_csv("exec-mix"),
            "op,base_count,run_count,response_p50_base_ms,response_p50_run_ms,response_p50_ratio,\
             response_p50_ratio_ci_low,response_p50_ratio_ci_high,response_p50_p_value\n\
             echo,100,100,1.000,1.500,1.500,1.400,1.600,0.001\n",
        )
        .expect("comparison csv");
        let heatmap = std::fs::read(run.suite_charts_dir().join("t-0.heatmap.png")).expect("the heatmap png");
        std::fs::create_dir_all(run.workload_charts_dir("exec-mix")).expect("charts dir");
        std::fs::write(run.workload_charts_dir("exec-mix").join("t-0.percentiles.png"), heatmap).expect("a png");
        dir
    }

    fn report_of(dir: &Path) -> String {
        let path = write(&RunDir::at(dir)).expect("report written");
        assert_eq!(path, RunDir::at(dir).report_html());
        std::fs::read_to_string(path).expect("report.html")
    }

    /// The values of every `name="..."` attribute in the page.
    fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
        let key = format!(" {name}=\"");
        html.match_indices(&key)
            .filter_map(|(at, _)| {
                let rest = &html[at + key.len()..];
                rest.find('"').map(|end| &rest[..end])
            })
            .collect()
    }

    #[test]
    fn a_full_run_shows_every_file() {
        let dir = fixture();
        let html = report_of(dir.path());
        // run.json: identity, dates, readiness with findings.
        assert!(html.contains("<title>agentsh-bench run 20261201t120000-ab12</title>"), "{html}");
        assert!(html.contains("2026-12-01 12:00:00 UTC"));
        assert!(html.contains("agentsh 0.16.9 from source snapshot"));
        assert!(html.contains("<tr class=\"violated\"><td>t-1</td><td>failed</td>"));
        assert!(html.contains("<b>readiness-retry</b> probe &lt;b&gt;1&lt;/b&gt; failed"));
        // summary.csv: the violated test first, the flaky one next, counts in cells.
        let violated = "<tr class=\"violated\"><td class=\"num\">14</td><td>&lt;script&gt;alert(1)&lt;/script&gt; sudo blocked</td><td>t-0</td><td class=\"num\">0</td><td class=\"num\">2</td>";
        let flaky = "<tr class=\"flaky\"><td class=\"num\">20</td><td>curl https://evil.com refused</td><td>t-0</td><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">1</td>";
        let held = "<tr><td class=\"num\">1</td><td>echo allowed</td><td>t-0</td><td class=\"num\">2</td>";
        let (v, f, h) = (html.find(violated), html.find(flaky), html.find(held));
        assert!(v.is_some() && f.is_some() && h.is_some(), "{html}");
        assert!(v < f && f < h, "violated, then flaky, then held");
        assert!(html.contains("<span class=\"badge b-violated\">2 violated</span>"));
        // tests.csv: the executions that did not hold, with their multi-line detail.
        assert!(html.contains("3 of the 6 row(s) of <code>tests.csv</code>"));
        assert!(html.contains("<div class=\"long\">exit 0\nroot</div>"));
        // regressions.csv, expectations.csv, latency.csv (a wrong decision), the comparison with
        // its confidence interval and a significant p-value.
        assert!(html.contains("<td>broken</td>"));
        assert!(html.contains("<td>0.16.9</td><td class=\"num\">14</td><td>held</td><td>violated</td>"));
        assert!(html.contains("<span class=\"badge b-violated\">3 wrong decisions</span>"));
        assert!(html.contains("<tr class=\"violated\"><td>t-0</td><td>0.16.9</td><td>default</td><td>echo</td>"));
        assert!(html.contains("<td>exec-mix</td>") && html.contains("<td>echo: wrong: exit 126 &lt;denied&gt;</td>"));
        assert!(html.contains("<th>response_p50_ratio_ci_low</th>"));
        // workload.json's modes (a refused one with agentsh's last line), overhead.csv.
        assert!(
            html.contains("shim (skipped, results under exec-mix@shim): refused on t-0: config: &lt;invalid&gt; key")
        );
        assert!(html.contains("<h3>Overhead per layer</h3>"));
        assert!(html.contains("<tr class=\"flaky\"><td>echo</td><td>ptrace</td>"), "{html}");
        assert!(html.contains("<td class=\"num sig\">0.001</td>"));
        // Charts: the heatmap's SVG inline (its PNG twin left out), the lone PNG as a data URI.
        assert!(html.contains("<figure><svg"), "inline svg");
        assert_eq!(html.matches("<figure>").count(), 2, "one heatmap, one latency chart");
        assert!(html.contains("<img alt=\"t-0.percentiles.png\" src=\"data:image/png;base64,iVBORw0KGgo"));
    }

    #[test]
    fn text_from_files_is_escaped_and_nothing_is_fetched() {
        let dir = fixture();
        let html = report_of(dir.path());
        assert!(!html.contains("<script>alert"), "a test name must not become markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own sorting script");
        for name in ["src", "href", "action", "xlink:href", "data"] {
            for value in attributes(&html, name) {
                assert!(!value.contains("//") || value.starts_with("data:"), "{name}=\"{value}\" refers outside");
            }
        }
        assert!(!html.contains("http://") && !html.contains("https://evil.com\""), "no URL outside text");
        assert!(html.contains("default-src 'none'"), "the CSP forbids any request");
    }

    #[test]
    fn an_empty_or_missing_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let html = report_of(dir.path());
        assert!(html.contains("holds none of the files"));
        let gone = dir.path().join("nope");
        let e = write(&RunDir::at(&gone)).expect_err("no folder, no report");
        assert!(format!("{e:#}").contains("nope: no such run folder"));
    }

    #[test]
    fn trends_show_leaks_first_with_their_chart_once() {
        use crate::analyze::trends::{Limit, Limits, Samples};
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::at(dir.path());
        assert!(!report_of(dir.path()).contains("id=\"trends\""), "no trends.csv, no section");
        let mut samples = Samples::new();
        let climb: Vec<(f64, f64)> = (0..=120).map(|i| (f64::from(i) * 30.0, 10.0 + f64::from(i))).collect();
        samples.insert(("t-0".into(), "server_fds".into()), climb);
        samples.insert(("t-0".into(), "sessions".into()), vec![(0.0, 1.0), (30.0, 1.0)]);
        let limit = Limit {
            max_per_hour: Some(5.0),
            max_relative_per_hour: None,
            min_span_s: 60.0,
            min_samples: 3,
            warmup_s: 0.0,
        };
        let limits = Limits(crate::trends::SERIES.iter().map(|(n, _)| (n.to_string(), limit.clone())).collect());
        let rows = crate::analyze::trends::analyze(&samples, &limits);
        crate::analyze::trends::write_csv(&run.trends_csv(), &rows).expect("trends.csv");
        crate::report::trends::render(&samples, &rows, &[], &run.trends_svg()).expect("trends.svg");
        let html = report_of(dir.path());
        assert!(html.contains("<a href=\"#trends\">Resource trends</a>"));
        assert!(html.contains("<span class=\"badge b-violated\">1 leaks</span>"), "{html}");
        assert!(html.contains("<tr class=\"violated\"><td>t-0</td><td>server_fds</td>"), "{html}");
        assert!(html.contains("<tr class=\"inconclusive\"><td>t-0</td><td>sessions</td>"));
        assert_eq!(
            html.matches("<figcaption>trends.svg</figcaption>").count(),
            1,
            "in its section, not again under charts"
        );
        assert!(html.find("<figcaption>trends.svg").unwrap_or(0) < html.find("id=\"charts\"").unwrap_or(usize::MAX));
    }

    #[test]
    fn without_summary_csv_the_counts_come_from_tests_csv() {
        let dir = fixture();
        let run = RunDir::at(dir.path());
        std::fs::remove_file(run.summary_csv()).expect("removed");
        let html = report_of(dir.path());
        assert!(html.contains("From <code>tests.csv (no summary.csv)</code>"));
        assert!(html.contains("<tr class=\"flaky\"><td class=\"num\">20</td>"), "flaky as summary.csv judges it");
    }

    #[test]
    fn an_unreadable_file_is_an_error_in_its_place_and_the_rest_is_shown() {
        let dir = fixture();
        let run = RunDir::at(dir.path());
        std::fs::write(run.run_json(), "{\"run\": 3").expect("a broken run.json");
        std::fs::write(run.summary_csv(), "test_id,test\n1,x\n").expect("a summary.csv of another format");
        let html = report_of(dir.path());
        assert!(html.contains("<p class=\"error\">") && html.contains("run.json: not what this harness writes"));
        assert!(html.contains("summary.csv: no column target"));
        assert!(html.contains("<td>broken</td>"), "regressions.csv still shown");
        let folder = dir.path().file_name().and_then(|n| n.to_str()).expect("a name");
        assert!(html.contains(&format!("<title>agentsh-bench run {folder}</title>")), "named after the folder");
    }

    #[test]
    fn an_svg_with_anything_active_is_an_image_not_markup() {
        let plain = "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>";
        assert_eq!(inline_svg(plain).as_deref(), Some("<svg width=\"10\" height=\"10\"><rect/></svg>"));
        for bad in [
            "<svg><script>alert(1)</script></svg>",
            "<svg onload=\"alert(1)\"></svg>",
            "<svg><rect\nONCLICK = 'x'/></svg>",
            "<svg><image href=\"https://example.org/x.png\"/></svg>",
            "<svg><foreignObject></foreignObject></svg>",
        ] {
            assert_eq!(inline_svg(bad), None, "{bad}");
        }
        assert!(inline_svg("<svg><text>done on time</text></svg>").is_some(), "words are not handlers");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.svg");
        std::fs::write(&file, "<svg onload=\"alert(1)\"></svg>").expect("written");
        let fig = figure(&file).expect("a figure");
        assert!(fig.starts_with("<figure><img alt=\"x.svg\" src=\"data:image/svg+xml;base64,"), "{fig}");
    }

    #[test]
    fn esc_escapes_markup() {
        assert_eq!(
            esc("<script>a & 'b' \"c\"</script>"),
            "&lt;script&gt;a &amp; &apos;b&apos; &quot;c&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_start_is_read_from_the_run_tag() {
        assert_eq!(started("20261201t120000-ab12").as_deref(), Some("2026-12-01 12:00:00 UTC"));
        assert_eq!(started("my-run"), None);
        assert_eq!(started("2026t1200-ab12"), None);
    }
}

//! Two agentsh versions (or agentsh against `none`) compared from their run folders: what a
//! release engineer asks before shipping. Written as one long table, `comparison.csv`, one row per
//! finding, in four sections:
//! - `suite`: each test whose state changed or stayed failing (fixed, broken, still failing);
//! - `integrity`: the integrity verdicts of each side's targets;
//! - `latency`: per op, the p50 and p99 ratio B/A with its bootstrap 95% interval, the rank-test
//!   p-value and a verdict ("no significant difference" when the interval holds 1);
//! - `decisions`: per op, the wrong decisions under load on each side, and each side's wedges.
//!
//! The same comparison serves `compare BASE RUN` (A is the base, B the run), which also writes the
//! percentiles of every op both runs have ([`Comparison::percentiles`], `comparison-<W>.csv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::regressions::{self, Change};
use super::stats::{self, OpComparison, QuantileRatio};
use crate::results::RunDir;

/// One side of the comparison: its label (the agentsh version) and its run folder.
pub struct Side {
    pub label: String,
    pub dir: PathBuf,
}

/// One row of comparison.csv.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Item {
    pub section: &'static str,
    pub item: String,
    pub a: String,
    pub b: String,
    pub ratio: String,
    pub ci_low: String,
    pub ci_high: String,
    pub p_value: String,
    pub verdict: String,
}

impl Item {
    fn plain(section: &'static str, item: String, a: String, b: String, verdict: String) -> Item {
        Item {
            section,
            item,
            a,
            b,
            ratio: String::new(),
            ci_low: String::new(),
            ci_high: String::new(),
            p_value: String::new(),
            verdict,
        }
    }
}

/// What two run folders have to compare.
pub struct Comparison {
    /// The rows of the comparison table, section by section.
    pub items: Vec<Item>,
    /// Per op both sides ran, the statistics of its response-time ratio B/A (the chart's data).
    pub latency: Vec<OpComparison>,
    /// Per op both sides ran, the merged percentiles of each (`compare`'s comparison-<W>.csv).
    pub percentiles: Vec<super::Row>,
}

/// Everything both folders have to compare; a section a side lacks (no suite, no workload) is
/// left out, not failed. `workload` is the workload's key (`NAME` or `NAME@MODE`): its hlogs, and
/// only its mode's rows of latency.csv and workload.json.
pub fn compare(a: &Side, b: &Side, workload: Option<&str>) -> Result<Comparison> {
    let mut items = suite(a, b)?;
    items.extend(integrity(a, b)?);
    let (mut latency, mut percentiles) = (Vec::new(), Vec::new());
    if let Some(w) = workload {
        let (x, y) = (blocks(a, w)?, blocks(b, w)?);
        let (mx, my) = (x.merged()?, y.merged()?);
        percentiles = super::compare(&mx, &my);
        latency = stats::compare_blocks(&x.response, &y.response)
            .into_iter()
            .filter(|s| mx.contains_key(&s.op) && my.contains_key(&s.op))
            .collect();
        items.extend(latency_items(&latency));
        items.extend(one_sided((a, b), &mx, &my));
        items.extend(decisions(a, b, w)?);
    }
    Ok(Comparison { items, latency, percentiles })
}

/// Tests fixed, broken and still failing from A to B (summary.csv of each side); nothing when a
/// side ran no suite.
fn suite(a: &Side, b: &Side) -> Result<Vec<Item>> {
    if [a, b].iter().any(|s| !RunDir::at(&s.dir).summary_csv().is_file()) {
        return Ok(Vec::new());
    }
    let load = |s: &Side| regressions::load(&s.dir).with_context(|| format!("{}'s suite", s.label));
    let (before, now) = (load(a)?, load(b)?);
    let name = |s: regressions::State| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from));
    Ok(regressions::find(&before, &now)
        .into_iter()
        .map(|r| {
            let change = match r.change {
                Change::Broken => "broken",
                Change::Fixed => "fixed",
                Change::StillFailing => "still failing",
            };
            Item::plain(
                "suite",
                format!("{} {}", r.test_id, r.test),
                name(r.before).unwrap_or_default(),
                name(r.now).unwrap_or_default(),
                change.into(),
            )
        })
        .collect())
}

/// Each side's integrity verdicts (tests.csv rows with test_id `integrity`), e.g. `held ×3`.
fn integrity(a: &Side, b: &Side) -> Result<Vec<Item>> {
    let read = |s: &Side| -> Result<Option<BTreeMap<String, u32>>> {
        let path = RunDir::at(&s.dir).tests_csv();
        if !path.is_file() {
            return Ok(None);
        }
        let mut counts = BTreeMap::new();
        for row in column_rows(&path)? {
            if row.get("test_id").map(String::as_str) == Some("integrity") {
                *counts.entry(row.get("verdict").cloned().unwrap_or_default()).or_insert(0) += 1;
            }
        }
        Ok(Some(counts))
    };
    let (Some(x), Some(y)) = (read(a)?, read(b)?) else { return Ok(Vec::new()) };
    let show = |c: &BTreeMap<String, u32>| c.iter().map(|(v, n)| format!("{v} ×{n}")).collect::<Vec<_>>().join(", ");
    let verdict = if x.keys().chain(y.keys()).any(|v| v != "held") { "findings" } else { "held on both" };
    Ok(vec![Item::plain("integrity", "targets".into(), show(&x), show(&y), verdict.into())])
}

fn blocks(s: &Side, workload: &str) -> Result<super::Blocks> {
    super::load_blocks(&s.dir, workload, None).with_context(|| format!("{}'s latency", s.label))
}

/// Ops only one side ran, each named with that side's count: no ratio can say so.
fn one_sided(
    (a, b): (&Side, &Side),
    x: &BTreeMap<String, super::OpLatency>,
    y: &BTreeMap<String, super::OpLatency>,
) -> Vec<Item> {
    let n = |l: &super::OpLatency| format!("{} ops", l.response.len());
    let only_a = x.iter().filter(|(op, _)| !y.contains_key(*op)).map(|(op, l)| (op, n(l), "-".to_string(), a));
    let only_b = y.iter().filter(|(op, _)| !x.contains_key(*op)).map(|(op, l)| (op, "-".to_string(), n(l), b));
    only_a
        .chain(only_b)
        .map(|(op, m, n, side)| Item::plain("latency", op.clone(), m, n, format!("only in {}", side.label)))
        .collect()
}

fn latency_items(rows: &[OpComparison]) -> Vec<Item> {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let mut items = Vec::new();
    for r in rows {
        if r.p50.is_none() {
            // Recorded nothing on a side: no ratio, but the op is not left out of the table.
            let (a, b) = (format!("{} ops", r.base_count), format!("{} ops", r.run_count));
            items.push(Item::plain("latency", r.op.clone(), a, b, r.verdict.as_str().into()));
        }
        for (q, v) in [("p50", &r.p50), ("p99", &r.p99)] {
            let Some(QuantileRatio { base_us, run_us, ratio, ci }) = v else { continue };
            let verdict = v.as_ref().and_then(|v| v.verdict()).map_or(stats::Verdict::InsufficientData, |v| v);
            items.push(Item {
                section: "latency",
                item: format!("{} {q} ms", r.op),
                a: ms(*base_us),
                b: ms(*run_us),
                ratio: format!("{ratio:.3}"),
                ci_low: ci.map(|c| format!("{:.3}", c.0)).unwrap_or_default(),
                ci_high: ci.map(|c| format!("{:.3}", c.1)).unwrap_or_default(),
                p_value: r.p_value.map(stats::format_p).unwrap_or_default(),
                verdict: verdict.as_str().into(),
            });
        }
    }
    items
}

/// Wrong decisions per op (latency.csv), and wedges (workload.json), per side, in the mode of
/// `workload` alone (a `--mode` run has rows for each). A side without latency.csv ran no
/// workload: no section.
fn decisions(a: &Side, b: &Side, workload: &str) -> Result<Vec<Item>> {
    if [a, b].iter().any(|s| !RunDir::at(&s.dir).latency_csv().is_file()) {
        return Ok(Vec::new());
    }
    let wrong = |s: &Side| -> Result<BTreeMap<String, u64>> {
        let mut per = BTreeMap::new();
        for row in column_rows(&RunDir::at(&s.dir).latency_csv())? {
            if !of_workload(workload, row.get("mode").map_or("", String::as_str)) {
                continue;
            }
            let n = row.get("wrong_decisions").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            *per.entry(row.get("op").cloned().unwrap_or_default()).or_insert(0) += n;
        }
        Ok(per)
    };
    let (x, y) = (wrong(a)?, wrong(b)?);
    let mut items: Vec<Item> = x
        .keys()
        .chain(y.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|op| {
            let (m, n) = (x.get(op).copied().unwrap_or(0), y.get(op).copied().unwrap_or(0));
            let verdict = match (m, n) {
                (0, 0) => "right on both",
                (0, _) => "broken",
                (_, 0) => "fixed",
                _ => "wrong on both",
            };
            Item::plain("decisions", format!("{op} wrong decisions"), m.to_string(), n.to_string(), verdict.into())
        })
        .collect();
    // A side without workload.json (a run from before it existed) had no wedge on record; one that
    // cannot be read is an error, not zero wedges.
    let wedges = |s: &Side| -> Result<usize> {
        let path = RunDir::at(&s.dir).workload_json();
        if !path.is_file() {
            return Ok(0);
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let w: crate::results::manifest::Workload =
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
        Ok(w.targets.iter().filter(|t| of_workload(workload, &t.mode)).map(|t| t.wedges.len()).sum())
    };
    let (m, n) = (wedges(a)?, wedges(b)?);
    items.push(Item::plain(
        "decisions",
        "server wedges under load".into(),
        m.to_string(),
        n.to_string(),
        if m == 0 && n == 0 { "none".into() } else { "findings".into() },
    ));
    Ok(items)
}

/// Whether a latency.csv row or workload.json entry in `mode` belongs to the results of
/// `workload` (`NAME` is mode `full`, `NAME@MODE` that mode: `results::workload_key`). A target
/// without agentsh is `none` in every mode, and entries from before `--mode` have none at all.
fn of_workload(workload: &str, mode: &str) -> bool {
    let wanted = workload.split_once('@').map_or("full", |(_, m)| m);
    mode == wanted || mode == "none" || mode.is_empty()
}

/// A CSV's rows as column → value maps.
fn column_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = r.headers().with_context(|| format!("reading {}", path.display()))?.clone();
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        out.push(headers.iter().zip(rec.iter()).map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    Ok(out)
}

pub fn write_csv(path: &Path, a: &str, b: &str, items: &[Item]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["section", "item", a, b, "ratio_b_over_a", "ci95_low", "ci95_high", "p_value", "verdict"])?;
    for i in items {
        w.write_record([i.section, &i.item, &i.a, &i.b, &i.ratio, &i.ci_low, &i.ci_high, &i.p_value, &i.verdict])?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

pub fn print(a: &str, b: &str, items: &[Item]) {
    println!(
        "{:<10} {:<44} {:>14} {:>14} {:>8} {:>17} {:>9}  verdict",
        "section", "item", a, b, "B/A", "95% interval", "p"
    );
    for i in items {
        let ci = if i.ci_low.is_empty() { String::new() } else { format!("[{}, {}]", i.ci_low, i.ci_high) };
        println!(
            "{:<10} {:<44} {:>14} {:>14} {:>8} {:>17} {:>9}  {}",
            i.section, i.item, i.a, i.b, i.ratio, ci, i.p_value, i.verdict
        );
    }
}

/// Run folders to compare, written as the job writes them, for the tests here and `compare`'s.
#[cfg(test)]
pub mod fixture {
    use super::*;
    use crate::results::HlogKind;
    use crate::results::hlog::HlogWriter;
    use crate::results::manifest::{Wedge, Workload, WorkloadTarget};

    /// One side's folder under `dir`: workload `w`, two targets, each op's 100 response and
    /// service times `(base + 1..=100) × scale` µs in two 1 s intervals per target (four blocks per
    /// op); `wrong` wrong decisions per op in mode `full` (and 7 per op in mode `ptrace`, which
    /// `w` must not count); `wedges` wedges in `full` (and one in `ptrace`); and a suite where
    /// test 1 has `t1` and test 2 `t2` (held / violated counts) and integrity `integrity`.
    pub struct Run<'a> {
        pub ops: &'a [(&'a str, u64, u64)],
        pub scale: u64,
        pub wedges: usize,
        pub t1: (u32, u32),
        pub t2: (u32, u32),
        pub integrity: &'a str,
    }

    pub fn write(dir: &Path, label: &str, r: &Run) -> Side {
        let run = RunDir::at(dir);
        std::fs::create_dir_all(run.workload_histograms_dir("w")).unwrap();
        let mut latency = String::from("target,agentsh_version,mode,op,count,errors,wrong_decisions,ops_per_s\n");
        let mut targets = Vec::new();
        for t in ["t-0", "t-1"] {
            for kind in HlogKind::ALL {
                let mut w = HlogWriter::create(&run.hlog("w", t, kind), 1_764_190_000_000, "t").unwrap();
                for start in [0u64, 1000] {
                    for (op, base, _) in r.ops {
                        let mut h = crate::schema::new_histogram();
                        for v in 1..=100u64 {
                            h.record((base + v + start / 100) * r.scale).unwrap();
                        }
                        let enc = crate::schema::encode_histogram(&h).unwrap();
                        w.interval(&format!("{t}/{op}"), start, 1000, h.max(), &enc).unwrap();
                    }
                }
                w.flush().unwrap();
            }
            for (op, _, wrong) in r.ops {
                latency.push_str(&format!(
                    "{t},{label},full,{op},200,0,{wrong},100\n{t},{label},ptrace,{op},200,0,7,100\n"
                ));
            }
            let wedge = Wedge { at_s: 1.0, recovery_s: 2.0, why: "health".into(), outcome: "recovered".into() };
            let target = |mode: &str, n: usize| WorkloadTarget {
                target: t.into(),
                mode: mode.into(),
                partial: false,
                driver_rss_kb_first_minute: 0,
                driver_rss_kb_last_minute: 0,
                finished: Default::default(),
                wedges: vec![wedge.clone(); n],
            };
            // The wedges all on the first target.
            targets.push(target("full", if t == "t-0" { r.wedges } else { 0 }));
            targets.push(target("ptrace", 1));
        }
        std::fs::write(run.latency_csv(), latency).unwrap();
        let plan = crate::workload::load("noop").unwrap();
        let workload = Workload { plan, interrupted: false, targets, modes: Vec::new() };
        run.write_json(&run.workload_json(), &workload).unwrap();
        let (t1, t2) = (r.t1, r.t2);
        std::fs::write(
            run.summary_csv(),
            format!(
                "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n\
                 1,one,t-0,{},{},0,0,0,false\n2,two,t-0,{},{},0,0,0,false\n3,three,t-0,1,0,0,0,0,false\n",
                t1.0, t1.1, t2.0, t2.1
            ),
        )
        .unwrap();
        std::fs::write(
            run.tests_csv(),
            format!(
                "test_id,target,iteration,verdict\n1,t-0,1,held\nintegrity,t-0,1,{}\nintegrity,t-1,1,held\n",
                r.integrity
            ),
        )
        .unwrap();
        Side { label: label.into(), dir: dir.to_path_buf() }
    }

    /// A base A and a run B where B is 3× slower on `echo`, `true` only in A and `new` only in B;
    /// test 1 broke and test 2 was fixed; `echo` got wrong decisions in B and A had 2 wedges.
    pub fn pair(dir: &Path) -> (Side, Side) {
        let a = write(
            &dir.join("a"),
            "v1",
            &Run {
                ops: &[("echo", 900, 0), ("true", 600, 1)],
                scale: 1,
                wedges: 2,
                t1: (1, 0),
                t2: (0, 1),
                integrity: "held",
            },
        );
        let b = write(
            &dir.join("b"),
            "v2",
            &Run {
                ops: &[("echo", 900, 4), ("new", 600, 0)],
                scale: 3,
                wedges: 0,
                t1: (0, 1),
                t2: (1, 0),
                integrity: "violated",
            },
        );
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(dir: &Path, label: &str, tests: &str, latency: &str) -> Side {
        std::fs::create_dir_all(dir).unwrap();
        let summary = RunDir::at(dir).summary_csv();
        std::fs::write(&summary, tests).unwrap();
        std::fs::write(RunDir::at(dir).latency_csv(), latency).unwrap();
        Side { label: label.into(), dir: dir.to_path_buf() }
    }

    fn rows(items: &[Item], section: &str) -> Vec<(String, String, String, String)> {
        items
            .iter()
            .filter(|i| i.section == section)
            .map(|i| (i.item.clone(), i.a.clone(), i.b.clone(), i.verdict.clone()))
            .collect()
    }

    fn row(item: &str, a: &str, b: &str, verdict: &str) -> (String, String, String, String) {
        (item.into(), a.into(), b.into(), verdict.into())
    }

    #[test]
    fn decisions_say_broken_and_fixed_per_op() {
        let d = tempfile::tempdir().unwrap();
        let head = "target,agentsh_version,mode,op,count,errors,wrong_decisions,ops_per_s\n";
        let a = side(&d.path().join("a"), "v1", "", &format!("{head}t,1,full,x,5,0,0,1\nt,1,none,y,5,0,2,1\n"));
        let b = side(&d.path().join("b"), "v2", "", &format!("{head}t,2,full,x,5,0,3,1\nt,2,full,y,5,0,0,1\n"));
        let items = decisions(&a, &b, "w").unwrap();
        assert_eq!(
            rows(&items, "decisions"),
            [
                row("x wrong decisions", "0", "3", "broken"),
                row("y wrong decisions", "2", "0", "fixed"),
                row("server wedges under load", "0", "0", "none")
            ]
        );
        let csv = d.path().join("c.csv");
        write_csv(&csv, "v1", "v2", &items).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.starts_with("section,item,v1,v2,ratio_b_over_a,ci95_low,ci95_high,p_value,verdict\n"), "{text}");
        assert!(text.contains("decisions,x wrong decisions,0,3,,,,,broken"), "{text}");
    }

    /// Two whole run folders: every section, each from its own file, in the workload's mode only.
    #[test]
    fn every_section_from_two_run_folders() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = fixture::pair(d.path());
        let c = compare(&a, &b, Some("w")).unwrap();
        assert_eq!(
            rows(&c.items, "suite"),
            [row("1 one", "held", "violated", "broken"), row("2 two", "violated", "held", "fixed")]
        );
        assert_eq!(rows(&c.items, "integrity"), [row("targets", "held ×2", "held ×1, violated ×1", "findings")]);
        // ptrace's rows (7 wrong per op) and wedges (one per target) are another workload's.
        assert_eq!(
            rows(&c.items, "decisions"),
            [
                row("echo wrong decisions", "0", "8", "broken"),
                row("new wrong decisions", "0", "0", "right on both"),
                row("true wrong decisions", "2", "0", "fixed"),
                row("server wedges under load", "2", "0", "findings"),
            ]
        );
        let latency: Vec<&Item> = c.items.iter().filter(|i| i.section == "latency").collect();
        let items: Vec<&str> = latency.iter().map(|i| i.item.as_str()).collect();
        assert_eq!(items, ["echo p50 ms", "echo p99 ms", "true", "new"]);
        let p50 = latency[0];
        assert!((p50.ratio.parse::<f64>().unwrap() - 3.0).abs() < 0.05, "{p50:?}");
        let (lo, hi): (f64, f64) = (p50.ci_low.parse().unwrap(), p50.ci_high.parse().unwrap());
        assert!(lo > 2.5 && hi < 3.5 && lo <= hi, "{p50:?}");
        assert_eq!(p50.verdict, "slower");
        assert_eq!(
            (latency[2].a.as_str(), latency[2].b.as_str(), latency[2].verdict.as_str()),
            ("400 ops", "-", "only in v1")
        );
        assert_eq!(
            (latency[3].a.as_str(), latency[3].b.as_str(), latency[3].verdict.as_str()),
            ("-", "400 ops", "only in v2")
        );
        // The chart's statistics and the percentiles: ops both ran, nothing else.
        assert_eq!(c.latency.iter().map(|s| s.op.as_str()).collect::<Vec<_>>(), ["echo"]);
        assert_eq!(c.latency[0].base_blocks, 4, "2 targets × 2 intervals");
        assert_eq!(
            c.percentiles.iter().map(|r| (r.op.as_str(), r.base_count, r.run_count)).collect::<Vec<_>>(),
            [("echo", 400, 400)]
        );
    }

    /// A side that ran no suite, or no workload, leaves those sections out; a file that is there
    /// and cannot be read is an error naming it.
    #[test]
    fn sections_a_side_lacks_are_left_out_and_broken_files_named() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = fixture::pair(d.path());
        std::fs::remove_file(RunDir::at(&a.dir).summary_csv()).unwrap();
        std::fs::remove_file(RunDir::at(&b.dir).tests_csv()).unwrap();
        let c = compare(&a, &b, None).unwrap();
        assert!(c.items.is_empty() && c.latency.is_empty(), "{:?}", c.items);
        std::fs::write(RunDir::at(&b.dir).workload_json(), "{").unwrap();
        let e = format!("{:#}", compare(&a, &b, Some("w")).err().unwrap());
        assert!(e.contains("workload.json"), "{e}");
        let e = format!("{:#}", compare(&a, &b, Some("nope")).err().unwrap());
        assert!(e.contains("v1's latency") && e.contains("no workload \"nope\""), "{e}");
    }
}

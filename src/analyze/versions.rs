//! Two agentsh versions (or agentsh against `none`) compared from their run folders: what a
//! release engineer asks before shipping. Written as one long table, `comparison.csv`, one row per
//! finding, in four sections:
//! - `suite`: each test whose state changed or stayed failing (fixed, broken, still failing);
//! - `integrity`: the integrity verdicts of each side's targets;
//! - `latency`: per op, the p50 and p99 ratio B/A with its bootstrap 95% interval, the rank-test
//!   p-value and a verdict ("no significant difference" when the interval holds 1);
//! - `decisions`: per op, the wrong decisions under load on each side, and each side's wedges.

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

/// Everything both folders have to compare; a section a side lacks (no suite, no workload) is
/// left out, not failed.
pub fn compare(a: &Side, b: &Side, workload: Option<&str>) -> Result<(Vec<Item>, Vec<OpComparison>)> {
    let mut items = suite(a, b);
    items.extend(integrity(a, b)?);
    let mut latency = Vec::new();
    if let Some(w) = workload {
        latency = latency_stats(a, b, w)?;
        items.extend(latency_items(&latency));
        items.extend(decisions(a, b)?);
    }
    Ok((items, latency))
}

/// Tests fixed, broken and still failing from A to B (summary.csv of each side).
fn suite(a: &Side, b: &Side) -> Vec<Item> {
    let (Ok(before), Ok(now)) = (regressions::load(&a.dir), regressions::load(&b.dir)) else { return Vec::new() };
    let name = |s: regressions::State| serde_json::to_value(s).ok().and_then(|v| v.as_str().map(String::from));
    regressions::find(&before, &now)
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
        .collect()
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

fn latency_stats(a: &Side, b: &Side, workload: &str) -> Result<Vec<OpComparison>> {
    let x = super::load_blocks(&a.dir, workload, None).with_context(|| format!("{}'s latency", a.label))?;
    let y = super::load_blocks(&b.dir, workload, None).with_context(|| format!("{}'s latency", b.label))?;
    Ok(stats::compare_blocks(&x.response, &y.response))
}

fn latency_items(rows: &[OpComparison]) -> Vec<Item> {
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let mut items = Vec::new();
    for r in rows {
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

/// Wrong decisions per op (latency.csv), and wedges (workload.json), per side.
fn decisions(a: &Side, b: &Side) -> Result<Vec<Item>> {
    let wrong = |s: &Side| -> Result<BTreeMap<String, u64>> {
        let mut per = BTreeMap::new();
        for row in column_rows(&RunDir::at(&s.dir).latency_csv())? {
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
    let wedges = |s: &Side| -> usize {
        std::fs::read(RunDir::at(&s.dir).workload_json())
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::results::manifest::Workload>(&b).ok())
            .map_or(0, |w| w.targets.iter().map(|t| t.wedges.len()).sum())
    };
    let (m, n) = (wedges(a), wedges(b));
    items.push(Item::plain(
        "decisions",
        "server wedges under load".into(),
        m.to_string(),
        n.to_string(),
        if m == 0 && n == 0 { "none".into() } else { "findings".into() },
    ));
    Ok(items)
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

    #[test]
    fn decisions_say_broken_and_fixed_per_op() {
        let d = tempfile::tempdir().unwrap();
        let head = "target,agentsh_version,mode,op,count,errors,wrong_decisions,ops_per_s\n";
        let a = side(&d.path().join("a"), "v1", "", &format!("{head}t,1,default,x,5,0,0,1\nt,1,default,y,5,0,2,1\n"));
        let b = side(&d.path().join("b"), "v2", "", &format!("{head}t,2,default,x,5,0,3,1\nt,2,default,y,5,0,0,1\n"));
        let items = decisions(&a, &b).unwrap();
        let got: Vec<(&str, &str, &str, &str)> =
            items.iter().map(|i| (i.item.as_str(), i.a.as_str(), i.b.as_str(), i.verdict.as_str())).collect();
        assert_eq!(
            got,
            [
                ("x wrong decisions", "0", "3", "broken"),
                ("y wrong decisions", "2", "0", "fixed"),
                ("server wedges under load", "0", "0", "none")
            ]
        );
        let csv = d.path().join("c.csv");
        write_csv(&csv, "v1", "v2", &items).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(text.starts_with("section,item,v1,v2,ratio_b_over_a,ci95_low,ci95_high,p_value,verdict\n"), "{text}");
        assert!(text.contains("decisions,x wrong decisions,0,3,,,,,broken"), "{text}");
    }
}

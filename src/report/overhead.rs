//! What each layer costs: the workload's ops in every mode that ran (`--mode all`, or a list),
//! response time merged over all targets, and its ratio to the same op in `baseline` (agentsh
//! with its layers off). Printed at the end of the workload and written to `overhead.csv`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::results::OpTotals;
use crate::schema::IntervalCounts;

/// The mode every other is divided by.
pub const BASELINE: &str = "baseline";

/// One op in one mode, over every target that ran it.
pub struct Cell {
    pub counts: IntervalCounts,
}

impl Cell {
    /// A response-time quantile in ms; None without a sample.
    pub fn ms(&self, q: f64) -> Option<f64> {
        let h = &self.counts.response;
        (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn errors(&self) -> u64 {
        self.counts.errors.values().sum()
    }

    /// Its figures are not those of the op doing its job: some runs failed, or were decided
    /// otherwise than expected (a denied op let through with its layer off runs to the end).
    pub fn suspect(&self) -> bool {
        self.errors() > 0 || self.counts.wrong > 0
    }
}

/// The table: rows in the order `ops` lists them, modes in the order `modes` does. An op or a
/// mode with no row in `rows` is left out.
pub struct Table {
    pub ops: Vec<String>,
    pub modes: Vec<String>,
    cells: BTreeMap<(String, String), Cell>,
}

impl Table {
    /// Merges the rows of latency.csv per (op, mode) over targets.
    pub fn new(rows: &[OpTotals], ops: &[String], modes: &[String]) -> Result<Table> {
        let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
        for r in rows {
            let cell = cells
                .entry((r.op.clone(), r.mode.clone()))
                .or_insert_with(|| Cell { counts: IntervalCounts::default() });
            cell.counts.merge(&r.counts).with_context(|| format!("merging {} in {}", r.op, r.mode))?;
        }
        let has_op = |o: &String| cells.keys().any(|(op, _)| op == o);
        let has_mode = |m: &String| cells.keys().any(|(_, mode)| mode == m);
        Ok(Table {
            ops: ops.iter().filter(|o| has_op(o)).cloned().collect(),
            modes: modes.iter().filter(|m| has_mode(m)).cloned().collect(),
            cells,
        })
    }

    pub fn cell(&self, op: &str, mode: &str) -> Option<&Cell> {
        self.cells.get(&(op.to_string(), mode.to_string()))
    }

    /// The op's quantile in `mode` over the same in baseline; None without either.
    pub fn ratio(&self, op: &str, mode: &str, q: f64) -> Option<f64> {
        let base = self.cell(op, BASELINE)?.ms(q)?;
        let this = self.cell(op, mode)?.ms(q)?;
        (base > 0.0).then(|| this / base)
    }

    /// `overhead.csv`: one row per op × mode.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
        w.write_record([
            "op",
            "mode",
            "count",
            "errors",
            "wrong_decisions",
            "response_p50_ms",
            "response_p99_ms",
            "p50_vs_baseline",
            "p99_vs_baseline",
        ])?;
        let num = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
        for op in &self.ops {
            for mode in &self.modes {
                let Some(c) = self.cell(op, mode) else { continue };
                w.write_record([
                    op.clone(),
                    mode.clone(),
                    c.counts.count.to_string(),
                    c.errors().to_string(),
                    c.counts.wrong.to_string(),
                    num(c.ms(0.5), 3),
                    num(c.ms(0.99), 3),
                    num(self.ratio(op, mode, 0.5), 3),
                    num(self.ratio(op, mode, 0.99), 3),
                ])?;
            }
        }
        w.flush().with_context(|| format!("flushing {}", path.display()))?;
        Ok(())
    }

    /// Two blocks, p50 then p99: a row per op, a column per mode, each cell the time in ms and
    /// its ratio to baseline; `!` marks a cell whose op had errors or wrong decisions there.
    pub fn render(&self) -> String {
        const OP: usize = 14;
        const COL: usize = 15;
        let mut s = String::new();
        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            s.push_str(&format!("{:<OP$}", format!("{label} ms")));
            for m in &self.modes {
                s.push_str(&format!("{m:>COL$}"));
            }
            s.push('\n');
            for op in &self.ops {
                s.push_str(&format!("{:<OP$}", truncate(op, OP - 1)));
                for m in &self.modes {
                    let cell = self.cell(op, m);
                    let text = match (cell.and_then(|c| c.ms(q)), self.ratio(op, m, q)) {
                        (None, _) => "-".to_string(),
                        (Some(v), Some(r)) if m != BASELINE => format!("{} {}×", short(v), short(r)),
                        (Some(v), _) => short(v),
                    };
                    let flag = if cell.is_some_and(Cell::suspect) { "!" } else { " " };
                    s.push_str(&format!("{:>w$}{flag}", text, w = COL - 1));
                }
                s.push('\n');
            }
            s.push('\n');
        }
        s.push_str(
            "response time over all targets; N.NN× = this mode / baseline (agentsh with its layers off);\n\
             ! = the op had errors or wrong decisions in that mode (a denied op whose layer is off runs\n\
             to the end, an op that needs an absent layer fails): its figure is not the layer's cost\n",
        );
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n).collect() }
}

/// A figure in at most 5 characters (below 10 000): 2 decimals under 100, 1 under 1000.
fn short(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, mode: &str, op: &str, values_us: &[u64], errors: u64) -> OpTotals {
        let mut t = OpTotals::new(target, "0.16.9", mode, op);
        for v in values_us {
            t.counts.response.record(*v).unwrap();
        }
        t.counts.count = values_us.len() as u64;
        if errors > 0 {
            t.counts.errors.insert("timeout".into(), errors);
        }
        t
    }

    #[test]
    fn cells_merge_targets_and_divide_by_baseline() {
        let rows = vec![
            row("t-0", "baseline", "echo", &[600; 10], 0),
            row("t-1", "baseline", "echo", &[600; 10], 0),
            row("t-0", "ptrace", "echo", &[1800; 10], 0),
            row("t-1", "ptrace", "echo", &[1800; 10], 0),
            row("t-0", "seccomp", "echo", &[1200; 20], 1),
            // No baseline for this op: no ratio.
            row("t-0", "ptrace", "only-here", &[5000], 0),
            // Seconds, a ratio in the thousands: the columns stay aligned.
            row("t-0", "fuse", "echo", &[26_000_000], 3),
        ];
        let ops: Vec<String> = ["echo", "only-here", "never"].map(String::from).to_vec();
        let modes: Vec<String> = ["baseline", "shim", "seccomp", "ptrace", "fuse"].map(String::from).to_vec();
        let t = Table::new(&rows, &ops, &modes).unwrap();
        assert_eq!(t.ops, ["echo", "only-here"], "an op that never ran is left out");
        assert_eq!(t.modes, ["baseline", "seccomp", "ptrace", "fuse"], "a mode that never ran is left out");
        assert_eq!(t.cell("echo", "baseline").unwrap().counts.count, 20);
        let r = t.ratio("echo", "ptrace", 0.5).unwrap();
        assert!((r - 3.0).abs() < 0.01, "{r}");
        assert!((t.ratio("echo", "baseline", 0.99).unwrap() - 1.0).abs() < 1e-9);
        assert!(t.ratio("only-here", "ptrace", 0.5).is_none());
        assert!(t.cell("echo", "seccomp").unwrap().suspect());
        let text = t.render();
        assert!(text.contains("1.80 3.00×"), "{text}");
        assert!(text.contains("1.20 2.00×!"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("only-here") && l.contains("5.00 ") && l.contains('-')), "{text}");
        let table: Vec<usize> = text.split("\n\n").take(2).flat_map(|b| b.lines()).map(|l| l.chars().count()).collect();
        assert!(table.iter().all(|w| *w == table[0]), "aligned columns: {table:?}\n{text}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("overhead.csv");
        t.write_csv(&p).unwrap();
        let mut r = csv::Reader::from_path(&p).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 5, "echo × 4 modes, only-here × 1");
        let ptrace = rows.iter().find(|r| &r[0] == "echo" && &r[1] == "ptrace").unwrap();
        assert_eq!((&ptrace[2], &ptrace[5], &ptrace[7]), ("20", "1.800", "3.000"));
        let lone = rows.iter().find(|r| &r[0] == "only-here").unwrap();
        assert_eq!(&lone[7], "", "no baseline, no ratio");
    }
}

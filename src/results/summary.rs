//! `summary.csv`: one row per test × target with its counts by verdict. Written by
//! `report::verdicts` at the end of the suite, read back by `analyze::regressions` when a later
//! run names this one as its `--baseline`: one row type for both, so they agree on the columns.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::TestId;

/// One test on one target. Field order is column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// A suite test's number, or `integrity`.
    pub test_id: TestId,
    pub test: String,
    pub target: String,
    pub held: u32,
    pub violated: u32,
    pub inconclusive: u32,
    pub skipped_env: u32,
    pub informational: u32,
    /// Held in some iterations and violated or inconclusive in others.
    pub flaky: bool,
}

/// The header, written even when there are no rows (serde's header comes with the first row
/// only); a test checks it against the struct.
const COLUMNS: [&str; 9] =
    ["test_id", "test", "target", "held", "violated", "inconclusive", "skipped_env", "informational", "flaky"];

pub fn write(path: &Path, rows: &[SummaryRow]) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(path)
        .with_context(|| format!("writing {}", path.display()))?;
    w.write_record(COLUMNS).with_context(|| format!("writing {}", path.display()))?;
    for r in rows {
        w.serialize(r).with_context(|| format!("writing {}", path.display()))?;
    }
    w.flush().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

/// Every row, in file order. Columns are found by name; an error names the file and line.
pub fn read(path: &Path) -> Result<Vec<SummaryRow>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = r.headers().with_context(|| format!("reading {}", path.display()))?.clone();
    if let Some(missing) = COLUMNS.iter().find(|c| !headers.iter().any(|h| h == **c)) {
        bail!("{}: no column {missing}", path.display());
    }
    let mut rows = Vec::new();
    for (i, row) in r.deserialize::<SummaryRow>().enumerate() {
        let row = row.map_err(|e| {
            // What was wrong with the field, in the words the old hand-written reader used
            // (analyze::regressions' tests look for them); csv's own wording otherwise.
            let what = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => match err.kind() {
                    csv::DeserializeErrorKind::ParseInt(e) => format!("not a count: {e}"),
                    csv::DeserializeErrorKind::ParseBool(e) => format!("not true or false: {e}"),
                    // TestId's own message ("not a test id: ...") and missing fields.
                    csv::DeserializeErrorKind::Message(m) => m.clone(),
                    other => other.to_string(),
                },
                _ => e.to_string(),
            };
            anyhow::anyhow!("{}:{}: {what}", path.display(), i + 2)
        })?;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: TestId) -> SummaryRow {
        SummaryRow {
            test_id: id,
            test: "shell: sudo, blocked".into(),
            target: "a-0".into(),
            held: 3,
            violated: 1,
            inconclusive: 0,
            skipped_env: 0,
            informational: 2,
            flaky: true,
        }
    }

    #[test]
    fn columns_are_the_structs_and_rows_read_back() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(row(TestId::Suite(14))).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next(), Some(COLUMNS.join(",").as_str()));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.csv");
        let rows = [row(TestId::Suite(14)), row(TestId::Integrity)];
        write(&p, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "test_id,test,target,held,violated,inconclusive,skipped_env,informational,flaky\n\
             14,\"shell: sudo, blocked\",a-0,3,1,0,0,2,true\n\
             integrity,\"shell: sudo, blocked\",a-0,3,1,0,0,2,true\n"
        );
        assert_eq!(read(&p).unwrap(), rows);
        write(&p, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{}\n", COLUMNS.join(",")));
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.csv");
        let head = COLUMNS.join(",");
        let err = |body: &str| {
            std::fs::write(&p, format!("{head}\n{body}")).unwrap();
            format!("{:#}", read(&p).unwrap_err())
        };
        assert!(err("1,t,a,1,0,0,0,0,false\n1,t,a,x,0,0,0,0,false\n").contains("summary.csv:3: not a count"));
        assert!(err("1,t,a,1,0,0,0,0,maybe\n").contains("summary.csv:2: not true or false"));
        std::fs::write(&p, "test_id,test,held\n1,t,1\n").unwrap();
        assert!(format!("{:#}", read(&p).unwrap_err()).contains("summary.csv: no column target"));
    }
}

//! HdrHistogram interval logs (`.hlog`), the format HistogramLogProcessor, HistogramLogAnalyzer,
//! hdr-plot and the Python `hdrhistogram` package read. The driver already sends each interval
//! as base64 V2+DEFLATE (what Java's writer always produces), so lines are written as they come:
//! a crash loses at most the interval in flight.
//!
//! Written by `workload::remote` as the driver reports, read back by [`read`] for `analyze`
//! (`compare`) and `report::charts`: one writer and one reader, so the two cannot disagree on
//! the format.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

pub struct HlogWriter {
    out: BufWriter<File>,
}

impl HlogWriter {
    /// `start_epoch_ms`: the driver's time zero; interval timestamps are written relative to it
    /// (it is both StartTime and BaseTime, so readers take them as offsets).
    pub fn create(path: &Path, start_epoch_ms: u64, comment: &str) -> Result<HlogWriter> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let secs = start_epoch_ms as f64 / 1000.0;
        let human =
            humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(start_epoch_ms));
        writeln!(out, "#[{comment}]")?;
        writeln!(out, "#[Histogram values are in microseconds]")?;
        writeln!(out, "#[StartTime: {secs:.3} (seconds since epoch), {human}]")?;
        writeln!(out, "#[BaseTime: {secs:.3} (seconds since epoch)]")?;
        writeln!(out, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
        out.flush()?;
        Ok(HlogWriter { out })
    }

    /// One interval: `Tag=<tag>,<start s>,<length s>,<max ms>,<histogram>`. Tags may not hold
    /// ',', ' ' or newlines (the format's rule); they are replaced by '_'.
    pub fn interval(&mut self, tag: &str, start_ms: u64, length_ms: u64, max_us: u64, encoded: &str) -> Result<()> {
        let tag: String = tag.chars().map(|c| if matches!(c, ',' | ' ' | '\r' | '\n') { '_' } else { c }).collect();
        writeln!(
            self.out,
            "Tag={tag},{:.3},{:.3},{:.3},{encoded}",
            start_ms as f64 / 1000.0,
            length_ms as f64 / 1000.0,
            max_us as f64 / 1000.0
        )?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().context("flushing an hlog")
    }
}

/// The op of an interval's tag (`target/op`, as `workload::remote` writes it): what follows the
/// last '/'; a tag without one is its own op.
pub fn op_of(tag: &str) -> &str {
    tag.rsplit('/').next().unwrap_or(tag)
}

/// One interval of an hlog.
pub struct HlogInterval {
    /// `target/op` as written by `workload::remote`; None for an untagged line (other writers).
    pub tag: Option<String>,
    /// Seconds since the log's start (StartTime = BaseTime in what we write).
    pub start_s: f64,
    pub histogram: Histogram<u64>,
}

/// Every interval of an hlog, in file order; comments and headers are skipped.
pub fn read(path: &Path) -> Result<Vec<HlogInterval>> {
    read_timed(path).map(|(_, intervals)| intervals)
}

/// The log's StartTime (seconds since the epoch, when it has one) and every interval: what puts
/// logs written at different times (a soak's rounds) on one clock.
pub fn read_timed(path: &Path) -> Result<(Option<f64>, Vec<HlogInterval>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut start = None;
    for entry in IntervalLogIterator::new(&bytes) {
        let i = match entry.map_err(|e| anyhow!("{}: {e:?}", path.display()))? {
            LogEntry::StartTime(t) => {
                start = Some(t.as_secs_f64());
                continue;
            }
            LogEntry::Interval(i) => i,
            _ => continue,
        };
        out.push(HlogInterval {
            tag: i.tag().map(|t| t.as_str().to_string()),
            start_s: i.start_timestamp().as_secs_f64(),
            histogram: crate::schema::decode_histogram(i.encoded_histogram())
                .with_context(|| format!("{}: an interval's histogram", path.display()))?,
        });
    }
    Ok((start, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's own reader parses what we write, tags and histograms included.
    #[test]
    fn written_log_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let mut h = crate::schema::new_histogram();
        h.record(1500).unwrap();
        h.record(2500).unwrap();
        let enc = crate::schema::encode_histogram(&h).unwrap();
        let mut w = HlogWriter::create(&path, 1_764_190_000_123, "test").unwrap();
        w.interval("t0/true", 1000, 1000, h.max(), &enc).unwrap();
        w.interval("t0/odd name", 2000, 500, h.max(), &enc).unwrap();
        w.flush().unwrap();
        let (start, _) = read_timed(&path).unwrap();
        assert_eq!(start, Some(1_764_190_000.123), "StartTime, for putting logs on one clock");
        let text = std::fs::read(&path).unwrap();
        let mut tags = Vec::new();
        for e in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(i) = e.unwrap() {
                tags.push(i.tag().unwrap().as_str().to_string());
                let back = crate::schema::decode_histogram(i.encoded_histogram()).unwrap();
                assert_eq!(back.len(), 2);
            }
        }
        assert_eq!(tags, ["t0/true", "t0/odd_name"]);
        // And ours reads the same.
        let ours = read(&path).unwrap();
        assert_eq!(ours.iter().map(|i| i.tag.as_deref().unwrap_or("")).collect::<Vec<_>>(), tags);
        assert_eq!(ours.iter().map(|i| i.start_s).collect::<Vec<_>>(), [1.0, 2.0]);
        assert!(ours.iter().all(|i| i.histogram.len() == 2));
    }
}

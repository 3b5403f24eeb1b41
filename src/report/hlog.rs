//! HdrHistogram interval logs (`.hlog`), the format HistogramLogProcessor, HistogramLogAnalyzer,
//! hdr-plot and the Python `hdrhistogram` package read. The driver already sends each interval
//! as base64 V2+DEFLATE (what Java's writer always produces), so lines are written as they come:
//! a crash loses at most the interval in flight.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

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

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

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
    }
}

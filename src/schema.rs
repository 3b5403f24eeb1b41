//! The wire format between the controller and the on-target driver, owned here for both sides:
//! a typed [`Plan`] goes in on the driver's stdin (JSON), typed [`Record`]s come out on its stdout
//! (one JSON object per line), so a partial stream is still readable up to the last interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the driver runs. Built by `workload` from a scenario file, validated there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub ops: Vec<OpSpec>,
    pub load: Load,
    /// Measured time, after warm-up.
    pub duration_ms: u64,
    /// Load runs but is not reported (caches, lazy server paths).
    pub warmup_ms: u64,
    /// Length of one reported interval (one histogram per op per interval).
    pub interval_ms: u64,
    /// A start this much later than intended counts as a late start.
    pub late_after_us: u64,
    /// Folder on the target for file ops (one subfolder per worker).
    pub workspace: String,
    /// Set by the controller for a target without agentsh: governed ops run as their ungoverned
    /// twins (the command itself, the GET sent straight to its host) and are judged only on
    /// having run, which is what the baseline of an overhead ratio needs.
    #[serde(default)]
    pub ungoverned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Open loop: operations start at intended times `i / rate`, whatever the latency, with up to
    /// `workers` in flight; response time counts from the intended start (no coordinated omission).
    Rate { ops_per_s: f64, workers: usize },
    /// Closed loop: `workers` each run one op after another (intended start = actual start).
    Concurrency { workers: usize },
}

impl Load {
    pub fn workers(&self) -> usize {
        match self {
            Load::Rate { workers, .. } | Load::Concurrency { workers } => *workers,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSpec {
    pub name: String,
    pub weight: u32,
    pub kind: OpKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Does nothing: measures the driver's own scheduling and recording cost.
    Noop,
    /// fork+exec of `argv`, output captured and checked against `expect`.
    Exec { argv: Vec<String>, expect: Expect, timeout_ms: u64 },
    /// In the worker's workspace folder: create and write `bytes`, read back and compare, rename,
    /// unlink.
    FileCycle { bytes: usize },
    /// HTTP/1.0 GET of `path` from the driver's own loopback fixture server.
    HttpGet { path: String, expect_status: u16 },
    /// An operation agentsh governs, and the decision it must make about it.
    Governed { via: Via, expected: Expected, timeout_ms: u64 },
}

/// How a governed op reaches agentsh.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `/bin/bash -c COMMAND`: bash is agentsh's shell shim, which runs the command in the shim's
    /// session (precheck, then ptrace, seccomp, Landlock and FUSE on what it starts).
    Shim { command: String },
    /// `POST /api/v1/sessions/{id}/exec` in the worker's own session (one exec at a time per
    /// session, so one session per worker).
    Session { argv: Vec<String> },
    /// An HTTP/1.0 GET of `url` sent to the worker's session proxy (its `proxy_url`).
    Proxy { url: String },
}

/// The decision a governed op must get. A wrong decision is the opposite one shown: a refusal
/// of an allowed op, or the effect of a denied one. Anything else that goes wrong (an agentsh
/// error, a hang) is an error by kind, not a decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// Runs and produces what `Expect` says (for `proxy`, `exit` is the HTTP status).
    Allow(Expect),
    /// Refused; `effect` is text in its output (or the response body) that only an op that ran
    /// can produce.
    Deny { effect: String },
}

/// What an allowed operation must produce; anything else is a wrong decision, not an error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Expect {
    pub exit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_contains: Option<String>,
}

/// One line of the driver's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Started {
        /// Milliseconds since the Unix epoch at the driver's time zero (intervals count from it).
        epoch_ms: u64,
        ops: Vec<String>,
        workers: usize,
    },
    Interval(Interval),
    Finished(Finished),
    /// The driver could not go on; what it had sent stays valid.
    Fatal {
        message: String,
    },
}

/// One op's histograms for one interval, values in microseconds, V2+DEFLATE, base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interval {
    pub op: String,
    /// Start of the interval, ms since the driver's time zero (warm-up excluded from reports).
    pub start_ms: u64,
    pub length_ms: u64,
    pub count: u64,
    pub wrong: u64,
    pub errors: BTreeMap<String, u64>,
    pub late: u64,
    pub response: String,
    pub service: String,
    /// The driver's resident set when the interval closed (kB), to see whether memory stays flat.
    #[serde(default)]
    pub driver_rss_kb: u64,
}

impl Interval {
    /// The wire form of one op's interval: the counts with their histograms encoded.
    pub fn encode(
        op: String,
        start_ms: u64,
        length_ms: u64,
        counts: IntervalCounts,
        driver_rss_kb: u64,
    ) -> anyhow::Result<Interval> {
        Ok(Interval {
            op,
            start_ms,
            length_ms,
            count: counts.count,
            wrong: counts.wrong,
            errors: counts.errors,
            late: counts.late,
            response: encode_histogram(&counts.response)?,
            service: encode_histogram(&counts.service)?,
            driver_rss_kb,
        })
    }

    /// The counts this record carries, histograms decoded (response first, then service).
    pub fn counts(&self) -> anyhow::Result<IntervalCounts> {
        Ok(IntervalCounts {
            response: decode_histogram(&self.response)?,
            service: decode_histogram(&self.service)?,
            count: self.count,
            wrong: self.wrong,
            late: self.late,
            errors: self.errors.clone(),
        })
    }
}

/// What one op did over some time, in memory: the driver's open interval, and on the controller
/// the sum of every interval received for one op on one target (`results::OpTotals`). Both sides
/// add up the same six things, so they live and are merged in one place.
#[derive(Debug, Clone)]
pub struct IntervalCounts {
    /// From the intended start to the end, in µs (includes waiting for a worker).
    pub response: hdrhistogram::Histogram<u64>,
    /// From the actual start to the end, in µs.
    pub service: hdrhistogram::Histogram<u64>,
    pub count: u64,
    /// Allowed operations that did not produce what was expected.
    pub wrong: u64,
    /// Operations that started more than `Plan::late_after_us` after their intended start.
    pub late: u64,
    /// Operations that failed, by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Default for IntervalCounts {
    fn default() -> IntervalCounts {
        IntervalCounts {
            response: new_histogram(),
            service: new_histogram(),
            count: 0,
            wrong: 0,
            late: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl IntervalCounts {
    /// Adds `other` in. Fails only if a histogram holds values outside [`new_histogram`]'s
    /// bounds (a driver built with other settings).
    pub fn merge(&mut self, other: &IntervalCounts) -> anyhow::Result<()> {
        self.response.add(&other.response).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.service.add(&other.service).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.count += other.count;
        self.wrong += other.wrong;
        self.late += other.late;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Finished {
    /// Operations whose intended start fell in the measured window (all of them complete: the
    /// queue is drained before the driver finishes).
    pub completed: u64,
    pub measured_ms: u64,
    /// The driver's resident set at the end of the first and of the last interval (kB).
    pub rss_kb_first: u64,
    pub rss_kb_last: u64,
    /// A sample of why operations went wrong or failed (at most a few per op).
    pub samples: BTreeMap<String, Vec<String>>,
}

/// Histogram settings shared by both sides: 1 µs to 1 h, 3 significant digits.
pub fn new_histogram() -> hdrhistogram::Histogram<u64> {
    // Bounds are constants within the crate's documented limits, so this cannot fail.
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

pub fn encode_histogram(h: &hdrhistogram::Histogram<u64>) -> anyhow::Result<String> {
    use base64::Engine;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    let mut buf = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut buf).map_err(|e| anyhow::anyhow!("serializing histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

pub fn decode_histogram(s: &str) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("decoding histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h).unwrap()).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    /// An interval line as the driver printed it before `IntervalCounts` existed (histograms of
    /// 120, 250, 250, 9000 µs and 100, 200, 200, 8000 µs): a controller must read what an older
    /// driver sends, and write the same bytes itself, field for field and in the same order.
    const INTERVAL_LINE: &str = r#"{"record":"interval","op":"exec","start_ms":2000,"length_ms":1000,"count":4,"wrong":1,"errors":{"spawn":2,"timeout":1},"late":3,"response":"HISTFAAAADx4nAExAM7/HISTEwAAAAkAAAAAAAAAAwAAAAAAAAABAAAAANaTpAA/8AAAAAAAAO8BAoECBNM9AomlBxs=","service":"HISTFAAAADx4nAExAM7/HISTEwAAAAkAAAAAAAAAAwAAAAAAAAABAAAAANaTpAA/8AAAAAAAAMcBAsUBBI08Aoj8Bu8=","driver_rss_kb":4321}"#;

    #[test]
    fn interval_lines_keep_their_wire_format() {
        let rec: Record = serde_json::from_str(INTERVAL_LINE).unwrap();
        assert_eq!(serde_json::to_string(&rec).unwrap(), INTERVAL_LINE);
        let Record::Interval(iv) = rec else { panic!("not an interval: {rec:?}") };
        let counts = iv.counts().unwrap();
        assert_eq!((counts.count, counts.wrong, counts.late), (4, 1, 3));
        assert_eq!((counts.response.len(), counts.service.len()), (4, 4));
        let again = Interval::encode(iv.op.clone(), iv.start_ms, iv.length_ms, counts, iv.driver_rss_kb).unwrap();
        let line = serde_json::to_string(&Record::Interval(again)).unwrap();
        let back: Record = serde_json::from_str(&line).unwrap();
        let Record::Interval(back) = back else { panic!("not an interval: {line}") };
        assert_eq!(back.counts().unwrap().response.value_at_quantile(0.5), 250);
        assert_eq!(back.errors, iv.errors);
    }

    #[test]
    fn merging_adds_every_count_and_both_histograms() {
        let mut a = IntervalCounts::default();
        a.response.record(100).unwrap();
        a.service.record(50).unwrap();
        a.count = 1;
        a.errors.insert("spawn".into(), 1);
        let mut b = a.clone();
        b.wrong = 2;
        b.late = 3;
        b.errors.insert("timeout".into(), 4);
        a.merge(&b).unwrap();
        assert_eq!((a.count, a.wrong, a.late), (2, 2, 3));
        assert_eq!((a.response.len(), a.service.len()), (2, 2));
        assert_eq!(a.errors, [("spawn".to_string(), 2), ("timeout".to_string(), 4)].into_iter().collect());
    }

    #[test]
    fn merging_an_out_of_bounds_histogram_fails_instead_of_panicking() {
        let mut wide = hdrhistogram::Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 3).unwrap();
        wide.record(u64::MAX / 8).unwrap();
        let other = IntervalCounts { response: wide, ..IntervalCounts::default() };
        let mut t = IntervalCounts::default();
        assert!(t.merge(&other).is_err());
    }

    #[test]
    fn records_are_tagged_json_lines() {
        let line = serde_json::to_string(&Record::Fatal { message: "x".into() }).unwrap();
        assert_eq!(line, r#"{"record":"fatal","message":"x"}"#);
        assert!(!line.contains('\n'));
    }
}

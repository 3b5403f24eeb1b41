//! What a workload measured, per op and target: the rows of latency.csv before they are written.
//! Here with the results (not with the report that prints them) because the workload stage
//! produces them and every exporter reads them.

use crate::schema::IntervalCounts;

/// One op on one target, summed over the measured intervals.
pub struct OpTotals {
    pub target: String,
    pub agentsh_version: String,
    pub mode: String,
    pub op: String,
    /// The workload key the row was measured under (`NAME`, `NAME@MODE`, a soak's `NAME-rN`).
    pub workload: String,
    /// Every measured interval of this op merged ([`IntervalCounts::merge`]).
    pub counts: IntervalCounts,
    pub measured_ms: u64,
}

impl OpTotals {
    pub fn new(target: &str, agentsh_version: &str, mode: &str, op: &str) -> OpTotals {
        OpTotals {
            target: target.into(),
            agentsh_version: agentsh_version.into(),
            mode: mode.into(),
            op: op.into(),
            workload: String::new(),
            counts: IntervalCounts::default(),
            measured_ms: 0,
        }
    }

    pub fn ops_per_s(&self) -> f64 {
        if self.measured_ms == 0 { 0.0 } else { self.counts.count as f64 * 1000.0 / self.measured_ms as f64 }
    }

    pub fn error_count(&self) -> u64 {
        self.counts.errors.values().sum()
    }
}

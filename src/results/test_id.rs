//! Which test a row of tests.csv or summary.csv is about: a suite test by number, or the
//! target's integrity check. It lives with the results (not with the suite) because every
//! reader of a results directory needs it, and the suite writes it.

/// What a row is about: a suite test by its id, the target's integrity over the whole run
/// (written `integrity`; sorted after the tests), or whether agentsh failed closed under one of
/// the nemesis's faults (written `fault:NAME`; sorted last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TestId {
    Suite(u32),
    Integrity,
    Fault(crate::fault::Fault),
}

impl TestId {
    /// The suite test's id; None for the integrity row.
    pub fn number(self) -> Option<u32> {
        match self {
            TestId::Suite(n) => Some(n),
            TestId::Integrity | TestId::Fault(_) => None,
        }
    }
}

impl std::fmt::Display for TestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Through the formatter, so `{:>2}` pads as it did for the bare number.
        match self {
            TestId::Suite(n) => n.fmt(f),
            TestId::Integrity => f.pad("integrity"),
            TestId::Fault(fault) => f.pad(&format!("fault:{fault}")),
        }
    }
}

impl std::str::FromStr for TestId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<TestId, Self::Err> {
        if s == "integrity" {
            Ok(TestId::Integrity)
        } else if let Some(fault) = s.strip_prefix("fault:") {
            fault.parse().map(TestId::Fault)
        } else {
            s.parse().map(TestId::Suite).map_err(|e| format!("not a test id: {s:?} ({e})"))
        }
    }
}

impl serde::Serialize for TestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            TestId::Suite(n) => s.serialize_u32(*n),
            TestId::Integrity => s.serialize_str("integrity"),
            TestId::Fault(_) => s.serialize_str(&self.to_string()),
        }
    }
}

/// Reads what [`Serialize`](serde::Serialize) writes: a number, or `integrity` (CSV fields
/// come as strings, JSON numbers as numbers).
impl<'de> serde::Deserialize<'de> for TestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TestId, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TestId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a test number or \"integrity\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<TestId, E> {
                u32::try_from(n).map(TestId::Suite).map_err(|_| E::custom(format!("not a test id: {n}")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<TestId, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;

    #[test]
    fn every_kind_of_row_reads_back_as_written_and_sorts_tests_integrity_faults() {
        for id in [TestId::Suite(14), TestId::Integrity, TestId::Fault(Fault::StallServer)] {
            assert_eq!(id.to_string().parse::<TestId>(), Ok(id));
        }
        assert_eq!(TestId::Fault(Fault::KillServer).to_string(), "fault:kill-server");
        assert!(TestId::Suite(90) < TestId::Integrity && TestId::Integrity < TestId::Fault(Fault::KillServer));
        assert!("fault:unplug".parse::<TestId>().is_err());
        assert!("x".parse::<TestId>().is_err());
    }
}

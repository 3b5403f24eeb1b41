//! The faults the nemesis (`nemesis`) can inject, and which targets one is on right now. They
//! live this low because the results name them (`TestId::Fault`) and the watchdogs must know
//! to leave a faulted target alone; applying them is the nemesis's business.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Mutex;

/// The faults the nemesis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `kill -9` the agentsh server during load.
    KillServer,
    /// SIGSTOP the server for the fault's hold time, then SIGCONT.
    StallServer,
    /// Fill the file system that holds /var/lib/agentsh (the event store, sessions).
    FillFs,
    /// Drop every SSH connection to the target (the harness's and any other).
    DropSsh,
    /// Destroy the whole target.
    DestroyTarget,
}

impl Fault {
    pub const ALL: [Fault; 5] =
        [Fault::KillServer, Fault::StallServer, Fault::FillFs, Fault::DropSsh, Fault::DestroyTarget];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::KillServer => "kill-server",
            Fault::StallServer => "stall-server",
            Fault::FillFs => "fill-fs",
            Fault::DropSsh => "drop-ssh",
            Fault::DestroyTarget => "destroy-target",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Fault, String> {
        Fault::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Fault::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown fault {s:?} (known: {})", known.join(", "))
        })
    }
}

impl serde::Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Targets a fault is on right now. The watchdogs of the suite and the workload consult it: while
/// the nemesis holds a target's server down or stopped, the server not answering is the fault,
/// not a wedge, and a watchdog restarting it would end the fault early and race the nemesis's own
/// recovery. Target names carry their run's tag, so one process-wide set serves every run.
static UNDER_FAULT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether the target behind a connection named `name` or `name/observe` is under a fault.
pub fn under_fault(conn_name: &str) -> bool {
    let target = conn_name.split('/').next().unwrap_or(conn_name);
    UNDER_FAULT.lock().map(|s| s.contains(target)).unwrap_or(false)
}

/// Marks a target as under a fault until the guard is dropped.
pub struct FaultGuard(String);

impl FaultGuard {
    pub fn new(target: &str) -> FaultGuard {
        if let Ok(mut s) = UNDER_FAULT.lock() {
            s.insert(target.to_string());
        }
        FaultGuard(target.to_string())
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = UNDER_FAULT.lock() {
            s.remove(&self.0);
        }
    }
}

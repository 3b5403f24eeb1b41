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

/// Targets a watchdog is recovering right now (killing and restarting agentsh). The nemesis waits
/// for these after marking its target: a recovery begun just before the fault would otherwise kill
/// the server under it (seen: a stall-server that found no server to stop).
static RECOVERING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The target behind a connection named `name` or `name/observe`.
fn target_of(conn_name: &str) -> &str {
    conn_name.split('/').next().unwrap_or(conn_name)
}

fn contains(set: &Mutex<BTreeSet<String>>, conn_name: &str) -> bool {
    set.lock().map(|s| s.contains(target_of(conn_name))).unwrap_or(false)
}

/// Whether the target behind a connection named `name` or `name/observe` is under a fault.
pub fn under_fault(conn_name: &str) -> bool {
    contains(&UNDER_FAULT, conn_name)
}

/// Whether a watchdog is recovering the target behind `conn_name`.
pub fn recovering(conn_name: &str) -> bool {
    contains(&RECOVERING, conn_name)
}

/// A target's membership of one of the sets, until dropped. Each side marks itself before it
/// looks at the other's set (a mutex each, so at least one of the two sees the other).
pub struct Guard(&'static Mutex<BTreeSet<String>>, String);

impl Guard {
    fn new(set: &'static Mutex<BTreeSet<String>>, conn_name: &str) -> Guard {
        let target = target_of(conn_name).to_string();
        if let Ok(mut s) = set.lock() {
            s.insert(target.clone());
        }
        Guard(set, target)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&self.1);
        }
    }
}

/// Marks a target as under a fault until the guard is dropped.
pub fn fault_guard(target: &str) -> Guard {
    Guard::new(&UNDER_FAULT, target)
}

/// Marks a target as being recovered by a watchdog until the guard is dropped.
pub fn recovery_guard(conn_name: &str) -> Guard {
    Guard::new(&RECOVERING, conn_name)
}

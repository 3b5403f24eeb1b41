//! Aborting one container's FUSE connections from the host, whatever state the container is in.
//!
//! A process blocked in a FUSE request that was sent but never answered sleeps uninterruptibly;
//! SIGKILL does not end it. If the FUSE daemon is wedged, or a copy of its /dev/fuse descriptor
//! lives on in a forked child that is itself stuck (agentsh v0.16.9's wedge: docs/findings.md),
//! nothing ends it, and the engine leaves the container "Stopping" ("given PIDs did not die
//! within timeout"). Writing to `/sys/fs/fuse/connections/N/abort` fails every pending request
//! of connection N. The connections directory is the whole kernel's, so only the connections
//! mounted in this container's processes (found by its id in their cgroup) are aborted.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

const CONNECTIONS: &str = "/sys/fs/fuse/connections";

/// Aborts the FUSE connections mounted in the processes of container `id` (full id); returns
/// their numbers.
pub fn abort_container(id: &str) -> Result<Vec<u32>> {
    let minors = container_fuse_connections(id);
    if minors.is_empty() {
        return Ok(Vec::new());
    }
    ensure_fusectl()?;
    let mut aborted = Vec::new();
    for m in minors {
        let abort = Path::new(CONNECTIONS).join(m.to_string()).join("abort");
        if abort.exists() {
            std::fs::write(&abort, "1").with_context(|| format!("writing {}", abort.display()))?;
            aborted.push(m);
        }
    }
    Ok(aborted)
}

/// The connection numbers (device minors; FUSE mounts have major 0) of the FUSE mounts that the
/// processes in the container's cgroup see.
fn container_fuse_connections(id: &str) -> BTreeSet<u32> {
    let mut minors = BTreeSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return minors };
    for entry in procs.flatten() {
        let pid = entry.path();
        if !entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        // Processes come and go while we read: a vanished one is simply skipped.
        let in_container = std::fs::read_to_string(pid.join("cgroup")).is_ok_and(|c| c.contains(id));
        if !in_container {
            continue;
        }
        if let Ok(mountinfo) = std::fs::read_to_string(pid.join("mountinfo")) {
            minors.extend(mountinfo.lines().filter_map(fuse_minor));
        }
    }
    minors
}

/// The device minor of a mountinfo line whose file system type is fuse or fuse.* ("36 25 0:76 /
/// /mnt rw - fuse.agentsh agentsh rw,...").
fn fuse_minor(line: &str) -> Option<u32> {
    let (left, right) = line.split_once(" - ")?;
    let fstype = right.split_whitespace().next()?;
    if fstype != "fuse" && !fstype.starts_with("fuse.") {
        return None;
    }
    let dev = left.split_whitespace().nth(2)?;
    let (major, minor) = dev.split_once(':')?;
    (major == "0").then(|| minor.parse().ok()).flatten()
}

/// The host may not have fusectl mounted (it is not by default in containers or minimal hosts).
fn ensure_fusectl() -> Result<()> {
    let mounted = std::fs::read_dir(CONNECTIONS).is_ok_and(|mut d| d.next().is_some())
        || std::fs::read_to_string("/proc/self/mounts")
            .is_ok_and(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("fusectl")));
    if mounted {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "fusectl", "fusectl", CONNECTIONS])
        .status()
        .context("running mount -t fusectl")?;
    anyhow::ensure!(status.success(), "mount -t fusectl fusectl {CONNECTIONS} failed ({status})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_mounts_give_their_minor_and_nothing_else_does() {
        assert_eq!(fuse_minor("36 25 0:76 / /mnt/hang rw,relatime - fuse abench-hang rw,user_id=0"), Some(76));
        assert_eq!(fuse_minor("40 25 0:81 / /w rw - fuse.agentsh agentsh rw"), Some(81));
        assert_eq!(fuse_minor("22 1 0:21 / /proc rw - proc proc rw"), None);
        assert_eq!(fuse_minor("23 1 0:22 / /x rw - fuseblk /dev/sda1 rw"), None);
        assert_eq!(fuse_minor("garbage"), None);
    }

    #[test]
    fn an_unknown_container_has_no_connections() {
        assert!(container_fuse_connections("no-such-container-id-0000").is_empty());
        assert_eq!(abort_container("no-such-container-id-0000").unwrap(), Vec::<u32>::new());
    }
}

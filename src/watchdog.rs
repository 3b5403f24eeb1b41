//! The watchdog: tells a wedged agentsh server from a slow test, and brings the server back.
//!
//! agentsh v0.16.9 (and, more rarely, v0.20.1) sometimes wedges at a new session's FUSE mount:
//! the server waits on a futex while its forked child sits in the kernel's FUSE
//! `request_wait_answer`, and every governed command after that hangs until it times out
//! (docs/findings.md, "FUSE wedge"). Without a watchdog one wedge turns a suite iteration into
//! 90 time-outs. With it, a test that runs long is checked every few seconds: if the server's
//! health endpoint or a trivial shimmed command does not answer, the server is wedged. Its
//! process states are kept as evidence, its FUSE connections are aborted (only this target's:
//! [`ABORT_FUSE`]), it is killed and restarted with `AGENTSH_NO_AUTO=1`, and the caller runs the
//! interrupted test once more. Each wedge is a finding, counted per target.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control::Conn;

/// A test that has run this long gets health checks.
const GRACE: Duration = Duration::from_secs(8);
const EVERY: Duration = Duration::from_secs(4);
/// A shimmed `echo` that takes longer than this is hung: it normally takes well under a second,
/// and several seconds even on the slowest target seen here.
const ECHO_LIMIT: Duration = Duration::from_secs(20);

/// Aborts the FUSE connections of the mounts this target's processes see, and no others: the
/// connections directory lists the whole kernel's, other targets' included. A connection's
/// name is the device minor of its mount (field 3 of mountinfo; FUSE mounts have major 0).
pub const ABORT_FUSE: &str = include_str!("../assets/scripts/abort-fuse.sh");

/// What a wedge leaves as evidence: every process with its state and kernel wait channel, the
/// kernel stacks of agentsh's, and the end of the server log.
const EVIDENCE: &str = r#"date -u; echo '== ps'; ps -eo pid,ppid,stat,wchan:32,etimes,args --forest
for p in $(pgrep -f agentsh); do echo "== /proc/$p/stack ($(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | cut -c1-120))"; cat /proc/$p/stack 2>/dev/null; done
echo '== server.log'; tail -n 40 /var/log/agentsh/server.log; true"#;

/// Completes (with the reason) only when the server is wedged; a slow but healthy test keeps it
/// waiting forever. Run it next to a test with `select!`.
pub async fn wedged(shim: &Conn, observe: &Conn) -> String {
    tokio::time::sleep(GRACE).await;
    loop {
        if let Some(why) = check(shim, observe).await {
            return why;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// `None` when the server answers; otherwise why it is considered wedged. A shimmed command that
/// fails fast is not a wedge (that is a test's business); one that hangs is.
pub async fn check(shim: &Conn, observe: &Conn) -> Option<String> {
    if crate::fault::under_fault(observe.name()) {
        return None;
    }
    match ask(shim, observe, Duration::from_secs(10), ECHO_LIMIT).await {
        Answer::HealthFailed(why) => Some(why),
        Answer::EchoHung => Some(format!("a shimmed `echo` hung for {ECHO_LIMIT:?}")),
        Answer::Up | Answer::EchoFailed | Answer::Unreachable => None,
    }
}

/// `None` when the server's health endpoint answers (within 5 s, read on the observation channel
/// within `limit`); otherwise what it did. The observation channel is not governed: if it fails,
/// the target is gone, not wedged, and that is for the caller's own stream to report.
pub async fn health(observe: &Conn, limit: Duration) -> Option<String> {
    // A server the nemesis holds down is its fault, not a wedge (see `nemesis::under_fault`).
    if crate::fault::under_fault(observe.name()) {
        return None;
    }
    raw_health(observe, limit).await.err().flatten()
}

/// What one look at a target's server saw: the question the watchdog asks between tests, and the
/// nemesis asks exactly when the watchdog must keep quiet (a fault on), so it ignores the fault
/// registry; [`check`] and [`health`] add that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// /health answered and a shimmed `echo` printed its nonce.
    Up,
    /// /health did not answer (what it did instead).
    HealthFailed(String),
    /// /health answered; the shimmed `echo` hung.
    EchoHung,
    /// /health answered; the shimmed `echo` failed fast or printed something else.
    EchoFailed,
    /// The observation channel itself failed: the target is gone or unreachable.
    Unreachable,
}

/// Asks /health (read within `health_limit`), then runs a shimmed `echo` (within `echo_limit`).
pub async fn ask(shim: &Conn, observe: &Conn, health_limit: Duration, echo_limit: Duration) -> Answer {
    match raw_health(observe, health_limit).await {
        Ok(()) => {}
        Err(Some(why)) => return Answer::HealthFailed(why),
        Err(None) => return Answer::Unreachable,
    }
    let nonce = format!("abench-wd-{:08x}", rand::random::<u32>());
    match shim.run(&format!("echo {nonce}"), echo_limit).await {
        Ok(o) if o.stdout.contains(&nonce) => Answer::Up,
        Err(e) if format!("{e}").contains("timed out") => Answer::EchoHung,
        _ => Answer::EchoFailed,
    }
}

/// /health on the observation channel: Ok when it answers, Err(Some(what it did)) when it does
/// not, Err(None) when the channel failed.
async fn raw_health(observe: &Conn, limit: Duration) -> Result<(), Option<String>> {
    let health = format!("curl -sf --max-time 5 {}", crate::target::HEALTH);
    match observe.run(&health, limit).await {
        Ok(o) if o.ok() => Ok(()),
        Ok(o) => Err(Some(format!("{} did not answer: {}", crate::target::HEALTH, o.describe()))),
        Err(_) => Err(None),
    }
}

/// Kills every agentsh process of the target, the way a wedged server has to be killed: a killed
/// server whose thread sits in clone() behind a FUSE request lingers, and its fork may have
/// mounted anew since an earlier abort (seen under load), so the target's FUSE connections are
/// aborted after the kill and the kill repeated, leaving the port free for a new server. Also how
/// `provision::modes` stops the server before starting it with another config.
///
/// An agentsh process is one whose command line starts with `agentsh` or with its installed path:
/// the agentsh CLI auto-starts a server as `/usr/bin/agentsh server` when the one the harness
/// started is gone (the shim's `agentsh exec` does not have `AGENTSH_NO_AUTO`), and that one
/// must die too, or it keeps the port and answers /health for the next server.
///
/// A killed server whose thread sits in clone() behind a FUSE request lingers, its fork may have
/// mounted anew since the first abort, and while it lives it holds the port: a new server then
/// dies on "address already in use" while the old one still answers /health, until it too dies
/// (seen under load). So: abort and kill until no agentsh process is left (10 s at most).
pub fn kill_server() -> String {
    let p = AGENTSH_PROCESS;
    format!(
        "pkill -9 -f '{p}'; sleep 0.5\nfor i in 1 2 3 4 5 6 7 8 9 10; do\npgrep -f '{p}' >/dev/null || break\n\
         {ABORT_FUSE}\npkill -9 -f '{p}'; sleep 1\ndone"
    )
}

/// `pgrep -f` pattern of agentsh's processes (server, CLI, wrapper), wherever they were started
/// from, and not the harness's own driver (`/usr/local/bin/agentsh-bench`).
pub const AGENTSH_PROCESS: &str = "^(/usr/bin/|/usr/sbin/|/bin/)?agentsh(-unixwrap|-stub)?( |$)";

/// `pgrep -f` pattern of an agentsh server, whoever started it.
pub const AGENTSH_SERVER: &str = "^(/usr/bin/|/usr/sbin/|/bin/)?agentsh server( |$)";

/// Keeps the evidence in `dir/wedge-N.txt`, aborts this target's FUSE connections, kills every
/// agentsh process and restarts the server. Returns what was aborted, for the log.
pub async fn recover(observe: &Conn, dir: &Path, n: u32, why: &str) -> Result<String> {
    // Marked before looking at the faults (the nemesis marks its fault, then looks here), so a
    // fault and a recovery never hurt the same server at once.
    let _recovering = crate::fault::recovery_guard(observe.name());
    if crate::fault::under_fault(observe.name()) {
        return Ok("none: a fault came on, the nemesis recovers the target".into());
    }
    let quick = Duration::from_secs(30);
    let evidence =
        observe.run(EVIDENCE, quick).await.map(|o| o.stdout).unwrap_or_else(|e| format!("(no evidence: {e:#})"));
    std::fs::write(dir.join(format!("wedge-{n}.txt")), format!("wedge {n}: {why}\n{evidence}"))
        .with_context(|| format!("writing {}", dir.display()))?;
    let aborted = observe.run(ABORT_FUSE, quick).await.context("aborting FUSE connections")?;
    restart(observe, quick * 2).await.with_context(|| format!("after wedge {n}"))?;
    Ok(aborted.stdout.trim().replace('\n', "; "))
}

/// Kills every agentsh process ([`kill_server`]) and starts the server as provisioning does,
/// within `limit`: how a wedge, and a fault that did not heal, are recovered.
pub async fn restart(observe: &Conn, limit: Duration) -> Result<()> {
    let out = observe
        .run(&format!("{}\n{}", kill_server(), crate::target::SERVER_START), limit)
        .await
        .context("restarting the agentsh server")?;
    if !out.ok() {
        bail!("the agentsh server did not come back: {}", out.describe());
    }
    Ok(())
}

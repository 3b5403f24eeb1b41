//! Applying one fault to one target, probing while it is on, and bringing the target back.
//!
//! Every fault goes the same way: mark the target as under a fault (so that the watchdogs leave
//! its server to the nemesis), apply it on the observation channel (uid 0, never governed), send
//! the fail-closed probes through the shim for the hold time, recover, and time the recovery until
//! the server answers and a shimmed command runs. What was done and seen is kept in
//! `targets/<t>/fault-N-<name>.txt`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::probe::{self, Seen};
use super::{FailClosed, Fault, FaultRow, fault_guard};
use crate::control::Conn;
use crate::provider::Provider;
use crate::provision::Ready;
use crate::watchdog::{self, AGENTSH_SERVER};

/// How long a target may take to answer again after recovery before the harness restarts its
/// server (a stalled server resumed, a full disk emptied).
const COME_BACK: Duration = Duration::from_secs(30);
/// Commands on the observation channel.
const QUICK: Duration = Duration::from_secs(30);

/// What a fault needs around it.
pub struct Ctx<'a> {
    pub provider: &'a dyn Provider,
    pub control_dir: &'a Path,
    /// The run's folder (evidence goes to `targets/<t>/`).
    pub out: &'a Path,
    /// How long a fault stays on before recovery starts.
    pub hold: Duration,
    /// The run's clock (faults.csv's `at_s`, the trends' time axis).
    pub t0: Instant,
}

/// Applies `fault` to `ready`'s target (the `n`th fault of the run); never fails: what went wrong
/// is in the row.
pub async fn apply(cx: &Ctx<'_>, ready: &Ready, fault: Fault, n: u32) -> FaultRow {
    let name = &ready.target.name;
    let at_s = cx.t0.elapsed().as_secs_f64();
    let mut row = FaultRow {
        fault,
        target: name.clone(),
        at_s,
        duration_s: 0.0,
        fail_closed: FailClosed::Skipped,
        probes: 0,
        refused: 0,
        ran_ungoverned: 0,
        errors: 0,
        recovery: String::new(),
        recovered: "n/a",
        recover_s: None,
        detail: String::new(),
    };
    let mut log = format!("fault {n}: {fault} on {name} at {at_s:.1} s\n");
    match run(cx, ready, fault, &mut row, &mut log).await {
        Ok(()) => {}
        Err(e) => {
            // Applying or recovering failed: the target may be in any state, so say so plainly.
            // The probes' verdict stays if they ran; `recovered` is `no` once the fault was on.
            let e = format!("{e:#}");
            log.push_str(&format!("error: {e}\n"));
            if row.recovery.is_empty() {
                row.recovery = "failed".into();
            }
            row.detail = crate::text::excerpt(&format!("{}; error: {e}", row.detail), 600);
        }
    }
    let dir = crate::results::RunDir::at(cx.out).target_dir(name);
    let file = dir.join(format!("fault-{n}-{fault}.txt"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &log)) {
        tracing::warn!(file = %file.display(), "fault evidence not written: {e}");
    }
    row
}

async fn run(cx: &Ctx<'_>, ready: &Ready, fault: Fault, row: &mut FaultRow, log: &mut String) -> Result<()> {
    let name = &ready.target.name;
    if ready.agentsh_version.is_none() && fault != Fault::DestroyTarget && fault != Fault::DropSsh {
        row.recovery = "not applied".into();
        row.detail = "no agentsh on this target: nothing to hurt".into();
        return Ok(());
    }
    if fault == Fault::DestroyTarget {
        let _guard = fault_guard(name);
        return destroy(cx, name, row, log).await;
    }
    let observe = Conn::connect(&format!("{name}/observe"), &ready.target.observe, cx.control_dir, 3).await?;
    let shim = Conn::connect(name, &ready.target.ssh, cx.control_dir, 3).await?;
    // A fault on a server that is already down (a wedge being recovered, say) proves nothing
    // about the fault. The watchdogs may still be bringing it back, so the guard comes after.
    if ready.agentsh_version.is_some() && !comes_back(&observe, &shim, Duration::from_secs(90)).await {
        row.recovery = "not applied".into();
        row.detail = "agentsh did not answer for 90 s before the fault: hurting it then would prove nothing".into();
        return Ok(());
    }
    // The positive controls, while agentsh is healthy and before the fault is marked: they run
    // on the observation channel, which no fault or watchdog touches.
    let mut seen = Seen::default();
    probe::controls(&observe, &mut seen).await;
    log.push_str(&format!(
        "positive controls (ungoverned, before the fault): effect seen for [{}]; left out: [{}]\n",
        seen.controlled.join(", "),
        seen.uncontrolled.join("; ")
    ));
    let _guard = fault_guard(name);
    // From here no watchdog starts a recovery on this target; one begun just before would kill
    // the server under the fault, so it is waited for, and the target asked again.
    if crate::fault::recovering(name) {
        let until = Instant::now() + COME_BACK * 3;
        while crate::fault::recovering(name) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        log.push_str("a watchdog was recovering the target: waited for it\n");
        if crate::fault::recovering(name) || !comes_back(&observe, &shim, COME_BACK).await {
            row.recovery = "not applied".into();
            row.detail = "a watchdog's recovery of agentsh was under way and it did not answer after it".into();
            return Ok(());
        }
    }
    row.at_s = cx.t0.elapsed().as_secs_f64();
    log.push_str(&format!("applied at {:.1} s (after agentsh answered)\n", row.at_s));
    let started = Instant::now();
    let hold_until = |from: Instant| from + cx.hold;
    match fault {
        Fault::KillServer => {
            let out = observe
                .run(&format!("pkill -9 -f '{AGENTSH_SERVER}'; pgrep -f '{AGENTSH_SERVER}' | wc -l"), QUICK)
                .await?;
            log.push_str(&format!("kill -9 of the server: {} server process(es) right after\n", out.stdout.trim()));
            probe::until(&shim, hold_until(started), &mut seen).await;
            judged(row, &seen, started);
            let t = Instant::now();
            if answers(&observe, &shim).await {
                row.recovery = "came back by itself (agentsh's CLI started a server)".into();
            } else {
                restart(&observe).await?;
                row.recovery = "server restarted (AGENTSH_NO_AUTO=1)".into();
            }
            settle(&observe, &shim, t, row, log).await;
        }
        Fault::StallServer => {
            let pids = observe.run(&format!("pgrep -f '{AGENTSH_SERVER}' | tr '\\n' ' '"), QUICK).await?.stdout;
            let pids = pids.trim().to_string();
            if pids.is_empty() {
                bail!("no agentsh server to stop");
            }
            observe.run(&format!("kill -STOP {pids}"), QUICK).await?.ok().then_some(()).context("kill -STOP")?;
            log.push_str(&format!("SIGSTOP to {pids}\n"));
            probe::until(&shim, hold_until(started), &mut seen).await;
            judged(row, &seen, started);
            let t = Instant::now();
            observe.run(&format!("kill -CONT {pids}"), QUICK).await?;
            row.recovery = "SIGCONT".into();
            if !comes_back(&observe, &shim, COME_BACK).await {
                restart(&observe).await?;
                row.recovery = format!("SIGCONT; no answer in {COME_BACK:?}, so the server was restarted");
            }
            settle(&observe, &shim, t, row, log).await;
        }
        Fault::FillFs => {
            let fs = observe.run("findmnt -n -o FSTYPE,SIZE --target /var/lib/agentsh", QUICK).await?.stdout;
            let fs = fs.trim().to_string();
            log.push_str(&format!("/var/lib/agentsh is on: {fs}\n"));
            if fs.starts_with("overlay") || fs.is_empty() {
                row.recovery = "not applied".into();
                row.detail = format!(
                    "/var/lib/agentsh is on {fs:?}, the container's overlay: filling it would fill this \
                     machine's disk (local targets give it a tmpfs of its own)"
                );
                return Ok(());
            }
            let fill = observe
                .run(
                    "dd if=/dev/zero of=/var/lib/agentsh/abench-fill bs=1M status=none 2>&1 | tail -n 1; \
                     df -h /var/lib/agentsh | tail -n 1",
                    Duration::from_secs(120),
                )
                .await?;
            log.push_str(&format!("filled: {}\n", fill.stdout.trim()));
            probe::until(&shim, hold_until(started), &mut seen).await;
            judged(row, &seen, started);
            let t = Instant::now();
            observe.run("rm -f /var/lib/agentsh/abench-fill", QUICK).await?;
            row.recovery = "fill file removed".into();
            if !comes_back(&observe, &shim, COME_BACK).await {
                restart(&observe).await?;
                row.recovery = format!("fill file removed; no answer in {COME_BACK:?}, so the server was restarted");
            }
            settle(&observe, &shim, t, row, log).await;
        }
        Fault::DropSsh => {
            // A governed command in flight when the connection drops must not finish ungoverned:
            // one is started first, its output kept in a file only the observation channel reads.
            let file = format!("/tmp/abench-drop-{:08x}", rand::random::<u32>());
            let inflight = format!("(sleep 3; sudo -n whoami) > {file} 2>&1");
            let shim2 = shim.clone();
            let pending = tokio::spawn(async move { shim2.run(&inflight, Duration::from_secs(30)).await });
            tokio::time::sleep(Duration::from_millis(800)).await;
            // Detached, since it kills the very connection that sends it, and by the observer's own
            // bash: /bin/sh is agentsh's shim, and a governed killer proves nothing. Inetd-mode
            // sshd (the local provider) and session processes are killed; a listening daemon is not.
            let drop = format!(
                "setsid nohup {} -c 'sleep 0.3; for p in $(pgrep -x sshd; pgrep -x sshd-session); do \
                 grep -qa listener /proc/$p/cmdline || kill -9 $p; done' >/dev/null 2>&1 < /dev/null & echo sent",
                crate::target::OBSERVER_SHELL
            );
            let _ = observe.run(&drop, Duration::from_secs(5)).await;
            let cut = pending.await.map_or_else(|e| format!("{e}"), |r| format!("{:?}", r.map(|o| o.describe())));
            log.push_str(&format!("in-flight `sudo -n whoami` after the drop: {}\n", crate::text::excerpt(&cut, 300)));
            row.duration_s = started.elapsed().as_secs_f64();
            // Applied: from here a failure to reconnect is a failure to recover.
            row.recovered = "no";
            let t = Instant::now();
            // Recovery: new connections (the old ones died with their sshd).
            let (observe, shim) = reconnect(cx, ready).await?;
            row.recovery = "reconnected".into();
            settle(&observe, &shim, t, row, log).await;
            // What the in-flight command did, once it has had time to finish.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let left = observe.run(&format!("cat {file} 2>/dev/null; rm -f {file}"), QUICK).await?.stdout;
            let left_out = Ok(crate::control::CmdOutput {
                code: Some(if left.trim().is_empty() { 255 } else { 1 }),
                stdout: left.clone(),
                stderr: if left.trim().is_empty() { "cut off with its connection".into() } else { String::new() },
                elapsed: Duration::ZERO,
            });
            if probe::controlled(&seen, &probe::PROBES[0]) {
                seen.add(&probe::PROBES[0], &left_out);
            }
            // And governance after the drop, through the new connection.
            probe::until(&shim, Instant::now(), &mut seen).await;
            // The window was the drop itself; the recovery was timed above.
            let (duration_s, recovered) = (row.duration_s, row.recovered);
            judged(row, &seen, started);
            (row.duration_s, row.recovered) = (duration_s, recovered);
        }
        Fault::DestroyTarget => unreachable!("handled above"),
    }
    row.fail_closed = seen.verdict();
    (row.probes, row.refused, row.ran_ungoverned, row.errors) =
        (seen.probes, seen.refused, seen.ran_ungoverned, seen.errors);
    row.detail = crate::text::excerpt(&seen.summary(), 600);
    log.push_str(&format!("probes: {}\nrecovery: {}\n", seen.summary(), row.recovery));
    let tail = observe.run("tail -n 20 /var/log/agentsh/server.log", QUICK).await.map(|o| o.stdout);
    log.push_str(&format!("== server.log after recovery\n{}\n", tail.unwrap_or_else(|e| format!("({e:#})"))));
    Ok(())
}

/// The probes' verdict in the row, as soon as the fault's window closes (so that a recovery that
/// fails keeps it); from then on the target counts as not recovered until it answers again.
fn judged(row: &mut FaultRow, seen: &Seen, started: Instant) {
    row.duration_s = started.elapsed().as_secs_f64();
    row.fail_closed = seen.verdict();
    (row.probes, row.refused, row.ran_ungoverned, row.errors) =
        (seen.probes, seen.refused, seen.ran_ungoverned, seen.errors);
    row.detail = crate::text::excerpt(&seen.summary(), 600);
    row.recovered = "no";
}

/// `destroy-target`: the target leaves the soak. Nothing is left to govern, so fail-closed is
/// skipped; "recovery" is the harness carrying on with the others.
async fn destroy(cx: &Ctx<'_>, name: &str, row: &mut FaultRow, log: &mut String) -> Result<()> {
    let t = Instant::now();
    let mut result = cx.provider.destroy_target(name).await;
    // The engine can report an error for a removal that happened (a container with exec
    // sessions still closing, say), or fail one it would do a moment later (busy with the other
    // targets' execs): what counts is whether the target is gone, so it is asked, and the
    // removal tried once more.
    for attempt in 1..=2 {
        let Err(e) = &result else { break };
        let gone = cx.provider.list().await.is_ok_and(|l| !l.iter().any(|t| t.name == *name));
        log.push_str(&format!("the provider said: {e:#}; target gone afterwards: {gone}\n"));
        if gone {
            result = Ok(());
        } else if attempt == 1 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            result = cx.provider.destroy_target(name).await;
        }
    }
    match result {
        Ok(()) => {
            row.duration_s = t.elapsed().as_secs_f64();
            row.recovery = "dropped from the rest of the run".into();
            row.recovered = "dropped";
            row.detail = "the target is gone: nothing left to govern".into();
            log.push_str(&format!("destroyed in {:.1} s\n", row.duration_s));
        }
        Err(e) => {
            row.recovery = "not applied".into();
            row.detail = format!("{e:#}");
            log.push_str(&format!("not applied: {e:#}\n"));
        }
    }
    Ok(())
}

/// Records how long the target took, from `from`, to answer again; when it did not, what it
/// last did instead (/health silent, or the shimmed `echo` hung or failed) goes in the evidence.
async fn settle(observe: &Conn, shim: &Conn, from: Instant, row: &mut FaultRow, log: &mut String) {
    match last_answer(observe, shim, Duration::from_secs(60)).await {
        watchdog::Answer::Up => {
            row.recovered = "yes";
            row.recover_s = Some(from.elapsed().as_secs_f64());
        }
        other => {
            row.recovered = "no";
            log.push_str(&format!("not back within 60 s; the last look saw: {other:?}\n"));
        }
    }
}

/// Whether the server answers /health and a shimmed command runs, trying until `limit`.
async fn comes_back(observe: &Conn, shim: &Conn, limit: Duration) -> bool {
    last_answer(observe, shim, limit).await == watchdog::Answer::Up
}

/// One look: the watchdog's question, asked while the watchdog keeps quiet about this target.
async fn ask(observe: &Conn, shim: &Conn) -> watchdog::Answer {
    watchdog::ask(shim, observe, Duration::from_secs(8), Duration::from_secs(10)).await
}

/// Whether one look finds the server answering and a shimmed command running.
async fn answers(observe: &Conn, shim: &Conn) -> bool {
    ask(observe, shim).await == watchdog::Answer::Up
}

/// Asks until the target is up or `limit` has passed; the last answer.
async fn last_answer(observe: &Conn, shim: &Conn, limit: Duration) -> watchdog::Answer {
    let until = Instant::now() + limit;
    loop {
        let answer = ask(observe, shim).await;
        if answer == watchdog::Answer::Up || Instant::now() >= until {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Kills every agentsh process and starts the server as provisioning does.
async fn restart(observe: &Conn) -> Result<()> {
    // The kill loop takes up to ~15 s and the start up to 30 s; slower on a loaded machine.
    watchdog::restart(observe, QUICK * 4).await
}

/// New connections to both channels, trying for up to a minute (sshd may take a moment).
async fn reconnect(cx: &Ctx<'_>, ready: &Ready) -> Result<(Conn, Conn)> {
    let name = &ready.target.name;
    let observe = Conn::connect(&format!("{name}/observe"), &ready.target.observe, cx.control_dir, 12).await?;
    let shim = Conn::connect(name, &ready.target.ssh, cx.control_dir, 12).await?;
    Ok((observe, shim))
}

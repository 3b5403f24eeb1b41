//! Running one operation and judging its outcome: an op that could not run is an error (by kind);
//! an op that ran but did not produce what its expectation says is a wrong decision.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::governed::{self, Seen, Sessions, judge, judge_ungoverned};
use crate::schema::{Expect, Expected, OpKind, OpSpec, Plan, Via};

pub enum Outcome {
    Ok,
    Wrong(String),
    Error { kind: &'static str, detail: String },
}

pub fn error(kind: &'static str, detail: impl std::fmt::Display) -> Outcome {
    Outcome::Error { kind, detail: detail.to_string() }
}

pub struct Runner {
    ops: Vec<OpSpec>,
    fixture_port: u16,
    workspace: PathBuf,
    watchdog: Watchdog,
    sessions: Sessions,
    /// No agentsh on this target: governed ops run as their ungoverned twins.
    ungoverned: bool,
}

impl Runner {
    pub fn new(plan: &Plan, fixture_port: u16) -> Result<Runner> {
        let workspace = PathBuf::from(&plan.workspace);
        std::fs::create_dir_all(&workspace).with_context(|| format!("creating workspace {}", workspace.display()))?;
        let sessions = Sessions::new(plan.load.workers().max(1), &workspace, fixture_port);
        Ok(Runner {
            ops: plan.ops.clone(),
            fixture_port,
            workspace,
            watchdog: Watchdog::start(),
            sessions,
            ungoverned: plan.ungoverned,
        })
    }

    pub fn run(&self, op: usize, worker: usize) -> Outcome {
        match &self.ops[op].kind {
            OpKind::Noop => Outcome::Ok,
            OpKind::Exec { argv, expect, timeout_ms } => self.exec(argv, expect, Duration::from_millis(*timeout_ms)),
            OpKind::FileCycle { bytes } => self.file_cycle(worker, *bytes),
            OpKind::HttpGet { path, expect_status } => self.http_get(path, *expect_status),
            OpKind::Governed { via, expected, timeout_ms } => {
                self.governed(worker, via, expected, Duration::from_millis(*timeout_ms))
            }
        }
    }

    /// A governed op: through agentsh, or on a target without it as its ungoverned twin (the
    /// command itself, the GET sent straight to its host), judged accordingly.
    /// - shim: `/bin/bash -c COMMAND` from the workspace. bash is the shim, and the shim keys its
    ///   session on the working directory, so every shim op of this driver shares one session (as
    ///   every command of one agent does); without agentsh, bash is bash.
    /// - session API and proxy: the worker's session ([`Sessions`]).
    fn governed(&self, worker: usize, via: &Via, expected: &Expected, timeout: Duration) -> Outcome {
        let seen = match via {
            Via::Shim { command } => {
                let argv = ["/bin/bash".to_string(), "-c".into(), command.into()];
                self.seen(&argv, &self.workspace, timeout)
            }
            Via::Session { argv } if self.ungoverned => {
                let dir = self.sessions.dir(worker);
                match std::fs::create_dir_all(&dir) {
                    Ok(()) => self.seen(argv, &dir, timeout),
                    Err(e) => Err(error("io", format!("{}: {e}", dir.display()))),
                }
            }
            Via::Proxy { url } if self.ungoverned => {
                governed::direct_get(&self.sessions.url(url), timeout).map_err(|(kind, e)| error(kind, e))
            }
            Via::Session { .. } | Via::Proxy { .. } => return self.sessions.run(worker, via, expected, timeout),
        };
        match seen {
            Ok(seen) if self.ungoverned => judge_ungoverned(expected, &seen),
            Ok(seen) => judge(expected, &seen),
            Err(o) => o,
        }
    }

    /// [`Self::output`] of a command run from `dir`, as what a governed op's judgement reads.
    fn seen(&self, argv: &[String], dir: &std::path::Path, timeout: Duration) -> Result<Seen, Outcome> {
        let (code, output, errors) = self.output(argv, Some(dir), timeout)?;
        Ok(Seen { code, output, errors, refused_by_agentsh: None })
    }

    fn exec(&self, argv: &[String], expect: &Expect, timeout: Duration) -> Outcome {
        let (code, stdout, stderr) = match self.output(argv, None, timeout) {
            Ok(o) => o,
            Err(o) => return o,
        };
        if code != Some(expect.exit) {
            return Outcome::Wrong(format!("exit {code:?}, expected {}; stderr: {}", expect.exit, stderr.trim()));
        }
        if let Some(want) = &expect.stdout_contains
            && !stdout.contains(want.as_str())
        {
            return Outcome::Wrong(format!("stdout lacks {want:?}: {}", stdout.trim()));
        }
        if let Some(want) = &expect.stderr_contains
            && !stderr.contains(want.as_str())
        {
            return Outcome::Wrong(format!("stderr lacks {want:?}: {}", stderr.trim()));
        }
        Outcome::Ok
    }

    /// Runs `argv` to its end or its deadline: exit code, stdout, stderr; or the error outcome.
    fn output(
        &self,
        argv: &[String],
        dir: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<(Option<i32>, String, String), Outcome> {
        let mut cmd = Command::new(&argv[0]);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        // Not AGENTSH_NO_AUTO=1: besides stopping `agentsh exec` from starting a server of its
        // own, it stops it from creating the session the shim names, so every shimmed command
        // fails ("session ... no longer exists"). The shim runs as deployed.
        let child =
            match cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
                Ok(c) => c,
                Err(e) => return Err(error("spawn", format!("{}: {e}", argv[0]))),
            };
        let guard = self.watchdog.watch(child.id(), timeout);
        let out = child.wait_with_output();
        let timed_out = guard.finish();
        let out = match out {
            Ok(o) => o,
            Err(e) => return Err(error("wait", e)),
        };
        if timed_out {
            return Err(error("timeout", format!("{} killed after {timeout:?}", argv.join(" "))));
        }
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn file_cycle(&self, worker: usize, bytes: usize) -> Outcome {
        let dir = self.workspace.join(format!("w{worker}"));
        let run = || -> std::io::Result<Option<String>> {
            std::fs::create_dir_all(&dir)?;
            let a = dir.join("file.tmp");
            let b = dir.join("file.renamed");
            let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
            std::fs::File::create(&a)?.write_all(&data)?;
            let mut back = Vec::with_capacity(bytes);
            std::fs::File::open(&a)?.read_to_end(&mut back)?;
            if back != data {
                return Ok(Some(format!("read back {} bytes that differ from the {bytes} written", back.len())));
            }
            std::fs::rename(&a, &b)?;
            std::fs::remove_file(&b)?;
            if b.exists() {
                return Ok(Some("file still present after unlink".into()));
            }
            Ok(None)
        };
        match run() {
            Ok(None) => Outcome::Ok,
            Ok(Some(why)) => Outcome::Wrong(why),
            Err(e) => error("io", e),
        }
    }

    fn http_get(&self, path: &str, expect_status: u16) -> Outcome {
        let request = format!("GET {path} HTTP/1.0\r\nHost: fixture.test\r\n\r\n");
        match governed::http(&format!("127.0.0.1:{}", self.fixture_port), &request, Duration::from_secs(10)) {
            Ok((code, _)) if code == expect_status => Outcome::Ok,
            Ok((code, _)) => Outcome::Wrong(format!("HTTP {code}, expected {expect_status}")),
            Err(e) => error("http", e),
        }
    }
}

/// Kills processes that outlive their deadline. One thread for all workers, checking every 50 ms:
/// a hung command must not hold a worker forever, and a timer thread per op would cost more than
/// the op. It signals through a pidfd taken right after spawn, so a pid reused after the worker
/// reaped its child can never be hit.
struct Watchdog {
    deadlines: Arc<Mutex<HashMap<u32, Watched>>>,
}

struct Watched {
    pidfd: i32,
    deadline: Instant,
    killed: bool,
}

pub struct WatchGuard<'a> {
    dog: &'a Watchdog,
    pid: u32,
}

impl Watchdog {
    fn start() -> Watchdog {
        let deadlines: Arc<Mutex<HashMap<u32, Watched>>> = Arc::default();
        let d = deadlines.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let now = Instant::now();
                let Ok(mut map) = d.lock() else { return };
                for w in map.values_mut() {
                    if !w.killed && now >= w.deadline {
                        // SAFETY: a plain syscall on a pidfd we own; ESRCH once the child is gone.
                        unsafe {
                            libc::syscall(
                                libc::SYS_pidfd_send_signal,
                                w.pidfd,
                                libc::SIGKILL,
                                std::ptr::null::<u8>(),
                                0,
                            )
                        };
                        w.killed = true;
                    }
                }
            }
        });
        Watchdog { deadlines }
    }

    /// Call right after spawn, before the child can be reaped.
    fn watch(&self, pid: u32, timeout: Duration) -> WatchGuard<'_> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd (or -1).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
        if pidfd >= 0
            && let Ok(mut m) = self.deadlines.lock()
        {
            m.insert(pid, Watched { pidfd, deadline: Instant::now() + timeout, killed: false });
        }
        WatchGuard { dog: self, pid }
    }
}

impl WatchGuard<'_> {
    /// Stops watching; true if the watchdog killed the process.
    fn finish(self) -> bool {
        let w = self.dog.deadlines.lock().ok().and_then(|mut m| m.remove(&self.pid));
        match w {
            Some(w) => {
                // SAFETY: closing the fd we opened in `watch`.
                unsafe { libc::close(w.pidfd) };
                w.killed
            }
            None => false,
        }
    }
}

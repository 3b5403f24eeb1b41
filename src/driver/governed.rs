//! Governed ops: what agentsh decides, judged against the decision the workload expects.
//!
//! Three ways in, as an agent's commands reach agentsh: the shell shim (`/bin/bash -c`), the
//! session API (`POST /api/v1/sessions/{id}/exec`), and the session's HTTP proxy. Each worker
//! has its own session (agentsh runs one exec at a time per session), made on first use and
//! made again after a time-out or a lost session.
//!
//! The judgement, per op (the suite proves each decision with agentsh's record; under load, a
//! record per op would cost more than the op, so the evidence is what the op itself returns):
//! - an op that must be allowed is **wrong** when agentsh refused it (a refusal signature below);
//! - an op that must be denied is **wrong** when its effect is seen (text only an op that ran
//!   prints), and right only when a refusal signature is seen with the effect absent;
//! - anything else (agentsh's own failure, a hang, an unexpected exit) is an error by kind: it
//!   proves no decision either way.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::ops::{Outcome, error};
use crate::schema::{Expect, Expected, Via};

/// agentsh's API on the target (`assets/config.yaml`, `server.http.addr`).
const API_ADDR: &str = "127.0.0.1:18080";

/// What a refused op shows, whichever way it came in: agentsh's own messages, or the EACCES /
/// EPERM that its ptrace, seccomp and Landlock layers return (root, ungoverned, gets neither).
const REFUSALS: &[&str] =
    &["denied by policy", "blocked by policy", "Permission denied", "Operation not permitted", "E_POLICY_DENIED"];

/// What a governed op returned, before judgement.
pub struct Seen {
    /// Exit code (HTTP status for the proxy); `None` when the command was killed.
    pub code: Option<i32>,
    pub output: String,
    pub errors: String,
    /// agentsh's own statement that it refused (a precheck 403, blocked operations).
    pub refused_by_agentsh: Option<String>,
}

impl Seen {
    fn refusal(&self) -> Option<String> {
        if let Some(r) = &self.refused_by_agentsh {
            return Some(r.clone());
        }
        refusal_in(&format!("{}\n{}", self.errors, self.output)).map(str::to_string)
    }
}

/// The refusal `text` shows, if any ([`REFUSALS`]); also what the nemesis's fail-closed probes
/// look for.
pub fn refusal_in(text: &str) -> Option<&'static str> {
    REFUSALS.iter().find(|r| text.contains(*r)).copied()
}

/// Without agentsh (a baseline target) nothing decides: an op is right when it ran as it would
/// with nothing in the way (an allowed op's expectation met, a denied op's effect seen).
pub fn judge_ungoverned(expected: &Expected, seen: &Seen) -> Outcome {
    match expected {
        Expected::Allow(expect) => match mismatch(expect, seen) {
            None => Outcome::Ok,
            Some(why) => error("failed", why),
        },
        Expected::Deny { effect } if seen.output.contains(effect.as_str()) => Outcome::Ok,
        Expected::Deny { effect } => error("failed", format!("ungoverned, yet its effect {effect:?} is absent")),
    }
}

/// What samples quote of an op's output.
fn excerpt(s: &str) -> String {
    crate::text::excerpt(s, 200)
}

/// The judgement described in the module's doc.
pub fn judge(expected: &Expected, seen: &Seen) -> Outcome {
    match expected {
        Expected::Allow(expect) => {
            if let Some(why) = seen.refusal() {
                return Outcome::Wrong(format!("refused ({why}): {}", excerpt(&seen.errors)));
            }
            match mismatch(expect, seen) {
                None => Outcome::Ok,
                Some(why) => error("failed", why),
            }
        }
        Expected::Deny { effect } => {
            if seen.output.contains(effect.as_str()) {
                return Outcome::Wrong(format!("ran: its effect {effect:?} was seen: {}", excerpt(&seen.output)));
            }
            match seen.refusal() {
                Some(_) => Outcome::Ok,
                None => error(
                    "no-decision",
                    format!("neither refused nor run (code {:?}): {}", seen.code, excerpt(&seen.errors)),
                ),
            }
        }
    }
}

/// Why an allowed op's result is not what it should be, if it is not.
fn mismatch(expect: &Expect, seen: &Seen) -> Option<String> {
    if seen.code != Some(expect.exit) {
        return Some(format!("code {:?}, expected {}: {}", seen.code, expect.exit, excerpt(&seen.errors)));
    }
    if let Some(want) = &expect.stdout_contains
        && !seen.output.contains(want.as_str())
    {
        return Some(format!("output lacks {want:?}"));
    }
    if let Some(want) = &expect.stderr_contains
        && !seen.errors.contains(want.as_str())
    {
        return Some(format!("errors lack {want:?}"));
    }
    None
}

/// One worker's session: its id and its proxy's address.
#[derive(Clone)]
struct Session {
    id: String,
    proxy: String,
}

/// The workers' sessions, one slot each.
pub struct Sessions {
    slots: Vec<Mutex<Option<Session>>>,
    workspace: PathBuf,
    fixture_port: u16,
}

impl Sessions {
    pub fn new(workers: usize, workspace: &Path, fixture_port: u16) -> Sessions {
        Sessions {
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
            workspace: workspace.to_path_buf(),
            fixture_port,
        }
    }

    /// Runs a session-API or proxy op for `worker` through agentsh; shim ops, and every op of a
    /// target without agentsh, are run by the caller.
    pub fn run(&self, worker: usize, via: &Via, expected: &Expected, timeout: Duration) -> Outcome {
        let session = match self.session(worker) {
            Ok(s) => s,
            Err(e) => return error("session", e),
        };
        let seen = match via {
            Via::Session { argv } => exec(&session, argv, timeout),
            Via::Proxy { url } => proxy_get(&session, &self.url(url), timeout),
            Via::Shim { .. } => return error("internal", "shim ops run as commands"),
        };
        let outcome = match seen {
            Ok(seen) => judge(expected, &seen),
            Err((kind, e)) => error(kind, e),
        };
        // After a time-out the session's exec lock is held by the hung command; after a wedge's
        // recovery its FUSE mount is gone ("resolve workspace mount ... lstat"). An error says
        // nothing about which, so the next op of this worker makes a new session either way.
        if matches!(outcome, Outcome::Error { .. }) {
            self.forget(worker);
        }
        outcome
    }

    /// `{fixture}` in a URL is the port of the driver's own loopback fixture.
    pub fn url(&self, url: &str) -> String {
        url.replace("{fixture}", &self.fixture_port.to_string())
    }

    /// The folder a worker's session (or, ungoverned, its command) works in.
    pub fn dir(&self, worker: usize) -> PathBuf {
        self.workspace.join(format!("s{worker}"))
    }

    fn session(&self, worker: usize) -> Result<Session, String> {
        let slot = self.slots.get(worker).ok_or("no such worker")?;
        let mut slot = slot.lock().map_err(|_| "session lock poisoned")?;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let dir = self.dir(worker);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let body = json!({ "workspace": dir }).to_string();
        let (status, text) = http(API_ADDR, &post("/api/v1/sessions", &body), Duration::from_secs(30))
            .map_err(|e| format!("creating a session: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| format!("creating a session: HTTP {status}: {text}"))?;
        let id = v["id"].as_str().ok_or_else(|| format!("creating a session: HTTP {status}: {text}"))?;
        let proxy = v["proxy_url"].as_str().unwrap_or_default().trim_start_matches("http://").trim_end_matches('/');
        let s = Session { id: id.to_string(), proxy: proxy.to_string() };
        *slot = Some(s.clone());
        Ok(s)
    }

    fn forget(&self, worker: usize) {
        let old = self.slots.get(worker).and_then(|s| s.lock().ok()).and_then(|mut s| s.take());
        if let Some(s) = old {
            destroy(&s);
        }
    }
}

impl Drop for Sessions {
    /// The server keeps at most `sessions.max_sessions`: a driver leaves none behind.
    fn drop(&mut self) {
        for w in 0..self.slots.len() {
            self.forget(w);
        }
    }
}

/// Best effort, briefly: a wedged server must not hold the driver's exit.
fn destroy(s: &Session) {
    let req = format!("DELETE /api/v1/sessions/{} HTTP/1.0\r\nHost: agentsh\r\n\r\n", s.id);
    let _ = http(API_ADDR, &req, Duration::from_secs(2));
}

/// An op that could not be judged: its error kind and why.
pub type Failure = (&'static str, String);

/// `POST .../exec`; agentsh's response says what it decided.
fn exec(s: &Session, argv: &[String], timeout: Duration) -> Result<Seen, Failure> {
    let body = json!({ "command": argv[0], "args": &argv[1..] }).to_string();
    let (status, text) = http(API_ADDR, &post(&format!("/api/v1/sessions/{}/exec", s.id), &body), timeout)
        .map_err(|e| (if is_timeout(&e) { "timeout" } else { "api" }, e.to_string()))?;
    if status == 404 {
        return Err(("session", format!("session {} is gone: {text}", s.id)));
    }
    let v: Value = serde_json::from_str(&text).map_err(|_| ("api", format!("HTTP {status}: {}", excerpt(&text))))?;
    let result = &v["result"];
    let code = result["exit_code"].as_i64().map(|c| c as i32);
    let blocked = v["events"]["blocked_operations"].as_array().filter(|b| !b.is_empty()).map(|b| {
        let first = &b[0];
        format!("{} rule={}", first["type"].as_str().unwrap_or("?"), first["policy"]["rule"].as_str().unwrap_or("?"))
    });
    let refused = if result["error"]["code"] == "E_POLICY_DENIED" {
        Some(format!("precheck rule={}", result["error"]["policy_rule"].as_str().unwrap_or("?")))
    } else {
        blocked
    };
    if status >= 500 || (refused.is_none() && status != 200) {
        return Err(("api", format!("HTTP {status}: {}", excerpt(&text))));
    }
    Ok(Seen {
        code: if code == Some(-1) { None } else { code },
        output: result["stdout"].as_str().unwrap_or_default().to_string(),
        errors: result["stderr"].as_str().unwrap_or_default().to_string(),
        refused_by_agentsh: refused,
    })
}

/// A GET sent to the session's proxy. The proxy answers a refusal itself (403, "blocked by
/// policy"); an allowed request gets the fixture's answer.
fn proxy_get(s: &Session, url: &str, timeout: Duration) -> Result<Seen, Failure> {
    if s.proxy.is_empty() {
        return Err(("session", "the session has no proxy_url".into()));
    }
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    get(&s.proxy, &format!("GET {url} HTTP/1.0\r\nHost: {host}\r\n\r\n"), timeout, "proxy")
}

/// The ungoverned twin of [`proxy_get`]: the GET sent straight to the URL's host, port 80 unless
/// given (the hosts are loopback fixtures in the target's /etc/hosts).
pub fn direct_get(url: &str, timeout: Duration) -> Result<Seen, Failure> {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
    get(&addr, &format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"), timeout, "http")
}

/// A GET's answer as what was seen: the status as the code, the body as the output (and as the
/// errors, where a proxy's refusal text would be). A failed exchange is an error of `kind`.
fn get(addr: &str, request: &str, timeout: Duration, kind: &'static str) -> Result<Seen, Failure> {
    let (status, body) =
        http(addr, request, timeout).map_err(|e| (if is_timeout(&e) { "timeout" } else { kind }, e.to_string()))?;
    Ok(Seen { code: Some(i32::from(status)), output: body.clone(), errors: body, refused_by_agentsh: None })
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.0\r\nHost: agentsh\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// One HTTP/1.0 exchange (the server closes the connection, so the body is the rest): status
/// and body.
pub fn http(addr: &str, request: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
        std::io::Error::other(format!("not an HTTP response: {:?}", head.chars().take(64).collect::<String>()))
    })?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(code: i32, output: &str, errors: &str, refused: Option<&str>) -> Seen {
        Seen {
            code: Some(code),
            output: output.into(),
            errors: errors.into(),
            refused_by_agentsh: refused.map(String::from),
        }
    }

    fn kind(o: &Outcome) -> &'static str {
        match o {
            Outcome::Ok => "ok",
            Outcome::Wrong(_) => "wrong",
            Outcome::Error { kind, .. } => kind,
        }
    }

    #[test]
    fn an_allowed_op_is_wrong_only_when_refused() {
        let allow = Expected::Allow(Expect { exit: 0, stdout_contains: Some("ok".into()), stderr_contains: None });
        assert_eq!(kind(&judge(&allow, &seen(0, "ok\n", "", None))), "ok");
        assert_eq!(kind(&judge(&allow, &seen(126, "", "", Some("precheck rule=x")))), "wrong");
        assert_eq!(kind(&judge(&allow, &seen(1, "", "cat: f: Permission denied", None))), "wrong");
        // agentsh failing is not a decision.
        assert_eq!(kind(&judge(&allow, &seen(255, "", "agentsh: command failed", None))), "failed");
        assert_eq!(kind(&judge(&allow, &seen(0, "", "", None))), "failed");
    }

    #[test]
    fn a_denied_op_is_right_only_when_refused_with_its_effect_absent() {
        let deny = Expected::Deny { effect: "root".into() };
        assert_eq!(kind(&judge(&deny, &seen(126, "", "sudo: Permission denied", None))), "ok");
        assert_eq!(kind(&judge(&deny, &seen(200, "blocked by policy\n", "", None))), "ok");
        // The effect wins over any refusal text: it ran.
        assert_eq!(kind(&judge(&deny, &seen(0, "root\n", "Permission denied", None))), "wrong");
        // Failed without a refusal: nothing proven.
        assert_eq!(kind(&judge(&deny, &seen(255, "", "agentsh: command failed", None))), "no-decision");
    }

    #[test]
    fn http_reads_status_and_body() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf).unwrap();
            c.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 18\r\n\r\nblocked by policy\n").unwrap();
        });
        let (status, body) = http(&addr, "GET http://evil.test/ HTTP/1.0\r\n\r\n", Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert_eq!((status, body.as_str()), (403, "blocked by policy\n"));
    }
}

//! agentsh's own record of what it decided: the events its event store (SQLite, at
//! `audit.storage.sqlite_path`) holds for the time a test ran, read on the observation channel.
//! An exec response does not always name the rule (v0.16.9's shim denials of child execs and its
//! seccomp file denials carry none), but the store does: a `ptrace_execve` event with
//! `fields.decision` and `fields.rule`, a `file_create` row with its rule in `policy_rule`. So a
//! verdict can rest on the decision agentsh logged, next to the effect check.
//!
//! A record only counts for a test when it concerns something the test did (a path, a host, a
//! program it names): agentsh logs a stream of unrelated denials around every command (Landlock
//! probing `/bin`, `/etc`, `/lib` on session setup), which would otherwise "prove" any file rule.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::control::{Conn, shell_quote};

/// One decision agentsh logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Record {
    pub ts_ns: i64,
    /// The event type: `ptrace_execve`, `command_policy`, `file_create`, `net_connect`, ...
    pub kind: String,
    /// What the policy said (`approve` stays `approve` here) ...
    pub policy: String,
    /// ... and what agentsh did (an `approve` runs as `allow` when approvals are off).
    pub effective: String,
    pub rule: String,
    /// What the decision was about: a path, a domain, a remote address, a program, a command line.
    pub subjects: Vec<String>,
}

impl Record {
    pub fn summary(&self) -> String {
        let policy = if self.policy != self.effective && !self.policy.is_empty() {
            format!(" (policy {})", self.policy)
        } else {
            String::new()
        };
        format!(
            "{} {}{} rule={} {}",
            self.kind,
            self.effective,
            policy,
            self.rule,
            self.subjects.first().map_or("", String::as_str)
        )
    }

    pub fn denies(&self) -> bool {
        self.effective == "deny"
    }

    /// A network decision (a connection, a DNS query, an HTTP request through the proxy), as
    /// opposed to the exec of the program that made it.
    pub fn is_network(&self) -> bool {
        ["net", "dns", "http", "connect", "proxy"].iter().any(|k| self.kind.contains(k))
    }

    /// Whether the record concerns something in `text` (the test's command, argv and setup).
    pub fn concerns(&self, tokens: &BTreeSet<String>, text: &str) -> bool {
        self.subjects.iter().any(|s| {
            let s = s.trim();
            if s.len() < 2 {
                return false;
            }
            if s.contains(char::is_whitespace) {
                // A command line (a shim precheck's `bash -c SCRIPT`).
                return text.contains(s) || s.contains(text.trim());
            }
            let host = strip_port(s);
            let base = s.rsplit('/').next().unwrap_or(s);
            tokens.contains(s) || tokens.contains(host) || (!base.is_empty() && base != s && tokens.contains(base))
        })
    }
}

/// `10.0.0.1:80` → `10.0.0.1`; `[::1]:443` → `::1`; anything else unchanged.
fn strip_port(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => h,
        _ => s,
    }
}

/// The words of a test's command text, and the hosts of its URLs, to match records against.
pub fn tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // A `\n` written out in a setup's printf separates words as a newline does.
    let text = text.replace("\\n", " ");
    for t in text.split(|c: char| c.is_whitespace() || ";|&()'\"=,[]`<>\\".contains(c)) {
        if t.is_empty() {
            continue;
        }
        out.insert(t.to_string());
        if let Some((_, rest)) = t.split_once("://") {
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            out.insert(strip_port(host).to_string());
        }
    }
    out
}

/// Reads the store's decisions since `since_ns` (the target's clock). File events that allowed
/// are left out: there are hundreds per command and none is evidence of a protection.
const QUERY: &str = r#"
import sqlite3, json, sys
db = sqlite3.connect('file:%s?mode=ro' % sys.argv[1], uri=True, timeout=10)
rows = db.execute("SELECT ts_unix_ns, type, policy_decision, effective_decision, policy_rule, path, domain, remote, payload_json "
                  "FROM events WHERE ts_unix_ns >= ? ORDER BY ts_unix_ns LIMIT 5000", (int(sys.argv[2]),)).fetchall()
out = []
for ts, typ, pd, ed, rule, path, dom, rem, payload in rows:
    try:
        p = json.loads(payload) or {}
    except Exception:
        p = {}
    f = p.get('fields') or {}
    pol = p.get('policy') or {}
    eff = ed or pol.get('effective_decision') or f.get('decision') or ''
    if not eff or (eff == 'allow' and typ.startswith('file_') and (pd or 'allow') == 'allow'):
        continue
    subj = [s for s in (path, dom, rem, f.get('filename'), f.get('path'), f.get('domain'), f.get('remote')) if isinstance(s, str) and s]
    argv = f.get('argv')
    if isinstance(argv, list) and argv:
        subj.append(str(argv[0]))
    args = f.get('args')
    if isinstance(args, list) and len(args) >= 2 and args[0] == '-c':
        subj.append(str(args[1]))
    elif f.get('command'):
        subj.append(str(f.get('command')))
    out.append({"ts_ns": ts, "kind": typ, "policy": pd or pol.get('decision') or f.get('decision') or '', "effective": eff,
                "rule": rule or pol.get('rule') or f.get('rule') or '', "subjects": subj})
print(json.dumps(out))
"#;

/// The target's clock minus ours, so that "since the test started" can be asked in its terms.
pub async fn clock_offset_ns(observe: &Conn) -> Result<i64> {
    let before = now_ns();
    let out = observe.run("date +%s%N", Duration::from_secs(20)).await?;
    let after = now_ns();
    let theirs: i64 =
        out.stdout.trim().parse().with_context(|| format!("the target's clock: {:?}", out.stdout.trim()))?;
    Ok(theirs - (before + after) / 2)
}

pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// The decisions logged since `since_ns` (target clock).
pub async fn since(observe: &Conn, db: &str, since_ns: i64) -> Result<Vec<Record>> {
    let cmd = format!("python3 -c {} {} {since_ns}", shell_quote(QUERY), shell_quote(db));
    let out = observe.run(&cmd, Duration::from_secs(30)).await?;
    anyhow::ensure!(out.ok(), "reading agentsh's event store {db}: {}", out.describe());
    serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("reading agentsh's event store {db}: {}", out.stdout.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: &str, eff: &str, rule: &str, subjects: &[&str]) -> Record {
        Record {
            ts_ns: 0,
            kind: kind.into(),
            policy: eff.into(),
            effective: eff.into(),
            rule: rule.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_record_counts_only_for_what_the_test_touched() {
        let text = "touch /etc/shim-test-n1";
        let t = tokens(text);
        assert!(rec("file_create", "deny", "default-deny-files", &["/etc/shim-test-n1"]).concerns(&t, text));
        // Landlock's probing of /etc on every session setup is not evidence for this test.
        assert!(!rec("file_open", "deny", "default-deny-files", &["/etc"]).concerns(&t, text));
        let text = "env sudo whoami";
        let t = tokens(text);
        assert!(rec("ptrace_execve", "deny", "block-shell-escape", &["/usr/bin/sudo", "sudo"]).concerns(&t, text));
        assert!(!rec("ptrace_execve", "deny", "block-shell-escape", &["/usr/bin/su", "su"]).concerns(&t, text));
        let text = "/usr/bin/curl -sS https://evil.com/n1";
        let t = tokens(text);
        assert!(rec("net_connect", "deny", "block-evil-domains", &["evil.com:443"]).concerns(&t, text));
        assert!(!rec("net_connect", "deny", "block-evil-domains", &["api.github.com:443"]).concerns(&t, text));
        let text = "http://10.0.0.1/";
        assert!(rec("net_connect", "deny", "block-private-networks", &["10.0.0.1:80"]).concerns(&tokens(text), text));
        // A script written by setup: its `\n` separates the words.
        let text = "printf '#!/bin/sh\\nsudo whoami\\n' > /tmp/escalate-n1.sh";
        assert!(
            rec("ptrace_execve", "deny", "block-shell-escape", &["/usr/bin/sudo", "sudo"])
                .concerns(&tokens(text), text)
        );
        // A shim precheck records the whole command line.
        let text = "sudo whoami";
        assert!(
            rec("command_policy", "deny", "block-shell-escape", &["/bin/bash.real", "sudo whoami"])
                .concerns(&tokens(text), text)
        );
    }

    #[test]
    fn ports_and_summaries() {
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("/usr/bin/sudo"), "/usr/bin/sudo");
        let mut r = rec("file_open", "allow", "approve-ssh-access", &["/root/.ssh/id_rsa"]);
        r.policy = "approve".into();
        assert_eq!(r.summary(), "file_open allow (policy approve) rule=approve-ssh-access /root/.ssh/id_rsa");
        assert!(!r.denies());
    }
}

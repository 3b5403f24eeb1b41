//! Fail-closed probes: commands the policy denies, each with an effect only a command that ran
//! can produce, sent through the shell shim (root's login shell) while a fault is on. agentsh
//! hurt must mean these fail or are refused; an effect seen means the command ran ungoverned.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::FailClosed;
use crate::control::{CmdOutput, Conn};

/// A denied command and how to see that it ran anyway.
pub struct Probe {
    pub name: &'static str,
    pub command: &'static str,
    /// Whether the output shows the command's effect.
    pub effect: fn(&str) -> bool,
}

/// The probes, taken in turn. Each is denied by the default policy (the suite proves that when
/// agentsh is healthy: tests of sudo, /etc/shadow and evil.com/evil.test).
pub const PROBES: &[Probe] = &[
    // Root printed: sudo ran.
    Probe { name: "sudo", command: "sudo -n whoami", effect: |out| out.lines().any(|l| l.trim() == "root") },
    // The shadow file's first line: the read went through.
    Probe { name: "shadow", command: "cat /etc/shadow", effect: |out| out.lines().any(|l| l.starts_with("root:")) },
    // The loopback fixture's answer (evil.test maps to it in /etc/hosts): the request got out.
    Probe {
        name: "evil.test",
        command: "curl -s --max-time 4 http://evil.test/abench-fail-closed",
        effect: |out| out.contains("abench-fixture evil.test"),
    },
];

/// Each probe's time limit: a stalled server makes every governed command hang, and a hung
/// command did not run (what matters is that its effect never shows).
const PROBE_LIMIT: Duration = Duration::from_secs(6);

/// What the probes of one fault saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Probes that reached the target (ran, failed, were refused or hung there).
    pub probes: u32,
    /// Refused by agentsh (its message, or EACCES/EPERM from its layers).
    pub refused: u32,
    /// The effect seen: ran ungoverned.
    pub ran_ungoverned: u32,
    /// Failed otherwise or hung: did not run.
    pub errors: u32,
    /// Probes the transport could not deliver (not counted in `probes`).
    pub unreached: u32,
    /// The first outputs of each kind, for the row's detail.
    pub samples: Vec<String>,
    /// Positive controls: the probes whose effect showed when run ungoverned before the fault
    /// ([`controls`]); only these are sent, since only their effect could be seen.
    pub controlled: Vec<&'static str>,
    /// Probes left out because their effect did not show ungoverned, with what was seen.
    pub uncontrolled: Vec<String>,
}

impl Seen {
    /// Held when probes reached the target and none ran; violated when one did; inconclusive
    /// when none reached it.
    pub fn verdict(&self) -> FailClosed {
        if self.ran_ungoverned > 0 {
            FailClosed::Violated
        } else if self.probes > 0 {
            FailClosed::Held
        } else {
            FailClosed::Inconclusive
        }
    }

    /// Adds one probe's result.
    pub fn add(&mut self, probe: &Probe, result: &Result<CmdOutput>) {
        let (kind, text) = match result {
            Err(e) if format!("{e}").contains("timed out") => ("hung", format!("hung for {PROBE_LIMIT:?}")),
            Err(e) => {
                self.unreached += 1;
                self.sample(format!("{}: not delivered: {}", probe.name, crate::text::excerpt(&format!("{e:#}"), 120)));
                return;
            }
            Ok(o) => {
                let all = format!("{}\n{}", o.stdout, o.stderr);
                if (probe.effect)(&all) {
                    ("RAN UNGOVERNED", o.describe())
                } else if let Some(r) = crate::driver::refusal_in(&all) {
                    ("refused", r.to_string())
                } else {
                    ("failed", o.describe())
                }
            }
        };
        self.probes += 1;
        match kind {
            "RAN UNGOVERNED" => self.ran_ungoverned += 1,
            "refused" => self.refused += 1,
            _ => self.errors += 1,
        }
        self.sample(format!("{}: {kind}: {}", probe.name, crate::text::excerpt(&text, 160)));
    }

    /// Keeps the first few samples, and always the first of an ungoverned run.
    fn sample(&mut self, s: String) {
        if self.samples.len() < 4 || (s.contains("RAN UNGOVERNED") && !self.samples.iter().any(|x| x.contains("RAN"))) {
            self.samples.push(s);
        }
    }

    pub fn summary(&self) -> String {
        let controls = match (self.controlled.is_empty(), self.uncontrolled.is_empty()) {
            (true, true) => String::new(),
            _ => format!(
                "controls (effect seen ungoverned before the fault): {}{}; ",
                if self.controlled.is_empty() { "none".to_string() } else { self.controlled.join(", ") },
                if self.uncontrolled.is_empty() {
                    String::new()
                } else {
                    format!(" (left out: {})", self.uncontrolled.join("; "))
                }
            ),
        };
        format!(
            "{controls}{} probe(s): {} refused, {} failed or hung, {} ran ungoverned{}; {}",
            self.probes,
            self.refused,
            self.errors,
            self.ran_ungoverned,
            if self.unreached > 0 { format!(", {} not delivered", self.unreached) } else { String::new() },
            self.samples.join(" | ")
        )
    }
}

/// The positive controls, before a fault: each probe once on the observation channel (uid 0,
/// never governed). A probe whose effect does not show there (no sudo on the target, the
/// fixture down) could not show it through the shim either, so "held" would be a check that
/// cannot fail; it is left out of this fault, and a fault with no controlled probe is
/// inconclusive.
pub async fn controls(observe: &Conn, seen: &mut Seen) {
    for probe in PROBES {
        match observe.run(probe.command, PROBE_LIMIT).await {
            Ok(o) if (probe.effect)(&format!("{}\n{}", o.stdout, o.stderr)) => seen.controlled.push(probe.name),
            Ok(o) => seen.uncontrolled.push(format!("{}: {}", probe.name, crate::text::excerpt(&o.describe(), 120))),
            Err(e) => {
                seen.uncontrolled.push(format!("{}: {}", probe.name, crate::text::excerpt(&format!("{e:#}"), 120)))
            }
        }
    }
}

/// Whether `probe` passed its positive control.
pub fn controlled(seen: &Seen, probe: &Probe) -> bool {
    seen.controlled.contains(&probe.name)
}

/// Sends the controlled probes in turn through `shim` until `until`, at least one round; none
/// when no probe passed its control.
pub async fn until(shim: &Conn, until: Instant, seen: &mut Seen) {
    let probes: Vec<&Probe> = PROBES.iter().filter(|p| controlled(seen, p)).collect();
    if probes.is_empty() {
        return;
    }
    let mut i = 0;
    loop {
        let probe = probes[i % probes.len()];
        let result = shim.run(probe.command, PROBE_LIMIT).await;
        seen.add(probe, &result);
        i += 1;
        if Instant::now() >= until && i >= probes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str, stderr: &str) -> Result<CmdOutput> {
        Ok(CmdOutput { code: Some(code), stdout: stdout.into(), stderr: stderr.into(), elapsed: Duration::ZERO })
    }

    #[test]
    fn an_effect_is_a_violation_whatever_else_was_seen() {
        let mut s = Seen::default();
        s.add(&PROBES[0], &out(1, "", "sudo: command denied by policy"));
        assert_eq!(s.verdict(), FailClosed::Held);
        s.add(&PROBES[0], &out(0, "root\n", ""));
        assert_eq!((s.probes, s.refused, s.ran_ungoverned), (2, 1, 1));
        assert_eq!(s.verdict(), FailClosed::Violated);
        assert!(s.summary().contains("sudo: RAN UNGOVERNED"), "{}", s.summary());
    }

    #[test]
    fn each_probe_knows_its_own_effect() {
        assert!((PROBES[1].effect)("root:*:19000:0:99999:7:::\n"));
        assert!(!(PROBES[1].effect)("cat: /etc/shadow: Permission denied"));
        assert!((PROBES[2].effect)("abench-fixture evil.test\n"));
        // "root" inside a message is not sudo's output.
        assert!(!(PROBES[0].effect)("sudo: root is not allowed here"));
    }

    #[test]
    fn the_summary_names_the_controls_and_what_was_left_out() {
        let mut s = Seen { controlled: vec!["sudo", "shadow"], ..Seen::default() };
        s.uncontrolled.push("evil.test: exit 7".into());
        assert!(controlled(&s, &PROBES[0]) && !controlled(&s, &PROBES[2]));
        s.add(&PROBES[0], &out(1, "", "sudo: command denied by policy"));
        let text = s.summary();
        assert!(text.starts_with("controls (effect seen ungoverned before the fault): sudo, shadow (left out: evil.test: exit 7); 1 probe(s)"), "{text}");
        // No probe controlled, none sent: nothing proven.
        assert_eq!(
            Seen { uncontrolled: vec!["sudo: no sudo".into()], ..Seen::default() }.verdict(),
            FailClosed::Inconclusive
        );
    }

    #[test]
    fn failures_and_hangs_hold_but_undelivered_probes_prove_nothing() {
        let mut s = Seen::default();
        s.add(&PROBES[0], &Err(anyhow::anyhow!("ssh: connection closed")));
        assert_eq!(s.verdict(), FailClosed::Inconclusive);
        assert_eq!(s.unreached, 1);
        s.add(&PROBES[1], &Err(anyhow::anyhow!("`cat /etc/shadow` timed out after 6s")));
        s.add(&PROBES[2], &out(255, "", "agentsh: command failed"));
        assert_eq!((s.probes, s.errors, s.refused), (2, 2, 0));
        assert_eq!(s.verdict(), FailClosed::Held);
    }
}

//! The provisioning steps. Each one is idempotent (safe to run on a target that already has it)
//! and logs what it ran. Order matters: the observer and the driver go in before the shim, because
//! once the shim enforces, Landlock only lets sessions execute from system paths.

use anyhow::{Context, Result, bail};

use super::assets::{PROBE_COMMAND, PROBE_RULE};
use super::{Ctx, QUICK, SLOW};
use crate::agentsh::{Artifact, parse_version_output};
use crate::control::{CmdOutput, Conn};
use crate::target::{
    DRIVER_PATH, FIXTURE_HOSTS, FIXTURE_LOG, HEALTH, OBSERVER_SHELL, OBSERVER_USER, PACKAGES, SERVER_START,
};

/// What the readiness probe prints if it ever runs.
const PROBE_MARKER: &str = "abench-probe-ran";

async fn run_logged(ctx: &Ctx<'_>, conn: &Conn, cmd: &str, timeout: std::time::Duration) -> Result<CmdOutput> {
    ctx.log(&format!("$ {cmd}"));
    let out = conn.run(cmd, timeout).await?;
    ctx.log(&format!("  -> {} ({:.3} s)", out.describe(), out.elapsed.as_secs_f64()));
    Ok(out)
}

async fn check_logged(ctx: &Ctx<'_>, conn: &Conn, cmd: &str, timeout: std::time::Duration) -> Result<String> {
    let out = run_logged(ctx, conn, cmd, timeout).await?;
    if !out.ok() {
        bail!("`{cmd}` failed: {}", out.describe());
    }
    Ok(out.stdout)
}

/// OS packages agentsh and the harness need. Local images have them; VMs get them from apt.
pub async fn packages(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let probe = format!(
        "for p in {}; do dpkg-query -W -f='${{Status}}\\n' \"$p\" 2>/dev/null | grep -q 'install ok installed' || echo \"$p\"; done",
        PACKAGES.join(" ")
    );
    let missing: Vec<String> =
        check_logged(ctx, conn, &probe, QUICK).await?.split_whitespace().map(String::from).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends {}",
        missing.join(" ")
    );
    check_logged(ctx, conn, &install, SLOW)
        .await
        .with_context(|| format!("packages missing on the target: {}", missing.join(" ")))?;
    Ok(())
}

/// The observation channel: a uid-0 user whose login shell is a copy of bash made before the shim
/// replaces /bin/bash, so nothing the harness reads through it is governed by agentsh. Its
/// logins skip pam_motd: the motd scripts are `#!/bin/sh`, /bin/sh is shimmed, and a wedged
/// agentsh would hang the first command of every new observation connection (seen in CI: a
/// suite's `date` on a fresh observe connection timed out). The observation channel must never
/// be governed; the test channel's logins keep the motd, as a real deployment has it.
pub async fn observer(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let cmd = format!(
        "set -e; src=/bin/bash; [ -e /bin/bash.real ] && src=/bin/bash.real; \
         install -d /usr/local/libexec/agentsh-bench; install -m 755 \"$src\" {OBSERVER_SHELL}; \
         id -u {OBSERVER_USER} >/dev/null 2>&1 || useradd -o -u 0 -g 0 -M -d /root -s {OBSERVER_SHELL} {OBSERVER_USER}; \
         usermod -p '*' -s {OBSERVER_SHELL} {OBSERVER_USER}; \
         f=/etc/pam.d/sshd; if [ -f $f ] && ! grep -q abench-observer $f; then \
           sed -i '/^session.*pam_motd[.]so/i session [success=1 default=ignore] pam_succeed_if.so quiet user = {OBSERVER_USER} # abench-observer: no motd scripts' $f; fi"
    );
    check_logged(ctx, conn, &cmd, QUICK).await?;
    Ok(())
}

const FIXTURE_SCRIPT: &[u8] = include_bytes!("../../assets/fixtures/fixtures.py");

/// Installs and (re)starts the fixtures; waits until one answers over HTTPS by name. (A pid file,
/// not `pkill -f`: this very command line names the script and would match itself.) EC keys and
/// a direct append to the CA bundle: RSA keygen and update-ca-certificates cost 1.5 s of CPU
/// per target here, more than the rest of provisioning.
pub async fn fixtures(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let dir = "/usr/local/libexec/agentsh-bench";
    conn.upload(FIXTURE_SCRIPT, &format!("{dir}/fixtures.py"), 0o755, QUICK).await?;
    let names: Vec<&str> = FIXTURE_HOSTS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    let san = names.iter().map(|n| format!("DNS:{n}")).collect::<Vec<_>>().join(",");
    let hosts: String = FIXTURE_HOSTS.iter().map(|(a, n)| format!("{a} {} # abench-fixture\n", n.join(" "))).collect();
    let addrs = FIXTURE_HOSTS.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(" ");
    let probe = names[0];
    let cmd = format!(
        "set -e; f=/etc/agentsh-bench/fixtures; mkdir -p $f /var/log/agentsh-bench; \
         if [ ! -s $f/leaf.pem ]; then \
           ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; \
           openssl req -x509 $ec -keyout $f/ca.key -out $f/ca.pem -days 30 -subj '/CN=agentsh-bench fixture CA' 2>/dev/null; \
           openssl req $ec -keyout $f/leaf.key -out $f/leaf.csr -subj '/CN=agentsh-bench fixture' 2>/dev/null; \
           printf 'subjectAltName={san}\n' > $f/ext; \
           openssl x509 -req -in $f/leaf.csr -CA $f/ca.pem -CAkey $f/ca.key -CAcreateserial -out $f/leaf.pem -days 30 -extfile $f/ext 2>/dev/null; \
           cat $f/ca.pem >> /etc/ssl/certs/ca-certificates.crt; \
           ln -sf $f/ca.pem /etc/ssl/certs/$(openssl x509 -hash -noout -in $f/ca.pem).0; \
         fi; \
         grep -v '# abench-fixture$' /etc/hosts > $f/hosts.tmp || true; printf '{hosts}' >> $f/hosts.tmp; cat $f/hosts.tmp > /etc/hosts; \
         if [ -s $f/pid ]; then kill $(cat $f/pid) 2>/dev/null || true; sleep 0.2; fi; \
         setsid nohup python3 {dir}/fixtures.py $f/leaf.pem $f/leaf.key {FIXTURE_LOG} {addrs} > /var/log/agentsh-bench/fixtures.out 2>&1 < /dev/null & \
         echo $! > $f/pid; \
         for i in $(seq 1 100); do curl -sf --max-time 1 https://{probe}/abench-fixture-ready >/dev/null && exit 0; sleep 0.1; done; \
         cat /var/log/agentsh-bench/fixtures.out >&2; exit 1"
    );
    check_logged(ctx, conn, &cmd, QUICK).await.context("starting the loopback fixtures")?;
    Ok(())
}

/// This binary as the on-target driver; skipped when the same bytes are already there.
pub async fn driver(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let have = run_logged(ctx, conn, &format!("sha256sum {DRIVER_PATH} 2>/dev/null"), QUICK).await?;
    if have.stdout.split_whitespace().next() == Some(ctx.setup.driver_sha.as_str()) {
        ctx.log("driver already current");
        return Ok(());
    }
    ctx.log(&format!("uploading driver ({} bytes)", ctx.setup.driver.len()));
    conn.upload(&ctx.setup.driver, DRIVER_PATH, 0o755, SLOW).await?;
    let v = check_logged(ctx, conn, &format!("{DRIVER_PATH} --version"), QUICK).await?;
    if !v.contains("agentsh-bench") {
        bail!("the uploaded driver does not run: {v}");
    }
    Ok(())
}

pub async fn install_agentsh(ctx: &Ctx<'_>, conn: &Conn, artifact: &Artifact) -> Result<()> {
    // `|| true`: before the first install agentsh is missing, and the openssh crate reports a
    // remote exit 127 as a transport error ("remote command not found"), not as an exit code.
    let cur = run_logged(ctx, conn, "agentsh --version 2>&1 || true", QUICK).await?;
    if parse_version_output(&cur.stdout).as_deref() == Some(artifact.version.as_str()) {
        ctx.log("agentsh already at the wanted version");
        return Ok(());
    }
    let remote = "/var/cache/agentsh-bench/agentsh.deb";
    conn.upload(&ctx.setup.deb, remote, 0o644, SLOW).await?;
    // The package's config files are conffiles; ours replace them right after (assets step), so
    // dpkg must never stop to ask about an edited one (there is no terminal to answer).
    check_logged(ctx, conn, &format!("dpkg -i --force-confdef --force-confnew {remote}"), SLOW).await?;
    Ok(())
}

pub async fn assets(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    check_logged(
        ctx,
        conn,
        "mkdir -p /etc/agentsh/policies /var/lib/agentsh/quarantine /var/lib/agentsh/sessions /var/log/agentsh",
        QUICK,
    )
    .await?;
    conn.upload(&ctx.setup.assets.config, "/etc/agentsh/config.yaml", 0o644, QUICK).await?;
    conn.upload(&ctx.setup.assets.policy, "/etc/agentsh/policies/default.yaml", 0o644, QUICK).await?;
    let probe =
        format!("#!/bin/sh\n# agentsh-bench readiness probe: agentsh must deny this command.\necho {PROBE_MARKER}\n");
    conn.upload(probe.as_bytes(), &format!("/usr/local/bin/{PROBE_COMMAND}"), 0o755, QUICK).await?;
    check_logged(
        ctx,
        conn,
        "chmod 600 /dev/fuse; grep -qx user_allow_other /etc/fuse.conf 2>/dev/null || echo user_allow_other >> /etc/fuse.conf",
        QUICK,
    )
    .await?;
    Ok(())
}

/// (Re)starts the server with `AGENTSH_NO_AUTO=1`, so a server that dies is seen, not silently
/// replaced by the CLI's auto-start; waits for /health.
pub async fn server(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let start = format!("pkill -f '^agentsh server' ; sleep 0.2; {SERVER_START}");
    let out = run_logged(ctx, conn, &start, QUICK * 2).await?;
    if !out.ok() {
        let log = run_logged(ctx, conn, "tail -n 30 /var/log/agentsh/server.log", QUICK).await?;
        bail!("agentsh server did not answer {HEALTH} within 30 s; server.log ends:\n{}", log.stdout.trim());
    }
    Ok(())
}

/// Installs the shell shim and sets `force=true` (without it a non-TTY SSH command runs the real
/// shell unenforced). install-shell without --force would rewrite force back to false, hence the
/// order: install, then force.
pub async fn shim(ctx: &Ctx<'_>, conn: &Conn) -> Result<()> {
    let cmd = "set -e; if [ ! -e /bin/bash.real ]; then \
        agentsh shim install-shell --root / --shim /usr/bin/agentsh-shell-shim --bash --i-understand-this-modifies-the-host --force; fi; \
        f=/etc/agentsh/shim.conf; touch $f; \
        if grep -q '^force=' $f; then sed -i 's/^force=.*/force=true/' $f; else echo force=true >> $f; fi";
    check_logged(ctx, conn, cmd, QUICK).await?;
    Ok(())
}

/// How often readiness tries a command that must work (or must be denied) before it gives up.
/// Each failed try is a finding, kept with its output: agentsh v0.16.9's ptrace prefilter
/// injection sometimes kills a traced command under load (docs/findings.md), and a target where a
/// second try works is ready but its flakiness is on record.
const TRIES: usize = 3;
/// Time a governed readiness command may take. They take well under a second, a few seconds on
/// 8 loaded targets; one that takes longer is hung (agentsh wedged), and every second of this
/// limit is idle time before the watchdog can recover it.
const GOVERNED: std::time::Duration = std::time::Duration::from_secs(15);

/// Proves the target is hardened, whatever policy the run tests (the probe rule is the harness's,
/// added to every policy; see `assets::PROBE_RULE`):
/// - the version read back is the one installed, `agentsh detect` is recorded;
/// - /bin/bash is the shim;
/// - the shimmed probe is denied (exit 126, its marker never printed, the rule named where the
///   version names it) and agentsh's event store records the denial;
/// - a shimmed `echo NONCE` and an allowed external command (`uname -r`) work.
pub async fn readiness(ctx: &Ctx<'_>, conn: &Conn, observe: &Conn, artifact: &Artifact) -> Result<String> {
    let v = check_logged(ctx, observe, "agentsh --version 2>&1", QUICK).await?;
    let version = parse_version_output(&v).with_context(|| format!("cannot read agentsh's version from {v:?}"))?;
    if crate::agentsh::Spec::parse(&format!("v{}", artifact.version)).is_ok() && version != artifact.version {
        bail!("the target runs agentsh {version}, but {} was installed", artifact.version);
    }
    let facts = super::versions::facts(&version)?;

    // detect prints on stderr through v0.19.1 and on stdout after: take both.
    let detect = run_logged(ctx, observe, "agentsh detect -o json 2>&1", QUICK).await?;
    let json = crate::text::first_json(&detect.stdout).context("agentsh detect -o json printed no JSON")?;
    std::fs::write(ctx.dir.join("detect.json"), serde_json::to_vec_pretty(&json)?)?;

    check_logged(ctx, observe, "cmp -s /bin/bash /usr/bin/agentsh-shell-shim && test -x /bin/bash.real", QUICK)
        .await
        .context("/bin/bash is not the agentsh shell shim")?;

    let since = check_logged(ctx, observe, "date +%s%N", QUICK).await?;
    let since: i64 = since.trim().parse().with_context(|| format!("target clock: {since:?}"))?;
    // Positive control: ungoverned, the probe runs and prints its marker, so a denial on the
    // test channel is agentsh's doing and the marker check can fire. Read by the observer's own
    // bash: its `#!/bin/sh` would go through the shim (sh is shimmed too).
    let control = check_logged(ctx, observe, &format!("{OBSERVER_SHELL} /usr/local/bin/{PROBE_COMMAND}"), QUICK)
        .await
        .context("the probe's positive control")?;
    if !control.contains(PROBE_MARKER) {
        bail!("ungoverned, `{PROBE_COMMAND}` printed {control:?}, not {PROBE_MARKER}: its denial would prove nothing");
    }
    probe_denied(ctx, conn, facts).await?;
    probe_recorded(ctx, observe, since).await?;

    let nonce = format!("abench-ready-{:08x}", rand::random::<u32>());
    allowed(ctx, conn, &format!("echo {nonce}"), |out| out.trim() == nonce).await?;
    allowed(ctx, conn, "uname -r", |out| !out.trim().is_empty()).await?;
    Ok(version)
}

/// Readiness under the watchdog: when it fails because agentsh wedged (a command hung; see
/// `crate::watchdog`), the wedge is kept as a finding with its evidence, the server is recovered
/// and readiness runs again, up to [`WEDGE_RECOVERIES`] times. Any other failure stands.
pub async fn readiness_watched(ctx: &Ctx<'_>, conn: &Conn, observe: &Conn, artifact: &Artifact) -> Result<String> {
    let mut wedges = 0;
    loop {
        let err = match readiness(ctx, conn, observe, artifact).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(why) = crate::watchdog::check(conn, observe).await else { return Err(err) };
        if wedges == WEDGE_RECOVERIES {
            return Err(
                err.context(format!("agentsh wedged {} times during readiness (wedge-*.txt); last: {why}", wedges + 1))
            );
        }
        wedges += 1;
        ctx.log(&format!("readiness failed ({err:#}); agentsh is wedged: {why}"));
        let aborted = crate::watchdog::recover(observe, ctx.dir, wedges, &why)
            .await
            .context("recovering a wedged agentsh server")?;
        ctx.add_finding(
            "wedge",
            &format!("agentsh wedged during readiness ({why}); recovered ({aborted}); evidence in wedge-{wedges}.txt"),
        );
    }
}

const WEDGE_RECOVERIES: u32 = 2;

/// A finding of readiness: kept in the target's folder with the command's output, and logged.
fn finding(ctx: &Ctx<'_>, kind: &str, file: &str, cmd: &str, what: &str) {
    ctx.log(&format!("FINDING {kind}: `{cmd}`: {what}"));
    let _ = std::fs::write(ctx.dir.join(file), format!("{kind}\n$ {cmd}\n{what}\n"));
    ctx.add_finding(kind, &format!("`{cmd}`: {}", super::first_line(what)));
}

/// The shimmed probe must be denied. It printing its marker is agentsh failing open: the target
/// is not hardened, at once. Anything else that is not a denial (a crash, a time-out) is retried.
async fn probe_denied(ctx: &Ctx<'_>, conn: &Conn, facts: &super::versions::Facts) -> Result<()> {
    let cmd = PROBE_COMMAND;
    let mut last = String::new();
    for i in 1..=TRIES {
        let out = match run_logged(ctx, conn, cmd, GOVERNED).await {
            Ok(o) => o,
            Err(e) => {
                finding(ctx, "probe-not-denied", &format!("probe-{i}.txt"), cmd, &format!("{e:#}"));
                return Err(e);
            }
        };
        if out.stdout.contains(PROBE_MARKER) {
            finding(ctx, "enforcement-failed-open", &format!("probe-ran-{i}.txt"), cmd, &out.describe());
            bail!(
                "the shimmed `{cmd}` RAN although rule {PROBE_RULE} denies it (agentsh failed open): {}",
                out.describe()
            );
        }
        let named =
            out.stderr.contains(&format!("rule={PROBE_RULE}")) || out.stdout.contains(&format!("rule={PROBE_RULE}"));
        if out.code == Some(126) && (named || !facts.shim_denial_names_rule) {
            return Ok(());
        }
        last = out.describe();
        let want =
            if facts.shim_denial_names_rule { format!("exit 126 naming rule={PROBE_RULE}") } else { "exit 126".into() };
        finding(ctx, "probe-not-denied", &format!("probe-{i}.txt"), cmd, &format!("expected {want}; got {last}"));
    }
    bail!("the shimmed `{cmd}` was not denied by rule {PROBE_RULE} in {TRIES} tries; last: {last}")
}

/// agentsh's own record of the probe's denial, from its event store (read on the observation
/// channel). A denial the shim reports but agentsh never recorded would leave the suite without
/// evidence, so it fails readiness.
async fn probe_recorded(ctx: &Ctx<'_>, observe: &Conn, since_ns: i64) -> Result<()> {
    let db = ctx.setup.assets.events_db();
    let script = format!(
        "import sqlite3, json\n\
         db = sqlite3.connect('file:{db}?mode=ro', uri=True, timeout=10)\n\
         rows = db.execute(\"SELECT type, policy_decision, effective_decision, policy_rule, payload_json FROM events \
         WHERE ts_unix_ns >= ? AND (policy_rule = ? OR payload_json LIKE ?)\", ({since_ns}, '{PROBE_RULE}', '%{PROBE_COMMAND}%')).fetchall()\n\
         print(json.dumps(rows))\n"
    );
    // The server writes events asynchronously: give it a few seconds.
    let mut rows = Vec::new();
    let mut found = false;
    for _ in 0..10 {
        let out =
            check_logged(ctx, observe, &format!("python3 -c {}", crate::control::shell_quote(&script)), QUICK).await?;
        rows = serde_json::from_str::<Vec<Vec<serde_json::Value>>>(out.trim())
            .with_context(|| format!("reading {db}: {}", out.trim()))?;
        found = rows.iter().any(|r| is_probe_denial(r));
        if found {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    std::fs::write(ctx.dir.join("probe-events.json"), serde_json::to_vec_pretty(&rows)?)?;
    if !found {
        bail!(
            "agentsh's event store {db} has no denial of {PROBE_COMMAND} by rule {PROBE_RULE} ({} related events, in probe-events.json)",
            rows.len()
        );
    }
    Ok(())
}

/// A row (type, policy_decision, effective_decision, policy_rule, payload) that records the probe
/// denied by its rule. Where the decision sits differs: a precheck denial fills the columns; a
/// ptrace execve denial (v0.16.9) leaves them empty and puts `decision` and `rule` in the
/// payload's `fields`.
fn is_probe_denial(row: &[serde_json::Value]) -> bool {
    let s = |i: usize| row.get(i).and_then(|v| v.as_str()).unwrap_or("");
    if s(3) == PROBE_RULE && (s(2) == "deny" || s(1) == "deny") {
        return true;
    }
    let payload: serde_json::Value = serde_json::from_str(s(4)).unwrap_or_default();
    let f = &payload["fields"];
    f["rule"] == PROBE_RULE && f["decision"] == "deny"
}

/// A command the policy allows must run and print what `good` accepts; a failed try is a finding
/// and is retried.
async fn allowed(ctx: &Ctx<'_>, conn: &Conn, cmd: &str, good: impl Fn(&str) -> bool) -> Result<()> {
    let mut last = String::new();
    for i in 1..=TRIES {
        let file = format!("allowed-failed-{}-{i}.txt", file_word(cmd));
        last = match run_logged(ctx, conn, cmd, GOVERNED).await {
            Ok(out) if out.ok() && good(&out.stdout) => return Ok(()),
            Ok(out) => out.describe(),
            Err(e) => {
                // A command that hangs is no flake to retry: the watchdog decides (see
                // readiness_watched) whether agentsh is wedged.
                finding(ctx, "allowed-command-failed", &file, cmd, &format!("{e:#}"));
                return Err(e);
            }
        };
        finding(ctx, "allowed-command-failed", &file, cmd, &last);
    }
    bail!("the shimmed `{cmd}` did not run as expected in {TRIES} tries; last: {last}")
}

fn file_word(cmd: &str) -> String {
    cmd.split_whitespace().next().unwrap_or("cmd").chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// The baseline (`--agentsh none`): commands run, and no agentsh is present to skew it.
pub async fn readiness_without_agentsh(ctx: &Ctx<'_>, conn: &Conn, observe: &Conn) -> Result<()> {
    let nonce = format!("abench-ready-{:08x}", rand::random::<u32>());
    let out = check_logged(ctx, conn, &format!("echo {nonce}"), QUICK).await?;
    if out.trim() != nonce {
        bail!("`echo {nonce}` printed {out:?}");
    }
    let uid = check_logged(ctx, observe, "id -u", QUICK).await?;
    if uid.trim() != "0" {
        bail!("observer channel runs as uid {uid:?}, not 0");
    }
    let agentsh = run_logged(ctx, observe, "command -v agentsh", QUICK).await?;
    if agentsh.ok() {
        bail!("--agentsh none, but the target has agentsh at {}", agentsh.stdout.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_denials_are_read_from_columns_or_payload() {
        use serde_json::json;
        let col = vec![json!("command_policy"), json!("deny"), json!("deny"), json!(PROBE_RULE), json!("{}")];
        assert!(is_probe_denial(&col));
        let payload = json!({"fields": {"decision": "deny", "rule": PROBE_RULE}}).to_string();
        assert!(is_probe_denial(&[json!("ptrace_execve"), json!(null), json!(null), json!(null), json!(payload)]));
        let allowed = json!({"fields": {"decision": "allow", "rule": PROBE_RULE}}).to_string();
        assert!(!is_probe_denial(&[json!("ptrace_execve"), json!(null), json!(null), json!(null), json!(allowed)]));
        let other =
            vec![json!("command_policy"), json!("deny"), json!("deny"), json!("block-shell-escape"), json!("{}")];
        assert!(!is_probe_denial(&other));
    }

    #[test]
    fn json_is_found_among_log_lines() {
        let v = crate::text::first_json("2026/01/01 00:00:00 warn x\n{\"security_mode\":\"full\"}\ntrailer").unwrap();
        assert_eq!(v["security_mode"], "full");
        assert!(crate::text::first_json("no json").is_none());
    }
}

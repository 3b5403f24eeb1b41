//! The SSH layer (Jepsen's "control"): one multiplexed openssh session per target and channel,
//! per-command timeouts, connection retries with backoff, uploads streamed over stdin (exe.dev has
//! no scp), and at most [`MAX_CHANNELS`] commands in flight per connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// OpenSSH's MaxSessions is 10 and channel teardown is asynchronous; Jepsen settled on ~6.
pub const MAX_CHANNELS: usize = 6;

/// How to reach one target: an ssh config file that defines `alias` (HostName, User, key,
/// ProxyCommand...). Everything the provider knows about reaching a host lives in that file, so a
/// user can `ssh -F FILE ALIAS` by hand to see exactly what the harness sees.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SshDest {
    pub config_file: PathBuf,
    pub alias: String,
}

impl SshDest {
    /// The command line a person would type to reach this target.
    pub fn hint(&self) -> String {
        format!("ssh -F {} {}", self.config_file.display(), self.alias)
    }
}

#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// None when the remote command was killed by a signal or the exit status was lost.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for error messages: the part a person needs to see why a step failed.
    pub fn describe(&self) -> String {
        let code = self.code.map_or("killed".to_string(), |c| c.to_string());
        let mut s = format!("exit {code}");
        for (name, text) in [("stderr", &self.stderr), ("stdout", &self.stdout)] {
            let t = text.trim();
            if !t.is_empty() {
                s.push_str(&format!("; {name}: {}", tail(t, 1200)));
            }
        }
        s
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// An open connection to one target.
#[derive(Clone)]
pub struct Conn {
    name: String,
    session: Arc<Session>,
    channels: Arc<Semaphore>,
}

impl Conn {
    /// Connects, retrying with exponential backoff: a target that was just created may need a
    /// moment before sshd answers, and exe.dev VMs take seconds to boot.
    pub async fn connect(name: &str, dest: &SshDest, control_dir: &Path, attempts: u32) -> Result<Conn> {
        std::fs::create_dir_all(control_dir)
            .with_context(|| format!("creating control directory {}", control_dir.display()))?;
        let mut builder = SessionBuilder::default();
        builder
            .config_file(&dest.config_file)
            .control_directory(control_dir)
            .known_hosts_check(KnownHosts::Accept)
            .connect_timeout(Duration::from_secs(20))
            .server_alive_interval(Duration::from_secs(15));
        let mut delay = Duration::from_millis(200);
        let mut last = None;
        for attempt in 1..=attempts.max(1) {
            match builder.connect_mux(&dest.alias).await {
                Ok(session) => {
                    return Ok(Conn {
                        name: name.to_string(),
                        session: Arc::new(session),
                        channels: Arc::new(Semaphore::new(MAX_CHANNELS)),
                    });
                }
                Err(e) => {
                    tracing::debug!(target = name, attempt, error = %e, "ssh connect failed");
                    last = Some(e);
                    if attempt < attempts {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        let e = last.map_or_else(|| anyhow!("no attempt made"), anyhow::Error::from);
        Err(e.context(format!("cannot reach {name} over ssh after {attempts} attempts ({})", dest.hint())))
    }

    /// The name given at connection (`TARGET` or `TARGET/observe`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cmd` through the remote login shell (exactly what `ssh host 'cmd'` does). Errors only
    /// when the transport fails or the timeout passes; a non-zero exit is a normal [`CmdOutput`].
    pub async fn run(&self, cmd: &str, timeout: Duration) -> Result<CmdOutput> {
        self.run_with_stdin(cmd, None, timeout).await
    }

    pub async fn run_with_stdin(&self, cmd: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<CmdOutput> {
        let _permit = self.channels.acquire().await.context("channel limiter closed")?;
        let start = Instant::now();
        let fut = async {
            let mut command = self.session.raw_command(cmd);
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
            let mut child = command.spawn().await?;
            if let Some(data) = stdin {
                let mut pipe = child.stdin().take().ok_or_else(|| anyhow!("stdin pipe missing"))?;
                pipe.write_all(data).await.context("streaming stdin")?;
                pipe.shutdown().await.context("closing stdin")?;
                drop(pipe);
            }
            // Read the pipes ourselves and wait apart: openssh's `wait_with_output` turns exit
            // 127 into an error and drops the output with it, and 127 ("command not found", or a
            // shell's refusal to exec) is an outcome the suite must see, stderr included.
            let (mut out_pipe, mut err_pipe) = (child.stdout().take(), child.stderr().take());
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let read_out = async {
                if let Some(p) = out_pipe.as_mut() {
                    p.read_to_end(&mut stdout).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let read_err = async {
                if let Some(p) = err_pipe.as_mut() {
                    p.read_to_end(&mut stderr).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let (a, b) = tokio::join!(read_out, read_err);
            a.context("reading stdout")?;
            b.context("reading stderr")?;
            let code = match child.wait().await {
                Ok(status) => status.code(),
                Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Some(127),
                Err(openssh::Error::RemoteProcessTerminated) => None,
                Err(e) => return Err(e.into()),
            };
            Ok::<_, anyhow::Error>((code, stdout, stderr))
        };
        let (code, stdout, stderr) = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("{}: `{}` timed out after {:?}", self.name, short(cmd), timeout))?
            .with_context(|| format!("{}: ssh transport failed running `{}`", self.name, short(cmd)))?;
        Ok(CmdOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: start.elapsed(),
        })
    }

    /// Runs `cmd` with `stdin`, handing each stdout line to `on_line` as it arrives (the driver's
    /// records); stderr is collected. Returns the exit status and stderr (stdout left empty), and
    /// whether `stop` turned true first: then the channel is closed (the remote side sees its
    /// stdout go away) and what was read so far stands.
    pub async fn stream(
        &self,
        cmd: &str,
        stdin: &[u8],
        timeout: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut on_line: impl FnMut(&str) -> Result<()>,
    ) -> Result<(CmdOutput, bool)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
        let _permit = self.channels.acquire().await.context("channel limiter closed")?;
        let start = Instant::now();
        let fut = async {
            let mut command = self.session.raw_command(cmd);
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().await?;
            let mut pipe = child.stdin().take().ok_or_else(|| anyhow!("stdin pipe missing"))?;
            pipe.write_all(stdin).await.context("streaming stdin")?;
            pipe.shutdown().await?;
            drop(pipe);
            let mut err_pipe = child.stderr().take().ok_or_else(|| anyhow!("stderr pipe missing"))?;
            let stderr_task = tokio::spawn(async move {
                let mut s = String::new();
                let _ = err_pipe.read_to_string(&mut s).await;
                s
            });
            let out_pipe = child.stdout().take().ok_or_else(|| anyhow!("stdout pipe missing"))?;
            let mut lines = BufReader::new(out_pipe).lines();
            // A dropped sender means nobody will ask to stop: wait forever, not stop at once.
            let stopped = async {
                if stop.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    line = lines.next_line() => match line.context("reading remote stdout")? {
                        Some(l) => on_line(&l)?,
                        None => break,
                    },
                    _ = &mut stopped => {
                        stderr_task.abort();
                        let _ = child.disconnect().await;
                        return Ok::<_, anyhow::Error>((None, String::new(), true));
                    }
                }
            }
            let status = child.wait().await?;
            let stderr = stderr_task.await.unwrap_or_default();
            Ok((status.code(), stderr, false))
        };
        let (code, stderr, stopped) = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| anyhow!("{}: `{}` timed out after {:?}", self.name, short(cmd), timeout))??;
        Ok((CmdOutput { code, stdout: String::new(), stderr, elapsed: start.elapsed() }, stopped))
    }

    /// Writes `data` to `path` atomically (temp file + rename) by streaming it over stdin, so it
    /// works where there is no scp/sftp. The parent directory is created.
    pub async fn upload(&self, data: &[u8], path: &str, mode: u32, timeout: Duration) -> Result<()> {
        let q = shell_quote(path);
        let cmd = format!(
            "set -e; mkdir -p \"$(dirname {q})\"; cat > {q}.abench-tmp; chmod {mode:o} {q}.abench-tmp; mv -f {q}.abench-tmp {q}"
        );
        let out = self.run_with_stdin(&cmd, Some(data), timeout).await?;
        if !out.ok() {
            bail!("upload of {} bytes to {path} failed: {}", data.len(), out.describe());
        }
        Ok(())
    }
}

/// Single-quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    shell_escape::unix::escape(s.into()).into_owned()
}

fn short(cmd: &str) -> String {
    let one_line = cmd.replace('\n', " ");
    if one_line.len() > 80 {
        let mut end = 80;
        while !one_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &one_line[..end])
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_exit_and_streams() {
        let out = CmdOutput { code: Some(126), stdout: "".into(), stderr: "denied\n".into(), elapsed: Duration::ZERO };
        assert_eq!(out.describe(), "exit 126; stderr: denied");
        let killed = CmdOutput { code: None, stdout: "x".into(), stderr: "".into(), elapsed: Duration::ZERO };
        assert_eq!(killed.describe(), "exit killed; stdout: x");
    }

    #[test]
    fn quoting_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn tail_respects_char_boundaries() {
        let s = "é".repeat(1000);
        assert!(tail(&s, 7).chars().all(|c| c == 'é'));
    }
}

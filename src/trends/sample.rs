//! The sampler: one background task that, every interval, runs one shell script on every target
//! at once over its observation channel and appends what it prints to `trends-samples.csv`.
//!
//! A sample that fails (ssh error, no answer within [`LIMIT`]) is logged and skipped, never
//! fatal: a soak goes on through a dropped connection or a stalled target, and the next sample
//! reconnects. A target stops being sampled when the caller forgets it (a fault destroyed it) or
//! after [`GONE_AFTER`] failures in a row (5 minutes at the default 30 s: a dropped ssh link or a
//! restarted server heals well within that; a target that is gone never does).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::control::{Conn, SshDest};

/// One sample's time limit, connecting included: a target that cannot answer a few `cat`s of
/// /proc in 20 s is stalled, and waiting longer would only delay the next round.
const LIMIT: Duration = Duration::from_secs(20);
/// Failures in a row after which a target is taken for gone.
const GONE_AFTER: u32 = 10;

const SCRIPT: &str = include_str!("../../assets/scripts/trends-sample.sh");

/// The script with the harness's names filled in.
pub fn script(events_db: &str) -> String {
    let known: Vec<String> = super::KNOWN.iter().map(|k| format!("({k})")).collect();
    SCRIPT
        .replace("@SERVER@", crate::watchdog::AGENTSH_SERVER)
        .replace("@API@", crate::target::API)
        .replace("'@EVENTS_DB@'", &crate::control::shell_quote(events_db))
        .replace("@MARK@", crate::target::OBSERVER_SHELL)
        .replace("@MIN_AGE@", &super::MIN_AGE.as_secs().to_string())
        .replace("@KNOWN@", &known.join("|"))
}

/// The `series value` lines of the script's output that name a known series with a finite
/// number; anything else is logged and left out (one odd line must not cost the sample).
pub fn parse(target: &str, stdout: &str) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            tracing::debug!(target, line, "trends: not a `series value` line");
            continue;
        };
        let series = super::SERIES.iter().map(|(s, _)| *s).chain([super::SERVER_UP]).find(|s| *s == key);
        match (series, value.parse::<f64>()) {
            (Some(series), Ok(v)) if v.is_finite() => out.push((series, v)),
            _ => tracing::debug!(target, line, "trends: unknown series or not a number"),
        }
    }
    out
}

/// A target to sample: its name (the `target` column) and its observation channel.
pub struct Probe {
    pub name: String,
    pub observe: SshDest,
}

/// A running sampler. Dropped without [`Sampling::finish`], it still takes its last sample and
/// ends on its own.
pub struct Sampling {
    stop: tokio::sync::watch::Sender<bool>,
    forgotten: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Sampling {
    /// Starts sampling every target in `targets` every `every` (the first sample at once) into
    /// `run_dir/trends-samples.csv` (appended to; the header is written when the file is new),
    /// `t_s` counted from `t0`. Checks `scenarios/trends.toml` first, so that a malformed file
    /// fails the run now, not after hours of soak. Needs the tokio runtime; reconnects to each
    /// target's observation channel in `control_dir`; `events_db` is agentsh's event store
    /// (`job::Provisioned::events_db`).
    pub fn start(
        targets: &[crate::provision::Ready],
        control_dir: &Path,
        events_db: &str,
        every: Duration,
        run_dir: &crate::results::RunDir,
        t0: Instant,
    ) -> Result<Sampling> {
        let probes =
            targets.iter().map(|r| Probe { name: r.target.name.clone(), observe: r.target.observe.clone() }).collect();
        Sampling::start_on(probes, control_dir, events_db, every, &run_dir.trends_samples_csv(), t0)
    }

    /// [`Sampling::start`] on observation channels given as such, into `file`.
    pub fn start_on(
        probes: Vec<Probe>,
        control_dir: &Path,
        events_db: &str,
        every: Duration,
        file: &Path,
        t0: Instant,
    ) -> Result<Sampling> {
        crate::analyze::trends::load(&crate::analyze::trends::default_path())?;
        let runtime = tokio::runtime::Handle::try_current().context("the trend sampler needs the async runtime")?;
        let out = SamplesCsv::open(file)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let forgotten = Arc::new(Mutex::new(BTreeSet::new()));
        let watched = probes.into_iter().map(|p| Watched { probe: p, conn: None, failures: 0 }).collect();
        let task = runtime.spawn(run(Loop {
            watched,
            script: script(events_db),
            every: every.max(Duration::from_millis(100)),
            control_dir: control_dir.to_path_buf(),
            out,
            t0,
            forgotten: forgotten.clone(),
            stopped,
        }));
        Ok(Sampling { stop, forgotten, task })
    }

    /// Stops sampling `name` (a target the run destroyed): from now on none of its samples is
    /// written, one in flight included.
    pub fn forget(&self, name: &str) {
        if let Ok(mut f) = self.forgotten.lock() {
            f.insert(name.to_string());
        }
    }

    /// Stops the sampler after one last sample of every target still sampled; the file is
    /// flushed when this resolves. Errors only when the file could not be written.
    pub async fn finish(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(|e| anyhow!("the trend sampler panicked: {e}"))?
    }
}

/// `trends-samples.csv`, appended row by row and flushed after every round.
struct SamplesCsv {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl SamplesCsv {
    fn open(path: &Path) -> Result<SamplesCsv> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let new = file.metadata().with_context(|| format!("reading {}", path.display()))?.len() == 0;
        let mut w = SamplesCsv { path: path.to_path_buf(), writer: csv::WriterBuilder::new().from_writer(file) };
        if new {
            w.writer.write_record(crate::analyze::trends::SAMPLE_COLUMNS).context("writing the header")?;
            w.flush()?;
        }
        Ok(w)
    }

    fn row(&mut self, t_s: f64, target: &str, series: &str, value: f64) -> Result<()> {
        self.writer
            .write_record([format!("{t_s:.3}").as_str(), target, series, &value.to_string()])
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush().with_context(|| format!("writing {}", self.path.display()))
    }
}

struct Watched {
    probe: Probe,
    /// Dropped after a failure: a mux master whose link died stays dead, so the next sample
    /// connects anew.
    conn: Option<Conn>,
    failures: u32,
}

struct Loop {
    watched: Vec<Watched>,
    script: String,
    every: Duration,
    control_dir: PathBuf,
    out: SamplesCsv,
    t0: Instant,
    forgotten: Arc<Mutex<BTreeSet<String>>>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Loop {
    fn is_forgotten(&self, name: &str) -> bool {
        self.forgotten.lock().map(|f| f.contains(name)).unwrap_or(false)
    }
}

async fn run(mut l: Loop) -> Result<()> {
    let mut ticker = tokio::time::interval(l.every);
    // A round slower than the interval (a stalled target) delays the next one; no burst after.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            // A dropped sender is a stop too: nobody will ask any more.
            _ = l.stopped.wait_for(|s| *s) => true,
        };
        let forgotten: Vec<usize> =
            (0..l.watched.len()).filter(|&i| l.is_forgotten(&l.watched[i].probe.name)).collect();
        for i in forgotten.into_iter().rev() {
            tracing::info!(target = l.watched[i].probe.name, "trends: target forgotten, no longer sampled");
            l.watched.remove(i);
        }
        let (script, control_dir, t0) = (&l.script, &l.control_dir, l.t0);
        let samples = futures::future::join_all(l.watched.iter_mut().map(|w| one(w, script, control_dir, t0))).await;
        for (w, sample) in l.watched.iter().zip(&samples) {
            let Some((t_s, values)) = sample else { continue };
            if l.is_forgotten(&w.probe.name) {
                continue;
            }
            for (series, value) in values {
                l.out.row(*t_s, &w.probe.name, series, *value)?;
            }
        }
        l.out.flush()?;
        l.watched.retain(|w| {
            let gone = w.failures >= GONE_AFTER;
            if gone {
                tracing::warn!(
                    target = w.probe.name,
                    failures = w.failures,
                    "trends: target unreachable, no longer sampled"
                );
            }
            !gone
        });
        if last {
            return Ok(());
        }
    }
}

/// One sample of one target: (t_s, values), or None after logging why not.
async fn one(
    w: &mut Watched,
    script: &str,
    control_dir: &Path,
    t0: Instant,
) -> Option<(f64, Vec<(&'static str, f64)>)> {
    let t_s = t0.elapsed().as_secs_f64();
    let name = w.probe.name.clone();
    let attempt = tokio::time::timeout(LIMIT, async {
        if w.conn.is_none() {
            let label = format!("{name}/observe");
            w.conn = Some(Conn::connect(&label, &w.probe.observe, control_dir, 2).await?);
        }
        let conn = w.conn.as_ref().ok_or_else(|| anyhow!("no connection"))?;
        conn.run(script, LIMIT).await
    })
    .await
    .unwrap_or_else(|_| Err(anyhow!("no answer within {LIMIT:?}")));
    match attempt {
        Ok(out) => {
            w.failures = 0;
            if !out.ok() {
                tracing::warn!(target = name, "trends: the sampling script failed: {}", out.describe());
            }
            let values = parse(&name, &out.stdout);
            if values.is_empty() {
                tracing::warn!(target = name, "trends: a sample without values: {}", out.describe());
                return None;
            }
            Some((t_s, values))
        }
        Err(e) => {
            w.conn = None;
            w.failures += 1;
            tracing::warn!(target = name, failures = w.failures, "trends: sample skipped: {e:#}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_known_series_with_numbers_and_nothing_else() {
        let out = "server_up 1\nserver_rss_kb 51234\nserver_threads 17\n  server_fds 42  \n\
                   fuse_mounts 0\nsessions 3\nevent_store_bytes 1.5e6\nlog_bytes 9000\nleftover_procs 0\n";
        let got = parse("t", out);
        assert_eq!(
            got,
            vec![
                ("server_up", 1.0),
                ("server_rss_kb", 51234.0),
                ("server_threads", 17.0),
                ("server_fds", 42.0),
                ("fuse_mounts", 0.0),
                ("sessions", 3.0),
                ("event_store_bytes", 1_500_000.0),
                ("log_bytes", 9000.0),
                ("leftover_procs", 0.0),
            ]
        );
    }

    #[test]
    fn parse_skips_noise_bad_numbers_and_unknown_series() {
        let out = "jq: error: not a list\nsessions\nsessions x\nserver_fds NaN\nserver_fds inf\n\
                   rss 12\nserver_rss_kb 10 kB\n\nserver_threads 4\n";
        assert_eq!(parse("t", out), vec![("server_threads", 4.0)]);
        assert!(parse("t", "").is_empty());
    }

    #[test]
    fn the_script_has_every_placeholder_filled_and_quotes_the_store() {
        let s = script("/var/lib/agent sh/events.db");
        let left = s.match_indices('@').any(|(i, _)| s[i + 1..].starts_with(|c: char| c.is_ascii_uppercase()));
        assert!(!left, "a placeholder left: {s}");
        assert!(s.contains("db='/var/lib/agent sh/events.db'"));
        assert!(s.contains(crate::watchdog::AGENTSH_SERVER));
        assert!(s.contains("http://127.0.0.1:18080/api/v1/sessions"));
        assert!(s.contains("-v min_age='90'"));
        // Every series the analysis judges is printed by the script.
        for (series, _) in crate::trends::SERIES {
            assert!(s.contains(&format!("\"{series} ")) || s.contains(&format!("\"{series}\"")), "{series}");
        }
        assert!(!crate::trends::KNOWN.iter().any(|k| k.contains('\\') || k.contains('\'')), "awk -v and '' safe");
    }

    /// The script run by the host's bash (no agentsh here): whatever it finds, every line it
    /// prints parses, the parts that need no agentsh are present, and a server-less host says so.
    #[test]
    fn the_script_runs_and_its_output_parses() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        std::fs::write(&db, vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("events.db-wal"), vec![0u8; 24]).unwrap();
        let o = std::process::Command::new("bash").arg("-c").arg(script(db.to_str().unwrap())).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
        let values = parse("host", &stdout);
        assert_eq!(values.len(), stdout.lines().count(), "every line parses: {stdout}");
        assert!(values.contains(&("event_store_bytes", 1024.0)), "{stdout}");
        assert!(values.iter().any(|(s, v)| *s == "leftover_procs" && *v >= 0.0), "{stdout}");
        let up = values.iter().find(|(s, _)| *s == "server_up").map(|(_, v)| *v);
        assert!(up == Some(0.0) || up == Some(1.0), "{stdout}");
        if up == Some(0.0) {
            assert!(!values.iter().any(|(s, _)| s.starts_with("server_") && *s != "server_up"), "{stdout}");
        }
    }

    #[tokio::test]
    async fn the_samples_file_gets_one_header_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trends-samples.csv");
        for t in [1.0, 2.5] {
            let mut w = SamplesCsv::open(&path).unwrap();
            w.row(t, "t-0", "server_fds", 12.0).unwrap();
            w.flush().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "t_s,target,series,value\n1.000,t-0,server_fds,12\n2.500,t-0,server_fds,12\n");
    }

    /// A target that cannot be reached is skipped, not fatal; finish still ends and flushes.
    #[tokio::test]
    async fn an_unreachable_target_is_skipped_and_finish_ends() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, "Host nowhere\n  HostName 127.0.0.1\n  Port 1\n  ConnectTimeout 1\n").unwrap();
        let probe = Probe { name: "gone".into(), observe: SshDest { config_file: config, alias: "nowhere".into() } };
        let file = dir.path().join("trends-samples.csv");
        let s = Sampling::start_on(
            vec![probe],
            &dir.path().join("ctl"),
            "/x.db",
            Duration::from_millis(200),
            &file,
            Instant::now(),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::time::timeout(Duration::from_secs(60), s.finish()).await.expect("finish ends").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "t_s,target,series,value\n");
    }
}

//! The on-target driver (`agentsh-bench driver`, hidden): reads a [`Plan`] on stdin, runs it on
//! this machine at a controlled rate, and streams [`Record`]s on stdout.
//!
//! Three kinds of thread: one **dispatcher** computes intended start times itself (wrk2's lesson:
//! no timer that bursts to catch up) and queues jobs; **workers** run them; the **recorder** (the
//! calling thread) keeps one response-time and one service-time histogram per op for the current
//! interval only, so memory stays flat however long the run.

mod fixture;
mod governed;
mod ops;

pub use governed::refusal_in;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel as chan;

use crate::schema::{self, Finished, Interval, IntervalCounts, Load, Plan, Record};

/// A queued operation.
struct Job {
    op: usize,
    intended: Instant,
}

/// A finished operation, as the recorder sees it.
pub struct Done {
    op: usize,
    intended: Instant,
    started: Instant,
    ended: Instant,
    outcome: ops::Outcome,
}

pub fn main() -> Result<()> {
    let plan: Plan = serde_json::from_reader(std::io::stdin().lock()).context("reading the plan from stdin")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = run(&plan, &mut out) {
        let _ = emit(&mut out, &Record::Fatal { message: format!("{e:#}") });
        return Err(e);
    }
    Ok(())
}

fn emit(out: &mut impl Write, r: &Record) -> Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    out.write_all(b"\n")?;
    // One record per line, flushed: the controller sees each interval as it closes.
    out.flush()?;
    Ok(())
}

/// The controller validates plans when it loads them; the driver checks again what would make it
/// panic, since anything can be piped into it.
fn check(plan: &Plan) -> Result<()> {
    anyhow::ensure!(!plan.ops.is_empty(), "the plan has no ops");
    anyhow::ensure!(plan.ops.iter().all(|o| o.weight > 0), "an op has weight 0");
    if let Load::Rate { ops_per_s, .. } = plan.load {
        anyhow::ensure!(ops_per_s.is_finite() && ops_per_s > 0.0, "rate must be a positive number, not {ops_per_s}");
    }
    for o in &plan.ops {
        if let schema::OpKind::Exec { argv, .. } = &o.kind {
            anyhow::ensure!(!argv.is_empty() && !argv[0].is_empty(), "op {}: exec needs a program", o.name);
        }
    }
    Ok(())
}

pub fn run(plan: &Plan, out: &mut impl Write) -> Result<()> {
    check(plan)?;
    let fixture = fixture::Fixture::start().context("starting the loopback fixture")?;
    let runner = ops::Runner::new(plan, fixture.port())?;
    let workers = plan.load.workers().max(1);
    let t0 = Instant::now();
    let epoch_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    emit(out, &Record::Started { epoch_ms, ops: plan.ops.iter().map(|o| o.name.clone()).collect(), workers })?;

    let measure_from = t0 + Duration::from_millis(plan.warmup_ms);
    let end = measure_from + Duration::from_millis(plan.duration_ms);
    let (done_tx, done_rx) = chan::bounded::<Done>(4096);

    std::thread::scope(|s| -> Result<()> {
        let runner = &runner;
        match plan.load {
            Load::Rate { ops_per_s, .. } => {
                // The queue is unbounded on purpose: when workers fall behind, jobs wait and their
                // response time grows from the intended start, which is what must be seen.
                let (job_tx, job_rx) = chan::unbounded::<Job>();
                let weights: Vec<u32> = plan.ops.iter().map(|o| o.weight).collect();
                let spin = spin_for(ops_per_s);
                s.spawn(move || dispatch(&weights, ops_per_s, t0, end, job_tx));
                for w in 0..workers {
                    let (rx, tx) = (job_rx.clone(), done_tx.clone());
                    s.spawn(move || {
                        precise_sleeps();
                        for job in rx {
                            // Jobs arrive up to LEAD early, so waking this thread is not on the
                            // measured path; wait out the rest here.
                            wait_until(job.intended, spin);
                            let started = Instant::now();
                            let outcome = runner.run(job.op, w);
                            let _ = tx.send(Done {
                                op: job.op,
                                intended: job.intended,
                                started,
                                ended: Instant::now(),
                                outcome,
                            });
                        }
                    });
                }
            }
            Load::Concurrency { .. } => {
                for w in 0..workers {
                    let tx = done_tx.clone();
                    let weights: Vec<u32> = plan.ops.iter().map(|o| o.weight).collect();
                    s.spawn(move || {
                        let mut pick = Picker::new(&weights, w);
                        while Instant::now() < end {
                            let op = pick.next();
                            let started = Instant::now();
                            let outcome = runner.run(op, w);
                            let _ = tx.send(Done { op, intended: started, started, ended: Instant::now(), outcome });
                        }
                    });
                }
            }
        }
        drop(done_tx);
        record(plan, t0, measure_from, end, &done_rx, out)
    })
}

/// How early a job is handed to a worker, which then sleeps until the intended start itself:
/// waking a parked worker costs tens of microseconds, and that cost would otherwise land in every
/// response time.
const LEAD: Duration = Duration::from_micros(200);

/// Queues a job for each intended start time `t0 + i / rate` until `end`, [`LEAD`] ahead. It
/// sleeps until the next one is due and then queues everything due, so a late wake-up delays jobs
/// (and shows in their response times) but never drops or bunches the schedule.
fn dispatch(weights: &[u32], rate: f64, t0: Instant, end: Instant, tx: chan::Sender<Job>) {
    precise_sleeps();
    let mut pick = Picker::new(weights, 0);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut i: u32 = 0;
    let mut next = t0;
    loop {
        if next >= end {
            return;
        }
        let now = Instant::now() + LEAD;
        if next > now {
            std::thread::sleep(next - now);
            continue;
        }
        while next <= now && next < end {
            if tx.send(Job { op: pick.next(), intended: next }).is_err() {
                return;
            }
            i = i.wrapping_add(1);
            // From t0 each time, so rounding does not accumulate.
            next = t0 + period.mul_f64(f64::from(i));
            if i == 0 {
                return; // 2^32 ops: far beyond any plan; stop rather than wrap the schedule.
            }
        }
    }
}

/// Linux rounds a sleeping thread's wake-up up by its timer slack (50 µs by default) so that
/// wake-ups can be batched; a scheduler that means to start work at a given microsecond needs 1 ns.
fn precise_sleeps() {
    // SAFETY: prctl with an integer argument; it only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Even with 1 ns of slack a sleep overshoots by the VM's timer latency (tens of µs here), so the
/// last stretch before a start is spent spinning: up to [`MAX_SPIN`], and never more than 10% of
/// one core in all ([`spin_for`]), so that at high rates spinning does not eat the CPU the
/// operations need.
const MAX_SPIN: Duration = Duration::from_micros(60);

fn spin_for(ops_per_s: f64) -> Duration {
    MAX_SPIN.min(Duration::from_secs_f64(0.1 / ops_per_s.max(1.0)))
}

fn wait_until(t: Instant, spin: Duration) {
    let now = Instant::now();
    if t > now + spin {
        std::thread::sleep(t - now - spin);
    }
    while Instant::now() < t {
        std::hint::spin_loop();
    }
}

/// Smooth weighted round-robin (nginx's): every op gets exactly its share, evenly spread, with no
/// randomness to make two runs differ. `offset` staggers closed-loop workers.
struct Picker {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Picker {
    fn new(weights: &[u32], offset: usize) -> Picker {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w)).collect();
        let total = weights.iter().sum();
        let mut p = Picker { current: vec![0; weights.len()], weights, total };
        for _ in 0..offset % p.weights.len().max(1) {
            p.next();
        }
        p
    }

    fn next(&mut self) -> usize {
        let mut best = 0;
        for (i, w) in self.weights.iter().enumerate() {
            self.current[i] += w;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

/// The recorder's loop: counts each finished op into the open interval, closes intervals on
/// their boundaries, and after the end waits for stragglers before writing the totals.
fn record(
    plan: &Plan,
    t0: Instant,
    from: Instant,
    end: Instant,
    rx: &chan::Receiver<Done>,
    out: &mut impl Write,
) -> Result<()> {
    let interval = Duration::from_millis(plan.interval_ms.max(1));
    let mut rec = Recorder::new(plan, t0);
    let mut boundary = from + interval;
    let give_up = end + straggler_limit(plan);
    loop {
        if Instant::now() >= give_up {
            return abandon(plan, rec, boundary - interval, out);
        }
        // Past the end, only stragglers remain: wait for them without spinning.
        let deadline = if boundary <= end { boundary } else { Instant::now() + Duration::from_millis(100) };
        let msg = rx.recv_deadline(deadline);
        let now = Instant::now();
        match msg {
            Ok(d) => {
                // An op is reported in the interval in which it completes (as HdrHistogram's
                // interval recorders do), and only if it was meant to start in the measured window.
                if d.intended >= from && d.intended < end {
                    rec.add(d);
                }
            }
            Err(chan::RecvTimeoutError::Disconnected) => {
                // Everything is in: close the last interval if anything landed in it (a partial
                // one, or the stragglers that finished after the end).
                let start = boundary - interval;
                if rec.cur.iter().any(|c| c.count > 0) {
                    let len = now.saturating_duration_since(start).max(Duration::from_millis(1));
                    rec.flush(start, len, out)?;
                }
                break;
            }
            Err(chan::RecvTimeoutError::Timeout) => {}
        }
        while Instant::now() >= boundary && boundary <= end {
            rec.flush(boundary - interval, interval, out)?;
            boundary += interval;
        }
    }
    let mut finished = rec.finished;
    finished.measured_ms = plan.duration_ms;
    finished.samples = rec.samples;
    emit(out, &Record::Finished(finished))
}

/// How long past the end ops still running are waited for: the longest op time-out, and a
/// margin for the kill to land.
fn straggler_limit(plan: &Plan) -> Duration {
    let longest = plan
        .ops
        .iter()
        .map(|o| match &o.kind {
            schema::OpKind::Exec { timeout_ms, .. } | schema::OpKind::Governed { timeout_ms, .. } => *timeout_ms,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    Duration::from_millis(longest) + Duration::from_secs(10)
}

/// Ops that outlive every time-out are stuck where no signal reaches them: in the kernel, waiting
/// on a wedged agentsh's FUSE mount (docs/findings.md 1). The driver reports what it has, says
/// so in a sample, and exits without joining those workers (joining would hang it with them).
fn abandon(plan: &Plan, mut rec: Recorder, start: Instant, out: &mut impl Write) -> Result<()> {
    let now = Instant::now();
    if rec.cur.iter().any(|c| c.count > 0) {
        rec.flush(start, now.saturating_duration_since(start).max(Duration::from_millis(1)), out)?;
    }
    let mut finished = rec.finished;
    finished.measured_ms = plan.duration_ms;
    finished.samples = rec.samples;
    finished.samples.entry("(driver)".into()).or_default().push(format!(
        "stopped waiting for ops still running {:?} after the end: stuck in the kernel (a wedged agentsh?)",
        straggler_limit(plan)
    ));
    emit(out, &Record::Finished(finished))?;
    std::process::exit(0)
}

/// What the recorder keeps between boundaries: only the open interval per op (so memory stays
/// flat however long the run), the run's totals, and a few failure messages per op.
struct Recorder<'a> {
    plan: &'a Plan,
    t0: Instant,
    late_after: Duration,
    /// The open interval of each op, in plan order.
    cur: Vec<IntervalCounts>,
    finished: Finished,
    samples: BTreeMap<String, Vec<String>>,
}

impl<'a> Recorder<'a> {
    fn new(plan: &'a Plan, t0: Instant) -> Recorder<'a> {
        Recorder {
            plan,
            t0,
            late_after: Duration::from_micros(plan.late_after_us),
            cur: plan.ops.iter().map(|_| IntervalCounts::default()).collect(),
            finished: Finished::default(),
            samples: BTreeMap::new(),
        }
    }

    /// Counts one measured op into its open interval: its response time (from the intended
    /// start) and service time (from the actual start), whether it started late, how it failed.
    fn add(&mut self, d: Done) {
        self.finished.completed += 1;
        let st = &mut self.cur[d.op];
        st.count += 1;
        let resp = (d.ended - d.intended).as_micros().max(1) as u64;
        let svc = (d.ended - d.started).as_micros().max(1) as u64;
        let _ = st.response.record(resp);
        let _ = st.service.record(svc);
        if d.started.saturating_duration_since(d.intended) > self.late_after {
            st.late += 1;
        }
        let sample = match d.outcome {
            ops::Outcome::Ok => None,
            ops::Outcome::Wrong(why) => {
                st.wrong += 1;
                Some(format!("wrong: {why}"))
            }
            ops::Outcome::Error { kind, detail } => {
                *st.errors.entry(kind.to_string()).or_default() += 1;
                Some(format!("{kind}: {detail}"))
            }
        };
        if let Some(s) = sample {
            self.keep_sample(d.op, s);
        }
    }

    /// Keeps the first five failure messages per op: enough to say what went wrong, without the
    /// totals growing with the number of failures.
    fn keep_sample(&mut self, op: usize, s: String) {
        let v = self.samples.entry(self.plan.ops[op].name.clone()).or_default();
        if v.len() < 5 {
            v.push(s);
        }
    }

    /// Writes the open interval of every op (with the driver's own RSS, to show it stays flat)
    /// as one record each, then starts new ones.
    fn flush(&mut self, start: Instant, len: Duration, out: &mut impl Write) -> Result<()> {
        let rss = crate::procstat::current_rss() / 1024;
        for (spec, st) in self.plan.ops.iter().zip(self.cur.iter_mut()) {
            let counts = std::mem::take(st);
            let start_ms = (start - self.t0).as_millis() as u64;
            let r =
                Record::Interval(Interval::encode(spec.name.clone(), start_ms, len.as_millis() as u64, counts, rss)?);
            serde_json::to_writer(&mut *out, &r)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        if self.finished.rss_kb_first == 0 {
            self.finished.rss_kb_first = rss;
        }
        self.finished.rss_kb_last = rss;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_plans_are_refused_not_panicked_on() {
        let mut plan: Plan = serde_json::from_str(
            r#"{"name":"x","ops":[{"name":"n","weight":1,"kind":"noop"}],"load":{"rate":{"ops_per_s":0.0,"workers":1}},
                "duration_ms":10,"warmup_ms":0,"interval_ms":10,"late_after_us":1000,"workspace":"/tmp/abench-test-ws"}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(format!("{}", run(&plan, &mut out).unwrap_err()).contains("rate must be a positive"));
        plan.load = Load::Rate { ops_per_s: 1000.0, workers: 1 };
        plan.ops[0].kind = schema::OpKind::Exec { argv: vec![], expect: Default::default(), timeout_ms: 1 };
        assert!(format!("{}", run(&plan, &mut out).unwrap_err()).contains("exec needs a program"));
    }

    /// Open loop: exactly rate × duration ops are intended in the measured window, and all run,
    /// split by weight; warm-up ops are not reported.
    #[test]
    fn open_loop_runs_exactly_the_scheduled_ops() {
        let plan: Plan = serde_json::from_str(
            r#"{"name":"x","ops":[{"name":"a","weight":3,"kind":"noop"},{"name":"b","weight":1,"kind":"noop"}],
                "load":{"rate":{"ops_per_s":2000.0,"workers":2}},
                "duration_ms":300,"warmup_ms":100,"interval_ms":100,"late_after_us":1000,"workspace":"/tmp/abench-test-ws"}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        run(&plan, &mut out).unwrap();
        let records: Vec<Record> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(matches!(records.first(), Some(Record::Started { .. })));
        let Some(Record::Finished(f)) = records.last() else { panic!("no finished record") };
        assert_eq!(f.completed, 600, "2000/s × 0.3 s");
        let count = |op: &str| -> u64 {
            records
                .iter()
                .filter_map(|r| match r {
                    Record::Interval(i) if i.op == op => Some(i.count),
                    _ => None,
                })
                .sum()
        };
        assert_eq!((count("a"), count("b")), (450, 150));
        assert!(records.iter().all(|r| !matches!(r, Record::Interval(i) if i.start_ms < 100)), "warm-up reported");
    }

    #[test]
    fn picker_gives_exact_shares_evenly() {
        let mut p = Picker::new(&[5, 1, 2], 0);
        let seq: Vec<usize> = (0..8).map(|_| p.next()).collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 5);
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 1);
        assert_eq!(seq.iter().filter(|&&i| i == 2).count(), 2);
        // Evenly spread: op 0 never runs more than twice in a row with these weights.
        assert!(!seq.windows(3).any(|w| w == [0, 0, 0]), "{seq:?}");
    }
}

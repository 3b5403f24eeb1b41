//! What this process knows about itself from /proc, for the memory figures of soaks.

/// The peak of a memory series in its first and in its last `window_ms`, fed as it comes: a soak's
/// leak shows as a last window well above the first. Used for the driver's RSS (from its
/// interval records) and the controller's (sampled by the benches), so both are judged alike.
#[derive(Debug, Clone)]
pub struct PeakWindows {
    window_ms: u64,
    origin: Option<u64>,
    first: u64,
    last: std::collections::VecDeque<(u64, u64)>,
}

impl PeakWindows {
    pub fn new(window_ms: u64) -> PeakWindows {
        PeakWindows { window_ms, origin: None, first: 0, last: Default::default() }
    }

    /// A value seen at `at_ms` (any clock, as long as it does not go back).
    pub fn add(&mut self, at_ms: u64, value: u64) {
        let origin = *self.origin.get_or_insert(at_ms);
        if at_ms < origin + self.window_ms {
            self.first = self.first.max(value);
        }
        self.last.push_back((at_ms, value));
        while self.last.front().is_some_and(|(t, _)| *t + self.window_ms <= at_ms) {
            self.last.pop_front();
        }
    }

    /// (peak of the first window, peak of the last window); zeros before any value.
    pub fn peaks(&self) -> (u64, u64) {
        (self.first, self.last.iter().map(|x| x.1).max().unwrap_or(0))
    }
}

/// VmRSS in bytes from /proc/self/status (0 where unavailable).
pub fn current_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time the whole machine has spent busy (every state but idle and iowait), in seconds, from
/// the first line of /proc/stat; and the number of CPUs. Differences of it give what a stretch of
/// work cost the machine, the targets' processes included (a container's work is the host's).
pub fn machine_busy_seconds() -> Option<(f64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let cpu: Vec<u64> = lines.next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let cores = lines.filter(|l| l.starts_with("cpu")).count().max(1);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = cpu.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i != 7).map(|(_, v)| v).sum();
    // sysconf takes and returns plain integers: nothing to uphold.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((busy as f64 / hz, cores))
}

#[cfg(test)]
mod tests {
    #[test]
    fn machine_busy_time_grows() {
        let (a, cores) = super::machine_busy_seconds().unwrap();
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box(0u64);
        }
        let (b, _) = super::machine_busy_seconds().unwrap();
        assert!(cores >= 1 && b > a, "{a} -> {b}");
    }

    #[test]
    fn rss_is_read() {
        assert!(super::current_rss() > 0);
    }

    #[test]
    fn minute_windows_keep_first_and_sliding_last_peaks() {
        let mut w = super::PeakWindows::new(60_000);
        for s in 0..600u64 {
            // 100 in the first minute (peak 150 at 30 s), 200 later, a 300 spike at 500 s.
            let v = match s {
                30 => 150,
                500 => 300,
                _ if s < 60 => 100,
                _ => 200,
            };
            w.add(2000 + s * 1000, v);
        }
        assert_eq!(w.peaks(), (150, 200), "the 500 s spike left the last-minute window");
        assert!(w.last.len() <= 61, "bounded: {}", w.last.len());
    }
}

//! What this process knows about itself from /proc, for the memory figures of soaks.

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
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_read() {
        assert!(super::current_rss() > 0);
    }
}

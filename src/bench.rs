//! Benchmarks of the harness itself, each printing ratios measured side by side in one run (these
//! machines are noisy: a ratio from one run means more than an absolute figure from another day).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::{Engine, ProviderKind, TargetArgs};
use crate::commands;
use crate::exit;

/// Wall time to create and provision N local targets (agentsh artifact and image are obtained once
/// beforehand and excluded), median of `runs`, and the controller's peak RSS while doing it.
pub async fn provision(sizes: &[u32], agentsh: &str, engine: Engine, runs: u32) -> Result<u8> {
    if sizes.is_empty() || sizes.iter().any(|&s| s == 0 || s > crate::cli::MAX_VMS) || runs == 0 {
        return Err(exit::usage(format!("--sizes must be 1..={} and --runs at least 1", crate::cli::MAX_VMS)));
    }
    let mut base = TargetArgs {
        vms: 1,
        agentsh: agentsh.to_string(),
        provider: ProviderKind::Local,
        engine,
        inventory: None,
        exe_host: String::new(),
        exe_ssh_config: None,
        config: None,
        policy: None,
    };
    let provider = commands::provider_for(&base)?;

    // One-time costs, measured apart.
    let t0 = Instant::now();
    let spec = crate::agentsh::Spec::parse(agentsh)?;
    let artifact = tokio::task::spawn_blocking(move || crate::agentsh::resolve(&spec)).await??;
    let t_artifact = t0.elapsed();
    let t0 = Instant::now();
    provider.prepare().await?;
    let t_image = t0.elapsed();

    let scratch = tempfile::Builder::new().prefix("abench-bench").tempdir()?;
    let mut rows = Vec::new();
    for &size in sizes {
        base.vms = size;
        let mut walls = Vec::new();
        let mut peak_rss = 0u64;
        for i in 0..runs {
            let run = crate::provider::new_run_tag();
            let rss = RssSampler::start();
            let t0 = Instant::now();
            let result = commands::provision(&base, provider.as_ref(), &run, Some(&scratch.path().join(&run))).await;
            let wall = t0.elapsed();
            peak_rss = peak_rss.max(rss.stop());
            let destroyed = provider.destroy(Some(&run)).await;
            let p = result?;
            destroyed?;
            let ready = crate::provision::ready_count(&p.outcomes);
            anyhow::ensure!(ready == size as usize, "size {size} run {i}: only {ready} of {size} targets became ready");
            eprintln!("bench: {size} target(s), run {}: {:.2} s", i + 1, wall.as_secs_f64());
            walls.push(wall);
        }
        walls.sort();
        rows.push((size, walls[walls.len() / 2], peak_rss));
    }

    let one = rows.iter().find(|r| r.0 == 1).map(|r| r.1);
    println!("\nprovisioning wall time, local targets, agentsh {}, median of {runs}", artifact.as_ref().map_or("none", |a| a.version.as_str()));
    println!("{:>8} {:>10} {:>10} {:>16}", "targets", "wall s", "vs 1", "controller RSS");
    for (size, wall, rss) in &rows {
        let ratio = one.map_or("-".to_string(), |o| format!("{:.2}×", wall.as_secs_f64() / o.as_secs_f64()));
        println!("{size:>8} {:>10.2} {ratio:>10} {:>13.1} MiB", wall.as_secs_f64(), *rss as f64 / 1048576.0);
    }
    println!("one-time: agentsh artifact {:.2} s, image check/build {:.2} s", t_artifact.as_secs_f64(), t_image.as_secs_f64());
    if let (Some(one), Some(eight)) = (one, rows.iter().find(|r| r.0 == 8)) {
        let ratio = eight.1.as_secs_f64() / one.as_secs_f64();
        println!("target 8 ≤ 2 × 1: {:.2}× → {}", ratio, if ratio <= 2.0 { "met" } else { "NOT met" });
    }
    Ok(exit::OK)
}

/// Samples this process's resident set every 50 ms; keeps the maximum.
struct RssSampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let peak = Arc::new(AtomicU64::new(current_rss()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(current_rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed).max(current_rss())
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

#[cfg(test)]
mod tests {
    #[test]
    fn rss_is_read() {
        assert!(super::current_rss() > 0);
    }
}

//! agentsh's resource trends on a real local target (agentsh v0.16.9, or
//! `AGENTSH_BENCH_TEST_AGENTSH=SPEC`): the sampling script reads the server on the observation
//! channel, every series comes back plausible, a run this short is judged insufficient, and a
//! process left behind counts once it is old enough and no longer once it is gone.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Per series, the values of trends-samples.csv in time order.
fn samples(dir: &Path) -> BTreeMap<String, Vec<f64>> {
    let mut r = csv::Reader::from_path(dir.join("trends-samples.csv")).expect("trends-samples.csv");
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), ["t_s", "target", "series", "value"]);
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        let v: f64 = rec[3].parse().unwrap_or_else(|_| panic!("not a number: {rec:?}"));
        out.entry(rec[2].to_string()).or_default().push(v);
    }
    out
}

/// `trends` on one target's observation channel for `duration`, into `out`.
fn sample(config: &Path, name: &str, duration: &str, out: &Path) -> String {
    let o = bench(&[
        "trends",
        "-F",
        config.to_str().unwrap(),
        &format!("{name}-observe"),
        "--every",
        "2s",
        "--duration",
        duration,
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "trends failed:\n{stdout}\n{}", text(&o.stderr));
    stdout
}

#[test]
fn a_short_sample_of_a_real_target_is_plausible_and_insufficient() {
    let _g = serial();
    let spec = std::env::var("AGENTSH_BENCH_TEST_AGENTSH").unwrap_or_else(|_| "v0.16.9".into());
    let results = tempfile::tempdir().unwrap();
    let o = bench(&["up", "--vms", "1", "--agentsh", &spec, "--out", results.path().join("up").to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(code(&o), 0, "up failed:\n{stdout}\n{}", text(&o.stderr));
    let up = parse_up(&stdout);
    let _cleanup = RunGuard(up.run.clone());
    let (name, config) = &up.targets[0];
    let observe = format!("{name}-observe");

    // A process left behind: started on the (ungoverned) observation channel and detached, so
    // it is re-parented to the container's init when its shell exits.
    let (c, pid, err) = ssh(config, &observe, "setsid sleep 900 >/dev/null 2>&1 </dev/null & echo $!");
    assert_eq!(c, 0, "{err}");
    let pid = pid.trim().to_string();
    let left_at = Instant::now();

    let first = results.path().join("first");
    let printed = sample(config, name, "5s", &first);
    let s = samples(&first);
    let all = |series: &str| -> Vec<f64> { s.get(series).cloned().unwrap_or_default() };
    for series in ["server_up", "server_rss_kb", "server_fds", "server_threads", "fuse_mounts", "sessions"] {
        assert!(all(series).len() >= 3, "{series}: {:?} ({s:?})", all(series));
    }
    assert!(all("server_up").iter().all(|v| *v == 1.0), "{s:?}");
    assert!(all("server_rss_kb").iter().all(|v| *v > 1024.0), "RSS over 1 MB: {:?}", all("server_rss_kb"));
    assert!(all("server_fds").iter().all(|v| *v > 3.0), "more than stdio: {:?}", all("server_fds"));
    assert!(all("server_threads").iter().all(|v| *v >= 1.0), "{:?}", all("server_threads"));
    for series in ["fuse_mounts", "sessions", "event_store_bytes", "log_bytes", "leftover_procs"] {
        let v = all(series);
        assert!(!v.is_empty() && v.iter().all(|x| *x >= 0.0 && x.fract() == 0.0), "{series}: {v:?}");
    }
    // Readiness ran governed commands, so agentsh has recorded events and logged.
    assert!(all("event_store_bytes").iter().all(|v| *v > 0.0) && all("log_bytes").iter().all(|v| *v > 0.0));
    // Younger than 90 s (trends::MIN_AGE): not counted yet (it could be a command still running).
    let before = all("leftover_procs");
    assert!(left_at.elapsed() < Duration::from_secs(90));

    // trends.csv: every series, each judged insufficient over a few seconds.
    let mut r = csv::Reader::from_path(first.join("trends.csv")).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        headers.join(","),
        "target,series,unit,samples,span_s,first,last,min,max,slope_per_hour,robust_slope_per_hour,threshold_per_hour,verdict"
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let series: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
    for want in [
        "server_rss_kb",
        "server_fds",
        "server_threads",
        "sessions",
        "fuse_mounts",
        "leftover_procs",
        "event_store_bytes",
        "log_bytes",
    ] {
        assert!(series.contains(&want), "{want} missing from trends.csv: {series:?}");
    }
    for row in &rows {
        assert_eq!(&row[0], name.as_str());
        assert_eq!(&row[12], "insufficient", "{row:?}");
        assert!(row[3].parse::<u32>().unwrap() >= 3, "{row:?}");
    }
    assert!(printed.contains("0 leak(s), 8 series with too little data"), "{printed}");
    assert!(first.join("charts/trends.svg").is_file());
    let report = bench(&["report", first.to_str().unwrap()]);
    assert_eq!(code(&report), 0, "{}", text(&report.stderr));
    let html = std::fs::read_to_string(first.join("report.html")).unwrap();
    assert!(html.contains("<h2>Resource trends</h2>") && html.contains("<figcaption>trends.svg</figcaption>"));

    // Past 90 s the orphan counts; once killed, it no longer does.
    std::thread::sleep(Duration::from_secs(92).saturating_sub(left_at.elapsed()));
    let second = results.path().join("second");
    sample(config, name, "1s", &second);
    let after = samples(&second)["leftover_procs"].clone();
    let (c, _, err) = ssh(config, &observe, &format!("kill {pid}"));
    assert_eq!(c, 0, "{err}");
    let third = results.path().join("third");
    sample(config, name, "1s", &third);
    let gone = samples(&third)["leftover_procs"].clone();
    let base = before[0];
    assert!(before.iter().all(|v| *v == base), "{before:?}");
    // Another process of the target may cross the 90 s line meanwhile (seen once in CI: 1, then
    // 2 within the same second sampling; what it was is not known), so the orphan is judged by
    // what killing it takes away, not by the total.
    assert!(after.iter().all(|v| *v >= base + 1.0), "the orphan counts: {before:?} then {after:?}");
    let last = after.last().copied().unwrap_or(base);
    assert!(gone.first() == Some(&(last - 1.0)), "and no longer once killed: {after:?} then {gone:?}");
}

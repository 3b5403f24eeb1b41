//! Dispatch: each subcommand to the stage or module that does it. The main job and `up` are in
//! `job`; what is left here are the few-line commands (down, ls, compare, report, manifest).

use std::path::Path;

use anyhow::Result;

use crate::agentsh::Spec;
use crate::cli::{BenchKind, Cli, Command, Engine, ProviderKind};
use crate::config::{RunConfig, TargetConfig};
use crate::exit;
use crate::job::Stop;
use crate::provider::{self, Provider, ProviderOpts};
use crate::results::RunDir;

pub async fn dispatch(cli: Cli) -> Result<u8> {
    match cli.command {
        None => {
            let cfg = RunConfig::from_cli(&cli.targets, &cli.workload, cli.out.as_deref(), cli.keep)?
                .with_junit(cli.junit.as_deref())?;
            let provider = cfg.targets.provider()?;
            crate::job::main_job(&cfg, provider.as_ref(), &Stop::on_ctrl_c()).await
        }
        Some(Command::Driver) => unreachable!("the driver runs before the async runtime starts"),
        Some(Command::Manifest { config, alias, against }) => manifest(config, alias, against.as_deref()).await,
        Some(Command::Trends { config, aliases, every, duration, out, events_db }) => {
            crate::trends::command(&config, &aliases, every, duration, &out, events_db.as_deref()).await
        }
        Some(Command::Compare { base, run, workload }) => compare(&base, &run, workload.as_deref()),
        Some(Command::Report { run }) => report(&run),
        Some(Command::History { file, version }) => history(&file, version.as_deref()),
        Some(Command::Up { targets, out }) => {
            let targets = TargetConfig::from_args(&targets)?;
            if targets.versus.is_some() {
                return Err(exit::usage("up takes one --agentsh; two are compared by the main job"));
            }
            let provider = targets.provider()?;
            crate::job::up(&targets, provider.as_ref(), out.as_deref(), &Stop::on_ctrl_c()).await
        }
        Some(Command::Down { run, provider, engine, exe_host, exe_ssh_config }) => {
            let p = control_only(provider, engine, &exe_host, exe_ssh_config.as_deref())?;
            down(p.as_ref(), run.as_deref()).await
        }
        Some(Command::Ls { provider, engine, exe_host, exe_ssh_config }) => {
            let p = control_only(provider, engine, &exe_host, exe_ssh_config.as_deref())?;
            ls(p.as_ref()).await
        }
        Some(Command::Image { engine, rebuild }) => {
            let tag = tokio::task::spawn_blocking(move || provider::image::ensure(engine, rebuild)).await??;
            println!("{tag}");
            Ok(exit::OK)
        }
        Some(Command::Fetch { spec }) => {
            let spec = Spec::parse(&spec)?;
            match crate::job::resolve(spec).await? {
                Some(a) => println!("{} (agentsh {}, from {})", a.deb.display(), a.version, a.source),
                None => println!("none"),
            }
            Ok(exit::OK)
        }
        Some(Command::Bench { which: BenchKind::Provision { sizes, agentsh, engine, runs } }) => {
            crate::bench::provision(&sizes, &agentsh, engine, runs).await
        }
        Some(Command::Bench { which: BenchKind::Suite { sizes, agentsh, engine, iterations } }) => {
            crate::bench::suite(&sizes, &agentsh, engine, iterations).await
        }
        Some(Command::Bench { which: BenchKind::Driver { rates, duration, soak, engine, agentsh } }) => {
            crate::bench::driver(&rates, duration, soak, engine, &agentsh).await
        }
    }
}

fn control_only(
    kind: ProviderKind,
    engine: Engine,
    exe_host: &str,
    exe_ssh_config: Option<&Path>,
) -> Result<Box<dyn Provider>> {
    if kind == ProviderKind::Ssh {
        return Err(exit::usage(
            "inventory hosts are not created or destroyed by the harness; nothing to list or remove",
        ));
    }
    provider::build(ProviderOpts { kind, engine, inventory: None, exe_host, exe_ssh_config })
}

async fn down(provider: &dyn Provider, run: Option<&str>) -> Result<u8> {
    if let Some(r) = run {
        provider::validate_run_tag(r)?;
    }
    let names = provider.destroy(run).await?;
    for n in &names {
        println!("destroyed {n}");
    }
    let runs: std::collections::BTreeSet<String> = match run {
        Some(r) => [r.to_string()].into(),
        None => names.iter().filter_map(|n| provider::run_of(n).map(String::from)).collect(),
    };
    for r in runs {
        crate::job::teardown_state(&r);
    }
    println!("{} target(s) destroyed", names.len());
    Ok(exit::OK)
}

fn compare(base: &Path, run: &Path, workload: Option<&str>) -> Result<u8> {
    let workloads = |d: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(RunDir::at(d).histograms_dir())
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let workload = match workload {
        Some(w) => w.to_string(),
        None => {
            let both: Vec<String> = workloads(base).intersection(&workloads(run)).cloned().collect();
            match both.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(exit::usage(format!(
                        "{} and {} have no workload in common",
                        base.display(),
                        run.display()
                    )));
                }
                many => {
                    return Err(exit::usage(format!(
                        "both runs have several workloads ({}): pick one with --workload",
                        many.join(", ")
                    )));
                }
            }
        }
    };
    // The two-version comparison's code path, with the base as A and the run as B. What it
    // reads are the folders the user named: a workload one lacks, or a file it cannot read, is
    // bad usage.
    let side = |label: &str, dir: &Path| crate::analyze::versions::Side { label: label.into(), dir: dir.into() };
    let (a, b) = (side("base", base), side("run", run));
    let crate::analyze::versions::Comparison { items, latency: stats, percentiles: rows } =
        crate::analyze::versions::compare(&a, &b, Some(&workload)).map_err(|e| exit::usage(format!("{e:#}")))?;
    crate::analyze::print(&rows);
    println!();
    crate::analyze::versions::print(&a.label, &b.label, &items);
    let sections = RunDir::at(run).comparison_sections_csv(&workload);
    crate::analyze::versions::write_csv(&sections, &a.label, &b.label, &items)?;
    println!("written: {}", sections.display());
    let out = RunDir::at(run).comparison_csv(&workload);
    crate::analyze::write_csv(&out, &rows, &stats)?;
    println!("written: {}", out.display());
    let chart = RunDir::at(run).comparison_svg(&workload);
    let name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let title = format!("{workload}: {} against {}", name(run), name(base));
    match crate::report::comparison::render(&stats, &chart, &title) {
        Ok(()) => println!("written: {}", chart.display()),
        Err(e) => eprintln!("warning: {}: {e:#}", chart.display()),
    }
    Ok(exit::OK)
}

/// `report RUN`: a folder that is not there is bad usage, not a failed run. summary.md is
/// rewritten too (quietly: the path printed is the page's).
fn report(run: &Path) -> Result<u8> {
    if !run.is_dir() {
        return Err(exit::usage(format!("{}: no such run folder", run.display())));
    }
    // A soak's latency chart, from the folder alone (the page shows it).
    if let Err(e) = crate::report::soak::redraw(&RunDir::at(run)) {
        eprintln!("warning: soak-latency.svg: {e:#}");
    }
    println!("{}", crate::report::html::write(&RunDir::at(run))?.display());
    if let Err(e) = crate::report::markdown::write(&RunDir::at(run)) {
        eprintln!("warning: summary.md: {e:#}");
    }
    Ok(exit::OK)
}

/// `history`: the trend per version, its chart, and the gate (exit 1 when a change is flagged).
fn history(file: &Path, version: Option<&str>) -> Result<u8> {
    use crate::analyze::history as gate;
    if !file.is_file() {
        return Err(exit::usage(format!(
            "{}: no such file (every main-job run appends to history.csv beside its run folder)",
            file.display()
        )));
    }
    let config = gate::load(&gate::default_path())?;
    let h = crate::results::history::read(file).map_err(|e| exit::usage(format!("{e:#}")))?;
    let rows: Vec<&crate::results::history::HistoryRow> =
        h.rows.iter().filter(|r| version.is_none_or(|v| gate::same_version(v, &r.agentsh_version))).collect();
    if let Some(v) = version
        && rows.is_empty()
    {
        let mut known: Vec<&str> = h.rows.iter().map(|r| r.agentsh_version.as_str()).collect();
        known.sort();
        known.dedup();
        return Err(exit::usage(format!("{}: no run of agentsh {v} (it has: {})", file.display(), known.join(", "))));
    }
    // The config's ops, as far as this file has their columns (it may predate a change).
    let ops: Vec<String> = config.ops.iter().filter(|op| h.ops.contains(op)).cloned().collect();
    crate::report::history::print_tables(&rows, &ops);
    let chart = file.with_extension("svg");
    match crate::report::history::chart(&rows, &ops, &chart) {
        Ok(()) => println!("chart: {}", chart.display()),
        Err(e) => eprintln!("warning: {}: {e:#}", chart.display()),
    }
    let checks = gate::check(&h.rows, &ops, &config.thresholds, version);
    let flagged = crate::report::history::print_checks(&checks);
    Ok(if flagged > 0 { exit::REGRESSION } else { exit::OK })
}

async fn manifest(config_file: std::path::PathBuf, alias: String, against: Option<&Path>) -> Result<u8> {
    use crate::suite::integrity;
    // Read before connecting: a bad file is bad usage, not a target's fault.
    let before = match against {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| exit::usage(format!("{}: {e}", p.display())))?;
            Some(integrity::parse(&text).map_err(|e| exit::usage(format!("{}: {e:#}", p.display())))?)
        }
        None => None,
    };
    let excludes = integrity::load(&integrity::default_path())?;
    let control_dir = crate::paths::runtime_dir().join(format!("manifest-{}", std::process::id()));
    let dest = crate::control::SshDest { config_file, alias };
    // In a block of its own: the connection ends before its control directory is removed.
    let taken =
        async { integrity::take(&crate::control::Conn::connect(&dest.alias, &dest, &control_dir, 3).await?).await }
            .await;
    let _ = std::fs::remove_dir_all(&control_dir);
    let now = taken?;
    let Some(before) = before else {
        print!("{}", now.to_jsonl()?);
        return Ok(exit::OK);
    };
    let changes = integrity::diff(&before, &now, &excludes);
    for c in &changes {
        println!("{c}");
    }
    Ok(if changes.is_empty() { exit::OK } else { exit::REGRESSION })
}

async fn ls(provider: &dyn Provider) -> Result<u8> {
    let list = provider.list().await?;
    for t in &list {
        println!("{}\t{}\t{}", t.name, t.run, t.state);
    }
    if list.is_empty() {
        eprintln!("no targets");
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compare BASE RUN` on two fixture run folders: the percentile table as before, and every
    /// section the two-version comparison has, both written into RUN.
    #[test]
    fn compare_writes_every_section_and_the_percentile_table() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = crate::analyze::versions::fixture::pair(d.path());
        assert_eq!(compare(&a.dir, &b.dir, None).unwrap(), exit::OK, "the one workload both have");
        let run = RunDir::at(&b.dir);
        let table = std::fs::read_to_string(run.comparison_csv("w")).unwrap();
        let mut lines = table.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("op,base_count,run_count,response_p50_base_ms,"), "{header}");
        assert!(header.ends_with(",response_p_value,verdict"), "{header}");
        let echo: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!((echo[0], echo[1], echo[2], echo[28]), ("echo", "400", "400", "slower"), "{echo:?}");
        assert_eq!(lines.next(), None, "only ops both runs have: {table}");
        let sections = std::fs::read_to_string(run.comparison_sections_csv("w")).unwrap();
        assert!(sections.starts_with("section,item,base,run,ratio_b_over_a,"), "{sections}");
        for want in [
            "suite,1 one,held,violated,,,,,broken\n",
            "suite,2 two,violated,held,,,,,fixed\n",
            "integrity,targets,held ×2,\"held ×1, violated ×1\",,,,,findings\n",
            "latency,true,400 ops,-,,,,,only in base\n",
            "decisions,echo wrong decisions,0,8,,,,,broken\n",
            "decisions,server wedges under load,2,0,,,,,findings\n",
        ] {
            assert!(sections.contains(want), "{want:?} not in:\n{sections}");
        }
        let p50 = sections.lines().find(|l| l.starts_with("latency,echo p50 ms,")).unwrap();
        assert!(p50.ends_with(",slower"), "{p50}");
        assert!(run.comparison_svg("w").is_file());
    }

    #[test]
    fn compare_without_the_workload_is_bad_usage() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = crate::analyze::versions::fixture::pair(d.path());
        let e = compare(&a.dir, &b.dir, Some("nope")).unwrap_err();
        assert_eq!(exit::code_for(&e), exit::USAGE, "{e:#}");
        assert!(format!("{e:#}").contains("no workload \"nope\""), "{e:#}");
    }
}

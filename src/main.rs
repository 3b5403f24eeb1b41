//! agentsh-bench: provisions agentsh-hardened targets concurrently and measures agentsh on them.
//!
//! The layout follows the pipeline: `provider` (targets) → `provision` (harden) → run → `results`.
//! `control` is the SSH layer every stage talks through; `agentsh` obtains the system under test.

mod agentsh;
mod analyze;
mod bench;
mod cli;
mod commands;
mod config;
mod control;
mod driver;
mod exit;
mod fault;
mod job;
mod nemesis;
mod paths;
mod procstat;
mod progress;
mod provider;
mod provision;
mod report;
mod results;
mod schema;
mod suite;
mod target;
mod text;
mod trends;
mod watchdog;
mod workload;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on bad usage; 2 is ours for "infrastructure failed", so usage is 3.
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.global.verbose);

    // The driver is plain threads with its own clock; it needs no async runtime.
    if matches!(cli.command, Some(cli::Command::Driver)) {
        return match driver::main() {
            Ok(()) => ExitCode::from(exit::OK),
            Err(e) => {
                eprintln!("driver: {e:#}");
                ExitCode::from(exit::INFRA)
            }
        };
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INFRA);
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,agentsh_bench=info",
        2 => "info,agentsh_bench=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTSH_BENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

//! The `pipeline` binary: decodes video, runs the CNN backbone (and later the temporal heads),
//! and writes results people can read.

mod backbone;
mod cli;
mod commands;
mod decode;
mod device;
mod inputs;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

/// Per-file failures of a multi-file command: each is reported as it happens and the command
/// carries on; the exit code says whether any happened.
#[derive(Debug, Default)]
pub struct Failures {
    pub count: usize,
}

impl Failures {
    pub fn record(&mut self, result: Result<()>) {
        if let Err(e) = result {
            if is_broken_pipe(&e) {
                return;
            }
            eprintln!("error: {e:#}");
            self.count += 1;
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("warn,pipeline={default_level},vision={default_level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();

    let result = match &cli.command {
        Command::Extract(args) => commands::extract::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Info => commands::info::run().map(|()| Failures::default()),
    };
    match result {
        Ok(failures) if failures.count == 0 => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("{} input(s) failed", failures.count);
            ExitCode::FAILURE
        }
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

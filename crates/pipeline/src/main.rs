//! The `pipeline` binary: parses the command line, installs logging and progress bars, and
//! hands each command to its glue module in `cli/commands/`. Everything else is the
//! `pipeline` library.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::exit::{Classify as _, Done};
use cli::{Cli, Command, commands};

/// burn-flex allocates a fresh buffer for nearly every tensor op. glibc's defaults hand large
/// buffers back to the kernel on free and map them anew on the next malloc, so every op pays
/// page faults on tens of megabytes: the CNN ran ~20% slower and elementwise ops several times
/// slower. Keep freed memory in the heap for reuse instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called first thing, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum on 64-bit
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // wgpu's OpenGL backend is probed when a wgpu device starts, though burn computes through
    // Vulkan, Metal or DirectX 12; on a headless machine it logs EGL failures as errors.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,wgpu_hal::gles=off,pipeline={default_level},media={default_level},\
             vision={default_level},temporal={default_level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();

    pipeline::progress::install(cli::progress::Bars::default());

    let outcome = match &cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Batch(args) => commands::batch::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Info => commands::info::run().runtime().map(|()| Done::ALL),
        Command::Bench(args) => commands::bench::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::MakeClips(args) => commands::make_clips::run(args),
    };
    cli::exit::status(outcome)
}

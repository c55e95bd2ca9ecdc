//! The `pipeline` binary: decodes video, runs the CNN backbone (and later the temporal heads),
//! and writes results people can read.

mod backbone;
mod cli;
mod commands;
mod data;
mod decode;
mod device;
mod encode;
mod head;
mod inputs;
mod model_dir;
mod output;
mod plot;
mod synth;

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
            "warn,wgpu_hal::gles=off,pipeline={default_level},vision={default_level},\
             temporal={default_level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();

    let result = match &cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Batch(args) => commands::batch::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Info => commands::info::run().map(|()| Failures::default()),
        Command::Bench(args) => commands::bench::run(args).map(|()| Failures::default()),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::MakeClips(args) => {
            synth::write_clip_set(&args.out, args.per_class as usize, args.seed).map(|paths| {
                println!("wrote {} clips to {}", paths.len(), args.out.display());
                Failures::default()
            })
        }
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

//! Exit statuses, the same for every command, and the error line behind a failing one.

use std::process::ExitCode;

/// `--help`'s account of the exit statuses (also in the README).
pub const HELP: &str = "Exit status: 0 all done; 1 some inputs failed (each said why in an \
`error:` line; the others were done); 2 a usage error, nothing started (bad arguments, no \
inputs, no model); 3 a runtime failure (e.g. an output could not be written: disk full, no \
permission); 130 interrupted (Ctrl-C) before the inputs were finished.";

/// How a command ended without a fatal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Done {
    /// Inputs that failed, each already reported on stderr.
    pub failed: usize,
}

impl Done {
    pub const ALL: Done = Done { failed: 0 };
}

/// A failure that ends the command, and the status it exits with.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Fatal {
    /// Exit 2: the arguments, the inputs or the model were not usable; nothing was done.
    pub fn usage(error: anyhow::Error) -> Self {
        Self { code: 2, error }
    }

    /// Exit 3: work had started and could not go on (outputs unwritable, a worker died).
    pub fn runtime(error: anyhow::Error) -> Self {
        Self { code: 3, error }
    }

    /// Exit 1: the one input of a single-input command failed.
    pub fn input(error: anyhow::Error) -> Self {
        Self { code: 1, error }
    }

    /// Exit 130: stopped (Ctrl-C, SIGTERM) before the inputs were finished.
    pub fn interrupted(error: anyhow::Error) -> Self {
        Self { code: 130, error }
    }
}

/// `result.usage()?` / `result.runtime()?`: which kind of failure an error is, at the call.
pub trait Classify<T> {
    fn usage(self) -> Result<T, Fatal>;
    fn runtime(self) -> Result<T, Fatal>;
}

impl<T> Classify<T> for anyhow::Result<T> {
    fn usage(self) -> Result<T, Fatal> {
        self.map_err(Fatal::usage)
    }

    fn runtime(self) -> Result<T, Fatal> {
        self.map_err(Fatal::runtime)
    }
}

/// What a command returns.
pub type Outcome = Result<Done, Fatal>;

/// Per-input failures of a multi-input command: each is reported as it happens and the
/// command carries on; the exit status says whether any happened.
#[derive(Debug, Default)]
pub struct Failures {
    pub count: usize,
}

impl Failures {
    pub fn record(&mut self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            if is_broken_pipe(&e) {
                return;
            }
            crate::cli::progress::error_line(&format!("{e:#}"));
            self.count += 1;
        }
    }

    pub fn done(self) -> Outcome {
        Ok(Done { failed: self.count })
    }
}

/// A closed stdout (`| head`) is the reader's choice, not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reports the outcome on stderr and turns it into the process's exit status.
pub fn status(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(Done { failed: 0 }) => ExitCode::SUCCESS,
        Ok(Done { failed }) => {
            eprintln!("{failed} input(s) failed");
            ExitCode::from(1)
        }
        Err(f) if is_broken_pipe(&f.error) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

//! The crate's one error type.

use std::path::PathBuf;

use burn::store::ApplyError;

/// The error a file operation wraps: burn's record and store errors, `std::io`, `serde_json`.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the temporal crate.
///
/// Messages name what failed and where; the wrapped error is the [`source`](std::error::Error::source),
/// not part of the message (print the chain, e.g. anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Training was given no sequences (the baseline: no clip labelled as a whole).
    #[error("no training sequences")]
    Empty,
    /// A sequence's feature count is not `steps x dim`.
    #[error("sequence {index} has {got} values, expected {steps} steps x {dim} features")]
    Shape {
        index: usize,
        got: usize,
        steps: usize,
        dim: usize,
    },
    /// A sequence of zero steps.
    #[error("sequence {index} has no steps")]
    NoSteps { index: usize },
    /// A label outside the head's classes.
    #[error("sequence {index} has label {label}, but the head has {classes} classes")]
    Label {
        index: usize,
        label: usize,
        classes: usize,
    },
    /// A sequence without the kind of target the head trains on.
    #[error("sequence {index} does not carry the target the {task} head trains on")]
    Target { index: usize, task: &'static str },
    /// Not one training sequence yields a loss term.
    #[error(
        "no training sequence is long enough for the head: forecasting {ahead} steps ahead needs more than {ahead} steps, anticipating needs labels {ahead} steps after a step"
    )]
    TooShort { ahead: usize },
    /// A file or folder could not be read, or what it holds could not be parsed.
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: Source,
    },
    /// A file or folder could not be written, created or renamed.
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: Source,
    },
    /// A weights file was read, but some of the model's tensors are missing from it or do not
    /// fit.
    #[error(
        "{path} does not fit the model: missing [{}], errors [{}]",
        .missing.join(", "),
        .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Weights {
        path: PathBuf,
        missing: Vec<String>,
        errors: Vec<ApplyError>,
    },
    /// The checkpoint to resume from was made with other model settings.
    #[error(
        "the checkpoint in {path} was made with different model settings ({saved}); resume with the same settings or start a new output folder"
    )]
    CheckpointConfig { path: PathBuf, saved: String },
    /// The checkpoint to resume from was made with another seed.
    #[error(
        "the checkpoint in {path} was made with seed {saved}, not {given}; resume with the same seed or start a new output folder"
    )]
    CheckpointSeed {
        path: PathBuf,
        saved: u64,
        given: u64,
    },
    /// The checkpoint to resume from was made from other training or validation sequences.
    #[error(
        "the checkpoint in {path} was made from other training or validation sequences; resume with the same data or start a new output folder"
    )]
    CheckpointData { path: PathBuf },
    /// Heads that cannot be fused, or a fused model asked for what it cannot give.
    #[error("late fusion: {0}")]
    Fusion(String),
}

impl Error {
    pub(crate) fn read(path: impl Into<PathBuf>, source: impl Into<Source>) -> Self {
        Self::Read {
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: impl Into<Source>) -> Self {
        Self::Write {
            path: path.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads_and_keep_their_source() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = Error::read("/x/progress.json", io);
        assert_eq!(err.to_string(), "reading /x/progress.json");
        let source = std::error::Error::source(&err).expect("source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
    }
}

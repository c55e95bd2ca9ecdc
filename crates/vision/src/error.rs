use std::path::PathBuf;

/// Everything that can go wrong in the vision crate.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The weights file could not be read or parsed.
    #[error("reading weights {path}: {reason}")]
    WeightsRead { path: PathBuf, reason: String },
    /// The weights file was read but does not fit the network.
    #[error("weights {source_name} do not fit {variant}: {reason}")]
    WeightsMismatch {
        source_name: String,
        variant: String,
        reason: String,
    },
    /// Saving weights failed.
    #[error("writing weights {path}: {reason}")]
    WeightsWrite { path: PathBuf, reason: String },
    /// An input tensor of the wrong shape.
    #[error("expected {expected}, got shape {got:?}")]
    Shape { expected: String, got: Vec<usize> },
    /// The network could not be compiled for the CPU path.
    #[error("compiling the network for the CPU: {0}")]
    Compile(String),
}

use std::path::PathBuf;

use burn::store::ApplyError;
use burn::tensor::DataError;

/// The error a weights file operation wraps: burn's store errors or `std::io`.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the vision crate.
///
/// Messages name what failed and where; the wrapped error is the [`source`](std::error::Error::source),
/// not part of the message (print the chain, e.g. anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The weights file could not be read or parsed.
    #[error("reading weights {path}")]
    WeightsRead {
        path: PathBuf,
        #[source]
        source: Source,
    },
    /// The weights file was read but does not fit the network: tensors it lacks, or ones of
    /// the wrong shape or type.
    #[error(
        "weights {source_name} do not fit {variant}: {}",
        mismatch(.missing, .errors)
    )]
    WeightsMismatch {
        source_name: String,
        variant: String,
        /// The network's tensors the file does not have.
        missing: Vec<String>,
        /// The tensors that could not be applied.
        errors: Vec<ApplyError>,
    },
    /// Saving weights failed.
    #[error("writing weights {path}")]
    WeightsWrite {
        path: PathBuf,
        #[source]
        source: Source,
    },
    /// The network's weights could not be read back as `f32` to compile the CPU path.
    #[error("reading the network's weights for the CPU path")]
    WeightValues(#[from] DataError),
    /// The network could not be compiled for the CPU path.
    #[error("compiling the network for the CPU: {0}")]
    Compile(String),
}

fn mismatch(missing: &[String], errors: &[ApplyError]) -> String {
    let mut parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if !missing.is_empty() {
        parts.push(format!("missing tensors: {}", missing.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads_and_keep_their_source() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<VisionError>();
        let err = VisionError::WeightsRead {
            path: "/m/lite0.pth".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound).into(),
        };
        assert_eq!(err.to_string(), "reading weights /m/lite0.pth");
        let source = std::error::Error::source(&err).expect("source");
        assert!(source.is::<std::io::Error>(), "{source:?}");
    }
}

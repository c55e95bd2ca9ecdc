//! Loading and saving the backbone's weights, with the load report read, not thrown away.

use std::io;
use std::path::Path;

use burn::store::{ApplyResult, ModuleSnapshot, PytorchStore, SafetensorsStore};

use crate::error::Source;
use crate::{EfficientNet, VisionError};

/// What a load applied and what it left unused (e.g. BatchNorm's `num_batches_tracked`
/// counters, which inference does not need).
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Tensors written into the network.
    pub applied: usize,
    /// Tensors in the file the network has no place for.
    pub unused: Vec<String>,
}

/// Loads the PyTorch state dict of `efficientnet_lite_pytorch` (keys `_conv_stem.weight`,
/// `_blocks.3._bn1.running_var`, `_fc.bias`, ...). Fails on any missing or misshapen tensor.
pub fn load_pytorch(model: &mut EfficientNet, path: &Path) -> Result<LoadReport, VisionError> {
    let read_err = |source: Source| VisionError::WeightsRead {
        path: path.to_path_buf(),
        source,
    };
    // A missing file, or a folder, is reported as the io error it is, before any parsing.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(read_err(
                io::Error::from(io::ErrorKind::IsADirectory).into(),
            ));
        }
        Ok(_) => {}
        Err(e) => return Err(read_err(e.into())),
    }
    let mut store = PytorchStore::from_file(path)
        // `_blocks.0._bn1.weight` -> `blocks.0.bn1.weight`: our fields are PyTorch's names
        // without the leading underscore. (weight/bias -> gamma/beta is the store's adapter.)
        .with_key_remapping(r"(^|\.)_", "$1")
        // The `.pth` indices are already contiguous block numbers: keep them as they are.
        .map_indices_contiguous(false)
        // Missing or misfit tensors come back in the report, which `check` reads.
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_err(e.into()))?;
    check(result, &path.display().to_string(), model)
}

/// Loads weights saved by [`save_safetensors`] from memory (e.g. bytes embedded in a binary).
pub fn load_safetensors_bytes(
    model: &mut EfficientNet,
    bytes: &[u8],
    source_name: &str,
) -> Result<LoadReport, VisionError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        // Missing or misfit tensors come back in the report, which `check` reads.
        .validate(false)
        .allow_partial(true);
    let result = model
        .load_from(&mut store)
        .map_err(|e| VisionError::WeightsRead {
            path: source_name.into(),
            source: e.into(),
        })?;
    check(result, source_name, model)
}

/// Loads weights saved by [`save_safetensors`] from a file.
pub fn load_safetensors(model: &mut EfficientNet, path: &Path) -> Result<LoadReport, VisionError> {
    let bytes = std::fs::read(path).map_err(|e| VisionError::WeightsRead {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    load_safetensors_bytes(model, &bytes, &path.display().to_string())
}

/// Saves the network's weights (burn's parameter names, f32) as safetensors.
pub fn save_safetensors(model: &EfficientNet, path: &Path) -> Result<(), VisionError> {
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .metadata("network", model.variant().name());
    model
        .save_into(&mut store)
        .map_err(|e| VisionError::WeightsWrite {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

fn check(
    result: ApplyResult,
    source_name: &str,
    model: &EfficientNet,
) -> Result<LoadReport, VisionError> {
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(VisionError::WeightsMismatch {
            source_name: source_name.to_string(),
            variant: model.variant().name().to_string(),
            missing: result.missing.into_iter().map(|(key, _)| key).collect(),
            errors: result.errors,
        });
    }
    Ok(LoadReport {
        applied: result.applied.len(),
        unused: result.unused,
    })
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::prelude::*;
    use burn::store::SafetensorsStoreError;

    use super::*;
    use crate::EfficientNetConfig;

    fn model() -> EfficientNet {
        EfficientNetConfig::new()
            .with_image_size(64)
            .init(&Device::flex())
    }

    #[test]
    fn a_missing_weights_file_is_a_read_error_carrying_the_io_error() {
        let path = std::env::temp_dir().join("vision-no-such-weights.pth");
        match load_pytorch(&mut model(), &path) {
            Err(VisionError::WeightsRead {
                path: named,
                source,
            }) => {
                assert_eq!(named, path);
                let io = source.downcast_ref::<io::Error>().expect("an io error");
                assert_eq!(io.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{:?}", other.map(|r| r.applied)),
        }
    }

    #[test]
    fn bytes_that_are_not_safetensors_are_a_read_error_carrying_the_store_error() {
        let err = load_safetensors_bytes(&mut model(), b"not safetensors", "garbage")
            .expect_err("not safetensors");
        assert!(
            matches!(&err, VisionError::WeightsRead { source, .. }
                if source.is::<SafetensorsStoreError>()),
            "{err:?}"
        );
    }

    #[test]
    fn weights_of_another_network_are_a_mismatch_naming_the_missing_tensors() {
        let path = std::env::temp_dir().join(format!("vision-other-{}.st", std::process::id()));
        let other = LinearConfig::new(2, 3).init(&Device::flex());
        let mut store = SafetensorsStore::from_file(&path).overwrite(true);
        other.save_into(&mut store).expect("save");
        let err = load_safetensors(&mut model(), &path).expect_err("another network");
        std::fs::remove_file(&path).expect("cleanup");
        match &err {
            VisionError::WeightsMismatch { missing, .. } => {
                assert!(
                    missing.iter().any(|k| k == "conv_stem.weight"),
                    "{missing:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("missing tensors: "), "{err}");
    }
}

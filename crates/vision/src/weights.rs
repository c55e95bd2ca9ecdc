//! Loading and saving the backbone's weights, with the load report read, not thrown away.

use std::path::Path;

use burn::store::{ApplyResult, ModuleSnapshot, PytorchStore, SafetensorsStore};

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
    let read_err = |reason: String| VisionError::WeightsRead {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(read_err("no such file".into()));
    }
    let mut store = PytorchStore::from_file(path)
        // `_blocks.0._bn1.weight` -> `blocks.0.bn1.weight`: our fields are PyTorch's names
        // without the leading underscore. (weight/bias -> gamma/beta is the store's adapter.)
        .with_key_remapping(r"(^|\.)_", "$1")
        // The `.pth` indices are already contiguous block numbers: keep them as they are.
        .map_indices_contiguous(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_err(e.to_string()))?;
    check(result, &path.display().to_string(), model)
}

/// Loads weights saved by [`save_safetensors`] from memory (e.g. bytes embedded in a binary).
pub fn load_safetensors_bytes(
    model: &mut EfficientNet,
    bytes: &[u8],
    source_name: &str,
) -> Result<LoadReport, VisionError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    let result = model
        .load_from(&mut store)
        .map_err(|e| VisionError::WeightsRead {
            path: source_name.into(),
            reason: e.to_string(),
        })?;
    check(result, source_name, model)
}

/// Loads weights saved by [`save_safetensors`] from a file.
pub fn load_safetensors(model: &mut EfficientNet, path: &Path) -> Result<LoadReport, VisionError> {
    let bytes = std::fs::read(path).map_err(|e| VisionError::WeightsRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
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
            reason: e.to_string(),
        })
}

fn check(
    result: ApplyResult,
    source_name: &str,
    model: &EfficientNet,
) -> Result<LoadReport, VisionError> {
    let mismatch = |reason: String| VisionError::WeightsMismatch {
        source_name: source_name.to_string(),
        variant: model.variant().name().to_string(),
        reason,
    };
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(mismatch(errors.join("; ")));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        return Err(mismatch(format!("missing tensors: {}", missing.join(", "))));
    }
    Ok(LoadReport {
        applied: result.applied.len(),
        unused: result.unused,
    })
}

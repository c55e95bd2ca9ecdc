//! A trained model on disk: `config.json` (everything needed to rebuild it) beside
//! `model.safetensors` (its weights, input normalisation included).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::{TemporalConfig, TemporalModel};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Errors reading or writing a model directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("writing {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
pub fn save(model: &TemporalModel, config: &TemporalConfig, dir: &Path) -> Result<(), StoreError> {
    let write_err = |path: PathBuf, e: &dyn std::fmt::Display| StoreError::Write {
        path,
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir.to_path_buf(), &e))?;
    let config_path = dir.join(CONFIG_FILE);
    config
        .save(&config_path)
        .map_err(|e| write_err(config_path, &e))?;
    let weights = dir.join(WEIGHTS_FILE);
    let mut store = SafetensorsStore::from_file(&weights).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| write_err(weights, &e))
}

/// Rebuilds the model saved by [`save`] on `device`; fails if any tensor is missing or
/// misshapen.
pub fn load(dir: &Path, device: &Device) -> Result<(TemporalModel, TemporalConfig), StoreError> {
    let read_err = |path: PathBuf, reason: String| StoreError::Read { path, reason };
    let config_path = dir.join(CONFIG_FILE);
    let config =
        TemporalConfig::load(&config_path).map_err(|e| read_err(config_path, e.to_string()))?;
    let weights = dir.join(WEIGHTS_FILE);
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_file(&weights);
    let result = model
        .load_from(&mut store)
        .map_err(|e| read_err(weights.clone(), e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(read_err(
            weights,
            format!(
                "missing [{}], errors [{}]",
                missing.join(", "),
                errors.join("; ")
            ),
        ));
    }
    Ok((model, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CellKind, Head};

    #[test]
    fn saved_model_reloads_with_identical_outputs() {
        let device = Device::flex();
        let config = TemporalConfig::new(
            CellKind::Gru,
            Head::Anticipate {
                classes: 4,
                horizon: 2,
            },
        )
        .with_input_dim(5)
        .with_projection(7)
        .with_hidden(6)
        .with_layers(2);
        let model = config.init(&device).with_normalization(
            Tensor::from_floats([0.1, 0.2, 0.3, 0.4, 0.5], &device),
            Tensor::from_floats([1.0, 2.0, 3.0, 4.0, 5.0], &device),
        );
        let dir = std::env::temp_dir().join(format!("temporal-store-{}", std::process::id()));
        save(&model, &config, &dir).expect("save");
        let (loaded, loaded_config) = load(&dir, &device).expect("load");
        assert_eq!(loaded_config.head, config.head);
        let x = Tensor::<3>::random([2, 3, 5], burn::tensor::Distribution::Default, &device);
        let diff = (model.forward(x.clone(), None).0 - loaded.forward(x, None).0)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        assert!(load(&dir.join("missing"), &device).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

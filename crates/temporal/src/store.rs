//! A trained model's weights on disk: `model.safetensors` (input normalisation included) and
//! `baseline.safetensors` (the order-blind baseline). The settings to rebuild them from, a
//! [`TemporalConfig`], are kept beside them by the caller.

use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::baseline::MeanPoolBaseline;
use crate::error::{Error, Result};
use crate::model::{TemporalConfig, TemporalModel};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const BASELINE_FILE: &str = "baseline.safetensors";

/// Writes the weights (input normalisation included) to `dir/model.safetensors`; the caller
/// keeps the [`TemporalConfig`] beside them (the pipeline's `config.json`).
pub fn save(model: &TemporalModel, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let weights = dir.join(WEIGHTS_FILE);
    let mut store = SafetensorsStore::from_file(&weights).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::write(weights, e))
}

/// Rebuilds the model saved by [`save`] from its `config` on `device`; fails if any tensor is
/// missing or misshapen.
pub fn load(dir: &Path, config: &TemporalConfig, device: &Device) -> Result<TemporalModel> {
    let path = dir.join(WEIGHTS_FILE);
    let mut model = config.init(device);
    load_weights(&mut model, SafetensorsStore::from_file(&path), &path)?;
    Ok(model)
}

/// Like [`load`], from the bytes of a `model.safetensors` (e.g. one built into a binary);
/// `source` names them in errors.
pub fn load_bytes(
    bytes: &[u8],
    config: &TemporalConfig,
    device: &Device,
    source: &Path,
) -> Result<TemporalModel> {
    let mut model = config.init(device);
    let store = SafetensorsStore::from_bytes(Some(bytes.to_vec()));
    load_weights(&mut model, store, source)?;
    Ok(model)
}

/// Writes the order-blind baseline beside the model.
pub fn save_baseline(baseline: &MeanPoolBaseline, dir: &Path) -> Result<()> {
    let path = dir.join(BASELINE_FILE);
    let mut store = SafetensorsStore::from_file(&path).overwrite(true);
    baseline
        .save_into(&mut store)
        .map_err(|e| Error::write(path, e))
}

/// The baseline saved by [`save_baseline`], if the folder has one.
pub fn load_baseline(
    dir: &Path,
    config: &TemporalConfig,
    device: &Device,
) -> Result<Option<MeanPoolBaseline>> {
    let path = dir.join(BASELINE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut baseline = MeanPoolBaseline::init(config.input_dim, config.output_dim(), device);
    load_weights(&mut baseline, SafetensorsStore::from_file(&path), &path)?;
    Ok(Some(baseline))
}

/// Loads every tensor of `module` from `store` (read from `path`); fails on any missing or
/// misshapen one.
fn load_weights<M: ModuleSnapshot>(
    module: &mut M,
    store: SafetensorsStore,
    path: &Path,
) -> Result<()> {
    // Missing or misfit tensors come back in the report, read below, not as a store error.
    let mut store = store.validate(false).allow_partial(true);
    let result = module
        .load_from(&mut store)
        .map_err(|e| Error::read(path, e))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(Error::Weights {
            path: path.to_path_buf(),
            missing: result.missing.into_iter().map(|(key, _)| key).collect(),
            errors: result.errors,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CellKind, Head};

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
        save(&model, &dir).expect("save");
        let loaded = load(&dir, &config, &device).expect("load");
        let x = Tensor::<3>::random([2, 3, 5], burn::tensor::Distribution::Default, &device);
        let diff = (model.forward(x.clone(), None).0 - loaded.forward(x, None).0)
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        let err = load(&dir.join("missing"), &config, &device).expect_err("no file");
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        let other = config.clone().with_hidden(7);
        let err = load(&dir, &other, &device).expect_err("wrong shapes");
        assert!(
            matches!(&err, Error::Weights { errors, .. } if !errors.is_empty()),
            "{err:?}"
        );
        assert!(err.to_string().contains("model.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

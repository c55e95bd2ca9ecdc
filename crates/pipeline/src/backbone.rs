//! The CNN stage: loads EfficientNet-Lite0 and turns batches of decoded frames into features.

use std::path::Path;

use crate::data::cache::{file_hash, hash_bytes};
use anyhow::{Context as _, Result};
use burn::prelude::*;
use vision::cpu::CpuBackbone;
use vision::{EfficientNet, EfficientNetConfig, FEATURE_DIM, preprocess, weights};

/// The ImageNet weights converted from `models/efficientnet-lite0-57934424.pth` (see
/// `models/README.md`), built into the binary so it runs from any directory.
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../models/efficientnet-lite0.safetensors");

/// The backbone on its device.
#[derive(Debug)]
pub struct Backbone {
    model: EfficientNet,
    /// On the CPU, the network runs in `vision`'s fused kernels rather than op by op in
    /// burn-flex (several times faster; the same function, golden-tested).
    cpu: Option<CpuBackbone>,
    device: Device,
    /// Where the weights came from, for metadata.
    pub weights: String,
    /// Names the network and the exact weights (a hash of their bytes): what a feature cache
    /// entry depends on.
    pub fingerprint: String,
}

impl Backbone {
    /// Builds the network for `size x size` inputs with the shipped weights, or those at
    /// `weights_path` (`.pth` from `efficientnet_lite_pytorch`, or our `.safetensors`), with
    /// BatchNorm folded into the convolutions (inference only).
    pub fn load(weights_path: Option<&Path>, size: u32, device: &Device) -> Result<Self> {
        let mut model = EfficientNetConfig::new()
            .with_image_size(size as usize)
            .init(device);
        let (report, source, hash) = match weights_path {
            None => (
                weights::load_safetensors_bytes(&mut model, EMBEDDED_WEIGHTS, "built-in weights")?,
                "built-in efficientnet-lite0 ImageNet".to_string(),
                hash_bytes(EMBEDDED_WEIGHTS),
            ),
            Some(path) => {
                let is_pth = path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("pth") || e.eq_ignore_ascii_case("pt"));
                let report = if is_pth {
                    weights::load_pytorch(&mut model, path)
                } else {
                    weights::load_safetensors(&mut model, path)
                }
                .with_context(|| format!("loading --weights {}", path.display()))?;
                (report, path.display().to_string(), file_hash(path)?)
            }
        };
        tracing::debug!(
            applied = report.applied,
            unused = report.unused.len(),
            "loaded backbone weights from {source}"
        );
        let fingerprint = format!("{} weights={hash:016x}", model.variant().name());
        let model = model.fold_batchnorm();
        let cpu = (*device == Device::flex())
            .then(|| CpuBackbone::new(&model))
            .transpose()?;
        Ok(Self {
            fingerprint,
            model,
            cpu,
            device: device.clone(),
            weights: source,
        })
    }

    /// Where the network runs.
    pub fn device(&self) -> Device {
        self.device.clone()
    }

    pub fn variant_name(&self) -> &'static str {
        self.model.variant().name()
    }

    /// Features `[N, 1280]` of `n` frames given as concatenated `size x size x 3` RGB bytes.
    /// Upload, normalisation and the network all run on the backbone's device.
    pub fn features(&self, rgb: Vec<u8>, n: usize) -> Tensor<2> {
        if let Some(cpu) = &self.cpu {
            let features = cpu.features(&rgb, n);
            return Tensor::from_data(TensorData::new(features, [n, FEATURE_DIM]), &self.device);
        }
        let size = self.model.image_size();
        let x = preprocess::normalize(preprocess::upload_rgb(rgb, [n, size, size], &self.device));
        self.model.forward_features(x)
    }

    /// ImageNet logits `[N, 1000]` from features.
    pub fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        self.model.classify(features)
    }
}

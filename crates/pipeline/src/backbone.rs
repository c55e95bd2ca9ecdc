//! The CNN stage: loads EfficientNet-Lite0 and turns batches of decoded frames into features.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use vision::cpu::{CpuBackbone, KernelPath};
use vision::{EfficientNet, EfficientNetConfig, FEATURE_DIM, preprocess, weights};

use crate::device::{self, DeviceChoice, Selected};
use crate::hash::{file_hash, hash_bytes};

/// The ImageNet weights converted from `models/efficientnet-lite0-57934424.pth` (see
/// `models/README.md`), built into the binary so it runs from any directory.
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../../models/efficientnet-lite0.safetensors");

/// The float type the CNN computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// Half precision, on GPUs with f16 shaders: half the memory traffic.
    F16,
    /// bfloat16 1x1 convolutions (sums in f32), on CPUs with AVX-512 BF16
    /// ([`CpuBackbone::in_bf16`]).
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }
}

/// Where the CNN runs and with which weights.
#[derive(Debug, Clone)]
pub struct BackboneSettings {
    pub device: DeviceChoice,
    /// Frames per CNN batch.
    pub batch: u32,
    /// Weights to use instead of the built-in ones (`.pth` or `.safetensors`).
    pub weights: Option<PathBuf>,
    pub precision: Precision,
    /// The CPU kernels to run the CNN in; `None`: the fastest this CPU has.
    pub kernels: Option<KernelPath>,
}

impl Default for BackboneSettings {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            batch: 16,
            weights: None,
            precision: Precision::F32,
            kernels: None,
        }
    }
}

impl BackboneSettings {
    /// The device for the CNN ([`device::select`]), its line naming the CPU kernels and
    /// precision. `auto` with `--precision bf16`, a CPU precision, is the CPU.
    pub fn select_device(&self) -> Result<Selected> {
        let selected = device::select(self.device_choice())?;
        let kernels = self
            .kernels
            .map_or(vision::cpu::kernels(), KernelPath::name);
        Ok(match self.precision {
            Precision::Bf16 => selected.with_kernels(&format!("{kernels} bf16")),
            _ => selected.with_kernels(kernels),
        })
    }

    fn device_choice(&self) -> DeviceChoice {
        match (self.device, self.precision) {
            (DeviceChoice::Auto, Precision::Bf16) => DeviceChoice::Cpu,
            (choice, _) => choice,
        }
    }
}

/// The fingerprint of the built-in weights: what a feature cache entry and a trained head
/// made with them record.
pub fn builtin_fingerprint() -> String {
    format!(
        "{} weights={:016x}",
        vision::Variant::Lite0.name(),
        builtin_weights_hash()
    )
}

/// XXH3 of the built-in weights (18 MB), hashed once per process: every `run` reads the
/// built-in forecaster's card, whose fingerprint is upgraded with it, then loads the backbone.
fn builtin_weights_hash() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| hash_bytes(EMBEDDED_WEIGHTS))
}

/// A fingerprint as recorded by a release before model folder version 2, in this release's
/// terms: those hashed weights with our own FNV-1a variant, this one with XXH3-64. The built-in
/// weights' old fingerprint becomes their new one; any other stays as it is (it cannot be
/// recomputed without the weights it names).
pub fn upgrade_fingerprint(old: &str) -> String {
    const BUILTIN_BEFORE_XXH3: &str = "efficientnet-lite0 weights=4490b8239a947d71";
    if old == BUILTIN_BEFORE_XXH3 {
        builtin_fingerprint()
    } else {
        old.to_string()
    }
}

/// The backbone on its device.
#[derive(Debug)]
pub struct Backbone {
    model: EfficientNet,
    /// The float type of the network's parameters and activations; features are always
    /// returned in f32.
    dtype: FloatDType,
    /// On the CPU, the network runs in `vision`'s fused kernels rather than op by op in
    /// burn-flex (several times faster; the same function, golden-tested).
    cpu: Option<CpuBackbone>,
    /// On a GPU, smaller batches (a video's last) are padded to `--batch` frames: every new
    /// input shape costs seconds of kernel autotuning, which one shape per run pays only once.
    gpu_batch: usize,
    /// Frames per batch the settings asked for.
    batch: usize,
    precision: Precision,
    device: Device,
    /// Where the weights came from, for metadata.
    pub weights: String,
    /// Names the network and the exact weights (a hash of their bytes): what a feature cache
    /// entry depends on.
    pub fingerprint: String,
}

impl Backbone {
    /// Builds the network for `size x size` inputs with the shipped weights, or those at
    /// `--weights` (`.pth` from `efficientnet_lite_pytorch`, or our `.safetensors`), with
    /// BatchNorm folded into the convolutions (inference only), in `args.precision`, on
    /// `device` (already chosen from `args.device` by [`crate::device::select`]).
    pub fn load(args: &BackboneSettings, size: u32, device: &Device) -> Result<Self> {
        let dtype = match args.precision {
            Precision::F32 => FloatDType::F32,
            Precision::F16 if *device == Device::flex() => {
                bail!(
                    "--precision f16 needs a GPU (--device wgpu); on the CPU, --precision bf16 (with AVX-512 BF16)"
                )
            }
            Precision::F16 if !device.supports_dtype(DType::F16) => {
                bail!("--precision f16: this GPU adapter has no f16 shader support")
            }
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 if *device != Device::flex() => {
                bail!(
                    "--precision bf16 is for the CPU (--device cpu, AVX-512 BF16); on a GPU use --precision f16"
                )
            }
            // The burn module stays f32; the CPU kernels round to bf16 themselves.
            Precision::Bf16 => FloatDType::F32,
        };
        let weights_path = args.weights.as_deref();
        let mut model = EfficientNetConfig::new()
            .with_image_size(size as usize)
            .init(device);
        let (report, source, hash) = match weights_path {
            None => (
                weights::load_safetensors_bytes(&mut model, EMBEDDED_WEIGHTS, "built-in weights")?,
                "built-in efficientnet-lite0 ImageNet".to_string(),
                builtin_weights_hash(),
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
        // Folded in f32, then cast: the folded scales are computed at full precision.
        let model = model.fold_batchnorm().cast(dtype);
        let cpu = (*device == Device::flex())
            .then(|| CpuBackbone::new(&model))
            .transpose()?;
        let cpu = match (cpu, args.kernels) {
            (Some(cpu), Some(path)) => {
                let cpu = cpu.on(path).context("--kernels")?;
                if path != KernelPath::best() {
                    tracing::info!("the CNN runs in the {} kernels (--kernels)", path.name());
                }
                Some(cpu)
            }
            (cpu, _) => cpu,
        };
        let cpu = match cpu {
            Some(cpu) if args.precision == Precision::Bf16 => {
                Some(cpu.in_bf16().context("--precision bf16")?)
            }
            cpu => cpu,
        };
        Ok(Self {
            fingerprint,
            model,
            dtype,
            cpu,
            gpu_batch: args.batch as usize,
            batch: args.batch as usize,
            precision: args.precision,
            device: device.clone(),
            weights: source,
        })
    }

    /// Frames per batch the settings asked for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The float type the network computes in.
    pub fn precision(&self) -> Precision {
        self.precision
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
        let (rgb, padded) = pad_frames(rgb, n, self.gpu_batch, size * size * 3);
        let x = preprocess::normalize(preprocess::upload_rgb(
            rgb,
            [padded, size, size],
            &self.device,
        ));
        // Casting to the dtype a tensor already has does nothing.
        let features = self
            .model
            .forward_features(x.cast(self.dtype))
            .cast(FloatDType::F32);
        if padded == n {
            features
        } else {
            features.slice([0..n, 0..FEATURE_DIM])
        }
    }

    /// Whether the network runs in `vision`'s CPU kernels.
    pub fn on_cpu(&self) -> bool {
        self.cpu.is_some()
    }

    /// The CPU kernels the network runs in, when on the CPU.
    pub fn kernels(&self) -> Option<KernelPath> {
        self.cpu.as_ref().map(CpuBackbone::kernels)
    }

    /// The time of each step of [`Self::features`] for `batch` mid-grey frames.
    /// - On a GPU, the device synchronised after every step: the upload, unpacking and
    ///   normalisation, each layer, the read-back. Synchronising stops layers overlapping and
    ///   fusing across each other, so the sum is somewhat above the time of a plain batch.
    /// - On the CPU, each layer's thread time summed over the batch's frames, timed inside the
    ///   fused kernels' own loop ([`CpuBackbone::features_profiled`]; normalisation is part of
    ///   the stem).
    pub fn layer_times(&self, batch: usize) -> Result<Vec<LayerTime>> {
        if let Some(cpu) = &self.cpu {
            let size = cpu.image_size();
            let (_, layers) = cpu.features_profiled(&vec![128u8; batch * size * size * 3], batch);
            let times = layers.into_iter().map(|layer| {
                let [c, h, w] = layer.dims;
                LayerTime {
                    name: layer.layer.name(),
                    dims: [batch, c, h, w],
                    seconds: layer.seconds,
                }
            });
            return Ok(times.collect());
        }
        let size = self.model.image_size();
        let sync = || {
            self.device
                .sync()
                .map_err(|e| anyhow::anyhow!("synchronising the device: {e:?}"))
        };
        let mut times = Vec::new();
        let rgb = vec![128u8; batch * size * size * 3];
        let len = rgb.len();
        sync()?;
        let mut last = Instant::now();
        let words = preprocess::upload_bytes(rgb, &self.device);
        let mut step = |name: &'static str, dims: [usize; 4]| -> Result<()> {
            sync()?;
            let now = Instant::now();
            times.push(LayerTime {
                name,
                dims,
                seconds: (now - last).as_secs_f64(),
            });
            last = now;
            Ok(())
        };
        step("upload", [len.div_ceil(4), 1, 1, 1])?;
        let x = preprocess::normalize(
            preprocess::unpack_bytes(words, len).reshape([batch, size, size, 3]),
        )
        .cast(self.dtype);
        step("normalise", x.dims())?;
        let mut failed = Ok(());
        let features = self.model.forward_features_observed(x, |layer, dims| {
            if failed.is_ok() {
                failed = step(layer.name(), dims);
            }
        });
        failed?;
        features
            .cast(FloatDType::F32)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading features: {e:?}"))?;
        step("read back", [batch, FEATURE_DIM, 1, 1])?;
        Ok(times)
    }

    /// ImageNet logits `[N, 1000]` from features.
    pub fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        self.model
            .classify(features.cast(self.dtype))
            .cast(FloatDType::F32)
    }
}

/// One step of [`Backbone::layer_times`].
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// `upload`, `normalise`, a [`vision::Layer`] name, or `read back` (on the CPU, layer
    /// names only).
    pub name: &'static str,
    /// The step's output.
    pub dims: [usize; 4],
    pub seconds: f64,
}

/// `n` frames of `frame_len` bytes padded with black frames to `batch` frames when fewer; the
/// frames and how many there now are.
fn pad_frames(mut rgb: Vec<u8>, n: usize, batch: usize, frame_len: usize) -> (Vec<u8>, usize) {
    if n >= batch {
        return (rgb, n);
    }
    rgb.resize(batch * frame_len, 0);
    (rgb, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bf16 is a CPU precision: `auto` takes the CPU for it (a GPU is for f16); an explicit
    /// device stays as asked (wgpu then refuses bf16 with a line saying so).
    #[test]
    fn bf16_on_auto_is_the_cpu() {
        let settings = |device, precision| BackboneSettings {
            device,
            precision,
            ..BackboneSettings::default()
        };
        use DeviceChoice::{Auto, Cpu, Wgpu};
        assert_eq!(settings(Auto, Precision::Bf16).device_choice(), Cpu);
        assert_eq!(settings(Auto, Precision::F32).device_choice(), Auto);
        assert_eq!(settings(Auto, Precision::F16).device_choice(), Auto);
        assert_eq!(settings(Wgpu, Precision::Bf16).device_choice(), Wgpu);
        let selected = settings(Auto, Precision::Bf16)
            .select_device()
            .expect("the CPU");
        assert_eq!(selected.device, Device::flex());
        assert!(
            selected.description.contains("bf16"),
            "{}",
            selected.description
        );
    }

    #[test]
    fn short_batches_are_padded_with_black_frames_and_full_ones_kept() {
        let (rgb, n) = pad_frames(vec![7; 2 * 12], 2, 4, 12);
        assert_eq!(n, 4);
        assert_eq!(rgb.len(), 4 * 12);
        assert!(rgb[..24].iter().all(|&v| v == 7) && rgb[24..].iter().all(|&v| v == 0));
        for n in [4, 5] {
            let (rgb, m) = pad_frames(vec![7; n * 12], n, 4, 12);
            assert_eq!((rgb.len(), m), (n * 12, n));
        }
    }
}

//! EfficientNet-Lite (Tan & Le 2019; the "Lite" variants drop squeeze-excitation, use ReLU6 and
//! keep stem and head fixed so the network quantises and runs well on plain hardware).
//!
//! Field names mirror the PyTorch implementation the ImageNet weights come from
//! (`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`, ...) minus the leading underscores, so
//! the key remapping in [`crate::weights`] stays one rule.

use burn::module::{ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::relu6;
use serde::{Deserialize, Serialize};

/// Width of the embedding `forward_features` returns.
pub const FEATURE_DIM: usize = 1280;
/// Number of ImageNet classes the classifier scores.
pub const NUM_CLASSES: usize = 1000;

/// Which EfficientNet-Lite network. Only Lite0 has shipped weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    /// 4.7 M parameters, 224 x 224 input, 0.4 GFLOPs per image.
    Lite0,
}

impl Variant {
    /// Name used in metadata and logs, e.g. `efficientnet-lite0`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lite0 => "efficientnet-lite0",
        }
    }

    /// The MBConv stages: `(repeats, kernel, stride, expand_ratio, in_channels, out_channels)`,
    /// from `efficientnet_lite_builder.py` (width and depth multipliers 1.0 for Lite0).
    fn stages(self) -> &'static [(usize, usize, usize, usize, usize, usize)] {
        match self {
            Variant::Lite0 => &[
                (1, 3, 1, 1, 32, 16),
                (2, 3, 2, 6, 16, 24),
                (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112),
                (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320),
            ],
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Configuration of an [`EfficientNet`].
#[derive(Config, Debug)]
pub struct EfficientNetConfig {
    /// Which network.
    #[config(default = "Variant::Lite0")]
    pub variant: Variant,
    /// Side of the square input. TensorFlow's 'same' padding depends on it: a stride-2
    /// convolution over an even size pads one more row and column at the bottom and right.
    #[config(default = 224)]
    pub image_size: usize,
    /// BatchNorm epsilon of the TensorFlow original.
    #[config(default = 1e-3)]
    pub bn_epsilon: f64,
}

/// TensorFlow 'same' padding of one spatial axis: `(before, after, output_size)`.
pub(crate) fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2, out)
}

/// A bias-free convolution with 'same' padding for a `size` x `size` input; returns the layer
/// and its output size.
fn same_conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    size: usize,
    device: &Device,
) -> (Conv2d, usize) {
    let (before, after, out) = same_padding(size, kernel, stride);
    let conv = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(before, before, after, after))
        .with_bias(false)
        .init(device);
    (conv, out)
}

impl EfficientNetConfig {
    /// Builds the network with freshly initialised weights; load real ones with
    /// [`crate::weights`].
    pub fn init(&self, device: &Device) -> EfficientNet {
        let bn = |features| {
            BatchNormConfig::new(features)
                .with_epsilon(self.bn_epsilon)
                .init(device)
        };
        let (conv_stem, mut size) = same_conv([3, 32], 3, 2, 1, self.image_size, device);
        let mut blocks = Vec::new();
        for &(repeats, kernel, stride, expand, in_ch, out_ch) in self.variant.stages() {
            for r in 0..repeats {
                let (input, stride) = if r == 0 { (in_ch, stride) } else { (out_ch, 1) };
                let hidden = input * expand;
                let (expand_conv, bn0) = if expand == 1 {
                    (None, None)
                } else {
                    let (conv, _) = same_conv([input, hidden], 1, 1, 1, size, device);
                    (Some(conv), Some(bn(hidden)))
                };
                let (depthwise_conv, out_size) =
                    same_conv([hidden, hidden], kernel, stride, hidden, size, device);
                let (project_conv, _) = same_conv([hidden, out_ch], 1, 1, 1, out_size, device);
                blocks.push(MbConv {
                    expand_conv,
                    bn0,
                    depthwise_conv,
                    bn1: Some(bn(hidden)),
                    project_conv,
                    bn2: Some(bn(out_ch)),
                    residual: stride == 1 && input == out_ch,
                });
                size = out_size;
            }
        }
        let last = self.variant.stages().last().map_or(320, |stage| stage.5);
        let (conv_head, _) = same_conv([last, FEATURE_DIM], 1, 1, 1, size, device);
        EfficientNet {
            conv_stem,
            bn0: Some(bn(32)),
            blocks,
            conv_head,
            bn1: Some(bn(FEATURE_DIM)),
            fc: LinearConfig::new(FEATURE_DIM, NUM_CLASSES).init(device),
            variant: self.variant,
            image_size: self.image_size,
        }
    }
}

/// Mobile inverted bottleneck: 1x1 expansion, depthwise k x k, 1x1 projection, with a
/// residual connection when the shape is kept.
#[derive(Module, Debug)]
pub(crate) struct MbConv {
    pub(crate) expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    pub(crate) depthwise_conv: Conv2d,
    bn1: Option<BatchNorm>,
    pub(crate) project_conv: Conv2d,
    bn2: Option<BatchNorm>,
    #[module(skip)]
    pub(crate) residual: bool,
}

impl MbConv {
    /// `[N, C_in, H, W]` to `[N, C_out, H / stride, W / stride]`, calling `after` when each
    /// layer is queued.
    fn forward(&self, input: Tensor<4>, after: &mut impl FnMut(Layer, [usize; 4])) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(conv) = &self.expand_conv {
            x = relu6(conv_bn(conv, &self.bn0, x));
            after(Layer::Expand, x.dims());
        }
        x = relu6(conv_bn(&self.depthwise_conv, &self.bn1, x));
        after(Layer::Depthwise, x.dims());
        x = conv_bn(&self.project_conv, &self.bn2, x);
        x = if self.residual { x + input } else { x };
        after(Layer::Project, x.dims());
        x
    }

    fn fold_batchnorm(&mut self) {
        if let Some(conv) = &mut self.expand_conv {
            fold(conv, self.bn0.take());
        }
        fold(&mut self.depthwise_conv, self.bn1.take());
        fold(&mut self.project_conv, self.bn2.take());
    }
}

/// A convolution followed by its BatchNorm, unless that was folded into it.
fn conv_bn(conv: &Conv2d, bn: &Option<BatchNorm>, x: Tensor<4>) -> Tensor<4> {
    let x = conv.forward(x);
    match bn {
        Some(bn) => bn.forward(x),
        None => x,
    }
}

/// Folds inference-mode BatchNorm into the convolution before it:
/// `gamma (conv(x) + b - mean) / sqrt(var + eps) + beta` is `conv'(x) + b'` with
/// `w' = w s`, `b' = beta + (b - mean) s`, `s = gamma / sqrt(var + eps)` per output channel.
fn fold(conv: &mut Conv2d, bn: Option<BatchNorm>) {
    let Some(bn) = bn else { return };
    let weight = conv.weight.val();
    let [c_out, ..] = weight.dims();
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let bias = conv
        .bias
        .as_ref()
        .map_or_else(|| Tensor::zeros([c_out], &weight.device()), |b| b.val());
    let bias = bn.beta.val() + (bias - bn.running_mean.value()) * scale.clone();
    conv.weight = Param::from_tensor(weight * scale.reshape([c_out, 1, 1, 1]));
    conv.bias = Some(Param::from_tensor(bias));
}

/// The kinds of layer [`EfficientNet::forward_features_observed`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// The 3x3 stride-2 convolution on the image.
    Stem,
    /// A block's 1x1 expansion.
    Expand,
    /// A block's depthwise convolution.
    Depthwise,
    /// A block's 1x1 projection, with the residual connection.
    Project,
    /// The 1x1 head convolution and the global average pool.
    HeadPool,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Self::Stem => "stem",
            Self::Expand => "expand",
            Self::Depthwise => "depthwise",
            Self::Project => "project",
            Self::HeadPool => "head+pool",
        }
    }
}

/// EfficientNet-Lite with its ImageNet classifier.
#[derive(Module, Debug)]
pub struct EfficientNet {
    pub(crate) conv_stem: Conv2d,
    bn0: Option<BatchNorm>,
    pub(crate) blocks: Vec<MbConv>,
    pub(crate) conv_head: Conv2d,
    bn1: Option<BatchNorm>,
    fc: Linear,
    #[module(skip)]
    variant: Variant,
    #[module(skip)]
    image_size: usize,
}

impl EfficientNet {
    /// Which network this is.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Side of the square input the network was built for.
    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Folds every BatchNorm into the convolution before it, for inference: the same function
    /// (up to float rounding) with one pass over each activation instead of two. Load weights
    /// first: the folded network has no BatchNorm parameters left to load into.
    pub fn fold_batchnorm(mut self) -> Self {
        fold(&mut self.conv_stem, self.bn0.take());
        for block in &mut self.blocks {
            block.fold_batchnorm();
        }
        fold(&mut self.conv_head, self.bn1.take());
        self
    }

    /// The network with every parameter cast to `dtype` (f16 for half-precision inference);
    /// inputs must then be cast to it too. Fold BatchNorm first, in f32.
    pub fn cast(self, dtype: FloatDType) -> Self {
        struct Cast(FloatDType);
        impl ModuleMapper for Cast {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                param.map(|tensor| tensor.cast(self.0))
            }
        }
        if dtype == FloatDType::F32 {
            return self;
        }
        self.map(&mut Cast(dtype))
    }

    /// Embeddings: normalised images `[N, 3, S, S]` to `[N, 1280]`, the global average pool
    /// after the head convolution (what the classifier reads).
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_features_observed(images, |_, _| {})
    }

    /// [`Self::forward_features`], calling `after(layer, output dims)` as soon as each layer
    /// is queued (activation and residual included), in order. A profile synchronises the
    /// device there; the head's dims are those of the pooled `[N, 1280, 1, 1]`.
    pub fn forward_features_observed(
        &self,
        images: Tensor<4>,
        mut after: impl FnMut(Layer, [usize; 4]),
    ) -> Tensor<2> {
        let mut x = relu6(conv_bn(&self.conv_stem, &self.bn0, images));
        after(Layer::Stem, x.dims());
        for block in &self.blocks {
            x = block.forward(x, &mut after);
        }
        let x = relu6(conv_bn(&self.conv_head, &self.bn1, x));
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([n, c]);
        after(Layer::HeadPool, [n, c, 1, 1]);
        pooled
    }

    /// ImageNet logits `[N, 1000]` from embeddings `[N, 1280]`.
    pub fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    /// ImageNet logits `[N, 1000]` from normalised images `[N, 3, S, S]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify(self.forward_features(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 / stride 2 -> 112; (112 - 1) * 2 + 3 - 224 = 1: nothing before, one after.
        assert_eq!(same_padding(224, 3, 2), (0, 1, 112));
        // 56 / stride 2 with k5 -> 28; 27 * 2 + 5 - 56 = 3: one before, two after.
        assert_eq!(same_padding(56, 5, 2), (1, 2, 28));
        // Stride 1 keeps the size with symmetric padding.
        assert_eq!(same_padding(14, 5, 1), (2, 2, 14));
        assert_eq!(same_padding(7, 1, 1), (0, 0, 7));
        // Odd sizes: 225 / 2 -> 113; 112 * 2 + 3 - 225 = 2: one each side.
        assert_eq!(same_padding(225, 3, 2), (1, 1, 113));
    }

    #[test]
    fn lite0_has_sixteen_blocks_and_shapes_flow() {
        let device = Device::flex();
        let model = EfficientNetConfig::new().with_image_size(64).init(&device);
        assert_eq!(model.blocks.len(), 16);
        let features = model.forward_features(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(features.dims(), [2, FEATURE_DIM]);
        assert_eq!(model.classify(features).dims(), [2, NUM_CLASSES]);
    }

    #[test]
    fn every_layer_is_reported_in_order_with_its_output_shape() {
        let device = Device::flex();
        let model = EfficientNetConfig::new().with_image_size(64).init(&device);
        let mut seen = Vec::new();
        let x = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let observed = model.forward_features_observed(x.clone(), |layer, dims| {
            seen.push((layer, dims));
        });
        let count = |kind| seen.iter().filter(|(l, _)| *l == kind).count();
        // The first block has no expansion (expand ratio 1).
        assert_eq!(
            [
                Layer::Stem,
                Layer::Expand,
                Layer::Depthwise,
                Layer::Project,
                Layer::HeadPool
            ]
            .map(count),
            [1, 15, 16, 16, 1]
        );
        assert_eq!(seen[0], (Layer::Stem, [2, 32, 32, 32]));
        assert_eq!(seen[1], (Layer::Depthwise, [2, 32, 32, 32]));
        assert_eq!(seen[2], (Layer::Project, [2, 16, 32, 32]));
        assert_eq!(seen[seen.len() - 2], (Layer::Project, [2, 320, 2, 2]));
        assert_eq!(
            seen[seen.len() - 1],
            (Layer::HeadPool, [2, FEATURE_DIM, 1, 1])
        );
        // Observing changes nothing.
        let plain = model.forward_features(x);
        let diff = (plain - observed).abs().max().into_scalar::<f32>();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn folding_batchnorm_keeps_the_function() {
        let device = Device::flex();
        let mut model = EfficientNetConfig::new().with_image_size(32).init(&device);
        // Non-trivial statistics, so that folding has something to get wrong.
        let stats = |n: usize, lo: f64, hi: f64| {
            Tensor::<1>::random([n], burn::tensor::Distribution::Uniform(lo, hi), &device)
        };
        for block in &mut model.blocks {
            for bn in [&mut block.bn0, &mut block.bn1, &mut block.bn2]
                .into_iter()
                .flatten()
            {
                let n = bn.gamma.val().dims()[0];
                bn.gamma = Param::from_tensor(stats(n, 0.5, 1.5));
                bn.beta = Param::from_tensor(stats(n, -0.5, 0.5));
                bn.running_mean = burn::module::RunningState::new(stats(n, -0.2, 0.2));
                bn.running_var = burn::module::RunningState::new(stats(n, 0.5, 2.0));
            }
        }
        let x = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let before = model.forward_features(x.clone());
        let after = model.fold_batchnorm().forward_features(x);
        let diff = (before.clone() - after).abs().max().into_scalar::<f32>();
        let scale = before.abs().max().into_scalar::<f32>();
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "max diff {diff} (scale {scale})"
        );
    }
}

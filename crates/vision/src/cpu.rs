//! The CPU inference path: the folded network compiled into channels-last (NHWC) kernels.
//!
//! burn-flex runs the network one generic operation at a time, in NCHW, with a pass over memory
//! (and an allocation) for every convolution, bias, ReLU6 and residual add; on the 2-core
//! development machine that gave 14 frames/s. Here each layer is one pass: the input
//! normalisation is fused into the stem's patch gathering, and bias, ReLU6 and the residual add
//! into the layer that produces them.
//! - On x86-64 with AVX2 and FMA (`cpu/x86.rs`), 1x1 convolutions (nine tenths of the
//!   arithmetic) keep a 6-pixel x 16-channel tile of outputs in registers through the whole sum
//!   (with AVX-512F, 6 x 64 in 512-bit registers); aarch64 does the same in NEON
//!   (`cpu/neon.rs`); `cpu/driver.rs` blocks and packs for both. The expansion writes its rows
//!   in planes of 8 channels, with the zero border 'same' padding reads, so that the depthwise
//!   convolution keeps 8 channels of 8 pixels of an output row in registers across the taps,
//!   all of them contiguous loads and none a special case at the image's edge. It writes planes
//!   too (whole cache lines), which the projection reads 6 pixels x 8 channels at a time.
//! - Elsewhere, the 1x1 convolutions are matrix products in the `gemm` crate (burn-flex's own)
//!   and the depthwise convolutions plain loops over channels-last rows.
//! - On request ([`CpuBackbone::in_bf16`]), where the CPU has AVX-512 BF16, the 1x1
//!   convolutions of 32 or more output channels but the stem's run in bf16 (`cpu/bf16.rs`):
//!   the same tiles taking a pair of input channels per step, twice the products per
//!   instruction, with sums in f32.
//!
//! Each MBConv block runs a band of output rows at a time (expansion, depthwise, projection),
//! so its expanded activation, the largest in the network, stays in the core's cache. Frames
//! run one per thread, so threads never wait for each other within a batch (a lone frame gets
//! all threads only on the portable path).
//!
//! [`CpuBackbone`] is built from a loaded, BatchNorm-folded [`EfficientNet`], so the weights,
//! their loading and the golden tests stay with the burn module. It computes the same function:
//! every path this CPU runs is tested against the module, its kernels against plain loops on
//! odd shapes, and against the PyTorch golden outputs.

use std::cell::Cell;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

use crate::efficientnet::{EfficientNet, Layer};
use crate::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use crate::{FEATURE_DIM, VisionError};

#[cfg(target_arch = "x86_64")]
mod bf16;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod driver;
#[cfg(target_arch = "aarch64")]
#[path = "cpu/neon.rs"]
mod simd;
#[cfg(target_arch = "x86_64")]
#[path = "cpu/x86.rs"]
mod simd;

/// The SIMD kernels' token where the CPU has them: on x86-64, proof of AVX2 and FMA (or of
/// AVX-512F too); on aarch64, of NEON.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type Simd = Option<simd::Isa>;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
type Simd = Option<std::convert::Infallible>;

/// The bf16 tiles' token where the CPU has them (x86-64 with AVX-512 BF16).
#[cfg(target_arch = "x86_64")]
type Bf16 = Option<simd::Avx512Bf16>;
#[cfg(not(target_arch = "x86_64"))]
type Bf16 = Option<std::convert::Infallible>;

/// Whether this CPU can run the CNN with its 1x1 convolutions in bf16 ([`CpuBackbone::in_bf16`]):
/// x86-64 with AVX-512F, BF16, VL and BW (AMD Zen 4 and later, Intel Cooper Lake, Sapphire
/// Rapids and later).
pub fn bf16_available() -> bool {
    detect_bf16().is_some()
}

fn detect_bf16() -> Bf16 {
    #[cfg(target_arch = "x86_64")]
    return simd::Avx512Bf16::detect();
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// A set of kernels [`CpuBackbone`] can run: each ISA's, and the portable path every CPU runs
/// (1x1 convolutions in `gemm`, depthwise in plain loops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// x86-64 with AVX-512F (and AVX2 and FMA): 1x1 convolutions in 512-bit registers, the
    /// rest as on [`Self::Avx2`].
    Avx512,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// aarch64 with NEON (every aarch64 CPU).
    Neon,
    Portable,
}

impl KernelPath {
    /// Every path, fastest first.
    pub const ALL: [KernelPath; 4] = [Self::Avx512, Self::Avx2, Self::Neon, Self::Portable];

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Neon => "neon",
            Self::Portable => "portable",
        }
    }

    /// What a CPU needs to run it.
    fn needs(self) -> &'static str {
        match self {
            Self::Avx512 => "AVX-512F, AVX2 and FMA",
            Self::Avx2 => "AVX2 and FMA",
            Self::Neon => "NEON (an aarch64 CPU)",
            Self::Portable => "nothing",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        self == Self::Portable || detect_simd(self).is_some()
    }

    /// The fastest path this CPU can run.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .find(|p| p.available())
            .unwrap_or(Self::Portable)
    }
}

/// Which kernels [`CpuBackbone`] runs on this CPU by default: `"avx512"`, `"avx2"`, `"neon"`
/// or `"portable"`.
pub fn kernels() -> &'static str {
    KernelPath::best().name()
}

/// The token for `path`'s kernels, where this CPU runs them (`None` for the portable path).
fn detect_simd(path: KernelPath) -> Simd {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => simd::Avx512::detect().map(simd::Isa::Avx512),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => simd::Avx2::detect().map(simd::Isa::Avx2),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon => simd::Neon::detect(),
        _ => None,
    }
}

/// Expanded values per band of an MBConv block's output rows (256 KB, half the L2 of the
/// development machine's cores).
const BAND_HIDDEN: usize = 64 * 1024;

/// Output pixels of a row that the SIMD depthwise kernels compute together.
const DEPTHWISE_SPAN: usize = 8;

/// Output values per band of pixels in the stem and the portable path's matrix products (the
/// band's rows are `BAND_VALUES / cout`): a band's output stays in the core's cache for the
/// bias/ReLU6 pass that follows it.
const BAND_VALUES: usize = 32 * 1024;

/// EfficientNet-Lite features on the CPU. See the module documentation.
#[derive(Debug)]
pub struct CpuBackbone {
    size: usize,
    stem: Stem,
    blocks: Vec<Block>,
    head: Pointwise,
    /// Expanded values per band of a block's output rows (at least one row).
    band_values: usize,
    simd: Simd,
    /// Where set, every 1x1 convolution but the stem's runs in bf16 ([`Self::in_bf16`]).
    bf16: Bf16,
}

/// The stem: a 3x3 stride-2 convolution over the normalised RGB input, as a matrix product
/// over gathered patches.
#[derive(Debug)]
struct Stem {
    geometry: Geometry,
    /// Weights `[(ky, kx, channel), out]`.
    conv: Pointwise,
}

/// A 1x1 convolution as a matrix product: `[pixels, cin] x [cin, cout]`.
#[derive(Debug)]
struct Pointwise {
    cin: usize,
    cout: usize,
    /// `[cin, cout]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// The weights packed for the SIMD kernels this backbone runs.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    packed: Option<driver::Packed>,
    /// Or rounded to bf16 and packed in pairs for the bf16 tiles (then `packed` is `None`).
    #[cfg(target_arch = "x86_64")]
    pairs: Option<bf16::Pairs>,
}

/// A depthwise k x k convolution, channels-last.
#[derive(Debug)]
struct Depthwise {
    channels: usize,
    geometry: Geometry,
    /// `[kernel * kernel, channels]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Spatial shape of a strided convolution with explicit (TensorFlow 'same') padding.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    size: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    /// Padding before the first row and column; the padding after is whatever the output size
    /// needs.
    pad: usize,
}

#[derive(Debug)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// One layer of [`CpuBackbone::features_profiled`]'s report.
#[derive(Debug, Clone)]
pub struct LayerSeconds {
    pub layer: Layer,
    /// Its output per frame, `[channels, height, width]` (the head's after pooling).
    pub dims: [usize; 3],
    /// Thread time, summed over the call's frames.
    pub seconds: f64,
}

/// Each layer's time on one frame's thread, lap by lap.
struct Clock {
    seconds: Vec<f64>,
    last: Instant,
}

impl Clock {
    fn new(layers: usize) -> Self {
        Self {
            seconds: vec![0.0; layers],
            last: Instant::now(),
        }
    }
}

/// Charges the time since the last lap to layer `slot`, when profiling.
fn lap(clock: &mut Option<Clock>, slot: usize) {
    if let Some(clock) = clock {
        let now = Instant::now();
        clock.seconds[slot] += (now - clock.last).as_secs_f64();
        clock.last = now;
    }
}

/// How this call runs its kernels.
#[derive(Clone, Copy)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
struct Kernels {
    simd: Simd,
    /// The bf16 tiles, for layers packed for them.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    bf16: Bf16,
    /// Threads inside the portable path's matrix products.
    par: gemm::Parallelism,
}

/// Per-thread buffers, reused from one image to the next (about 4 MB at 224 x 224; they stay
/// allocated on each thread that ran a frame).
#[derive(Default)]
struct Scratch {
    /// The stem's padded, normalised input.
    image: Vec<f32>,
    /// A block's input and output.
    x: Vec<f32>,
    y: Vec<f32>,
    /// The expanded rows a band of a block needs.
    hidden: Vec<f32>,
    /// A band of a block's depthwise output.
    spatial: Vec<f32>,
}

thread_local! {
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

fn values(tensor: Tensor<1>) -> Result<Vec<f32>, VisionError> {
    Ok(tensor.into_data().convert::<f32>().try_into_vec::<f32>()?)
}

/// A convolution's weight `[cout, cin/groups, k, k]` (flat), its shape, and its (folded) bias.
type ConvValues = (Vec<f32>, Vec<f32>, [usize; 4]);

fn conv_values(conv: &Conv2d) -> Result<ConvValues, VisionError> {
    let weight = conv.weight.val();
    let dims = weight.dims();
    let bias = conv
        .bias
        .as_ref()
        .ok_or_else(|| VisionError::Compile("BatchNorm is not folded (fold_batchnorm)".into()))?;
    Ok((
        values(weight.flatten::<1>(0, 3))?,
        values(bias.val())?,
        dims,
    ))
}

/// The layer's geometry on a `size x size` input, if it is one the kernels implement: a square
/// kernel and stride, no dilation, and TensorFlow 'same' padding (`Explicit` with equal top and
/// left, equal bottom and right, giving `ceil(size / stride)` outputs).
fn geometry(conv: &Conv2d, size: usize, groups: usize) -> Result<Geometry, VisionError> {
    let [kernel, kernel_x] = conv.kernel_size;
    let [stride, stride_x] = conv.stride;
    let out = size.div_ceil(stride);
    let fits = |pad: usize, after: usize| (size + pad + after - kernel) / stride + 1 == out;
    match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right)
            if kernel == kernel_x
                && stride == stride_x
                && conv.dilation == [1, 1]
                && conv.groups == groups
                && top == left
                && bottom == right
                && size + top + bottom >= kernel
                && fits(top, bottom) =>
        {
            Ok(Geometry {
                size,
                out,
                kernel,
                stride,
                pad: top,
            })
        }
        _ => Err(VisionError::Compile(format!(
            "a convolution the CPU kernels do not implement: kernel {:?}, stride {:?}, \
             dilation {:?}, groups {}, padding {:?} on {size} x {size}",
            conv.kernel_size, conv.stride, conv.dilation, conv.groups, conv.padding
        ))),
    }
}

impl Pointwise {
    fn new(conv: &Conv2d, size: usize) -> Result<Self, VisionError> {
        let geometry = geometry(conv, size, 1)?;
        if geometry.kernel != 1 || geometry.stride != 1 {
            return Err(VisionError::Compile(format!(
                "expected a 1x1 convolution, got {:?} stride {:?}",
                conv.kernel_size, conv.stride
            )));
        }
        let (weight, bias, [cout, cin, ..]) = conv_values(conv)?;
        // [cout, cin] to [cin, cout].
        let weight = (0..cin * cout)
            .map(|i| weight[(i % cout) * cin + i / cout])
            .collect();
        Ok(Self::from_matrix(weight, bias, cin))
    }

    /// The layer, its weights packed for the kernels this CPU runs fastest.
    fn from_matrix(weight: Vec<f32>, bias: Vec<f32>, cin: usize) -> Self {
        let mut layer = Self {
            cin,
            cout: bias.len(),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            packed: None,
            #[cfg(target_arch = "x86_64")]
            pairs: None,
            weight,
            bias,
        };
        layer.pack(detect_simd(KernelPath::best()));
        layer
    }

    /// Packs the weights for `simd`'s kernels (each ISA's tiles read their own layout), or
    /// drops the packed copy where the portable path runs (`None`).
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_variables)
    )]
    fn pack(&mut self, simd: Simd) {
        #[cfg(target_arch = "x86_64")]
        {
            self.pairs = None;
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            self.packed =
                simd.and_then(|cpu| driver::Packed::new(cpu, &self.weight, self.cin, self.cout));
        }
    }

    /// Packs the weights in bf16 pairs for `bf16`'s tiles where the layer fits them (input and
    /// output channels multiples of 8) and gains from them (at least [`bf16::MIN_COUT`] output
    /// channels), dropping the f32 copy; otherwise leaves it as it is.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn pack_pairs(&mut self, bf16: Bf16) {
        #[cfg(target_arch = "x86_64")]
        if self.cout >= bf16::MIN_COUT {
            self.pairs =
                bf16.and_then(|cpu| bf16::Pairs::new(cpu, &self.weight, self.cin, self.cout));
            if self.pairs.is_some() {
                self.packed = None;
            }
        }
    }

    /// Whether `k`'s SIMD kernels run it (in f32 or bf16: what [`pointwise`] dispatches on),
    /// so that it can read and write planes.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn packed(&self, k: Kernels) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.pairs.is_some() && k.bf16.is_some() {
            return true;
        }
        k.simd.is_some() && self.packed.is_some()
    }
}

impl CpuBackbone {
    /// Compiles a BatchNorm-folded network ([`EfficientNet::fold_batchnorm`]) for the CPU.
    pub fn new(model: &EfficientNet) -> Result<Self, VisionError> {
        let mut size = model.image_size();
        let stem_geometry = geometry(&model.conv_stem, size, 1)?;
        let (weight, bias, [cout, cin, k, _]) = conv_values(&model.conv_stem)?;
        // [cout, cin, ky, kx] to [(ky, kx, cin), cout].
        let rows = k * k * cin;
        let stem_weight: Vec<f32> = (0..rows * cout)
            .map(|i| {
                let (row, o) = (i / cout, i % cout);
                let (tap, c) = (row / cin, row % cin);
                weight[((o * cin + c) * k * k) + tap]
            })
            .collect();
        let stem = Stem {
            geometry: stem_geometry,
            conv: Pointwise::from_matrix(stem_weight, bias, rows),
        };
        size = stem_geometry.out;
        let mut blocks = Vec::new();
        for block in &model.blocks {
            let expand = block
                .expand_conv
                .as_ref()
                .map(|conv| Pointwise::new(conv, size))
                .transpose()?;
            let (weight, bias, [channels, _, k, _]) = conv_values(&block.depthwise_conv)?;
            let geometry = geometry(&block.depthwise_conv, size, channels)?;
            // [c, 1, ky, kx] to [(ky, kx), c].
            let weight = (0..k * k * channels)
                .map(|i| weight[(i % channels) * k * k + i / channels])
                .collect();
            let depthwise = Depthwise {
                channels,
                geometry,
                weight,
                bias,
            };
            let project = Pointwise::new(&block.project_conv, geometry.out)?;
            size = geometry.out;
            blocks.push(Block {
                expand,
                depthwise,
                project,
                residual: block.residual,
            });
        }
        let head = Pointwise::new(&model.conv_head, size)?;
        if head.cout != FEATURE_DIM {
            return Err(VisionError::Compile(format!(
                "the head gives {} features, not {FEATURE_DIM}",
                head.cout
            )));
        }
        Ok(Self {
            size: model.image_size(),
            stem,
            blocks,
            head,
            band_values: BAND_HIDDEN,
            simd: detect_simd(KernelPath::best()),
            bf16: None,
        })
    }

    /// Side of the square input.
    pub fn image_size(&self) -> usize {
        self.size
    }

    /// The same network on the portable path only (what CPUs without SIMD kernels run), for
    /// tests and comparisons.
    pub fn portable(self) -> Self {
        self.packed_for(None)
    }

    /// The same network with `simd`'s kernels, the weights packed for them, in f32.
    fn packed_for(self, simd: Simd) -> Self {
        let mut backbone = Self {
            simd,
            bf16: None,
            ..self
        };
        let blocks = backbone.blocks.iter_mut();
        let layers = blocks.flat_map(|b| b.expand.iter_mut().chain([&mut b.project]));
        for layer in layers.chain([&mut backbone.stem.conv, &mut backbone.head]) {
            layer.pack(simd);
        }
        backbone
    }

    /// The same network with every 1x1 convolution but the stem's in bf16: weights and inputs
    /// rounded to bf16 (to nearest, ties to even), products summed in f32, bias, residual and
    /// ReLU6 in f32; the stem (whose input, the image, loses the most in bf16) and the
    /// depthwise layers stay f32. Twice the products per instruction of the f32 tiles. On
    /// the golden images the features stay within cosine 0.9998 of f32 and the top-1 class is
    /// the same (`tests/golden.rs`). Needs the [`KernelPath::Avx512`] kernels (the default
    /// where the CPU has AVX-512) and a CPU with AVX-512 BF16 ([`bf16_available`]); an error
    /// otherwise. [`Self::on`] afterwards goes back to f32.
    pub fn in_bf16(self) -> Result<Self, VisionError> {
        let bf16 = detect_bf16();
        if bf16.is_none() {
            return Err(VisionError::Compile(
                "bf16 needs a CPU with AVX-512 BF16 (AMD Zen 4 or later, Intel Cooper Lake, \
                 Sapphire Rapids or later), which this one lacks"
                    .into(),
            ));
        }
        if self.kernels() != KernelPath::Avx512 {
            return Err(VisionError::Compile(format!(
                "bf16 runs on the avx512 kernels, not the {} ones",
                self.kernels().name()
            )));
        }
        let mut backbone = Self { bf16, ..self };
        let blocks = backbone.blocks.iter_mut();
        let layers = blocks.flat_map(|b| b.expand.iter_mut().chain([&mut b.project]));
        for layer in layers.chain([&mut backbone.head]) {
            layer.pack_pairs(bf16);
        }
        Ok(backbone)
    }

    /// Whether its 1x1 convolutions run in bf16 ([`Self::in_bf16`]).
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }

    /// The same network on `path`, in f32; an error where this CPU cannot run it.
    pub fn on(self, path: KernelPath) -> Result<Self, VisionError> {
        if !path.available() {
            return Err(VisionError::Compile(format!(
                "the {} kernels need a CPU with {}, which this one lacks",
                path.name(),
                path.needs()
            )));
        }
        Ok(self.packed_for(detect_simd(path)))
    }

    /// The kernels it runs.
    pub fn kernels(&self) -> KernelPath {
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            Some(simd::Isa::Avx512(_)) => KernelPath::Avx512,
            #[cfg(target_arch = "x86_64")]
            Some(simd::Isa::Avx2(_)) => KernelPath::Avx2,
            #[cfg(target_arch = "aarch64")]
            Some(simd::Neon { .. }) => KernelPath::Neon,
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            Some(never) => match never {},
            None => KernelPath::Portable,
        }
    }

    /// Features `[n, 1280]`, row-major, of `n` frames given as concatenated `size x size x 3`
    /// RGB bytes (what the decoder writes). The normalisation of
    /// [`crate::preprocess::normalize`] is fused into the first layer.
    pub fn features(&self, rgb: &[u8], n: usize) -> Vec<f32> {
        self.features_timed(rgb, n, None)
    }

    /// [`Self::features`], and the thread time of each layer over the `n` frames, in network
    /// order: where the time goes. The layers are timed inside the fused kernels' own loop, so
    /// this is the time of the real path, not of layers run one by one. An MBConv block runs its
    /// layers a band of rows at a time, and each layer's bands are summed; a block without an
    /// expansion counts copying its input into planes under its depthwise layer.
    pub fn features_profiled(&self, rgb: &[u8], n: usize) -> (Vec<f32>, Vec<LayerSeconds>) {
        let layers = self.layers();
        let total = Mutex::new(vec![0.0; layers.len()]);
        let features = self.features_timed(rgb, n, Some(&total));
        let seconds = total.into_inner().unwrap_or_else(PoisonError::into_inner);
        let layers = layers
            .into_iter()
            .zip(seconds)
            .map(|((layer, dims), seconds)| LayerSeconds {
                layer,
                dims,
                seconds,
            })
            .collect();
        (features, layers)
    }

    /// Each layer's kind and output `[channels, height, width]` (the head's after pooling), in
    /// the order [`Self::features_profiled`] reports them.
    fn layers(&self) -> Vec<(Layer, [usize; 3])> {
        let side = self.stem.geometry.out;
        let mut layers = vec![(Layer::Stem, [self.stem.conv.cout, side, side])];
        for block in &self.blocks {
            let g = block.depthwise.geometry;
            if let Some(expand) = &block.expand {
                layers.push((Layer::Expand, [expand.cout, g.size, g.size]));
            }
            layers.push((Layer::Depthwise, [block.depthwise.channels, g.out, g.out]));
            layers.push((Layer::Project, [block.project.cout, g.out, g.out]));
        }
        layers.push((Layer::HeadPool, [self.head.cout, 1, 1]));
        layers
    }

    fn features_timed(&self, rgb: &[u8], n: usize, profile: Option<&Mutex<Vec<f64>>>) -> Vec<f32> {
        let scale = IMAGENET_STD.map(|s| 1.0 / (255.0 * s));
        let shift: [f32; 3] = std::array::from_fn(|c| IMAGENET_MEAN[c] / IMAGENET_STD[c]);
        let side = self.size;
        // Eight pixels (24 values, whole vectors) at a time, with the channels' constants
        // repeated to match.
        let scale: [f32; 24] = std::array::from_fn(|i| scale[i % 3]);
        let shift: [f32; 24] = std::array::from_fn(|i| shift[i % 3]);
        self.run(rgb, n, side * side * 3, profile, |image, y, row| {
            let (dst, dst_rest) = row.as_chunks_mut::<24>();
            let (src, src_rest) = image[y * side * 3..][..side * 3].as_chunks::<24>();
            for (d, s) in dst.iter_mut().zip(src) {
                for i in 0..24 {
                    d[i] = f32::from(s[i]) * scale[i] - shift[i];
                }
            }
            for (i, (d, &s)) in dst_rest.iter_mut().zip(src_rest).enumerate() {
                *d = f32::from(s) * scale[i] - shift[i];
            }
        })
    }

    /// Features `[n, 1280]` of already normalised images `[n, 3, size, size]` (what
    /// [`EfficientNet::forward_features`] takes).
    pub fn features_normalized(&self, images: &[f32], n: usize) -> Vec<f32> {
        let side = self.size;
        self.run(images, n, 3 * side * side, None, |image, y, row| {
            for (c, plane) in image.chunks_exact(side * side).enumerate() {
                let line = &plane[y * side..][..side];
                for (dst, &v) in row.chunks_exact_mut(3).zip(line) {
                    dst[c] = v;
                }
            }
        })
    }

    /// One frame per thread; on the portable path a lone frame also gets the threads inside its
    /// matrix products. `row(frame, y, out)` writes the frame's row `y` into `out`, normalised
    /// and channels-last (`size x 3` values). With `profile`, each layer's thread time is added
    /// to it ([`Self::layers`]' order).
    fn run<T: Sync>(
        &self,
        input: &[T],
        n: usize,
        frame: usize,
        profile: Option<&Mutex<Vec<f64>>>,
        row: impl Fn(&[T], usize, &mut [f32]) + Sync,
    ) -> Vec<f32> {
        assert_eq!(input.len(), n * frame, "{n} frames of {frame} values");
        let mut out = vec![0.0; n * FEATURE_DIM];
        let kernels = Kernels {
            simd: self.simd,
            bf16: self.bf16,
            par: if n == 1 {
                gemm::Parallelism::Rayon(rayon::current_num_threads())
            } else {
                gemm::Parallelism::None
            },
        };
        let slots = profile.map_or(0, |_| self.layers().len());
        out.par_chunks_mut(FEATURE_DIM)
            .zip(input.par_chunks(frame))
            .for_each(|(features, image)| {
                // Taken out of the thread-local while in use, not borrowed: a thread waiting
                // inside gemm's rayon loop may be handed a frame of another concurrent call.
                let mut scratch = SCRATCH.take();
                let mut clock = profile.map(|_| Clock::new(slots));
                let row = |y, out: &mut [f32]| row(image, y, out);
                self.image(row, features, &mut scratch, kernels, &mut clock);
                SCRATCH.set(scratch);
                if let (Some(total), Some(clock)) = (profile, clock) {
                    let mut total = total.lock().unwrap_or_else(PoisonError::into_inner);
                    for (total, seconds) in total.iter_mut().zip(clock.seconds) {
                        *total += seconds;
                    }
                }
            });
        out
    }

    fn image(
        &self,
        row: impl Fn(usize, &mut [f32]),
        features: &mut [f32],
        s: &mut Scratch,
        k: Kernels,
        clock: &mut Option<Clock>,
    ) {
        let [activation, hidden, spatial] = self.buffer_sizes();
        s.x.resize(activation, 0.0);
        s.y.resize(activation, 0.0);
        s.hidden.resize(hidden, 0.0);
        s.spatial.resize(spatial, 0.0);
        let mut size = self.stem(row, &mut s.image, &mut s.x, k);
        lap(clock, 0);
        let mut channels = self.stem.conv.cout;
        let mut slot = 1;
        for block in &self.blocks {
            slot = self.block(block, channels, s, k, (clock, slot));
            std::mem::swap(&mut s.x, &mut s.y);
            size = block.depthwise.geometry.out;
            channels = block.project.cout;
        }
        let pixels = size * size;
        let head = &self.head;
        pointwise(
            head,
            Pixels::ChannelsLast(&s.x[..pixels * channels]),
            &mut s.y,
            Rows::DENSE,
            None,
            Epilogue::Relu6,
            k,
        );
        // Global average pool.
        features.fill(0.0);
        for row in s.y[..pixels * head.cout].chunks_exact(head.cout) {
            for (f, v) in features.iter_mut().zip(row) {
                *f += v;
            }
        }
        let inv = 1.0 / pixels as f32;
        features.iter_mut().for_each(|f| *f *= inv);
        lap(clock, slot);
    }

    /// Output rows per band of a block.
    fn band(&self, layer: &Depthwise) -> usize {
        let g = layer.geometry;
        (self.band_values / (g.stride * g.size * layer.channels)).clamp(1, g.out)
    }

    /// Values in each scratch buffer: `[activation (x, y), expanded band, depthwise band]`.
    fn buffer_sizes(&self) -> [usize; 3] {
        let g = self.stem.geometry;
        let mut sizes = [g.out * g.out * self.stem.conv.cout, 0, 0];
        let mut side = g.out;
        for block in &self.blocks {
            let (g, c) = (block.depthwise.geometry, block.depthwise.channels);
            let band = self.band(&block.depthwise);
            let rows = ((band - 1) * g.stride + g.kernel).min(g.size);
            side = g.out;
            sizes[0] = sizes[0].max(side * side * block.project.cout);
            sizes[1] = sizes[1].max(rows * g.padded() * c);
            sizes[2] = sizes[2].max(band * g.out * c);
        }
        sizes[0] = sizes[0].max(side * side * self.head.cout);
        sizes
    }

    /// One MBConv block, `s.x` to `s.y`, a band of output rows at a time: the expansion of the
    /// input rows the band needs (rows shared with the previous band are kept, not recomputed),
    /// the depthwise rows, and their projection. The expanded activation, the largest in the
    /// network, never exists whole: each band of it stays in the core's cache. `clock` is
    /// charged from the block's first layer slot on; returns the slot after its last.
    fn block(
        &self,
        block: &Block,
        channels: usize,
        s: &mut Scratch,
        k: Kernels,
        (clock, first_slot): (&mut Option<Clock>, usize),
    ) -> usize {
        let depthwise_slot = first_slot + usize::from(block.expand.is_some());
        let g = block.depthwise.geometry;
        let c = block.depthwise.channels;
        let band = self.band(&block.depthwise);
        let capacity = ((band - 1) * g.stride + g.kernel).min(g.size);
        let layout = Hidden::new(block, k, capacity);
        // Values per row (channels-last) or per row of a plane.
        let row = g.padded() * layout.group(c);
        let image = g.pad * layout.group(c)..(g.pad + g.size) * layout.group(c);
        let planes = c / layout.group(c);
        let plane = capacity * row;
        let input = &s.x[..g.size * g.size * channels];
        // The expanded rows held at the start of `s.hidden` (of each plane).
        let mut held = 0..0;
        for first in (0..g.out).step_by(band) {
            let rows = first..g.out.min(first + band);
            let lo = (rows.start * g.stride).saturating_sub(g.pad);
            let hi = ((rows.end - 1) * g.stride + g.kernel - g.pad).min(g.size);
            let keep = lo.max(held.start)..held.end.max(lo);
            let fresh_rows = keep.len()..hi - lo;
            for plane in s.hidden.chunks_exact_mut(plane).take(planes) {
                let from = keep.start - held.start..keep.end - held.start;
                plane.copy_within(from.start * row..from.end * row, 0);
                for row in plane[fresh_rows.start * row..fresh_rows.end * row].chunks_exact_mut(row)
                {
                    row[..image.start].fill(0.0);
                    row[image.end..].fill(0.0);
                }
            }
            let fresh = &input[keep.end * g.size * channels..hi * g.size * channels];
            match &block.expand {
                _ if fresh.is_empty() => {}
                Some(expand) => {
                    let rows = Rows {
                        width: g.size,
                        stride: g.padded(),
                    };
                    let out = &mut s.hidden[fresh_rows.start * row + image.start..];
                    let planes = (planes > 1).then_some(plane);
                    let fresh = Pixels::ChannelsLast(fresh);
                    pointwise(expand, fresh, out, rows, planes, Epilogue::Relu6, k);
                }
                None => {
                    let group = layout.group(c);
                    let planes = s.hidden.chunks_exact_mut(plane).take(planes);
                    for (p, values) in planes.enumerate() {
                        let rows = fresh_rows.clone().zip(fresh.chunks_exact(g.size * c));
                        for (r, pixels) in rows {
                            let dst = &mut values[r * row + image.start..][..g.size * group];
                            if group == c {
                                dst.copy_from_slice(pixels);
                                continue;
                            }
                            // Runs of a length known when compiling: inlined moves, where a
                            // run length known only at run time is a call to `memcpy` each.
                            let (dst, _) = dst.as_chunks_mut::<8>();
                            for (d, pixel) in dst.iter_mut().zip(pixels.chunks_exact(c)) {
                                d.copy_from_slice(&pixel[p * 8..][..8]);
                            }
                        }
                    }
                }
            }
            lap(clock, first_slot);
            held = lo..hi;
            depthwise(
                &block.depthwise,
                &s.hidden[..planes * plane],
                layout,
                held.start,
                &mut s.spatial,
                rows.clone(),
            );
            lap(clock, depthwise_slot);
            let pixels = rows.len() * g.out;
            let spatial = &s.spatial[..pixels * block.depthwise.channels];
            let spatial = match layout {
                Hidden::ChannelsLast => Pixels::ChannelsLast(spatial),
                #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                Hidden::Planes { .. } => Pixels::Planes(spatial),
            };
            let cout = block.project.cout;
            let at = rows.start * g.out * cout;
            let epilogue = if block.residual {
                Epilogue::Residual(&s.x[at..at + pixels * cout])
            } else {
                Epilogue::None
            };
            let out = &mut s.y[at..];
            pointwise(&block.project, spatial, out, Rows::DENSE, None, epilogue, k);
            lap(clock, depthwise_slot + 1);
        }
        depthwise_slot + 2
    }

    /// Gathers 3x3 patches of the normalised input (zeros outside the image: the padding is
    /// applied after normalisation) a band of output pixels at a time, each band then one
    /// matrix product. Returns the output side.
    fn stem(
        &self,
        input_row: impl Fn(usize, &mut [f32]),
        image: &mut Vec<f32>,
        out: &mut [f32],
        k: Kernels,
    ) -> usize {
        let g = self.stem.geometry;
        let conv = &self.stem.conv;
        // The normalised image with its zero border ('same' padding applies after
        // normalisation), so that each row of a patch is one contiguous run.
        let after = ((g.out - 1) * g.stride + g.kernel).saturating_sub(g.size + g.pad);
        let side = g.size + g.pad + after;
        image.resize(side * side * 3, 0.0);
        for (y, row) in image.chunks_exact_mut(side * 3).enumerate() {
            match y.checked_sub(g.pad).filter(|&y| y < g.size) {
                Some(y) => {
                    let (before, rest) = row.split_at_mut(g.pad * 3);
                    let (inside, after) = rest.split_at_mut(g.size * 3);
                    before.fill(0.0);
                    input_row(y, inside);
                    after.fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
        let run = g.kernel * 3;
        let rows_per_band = (BAND_VALUES / conv.cout).max(8);
        let mut patches = vec![0.0f32; rows_per_band * conv.cin];
        let out = &mut out[..g.out * g.out * conv.cout];
        for (band, out) in out.chunks_mut(rows_per_band * conv.cout).enumerate() {
            let first = band * rows_per_band;
            let rows = out.len() / conv.cout;
            for (r, patch) in patches.chunks_exact_mut(conv.cin).take(rows).enumerate() {
                let (oy, ox) = ((first + r) / g.out, (first + r) % g.out);
                let at = |ky| ((oy * g.stride + ky) * side + ox * g.stride) * 3;
                // A 3x3 kernel's rows as copies of a length known when compiling (inlined
                // moves rather than a call to `memcpy` for each 9 values).
                if let (3, (rows, [])) = (g.kernel, patch.as_chunks_mut::<9>()) {
                    for (ky, dst) in rows.iter_mut().enumerate() {
                        dst.copy_from_slice(&image[at(ky)..][..9]);
                    }
                    continue;
                }
                for (ky, dst) in patch.chunks_exact_mut(run).enumerate() {
                    dst.copy_from_slice(&image[at(ky)..][..run]);
                }
            }
            let patches = &patches[..rows * conv.cin];
            let patches = Pixels::ChannelsLast(patches);
            pointwise(conv, patches, out, Rows::DENSE, None, Epilogue::Relu6, k);
        }
        g.out
    }
}

impl Geometry {
    /// Pixels per input row with its zero border: every tap of every output reads inside, and
    /// so do those of a row shorter than the depthwise kernels' span of output pixels.
    fn padded(&self) -> usize {
        (self.out.max(DEPTHWISE_SPAN) - 1) * self.stride + self.kernel
    }

    /// The input row (or column) that output `o`'s tap `t` reads, if it is inside the image.
    fn input(&self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t)
            .checked_sub(self.pad)
            .filter(|&i| i < self.size)
    }
}

/// How an MBConv block holds its expanded rows (a band of them, from `first_row` on), each row
/// with its zero border ([`Geometry::padded`] pixels, the image's column `x` at `pad + x`).
#[derive(Debug, Clone, Copy)]
enum Hidden {
    /// Channels-last: channel `c` of row `r`, pixel `x` at `((r - first_row) * padded + x) *
    /// channels + c`.
    ChannelsLast,
    /// In planes of 8 channels (what the SIMD kernels read fastest), each of `rows` rows:
    /// `((c / 8 * rows + r - first_row) * padded + x) * 8 + c % 8`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    Planes { rows: usize, cpu: simd::Isa },
}

impl Hidden {
    /// Planes where the SIMD kernels run the whole block: the expansion (if any) writes them,
    /// the depthwise layer reads them and writes its output in planes too, for the projection.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_variables)
    )]
    fn new(block: &Block, k: Kernels, rows: usize) -> Self {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(cpu) = k.simd
            && driver::depthwise_fits(&block.depthwise)
            && block.expand.as_ref().is_none_or(|e| e.packed(k))
            && block.project.packed(k)
        {
            return Self::Planes { rows, cpu };
        }
        Self::ChannelsLast
    }

    /// Channels per plane.
    fn group(self, channels: usize) -> usize {
        match self {
            Self::ChannelsLast => channels,
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            Self::Planes { .. } => 8,
        }
    }
}

/// A 1x1 convolution's input pixels: channels-last (`[pixels][cin]`), or in planes of 8
/// channels (`[cin / 8][pixels][8]`, what the SIMD depthwise kernels write).
#[derive(Clone, Copy)]
enum Pixels<'a> {
    ChannelsLast(&'a [f32]),
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    Planes(&'a [f32]),
}

impl<'a> Pixels<'a> {
    /// The values, in either layout.
    fn values(self) -> &'a [f32] {
        match self {
            Self::ChannelsLast(values) | Self::Planes(values) => values,
        }
    }
}

/// Where a layer writes its output pixels: image rows of `width` pixels, each `stride` pixels
/// after the one before (the pixels between are not written).
#[derive(Debug, Clone, Copy)]
struct Rows {
    width: usize,
    stride: usize,
}

impl Rows {
    /// One pixel after the other.
    const DENSE: Rows = Rows {
        width: 1,
        stride: 1,
    };

    /// Where output pixel `p` goes.
    fn at(self, p: usize) -> usize {
        p / self.width * self.stride + p % self.width
    }

    /// The output that `n` pixels span.
    fn len(self, n: usize) -> usize {
        n.checked_sub(1).map_or(0, |last| self.at(last) + 1)
    }
}

/// What a 1x1 convolution adds after its bias.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    None,
    Relu6,
    /// The block input (same shape as the output).
    Residual(&'a [f32]),
}

/// `out = epilogue(input [pixels, cin] x weight + bias)`: in the SIMD kernels, or else one
/// band of rows at a time through `gemm`.
fn pointwise(
    layer: &Pointwise,
    input: Pixels,
    out: &mut [f32],
    layout: Rows,
    planes: Option<usize>,
    epilogue: Epilogue,
    k: Kernels,
) {
    let (cin, cout) = (layer.cin, layer.cout);
    let pixels = input.values().len() / cin;
    assert_eq!(
        input.values().len(),
        pixels * cin,
        "whole pixels of {cin} channels"
    );
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let (residual, relu6) = match epilogue {
            Epilogue::None => (None, false),
            Epilogue::Relu6 => (None, true),
            Epilogue::Residual(r) => (Some(&r[..pixels * cout]), false),
        };
        let output = driver::Output {
            out,
            rows: layout,
            planes,
            residual,
            relu6,
        };
        #[cfg(target_arch = "x86_64")]
        if let (Some(cpu), Some(pairs)) = (k.bf16, &layer.pairs) {
            simd::pointwise_pairs(cpu, pairs, &layer.bias, input, cin, output);
            return;
        }
        if let (Some(cpu), Some(packed)) = (k.simd, &layer.packed) {
            simd::pointwise(cpu, packed, &layer.bias, input, cin, output);
            return;
        }
    }
    assert!(
        planes.is_none() && matches!(input, Pixels::ChannelsLast(_)),
        "planes of 8 channels are read and written by the SIMD kernels only"
    );
    let input = input.values();
    let out = &mut out[..layout.len(pixels) * cout];
    if layout.width < pixels && layout.stride != layout.width {
        // One image row at a time.
        let rows = input.chunks(layout.width * cin).enumerate();
        for (row, input) in rows {
            let first = row * layout.width;
            let epilogue = match epilogue {
                Epilogue::Residual(r) => Epilogue::Residual(&r[first * cout..]),
                other => other,
            };
            let out = &mut out[layout.at(first) * cout..];
            let input = Pixels::ChannelsLast(input);
            pointwise(layer, input, out, Rows::DENSE, None, epilogue, k);
        }
        return;
    }
    let rows_per_band = (BAND_VALUES / cout).max(8);
    for (band, out) in out.chunks_mut(rows_per_band * cout).enumerate() {
        let first = band * rows_per_band;
        let rows = out.len() / cout;
        match epilogue {
            Epilogue::Residual(residual) => {
                let residual = &residual[first * cout..][..rows * cout];
                for (o, r) in out.chunks_exact_mut(cout).zip(residual.chunks_exact(cout)) {
                    for ((o, r), b) in o.iter_mut().zip(r).zip(&layer.bias) {
                        *o = r + b;
                    }
                }
            }
            _ => {
                for o in out.chunks_exact_mut(cout) {
                    o.copy_from_slice(&layer.bias);
                }
            }
        }
        matmul(
            out,
            &input[first * cin..][..rows * cin],
            &layer.weight,
            cin,
            k.par,
        );
        if let Epilogue::Relu6 = epilogue {
            relu6(out);
        }
    }
}

/// Depthwise convolution with bias and ReLU6 over `[size, size, c]`: output rows `rows` into
/// `out`, reading input rows `first_row..` from `input` (which must hold every row they need),
/// laid out as `layout` says. The output is channels-last, or with [`Hidden::Planes`] in planes
/// of 8 channels too (`[c / 8][pixels][8]`).
fn depthwise(
    layer: &Depthwise,
    input: &[f32],
    layout: Hidden,
    first_row: usize,
    out: &mut [f32],
    rows: Range<usize>,
) {
    let g = layer.geometry;
    let c = layer.channels;
    let out = &mut out[..rows.len() * g.out * c];
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Hidden::Planes { rows: held, cpu } = layout {
        return simd::depthwise(cpu, layer, input, held, first_row, out, rows.start);
    }
    let row = g.padded() * c;
    for (p, o) in out.chunks_exact_mut(c).enumerate() {
        let (oy, ox) = (rows.start + p / g.out, p % g.out);
        o.copy_from_slice(&layer.bias);
        for ky in 0..g.kernel {
            let Some(iy) = g.input(oy, ky) else { continue };
            let line = &input[(iy - first_row) * row..][..row];
            for kx in 0..g.kernel {
                let x = &line[(ox * g.stride + kx) * c..][..c];
                let w = &layer.weight[(ky * g.kernel + kx) * c..][..c];
                for ((o, x), w) in o.iter_mut().zip(x).zip(w) {
                    *o += x * w;
                }
            }
        }
        relu6(o);
    }
}

fn relu6(values: &mut [f32]) {
    for v in values {
        *v = v.clamp(0.0, 6.0);
    }
}

/// `out [m, n] += lhs [m, k] x rhs [k, n]`, all row-major and contiguous.
#[allow(unsafe_code)]
fn matmul(out: &mut [f32], lhs: &[f32], rhs: &[f32], k: usize, par: gemm::Parallelism) {
    let n = rhs.len() / k;
    let m = out.len() / n;
    assert!(out.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    // SAFETY: the three slices hold exactly the [m, n], [m, k] and [k, n] row-major matrices
    // the strides describe (checked above), `out` is borrowed mutably so it aliases neither
    // input, and gemm reads and writes nothing outside them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EfficientNetConfig;
    use crate::preprocess::{normalize, upload_rgb};
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// The fused CPU kernels compute what the burn module computes, on random weights and
    /// biases (folding leaves every convolution with a bias), random RGB frames and sizes whose
    /// stride-2 layers pad unevenly (50: nothing before, one after; 33: one on each side).
    #[test]
    fn matches_the_burn_module() {
        for size in [50, 33] {
            matches_the_burn_module_at(size);
        }
    }

    fn matches_the_burn_module_at(size: usize) {
        let device = Device::flex();
        let mut model = EfficientNetConfig::new()
            .with_image_size(size)
            .init(&device)
            .fold_batchnorm();
        let mut convs: Vec<&mut Conv2d> = vec![&mut model.conv_stem, &mut model.conv_head];
        for block in &mut model.blocks {
            convs.extend(block.expand_conv.as_mut());
            convs.push(&mut block.depthwise_conv);
            convs.push(&mut block.project_conv);
        }
        for conv in convs {
            let n = conv.weight.dims()[0];
            let bias = Tensor::<1>::random([n], Distribution::Uniform(-0.5, 0.5), &device);
            conv.bias = Some(Param::from_tensor(bias));
        }
        let n = 3;
        let rgb: Vec<u8> = (0..n * size * size * 3)
            .map(|i| ((i * 7919) % 256) as u8)
            .collect();
        let want = model
            .forward_features(normalize(upload_rgb(rgb.clone(), [n, size, size], &device)))
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(want.iter().filter(|v| **v > 0.0).count() > want.len() / 4);
        let cpu = CpuBackbone::new(&model).expect("compiles");
        assert_eq!(cpu.kernels(), KernelPath::best());
        assert!(KernelPath::Portable.available());
        #[cfg(target_arch = "aarch64")]
        assert_eq!(KernelPath::best(), KernelPath::Neon);
        // Every path this CPU runs, each on several frames and on one.
        let mut got = Vec::new();
        for path in KernelPath::ALL {
            let on = CpuBackbone::new(&model).and_then(|c| c.on(path));
            assert_eq!(on.is_ok(), path.available(), "{path:?}");
            let Ok(on) = on else { continue };
            assert_eq!(on.kernels(), path);
            got.push(on.features(&rgb, n));
            got.push(on.features(&rgb[..size * size * 3], 1));
        }
        // One output row per band: every block keeps and shares expanded rows between bands.
        let narrow = CpuBackbone {
            band_values: 1,
            ..CpuBackbone::new(&model).expect("compiles")
        };
        got.push(narrow.features(&rgb, n));
        for got in got {
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-4 * scale, "feature {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn the_profile_times_every_layer_of_the_same_computation() {
        let device = Device::flex();
        let size = 64;
        let model = EfficientNetConfig::new()
            .with_image_size(size)
            .init(&device)
            .fold_batchnorm();
        let cpu = CpuBackbone::new(&model).expect("compiles");
        let n = 3;
        let rgb: Vec<u8> = (0..n * size * size * 3)
            .map(|i| (i * 31 % 256) as u8)
            .collect();
        let (features, layers) = cpu.features_profiled(&rgb, n);
        assert_eq!(features, cpu.features(&rgb, n));
        // The stem, 16 blocks (the first without an expansion), the head.
        assert_eq!(layers.len(), 1 + 2 + 15 * 3 + 1);
        let names: Vec<&str> = layers.iter().map(|l| l.layer.name()).collect();
        assert_eq!(
            names[..6],
            [
                "stem",
                "depthwise",
                "project",
                "expand",
                "depthwise",
                "project"
            ]
        );
        assert_eq!(names[48], "head+pool");
        assert_eq!(layers[0].dims, [32, 32, 32]);
        // Block 1: expanded 16 -> 96 at 32 x 32, then stride 2.
        assert_eq!(layers[3].dims, [96, 32, 32]);
        assert_eq!(layers[4].dims, [96, 16, 16]);
        assert_eq!(layers[48].dims, [1280, 1, 1]);
        assert!(layers.iter().all(|l| l.seconds > 0.0), "{layers:?}");
    }

    #[test]
    fn refuses_a_network_with_batchnorm_left() {
        let model = EfficientNetConfig::new()
            .with_image_size(32)
            .init(&Device::flex());
        assert!(CpuBackbone::new(&model).is_err());
    }

    /// Deterministic values in `[-1, 1)`.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// Every path this CPU runs, the portable one last.
    fn every_path() -> Vec<Kernels> {
        KernelPath::ALL
            .into_iter()
            .filter(|path| path.available())
            .map(|path| Kernels {
                simd: detect_simd(path),
                bf16: None,
                par: gemm::Parallelism::None,
            })
            .collect()
    }

    /// What [`pointwise`] should give `input` (channels-last): plain sums, in f64, of
    /// `value(x) * value(w)`, then the bias and `epilogue`.
    fn plain_pointwise(
        layer: &Pointwise,
        input: &[f32],
        epilogue: Epilogue,
        value: impl Fn(f32) -> f32,
    ) -> Vec<f32> {
        let (cin, cout) = (layer.cin, layer.cout);
        let mut want = vec![0.0; input.len() / cin * cout];
        for (p, row) in want.chunks_exact_mut(cout).enumerate() {
            for (o, w) in row.iter_mut().enumerate() {
                let sum: f64 = (0..cin)
                    .map(|i| {
                        let (x, w) = (input[p * cin + i], layer.weight[i * cout + o]);
                        f64::from(value(x)) * f64::from(value(w))
                    })
                    .sum();
                *w = sum as f32 + layer.bias[o];
                match epilogue {
                    Epilogue::None => {}
                    Epilogue::Relu6 => *w = w.clamp(0.0, 6.0),
                    Epilogue::Residual(r) => *w += r[p * cout + o],
                }
            }
        }
        want
    }

    /// The pixels `layout` places in `got` (of `cout` channels) are close to `want`'s, and the
    /// pixels between them are untouched (NaN).
    fn assert_written(got: &[f32], cout: usize, layout: Rows, want: &[f32], what: &str) {
        let mut dense = Vec::new();
        for (at, px) in got.chunks_exact(cout).enumerate() {
            if at % layout.stride < layout.width {
                dense.extend_from_slice(px);
            } else {
                assert!(px.iter().all(|v| v.is_nan()), "{what}: wrote {at}");
            }
        }
        assert_close(&dense, want, what);
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}: [{i}] {g} vs {w}"
            );
        }
    }

    /// Every path against a plain sum, with every epilogue, on channel counts that take each
    /// width of tile (8 and 16; 32, 48 and 64 on AVX-512) or (12) fall back to the portable
    /// path, input widths that fit no vector, and pixel counts that leave partial tiles or span
    /// several cache blocks.
    #[test]
    fn pointwise_kernels_match_plain_loops() {
        for (cout, cin, pixels) in [8, 12, 16, 24, 40, 56, 88, 112]
            .into_iter()
            .flat_map(|o| [1, 3, 16, 27, 33].map(|i| (o, i)))
            .flat_map(|(o, i)| [1, 5, 6, 7, 13, 1000].map(|p| (o, i, p)))
        {
            let layer = Pointwise::from_matrix(noise(cin * cout, 1), noise(cout, 2), cin);
            let input = noise(pixels * cin, 3);
            let residual: Vec<f32> = noise(pixels * cout, 4);
            for epilogue in [
                Epilogue::None,
                Epilogue::Relu6,
                Epilogue::Residual(&residual),
            ] {
                let want = plain_pointwise(&layer, &input, epilogue, |x| x);
                // Dense, and in rows of 5 pixels 8 apart (the pixels between untouched).
                let padded = Rows {
                    width: 5,
                    stride: 8,
                };
                // The input channels-last, and (for the SIMD kernels) in planes of 8 channels.
                let planes = match cin % 8 {
                    0 => to_planes(&input, cin),
                    _ => Vec::new(),
                };
                let inputs = |k: Kernels| {
                    let mut inputs = vec![Pixels::ChannelsLast(&input)];
                    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                    if k.simd.is_some() && cin.is_multiple_of(8) && layer.packed.is_some() {
                        inputs.push(Pixels::Planes(&planes));
                    }
                    inputs
                };
                for (kernels, layout, pixels_in) in every_path()
                    .into_iter()
                    .flat_map(|k| [(k, Rows::DENSE), (k, padded)])
                    .flat_map(|(k, l)| inputs(k).into_iter().map(move |i| (k, l, i)))
                {
                    let mut got = vec![f32::NAN; layout.len(pixels) * cout];
                    // The weights packed for these kernels.
                    let mut layer =
                        Pointwise::from_matrix(layer.weight.clone(), layer.bias.clone(), cin);
                    layer.pack(kernels.simd);
                    pointwise(&layer, pixels_in, &mut got, layout, None, epilogue, kernels);
                    let what = format!(
                        "{pixels} x {cin} -> {cout}, {layout:?}, planes {}, simd {:?}",
                        matches!(pixels_in, Pixels::Planes(_)),
                        kernels.simd
                    );
                    assert_written(&got, cout, layout, &want, &what);
                }
            }
        }
    }

    /// bf16 rounds to nearest, ties to even, as the hardware's conversions do; NaN stays NaN.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_rounds_to_nearest_even() {
        let b = |x: f32| bf16::bf16(x);
        assert_eq!(b(1.0), 0x3f80);
        assert_eq!(b(-2.0), 0xc000);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even one, 1. 1 + 3 * 2^-8 is
        // halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6.
        assert_eq!(b(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(b(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(b(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 0x3f81);
        assert_eq!(b(f32::MAX), 0x7f80); // overflows to infinity, as rounding must
        assert!(f32::from_bits(b(f32::NAN) << 16).is_nan());
        assert_eq!(bf16::pair(1.0, -2.0), 0xc000_3f80);
    }

    /// The bf16 tiles against plain sums of the bf16-rounded inputs and weights (their
    /// products are exact in f32, so only the order of the sums differs), for every tile width
    /// (8 to 64), both input layouts, every epilogue, dense and spaced output rows, partial
    /// tiles and several cache blocks. Skipped (said so) where the CPU lacks AVX-512 BF16.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_pointwise_kernels_match_plain_loops_on_rounded_values() {
        let Some(cpu) = detect_bf16() else {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        };
        let round = |x: f32| f32::from_bits(bf16::bf16(x) << 16);
        let kernels = Kernels {
            simd: detect_simd(KernelPath::Avx512),
            bf16: Some(cpu),
            par: gemm::Parallelism::None,
        };
        for (cout, cin, pixels) in [8, 16, 24, 40, 56, 88, 112, 136]
            .into_iter()
            .flat_map(|o| [8, 16, 48, 96].map(|i| (o, i)))
            .flat_map(|(o, i)| [1, 5, 6, 7, 13, 700].map(|p| (o, i, p)))
        {
            let mut layer = Pointwise::from_matrix(noise(cin * cout, 1), noise(cout, 2), cin);
            layer.pairs = bf16::Pairs::new(cpu, &layer.weight, cin, cout);
            layer.packed = None;
            assert!(layer.pairs.is_some());
            let input = noise(pixels * cin, 3);
            let planes = to_planes(&input, cin);
            let residual: Vec<f32> = noise(pixels * cout, 4);
            for epilogue in [
                Epilogue::None,
                Epilogue::Relu6,
                Epilogue::Residual(&residual),
            ] {
                let want = plain_pointwise(&layer, &input, epilogue, round);
                let padded = Rows {
                    width: 5,
                    stride: 8,
                };
                for (layout, pixels_in) in [Rows::DENSE, padded].into_iter().flat_map(|l| {
                    [Pixels::ChannelsLast(&input), Pixels::Planes(&planes)].map(|i| (l, i))
                }) {
                    let mut got = vec![f32::NAN; layout.len(pixels) * cout];
                    pointwise(&layer, pixels_in, &mut got, layout, None, epilogue, kernels);
                    let what = format!(
                        "bf16 {pixels} x {cin} -> {cout}, {layout:?}, planes {}",
                        matches!(pixels_in, Pixels::Planes(_)),
                    );
                    assert_written(&got, cout, layout, &want, &what);
                }
            }
        }
    }

    /// The whole network in bf16 against the burn module in f32, on random weights: close
    /// (cosine at least 0.999), not equal; the same run twice, bit for bit. Refused off the
    /// AVX-512 kernels.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn bf16_backbone_stays_close_to_f32() {
        let size = 64;
        let model = EfficientNetConfig::new()
            .with_image_size(size)
            .init(&Device::flex())
            .fold_batchnorm();
        let f32s = CpuBackbone::new(&model).expect("compiles");
        let on_avx2 = CpuBackbone::new(&model).and_then(|c| c.on(KernelPath::Avx2));
        if let Ok(avx2) = on_avx2 {
            assert!(avx2.in_bf16().is_err());
        }
        let Ok(bf16) = CpuBackbone::new(&model).and_then(CpuBackbone::in_bf16) else {
            assert!(!bf16_available());
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        };
        assert!(bf16.is_bf16() && !f32s.is_bf16());
        assert!(bf16.stem.conv.packed.is_some(), "the stem stays f32");
        let (narrow, wide) = (&bf16.blocks[0].project, &bf16.blocks[5].expand);
        assert!(narrow.cout < bf16::MIN_COUT && narrow.pairs.is_none() && narrow.packed.is_some());
        assert!(
            wide.as_ref()
                .is_some_and(|e| e.pairs.is_some() && e.packed.is_none())
        );
        let n = 3;
        let rgb: Vec<u8> = (0..n * size * size * 3)
            .map(|i| ((i * 7919) % 256) as u8)
            .collect();
        let want = f32s.features(&rgb, n);
        let got = bf16.features(&rgb, n);
        assert_eq!(got, bf16.features(&rgb, n));
        assert_ne!(got, want);
        for (g, w) in got
            .chunks_exact(FEATURE_DIM)
            .zip(want.chunks_exact(FEATURE_DIM))
        {
            let dot: f64 = g
                .iter()
                .zip(w)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let norm = |v: &[f32]| v.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let cosine = dot / (norm(g) * norm(w));
            assert!(cosine >= 0.999, "cosine {cosine}");
        }
        // Back to f32 on request.
        let again = bf16.on(KernelPath::Avx512).expect("avx512");
        assert!(!again.is_bf16());
        assert_eq!(again.features(&rgb, n), want);
    }

    /// Both layouts against plain loops, with 'same' padding, kernels 3 and 5, strides 1 and 2,
    /// output rows shorter than the SIMD kernels' span of 8 pixels, of whole spans, and ending
    /// in a span that overlaps the one before, and channel counts of one or several planes or
    /// (12) only channels-last.
    #[test]
    fn depthwise_kernels_match_plain_loops() {
        for (channels, size, kernel, stride) in [8, 12, 24, 104]
            .into_iter()
            .flat_map(|c| (1..=9).chain([14, 17, 29, 31]).map(move |s| (c, s)))
            .flat_map(|(c, s)| [(3, 1), (3, 2), (5, 1), (5, 2)].map(|(k, st)| (c, s, k, st)))
        {
            let (pad, _, out) = crate::efficientnet::same_padding(size, kernel, stride);
            let geometry = Geometry {
                size,
                out,
                kernel,
                stride,
                pad,
            };
            let layer = Depthwise {
                channels,
                geometry,
                weight: noise(kernel * kernel * channels, 5),
                bias: noise(channels, 6),
            };
            let input: Vec<f32> = noise(size * size * channels, 7)
                .into_iter()
                .map(|v| v * 8.0)
                .collect();
            let mut want = vec![0.0; out * out * channels];
            for (p, px) in want.chunks_exact_mut(channels).enumerate() {
                for (c, w) in px.iter_mut().enumerate() {
                    let mut sum = layer.bias[c];
                    for (ky, kx) in (0..kernel).flat_map(|ky| (0..kernel).map(move |kx| (ky, kx))) {
                        let (Some(iy), Some(ix)) =
                            (geometry.input(p / out, ky), geometry.input(p % out, kx))
                        else {
                            continue;
                        };
                        sum += input[(iy * size + ix) * channels + c]
                            * layer.weight[(ky * kernel + kx) * channels + c];
                    }
                    *w = sum.clamp(0.0, 6.0);
                }
            }
            let input = with_border(&input, geometry, channels);
            let row = geometry.padded() * channels;
            // The rows from `first` on, in each layout this CPU runs.
            let layouts = |first: usize| {
                let rows = &input[first * row..];
                let mut layouts = vec![(Hidden::ChannelsLast, rows.to_vec())];
                #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                for cpu in every_path().into_iter().filter_map(|k| k.simd) {
                    if driver::depthwise_fits(&layer) {
                        let n = rows.len() / row;
                        layouts.push((Hidden::Planes { rows: n, cpu }, to_planes(rows, channels)));
                    }
                }
                layouts
            };
            // The same in two bands of rows, each given only the input rows it reads.
            let mid = out / 2;
            let first = (mid * stride).saturating_sub(pad);
            for ((layout, input), (rest_layout, rest)) in layouts(0).into_iter().zip(layouts(first))
            {
                let what = format!("{size}x{size}x{channels} k{kernel} s{stride}, {layout:?}");
                // The output channels-last, whatever the layout wrote.
                let written = |out: Vec<f32>| match layout {
                    Hidden::ChannelsLast => out,
                    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                    Hidden::Planes { .. } => from_planes(&out, channels),
                };
                let mut got = vec![f32::NAN; out * out * channels];
                depthwise(&layer, &input, layout, 0, &mut got, 0..out);
                assert_close(&written(got), &want, &what);
                let mut top = vec![f32::NAN; mid * out * channels];
                let mut bottom = vec![f32::NAN; (out - mid) * out * channels];
                if mid > 0 {
                    depthwise(&layer, &input, layout, 0, &mut top, 0..mid);
                }
                depthwise(&layer, &rest, rest_layout, first, &mut bottom, mid..out);
                let got = [written(top), written(bottom)].concat();
                assert_close(&got, &want, &what);
            }
        }
    }

    /// `[pixels][c]` to `[c / 8][pixels][8]`.
    fn to_planes(values: &[f32], c: usize) -> Vec<f32> {
        let pixels = values.len() / c;
        let mut planes = vec![f32::NAN; values.len()];
        for (i, eight) in values.chunks_exact(8).enumerate() {
            let (p, v) = (i / (c / 8), i % (c / 8));
            planes[(v * pixels + p) * 8..][..8].copy_from_slice(eight);
        }
        planes
    }

    /// `[c / 8][pixels][8]` to `[pixels][c]`.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    fn from_planes(planes: &[f32], c: usize) -> Vec<f32> {
        let pixels = planes.len() / c;
        let mut values = vec![f32::NAN; planes.len()];
        for (i, eight) in planes.chunks_exact(8).enumerate() {
            let (v, p) = (i / pixels, i % pixels);
            values[p * c + v * 8..][..8].copy_from_slice(eight);
        }
        values
    }

    /// `[size, size, c]` with each row's zero border (what [`depthwise`] reads).
    fn with_border(image: &[f32], g: Geometry, c: usize) -> Vec<f32> {
        let mut rows = vec![0.0; g.size * g.padded() * c];
        for (row, pixels) in rows
            .chunks_exact_mut(g.padded() * c)
            .zip(image.chunks_exact(g.size * c))
        {
            row[g.pad * c..][..g.size * c].copy_from_slice(pixels);
        }
        rows
    }

    /// A layer the kernels do not implement is refused, not computed wrongly.
    #[test]
    fn refuses_other_padding() {
        let device = Device::flex();
        let conv = burn::nn::conv::Conv2dConfig::new([8, 8], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        assert!(geometry(&conv, 10, 1).is_err());
        let conv = burn::nn::conv::Conv2dConfig::new([8, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_dilation([2, 2])
            .init(&device);
        assert!(geometry(&conv, 10, 1).is_err());
        let conv = burn::nn::conv::Conv2dConfig::new([8, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        assert!(geometry(&conv, 10, 1).is_ok());
        assert!(geometry(&conv, 10, 8).is_err(), "groups differ");
    }
}

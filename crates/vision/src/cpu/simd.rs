//! AVX2/FMA kernels for the CPU path, for x86-64 CPUs that have both (detected at run time;
//! other CPUs take the portable path in [`super`]), written with `std::arch` intrinsics inside
//! `#[target_feature]` functions:
//! - a 1x1 convolution that keeps a tile of 6 pixels x 16 channels of outputs in registers
//!   through the whole sum and applies bias, residual and ReLU6 before its only store;
//! - a depthwise convolution that keeps up to 64 channels of one output pixel in registers
//!   across its taps.

use std::arch::x86_64::*;

use super::Depthwise;

/// `__m256` from a `&[f32; 8]`. Safe to call only where AVX is enabled, which the compiler
/// checks.
#[target_feature(enable = "avx")]
#[inline]
fn load(values: &[f32; 8]) -> __m256 {
    // SAFETY: reads exactly the 8 floats `values` refers to.
    #[allow(unsafe_code)]
    unsafe {
        _mm256_loadu_ps(values.as_ptr())
    }
}

/// Writes an `__m256` to a `&mut [f32; 8]`.
#[target_feature(enable = "avx")]
#[inline]
fn store(dst: &mut [f32; 8], value: __m256) {
    // SAFETY: writes exactly the 8 floats `dst` refers to.
    #[allow(unsafe_code)]
    unsafe {
        _mm256_storeu_ps(dst.as_mut_ptr(), value)
    }
}

thread_local! {
    static PANELS: std::cell::Cell<Vec<[f32; MR]>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Output pixels per register tile.
const MR: usize = 6;
/// Input values per cache block of pixels, packed once and reread from the core's cache for
/// every tile of output channels.
const BLOCK_VALUES: usize = 24 * 1024;

/// Proof that the CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    pub(super) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Self(()))
    }
}

/// 1x1 convolution weights packed for [`pointwise`]: for each tile of 16 output channels (the
/// last one 8 wide when `cout` is not a multiple of 16), `[cin][16 or 8]` contiguous.
#[derive(Debug)]
pub(super) struct Packed {
    data: Vec<f32>,
}

impl Packed {
    /// `weight` is `[cin, cout]`; `None` unless `cout` is a multiple of 8.
    pub(super) fn new(weight: &[f32], cin: usize, cout: usize) -> Option<Self> {
        if !cout.is_multiple_of(8) || weight.len() != cin * cout {
            return None;
        }
        let mut data = Vec::with_capacity(weight.len());
        for (start, width) in tiles(cout) {
            for row in weight.chunks_exact(cout) {
                data.extend_from_slice(&row[start..start + width]);
            }
        }
        Some(Self { data })
    }
}

/// `(first channel, width)` of the output-channel tiles.
fn tiles(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..cout)
        .step_by(16)
        .map(move |start| (start, (cout - start).min(16)))
}

/// What a 1x1 convolution writes: `act(input x weight + bias (+ residual))`.
pub(super) struct Output<'a> {
    pub(super) out: &'a mut [f32],
    pub(super) residual: Option<&'a [f32]>,
    pub(super) relu6: bool,
}

/// `out [pixels, cout] = act(input [pixels, cin] x weight + bias (+ residual))`.
pub(super) fn pointwise(
    cpu: Avx2,
    packed: &Packed,
    bias: &[f32],
    input: &[f32],
    cin: usize,
    output: Output,
) {
    let _ = cpu;
    // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
    #[allow(unsafe_code)]
    unsafe {
        pointwise_avx2(packed, bias, input, cin, output)
    }
}

#[target_feature(enable = "avx,avx2,fma")]
fn pointwise_avx2(packed: &Packed, bias: &[f32], input: &[f32], cin: usize, output: Output) {
    let Output {
        out,
        residual,
        relu6,
    } = output;
    let cout = bias.len();
    let pixels = input.len() / cin;
    assert!(input.len() == pixels * cin && out.len() == pixels * cout);
    assert!(residual.is_none_or(|r| r.len() == out.len()));
    let block = (BLOCK_VALUES / cin).max(MR) / MR * MR;
    // Input panels: each tile of MR pixels as [cin][MR], zero past the last pixel. Reused
    // from call to call on this thread (every value read is written first).
    let mut panels = PANELS.take();
    panels.resize(panels.len().max(block / MR * cin), [0.0; MR]);
    for first in (0..pixels).step_by(block) {
        let rows = block.min(pixels - first);
        let tiles_p = rows.div_ceil(MR);
        for (t, panel) in panels.chunks_exact_mut(cin).take(tiles_p).enumerate() {
            let p0 = first + t * MR;
            if p0 + MR <= first + rows {
                let tile = &input[p0 * cin..][..MR * cin];
                let rows: [&[f32]; MR] = std::array::from_fn(|r| &tile[r * cin..][..cin]);
                for (k, dst) in panel.iter_mut().enumerate() {
                    *dst = std::array::from_fn(|r| rows[r][k]);
                }
            } else {
                for (r, p) in (p0..p0 + MR).enumerate() {
                    if p < first + rows {
                        let row = &input[p * cin..][..cin];
                        for (dst, &x) in panel.iter_mut().zip(row) {
                            dst[r] = x;
                        }
                    } else {
                        panel.iter_mut().for_each(|dst| dst[r] = 0.0);
                    }
                }
            }
        }
        let mut offset = 0;
        for (start, width) in tiles(cout) {
            let weights = &packed.data[offset..][..cin * width];
            offset += cin * width;
            for (t, panel) in panels.chunks_exact(cin).take(tiles_p).enumerate() {
                let p0 = first + t * MR;
                let tile = Tile {
                    panel,
                    bias: &bias[start..start + width],
                    residual: residual.map(|r| &r[p0 * cout + start..]),
                    rows: MR.min(first + rows - p0),
                    cout,
                    relu6,
                };
                let out = &mut out[p0 * cout + start..];
                if width == 16 {
                    tile.run::<2>(weights, out);
                } else {
                    tile.run::<1>(weights, out);
                }
            }
        }
    }
    PANELS.set(panels);
}

/// One MR-pixel x W-channel tile of outputs.
struct Tile<'a> {
    /// `[cin][MR]`.
    panel: &'a [[f32; MR]],
    bias: &'a [f32],
    /// From the tile's first output value on, with rows `cout` apart.
    residual: Option<&'a [f32]>,
    /// Pixels of the tile that exist.
    rows: usize,
    cout: usize,
    relu6: bool,
}

impl Tile<'_> {
    /// `weights` is `[cin][8 * NV]`; `out` starts at the tile's first output value.
    #[target_feature(enable = "avx,avx2,fma")]
    fn run<const NV: usize>(&self, weights: &[f32], out: &mut [f32]) {
        let (weights, _) = weights.as_chunks::<8>();
        let (bias, _) = self.bias.as_chunks::<8>();
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = load(&bias[v]);
                if let Some(residual) = self.residual.filter(|_| r < self.rows) {
                    let (residual, _) = residual[r * self.cout..][..8 * NV].as_chunks::<8>();
                    *acc = _mm256_add_ps(*acc, load(&residual[v]));
                }
            }
        }
        for (x, w) in self.panel.iter().zip(weights.chunks_exact(NV)) {
            let mut wv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                wv[v] = load(&w[v]);
            }
            for r in 0..MR {
                let x = _mm256_set1_ps(x[r]);
                for v in 0..NV {
                    acc[r][v] = _mm256_fmadd_ps(x, wv[v], acc[r][v]);
                }
            }
        }
        let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
        for (r, acc) in acc.iter().enumerate().take(self.rows) {
            let (out, _) = out[r * self.cout..][..8 * NV].as_chunks_mut::<8>();
            for (o, &a) in out.iter_mut().zip(acc) {
                let a = if self.relu6 {
                    _mm256_min_ps(six, _mm256_max_ps(zero, a))
                } else {
                    a
                };
                store(o, a);
            }
        }
    }
}

/// Depthwise convolution with bias and ReLU6 over channels-last data, output rows `rows.start..`
/// (as many as `out` holds) from input rows `first_row..` (as many as `input` holds); the
/// layer's channels must be a multiple of 8.
pub(super) fn depthwise(
    cpu: Avx2,
    layer: &Depthwise,
    input: &[f32],
    first_row: usize,
    out: &mut [f32],
    out_row: usize,
) {
    let _ = cpu;
    // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
    #[allow(unsafe_code)]
    unsafe {
        depthwise_avx2(layer, input, first_row, out, out_row)
    }
}

#[target_feature(enable = "avx,avx2,fma")]
fn depthwise_avx2(
    layer: &Depthwise,
    input: &[f32],
    first_row: usize,
    out: &mut [f32],
    out_row: usize,
) {
    let g = layer.geometry;
    let lanes = layer.channels / 8;
    let (input, _) = input.as_chunks::<8>();
    let (weight, _) = layer.weight.as_chunks::<8>();
    let (bias, _) = layer.bias.as_chunks::<8>();
    let (out, _) = out.as_chunks_mut::<8>();
    // 32 channels of one output pixel accumulate in registers across the taps; then the next
    // 32 (8 at a time at the end).
    for (p, out) in out.chunks_exact_mut(lanes).enumerate() {
        let (oy, ox) = (out_row + p / g.out, p % g.out);
        let (rows, iy0) = g.taps(oy);
        let taps = Taps {
            rows: (rows, iy0 - first_row),
            cols: g.taps(ox),
            size: g.size,
            kernel: g.kernel,
            lanes,
        };
        let mut v = 0;
        while v + 8 <= lanes {
            taps.run::<8>(input, weight, bias, v, out);
            v += 8;
        }
        while v + 4 <= lanes {
            taps.run::<4>(input, weight, bias, v, out);
            v += 4;
        }
        while v < lanes {
            taps.run::<1>(input, weight, bias, v, out);
            v += 1;
        }
    }
}

/// The taps of one output pixel that fall inside the image.
struct Taps {
    /// Tap rows, and the input row of the first one.
    rows: (std::ops::Range<usize>, usize),
    /// Tap columns, and the input column of the first one.
    cols: (std::ops::Range<usize>, usize),
    size: usize,
    kernel: usize,
    /// Vectors of 8 channels per pixel.
    lanes: usize,
}

impl Taps {
    /// Output vectors `v..v + N` of the pixel.
    #[target_feature(enable = "avx,avx2,fma")]
    #[inline]
    fn run<const N: usize>(
        &self,
        input: &[[f32; 8]],
        weight: &[[f32; 8]],
        bias: &[[f32; 8]],
        v: usize,
        out: &mut [[f32; 8]],
    ) {
        let lanes = self.lanes;
        let mut acc = [_mm256_setzero_ps(); N];
        for (acc, bias) in acc.iter_mut().zip(&bias[v..v + N]) {
            *acc = load(bias);
        }
        for (dy, ky) in self.rows.0.clone().enumerate() {
            let iy = self.rows.1 + dy;
            for (dx, kx) in self.cols.0.clone().enumerate() {
                let x = &input[((iy * self.size) + self.cols.1 + dx) * lanes + v..][..N];
                let w = &weight[(ky * self.kernel + kx) * lanes + v..][..N];
                for i in 0..N {
                    acc[i] = _mm256_fmadd_ps(load(&x[i]), load(&w[i]), acc[i]);
                }
            }
        }
        let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
        for (o, a) in out[v..v + N].iter_mut().zip(acc) {
            store(o, _mm256_min_ps(six, _mm256_max_ps(zero, a)));
        }
    }
}

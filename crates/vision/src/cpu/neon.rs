//! aarch64 NEON kernels for the CPU path (NEON is part of every aarch64 CPU; [`Neon::detect`]
//! asks anyway, so that the token means what the x86 ones mean), written with `std::arch`
//! intrinsics on 4-lane registers:
//! - the 1x1 convolution's register tile ([`super::driver`]): 6 pixels x 16 channels of
//!   outputs in 24 of the 32 registers through the whole sum, over pixels channels-last or in
//!   planes of 8 channels;
//! - a depthwise convolution over planes of 8 channels, four channels at a time, that keeps 8
//!   output pixels of a row in registers across its taps, reading input rows that carry their
//!   zero border.

use std::arch::aarch64::*;

use super::Depthwise;
use super::driver::{self, Kernel, MR, Planes, Source, Tile};

/// `float32x4_t` from a `&[f32; 4]`. Safe to call only where NEON is enabled, which the
/// compiler checks.
#[target_feature(enable = "neon")]
#[inline]
fn load(values: &[f32; 4]) -> float32x4_t {
    // SAFETY: reads exactly the 4 floats `values` refers to.
    #[allow(unsafe_code)]
    unsafe {
        vld1q_f32(values.as_ptr())
    }
}

/// Writes a `float32x4_t` to a `&mut [f32; 4]`.
#[target_feature(enable = "neon")]
#[inline]
fn store(dst: &mut [f32; 4], value: float32x4_t) {
    // SAFETY: writes exactly the 4 floats `dst` refers to.
    #[allow(unsafe_code)]
    unsafe {
        vst1q_f32(dst.as_mut_ptr(), value)
    }
}

/// Half `h` (channels `4h..4h + 4`) of a pixel's 8 channels.
#[inline]
fn half(values: &[f32; 8], h: usize) -> &[f32; 4] {
    &values.as_chunks::<4>().0[h]
}

/// `min(6, max(0, value))`.
#[target_feature(enable = "neon")]
#[inline]
fn relu6(value: float32x4_t) -> float32x4_t {
    vminq_f32(vdupq_n_f32(6.0), vmaxq_f32(vdupq_n_f32(0.0), value))
}

/// Proof that the CPU has NEON: only [`Neon::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Neon(());

impl Neon {
    pub(super) fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Self(()))
    }
}

/// The kernels a call runs: NEON's, the only ones on aarch64.
pub(super) type Isa = Neon;

impl Kernel for Neon {
    fn step(self) -> usize {
        16
    }

    #[inline]
    fn run(self, tile: &Tile, width: usize, weights: &[f32], out: &mut [f32]) {
        // SAFETY: a `Neon` exists only where the CPU has NEON.
        #[allow(unsafe_code)]
        unsafe {
            match width {
                16 => tile.neon::<4>(weights, out),
                8 => tile.neon::<2>(weights, out),
                _ => panic!("no NEON tile is {width} channels wide"),
            }
        }
    }
}

/// `out [pixels, cout] = act(input [pixels, cin] x weight + bias (+ residual))`.
pub(super) fn pointwise(
    cpu: Neon,
    packed: &driver::Packed,
    bias: &[f32],
    input: super::Pixels,
    cin: usize,
    output: driver::Output,
) {
    // SAFETY: a `Neon` exists only where the CPU has NEON.
    #[allow(unsafe_code)]
    unsafe {
        pointwise_neon(cpu, packed, bias, input, cin, output)
    }
}

/// The driver compiled with NEON.
#[target_feature(enable = "neon")]
fn pointwise_neon(
    cpu: Neon,
    packed: &driver::Packed,
    bias: &[f32],
    input: super::Pixels,
    cin: usize,
    output: driver::Output,
) {
    driver::pointwise(cpu, packed, bias, input, cin, output);
}

impl Tile<'_> {
    /// `weights` is `[cin][4 * NV]`.
    #[target_feature(enable = "neon")]
    fn neon<const NV: usize>(&self, weights: &[f32], out: &mut [f32]) {
        let rows = self.starts.len();
        let (weights, _) = weights.as_chunks::<4>();
        let (bias, _) = self.bias.as_chunks::<4>();
        let mut acc = [[vdupq_n_f32(0.0); NV]; MR];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = load(&bias[v]);
                if let Some(residual) = self.residual.filter(|_| r < rows) {
                    let (residual, _) = residual[r * self.cout..][..4 * NV].as_chunks::<4>();
                    *acc = vaddq_f32(*acc, load(&residual[v]));
                }
            }
        }
        match self.x {
            Source::Panel(panel) => {
                for (x, w) in panel.iter().zip(weights.chunks_exact(NV)) {
                    let mut wv = [vdupq_n_f32(0.0); NV];
                    for v in 0..NV {
                        wv[v] = load(&w[v]);
                    }
                    for r in 0..MR {
                        for v in 0..NV {
                            acc[r][v] = vfmaq_n_f32(acc[r][v], wv[v], x[r]);
                        }
                    }
                }
            }
            Source::Planes { values, stride, p0 } => {
                // Eight steps of the sum per plane: its MR x 8 values are one contiguous block.
                for (plane, w) in weights.chunks_exact(8 * NV).enumerate() {
                    let block = &values[(plane * stride + p0) * 8..][..MR * 8];
                    for (j, w) in w.chunks_exact(NV).enumerate() {
                        let mut wv = [vdupq_n_f32(0.0); NV];
                        for v in 0..NV {
                            wv[v] = load(&w[v]);
                        }
                        for r in 0..MR {
                            for v in 0..NV {
                                acc[r][v] = vfmaq_n_f32(acc[r][v], wv[v], block[r * 8 + j]);
                            }
                        }
                    }
                }
            }
        }
        let mut sums = [[[0.0; 4]; NV]; MR];
        for r in 0..MR {
            for v in 0..NV {
                let a = acc[r][v];
                store(&mut sums[r][v], if self.relu6 { relu6(a) } else { a });
            }
        }
        self.write(&sums, out);
    }
}

/// Output pixels of a row that accumulate in registers together.
const SPAN: usize = super::DEPTHWISE_SPAN;

/// Depthwise convolution with bias and ReLU6, for a layer that [`driver::depthwise_fits`]:
/// output rows `out_row..` (as many as `out` holds, in planes of 8 channels: `[c / 8][pixels][8]`)
/// from input rows `first_row..` held in planes of 8 channels, `rows` rows per plane, each row
/// with its zero border (see [`super::Hidden`]).
pub(super) fn depthwise(
    cpu: Neon,
    layer: &Depthwise,
    input: &[f32],
    rows: usize,
    first_row: usize,
    out: &mut [f32],
    out_row: usize,
) {
    let _ = cpu;
    let g = layer.geometry;
    let planes = Planes {
        input: input.as_chunks::<8>().0,
        rows,
        first_row,
    };
    // SAFETY: a `Neon` exists only where the CPU has NEON.
    #[allow(unsafe_code)]
    unsafe {
        match (g.kernel, g.stride) {
            (3, 1) => depthwise_neon::<3, 1>(layer, planes, out, out_row),
            (3, 2) => depthwise_neon::<3, 2>(layer, planes, out, out_row),
            (5, 1) => depthwise_neon::<5, 1>(layer, planes, out, out_row),
            (5, 2) => depthwise_neon::<5, 2>(layer, planes, out, out_row),
            _ => panic!("depthwise_fits is false for {g:?}"),
        }
    }
}

/// One half plane (4 channels) at a time, through every output row of the band, so that the
/// input rows a row of outputs reads stay in L1 for the next: SPAN pixels at a time, their
/// accumulators in registers and each tap's weight loaded once for all of them. A row that is
/// not a whole number of spans ends with a span that overlaps the one before; a row shorter
/// than a span reads the zeros past its border (`Geometry::padded`).
#[target_feature(enable = "neon")]
fn depthwise_neon<const K: usize, const S: usize>(
    layer: &Depthwise,
    planes: Planes,
    out: &mut [f32],
    out_row: usize,
) {
    let g = layer.geometry;
    let lanes = layer.channels / 8;
    let width = g.padded();
    let plane = planes.rows * width;
    let (out, _) = out.as_chunks_mut::<8>();
    let pixels = out.len() / lanes;
    let zeros = driver::zeros(width);
    let (weight, _) = layer.weight.as_chunks::<8>();
    let (bias, _) = layer.bias.as_chunks::<8>();
    for (v, h) in (0..lanes).flat_map(|v| [(v, 0), (v, 1)]) {
        let input = &planes.input[v * plane..][..plane];
        let mut w = [[vdupq_n_f32(0.0); K]; K];
        for (ky, w) in w.iter_mut().enumerate() {
            for (kx, w) in w.iter_mut().enumerate() {
                *w = load(half(&weight[(ky * K + kx) * lanes + v], h));
            }
        }
        let bias = load(half(&bias[v], h));
        let out = &mut out[v * pixels..][..pixels];
        for (r, out) in out.chunks_exact_mut(g.out).enumerate() {
            let lines = planes.lines::<K, S>(input, out_row + r, g, &zeros);
            let mut ox = 0;
            while ox < g.out {
                let at = ox.min(g.out.saturating_sub(SPAN));
                let mut acc = [bias; SPAN];
                for (line, w) in lines.iter().zip(&w) {
                    let line = &line[at * S..][..(SPAN - 1) * S + K];
                    for (kx, &w) in w.iter().enumerate() {
                        for (p, acc) in acc.iter_mut().enumerate() {
                            *acc = vfmaq_f32(*acc, load(half(&line[p * S + kx], h)), w);
                        }
                    }
                }
                for (out, acc) in out[at..][..SPAN.min(g.out)].iter_mut().zip(acc) {
                    let (out, _) = out.as_chunks_mut::<4>();
                    store(&mut out[h], relu6(acc));
                }
                ox = at + SPAN;
            }
        }
    }
    driver::keep_zeros(zeros);
}

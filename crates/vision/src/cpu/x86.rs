//! x86-64 kernels for the CPU path, for CPUs with AVX2 and FMA, and with AVX-512F as well
//! (detected at run time; other CPUs take the portable path in [`super`]), written with
//! `std::arch` intrinsics inside `#[target_feature]` functions:
//! - the 1x1 convolution's register tile ([`super::driver`]): 6 pixels x 16 channels of outputs
//!   (AVX2; AVX-512: 64 channels) in registers through the whole sum, over pixels
//!   channels-last or in planes of 8 channels; with AVX-512 BF16 as well, the same tile in
//!   bf16 (dot products of pairs of input channels into f32 sums, `--precision bf16`);
//! - a depthwise convolution over planes of 8 channels that keeps 8 output pixels of a row in
//!   registers across its taps, reading input rows that carry their zero border (AVX2 on
//!   either ISA).

use std::arch::x86_64::*;

use super::bf16::{self, PairKernel, Pairs};
use super::driver::{self, Kernel, MR, Output, Packed, Planes, Source, Tile};
use super::{Depthwise, Pixels};

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

/// `__m512` from a `&[f32; 16]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn load16(values: &[f32; 16]) -> __m512 {
    // SAFETY: reads exactly the 16 floats `values` refers to.
    #[allow(unsafe_code)]
    unsafe {
        _mm512_loadu_ps(values.as_ptr())
    }
}

/// Writes an `__m512` to a `&mut [f32; 16]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn store16(dst: &mut [f32; 16], value: __m512) {
    // SAFETY: writes exactly the 16 floats `dst` refers to.
    #[allow(unsafe_code)]
    unsafe {
        _mm512_storeu_ps(dst.as_mut_ptr(), value)
    }
}

/// Proof that the CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    pub(super) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Self(()))
    }
}

/// Proof that the CPU has AVX-512F, AVX2 and FMA: only [`Avx512::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512(());

impl Avx512 {
    pub(super) fn detect() -> Option<Self> {
        Avx2::detect()
            .filter(|_| is_x86_feature_detected!("avx512f"))
            .map(|_| Self(()))
    }

    /// A CPU with AVX-512 runs the AVX2 kernels too.
    fn avx2(self) -> Avx2 {
        Avx2(())
    }
}

/// Proof that the CPU has AVX-512F with BF16, VL and BW (dot products of bf16 pairs into f32
/// sums, in 512- and 256-bit registers), AVX2 and FMA: only [`Avx512Bf16::detect`] makes one.
/// Every CPU with AVX-512 BF16 has VL and BW too; they are checked all the same.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512Bf16(());

impl Avx512Bf16 {
    pub(super) fn detect() -> Option<Self> {
        Avx512::detect()
            .filter(|_| is_x86_feature_detected!("avx512bf16"))
            .filter(|_| is_x86_feature_detected!("avx512vl"))
            .filter(|_| is_x86_feature_detected!("avx512bw"))
            .map(|_| Self(()))
    }
}

/// The kernels a call runs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Isa {
    Avx2(Avx2),
    Avx512(Avx512),
}

impl Isa {
    fn avx2(self) -> Avx2 {
        match self {
            Self::Avx2(cpu) => cpu,
            Self::Avx512(cpu) => cpu.avx2(),
        }
    }
}

/// Output channels of the widest AVX-512 tile: four registers, so that 6 pixels x 4 registers
/// of sums, the 4 registers of weights they read and the broadcast input fill 29 of the 32.
const WIDE: usize = 64;

impl Kernel for Isa {
    fn step(self) -> usize {
        match self {
            Isa::Avx2(_) => 16,
            Isa::Avx512(_) => WIDE,
        }
    }

    #[inline]
    fn run(self, tile: &Tile, width: usize, weights: &[f32], out: &mut [f32]) {
        // SAFETY: an `Isa::Avx2` exists only where the CPU has AVX2 and FMA, an
        // `Isa::Avx512` only where it has AVX-512F as well.
        #[allow(unsafe_code)]
        unsafe {
            match (self, width) {
                (Isa::Avx512(_), 64) => tile.avx512::<4>(weights, out),
                (Isa::Avx512(_), 48) => tile.avx512::<3>(weights, out),
                (Isa::Avx512(_), 32) => tile.avx512::<2>(weights, out),
                (Isa::Avx512(_), 16) => tile.avx512::<1>(weights, out),
                (_, 16) => tile.avx2::<2>(weights, out),
                (_, 8) => tile.avx2::<1>(weights, out),
                _ => panic!("no {self:?} tile is {width} channels wide"),
            }
        }
    }
}

impl PairKernel for Avx512Bf16 {
    fn step(self) -> usize {
        WIDE
    }

    #[inline]
    fn pack(self, rows: [&[f32; 8]; MR], dst: &mut [[u32; MR]; 4]) {
        // SAFETY: an `Avx512Bf16` exists only where the CPU has AVX-512F, BF16 and VL.
        #[allow(unsafe_code)]
        unsafe {
            pack_avx512(rows, dst)
        }
    }

    #[inline]
    fn run(self, tile: &Tile<&[[u32; MR]]>, width: usize, weights: &[u32], out: &mut [f32]) {
        // SAFETY: an `Avx512Bf16` exists only where the CPU has AVX-512F, BF16 and VL, AVX2 and
        // FMA.
        #[allow(unsafe_code)]
        unsafe {
            match width {
                64 => tile.bf16::<4>(weights, out),
                48 => tile.bf16::<3>(weights, out),
                32 => tile.bf16::<2>(weights, out),
                16 => tile.bf16::<1>(weights, out),
                8 => tile.bf16_8(weights, out),
                _ => panic!("no bf16 tile is {width} channels wide"),
            }
        }
    }
}

/// [`pointwise`] with the weights and input rounded to bf16 (sums in f32).
pub(super) fn pointwise_pairs(
    cpu: Avx512Bf16,
    packed: &Pairs,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    // SAFETY: an `Avx512Bf16` exists only where the CPU has these features.
    #[allow(unsafe_code)]
    unsafe {
        pointwise_pairs_avx512(cpu, packed, bias, input, cin, output)
    }
}

/// The bf16 driver compiled with AVX-512, its tiles and packing inlined.
#[target_feature(enable = "avx,avx2,fma,avx512f,avx512bw,avx512vl,avx512bf16")]
fn pointwise_pairs_avx512(
    cpu: Avx512Bf16,
    packed: &Pairs,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    bf16::pointwise_pairs(cpu, packed, bias, input, cin, output);
}

/// `out [pixels, cout] = act(input [pixels, cin] x weight + bias (+ residual))`.
pub(super) fn pointwise(
    cpu: Isa,
    packed: &Packed,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    // SAFETY: an `Isa` exists only where the CPU has AVX2 and FMA.
    #[allow(unsafe_code)]
    unsafe {
        pointwise_avx2(cpu, packed, bias, input, cin, output)
    }
}

/// The driver compiled with AVX2 for either ISA.
#[target_feature(enable = "avx,avx2,fma")]
fn pointwise_avx2(
    cpu: Isa,
    packed: &Packed,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    driver::pointwise(cpu, packed, bias, input, cin, output);
}

impl Tile<'_> {
    /// `weights` is `[cin][8 * NV]`.
    #[target_feature(enable = "avx,avx2,fma")]
    fn avx2<const NV: usize>(&self, weights: &[f32], out: &mut [f32]) {
        let (weights, _) = weights.as_chunks::<8>();
        let mut acc = self.start8::<NV>();
        match self.x {
            Source::Panel(panel) => {
                for (x, w) in panel.iter().zip(weights.chunks_exact(NV)) {
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
            }
            Source::Planes { values, stride, p0 } => {
                // Eight steps of the sum per plane: its MR x 8 values are one contiguous block.
                for (plane, w) in weights.chunks_exact(8 * NV).enumerate() {
                    let block = &values[(plane * stride + p0) * 8..][..MR * 8];
                    for (j, w) in w.chunks_exact(NV).enumerate() {
                        let mut wv = [_mm256_setzero_ps(); NV];
                        for v in 0..NV {
                            wv[v] = load(&w[v]);
                        }
                        for r in 0..MR {
                            let x = _mm256_set1_ps(block[r * 8 + j]);
                            for v in 0..NV {
                                acc[r][v] = _mm256_fmadd_ps(x, wv[v], acc[r][v]);
                            }
                        }
                    }
                }
            }
        }
        self.finish8(acc, out);
    }

    /// `weights` is `[cin][16 * NV]`.
    #[target_feature(enable = "avx,avx2,fma,avx512f")]
    fn avx512<const NV: usize>(&self, weights: &[f32], out: &mut [f32]) {
        let (weights, _) = weights.as_chunks::<16>();
        let mut acc = self.start16::<NV>();
        match self.x {
            Source::Panel(panel) => {
                for (x, w) in panel.iter().zip(weights.chunks_exact(NV)) {
                    let mut wv = [_mm512_setzero_ps(); NV];
                    for v in 0..NV {
                        wv[v] = load16(&w[v]);
                    }
                    for r in 0..MR {
                        let x = _mm512_set1_ps(x[r]);
                        for v in 0..NV {
                            acc[r][v] = _mm512_fmadd_ps(x, wv[v], acc[r][v]);
                        }
                    }
                }
            }
            Source::Planes { values, stride, p0 } => {
                // Eight steps of the sum per plane: its MR x 8 values are one contiguous block.
                for (plane, w) in weights.chunks_exact(8 * NV).enumerate() {
                    let block = &values[(plane * stride + p0) * 8..][..MR * 8];
                    for (j, w) in w.chunks_exact(NV).enumerate() {
                        let mut wv = [_mm512_setzero_ps(); NV];
                        for v in 0..NV {
                            wv[v] = load16(&w[v]);
                        }
                        for r in 0..MR {
                            let x = _mm512_set1_ps(block[r * 8 + j]);
                            for v in 0..NV {
                                acc[r][v] = _mm512_fmadd_ps(x, wv[v], acc[r][v]);
                            }
                        }
                    }
                }
            }
        }
        self.finish16(acc, out);
    }
}

/// What every tile does before and after its sum, whatever its input.
impl<X> Tile<'_, X> {
    /// The sums of an `8 * NV`-channel tile before its products: the bias, plus the residual
    /// on the rows that exist.
    #[target_feature(enable = "avx,avx2,fma")]
    #[inline]
    fn start8<const NV: usize>(&self) -> [[__m256; NV]; MR] {
        let rows = self.starts.len();
        let (bias, _) = self.bias.as_chunks::<8>();
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = load(&bias[v]);
                if let Some(residual) = self.residual.filter(|_| r < rows) {
                    let (residual, _) = residual[r * self.cout..][..8 * NV].as_chunks::<8>();
                    *acc = _mm256_add_ps(*acc, load(&residual[v]));
                }
            }
        }
        acc
    }

    /// ReLU6 if the layer has it, then the rows that exist written out. The sums leave their
    /// registers by constant indices (see [`Tile::write`]).
    #[target_feature(enable = "avx,avx2,fma")]
    #[inline]
    fn finish8<const NV: usize>(&self, acc: [[__m256; NV]; MR], out: &mut [f32]) {
        let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
        let mut sums = [[[0.0; 8]; NV]; MR];
        for r in 0..MR {
            for v in 0..NV {
                let a = acc[r][v];
                let a = if self.relu6 {
                    _mm256_min_ps(six, _mm256_max_ps(zero, a))
                } else {
                    a
                };
                store(&mut sums[r][v], a);
            }
        }
        self.write(&sums, out);
    }

    /// [`Self::start8`] for a `16 * NV`-channel tile in 512-bit registers.
    #[target_feature(enable = "avx,avx2,fma,avx512f")]
    #[inline]
    fn start16<const NV: usize>(&self) -> [[__m512; NV]; MR] {
        let rows = self.starts.len();
        let (bias, _) = self.bias.as_chunks::<16>();
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = load16(&bias[v]);
                if let Some(residual) = self.residual.filter(|_| r < rows) {
                    let (residual, _) = residual[r * self.cout..][..16 * NV].as_chunks::<16>();
                    *acc = _mm512_add_ps(*acc, load16(&residual[v]));
                }
            }
        }
        acc
    }

    /// [`Self::finish8`] for a `16 * NV`-channel tile in 512-bit registers.
    #[target_feature(enable = "avx,avx2,fma,avx512f")]
    #[inline]
    fn finish16<const NV: usize>(&self, acc: [[__m512; NV]; MR], out: &mut [f32]) {
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        let mut sums = [[[0.0; 16]; NV]; MR];
        for r in 0..MR {
            for v in 0..NV {
                let a = acc[r][v];
                let a = if self.relu6 {
                    _mm512_min_ps(six, _mm512_max_ps(zero, a))
                } else {
                    a
                };
                store16(&mut sums[r][v], a);
            }
        }
        self.write(&sums, out);
    }
}

/// 16 lanes of bf16 pairs from a `&[u32; 16]`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn load_pairs16(lanes: &[u32; 16]) -> __m512bh {
    // SAFETY: reads exactly the 16 lanes `lanes` refers to; both types are 64 bytes of plain
    // data, every bit pattern a valid value of either.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(lanes.as_ptr().cast()))
    }
}

/// bf16 pairs as the 32-bit lanes they fill.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn pairs_as_lanes(pairs: __m512bh) -> __m512i {
    // SAFETY: both types are 64 bytes of plain data, every bit pattern a valid value of either.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<__m512bh, __m512i>(pairs)
    }
}

/// 16 lanes from a slice of exactly 16 (checked).
#[target_feature(enable = "avx512f")]
#[inline]
fn load_lanes16(lanes: &[i32]) -> __m512i {
    assert_eq!(lanes.len(), 16);
    // SAFETY: reads exactly the 16 lanes `lanes` holds (checked above).
    #[allow(unsafe_code)]
    unsafe {
        _mm512_loadu_si512(lanes.as_ptr().cast())
    }
}

/// Writes 16 lanes to a slice of exactly 16 (checked).
#[target_feature(enable = "avx512f")]
#[inline]
fn store_lanes16(dst: &mut [u32], value: __m512i) {
    assert_eq!(dst.len(), 16);
    // SAFETY: writes exactly the 16 lanes `dst` holds (checked above).
    #[allow(unsafe_code)]
    unsafe {
        _mm512_storeu_si512(dst.as_mut_ptr().cast(), value)
    }
}

/// Writes 8 lanes to a slice of exactly 8 (checked).
#[target_feature(enable = "avx")]
#[inline]
fn store_lanes8(dst: &mut [u32], value: __m256i) {
    assert_eq!(dst.len(), 8);
    // SAFETY: writes exactly the 8 lanes `dst` holds (checked above).
    #[allow(unsafe_code)]
    unsafe {
        _mm256_storeu_si256(dst.as_mut_ptr().cast(), value)
    }
}

/// One lane of a bf16 pair in all 16 lanes.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
fn broadcast_pair16(lane: u32) -> __m512bh {
    // SAFETY: both types are 64 bytes of plain data, every bit pattern a valid value of either.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(lane as i32))
    }
}

/// 8 lanes of bf16 pairs from a `&[u32; 8]`.
#[target_feature(enable = "avx512f,avx512vl,avx512bf16")]
#[inline]
fn load_pairs8(lanes: &[u32; 8]) -> __m256bh {
    // SAFETY: reads exactly the 8 lanes `lanes` refers to; both types are 32 bytes of plain
    // data, every bit pattern a valid value of either.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<__m256i, __m256bh>(_mm256_loadu_si256(lanes.as_ptr().cast()))
    }
}

/// One lane of a bf16 pair in all 8 lanes.
#[target_feature(enable = "avx512f,avx512vl,avx512bf16")]
#[inline]
fn broadcast_pair8(lane: u32) -> __m256bh {
    // SAFETY: both types are 32 bytes of plain data, every bit pattern a valid value of either.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::transmute::<__m256i, __m256bh>(_mm256_set1_epi32(lane as i32))
    }
}

/// Where output lane `o` of [`pack_avx512`]'s panel rows (pair `o / MR` of pixel `o % MR`)
/// is among its converted lanes: pixels 0-3 in the first register (lane `4 r + i`), 4-5 in
/// the second (16 on). Lanes 24-31 are not stored.
const PACK_LANES: [i32; 32] = {
    let mut lanes = [0; 32];
    let mut o = 0;
    while o < 24 {
        let (i, r) = ((o / MR) as i32, (o % MR) as i32);
        lanes[o] = if r < 4 {
            4 * r + i
        } else {
            16 + 4 * (r - 4) + i
        };
        o += 1;
    }
    lanes
};

/// [`PairKernel::pack`]: MR = 6 pixels' 8 channels converted in two instructions (to
/// nearest, ties to even) and moved to the panel's order in two permutes.
#[target_feature(enable = "avx,avx2,fma,avx512f,avx512vl,avx512bf16")]
#[inline]
fn pack_avx512(rows: [&[f32; 8]; MR], dst: &mut [[u32; MR]; 4]) {
    const { assert!(MR == 6) };
    let two = |a: &[f32; 8], b: &[f32; 8]| {
        let low = _mm512_castps256_ps512(load(a));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(low),
            _mm256_castps_pd(load(b)),
        ))
    };
    let (r01, r23, r45) = (
        two(rows[0], rows[1]),
        two(rows[2], rows[3]),
        two(rows[4], rows[5]),
    );
    // Lanes 4 r + i: pixels 0-3, then 4-5 (and zeros).
    let first = pairs_as_lanes(_mm512_cvtne2ps_pbh(r23, r01));
    let second = pairs_as_lanes(_mm512_cvtne2ps_pbh(_mm512_setzero_ps(), r45));
    let (head, tail) = PACK_LANES.split_at(16);
    let low = _mm512_permutex2var_epi32(first, load_lanes16(head), second);
    let high = _mm512_permutex2var_epi32(first, load_lanes16(tail), second);
    let (dst_head, dst_tail) = dst.as_flattened_mut().split_at_mut(16);
    store_lanes16(dst_head, low);
    store_lanes8(dst_tail, _mm512_castsi512_si256(high));
}

impl Tile<'_, &[[u32; MR]]> {
    /// `weights` is `[cin / 2][16 * NV]` lanes of pairs.
    #[target_feature(enable = "avx,avx2,fma,avx512f,avx512vl,avx512bf16")]
    fn bf16<const NV: usize>(&self, weights: &[u32], out: &mut [f32]) {
        let (weights, _) = weights.as_chunks::<16>();
        let mut acc = self.start16::<NV>();
        for (x, w) in self.x.iter().zip(weights.chunks_exact(NV)) {
            let mut wv = [broadcast_pair16(0); NV];
            for v in 0..NV {
                wv[v] = load_pairs16(&w[v]);
            }
            for r in 0..MR {
                let x = broadcast_pair16(x[r]);
                for v in 0..NV {
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, wv[v]);
                }
            }
        }
        self.finish16(acc, out);
    }

    /// A last run of 8 channels: `weights` is `[cin / 2][8]` lanes of pairs.
    #[target_feature(enable = "avx,avx2,fma,avx512f,avx512vl,avx512bf16")]
    fn bf16_8(&self, weights: &[u32], out: &mut [f32]) {
        let (weights, _) = weights.as_chunks::<8>();
        let mut acc = self.start8::<1>();
        for (x, w) in self.x.iter().zip(weights) {
            let wv = load_pairs8(w);
            for r in 0..MR {
                let x = broadcast_pair8(x[r]);
                acc[r][0] = _mm256_dpbf16_ps(acc[r][0], x, wv);
            }
        }
        self.finish8(acc, out);
    }
}

/// Depthwise convolution with bias and ReLU6, for a layer that [`driver::depthwise_fits`]: output
/// rows `out_row..` (as many as `out` holds, in planes of 8 channels: `[c / 8][pixels][8]`)
/// from input rows `first_row..` held in planes of 8 channels, `rows` rows per plane, each row
/// with its zero border (see [`super::Hidden`]).
pub(super) fn depthwise(
    cpu: Isa,
    layer: &Depthwise,
    input: &[f32],
    rows: usize,
    first_row: usize,
    out: &mut [f32],
    out_row: usize,
) {
    let _ = cpu.avx2();
    let g = layer.geometry;
    let planes = Planes {
        input: input.as_chunks::<8>().0,
        rows,
        first_row,
    };
    // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA.
    #[allow(unsafe_code)]
    unsafe {
        match (g.kernel, g.stride) {
            (3, 1) => depthwise_avx2::<3, 1>(layer, planes, out, out_row),
            (3, 2) => depthwise_avx2::<3, 2>(layer, planes, out, out_row),
            (5, 1) => depthwise_avx2::<5, 1>(layer, planes, out, out_row),
            (5, 2) => depthwise_avx2::<5, 2>(layer, planes, out, out_row),
            _ => panic!("depthwise_fits is false for {g:?}"),
        }
    }
}

/// Output pixels of a row that accumulate in registers together.
const SPAN: usize = super::DEPTHWISE_SPAN;

/// One plane of 8 channels at a time, through every output row of the band, so that the input
/// rows a row of outputs reads stay in L1 for the next. The input rows carry their zero
/// border, so every output pixel is the same K x K taps over contiguous vectors: SPAN pixels at
/// a time, their accumulators in registers and each tap's weight loaded once for all of them.
/// A row that is not a whole number of spans ends with a span that overlaps the one before; a
/// row shorter than a span reads the zeros past its border (`Geometry::padded`).
#[target_feature(enable = "avx,avx2,fma")]
fn depthwise_avx2<const K: usize, const S: usize>(
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
    let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
    for v in 0..lanes {
        let input = &planes.input[v * plane..][..plane];
        let w: [[__m256; K]; K] = {
            let mut w = [[zero; K]; K];
            for (ky, w) in w.iter_mut().enumerate() {
                for (kx, w) in w.iter_mut().enumerate() {
                    *w = load(&weight[(ky * K + kx) * lanes + v]);
                }
            }
            w
        };
        let bias = load(&bias[v]);
        let out = &mut out[v * pixels..][..pixels];
        for (r, out) in out.chunks_exact_mut(g.out).enumerate() {
            let lines = planes.lines::<K, S>(input, out_row + r, g, &zeros);
            let mut ox = 0;
            while ox < g.out {
                let at = ox.min(g.out.saturating_sub(SPAN));
                let acc = taps::<K, S>(&lines, &w, bias, at);
                let out = &mut out[at..][..SPAN.min(g.out)];
                // A whole span (every row at least SPAN wide) as stores of a number known
                // when compiling, without a bounds check or a branch for each.
                if let Ok(out) = <&mut [[f32; 8]; SPAN]>::try_from(&mut *out) {
                    for (out, acc) in out.iter_mut().zip(acc) {
                        store(out, _mm256_min_ps(six, _mm256_max_ps(zero, acc)));
                    }
                } else {
                    for (out, acc) in out.iter_mut().zip(acc) {
                        store(out, _mm256_min_ps(six, _mm256_max_ps(zero, acc)));
                    }
                }
                ox = at + SPAN;
            }
        }
    }
    driver::keep_zeros(zeros);
}

/// Output pixels `ox..ox + SPAN` of one plane's row.
#[target_feature(enable = "avx,avx2,fma")]
#[inline]
fn taps<const K: usize, const S: usize>(
    lines: &[&[[f32; 8]]; K],
    w: &[[__m256; K]; K],
    bias: __m256,
    ox: usize,
) -> [__m256; SPAN] {
    let mut acc = [bias; SPAN];
    for (line, w) in lines.iter().zip(w) {
        let line = &line[ox * S..][..(SPAN - 1) * S + K];
        for (kx, &w) in w.iter().enumerate() {
            for (p, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(load(&line[p * S + kx]), w, *acc);
            }
        }
    }
    acc
}

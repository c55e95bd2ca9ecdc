//! The bf16 1x1 convolution: the driver of [`super::driver`] with the weights and each tile of
//! input pixels rounded to bf16 and packed in pairs of input channels, for ISAs whose tiles
//! take dot products of bf16 pairs into f32 sums (x86-64 with AVX-512 BF16: `vdpbf16ps`, twice
//! the products of an f32 FMA). Sums, bias, residual and ReLU6 stay f32.

use super::Pixels;
use super::driver::{BLOCK_VALUES, MR, Output, Tile, groups};

/// Fewest output channels of a 1x1 convolution that runs in bf16: with fewer, rounding each
/// input pixel to bf16 costs more than the products it saves (the projections to 16 and 24
/// channels ran at 0.76-0.85x of f32 on Zen 4, those to 40 and more at 1.1-1.8x).
pub(super) const MIN_COUT: usize = 32;

/// `x` rounded to the nearest bf16 (ties to even), as the low 16 bits: the upper half of its
/// f32 bits. A NaN stays a NaN.
#[inline(always)]
pub(super) fn bf16(x: f32) -> u32 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) | 0x40;
    }
    (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
}

/// Two values as one lane of bf16 pairs, `first` in the low half (the element a pair's dot
/// product pairs with the low half of the other operand's lane).
#[inline(always)]
pub(super) fn pair(first: f32, second: f32) -> u32 {
    bf16(first) | bf16(second) << 16
}

/// An ISA's 1x1 convolution tile in bf16: each step of its sum takes a pair of input channels
/// (a dot product of bf16 pairs added to f32 sums, twice the products of an f32 step).
pub(super) trait PairKernel: Copy {
    /// The widest run of output channels one tile computes: a multiple of 16.
    fn step(self) -> usize;

    /// Rounds 8 input channels of MR pixels to bf16 (as [`bf16`] does; where the hardware
    /// converts, it may flush subnormals to zero) into their 4 pairs of a panel:
    /// `dst[i][r] = pair(rows[r][2 i], rows[r][2 i + 1])`.
    fn pack(self, rows: [&[f32; 8]; MR], dst: &mut [[u32; MR]; 4]);

    /// Computes `tile`'s `width` output channels (16 or more, or a last run of 8), whose
    /// weights are `[cin / 2][width]` pairs ([`Pairs`] for this kernel), into `out`, the
    /// layer's whole output. The tile's input is `[cin / 2][MR]` pairs.
    fn run(self, tile: &Tile<&[[u32; MR]]>, width: usize, weights: &[u32], out: &mut [f32]);
}

/// 1x1 convolution weights in bf16 for [`pointwise_pairs`] on one ISA: for each run of output
/// channels that a tile computes ([`groups`]), `[cin / 2][width]` lanes of two input channels'
/// weights ([`pair`]).
#[derive(Debug)]
pub(super) struct Pairs {
    data: Vec<u32>,
    step: usize,
}

impl Pairs {
    /// `weight` is `[cin, cout]`; `None` unless `cin` and `cout` are multiples of 8.
    pub(super) fn new(
        cpu: impl PairKernel,
        weight: &[f32],
        cin: usize,
        cout: usize,
    ) -> Option<Self> {
        if !cin.is_multiple_of(8) || !cout.is_multiple_of(8) || weight.len() != cin * cout {
            return None;
        }
        let step = cpu.step();
        let mut data = Vec::with_capacity(weight.len() / 2);
        for (start, width) in groups(step, cout) {
            for two in weight.chunks_exact(2 * cout) {
                let (first, second) = two.split_at(cout);
                data.extend((start..start + width).map(|c| pair(first[c], second[c])));
            }
        }
        Some(Self { data, step })
    }
}

thread_local! {
    /// [`pointwise_pairs`]' panels.
    static PANELS: std::cell::Cell<Vec<[u32; MR]>> = const { std::cell::Cell::new(Vec::new()) };
}

/// [`super::driver::pointwise`] in bf16: the same cache blocks, each tile of MR pixels rounded
/// to bf16 once into a panel of pairs (`[cin / 2][MR]`, zero past the last pixel) that every
/// run of output channels rereads; sums, bias, residual and ReLU6 in f32. `cin` is a multiple
/// of 8.
#[inline(always)]
pub(super) fn pointwise_pairs<K: PairKernel>(
    cpu: K,
    packed: &Pairs,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    let cout = bias.len();
    let pixels = input.values().len() / cin;
    assert!(input.values().len() == pixels * cin && cin.is_multiple_of(8));
    let (pixel, vector) = output.strides(pixels, cout);
    let Output {
        out,
        rows: layout,
        residual,
        relu6,
        ..
    } = output;
    assert_eq!(
        packed.step,
        cpu.step(),
        "weights packed for another ISA's tiles"
    );
    let pairs = cin / 2;
    let block = (BLOCK_VALUES / cin).max(MR) / MR * MR;
    let mut panels = PANELS.take();
    panels.resize(panels.len().max(block / MR * pairs), [0; MR]);
    // Runs of 8 channels: `[pixels][cin / 8]` channels-last, `[cin / 8][pixels]` in planes.
    let (eights, _) = input.values().as_chunks::<8>();
    let eight = |p: usize, v: usize| match input {
        Pixels::ChannelsLast(_) => &eights[p * (cin / 8) + v],
        Pixels::Planes(_) => &eights[v * pixels + p],
    };
    let zeros = [0.0; 8];
    let mut starts = Vec::with_capacity(block);
    for first in (0..pixels).step_by(block) {
        let rows = block.min(pixels - first);
        starts.clear();
        starts.extend((first..first + rows).map(|p| layout.at(p) * pixel));
        for (t, panel) in panels
            .chunks_exact_mut(pairs)
            .take(rows.div_ceil(MR))
            .enumerate()
        {
            let p0 = first + t * MR;
            let have = (first + rows - p0).min(MR);
            let (groups, _) = panel.as_chunks_mut::<4>();
            for (v, dst) in groups.iter_mut().enumerate() {
                let rows =
                    std::array::from_fn(|r| if r < have { eight(p0 + r, v) } else { &zeros });
                cpu.pack(rows, dst);
            }
        }
        let mut offset = 0;
        for (start, width) in groups(packed.step, cout) {
            let weights = &packed.data[offset..][..pairs * width];
            offset += pairs * width;
            for (t, starts) in starts.chunks(MR).enumerate() {
                let p0 = first + t * MR;
                let tile = Tile {
                    x: &panels[t * pairs..][..pairs],
                    bias: &bias[start..start + width],
                    residual: residual.map(|r| &r[p0 * cout + start..]),
                    starts,
                    first: start / 8 * vector,
                    vector,
                    cout,
                    relu6,
                };
                cpu.run(&tile, width, weights, out);
            }
        }
    }
    PANELS.set(panels);
}

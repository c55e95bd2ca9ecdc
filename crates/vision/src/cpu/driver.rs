//! What every ISA's kernels share:
//! - the 1x1 convolution's driver: cache blocks of pixels packed once into panels (or read
//!   where they are, in planes of 8 channels), and for each run of output channels, a register
//!   tile of [`MR`] pixels that the ISA's [`Kernel::run`] computes through the whole sum,
//!   applying bias, residual and ReLU6 before its only store;
//!   (the bf16 version of the driver is in `cpu/bf16.rs`);
//! - the rows a depthwise kernel reads: a block's expanded rows in planes of 8 channels, each
//!   with its zero border, and zeros above and below the image.

use super::{Depthwise, Geometry, Pixels, Rows};

/// An ISA's 1x1 convolution tile.
pub(super) trait Kernel: Copy {
    /// The widest run of output channels one tile computes: a multiple of 16.
    fn step(self) -> usize;

    /// Computes `tile`'s `width` output channels (16 or more, or a last run of 8), whose
    /// weights are `[cin][width]` ([`Packed`] for this kernel), into `out`, the layer's whole
    /// output.
    fn run(self, tile: &Tile, width: usize, weights: &[f32], out: &mut [f32]);
}

thread_local! {
    static PANELS: std::cell::Cell<Vec<[f32; MR]>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Output pixels per register tile.
pub(super) const MR: usize = 6;
/// Tiles of output channels from which a tile's pixels, given in planes, are gathered into one
/// run rather than read from the planes, spread out (from L2) for every tile.
const GATHER_TILES: usize = 4;
/// Input values per cache block of pixels, packed once and reread from the core's cache for
/// every tile of output channels.
pub(super) const BLOCK_VALUES: usize = 24 * 1024;

/// 1x1 convolution weights packed for [`pointwise`] on one ISA: for each run of output
/// channels that a tile computes ([`groups`]), `[cin][width]` contiguous.
#[derive(Debug)]
pub(super) struct Packed {
    data: Vec<f32>,
    /// The widest run ([`Kernel::step`]).
    step: usize,
}

impl Packed {
    /// `weight` is `[cin, cout]`; `None` unless `cout` is a multiple of 8.
    pub(super) fn new(cpu: impl Kernel, weight: &[f32], cin: usize, cout: usize) -> Option<Self> {
        if !cout.is_multiple_of(8) || weight.len() != cin * cout {
            return None;
        }
        let step = cpu.step();
        let mut data = Vec::with_capacity(weight.len());
        for (start, width) in groups(step, cout) {
            for row in weight.chunks_exact(cout) {
                data.extend_from_slice(&row[start..start + width]);
            }
        }
        Some(Self { data, step })
    }
}

/// `(first channel, width)` of the runs of output channels that one tile computes: runs of
/// `step` while whole runs of 16 remain, then a last run of 8.
pub(super) fn groups(step: usize, cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let whole = cout / 16 * 16;
    (0..whole)
        .step_by(step)
        .map(move |start| (start, (whole - start).min(step)))
        .chain((whole < cout).then_some((whole, cout - whole)))
}

/// What a 1x1 convolution writes: `act(input x weight + bias (+ residual))`.
pub(super) struct Output<'a> {
    /// Output pixel `p` at `rows.at(p)`: channels-last, or with `planes`, in planes of 8
    /// channels that many values apart.
    pub(super) out: &'a mut [f32],
    pub(super) rows: Rows,
    pub(super) planes: Option<usize>,
    pub(super) residual: Option<&'a [f32]>,
    pub(super) relu6: bool,
}

impl Output<'_> {
    /// Checks that it holds `pixels` pixels of `cout` channels (and the residual too), and
    /// gives how many values apart its pixels are, and its vectors of 8 channels.
    pub(super) fn strides(&self, pixels: usize, cout: usize) -> (usize, usize) {
        assert!(self.planes.is_some() || self.out.len() >= self.rows.len(pixels) * cout);
        assert!(self.residual.is_none_or(|r| r.len() == pixels * cout));
        self.planes.map_or((cout, 8), |plane| (8, plane))
    }
}

/// `out [pixels, cout] = act(input [pixels, cin] x weight + bias (+ residual))`: the cache
/// blocking and packing, each tile in `cpu`'s [`Kernel::run`]. Inlined into each ISA's caller,
/// so that it compiles with that ISA's features.
#[inline(always)]
pub(super) fn pointwise<K: Kernel>(
    cpu: K,
    packed: &Packed,
    bias: &[f32],
    input: Pixels,
    cin: usize,
    output: Output,
) {
    let cout = bias.len();
    let pixels = input.values().len() / cin;
    assert!(input.values().len() == pixels * cin);
    assert!(matches!(input, Pixels::ChannelsLast(_)) || cin.is_multiple_of(8));
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
    let block = (BLOCK_VALUES / cin).max(MR) / MR * MR;
    // Input panels: each tile of MR pixels as [cin][MR], zero past the last pixel. Reused
    // from call to call on this thread (every value read is written first).
    let mut panels = PANELS.take();
    panels.resize(panels.len().max(block / MR * cin), [0.0; MR]);
    // Channels-last pixels are packed into panels. Planes are read where they are when few
    // tiles of output channels read them, but for a last tile of fewer than MR pixels: that one
    // as planes of MR pixels, zero past the last. When many tiles reread them, each tile's
    // blocks of MR x 8 values are gathered into one run that stays in L1.
    // Counted in runs of 16 on every ISA (the threshold was measured on AVX2's tiles).
    let gather = groups(16, cout).count() >= GATHER_TILES;
    let mut tail = Vec::new();
    if let Pixels::Planes(values) = input
        && !gather
    {
        let last = pixels / MR * MR;
        tail.resize(cin / 8 * MR * 8, 0.0);
        for (v, plane) in tail.chunks_exact_mut(MR * 8).enumerate() {
            let have = (pixels - last) * 8;
            plane[..have].copy_from_slice(&values[(v * pixels + last) * 8..][..have]);
        }
    }
    // Where each pixel of the cache block starts in `out`.
    let mut starts = Vec::with_capacity(block);
    for first in (0..pixels).step_by(block) {
        let rows = block.min(pixels - first);
        let tiles_p = rows.div_ceil(MR);
        starts.clear();
        starts.extend((first..first + rows).map(|p| layout.at(p) * pixel));
        for (t, panel) in panels.chunks_exact_mut(cin).take(tiles_p).enumerate() {
            let p0 = first + t * MR;
            let input = match input {
                Pixels::ChannelsLast(input) => input,
                Pixels::Planes(_) if !gather => break, // read where they are
                Pixels::Planes(values) => {
                    let have = (first + rows - p0).min(MR) * 8;
                    let (panel, _) = panel.as_flattened_mut().as_chunks_mut::<{ MR * 8 }>();
                    for (v, dst) in panel.iter_mut().enumerate() {
                        let src = &values[(v * pixels + p0) * 8..][..have];
                        // A whole tile as a copy of a size known when compiling (inlined
                        // moves, not a call to `memcpy` for each plane).
                        if let Ok(src) = <&[f32; MR * 8]>::try_from(src) {
                            *dst = *src;
                        } else {
                            dst[..have].copy_from_slice(src);
                            dst[have..].fill(0.0);
                        }
                    }
                    continue;
                }
            };
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
        for (start, width) in groups(packed.step, cout) {
            let weights = &packed.data[offset..][..cin * width];
            offset += cin * width;
            for (t, starts) in starts.chunks(MR).enumerate() {
                let p0 = first + t * MR;
                let panel = &panels[t * cin..][..cin];
                let x = match input {
                    Pixels::ChannelsLast(_) => Source::Panel(panel),
                    Pixels::Planes(_) if gather => Source::Planes {
                        values: panel.as_flattened(),
                        stride: MR,
                        p0: 0,
                    },
                    Pixels::Planes(values) if p0 + MR <= pixels => Source::Planes {
                        values,
                        stride: pixels,
                        p0,
                    },
                    Pixels::Planes(_) => Source::Planes {
                        values: &tail,
                        stride: MR,
                        p0: 0,
                    },
                };
                let tile = Tile {
                    x,
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

/// A tile's input pixels.
pub(super) enum Source<'a> {
    /// `[cin][MR]`.
    Panel(&'a [[f32; MR]]),
    /// Pixels `p0..p0 + MR` of planes of `stride` pixels (`[cin / 8][stride][8]`).
    Planes {
        values: &'a [f32],
        stride: usize,
        p0: usize,
    },
}

/// One MR-pixel x W-channel tile of outputs, its input pixels in `X`: a [`Source`] of f32
/// values, or for the bf16 tiles a panel of pairs (`cpu/bf16.rs`).
pub(super) struct Tile<'a, X = Source<'a>> {
    pub(super) x: X,
    pub(super) bias: &'a [f32],
    /// From the tile's first output value on, with rows `cout` apart.
    pub(super) residual: Option<&'a [f32]>,
    /// Where the tile's pixels (those that exist) start in the output.
    pub(super) starts: &'a [usize],
    /// Where the tile's first vector of 8 channels starts from its pixel's start, and how far
    /// apart its vectors are.
    pub(super) first: usize,
    pub(super) vector: usize,
    pub(super) cout: usize,
    pub(super) relu6: bool,
}

impl<X> Tile<'_, X> {
    /// Writes the tile's finished sums (`sums[r][v]`: row r's register v of L channels) to the
    /// rows that exist, fewer than MR in a layer's last tile. The ISA's tile leaves its
    /// registers into `sums` by constant indices (a loop the compiler unrolls), so that they
    /// stay in registers through the sum rather than in memory (reading them by a row index
    /// known only at run time made the compiler store every sum at every step).
    pub(super) fn write<const L: usize, const NV: usize>(
        &self,
        sums: &[[[f32; L]; NV]; MR],
        out: &mut [f32],
    ) {
        // Runs of at most 8 channels: one vector of a plane each.
        let run = L.min(8);
        for (&at, sums) in self.starts.iter().zip(sums) {
            for (i, values) in sums.as_flattened().chunks_exact(run).enumerate() {
                let c = i * run;
                let at = at + self.first + c / 8 * self.vector + c % 8;
                out[at..][..run].copy_from_slice(values);
            }
        }
    }
}

/// Whether an ISA's depthwise kernel implements the layer: channels a multiple of 8, a 3x3 or
/// 5x5 kernel, stride 1 or 2.
pub(super) fn depthwise_fits(layer: &Depthwise) -> bool {
    let g = layer.geometry;
    layer.channels.is_multiple_of(8) && matches!((g.kernel, g.stride), (3 | 5, 1 | 2))
}

/// A block's expanded rows in planes of 8 channels.
#[derive(Clone, Copy)]
pub(super) struct Planes<'a> {
    pub(super) input: &'a [[f32; 8]],
    /// Rows per plane.
    pub(super) rows: usize,
    /// The image row of each plane's first row.
    pub(super) first_row: usize,
}

impl<'a> Planes<'a> {
    /// The K input rows (each `g.padded()` pixels) that output row `oy` of a stride-S
    /// convolution reads from `plane` (one plane's rows), or `zeros` above and below the image.
    #[inline]
    pub(super) fn lines<const K: usize, const S: usize>(
        self,
        plane: &'a [[f32; 8]],
        oy: usize,
        g: Geometry,
        zeros: &'a [[f32; 8]],
    ) -> [&'a [[f32; 8]]; K] {
        let width = g.padded();
        std::array::from_fn(|ky| match (oy * S + ky).checked_sub(g.pad) {
            Some(iy) if iy < g.size => &plane[(iy - self.first_row) * width..][..width],
            _ => &zeros[..width],
        })
    }
}

thread_local! {
    /// Zeros: the input rows above and below the image.
    static ZEROS: std::cell::Cell<Vec<[f32; 8]>> = const { std::cell::Cell::new(Vec::new()) };
}

/// At least `width` pixels of zeros, this thread's, until [`keep_zeros`] gives them back.
pub(super) fn zeros(width: usize) -> Vec<[f32; 8]> {
    let mut zeros = ZEROS.take();
    zeros.resize(zeros.len().max(width), [0.0; 8]);
    zeros
}

/// Keeps [`zeros`]'s buffer for this thread's next call.
pub(super) fn keep_zeros(zeros: Vec<[f32; 8]>) {
    ZEROS.set(zeros);
}

//! The motion vectors a decoder exports as frame side data (`AV_FRAME_DATA_MOTION_VECTORS`,
//! asked for with `export_side_data=+mvs`): an array of `AVMotionVector` records, read here
//! field by field at the offsets the C struct has (no `unsafe`, no alignment assumed).

use std::mem::{offset_of, size_of};

use ffmpeg_next::ffi::AVMotionVector;

/// One exported block vector, in the decoded frame's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockVector {
    /// Negative: predicted from a past frame; positive: from a future one.
    pub source: i32,
    pub w: u8,
    pub h: u8,
    /// Centre of the block in this frame.
    pub dst: (i16, i16),
    /// Where the block's content was in the reference frame, minus where it is now, in
    /// pixels (`motion / motion_scale`).
    pub offset: (f32, f32),
}

impl BlockVector {
    pub fn area(&self) -> f64 {
        f64::from(self.w) * f64::from(self.h)
    }
}

/// The records in `data` (a trailing partial record is ignored; so is a record with a zero
/// `motion_scale`, which no decoder writes).
pub(crate) fn parse(data: &[u8]) -> Vec<BlockVector> {
    let i16_at = |r: &[u8], at: usize| i16::from_ne_bytes([r[at], r[at + 1]]);
    let i32_at = |r: &[u8], at: usize| i32::from_ne_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
    data.chunks_exact(size_of::<AVMotionVector>())
        .filter_map(|r| {
            let scale = u16::from_ne_bytes([
                r[offset_of!(AVMotionVector, motion_scale)],
                r[offset_of!(AVMotionVector, motion_scale) + 1],
            ]);
            (scale > 0).then(|| {
                let scale = f32::from(scale);
                BlockVector {
                    source: i32_at(r, offset_of!(AVMotionVector, source)),
                    w: r[offset_of!(AVMotionVector, w)],
                    h: r[offset_of!(AVMotionVector, h)],
                    dst: (
                        i16_at(r, offset_of!(AVMotionVector, dst_x)),
                        i16_at(r, offset_of!(AVMotionVector, dst_y)),
                    ),
                    offset: (
                        i32_at(r, offset_of!(AVMotionVector, motion_x)) as f32 / scale,
                        i32_at(r, offset_of!(AVMotionVector, motion_y)) as f32 / scale,
                    ),
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes FFmpeg would write for `v`, through the C struct itself.
    #[allow(unsafe_code)]
    fn bytes(v: &AVMotionVector) -> Vec<u8> {
        // SAFETY: `v` is a plain C struct of integers (its padding is whatever the compiler
        // wrote, and `parse` never reads it); the slice lives no longer than the borrow.
        unsafe {
            std::slice::from_raw_parts(
                (v as *const AVMotionVector).cast::<u8>(),
                size_of::<AVMotionVector>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn records_are_read_field_by_field() {
        let a = AVMotionVector {
            source: -1,
            w: 16,
            h: 8,
            src_x: 10,
            src_y: 20,
            dst_x: 12,
            dst_y: -3,
            flags: 0,
            motion_x: -9,
            motion_y: 6,
            motion_scale: 4,
        };
        let b = AVMotionVector {
            source: 1,
            motion_scale: 0,
            ..a
        };
        let mut data = bytes(&a);
        data.extend(bytes(&b)); // dropped: no scale
        data.extend(bytes(&a));
        data.extend([0u8; 7]); // a partial record
        let got = parse(&data);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            BlockVector {
                source: -1,
                w: 16,
                h: 8,
                dst: (12, -3),
                offset: (-2.25, 1.5),
            }
        );
        assert_eq!(got[0].area(), 128.0);
    }
}

//! Motion per sampled frame: the camera's (pan, zoom, roll) and the objects' (what moves once
//! the camera's motion is taken out), as a fixed-length descriptor ([`Motion::to_vec`], layout
//! [`LAYOUT`], version [`LAYOUT_VERSION`]).
//!
//! Where it comes from ([`Source`]):
//! - **codec**: the motion vectors H.264 and the MPEG-1/2/4 family already carry, exported by
//!   the decoder as it decodes (no second decode). Vectors say only whether their reference is
//!   in the past or the future, not how far. Camera motion is read from P frames, whose
//!   vectors point back to the previous I or P frame: each P frame's offsets are divided by
//!   the time since that frame. B frames give coverage only; a sample that falls on one
//!   carries the latest P frame's motion (3-4 frames old with x264's defaults). Where an
//!   encoder makes P frames refer further back (several reference frames), a block's
//!   displacement is overstated by that factor; the robust fit keeps the majority's.
//! - **estimated**: for decoders that export none (HEVC, VP9, AV1, intra-only codecs), block
//!   matching between small grayscale copies of consecutive decoded frames (see `estimate`).
//!   Every frame is then decoded (none is skipped before decoding), and each costs a
//!   grayscale copy (about 160 pixels across) on the decoding thread.
//!
//! The decoding thread only reads each frame's vectors or makes its grayscale copy when the
//! decode has threads to spare ([`crate::Decoding`]): the fits, the block matching and the
//! intervals run on a thread of their own, with the same results.
//!
//! A stream whose codec should export vectors but has given none for two seconds (an
//! all-intra stream) goes over to estimation for the rest of the run.
//!
//! With sparse sampling (`--fps`, `--stride`) a sample's motion covers the interval since the
//! previous sample: the mean over that interval of every measured frame's motion, weighted by
//! the time each covers, so motion per second does not depend on the sampling.

mod estimate;
mod fit;
mod tracker;
mod vectors;

pub(crate) use tracker::Tracker;

/// Version of [`LAYOUT`]: bumped whenever a field is added, moved or changes meaning.
pub const LAYOUT_VERSION: u32 = 1;
/// Version of how motion is measured, where the layout stays the same: what a cache of motion
/// is keyed on besides [`LAYOUT_VERSION`].
/// - 1: estimation on a 160-pixel grayscale copy made by swscale.
/// - 2: estimation on a copy boxed down from the luma plane by a whole factor (longer side
///   about 160 pixels), swscale only for formats without an 8-bit luma plane.
/// - 3: codec vectors from a slice-threaded decoder (frame threads exported them racily), and
///   the frames a sparse sampling decodes fixed by the packets alone.
/// - 4: the fit's residual lengths without `hypot` and its weighted medians sorted unstably
///   (the same within rounding, which can move an inlier at the threshold).
pub const MEASURE_VERSION: u32 = 4;
/// Side of the grid of object motion.
pub const GRID: usize = 4;
/// Length of [`Motion::to_vec`].
pub const LEN: usize = HEADER.len() + GRID * GRID * 3;

/// The named fields before the grid, in order.
const HEADER: [&str; 10] = [
    "pan_x",
    "pan_y",
    "zoom",
    "roll",
    "objects",
    "camera_share",
    "coverage",
    "key",
    "codec",
    "estimated",
];

/// The name of every value of [`Motion::to_vec`], in order: the header, then per grid cell
/// (row by row from the top left) `cell{row}{col}_dx`, `_dy` and `_speed`.
pub fn layout() -> Vec<String> {
    let mut names: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
    for row in 0..GRID {
        for col in 0..GRID {
            for part in ["dx", "dy", "speed"] {
                names.push(format!("cell{row}{col}_{part}"));
            }
        }
    }
    names
}

/// Where motion comes from, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MotionSource {
    /// No motion.
    Off,
    /// The codec's vectors where the decoder exports them, estimation otherwise.
    #[default]
    Auto,
    /// Estimation from the pixels, whatever the codec.
    Estimated,
}

/// Where one sample's motion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Codec,
    Estimated,
    /// Nothing measured near this sample: the stream's first frame, a damaged stretch, a run
    /// of intra frames. Every motion value is then zero and means "unknown", not "still".
    None,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Codec => "codec",
            Self::Estimated => "estimated",
            Self::None => "none",
        }
    }
}

/// One sample's motion. Lengths are in frame widths (of the displayed frame, both axes),
/// times in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// The camera's pan, frame widths per second; x to the right, y down (the camera panning
    /// right moves the picture left).
    pub pan: [f32; 2],
    /// The camera's zoom: the rate the picture grows at, per second (positive: zooming in).
    pub zoom: f32,
    /// The camera's roll, radians per second, clockwise (the picture turns the other way).
    pub roll: f32,
    /// Object motion: the root mean square of what is left once the camera's motion is taken
    /// out, frame widths per second.
    pub objects: f32,
    /// Share of the measured area that moves with the camera.
    pub camera_share: f32,
    /// Share of the frame whose content was traced to a reference frame, lowest over the
    /// interval's inter frames (a hard cut coded as intra blocks collapses it); an interval
    /// with no inter frame keeps the previous value.
    pub coverage: f32,
    /// Whether the interval holds a key frame (or, from the codec, any intra frame).
    pub key: bool,
    /// Shares of the interval measured from the codec's vectors and by estimation.
    pub codec: f32,
    pub estimated: f32,
    /// Object motion per cell of a [`GRID`] x [`GRID`] grid, row by row from the top left:
    /// the mean velocity (dx, dy: the objects' own, x right, y down) and speed of what moves
    /// other than with the camera, frame widths per second.
    pub grid: [[f32; 3]; GRID * GRID],
}

impl Motion {
    /// Where most of the interval's motion came from.
    pub fn source(&self) -> Source {
        if self.codec == 0.0 && self.estimated == 0.0 {
            Source::None
        } else if self.codec >= self.estimated {
            Source::Codec
        } else {
            Source::Estimated
        }
    }

    /// The descriptor, in the order of [`layout`].
    pub fn to_vec(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(LEN);
        out.extend([
            self.pan[0],
            self.pan[1],
            self.zoom,
            self.roll,
            self.objects,
            self.camera_share,
            self.coverage,
            f32::from(u8::from(self.key)),
            self.codec,
            self.estimated,
        ]);
        out.extend(self.grid.iter().flatten());
        out
    }
}

#[cfg(test)]
mod clips;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_every_value_once() {
        let names = layout();
        assert_eq!(names.len(), LEN);
        assert_eq!(LEN, 58);
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), LEN);
        assert_eq!(names[10], "cell00_dx");
        assert_eq!(names[57], "cell33_speed");
        let m = Motion {
            pan: [1.0, 2.0],
            zoom: 3.0,
            roll: 4.0,
            objects: 5.0,
            camera_share: 6.0,
            coverage: 7.0,
            key: true,
            codec: 0.25,
            estimated: 0.5,
            grid: [[9.0; 3]; GRID * GRID],
        };
        let v = m.to_vec();
        assert_eq!(v.len(), LEN);
        assert_eq!(
            &v[..10],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1.0, 0.25, 0.5]
        );
        assert_eq!(m.source(), Source::Estimated);
    }
}

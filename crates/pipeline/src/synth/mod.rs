//! The synthetic labelled clip set: classes that differ ONLY in the order of their frames.
//!
//! Each clip shows one filled shape on a flat background whose size follows a trajectory:
//! `grow` (small to large), `shrink` (large to small), `pulse` (small, large, small) and `dip`
//! (large, small, large). Every class visits the same evenly spaced sizes exactly once each,
//! so for the same seed the four clips are permutations of one set of frames: their mean image
//! over time is identical, a mean-over-time classifier sits at chance, and only a model that
//! sees order can tell them apart.
//!
//! Per clip, from its seed: the shape (disc or square), its colour, the background colour
//! (with a luma difference of at least [`MIN_LUMA_CONTRAST`]), a small jitter of the centre
//! and of the smallest and largest size. All frames of a clip share them.

pub mod camera;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use media::VideoWriter;

/// Class names, in label order.
pub const CLASSES: [&str; 4] = ["grow", "shrink", "pulse", "dip"];
/// Default frame side in pixels.
pub const SIZE: u32 = 112;
/// Default frames per clip.
pub const FRAMES: usize = 24;
/// Default frame rate: [`FRAMES`] at this rate is 2 seconds.
pub const FPS: u32 = 12;
/// Smallest luma difference (BT.601, 0-255) between shape and background.
pub const MIN_LUMA_CONTRAST: f64 = 80.0;

/// The shape drawn in a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A filled circle; its size is the radius.
    Disc,
    /// A filled axis-aligned square with the area of the disc of the same size.
    Square,
}

/// Everything that defines one clip, derived from its class and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSpec {
    /// Index into [`CLASSES`]: the order the sizes are visited in.
    pub class: usize,
    /// Frame side in pixels.
    pub size: u32,
    /// The shape drawn.
    pub shape: Shape,
    /// Shape colour, RGB.
    pub foreground: [u8; 3],
    /// Background colour, RGB.
    pub background: [u8; 3],
    /// Shape centre in pixels (x, y), near the middle of the frame.
    pub centre: (f64, f64),
    /// Smallest size (disc radius) in pixels.
    pub min_radius: f64,
    /// Largest size (disc radius) in pixels.
    pub max_radius: f64,
}

impl ClipSpec {
    /// The clip of `class` for `seed` at `size` x `size` pixels. Everything but the class
    /// comes from the seed alone, so the four classes of one seed share shape, colours and
    /// sizes.
    ///
    /// # Panics
    /// If `class` is not an index into [`CLASSES`].
    pub fn new(class: usize, seed: u64, size: u32) -> Self {
        assert!(class < CLASSES.len(), "class {class} out of range");
        let mut rng = SplitMix64::new(seed);
        let s = f64::from(size);
        let shape = if rng.next_u64() & 1 == 0 {
            Shape::Disc
        } else {
            Shape::Square
        };
        let (foreground, background) = contrasting_colours(&mut rng);
        let centre = (
            s / 2.0 + rng.range(-0.05, 0.05) * s,
            s / 2.0 + rng.range(-0.05, 0.05) * s,
        );
        // Largest extent from the centre: 0.42 s + 0.05 s < 0.5 s, so the shape stays inside.
        let min_radius = rng.range(0.08, 0.14) * s;
        let max_radius = rng.range(0.36, 0.42) * s;
        Self {
            class,
            size,
            shape,
            foreground,
            background,
            centre,
            min_radius,
            max_radius,
        }
    }

    /// Size (disc radius) at `frame` of a clip of `frames` frames: the evenly spaced levels
    /// from `min_radius` to `max_radius`, in this class's order.
    pub fn radius(&self, frame: usize, frames: usize) -> f64 {
        let level = level_order(self.class, frames)
            .get(frame)
            .copied()
            .unwrap_or(0);
        let t = if frames > 1 {
            level as f64 / (frames - 1) as f64
        } else {
            0.5
        };
        self.min_radius + (self.max_radius - self.min_radius) * t
    }

    /// One `size x size` RGB frame with the shape at `radius`; edges anti-aliased by pixel
    /// coverage.
    pub fn render_frame(&self, radius: f64) -> Vec<u8> {
        let n = self.size as usize;
        let (cx, cy) = self.centre;
        // The square's half side: same area as the disc (pi r^2 = (2h)^2).
        let half = radius * std::f64::consts::PI.sqrt() / 2.0;
        let mut rgb = Vec::with_capacity(n * n * 3);
        for y in 0..n {
            for x in 0..n {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let coverage = match self.shape {
                    Shape::Disc => (radius - dx.hypot(dy) + 0.5).clamp(0.0, 1.0),
                    Shape::Square => {
                        (half - dx.abs() + 0.5).clamp(0.0, 1.0)
                            * (half - dy.abs() + 0.5).clamp(0.0, 1.0)
                    }
                };
                for c in 0..3 {
                    let (bg, fg) = (f64::from(self.background[c]), f64::from(self.foreground[c]));
                    rgb.push((bg + (fg - bg) * coverage).round() as u8);
                }
            }
        }
        rgb
    }

    /// All `frames` frames of the clip.
    pub fn render(&self, frames: usize) -> Vec<Vec<u8>> {
        (0..frames)
            .map(|i| self.render_frame(self.radius(i, frames)))
            .collect()
    }
}

/// The frames of clip (`class`, `seed`): `frames` RGB images of `size x size` pixels.
///
/// # Panics
/// If `class` is not an index into [`CLASSES`].
pub fn render_clip(class: usize, seed: u64, size: u32, frames: usize) -> Vec<Vec<u8>> {
    ClipSpec::new(class, seed, size).render(frames)
}

/// Writes `out/<class>/<class>_<NNN>.mp4`, `per_class` clips per class ([`SIZE`] pixels,
/// [`FRAMES`] frames at [`FPS`]), each from its own seed derived from `seed`, the class and
/// its number. Returns the paths in order: class by class, then by number.
pub fn write_clip_set(out: &Path, per_class: usize, seed: u64) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(CLASSES.len() * per_class);
    for (class, name) in CLASSES.iter().enumerate() {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for index in 0..per_class {
            let path = dir.join(format!("{name}_{index:03}.mp4"));
            let frames = render_clip(class, clip_seed(seed, class, index), SIZE, FRAMES);
            let mut writer = VideoWriter::create(&path, SIZE, SIZE, FPS)?;
            for frame in &frames {
                writer.push(frame)?;
            }
            writer.finish()?;
            paths.push(path);
        }
    }
    Ok(paths)
}

/// The seed of clip `index` of `class` in a set made from `seed`.
fn clip_seed(seed: u64, class: usize, index: usize) -> u64 {
    SplitMix64::new(seed ^ ((class as u64) << 56) ^ index as u64).next_u64()
}

/// For each frame, the index of its size level (0 = smallest, `frames - 1` = largest): a
/// permutation of `0..frames` for every class.
fn level_order(class: usize, frames: usize) -> Vec<usize> {
    // The triangle: up through the even levels, down through the odd ones, e.g. for 6 frames
    // 0 2 4 5 3 1. Same step everywhere, and every level exactly once.
    let pulse = || (0..frames).step_by(2).chain((1..frames).step_by(2).rev());
    let top = frames.saturating_sub(1);
    match class {
        0 => (0..frames).collect(),
        1 => (0..frames).rev().collect(),
        2 => pulse().collect(),
        _ => pulse().map(|level| top - level).collect(),
    }
}

/// Shape and background colours whose BT.601 lumas differ by at least
/// [`MIN_LUMA_CONTRAST`].
fn contrasting_colours(rng: &mut SplitMix64) -> ([u8; 3], [u8; 3]) {
    let luma =
        |c: [u8; 3]| 0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2]);
    let mut colour = || [0; 3].map(|_: u8| (rng.next_u64() >> 56) as u8);
    // A random pair passes about half the time: 64 tries all failing is ~1e-19.
    for _ in 0..64 {
        let (fg, bg) = (colour(), colour());
        if (luma(fg) - luma(bg)).abs() >= MIN_LUMA_CONTRAST {
            return (fg, bg);
        }
    }
    ([255; 3], [0; 3])
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and good enough to draw clip
/// parameters.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{DecodeOptions, Sampling, Video};

    const GROW: usize = 0;
    const SHRINK: usize = 1;
    const PULSE: usize = 2;
    const DIP: usize = 3;

    /// Pixels nearer the shape colour than the background colour.
    fn shape_pixels(spec: &ClipSpec, rgb: &[u8]) -> usize {
        let dist = |p: &[u8], c: [u8; 3]| -> i32 {
            (0..3)
                .map(|i| (i32::from(p[i]) - i32::from(c[i])).pow(2))
                .sum()
        };
        rgb.chunks(3)
            .filter(|p| dist(p, spec.foreground) < dist(p, spec.background))
            .count()
    }

    fn mean_image(frames: &[Vec<u8>]) -> Vec<f64> {
        let mut mean = vec![0.0; frames[0].len()];
        for frame in frames {
            for (m, &v) in mean.iter_mut().zip(frame) {
                *m += f64::from(v) / frames.len() as f64;
            }
        }
        mean
    }

    #[test]
    fn splitmix_matches_the_reference() {
        // First outputs for seed 1234567 of the reference C implementation (Vigna's
        // splitmix64.c), computed independently with Python's integers.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }

    #[test]
    fn render_is_deterministic_and_seeds_differ() {
        for class in 0..4 {
            assert_eq!(render_clip(class, 7, 48, 6), render_clip(class, 7, 48, 6));
        }
        let specs: Vec<_> = (0..20)
            .map(|seed| ClipSpec::new(GROW, seed, SIZE))
            .collect();
        assert!(specs.iter().any(|s| s.shape == Shape::Disc));
        assert!(specs.iter().any(|s| s.shape == Shape::Square));
        assert_ne!(render_clip(GROW, 7, 48, 6), render_clip(GROW, 8, 48, 6));
    }

    #[test]
    fn parameters_stay_in_bounds_with_contrast() {
        let luma = |c: [u8; 3]| {
            0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2])
        };
        for seed in 0..500 {
            let spec = ClipSpec::new(PULSE, seed, SIZE);
            assert!((luma(spec.foreground) - luma(spec.background)).abs() >= MIN_LUMA_CONTRAST);
            let s = f64::from(SIZE);
            assert!(spec.min_radius >= 0.08 * s && spec.max_radius <= 0.42 * s);
            // The whole shape is inside the frame at its largest (disc or same-area square).
            let (cx, cy) = spec.centre;
            for c in [cx, cy] {
                assert!(
                    c - spec.max_radius > 0.0 && c + spec.max_radius < s,
                    "{spec:?}"
                );
            }
        }
    }

    #[test]
    fn grow_increases_and_shrink_is_its_reverse() {
        for seed in 0..8 {
            let spec = ClipSpec::new(GROW, seed, SIZE);
            let grow = spec.render(FRAMES);
            let counts: Vec<_> = grow.iter().map(|f| shape_pixels(&spec, f)).collect();
            assert!(
                counts.windows(2).all(|w| w[0] < w[1]),
                "seed {seed}: {counts:?}"
            );
            assert!(counts[0] > 0 && counts[FRAMES - 1] < (SIZE * SIZE) as usize);

            let mut shrink = render_clip(SHRINK, seed, SIZE, FRAMES);
            shrink.reverse();
            assert!(shrink == grow, "seed {seed}: shrink is not grow reversed");
        }
    }

    #[test]
    fn pulse_and_dip_are_triangles() {
        let spec = ClipSpec::new(PULSE, 3, SIZE);
        let pulse: Vec<_> = spec
            .render(FRAMES)
            .iter()
            .map(|f| shape_pixels(&spec, f))
            .collect();
        // Levels 0 2 .. 22 23 21 .. 1: the largest (23) at frame 12.
        let peak = FRAMES / 2;
        assert!(pulse[..=peak].windows(2).all(|w| w[0] < w[1]), "{pulse:?}");
        assert!(pulse[peak..].windows(2).all(|w| w[0] > w[1]), "{pulse:?}");

        let spec = ClipSpec { class: DIP, ..spec };
        let dip: Vec<_> = spec
            .render(FRAMES)
            .iter()
            .map(|f| shape_pixels(&spec, f))
            .collect();
        assert!(dip[..=peak].windows(2).all(|w| w[0] > w[1]), "{dip:?}");
        assert!(dip[peak..].windows(2).all(|w| w[0] < w[1]), "{dip:?}");
    }

    #[test]
    fn every_class_visits_every_size_once() {
        for frames in [1, 2, 5, 6, FRAMES] {
            for class in 0..4 {
                let mut order = level_order(class, frames);
                order.sort_unstable();
                assert_eq!(
                    order,
                    (0..frames).collect::<Vec<_>>(),
                    "class {class}, {frames} frames"
                );
            }
        }
    }

    #[test]
    fn mean_image_is_the_same_for_every_class() {
        for seed in [0, 1, 99] {
            let means: Vec<_> = (0..4)
                .map(|class| mean_image(&render_clip(class, seed, SIZE, FRAMES)))
                .collect();
            for class in 1..4 {
                let worst = means[0]
                    .iter()
                    .zip(&means[class])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    worst < 1e-9,
                    "seed {seed} class {class}: differs by {worst}"
                );
            }
            // ... while the clips themselves differ.
            assert_ne!(
                render_clip(GROW, seed, SIZE, FRAMES),
                render_clip(DIP, seed, SIZE, FRAMES)
            );
        }
    }

    #[test]
    fn clip_set_is_written_decodable_and_labelled() {
        let dir = std::env::temp_dir().join(format!("synth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = write_clip_set(&dir, 2, 42).expect("writing the clip set");
        let names: Vec<_> = paths
            .iter()
            .map(|p| {
                p.strip_prefix(&dir)
                    .expect("path under the output dir")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "grow/grow_000.mp4",
                "grow/grow_001.mp4",
                "shrink/shrink_000.mp4",
                "shrink/shrink_001.mp4",
                "pulse/pulse_000.mp4",
                "pulse/pulse_001.mp4",
                "dip/dip_000.mp4",
                "dip/dip_001.mp4",
            ]
        );
        // Decoded, a grow clip's shape area still rises from first to last frame and a shrink
        // clip's falls; clips of one class differ (their own seeds).
        let area = |path: &Path| -> Vec<f64> {
            let options = DecodeOptions {
                sampling: Sampling::default(),
                size: SIZE,
                display: None,
                motion: media::MotionSource::Off,
                read: media::ReadOptions::default(),
            };
            let mut video = Video::open(path, options).expect("opening the written video");
            assert_eq!((video.info().width, video.info().height), (SIZE, SIZE));
            let mut areas = Vec::new();
            while let Some(frame) = video.next_frame().expect("decoding") {
                // Pixels far from the top-left one, which is background (the shape is inside).
                let bg: Vec<f64> = (0..3).map(|c| f64::from(frame.rgb[c])).collect();
                let changed = frame
                    .rgb
                    .chunks(3)
                    .filter(|p| (0..3).map(|c| (f64::from(p[c]) - bg[c]).abs()).sum::<f64>() > 60.0)
                    .count();
                areas.push(changed as f64);
            }
            areas
        };
        let grow = area(&paths[0]);
        let shrink = area(&paths[2]);
        assert_eq!((grow.len(), shrink.len()), (FRAMES, FRAMES));
        assert!(grow[0] * 4.0 < grow[FRAMES - 1], "{grow:?}");
        assert!(shrink[0] > shrink[FRAMES - 1] * 4.0, "{shrink:?}");
        let a = std::fs::read(&paths[0]).expect("reading a clip");
        let b = std::fs::read(&paths[1]).expect("reading a clip");
        assert_ne!(a, b);
        std::fs::remove_dir_all(&dir).expect("cleaning up");
    }
}

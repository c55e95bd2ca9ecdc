//! Motion estimated from the pixels, for streams whose decoder exports no vectors (HEVC, VP9,
//! AV1, intra-only codecs): block matching between small grayscale copies of consecutive
//! decoded frames. Blocks of 8 x 8 pixels on a copy whose longer side is [`SIDE`] pixels; a
//! coarse search at half size (+-4 pixels there, +-8 here), refined +-2 pixels here, then to a
//! fraction of a pixel by equiangular lines through the match errors either side of the best
//! (a quarter of a pixel or better on textured blocks). The fastest pan it follows is 10
//! pixels of the copy between frames: 6% of the frame's width, 1.5 widths a second at 25
//! frames per second.

/// Longer side of the grayscale copy.
pub(crate) const SIDE: u32 = 160;
const BLOCK: usize = 8;
/// Mean absolute difference (grey levels) under which a block counts as found again in the
/// previous frame: a hard cut or a covered lens leaves most blocks above it.
const TRACED: f64 = 12.0;
/// Mean absolute gradient (grey levels per pixel) under which a block is too flat for its
/// match to be trusted (sky, a wall): it counts towards coverage, not towards the camera.
const FLAT: f64 = 3.0;

/// An 8-bit grayscale image, row-major, no padding.
#[derive(Debug, Clone)]
pub(crate) struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Gray {
    fn at(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Half the size, each pixel the mean of a 2 x 2 square.
    fn half(&self) -> Gray {
        let (width, height) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let sum = u16::from(self.at(2 * x, 2 * y))
                    + u16::from(self.at(2 * x + 1, 2 * y))
                    + u16::from(self.at(2 * x, 2 * y + 1))
                    + u16::from(self.at(2 * x + 1, 2 * y + 1));
                data.push(((sum + 2) / 4) as u8);
            }
        }
        Gray {
            width,
            height,
            data,
        }
    }

    /// Sum of absolute differences between the `n x n` block at `(x, y)` here and the one at
    /// `(x + dx, y + dy)` in `prev`; `None` where that falls outside `prev`.
    fn sad(
        &self,
        prev: &Gray,
        (x, y): (usize, usize),
        (dx, dy): (i32, i32),
        n: usize,
    ) -> Option<u32> {
        let (px, py) = (x as i32 + dx, y as i32 + dy);
        if px < 0 || py < 0 || px as usize + n > prev.width || py as usize + n > prev.height {
            return None;
        }
        let (px, py) = (px as usize, py as usize);
        let mut sum = 0u32;
        for row in 0..n {
            let a = &self.data[(y + row) * self.width + x..][..n];
            let b = &prev.data[(py + row) * prev.width + px..][..n];
            sum += a
                .iter()
                .zip(b)
                .map(|(a, b)| u32::from(a.abs_diff(*b)))
                .sum::<u32>();
        }
        Some(sum)
    }

    /// Mean absolute difference between neighbours, across and down, in the block at `(x, y)`.
    fn texture(&self, (x, y): (usize, usize), n: usize) -> f64 {
        let mut sum = 0u32;
        for row in 0..n - 1 {
            for col in 0..n - 1 {
                let p = self.at(x + col, y + row);
                sum += u32::from(p.abs_diff(self.at(x + col + 1, y + row)))
                    + u32::from(p.abs_diff(self.at(x + col, y + row + 1)));
            }
        }
        f64::from(sum) / (2 * (n - 1) * (n - 1)) as f64
    }
}

/// One block's match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Matched {
    /// Block centre in the current frame, pixels.
    pub centre: (f64, f64),
    /// Where its content was in the previous frame, minus where it is now, pixels.
    pub offset: (f64, f64),
    /// Found again (its best match is close enough to be the same content).
    pub traced: bool,
    /// Textured enough for its offset to be trusted.
    pub textured: bool,
}

/// Every whole block of `now` matched in `prev` (both the same size).
pub(crate) fn match_blocks(prev: &Gray, now: &Gray) -> Vec<Matched> {
    debug_assert_eq!((prev.width, prev.height), (now.width, now.height));
    let (prev_half, now_half) = (prev.half(), now.half());
    let mut out = Vec::new();
    for by in 0..now.height / BLOCK {
        for bx in 0..now.width / BLOCK {
            let at = (bx * BLOCK, by * BLOCK);
            let coarse = best(
                &now_half,
                &prev_half,
                (at.0 / 2, at.1 / 2),
                (0, 0),
                4,
                BLOCK / 2,
            );
            let guess = coarse.map_or((0, 0), |(d, _)| (2 * d.0, 2 * d.1));
            let Some(((dx, dy), sad)) = best(now, prev, at, guess, 2, BLOCK) else {
                continue;
            };
            let cost = |d: (i32, i32)| now.sad(prev, at, d, BLOCK).map(f64::from);
            // Equiangular lines through the errors either side (suits absolute differences,
            // which grow linearly near the best, better than a parabola does).
            let centre = f64::from(sad);
            let sub = |minus: Option<f64>, plus: Option<f64>| match (minus, plus) {
                (Some(m), Some(p)) => {
                    let rise = m.max(p) - centre;
                    if rise > 0.0 {
                        0.5 * (m - p) / rise
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            let fx = sub(cost((dx - 1, dy)), cost((dx + 1, dy)));
            let fy = sub(cost((dx, dy - 1)), cost((dx, dy + 1)));
            let half = BLOCK as f64 / 2.0;
            out.push(Matched {
                centre: (at.0 as f64 + half, at.1 as f64 + half),
                offset: (f64::from(dx) + fx, f64::from(dy) + fy),
                traced: f64::from(sad) / (BLOCK * BLOCK) as f64 <= TRACED,
                textured: now.texture(at, BLOCK) >= FLAT,
            });
        }
    }
    out
}

/// The offset within `range` of `around` whose block in `prev` best matches the `n x n` block
/// at `at` in `now`, and its error; ties go to the smaller offset (flat blocks stay still).
fn best(
    now: &Gray,
    prev: &Gray,
    at: (usize, usize),
    around: (i32, i32),
    range: i32,
    n: usize,
) -> Option<((i32, i32), u32)> {
    let mut found: Option<((i32, i32), u32)> = None;
    for dy in -range..=range {
        for dx in -range..=range {
            let d = (around.0 + dx, around.1 + dy);
            let Some(sad) = now.sad(prev, at, d, n) else {
                continue;
            };
            let better = match found {
                None => true,
                Some((f, s)) => {
                    sad < s || (sad == s && d.0.abs() + d.1.abs() < f.0.abs() + f.1.abs())
                }
            };
            if better {
                found = Some((d, sad));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth but textured scene sampled at (`x + sx`, `y + sy`); `k` scales its
    /// frequencies (another `k`, another scene).
    fn scene(w: usize, h: usize, (sx, sy): (f64, f64), k: f64) -> Gray {
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (x, y) = (x as f64 + sx, y as f64 + sy);
                let v = 128.0
                    + 60.0 * (x * 0.31 * k).sin() * (y * 0.23 * k).cos()
                    + 40.0 * ((x + 2.0 * y) * 0.11 * k).sin();
                data.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
        Gray {
            width: w,
            height: h,
            data,
        }
    }

    /// The content moves right by 3.4 and up by 1.5 pixels: each block was found 3.4 left and
    /// 1.5 lower in the previous frame, to a quarter of a pixel in the median (the line fit
    /// leans towards whole pixels).
    #[test]
    fn a_shift_is_found_to_a_fraction_of_a_pixel() {
        let prev = scene(160, 90, (0.0, 0.0), 1.0);
        let now = scene(160, 90, (-3.4, 1.5), 1.0);
        let found = match_blocks(&prev, &now);
        assert_eq!(found.len(), 20 * 11);
        let mut dx: Vec<f64> = found
            .iter()
            .filter(|m| m.textured)
            .map(|m| m.offset.0)
            .collect();
        let mut dy: Vec<f64> = found
            .iter()
            .filter(|m| m.textured)
            .map(|m| m.offset.1)
            .collect();
        assert!(dx.len() > 150, "{} textured", dx.len());
        dx.sort_by(f64::total_cmp);
        dy.sort_by(f64::total_cmp);
        let (mx, my) = (dx[dx.len() / 2], dy[dy.len() / 2]);
        assert!(
            (mx + 3.4).abs() < 0.25 && (my - 1.5).abs() < 0.25,
            "{mx} {my}"
        );
        // All but blocks at the edge, whose content came in from outside.
        let traced = found.iter().filter(|m| m.traced).count();
        assert!(traced * 10 >= found.len() * 9, "{traced} traced");
    }

    #[test]
    fn a_cut_is_not_traced() {
        let prev = scene(160, 90, (0.0, 0.0), 1.0);
        let now = scene(160, 90, (0.0, 0.0), 2.7);
        let found = match_blocks(&prev, &now);
        let traced = found.iter().filter(|m| m.traced).count();
        assert!(
            traced * 5 < found.len(),
            "{traced} of {} traced",
            found.len()
        );
    }

    #[test]
    fn flat_blocks_are_not_trusted() {
        let flat = Gray {
            width: 32,
            height: 32,
            data: vec![90; 32 * 32],
        };
        let found = match_blocks(&flat, &flat);
        assert_eq!(found.len(), 16);
        assert!(
            found
                .iter()
                .all(|m| m.traced && !m.textured && m.offset == (0.0, 0.0))
        );
    }
}

//! Motion estimated from the pixels, for streams whose decoder exports no vectors (HEVC, VP9,
//! AV1, intra-only codecs): block matching between small grayscale copies of consecutive
//! decoded frames. Blocks of 8 x 8 pixels on a copy whose longer side is about [`SIDE`] pixels
//! ([`factor`]); a
//! coarse search at half size (+-4 pixels there, +-8 here), refined +-2 pixels here, then to a
//! fraction of a pixel by equiangular lines through the match errors either side of the best
//! (a quarter of a pixel or better on textured blocks). The fastest pan it follows is 10
//! pixels of the copy between frames: 6% of the frame's width on a 160-pixel copy, 1.5 widths
//! a second at 25 frames per second.

/// Longer side the grayscale copy is brought near.
pub(crate) const SIDE: u32 = 160;
const BLOCK: usize = 8;
/// Block side of the coarse search, on the half-size copy.
const HALF: usize = BLOCK / 2;
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

/// The whole factor a frame of `width x height` is boxed down by for its grayscale copy: the
/// nearest to its longer side over [`SIDE`], at least 1, the same for every pixel format. From
/// 560 pixels up the copy's longer side is within 12% of [`SIDE`] (153 for 768 x 576, 160 for
/// 1280 x 720, 170 for 854 x 480); smaller frames keep more of their pixels (up to 239: a
/// 176 x 144 frame is its own copy).
pub(crate) fn factor(width: usize, height: usize) -> usize {
    let side = SIDE as usize;
    ((width.max(height) + side / 2) / side).max(1)
}

impl Gray {
    /// The copy of an 8-bit luma plane (`width x height` pixels, rows `stride` bytes apart):
    /// each pixel the mean of a whole `k x k` square ([`factor`]); limited-range luma (16-235)
    /// stretched to 0-255. `None` where that leaves a side under 16 pixels or the plane is
    /// shorter than its size says.
    pub(crate) fn from_luma(
        plane: &[u8],
        stride: usize,
        (width, height): (usize, usize),
        full_range: bool,
    ) -> Option<Gray> {
        let k = factor(width, height);
        let (gw, gh) = (width / k, height / k);
        if gw < 16 || gh < 16 || stride < width || plane.len() < (height - 1) * stride + width {
            return None;
        }
        let used = gw * k;
        // Columns summed down k rows (a vector at a time), then k columns at a time.
        let mut columns = vec![0u16; used];
        let mut data = Vec::with_capacity(gw * gh);
        let area = (k * k) as u32;
        for gy in 0..gh {
            columns.fill(0);
            for row in 0..k {
                let line = &plane[(gy * k + row) * stride..][..used];
                for (c, &v) in columns.iter_mut().zip(line) {
                    *c = c.wrapping_add(u16::from(v));
                }
            }
            for square in columns.chunks_exact(k) {
                let sum: u32 = square.iter().map(|&c| u32::from(c)).sum();
                let mean = (sum + area / 2) / area;
                let v = if full_range {
                    mean
                } else {
                    (mean.saturating_sub(16) * 255 + 109) / 219
                };
                data.push(v.min(255) as u8);
            }
        }
        Some(Gray {
            width: gw,
            height: gh,
            data,
        })
    }

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

    /// Sum of absolute differences between the `N x N` block at `(x, y)` here and the one at
    /// `(x + dx, y + dy)` in `prev`; `None` where that falls outside `prev`.
    fn sad<const N: usize>(
        &self,
        prev: &Gray,
        (x, y): (usize, usize),
        (dx, dy): (i32, i32),
    ) -> Option<u32> {
        let (px, py) = (x as i32 + dx, y as i32 + dy);
        if px < 0 || py < 0 || px as usize + N > prev.width || py as usize + N > prev.height {
            return None;
        }
        let (px, py) = (px as usize, py as usize);
        // Rows of a fixed width and wrapping adds, so the compiler sums each row a vector at a
        // time (`psadbw` on x86) with no overflow check in between (N x N differences of at
        // most 255 fit a u32, a row of 8 a u16).
        let mut sum = 0u32;
        let (mut i, mut j) = (y * self.width + x, py * prev.width + px);
        for _ in 0..N {
            let a = self.data.get(i..).and_then(|r| r.first_chunk::<N>());
            let b = prev.data.get(j..).and_then(|r| r.first_chunk::<N>());
            if let (Some(a), Some(b)) = (a, b) {
                let mut row = 0u16;
                for k in 0..N {
                    row = row.wrapping_add(u16::from(a[k].abs_diff(b[k])));
                }
                sum = sum.wrapping_add(u32::from(row));
            }
            i = i.wrapping_add(self.width);
            j = j.wrapping_add(prev.width);
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
            let half_at = (at.0 / 2, at.1 / 2);
            let coarse = best(|d| now_half.sad::<HALF>(&prev_half, half_at, d), (0, 0), 4);
            let guess = coarse.map_or((0, 0), |(d, _)| (2 * d.0, 2 * d.1));
            let fine = |d| now.sad::<BLOCK>(prev, at, d);
            let Some(((dx, dy), sad)) = best(fine, guess, 2) else {
                continue;
            };
            let cost = |d: (i32, i32)| fine(d).map(f64::from);
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

/// The offset within `range` of `around` with the smallest error `sad` gives (`None`: that
/// offset falls outside the image), and its error; ties go to the smaller offset (flat blocks
/// stay still).
fn best(
    sad: impl Fn((i32, i32)) -> Option<u32>,
    around: (i32, i32),
    range: i32,
) -> Option<((i32, i32), u32)> {
    let mut found: Option<((i32, i32), u32)> = None;
    for dy in -range..=range {
        for dx in -range..=range {
            let d = (around.0 + dx, around.1 + dy);
            let Some(sad) = sad(d) else {
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
    fn a_luma_plane_is_boxed_down_to_the_small_copy() {
        // 1280 x 720 in rows of 1300 bytes: k = 8, 160 x 90.
        let (w, h, stride) = (1280, 720, 1300);
        let plane: Vec<u8> = (0..h * stride)
            .map(|i| ((i % stride) / 8 + (i / stride) / 8) as u8)
            .collect();
        let full = Gray::from_luma(&plane, stride, (w, h), true).expect("a copy");
        assert_eq!((full.width, full.height), (160, 90));
        // Each square of 8 x 8 is one value here.
        assert_eq!(full.at(3, 2), 5);
        assert_eq!(full.at(159, 89), (159 + 89) as u8);
        // Limited range: 16 is black, 235 white; 320 wide, k = 2: each square half of each.
        let limited =
            Gray::from_luma(&[16, 235].repeat(160 * 32), 320, (320, 32), false).expect("a copy");
        assert_eq!((limited.width, limited.height), (160, 16));
        assert!(
            limited.data.iter().all(|&v| v == 128),
            "{:?}",
            &limited.data[..4]
        );
        let black = Gray::from_luma(&[16; 32 * 32], 32, (32, 32), false).expect("a copy");
        assert!(black.data.iter().all(|&v| v == 0));
        // The nearest whole factor: 854 x 480 by 5, 176 x 144 by 1.
        assert_eq!(
            (factor(854, 480), factor(768, 576), factor(176, 144)),
            (5, 5, 1)
        );
        assert_eq!(
            (factor(1920, 1080), factor(239, 100), factor(240, 100)),
            (12, 1, 2)
        );
        // Too small, or a plane shorter than its size.
        assert!(Gray::from_luma(&[0; 15 * 15], 15, (15, 15), true).is_none());
        assert!(Gray::from_luma(&[0; 100], 32, (32, 32), true).is_none());
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

//! The camera's motion fitted robustly to a field of block vectors, and what is left of the
//! field once the camera's motion is taken out (the objects').
//!
//! Coordinates are the displayed frame's (display rotation applied), centred, in frame widths
//! (both axes divided by the width, so a pixel is the same length either way); velocities in
//! frame widths per second. The camera model is a similarity motion:
//! `u = pan_x + zoom * x - roll * y`, `v = pan_y + roll * x + zoom * y`, `y` pointing down, so
//! a positive zoom spreads content outward (zooming in) and a positive roll turns it clockwise
//! on screen (radians per second).

use super::GRID;

/// One vector of the field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Block centre.
    pub x: f64,
    pub y: f64,
    /// Forward velocity of the block's content.
    pub u: f64,
    pub v: f64,
    /// Area the vector stands for; a weight of zero keeps it out of the camera fit (a block
    /// too flat to trust) but in the object motion.
    pub weight: f64,
    /// Area it covers, for the object motion's averages.
    pub area: f64,
}

/// A field's camera motion and object motion.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Fitted {
    pub pan: [f64; 2],
    pub zoom: f64,
    pub roll: f64,
    /// Root mean square of the residual velocity over the field (area-weighted).
    pub objects: f64,
    /// Share of the fitted area that follows the camera's motion (the inliers).
    pub camera_share: f64,
    /// Per cell of a `GRID x GRID` grid over the frame, row by row: mean residual dx, dy and
    /// mean residual speed (area-weighted; zero where no vector falls).
    pub grid: [[f64; 3]; GRID * GRID],
}

/// Fewest trusted vectors for a fit.
pub(crate) const MIN_SAMPLES: usize = 6;
/// Most vectors the fit itself uses.
const FIT_SAMPLES: usize = 1024;

/// Fits the camera's motion to `samples` in a frame `aspect` (height / width) times as high
/// as it is wide. Residuals below `floor` (the vectors' own precision) always count as the
/// camera's. `None` with fewer than [`MIN_SAMPLES`] trusted vectors, a fit otherwise.
pub(crate) fn fit(samples: &[Sample], aspect: f64, floor: f64) -> Option<Fitted> {
    let all: Vec<&Sample> = samples.iter().filter(|s| s.weight > 0.0).collect();
    if all.len() < MIN_SAMPLES {
        return None;
    }
    // A 720p H.264 frame has thousands of vectors; an even spread of at most FIT_SAMPLES
    // finds the camera's motion as well, in a fraction of the time (the medians sort).
    let trusted: Vec<&Sample> = all
        .iter()
        .step_by(all.len().div_ceil(FIT_SAMPLES))
        .copied()
        .collect();
    // Start from the median translation (moving objects cannot drag it while they cover less
    // than half the frame), then refit the full model on the vectors that agree, three times.
    let mut model = [
        weighted_median(trusted.iter().map(|s| (s.u, s.weight))),
        weighted_median(trusted.iter().map(|s| (s.v, s.weight))),
        0.0,
        0.0,
    ];
    let mut inliers = vec![true; trusted.len()];
    for _ in 0..3 {
        let residuals: Vec<f64> = trusted.iter().map(|s| residual(&model, s).2).collect();
        // 1.4826 x median absolute residual: the standard deviation of Gaussian noise.
        let scale =
            1.4826 * weighted_median(residuals.iter().zip(&trusted).map(|(r, s)| (*r, s.weight)));
        let threshold = (2.5 * scale).max(floor);
        for (keep, r) in inliers.iter_mut().zip(&residuals) {
            *keep = *r <= threshold;
        }
        match solve(
            trusted
                .iter()
                .zip(&inliers)
                .filter(|(_, k)| **k)
                .map(|(s, _)| *s),
        ) {
            Some(p) => model = p,
            None => break,
        }
    }
    let final_residuals: Vec<f64> = trusted.iter().map(|s| residual(&model, s).2).collect();
    let scale = 1.4826
        * weighted_median(
            final_residuals
                .iter()
                .zip(&trusted)
                .map(|(r, s)| (*r, s.weight)),
        );
    let threshold = (2.5 * scale).max(floor);
    let total: f64 = all.iter().map(|s| s.weight).sum();
    let kept: f64 = all
        .iter()
        .filter(|s| residual(&model, s).2 <= threshold)
        .map(|s| s.weight)
        .sum();

    let mut grid = [[0.0; 3]; GRID * GRID];
    let mut cell_area = [0.0; GRID * GRID];
    let (mut energy, mut area) = (0.0, 0.0);
    for s in samples {
        let (rx, ry, r) = residual(&model, s);
        energy += s.area * r * r;
        area += s.area;
        let cell = |v: f64| {
            ((v + 0.5) * GRID as f64)
                .floor()
                .clamp(0.0, GRID as f64 - 1.0) as usize
        };
        let c = cell(s.y / aspect) * GRID + cell(s.x);
        for (g, v) in grid[c].iter_mut().zip([rx, ry, r]) {
            *g += s.area * v;
        }
        cell_area[c] += s.area;
    }
    for (g, a) in grid.iter_mut().zip(cell_area) {
        if a > 0.0 {
            g.iter_mut().for_each(|v| *v /= a);
        }
    }
    Some(Fitted {
        pan: [model[0], model[1]],
        zoom: model[2],
        roll: model[3],
        objects: if area > 0.0 {
            (energy / area).sqrt()
        } else {
            0.0
        },
        camera_share: kept / total,
        grid,
    })
}

/// The sample's velocity minus the model's at its place: (dx, dy, length).
fn residual(p: &[f64; 4], s: &Sample) -> (f64, f64, f64) {
    let rx = s.u - (p[0] + p[2] * s.x - p[3] * s.y);
    let ry = s.v - (p[1] + p[3] * s.x + p[2] * s.y);
    // Not `hypot`: its care for overflow cost a third of the fit, and these are small numbers.
    (rx, ry, (rx * rx + ry * ry).sqrt())
}

/// Weighted least squares for `[pan_x, pan_y, zoom, roll]`: each sample gives two equations,
/// `u = [1, 0, x, -y] . p` and `v = [0, 1, y, x] . p`. Zoom and roll are held near zero when
/// the samples barely spread (a small ridge), so a few clustered vectors give a translation.
fn solve<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<[f64; 4]> {
    let mut a = [[0.0f64; 4]; 4];
    let mut b = [0.0f64; 4];
    let mut total = 0.0;
    for s in samples {
        for (row, target) in [([1.0, 0.0, s.x, -s.y], s.u), ([0.0, 1.0, s.y, s.x], s.v)] {
            for i in 0..4 {
                for j in 0..4 {
                    a[i][j] += s.weight * row[i] * row[j];
                }
                b[i] += s.weight * row[i] * target;
            }
        }
        total += s.weight;
    }
    if total <= 0.0 {
        return None;
    }
    // A spread of 0.1% of the frame width in every direction weighs as much as the ridge.
    for (i, row) in a.iter_mut().enumerate().skip(2) {
        row[i] += 1e-6 * total;
    }
    gauss(a, b)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if singular.
fn gauss(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..4 {
            let k = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (cell, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= k * p;
            }
            b[row] -= k * b[col];
        }
    }
    let mut x = [0.0; 4];
    for row in (0..4).rev() {
        let rest: f64 = (row + 1..4).map(|j| a[row][j] * x[j]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

/// The value below which half the weight lies (0 for no weight).
fn weighted_median(values: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut v: Vec<(f64, f64)> = values.filter(|(_, w)| *w > 0.0).collect();
    // Unstable is enough: values that tie return the same value whatever their order.
    v.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let half = v.iter().map(|(_, w)| w).sum::<f64>() / 2.0;
    let mut seen = 0.0;
    for (x, w) in &v {
        seen += w;
        if seen >= half {
            return *x;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 9 x 5 field over a 16:9 frame moving as `p` says, with `moving` blocks (an object)
    /// going their own way.
    fn field(p: [f64; 4], moving: &[(usize, usize)]) -> Vec<Sample> {
        let mut out = Vec::new();
        for j in 0..5 {
            for i in 0..9 {
                let x = (i as f64 + 0.5) / 9.0 - 0.5;
                let y = ((j as f64 + 0.5) / 5.0 - 0.5) * 9.0 / 16.0;
                let (mut u, mut v) = (p[0] + p[2] * x - p[3] * y, p[1] + p[3] * x + p[2] * y);
                if moving.contains(&(i, j)) {
                    (u, v) = (u + 0.5, v - 0.3);
                }
                out.push(Sample {
                    x,
                    y,
                    u,
                    v,
                    weight: 1.0,
                    area: 1.0,
                });
            }
        }
        out
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn recovers_pan_zoom_and_roll_exactly() {
        for p in [
            [0.2, 0.0, 0.0, 0.0],
            [-0.1, 0.05, 0.0, 0.0],
            [0.0, 0.0, 0.3, 0.0],
            [0.0, 0.0, -0.2, 0.0],
            [0.0, 0.0, 0.0, 0.4],
            [0.05, -0.02, 0.1, -0.1],
        ] {
            let f = fit(&field(p, &[]), 9.0 / 16.0, 1e-4).expect("fits");
            let got = [f.pan[0], f.pan[1], f.zoom, f.roll];
            assert!(
                got.iter().zip(p).all(|(g, w)| close(*g, w)),
                "{got:?} {p:?}"
            );
            assert!(f.objects < 1e-4, "{}", f.objects);
            assert_eq!(f.camera_share, 1.0);
        }
    }

    /// An object over a sixth of the frame changes neither the camera's motion nor anything
    /// but its own cells.
    #[test]
    fn a_moving_object_is_rejected_and_shows_in_its_cells() {
        let object = [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1), (0, 2)];
        let p = [0.1, 0.0, 0.05, 0.0];
        let f = fit(&field(p, &object), 9.0 / 16.0, 1e-4).expect("fits");
        let got = [f.pan[0], f.pan[1], f.zoom, f.roll];
        assert!(got.iter().zip(p).all(|(g, w)| close(*g, w)), "{got:?}");
        assert!((f.camera_share - 38.0 / 45.0).abs() < 1e-9);
        // The top-left cell holds only object blocks: (+0.5, -0.3).
        assert!(
            close(f.grid[0][0], 0.5) && close(f.grid[0][1], -0.3),
            "{:?}",
            f.grid[0]
        );
        assert!(close(f.grid[0][2], 0.5f64.hypot(0.3)));
        // The bottom-right cell none.
        assert!(
            f.grid[15].iter().all(|v| v.abs() < 1e-4),
            "{:?}",
            f.grid[15]
        );
        let rms = (7.0 / 45.0 * 0.34f64).sqrt();
        assert!(close(f.objects, rms), "{} {rms}", f.objects);
    }

    #[test]
    fn too_few_trusted_vectors_fit_nothing() {
        let mut few = field([0.1, 0.0, 0.0, 0.0], &[]);
        for s in few.iter_mut().skip(5) {
            s.weight = 0.0;
        }
        assert_eq!(fit(&few, 9.0 / 16.0, 1e-4), None);
    }

    #[test]
    fn weighted_median_splits_the_weight() {
        assert_eq!(
            weighted_median([(3.0, 1.0), (1.0, 1.0), (2.0, 1.0)].into_iter()),
            2.0
        );
        assert_eq!(
            weighted_median([(3.0, 5.0), (1.0, 1.0), (2.0, 1.0)].into_iter()),
            3.0
        );
        assert_eq!(weighted_median(std::iter::empty()), 0.0);
    }
}

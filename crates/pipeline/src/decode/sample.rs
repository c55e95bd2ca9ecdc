//! Which decoded frames become samples. Decided from the timestamp alone, before any pixel is
//! converted, so skipped frames cost only their decode.

/// How frames are picked from the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Every {
    /// Every decoded frame.
    Frame,
    /// The first frame at or after each tick of a clock running at this many ticks per second.
    Fps(f64),
    /// Every k-th decoded frame (after `start`).
    Stride(u64),
}

/// The sampling settings shared by every command that reads video.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub every: Every,
    /// Only key frames; the decoder drops the others before decoding them.
    pub keyframes: bool,
    /// Seconds; frames before are skipped (after a seek to the key frame before it).
    pub start: Option<f64>,
    /// Seconds, exclusive; decoding stops at the first frame at or after it.
    pub end: Option<f64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            every: Every::Frame,
            keyframes: false,
            start: None,
            end: None,
        }
    }
}

impl Sampling {
    /// A short description for metadata and logs, e.g. `fps=2 start=1 end=4`.
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.every {
            Every::Frame => "every-frame".to_string(),
            Every::Fps(f) => format!("fps={f}"),
            Every::Stride(k) => format!("stride={k}"),
        }];
        if self.keyframes {
            parts.push("keyframes".into());
        }
        if let Some(s) = self.start {
            parts.push(format!("start={s}"));
        }
        if let Some(e) = self.end {
            parts.push(format!("end={e}"));
        }
        parts.join(" ")
    }
}

/// What to do with a decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Take,
    Skip,
    /// At or past `end`: nothing later can be taken.
    Stop,
}

/// Applies a [`Sampling`] to the stream's timestamps, one frame at a time.
#[derive(Debug)]
pub struct Sampler {
    sampling: Sampling,
    /// The fps clock's origin: `start`, or the first frame's timestamp.
    origin: Option<f64>,
    next_tick: u64,
    seen: u64,
}

/// Timestamps are rationals turned into f64: allow for the rounding.
const EPS: f64 = 1e-6;

impl Sampler {
    pub fn new(sampling: Sampling) -> Self {
        Self {
            origin: sampling.start,
            sampling,
            next_tick: 0,
            seen: 0,
        }
    }

    pub fn decide(&mut self, t: f64) -> Decision {
        if self.sampling.end.is_some_and(|end| t >= end - EPS) {
            return Decision::Stop;
        }
        if self.sampling.start.is_some_and(|start| t < start - EPS) {
            return Decision::Skip;
        }
        let seen = self.seen;
        self.seen += 1;
        match self.sampling.every {
            Every::Frame => Decision::Take,
            Every::Stride(k) => {
                if seen.is_multiple_of(k) {
                    Decision::Take
                } else {
                    Decision::Skip
                }
            }
            Every::Fps(fps) => {
                let origin = *self.origin.get_or_insert(t);
                let tick_time = origin + self.next_tick as f64 / fps;
                if t + EPS < tick_time {
                    return Decision::Skip;
                }
                // The next tick strictly after this frame: a gap in the stream yields one
                // sample, not a burst of catch-up samples.
                self.next_tick = ((t - origin) * fps + EPS).floor() as u64 + 1;
                Decision::Take
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(sampling: Sampling, timestamps: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut sampler = Sampler::new(sampling);
        let mut out = Vec::new();
        for t in timestamps {
            match sampler.decide(t) {
                Decision::Take => out.push(t),
                Decision::Skip => {}
                Decision::Stop => break,
            }
        }
        out
    }

    fn frames(fps: f64, seconds: f64) -> impl Iterator<Item = f64> {
        (0..(fps * seconds).round() as u64).map(move |i| i as f64 / fps)
    }

    #[test]
    fn fps_two_on_five_seconds_gives_ten_samples() {
        let sampling = Sampling {
            every: Every::Fps(2.0),
            ..Default::default()
        };
        let got = taken(sampling, frames(24.0, 5.0));
        // Ticks at 0, 0.5, ..., 4.5 each land exactly on a frame of a 24 fps stream.
        assert_eq!(got, (0..10).map(|i| i as f64 * 0.5).collect::<Vec<_>>());
    }

    #[test]
    fn fps_takes_first_frame_at_or_after_each_tick() {
        // 25 fps: 0.5 s falls between frames 12 (0.48 s) and 13 (0.52 s); the tick at 1.0 s
        // is measured from the origin, not from 0.52, so it lands on frame 25 again.
        let sampling = Sampling {
            every: Every::Fps(2.0),
            ..Default::default()
        };
        let got = taken(sampling, frames(25.0, 2.0));
        assert_eq!(got.len(), 4);
        assert!((got[1] - 13.0 / 25.0).abs() < 1e-9, "{got:?}");
        assert!((got[2] - 1.0).abs() < 1e-9, "{got:?}");
    }

    #[test]
    fn fps_over_a_gap_resumes_without_a_burst() {
        let sampling = Sampling {
            every: Every::Fps(1.0),
            ..Default::default()
        };
        // A stream with a 3 s hole between 1.0 and 4.0.
        let got = taken(sampling, [0.0, 0.5, 1.0, 4.0, 4.5, 5.0]);
        assert_eq!(got, [0.0, 1.0, 4.0, 5.0]);
    }

    #[test]
    fn stride_counts_from_start() {
        let sampling = Sampling {
            every: Every::Stride(3),
            start: Some(1.0),
            ..Default::default()
        };
        let got = taken(sampling, frames(10.0, 2.0));
        assert_eq!(got, [1.0, 1.3, 1.6, 1.9]);
    }

    #[test]
    fn start_and_end_window_is_half_open() {
        let sampling = Sampling {
            start: Some(1.0),
            end: Some(2.0),
            ..Default::default()
        };
        let got = taken(sampling, frames(10.0, 5.0));
        assert_eq!(got.len(), 10);
        assert_eq!(got[0], 1.0);
        assert!((got[9] - 1.9).abs() < 1e-9);
    }
}

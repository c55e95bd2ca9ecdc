//! Which decoded frames become samples. Decided from the timestamp alone, before any pixel is
//! converted, so skipped frames cost only their decode; some are known to be skipped before
//! they are decoded ([`Sampler::skips_unseen`]).

use std::collections::BTreeMap;

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
    /// With an fps clock: for tick intervals from the pending one on, the earliest timestamp
    /// of a frame known to be on its way out of the decoder ([`Self::will_see`]).
    witnesses: BTreeMap<u64, f64>,
}

/// Timestamps are rationals turned into f64: allow for the rounding.
const EPS: f64 = 1e-6;
/// Intervals of the fps clock behind the pending tick whose witnesses are kept: a packet can
/// arrive that far behind the frames decoded so far (B-frame reordering, frame threads'
/// delay) and still be skipped the same way whatever the decoder's progress.
const WITNESS_MARGIN: u64 = 64;

impl Sampler {
    pub fn new(sampling: Sampling) -> Self {
        Self {
            origin: sampling.start,
            sampling,
            next_tick: 0,
            seen: 0,
            witnesses: BTreeMap::new(),
        }
    }

    /// The interval `k` of the fps clock (from tick `k` to tick `k + 1`) that a frame at `t`
    /// falls in, rounded as [`Self::decide`] rounds; `None` without an fps clock or its origin,
    /// or where `t` is within the rounding below tick `k` (`decide` may count it either way).
    fn interval(&self, t: f64) -> Option<u64> {
        let (Every::Fps(fps), Some(origin)) = (self.sampling.every, self.origin) else {
            return None;
        };
        let ticks = (t - origin) * fps;
        let k = (ticks + EPS).floor();
        (k >= 0.0 && ticks >= k).then_some(k as u64)
    }

    /// Notes that a frame at `t` will reach [`Self::decide`]: its packet went to the decoder
    /// to be decoded whatever it is. A later frame of the same interval of the fps clock can
    /// then never be taken.
    pub fn will_see(&mut self, t: f64) {
        if let Some(k) = self.interval(t)
            && k + WITNESS_MARGIN >= self.next_tick
        {
            let earliest = self.witnesses.entry(k).or_insert(t);
            *earliest = earliest.min(t);
        }
    }

    /// Whether a frame at `t` will be skipped, whatever frames reach [`Self::decide`] before
    /// it, so that it need not be decoded at all unless other frames are predicted from it:
    /// - it is before `start`;
    /// - an earlier frame of its interval of the fps clock will reach `decide` ([`Self::will_see`]).
    ///   Whether that one is taken or skipped, the pending tick is past the interval's start
    ///   by then, and `t` is clear of the interval's end, so it is skipped.
    ///
    /// Frames reach `decide` in timestamp order, as decoders output them. Once the first frame
    /// has come out (the fps clock's origin), the answer depends on the packets sent before
    /// and not on how far decoding has got (a frame-threaded decoder outputs frames a varying
    /// number of packets late), so the frames decoded, and motion measured over them, are the
    /// same run to run; before it nothing is skipped, and how many packets that is depends on
    /// the decoder's progress.
    pub fn skips_unseen(&self, t: f64) -> bool {
        if self.sampling.start.is_some_and(|start| t < start - EPS) {
            return true;
        }
        let (Every::Fps(fps), Some(origin)) = (self.sampling.every, self.origin) else {
            return false;
        };
        let k = ((t - origin) * fps + EPS).floor();
        let end = origin + (k + 1.0) / fps;
        k >= 0.0
            && t + 2.0 * EPS < end
            && self
                .witnesses
                .get(&(k as u64))
                .is_some_and(|&earlier| earlier + EPS < t)
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
                self.witnesses = self
                    .witnesses
                    .split_off(&self.next_tick.saturating_sub(WITNESS_MARGIN));
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

    #[test]
    fn frames_before_start_are_skipped_unseen_and_decoding_progress_changes_nothing() {
        let sampler = Sampler::new(Sampling {
            start: Some(1.0),
            ..Default::default()
        });
        assert!(sampler.skips_unseen(0.96));
        assert!(!sampler.skips_unseen(1.0));
        let mut sampler = Sampler::new(Sampling {
            every: Every::Fps(2.0),
            ..Default::default()
        });
        // No origin before the first frame: nothing is known.
        assert!(!sampler.skips_unseen(0.3));
        assert_eq!(sampler.decide(0.0), Decision::Take);
        // What the decoder has output since (the pending tick moved on) changes nothing: only
        // the packets sent do (0.25 went to the decoder, so the rest of its interval is
        // skipped).
        assert!(!sampler.skips_unseen(0.3));
        sampler.will_see(0.25);
        assert!(sampler.skips_unseen(0.3) && sampler.skips_unseen(0.4999));
        assert!(!sampler.skips_unseen(0.5) && !sampler.skips_unseen(0.52));
        let mut later = Sampler::new(Sampling {
            every: Every::Fps(2.0),
            ..Default::default()
        });
        assert_eq!(later.decide(0.0), Decision::Take);
        assert_eq!(later.decide(0.5), Decision::Take);
        assert_eq!(later.decide(1.0), Decision::Take);
        // A late packet of an interval already sampled, with no witness: decoded, as it would
        // be had the decoder been slower.
        assert!(!later.skips_unseen(0.7));
    }

    #[test]
    fn an_earlier_frame_of_the_interval_makes_the_later_ones_skippable() {
        let mut sampler = Sampler::new(Sampling {
            every: Every::Fps(2.0),
            start: Some(0.0),
            ..Default::default()
        });
        sampler.will_see(0.52);
        assert!(sampler.skips_unseen(0.56) && sampler.skips_unseen(0.96));
        // Not the witness itself, nor an earlier frame, nor one of the next interval.
        assert!(!sampler.skips_unseen(0.52) && !sampler.skips_unseen(0.5));
        assert!(!sampler.skips_unseen(1.0) && !sampler.skips_unseen(1.04));
        // A frame a rounding below a tick (0.9999999 for 1.0) is no witness: `decide` may
        // count it in either interval.
        sampler.will_see(1.0 - 1e-7);
        assert!(!sampler.skips_unseen(1.04));
    }

    /// Streams with B-frames (decoded out of order, the B-frames referred to by nothing), at
    /// many frame and sampling rates, decoded with lag: dropping what `skips_unseen` allows
    /// before decoding takes exactly the frames a full decode takes.
    #[test]
    fn dropping_what_skips_unseen_allows_takes_the_same_frames() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut dropped = 0;
        for trial in 0..300 {
            let stream_fps: f64 = [24.0, 25.0, 30_000.0 / 1001.0, 30.0, 50.0][trial % 5];
            let fps = [0.5, 1.0, 2.0, 3.0, 4.0, 7.5, 12.5, 25.0][random(8) as usize];
            let start = (random(3) == 0).then(|| random(30) as f64 / 10.0);
            let sampling = Sampling {
                every: Every::Fps(fps),
                start,
                ..Default::default()
            };
            // Timestamps on a 90 kHz clock; a gap now and then.
            let mut pts = Vec::new();
            let mut t = random(1000) as f64;
            for _ in 0..150 {
                pts.push(t / 90_000.0);
                t += (90_000.0 / stream_fps).round() * if random(40) == 0 { 7.0 } else { 1.0 };
            }
            // Decoding order: each reference frame, then the (up to 2) B-frames before it.
            let bs = random(3) as usize;
            let mut order = Vec::new();
            for group in (0..pts.len()).step_by(bs + 1) {
                let last = (group + bs).min(pts.len() - 1);
                order.push((last, false));
                order.extend((group..last).map(|i| (i, true)));
            }
            let full = taken(sampling.clone(), pts.iter().copied());
            // Decode with lag: a frame comes out once every frame before it was sent, and
            // `lag` more packets after that.
            let lag = random(5) as usize;
            let mut sampler = Sampler::new(sampling);
            let mut decoded = vec![true; pts.len()];
            let mut sent = vec![false; pts.len()];
            let mut complete = Vec::new(); // after packet j: frames 0..complete[j] all sent
            let (mut next_out, mut taken) = (0, Vec::new());
            for j in 0..order.len() + lag {
                if let Some(&(i, unreferenced)) = order.get(j) {
                    let drop = sampler.skips_unseen(pts[i]);
                    if drop && unreferenced {
                        decoded[i] = false;
                        dropped += 1;
                    } else if !drop {
                        sampler.will_see(pts[i]);
                    }
                    sent[i] = true;
                    let mut upto = complete.last().copied().unwrap_or(0);
                    while upto < pts.len() && sent[upto] {
                        upto += 1;
                    }
                    complete.push(upto);
                }
                let release = j.checked_sub(lag).map_or(0, |k| complete[k]);
                while next_out < release {
                    if decoded[next_out] && sampler.decide(pts[next_out]) == Decision::Take {
                        taken.push(pts[next_out]);
                    }
                    next_out += 1;
                }
            }
            assert_eq!(next_out, pts.len());
            assert_eq!(
                taken, full,
                "trial {trial}: fps {fps}, start {start:?}, lag {lag}"
            );
        }
        assert!(dropped > 1000, "only {dropped} frames dropped");
    }
}

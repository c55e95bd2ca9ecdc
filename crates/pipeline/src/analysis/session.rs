//! One source through the analysis: its head's recurrent state, its events and anomaly
//! detectors, and its counters, fed batch by batch with frames whose features the backbone has
//! already computed (alone, or in a batch shared with other sources).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use image::RgbImage;
use media::{DecodeReport, Liveness, Motion, Source};

use super::events::Events;
use super::motion::MotionRecord;
use super::record::{LiveSummary, Record, Timing, VideoSummary};
use super::{anomaly, expected, head_inputs, head_record};
use crate::backbone::Backbone;
use crate::head::StreamingHead;
use crate::imagenet::Scored;

/// Consecutive frames of one source, their features on the host.
#[derive(Debug)]
pub struct Rows<'a> {
    pub timestamps: &'a [f64],
    /// `[n x 1280]`, row-major.
    pub features: &'a [f32],
    /// ImageNet top-k of each frame.
    pub tops: Vec<Vec<Scored>>,
    pub motion: Option<&'a [Motion]>,
    pub luma: &'a [(f32, f32)],
    pub arrivals: &'a [SystemTime],
    /// When each frame was captured, where the source says.
    pub captures: &'a [Option<SystemTime>],
    /// The stream was lost for this many seconds before the first row (a reconnect); never
    /// set on a later row.
    pub gap: Option<f64>,
    /// The whole frames, when the outputs want them.
    pub frames: Option<Vec<RgbImage>>,
}

/// One source's state through the analysis.
#[derive(Debug)]
pub struct Session {
    name: String,
    head: StreamingHead,
    anomaly: anomaly::AnomalySettings,
    detector: anomaly::Detector,
    events: Events,
    top: usize,
    /// Records carry their [`Timing`] (live and streamed sources).
    streamed: bool,
    latencies: Latencies,
    /// Which clock the records' `wall` is: `capture` where the source gives capture times,
    /// else `arrival`.
    wall_clock: &'static str,
    /// Samples that carried motion, and how many of them had any measured.
    with_motion: u64,
    measured: u64,
    frames: u64,
    first: Option<f64>,
    last: f64,
    started: Instant,
}

impl Session {
    /// A session for `source`, read as `liveness`, with `head` (its state is reset),
    /// reporting ImageNet top-`top`.
    pub fn new(
        source: &Source,
        liveness: Liveness,
        mut head: StreamingHead,
        anomaly: anomaly::AnomalySettings,
        top: usize,
    ) -> Self {
        head.reset();
        let detector = anomaly::Detector::new(anomaly, holdoff(&head));
        Self {
            name: source.name(),
            head,
            anomaly,
            detector,
            events: Events::default(),
            top,
            streamed: liveness != Liveness::File,
            latencies: Latencies::default(),
            wall_clock: "arrival",
            with_motion: 0,
            measured: 0,
            frames: 0,
            first: None,
            last: 0.0,
            started: Instant::now(),
        }
    }

    /// Steps the head through `rows` and hands `emit` each frame's record (and whole frame).
    /// After a gap, the head's state and the anomaly detectors start afresh first.
    pub fn step(
        &mut self,
        backbone: &Backbone,
        rows: Rows,
        emit: &mut impl FnMut(Record, Option<RgbImage>) -> Result<()>,
    ) -> Result<()> {
        let n = rows.timestamps.len();
        if rows.gap.is_some() {
            self.head.reset();
            self.detector = anomaly::Detector::new(self.anomaly, holdoff(&self.head));
        }
        let card = &self.head.card;
        let k = self.top;
        let inputs = head_inputs(card, rows.features, rows.motion)?;
        let steps = self.head.step(&inputs, n)?;
        let card = &self.head.card;
        let mut expected = expected(backbone, card, &steps, k)?.into_iter();
        let mut shown = rows.frames.map(Vec::into_iter);
        for (i, (top, step)) in rows.tops.into_iter().zip(steps).enumerate() {
            let t = rows.timestamps[i];
            self.first.get_or_insert(t);
            self.last = t;
            let said = head_record(card, &step, expected.next().flatten(), k);
            let motion = rows.motion.map(|m| &m[i]);
            if let Some(m) = motion {
                self.with_motion += 1;
                self.measured += u64::from(m.source() != media::motion::Source::None);
            }
            let mut said_events = self.events.observe(t, &top, &said, motion);
            if let (0, Some(gap)) = (i, rows.gap) {
                said_events.insert(0, format!("reconnected after {gap:.1} s"));
            }
            let dim = vision::FEATURE_DIM;
            // Motion that was measured, and measured on inter frames (a key frame's interval
            // carries no coverage, object motion or pan of its own).
            let measured = motion.filter(|m| m.source() != media::motion::Source::None);
            let inter = measured.filter(|m| !m.key);
            let found = self.detector.observe(&anomaly::Sample {
                t,
                features: &rows.features[i * dim..(i + 1) * dim],
                luma: rows.luma[i],
                coverage: inter.map(|m| m.coverage),
                key: measured.map(|m| m.key),
                objects: inter.map(|m| m.objects),
                pan: inter.map(|m| m.pan),
                surprise: step.surprise,
            });
            self.events.note(t, &found, step.surprise);
            said_events.extend(found);
            let timing = self.streamed.then(|| {
                let arrival = rows.arrivals[i];
                let latency = SystemTime::now()
                    .duration_since(arrival)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.latencies.add(latency);
                let (wall, clock) = match rows.captures[i] {
                    Some(captured) => (captured, "capture"),
                    None => (arrival, "arrival"),
                };
                self.wall_clock = clock;
                Timing {
                    wall: wall
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    wall_clock: clock,
                    latency,
                }
            });
            let record = Record {
                timestamp: t,
                frame: self.frames,
                events: said_events,
                top,
                head: said,
                surprise: step.surprise,
                motion: motion.map(MotionRecord::new),
                timing,
            };
            self.frames += 1;
            emit(record, shown.as_mut().and_then(Iterator::next))?;
        }
        Ok(())
    }

    /// The summary, once the source has ended with `decode`'s counters, read as `liveness`.
    pub fn finish(mut self, decode: &DecodeReport, liveness: Liveness) -> VideoSummary {
        let wall = self.started.elapsed().as_secs_f64();
        self.detector.finish(self.last);
        if self.with_motion > 1 && self.measured == 0 {
            tracing::warn!(
                "{}: no motion measured in {} frames (frames over 1 s apart, or none decodable): its motion values are unknown",
                self.name,
                self.with_motion
            );
        }
        let live = (liveness != Liveness::File).then(|| {
            let (latency_median, latency_p95) = self.latencies.quantiles();
            LiveSummary {
                live: liveness == Liveness::Live,
                frames_dropped: decode.dropped,
                packets_skipped: decode.skipped,
                reconnects: decode.reconnects,
                latency_median,
                latency_p95,
                wall_clock: self.wall_clock,
                ended: decode.ended.clone(),
            }
        });
        VideoSummary {
            frames: self.frames,
            video_seconds: self.first.map_or(0.0, |f| self.last - f),
            wall_seconds: wall,
            frames_per_second: self.frames as f64 / wall.max(1e-9),
            events: self.events.list,
            anomalies: self.detector.found,
            damaged: decode.damaged,
            live,
            interrupted: decode.interrupted,
        }
    }
}

/// Latencies in milliseconds, counted in a fixed histogram (memory stays flat over hours):
/// 1 ms bins up to a minute, anything longer in the last.
#[derive(Debug)]
struct Latencies {
    bins: Vec<u32>,
    count: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            bins: vec![0; 60_001],
            count: 0,
        }
    }
}

impl Latencies {
    fn add(&mut self, seconds: f64) {
        let ms = ((seconds * 1000.0).round().max(0.0) as usize).min(self.bins.len() - 1);
        self.bins[ms] = self.bins[ms].saturating_add(1);
        self.count += 1;
    }

    /// The median and 95th percentile in seconds (to the millisecond; zeros when empty).
    fn quantiles(&self) -> (f64, f64) {
        let at = |q: f64| {
            if self.count == 0 {
                return 0.0;
            }
            let rank = ((self.count - 1) as f64 * q).round() as u64;
            let mut seen = 0u64;
            for (ms, &n) in self.bins.iter().enumerate() {
                seen += u64::from(n);
                if seen > rank {
                    return ms as f64 / 1000.0;
                }
            }
            (self.bins.len() - 1) as f64 / 1000.0
        };
        (at(0.5), at(0.95))
    }
}

/// How long after another anomaly the head's surprise is that anomaly's: its forecasts look a
/// horizon ahead, so those made during it come due up to a horizon after it.
fn holdoff(head: &StreamingHead) -> f64 {
    head.card.horizon_steps as f64 * head.card.step_seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_to_the_millisecond() {
        let mut l = Latencies::default();
        assert_eq!(l.quantiles(), (0.0, 0.0));
        for ms in 1..=100 {
            l.add(f64::from(ms) / 1000.0);
        }
        assert_eq!(l.quantiles(), (0.051, 0.095));
        l.add(3600.0);
        assert_eq!(l.count, 101);
    }
}

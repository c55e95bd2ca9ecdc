//! What the analysis says about each sampled frame, and about a whole video.
//!
//! A [`Record`] is one line of `run`'s output. Sections that only some runs have are optional
//! and left out of the JSON when absent, so new streams (motion, live timing) add fields
//! without changing the lines of runs that do not use them.

use serde::Serialize;

use super::motion::MotionRecord;
use crate::imagenet::Scored;

/// A head class and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub label: String,
    pub probability: f32,
}

/// What the temporal head says at a frame.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum HeadRecord {
    /// What is happening now, by the head's classes.
    Classify { top: Vec<Named> },
    /// What will be happening `horizon_seconds` from now.
    Anticipate {
        horizon_seconds: f64,
        top: Vec<Named>,
    },
    /// What is expected in view `horizon_seconds` from now: the forecast embedding through
    /// the ImageNet classifier.
    Forecast {
        horizon_seconds: f64,
        expected: Vec<Scored>,
    },
}

/// When a frame of a live or streamed source was captured or arrived, and how long its record
/// took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// Seconds since the Unix epoch at which the frame was captured, where the source says
    /// (RTSP's sender reports), else at which it arrived (its packet was read).
    pub wall: f64,
    /// Which clock `wall` is: `capture` or `arrival`.
    pub wall_clock: &'static str,
    /// Seconds from the frame's arrival to its record.
    pub latency: f64,
}

/// One sampled frame.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Seconds, from the stream's timestamps (on a live source, from 0 at its first packet,
    /// increasing across reconnects).
    pub timestamp: f64,
    /// The sampled frame's number: 0, 1, 2, ...
    pub frame: u64,
    /// ImageNet top-k of the frame.
    pub top: Vec<Scored>,
    pub head: HeadRecord,
    /// Forecast heads: how far the frame's embedding is from what was forecast for it (mean
    /// squared difference per normalised feature); null until the first forecast comes due.
    pub surprise: Option<f64>,
    /// The motion since the previous record, unless motion is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motion: Option<MotionRecord>,
    /// Live and streamed sources: when the frame arrived and the latency to its record.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// `anomaly: KIND ...` where an anomaly starts and `anomaly: KIND ends (START-END s)` where
    /// it ends (see `anomaly`), `view: A -> B` (the frame's top ImageNet class changed and held
    /// for two frames), `head: A -> B` (the head's top class changed likewise), `camera: pan
    /// left starts`, `camera: pan stops`, `camera: zoom in starts`, `camera: zoom stops` (held
    /// for two frames), `motion: objects spike` (while the camera is still), `reconnected
    /// after G s` (a live source came back after a gap: the head's state starts afresh).
    pub events: Vec<String>,
}

/// An event, for summaries.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Event {
    pub timestamp: f64,
    pub text: String,
    /// The surprise where a surprise episode starts (`anomaly: surprise`).
    pub surprise: Option<f64>,
}

/// What a finished video reports.
#[derive(Debug, Clone, Serialize)]
pub struct VideoSummary {
    pub frames: u64,
    /// Seconds of video covered, first to last sampled frame.
    pub video_seconds: f64,
    pub wall_seconds: f64,
    pub frames_per_second: f64,
    pub events: Vec<Event>,
    /// Every anomaly found, in the order they started (all closed).
    pub anomalies: Vec<super::Anomaly>,
    pub damaged: u64,
    /// Live and streamed sources: frames dropped, latency, reconnects, how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSummary>,
    /// Reading was stopped (Ctrl-C) before the source ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

/// How a live or streamed source kept up.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    /// Whether the source was live (kept current by dropping frames) or only streamed
    /// (standard input: every frame kept).
    pub live: bool,
    /// Sampled frames dropped before conversion because the analysis was behind.
    pub frames_dropped: u64,
    /// Packets skipped unseen because decoding was behind (up to the next key frame).
    pub packets_skipped: u64,
    pub reconnects: u64,
    /// Seconds from a frame's arrival to its record: median and 95th percentile.
    pub latency_median: f64,
    pub latency_p95: f64,
    /// Which clock the records' `wall` was last on: `capture` (the source gave capture times)
    /// or `arrival`.
    pub wall_clock: &'static str,
    /// Why the stream ended, when it stalled or closed rather than being stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

impl VideoSummary {
    /// The surprise episodes, largest surprise first, then the other events, at most `n`.
    pub fn top_events(&self, n: usize) -> Vec<&Event> {
        let mut peaks: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.surprise.is_some())
            .collect();
        peaks.sort_by(|a, b| {
            b.surprise
                .unwrap_or(0.0)
                .total_cmp(&a.surprise.unwrap_or(0.0))
        });
        peaks
            .into_iter()
            .chain(self.events.iter().filter(|e| e.surprise.is_none()))
            .take(n)
            .collect()
    }
}

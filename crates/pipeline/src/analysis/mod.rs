//! The analysis of a video, frame by frame: the backbone's features and ImageNet classes, the
//! temporal head stepping its state forward batch by batch, and online events. One
//! [`Analysis`] holds the loaded models; [`Analysis::worker`] gives another video its own head
//! state on the same backbone, so several videos share one network.

pub mod anomaly;
mod events;
mod motion;
mod record;

pub use anomaly::{Anomaly, AnomalySettings};
pub use motion::MotionRecord;
pub use record::{Event, HeadRecord, LiveSummary, Named, Record, Timing, VideoSummary};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use burn::prelude::*;
use image::RgbImage;

use crate::backbone::{Backbone, BackboneSettings};
use crate::features::video_batches;
use crate::head::{StepOutput, StreamingHead};
use crate::imagenet::{Scored, top_k};
use crate::model_dir::{ModelCard, SamplingCard, Task};
use crate::sampling::SamplingSettings;
use events::Events;
use media::{DecodeOptions, DecodeReport, Liveness, ReadOptions, Source};

/// What `run` and `batch` compute per frame.
#[derive(Debug, Clone)]
pub struct AnalysisSettings {
    /// A folder written by `pipeline train`; `None`: the built-in forecaster. Its sampling is
    /// used unless `sampling` sets fps or stride.
    pub model: Option<PathBuf>,
    /// ImageNet classes (and head classes) per record.
    pub top: u32,
    pub sampling: SamplingSettings,
    pub backbone: BackboneSettings,
    pub anomaly: AnomalySettings,
    /// How sources are read: timeout, reconnects, the stop flag.
    pub read: ReadOptions,
}

/// The backbone, the head and the settings, ready for any number of videos.
#[derive(Debug)]
pub struct Analysis {
    /// Shared by every [`Analysis::worker`]: one network in memory however many videos.
    pub backbone: Arc<Backbone>,
    pub head: StreamingHead,
    pub options: DecodeOptions,
    anomaly: AnomalySettings,
    top: usize,
    batch: usize,
}

impl Analysis {
    /// Loads the head (its card decides the sampling unless the flags override it) and the
    /// backbone on the chosen device.
    pub fn prepare(args: &AnalysisSettings) -> Result<Self> {
        let head = StreamingHead::load(args.model.as_deref())?;
        let card = &head.card;
        let mut sampling = args.sampling.clone();
        if sampling.fps.is_none() && sampling.stride.is_none() {
            sampling.fps = card.sampling.fps;
            sampling.stride = card.sampling.stride;
            sampling.keyframes |= card.sampling.keyframes;
        } else if SamplingCard::from_settings(&sampling).fps != card.sampling.fps
            || sampling.stride != card.sampling.stride
        {
            tracing::warn!(
                "the head was trained on steps {:.3} s apart ({:?}); with other sampling its sense of time (and horizon) does not hold",
                card.step_seconds,
                card.sampling
            );
        }
        if sampling.size != card.sampling.size {
            tracing::warn!(
                "the head was trained on {0}x{0} inputs, not {1}x{1}",
                card.sampling.size,
                sampling.size
            );
        }
        sampling.motion = card.motion(sampling.motion, sampling.keyframes)?;
        let mut options = sampling.options()?;
        options.read = args.read.clone();
        let selected = crate::device::select(args.backbone.device)?;
        tracing::info!("device: {}; head: {}", selected.description, head.source);
        let backbone = Arc::new(Backbone::load(
            &args.backbone,
            options.size,
            &selected.device,
        )?);
        if backbone.fingerprint != card.backbone.fingerprint {
            tracing::warn!(
                "the head was trained on features of {}, these are {}",
                card.backbone.fingerprint,
                backbone.fingerprint
            );
        }
        Ok(Self {
            backbone,
            head,
            options,
            anomaly: args.anomaly,
            top: args.top as usize,
            batch: args.backbone.batch as usize,
        })
    }

    /// Another analysis on the same backbone with a head of its own (for another video at the
    /// same time): loads nothing.
    pub fn worker(&self) -> Self {
        Self {
            backbone: Arc::clone(&self.backbone),
            head: self.head.fresh(),
            options: self.options.clone(),
            anomaly: self.anomaly,
            top: self.top,
            batch: self.batch,
        }
    }

    /// Runs one video, handing `emit` each record and, when `display` is given, its whole frame
    /// as shown (display rotation applied), scaled so its longer side is at most `display`
    /// pixels (never up), width and height even. The decoder makes it beside the model's input.
    ///
    /// A live source's records carry their [`Timing`]; after a reconnect the head's state and
    /// the anomaly detectors start afresh (the gap is not a change the stream made).
    pub fn video(
        &mut self,
        source: &Source,
        display: Option<u32>,
        mut emit: impl FnMut(Record, Option<RgbImage>) -> Result<()>,
    ) -> Result<VideoSummary> {
        let Self {
            backbone,
            head,
            options,
            anomaly,
            top: k,
            batch,
        } = self;
        let mut detector = anomaly::Detector::new(*anomaly);
        let streamed = source.liveness(false) != Liveness::File;
        let mut latencies = Vec::new();
        // Samples that carried motion, and how many of them had any measured.
        let (mut with_motion, mut measured) = (0u64, 0u64);
        let k = *k;
        head.reset();
        let started = Instant::now();
        let mut events = Events::default();
        let (mut frames, mut first, mut last) = (0u64, None, 0.0);
        let card = head.card.clone();
        let backbone: &Backbone = backbone;
        let run = video_batches(source, options, backbone, *batch, display, true, |b| {
            let n = b.timestamps.len();
            if b.gap.is_some() {
                head.reset();
                detector = anomaly::Detector::new(*anomaly);
            }
            let values = b.host_features()?;
            let tops = top_k(backbone.classify(b.features), k)?;
            let mut shown = b.frames.map(Vec::into_iter);
            let inputs = head_inputs(&card, &values, b.motion.as_deref())?;
            let steps = head.step(&inputs, n)?;
            let expected = expected(backbone, &card, &steps, k)?;
            let mut expected = expected.into_iter();
            for (i, (top, step)) in tops.into_iter().zip(steps).enumerate() {
                let t = b.timestamps[i];
                first.get_or_insert(t);
                last = t;
                let said = head_record(&card, &step, expected.next().flatten(), k);
                let motion = b.motion.as_ref().map(|m| &m[i]);
                if let Some(m) = motion {
                    with_motion += 1;
                    measured += u64::from(m.source() != media::motion::Source::None);
                }
                let mut said_events = events.observe(t, &top, &said, motion);
                if let (0, Some(gap)) = (i, b.gap) {
                    said_events.insert(0, format!("reconnected after {gap:.1} s"));
                }
                let dim = vision::FEATURE_DIM;
                let found = detector.observe(&anomaly::Sample {
                    t,
                    features: &values[i * dim..(i + 1) * dim],
                    luma: b.luma[i],
                    coverage: motion
                        .filter(|m| !m.key && m.source() != media::motion::Source::None)
                        .map(|m| m.coverage),
                    surprise: step.surprise,
                });
                events.note(t, &found, step.surprise);
                said_events.extend(found);
                let timing = streamed.then(|| {
                    let arrival = b.arrivals[i];
                    let latency = SystemTime::now()
                        .duration_since(arrival)
                        .map_or(0.0, |d| d.as_secs_f64());
                    latencies.push(latency);
                    Timing {
                        wall: arrival
                            .duration_since(UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64()),
                        wall_clock: "arrival",
                        latency,
                    }
                });
                let record = Record {
                    timestamp: t,
                    frame: frames,
                    events: said_events,
                    top,
                    head: said,
                    surprise: step.surprise,
                    motion: motion.map(MotionRecord::new),
                    timing,
                };
                frames += 1;
                emit(record, shown.as_mut().and_then(Iterator::next))?;
            }
            Ok(())
        })?;
        let wall = started.elapsed().as_secs_f64();
        detector.finish(last);
        if with_motion > 1 && measured == 0 {
            tracing::warn!(
                "{}: no motion measured in {with_motion} frames (frames over 1 s apart, or none decodable): its motion values are unknown",
                source.name()
            );
        }
        let decode = &run.decode;
        let live = (run.info.liveness != Liveness::File).then(|| {
            let (latency_median, latency_p95) = quantiles(&mut latencies);
            LiveSummary {
                live: run.info.liveness == Liveness::Live,
                frames_dropped: decode.dropped,
                packets_skipped: decode.skipped,
                reconnects: decode.reconnects,
                latency_median,
                latency_p95,
                wall_clock: "arrival",
                ended: decode.ended.clone(),
            }
        });
        Ok(VideoSummary {
            frames,
            video_seconds: first.map_or(0.0, |f| last - f),
            wall_seconds: wall,
            frames_per_second: frames as f64 / wall.max(1e-9),
            events: events.list,
            anomalies: detector.found,
            damaged: damaged(&run.decode),
            live,
            interrupted: run.decode.interrupted,
        })
    }
}

/// The head's input rows for a batch: the features as they are, or laid beside the motion as
/// the card's inputs say.
fn head_inputs(
    card: &ModelCard,
    features: &[f32],
    motion: Option<&[media::Motion]>,
) -> Result<Vec<f32>> {
    if card.inputs == crate::streams::Streams::default() {
        return Ok(features.to_vec());
    }
    let dim = vision::FEATURE_DIM;
    let n = features.len() / dim;
    let mut out = Vec::with_capacity(n * card.inputs.dim());
    for i in 0..n {
        let row = motion.map(|m| m[i].to_vec());
        card.inputs
            .step(&features[i * dim..(i + 1) * dim], row.as_deref(), &mut out)?;
    }
    Ok(out)
}

/// ImageNet top-k of each forecast embedding (forecast heads whose inputs start with the
/// features; the values after them, motion, are not classified).
fn expected(
    backbone: &Backbone,
    card: &ModelCard,
    steps: &[StepOutput],
    k: usize,
) -> Result<Vec<Option<Vec<Scored>>>> {
    if !card.inputs.has(crate::streams::Stream::Features) {
        return Ok(vec![None; steps.len()]);
    }
    let rows: Vec<f32> = steps
        .iter()
        .filter_map(|s| s.forecast.as_deref())
        .flat_map(|row| &row[..vision::FEATURE_DIM])
        .copied()
        .collect();
    if rows.is_empty() {
        return Ok(vec![None; steps.len()]);
    }
    let n = rows.len() / vision::FEATURE_DIM;
    let features = Tensor::<2>::from_data(
        TensorData::new(rows, [n, vision::FEATURE_DIM]),
        &backbone.device(),
    );
    Ok(top_k(backbone.classify(features), k)?
        .into_iter()
        .map(Some)
        .collect())
}

/// The median and 95th percentile of `values` (sorted in place; zeros when empty).
fn quantiles(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn damaged(report: &DecodeReport) -> u64 {
    report.damaged
}

fn head_record(
    card: &ModelCard,
    step: &StepOutput,
    expected: Option<Vec<Scored>>,
    k: usize,
) -> HeadRecord {
    let named = |p: &[f32]| -> Vec<Named> {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        idx.into_iter()
            .take(k)
            .map(|i| Named {
                label: card
                    .classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| i.to_string()),
                probability: p[i],
            })
            .collect()
    };
    let horizon_seconds = card
        .horizon_seconds
        .unwrap_or(card.horizon_steps as f64 * card.step_seconds);
    match card.task() {
        Task::Classify => HeadRecord::Classify {
            top: step.probabilities.as_deref().map(named).unwrap_or_default(),
        },
        Task::Anticipate => HeadRecord::Anticipate {
            horizon_seconds,
            top: step.probabilities.as_deref().map(named).unwrap_or_default(),
        },
        Task::Forecast => HeadRecord::Forecast {
            horizon_seconds,
            expected: expected.unwrap_or_default(),
        },
    }
}
